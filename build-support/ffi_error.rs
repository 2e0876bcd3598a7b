//! The Rust side of build-support/ffi_guard.h: a shim function that fails sets `*err` to a
//! malloc'd message, which the Rust caller takes over and hands back to that shim's own
//! free function (the shim and its allocator own the memory). Each FFI module includes this
//! file: `#[path = "../../build-support/ffi_error.rs"] mod ffi_error;`.

use std::ffi::{c_char, CStr};

/// The message behind `err` (freed with `free`), or `placeholder` when the shim set none.
///
/// # Safety
/// `err` is null or a pointer the shim returned through its `err` argument, not yet freed,
/// and `free` is that shim's function for freeing it.
pub unsafe fn take_error(
    err: *mut c_char,
    free: unsafe extern "C" fn(*mut c_char),
    placeholder: &str,
) -> String {
    if err.is_null() {
        return placeholder.to_owned();
    }
    let message = CStr::from_ptr(err).to_string_lossy().into_owned();
    free(err);
    message
}
