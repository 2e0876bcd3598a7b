//! What a rank of a data-parallel job does besides its share of the updates: start from rank
//! 0's weights, sum gradients over the ranks, adopt rank 0's decisions at validations, and
//! check that its weights are still rank 0's. Every collective is c10d's ([`distributed`]).

use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Kind, Tensor};

use distributed::{DistError, ProcessGroup, DEFAULT_BUCKET_BYTES};

use crate::checkpoint::TrainerState;
use crate::optim::Adam;
use crate::schedule::LrSchedule;

/// A failure to keep the ranks together.
#[derive(Debug)]
pub enum ShareError {
    Dist(DistError),
    /// The ranks disagree (weights, a message that does not parse).
    Replicas(String),
}

impl From<DistError> for ShareError {
    fn from(e: DistError) -> Self {
        ShareError::Dist(e)
    }
}

/// Rank 0's decision at a validation, sent to the other ranks with its state. Scores are
/// `None` when not finite (JSON has no NaN).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Decision {
    pub is_best: bool,
    pub stop: bool,
    pub loss: Option<f64>,
    pub nll_loss: Option<f64>,
    pub ppl: Option<f64>,
    pub bleu: Option<f64>,
}

/// `Some(x)` when `x` is finite.
pub fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

#[derive(Serialize, Deserialize)]
struct LeadMessage {
    state: TrainerState,
    decision: Option<Decision>,
}

/// The variables of `vars` in name order: the same order on every rank.
fn sorted_variables(vars: &VarStore) -> Vec<(String, Tensor)> {
    let mut named: Vec<(String, Tensor)> = vars.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

/// Each value summed over all ranks (float64, on the CPU).
pub fn sum_values(group: &ProcessGroup, values: &[f64]) -> Result<Vec<f64>, DistError> {
    let mut t = [Tensor::from_slice(values)];
    group.all_reduce_sum(&mut t)?;
    Vec::<f64>::try_from(&t[0]).map_err(|e| DistError::Tensor(e, group.rank()))
}

/// Sums the gradients of `params` over all ranks, in place, in buckets. A parameter that has
/// no gradient on this rank (it trained on no batch this update, or the parameter was not
/// used) gets a zero one first, so that every rank reduces the same list.
pub fn sum_gradients(group: &ProcessGroup, params: &[(String, Tensor)]) -> Result<(), DistError> {
    let tensor_err = |e| DistError::Tensor(e, group.rank());
    let missing: Vec<&Tensor> = params
        .iter()
        .map(|(_, p)| p)
        .filter(|p| !p.grad().defined())
        .collect();
    if !missing.is_empty() {
        // Zero gradients through one tiny backward pass: tch has no way to set `.grad`.
        let mut carrier: Option<Tensor> = None;
        for p in missing {
            let term = p
                .f_sum(Kind::Float)
                .and_then(|s| s.f_mul_scalar(0.0))
                .map_err(tensor_err)?;
            carrier = Some(match carrier {
                Some(c) => c.f_add(&term).map_err(tensor_err)?,
                None => term,
            });
        }
        if let Some(c) = carrier {
            c.f_backward().map_err(tensor_err)?;
        }
    }
    let grads: Vec<Tensor> = params.iter().map(|(_, p)| p.grad()).collect();
    group.all_reduce_sum_bucketed(&grads, DEFAULT_BUCKET_BYTES)
}

/// Every rank takes rank 0's weights, Adam moments, trainer state and schedule.
pub fn broadcast_training_state(
    group: &ProcessGroup,
    vars: &VarStore,
    opt: &mut Adam,
    state: &mut TrainerState,
    sched: &mut LrSchedule,
) -> Result<(), DistError> {
    let mut weights: Vec<Tensor> = sorted_variables(vars).into_iter().map(|(_, t)| t).collect();
    tch::no_grad(|| group.broadcast(&mut weights, 0))?;
    let (names, mut moments): (Vec<String>, Vec<Tensor>) = opt.state_tensors().into_iter().unzip();
    group.broadcast(&mut moments, 0)?;
    opt.load_state(names.into_iter().zip(moments).collect())
        .map_err(|e| DistError::Backend(format!("rank {}: optimizer state: {e}", group.rank())))?;
    state.schedule = sched.state().clone();
    let text = serde_json::to_vec(&*state).unwrap_or_default();
    let text = group.broadcast_bytes(&text, 0)?;
    let lead: TrainerState = serde_json::from_slice(&text).map_err(|e| {
        DistError::Backend(format!(
            "rank {}: rank 0's trainer state: {e}",
            group.rank()
        ))
    })?;
    sched.restore(lead.schedule.clone());
    *state = lead;
    Ok(())
}

/// A weight fingerprint: per variable (in name order) the float64 sum and sum of squares.
/// Ranks that made the same updates have bit-identical weights, hence equal fingerprints.
fn fingerprint(vars: &VarStore) -> Result<Tensor, tch::TchError> {
    let mut parts = Vec::new();
    tch::no_grad(|| -> Result<(), tch::TchError> {
        for (_, t) in sorted_variables(vars) {
            let t = t.f_to_kind(Kind::Double)?;
            parts.push(t.f_sum(Kind::Double)?.f_reshape([1])?);
            parts.push(t.f_square()?.f_sum(Kind::Double)?.f_reshape([1])?);
        }
        Ok(())
    })?;
    Tensor::f_cat(&parts, 0)?.f_to_device(tch::Device::Cpu)
}

/// Checks that every rank's weights equal rank 0's, then hands rank 0's state and decision
/// (`decision` is `Some` on rank 0) to every rank.
pub fn share_decision(
    group: &ProcessGroup,
    vars: &VarStore,
    state: &TrainerState,
    decision: Option<Decision>,
) -> Result<(TrainerState, Decision), ShareError> {
    let tensor_err = |e| ShareError::Dist(DistError::Tensor(e, group.rank()));
    let mine = fingerprint(vars).map_err(tensor_err)?;
    let mut lead = [mine.copy()];
    group.broadcast(&mut lead, 0)?;
    let differs = !mine.equal(&lead[0]);
    let mut flags = vec![0.0f64; group.world_size()];
    flags[group.rank()] = if differs { 1.0 } else { 0.0 };
    let flags = sum_values(group, &flags)?;
    let off: Vec<String> = flags
        .iter()
        .enumerate()
        .filter(|(_, &f)| f > 0.0)
        .map(|(rank, _)| rank.to_string())
        .collect();
    if !off.is_empty() {
        return Err(ShareError::Replicas(format!(
            "rank {}: the weights of rank(s) {} differ from rank 0's at step {}: the ranks no \
             longer train one model (different data, config or libtorch on some machine?)",
            group.rank(),
            off.join(", "),
            state.step
        )));
    }
    let message = LeadMessage {
        state: state.clone(),
        decision: decision.clone(),
    };
    let bytes = serde_json::to_vec(&message).unwrap_or_default();
    let bytes = group.broadcast_bytes(&bytes, 0)?;
    let lead: LeadMessage = serde_json::from_slice(&bytes).map_err(|e| {
        ShareError::Replicas(format!("rank {}: rank 0's decision: {e}", group.rank()))
    })?;
    let decision = lead
        .decision
        .ok_or_else(|| ShareError::Replicas("rank 0 sent no validation decision".into()))?;
    Ok((lead.state, decision))
}
