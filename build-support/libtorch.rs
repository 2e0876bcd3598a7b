//! What the build scripts of the crates with a C++ shim over libtorch (`distributed`,
//! `quantized`) share: finding the libtorch that tch links (`LIBTORCH`, set by
//! .cargo/config.toml; see scripts/setup-libtorch.sh), compiling a shim against its headers
//! with the matching C++ ABI, and linking libtorch_cpu with libtorch's folder baked in as an
//! rpath. Each build script includes this file:
//! `#[path = "../build-support/libtorch.rs"] mod libtorch;`.

use std::path::{Path, PathBuf};

/// The libtorch folder named by `LIBTORCH`; panics, saying how to get one, when it is unset.
/// Asks cargo to rerun the build script when `LIBTORCH` or `LIBTORCH_CXX11_ABI` changes.
pub fn root() -> PathBuf {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    PathBuf::from(std::env::var("LIBTORCH").unwrap_or_else(|_| {
        panic!(
            "LIBTORCH is not set: it names the libtorch to build against \
             (.cargo/config.toml sets it to .venv/site-packages/torch; run scripts/setup-libtorch.sh)"
        )
    }))
}

/// The value of `_GLIBCXX_USE_CXX11_ABI` to compile with: the C++ ABI must match libtorch's,
/// and torch-sys reads the same variable, `LIBTORCH_CXX11_ABI` (default 1, what the PyPI
/// wheels use since torch 2.7).
fn cxx11_abi() -> String {
    std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned())
}

/// A C++17 build of the shim `file` against the headers in `include` (libtorch's), with the
/// shared FFI guard (build-support/ffi_guard.h) on the include path, and rerun when either
/// changes.
pub fn shim_build(file: &str, include: &Path) -> cc::Build {
    let support = Path::new(env!("CARGO_MANIFEST_DIR")).join("../build-support");
    println!("cargo:rerun-if-changed={file}");
    println!(
        "cargo:rerun-if-changed={}",
        support.join("ffi_guard.h").display()
    );
    let abi = cxx11_abi();
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .file(file)
        .include(include)
        .include(support)
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        // libtorch's headers are not warning-clean; our files are small enough to read.
        .warnings(false);
    build
}

/// Links libtorch_cpu and c10 from `lib`, baking `lib` in as an rpath.
pub fn link(lib: &Path) {
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
