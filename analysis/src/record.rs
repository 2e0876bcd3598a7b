//! Recorders that the model's step context hands every gate and state to
//! ([`model::gates::GateRecorder`]), and the per-sentence traces assembled from them.
//!
//! A teacher-forced pass over a [`Batch`] (rows sorted by target length, so the packed
//! decoder keeps the order) calls the recorder once per layer, direction and step. The
//! encoder holds every row at every step (with a `valid` mask); the packed decoder holds
//! only the rows whose target lasts, a prefix of the batch. [`BatchTrace::sentence`] turns
//! those step-major records into one [`SentenceTrace`] per row, in token order (the
//! backward direction's steps reversed).

use std::collections::BTreeMap;
use std::sync::Mutex;

use model::gates::{GateRecorder, GateSide, GateSite, RecordedGates};
use model::Seq2Seq;
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use crate::corpus::Batch;

/// The gates a recorder sees: the LSTM's input, forget and output gates, the GRU's reset
/// and update gates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GateName {
    Input,
    Forget,
    Output,
    Reset,
    Update,
}

impl GateName {
    pub fn name(self) -> &'static str {
        match self {
            GateName::Input => "input",
            GateName::Forget => "forget",
            GateName::Output => "output",
            GateName::Reset => "reset",
            GateName::Update => "update",
        }
    }

    /// The gates of one step, each `[B, H]`, by name.
    pub fn of<'a>(gates: &RecordedGates<'a>) -> Vec<(GateName, &'a Tensor)> {
        match gates {
            RecordedGates::Lstm(g) => vec![
                (GateName::Input, &g.input),
                (GateName::Forget, &g.forget),
                (GateName::Output, &g.output),
            ],
            RecordedGates::Gru { reset, update } => {
                vec![(GateName::Reset, *reset), (GateName::Update, *update)]
            }
        }
    }
}

/// A site's name in file names and tables: `encoder-l0-fwd`, `decoder-l1`.
pub fn site_label(site: GateSite, bidirectional_encoder: bool) -> String {
    match site.side {
        GateSide::Encoder if bidirectional_encoder => format!(
            "encoder-l{}-{}",
            site.layer,
            if site.direction == 0 { "fwd" } else { "bwd" }
        ),
        GateSide::Encoder => format!("encoder-l{}", site.layer),
        GateSide::Decoder => format!("decoder-l{}", site.layer),
    }
}

pub fn side_name(side: GateSide) -> &'static str {
    match side {
        GateSide::Encoder => "encoder",
        GateSide::Decoder => "decoder",
    }
}

/// Every site of a model, encoder first.
pub fn sites(model: &Seq2Seq) -> Vec<GateSite> {
    let c = model.config();
    let directions = if c.bidirectional { 2 } else { 1 };
    let mut out = Vec::new();
    for layer in 0..c.encoder_layers as usize {
        for direction in 0..directions {
            out.push(GateSite {
                side: GateSide::Encoder,
                layer,
                direction,
            });
        }
    }
    for layer in 0..c.decoder_layers as usize {
        out.push(GateSite {
            side: GateSide::Decoder,
            layer,
            direction: 0,
        });
    }
    out
}

/// What a [`TraceRecorder`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keep {
    pub gates: bool,
    pub states: bool,
}

/// One step of one site: `[B_t, H]` float tensors on the CPU, detached.
#[derive(Debug, Default)]
struct StepRecord {
    gates: Vec<(GateName, Tensor)>,
    h: Option<Tensor>,
    c: Option<Tensor>,
}

/// Keeps the gates and/or states of every step (detached, on the CPU) for
/// [`BatchTrace`]. Memory grows with the batch: use one per batch.
pub struct TraceRecorder {
    keep: Keep,
    steps: Mutex<BTreeMap<(GateSite, i64), StepRecord>>,
}

impl TraceRecorder {
    pub fn new(keep: Keep) -> Self {
        Self {
            keep,
            steps: Mutex::new(BTreeMap::new()),
        }
    }

    fn host(t: &Tensor) -> Tensor {
        t.detach().to_device(Device::Cpu).to_kind(Kind::Float)
    }

    fn with_step(&self, site: GateSite, step: i64, f: impl FnOnce(&mut StepRecord)) {
        // A poisoned lock means another recording thread panicked; its panic is the
        // error to see, so keep recording what can be.
        let mut steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        f(steps.entry((site, step)).or_default());
    }

    /// The records, as a trace of `batch`.
    pub fn into_trace(self, batch: &Batch) -> BatchTrace {
        let steps = self.steps.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut by_site: BTreeMap<GateSite, Vec<StepRecord>> = BTreeMap::new();
        for ((site, step), record) in steps {
            let list = by_site.entry(site).or_default();
            debug_assert_eq!(list.len() as i64, step, "steps arrive in order per site");
            list.push(record);
        }
        BatchTrace {
            by_site,
            src_lengths: batch.src_lengths_host.clone(),
            tgt_lengths: batch.tgt_lengths.clone(),
        }
    }
}

impl GateRecorder for TraceRecorder {
    fn record(&self, site: GateSite, step: i64, gates: RecordedGates<'_>, _valid: Option<&Tensor>) {
        if !self.keep.gates {
            return;
        }
        let named: Vec<(GateName, Tensor)> = GateName::of(&gates)
            .into_iter()
            .map(|(n, t)| (n, Self::host(t)))
            .collect();
        self.with_step(site, step, |r| r.gates = named);
    }

    fn record_state(
        &self,
        site: GateSite,
        step: i64,
        h: &Tensor,
        c: Option<&Tensor>,
        _valid: Option<&Tensor>,
    ) {
        if !self.keep.states {
            return;
        }
        let (h, c) = (Self::host(h), c.map(Self::host));
        self.with_step(site, step, |r| {
            r.h = Some(h);
            r.c = c;
        });
    }
}

/// The values of one site over one sentence, in token order, each `[L, H]` (encoder: `L`
/// source pieces; decoder: one row per step, the step that reads `<s>` first).
#[derive(Debug)]
pub struct SiteTrace {
    pub gates: BTreeMap<GateName, Tensor>,
    pub h: Option<Tensor>,
    pub c: Option<Tensor>,
}

/// All sites of one sentence.
#[derive(Debug)]
pub struct SentenceTrace {
    pub sites: BTreeMap<GateSite, SiteTrace>,
}

/// The records of one pass over a batch.
pub struct BatchTrace {
    by_site: BTreeMap<GateSite, Vec<StepRecord>>,
    src_lengths: Vec<i64>,
    tgt_lengths: Vec<i64>,
}

impl BatchTrace {
    /// Row `row` of the batch, in token order.
    pub fn sentence(&self, row: usize) -> SentenceTrace {
        let mut sites = BTreeMap::new();
        for (&site, steps) in &self.by_site {
            let len = match site.side {
                GateSide::Encoder => self.src_lengths[row],
                GateSide::Decoder => self.tgt_lengths[row],
            } as usize;
            let take = |pick: &dyn Fn(&StepRecord) -> Option<&Tensor>| -> Option<Tensor> {
                let rows: Option<Vec<Tensor>> = (0..len)
                    .map(|t| pick(&steps[t]).map(|x| x.get(row as i64)))
                    .collect();
                let stacked = Tensor::stack(&rows?, 0);
                Some(if site.direction == 1 {
                    // Step t of the backward direction read position len − 1 − t.
                    stacked.flip([0])
                } else {
                    stacked
                })
            };
            let names: Vec<GateName> = steps
                .first()
                .map(|s| s.gates.iter().map(|(n, _)| *n).collect())
                .unwrap_or_default();
            let gates = names
                .into_iter()
                .filter_map(|name| {
                    let g = take(&|s: &StepRecord| {
                        s.gates.iter().find(|(n, _)| *n == name).map(|(_, t)| t)
                    })?;
                    Some((name, g))
                })
                .collect();
            let h = take(&|s: &StepRecord| s.h.as_ref());
            let c = take(&|s: &StepRecord| s.c.as_ref());
            sites.insert(site, SiteTrace { gates, h, c });
        }
        SentenceTrace { sites }
    }
}

/// Teacher-forced pass over `batch` (no gradients, no dropout, no noise) with `recorder`
/// seeing every gate and state.
pub fn teacher_forced(model: &Seq2Seq, batch: &Batch, recorder: &dyn GateRecorder) {
    let _guard = tch::no_grad_guard();
    let ctx = model.context(false).with_recorder(recorder);
    let _ = model.forward_packed_attentional(
        &batch.src,
        &batch.src_lengths,
        &batch.tgt_in,
        &batch.tgt_lengths,
        &ctx,
    );
}

/// Traces of every sentence of `batch`, by row.
pub fn trace_batch(model: &Seq2Seq, batch: &Batch, keep: Keep) -> Vec<SentenceTrace> {
    let recorder = TraceRecorder::new(keep);
    teacher_forced(model, batch, &recorder);
    let trace = recorder.into_trace(batch);
    (0..batch.rows.len()).map(|r| trace.sentence(r)).collect()
}
