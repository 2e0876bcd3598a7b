// A C interface to fbgemm, the int8 GEMM library inside libtorch_cpu, for what int8 inference
// needs and tch does not bind: packing an int8 weight matrix, and `y = x · Wᵀ` with fp32
// activations quantized on the fly, per-row weight steps and the bias applied in fbgemm's own
// output stage. The Rust side (src/ffi.rs, src/lib.rs) wraps it in a safe API.
//
// Why fbgemm directly and not libtorch's op `fbgemm_linear_int8_weight_fp32_activation`
// (which this shim called first, and whose steps this follows): that op takes one weight
// scale per matrix, so the per-row steps had to be a second pass over its output, and it
// allocates an int32 buffer the size of the output at every call. Here the steps go into
// fbgemm's requantization (per output channel) and the int32 accumulators live in the output
// itself (fbgemm supports that: C_buffer == C), so a call writes one `[M, N]` tensor once.
//
// Conventions (as in distributed/csrc/c10d_shim.cpp): tensors travel as `at::Tensor*`, which
// is exactly tch's C_tensor; functions that can fail take `char** err` and, on failure,
// return non-zero and set *err to a malloc'd message the caller frees with
// nmt_q8_free_error. A result tensor is returned as `new at::Tensor(...)`, which
// tch::Tensor::from_ptr takes over (and frees with `delete`). No C++ exception crosses this
// boundary.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <fbgemm/Fbgemm.h>
#include <fbgemm/QuantUtils.h>

#include "ffi_guard.h"

#include <cstdint>
#include <cstdlib>

namespace {

using PackedB = fbgemm::PackBMatrix<int8_t>;

template <typename F>
int guarded(char** err, F&& body) {
  return nmt_ffi::guarded(err, "unknown C++ exception in fbgemm", body);
}

}  // namespace

extern "C" {

// *packed = fbgemm's packed form of q (int8 [N, K], contiguous), which owns its buffer (it
// does not point into q); free it with nmt_q8_free_packed.
int nmt_q8_pack(const at::Tensor* q, void** packed, char** err) {
  return guarded(err, [&] {
    TORCH_CHECK(fbgemm::fbgemmSupportedCPU(), "this CPU cannot run fbgemm (it needs AVX2)");
    TORCH_CHECK(q->dim() == 2 && q->scalar_type() == at::kChar && q->is_contiguous(),
                "pack a contiguous int8 matrix [N, K], got ", q->sizes(), " of ",
                q->scalar_type());
    const int64_t n = q->size(0);
    const int64_t k = q->size(1);
    *packed = new PackedB(fbgemm::matrix_op_t::Transpose, static_cast<int32_t>(k),
                          static_cast<int32_t>(n), q->data_ptr<int8_t>(),
                          static_cast<int32_t>(k), /*pmat=*/nullptr, /*groups=*/1);
  });
}

void nmt_q8_free_packed(void* packed) { delete static_cast<PackedB*>(packed); }

// out = (x · qᵀ) ⊙ row_scale + bias, for x float [M, K] (contiguous), quantized here to
// uint8 over [min(x, 0), max(x, 0)] (as libtorch's op does); q int8 [N, K] as `packed`;
// col_offsets int32 [N] (each row's sum of q); row_scale float [N]; zero_points int32 [N]
// (zeros: q is symmetric); bias float [N] or null → out float [M, N].
int nmt_q8_linear(const at::Tensor* x, void* packed, const at::Tensor* col_offsets,
                  const at::Tensor* row_scale, const at::Tensor* zero_points,
                  const at::Tensor* bias, at::Tensor** out, char** err) {
  return guarded(err, [&] {
    auto& pack_b = *static_cast<PackedB*>(packed);
    const int64_t k = pack_b.numRows();
    const int64_t n = pack_b.numCols();
    TORCH_CHECK(x->dim() == 2 && x->scalar_type() == at::kFloat && x->is_contiguous() &&
                    x->size(1) == k,
                "int8 linear: input ", x->sizes(), " of ", x->scalar_type(),
                ", expected contiguous float [M, ", k, "]");
    for (const at::Tensor* t : {col_offsets, row_scale, zero_points, bias}) {
      TORCH_CHECK(t == nullptr || (t->numel() == n && t->is_contiguous()),
                  "int8 linear: a per-row tensor of ", t->sizes(), " for ", n, " rows");
    }
    const int64_t m = x->size(0);
    const float* x_data = x->data_ptr<float>();
    float lo = 0;
    float hi = 0;
    fbgemm::FindMinMax(x_data, &lo, &hi, x->numel());
    auto x_params = fbgemm::ChooseQuantizationParams(lo, hi, /*qmin=*/0, /*qmax=*/255,
                                                     /*preserve_sparsity=*/false);
    x_params.precision = 8;
    at::Tensor y = at::empty({m, n}, x->options());
    float* y_data = y.data_ptr<float>();
    const float* bias_data = bias == nullptr ? nullptr : bias->data_ptr<float>();
    const int num_tasks = at::get_num_threads();
    at::parallel_for(0, num_tasks, 1, [&](int64_t begin, int64_t end) {
      // Quantizes and packs the rows of x it is given, lazily, inside fbgemmPacked.
      fbgemm::PackAWithQuantRowOffset<uint8_t> pack_a(
          fbgemm::matrix_op_t::NoTranspose, static_cast<int32_t>(m), static_cast<int32_t>(k),
          x_data, static_cast<int32_t>(k), /*pmat=*/nullptr, x_params.scale,
          x_params.zero_point);
      fbgemm::DoNothing<float, float> done{};
      for (int64_t task = begin; task < end; ++task) {
        fbgemm::ReQuantizeForFloat<false, fbgemm::QuantizationGranularity::OUT_CHANNEL> rescale(
            done, x_params.scale, row_scale->data_ptr<float>(), x_params.zero_point,
            zero_points->data_ptr<int32_t>(), pack_a.getRowOffsetBuffer(),
            col_offsets->data_ptr<int32_t>(), bias_data, static_cast<uint32_t>(n));
        // The int32 accumulators go into y itself (C_buffer == C): no second [M, N] buffer.
        fbgemm::fbgemmPacked(pack_a, pack_b, y_data, reinterpret_cast<int32_t*>(y_data),
                             static_cast<int32_t>(n), rescale, static_cast<int>(task),
                             num_tasks);
      }
    });
    *out = new at::Tensor(std::move(y));
  });
}

void nmt_q8_free_error(char* message) { free(message); }

}  // extern "C"
