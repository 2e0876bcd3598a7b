//! What the trainer needs from a network, and the host-side batch it feeds it.
//!
//! The trainer is written against [`TrainableModel`] rather than a concrete network so that its
//! loop, checkpoints and resume logic can be tested on tiny hand-built models; the real
//! `model::Seq2Seq` implements it in [`crate::nmt_model`].

use std::path::Path;

use tch::{Device, Kind, Tensor};

use model::loss::{label_smoothed_nll, LossOutput};

/// Boxed error from a model or data source the trainer does not know the type of.
pub type DynError = Box<dyn std::error::Error + Send + Sync>;

/// A trainable encoder-decoder.
pub trait TrainableModel {
    /// The variables the optimizer updates and checkpoints save.
    fn var_store(&self) -> &tch::nn::VarStore;

    /// Next-token logits.
    ///
    /// `src`: `[batch, src_len]` i64; `src_lengths`: `[batch]` i64; `tgt_in`:
    /// `[batch, tgt_len]` i64 (BOS + target); returns `[batch, tgt_len, vocab]` float logits.
    /// `train` turns dropout on.
    fn forward(
        &self,
        src: &Tensor,
        src_lengths: &Tensor,
        tgt_in: &Tensor,
        train: bool,
    ) -> Result<Tensor, DynError>;

    /// Next-token logits at the target positions that are not padding, and the gold ids there:
    /// (`[N, vocab]` float, `[N]` i64), `N` the batch's target tokens, in any order shared by
    /// the two. This is what the loss needs. The default runs [`TrainableModel::forward`] and
    /// drops the padded positions; a model may skip computing them at all.
    fn forward_gold(&self, batch: &DeviceBatch, train: bool) -> Result<(Tensor, Tensor), DynError> {
        let logits = self.forward(&batch.src, &batch.src_lengths, &batch.tgt_in, train)?;
        let vocab = logits.size().last().copied().unwrap_or(1);
        let gold = batch.tgt_out.f_reshape([-1])?;
        let keep = gold
            .f_ne(vocab::PAD_ID as i64)?
            .f_nonzero()?
            .f_squeeze_dim(1)?;
        Ok((
            logits.f_reshape([-1, vocab])?.f_index_select(0, &keep)?,
            gold.f_index_select(0, &keep)?,
        ))
    }

    /// The label-smoothed loss (`epsilon`) summed over the batch's real target positions:
    /// what training minimises and validation reports. The default scores
    /// [`TrainableModel::forward_gold`]'s logits with [`label_smoothed_nll`]; a model may fuse
    /// its output projection with the loss instead (the lstm-nmt network does, see
    /// `model::loss::projected_label_smoothed_nll`).
    fn gold_loss(
        &self,
        batch: &DeviceBatch,
        train: bool,
        epsilon: f64,
    ) -> Result<LossOutput, DynError> {
        let (logits, gold) = self.forward_gold(batch, train)?;
        Ok(label_smoothed_nll(
            &logits,
            &gold,
            vocab::PAD_ID as i64,
            epsilon,
        )?)
    }

    /// One training step's loss and gradient: [`TrainableModel::gold_loss`] with dropout on,
    /// and the gradient of `loss × scale` accumulated into the variables' `.grad`. `seed`
    /// fixes the step's randomness (dropout masks) together with `tch::manual_seed`, which
    /// the trainer calls with the same value. Returns the loss and nll as plain values.
    ///
    /// The default runs the loss and one backward pass; a model may split the batch among
    /// threads (the lstm-nmt network does on a CPU, see `crate::split_step`).
    fn backward_gold_loss(
        &self,
        batch: &DeviceBatch,
        epsilon: f64,
        scale: f64,
        seed: u64,
    ) -> Result<LossOutput, DynError> {
        let _ = seed;
        let out = self.gold_loss(batch, true, epsilon)?;
        out.loss.f_mul_scalar(scale)?.f_backward()?;
        Ok(LossOutput {
            loss: out.loss.detach(),
            nll: out.nll,
            tokens: out.tokens,
        })
    }

    /// Greedy translations, one id sequence per row, without BOS/EOS.
    ///
    /// `src`: `[batch, src_len]` i64; `src_lengths`: `[batch]` i64; at most
    /// `max_len_a · source length + max_len_b` ids per row.
    fn greedy(
        &self,
        src: &Tensor,
        src_lengths: &Tensor,
        max_len_a: f64,
        max_len_b: i64,
    ) -> Result<Vec<Vec<i64>>, DynError>;

    /// Writes a complete model bundle into `dir` (exists, empty), recording `info`.
    fn save_bundle(&self, dir: &Path, info: &BundleInfo) -> Result<(), DynError>;

    /// Loads the weights from a bundle written by [`TrainableModel::save_bundle`].
    fn load_weights(&mut self, dir: &Path) -> Result<(), DynError>;
}

/// What a bundle records about the training that produced it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BundleInfo {
    pub step: u64,
    pub epoch: u64,
    /// Latest validation scores by name (`loss`, `ppl`, `bleu`).
    pub validation: std::collections::BTreeMap<String, f64>,
}

/// One batch in host memory, row-major and padded with the pad id.
#[derive(Clone, Debug, PartialEq)]
pub struct HostBatch {
    /// `[batch, src_len]`
    pub src: Vec<i64>,
    /// `[batch]`
    pub src_lengths: Vec<i64>,
    /// `[batch, tgt_len]`: BOS + target
    pub tgt_in: Vec<i64>,
    /// `[batch, tgt_len]`: target + EOS
    pub tgt_out: Vec<i64>,
    /// Index of each row's sentence in its corpus: `[batch]`
    pub indices: Vec<usize>,
    pub batch_size: usize,
    pub src_len: usize,
    pub tgt_len: usize,
}

/// A [`HostBatch`] on a device.
#[derive(Debug)]
pub struct DeviceBatch {
    /// `[batch, src_len]` i64
    pub src: Tensor,
    /// `[batch]` i64
    pub src_lengths: Tensor,
    /// `[batch, tgt_len]` i64
    pub tgt_in: Tensor,
    /// `[batch, tgt_len]` i64
    pub tgt_out: Tensor,
    /// Target tokens (EOS included) of each row, on the host: `[batch]`
    pub tgt_lengths: Vec<i64>,
}

impl DeviceBatch {
    /// Rows `start..start + len`, the source cut to their longest sentence (views where
    /// possible; the lengths are copied).
    pub fn rows(&self, start: usize, len: usize) -> Result<DeviceBatch, tch::TchError> {
        let (s, l) = (start as i64, len as i64);
        let src_lengths = self.src_lengths.f_narrow(0, s, l)?;
        let longest = src_lengths.f_max()?.f_int64_value(&[])?;
        Ok(DeviceBatch {
            src: self.src.f_narrow(0, s, l)?.f_narrow(1, 0, longest)?,
            src_lengths,
            tgt_in: self.tgt_in.f_narrow(0, s, l)?,
            tgt_out: self.tgt_out.f_narrow(0, s, l)?,
            tgt_lengths: self.tgt_lengths[start..start + len].to_vec(),
        })
    }
}

/// A batch whose buffers do not match its stated dimensions.
#[derive(Debug, thiserror::Error)]
#[error("malformed batch: {0}")]
pub struct BatchShapeError(pub String);

impl HostBatch {
    /// Checks that every buffer matches the stated dimensions.
    pub fn check(&self) -> Result<(), BatchShapeError> {
        let (b, s, t) = (self.batch_size, self.src_len, self.tgt_len);
        let mut bad = Vec::new();
        if self.src.len() != b * s {
            bad.push(format!("src has {} ids, expected {b}x{s}", self.src.len()));
        }
        if self.tgt_in.len() != b * t || self.tgt_out.len() != b * t {
            bad.push(format!(
                "tgt has {}/{} ids, expected {b}x{t}",
                self.tgt_in.len(),
                self.tgt_out.len()
            ));
        }
        if self.src_lengths.len() != b || self.indices.len() != b {
            bad.push(format!(
                "{} lengths / {} indices for {b} rows",
                self.src_lengths.len(),
                self.indices.len()
            ));
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(BatchShapeError(bad.join("; ")))
        }
    }

    /// Number of target tokens that are not padding.
    pub fn target_tokens(&self, pad_id: i64) -> usize {
        self.tgt_out.iter().filter(|&&t| t != pad_id).count()
    }

    /// Copies the batch to `device`.
    pub fn to_device(&self, device: Device) -> Result<DeviceBatch, DynError> {
        self.check()?;
        let (b, s, t) = (
            self.batch_size as i64,
            self.src_len as i64,
            self.tgt_len as i64,
        );
        let mk = |v: &[i64], shape: &[i64]| -> Result<Tensor, tch::TchError> {
            Tensor::from_slice(v).f_view(shape)?.f_to_device(device)
        };
        Ok(DeviceBatch {
            src: mk(&self.src, &[b, s])?,
            src_lengths: mk(&self.src_lengths, &[b])?,
            tgt_in: mk(&self.tgt_in, &[b, t])?,
            tgt_out: mk(&self.tgt_out, &[b, t])?.f_to_kind(Kind::Int64)?,
            tgt_lengths: self
                .tgt_out
                .chunks(self.tgt_len.max(1))
                .map(|row| row.iter().filter(|&&id| id != vocab::PAD_ID as i64).count() as i64)
                .collect(),
        })
    }
}

/// Training batches, reproducible from `(seed, epoch)`: asking twice for the same epoch and
/// index must give the same batch, in this process or another one.
pub trait BatchSource {
    /// Number of batches in `epoch`.
    fn epoch_len(&mut self, epoch: u64) -> Result<u64, DynError>;
    /// Batch `index` of `epoch` in that epoch's (shuffled) order.
    fn batch(&mut self, epoch: u64, index: u64) -> Result<HostBatch, DynError>;
}
