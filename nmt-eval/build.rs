//! Bakes libtorch's library folder into this crate's binaries and test
//! executables as an rpath, so they run without LD_LIBRARY_PATH.
//! `LIBTORCH` is set by `.cargo/config.toml` (see scripts/setup-libtorch.sh).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(libtorch) = std::env::var("LIBTORCH") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{libtorch}/lib");
    }
}
