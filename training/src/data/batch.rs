//! Token-budget batching (like fairseq's `--max-tokens`) and padded
//! [`Batch`]es as plain arrays for the trainer to turn into tensors.
//!
//! Conventions (as in fairseq):
//! - the source gets EOS appended: `src` rows are `ids… EOS PAD…`, so a
//!   source of n subword tokens takes n + 1 positions;
//! - the decoder input is `BOS ids… PAD…` (`tgt_in`) and its expected
//!   output `ids… EOS PAD…` (`tgt_out`), both n + 1 positions;
//! - padding is on the right with [`vocab::PAD_ID`] (0);
//! - rows in a batch are sorted by decreasing source length (ties keep
//!   plan order), as packed RNN sequences want; `indices` says which pair
//!   each row is.
//!
//! The budget counts positions with these specials: a batch of n sentences
//! has `n × src_len ≤ max_tokens` and `n × tgt_len ≤ max_tokens`.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vocab::{BOS_ID, EOS_ID, PAD_ID};

use crate::data::error::{DataError, Side};
use crate::data::store::EncodedCorpus;

/// Limits of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Padded positions per batch and side: `batch_size × src_len` and
    /// `batch_size × tgt_len` never exceed this (fairseq's `--max-tokens`).
    pub max_tokens: usize,
    /// At most this many sentences per batch (fairseq's `--batch-size`).
    pub max_sentences: Option<usize>,
}

impl BatchConfig {
    /// A budget of `max_tokens` padded positions, no sentence limit.
    pub fn tokens(max_tokens: usize) -> Self {
        BatchConfig {
            max_tokens,
            max_sentences: None,
        }
    }
}

/// Plans batches over an [`EncodedCorpus`]: shuffled per epoch for
/// training ([`TokenBatcher::epoch`]), or in a fixed length order for
/// evaluation and translation ([`TokenBatcher::ordered`]).
///
/// Training plans are a pure function of `(seed, epoch)`: to resume at
/// batch `k` of an epoch, rebuild `epoch(epoch)` and continue from batch
/// `k` (see [`BatchPlan::batches`]).
#[derive(Debug, Clone)]
pub struct TokenBatcher {
    config: BatchConfig,
    seed: u64,
    /// Source positions (tokens + eos) per pair.
    src_pos: Vec<u32>,
    /// Target positions (tokens + bos or eos) per pair.
    tgt_pos: Vec<u32>,
    /// Sampling weights of consecutive groups of pairs (`(pairs, weight)`, covering the
    /// corpus in order); empty: every pair once per epoch. See [`TokenBatcher::with_weights`].
    weights: Vec<(usize, f64)>,
}

impl TokenBatcher {
    /// Checks that every pair fits in a batch on its own (else
    /// [`DataError::TooLong`]: filter with a maximum length first) and
    /// records the lengths.
    pub fn new(corpus: &EncodedCorpus, config: BatchConfig, seed: u64) -> Result<Self, DataError> {
        if config.max_tokens == 0 || config.max_sentences == Some(0) {
            return Err(DataError::Invalid(format!(
                "batching needs max_tokens > 0 and max_sentences > 0, got {config:?}"
            )));
        }
        let n = corpus.len();
        if n > u32::MAX as usize {
            return Err(DataError::Invalid(format!(
                "{n} pairs are more than batching supports ({})",
                u32::MAX
            )));
        }
        let (src, tgt) = (corpus.src_column(), corpus.tgt_column());
        let mut src_pos = Vec::with_capacity(n);
        let mut tgt_pos = Vec::with_capacity(n);
        for i in 0..n {
            for (side, positions) in [
                (Side::Source, src.seq_len(i) + 1),
                (Side::Target, tgt.seq_len(i) + 1),
            ] {
                if positions > config.max_tokens {
                    return Err(DataError::TooLong {
                        index: i,
                        side,
                        positions,
                        max_tokens: config.max_tokens,
                    });
                }
            }
            // Lengths beyond u32 would need a budget beyond 4G positions;
            // saturating keeps such a budget harmless.
            src_pos.push(u32::try_from(src.seq_len(i) + 1).unwrap_or(u32::MAX));
            tgt_pos.push(u32::try_from(tgt.seq_len(i) + 1).unwrap_or(u32::MAX));
        }
        Ok(TokenBatcher {
            config,
            seed,
            src_pos,
            tgt_pos,
            weights: Vec::new(),
        })
    }

    /// Draws the pairs of each group `weight` times per epoch instead of once: the corpus is
    /// `groups` in order (`(pairs, weight)`, e.g. one group per training corpus), and a group
    /// of n pairs with weight w gives every pair `floor(w)` times plus a sample of
    /// `round(frac(w) · n)` distinct pairs, drawn anew each epoch from `(seed, epoch)` (so a
    /// resumed epoch draws the same). All weights 1 is the plain plan, bit for bit.
    pub fn with_weights(mut self, groups: &[(usize, f64)]) -> Result<Self, DataError> {
        let total: usize = groups.iter().map(|(n, _)| n).sum();
        if total != self.len() {
            return Err(DataError::Invalid(format!(
                "corpus weights cover {total} pairs, the corpus has {}",
                self.len()
            )));
        }
        if let Some((_, w)) = groups.iter().find(|(_, w)| !(w.is_finite() && *w > 0.0)) {
            return Err(DataError::Invalid(format!(
                "corpus weight {w} must be a positive number"
            )));
        }
        self.weights = if groups.iter().all(|&(_, w)| w == 1.0) {
            Vec::new()
        } else {
            groups.to_vec()
        };
        Ok(self)
    }

    /// The pairs of one epoch before shuffling: each once, or as the weights say.
    fn draw(&self, rng: &mut ChaCha8Rng) -> Vec<u32> {
        if self.weights.is_empty() {
            return (0..self.len() as u32).collect();
        }
        let mut drawn = Vec::new();
        let mut start = 0usize;
        for &(n, w) in &self.weights {
            let whole = w.floor();
            for _ in 0..whole as usize {
                drawn.extend(start as u32..(start + n) as u32);
            }
            let extra = ((w - whole) * n as f64).round() as usize;
            if extra > 0 {
                let sample = rand::seq::index::sample(rng, n, extra.min(n));
                drawn.extend(sample.into_iter().map(|i| (start + i) as u32));
            }
            start += n;
        }
        drawn
    }

    /// The settings.
    pub fn config(&self) -> BatchConfig {
        self.config
    }

    /// Number of pairs batched.
    pub fn len(&self) -> usize {
        self.src_pos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.src_pos.is_empty()
    }

    /// The training plan of `epoch`: pairs are shuffled with seed
    /// `seed + epoch`, stably sorted by (source, target) length so that
    /// equal lengths are in random order, cut into batches within the
    /// budget, and the batch order is shuffled with the same generator.
    /// Every pair is in exactly one batch (with [`TokenBatcher::with_weights`]: as often as
    /// it was drawn). Same `(seed, epoch)` → same plan; another epoch → another order and
    /// batch composition.
    pub fn epoch(&self, epoch: u64) -> BatchPlan {
        // ChaCha8 rather than StdRng: its output is fixed by its spec, so
        // plans stay reproducible across rand versions and platforms.
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed.wrapping_add(epoch));
        let mut order = self.draw(&mut rng);
        order.shuffle(&mut rng);
        let mut plan = self.cut(self.sort_by_lengths(order));
        let mut ranges: Vec<(usize, usize)> =
            plan.bounds.windows(2).map(|w| (w[0], w[1])).collect();
        ranges.shuffle(&mut rng);
        let mut order = Vec::with_capacity(plan.order.len());
        let mut bounds = Vec::with_capacity(plan.bounds.len());
        bounds.push(0);
        for (a, b) in ranges {
            order.extend_from_slice(&plan.order[a..b]);
            bounds.push(order.len());
        }
        plan.order = order;
        plan.bounds = bounds;
        plan
    }

    /// The evaluation/translation plan: pairs sorted by (source, target)
    /// length, ties by index, cut within the budget, not shuffled.
    /// Deterministic and independent of the seed. Use
    /// [`Batch::indices`] and [`crate::data::restore_order`] to put
    /// outputs back in input order.
    pub fn ordered(&self) -> BatchPlan {
        let order: Vec<u32> = (0..self.len() as u32).collect();
        self.cut(self.sort_by_lengths(order))
    }

    /// Stable sort of `order` by (source, target) positions. Two counting
    /// sort passes (LSD radix on small integer keys) instead of a
    /// comparison sort: lengths are bounded by the budget, and a
    /// comparison sort over a shuffled order pays a cache miss per key
    /// lookup (docs/BENCHMARKS.md, "Corpus pipeline", has the figures).
    fn sort_by_lengths(&self, order: Vec<u32>) -> Vec<u32> {
        let by_tgt = counting_sort(&order, &self.tgt_pos);
        counting_sort(&by_tgt, &self.src_pos)
    }

    /// Greedy cut of a length-sorted order: a batch grows while its padded
    /// size on both sides and its sentence count stay within the limits.
    fn cut(&self, order: Vec<u32>) -> BatchPlan {
        let max_sent = self.config.max_sentences.unwrap_or(usize::MAX);
        let mut bounds = vec![0];
        let (mut n, mut max_s, mut max_t) = (0usize, 0usize, 0usize);
        for (k, &i) in order.iter().enumerate() {
            let s = self.src_pos[i as usize] as usize;
            let t = self.tgt_pos[i as usize] as usize;
            let (n2, s2, t2) = (n + 1, max_s.max(s), max_t.max(t));
            let fits = n2 <= max_sent
                && n2.saturating_mul(s2) <= self.config.max_tokens
                && n2.saturating_mul(t2) <= self.config.max_tokens;
            if n > 0 && !fits {
                bounds.push(k);
                (n, max_s, max_t) = (1, s, t);
            } else {
                (n, max_s, max_t) = (n2, s2, t2);
            }
        }
        if n > 0 {
            bounds.push(order.len());
        }
        BatchPlan { order, bounds }
    }
}

/// Stable sort of `order` by `key[i]`.
fn counting_sort(order: &[u32], key: &[u32]) -> Vec<u32> {
    let max = order.iter().map(|&i| key[i as usize]).max().unwrap_or(0) as usize;
    // starts[k] = first output slot of key k.
    let mut starts = vec![0usize; max + 2];
    for &i in order {
        starts[key[i as usize] as usize + 1] += 1;
    }
    for k in 1..starts.len() {
        starts[k] += starts[k - 1];
    }
    let mut out = vec![0u32; order.len()];
    for &i in order {
        let slot = &mut starts[key[i as usize] as usize];
        out[*slot] = i;
        *slot += 1;
    }
    out
}

/// An ordered list of batches, each a list of pair indices. Cheap: 4 bytes
/// per pair plus one offset per batch; [`Batch`]es are built on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    order: Vec<u32>,
    /// Batch `b` is `order[bounds[b]..bounds[b + 1]]`.
    bounds: Vec<usize>,
}

impl BatchPlan {
    /// Number of batches.
    pub fn len(&self) -> usize {
        self.bounds.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pair indices of batch `b`; panics if `b >= len()`.
    pub fn batch(&self, b: usize) -> &[u32] {
        &self.order[self.bounds[b]..self.bounds[b + 1]]
    }

    /// Pair indices of every batch, in plan order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u32]> + '_ {
        (0..self.len()).map(move |b| self.batch(b))
    }

    /// Padded batches from batch `start` on (0 for a whole epoch; `k` to
    /// resume after `k` batches), built lazily.
    pub fn batches<'a>(
        &'a self,
        corpus: &'a EncodedCorpus,
        start: usize,
    ) -> impl Iterator<Item = Batch> + 'a {
        (start.min(self.len())..self.len()).map(move |b| Batch::collate(corpus, self.batch(b)))
    }
}

/// One padded batch as row-major arrays (`[batch, len]` means
/// `batch_size` rows of `len` entries; element `(r, c)` is at
/// `r * len + c`). See the module docs for bos/eos/padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Pair index in the [`EncodedCorpus`] of each row: `[batch]`.
    pub indices: Vec<usize>,
    /// Number of rows.
    pub batch_size: usize,
    /// Longest source in positions (tokens + eos).
    pub src_len: usize,
    /// Longest target in positions (tokens + 1).
    pub tgt_len: usize,
    /// Source ids + EOS, right-padded with PAD: `[batch, src_len]` i64.
    pub src: Vec<i64>,
    /// Source positions per row (tokens + eos), decreasing: `[batch]` i64.
    pub src_lengths: Vec<i64>,
    /// Decoder input, BOS + target ids, padded: `[batch, tgt_len]` i64.
    pub tgt_in: Vec<i64>,
    /// Decoder output, target ids + EOS, padded: `[batch, tgt_len]` i64.
    pub tgt_out: Vec<i64>,
    /// Target positions per row (tokens + 1): `[batch]` i64.
    pub tgt_lengths: Vec<i64>,
    /// Real (non-pad) source positions in the batch, eos included.
    pub src_tokens: usize,
    /// Real target positions (predicted tokens, eos included).
    pub tgt_tokens: usize,
}

impl Batch {
    /// Pads the pairs `indices` of `corpus` into a batch, rows sorted by
    /// decreasing source length. Panics if an index is out of range (plans
    /// only hold valid ones).
    pub fn collate(corpus: &EncodedCorpus, indices: &[u32]) -> Batch {
        let mut rows: Vec<usize> = indices.iter().map(|&i| i as usize).collect();
        rows.sort_by_key(|&i| std::cmp::Reverse(corpus.src(i).len()));
        let batch_size = rows.len();
        let src_len = rows
            .iter()
            .map(|&i| corpus.src(i).len() + 1)
            .max()
            .unwrap_or(0);
        let tgt_len = rows
            .iter()
            .map(|&i| corpus.tgt(i).len() + 1)
            .max()
            .unwrap_or(0);
        let pad = i64::from(PAD_ID);
        let mut src = vec![pad; batch_size * src_len];
        let mut tgt_in = vec![pad; batch_size * tgt_len];
        let mut tgt_out = vec![pad; batch_size * tgt_len];
        let mut src_lengths = Vec::with_capacity(batch_size);
        let mut tgt_lengths = Vec::with_capacity(batch_size);
        for (r, &i) in rows.iter().enumerate() {
            let s = corpus.src(i);
            let row = &mut src[r * src_len..(r + 1) * src_len];
            for (dst, id) in row.iter_mut().zip(s.iter()) {
                *dst = i64::from(id);
            }
            row[s.len()] = i64::from(EOS_ID);
            src_lengths.push(s.len() as i64 + 1);

            let t = corpus.tgt(i);
            let row_in = &mut tgt_in[r * tgt_len..(r + 1) * tgt_len];
            let row_out = &mut tgt_out[r * tgt_len..(r + 1) * tgt_len];
            row_in[0] = i64::from(BOS_ID);
            for (k, id) in t.iter().enumerate() {
                row_in[k + 1] = i64::from(id);
                row_out[k] = i64::from(id);
            }
            row_out[t.len()] = i64::from(EOS_ID);
            tgt_lengths.push(t.len() as i64 + 1);
        }
        Batch {
            src_tokens: src_lengths.iter().sum::<i64>() as usize,
            tgt_tokens: tgt_lengths.iter().sum::<i64>() as usize,
            indices: rows,
            batch_size,
            src_len,
            tgt_len,
            src,
            src_lengths,
            tgt_in,
            tgt_out,
            tgt_lengths,
        }
    }

    /// `true` at real source positions (eos included), `false` at padding:
    /// `[batch, src_len]` bool, row-major (for attention masking).
    pub fn src_mask(&self) -> Vec<bool> {
        lengths_mask(&self.src_lengths, self.src_len)
    }

    /// `true` at real target positions, `false` at padding:
    /// `[batch, tgt_len]` bool (for masking the loss; equals
    /// `tgt_out != PAD`).
    pub fn tgt_mask(&self) -> Vec<bool> {
        lengths_mask(&self.tgt_lengths, self.tgt_len)
    }
}

fn lengths_mask(lengths: &[i64], len: usize) -> Vec<bool> {
    let mut mask = Vec::with_capacity(lengths.len() * len);
    for &l in lengths {
        mask.extend((0..len).map(|c| (c as i64) < l));
    }
    mask
}
