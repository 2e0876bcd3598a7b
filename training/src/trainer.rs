//! The training loop: batches → loss → backward → clip → Adam → schedule, with periodic
//! validation (loss, perplexity, greedy BLEU), checkpoints, early stopping and exact resume.
//!
//! Determinism: batch `i` of epoch `e` comes from the [`BatchSource`] as a pure function of
//! `(seed, e, i)`; before each batch libtorch's generator is reseeded from `(seed, e, i)`, so
//! dropout masks do not depend on what ran before (validation, a restart). A checkpoint holds
//! the weights, Adam's moments and the position `(step, e, i)`, so a run resumed from it repeats
//! bit for bit what the uninterrupted run did (on the CPU; CUDA kernels may not be
//! deterministic).
//!
//! Updates and processes: one update takes `training.update_freq` batches on each of the job's
//! processes ([`Trainer::join`]); batch `i` of the update's `n` always gets the seed of its
//! position in the epoch, so N processes with one batch each make the same update as one
//! process with `update_freq = N` (gradients are summed by c10d's all-reduce and normalised by
//! the update's target tokens on every rank). Rank 0 validates, logs and writes checkpoints and
//! hands its decisions (best score, schedule, early stop) to the others; see [`crate::ranks`].

use std::path::Path;
use std::time::Instant;

use tch::Device;

use crate::checkpoint::{self, CheckpointContents, CheckpointError, RunDir, TrainerState};
use crate::config::{BestOn, TrainingConfig};
use crate::log::{self, JsonLog, LogError, SetScores, TrainRecord, ValidRecord};
use crate::optim::{Adam, OptimError};
use crate::progress::Progress;
use crate::schedule::{LrSchedule, ScheduleError};
use crate::trainable::{BundleInfo, DynError, HostBatch, TrainableModel};
use distributed::{DistError, ProcessGroup};

pub use crate::trainable::BatchSource;

/// Padding id of every vocabulary.
pub const PAD: i64 = vocab::PAD_ID as i64;

/// Errors that stop training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(
        "{count} consecutive batches gave a non-finite loss or gradient (limit \
         training.max_nonfinite = {limit}); last at step {step}, epoch {epoch}, batch {batch}. \
         Lower training.lr or training.clip_norm, or check the data"
    )]
    NonFinite {
        count: u32,
        limit: u32,
        step: u64,
        epoch: u64,
        batch: u64,
    },
    #[error("epoch {0} has no batches: the training data is empty after filtering")]
    EmptyEpoch(u64),
    #[error("model: {0}")]
    Model(DynError),
    #[error("training data: {0}")]
    Data(DynError),
    #[error("validation: {0}")]
    Validation(String),
    #[error("checkpoint {path}: {message}")]
    Resume { path: String, message: String },
    #[error(transparent)]
    Optim(#[from] OptimError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("tensorboard: {0}")]
    TensorBoard(#[from] crate::tensorboard::TensorBoardError),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    #[error("{error}{context}")]
    Distributed {
        error: DistError,
        /// Which rank stopped, when that can be told (see `ProcessGroup::lagging_ranks`).
        context: String,
    },
    #[error(
        "checkpoint {path}: the run made each update from {saved} batches (processes x \
         training.update_freq), this job from {now}; set training.update_freq so that \
         processes x update_freq = {saved} to resume it"
    )]
    BatchesPerStep { path: String, saved: u64, now: u64 },
    #[error("{0}")]
    Replicas(String),
}

/// Corpus BLEU of hypotheses against references (same order, same length).
pub type CorpusScorer<'a> = dyn Fn(&[String], &[String]) -> Result<f64, DynError> + 'a;

/// What validation BLEU needs besides the model.
pub struct BleuSetup<'a> {
    /// Reference translations (detokenized text), by sentence index.
    pub references: Vec<String>,
    /// Turns hypothesis ids into text.
    pub vocab: &'a dyn vocab::Vocab,
    /// Corpus BLEU of hypotheses against references (same order).
    pub scorer: &'a CorpusScorer<'a>,
}

/// One validation set: its name (`data.valid`'s key, or [`SINGLE_VALID_SET`]), batches for
/// the loss (their `indices` index `references`) and, when set, what greedy BLEU needs.
pub struct ValidationSet<'a> {
    pub name: String,
    pub batches: Vec<HostBatch>,
    pub bleu: Option<BleuSetup<'a>>,
}

/// The name of the validation set of a config with one unnamed `data.valid`.
pub const SINGLE_VALID_SET: &str = "valid";

/// Every validation set of a run, and which of their scores rank validations: choose `best`,
/// drive the plateau schedule and early stopping.
pub struct Validation<'a> {
    pub sets: Vec<ValidationSet<'a>>,
    pub best_on: BestOn,
}

impl<'a> Validation<'a> {
    /// One set, named [`SINGLE_VALID_SET`], that ranks validations on its own.
    pub fn single(batches: Vec<HostBatch>, bleu: Option<BleuSetup<'a>>) -> Self {
        Validation {
            sets: vec![ValidationSet {
                name: SINGLE_VALID_SET.into(),
                batches,
                bleu,
            }],
            best_on: BestOn::Mean,
        }
    }
}

/// Result of one validation.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidScores {
    /// The scores that rank validations ([`Validation::best_on`]): one set's, or the mean
    /// over the sets (loss and BLEU averaged, perplexity `exp` of the mean NLL; BLEU only
    /// when every set has it).
    pub loss: f64,
    pub nll_loss: f64,
    pub ppl: f64,
    pub bleu: Option<f64>,
    /// Every set's own scores, in the order of [`Validation::sets`] (empty on the followers
    /// of a job, which only learn rank 0's ranking scores).
    pub sets: Vec<SetScores>,
    /// Greedy translations of each set by sentence index (empty without BLEU), in the same
    /// order.
    pub hypotheses: Vec<Vec<String>>,
}

/// Result of one update (or skipped batch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepResult {
    /// Label-smoothed loss per target token.
    pub loss: f64,
    pub nll_loss: f64,
    pub tokens: i64,
    pub grad_norm: f64,
    pub lr: f64,
    /// `false` when the batch was skipped (non-finite loss or gradient).
    pub applied: bool,
}

/// Why [`Trainer::train`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    MaxSteps,
    MaxEpochs,
    EarlyStopping,
}

/// Summary of a [`Trainer::train`] call.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    pub reason: StopReason,
    /// `(step, loss per token)` of every batch trained on in this call (skipped ones included,
    /// with their non-finite loss), in order.
    pub losses: Vec<(u64, f64)>,
    pub last_valid: Option<ValidScores>,
}

/// Knobs that are not part of the training configuration.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Hide the progress bar.
    pub quiet: bool,
}

/// The trainer: owns the model, optimizer, schedule and run directory.
pub struct Trainer<M: TrainableModel> {
    model: M,
    opt: Adam,
    sched: LrSchedule,
    cfg: TrainingConfig,
    state: TrainerState,
    run: RunDir,
    device: Device,
    last_saved_step: Option<u64>,
    /// Scores of the latest validation (recorded in bundles).
    last_scores: Option<ValidScores>,
    /// The other processes of a data-parallel job (`None`: training alone).
    group: Option<ProcessGroup>,
}

/// Mixes the run seed with a batch position into a libtorch seed (splitmix64 finaliser: cheap,
/// and nearby positions give unrelated seeds).
pub fn batch_seed(seed: u64, epoch: u64, index: u64) -> i64 {
    let mut z = seed
        .wrapping_add(epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(index.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 1) as i64
}

struct Contents<'a, M: TrainableModel> {
    model: &'a M,
    opt: &'a Adam,
    info: BundleInfo,
}

impl<M: TrainableModel> CheckpointContents for Contents<'_, M> {
    fn write_model(&self, dir: &Path) -> Result<(), String> {
        self.model
            .save_bundle(dir, &self.info)
            .map_err(|e| e.to_string())
    }
    fn write_optimizer(&self, path: &Path) -> Result<(), String> {
        self.opt.save(path).map_err(|e| e.to_string())
    }
}

impl<M: TrainableModel> Trainer<M> {
    /// A fresh trainer for `model` (already on `device`), writing into `run_dir`.
    pub fn new(
        model: M,
        cfg: TrainingConfig,
        run_dir: &Path,
        device: Device,
    ) -> Result<Self, TrainError> {
        let opt = Adam::new(model.var_store(), cfg.adam);
        let sched = LrSchedule::new(cfg.lr, cfg.schedule)?;
        let mut state = TrainerState::new(cfg.seed, sched.state().clone());
        state.batches_per_step = cfg.update_freq.max(1);
        let run = RunDir::create(run_dir)?;
        Ok(Self {
            model,
            opt,
            sched,
            cfg,
            state,
            run,
            device,
            last_saved_step: None,
            last_scores: None,
            group: None,
        })
    }

    /// Makes this trainer one rank of a data-parallel job: each update then takes
    /// `update_freq` batches here and as many on every other rank. Call before
    /// [`Trainer::resume`] and [`Trainer::start_from_rank0`].
    pub fn join(&mut self, group: ProcessGroup) {
        self.state.batches_per_step = self.cfg.update_freq.max(1) * group.world_size() as u64;
        self.group = Some(group);
    }

    /// This process's rank (0 when training alone).
    pub fn rank(&self) -> usize {
        self.group.as_ref().map_or(0, |g| g.rank())
    }

    /// Whether this process validates, logs and writes checkpoints (rank 0).
    pub fn is_lead(&self) -> bool {
        self.rank() == 0
    }

    /// Batches per update over all processes.
    pub fn batches_per_step(&self) -> u64 {
        self.state.batches_per_step
    }

    /// Every rank takes rank 0's weights, optimizer moments and position (after rank 0's
    /// [`Trainer::resume`]), so that a job starts, or resumes, as one model. Does nothing when
    /// training alone.
    pub fn start_from_rank0(&mut self) -> Result<(), TrainError> {
        let Some(group) = &self.group else {
            return Ok(());
        };
        let result = crate::ranks::broadcast_training_state(
            group,
            self.model.var_store(),
            &mut self.opt,
            &mut self.state,
            &mut self.sched,
        );
        self.distributed(result)?;
        self.last_saved_step = Some(self.state.step);
        Ok(())
    }

    /// A distributed error, with which rank stopped when the store can tell.
    fn distributed<T>(&self, result: Result<T, DistError>) -> Result<T, TrainError> {
        result.map_err(|error| {
            let context = match (&error, &self.group) {
                (DistError::Collective { .. }, Some(group)) => {
                    format!(" ({})", group.lagging_ranks())
                }
                _ => String::new(),
            };
            TrainError::Distributed { error, context }
        })
    }

    /// Continues from the run directory's `last` checkpoint. Returns `false` (and changes
    /// nothing) when there is none. The logs are cut back to the checkpoint's step.
    pub fn resume(&mut self) -> Result<bool, TrainError> {
        let Some(dir) = self.run.last() else {
            return Ok(false);
        };
        let bad = |message: String| TrainError::Resume {
            path: dir.display().to_string(),
            message,
        };
        let state = checkpoint::read_state(&dir)?;
        if state.seed != self.cfg.seed {
            return Err(bad(format!(
                "the run was started with training.seed = {}, the config now says {}; an exact \
                 resume needs the same seed",
                state.seed, self.cfg.seed
            )));
        }
        if state.batches_per_step != self.state.batches_per_step {
            return Err(TrainError::BatchesPerStep {
                path: dir.display().to_string(),
                saved: state.batches_per_step,
                now: self.state.batches_per_step,
            });
        }
        self.model
            .load_weights(&dir.join(checkpoint::MODEL_DIR))
            .map_err(|e| bad(format!("loading weights: {e}")))?;
        self.opt
            .load(&dir.join(checkpoint::OPTIMIZER_FILE))
            .map_err(|e| bad(e.to_string()))?;
        self.sched.restore(state.schedule.clone());
        log::truncate_after(&self.run.root().join(log::TRAIN_LOG), state.step)?;
        log::truncate_after(&self.run.root().join(log::VALID_LOG), state.step)?;
        self.last_saved_step = Some(state.step);
        self.state = state;
        Ok(true)
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The run directory.
    pub fn run_dir(&self) -> &RunDir {
        &self.run
    }

    /// Progress so far.
    pub fn state(&self) -> &TrainerState {
        &self.state
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &Adam {
        &self.opt
    }

    /// Trains on one batch at the current position, advancing it: [`Trainer::train_update`]
    /// with that one batch.
    pub fn train_step(&mut self, batch: &HostBatch) -> Result<StepResult, TrainError> {
        let index = self.state.batch_in_epoch;
        self.train_update(&[(index, batch)], 1)
    }

    /// One update from the `count` batches at the current position of the epoch, of which this
    /// process holds `batches` (`(index in the epoch, batch)`; other ranks hold the rest),
    /// advancing the position by `count`. Each batch's dropout masks come from the seed of its
    /// position; the gradients of all of them (summed over the job's ranks) are normalised by
    /// their target tokens. A non-finite loss or gradient skips the update (logged); too many
    /// in a row is an error.
    pub fn train_update(
        &mut self,
        batches: &[(u64, &HostBatch)],
        count: u64,
    ) -> Result<StepResult, TrainError> {
        let epoch = self.state.epoch;
        let first = self.state.batch_in_epoch;
        self.opt.zero_grad();
        let bf16 = self.cfg.bf16 && self.device.is_cuda();
        let eps = self.cfg.label_smoothing;
        let local_tokens: i64 = batches
            .iter()
            .map(|(_, b)| b.target_tokens(PAD) as i64)
            .sum();
        // Per-token normalisation over the whole update, as fairseq does without sentence
        // averaging; in a job the count is the sum over ranks, known before any backward pass
        // so that every rank scales its gradients alike.
        let tokens = match &self.group {
            None => local_tokens,
            Some(group) => {
                let summed = crate::ranks::sum_values(group, &[local_tokens as f64]);
                self.distributed(summed)?[0].round() as i64
            }
        }
        .max(1);
        let (mut loss_sum, mut nll_sum) = (0.0, 0.0);
        for &(index, batch) in batches {
            let seed = batch_seed(self.state.seed, epoch, index);
            tch::manual_seed(seed);
            let b = batch.to_device(self.device).map_err(TrainError::Data)?;
            let out = crate::autocast::with_bf16(bf16, || {
                self.model
                    .backward_gold_loss(&b, eps, 1.0 / tokens as f64, seed as u64)
            })
            .map_err(TrainError::Model)?;
            loss_sum += out.loss.f_double_value(&[])?;
            nll_sum += out.nll.f_double_value(&[])?;
        }
        if let Some(group) = &self.group {
            let reduced = crate::ranks::sum_gradients(group, self.opt.params())
                .and_then(|()| crate::ranks::sum_values(group, &[loss_sum, nll_sum]));
            let sums = self.distributed(reduced)?;
            (loss_sum, nll_sum) = (sums[0], sums[1]);
        }
        // The same count normalises the reported loss and the gradient.
        let loss = loss_sum / tokens as f64;
        let nll_loss = nll_sum / tokens as f64;
        let lr = self.sched.lr_at(self.state.step + 1);
        let mut result = StepResult {
            loss,
            nll_loss,
            tokens,
            grad_norm: f64::NAN,
            lr,
            applied: false,
        };
        if loss.is_finite() {
            result.grad_norm = self.opt.clip_grad_norm(self.cfg.clip_norm)?;
        }
        self.state.batch_in_epoch += count;
        if loss.is_finite() && result.grad_norm.is_finite() {
            self.opt.step(lr)?;
            self.state.step += 1;
            self.state.tokens_seen += tokens as u64;
            self.state.consecutive_nonfinite = 0;
            result.applied = true;
        } else {
            self.opt.zero_grad();
            self.state.skipped_batches += count;
            self.state.consecutive_nonfinite += 1;
            tracing::warn!(
                step = self.state.step,
                epoch,
                batch = first,
                batches = count,
                loss,
                grad_norm = result.grad_norm,
                "non-finite loss or gradient: update skipped"
            );
            if self.state.consecutive_nonfinite >= self.cfg.max_nonfinite.max(1) {
                return Err(TrainError::NonFinite {
                    count: self.state.consecutive_nonfinite,
                    limit: self.cfg.max_nonfinite,
                    step: self.state.step,
                    epoch,
                    batch: first,
                });
            }
        }
        if let Some(group) = &self.group {
            let marked = group.mark_progress(self.state.step);
            self.distributed(marked)?;
        }
        Ok(result)
    }

    /// This rank's batches of the update that starts at `first` and takes `count` batches:
    /// `update_freq` consecutive positions per rank, rank 0 first. The positions are a pure
    /// function of the update, so that any world size with the same batches per update makes
    /// the same updates.
    fn my_positions(&self, first: u64, count: u64) -> Vec<u64> {
        let per_rank = self.cfg.update_freq.max(1);
        let start = first + self.rank() as u64 * per_rank;
        (start..start + per_rank)
            .filter(|&i| i < first + count)
            .collect()
    }

    /// Validation loss, perplexity and (when set up) greedy BLEU of every set, with dropout
    /// off, and the scores that rank them ([`ValidScores`]).
    pub fn validate(&self, valid: &Validation<'_>) -> Result<ValidScores, TrainError> {
        if valid.sets.is_empty() {
            return Err(TrainError::Validation("no validation set".into()));
        }
        let mut sets = Vec::with_capacity(valid.sets.len());
        let mut hypotheses = Vec::with_capacity(valid.sets.len());
        for set in &valid.sets {
            let (scores, hyps) = self.validate_set(set)?;
            sets.push(scores);
            hypotheses.push(hyps);
        }
        let ranking = match &valid.best_on {
            BestOn::Set(name) => {
                sets.iter()
                    .find(|s| &s.name == name)
                    .cloned()
                    .ok_or_else(|| {
                        TrainError::Validation(format!(
                        "best_on names the validation set {name:?}, which this run does not have"
                    ))
                    })?
            }
            BestOn::Mean => SetScores::mean(&sets),
        };
        Ok(ValidScores {
            loss: ranking.loss,
            nll_loss: ranking.nll_loss,
            ppl: ranking.ppl,
            bleu: ranking.bleu,
            sets,
            hypotheses,
        })
    }

    /// One set's scores and greedy translations (empty without BLEU).
    fn validate_set(
        &self,
        valid: &ValidationSet<'_>,
    ) -> Result<(SetScores, Vec<String>), TrainError> {
        let (mut loss, mut nll, mut tokens) = (0.0, 0.0, 0i64);
        let n_sent = valid
            .batches
            .iter()
            .flat_map(|b| b.indices.iter())
            .map(|i| i + 1)
            .max()
            .unwrap_or(0);
        let mut hyps = vec![String::new(); if valid.bleu.is_some() { n_sent } else { 0 }];
        let bf16 = self.cfg.bf16 && self.device.is_cuda();
        let invalid = |m: String| TrainError::Validation(format!("set {}: {m}", valid.name));
        tch::no_grad(|| -> Result<(), TrainError> {
            for batch in &valid.batches {
                let b = batch.to_device(self.device).map_err(TrainError::Data)?;
                let eps = self.cfg.label_smoothing;
                let out = crate::autocast::with_bf16(bf16, || self.model.gold_loss(&b, false, eps))
                    .map_err(TrainError::Model)?;
                loss += out.loss.f_double_value(&[])?;
                nll += out.nll.f_double_value(&[])?;
                tokens += out.tokens;
                if let Some(setup) = &valid.bleu {
                    let (a, b_len) = (self.cfg.max_decode_len_a, self.cfg.max_decode_len_b);
                    let ids = crate::autocast::with_bf16(bf16, || {
                        self.model.greedy(&b.src, &b.src_lengths, a, b_len)
                    })
                    .map_err(TrainError::Model)?;
                    if ids.len() != batch.indices.len() {
                        return Err(invalid(format!(
                            "greedy search returned {} rows for a batch of {}",
                            ids.len(),
                            batch.indices.len()
                        )));
                    }
                    for (row, &sent) in ids.iter().zip(&batch.indices) {
                        let ids: Vec<u32> = row
                            .iter()
                            .map(|&i| i.clamp(0, u32::MAX as i64) as u32)
                            .collect();
                        hyps[sent] = setup
                            .vocab
                            .decode(&ids)
                            .map_err(|e| invalid(format!("detokenizing: {e}")))?;
                    }
                }
            }
            Ok(())
        })?;
        let t = tokens.max(1) as f64;
        let bleu = match &valid.bleu {
            None => None,
            Some(setup) => {
                if setup.references.len() != hyps.len() {
                    return Err(invalid(format!(
                        "{} references for {} validation sentences",
                        setup.references.len(),
                        hyps.len()
                    )));
                }
                Some((setup.scorer)(&hyps, &setup.references).map_err(|e| invalid(e.to_string()))?)
            }
        };
        let scores = SetScores {
            name: valid.name.clone(),
            loss: loss / t,
            nll_loss: nll / t,
            ppl: (nll / t).exp(),
            bleu,
        };
        Ok((scores, hyps))
    }

    /// Writes a checkpoint of the current state (skipped when one exists for this step).
    /// In a job only rank 0 writes; the others return at once.
    pub fn save(&mut self, is_best: bool) -> Result<(), TrainError> {
        if !self.is_lead() {
            return Ok(());
        }
        if self.last_saved_step == Some(self.state.step) && !is_best {
            return Ok(());
        }
        self.state.schedule = self.sched.state().clone();
        let mut info = BundleInfo {
            step: self.state.step,
            epoch: self.state.epoch,
            ..Default::default()
        };
        if let Some(v) = &self.last_scores {
            info.validation.insert("loss".into(), v.loss);
            info.validation.insert("nll_loss".into(), v.nll_loss);
            info.validation.insert("ppl".into(), v.ppl);
            if let Some(b) = v.bleu {
                info.validation.insert("bleu".into(), b);
            }
            // With several sets, each one's too, as `NAME.bleu` (the keys above rank them).
            if v.sets.len() > 1 {
                for set in &v.sets {
                    let name = &set.name;
                    info.validation.insert(format!("{name}.loss"), set.loss);
                    info.validation.insert(format!("{name}.ppl"), set.ppl);
                    if let Some(b) = set.bleu {
                        info.validation.insert(format!("{name}.bleu"), b);
                    }
                }
            }
        }
        let contents = Contents {
            model: &self.model,
            opt: &self.opt,
            info,
        };
        let dir = self
            .run
            .save(&self.state, &contents, is_best, self.cfg.keep_every)?;
        tracing::info!(step = self.state.step, path = %dir.display(), best = is_best, "checkpoint saved");
        self.last_saved_step = Some(self.state.step);
        Ok(())
    }

    /// Updates best scores from a validation; returns whether it is the best so far.
    fn record_validation(&mut self, v: &ValidScores) -> bool {
        let improved = match (v.bleu, self.state.best_bleu) {
            (Some(b), Some(best)) => b > best,
            (Some(b), None) => b.is_finite(),
            (None, _) => {
                v.loss.is_finite() && self.state.best_loss.is_none_or(|best| v.loss < best)
            }
        };
        if improved {
            self.state.best_bleu = v.bleu;
            self.state.best_loss = Some(v.loss);
            self.state.best_step = Some(self.state.step);
            self.state.validations_since_best = 0;
        } else {
            self.state.validations_since_best += 1;
        }
        if self.sched.on_validation(v.loss, v.bleu) {
            tracing::info!(
                lr = self.sched.state().plateau_lr,
                "validation plateau: learning rate reduced"
            );
        }
        improved
    }

    /// Trains until `max_steps`, `max_epochs` or early stopping, validating and checkpointing
    /// as configured. Can be called on a fresh or a resumed trainer.
    pub fn train(
        &mut self,
        data: &mut dyn BatchSource,
        valid: Option<&Validation<'_>>,
        opts: &RunOptions,
    ) -> Result<TrainOutcome, TrainError> {
        let cfg = self.cfg.clone();
        let root = self.run.root().to_path_buf();
        let lead = self.is_lead();
        // Only rank 0 writes logs; the others train in silence.
        let mut train_log = if lead {
            Some(JsonLog::open(&root.join(log::TRAIN_LOG))?)
        } else {
            None
        };
        let started = Instant::now();
        let base_elapsed = self.state.elapsed_secs;
        let mut books = ValidationBooks {
            log: if lead {
                Some(JsonLog::open(&root.join(log::VALID_LOG))?)
            } else {
                None
            },
            interval: Interval::new(started),
            started,
            base_elapsed,
            progress: Progress::new(
                (cfg.max_steps > 0).then_some(cfg.max_steps),
                self.state.step,
                opts.quiet || !lead,
            ),
            tensorboard: if lead && cfg.tensorboard {
                let resumed_at = (self.state.step > 0).then_some(self.state.step);
                Some(crate::tensorboard::EventWriter::create(&root, resumed_at)?)
            } else {
                None
            },
        };
        let mut losses = Vec::new();
        let mut last_valid = None;
        let mut interval = Interval::new(started);
        let mut epoch_len = data.epoch_len(self.state.epoch).map_err(TrainError::Data)?;
        let per_step = self.batches_per_step();

        let reason = loop {
            if cfg.max_steps > 0 && self.state.step >= cfg.max_steps {
                break StopReason::MaxSteps;
            }
            if epoch_len == 0 {
                return Err(TrainError::EmptyEpoch(self.state.epoch));
            }
            if self.state.batch_in_epoch >= epoch_len {
                tracing::info!(
                    epoch = self.state.epoch,
                    step = self.state.step,
                    "epoch finished"
                );
                self.state.epoch += 1;
                self.state.batch_in_epoch = 0;
                if cfg.max_epochs > 0 && self.state.epoch >= cfg.max_epochs {
                    break StopReason::MaxEpochs;
                }
                epoch_len = data.epoch_len(self.state.epoch).map_err(TrainError::Data)?;
                if cfg.validate_every == 0 && valid.is_some() {
                    let point = self.checkpoint(valid, &mut books, true, true)?;
                    if point.scores.is_some() {
                        last_valid = point.scores;
                    }
                    if point.stop {
                        break StopReason::EarlyStopping;
                    }
                }
                continue;
            }
            // The update's batches: the epoch's next `per_step` (fewer at its end), of which
            // this rank trains on its own share.
            let first = self.state.batch_in_epoch;
            let count = per_step.min(epoch_len - first);
            let batches = self
                .my_positions(first, count)
                .into_iter()
                .map(|i| data.batch(self.state.epoch, i).map(|b| (i, b)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(TrainError::Data)?;
            let refs: Vec<(u64, &HostBatch)> = batches.iter().map(|(i, b)| (*i, b)).collect();
            let step_before = self.state.step;
            let r = self.train_update(&refs, count)?;
            losses.push((step_before + 1, r.loss));
            if !r.applied {
                continue;
            }
            interval.add(&r);
            books.interval.tokens += r.tokens as u64;
            let step = self.state.step;
            let elapsed = books.elapsed();
            self.state.elapsed_secs = elapsed;
            books.progress.update(
                step,
                self.state.epoch,
                r.loss,
                interval.tokens_per_sec(),
                r.lr,
            );
            if cfg.log_every > 0 && step.is_multiple_of(cfg.log_every) {
                let rec = interval.record(step, self.state.epoch, r.lr, r.grad_norm, elapsed);
                if let Some(train_log) = &mut train_log {
                    tracing::info!(
                        step,
                        epoch = rec.epoch,
                        loss = rec.loss,
                        ppl = rec.ppl,
                        lr = rec.lr,
                        tok_per_s = rec.tokens_per_sec,
                        "train"
                    );
                    train_log.write(&rec)?;
                }
                if let Some(tensorboard) = &mut books.tensorboard {
                    tensorboard.write_train(&rec)?;
                }
                interval = Interval::new(Instant::now());
            }
            let validate_now = cfg.validate_every > 0 && step.is_multiple_of(cfg.validate_every);
            let keep_now = cfg.keep_every > 0 && step.is_multiple_of(cfg.keep_every);
            let save_now = cfg.save_every > 0 && step.is_multiple_of(cfg.save_every);
            let point = self.checkpoint(
                valid,
                &mut books,
                validate_now,
                validate_now || keep_now || save_now,
            )?;
            if point.scores.is_some() {
                last_valid = point.scores;
            }
            if point.stop {
                break StopReason::EarlyStopping;
            }
        };
        // A final validation unless one was just made for this step.
        let validated_here =
            cfg.validate_every > 0 && self.state.step.is_multiple_of(cfg.validate_every);
        let validate_last =
            !validated_here && reason != StopReason::EarlyStopping && self.state.step > 0;
        let point = self.checkpoint(valid, &mut books, validate_last, true)?;
        if point.scores.is_some() {
            last_valid = point.scores;
        }
        books.progress.finish();
        if lead {
            tracing::info!(?reason, step = self.state.step, epoch = self.state.epoch, best_bleu = ?self.state.best_bleu, best_step = ?self.state.best_step, "training finished");
        }
        Ok(TrainOutcome {
            reason,
            losses,
            last_valid,
        })
    }

    /// What every validation point does: validates when `validate` (and a validation set is
    /// given), then writes a checkpoint when `save` (the best one when the validation was the
    /// best so far). In a job, rank 0 validates and saves, and every rank adopts its decisions
    /// and checks that its weights are still rank 0's.
    fn checkpoint(
        &mut self,
        valid: Option<&Validation<'_>>,
        books: &mut ValidationBooks,
        validate: bool,
        save: bool,
    ) -> Result<CheckpointPoint, TrainError> {
        let mut point = CheckpointPoint::default();
        if let (true, Some(v)) = (validate, valid) {
            let outcome = if self.is_lead() {
                Some(self.run_validation(v, books)?)
            } else {
                None
            };
            let outcome = self.share_validation(outcome)?;
            point.is_best = outcome.is_best;
            point.stop = outcome.stop;
            point.scores = Some(outcome.scores);
            // A checkpoint written at this step before the validation lacks its scores (and
            // the trainer state it changed): write it again.
            self.last_saved_step = None;
        }
        if save {
            self.state.elapsed_secs = books.elapsed();
            self.save(point.is_best)?;
        }
        Ok(point)
    }

    /// Rank 0's validation outcome and state on every rank (as is when training alone), after
    /// checking that every rank's weights equal rank 0's.
    fn share_validation(
        &mut self,
        outcome: Option<ValidationOutcome>,
    ) -> Result<ValidationOutcome, TrainError> {
        let Some(group) = &self.group else {
            return outcome
                .ok_or_else(|| TrainError::Replicas("no validation outcome on rank 0".into()));
        };
        self.state.schedule = self.sched.state().clone();
        let shared = crate::ranks::share_decision(
            group,
            self.model.var_store(),
            &self.state,
            outcome.as_ref().map(|o| crate::ranks::Decision {
                is_best: o.is_best,
                stop: o.stop,
                loss: crate::ranks::finite(o.scores.loss),
                nll_loss: crate::ranks::finite(o.scores.nll_loss),
                ppl: crate::ranks::finite(o.scores.ppl),
                bleu: o.scores.bleu.and_then(crate::ranks::finite),
            }),
        );
        let (state, decision) = match shared {
            Ok(shared) => shared,
            Err(crate::ranks::ShareError::Dist(e)) => return self.distributed(Err(e)),
            Err(crate::ranks::ShareError::Replicas(m)) => return Err(TrainError::Replicas(m)),
        };
        if let Some(outcome) = outcome {
            return Ok(outcome);
        }
        // A follower: rank 0's bookkeeping, schedule and decision become this rank's.
        self.sched.restore(state.schedule.clone());
        let elapsed = self.state.elapsed_secs;
        self.state = state;
        self.state.elapsed_secs = elapsed;
        Ok(ValidationOutcome {
            scores: ValidScores {
                loss: decision.loss.unwrap_or(f64::NAN),
                nll_loss: decision.nll_loss.unwrap_or(f64::NAN),
                ppl: decision.ppl.unwrap_or(f64::NAN),
                bleu: decision.bleu,
                sets: Vec::new(),
                hypotheses: Vec::new(),
            },
            is_best: decision.is_best,
            stop: decision.stop,
        })
    }

    fn early_stop(&self) -> bool {
        let p = self.cfg.patience;
        if p > 0 && self.state.validations_since_best >= p {
            tracing::info!(patience = p, best_step = ?self.state.best_step, "early stopping: no improvement");
            return true;
        }
        false
    }

    /// Validates, updates the best scores and the schedule, logs the result
    /// (terminal, tracing, `valid.jsonl`) and says whether to stop early.
    fn run_validation(
        &mut self,
        v: &Validation<'_>,
        books: &mut ValidationBooks,
    ) -> Result<ValidationOutcome, TrainError> {
        let tps = books.interval.tokens_per_sec();
        let scores = self.validate(v)?;
        let best = self.record_validation(&scores);
        self.last_scores = Some(scores.clone());
        let rec = ValidRecord {
            step: self.state.step,
            epoch: self.state.epoch,
            loss: scores.loss,
            nll_loss: scores.nll_loss,
            ppl: scores.ppl,
            bleu: scores.bleu,
            lr: self.sched.lr_at(self.state.step.max(1)),
            elapsed_secs: books.elapsed(),
            tokens_per_sec: tps,
            best,
            sets: scores.sets.clone(),
            ranked_on: (scores.sets.len() > 1).then(|| v.best_on.to_string()),
        };
        let line = format!(
            "validation step {} epoch {}: {}{}",
            rec.step,
            rec.epoch,
            rec.summary(),
            if best { " (best)" } else { "" }
        );
        books.progress.println(&line);
        for set in &rec.sets {
            tracing::info!(step = rec.step, set = %set.name, loss = set.loss, ppl = set.ppl, bleu = ?set.bleu, "validation set");
        }
        tracing::info!(step = rec.step, loss = rec.loss, ppl = rec.ppl, bleu = ?rec.bleu, best, "validation");
        if let Some(log) = &mut books.log {
            log.write(&rec)?;
        }
        if let Some(tensorboard) = &mut books.tensorboard {
            tensorboard.write_valid(&rec)?;
        }
        // A plot is a convenience: failing to draw it never stops training.
        if let Err(e) = crate::plot::write_run_curves(self.run.root()) {
            tracing::warn!(error = %e, "could not update the training curves");
        }
        books.interval = Interval::new(Instant::now());
        Ok(ValidationOutcome {
            scores,
            is_best: best,
            stop: self.early_stop(),
        })
    }
}

/// What a validation point did.
#[derive(Default)]
struct CheckpointPoint {
    scores: Option<ValidScores>,
    is_best: bool,
    stop: bool,
}

/// What a validation decided.
struct ValidationOutcome {
    scores: ValidScores,
    /// Best validation so far (the checkpoint becomes `best`).
    is_best: bool,
    /// Patience exhausted: stop training.
    stop: bool,
}

/// The logs and clocks that validations write to during one `train` call.
struct ValidationBooks {
    /// `valid.jsonl` (rank 0 only).
    log: Option<JsonLog>,
    /// Training tokens since the last validation (for its tokens/s figure).
    interval: Interval,
    started: Instant,
    /// Training time of the run before this call (resumed runs).
    base_elapsed: f64,
    progress: Progress,
    /// `RUN/tensorboard/` (rank 0, with `training.tensorboard`).
    tensorboard: Option<crate::tensorboard::EventWriter>,
}

impl ValidationBooks {
    /// Training time of the whole run so far, in seconds.
    fn elapsed(&self) -> f64 {
        self.base_elapsed + self.started.elapsed().as_secs_f64()
    }
}

/// Running sums over a logging interval.
struct Interval {
    start: Instant,
    loss: f64,
    nll: f64,
    tokens: u64,
}

impl Interval {
    fn new(start: Instant) -> Self {
        Self {
            start,
            loss: 0.0,
            nll: 0.0,
            tokens: 0,
        }
    }
    fn add(&mut self, r: &StepResult) {
        self.loss += r.loss * r.tokens as f64;
        self.nll += r.nll_loss * r.tokens as f64;
        self.tokens += r.tokens as u64;
    }
    fn tokens_per_sec(&self) -> f64 {
        let s = self.start.elapsed().as_secs_f64();
        if s > 0.0 {
            self.tokens as f64 / s
        } else {
            0.0
        }
    }
    fn record(&self, step: u64, epoch: u64, lr: f64, grad_norm: f64, elapsed: f64) -> TrainRecord {
        let t = self.tokens.max(1) as f64;
        TrainRecord {
            step,
            epoch,
            loss: self.loss / t,
            nll_loss: self.nll / t,
            ppl: (self.nll / t).exp(),
            lr,
            grad_norm,
            tokens_per_sec: self.tokens_per_sec(),
            elapsed_secs: elapsed,
        }
    }
}
