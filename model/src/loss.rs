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
//!
//! Two entry points compute it: [`label_smoothed_nll`] from logits (autograd differentiates
//! it, as any framework would), and [`projected_label_smoothed_nll`] from the decoder's
//! attentional vectors and the output projection, with the gradient written out. The second
//! is what training uses: the logits are the largest tensor of a step (`tokens × vocabulary`,
//! ~110 MB for a batch of 3,500 target tokens and 8,000 entries), and it allocates them once
//! and, after the GEMM that writes them, passes over them 7 times (two of them rewriting in
//! place), where the log-softmax → gather → sum graph
//! and its backward allocate five such tensors (logits, log-probabilities, the gather's
//! zero-filled gradient, the sum of the two gradients, the log-softmax's gradient) and pass
//! over them about twice as often. Fresh allocations that large cost page faults too.

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

/// Label-smoothed cross-entropy of `hidden · weightᵀ + bias`, the same value as
/// [`label_smoothed_nll`] on those logits (within float rounding), with a gradient that does
/// not go through autograd's log-softmax graph.
///
/// `hidden`: `[N, A]` attentional vectors; `weight`: `[V, A]` the output projection (the
/// target embedding when tied); `bias`: `[V]` or none; `gold`: `[N]` i64 gold ids, rows equal
/// to `pad_id` contributing nothing; `epsilon`: smoothing in `[0, 1)`.
///
/// How: the forward pass runs without autograd and keeps only `E = exp(logits − rowmax)` (in
/// place in the logits' buffer) and the row sums `s`. The gradient of the loss with respect
/// to the logits is `D = E/s − c_gold · onehot(gold) − c_all` on real rows (with `c_gold =
/// 1 − ε − ε/(V−1)` and `c_all = ε/(V−1)`; the softmax term's coefficient `c_gold + V·c_all`
/// is 1) and 0 on pad rows, so the three gradients are
///
/// ```text
/// d hidden = (E·W) ⊙ (1/s) − c_all · colsum(W) − c_gold · W[gold]
/// d weight = Eᵀ·(H ⊙ 1/s) − c_all · 1 ⊗ colsum(H) − c_gold · scatter(gold, H)
/// d bias   = Eᵀ·(1/s)     − c_all · N          − c_gold · count(gold)
/// ```
///
/// i.e. the two GEMMs autograd would run anyway, with every correction applied to the small
/// `[N, A]`/`[V, A]` results instead of to the `[N, V]` matrix. The returned loss carries
/// these gradients through a term that is zero in value and linear in each input
/// (`Σ input ⊙ grad`, minus its detached self), so scaling the loss (per-token normalisation)
/// scales them as it should. Gradients are computed only for inputs that require them and
/// only while autograd is recording (not inside `tch::no_grad`).
pub fn projected_label_smoothed_nll(
    hidden: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    gold: &Tensor,
    pad_id: i64,
    epsilon: f64,
) -> Result<LossOutput, tch::TchError> {
    let (rows, dim) = hidden.size2()?;
    let (vocab, weight_dim) = weight.size2()?;
    let bias_ok = bias.is_none_or(|b| b.size() == [vocab]);
    if weight_dim != dim || !bias_ok || gold.numel() != rows as usize {
        return Err(tch::TchError::Shape(format!(
            "projected loss: hidden {:?}, weight {:?}, bias {:?}, gold {:?} do not fit \
             [N, A], [V, A], [V], [N]",
            hidden.size(),
            weight.size(),
            bias.map(Tensor::size),
            gold.size()
        )));
    }
    let (c_gold, c_all) = if epsilon > 0.0 && vocab > 1 {
        let eps_i = epsilon / (vocab - 1) as f64;
        (1.0 - epsilon - eps_i, eps_i)
    } else {
        (1.0, 0.0)
    };
    // Which inputs want a gradient: a view of a tensor that requires one records it only while
    // autograd is on (tch does not expose the grad-mode flag itself).
    let wants_grad = |t: &Tensor| t.requires_grad() && t.alias().requires_grad();
    let (grad_hidden, grad_weight) = (wants_grad(hidden), wants_grad(weight));
    let grad_bias = bias.is_some_and(wants_grad);

    let gold = gold.f_reshape([-1, 1])?; // [N, 1]
    let pad = gold.f_eq(pad_id)?; // [N, 1]
    let keep = pad.f_logical_not()?.f_to_kind(Kind::Float)?; // [N, 1]
    let tokens = keep.f_sum(Kind::Float)?.f_double_value(&[])? as i64;

    let (loss_value, nll, grads) = tch::no_grad(|| -> Result<_, tch::TchError> {
        let h = hidden.f_to_kind(Kind::Float)?;
        let w = weight.f_to_kind(Kind::Float)?;
        let mut e = match bias {
            Some(b) => b.f_to_kind(Kind::Float)?.f_addmm(&h, &w.f_tr()?)?,
            None => h.f_mm(&w.f_tr()?)?,
        }; // [N, V] logits, then exp(logits - max) in place
        let gold_logit = e.f_gather(1, &gold, false)?;
        let sum_logits = e.f_sum_dim_intlist(1, true, Kind::Float)?;
        let max = e.f_amax(1, true)?;
        let _ = e.f_sub_(&max)?;
        let _ = e.f_exp_()?;
        let sum_exp = e.f_sum_dim_intlist(1, true, Kind::Float)?;
        let lse = max.f_add(&sum_exp.f_log()?)?; // [N, 1]
                                                 // masked_fill (not a multiply by 0) so that a stray inf on a pad row cannot become NaN.
        let nll = lse
            .f_sub(&gold_logit)?
            .f_masked_fill(&pad, 0.0)?
            .f_sum(Kind::Float)?;
        let loss = if c_all > 0.0 {
            let smooth = lse
                .f_mul_scalar(vocab as f64)?
                .f_sub(&sum_logits)?
                .f_masked_fill(&pad, 0.0)?
                .f_sum(Kind::Float)?;
            nll.f_mul_scalar(c_gold)?
                .f_add(&smooth.f_mul_scalar(c_all)?)?
        } else {
            nll.shallow_clone()
        };
        if !(grad_hidden || grad_weight || grad_bias) {
            return Ok((loss, nll, None));
        }
        let scale = keep.f_div(&sum_exp)?; // [N, 1]: 1/s on real rows, 0 on pad rows
        let gold_rows = gold.f_squeeze_dim(1)?;
        let d_hidden = if grad_hidden {
            let d = e.f_mm(&w)?.f_mul(&scale)?;
            let d = d.f_sub(
                &w.f_index_select(0, &gold_rows)?
                    .f_mul(&keep)?
                    .f_mul_scalar(c_gold)?,
            )?;
            Some(if c_all > 0.0 {
                d.f_sub(
                    &keep
                        .f_mul(&w.f_sum_dim_intlist(0, true, Kind::Float)?)?
                        .f_mul_scalar(c_all)?,
                )?
            } else {
                d
            })
        } else {
            None
        };
        let (d_weight, d_bias) = if grad_weight || grad_bias {
            // One GEMM for both: Eᵀ · [H/s | 1/s] → [V, A+1].
            let scaled = h.f_mul(&scale)?;
            let both = e.f_tr()?.f_mm(&Tensor::f_cat(&[&scaled, &scale], 1)?)?;
            let kept_h = h.f_mul(&keep)?;
            let mut d_weight = both.f_narrow(1, 0, dim)?;
            d_weight = d_weight.f_index_add(0, &gold_rows, &kept_h.f_mul_scalar(-c_gold)?)?;
            if c_all > 0.0 {
                d_weight = d_weight.f_sub(
                    &kept_h
                        .f_sum_dim_intlist(0, true, Kind::Float)?
                        .f_mul_scalar(c_all)?,
                )?;
            }
            let mut d_bias = both.f_select(1, dim)?;
            d_bias = d_bias.f_index_add(
                0,
                &gold_rows,
                &keep.f_squeeze_dim(1)?.f_mul_scalar(-c_gold)?,
            )?;
            if c_all > 0.0 {
                d_bias = d_bias.f_sub_scalar(c_all * tokens as f64)?;
            }
            (grad_weight.then_some(d_weight), grad_bias.then_some(d_bias))
        } else {
            (None, None)
        };
        Ok((loss, nll, Some((d_hidden, d_weight, d_bias))))
    })?;

    let loss = match grads {
        None => loss_value,
        Some((d_hidden, d_weight, d_bias)) => {
            // Σ input ⊙ grad: zero once its detached value is subtracted, gradient `grad`.
            let mut carrier: Option<Tensor> = None;
            let inputs = [Some(hidden), Some(weight), bias];
            for (input, grad) in inputs.into_iter().zip([d_hidden, d_weight, d_bias]) {
                if let (Some(input), Some(grad)) = (input, grad) {
                    let term = input
                        .f_mul(&grad.f_to_kind(input.kind())?)?
                        .f_sum(Kind::Float)?;
                    carrier = Some(match carrier {
                        Some(c) => c.f_add(&term)?,
                        None => term,
                    });
                }
            }
            match carrier {
                Some(c) => loss_value.f_add(&c.f_sub(&c.detach())?)?,
                None => loss_value,
            }
        }
    };
    Ok(LossOutput { loss, nll, tokens })
}
