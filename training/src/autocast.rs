//! bf16 autocast on CUDA.
//!
//! `tch::autocast` only switches autocast on; the reduced type stays libtorch's default, fp16,
//! which without loss scaling underflows small gradients. tch exposes no way to pick bf16, so
//! this module calls libtorch's own `at::autocast::set_autocast_dtype(DeviceType, ScalarType)`
//! through its (Itanium-mangled) C++ symbol. Both arguments are `int8_t`-backed enums, passed
//! as plain integers by the C++ ABI, so an `extern "C"` declaration with `i8`s calls it
//! correctly. The symbol is exported by libtorch_cpu, which torch-sys already links.

use std::sync::Once;

// c10::DeviceType::CUDA and c10::ScalarType::BFloat16 (c10/core/DeviceType.h, ScalarType.h).
const DEVICE_CUDA: i8 = 1;
const SCALAR_BFLOAT16: i8 = 15;

extern "C" {
    #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
    fn at_autocast_set_autocast_dtype(device: i8, dtype: i8);
}

static SET_BF16: Once = Once::new();

/// Runs `f` under CUDA autocast with bf16 as the reduced type when `enabled` (and CUDA is
/// present); plainly otherwise.
pub fn with_bf16<T>(enabled: bool, f: impl FnOnce() -> T) -> T {
    if !enabled || !tch::Cuda::is_available() {
        return f();
    }
    // SAFETY: a plain setter of a process-wide libtorch setting, with valid enum values.
    SET_BF16.call_once(|| unsafe { at_autocast_set_autocast_dtype(DEVICE_CUDA, SCALAR_BFLOAT16) });
    tch::autocast(true, f)
}
