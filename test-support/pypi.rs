//! A pinned PyPI package in the project's virtual environment, for tests that compare
//! against a reference implementation or drive a real client (sacreBLEU in `evaluation`,
//! libretranslatepy in `serving`). Test crates of different packages share no module, so
//! each includes this file: `#[path = "../../test-support/pypi.rs"] mod pypi;`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The project's virtual environment's Python (`.venv`, made by `make test`'s setup).
pub fn venv_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python")
}

/// The venv's Python once `package==pin` is importable: `check` (Python source) must exit
/// 0 when the right release is installed; otherwise pip installs it (fast and a no-op when
/// it already is). The error says why that was impossible; callers panic with it, so a test
/// never passes without the package.
pub fn pinned(package: &str, pin: &str, check: &str) -> Result<PathBuf, String> {
    let python = venv_python();
    if !python.exists() {
        return Err(format!(
            "{} is missing (run `make test`: its setup step creates the venv)",
            python.display()
        ));
    }
    let installed = Command::new(&python)
        .args(["-c", check])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?
        .status
        .success();
    if !installed {
        let out = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(format!("{package}=={pin}"))
            .output()
            .map_err(|e| format!("cannot run pip: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "pip install {package}=={pin} failed (is PyPI reachable?):\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(python)
}
