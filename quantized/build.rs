//! Compiles the fbgemm shim (csrc/q8_shim.cpp) against the headers of the libtorch that tch
//! links (`LIBTORCH`, set by .cargo/config.toml; see scripts/setup-libtorch.sh), links it to
//! libtorch_cpu (which holds the fbgemm kernels) and bakes libtorch's folder in as an rpath.
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-changed=csrc/q8_shim.cpp");
    let libtorch = PathBuf::from(std::env::var("LIBTORCH").unwrap_or_else(|_| {
        panic!(
            "LIBTORCH is not set: it names the libtorch to build against \
             (.cargo/config.toml sets it to .venv/site-packages/torch; run scripts/setup-libtorch.sh)"
        )
    }));
    let include = libtorch.join("include");
    let op = include.join("ATen/ops/fbgemm_linear_int8_weight_fp32_activation.h");
    if !op.is_file() {
        panic!(
            "{} not found: this libtorch has no fbgemm int8 linear op (the PyPI torch wheel \
             has it; run scripts/setup-libtorch.sh)",
            op.display()
        );
    }
    // The C++ ABI must match libtorch's: torch-sys reads the same variable (default 1, what
    // the PyPI wheels use since torch 2.7).
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("csrc/q8_shim.cpp")
        .include(&include)
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        // libtorch's headers are not warning-clean; our file is small enough to read.
        .warnings(false)
        .compile("nmt_q8");
    link_libtorch(&libtorch.join("lib"));
}

fn link_libtorch(lib: &Path) {
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
