//! Crash-safe checkpoints in a run directory.
//!
//! Layout:
//!
//! ```text
//! <run>/checkpoints/step-00001200/     one complete checkpoint
//!        model/                          the model bundle (weights, config, vocab, metadata)
//!        optimizer.safetensors           Adam moments and step
//!        trainer_state.json              step, epoch, batch position, schedule, best scores...
//! <run>/last -> checkpoints/step-...    symlink to the newest checkpoint
//! <run>/best -> checkpoints/step-...    symlink to the best one by validation BLEU (or loss)
//! ```
//!
//! A checkpoint is written into `checkpoints/.tmp-*`, every file and folder fsynced, then
//! renamed to its final name (atomic), the parent fsynced; only then are `last`/`best`
//! repointed, each by renaming a fresh symlink over the old one (atomic too). A `kill -9` at
//! any instant thus leaves `last` pointing at a complete checkpoint: either the old one or the
//! new one. Leftover temporaries and unreferenced checkpoints are swept on the next save.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::schedule::ScheduleState;

/// Name of the folder holding the model bundle inside a checkpoint.
pub const MODEL_DIR: &str = "model";
/// Optimizer state file inside a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Trainer state file inside a checkpoint.
pub const STATE_FILE: &str = "trainer_state.json";
/// Version of [`TrainerState`]'s format.
pub const STATE_VERSION: u32 = 1;

/// Errors from writing or reading checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: invalid trainer state: {message}")]
    BadState { path: String, message: String },
    #[error("{path}: trainer state version {found}, this build reads version {STATE_VERSION}")]
    Version { path: String, found: u32 },
    #[error("{0}")]
    Write(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Everything besides weights and optimizer moments needed to continue a run exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub version: u32,
    /// Updates applied so far.
    pub step: u64,
    /// Current epoch (0-based).
    pub epoch: u64,
    /// Index, within `epoch`'s batch order, of the next batch to train on.
    pub batch_in_epoch: u64,
    /// The run's seed; batch order and dropout masks derive from it (see [`crate::trainer`]).
    pub seed: u64,
    pub schedule: ScheduleState,
    /// Best validation BLEU so far and its step.
    pub best_bleu: Option<f64>,
    /// Best validation loss so far.
    pub best_loss: Option<f64>,
    pub best_step: Option<u64>,
    /// Validations since the best one (early stopping).
    pub validations_since_best: u32,
    /// Non-finite losses in a row (carried so the limit holds across a resume).
    pub consecutive_nonfinite: u32,
    /// Batches skipped for a non-finite loss, in total.
    pub skipped_batches: u64,
    /// Target tokens trained on.
    pub tokens_seen: u64,
    /// Training wall time so far, in seconds (across resumes).
    pub elapsed_secs: f64,
    /// Batches per update over all processes (processes × `training.update_freq`): a resume
    /// must keep it, or its updates would not be the run's. States written before it existed
    /// had one batch per update.
    #[serde(default = "one_batch_per_step")]
    pub batches_per_step: u64,
}

fn one_batch_per_step() -> u64 {
    1
}

impl TrainerState {
    /// State of a fresh run.
    pub fn new(seed: u64, schedule: ScheduleState) -> Self {
        Self {
            version: STATE_VERSION,
            step: 0,
            epoch: 0,
            batch_in_epoch: 0,
            seed,
            schedule,
            best_bleu: None,
            best_loss: None,
            best_step: None,
            validations_since_best: 0,
            consecutive_nonfinite: 0,
            skipped_batches: 0,
            tokens_seen: 0,
            elapsed_secs: 0.0,
            batches_per_step: 1,
        }
    }
}

/// What a checkpoint writer must supply: the files of the checkpoint, written into a folder.
pub trait CheckpointContents {
    /// Writes the model bundle into `dir` (which exists and is empty).
    fn write_model(&self, dir: &Path) -> Result<(), String>;
    /// Writes the optimizer state to `path`.
    fn write_optimizer(&self, path: &Path) -> Result<(), String>;
}

/// A run directory and its checkpoints.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Uses (and creates when missing) `root`.
    pub fn create(root: &Path) -> Result<Self, CheckpointError> {
        fs::create_dir_all(root.join("checkpoints")).map_err(io_err(root))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The run directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The `checkpoints/` folder.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// Folder of the checkpoint taken after `step` updates.
    pub fn step_dir(&self, step: u64) -> PathBuf {
        self.checkpoints().join(format!("step-{step:08}"))
    }

    /// The checkpoint `last` points to, if any.
    pub fn last(&self) -> Option<PathBuf> {
        self.resolve("last")
    }

    /// The checkpoint `best` points to, if any.
    pub fn best(&self) -> Option<PathBuf> {
        self.resolve("best")
    }

    fn resolve(&self, name: &str) -> Option<PathBuf> {
        let link = self.root.join(name);
        let target = fs::read_link(&link).ok()?;
        let full = self.root.join(target);
        full.is_dir().then_some(full)
    }

    /// Writes a checkpoint for `state` and points `last` (and `best` when `is_best`) at it.
    /// Checkpoints other than `last`, `best` and those whose step is a multiple of
    /// `keep_every` (when non-zero) are then deleted.
    pub fn save(
        &self,
        state: &TrainerState,
        contents: &dyn CheckpointContents,
        is_best: bool,
        keep_every: u64,
    ) -> Result<PathBuf, CheckpointError> {
        let ckpts = self.checkpoints();
        let tmp = ckpts.join(format!(
            ".tmp-step-{:08}-{}",
            state.step,
            std::process::id()
        ));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
        }
        fs::create_dir_all(tmp.join(MODEL_DIR)).map_err(io_err(&tmp))?;
        contents.write_model(&tmp.join(MODEL_DIR)).map_err(|e| {
            CheckpointError::Write(format!("{}: {e}", tmp.join(MODEL_DIR).display()))
        })?;
        let opt = tmp.join(OPTIMIZER_FILE);
        contents
            .write_optimizer(&opt)
            .map_err(|e| CheckpointError::Write(format!("{}: {e}", opt.display())))?;
        let state_path = tmp.join(STATE_FILE);
        let json = serde_json::to_vec_pretty(state)
            .map_err(|e| CheckpointError::Write(format!("{}: {e}", state_path.display())))?;
        let mut f = File::create(&state_path).map_err(io_err(&state_path))?;
        f.write_all(&json).map_err(io_err(&state_path))?;
        drop(f);
        fsync_tree(&tmp)?;

        let dest = self.step_dir(state.step);
        let linked = |p: Option<PathBuf>| p.as_deref() == Some(dest.as_path());
        if linked(self.last()) || linked(self.best()) {
            // A link already points at a checkpoint of this very step: saved before this
            // step's validation (a `save_every`/`keep_every` step, then the final validation),
            // or by a resumed run saving again before any update. Same weights, but the
            // metadata and trainer state may be newer (the validation's scores, the best BLEU
            // a resume continues from): move the files in one by one, each rename atomic, so
            // that no link ever points at a missing or half-written folder.
            replace_files(&tmp, &dest)?;
            fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
        } else {
            if dest.exists() {
                // Left by a run killed between the rename below and the `last` swap, then
                // resumed from an older checkpoint: unreferenced, and recreated exactly now.
                fs::remove_dir_all(&dest).map_err(io_err(&dest))?;
            }
            fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
        }
        fsync_dir(&ckpts)?;

        let rel = Path::new("checkpoints").join(dest.file_name().unwrap_or_default());
        self.point("last", &rel)?;
        if is_best {
            self.point("best", &rel)?;
        }
        fsync_dir(&self.root)?;
        self.sweep(keep_every)?;
        Ok(dest)
    }

    /// Atomically makes `<root>/<name>` a symlink to `target` (relative to the root).
    fn point(&self, name: &str, target: &Path) -> Result<(), CheckpointError> {
        let tmp = self
            .root
            .join(format!(".{name}.tmp-{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp).map_err(io_err(&tmp))?;
        let link = self.root.join(name);
        fs::rename(&tmp, &link).map_err(io_err(&link))?;
        Ok(())
    }

    /// The checkpoints on disk, `(step, folder)`, oldest first.
    pub fn steps(&self) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
        let ckpts = self.checkpoints();
        let mut steps: Vec<(u64, PathBuf)> = fs::read_dir(&ckpts)
            .map_err(io_err(&ckpts))?
            .flatten()
            .filter_map(|entry| Some((step_of(&entry.file_name())?, entry.path())))
            .collect();
        steps.sort();
        Ok(steps)
    }

    /// Deletes temporaries and checkpoints nobody needs.
    fn sweep(&self, keep_every: u64) -> Result<(), CheckpointError> {
        let keep: Vec<PathBuf> = [self.last(), self.best()].into_iter().flatten().collect();
        let ckpts = self.checkpoints();
        let entries = fs::read_dir(&ckpts).map_err(io_err(&ckpts))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let remove = if name.starts_with(".tmp-") || name.starts_with(".old-") {
                // Only our own temporaries can be in flight; another process's are leftovers
                // of a killed run (a run directory has one trainer at a time).
                true
            } else if let Some(step) = step_of(&entry.file_name()) {
                let kept_every_n = keep_every > 0 && step > 0 && step.is_multiple_of(keep_every);
                !keep.contains(&path) && !kept_every_n
            } else {
                false
            };
            if remove {
                fs::remove_dir_all(&path).map_err(io_err(&path))?;
            }
        }
        Ok(())
    }
}

/// Reads `trainer_state.json` of the checkpoint in `dir`.
pub fn read_state(dir: &Path) -> Result<TrainerState, CheckpointError> {
    let path = dir.join(STATE_FILE);
    let text = fs::read_to_string(&path).map_err(io_err(&path))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| CheckpointError::BadState {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
    if version != STATE_VERSION {
        return Err(CheckpointError::Version {
            path: path.display().to_string(),
            found: version,
        });
    }
    serde_json::from_value(value).map_err(|e| CheckpointError::BadState {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// fsyncs every file and folder under `root` (and `root` itself).
pub fn fsync_tree(root: &Path) -> Result<(), CheckpointError> {
    for entry in fs::read_dir(root).map_err(io_err(root))? {
        let entry = entry.map_err(io_err(root))?;
        let path = entry.path();
        let ty = entry.file_type().map_err(io_err(&path))?;
        if ty.is_dir() {
            fsync_tree(&path)?;
        } else if ty.is_file() {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io_err(&path))?;
        }
    }
    fsync_dir(root)
}

/// The step of a checkpoint folder's name (`step-00001250` → 1250).
fn step_of(name: &std::ffi::OsStr) -> Option<u64> {
    name.to_str()?.strip_prefix("step-")?.parse().ok()
}

/// Moves every file under `from` to the same place under `to` (creating folders), each by
/// an atomic rename over what is there, then fsyncs the folders of `to` it touched.
fn replace_files(from: &Path, to: &Path) -> Result<(), CheckpointError> {
    fs::create_dir_all(to).map_err(io_err(to))?;
    for entry in fs::read_dir(from).map_err(io_err(from))? {
        let entry = entry.map_err(io_err(from))?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(io_err(&path))?.is_dir() {
            replace_files(&path, &target)?;
        } else {
            fs::rename(&path, &target).map_err(io_err(&target))?;
        }
    }
    fsync_dir(to)
}

/// fsyncs a folder so that renames and creations inside it are durable.
pub fn fsync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir))
}

/// Writes `bytes` to `path` atomically (temp file in the same folder, fsync, rename, fsync).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    tmp.write_all(bytes).map_err(io_err(path))?;
    tmp.as_file().sync_all().map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| CheckpointError::Io {
        path: path.display().to_string(),
        source: e.error,
    })?;
    fsync_dir(dir)
}
