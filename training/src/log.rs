//! JSON-lines logs in the run directory: `valid.jsonl` (every validation) and `train.jsonl`
//! (training loss every `log_every` updates).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkpoint::{write_atomic, CheckpointError};

/// File name of the validation log.
pub const VALID_LOG: &str = "valid.jsonl";
/// File name of the training log.
pub const TRAIN_LOG: &str = "train.jsonl";

/// One validation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidRecord {
    pub step: u64,
    pub epoch: u64,
    /// Label-smoothed loss per target token.
    pub loss: f64,
    /// Negative log-likelihood per target token.
    pub nll_loss: f64,
    /// `exp(nll_loss)`.
    pub ppl: f64,
    /// Corpus BLEU of greedy translations (absent when BLEU is off).
    pub bleu: Option<f64>,
    pub lr: f64,
    /// Training wall time so far, seconds.
    pub elapsed_secs: f64,
    /// Training throughput since the previous validation, target tokens per second.
    pub tokens_per_sec: f64,
    /// Whether this validation is the best so far.
    pub best: bool,
    /// Each validation set's scores, in the config's order; the fields above are the scores
    /// that rank validations (`training.best_on`: one set's, or their mean). Logs written
    /// before runs had several sets lack it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<SetScores>,
    /// What the ranking scores are, with several sets: `mean`, or the name of the set
    /// (`training.best_on`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranked_on: Option<String>,
}

impl ValidRecord {
    /// `loss L ppl P BLEU B` for one set; with several, each set's as `NAME loss ...`, then
    /// the ranking scores, as `mean loss ...` or (ranked on one set) `NAME loss ...` again.
    pub fn summary(&self) -> String {
        let scores = |loss: f64, ppl: f64, bleu: Option<f64>| {
            format!(
                "loss {loss:.4} ppl {ppl:.2}{}",
                bleu.map(|b| format!(" BLEU {b:.2}")).unwrap_or_default()
            )
        };
        let ranking = scores(self.loss, self.ppl, self.bleu);
        if self.sets.len() < 2 {
            return ranking;
        }
        let mut parts: Vec<String> = self
            .sets
            .iter()
            .map(|s| format!("{} {}", s.name, scores(s.loss, s.ppl, s.bleu)))
            .collect();
        let ranked_on = self.ranked_on.as_deref().unwrap_or("ranking");
        parts.push(format!("{ranked_on} {ranking}"));
        parts.join("; ")
    }
}

/// One validation set's scores at one validation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetScores {
    /// The set's name (`data.valid`'s key).
    pub name: String,
    /// Label-smoothed loss per target token.
    pub loss: f64,
    /// Negative log-likelihood per target token.
    pub nll_loss: f64,
    /// `exp(nll_loss)`.
    pub ppl: f64,
    /// Corpus BLEU of greedy translations (absent when BLEU is off).
    pub bleu: Option<f64>,
}

impl SetScores {
    /// The unweighted mean over `sets` (each set counts once, whatever its size, so a small
    /// in-domain set is not drowned by a large one): loss, NLL and BLEU averaged, perplexity
    /// `exp` of the mean NLL, BLEU only when every set has one. Named `mean`.
    pub fn mean(sets: &[SetScores]) -> SetScores {
        let n = sets.len().max(1) as f64;
        let nll_loss = sets.iter().map(|s| s.nll_loss).sum::<f64>() / n;
        let bleu = sets
            .iter()
            .map(|s| s.bleu)
            .collect::<Option<Vec<f64>>>()
            .filter(|b| !b.is_empty())
            .map(|b| b.iter().sum::<f64>() / n);
        SetScores {
            name: "mean".into(),
            loss: sets.iter().map(|s| s.loss).sum::<f64>() / n,
            nll_loss,
            ppl: nll_loss.exp(),
            bleu,
        }
    }
}

/// Training loss over the last `log_every` updates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainRecord {
    pub step: u64,
    pub epoch: u64,
    /// Label-smoothed loss per target token, over the interval.
    pub loss: f64,
    /// Negative log-likelihood per target token, over the interval.
    pub nll_loss: f64,
    pub ppl: f64,
    pub lr: f64,
    /// Gradient norm (before clipping) of the last update.
    pub grad_norm: f64,
    pub tokens_per_sec: f64,
    pub elapsed_secs: f64,
}

/// Errors from the JSON-lines logs.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a log record: {message}")]
    Parse {
        path: String,
        line: usize,
        message: String,
    },
    #[error(transparent)]
    Atomic(#[from] CheckpointError),
}

/// An append-only JSON-lines file; each record is flushed as written.
pub struct JsonLog {
    path: PathBuf,
    file: File,
}

impl JsonLog {
    /// Opens `path` for appending (creating it).
    pub fn open(path: &Path) -> Result<Self, LogError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| LogError::Io {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one record as a line.
    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<(), LogError> {
        let mut line = serde_json::to_string(record).map_err(|e| LogError::Io {
            path: self.path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|source| LogError::Io {
                path: self.path.display().to_string(),
                source,
            })
    }
}

/// Reads every record of a JSON-lines log.
pub fn read_log<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, LogError> {
    let f = File::open(path).map_err(|source| LogError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|source| LogError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(|e| LogError::Parse {
            path: path.display().to_string(),
            line: i + 1,
            message: e.to_string(),
        })?);
    }
    Ok(out)
}

/// Drops the lines of a log whose `step` is beyond `step` (records written after the checkpoint
/// a run resumes from; the resumed run writes them again). A torn last line (a kill in the middle
/// of a write) is dropped too. Rewrites the file atomically; a missing file is fine.
pub fn truncate_after(path: &Path, step: u64) -> Result<(), LogError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(LogError::Io {
                path: path.display().to_string(),
                source,
            })
        }
    };
    let mut kept = String::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v.get("step")
            .and_then(|s| s.as_u64())
            .is_some_and(|s| s <= step)
        {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    write_atomic(path, kept.as_bytes())?;
    Ok(())
}
