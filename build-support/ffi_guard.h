// The exception guard of the C interfaces over libtorch (distributed/csrc/c10d_shim.cpp and
// c10d_nccl.cpp, quantized/csrc/q8_shim.cpp): a function that can fail takes `char** err`
// and, on failure, returns non-zero (or null) and sets *err to a malloc'd message the caller
// frees (the Rust side: ffi_error.rs). No C++ exception crosses the boundary. The build scripts put this folder on the include path
// (build-support/libtorch.rs).
#pragma once

#include <c10/util/Exception.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

namespace nmt_ffi {

// *err = a malloc'd copy of `message` (when err is not null).
inline void set_error(char** err, const std::string& message) {
  if (err != nullptr) {
    *err = strdup(message.c_str());
  }
}

// Runs `body`, turning any exception into *err (`unknown` for one that is not a
// std::exception); returns 0 on success, 1 on failure.
template <typename F>
int32_t guarded(char** err, const char* unknown, F&& body) {
  try {
    body();
    return 0;
  } catch (const c10::Error& e) {
    // what() carries a C++ backtrace that means nothing to a user.
    set_error(err, e.what_without_backtrace());
  } catch (const std::exception& e) {
    set_error(err, e.what());
  } catch (...) {
    set_error(err, unknown);
  }
  return 1;
}

}  // namespace nmt_ffi
