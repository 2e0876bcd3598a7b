//! Compressing a model's weights: round/clip (the G2-LSTM paper's Tables 3–5: every chosen
//! weight becomes one of a few values, stored as a codebook and packed indices) and
//! checkpoint averaging. What is compressed is chosen by [`ParamSet`]; the bundle writer
//! ([`crate::bundle::save_with_storage`]) stores the chosen rows compactly, and loading
//! decodes them to float weights.

use std::ops::Range;

use tch::{nn, Kind, Tensor};

use crate::config::{LowRankRows, ModelConfig};
use crate::error::ModelError;

/// Which weights a compression touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamSet {
    /// The input- and forget-gate rows (a GRU's reset and update rows) of every recurrent
    /// layer's input and recurrent matrices: what the G2-LSTM paper compressed.
    Gates,
    /// Every row of every recurrent layer's input and recurrent matrices.
    Recurrent,
    /// Every weight of the model (embeddings, biases, attention and output layers too).
    All,
}

impl ParamSet {
    pub fn name(self) -> &'static str {
        match self {
            ParamSet::Gates => "gates",
            ParamSet::Recurrent => "recurrent",
            ParamSet::All => "all",
        }
    }
}

/// Rows `rows` of the variable `name` (all its elements when it has one dimension).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub name: String,
    pub rows: Range<i64>,
}

/// Whether `name` is a recurrent layer's input or recurrent matrix (PyTorch's names:
/// `encoder.rnn.weight_ih_l0_reverse`, `decoder.rnn.weight_hh_l1`, ...).
fn is_recurrent_matrix(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    name.contains(".rnn.") && (last.starts_with("weight_ih_l") || last.starts_with("weight_hh_l"))
}

/// The rows of `vars` that `set` chooses, in name order.
pub fn select(vars: &nn::VarStore, config: &ModelConfig, set: ParamSet) -> Vec<Selection> {
    let mut names: Vec<(String, i64)> = vars
        .variables()
        .into_iter()
        .map(|(name, t)| (name, t.size()[0]))
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|(name, rows)| {
            let which = match set {
                ParamSet::Gates if is_recurrent_matrix(&name) => LowRankRows::Gates,
                ParamSet::Recurrent if is_recurrent_matrix(&name) => LowRankRows::All,
                ParamSet::All => LowRankRows::All,
                _ => return None,
            };
            let rows = which.range(config.hidden_dim, rows);
            Some(Selection { name, rows })
        })
        .collect()
}

/// `round_r(x) = round(x / r) · r`, then, with a clip `c`, `clip(x, −c, c)` (the paper's
/// translation setting: r = 0.5, c = 1.0, leaving {0, ±0.5, ±1}).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoundClip {
    pub round: f64,
    pub clip: Option<f64>,
}

impl RoundClip {
    /// Refuses a step or clip that is not a positive finite number.
    pub fn check(&self) -> Result<(), ModelError> {
        if !(self.round.is_finite() && self.round > 0.0) {
            return Err(ModelError::Input(format!(
                "--round must be a positive number, got {}",
                self.round
            )));
        }
        if let Some(c) = self.clip {
            if !(c.is_finite() && c > 0.0) {
                return Err(ModelError::Input(format!(
                    "--clip must be a positive number, got {c}"
                )));
            }
        }
        Ok(())
    }

    /// The rounded (and clipped) values of `t`, as float32.
    pub fn apply(&self, t: &Tensor) -> Tensor {
        let rounded = (t.to_kind(Kind::Float) / self.round).round() * self.round;
        match self.clip {
            Some(c) => rounded.clamp(-c, c),
            None => rounded,
        }
    }
}

/// Rounds (and clips) the chosen rows of `vars` in place; returns what was changed.
pub fn round_clip(
    vars: &nn::VarStore,
    config: &ModelConfig,
    set: ParamSet,
    rc: RoundClip,
) -> Result<Vec<Selection>, ModelError> {
    rc.check()?;
    let chosen = select(vars, config, set);
    let variables = vars.variables();
    tch::no_grad(|| -> Result<(), ModelError> {
        for s in &chosen {
            let var = &variables[&s.name];
            let mut rows = var.narrow(0, s.rows.start, s.rows.end - s.rows.start);
            let new = rc.apply(&rows).to_kind(rows.kind());
            rows.f_copy_(&new)?;
        }
        Ok(())
    })?;
    Ok(chosen)
}

/// The elementwise mean of several stores of one architecture, written into `target`
/// (fairseq's `average_checkpoints`). Every store must have the same variables and shapes.
pub fn average_into(target: &nn::VarStore, sources: &[&nn::VarStore]) -> Result<(), ModelError> {
    if sources.is_empty() {
        return Err(ModelError::Input("nothing to average".into()));
    }
    let target_vars = target.variables();
    let all: Vec<_> = sources.iter().map(|s| s.variables()).collect();
    tch::no_grad(|| -> Result<(), ModelError> {
        for (name, var) in &target_vars {
            let mut sum = Tensor::zeros(var.size(), (Kind::Double, var.device()));
            for (i, vars) in all.iter().enumerate() {
                let t = vars.get(name).ok_or_else(|| {
                    ModelError::Input(format!("checkpoint {} has no weight {name}", i + 1))
                })?;
                if t.size() != var.size() {
                    return Err(ModelError::Input(format!(
                        "weight {name}: shape {:?} in checkpoint {}, {:?} in the first",
                        t.size(),
                        i + 1,
                        var.size()
                    )));
                }
                sum += t.to_device(var.device()).to_kind(Kind::Double);
            }
            let mean = (sum / all.len() as f64).to_kind(var.kind());
            var.shallow_clone().f_copy_(&mean)?;
        }
        Ok(())
    })
}

/// The best rank-`rank` factors of `w` (`[R, C]`, Eckart–Young): `u` `[R, rank]` (the left
/// singular vectors times the singular values) and `v` `[rank, C]`, in float32, so that
/// `‖w − u v‖²_F` is the sum of the squared singular values left out.
pub fn low_rank_factors(w: &Tensor, rank: i64) -> Result<(Tensor, Tensor), ModelError> {
    let (r, c) = (w.size()[0], w.size()[1]);
    if rank < 1 || rank > r.min(c) {
        return Err(ModelError::Input(format!(
            "rank {rank} for a {r}×{c} matrix: it must be in 1..={}",
            r.min(c)
        )));
    }
    // Reduced SVD (`some`), singular values in descending order; `vecs` holds V, not Vᵀ.
    let (q, s, vecs) = w.to_kind(Kind::Double).f_svd(true, true)?;
    let u = q.narrow(1, 0, rank) * s.narrow(0, 0, rank).unsqueeze(0);
    let v = vecs.narrow(1, 0, rank).tr();
    Ok((u.to_kind(Kind::Float), v.to_kind(Kind::Float)))
}
