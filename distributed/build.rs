//! Compiles the c10d shim (csrc/c10d_shim.cpp) against the headers of the libtorch that tch
//! links (`LIBTORCH`, set by .cargo/config.toml; see scripts/setup-libtorch.sh), links it to
//! libtorch_cpu (which holds c10d, TCPStore and the Gloo process group) and bakes libtorch's
//! folder in as an rpath.
//!
//! The PyPI wheel ships c10d's headers but not Gloo's, which ProcessGroupGloo.hpp includes;
//! they come from Debian's libgloo-dev (scripts/setup-system.sh installs it). Only the headers
//! are used: the Gloo code that runs is the one inside libtorch_cpu. Our code touches Gloo
//! types only through pointers (shared_ptr<gloo::transport::Device>, the Options object
//! libtorch builds), so a header version other than libtorch's own does not change any layout
//! we depend on.
//!
//! The NCCL backend (csrc/c10d_nccl.cpp) is a shared library of its own,
//! `OUT_DIR/libnmt_c10d_nccl.so`, which src/group.rs loads only when a job asks for NCCL, so
//! that no binary needs libtorch's CUDA libraries to start. It is built when this libtorch is
//! a CUDA build (lib/libtorch_cuda.so) and
//! CUDA's and NCCL's headers are at hand: the PyPI wheels' `nvidia/cu*/include` (with crt/
//! and nv/ from the nvidia-cuda-crt and nvidia-cuda-cccl wheels, which
//! scripts/setup-libtorch.sh installs) and
//! `nvidia/nccl/include` beside torch/, or `CUDA_INCLUDE_DIR` and `NCCL_INCLUDE_DIR`.
//! `NMT_NCCL=0` builds without it, `NMT_NCCL=1` fails the build when it cannot be built.
#[path = "../build-support/libtorch.rs"]
mod libtorch;

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=GLOO_INCLUDE_DIR");
    for var in ["NMT_NCCL", "CUDA_INCLUDE_DIR", "NCCL_INCLUDE_DIR"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let libtorch = libtorch::root();
    let include = libtorch.join("include");
    let c10d = include.join("torch/csrc/distributed/c10d/ProcessGroupGloo.hpp");
    if !c10d.is_file() {
        panic!(
            "{} not found: this libtorch has no c10d headers (the PyPI torch wheel has them; \
             run scripts/setup-libtorch.sh)",
            c10d.display()
        );
    }
    let gloo_include = std::env::var("GLOO_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/usr/include"));
    if !gloo_include.join("gloo/algorithm.h").is_file() {
        panic!(
            "{}: Gloo's headers are missing (ProcessGroupGloo.hpp needs them): install Debian's \
             libgloo-dev (scripts/setup-system.sh does), or set GLOO_INCLUDE_DIR to a folder \
             holding gloo/",
            gloo_include.join("gloo").display()
        );
    }
    libtorch::shim_build("csrc/c10d_shim.cpp", &include)
        .include(include.join("torch/csrc/api/include"))
        .include(&gloo_include)
        .define("USE_C10D_GLOO", None)
        .flag_if_supported("-Wno-unused-parameter")
        .compile("nmt_c10d");
    libtorch::link(&libtorch.join("lib"));
    if let Some(headers) = nccl_headers(&libtorch) {
        let library = build_nccl_library(&libtorch, &headers);
        // src/group.rs looks for it there (after NMT_NCCL_LIBRARY and the executable's folder).
        println!(
            "cargo:rustc-env=NMT_NCCL_LIBRARY_BUILT={}",
            library.display()
        );
    }
}

/// Compiles csrc/c10d_nccl.cpp into `OUT_DIR/libnmt_c10d_nccl.so`, linked to libtorch_cuda
/// (where ProcessGroupNCCL lives) with libtorch's folder as its rpath. `cc` builds static
/// archives only, so the compiler of the same configuration as the other shims (flags,
/// include path with the FFI guard) is run by hand with `-shared`.
fn build_nccl_library(libtorch: &Path, headers: &[PathBuf]) -> PathBuf {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let library = out.join("libnmt_c10d_nccl.so");
    let include = libtorch.join("include");
    let lib = libtorch.join("lib");
    let mut cmd = libtorch::shim_build("csrc/c10d_nccl.cpp", &include)
        .include(include.join("torch/csrc/api/include"))
        .includes(headers)
        .define("USE_C10D_NCCL", None)
        .get_compiler()
        .to_command();
    cmd.args(["-shared", "-fPIC"]);
    cmd.arg("csrc/c10d_nccl.cpp")
        .arg("-o")
        .arg(&library)
        .arg(format!("-L{}", lib.display()))
        .args(["-ltorch_cuda", "-lc10_cuda", "-ltorch_cpu", "-lc10"])
        .arg(format!("-Wl,-rpath,{}", lib.display()));
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running the C++ compiler for the NCCL library: {e}"));
    if !status.success() {
        panic!("compiling csrc/c10d_nccl.cpp failed ({status}); NMT_NCCL=0 builds without NCCL");
    }
    library
}

/// The include folders the NCCL backend needs (CUDA's with crt/, NCCL's), or None when it is
/// not to be built (see the module docs).
fn nccl_headers(libtorch: &Path) -> Option<Vec<PathBuf>> {
    let wanted = std::env::var("NMT_NCCL").ok();
    if wanted.as_deref() == Some("0") {
        return None;
    }
    let site = libtorch.parent().unwrap_or(libtorch).join("nvidia");
    let cuda = std::env::var("CUDA_INCLUDE_DIR")
        .map(PathBuf::from)
        .ok()
        .or_else(|| {
            // nvidia/cu13/include (CUDA 13 wheels); the newest when several are installed.
            let mut found: Vec<PathBuf> = std::fs::read_dir(&site)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().join("include"))
                .filter(|p| p.join("cuda_runtime_api.h").is_file())
                .collect();
            found.sort();
            found.pop()
        });
    let nccl = std::env::var("NCCL_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| site.join("nccl/include"));
    let mut missing = Vec::new();
    if !libtorch.join("lib/libtorch_cuda.so").is_file() {
        missing.push(format!(
            "{} (a CPU-only libtorch)",
            libtorch.join("lib/libtorch_cuda.so").display()
        ));
    }
    match &cuda {
        Some(dir) => {
            // Headers the runtime wheel leaves to other wheels, which setup-libtorch installs.
            for (header, wheel) in [
                ("crt/host_config.h", "nvidia-cuda-crt"),
                ("nv/target", "nvidia-cuda-cccl"),
            ] {
                if !dir.join(header).exists() {
                    missing.push(format!(
                        "{} (the {wheel} wheel; scripts/setup-libtorch.sh installs it)",
                        dir.join(header).display()
                    ));
                }
            }
        }
        None => missing.push(format!(
            "CUDA's headers under {}/cu*/include",
            site.display()
        )),
    }
    if !nccl.join("nccl.h").is_file() {
        missing.push(nccl.join("nccl.h").display().to_string());
    }
    if missing.is_empty() {
        return cuda.map(|c| vec![c, nccl]);
    }
    if wanted.as_deref() == Some("1") {
        panic!(
            "NMT_NCCL=1 but the NCCL backend cannot be built: missing {}",
            missing.join(", ")
        );
    }
    println!(
        "cargo:warning=building without the NCCL backend (training.dist_backend = \"nccl\" will be an error): missing {}",
        missing.join(", ")
    );
    None
}
