//! Decoding: greedy search, and what every search returns ([`Hypothesis`]); beam search is
//! in [`crate::beam`].

use tch::{Kind, Tensor};

use crate::error::ModelError;
use crate::logits_scan::best_per_row;
use crate::seq2seq::Seq2Seq;

/// Maximum output length `a·|src| + b` (fairseq's `--max-len-a/-b`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaxLength {
    pub a: f64,
    pub b: i64,
}

impl Default for MaxLength {
    fn default() -> Self {
        Self { a: 1.5, b: 10 }
    }
}

impl MaxLength {
    pub fn for_source(&self, src_len: i64) -> i64 {
        ((self.a * src_len as f64).floor() as i64 + self.b).max(1)
    }
}

/// One decoded sentence.
#[derive(Clone, Debug, PartialEq)]
pub struct Hypothesis {
    /// Target ids, without BOS and EOS.
    pub tokens: Vec<u32>,
    /// Sum of the log-probabilities of the tokens and of EOS (when reached).
    pub score: f64,
    /// What n-best lists are sorted by: beam search's `score` over the length penalty's
    /// divisor, plus the coverage term; greedy search's `score`.
    pub ranking_score: f64,
    /// Log-probability of each token, then of EOS when reached.
    pub token_scores: Vec<f32>,
    /// Attention over the source tokens for each output position: `[len][src_len]`.
    pub attention: Vec<Vec<f32>>,
}

/// Greedy decoding of a batch. Sentences leave the batch as soon as they emit EOS,
/// so finished sentences cost nothing.
///
/// src: `[B, S]` i64; lengths: `[B]` i64 in `1..=S` → one hypothesis per sentence, in order.
///
/// `keep_attention`: fill [`Hypothesis::attention`]; without it no attention weights
/// are copied to the host (a copy per step).
pub fn greedy(
    model: &Seq2Seq,
    src: &Tensor,
    lengths: &Tensor,
    max_len: MaxLength,
    keep_attention: bool,
) -> Result<Vec<Hypothesis>, ModelError> {
    tch::no_grad(|| {
        let batch = src.size()[0];
        let lengths_vec: Vec<i64> = Vec::try_from(lengths.to_device(tch::Device::Cpu))?;
        let limits: Vec<i64> = lengths_vec.iter().map(|&l| max_len.for_source(l)).collect();
        let mut hyps: Vec<Hypothesis> = (0..batch)
            .map(|_| Hypothesis {
                tokens: vec![],
                score: 0.0,
                ranking_score: 0.0,
                token_scores: vec![],
                attention: vec![],
            })
            .collect();
        let ctx = model.context(false);
        let mut enc = model.encode(src, lengths, &ctx);
        let mut state = model.init_decoder(&enc);
        let prepared = model.prepare_search(src.device(), &ctx);
        // Rows of the running batch → sentence index.
        let mut active: Vec<usize> = (0..batch as usize).collect();
        let mut prev = Tensor::full([batch], vocab::BOS_ID as i64, (Kind::Int64, src.device()));
        let mut step_no = 0i64;
        while !active.is_empty() {
            let step = model.search_step(prepared.as_ref(), &prev, &state, &enc, &ctx);
            let logits = model.project(&step.attentional).to_kind(Kind::Float);
            let (best, ids) = best_per_row(&logits, 1, &[])?;
            let attention: Vec<Vec<f32>> = if keep_attention {
                Vec::try_from(
                    step.attention
                        .to_device(tch::Device::Cpu)
                        .to_kind(Kind::Float),
                )?
            } else {
                vec![]
            };
            let mut keep = Vec::with_capacity(active.len());
            for (row, &sent) in active.iter().enumerate() {
                let hyp = &mut hyps[sent];
                hyp.score += best[row] as f64;
                hyp.token_scores.push(best[row]);
                if ids[row] == vocab::EOS_ID as i64 {
                    continue;
                }
                if keep_attention {
                    let src_len = lengths_vec[sent] as usize;
                    hyp.attention.push(attention[row][..src_len].to_vec());
                }
                hyp.tokens.push(ids[row] as u32);
                if step_no + 1 < limits[sent] {
                    keep.push(row);
                }
            }
            step_no += 1;
            if keep.len() != active.len() {
                let index = Tensor::from_slice(&keep.iter().map(|&r| r as i64).collect::<Vec<_>>())
                    .to_device(src.device());
                enc = enc.index_select(&index);
                state = step.state.index_select(&index);
                prev = Tensor::from_slice(&keep.iter().map(|&r| ids[r]).collect::<Vec<_>>())
                    .to_device(src.device());
                active = keep.iter().map(|&r| active[r]).collect();
            } else {
                state = step.state;
                prev = Tensor::from_slice(&ids).to_device(src.device());
            }
        }
        for hyp in &mut hyps {
            hyp.ranking_score = hyp.score;
        }
        Ok(hyps)
    })
}
