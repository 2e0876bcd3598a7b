// The NCCL process group, in a shared library of its own (libnmt_c10d_nccl.so) that the Rust
// side loads at run time only when a job asks for NCCL. Why apart from c10d_shim.cpp: NCCL's
// process group lives in libtorch_cuda.so, and linking it into every binary would make
// libtorch's CUDA libraries a start-up requirement, which the CPU-only Docker image and
// machines without them do not meet (model::device loads libtorch_cuda at run time for the
// same reason).
//
// Same conventions as c10d_shim.cpp (build-support/ffi_guard.h): no C++ exception crosses
// this boundary; failures return null and set *err to a malloc'd message (freed by
// nmt_c10d_free_error of the main shim, which uses the same allocator).

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <chrono>
#include <cstdint>
#include <stdexcept>

#include "ffi_guard.h"

extern "C" {

// An NCCL process group of `world_size` ranks over `store` (borrowed; the group keeps its
// own reference), its keys under "nccl/". Returns an owning c10d::Backend* (the caller
// reclaims it into an intrusive_ptr), or null with *err set.
void* nmt_c10d_nccl_new(void* store, int32_t rank, int32_t world_size, int64_t timeout_ms,
                        char** err) {
  void* result = nullptr;
  nmt_ffi::guarded(err, "unknown C++ exception in the NCCL process group", [&] {
    // ProcessGroupNCCL refuses to start without a GPU ("no GPUs found"); say it in our words.
    if (!at::cuda::is_available()) {
      throw std::runtime_error(
          "the nccl backend needs CUDA GPUs and this process sees none (use "
          "training.dist_backend = \"gloo\" on CPUs)");
    }
    auto shared = c10::intrusive_ptr<c10d::Store>::unsafe_reclaim_from_nonowning(
        static_cast<c10d::Store*>(store));
    auto nccl_store = c10::make_intrusive<c10d::PrefixStore>("nccl/", shared);
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = std::chrono::milliseconds(timeout_ms);
    c10::intrusive_ptr<c10d::Backend> pg =
        c10::make_intrusive<c10d::ProcessGroupNCCL>(nccl_store, rank, world_size, options);
    result = pg.release();
  });
  return result;
}

}  // extern "C"
