//! Attention over encoder outputs: Luong's dot and general scores, Bahdanau's MLP.

use tch::{nn, nn::Module, Tensor};

use crate::config::AttentionKind;
use crate::linear::Linear;

/// Scores decoder states against encoder outputs and returns the context.
#[derive(Debug)]
pub struct Attention {
    kind: AttentionKind,
    /// general: `W` in `h_t · W h_s`; mlp: `W_s`. Encoder size → decoder size.
    key_proj: Option<Linear>,
    /// mlp only: `W_t`.
    query_proj: Option<Linear>,
    /// mlp only: `v`.
    score_proj: Option<nn::Linear>,
}

impl Attention {
    /// encoder_dim: size of an encoder output; query_dim: decoder hidden size.
    pub fn new(path: &nn::Path, kind: AttentionKind, encoder_dim: i64, query_dim: i64) -> Self {
        Self::with_int8(path, kind, encoder_dim, query_dim, false)
    }

    /// [`Self::new`], with `int8`: the key and query projections' weights int8
    /// ([`Linear::Int8`]; the MLP's `v` stays float).
    pub fn with_int8(
        path: &nn::Path,
        kind: AttentionKind,
        encoder_dim: i64,
        query_dim: i64,
        int8: bool,
    ) -> Self {
        let no_bias = nn::LinearConfig {
            bias: false,
            ..Default::default()
        };
        let (key_proj, query_proj, score_proj) = match kind {
            AttentionKind::Dot => (None, None, None),
            AttentionKind::General => (
                Some(Linear::new(
                    path / "key",
                    encoder_dim,
                    query_dim,
                    false,
                    int8,
                )),
                None,
                None,
            ),
            AttentionKind::Mlp => (
                Some(Linear::new(
                    path / "key",
                    encoder_dim,
                    query_dim,
                    true,
                    int8,
                )),
                Some(Linear::new(
                    path / "query",
                    query_dim,
                    query_dim,
                    false,
                    int8,
                )),
                Some(nn::linear(path / "score", query_dim, 1, no_bias)),
            ),
        };
        Self {
            kind,
            key_proj,
            query_proj,
            score_proj,
        }
    }

    /// What the scores compare the query with, computed once per sentence rather
    /// than once per decoder step.
    ///
    /// encoder_outputs: `[B, S, E]` → keys `[B, S, H]`
    pub fn keys(&self, encoder_outputs: &Tensor) -> Tensor {
        match &self.key_proj {
            Some(proj) => proj.forward(encoder_outputs),
            None => encoder_outputs.shallow_clone(),
        }
    }

    /// query: `[B·g, H]`; keys: `[B, S, H]`; values: `[B, S, E]`; mask: `[B, S]` bool,
    /// true on real tokens → (context `[B·g, E]`, weights `[B·g, S]` summing to 1 over
    /// real tokens, exactly 0 on padding).
    ///
    /// Usually `g` = 1: one query per sentence. Beam search asks with the `g` = k
    /// hypotheses of each sentence in consecutive query rows (rows `i·g .. (i+1)·g` attend
    /// over sentence `i`), so that the encoder outputs are held once per sentence rather
    /// than k times, and each sentence's keys and values are read once per step for all of
    /// its hypotheses (a `[g, H]`·`[H, S]` product instead of g separate ones).
    pub fn forward(
        &self,
        query: &Tensor,
        keys: &Tensor,
        values: &Tensor,
        mask: &Tensor,
    ) -> (Tensor, Tensor) {
        let (rows, sentences) = (query.size()[0], keys.size()[0]);
        let group = if sentences > 0 && rows != sentences && rows % sentences == 0 {
            rows / sentences
        } else {
            1
        };
        if group > 1 {
            let query = query.view([sentences, group, -1]);
            let (context, weights) = self.grouped(&query, keys, values, mask);
            return (context.view([rows, -1]), weights.view([rows, -1]));
        }
        let scores = match self.kind {
            AttentionKind::Dot | AttentionKind::General => {
                keys.bmm(&query.unsqueeze(2)).squeeze_dim(2)
            }
            AttentionKind::Mlp => {
                let (query_proj, score_proj) = self.mlp_projections();
                let hidden = (keys + query_proj.forward(query).unsqueeze(1)).tanh();
                score_proj.forward(&hidden).squeeze_dim(2)
            }
        };
        let weights = scores
            .masked_fill(&mask.logical_not(), f64::NEG_INFINITY)
            .softmax(-1, scores.kind());
        let context = weights.unsqueeze(1).bmm(values).squeeze_dim(1);
        (context, weights)
    }

    /// [`Self::forward`] for `g` > 1 queries per sentence. query: `[B, g, H]`; keys
    /// `[B, S, H]`; values `[B, S, E]`; mask `[B, S]` → (context `[B, g, E]`, weights
    /// `[B, g, S]`). The same equations; the products are grouped differently, so results
    /// can differ from one query at a time in the last bits.
    fn grouped(
        &self,
        query: &Tensor,
        keys: &Tensor,
        values: &Tensor,
        mask: &Tensor,
    ) -> (Tensor, Tensor) {
        let scores = match self.kind {
            AttentionKind::Dot | AttentionKind::General => query.bmm(&keys.transpose(1, 2)),
            AttentionKind::Mlp => {
                let (query_proj, score_proj) = self.mlp_projections();
                // [B, 1, S, H] + [B, g, 1, H] → [B, g, S, H] → [B, g, S]
                let hidden = (keys.unsqueeze(1) + query_proj.forward(query).unsqueeze(2)).tanh();
                score_proj.forward(&hidden).squeeze_dim(3)
            }
        };
        let weights = scores
            .masked_fill(&mask.logical_not().unsqueeze(1), f64::NEG_INFINITY)
            .softmax(-1, scores.kind());
        let context = weights.bmm(values);
        (context, weights)
    }

    fn mlp_projections(&self) -> (&Linear, &nn::Linear) {
        (
            self.query_proj
                .as_ref()
                .expect("mlp attention has a query projection"),
            self.score_proj
                .as_ref()
                .expect("mlp attention has a score projection"),
        )
    }
}
