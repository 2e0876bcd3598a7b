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

use crate::decoder::{DecoderState, DecoderStep};
use crate::encoder::EncoderOutput;
use crate::error::ModelError;
use crate::gates::StepContext;
use crate::logits_scan::best_per_row;
use crate::rnn::PreparedStack;
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
    /// Sum of the log-probabilities so far.
    score: f64,
}

impl Partial {
    fn empty() -> Self {
        Self {
            tokens: vec![],
            token_scores: vec![],
            attention: vec![],
            score: 0.0,
        }
    }

    /// This hypothesis with one more token (`None`: EOS, which adds no token and no
    /// attention row), its log-probability `token_lp` and the new total `score`.
    fn extended(
        &self,
        token: Option<u32>,
        token_lp: f32,
        score: f64,
        attention: Option<&[f32]>,
    ) -> Self {
        let mut p = self.clone();
        p.tokens.extend(token);
        p.token_scores.push(token_lp);
        p.attention.extend(attention.map(<[f32]>::to_vec));
        p.score = score;
        p
    }

    /// The finished hypothesis: the one place a [`Hypothesis`] is made here.
    /// The finished hypothesis, ranked by `ranking_score` (what the n-best list is sorted by).
    fn into_hypothesis(self, ranking_score: f64) -> Hypothesis {
        Hypothesis {
            tokens: self.tokens,
            score: self.score,
            ranking_score,
            token_scores: self.token_scores,
            attention: self.attention,
        }
    }
}

/// Per-sentence bookkeeping.
struct Sentence {
    src_len: usize,
    limit: usize,
    beams: Vec<Partial>,
    /// Finished hypotheses with their ranking score (length and coverage penalties applied).
    finished: Vec<(f64, Hypothesis)>,
}

impl Sentence {
    fn new(src_len: i64, max_length: MaxLength) -> Self {
        Self {
            src_len: src_len as usize,
            limit: max_length.for_source(src_len) as usize,
            beams: vec![Partial::empty()],
            finished: vec![],
        }
    }

    fn finish(&mut self, rank: f64, hypothesis: Partial) {
        self.finished.push((rank, hypothesis.into_hypothesis(rank)));
    }

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

    /// The `n` best finished hypotheses, best first. When none finished (only possible
    /// when every continuation was banned), the open beams instead.
    fn into_n_best(mut self, n: usize, penalty: LengthPenalty) -> Vec<Hypothesis> {
        if self.finished.is_empty() {
            for b in std::mem::take(&mut self.beams) {
                let rank = b.score / penalty.divisor(b.tokens.len().max(1));
                self.finish(rank, b);
            }
        }
        self.finished.sort_by(|a, b| b.0.total_cmp(&a.0));
        self.finished.into_iter().take(n).map(|(_, h)| h).collect()
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
) -> Result<Vec<Vec<Hypothesis>>, ModelError> {
    let k = opts.beam_size.max(1);
    if k == 1 && opts.unk != UnkPolicy::Ban && opts.min_length == 0 && opts.coverage_penalty == 0.0
    {
        // Beam 1 without constraints is greedy search: take the fast path.
        let hyps = greedy(model, src, lengths, opts.max_length, opts.keep_attention)?;
        return Ok(hyps.into_iter().map(|h| vec![h]).collect());
    }
    beam_search_general(model, src, lengths, opts)
}

/// [`beam_search`] without the greedy shortcut for beam 1 (for tests and benchmarks).
pub fn beam_search_general(
    model: &Seq2Seq,
    src: &Tensor,
    lengths: &Tensor,
    opts: &BeamOptions,
) -> Result<Vec<Vec<Hypothesis>>, ModelError> {
    tch::no_grad(|| {
        let mut search = Search::start(model, src, lengths, opts)?;
        for t in 0.. {
            let step = model.search_step(
                search.prepared.as_ref(),
                &search.prev,
                &search.state,
                &search.enc,
                &search.ctx,
            );
            if !search.advance(t, step)? {
                break;
            }
        }
        Ok(search.into_results())
    })
}

/// The best continuations of each active sentence at one step, best first: `per_sentence`
/// entries per sentence (fewer real ones are `-inf`).
struct Candidates {
    per_sentence: usize,
    scores: Vec<f32>,
    /// Flat index `beam · V + token`, as a top-k over a sentence's `[k · V]` scores gives.
    index: Vec<i64>,
}

/// What one step computed that the bookkeeping on the host reads.
struct StepOnHost {
    /// `[rows][S]` attention weights; empty unless kept.
    attention: Vec<Vec<f32>>,
    /// `[rows][S]` attention summed over the steps so far; empty without a coverage penalty.
    coverage: Vec<Vec<f32>>,
}

/// What the active sentences go on with: for each new row, the row it continues and the
/// token it feeds next.
struct NextRows {
    rows: Vec<i64>,
    tokens: Vec<i64>,
    /// The sentences still searching, and their positions in the previous `active`.
    sentences: Vec<usize>,
    positions: Vec<usize>,
}

/// A running beam search over `batch × k` rows.
struct Search<'a> {
    model: &'a Seq2Seq,
    opts: &'a BeamOptions,
    ctx: StepContext<'static>,
    prepared: Option<PreparedStack>,
    k: usize,
    n_best: usize,
    vocab_size: i64,
    device: Device,
    sentences: Vec<Sentence>,
    /// Row r of the running batch belongs to sentence `active[r / k]`, beam `r % k`.
    active: Vec<usize>,
    /// One copy of the encoder outputs per active sentence: the decoder's attention takes
    /// the k rows of a sentence as a group of queries over it.
    enc: EncoderOutput,
    state: DecoderState,
    /// `[rows]` the tokens fed at the next step.
    prev: Tensor,
    /// `[rows, S]` attention summed over steps; kept only when the coverage penalty needs it.
    coverage: Option<Tensor>,
}

impl<'a> Search<'a> {
    /// Encodes the batch and sets up one open (empty) beam per sentence.
    fn start(
        model: &'a Seq2Seq,
        src: &Tensor,
        lengths: &Tensor,
        opts: &'a BeamOptions,
    ) -> Result<Self, ModelError> {
        let k = opts.beam_size.max(1);
        let device = src.device();
        let batch = src.size()[0] as usize;
        let src_lens: Vec<i64> = Vec::try_from(lengths.to_device(Device::Cpu))?;
        let sentences = src_lens
            .iter()
            .map(|&l| Sentence::new(l, opts.max_length))
            .collect();
        let repeat = Tensor::arange(batch as i64, (Kind::Int64, device))
            .repeat_interleave_self_int(k as i64, 0, None);
        let ctx = model.context(false);
        let enc = model.encode(src, lengths, &ctx);
        let state = model.init_decoder(&enc).index_select(&repeat);
        let prepared = model.prepare_search(device, &ctx);
        let rows = (batch * k) as i64;
        Ok(Self {
            model,
            opts,
            ctx,
            prepared,
            k,
            n_best: opts.n_best.clamp(1, k),
            vocab_size: model.config().tgt_vocab_size,
            device,
            sentences,
            active: (0..batch).collect(),
            enc,
            state,
            prev: Tensor::full([rows], vocab::BOS_ID as i64, (Kind::Int64, device)),
            coverage: (opts.coverage_penalty != 0.0)
                .then(|| Tensor::zeros([rows, src.size()[1]], (Kind::Float, device))),
        })
    }

    /// Takes step `t`'s output: extends, finishes or drops every active sentence's beams
    /// and reorders the decoder state for the next step. False when no sentence goes on.
    fn advance(&mut self, t: usize, step: DecoderStep) -> Result<bool, ModelError> {
        let logits = self.model.project(&step.attentional).to_kind(Kind::Float);
        let candidates = self.best_candidates(&logits, &self.banned_tokens(t))?;
        let coverage_now = self
            .coverage
            .as_ref()
            .map(|c| c + step.attention.to_kind(Kind::Float));
        let host = StepOnHost {
            attention: if self.opts.keep_attention {
                Vec::try_from(step.attention.to_device(Device::Cpu).to_kind(Kind::Float))?
            } else {
                vec![]
            },
            coverage: match &coverage_now {
                Some(c) => Vec::try_from(c.to_device(Device::Cpu))?,
                None => vec![],
            },
        };
        let next = self.extend(t, &candidates, &host);
        if next.sentences.is_empty() {
            return Ok(false);
        }
        let index = Tensor::from_slice(&next.rows).to_device(self.device);
        // Reordering beams within a sentence leaves `enc` (one row per sentence) as it is:
        // it is gathered again only when sentences finish and leave the batch (the
        // decoder state follows every reorder).
        if next.sentences.len() != self.active.len() {
            let kept: Vec<i64> = next.positions.iter().map(|&i| i as i64).collect();
            self.enc = self
                .enc
                .index_select(&Tensor::from_slice(&kept).to_device(self.device));
        }
        self.state = step.state.index_select(&index);
        self.coverage = coverage_now.map(|c| c.index_select(0, &index));
        self.prev = Tensor::from_slice(&next.tokens).to_device(self.device);
        self.active = next.sentences;
        Ok(true)
    }

    /// Tokens no hypothesis may take at step `t`.
    fn banned_tokens(&self, t: usize) -> Vec<u32> {
        let mut banned = vec![vocab::PAD_ID, vocab::BOS_ID];
        if self.opts.unk == UnkPolicy::Ban {
            banned.push(vocab::UNK_ID);
        }
        if t < self.opts.min_length {
            banned.push(vocab::EOS_ID);
        }
        banned
    }

    /// The best `2k` continuations of every active sentence. They are among the best `2k`
    /// of each of its k rows: the best 2k of every row (`logits` `[rows, V]`), then the
    /// k·2k survivors are merged here, instead of adding the beam scores to all k·V
    /// log-probabilities and sorting those (two more passes over the largest tensor of the
    /// step, and an allocation of its size).
    fn best_candidates(&self, logits: &Tensor, banned: &[u32]) -> Result<Candidates, ModelError> {
        let (k, vocab_size) = (self.k, self.vocab_size);
        let per_row = (2 * k).min(vocab_size as usize);
        let (row_best, row_tokens) = best_per_row(logits, per_row, banned)?;
        // Beam scores so far, -inf for beams that do not exist (the first step has one).
        let mut beam_scores = vec![f32::NEG_INFINITY; self.active.len() * k];
        for (i, &s) in self.active.iter().enumerate() {
            for (j, b) in self.sentences[s].beams.iter().enumerate() {
                beam_scores[i * k + j] = b.score as f32;
            }
        }
        let per_sentence = (2 * k).min(k * vocab_size as usize);
        let mut scores = Vec::with_capacity(self.active.len() * per_sentence);
        let mut index = Vec::with_capacity(self.active.len() * per_sentence);
        let mut pool: Vec<(f32, i64)> = Vec::with_capacity(k * per_row);
        for i in 0..self.active.len() {
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
            for &(score, flat) in pool.iter().take(per_sentence) {
                scores.push(score);
                index.push(flat);
            }
        }
        Ok(Candidates {
            per_sentence,
            scores,
            index,
        })
    }

    /// Extends every active sentence with its candidates of step `t`, and says which rows
    /// go on.
    fn extend(&mut self, t: usize, candidates: &Candidates, host: &StepOnHost) -> NextRows {
        let n = self.active.len();
        let mut next = NextRows {
            rows: Vec::with_capacity(n * self.k),
            tokens: Vec::with_capacity(n * self.k),
            sentences: Vec::with_capacity(n),
            positions: Vec::with_capacity(n),
        };
        let active = std::mem::take(&mut self.active);
        for (i, &s) in active.iter().enumerate() {
            let new_rows = self.extend_sentence(s, i, t, candidates, host);
            let sent = &mut self.sentences[s];
            // Stop once the n-best are settled (not when `k` have finished): with one
            // output per sentence, the steps spent finishing k - 1 hypotheses nobody
            // asked for are saved.
            if sent.beams.is_empty() || sent.cannot_improve(self.n_best, self.opts.length_penalty) {
                continue;
            }
            next.sentences.push(s);
            next.positions.push(i);
            self.push_rows(s, i, new_rows, &mut next);
        }
        self.active = active;
        next
    }

    /// Sentence `s` (position `i` in `active`) takes its candidates of step `t`: EOS among
    /// the first k finishes a hypothesis, other tokens extend the beams (at most k). At the
    /// length limit the new beams finish too. Returns the row each new beam continues.
    fn extend_sentence(
        &mut self,
        s: usize,
        i: usize,
        t: usize,
        candidates: &Candidates,
        host: &StepOnHost,
    ) -> Vec<i64> {
        let (k, vocab_size, opts) = (self.k, self.vocab_size, self.opts);
        let sent = &mut self.sentences[s];
        let mut new_beams: Vec<Partial> = Vec::with_capacity(k);
        let mut new_rows = Vec::with_capacity(k);
        let first = i * candidates.per_sentence;
        for c in 0..candidates.per_sentence {
            let score = candidates.scores[first + c];
            if !score.is_finite() {
                break;
            }
            let flat = candidates.index[first + c];
            let (beam, token) = ((flat / vocab_size) as usize, flat % vocab_size);
            let row = i * k + beam;
            let parent = &sent.beams[beam];
            let token_lp = score - parent.score as f32;
            if token == vocab::EOS_ID as i64 {
                // Only EOS among the first k candidates ends a hypothesis (fairseq's rule),
                // so a finished hypothesis always beat the beams kept alongside it.
                if c < k {
                    let rank = score as f64 / opts.length_penalty.divisor(parent.tokens.len() + 1)
                        + coverage_term(opts, host, row, sent.src_len);
                    let done = parent.extended(None, token_lp, score as f64, None);
                    sent.finish(rank, done);
                }
            } else if new_beams.len() < k {
                let attention = opts
                    .keep_attention
                    .then(|| &host.attention[row][..sent.src_len]);
                new_beams.push(parent.extended(
                    Some(token as u32),
                    token_lp,
                    score as f64,
                    attention,
                ));
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
                    + coverage_term(opts, host, row as usize, sent.src_len);
                sent.finish(rank, b);
            }
        }
        sent.beams = new_beams;
        new_rows
    }

    /// The k rows of sentence `s` (position `i` in `active`) for the next step: the rows its
    /// beams continue and their last tokens. Rows stay k per sentence: missing beams repeat
    /// the last row and are scored -inf next step (they have no entry in `beams`).
    fn push_rows(&self, s: usize, i: usize, mut new_rows: Vec<i64>, next: &mut NextRows) {
        let beams = &self.sentences[s].beams;
        let last_row = *new_rows.last().unwrap_or(&((i * self.k) as i64));
        new_rows.resize(self.k, last_row);
        let last_token = beams
            .last()
            .and_then(|b| b.tokens.last())
            .copied()
            .unwrap_or(vocab::EOS_ID);
        for (j, &r) in new_rows.iter().enumerate() {
            next.rows.push(r);
            let token = beams
                .get(j)
                .and_then(|b| b.tokens.last())
                .copied()
                .unwrap_or(last_token);
            next.tokens.push(token as i64);
        }
    }

    /// Every sentence's n-best list, in input order.
    fn into_results(self) -> Vec<Vec<Hypothesis>> {
        let (n, penalty) = (self.n_best, self.opts.length_penalty);
        self.sentences
            .into_iter()
            .map(|s| s.into_n_best(n, penalty))
            .collect()
    }
}

/// GNMT's coverage penalty β·Σ_i log(min(Σ_t a_ti, 1)) of the hypothesis on `row` (its
/// attention summed up to this step), over the sentence's `src_len` real tokens.
fn coverage_term(opts: &BeamOptions, host: &StepOnHost, row: usize, src_len: usize) -> f64 {
    if opts.coverage_penalty == 0.0 {
        return 0.0;
    }
    let cov: f64 = host.coverage[row][..src_len]
        .iter()
        .map(|&a| (a.min(1.0) as f64).max(1e-10).ln())
        .sum();
    opts.coverage_penalty * cov
}
