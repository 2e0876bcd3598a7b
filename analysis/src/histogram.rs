//! Streaming gate histograms: bins of 0.05 on [0, 1] per gate of every layer and direction,
//! and the fractions near 0, near 1 and in between (the G2-LSTM paper's Figures 1 and 3).
//! Memory does not grow with the number of sentences.

use std::collections::BTreeMap;
use std::sync::Mutex;

use model::gates::{GateRecorder, GateSite, RecordedGates};
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use crate::record::{side_name, GateName};

/// Bins on [0, 1].
pub const BINS: usize = 20;
/// Values below this are "closed" (`low`).
pub const LOW: f64 = 0.1;
/// Values at or above this are "open" (`high`).
pub const HIGH: f64 = 0.9;

/// Counts of one gate at one site.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// Values in `[k/20, (k+1)/20)`, the last bin closed on the right.
    pub bins: [u64; BINS],
    pub low: u64,
    pub high: u64,
}

impl Histogram {
    pub fn count(&self) -> u64 {
        self.bins.iter().sum()
    }

    /// The share of each bin (zeros when empty).
    pub fn fractions(&self) -> [f64; BINS] {
        let n = self.count().max(1) as f64;
        self.bins.map(|b| b as f64 / n)
    }

    pub fn low_mid_high(&self) -> (f64, f64, f64) {
        let n = self.count().max(1) as f64;
        let (low, high) = (self.low as f64 / n, self.high as f64 / n);
        let mid = if self.count() == 0 {
            0.0
        } else {
            1.0 - low - high
        };
        (low, mid, high)
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.bins.iter_mut().zip(other.bins) {
            *a += b;
        }
        self.low += other.low;
        self.high += other.high;
    }
}

/// Counts kept as tensors on the pass's device while recording: `BINS` bin counts, then the
/// low and high counts (`[BINS + 2]` i64). Adding to them never waits for the device.
struct Accumulator(Tensor);

impl Accumulator {
    fn new(device: Device) -> Self {
        Self(Tensor::zeros([BINS as i64 + 2], (Kind::Int64, device)))
    }

    /// Adds the values of `values` (any shape, all in [0, 1]).
    fn add(&mut self, values: &Tensor) {
        let v = values.detach().to_kind(Kind::Float).flatten(0, -1);
        if v.numel() == 0 {
            return;
        }
        // Bin k holds [k/20, (k+1)/20); 1.0 itself joins the last bin.
        let bins = (&v * BINS as f64)
            .floor()
            .clamp(0.0, (BINS - 1) as f64)
            .to_kind(Kind::Int64)
            .bincount::<Tensor>(None, BINS as i64);
        let low = v.lt(LOW).sum(Kind::Int64).unsqueeze(0);
        let high = v.ge(HIGH).sum(Kind::Int64).unsqueeze(0);
        self.0 += Tensor::cat(&[bins, low, high], 0);
    }

    fn finish(&self) -> Result<Histogram, tch::TchError> {
        let counts = Vec::<i64>::try_from(&self.0.to_device(Device::Cpu))?;
        let mut h = Histogram::default();
        for (bin, &n) in h.bins.iter_mut().zip(&counts) {
            *bin = n as u64;
        }
        h.low = counts[BINS] as u64;
        h.high = counts[BINS + 1] as u64;
        Ok(h)
    }
}

/// A recorder that adds every valid gate value to its site's histograms.
#[derive(Default)]
pub struct GateHistograms {
    counts: Mutex<BTreeMap<(GateSite, GateName), Accumulator>>,
}

impl GateHistograms {
    pub fn new() -> Self {
        Self::default()
    }

    /// The histograms, by site and gate.
    pub fn finish(self) -> Result<BTreeMap<(GateSite, GateName), Histogram>, tch::TchError> {
        let counts = self.counts.into_inner().unwrap_or_else(|e| e.into_inner());
        counts
            .into_iter()
            .map(|(key, acc)| Ok((key, acc.finish()?)))
            .collect()
    }
}

impl GateRecorder for GateHistograms {
    fn record(&self, site: GateSite, _step: i64, gates: RecordedGates<'_>, valid: Option<&Tensor>) {
        let rows = valid.map(|v| v.nonzero().squeeze_dim(1));
        // A poisoned lock means another recording thread panicked; that panic is the error.
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for (name, values) in GateName::of(&gates) {
            let kept = match &rows {
                Some(rows) => values.index_select(0, rows),
                None => values.shallow_clone(),
            };
            counts
                .entry((site, name))
                .or_insert_with(|| Accumulator::new(values.device()))
                .add(&kept);
        }
    }
}

/// One line of `summary.json`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SummaryRecord {
    pub model: String,
    pub side: &'static str,
    pub layer: usize,
    pub direction: usize,
    pub gate: GateName,
    pub count: u64,
    pub low: f64,
    pub mid: f64,
    pub high: f64,
}

impl SummaryRecord {
    pub fn new(model: &str, site: GateSite, gate: GateName, h: &Histogram) -> Self {
        let (low, mid, high) = h.low_mid_high();
        Self {
            model: model.to_string(),
            side: side_name(site.side),
            layer: site.layer,
            direction: site.direction,
            gate,
            count: h.count(),
            low,
            mid,
            high,
        }
    }
}
