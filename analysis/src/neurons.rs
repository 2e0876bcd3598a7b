//! Neurons: the values of single units over a sentence (h, c and each gate), and a search
//! over a corpus for the units whose value follows a simple property of the source token
//! (position from the start or the end, a subword continuation, punctuation, a capital
//! letter, the end of the sentence, one of the most frequent tokens): the "counting" and
//! "end of sentence" neurons of a translation model, found by Pearson correlation.

use std::collections::{BTreeMap, HashMap};

use model::gates::{GateSide, GateSite};
use model::Seq2Seq;
use serde::Serialize;
use tch::{Kind, Tensor};

use crate::corpus::Sentence;
use crate::record::{site_label, sites, SentenceTrace};
use crate::AnalysisError;

/// One unit: a layer and direction, and an index in `0..hidden_dim`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Neuron {
    pub site: GateSite,
    pub index: usize,
}

impl Neuron {
    /// Parses `encoder-l1-fwd:17` (the labels of [`site_label`]) against `model`'s sites.
    pub fn parse(text: &str, model: &Seq2Seq) -> Result<Self, AnalysisError> {
        let c = model.config();
        let (label, index) = text.rsplit_once(':').ok_or_else(|| {
            AnalysisError::NoSuchUnit(format!(
                "neuron {text:?}: expected SITE:INDEX, e.g. encoder-l0-fwd:17 or decoder-l1:3"
            ))
        })?;
        let known: Vec<(String, GateSite)> = sites(model)
            .into_iter()
            .map(|s| (site_label(s, c.bidirectional), s))
            .collect();
        let site = known
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, s)| *s)
            .ok_or_else(|| {
                let names: Vec<&str> = known.iter().map(|(l, _)| l.as_str()).collect();
                AnalysisError::NoSuchUnit(format!(
                    "neuron {text:?}: no site {label:?} in this model (it has {})",
                    names.join(", ")
                ))
            })?;
        let index: usize = index.parse().map_err(|_| {
            AnalysisError::NoSuchUnit(format!("neuron {text:?}: {index:?} is not a unit index"))
        })?;
        if index as i64 >= c.hidden_dim {
            return Err(AnalysisError::NoSuchUnit(format!(
                "neuron {text:?}: the model's layers have {} units (0..{})",
                c.hidden_dim,
                c.hidden_dim - 1
            )));
        }
        Ok(Self { site, index })
    }

    pub fn label(&self, bidirectional: bool) -> String {
        format!("{}:{}", site_label(self.site, bidirectional), self.index)
    }
}

/// A property of a source token that a neuron may track.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "token")]
pub enum Property {
    /// Position from the start (0, 1, 2, ...).
    FromStart,
    /// Positions left to the end (`</s>` is 0).
    FromEnd,
    /// The piece continues a word (no leading `▁`).
    Continuation,
    /// The piece is punctuation.
    Punctuation,
    /// The word starts with a capital letter.
    Capital,
    /// The token is `</s>`.
    EndOfSentence,
    /// The token is this piece (one of the corpus's most frequent).
    Token(String),
}

impl Property {
    pub fn name(&self) -> String {
        match self {
            Property::FromStart => "position from start".into(),
            Property::FromEnd => "position from end".into(),
            Property::Continuation => "subword continuation".into(),
            Property::Punctuation => "punctuation".into(),
            Property::Capital => "capital letter".into(),
            Property::EndOfSentence => "end of sentence".into(),
            Property::Token(t) => format!("token {t:?}"),
        }
    }

    /// The property's value at `pos` of `pieces` (`</s>` last).
    fn value(&self, pieces: &[String], pos: usize) -> f64 {
        let piece = pieces[pos].as_str();
        let is_eos = piece == "</s>";
        let word = piece.trim_start_matches('▁');
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        match self {
            Property::FromStart => pos as f64,
            Property::FromEnd => (pieces.len() - 1 - pos) as f64,
            Property::Continuation => flag(!is_eos && !piece.starts_with('▁')),
            Property::Punctuation => flag(
                !is_eos
                    && !word.is_empty()
                    && word
                        .chars()
                        .all(|c| !c.is_alphanumeric() && !c.is_whitespace()),
            ),
            Property::Capital => {
                flag(!is_eos && word.chars().next().is_some_and(char::is_uppercase))
            }
            Property::EndOfSentence => flag(is_eos),
            Property::Token(t) => flag(piece == t),
        }
    }

    /// The fixed properties and the `k` most frequent source pieces of `sentences`
    /// (`</s>` aside: it has its own property).
    pub fn standard_set(sentences: &[Sentence], k: usize) -> Vec<Property> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for s in sentences {
            for p in &s.src_pieces {
                if p != "</s>" {
                    *counts.entry(p.as_str()).or_insert(0) += 1;
                }
            }
        }
        let mut frequent: Vec<(&str, usize)> = counts.into_iter().collect();
        frequent.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut out = vec![
            Property::FromStart,
            Property::FromEnd,
            Property::Continuation,
            Property::Punctuation,
            Property::Capital,
            Property::EndOfSentence,
        ];
        out.extend(
            frequent
                .into_iter()
                .take(k)
                .map(|(p, _)| Property::Token(p.to_string())),
        );
        out
    }
}

/// Which state of a unit: the output `h` or the cell `c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    H,
    C,
}

/// The encoder states of a corpus, token by token, and the properties of those tokens.
pub struct NeuronSearch {
    properties: Vec<Property>,
    /// Per property, its value at every token seen.
    values: Vec<Vec<f64>>,
    /// Per (site, state), the `[L, H]` states of every sentence seen.
    states: BTreeMap<(GateSite, State), Vec<Tensor>>,
}

/// A unit's correlation with a property.
#[derive(Clone, Debug, Serialize)]
pub struct NeuronScore {
    pub neuron: String,
    pub state: State,
    /// Pearson's r over all source tokens.
    pub r: f64,
    #[serde(skip)]
    pub unit: Neuron,
}

/// The units that follow one property best (largest |r|).
#[derive(Clone, Debug, Serialize)]
pub struct PropertyResult {
    pub property: Property,
    pub name: String,
    pub tokens: usize,
    /// Tokens where the property holds (for flags) or its mean (for positions).
    pub mean: f64,
    pub top: Vec<NeuronScore>,
}

impl NeuronSearch {
    pub fn new(properties: Vec<Property>) -> Self {
        Self {
            values: vec![Vec::new(); properties.len()],
            properties,
            states: BTreeMap::new(),
        }
    }

    /// Adds one sentence's encoder states.
    pub fn add(&mut self, sentence: &Sentence, trace: &SentenceTrace) {
        let n = sentence.src_pieces.len();
        for (p, values) in self.properties.iter().zip(&mut self.values) {
            values.extend((0..n).map(|pos| p.value(&sentence.src_pieces, pos)));
        }
        for (&site, st) in &trace.sites {
            if site.side != GateSide::Encoder {
                continue;
            }
            for (state, t) in [(State::H, &st.h), (State::C, &st.c)] {
                if let Some(t) = t {
                    self.states
                        .entry((site, state))
                        .or_default()
                        .push(t.shallow_clone());
                }
            }
        }
    }

    /// Tokens added so far.
    pub fn tokens(&self) -> usize {
        self.values.first().map_or(0, Vec::len)
    }

    /// For each property, the `top` units (h or c, any encoder site) with the largest |r|.
    pub fn finish(
        &self,
        top: usize,
        bidirectional: bool,
    ) -> Result<Vec<PropertyResult>, AnalysisError> {
        let n = self.tokens();
        let mut results = Vec::new();
        // Standardised states, once per (site, state): [N, H].
        let mut standard = Vec::new();
        for (&(site, state), parts) in &self.states {
            let x = Tensor::cat(parts, 0).to_kind(Kind::Double);
            if x.size()[0] as usize != n {
                return Err(AnalysisError::Input(format!(
                    "internal: {} states for {n} tokens at {}",
                    x.size()[0],
                    site_label(site, bidirectional)
                )));
            }
            let centred = &x - x.mean_dim(0, true, Kind::Double);
            let std = centred.square().mean_dim(0, true, Kind::Double).sqrt();
            // Constant units correlate with nothing: r = 0, not NaN.
            let z = centred / std.clamp_min(1e-12);
            standard.push((site, state, z));
        }
        for (property, values) in self.properties.iter().zip(&self.values) {
            let p = Tensor::from_slice(values).to_kind(Kind::Double);
            let mean = p.mean(Kind::Double).double_value(&[]);
            let centred = &p - mean;
            let std = centred.square().mean(Kind::Double).sqrt().double_value(&[]);
            let mut scores = Vec::new();
            if std > 1e-12 {
                let pz = (centred / std).unsqueeze(1);
                for (site, state, z) in &standard {
                    let r = (z * &pz).mean_dim(0, false, Kind::Double);
                    let r: Vec<f64> = Vec::try_from(&r)?;
                    for (index, r) in r.into_iter().enumerate() {
                        let unit = Neuron { site: *site, index };
                        scores.push(NeuronScore {
                            neuron: unit.label(bidirectional),
                            state: *state,
                            r,
                            unit,
                        });
                    }
                }
            }
            scores.sort_by(|a, b| b.r.abs().total_cmp(&a.r.abs()).then(a.unit.cmp(&b.unit)));
            scores.truncate(top);
            results.push(PropertyResult {
                name: property.name(),
                property: property.clone(),
                tokens: n,
                mean,
                top: scores,
            });
        }
        Ok(results)
    }
}

/// One unit over one sentence: its h, its c (LSTM) and each gate, token by token.
pub struct NeuronTrace {
    pub pieces: Vec<String>,
    /// ("h", values), ("c", values), ("input", values), ...
    pub rows: Vec<(String, Vec<f32>)>,
}

/// The values of `neuron` over `sentence` from its trace.
pub fn neuron_trace(
    neuron: Neuron,
    sentence: &Sentence,
    trace: &SentenceTrace,
) -> Result<NeuronTrace, AnalysisError> {
    let st = trace.sites.get(&neuron.site).ok_or_else(|| {
        AnalysisError::NoSuchUnit(format!("no trace of {:?} was recorded", neuron.site))
    })?;
    let column = |t: &Tensor| -> Result<Vec<f32>, AnalysisError> {
        Ok(Vec::try_from(
            &t.select(1, neuron.index as i64).contiguous(),
        )?)
    };
    let mut rows = Vec::new();
    if let Some(h) = &st.h {
        rows.push(("h".to_string(), column(h)?));
    }
    if let Some(c) = &st.c {
        rows.push(("c".to_string(), column(c)?));
    }
    for (gate, values) in &st.gates {
        rows.push((gate.name().to_string(), column(values)?));
    }
    let pieces = match neuron.site.side {
        GateSide::Encoder => sentence.src_pieces.clone(),
        GateSide::Decoder => sentence.tgt_pieces.clone(),
    };
    Ok(NeuronTrace { pieces, rows })
}
