//! Fine-tuning: a run that starts from a trained bundle's weights (`training.init_from`,
//! `nmt-train --init-from BUNDLE`), as OpenNMT-py's `--train_from` with its optimizer reset
//! or fairseq's `--restore-file` with `--reset-optimizer`.
//!
//! The architecture and the vocabulary come from the bundle; the data, the optimizer, the
//! schedule and the step start fresh. The config may still set `[model]`'s `dropout` and
//! `executor` (how the model trains, not what its weights mean) and anything in `[data]` and
//! `[training]`; a `[model]` or `[vocab]` key it sets to something else than the bundle has,
//! or other languages, is refused with one error naming each such key. So is a compressed,
//! low-rank or int8 bundle (its weights are not the float ones training updates).
//!
//! The run directory gets the bundle's vocabulary in `vocab/` (as if the run had trained it,
//! so `--resume` needs nothing outside the run) and `parent.json`, the parent's path,
//! fingerprint and step, which every bundle the run writes records as `parent` in its
//! `metadata.json`.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use model::bundle::{self, BundleConfig};

use crate::config::{Config, VocabMode};

/// The file in a run directory that names the run's parent bundle.
pub const PARENT_FILE: &str = "parent.json";

/// `[model]` keys a fine-tuning config may set to other values than the bundle's.
pub const FREE_MODEL_KEYS: &[&str] = &["dropout", "executor"];

/// Errors of starting from a bundle.
#[derive(Debug, thiserror::Error)]
pub enum InitFromError {
    #[error("training.init_from: {0}")]
    Bundle(String),
    #[error(
        "training.init_from = {bundle}: the config disagrees with the bundle, whose \
         architecture, vocabulary and languages a fine-tuning run takes:\n{}",
        .keys.iter().map(|k| format!("  {}: {}", k.key, k.why)).collect::<Vec<_>>().join("\n")
    )]
    Disagrees {
        bundle: String,
        keys: Vec<Disagreement>,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Files(#[from] model::ModelError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> InitFromError + '_ {
    move |source| InitFromError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One config key that disagrees with the bundle.
#[derive(Clone, Debug, PartialEq)]
pub struct Disagreement {
    /// The full key (`model.hidden_dim`, `vocab.size`, `data.src_lang`).
    pub key: String,
    /// What the config says and what the bundle has.
    pub why: String,
}

/// The bundle a run starts from, as `parent.json` and the bundles' metadata record it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Parent {
    /// The bundle directory, absolute.
    pub path: PathBuf,
    /// `sha256:<hex>` of its weights file (`model.safetensors`).
    pub fingerprint: String,
    /// The training step of its weights.
    pub step: u64,
}

/// The bundle at `dir`, checked as a parent: a float bundle (format 1) with full matrices.
pub fn read_parent(dir: &Path) -> Result<(Parent, BundleConfig), InitFromError> {
    let bad = |m: String| InitFromError::Bundle(format!("{}: {m}", dir.display()));
    let config = bundle::read_config(dir).map_err(|e| bad(e.to_string()))?;
    if config.model.low_rank.is_some() {
        return Err(bad(
            "a low-rank bundle (nmt-bundle compress --svd-rank) cannot be fine-tuned: start \
             from the float bundle it was made from"
                .into(),
        ));
    }
    match config.format_version {
        bundle::FORMAT_VERSION => {}
        bundle::FORMAT_VERSION_INT8 => {
            return Err(bad(
                "an int8 bundle (format 3) cannot be fine-tuned: start from the float bundle \
                 it was made from"
                    .into(),
            ))
        }
        v => {
            return Err(bad(format!(
                "a compressed bundle (format {v}: round/clip codebooks) cannot be fine-tuned: \
                 start from the float bundle it was made from"
            )))
        }
    }
    let metadata = bundle::read_metadata(dir).map_err(|e| bad(e.to_string()))?;
    let path = fs::canonicalize(dir).map_err(io_err(dir))?;
    let parent = Parent {
        fingerprint: file_sha256(&path.join(bundle::WEIGHTS_FILE))?,
        path,
        step: metadata.step,
    };
    Ok((parent, config))
}

/// `sha256:<hex>` of a file's bytes, read in blocks.
fn file_sha256(path: &Path) -> Result<String, InitFromError> {
    use sha2::Digest;
    let mut file = fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = sha2::Sha256::new();
    let mut block = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut block).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&block[..n]);
    }
    Ok(crate::data::store::sha256_tag(hasher))
}

/// What the parent's vocabulary is, for the checks: joint or not, sizes, kind.
pub struct ParentVocab {
    pub joint: bool,
    pub src_len: usize,
    pub tgt_len: usize,
    pub kind: vocab::VocabKind,
}

impl ParentVocab {
    /// Loads the vocabularies of the bundle at `dir` (described by `config`).
    pub fn load(dir: &Path, config: &BundleConfig) -> Result<Self, InitFromError> {
        let load = |name: &str| {
            vocab::load(dir.join(name)).map_err(|e| InitFromError::Bundle(e.to_string()))
        };
        let src = load(&config.src_vocab)?;
        let tgt = load(&config.tgt_vocab)?;
        Ok(ParentVocab {
            joint: config.src_vocab == config.tgt_vocab,
            src_len: src.len(),
            tgt_len: tgt.len(),
            kind: tgt.kind(),
        })
    }
}

/// Every key the config sets (`explicit`, full dotted keys of the file and its overrides)
/// that disagrees with the parent, and the languages; empty when they agree.
pub fn disagreements(
    cfg: &Config,
    explicit: &BTreeSet<String>,
    parent: &BundleConfig,
    parent_vocab: &ParentVocab,
) -> Vec<Disagreement> {
    let mut out = Vec::new();
    let mut differ = |key: &str, why: String| {
        out.push(Disagreement {
            key: key.into(),
            why,
        })
    };
    for (key, mine, theirs) in [
        ("data.src_lang", &cfg.data.src_lang, &parent.src_lang),
        ("data.tgt_lang", &cfg.data.tgt_lang, &parent.tgt_lang),
    ] {
        if mine != theirs {
            differ(key, format!("{mine:?} here, {theirs:?} in the bundle"));
        }
    }
    // [model]: compare the values as serialized, so that old spellings of a value (the
    // `fused-lstm` cell, say) compare as what they mean.
    let mine = flat_model(&cfg.model);
    let theirs = flat_model(&parent.model.with_vocab_sizes(0, 0));
    for key in explicit.iter().filter_map(|k| k.strip_prefix("model.")) {
        if FREE_MODEL_KEYS.contains(&key) || key.split('.').next() == Some("low_rank") {
            continue;
        }
        let (a, b) = (mine.get(key), theirs.get(key));
        if a != b {
            let show = |v: Option<&toml::Value>| v.map_or("unset".into(), |v| v.to_string());
            differ(
                &format!("model.{key}"),
                format!("{} here, {} in the bundle", show(a), show(b)),
            );
        }
    }
    let v = &cfg.vocab;
    for key in explicit.iter().filter_map(|k| k.strip_prefix("vocab.")) {
        match key {
            "mode" if v.mode == VocabMode::Load => differ(
                "vocab.mode",
                "\"load\" here, but the vocabulary comes from the bundle".into(),
            ),
            "path" | "src_path" | "tgt_path" => differ(
                &format!("vocab.{key}"),
                "a vocabulary file here, but the vocabulary comes from the bundle".into(),
            ),
            "joint" if v.joint != parent_vocab.joint => differ(
                "vocab.joint",
                format!("{} here, {} in the bundle", v.joint, parent_vocab.joint),
            ),
            "size" if v.size != parent_vocab.src_len || v.size != parent_vocab.tgt_len => {
                let theirs = if parent_vocab.src_len == parent_vocab.tgt_len {
                    parent_vocab.tgt_len.to_string()
                } else {
                    format!(
                        "{} (source) and {} (target)",
                        parent_vocab.src_len, parent_vocab.tgt_len
                    )
                };
                differ(
                    "vocab.size",
                    format!("{} here, {theirs} in the bundle", v.size),
                )
            }
            "kind" if vocab_kind_name(v.kind) != parent_vocab.kind.name() => differ(
                "vocab.kind",
                format!(
                    "{:?} here, {} in the bundle",
                    vocab_kind_name(v.kind),
                    parent_vocab.kind
                ),
            ),
            _ => {}
        }
    }
    out
}

/// The name `vocab::VocabKind` gives a trained vocabulary of this kind.
fn vocab_kind_name(kind: vocab::ModelType) -> &'static str {
    match kind {
        vocab::ModelType::Unigram => vocab::VocabKind::Unigram.name(),
        vocab::ModelType::Bpe => vocab::VocabKind::Bpe.name(),
    }
}

/// `model`'s keys as dotted paths (`gates.kind`) to their TOML values.
fn flat_model(model: &model::ModelConfig) -> std::collections::BTreeMap<String, toml::Value> {
    match toml::Value::try_from(model) {
        Ok(toml::Value::Table(t)) => crate::config::flatten_table(&t),
        _ => Default::default(),
    }
}

/// The config a fine-tuning run trains with: the parent's architecture (with the config's
/// dropout and executor) and a vocabulary section that describes the parent's vocabulary,
/// which [`copy_vocab`] puts where a run keeps the vocabulary it trained.
pub fn adopt(cfg: &Config, parent: &BundleConfig, parent_vocab: &ParentVocab) -> Config {
    let mut out = cfg.clone();
    let mut model = parent.model.with_vocab_sizes(0, 0);
    model.dropout = cfg.model.dropout;
    model.executor = cfg.model.executor;
    out.model = model;
    out.vocab.mode = VocabMode::Train;
    out.vocab.joint = parent_vocab.joint;
    out.vocab.size = parent_vocab.tgt_len;
    match parent_vocab.kind {
        vocab::VocabKind::Unigram => out.vocab.kind = vocab::ModelType::Unigram,
        vocab::VocabKind::Bpe => out.vocab.kind = vocab::ModelType::Bpe,
        // Not a kind nmt-train trains; the run loads the file as it is either way.
        vocab::VocabKind::SentencePiece => {}
    }
    out.vocab.path = None;
    out.vocab.src_path = None;
    out.vocab.tgt_path = None;
    out
}

/// Copies the parent's vocabulary files into `vocab_dir` (`joint/` or `src/` and `tgt/`, the
/// layout of a run's own vocabulary), atomically ([`model::atomic`]).
pub fn copy_vocab(
    parent_dir: &Path,
    parent: &BundleConfig,
    vocab_dir: &Path,
) -> Result<(), InitFromError> {
    if vocab_dir.is_dir() {
        return Ok(());
    }
    let copies: Vec<(&str, &str)> = if parent.src_vocab == parent.tgt_vocab {
        vec![("joint", &parent.src_vocab)]
    } else {
        vec![("src", &parent.src_vocab), ("tgt", &parent.tgt_vocab)]
    };
    model::atomic::write_dir_atomically(vocab_dir, |tmp| -> Result<(), InitFromError> {
        for (sub, name) in copies {
            let dir = tmp.join(sub);
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            let from = parent_dir.join(name);
            // A separate vocabulary's file name in a bundle carries a `src.`/`tgt.` prefix;
            // in the run's folder it is the plain name `vocab::load` looks for.
            let file_name = name
                .strip_prefix("src.")
                .or_else(|| name.strip_prefix("tgt."))
                .unwrap_or(name);
            fs::copy(&from, dir.join(file_name)).map_err(io_err(&from))?;
        }
        Ok(())
    })
}

/// Writes `parent.json` into the run directory (atomically).
pub fn write_parent(run_dir: &Path, parent: &Parent) -> Result<(), InitFromError> {
    let path = run_dir.join(PARENT_FILE);
    let text = serde_json::to_string_pretty(parent).unwrap_or_default() + "\n";
    crate::checkpoint::write_atomic(&path, text.as_bytes())
        .map_err(|e| InitFromError::Bundle(format!("writing {}: {e}", path.display())))
}

/// The run's parent, when it has one (`parent.json`).
pub fn read_run_parent(run_dir: &Path) -> Result<Option<Parent>, InitFromError> {
    let path = run_dir.join(PARENT_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let text = fs::read_to_string(&path).map_err(io_err(&path))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| InitFromError::Bundle(format!("{}: {e}", path.display())))
}
