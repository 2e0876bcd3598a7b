//! Atomic replacement of a whole directory, so that no instant of a crash or
//! `kill -9` leaves a half-written bundle or checkpoint.
//!
//! The new content is written into a sibling temporary directory, every file
//! and the directory are fsynced, and the temporary directory then takes the
//! final name: by `rename(2)` when the name is free, or by
//! `renameat2(RENAME_EXCHANGE)` (an atomic swap) when an older version is there,
//! after which the old version is removed. A reader always sees the old or the
//! new directory, whole.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::ModelError;

/// Writes `dir` atomically: `fill` writes the files into the temporary directory it is given.
pub fn write_dir_atomically<E>(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<ModelError>,
{
    let name = dir
        .file_name()
        .ok_or_else(|| ModelError::bundle(dir, "not a directory name"))?
        .to_string_lossy()
        .into_owned();
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|e| ModelError::io(&parent, e))?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| ModelError::io(&tmp, e))?;
    }
    fs::create_dir(&tmp).map_err(|e| ModelError::io(&tmp, e))?;
    let result = fill(&tmp)
        .and_then(|()| sync_tree(&tmp).map_err(E::from))
        .and_then(|()| swap_into_place(&tmp, dir).map_err(E::from));
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

fn sync_tree(dir: &Path) -> Result<(), ModelError> {
    for entry in fs::read_dir(dir).map_err(|e| ModelError::io(dir, e))? {
        let path = entry.map_err(|e| ModelError::io(dir, e))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| ModelError::io(&path, e))?;
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), ModelError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| ModelError::io(dir, e))
}

fn swap_into_place(tmp: &Path, dir: &Path) -> Result<(), ModelError> {
    let parent = tmp.parent().unwrap_or(Path::new("."));
    if dir.exists() {
        nix::fcntl::renameat2(
            nix::fcntl::AT_FDCWD,
            tmp,
            nix::fcntl::AT_FDCWD,
            dir,
            nix::fcntl::RenameFlags::RENAME_EXCHANGE,
        )
        .map_err(|e| ModelError::io(dir, std::io::Error::from(e)))?;
        // `tmp` now holds the previous version.
        sync_dir(parent)?;
        fs::remove_dir_all(tmp).map_err(|e| ModelError::io(tmp, e))?;
    } else {
        fs::rename(tmp, dir).map_err(|e| ModelError::io(dir, e))?;
    }
    sync_dir(parent)
}
