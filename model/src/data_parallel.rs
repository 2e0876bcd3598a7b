//! A training step's loss and gradient computed by several threads at once, each on a slice
//! of the batch's rows, over one copy of the weights.
//!
//! Why: on a CPU libtorch spreads every op over its intra-op threads, and the ops of this
//! network are small (a decoder step multiplies a few hundred rows by 256-wide matrices), so
//! a second intra-op thread mostly waits: measured on the 2-core development VM, training
//! with 2 threads was only ~10 % faster than with 1. Two workers with one thread each, each
//! on half of the rows, keep both cores busy instead.
//!
//! The step stays the same step: the loss is a sum over target tokens, so its gradient is
//! the sum of the slices' gradients (added in worker order), and every worker draws its
//! dropout masks from its own generator seeded from the step's seed ([`crate::dropout`]), so
//! a run is reproducible and resumes exactly whatever the threads' timing. Only the masks
//! themselves differ from a one-worker run (other draws from the same distribution), and
//! the sums' rounding.

use std::sync::Mutex;

use tch::{nn, Kind, Tensor};

use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::loss::{projected_label_smoothed_nll, LossOutput};
use crate::random;
use crate::seq2seq::Seq2Seq;

/// A teacher-forced batch, padded with the pad id.
#[derive(Debug)]
pub struct TeacherForced<'a> {
    /// `[B, S]` i64
    pub src: &'a Tensor,
    /// `[B]` i64, each in `1..=S`
    pub src_lengths: &'a Tensor,
    /// `[B, T]` i64: BOS followed by the target.
    pub tgt_in: &'a Tensor,
    /// `[B, T]` i64: the target followed by EOS.
    pub tgt_out: &'a Tensor,
    /// Real target positions of each row (host values in `0..=T`).
    pub tgt_lengths: &'a [i64],
}

/// Rows `start..start + len` of a [`TeacherForced`] batch, owned (so that a worker thread
/// can take them), the source cut to the slice's longest sentence.
#[derive(Debug)]
struct RowSlice {
    src: Tensor,
    src_lengths: Tensor,
    tgt_in: Tensor,
    tgt_out: Tensor,
    tgt_lengths: Vec<i64>,
}

impl RowSlice {
    fn new(batch: &TeacherForced<'_>, start: usize, len: usize) -> Result<Self, ModelError> {
        let (s, l) = (start as i64, len as i64);
        let src_lengths = batch.src_lengths.f_narrow(0, s, l)?;
        let longest = src_lengths.f_max()?.f_int64_value(&[])?;
        Ok(Self {
            src: batch.src.f_narrow(0, s, l)?.f_narrow(1, 0, longest)?,
            src_lengths,
            tgt_in: batch.tgt_in.f_narrow(0, s, l)?,
            tgt_out: batch.tgt_out.f_narrow(0, s, l)?,
            tgt_lengths: batch.tgt_lengths[start..start + len].to_vec(),
        })
    }

    fn batch(&self) -> TeacherForced<'_> {
        TeacherForced {
            src: &self.src,
            src_lengths: &self.src_lengths,
            tgt_in: &self.tgt_in,
            tgt_out: &self.tgt_out,
            tgt_lengths: &self.tgt_lengths,
        }
    }
}

/// The label-smoothed loss (`epsilon`) summed over the batch's real target positions, the
/// output projection fused with the loss ([`projected_label_smoothed_nll`]); `train` turns
/// dropout on. Checks the batch's ids and shapes first.
pub fn teacher_forced_loss(
    model: &Seq2Seq,
    batch: &TeacherForced<'_>,
    epsilon: f64,
    train: bool,
) -> Result<LossOutput, ModelError> {
    model.check_source(batch.src, batch.src_lengths)?;
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
        batch.src,
        batch.src_lengths,
        batch.tgt_in,
        batch.tgt_lengths,
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

/// A second `Seq2Seq` whose parameters are views of `vars`' storage (no copy of the weights;
/// the cost is a short-lived random initialisation). Writes to the weights (an optimizer
/// step, loading a checkpoint in place) are seen by both. The returned store must outlive
/// the model.
pub fn share_weights(
    vars: &nn::VarStore,
    config: &ModelConfig,
) -> Result<(nn::VarStore, Seq2Seq), ModelError> {
    let shared = nn::VarStore::new(vars.device());
    let model = Seq2Seq::new(&shared.root(), config)?;
    let source = vars.variables();
    tch::no_grad(|| {
        for (name, mut var) in shared.variables() {
            // Both stores are built from the same config, so the names match; `set_data`
            // points the replica's tensor (and every alias of it, such as a tied
            // embedding) at the original's storage, dtype included.
            match source.get(&name) {
                Some(original) => var.set_data(original),
                None => {
                    return Err(ModelError::Config(format!(
                        "no variable {name} in the model to share"
                    )))
                }
            }
        }
        Ok(())
    })?;
    Ok((shared, model))
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

/// Model replicas for the helper threads of [`DataParallel::backward`].
pub struct DataParallel {
    /// `workers - 1` replicas sharing the model's weights; taken by the helper threads for
    /// the duration of a step.
    replicas: Mutex<Vec<(nn::VarStore, Seq2Seq)>>,
    workers: usize,
}

impl DataParallel {
    /// `workers` threads per step in all, the calling thread included (at least 1).
    pub fn new(
        vars: &nn::VarStore,
        config: &ModelConfig,
        workers: usize,
    ) -> Result<Self, ModelError> {
        let workers = workers.max(1);
        let replicas = (1..workers)
            .map(|_| share_weights(vars, config))
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
    /// workers, each with `threads / workers` intra-op threads; `seed` fixes every worker's
    /// dropout masks. The returned loss and nll are plain values (no graph).
    pub fn backward(
        &self,
        model: &Seq2Seq,
        vars: &nn::VarStore,
        batch: &TeacherForced<'_>,
        epsilon: f64,
        scale: f64,
        seed: u64,
    ) -> Result<LossOutput, ModelError> {
        let slices = split_rows(batch.tgt_lengths, self.workers);
        if slices.len() <= 1 {
            random::seed(seed);
            return backward_slice(model, batch, epsilon, scale);
        }
        let parts = slices
            .iter()
            .map(|&(start, len)| RowSlice::new(batch, start, len))
            .collect::<Result<Vec<_>, _>>()?;
        let mut replicas = self
            .replicas
            .lock()
            .map_err(|_| ModelError::Config("a training worker panicked earlier".into()))?;
        let helpers: Vec<(nn::VarStore, Seq2Seq)> = replicas.drain(..slices.len() - 1).collect();
        let threads = tch::get_num_threads();
        let per_worker = (threads / slices.len() as i32).max(1);
        let mut parts = parts.into_iter();
        let first = parts.next().expect("at least two slices");
        let (first_result, helper_results) = std::thread::scope(|scope| {
            let handles: Vec<_> = helpers
                .into_iter()
                .zip(parts)
                .enumerate()
                .map(|(i, (replica, part))| {
                    scope.spawn(move || {
                        // Intra-op thread counts are per calling thread in libtorch's pool.
                        tch::set_num_threads(per_worker);
                        random::seed(worker_seed(seed, i + 1));
                        let result = backward_slice(&replica.1, &part.batch(), epsilon, scale);
                        (replica, result)
                    })
                })
                .collect();
            tch::set_num_threads(per_worker);
            random::seed(seed);
            let first_result = backward_slice(model, &first.batch(), epsilon, scale);
            let helper_results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
            (first_result, helper_results)
        });
        tch::set_num_threads(threads);
        let mut outputs = vec![first_result];
        let mut used = Vec::new();
        for joined in helper_results {
            match joined {
                Ok((replica, result)) => {
                    outputs.push(result);
                    used.push(replica);
                }
                Err(_) => {
                    outputs.push(Err(ModelError::Config("a training worker panicked".into())))
                }
            }
        }
        // The helpers' gradients go into the model's, in worker order, through one small
        // backward pass (Σ var ⊙ grad), which also covers a variable without a gradient yet.
        let result = (|| -> Result<LossOutput, ModelError> {
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
    batch: &TeacherForced<'_>,
    epsilon: f64,
    scale: f64,
) -> Result<LossOutput, ModelError> {
    let out = teacher_forced_loss(model, batch, epsilon, true)?;
    out.loss.f_mul_scalar(scale)?.f_backward()?;
    Ok(LossOutput {
        loss: out.loss.detach(),
        nll: out.nll,
        tokens: out.tokens,
    })
}
