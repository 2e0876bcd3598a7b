//! One translation seen from inside, for the server (`return_gates`, `return_neurons`) and
//! its web page: a teacher-forced pass over the source and a given target (the returned
//! hypothesis), with each layer's mean gate values per token and chosen units' `h` values.

use std::collections::BTreeMap;

use model::gates::{GateSide, GateSite};
use model::Bundle;
use serde::{Deserialize, Serialize};
use tch::Kind;

use crate::corpus::{batches, from_pieces};
use crate::record::{trace_batch, GateName, Keep};
use crate::AnalysisError;

/// The most units one request may ask for.
pub const MAX_NEURONS: usize = 64;

/// Which direction of an encoder layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Forward,
    Backward,
}

/// `encoder` or `decoder`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Encoder,
    Decoder,
}

impl From<GateSide> for Side {
    fn from(s: GateSide) -> Self {
        match s {
            GateSide::Encoder => Side::Encoder,
            GateSide::Decoder => Side::Decoder,
        }
    }
}

/// Units of one layer to show: listed by index, and/or the `top` most active ones (largest
/// mean |h| over the sentence).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NeuronRequest {
    pub side: Side,
    /// Layer, from 0 (next to the embeddings).
    pub layer: usize,
    /// Encoder direction (default forward; the decoder has only forward).
    #[serde(default)]
    pub direction: Direction,
    /// Unit indices, each below the model's hidden size.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 64))]
    pub neurons: Vec<usize>,
    /// Also this many most active units (at most 64).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 64))]
    pub top: Option<usize>,
}

impl NeuronRequest {
    /// The site asked for, checked against `bundle`'s shape.
    pub fn site(&self, bundle: &Bundle) -> Result<GateSite, AnalysisError> {
        let c = bundle.model.config();
        let (side, layers) = match self.side {
            Side::Encoder => (GateSide::Encoder, c.encoder_layers),
            Side::Decoder => (GateSide::Decoder, c.decoder_layers),
        };
        let name = match self.side {
            Side::Encoder => "encoder",
            Side::Decoder => "decoder",
        };
        if self.layer as i64 >= layers {
            return Err(AnalysisError::NoSuchUnit(format!(
                "the {name} has {layers} layers (0..{}); layer {} asked",
                layers - 1,
                self.layer
            )));
        }
        let direction = match self.direction {
            Direction::Forward => 0,
            Direction::Backward if self.side == Side::Encoder && c.bidirectional => 1,
            Direction::Backward => {
                return Err(AnalysisError::NoSuchUnit(format!(
                    "the {name} has no backward direction"
                )))
            }
        };
        if self.neurons.is_empty() && self.top.is_none() {
            return Err(AnalysisError::NoSuchUnit(
                "ask for some units: `neurons` (indices) or `top` (most active)".into(),
            ));
        }
        if self.top == Some(0) {
            return Err(AnalysisError::NoSuchUnit("`top` must be at least 1".into()));
        }
        let most = self.neurons.len().max(self.top.unwrap_or(0));
        if most > MAX_NEURONS {
            return Err(AnalysisError::NoSuchUnit(format!(
                "{most} units asked; at most {MAX_NEURONS} listed and {MAX_NEURONS} most active per request"
            )));
        }
        if let Some(&bad) = self.neurons.iter().find(|&&n| n as i64 >= c.hidden_dim) {
            return Err(AnalysisError::NoSuchUnit(format!(
                "unit {bad}: the model's layers have {} units (0..{})",
                c.hidden_dim,
                c.hidden_dim - 1
            )));
        }
        Ok(GateSite {
            side,
            layer: self.layer,
            direction,
        })
    }
}

/// One layer's mean gate values per token.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LayerGates {
    pub side: Side,
    pub layer: usize,
    pub direction: Direction,
    /// Per gate (`input`, `forget`, `output`; a GRU's `reset`, `update`), the mean over the
    /// layer's units for each token.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub gates: BTreeMap<GateName, Vec<f32>>,
}

/// The gates of a translation.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GateView {
    /// Source pieces, `</s>` last: the encoder's tokens.
    pub source_tokens: Vec<String>,
    /// The pieces the decoder reads, `<s>` first, then the translation (each step's gates
    /// are computed on reading its token).
    pub target_tokens: Vec<String>,
    pub layers: Vec<LayerGates>,
}

/// One unit's `h` per token.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NeuronValues {
    pub index: usize,
    pub h: Vec<f32>,
    /// Mean |h| over the sentence (how `top` ranks units).
    pub mean_abs: f32,
}

/// Chosen units of one layer over a translation.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NeuronView {
    pub side: Side,
    pub layer: usize,
    pub direction: Direction,
    /// The tokens of that side (as in [`GateView`]).
    pub tokens: Vec<String>,
    pub units: Vec<NeuronValues>,
}

/// What was asked about one translation.
#[derive(Clone, Debug, Default)]
pub struct Inspection {
    pub gates: Option<GateView>,
    pub neurons: Option<NeuronView>,
}

/// Looks inside the translation of each `(source pieces, target pieces)` pair (a
/// translation's `source_tokens` and `target_tokens`, so the pass sees exactly the ids the
/// search chose): the gates when `gates`, the units of `neurons` when given.
pub fn inspect(
    bundle: &Bundle,
    pairs: &[(Vec<String>, Vec<String>)],
    gates: bool,
    neurons: Option<&NeuronRequest>,
) -> Result<Vec<Inspection>, AnalysisError> {
    let unit_site = neurons.map(|n| n.site(bundle)).transpose()?;
    let bidirectional = bundle.model.config().bidirectional;
    let sentences = pairs
        .iter()
        .enumerate()
        .map(|(i, (s, t))| from_pieces(bundle, i + 1, s, t))
        .collect::<Result<Vec<_>, _>>()?;
    let keep = Keep {
        gates,
        states: neurons.is_some(),
    };
    let mut out = vec![Inspection::default(); sentences.len()];
    let direction = |d: usize| {
        if d == 1 {
            Direction::Backward
        } else {
            Direction::Forward
        }
    };
    for batch in batches(&sentences, 32, 16_000, bundle.vars.device()) {
        for (row, trace) in trace_batch(&bundle.model, &batch, keep)
            .into_iter()
            .enumerate()
        {
            let i = batch.rows[row];
            let s = &sentences[i];
            if gates {
                let mut layers = Vec::new();
                for (site, st) in &trace.sites {
                    let mut means = BTreeMap::new();
                    for (&name, values) in &st.gates {
                        means.insert(
                            name,
                            Vec::try_from(&values.mean_dim(1, false, Kind::Float))?,
                        );
                    }
                    layers.push(LayerGates {
                        side: site.side.into(),
                        layer: site.layer,
                        direction: direction(site.direction),
                        gates: means,
                    });
                }
                out[i].gates = Some(GateView {
                    source_tokens: s.src_pieces.clone(),
                    target_tokens: s.tgt_pieces.clone(),
                    layers,
                });
            }
            if let (Some(req), Some(site)) = (neurons, unit_site) {
                let h = trace
                    .sites
                    .get(&site)
                    .and_then(|st| st.h.as_ref())
                    .ok_or_else(|| {
                        AnalysisError::NoSuchUnit(format!(
                            "no state of {} was recorded",
                            crate::record::site_label(site, bidirectional)
                        ))
                    })?;
                let mean_abs: Vec<f32> = Vec::try_from(&h.abs().mean_dim(0, false, Kind::Float))?;
                let mut indices = req.neurons.clone();
                if let Some(top) = req.top {
                    let mut ranked: Vec<usize> = (0..mean_abs.len()).collect();
                    ranked.sort_by(|&a, &b| mean_abs[b].total_cmp(&mean_abs[a]).then(a.cmp(&b)));
                    indices.extend(
                        ranked
                            .into_iter()
                            .filter(|u| !req.neurons.contains(u))
                            .take(top),
                    );
                }
                let units = indices
                    .into_iter()
                    .map(|index| {
                        Ok(NeuronValues {
                            index,
                            h: Vec::try_from(&h.select(1, index as i64).contiguous())?,
                            mean_abs: mean_abs[index],
                        })
                    })
                    .collect::<Result<Vec<_>, AnalysisError>>()?;
                out[i].neurons = Some(NeuronView {
                    side: req.side,
                    layer: req.layer,
                    direction: req.direction,
                    tokens: match site.side {
                        GateSide::Encoder => s.src_pieces.clone(),
                        GateSide::Decoder => s.tgt_pieces.clone(),
                    },
                    units,
                });
            }
        }
    }
    Ok(out)
}
