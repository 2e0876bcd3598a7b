// A C interface to the few parts of PyTorch's c10d that data-parallel training needs: a
// TCPStore rendezvous, a Gloo process group (and, when the caller hands in the NCCL
// library's constructor, an NCCL one for CUDA tensors: csrc/c10d_nccl.cpp), and all-reduce /
// broadcast / barrier on tensors, each with a timeout. The Rust side (src/ffi.rs) wraps it
// in a safe API.
//
// Why C and not the `cxx` crate: the interface is six functions over opaque handles and
// `at::Tensor*` (which is what tch's C_tensor pointers are), and every c10d exception must
// become a message anyway; `extern "C"` with a caught-exception-to-string convention says
// that in the fewest moving parts.
//
// Conventions: functions that can fail take `char** err`; on failure they return null or a
// non-zero status and set *err to a malloc'd message the caller frees with
// nmt_c10d_free_error. No C++ exception crosses this boundary.

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "ffi_guard.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

// A rank's heartbeat: a thread that bumps the store counter `beat/<rank>` every interval
// over its own store connection, so that after a failed collective the survivors can tell a
// rank that died or stalled (its counter stopped) from one that is alive.
struct Heartbeat {
  std::thread thread;
  std::mutex mutex;
  std::condition_variable wake;
  bool stop = false;

  void start(c10::intrusive_ptr<c10d::Store> store, std::string key,
             std::chrono::milliseconds interval) {
    thread = std::thread([this, store = std::move(store), key = std::move(key), interval] {
      std::unique_lock<std::mutex> lock(mutex);
      while (!stop) {
        try {
          store->add(key, 1);
        } catch (...) {
          // The store is gone (its host stopped): nothing left to tell.
          return;
        }
        wake.wait_for(lock, interval, [this] { return stop; });
      }
    });
  }

  ~Heartbeat() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    wake.notify_all();
    if (thread.joinable()) {
      thread.join();
    }
  }
};

// A job's process groups: Gloo for host tensors and the barrier (always), NCCL for CUDA
// tensors when the job asked for it. Control messages (the run's state, the data
// fingerprint) are host bytes, gradients and weights live on the GPU: two groups over one
// store, chosen per call by the tensors' device, as torch.distributed does for a process
// group created with the "cpu:gloo,cuda:nccl" backend string.
struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  c10::intrusive_ptr<c10d::Backend> cuda_backend;  // null: CUDA tensors go through Gloo
  std::chrono::milliseconds timeout;
  Heartbeat heartbeat;

  c10d::Backend& for_tensors(const std::vector<at::Tensor>& tensors) {
    if (cuda_backend && !tensors.empty() && tensors.front().is_cuda()) {
      return *cuda_backend;
    }
    return *backend;
  }
};

// Runs `body`, turning any exception into *err; returns 0 on success, 1 on failure.
template <typename F>
int32_t guarded(char** err, F&& body) {
  return nmt_ffi::guarded(err, "unknown C++ exception in c10d", body);
}

std::vector<at::Tensor> tensors_of(at::Tensor** tensors, size_t count) {
  std::vector<at::Tensor> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    // A shallow copy: the collective writes into the caller's storage.
    out.push_back(*tensors[i]);
  }
  return out;
}

// Blocks until `work` is done. For NCCL work an explicit timeout makes wait() block the
// host until the kernels finish (not only order the current stream after them), so a dead
// peer shows up here as an error instead of a hang in a later CUDA call.
void wait(const c10::intrusive_ptr<c10d::Work>& work, std::chrono::milliseconds timeout) {
  if (!work->wait(timeout)) {
    throw std::runtime_error("collective did not complete within the timeout");
  }
}

// csrc/c10d_nccl.cpp's nmt_c10d_nccl_new, from the library the Rust side loaded.
using NcclNew = void* (*)(void* store, int32_t rank, int32_t world_size, int64_t timeout_ms,
                          char** err);

}  // namespace

extern "C" {

// Joins the job: connects to (or, when `store_server` is set, hosts) the TCPStore at
// host:port, every key under `prefix`, and builds the process group of `world_size` ranks.
// `backend` is "gloo" or "nccl" (NCCL for CUDA tensors, built by `nccl_new`; Gloo for the
// rest and the barrier). Returns null on failure.
void* nmt_c10d_new(const char* backend, const char* host, uint16_t port, int32_t rank,
                   int32_t world_size, int32_t store_server, int64_t timeout_ms,
                   const char* prefix, NcclNew nccl_new, char** err) {
  Group* group = nullptr;
  guarded(err, [&] {
    const std::chrono::milliseconds timeout(timeout_ms);
    c10d::TCPStoreOptions options;
    options.port = port;
    options.isServer = store_server != 0;
    options.numWorkers = static_cast<size_t>(world_size);
    // Every rank waits for the others at the rendezvous (the server counts them in).
    options.waitWorkers = true;
    options.timeout = timeout;
    // Several stores may share a torchrun agent's port (multiTenant), as PyTorch's own
    // env:// rendezvous allows.
    options.multiTenant = true;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), options);
    auto store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), tcp);
    const std::string name(backend);
    c10::intrusive_ptr<c10d::Backend> cuda_backend;
    if (name == "nccl") {
      if (nccl_new == nullptr) {
        throw std::runtime_error("the nccl backend's library was not loaded");
      }
      char* nccl_err = nullptr;
      void* pg = nccl_new(store.get(), rank, world_size, timeout_ms, &nccl_err);
      if (pg == nullptr) {
        std::string message = nccl_err != nullptr ? nccl_err : "NCCL failed without a message";
        std::free(nccl_err);
        throw std::runtime_error(message);
      }
      cuda_backend = c10::intrusive_ptr<c10d::Backend>::reclaim(static_cast<c10d::Backend*>(pg));
    } else if (name != "gloo") {
      throw std::runtime_error("unsupported c10d backend '" + name + "' (expected gloo or nccl)");
    }
    // create_default honours GLOO_SOCKET_IFNAME and falls back to the loopback device when
    // the host name does not resolve, as torch.distributed does.
    auto gloo_options = c10d::ProcessGroupGloo::Options::create_default(timeout);
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, gloo_options);
    group = new Group{store, pg, cuda_backend, timeout, {}};
  });
  return group;
}

// Sums `tensors` (in place) over all ranks.
int32_t nmt_c10d_allreduce_sum(void* handle, at::Tensor** tensors, size_t count, char** err) {
  auto* group = static_cast<Group*>(handle);
  return guarded(err, [&] {
    auto list = tensors_of(tensors, count);
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    options.timeout = group->timeout;
    wait(group->for_tensors(list).allreduce(list, options), group->timeout);
  });
}

// Overwrites `tensors` on every rank with rank `root`'s.
int32_t nmt_c10d_broadcast(void* handle, at::Tensor** tensors, size_t count, int32_t root,
                           char** err) {
  auto* group = static_cast<Group*>(handle);
  return guarded(err, [&] {
    for (size_t i = 0; i < count; ++i) {
      // Gloo broadcasts one tensor per call (and NCCL's list form wants one per device).
      std::vector<at::Tensor> one{*tensors[i]};
      c10d::BroadcastOptions options;
      options.rootRank = root;
      options.timeout = group->timeout;
      wait(group->for_tensors(one).broadcast(one, options), group->timeout);
    }
  });
}

// Returns once every rank has called it.
int32_t nmt_c10d_barrier(void* handle, char** err) {
  auto* group = static_cast<Group*>(handle);
  return guarded(err, [&] {
    c10d::BarrierOptions options;
    options.timeout = group->timeout;
    wait(group->backend->barrier(options), group->timeout);
  });
}

// The store's counter `key` after adding `delta` (0 reads it without waiting). Ranks keep
// their progress there, so that after a failed collective the survivors can say which rank
// stopped.
int32_t nmt_c10d_store_add(void* handle, const char* key, int64_t delta, int64_t* value,
                           char** err) {
  auto* group = static_cast<Group*>(handle);
  return guarded(err, [&] { *value = group->store->add(std::string(key), delta); });
}

// Starts this rank's heartbeat (see Heartbeat) on a second connection to the store.
int32_t nmt_c10d_heartbeat(void* handle, int32_t rank, int64_t interval_ms, char** err) {
  auto* group = static_cast<Group*>(handle);
  return guarded(err, [&] {
    group->heartbeat.start(group->store->clone(), "beat/" + std::to_string(rank),
                           std::chrono::milliseconds(interval_ms));
  });
}

void nmt_c10d_free(void* handle) {
  auto* group = static_cast<Group*>(handle);
  try {
    delete group;
  } catch (...) {
    // A destructor that throws during shutdown must not abort the process.
  }
}

void nmt_c10d_free_error(char* message) { std::free(message); }

}  // extern "C"
