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
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-env-changed=GLOO_INCLUDE_DIR");
    println!("cargo:rerun-if-changed=csrc/c10d_shim.cpp");
    let libtorch = PathBuf::from(std::env::var("LIBTORCH").unwrap_or_else(|_| {
        panic!(
            "LIBTORCH is not set: it names the libtorch to build against \
             (.cargo/config.toml sets it to .venv/site-packages/torch; run scripts/setup-libtorch.sh)"
        )
    }));
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
    // The C++ ABI must match libtorch's: torch-sys reads the same variable (default 1, what
    // the PyPI wheels use since torch 2.7).
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("csrc/c10d_shim.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .include(&gloo_include)
        .define("USE_C10D_GLOO", None)
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        // libtorch's headers are not warning-clean; our file is small enough to read.
        .warnings(false)
        .flag_if_supported("-Wno-unused-parameter")
        .compile("nmt_c10d");
    link_libtorch(&libtorch.join("lib"));
}

fn link_libtorch(lib: &Path) {
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
