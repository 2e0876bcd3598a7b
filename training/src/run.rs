//! What `nmt-train` does, end to end: config → vocabulary → corpora → model → trainer.
//!
//! Run directory contents:
//!
//! ```text
//! <run>/config.toml          the resolved configuration (absolute paths), reused by --resume
//! <run>/vocab/               the vocabulary trained for this run (vocab.mode = "train"), or
//!                            the parent bundle's when fine-tuning (crate::init_from)
//! <run>/parent.json          the bundle a fine-tuning run started from
//! <run>/checkpoints/, last, best   see crate::checkpoint (each holds a model bundle in model/)
//! <run>/train.jsonl, valid.jsonl   see crate::log
//! <run>/train.log            the tracing log
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use tch::Device;

use crate::checkpoint::{write_atomic, CheckpointError, RunDir};
use crate::config::{Config, ConfigError, CorpusPart, CorpusParts, VocabMode};
use crate::corpus_source::{ordered_batches, CorpusBatches};
use crate::data::{
    BatchConfig, CorpusBuilder, CorpusSpec, DataError, EncodedCorpus, FilePair, LengthFilter,
    RawPairs, ReadOptions, TokenBatcher,
};
use crate::init_from;
use crate::nmt_model::NmtModel;
use crate::trainable::DynError;
use crate::trainer::{
    BleuSetup, CorpusScorer, RunOptions, TrainError, TrainOutcome, Trainer, Validation,
    ValidationSet,
};

/// Name of the resolved config inside a run directory.
pub const RUN_CONFIG: &str = "config.toml";
/// Folder of the run's own vocabulary.
pub const RUN_VOCAB: &str = "vocab";

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "no configuration: give --config, or --resume a run directory holding {RUN_CONFIG} ({0})"
    )]
    NoConfig(String),
    #[error(
        "{0} already holds a run (a `last` checkpoint): pass --resume to continue it, or choose \
         another --run-dir"
    )]
    RunExists(String),
    #[error("--resume: {0} has no checkpoint to resume from")]
    NothingToResume(String),
    #[error("data: {0}")]
    Data(#[from] DataError),
    #[error("vocabulary: {0}")]
    Vocab(#[from] vocab::VocabError),
    #[error("model: {0}")]
    Model(String),
    #[error("device: {0}")]
    Device(String),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("validation BLEU: {0}")]
    Bleu(String),
    #[error("training.average_last: {0}")]
    Average(String),
    #[error("launch: {0}")]
    Launch(#[from] distributed::LaunchError),
    #[error(transparent)]
    InitFrom(#[from] init_from::InitFromError),
    #[error(transparent)]
    Files(#[from] model::ModelError),
    #[error(transparent)]
    Distributed(#[from] distributed::DistError),
    #[error(
        "rank {rank}: {path} not found after rank 0 prepared the vocabulary: every process of a \
         job reads the run directory, so on several machines it must be on a shared \
         filesystem (or use vocab.mode = \"load\" with the files on every machine)"
    )]
    VocabNotShared { rank: usize, path: String },
    #[error(
        "rank {rank}: its training data differs from rank 0's ({mine} vs {lead}): every process \
         must read the same corpus"
    )]
    DataDiffers {
        rank: usize,
        mine: String,
        lead: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What the command line asks for.
#[derive(Clone, Debug, Default)]
pub struct RunArgs {
    pub config: Option<PathBuf>,
    pub run_dir: PathBuf,
    pub resume: bool,
    /// `section.key=value` overrides, applied in order.
    pub overrides: Vec<String>,
    pub quiet: bool,
}

/// Reads the configuration for `args` (the given file, or the run's saved copy on --resume).
pub fn load_config(args: &RunArgs) -> Result<Config, RunError> {
    let saved = args.run_dir.join(RUN_CONFIG);
    match &args.config {
        Some(path) => Ok(Config::load(path, &args.overrides)?),
        None if args.resume && saved.is_file() => Ok(Config::load(&saved, &args.overrides)?),
        None => Err(RunError::NoConfig(format!("{} not found", saved.display()))),
    }
}

/// The files of `parts` in order, and for each file pair the index of the config part it
/// came from (a prefix can name more than one file pair).
fn corpus_spec(parts: &CorpusParts, src_lang: &str, tgt_lang: &str) -> (CorpusSpec, Vec<usize>) {
    let mut files = Vec::new();
    let mut owners = Vec::new();
    for (i, part) in parts.parts().into_iter().enumerate() {
        let pairs = match part {
            CorpusPart::Prefix(prefix) | CorpusPart::WeightedPrefix { prefix, .. } => {
                CorpusSpec::prefix(prefix, src_lang, tgt_lang).parts
            }
            CorpusPart::Files { src, tgt, .. } => vec![FilePair {
                src: src.clone(),
                tgt: tgt.clone(),
            }],
        };
        owners.extend(std::iter::repeat_n(i, pairs.len()));
        files.extend(pairs);
    }
    (CorpusSpec { parts: files }, owners)
}

/// `SRC + TGT` of a file pair, for the log.
fn describe(pair: &FilePair) -> String {
    format!("{} + {}", pair.src.display(), pair.tgt.display())
}

/// Warns about file pairs listed more than once in `spec` (the same files after resolving
/// links and `..`): their pairs are trained on that many times per epoch, which is rarely
/// meant (a weight says it openly).
fn warn_repeated_files(spec: &CorpusSpec, kept_per_part: &[u64]) {
    let key = |p: &FilePair| {
        (
            fs::canonicalize(&p.src).unwrap_or_else(|_| p.src.clone()),
            fs::canonicalize(&p.tgt).unwrap_or_else(|_| p.tgt.clone()),
        )
    };
    let keys: Vec<_> = spec.parts.iter().map(key).collect();
    for (i, k) in keys.iter().enumerate() {
        if keys[..i].contains(k) {
            continue;
        }
        let times = keys.iter().filter(|other| *other == k).count();
        if times > 1 {
            let pairs = kept_per_part.get(i).copied().unwrap_or(0);
            tracing::warn!(
                files = %describe(&spec.parts[i]),
                times,
                pairs,
                "a training corpus is listed {times} times: its {pairs} pairs are each trained on \
                 {times} times per epoch (to mean that, give it a weight instead)"
            );
        }
    }
}

fn read_options(cfg: &Config) -> ReadOptions {
    ReadOptions {
        skip_bad_lines: cfg.data.skip_bad_lines,
        format: cfg.data.format,
        ..Default::default()
    }
}

/// The run's vocabularies and the files a bundle must carry.
pub struct Vocabs {
    pub src: Box<dyn vocab::Vocab>,
    pub tgt: Box<dyn vocab::Vocab>,
    /// (name inside bundles, file): one entry when joint, else source then target.
    pub files: Vec<(String, PathBuf)>,
}

/// Loads the configured vocabulary, or the one this run trained earlier, or trains it on the
/// training corpus and stores it in `<run>/vocab/` (atomically: a folder renamed into place).
pub fn prepare_vocab(cfg: &Config, run_dir: &Path) -> Result<Vocabs, RunError> {
    load_or_train_vocab(cfg, run_dir, None)
}

/// [`prepare_vocab`]; `follower_rank` set: never train, the vocabulary is rank 0's.
fn load_or_train_vocab(
    cfg: &Config,
    run_dir: &Path,
    follower_rank: Option<usize>,
) -> Result<Vocabs, RunError> {
    let v = &cfg.vocab;
    let (src_path, tgt_path): (PathBuf, PathBuf) = match v.mode {
        VocabMode::Load if v.joint => {
            let p = v.path.clone().unwrap_or_default();
            (p.clone(), p)
        }
        VocabMode::Load => (
            v.src_path.clone().unwrap_or_default(),
            v.tgt_path.clone().unwrap_or_default(),
        ),
        VocabMode::Train => {
            let dir = run_dir.join(RUN_VOCAB);
            if !dir.is_dir() {
                if let Some(rank) = follower_rank {
                    return Err(RunError::VocabNotShared {
                        rank,
                        path: dir.display().to_string(),
                    });
                }
                train_vocab(cfg, &dir)?;
            }
            if v.joint {
                (dir.join("joint"), dir.join("joint"))
            } else {
                (dir.join("src"), dir.join("tgt"))
            }
        }
    };
    let src = vocab::load(&src_path)?;
    let tgt = vocab::load(&tgt_path)?;
    // `vocab::load` accepts a folder; bundles want the file itself.
    let file_of = |p: &Path, v: &dyn vocab::Vocab| {
        if p.is_dir() {
            p.join(v.file_name())
        } else {
            p.to_path_buf()
        }
    };
    let files = if v.joint {
        vec![(
            src.file_name().to_string(),
            file_of(&src_path, src.as_ref()),
        )]
    } else {
        vec![
            (
                format!("src.{}", src.file_name()),
                file_of(&src_path, src.as_ref()),
            ),
            (
                format!("tgt.{}", tgt.file_name()),
                file_of(&tgt_path, tgt.as_ref()),
            ),
        ]
    };
    Ok(Vocabs { src, tgt, files })
}

fn train_vocab(cfg: &Config, dir: &Path) -> Result<(), RunError> {
    let v = &cfg.vocab;
    let (spec, _) = corpus_spec(&cfg.data.train, &cfg.data.src_lang, &cfg.data.tgt_lang);
    tracing::info!(size = v.size, kind = ?v.kind, joint = v.joint, "training the vocabulary");
    let (raw, _) = RawPairs::read(&spec, &read_options(cfg))?;
    let n = if v.max_sentences > 0 {
        raw.len().min(v.max_sentences)
    } else {
        raw.len()
    };
    let tc = vocab::TrainConfig {
        model: v.kind,
        vocab_size: v.size,
        ..Default::default()
    };
    // Trained first, written after: the folder appears whole or not at all.
    let trained: Vec<(&str, Box<dyn vocab::Vocab>)> = if v.joint {
        let lines = (0..n).flat_map(|i| {
            let (s, t) = raw.get(i);
            [s, t]
        });
        vec![("joint", Box::new(vocab::train_lines(&tc, lines)?))]
    } else {
        vec![
            (
                "src",
                Box::new(vocab::train_lines(&tc, (0..n).map(|i| raw.get(i).0))?),
            ),
            (
                "tgt",
                Box::new(vocab::train_lines(&tc, (0..n).map(|i| raw.get(i).1))?),
            ),
        ]
    };
    model::atomic::write_dir_atomically(dir, |tmp| -> Result<(), RunError> {
        for (name, vocab) in &trained {
            let sub = tmp.join(name);
            fs::create_dir_all(&sub).map_err(io_err(&sub))?;
            vocab.save(&sub.join(vocab.file_name()))?;
        }
        Ok(())
    })
}

/// The training corpus, encoded and length-filtered, and the sampling weight of each of its
/// file pairs with their pair counts (`(pairs, weight)`, in corpus order, for
/// [`TokenBatcher::with_weights`]).
pub struct TrainCorpus {
    pub corpus: EncodedCorpus,
    pub weights: Vec<(usize, f64)>,
}

/// Reads, encodes and length-filters the training corpus; logs each corpus's pairs after
/// filtering and its weight, and warns about files listed twice.
pub fn read_train(cfg: &Config, vocabs: &Vocabs) -> Result<TrainCorpus, RunError> {
    let (spec, owners) = corpus_spec(&cfg.data.train, &cfg.data.src_lang, &cfg.data.tgt_lang);
    let filter = LengthFilter {
        min_len: 1,
        max_len: Some(cfg.data.max_len),
        max_ratio: (cfg.data.max_ratio > 0.0).then_some(cfg.data.max_ratio),
    };
    let (corpus, report) = EncodedCorpus::read(
        &spec,
        &read_options(cfg),
        vocabs.src.as_ref(),
        vocabs.tgt.as_ref(),
        &filter,
    )?;
    tracing::info!(pairs = corpus.len(), "training corpus read\n{report}");
    let config_parts = cfg.data.train.parts();
    let mut weights = Vec::with_capacity(spec.parts.len());
    for ((files, &owner), &kept) in spec.parts.iter().zip(&owners).zip(&report.kept_per_part) {
        let weight = config_parts[owner].weight();
        tracing::info!(corpus = %describe(files), pairs = kept, weight, "training corpus part (pairs after filtering)");
        weights.push((kept as usize, weight));
    }
    warn_repeated_files(&spec, &report.kept_per_part);
    Ok(TrainCorpus { corpus, weights })
}

/// One validation set as read: its name, files, batches for the loss, and the raw target
/// sentences as BLEU references.
pub struct ValidSet {
    pub name: String,
    pub spec: CorpusSpec,
    pub corpus: EncodedCorpus,
    pub batches: Vec<crate::trainable::HostBatch>,
    pub references: Vec<String>,
}

/// The validation sets of `data.valid`, in order: every pair (ids cut to `data.max_len` for
/// the loss) and the raw target sentences as BLEU references.
pub fn read_valid(cfg: &Config, vocabs: &Vocabs) -> Result<Vec<ValidSet>, RunError> {
    cfg.data
        .valid
        .named()
        .into_iter()
        .map(|(name, parts)| read_valid_set(cfg, vocabs, name, parts))
        .collect()
}

fn read_valid_set(
    cfg: &Config,
    vocabs: &Vocabs,
    name: &str,
    parts: &CorpusParts,
) -> Result<ValidSet, RunError> {
    let (spec, _) = corpus_spec(parts, &cfg.data.src_lang, &cfg.data.tgt_lang);
    let (raw, _) = RawPairs::read(&spec, &read_options(cfg))?;
    let n = if cfg.data.valid_max_sentences > 0 {
        raw.len().min(cfg.data.valid_max_sentences)
    } else {
        raw.len()
    };
    let mut builder = CorpusBuilder::for_vocabs(vocabs.src.as_ref(), vocabs.tgt.as_ref());
    let mut refs = Vec::with_capacity(n);
    let max = cfg.data.max_len.max(1);
    for i in 0..n {
        let (s, t) = raw.get(i);
        let mut s_ids = vocabs.src.encode(s)?;
        let mut t_ids = vocabs.tgt.encode(t)?;
        s_ids.truncate(max);
        t_ids.truncate(max);
        if s_ids.is_empty() {
            // An empty source still needs a position for EOS; unk keeps the row well-formed.
            s_ids.push(vocab::UNK_ID);
        }
        builder.push(&s_ids, &t_ids, i as u64 + 1)?;
        refs.push(t.to_string());
    }
    let corpus = builder.finish();
    let budget = cfg.training.valid_batch_tokens.max(max + 2);
    let batcher = TokenBatcher::new(&corpus, BatchConfig::tokens(budget), 0)?;
    tracing::info!(set = name, pairs = corpus.len(), "validation set read");
    Ok(ValidSet {
        name: name.to_string(),
        spec,
        batches: ordered_batches(&corpus, &batcher),
        corpus,
        references: refs,
    })
}

/// Warns when a validation set shares sentences with the training text (the same subword
/// ids, so the same text up to normalization), naming its files and the number of shared
/// source and target lines: scores on such a set overstate how well the model generalises.
fn warn_valid_overlap(train: &EncodedCorpus, sets: &[ValidSet]) {
    use std::collections::HashSet;
    use std::hash::{DefaultHasher, Hash, Hasher};
    let hash = |ids: crate::data::TokenIds<'_>| {
        let mut h = DefaultHasher::new();
        ids.iter().for_each(|id| id.hash(&mut h));
        h.finish()
    };
    let train_src: HashSet<u64> = (0..train.len()).map(|i| hash(train.src(i))).collect();
    let train_tgt: HashSet<u64> = (0..train.len()).map(|i| hash(train.tgt(i))).collect();
    for set in sets {
        let c = &set.corpus;
        let src = (0..c.len())
            .filter(|&i| train_src.contains(&hash(c.src(i))))
            .count();
        let tgt = (0..c.len())
            .filter(|&i| train_tgt.contains(&hash(c.tgt(i))))
            .count();
        if src + tgt > 0 {
            let files: Vec<String> = set.spec.parts.iter().map(describe).collect();
            tracing::warn!(
                set = %set.name,
                files = %files.join(", "),
                shared_source_lines = src,
                shared_target_lines = tgt,
                lines = c.len(),
                "validation set {} shares {src} source and {tgt} target lines (of {}) with the \
                 training text",
                set.name,
                c.len()
            );
        }
    }
}

/// Checks the config against the bundle `dir` it fine-tunes (every key it sets that
/// disagrees is refused, together) and makes `cfg` the bundle's architecture and vocabulary
/// ([`init_from`]). Returns the parent and its config.
fn adopt_parent(
    cfg: &mut Config,
    dir: &Path,
    args: &RunArgs,
) -> Result<(init_from::Parent, model::bundle::BundleConfig), RunError> {
    let (parent, parent_config) = init_from::read_parent(dir)?;
    let parent_vocab = init_from::ParentVocab::load(&parent.path, &parent_config)?;
    let explicit = match &args.config {
        Some(path) => crate::config::explicit_keys(path, &args.overrides)?,
        None => Default::default(),
    };
    let keys = init_from::disagreements(cfg, &explicit, &parent_config, &parent_vocab);
    if !keys.is_empty() {
        return Err(init_from::InitFromError::Disagrees {
            bundle: dir.display().to_string(),
            keys,
        }
        .into());
    }
    *cfg = init_from::adopt(cfg, &parent_config, &parent_vocab);
    Ok((parent, parent_config))
}

/// Runs (or resumes) training as `args` say. Returns the outcome and the run directory.
///
/// Started by torchrun, Slurm or with `RANK`/`WORLD_SIZE`/`MASTER_ADDR`/`MASTER_PORT` set
/// ([`distributed::LaunchEnv`]), the process is one rank of a data-parallel job: rank 0 owns
/// the run directory (config, vocabulary, logs, checkpoints); every rank reads the same corpus
/// and trains on its share of each update's batches.
pub fn run(args: &RunArgs) -> Result<(TrainOutcome, RunDir), RunError> {
    let mut cfg = load_config(args)?;
    let launch = distributed::LaunchEnv::from_env()?;
    let rank = launch.as_ref().map_or(0, |l| l.rank);
    let lead = rank == 0;
    let run = RunDir::create(&args.run_dir)?;
    let fresh = !args.resume || run.last().is_none();
    // Fine-tuning starts from the parent's architecture and vocabulary; a resumed run has
    // them in its saved config and run directory already.
    let parent = match (cfg.training.init_from.clone(), fresh) {
        (Some(dir), true) => Some(adopt_parent(&mut cfg, &dir, args)?),
        _ => None,
    };
    if lead {
        if args.resume && run.last().is_none() {
            return Err(RunError::NothingToResume(
                args.run_dir.display().to_string(),
            ));
        }
        if !args.resume && run.last().is_some() {
            return Err(RunError::RunExists(args.run_dir.display().to_string()));
        }
        write_atomic(
            &args.run_dir.join(RUN_CONFIG),
            cfg.absolutized().to_toml().as_bytes(),
        )?;
        if let Some((parent, parent_config)) = &parent {
            init_from::copy_vocab(&parent.path, parent_config, &args.run_dir.join(RUN_VOCAB))?;
            init_from::write_parent(&args.run_dir, parent)?;
        }
    }

    let choice: model::device::DeviceChoice = cfg
        .training
        .device
        .parse()
        .map_err(|e: model::device::ParseDeviceError| RunError::Device(e.to_string()))?;
    let mut device: Device = choice
        .resolve()
        .map_err(|e| RunError::Device(e.to_string()))?;
    if let (Some(l), Device::Cuda(0)) = (&launch, device) {
        // One GPU per rank of a machine (auto, cuda and cuda:0 alike), as torchrun and srun
        // jobs expect.
        device = model::device::DeviceChoice::Cuda(l.local_rank)
            .resolve()
            .map_err(|e| RunError::Device(format!("rank {rank}: {e}")))?;
    }
    if cfg.training.threads > 0 {
        tch::set_num_threads(cfg.training.threads);
    }
    let group = match &launch {
        None => None,
        Some(l) => {
            let backend = match cfg.training.dist_backend.as_str() {
                // NCCL on GPUs when this build has it; Gloo also reduces CUDA tensors,
                // through host memory.
                "auto" => distributed::Backend::auto_for(device),
                other => other.parse()?,
            };
            let timeout = std::time::Duration::from_secs(cfg.training.dist_timeout_secs);
            tracing::info!(launcher = %l.launcher, rank = l.rank, world_size = l.world_size, local_rank = l.local_rank, master = %format!("{}:{}", l.master_addr, l.master_port), %backend, "joining the job");
            Some(distributed::ProcessGroup::join(l, backend, timeout)?)
        }
    };
    tracing::info!(?device, run_dir = %args.run_dir.display(), resume = args.resume, rank, "nmt-train starting");

    // Rank 0 trains the vocabulary (when the config asks for one); the others wait for it.
    let vocabs = if lead {
        let vocabs = prepare_vocab(&cfg, &args.run_dir)?;
        if let Some(g) = &group {
            g.barrier()?;
        }
        vocabs
    } else {
        if let Some(g) = &group {
            g.barrier()?;
        }
        load_or_train_vocab(&cfg, &args.run_dir, Some(rank))?
    };
    let TrainCorpus { corpus, weights } = read_train(&cfg, &vocabs)?;
    let fingerprint = corpus.fingerprint();
    if let Some(g) = &group {
        let lead_fingerprint = g.broadcast_bytes(fingerprint.as_bytes(), 0)?;
        let lead_fingerprint = String::from_utf8_lossy(&lead_fingerprint).into_owned();
        if lead_fingerprint != fingerprint {
            return Err(RunError::DataDiffers {
                rank,
                mine: fingerprint,
                lead: lead_fingerprint,
            });
        }
    }
    let batcher = TokenBatcher::new(
        &corpus,
        BatchConfig::tokens(cfg.training.batch_tokens),
        cfg.training.seed,
    )?
    .with_weights(&weights)?;
    let valid_sets = read_valid(&cfg, &vocabs)?;
    if lead {
        warn_valid_overlap(&corpus, &valid_sets);
    }
    let mut data = CorpusBatches::new(corpus, batcher);

    let model_cfg = cfg
        .model
        .with_vocab_sizes(vocabs.src.len() as i64, vocabs.tgt.len() as i64);
    // The initial weights come from libtorch's generator: seed it for a reproducible start.
    tch::manual_seed(cfg.training.seed as i64);
    let mut model = NmtModel::new(
        model_cfg,
        (&cfg.data.src_lang, &cfg.data.tgt_lang),
        vocabs.files.clone(),
        Some(fingerprint),
        device,
    )
    .map_err(|e| RunError::Model(e.to_string()))?
    .with_description(cfg.data.description.clone())
    .with_parent(init_from::read_run_parent(&args.run_dir)?);
    tracing::info!(parameters = model.num_parameters(), "model built");
    if let Some((parent, _)) = &parent {
        crate::trainable::TrainableModel::load_weights(&mut model, &parent.path)
            .map_err(|e| RunError::Model(format!("{}: {e}", parent.path.display())))?;
        tracing::info!(parent = %parent.path.display(), step = parent.step, fingerprint = %parent.fingerprint, "fine-tuning: weights loaded from the parent bundle");
    }

    let mut trainer = Trainer::new(model, cfg.training.clone(), &args.run_dir, device)?;
    if let Some(g) = group {
        trainer.join(g);
    }
    if args.resume && lead {
        trainer.resume()?;
        let s = trainer.state();
        tracing::info!(
            step = s.step,
            epoch = s.epoch,
            batch = s.batch_in_epoch,
            "resumed"
        );
    }
    // Every rank starts from rank 0's weights and position (a fresh run's or a resumed one's).
    trainer.start_from_rank0()?;

    // One BLEU scorer per set (each holds its references' statistics).
    let scorers = valid_sets
        .iter()
        .map(|set| {
            if !cfg.training.valid_bleu {
                return Ok(None);
            }
            let streams = vec![set.references.clone()];
            evaluation::Bleu::new(&streams, evaluation::BleuOptions::default())
                .map(Some)
                .map_err(|e| RunError::Bleu(format!("set {}: {e}", set.name)))
        })
        .collect::<Result<Vec<_>, RunError>>()?;
    let scorer_fns: Vec<Box<CorpusScorer<'_>>> = scorers
        .iter()
        .map(|bleu| -> Box<CorpusScorer<'_>> {
            Box::new(
                move |hyps: &[String], _refs: &[String]| -> Result<f64, DynError> {
                    match bleu {
                        Some(b) => Ok(b.corpus_score(hyps)?.score),
                        None => Err("BLEU is off".into()),
                    }
                },
            )
        })
        .collect();
    let valid = Validation {
        sets: valid_sets
            .into_iter()
            .zip(&scorer_fns)
            .zip(&scorers)
            .map(|((set, scorer), bleu)| ValidationSet {
                name: set.name,
                batches: set.batches,
                bleu: bleu.as_ref().map(|_| BleuSetup {
                    references: set.references,
                    vocab: vocabs.tgt.as_ref(),
                    scorer: scorer.as_ref(),
                }),
            })
            .collect(),
        best_on: cfg.training.best_on.clone(),
    };
    let outcome = trainer.train(&mut data, Some(&valid), &RunOptions { quiet: args.quiet })?;
    if cfg.training.average_last >= 2 && trainer.is_lead() {
        average_last(trainer.run_dir(), cfg.training.average_last as usize)?;
    }
    Ok((outcome, trainer.run_dir().clone()))
}

/// The folder `training.average_last` writes the average into, inside the run directory.
pub const AVERAGED_DIR: &str = "averaged";

/// Averages the models of the last `n` checkpoints of `run` into `RUN/averaged` (float32,
/// replaced atomically). Fewer on disk (a short run): those, said in the log.
fn average_last(run: &RunDir, n: usize) -> Result<(), RunError> {
    let steps = run.steps()?;
    let chosen = &steps[steps.len().saturating_sub(n)..];
    if chosen.len() < 2 {
        tracing::warn!(
            wanted = n,
            found = chosen.len(),
            "training.average_last: fewer than 2 checkpoints on disk; nothing averaged"
        );
        return Ok(());
    }
    if chosen.len() < n {
        tracing::warn!(
            wanted = n,
            found = chosen.len(),
            "training.average_last: fewer checkpoints on disk than asked; averaging those"
        );
    }
    let models: Vec<PathBuf> = chosen
        .iter()
        .map(|(_, dir)| dir.join(crate::checkpoint::MODEL_DIR))
        .collect();
    let out = run.root().join(AVERAGED_DIR);
    model::bundle::average(&models, &out, model::bundle::WeightsDtype::Float32)
        .map_err(|e| RunError::Average(e.to_string()))?;
    tracing::info!(
        steps = ?chosen.iter().map(|(step, _)| step).collect::<Vec<_>>(),
        path = %out.display(),
        "checkpoints averaged"
    );
    Ok(())
}
