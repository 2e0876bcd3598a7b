//! Gradient flow through the encoder: `‖∂L/∂h_t‖` of every encoder layer and direction
//! against the number of steps before that direction's last step, averaged over sentences.
//! `L` is a sentence's summed target negative log-likelihood (teacher forced, no dropout,
//! no gate noise). The textbook picture of vanishing gradients in recurrent networks; with
//! attention every encoder state also gets gradient directly, so the curves show how much
//! reaches each position in all, not the recurrent path alone.

use std::collections::BTreeMap;
use std::sync::Mutex;

use model::gates::{GateRecorder, GateSide, GateSite, RecordedGates};
use model::Seq2Seq;
use serde::Serialize;
use tch::{Kind, Tensor};

use crate::corpus::Batch;
use crate::record::site_label;
use crate::AnalysisError;

/// Keeps every encoder step's `h` with its autograd graph.
#[derive(Default)]
struct StateKeeper {
    states: Mutex<Vec<(GateSite, i64, Tensor)>>,
}

impl GateRecorder for StateKeeper {
    fn record(&self, _: GateSite, _: i64, _: RecordedGates<'_>, _: Option<&Tensor>) {}

    fn record_state(
        &self,
        site: GateSite,
        step: i64,
        h: &Tensor,
        _: Option<&Tensor>,
        _: Option<&Tensor>,
    ) {
        if site.side == GateSide::Encoder {
            let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
            states.push((site, step, h.shallow_clone()));
        }
    }
}

/// Running sums of gradient norms by (site, distance).
#[derive(Default)]
pub struct GradientFlow {
    sums: BTreeMap<(GateSite, usize), (f64, u64)>,
    pub sentences: usize,
}

/// One point of a curve.
#[derive(Clone, Debug, Serialize)]
pub struct FlowPoint {
    pub site: String,
    /// Steps before the direction's last step (0: the last token the direction reads).
    pub distance: usize,
    pub mean_norm: f64,
    pub sentences: u64,
}

impl GradientFlow {
    /// Runs one batch forward and backward and adds its gradient norms.
    pub fn add_batch(&mut self, model: &Seq2Seq, batch: &Batch) -> Result<(), AnalysisError> {
        let keeper = StateKeeper::default();
        let ctx = model.context(false).with_recorder(&keeper);
        let (logits, positions) = model.forward_packed(
            &batch.src,
            &batch.src_lengths,
            &batch.tgt_in,
            &batch.tgt_lengths,
            &ctx,
        );
        let gold = batch.tgt_out.reshape([-1]).index_select(0, &positions);
        let loss = -logits
            .log_softmax(-1, Kind::Float)
            .gather(1, &gold.unsqueeze(1), false)
            .sum(Kind::Float);
        let states = keeper
            .states
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        if states.is_empty() {
            return Err(AnalysisError::Input(
                "no encoder state was recorded (the pass did not run on a step executor)".into(),
            ));
        }
        if !states[0].2.requires_grad() {
            return Err(AnalysisError::Input(
                "the model's weights do not require gradients; cannot compute gradient flow".into(),
            ));
        }
        let inputs: Vec<&Tensor> = states.iter().map(|(_, _, h)| h).collect();
        let grads = Tensor::f_run_backward(&[&loss], &inputs, false, false)?;
        for ((site, step, _), grad) in states.iter().zip(grads) {
            if !grad.defined() {
                continue;
            }
            let norms: Vec<f64> = Vec::try_from(&grad.to_kind(Kind::Double).norm_scalaropt_dim(
                2.0,
                [1],
                false,
            ))?;
            for (row, norm) in norms.into_iter().enumerate() {
                let len = batch.src_lengths_host[row];
                if *step < len {
                    let distance = (len - 1 - step) as usize;
                    let e = self.sums.entry((*site, distance)).or_insert((0.0, 0));
                    e.0 += norm;
                    e.1 += 1;
                }
            }
        }
        self.sentences += batch.rows.len();
        Ok(())
    }

    /// The curves, one point per (site, distance), sites in model order.
    pub fn points(&self, bidirectional: bool) -> Vec<FlowPoint> {
        self.sums
            .iter()
            .map(|(&(site, distance), &(sum, n))| FlowPoint {
                site: site_label(site, bidirectional),
                distance,
                mean_norm: sum / n.max(1) as f64,
                sentences: n,
            })
            .collect()
    }
}
