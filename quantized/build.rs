//! Compiles the fbgemm shim (csrc/q8_shim.cpp) against the headers of the libtorch that tch
//! links (`LIBTORCH`, set by .cargo/config.toml; see scripts/setup-libtorch.sh), links it to
//! libtorch_cpu (which holds the fbgemm kernels) and bakes libtorch's folder in as an rpath.
#[path = "../build-support/libtorch.rs"]
mod libtorch;

fn main() {
    let libtorch = libtorch::root();
    let include = libtorch.join("include");
    let fbgemm = include.join("fbgemm/Fbgemm.h");
    if !fbgemm.is_file() {
        panic!(
            "{} not found: this libtorch ships no fbgemm headers (the PyPI torch wheel for \
             x86-64 has them; run scripts/setup-libtorch.sh)",
            fbgemm.display()
        );
    }
    libtorch::shim_build("csrc/q8_shim.cpp", &include).compile("nmt_q8");
    libtorch::link(&libtorch.join("lib"));
}
