// A C interface to the two fbgemm ops of libtorch that int8 inference needs and tch does not
// bind: packing an int8 weight matrix for fbgemm, and the int8-weight, fp32-activation linear
// layer (the kernel PyTorch's old dynamic quantization of nn.Linear ran). The Rust side
// (src/ffi.rs, src/lib.rs) wraps it in a safe API.
//
// Conventions (as in distributed/csrc/c10d_shim.cpp): tensors travel as `at::Tensor*`, which
// is exactly tch's C_tensor; functions that can fail take `char** err` and, on failure,
// return non-zero and set *err to a malloc'd message the caller frees with
// nmt_q8_free_error. A result tensor is returned as `new at::Tensor(...)`, which
// tch::Tensor::from_ptr takes over (and frees with `delete`). No C++ exception crosses this
// boundary.

#include <ATen/ATen.h>
#include <ATen/ops/fbgemm_linear_int8_weight_fp32_activation.h>
#include <ATen/ops/fbgemm_pack_quantized_matrix.h>
#include <c10/util/Exception.h>

#include "ffi_guard.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

namespace {

// libtorch marks these ops deprecated (TORCH_WARN_ONCE) in favour of the quantized-tensor
// API, which tch cannot reach either. We call them on purpose (docs/RESULTS.md measures
// them); the notice would only clutter every translation's stderr, so it is dropped here.
class Silent : public c10::WarningHandler {
 public:
  void process(const c10::Warning&) override {}
};

// Runs `body` with libtorch's warnings silenced, turning any exception into *err; returns 0
// on success, 1 on failure.
template <typename F>
int guarded(char** err, F&& body) {
  return nmt_ffi::guarded(err, "unknown C++ exception", [&] {
    Silent silent;
    c10::WarningUtils::WarningHandlerGuard guard(&silent);
    body();
  });
}

}  // namespace

extern "C" {

// packed = fbgemm's packed form of q (int8 [N, K], contiguous). The packed tensor owns its
// buffer (it does not point into q).
int nmt_q8_pack(const at::Tensor* q, at::Tensor** packed, char** err) {
  return guarded(err, [&] { *packed = new at::Tensor(at::fbgemm_pack_quantized_matrix(*q)); });
}

// out = x · ((q − zero_point) · scale)ᵀ + bias, x float [.., K] quantized on the fly to
// uint8 (per tensor), q int8 [N, K] with `packed` from nmt_q8_pack and col_offsets int32 [N]
// (each row's sum minus zero_point · K), bias float [N] → out float [.., N].
int nmt_q8_linear(const at::Tensor* x, const at::Tensor* q, const at::Tensor* packed,
                  const at::Tensor* col_offsets, double scale, int64_t zero_point,
                  const at::Tensor* bias, at::Tensor** out, char** err) {
  return guarded(err, [&] {
    *out = new at::Tensor(at::fbgemm_linear_int8_weight_fp32_activation(
        *x, *q, *packed, *col_offsets, scale, zero_point, *bias));
  });
}

void nmt_q8_free_error(char* message) { free(message); }

}  // extern "C"
