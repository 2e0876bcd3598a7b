//! BLEU (Papineni et al., 2002) exactly as sacreBLEU 2.x computes it.
//!
//! Corpus BLEU sums each segment's n-gram statistics and computes one score from
//! the sums; sentence BLEU computes a score per segment. With several references,
//! a hypothesis n-gram may match up to the largest count it has in any single
//! reference, and the reference length is the one closest to the hypothesis
//! length (the shorter one on ties).

use std::ops::AddAssign;

use rustc_hash::FxHashMap as HashMap;

use crate::error::EvalError;
use crate::signature::BleuSignature;
use crate::smoothing::Smoothing;
use crate::streams::{check_streams, References};
use crate::text::{py_lower, py_rstrip, py_split};
use crate::tokenizers::Tokenizer;

/// sacreBLEU's default maximum n-gram order.
pub const MAX_NGRAM_ORDER: usize = 4;

/// Settings of a BLEU computation; `Default` is sacreBLEU's default.
#[derive(Debug, Clone, PartialEq)]
pub struct BleuOptions {
    /// Word tokenizer (default `13a`).
    pub tokenize: Tokenizer,
    /// Lowercase hypotheses and references before tokenizing.
    pub lowercase: bool,
    /// Smoothing method (default `exp`).
    pub smoothing: Smoothing,
    /// Highest n-gram order (default 4).
    pub max_ngram_order: usize,
    /// Effective order: average only over the orders the hypothesis is long enough
    /// to have. `None` follows sacreBLEU: off for corpus BLEU, on for sentence BLEU.
    pub effective_order: Option<bool>,
}

impl Default for BleuOptions {
    fn default() -> Self {
        BleuOptions {
            tokenize: Tokenizer::Thirteen,
            lowercase: false,
            smoothing: Smoothing::Exp,
            max_ngram_order: MAX_NGRAM_ORDER,
            effective_order: None,
        }
    }
}

impl BleuOptions {
    fn validate(&self) -> Result<(), EvalError> {
        if self.max_ngram_order == 0 {
            return Err(EvalError::InvalidOption {
                name: "max-ngram-order",
                message: "must be at least 1".to_owned(),
            });
        }
        self.smoothing.validate()
    }

    /// Lowercases (if asked), strips trailing whitespace and tokenizes one line,
    /// in sacreBLEU's order.
    pub fn preprocess(&self, line: &str) -> String {
        if self.lowercase {
            self.tokenize.tokenize(py_rstrip(&py_lower(line)))
        } else {
            self.tokenize.tokenize(py_rstrip(line))
        }
    }

    /// The signature for a score computed with these options.
    pub fn signature(&self, nrefs: usize, effective_order: bool) -> BleuSignature {
        BleuSignature {
            nrefs,
            lowercase: self.lowercase,
            effective_order,
            tokenizer: self.tokenize,
            smoothing: self.smoothing,
        }
    }
}

/// The sufficient statistics of BLEU for one segment or a sum of segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BleuStats {
    /// Hypothesis length in tokens.
    pub hyp_len: usize,
    /// Reference length in tokens (closest reference per segment).
    pub ref_len: usize,
    /// `correct[n-1]`: clipped matches of n-grams.
    pub correct: Vec<usize>,
    /// `total[n-1]`: hypothesis n-grams.
    pub total: Vec<usize>,
}

impl BleuStats {
    /// All-zero statistics for n-grams up to `max_order`.
    pub fn zero(max_order: usize) -> Self {
        BleuStats {
            hyp_len: 0,
            ref_len: 0,
            correct: vec![0; max_order],
            total: vec![0; max_order],
        }
    }
}

impl AddAssign<&BleuStats> for BleuStats {
    fn add_assign(&mut self, rhs: &BleuStats) {
        self.hyp_len += rhs.hyp_len;
        self.ref_len += rhs.ref_len;
        for (a, b) in self.correct.iter_mut().zip(&rhs.correct) {
            *a += b;
        }
        for (a, b) in self.total.iter_mut().zip(&rhs.total) {
            *a += b;
        }
    }
}

/// A BLEU score with the figures sacreBLEU reports next to it.
#[derive(Debug, Clone, PartialEq)]
pub struct BleuScore {
    /// BLEU in 0..=100.
    pub score: f64,
    /// Clipped n-gram matches per order (before any add-k smoothing).
    pub counts: Vec<usize>,
    /// Hypothesis n-grams per order (before any add-k smoothing).
    pub totals: Vec<usize>,
    /// Smoothed n-gram precisions in percent, per order.
    pub precisions: Vec<f64>,
    /// Brevity penalty.
    pub bp: f64,
    /// Hypothesis/reference length ratio (0 when the reference length is 0).
    pub ratio: f64,
    /// Hypothesis length in tokens.
    pub sys_len: usize,
    /// Reference length in tokens.
    pub ref_len: usize,
    /// The settings that produced this score.
    pub signature: BleuSignature,
}

/// Computes BLEU from sufficient statistics, as sacreBLEU's `BLEU.compute_bleu`.
///
/// `effective_order`: average the log precisions only over the orders that have
/// hypothesis n-grams (otherwise a missing order gives BLEU 0).
pub fn compute_bleu(
    stats: &BleuStats,
    smoothing: Smoothing,
    effective_order: bool,
) -> (f64, Vec<f64>, f64) {
    let max_order = stats.correct.len();
    let (sys_len, ref_len) = (stats.hyp_len as f64, stats.ref_len as f64);
    let bp = if stats.hyp_len < stats.ref_len {
        if stats.hyp_len > 0 {
            (1.0 - ref_len / sys_len).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    let mut precisions = vec![0.0; max_order];
    // sacreBLEU returns 0 outright when nothing matches, whatever the smoothing.
    if stats.correct.iter().all(|&c| c == 0) {
        return (0.0, precisions, bp);
    }
    let mut smooth_mteval = 1.0;
    let mut eff_order = max_order;
    for (n, precision) in precisions.iter_mut().enumerate() {
        let (mut correct, mut total) = (stats.correct[n] as f64, stats.total[n] as f64);
        if let Smoothing::AddK(k) = smoothing {
            if n > 0 {
                correct += k;
                total += k;
            }
        }
        if total == 0.0 {
            break;
        }
        if effective_order {
            eff_order = n + 1;
        }
        *precision = if correct == 0.0 {
            match smoothing {
                Smoothing::Exp => {
                    smooth_mteval *= 2.0;
                    100.0 / (smooth_mteval * total)
                }
                Smoothing::Floor(v) => 100.0 * v / total,
                Smoothing::AddK(_) | Smoothing::None => 0.0,
            }
        } else {
            100.0 * correct / total
        };
    }
    let log_sum: f64 = precisions[..eff_order]
        .iter()
        .map(|&p| floored_log(p))
        .sum();
    let score = bp * (log_sum / eff_order as f64).exp();
    (score, precisions, bp)
}

/// sacreBLEU's `my_log`: log with log(0) replaced by a huge negative number, so a
/// zero precision drives the geometric mean to 0 instead of producing NaN.
fn floored_log(p: f64) -> f64 {
    if p == 0.0 {
        -9_999_999_999.0
    } else {
        p.ln()
    }
}

/// Counts every n-gram of orders 1..=max_order of `tokens`.
fn count_ngrams<'a>(tokens: &'a [&'a str], max_order: usize) -> HashMap<&'a [&'a str], usize> {
    let mut counts =
        HashMap::with_capacity_and_hasher(tokens.len() * max_order, Default::default());
    for n in 1..=max_order.min(tokens.len()) {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

/// sacreBLEU's closest reference length: smallest |hyp - ref|, the shorter
/// reference on ties.
fn closest_ref_len(hyp_len: usize, ref_lens: &[usize]) -> usize {
    ref_lens
        .iter()
        .copied()
        .min_by_key(|&r| (hyp_len.abs_diff(r), r))
        .unwrap_or(0)
}

/// BLEU statistics of one preprocessed (tokenized) hypothesis against its
/// preprocessed references.
pub fn segment_stats<S: AsRef<str>>(hyp: &str, refs: &[S], max_order: usize) -> BleuStats {
    let hyp_tokens: Vec<&str> = py_split(hyp).collect();
    let ref_tokens: Vec<Vec<&str>> = refs
        .iter()
        .map(|r| py_split(r.as_ref()).collect())
        .collect();
    let ref_lens: Vec<usize> = ref_tokens.iter().map(Vec::len).collect();

    // Clipping counts: the largest count of each n-gram in any single reference.
    let mut ref_counts: HashMap<&[&str], usize> = HashMap::default();
    for tokens in &ref_tokens {
        for (gram, c) in count_ngrams(tokens, max_order) {
            let best = ref_counts.entry(gram).or_insert(0);
            *best = (*best).max(c);
        }
    }

    let mut stats = BleuStats::zero(max_order);
    stats.hyp_len = hyp_tokens.len();
    stats.ref_len = closest_ref_len(hyp_tokens.len(), &ref_lens);
    for (gram, c) in count_ngrams(&hyp_tokens, max_order) {
        let n = gram.len() - 1;
        stats.total[n] += c;
        if let Some(&r) = ref_counts.get(gram) {
            stats.correct[n] += c.min(r);
        }
    }
    stats
}

/// A BLEU scorer holding preprocessed references, so that several systems (or
/// several validation passes of a trainer) can be scored against the same
/// references without tokenizing them again.
#[derive(Debug, Clone)]
pub struct Bleu {
    options: BleuOptions,
    refs: References,
}

impl Bleu {
    /// Preprocesses `refs` (reference streams, each as long as the test set; see
    /// [`crate::streams`]) with `options`.
    pub fn new<R: AsRef<str>>(refs: &[Vec<R>], options: BleuOptions) -> Result<Self, EvalError> {
        options.validate()?;
        let refs = References::new(refs, |r| options.preprocess(r))?;
        Ok(Bleu { options, refs })
    }

    /// The options this scorer uses.
    pub fn options(&self) -> &BleuOptions {
        &self.options
    }

    /// Number of segments in the test set.
    pub fn len(&self) -> usize {
        self.refs.segments.len()
    }

    /// True when the test set has no segments.
    pub fn is_empty(&self) -> bool {
        self.refs.segments.is_empty()
    }

    /// Per-segment statistics of `hyps` (one per segment, in order).
    pub fn segment_stats<H: AsRef<str>>(&self, hyps: &[H]) -> Result<Vec<BleuStats>, EvalError> {
        let max_order = self.options.max_ngram_order;
        self.refs.map_segments(hyps, |h, refs| {
            segment_stats(&self.options.preprocess(h), refs, max_order)
        })
    }

    /// Scores summed statistics with this scorer's options.
    pub fn score_stats(&self, stats: &BleuStats, effective_order: bool) -> BleuScore {
        let (score, precisions, bp) = compute_bleu(stats, self.options.smoothing, effective_order);
        BleuScore {
            score,
            counts: stats.correct.clone(),
            totals: stats.total.clone(),
            precisions,
            bp,
            ratio: if stats.ref_len > 0 {
                stats.hyp_len as f64 / stats.ref_len as f64
            } else {
                0.0
            },
            sys_len: stats.hyp_len,
            ref_len: stats.ref_len,
            signature: self.options.signature(self.refs.nrefs, effective_order),
        }
    }

    /// Corpus BLEU of `hyps` (one line per segment). Effective order is off unless
    /// the options turn it on.
    pub fn corpus_score<H: AsRef<str>>(&self, hyps: &[H]) -> Result<BleuScore, EvalError> {
        let mut total = BleuStats::zero(self.options.max_ngram_order);
        for s in self.segment_stats(hyps)? {
            total += &s;
        }
        Ok(self.score_stats(&total, self.options.effective_order.unwrap_or(false)))
    }

    /// Sentence BLEU of every line of `hyps`. Effective order is on unless the
    /// options turn it off.
    pub fn sentence_scores<H: AsRef<str>>(&self, hyps: &[H]) -> Result<Vec<BleuScore>, EvalError> {
        let effective_order = self.options.effective_order.unwrap_or(true);
        Ok(self
            .segment_stats(hyps)?
            .iter()
            .map(|s| self.score_stats(s, effective_order))
            .collect())
    }
}

/// Corpus BLEU of `hyps` against reference streams `refs` (`refs[k][i]` is the
/// k-th reference of `hyps[i]`; with one reference per line pass `&[refs]`).
///
/// Equals sacreBLEU's `BLEU(**options).corpus_score(hyps, refs).score`.
pub fn corpus_bleu<H: AsRef<str>, R: AsRef<str>>(
    hyps: &[H],
    refs: &[Vec<R>],
    options: &BleuOptions,
) -> Result<BleuScore, EvalError> {
    check_streams(hyps, refs)?;
    Bleu::new(refs, options.clone())?.corpus_score(hyps)
}

/// Sentence BLEU of one hypothesis against its references (effective order on
/// unless `options` turn it off), as sacreBLEU's `sentence_bleu`.
pub fn sentence_bleu<R: AsRef<str>>(
    hyp: &str,
    refs: &[R],
    options: &BleuOptions,
) -> Result<BleuScore, EvalError> {
    let streams: Vec<Vec<&str>> = refs.iter().map(|r| vec![r.as_ref()]).collect();
    let mut scores = Bleu::new(&streams, options.clone())?.sentence_scores(&[hyp])?;
    // One hypothesis in, one score out.
    Ok(scores.remove(0))
}
