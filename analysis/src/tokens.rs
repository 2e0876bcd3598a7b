//! Per-token gates: for each token of a sentence, the mean over a layer's units of each
//! gate (the G2-LSTM paper's Figure 4), and over a corpus the tokens ranked by those means
//! (which words make the model forget).

use std::collections::BTreeMap;

use model::gates::{GateSide, GateSite};
use serde::Serialize;
use tch::Kind;

use crate::corpus::Sentence;
use crate::record::{site_label, GateName, SentenceTrace};

/// The mean gate values of one site over one sentence.
#[derive(Clone, Debug, Serialize)]
pub struct SiteGates {
    #[serde(skip)]
    pub at: GateSite,
    /// `encoder-l0-fwd`, `decoder-l1`, ...
    pub site: String,
    pub side: &'static str,
    pub layer: usize,
    pub direction: usize,
    /// Per gate, one mean (over the layer's units) per token.
    pub gates: BTreeMap<GateName, Vec<f32>>,
}

/// The per-token gates of one sentence.
#[derive(Clone, Debug, Serialize)]
pub struct TokenGates {
    /// Line of the sentence in the source file.
    pub line: usize,
    pub source_tokens: Vec<String>,
    /// The tokens the decoder steps read (`<s>`, then the target).
    pub target_tokens: Vec<String>,
    pub sites: Vec<SiteGates>,
}

/// The mean over units of each gate, token by token, from a sentence's trace.
pub fn token_gates(
    sentence: &Sentence,
    trace: &SentenceTrace,
    bidirectional: bool,
) -> Result<TokenGates, tch::TchError> {
    let mut sites = Vec::new();
    for (&site, st) in &trace.sites {
        let mut gates = BTreeMap::new();
        for (&name, values) in &st.gates {
            let means = values.mean_dim(1, false, Kind::Float);
            gates.insert(name, Vec::<f32>::try_from(&means)?);
        }
        sites.push(SiteGates {
            at: site,
            site: site_label(site, bidirectional),
            side: crate::record::side_name(site.side),
            layer: site.layer,
            direction: site.direction,
            gates,
        });
    }
    Ok(TokenGates {
        line: sentence.line,
        source_tokens: sentence.src_pieces.clone(),
        target_tokens: sentence.tgt_pieces.clone(),
        sites,
    })
}

/// How often a token was seen, and the sums of its per-token gate means by (site, gate).
type TokenTotals = (u64, BTreeMap<(GateSite, GateName), f64>);

/// Sums of per-token gate means over a corpus, by token and (site, gate).
#[derive(Default)]
pub struct TokenRanking {
    totals: BTreeMap<(GateSide, String), TokenTotals>,
}

/// One token's mean gate value at one site, over the corpus.
#[derive(Clone, Debug, Serialize)]
pub struct RankedToken {
    pub token: String,
    pub count: u64,
    pub mean: f64,
}

/// The tokens of one (site, gate), lowest and highest mean first.
#[derive(Clone, Debug, Serialize)]
pub struct Ranking {
    pub site: String,
    pub gate: GateName,
    pub lowest: Vec<RankedToken>,
    pub highest: Vec<RankedToken>,
}

impl TokenRanking {
    /// Adds one sentence (its per-token gates from [`token_gates`]).
    pub fn add(&mut self, tokens: &TokenGates) {
        for site_gates in &tokens.sites {
            let site = site_gates.at;
            let pieces = match site.side {
                GateSide::Encoder => &tokens.source_tokens,
                GateSide::Decoder => &tokens.target_tokens,
            };
            for (pos, piece) in pieces.iter().enumerate() {
                let entry = self
                    .totals
                    .entry((site.side, piece.clone()))
                    .or_insert_with(|| (0, BTreeMap::new()));
                // Count each token occurrence once per side (at its first site).
                if site.layer == 0 && site.direction == 0 {
                    entry.0 += 1;
                }
                for (&gate, values) in &site_gates.gates {
                    if let Some(&v) = values.get(pos) {
                        *entry.1.entry((site, gate)).or_insert(0.0) += v as f64;
                    }
                }
            }
        }
    }

    /// For every (site, gate) seen, the `top` tokens with the lowest and the highest mean,
    /// among tokens seen at least `min_count` times.
    pub fn rankings(&self, top: usize, min_count: u64, bidirectional: bool) -> Vec<Ranking> {
        let mut by_key: BTreeMap<(GateSite, GateName), Vec<RankedToken>> = BTreeMap::new();
        for ((side, piece), (count, sums)) in &self.totals {
            if *count < min_count.max(1) {
                continue;
            }
            for (&(site, gate), &sum) in sums {
                debug_assert_eq!(site.side, *side);
                by_key.entry((site, gate)).or_default().push(RankedToken {
                    token: piece.clone(),
                    count: *count,
                    mean: sum / *count as f64,
                });
            }
        }
        by_key
            .into_iter()
            .map(|((site, gate), mut tokens)| {
                tokens.sort_by(|a, b| a.mean.total_cmp(&b.mean).then(a.token.cmp(&b.token)));
                let lowest = tokens.iter().take(top).cloned().collect();
                let highest = tokens.iter().rev().take(top).cloned().collect();
                Ranking {
                    site: site_label(site, bidirectional),
                    gate,
                    lowest,
                    highest,
                }
            })
            .collect()
    }
}
