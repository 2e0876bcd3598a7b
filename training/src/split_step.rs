//! A training step's loss and gradient computed by several threads at once, each on a slice
//! of the batch's rows, over one copy of the weights.
//!
//! Why: on a CPU libtorch spreads every op over its intra-op threads, and the ops of this
//! network are small (a decoder step multiplies a few hundred rows by 256-wide matrices), so
//! a second intra-op thread mostly waits (docs/BENCHMARKS.md, "Model speed vs PyTorch", has
//! the figures). Two workers with one thread each, each on half of the rows, keep both cores
//! busy instead.
//!
//! The step stays the same step: the loss is a sum over target tokens, so its gradient is
//! the sum of the slices' gradients (added in worker order), and every worker draws its
//! dropout masks from its own generator seeded from the step's seed (`model::dropout`), so
//! a run is reproducible and resumes exactly whatever the threads' timing. Only the masks
//! themselves differ from a one-worker run (other draws from the same distribution), and
//! the sums' rounding.
//!
//! This splits one process's batch among threads; splitting an update among processes is
//! [`crate::ranks`]'s (over c10d).

use std::sync::Mutex;

use tch::{nn, Kind, Tensor};

use model::loss::{projected_label_smoothed_nll, LossOutput};
use model::{random, IntraOpShare, ModelConfig, ModelError, Seq2Seq};

use crate::trainable::DeviceBatch;

/// The label-smoothed loss (`epsilon`) summed over the batch's real target positions, the
/// output projection fused with the loss ([`projected_label_smoothed_nll`]); `train` turns
/// dropout on. Checks the batch's ids and shapes first.
pub fn teacher_forced_loss(
    model: &Seq2Seq,
    batch: &DeviceBatch,
    epsilon: f64,
    train: bool,
) -> Result<LossOutput, ModelError> {
    model.check_source(&batch.src, &batch.src_lengths)?;
    let rows = batch.src.size()[0];
    let (tgt_size, out_size) = (batch.tgt_in.size(), batch.tgt_out.size());
    let steps = tgt_size.get(1).copied().unwrap_or(0);
    if tgt_size.len() != 2
        || tgt_size[0] != rows
        || out_size != tgt_size
        || batch.tgt_lengths.len() as i64 != rows
        || batch.tgt_lengths.iter().any(|&n| !(0..=steps).contains(&n))
    {
        return Err(ModelError::Config(format!(
            "target batch must be [B, T] in and out with B lengths in 0..=T for B = {rows}, \
             got {tgt_size:?}, {out_size:?} and {} lengths",
            batch.tgt_lengths.len()
        )));
    }
    let (attentional, positions) = model.forward_packed_attentional(
        &batch.src,
        &batch.src_lengths,
        &batch.tgt_in,
        &batch.tgt_lengths,
        &model.context(train),
    );
    let gold = batch
        .tgt_out
        .f_reshape([-1])?
        .f_index_select(0, &positions)?;
    let (weight, bias) = model.output_projection();
    Ok(projected_label_smoothed_nll(
        &attentional,
        weight,
        bias,
        &gold,
        vocab::PAD_ID as i64,
        epsilon,
    )?)
}

/// Splits rows into at most `parts` contiguous, non-empty slices with about the same number
/// of target tokens: `(start, len)` each.
pub fn split_rows(tgt_lengths: &[i64], parts: usize) -> Vec<(usize, usize)> {
    let rows = tgt_lengths.len();
    let parts = parts.clamp(1, rows.max(1));
    let total: i64 = tgt_lengths.iter().sum();
    let mut slices = Vec::with_capacity(parts);
    let (mut start, mut seen) = (0usize, 0i64);
    for (row, &n) in tgt_lengths.iter().enumerate() {
        seen += n;
        let part = slices.len() as i64 + 1;
        // Close the slice once its share is reached, leaving a row for each later slice.
        let rows_left = rows - row - 1;
        if slices.len() + 1 < parts
            && seen * parts as i64 >= total * part
            && rows_left >= parts - slices.len() - 1
        {
            slices.push((start, row + 1 - start));
            start = row + 1;
        }
    }
    if start < rows {
        slices.push((start, rows - start));
    }
    slices
}

/// The dropout seed of worker `w` for a step seeded with `seed` (worker 0 uses `seed`).
fn worker_seed(seed: u64, worker: usize) -> u64 {
    seed ^ (worker as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Why a split step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    #[error("a training worker thread panicked{0}")]
    WorkerPanicked(&'static str),
}

/// Model replicas for the helper threads of [`SplitStep::backward`].
pub struct SplitStep {
    /// `workers - 1` replicas sharing the model's weights; taken by the helper threads for
    /// the duration of a step.
    replicas: Mutex<Vec<(nn::VarStore, Seq2Seq)>>,
    workers: usize,
}

impl SplitStep {
    /// `workers` threads per step in all, the calling thread included (at least 1).
    pub fn new(
        vars: &nn::VarStore,
        config: &ModelConfig,
        workers: usize,
    ) -> Result<Self, ModelError> {
        let workers = workers.max(1);
        let replicas = (1..workers)
            .map(|_| model::seq2seq::share_weights(vars, config))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            replicas: Mutex::new(replicas),
            workers,
        })
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The loss of `batch` ([`teacher_forced_loss`], dropout on) and its gradient: the
    /// gradient of `loss × scale` is accumulated into the `.grad` of `vars` (the variables
    /// of `model`) as one backward pass would. The rows are split by [`split_rows`] among the
    /// workers, each with its share of the intra-op threads ([`IntraOpShare`]); `seed` fixes
    /// every worker's dropout masks. The returned loss and nll are plain values (no graph).
    pub fn backward(
        &self,
        model: &Seq2Seq,
        vars: &nn::VarStore,
        batch: &DeviceBatch,
        epsilon: f64,
        scale: f64,
        seed: u64,
    ) -> Result<LossOutput, StepError> {
        let slices = split_rows(&batch.tgt_lengths, self.workers);
        if slices.len() <= 1 {
            random::seed(seed);
            return backward_slice(model, batch, epsilon, scale);
        }
        let parts = slices
            .iter()
            .map(|&(start, len)| batch.rows(start, len))
            .collect::<Result<Vec<_>, _>>()?;
        let mut replicas = self
            .replicas
            .lock()
            .map_err(|_| StepError::WorkerPanicked(" in an earlier step"))?;
        let helpers: Vec<(nn::VarStore, Seq2Seq)> = replicas.drain(..slices.len() - 1).collect();
        let share = IntraOpShare::new(slices.len());
        let mut parts = parts.into_iter();
        let first = parts.next().expect("at least two slices");
        let (first_result, helper_results) = std::thread::scope(|scope| {
            let handles: Vec<_> = helpers
                .into_iter()
                .zip(parts)
                .enumerate()
                .map(|(i, (replica, part))| {
                    let share = &share;
                    scope.spawn(move || {
                        share.enter();
                        random::seed(worker_seed(seed, i + 1));
                        let result = backward_slice(&replica.1, &part, epsilon, scale);
                        (replica, result)
                    })
                })
                .collect();
            random::seed(seed);
            let first_result = backward_slice(model, &first, epsilon, scale);
            let helper_results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
            (first_result, helper_results)
        });
        drop(share);
        let mut outputs = vec![first_result];
        let mut used = Vec::new();
        for joined in helper_results {
            match joined {
                Ok((replica, result)) => {
                    outputs.push(result);
                    used.push(replica);
                }
                Err(_) => outputs.push(Err(StepError::WorkerPanicked(""))),
            }
        }
        // The helpers' gradients go into the model's, in worker order, through one small
        // backward pass (Σ var ⊙ grad), which also covers a variable without a gradient yet.
        let result = (|| -> Result<LossOutput, StepError> {
            let (mut loss, mut nll, mut tokens) = (0.0, 0.0, 0i64);
            for out in outputs {
                let out = out?;
                loss += out.loss.f_double_value(&[])?;
                nll += out.nll.f_double_value(&[])?;
                tokens += out.tokens;
            }
            let main = vars.variables();
            let mut carrier: Option<Tensor> = None;
            for (store, _) in &used {
                for (name, var) in store.variables() {
                    let grad = var.grad();
                    let Some(target) = main.get(&name) else {
                        continue;
                    };
                    if !grad.defined() {
                        continue;
                    }
                    let term = target.f_mul(&grad.detach())?.f_sum(Kind::Float)?;
                    carrier = Some(match carrier {
                        Some(c) => c.f_add(&term)?,
                        None => term,
                    });
                }
            }
            if let Some(c) = carrier {
                c.f_backward()?;
            }
            Ok(LossOutput {
                loss: Tensor::from(loss as f32),
                nll: Tensor::from(nll as f32),
                tokens,
            })
        })();
        for (store, _) in &used {
            for (_, mut var) in store.variables() {
                var.zero_grad();
            }
        }
        replicas.extend(used);
        result
    }
}

/// Loss of one slice, and the backward pass of `loss × scale`.
fn backward_slice(
    model: &Seq2Seq,
    batch: &DeviceBatch,
    epsilon: f64,
    scale: f64,
) -> Result<LossOutput, StepError> {
    let out = teacher_forced_loss(model, batch, epsilon, true)?;
    out.loss.f_mul_scalar(scale)?.f_backward()?;
    Ok(LossOutput {
        loss: out.loss.detach(),
        nll: out.nll,
        tokens: out.tokens,
    })
}
