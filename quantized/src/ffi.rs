//! The C functions of csrc/q8_shim.cpp. Every call that can fail returns a non-zero status and
//! hands back a malloc'd message, which [`take_error`] turns into a `String`.

use std::ffi::{c_char, c_void};

use tch::Tensor;

#[path = "../../build-support/ffi_error.rs"]
mod ffi_error;

/// A tensor handle: `at::Tensor*` on the C++ side, which is what tch's C tensor pointers are.
pub type CTensor = *mut c_void;

extern "C" {
    pub fn nmt_q8_pack(q: *const c_void, packed: *mut *mut c_void, err: *mut *mut c_char) -> i32;
    pub fn nmt_q8_free_packed(packed: *mut c_void);
    #[allow(clippy::too_many_arguments)]
    pub fn nmt_q8_linear(
        x: *const c_void,
        packed: *mut c_void,
        col_offsets: *const c_void,
        row_scale: *const c_void,
        zero_points: *const c_void,
        bias: *const c_void,
        out: *mut CTensor,
        err: *mut *mut c_char,
    ) -> i32;
    pub fn nmt_q8_free_error(message: *mut c_char);
}

/// The message behind `err` (freed here), or a placeholder when the shim set none.
///
/// # Safety
/// `err` is null or a pointer the shim returned through its `err` argument, not yet freed.
pub unsafe fn take_error(err: *mut c_char) -> String {
    ffi_error::take_error(err, nmt_q8_free_error, "fbgemm failed without a message")
}

/// Runs a shim call that returns one tensor: `call(&mut out, &mut err)`.
///
/// # Safety
/// `call` must be one of the shim's functions over live tensors, which on success sets `out`
/// to a tensor allocated with `new at::Tensor` and on failure sets `err` (or nothing).
pub unsafe fn returning_tensor(
    call: impl FnOnce(*mut CTensor, *mut *mut c_char) -> i32,
) -> Result<Tensor, String> {
    let mut out: CTensor = std::ptr::null_mut();
    let mut err: *mut c_char = std::ptr::null_mut();
    if call(&mut out, &mut err) != 0 || out.is_null() {
        return Err(take_error(err));
    }
    Ok(Tensor::from_ptr(out as *mut _))
}
