//! Label-smoothed cross-entropy that ignores padding.
//!
//! The formula is fairseq's `label_smoothed_nll_loss`, per target position `t` with gold `y_t`
//! over a vocabulary of `V` entries, `ε` the smoothing:
//!
//! ```text
//! nll_t    = -log p(y_t)
//! smooth_t = -Σ_v log p(v)                      (all V entries, gold included)
//! loss_t   = (1 - ε - ε/(V-1)) · nll_t + ε/(V-1) · smooth_t
//!          = (1 - ε) · nll_t + ε · mean_{v ≠ y_t} (-log p(v))
//! ```
//!
//! i.e. the cross-entropy against a target distribution with `1-ε` on the gold token and `ε`
//! spread evenly over the `V-1` others. Positions whose gold is the pad id contribute exactly
//! zero to the loss, the nll and the gradient. Sums (not means) are returned together with the
//! token count, so that the caller can normalise per token and aggregate over batches exactly.

use tch::{Kind, Tensor};

/// Summed losses of one batch.
#[derive(Debug)]
pub struct LossOutput {
    /// Label-smoothed loss summed over non-pad positions: scalar f32 with grad.
    pub loss: Tensor,
    /// Plain negative log-likelihood summed over non-pad positions: scalar f32 (no grad);
    /// `exp(nll / tokens)` is the perplexity.
    pub nll: Tensor,
    /// Number of non-pad target positions.
    pub tokens: i64,
}

/// Label-smoothed cross-entropy.
///
/// `logits`: [batch, tgt_len, vocab] any float kind (computed in f32);
/// `target`: [batch, tgt_len] i64 gold ids; `pad_id`: the id to ignore;
/// `epsilon`: smoothing in `[0, 1)`.
pub fn label_smoothed_nll(
    logits: &Tensor,
    target: &Tensor,
    pad_id: i64,
    epsilon: f64,
) -> Result<LossOutput, tch::TchError> {
    let vocab = *logits.size().last().unwrap_or(&1);
    let lprobs = logits
        .f_to_kind(Kind::Float)?
        .f_log_softmax(-1, Kind::Float)?;
    let lprobs = lprobs.f_view([-1, vocab])?;
    let target = target.f_reshape([-1, 1])?;
    let pad = target.f_eq(pad_id)?; // [N, 1]
                                    // Gathering with the pad id is harmless (a valid index); masked_fill (rather than a multiply
                                    // by 0, which would turn a stray inf into NaN) zeroes those rows and their gradient.
    let nll = lprobs
        .f_gather(1, &target, false)?
        .f_neg()?
        .f_masked_fill(&pad, 0.0)?;
    let smooth = lprobs
        .f_sum_dim_intlist(-1, true, Kind::Float)?
        .f_neg()?
        .f_masked_fill(&pad, 0.0)?;
    let nll_sum = nll.f_sum(Kind::Float)?;
    let loss = if epsilon > 0.0 && vocab > 1 {
        let eps_i = epsilon / (vocab - 1) as f64;
        nll_sum
            .f_mul_scalar(1.0 - epsilon - eps_i)?
            .f_add(&smooth.f_sum(Kind::Float)?.f_mul_scalar(eps_i)?)?
    } else {
        nll_sum.shallow_clone()
    };
    let tokens = pad
        .f_logical_not()?
        .f_sum(Kind::Int64)?
        .f_int64_value(&[])?;
    Ok(LossOutput {
        loss,
        nll: nll_sum.detach(),
        tokens,
    })
}
