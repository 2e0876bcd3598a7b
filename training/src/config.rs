//! The training configuration: a TOML file with `[data]`, `[vocab]`, `[model]` and `[training]`
//! sections, plus `section.key=value` overrides from the command line.
//!
//! Relative paths in `[data]` and `[vocab]` are resolved against the folder holding the config
//! file (so `configs/x.toml` names the shared corpora as `../../shared/data/...`). The copy
//! saved in a run directory (`config.toml`) has them made absolute, so a resumed run finds the
//! same files wherever it is started from.
//!
//! Every section rejects unknown keys with an error naming the key's full path.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::optim::AdamConfig;
use crate::schedule::ScheduleConfig;

/// Errors reading or overriding a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: String,
        key: String,
        message: String,
    },
    #[error("override {arg:?}: {message}")]
    Override { arg: String, message: String },
}

/// One part of a corpus: a prefix (`PREFIX.SRC_LANG` / `PREFIX.TGT_LANG`, `.gz` accepted) or
/// an explicit file pair, each with an optional sampling weight in `data.train` (see
/// [`CorpusPart::weight`]): `"PREFIX"`, `{ prefix = "PREFIX", weight = 2.0 }`,
/// `{ src = "A", tgt = "B" }` or `{ src = "A", tgt = "B", weight = 0.5 }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum CorpusPart {
    Prefix(PathBuf),
    Files {
        src: PathBuf,
        tgt: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight: Option<f64>,
    },
    WeightedPrefix {
        prefix: PathBuf,
        weight: f64,
    },
}

impl CorpusPart {
    /// How often the part's pairs are drawn per epoch, relative to their count (OpenNMT-py's
    /// corpus `weight`): 1 (the default) once each, 2 twice each, 0.5 a different half of
    /// them each epoch, 1.5 each once plus a different half again. Drawn from the run's seed
    /// and the epoch, so a resumed run draws the same pairs.
    pub fn weight(&self) -> f64 {
        match self {
            CorpusPart::Prefix(_) => 1.0,
            CorpusPart::Files { weight, .. } => weight.unwrap_or(1.0),
            CorpusPart::WeightedPrefix { weight, .. } => *weight,
        }
    }
}

/// A corpus: one part or a list of parts read in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CorpusParts {
    One(CorpusPart),
    Many(Vec<CorpusPart>),
}

impl CorpusParts {
    /// The parts in order.
    pub fn parts(&self) -> Vec<&CorpusPart> {
        match self {
            CorpusParts::One(p) => vec![p],
            CorpusParts::Many(v) => v.iter().collect(),
        }
    }

    fn parts_mut(&mut self) -> Vec<&mut CorpusPart> {
        match self {
            CorpusParts::One(p) => vec![p],
            CorpusParts::Many(v) => v.iter_mut().collect(),
        }
    }
}

/// `data.valid`: one validation corpus, or several by name (a TOML table of corpora, read in
/// the order of their names). Each set is scored on its own at every validation, and
/// `training.best_on` says which scores rank validations.
///
/// A table whose only keys are `src` and `tgt` is one file pair ([`CorpusPart::Files`]), not
/// two sets named so.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ValidSets {
    One(CorpusParts),
    Named(std::collections::BTreeMap<String, CorpusParts>),
}

impl ValidSets {
    /// The sets with their names; one unnamed set is named
    /// [`crate::trainer::SINGLE_VALID_SET`].
    pub fn named(&self) -> Vec<(&str, &CorpusParts)> {
        match self {
            ValidSets::One(parts) => vec![(crate::trainer::SINGLE_VALID_SET, parts)],
            ValidSets::Named(sets) => sets.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        }
    }

    fn parts_mut(&mut self) -> Vec<&mut CorpusPart> {
        match self {
            ValidSets::One(parts) => parts.parts_mut(),
            ValidSets::Named(sets) => sets.values_mut().flat_map(|p| p.parts_mut()).collect(),
        }
    }
}

/// `training.best_on`: which validation scores rank validations (choose `best`, drive the
/// plateau schedule and early stopping): `"mean"`, the unweighted mean over the sets (one
/// set: its own scores), or the name of one set.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum BestOn {
    #[default]
    Mean,
    Set(String),
}

impl From<String> for BestOn {
    fn from(name: String) -> Self {
        if name == "mean" {
            BestOn::Mean
        } else {
            BestOn::Set(name)
        }
    }
}

impl From<BestOn> for String {
    fn from(b: BestOn) -> String {
        b.to_string()
    }
}

impl std::fmt::Display for BestOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BestOn::Mean => f.write_str("mean"),
            BestOn::Set(name) => f.write_str(name),
        }
    }
}

/// `data.format`: a corpus [`Format`], or `"auto"` (`None`: guessed from each file name).
mod format_or_auto {
    use serde::de::{Deserialize, Deserializer, Error, IntoDeserializer};
    use serde::ser::{Serialize, Serializer};

    use crate::data::Format;

    const AUTO: &str = "auto";

    pub fn serialize<S: Serializer>(format: &Option<Format>, s: S) -> Result<S::Ok, S::Error> {
        match format {
            None => s.serialize_str(AUTO),
            Some(f) => f.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Format>, D::Error> {
        let name = String::deserialize(d)?;
        if name == AUTO {
            return Ok(None);
        }
        let known: Result<Format, serde::de::value::Error> =
            Format::deserialize(name.as_str().into_deserializer());
        // serde's message lists `Format`'s own names; `auto` is this key's addition.
        known
            .map(Some)
            .map_err(|e| D::Error::custom(format!("{e}, or `{AUTO}`")))
    }
}

/// `[data]`: where the parallel text is and how to filter it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub src_lang: String,
    pub tgt_lang: String,
    pub train: CorpusParts,
    /// One validation corpus, or a table of named ones ([`ValidSets`]).
    pub valid: ValidSets,
    /// `auto` (`None`: guessed from each file name), `plain`, `iwslt-tags`, `iwslt-xml` or
    /// `wmt-sgml`.
    #[serde(default, with = "format_or_auto")]
    pub format: Option<crate::data::Format>,
    /// Skip (and count) malformed lines instead of failing.
    #[serde(default)]
    pub skip_bad_lines: bool,
    /// Training pairs with either side longer than this many subwords are dropped.
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Training pairs whose length ratio exceeds this are dropped (0: no ratio filter).
    #[serde(default)]
    pub max_ratio: f64,
    /// Validate on at most this many sentences of each set (0: all).
    #[serde(default)]
    pub valid_max_sentences: usize,
    /// A few words on the training data and its domain, recorded in every bundle's
    /// `metadata.json` (shown by `nmt-bundle info` and `nmt-serve`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn default_max_len() -> usize {
    250
}

/// Whether the vocabulary is trained for this run or loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VocabMode {
    #[default]
    Train,
    Load,
}

/// `[vocab]`: train one (on the training corpus) or load one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VocabConfig {
    pub mode: VocabMode,
    /// One vocabulary for both languages (needed for `model.share_embeddings`).
    pub joint: bool,
    /// `train`: the subword algorithm (`unigram` or `bpe`).
    pub kind: vocab::ModelType,
    /// `train`: vocabulary size, special tokens included.
    pub size: usize,
    /// `train`: use at most this many training sentences per side (0: all).
    pub max_sentences: usize,
    /// `load` with `joint`: a `tokenizer.json` or sentencepiece `.model`.
    pub path: Option<PathBuf>,
    /// `load` without `joint`: the source and target vocabularies.
    pub src_path: Option<PathBuf>,
    pub tgt_path: Option<PathBuf>,
}

impl Default for VocabConfig {
    fn default() -> Self {
        Self {
            mode: VocabMode::Train,
            joint: true,
            kind: vocab::ModelType::Unigram,
            size: 8000,
            max_sentences: 0,
            path: None,
            src_path: None,
            tgt_path: None,
        }
    }
}

/// `[training]`: the optimisation and the run's bookkeeping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingConfig {
    /// Target+source tokens per batch (padding included), the token budget of the batcher.
    pub batch_tokens: usize,
    /// Stop after this many epochs (0: no limit).
    pub max_epochs: u64,
    /// Stop after this many updates (0: no limit).
    pub max_steps: u64,
    /// Peak learning rate.
    pub lr: f64,
    pub schedule: ScheduleConfig,
    pub adam: AdamConfig,
    /// Clip the total gradient norm to this (0: no clipping).
    pub clip_norm: f64,
    pub label_smoothing: f64,
    pub seed: u64,
    /// Validate (and checkpoint) every N updates (0: at the end of each epoch).
    pub validate_every: u64,
    /// Checkpoint (`last`) every N updates besides validations (0: only at validations).
    pub save_every: u64,
    /// Keep the checkpoint of every N-th update forever (0: keep only `last` and `best`).
    pub keep_every: u64,
    /// At the end of the run, average the weights of the last N checkpoints on disk, by step
    /// (the final one, the `keep_every` ones and `best`), into `RUN/averaged`, as fairseq's
    /// `average_checkpoints` does (0: off; N ≥ 2 needs `keep_every`).
    pub average_last: u32,
    /// Stop after this many validations without a better BLEU (0: never).
    pub patience: u32,
    /// Which validation scores rank validations: `"mean"` (over the sets of `data.valid`) or
    /// a set's name ([`BestOn`]).
    pub best_on: BestOn,
    /// Stop with an error after this many consecutive non-finite losses.
    pub max_nonfinite: u32,
    /// Log the training loss every N updates.
    pub log_every: u64,
    /// Also write the training and validation scalars as TensorBoard event files in
    /// `RUN/tensorboard/` ([`crate::tensorboard`]).
    pub tensorboard: bool,
    /// Compute validation BLEU (greedy search); off: loss and perplexity only.
    pub valid_bleu: bool,
    /// Greedy search stops after `a · source length + b` tokens.
    pub max_decode_len_a: f64,
    pub max_decode_len_b: i64,
    /// Sentences per validation batch.
    pub valid_batch_tokens: usize,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// bf16 autocast on CUDA (ignored on the CPU).
    pub bf16: bool,
    /// libtorch intra-op threads (0: libtorch's default). On a CPU each step is also split
    /// among this many worker threads (`crate::split_step`), one intra-op thread each.
    pub threads: i32,
    /// One update from this many batches (fairseq's `--update-freq`): their gradients are
    /// summed and normalised by all their target tokens. In a job of N processes each update
    /// takes N × update_freq batches, update_freq on each rank.
    pub update_freq: u64,
    /// Start from this bundle's weights (fine-tuning, [`crate::init_from`]): its
    /// architecture and vocabulary, with fresh data, optimizer, schedule and step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    /// c10d backend of a multi-process job (torchrun, Slurm, RANK/WORLD_SIZE variables):
    /// `auto` (NCCL on CUDA devices when this build has it, else Gloo), `gloo` or `nccl`.
    /// Ignored in a single process.
    pub dist_backend: String,
    /// Seconds a rank waits for the others (joining the job, every collective, rank 0's
    /// validations) before it stops with an error naming the rank that is missing.
    pub dist_timeout_secs: u64,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            batch_tokens: 4000,
            max_epochs: 30,
            max_steps: 0,
            lr: 1e-3,
            schedule: ScheduleConfig::default(),
            adam: AdamConfig::default(),
            clip_norm: 1.0,
            label_smoothing: 0.1,
            seed: 1,
            validate_every: 1000,
            save_every: 0,
            keep_every: 0,
            average_last: 0,
            patience: 0,
            best_on: BestOn::Mean,
            max_nonfinite: 10,
            log_every: 100,
            tensorboard: false,
            valid_bleu: true,
            max_decode_len_a: 1.5,
            max_decode_len_b: 10,
            valid_batch_tokens: 8000,
            device: "auto".into(),
            bf16: false,
            threads: 0,
            update_freq: 1,
            init_from: None,
            dist_backend: "auto".into(),
            dist_timeout_secs: 300,
        }
    }
}

/// The whole configuration file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data: DataConfig,
    #[serde(default)]
    pub vocab: VocabConfig,
    /// `[model]`: the architecture; every key has `model::ModelConfig`'s default. The
    /// vocabulary sizes come from the vocabulary and `low_rank` from `nmt-bundle compress`,
    /// so neither may be set here.
    #[serde(default)]
    pub model: model::ModelConfig,
    #[serde(default)]
    pub training: TrainingConfig,
}

impl Config {
    /// Reads `path`, applies `overrides` (`section.key=value`, value in TOML syntax; a bare word
    /// is taken as a string), checks it, and resolves relative paths against `path`'s folder.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Self::from_toml_str(&text, &path.display().to_string(), base, overrides)
    }

    /// As [`Config::load`] from text; `name` labels errors, `base` resolves relative paths.
    pub fn from_toml_str(
        text: &str,
        name: &str,
        base: &Path,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        let table = table_with_overrides(text, name, overrides)?;
        let mut cfg: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                ConfigError::Invalid {
                    path: name.into(),
                    key: e.path().to_string(),
                    message: e.inner().to_string(),
                }
            })?;
        cfg.resolve_paths(base);
        cfg.validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                path: name.into(),
                key,
                message,
            })?;
        Ok(cfg)
    }

    /// Makes every relative path absolute-ish by joining it to `base`.
    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        let train = self.data.train.parts_mut();
        for part in train.into_iter().chain(self.data.valid.parts_mut()) {
            match part {
                CorpusPart::Prefix(p) | CorpusPart::WeightedPrefix { prefix: p, .. } => fix(p),
                CorpusPart::Files { src, tgt, .. } => {
                    fix(src);
                    fix(tgt);
                }
            }
        }
        for p in [
            &mut self.vocab.path,
            &mut self.vocab.src_path,
            &mut self.vocab.tgt_path,
            &mut self.training.init_from,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
    }

    /// Paths made absolute (against the current directory), for the copy kept in a run dir.
    pub fn absolutized(&self) -> Self {
        let mut c = self.clone();
        if let Ok(cwd) = std::env::current_dir() {
            c.resolve_paths(&cwd);
        }
        c
    }

    /// The config as TOML text.
    pub fn to_toml(&self) -> String {
        // Serialising plain data structs cannot fail except on non-string map keys (none here).
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Cross-field checks; `Err((key, why))`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: String| Err((k.to_string(), m));
        let t = &self.training;
        if t.batch_tokens == 0 {
            return err("training.batch_tokens", "must be > 0".into());
        }
        if !(t.lr > 0.0 && t.lr.is_finite()) {
            return err("training.lr", format!("{} must be a positive number", t.lr));
        }
        if !(0.0..1.0).contains(&t.label_smoothing) {
            return err(
                "training.label_smoothing",
                format!("{} must be in [0, 1)", t.label_smoothing),
            );
        }
        if !(t.clip_norm >= 0.0 && t.clip_norm.is_finite()) {
            return err(
                "training.clip_norm",
                format!("{} must be >= 0", t.clip_norm),
            );
        }
        if t.max_epochs == 0 && t.max_steps == 0 && t.patience == 0 {
            return err(
                "training.max_steps",
                "max_epochs, max_steps and patience are all 0: the run would never end".into(),
            );
        }
        if t.update_freq == 0 {
            return err(
                "training.update_freq",
                "must be >= 1 (batches per update on each process)".into(),
            );
        }
        if !matches!(t.dist_backend.as_str(), "auto" | "gloo" | "nccl") {
            return err(
                "training.dist_backend",
                format!("{:?}: expected auto, gloo or nccl", t.dist_backend),
            );
        }
        if t.average_last == 1 {
            return err(
                "training.average_last",
                "1 is the last checkpoint itself: use 0 (off) or N >= 2".into(),
            );
        }
        if t.average_last >= 2 && t.keep_every == 0 {
            return err(
                "training.average_last",
                format!(
                    "averaging the last {} checkpoints needs them kept: set training.keep_every \
                     (e.g. to validate_every)",
                    t.average_last
                ),
            );
        }
        if t.dist_timeout_secs == 0 {
            return err("training.dist_timeout_secs", "must be > 0".into());
        }
        if let Err(e) = t.device.parse::<model::device::DeviceChoice>() {
            return err("training.device", e.to_string());
        }
        if !(0.0..1.0).contains(&self.model.dropout) {
            return err(
                "model.dropout",
                format!("{} must be in [0, 1)", self.model.dropout),
            );
        }
        for (key, set) in [
            ("model.src_vocab_size", self.model.src_vocab_size != 0),
            ("model.tgt_vocab_size", self.model.tgt_vocab_size != 0),
        ] {
            if set {
                return err(key, "comes from the vocabulary; leave it out".into());
            }
        }
        if self.model.low_rank.is_some() {
            return err(
                "model.low_rank",
                "low-rank models are made from trained ones by `nmt-bundle compress \
                 --svd-rank`, not trained"
                    .into(),
            );
        }
        // The model crate alone decides which architectures are valid (fused kernels with
        // Gumbel gates, dot attention with a bidirectional encoder, ...): ask it now, with
        // stand-in vocabulary sizes, rather than after the vocabulary is trained.
        if let Err(e) = self.model.with_vocab_sizes(8, 8).validate() {
            return err("model", e.to_string());
        }
        if self.model.share_embeddings && !self.vocab.joint {
            return err(
                "model.share_embeddings",
                "needs a joint vocabulary (vocab.joint = true)".into(),
            );
        }
        match self.vocab.mode {
            VocabMode::Train if self.vocab.size < 5 => {
                return err(
                    "vocab.size",
                    format!("{} is too small (4 ids are special)", self.vocab.size),
                )
            }
            VocabMode::Load if self.vocab.joint && self.vocab.path.is_none() => {
                return err(
                    "vocab.path",
                    "vocab.mode = \"load\" with a joint vocabulary needs vocab.path".into(),
                )
            }
            VocabMode::Load
                if !self.vocab.joint
                    && (self.vocab.src_path.is_none() || self.vocab.tgt_path.is_none()) =>
            {
                return err(
                    "vocab.src_path",
                    "vocab.mode = \"load\" without joint needs vocab.src_path and vocab.tgt_path"
                        .into(),
                )
            }
            _ => {}
        }
        for (i, part) in self.data.train.parts().into_iter().enumerate() {
            let w = part.weight();
            if !(w.is_finite() && w > 0.0) {
                return err(
                    &format!("data.train[{i}].weight"),
                    format!("{w} must be a positive number (1: each pair once per epoch)"),
                );
            }
        }
        for (name, parts) in self.data.valid.named() {
            if parts.parts().iter().any(|p| p.weight() != 1.0) {
                return err(
                    "data.valid",
                    format!("set {name:?}: weights are for training corpora; validation reads every pair once"),
                );
            }
        }
        let sets = self.data.valid.named();
        if let ValidSets::Named(named) = &self.data.valid {
            if named.is_empty() {
                return err("data.valid", "names no validation set".into());
            }
            if let Some(name) = named.keys().find(|n| n.as_str() == "mean" || n.is_empty()) {
                return err(
                    "data.valid",
                    format!("{name:?} cannot name a validation set (\"mean\" is training.best_on's mean over the sets)"),
                );
            }
        }
        if let BestOn::Set(name) = &t.best_on {
            if !sets.iter().any(|(n, _)| n == name) {
                let names: Vec<&str> = sets.iter().map(|(n, _)| *n).collect();
                return err(
                    "training.best_on",
                    format!(
                        "{name:?} is not a validation set: expected \"mean\" or one of {names:?}"
                    ),
                );
            }
        }
        if self.data.src_lang.is_empty() || self.data.tgt_lang.is_empty() {
            return err(
                "data.src_lang",
                "src_lang and tgt_lang must not be empty".into(),
            );
        }
        Ok(())
    }
}

/// The TOML table of `text` with `overrides` applied; `name` labels errors.
fn table_with_overrides(
    text: &str,
    name: &str,
    overrides: &[String],
) -> Result<toml::Table, ConfigError> {
    let mut table: toml::Table =
        text.parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax {
                path: name.into(),
                message: e.to_string(),
            })?;
    for arg in overrides {
        apply_override(&mut table, arg)?;
    }
    Ok(table)
}

/// The keys a config file and its overrides set themselves (rather than leave to their
/// defaults), as full dotted paths to values (`model.gates.kind`, `vocab.size`): what a
/// fine-tuning run compares with its bundle.
pub fn explicit_keys(
    path: &Path,
    overrides: &[String],
) -> Result<std::collections::BTreeSet<String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let table = table_with_overrides(&text, &path.display().to_string(), overrides)?;
    Ok(flatten_table(&table).into_keys().collect())
}

/// A TOML table's values by their full dotted keys (`model.gates.kind`), nested tables
/// walked into.
pub fn flatten_table(table: &toml::Table) -> std::collections::BTreeMap<String, toml::Value> {
    fn walk(
        prefix: &str,
        t: &toml::Table,
        out: &mut std::collections::BTreeMap<String, toml::Value>,
    ) {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(inner) => walk(&key, inner, out),
                other => {
                    out.insert(key, other.clone());
                }
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk("", table, &mut out);
    out
}

/// Sets `a.b.c = value` in `table`. The value is parsed as TOML (`0.002`, `true`, `"x"`,
/// `[1, 2]`); anything that does not parse is taken as a bare string (`cuda:0`).
pub fn apply_override(table: &mut toml::Table, arg: &str) -> Result<(), ConfigError> {
    let bad = |m: &str| ConfigError::Override {
        arg: arg.to_string(),
        message: m.to_string(),
    };
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| bad("expected section.key=value"))?;
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad("empty key segment"));
    }
    let value = value.trim();
    let parsed: toml::Value = match format!("v = {value}").parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(value.to_string())),
        Err(_) => toml::Value::String(value.to_string()),
    };
    let (last, path) = parts.split_last().ok_or_else(|| bad("empty key"))?;
    let mut cur = table;
    for (i, seg) in path.iter().enumerate() {
        let entry = cur
            .entry(seg.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| ConfigError::Override {
            arg: arg.to_string(),
            message: format!("{} is not a table", parts[..=i].join(".")),
        })?;
    }
    cur.insert(last.to_string(), parsed);
    Ok(())
}
