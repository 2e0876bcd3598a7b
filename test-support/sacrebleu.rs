//! The sacreBLEU reference and the corpora for the tests of `evaluation` and `nmt-eval`; each
//! includes this file: `#[path = "../../test-support/sacrebleu.rs"] mod support;`.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The sacreBLEU release this crate reproduces and the tests compare against.
pub const SACREBLEU_PIN: &str = "2.6.0";

#[path = "pypi.rs"]
mod pypi;

/// The shared real data folder (beside the repository).
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data")
}

/// Makes sure the pinned sacreBLEU is importable from the project venv, installing
/// it with pip when it is not (a no-op, and fast, when it already is). Panics when
/// that is impossible: the parity tests must never pass without comparing.
pub fn sacrebleu_python() -> &'static Path {
    static READY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let check =
            format!("import sacrebleu, sys; sys.exit(sacrebleu.__version__ != '{SACREBLEU_PIN}')");
        pypi::pinned("sacrebleu", SACREBLEU_PIN, &check)
    });
    match ready {
        Ok(p) => p,
        Err(e) => panic!("sacreBLEU reference implementation unavailable: {e}"),
    }
}

/// The `sacrebleu` command of the venv (after [`sacrebleu_python`] made sure it exists).
pub fn sacrebleu_cli() -> PathBuf {
    sacrebleu_python().with_file_name("sacrebleu")
}
