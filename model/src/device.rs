//! `--device auto|cpu|cuda[:N]`, shared by every binary that computes.

use std::fmt;
use std::str::FromStr;

/// What the user asked for on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA device 0 when libtorch sees one, the CPU otherwise.
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

/// A `--device` value that is not `auto`, `cpu`, `cuda` or `cuda:N`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid device {0:?}: expected auto, cpu, cuda or cuda:N")]
pub struct ParseDeviceError(String);

/// CUDA was asked for but is not there.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    #[error("--device cuda:{asked}: CUDA is not available on this machine (libtorch sees no GPU)")]
    NoCuda { asked: usize },
    #[error("--device cuda:{asked}: cannot load libtorch's CUDA backend ({reason}); this build or image is CPU-only")]
    NoCudaBackend { asked: usize, reason: String },
    #[error("--device cuda:{asked}: only {count} CUDA device(s) present (cuda:0..cuda:{})", count - 1)]
    NoSuchGpu { asked: usize, count: usize },
}

impl FromStr for DeviceChoice {
    type Err = ParseDeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| ParseDeviceError(s.to_string())),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => write!(f, "auto"),
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The file libtorch keeps its CUDA kernels in.
pub const CUDA_BACKEND_LIBRARY: &str = "libtorch_cuda.so";

/// Loads libtorch's CUDA backend into the process, once; later calls return
/// the first call's result. `Err` says why it is not there (a CPU-only
/// libtorch, as in the CPU Docker image, or missing CUDA libraries).
///
/// Why at run time: libtorch_cuda.so registers the CUDA kernels when it is
/// loaded, but no code of ours calls into it, so the linker (`--as-needed`)
/// drops it from the binaries and libtorch would see no GPU at all. Loading
/// it here instead of linking it with `--no-as-needed` keeps one binary for
/// both cases: the CPU image ships without the gigabytes of CUDA libraries.
/// The binaries' rpath (each crate's build.rs) names libtorch's folder, and
/// dlopen searches the calling executable's run path, so no
/// LD_LIBRARY_PATH is needed.
pub fn load_cuda_backend() -> Result<(), String> {
    static LOADED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_LAZY};
            // SAFETY: loading libtorch_cuda runs its static initialisers, which
            // only register CUDA kernels with the libtorch already loaded.
            match unsafe { Library::open(Some(CUDA_BACKEND_LIBRARY), RTLD_LAZY | RTLD_GLOBAL) } {
                Ok(library) => {
                    // Kept for the life of the process: the registered kernels
                    // point into it.
                    std::mem::forget(library);
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            }
        })
        .clone()
}

impl DeviceChoice {
    /// Resolves the choice against the GPUs libtorch can see, loading
    /// libtorch's CUDA backend first unless the choice is `cpu`.
    pub fn resolve(self) -> Result<tch::Device, DeviceError> {
        if self == Self::Cpu {
            return Ok(tch::Device::Cpu);
        }
        if let (Err(reason), Self::Cuda(asked)) = (load_cuda_backend(), self) {
            return Err(DeviceError::NoCudaBackend { asked, reason });
        }
        self.resolve_with(tch::Cuda::device_count().max(0) as usize)
    }

    /// Resolution given a known GPU count (separate so it can be tested on CPU-only machines).
    pub fn resolve_with(self, cuda_count: usize) -> Result<tch::Device, DeviceError> {
        match self {
            Self::Auto if cuda_count > 0 => Ok(tch::Device::Cuda(0)),
            Self::Auto | Self::Cpu => Ok(tch::Device::Cpu),
            Self::Cuda(asked) if cuda_count == 0 => Err(DeviceError::NoCuda { asked }),
            Self::Cuda(asked) if asked >= cuda_count => Err(DeviceError::NoSuchGpu {
                asked,
                count: cuda_count,
            }),
            Self::Cuda(n) => Ok(tch::Device::Cuda(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form() {
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert_eq!("CPU".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceChoice::Cuda(3)));
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
        assert!("tpu".parse::<DeviceChoice>().is_err());
        assert!("cuda:-1".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn resolves_against_the_gpu_count() {
        assert_eq!(DeviceChoice::Auto.resolve_with(0), Ok(tch::Device::Cpu));
        assert_eq!(DeviceChoice::Auto.resolve_with(2), Ok(tch::Device::Cuda(0)));
        assert_eq!(
            DeviceChoice::Cuda(1).resolve_with(2),
            Ok(tch::Device::Cuda(1))
        );
        assert_eq!(
            DeviceChoice::Cuda(0).resolve_with(0),
            Err(DeviceError::NoCuda { asked: 0 })
        );
        assert_eq!(
            DeviceChoice::Cuda(2).resolve_with(2),
            Err(DeviceError::NoSuchGpu { asked: 2, count: 2 })
        );
    }

    /// The CUDA wheel of torch (what scripts/setup-libtorch.sh installs) has
    /// libtorch_cuda.so beside libtorch_cpu.so; loading it must work through
    /// the rpath alone, and on a machine without a GPU `auto` still means CPU.
    #[test]
    fn loads_the_cuda_backend_when_libtorch_has_one() {
        // The libtorch this test was built against (.cargo/config.toml).
        let libtorch = env!("LIBTORCH");
        let present = std::path::Path::new(libtorch)
            .join("lib")
            .join(CUDA_BACKEND_LIBRARY)
            .exists();
        assert_eq!(
            load_cuda_backend().is_ok(),
            present,
            "{:?}",
            load_cuda_backend()
        );
        let gpus = tch::Cuda::device_count();
        let auto = DeviceChoice::Auto.resolve().expect("auto always resolves");
        assert_eq!(auto.is_cuda(), gpus > 0);
        assert_eq!(DeviceChoice::Cpu.resolve(), Ok(tch::Device::Cpu));
    }

    #[test]
    fn display_round_trips() {
        for d in [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Cuda(5)] {
            assert_eq!(d.to_string().parse(), Ok(d));
        }
    }
}
