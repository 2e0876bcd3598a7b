//! The training loop: batches → loss → backward → clip → Adam → schedule, with periodic
//! validation (loss, perplexity, greedy BLEU), checkpoints, early stopping and exact resume.
//!
//! Determinism: batch `i` of epoch `e` comes from the [`BatchSource`] as a pure function of
//! `(seed, e, i)`; before each batch libtorch's generator is reseeded from `(seed, e, i)`, so
//! dropout masks do not depend on what ran before (validation, a restart). A checkpoint holds
//! the weights, Adam's moments and the position `(step, e, i)`, so a run resumed from it repeats
//! bit for bit what the uninterrupted run did (on the CPU; CUDA kernels may not be
//! deterministic).

use std::path::Path;
use std::time::Instant;

use tch::Device;

use crate::checkpoint::{self, CheckpointContents, CheckpointError, RunDir, TrainerState};
use crate::config::TrainingConfig;
use crate::log::{self, JsonLog, LogError, TrainRecord, ValidRecord};
use crate::optim::{Adam, OptimError};
use crate::progress::Progress;
use crate::schedule::{LrSchedule, ScheduleError};
use crate::trainable::{BundleInfo, DynError, HostBatch, TrainableModel};

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
    #[error(transparent)]
    Torch(#[from] tch::TchError),
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

/// The validation set: batches for the loss (their `indices` index `references`) and, when
/// set, what greedy BLEU needs.
pub struct Validation<'a> {
    pub batches: Vec<HostBatch>,
    pub bleu: Option<BleuSetup<'a>>,
}

/// Result of one validation.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidScores {
    pub loss: f64,
    pub nll_loss: f64,
    pub ppl: f64,
    pub bleu: Option<f64>,
    /// Greedy translations by sentence index (empty without BLEU).
    pub hypotheses: Vec<String>,
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
        let state = TrainerState::new(cfg.seed, sched.state().clone());
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

    /// Trains on one batch at the current position, advancing it. A non-finite loss or gradient
    /// skips the batch (logged); too many in a row is an error.
    pub fn train_step(&mut self, batch: &HostBatch) -> Result<StepResult, TrainError> {
        let (epoch, index) = (self.state.epoch, self.state.batch_in_epoch);
        let seed = batch_seed(self.state.seed, epoch, index);
        tch::manual_seed(seed);
        let b = batch.to_device(self.device).map_err(TrainError::Data)?;
        self.opt.zero_grad();
        let bf16 = self.cfg.bf16 && self.device.is_cuda();
        let eps = self.cfg.label_smoothing;
        // Per-token normalisation, as fairseq does without sentence averaging.
        let tokens = b.tgt_lengths.iter().sum::<i64>().max(1);
        let out = crate::autocast::with_bf16(bf16, || {
            self.model
                .backward_gold_loss(&b, eps, 1.0 / tokens as f64, seed as u64)
        })
        .map_err(TrainError::Model)?;
        // The same count normalises the reported loss and the gradient.
        let loss_sum = out.loss.f_double_value(&[])?;
        let loss = loss_sum / tokens as f64;
        let nll_loss = out.nll.f_double_value(&[])? / tokens as f64;
        let lr = self.sched.lr_at(self.state.step + 1);
        let mut result = StepResult {
            loss,
            nll_loss,
            tokens: out.tokens,
            grad_norm: f64::NAN,
            lr,
            applied: false,
        };
        if loss.is_finite() {
            result.grad_norm = self.opt.clip_grad_norm(self.cfg.clip_norm)?;
        }
        self.state.batch_in_epoch += 1;
        if loss.is_finite() && result.grad_norm.is_finite() {
            self.opt.step(lr)?;
            self.state.step += 1;
            self.state.tokens_seen += out.tokens as u64;
            self.state.consecutive_nonfinite = 0;
            result.applied = true;
        } else {
            self.opt.zero_grad();
            self.state.skipped_batches += 1;
            self.state.consecutive_nonfinite += 1;
            tracing::warn!(
                step = self.state.step,
                epoch,
                batch = index,
                loss,
                grad_norm = result.grad_norm,
                "non-finite loss or gradient: batch skipped"
            );
            if self.state.consecutive_nonfinite >= self.cfg.max_nonfinite.max(1) {
                return Err(TrainError::NonFinite {
                    count: self.state.consecutive_nonfinite,
                    limit: self.cfg.max_nonfinite,
                    step: self.state.step,
                    epoch,
                    batch: index,
                });
            }
        }
        Ok(result)
    }

    /// Validation loss, perplexity and (when set up) greedy BLEU, with dropout off.
    pub fn validate(&self, valid: &Validation<'_>) -> Result<ValidScores, TrainError> {
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
                        return Err(TrainError::Validation(format!(
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
                            .map_err(|e| TrainError::Validation(format!("detokenizing: {e}")))?;
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
                    return Err(TrainError::Validation(format!(
                        "{} references for {} validation sentences",
                        setup.references.len(),
                        hyps.len()
                    )));
                }
                Some(
                    (setup.scorer)(&hyps, &setup.references)
                        .map_err(|e| TrainError::Validation(e.to_string()))?,
                )
            }
        };
        Ok(ValidScores {
            loss: loss / t,
            nll_loss: nll / t,
            ppl: (nll / t).exp(),
            bleu,
            hypotheses: hyps,
        })
    }

    /// Writes a checkpoint of the current state (skipped when one exists for this step).
    pub fn save(&mut self, is_best: bool) -> Result<(), TrainError> {
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
        let mut train_log = JsonLog::open(&root.join(log::TRAIN_LOG))?;
        let started = Instant::now();
        let base_elapsed = self.state.elapsed_secs;
        let mut books = ValidationBooks {
            log: JsonLog::open(&root.join(log::VALID_LOG))?,
            interval: Interval::new(started),
            started,
            base_elapsed,
            progress: Progress::new(
                (cfg.max_steps > 0).then_some(cfg.max_steps),
                self.state.step,
                opts.quiet,
            ),
        };
        let mut losses = Vec::new();
        let mut last_valid = None;
        let mut interval = Interval::new(started);
        let mut epoch_len = data.epoch_len(self.state.epoch).map_err(TrainError::Data)?;

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
                if cfg.validate_every == 0 {
                    if let Some(v) = valid {
                        let outcome = self.run_validation(v, &mut books)?;
                        last_valid = Some(outcome.scores);
                        self.state.elapsed_secs = books.elapsed();
                        self.save(outcome.is_best)?;
                        if outcome.stop {
                            break StopReason::EarlyStopping;
                        }
                    }
                }
                continue;
            }
            let batch = data
                .batch(self.state.epoch, self.state.batch_in_epoch)
                .map_err(TrainError::Data)?;
            let step_before = self.state.step;
            let r = self.train_step(&batch)?;
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
                interval = Interval::new(Instant::now());
            }
            let validate_now = cfg.validate_every > 0 && step.is_multiple_of(cfg.validate_every);
            let mut is_best = false;
            let mut stop = false;
            if validate_now {
                if let Some(v) = valid {
                    let outcome = self.run_validation(v, &mut books)?;
                    is_best = outcome.is_best;
                    stop = outcome.stop;
                    last_valid = Some(outcome.scores);
                }
            }
            let keep_now = cfg.keep_every > 0 && step.is_multiple_of(cfg.keep_every);
            let save_now = cfg.save_every > 0 && step.is_multiple_of(cfg.save_every);
            if validate_now || keep_now || save_now {
                self.state.elapsed_secs = books.elapsed();
                self.save(is_best)?;
            }
            if stop {
                break StopReason::EarlyStopping;
            }
        };
        // A final validation unless one was just made for this step.
        let validated_here =
            cfg.validate_every > 0 && self.state.step.is_multiple_of(cfg.validate_every);
        let mut is_best = false;
        if let Some(v) = valid {
            if !validated_here && reason != StopReason::EarlyStopping && self.state.step > 0 {
                let outcome = self.run_validation(v, &mut books)?;
                is_best = outcome.is_best;
                last_valid = Some(outcome.scores);
            }
        }
        self.state.elapsed_secs = books.elapsed();
        self.save(is_best)?;
        books.progress.finish();
        tracing::info!(?reason, step = self.state.step, epoch = self.state.epoch, best_bleu = ?self.state.best_bleu, best_step = ?self.state.best_step, "training finished");
        Ok(TrainOutcome {
            reason,
            losses,
            last_valid,
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
        };
        let line = format!(
            "validation step {} epoch {}: loss {:.4} ppl {:.2}{}{}",
            rec.step,
            rec.epoch,
            rec.loss,
            rec.ppl,
            rec.bleu
                .map(|b| format!(" BLEU {b:.2}"))
                .unwrap_or_default(),
            if best { " (best)" } else { "" }
        );
        books.progress.println(&line);
        tracing::info!(step = rec.step, loss = rec.loss, ppl = rec.ppl, bleu = ?rec.bleu, best, "validation");
        books.log.write(&rec)?;
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
    log: JsonLog,
    /// Training tokens since the last validation (for its tokens/s figure).
    interval: Interval,
    started: Instant,
    /// Training time of the run before this call (resumed runs).
    base_elapsed: f64,
    progress: Progress,
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

/// Used by tests and tools: the per-token loss of `batch` with dropout off.
pub fn eval_loss<M: TrainableModel>(
    model: &M,
    batch: &HostBatch,
    device: Device,
    eps: f64,
) -> Result<f64, TrainError> {
    tch::no_grad(|| {
        let b = batch.to_device(device).map_err(TrainError::Data)?;
        let out = model.gold_loss(&b, false, eps).map_err(TrainError::Model)?;
        Ok(out.loss.f_double_value(&[])? / out.tokens.max(1) as f64)
    })
}
