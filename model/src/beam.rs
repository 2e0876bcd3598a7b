//! Batched beam search over `batch × beam` rows on libtorch tensors.
//!
//! The encoder runs once per sentence and its outputs are kept once per sentence:
//! the decoder's attention takes a sentence's `beam` rows as a group of queries.
//! Every step scores all `beam × vocab` continuations of every sentence at once
//! (the best `2·beam` of each row: a fused scan per row on the CPU, `topk`
//! elsewhere), then the few best candidates move to the host, where each
//! sentence's beams and finished hypotheses are kept. A sentence whose n-best
//! list can no longer change leaves the batch: its rows are dropped from the
//! encoder outputs and decoder state, so it costs nothing more.

use tch::{Device, Kind, Tensor};

use crate::logits_scan::best_per_row;
use crate::search::{greedy, Hypothesis, MaxLength};
use crate::seq2seq::Seq2Seq;

/// How finished hypotheses are ranked across lengths.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LengthPenalty {
    /// Raw sum of log-probabilities (favours short outputs).
    None,
    /// `score / |Y|^α` (fairseq's `--lenpen`).
    Plain(f64),
    /// `score / ((5 + |Y|) / 6)^α` (GNMT, Wu et al. 2016).
    Gnmt(f64),
}

impl LengthPenalty {
    /// The divisor for a hypothesis of `length` tokens (EOS included).
    pub fn divisor(self, length: usize) -> f64 {
        let len = length as f64;
        match self {
            Self::None => 1.0,
            Self::Plain(alpha) => len.powf(alpha),
            Self::Gnmt(alpha) => ((5.0 + len) / 6.0).powf(alpha),
        }
    }
}

/// What to do with the unknown token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UnkPolicy {
    /// Let the model produce it.
    #[default]
    Allow,
    /// Never produce it.
    Ban,
    /// Let the model produce it, then replace each one with the source token it attends
    /// to most (done by [`crate::translate::translate`], which has the vocabularies; the
    /// search itself treats this as `Allow` and keeps attention for it).
    Replace,
}

/// Beam search settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BeamOptions {
    pub beam_size: usize,
    /// How many hypotheses to return per sentence (at most `beam_size`).
    pub n_best: usize,
    pub length_penalty: LengthPenalty,
    pub max_length: MaxLength,
    /// Minimum number of tokens before EOS may be produced.
    pub min_length: usize,
    pub unk: UnkPolicy,
    /// GNMT coverage penalty weight β: adds `β·Σ_i log(min(Σ_t a_ti, 1))`.
    pub coverage_penalty: f64,
    /// Fill [`Hypothesis::attention`]. Off, no attention weights are copied to the
    /// host and none are carried along with the beams (a copy per step and a clone per
    /// extended beam), which is most of the bookkeeping cost of a step.
    pub keep_attention: bool,
}

impl Default for BeamOptions {
    fn default() -> Self {
        Self {
            beam_size: 5,
            n_best: 1,
            length_penalty: LengthPenalty::Gnmt(0.6),
            max_length: MaxLength::default(),
            min_length: 0,
            unk: UnkPolicy::Allow,
            coverage_penalty: 0.0,
            keep_attention: true,
        }
    }
}

/// A hypothesis being extended.
#[derive(Clone, Debug)]
struct Partial {
    tokens: Vec<u32>,
    token_scores: Vec<f32>,
    attention: Vec<Vec<f32>>,
    score: f64,
}

/// Per-sentence bookkeeping.
struct Sentence {
    src_len: usize,
    limit: usize,
    beams: Vec<Partial>,
    finished: Vec<(f64, Hypothesis)>,
}

impl Sentence {
    /// True when `n` hypotheses are finished and no open beam can still rank
    /// above the n-th of them: the `n` best are then settled, so the sentence
    /// stops even if fewer than `beam` hypotheses have finished. Log-probabilities
    /// only fall as a hypothesis grows, so an open beam's best possible rank is its
    /// score divided by the largest length divisor it could reach (the coverage
    /// penalty is never positive, so it cannot lift it either). Anything that would
    /// finish later ranks at most equal to the n-th and the stable sort puts it
    /// after, so the n-best list is exactly what running on would return.
    fn cannot_improve(&mut self, n: usize, penalty: LengthPenalty) -> bool {
        if self.finished.len() < n {
            return false;
        }
        self.finished.sort_by(|a, b| b.0.total_cmp(&a.0));
        let nth = self.finished[n - 1].0;
        let best_divisor = penalty.divisor(self.limit + 1).max(penalty.divisor(1));
        self.beams_best_possible(best_divisor) <= nth
    }

    fn beams_best_possible(&self, divisor: f64) -> f64 {
        self.beams
            .iter()
            .map(|b| b.score / divisor)
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

/// Decodes a batch with beam search.
///
/// src: `[B, S]` i64; lengths: `[B]` i64 in `1..=S` → for each sentence, in input
/// order, up to `n_best` hypotheses sorted by their ranking score (best first).
/// `Hypothesis::score` is the model's log-probability; the length and coverage
/// penalties only rank.
pub fn beam_search(
    model: &Seq2Seq,
    src: &Tensor,
    lengths: &Tensor,
    opts: &BeamOptions,
) -> Vec<Vec<Hypothesis>> {
    let k = opts.beam_size.max(1);
    if k == 1 && opts.unk != UnkPolicy::Ban && opts.min_length == 0 && opts.coverage_penalty == 0.0
    {
        // Beam 1 without constraints is greedy search: take the fast path.
        return greedy(model, src, lengths, opts.max_length, opts.keep_attention)
            .into_iter()
            .map(|h| vec![h])
            .collect();
    }
    beam_search_general(model, src, lengths, opts)
}

/// [`beam_search`] without the greedy shortcut for beam 1 (for tests and benchmarks).
pub fn beam_search_general(
    model: &Seq2Seq,
    src: &Tensor,
    lengths: &Tensor,
    opts: &BeamOptions,
) -> Vec<Vec<Hypothesis>> {
    tch::no_grad(|| run(model, src, lengths, opts, opts.beam_size.max(1)))
}

fn run(
    model: &Seq2Seq,
    src: &Tensor,
    lengths: &Tensor,
    opts: &BeamOptions,
    k: usize,
) -> Vec<Vec<Hypothesis>> {
    let device = src.device();
    let batch = src.size()[0] as usize;
    let n_best = opts.n_best.clamp(1, k);
    let src_lens: Vec<i64> = Vec::try_from(lengths.to_device(Device::Cpu)).unwrap_or_default();
    let mut sentences: Vec<Sentence> = src_lens
        .iter()
        .map(|&l| Sentence {
            src_len: l as usize,
            limit: opts.max_length.for_source(l) as usize,
            beams: vec![Partial {
                tokens: vec![],
                token_scores: vec![],
                attention: vec![],
                score: 0.0,
            }],
            finished: vec![],
        })
        .collect();

    // Row r of the running batch belongs to sentence active[r / k], beam r % k.
    let repeat = Tensor::arange(batch as i64, (Kind::Int64, device))
        .repeat_interleave_self_int(k as i64, 0, None);
    // One copy of the encoder outputs per sentence: the decoder's attention takes the k
    // rows of a sentence as a group of queries over it.
    let ctx = model.context(false);
    let mut enc = model.encode(src, lengths, &ctx);
    let mut state = model.init_decoder(&enc).index_select(&repeat);
    let prepared = model.prepare_search(device, &ctx);
    // Attention summed over steps, per row; kept only when the coverage penalty needs it.
    let mut coverage = (opts.coverage_penalty != 0.0)
        .then(|| Tensor::zeros([(batch * k) as i64, src.size()[1]], (Kind::Float, device)));
    let mut active: Vec<usize> = (0..batch).collect();
    let mut prev = Tensor::full(
        [(batch * k) as i64],
        vocab::BOS_ID as i64,
        (Kind::Int64, device),
    );
    let vocab_size = model.config().tgt_vocab_size;

    for t in 0.. {
        let step = model.search_step(prepared.as_ref(), &prev, &state, &enc, &ctx);
        let logits = model.project(&step.attentional).to_kind(Kind::Float);
        let mut banned = vec![vocab::PAD_ID, vocab::BOS_ID];
        if opts.unk == UnkPolicy::Ban {
            banned.push(vocab::UNK_ID);
        }
        if t < opts.min_length {
            banned.push(vocab::EOS_ID);
        }
        // A sentence's best 2k continuations are among the best 2k of each of its k rows:
        // the best 2k of every row, then the k·2k survivors are merged here, instead of
        // adding the beam scores to all k·V log-probabilities and sorting those (two more
        // passes over the largest tensor of the step, and an allocation of its size).
        let per_row = (2 * k).min(vocab_size as usize);
        let (row_best, row_tokens) = best_per_row(&logits, per_row, &banned);
        // Beam scores so far, -inf for beams that do not exist (the first step has one).
        let mut beam_scores = vec![f32::NEG_INFINITY; active.len() * k];
        for (i, &s) in active.iter().enumerate() {
            for (j, b) in sentences[s].beams.iter().enumerate() {
                beam_scores[i * k + j] = b.score as f32;
            }
        }
        let candidates = (2 * k).min(k * vocab_size as usize);
        let mut top_scores: Vec<f32> = Vec::with_capacity(active.len() * candidates);
        // Flat index `beam · V + token`, as a top-k over a sentence's `[k · V]` scores gives.
        let mut top_index: Vec<i64> = Vec::with_capacity(active.len() * candidates);
        let mut pool: Vec<(f32, i64)> = Vec::with_capacity(k * per_row);
        for i in 0..active.len() {
            pool.clear();
            for beam in 0..k {
                let row = i * k + beam;
                for c in row * per_row..(row + 1) * per_row {
                    pool.push((
                        beam_scores[row] + row_best[c],
                        beam as i64 * vocab_size + row_tokens[c],
                    ));
                }
            }
            // Best first; equal scores in (beam, token) order, so results are deterministic.
            pool.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            for &(score, flat) in pool.iter().take(candidates) {
                top_scores.push(score);
                top_index.push(flat);
            }
        }
        let attention: Vec<Vec<f32>> = if opts.keep_attention {
            Vec::try_from(step.attention.to_device(Device::Cpu).to_kind(Kind::Float))
                .unwrap_or_default()
        } else {
            vec![]
        };
        let coverage_now = coverage
            .as_ref()
            .map(|c| c + step.attention.to_kind(Kind::Float));
        let coverage_cpu: Vec<Vec<f32>> = match &coverage_now {
            Some(c) => Vec::try_from(c.to_device(Device::Cpu)).unwrap_or_default(),
            None => vec![],
        };

        // GNMT's coverage penalty β·Σ_i log(min(Σ_t a_ti, 1)) of the hypothesis on `row`
        // (its attention summed up to this step), over the sentence's real tokens.
        let coverage_term = |row: usize, src_len: usize| -> f64 {
            if opts.coverage_penalty == 0.0 {
                return 0.0;
            }
            let cov: f64 = coverage_cpu[row][..src_len]
                .iter()
                .map(|&a| (a.min(1.0) as f64).max(1e-10).ln())
                .sum();
            opts.coverage_penalty * cov
        };
        // Rows (old row index) feeding each new beam, and the token it appends.
        let mut next_rows: Vec<i64> = Vec::with_capacity(active.len() * k);
        let mut next_tokens: Vec<i64> = Vec::with_capacity(active.len() * k);
        let mut still_active = Vec::with_capacity(active.len());
        // Positions (in `active`) of the sentences that go on.
        let mut kept_positions = Vec::with_capacity(active.len());
        for (i, &s) in active.iter().enumerate() {
            let sent = &mut sentences[s];
            let mut new_beams: Vec<Partial> = Vec::with_capacity(k);
            let mut new_rows = Vec::with_capacity(k);
            for c in 0..candidates {
                let score = top_scores[i * candidates + c];
                if !score.is_finite() {
                    break;
                }
                let flat = top_index[i * candidates + c];
                let (beam, token) = ((flat / vocab_size) as usize, flat % vocab_size);
                let row = i * k + beam;
                let parent = &sent.beams[beam];
                let token_lp = score - parent.score as f32;
                if token == vocab::EOS_ID as i64 {
                    // Only EOS among the first k candidates ends a hypothesis (fairseq's rule),
                    // so a finished hypothesis always beat the beams kept alongside it.
                    if c < k {
                        let mut token_scores = parent.token_scores.clone();
                        token_scores.push(token_lp);
                        let mut rank =
                            score as f64 / opts.length_penalty.divisor(parent.tokens.len() + 1);
                        rank += coverage_term(row, sent.src_len);
                        let hyp = Hypothesis {
                            tokens: parent.tokens.clone(),
                            score: score as f64,
                            ranking_score: rank,
                            token_scores,
                            attention: parent.attention.clone(),
                        };
                        sent.finished.push((rank, hyp));
                    }
                } else if new_beams.len() < k {
                    let mut p = parent.clone();
                    p.tokens.push(token as u32);
                    p.token_scores.push(token_lp);
                    if opts.keep_attention {
                        p.attention.push(attention[row][..sent.src_len].to_vec());
                    }
                    p.score = score as f64;
                    new_beams.push(p);
                    new_rows.push(row as i64);
                }
                if new_beams.len() == k && c + 1 >= k {
                    break;
                }
            }
            if t + 1 >= sent.limit {
                // At the length limit the open beams end as they are, like greedy search,
                // ranked like those that ended with EOS (coverage penalty included).
                for (b, &row) in new_beams.drain(..).zip(&new_rows) {
                    let rank = b.score / opts.length_penalty.divisor(b.tokens.len())
                        + coverage_term(row as usize, sent.src_len);
                    sent.finished.push((
                        rank,
                        Hypothesis {
                            tokens: b.tokens,
                            score: b.score,
                            ranking_score: rank,
                            token_scores: b.token_scores,
                            attention: b.attention,
                        },
                    ));
                }
            }
            sent.beams = new_beams;
            // Stop once the n-best are settled (not when `k` have finished): with one
            // output per sentence, the steps spent finishing k - 1 hypotheses nobody
            // asked for are saved.
            if sent.beams.is_empty() || sent.cannot_improve(n_best, opts.length_penalty) {
                continue;
            }
            still_active.push(s);
            kept_positions.push(i);
            // Rows stay k per sentence: missing beams repeat the last row and are
            // scored -inf next step (they have no entry in `sent.beams`).
            let last_row = *new_rows.last().unwrap_or(&((i * k) as i64));
            new_rows.resize(k, last_row);
            let last_token = sent
                .beams
                .last()
                .and_then(|b| b.tokens.last())
                .copied()
                .unwrap_or(vocab::EOS_ID);
            for (j, &r) in new_rows.iter().enumerate() {
                next_rows.push(r);
                let token = sent
                    .beams
                    .get(j)
                    .and_then(|b| b.tokens.last())
                    .copied()
                    .unwrap_or(last_token);
                next_tokens.push(token as i64);
            }
        }
        if still_active.is_empty() {
            break;
        }
        let index = Tensor::from_slice(&next_rows).to_device(device);
        // Reordering beams within a sentence leaves `enc` (one row per sentence) as it is:
        // it is gathered again only when sentences finish and leave the batch (the
        // decoder state follows every reorder).
        if still_active.len() != active.len() {
            let kept: Vec<i64> = kept_positions.iter().map(|&i| i as i64).collect();
            enc = enc.index_select(&Tensor::from_slice(&kept).to_device(device));
        }
        state = step.state.index_select(&index);
        coverage = coverage_now.map(|c| c.index_select(0, &index));
        prev = Tensor::from_slice(&next_tokens).to_device(device);
        active = still_active;
    }

    sentences
        .into_iter()
        .map(|mut s| {
            if s.finished.is_empty() {
                // Only possible when every continuation was banned: return the best open beam.
                for b in s.beams.drain(..) {
                    let rank = b.score / opts.length_penalty.divisor(b.tokens.len().max(1));
                    s.finished.push((
                        rank,
                        Hypothesis {
                            tokens: b.tokens,
                            score: b.score,
                            ranking_score: rank,
                            token_scores: b.token_scores,
                            attention: b.attention,
                        },
                    ));
                }
            }
            s.finished.sort_by(|a, b| b.0.total_cmp(&a.0));
            s.finished
                .into_iter()
                .take(n_best)
                .map(|(_, h)| h)
                .collect()
        })
        .collect()
}
