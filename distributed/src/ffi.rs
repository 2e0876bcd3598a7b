//! The C functions of csrc/c10d_shim.cpp. Every call that can fail returns null or a non-zero
//! status and hands back a malloc'd message, which [`take_error`] turns into a `String`.

use std::ffi::{c_char, c_void};

use tch::Tensor;

#[path = "../../build-support/ffi_error.rs"]
mod ffi_error;

/// `nmt_c10d_nccl_new` of csrc/c10d_nccl.cpp (libnmt_c10d_nccl.so, loaded at run time).
pub type NcclNew = unsafe extern "C" fn(
    store: *mut c_void,
    rank: i32,
    world_size: i32,
    timeout_ms: i64,
    err: *mut *mut c_char,
) -> *mut c_void;

/// The symbol [`NcclNew`] is exported as.
pub const NCCL_NEW_SYMBOL: &[u8] = b"nmt_c10d_nccl_new\0";

extern "C" {
    pub fn nmt_c10d_new(
        backend: *const c_char,
        host: *const c_char,
        port: u16,
        rank: i32,
        world_size: i32,
        store_server: i32,
        timeout_ms: i64,
        prefix: *const c_char,
        nccl_new: Option<NcclNew>,
        err: *mut *mut c_char,
    ) -> *mut c_void;
    pub fn nmt_c10d_allreduce_sum(
        group: *mut c_void,
        tensors: *mut *mut c_void,
        count: usize,
        err: *mut *mut c_char,
    ) -> i32;
    pub fn nmt_c10d_broadcast(
        group: *mut c_void,
        tensors: *mut *mut c_void,
        count: usize,
        root: i32,
        err: *mut *mut c_char,
    ) -> i32;
    pub fn nmt_c10d_barrier(group: *mut c_void, err: *mut *mut c_char) -> i32;
    pub fn nmt_c10d_store_add(
        group: *mut c_void,
        key: *const c_char,
        delta: i64,
        value: *mut i64,
        err: *mut *mut c_char,
    ) -> i32;
    pub fn nmt_c10d_heartbeat(
        group: *mut c_void,
        rank: i32,
        interval_ms: i64,
        err: *mut *mut c_char,
    ) -> i32;
    pub fn nmt_c10d_free(group: *mut c_void);
    pub fn nmt_c10d_free_error(message: *mut c_char);
}

/// The message behind `err` (freed here), or a placeholder when the shim set none.
///
/// # Safety
/// `err` is null or a pointer the shim returned through its `err` argument, not yet freed.
pub unsafe fn take_error(err: *mut c_char) -> String {
    ffi_error::take_error(err, nmt_c10d_free_error, "c10d failed without a message")
}

/// The `at::Tensor*` behind each tensor: tch's C tensor handle is exactly that.
pub fn tensor_pointers(tensors: &mut [Tensor]) -> Vec<*mut c_void> {
    tensors
        .iter_mut()
        .map(|t| t.as_mut_ptr() as *mut c_void)
        .collect()
}
