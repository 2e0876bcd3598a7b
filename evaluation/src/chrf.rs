//! chrF (Popović, 2015) and chrF++ (Popović, 2017) exactly as sacreBLEU 2.x
//! computes them.
//!
//! chrF is an F-score over character n-grams (orders 1..=6 by default, spaces
//! removed); chrF++ adds word unigrams and bigrams. Corpus chrF sums per-order
//! statistics over segments; with several references each segment uses the
//! reference giving it the best F-score.

use std::hash::Hash;

use rustc_hash::FxHashMap as HashMap;

use crate::error::EvalError;
use crate::signature::ChrfSignature;
use crate::streams::{check_streams, References};
use crate::text::{py_lower, py_remove_spaces, py_split};

/// The characters chrF++ strips from word edges: Python's `string.punctuation`.
const PUNCTS: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Settings of a chrF computation; `Default` is sacreBLEU's chrF2 default.
#[derive(Debug, Clone, PartialEq)]
pub struct ChrfOptions {
    /// Highest character n-gram order (default 6).
    pub char_order: usize,
    /// Highest word n-gram order (default 0; 2 gives chrF++).
    pub word_order: usize,
    /// Recall weight β (default 2).
    pub beta: u32,
    /// Lowercase hypotheses and references first.
    pub lowercase: bool,
    /// Keep whitespace inside character n-grams (default: removed).
    pub whitespace: bool,
    /// chrF++.py-style epsilon smoothing instead of sacreBLEU's default
    /// effective-order averaging.
    pub eps_smoothing: bool,
}

impl Default for ChrfOptions {
    fn default() -> Self {
        ChrfOptions {
            char_order: 6,
            word_order: 0,
            beta: 2,
            lowercase: false,
            whitespace: false,
            eps_smoothing: false,
        }
    }
}

impl ChrfOptions {
    /// chrF++: the defaults with word order 2.
    pub fn chrf_plus_plus() -> Self {
        ChrfOptions {
            word_order: 2,
            ..ChrfOptions::default()
        }
    }

    fn validate(&self) -> Result<(), EvalError> {
        if self.char_order + self.word_order == 0 {
            return Err(EvalError::InvalidOption {
                name: "chrf-char-order",
                message: "character and word orders are both 0: nothing to count".to_owned(),
            });
        }
        Ok(())
    }

    /// The metric's name as sacreBLEU prints it: `chrF2`, `chrF2++`.
    pub fn metric_name(&self) -> String {
        format!("chrF{}{}", self.beta, "+".repeat(self.word_order))
    }

    /// The signature for a score computed with these options.
    pub fn signature(&self, nrefs: usize) -> ChrfSignature {
        ChrfSignature {
            nrefs,
            lowercase: self.lowercase,
            eps_smoothing: self.eps_smoothing,
            char_order: self.char_order,
            word_order: self.word_order,
            whitespace: self.whitespace,
        }
    }

    fn preprocess(&self, line: &str) -> String {
        if self.lowercase {
            py_lower(line)
        } else {
            line.to_owned()
        }
    }

    /// The F-score (0..=100) of flattened `[hyp, ref, match]` triples, one per order.
    pub fn f_score(&self, stats: &ChrfStats) -> f64 {
        const EPS: f64 = 1e-16;
        let factor = f64::from(self.beta).powi(2);
        let order = stats.orders.len();
        let (mut score, mut avg_prec, mut avg_rec, mut effective_order) = (0.0, 0.0, 0.0, 0usize);
        for &[n_hyp, n_ref, n_match] in &stats.orders {
            let prec = if n_hyp > 0 {
                n_match as f64 / n_hyp as f64
            } else {
                EPS
            };
            let rec = if n_ref > 0 {
                n_match as f64 / n_ref as f64
            } else {
                EPS
            };
            let denom = factor * prec + rec;
            score += if denom > 0.0 {
                (1.0 + factor) * prec * rec / denom
            } else {
                EPS
            };
            if n_hyp > 0 && n_ref > 0 {
                avg_prec += prec;
                avg_rec += rec;
                effective_order += 1;
            }
        }
        if self.eps_smoothing {
            return 100.0 * score / order as f64;
        }
        if effective_order == 0 {
            return 0.0;
        }
        avg_prec /= effective_order as f64;
        avg_rec /= effective_order as f64;
        if avg_prec + avg_rec == 0.0 {
            return 0.0;
        }
        let f = (1.0 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec);
        100.0 * f
    }
}

/// chrF sufficient statistics: per order (character orders first, then word
/// orders) the hypothesis n-gram count, reference n-gram count and matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChrfStats {
    /// `[hyp, ref, match]` for each order.
    pub orders: Vec<[usize; 3]>,
}

impl ChrfStats {
    fn zero(order: usize) -> Self {
        ChrfStats {
            orders: vec![[0; 3]; order],
        }
    }

    fn add(&mut self, other: &ChrfStats) {
        for (a, b) in self.orders.iter_mut().zip(&other.orders) {
            for k in 0..3 {
                a[k] += b[k];
            }
        }
    }
}

/// A chrF score.
#[derive(Debug, Clone, PartialEq)]
pub struct ChrfScore {
    /// chrF in 0..=100.
    pub score: f64,
    /// `chrF2`, `chrF2++`, ...
    pub name: String,
    /// The settings that produced this score.
    pub signature: ChrfSignature,
}

type Counts<K> = HashMap<K, usize>;

fn count<K: Hash + Eq>(grams: impl ExactSizeIterator<Item = K>) -> Counts<K> {
    let mut counts = HashMap::with_capacity_and_hasher(grams.len(), Default::default());
    for g in grams {
        *counts.entry(g).or_insert(0) += 1;
    }
    counts
}

/// All n-gram counters of one (preprocessed) line: character orders 1..=char_order
/// over `chars` (a line's text, spaces already removed when so configured), then
/// word orders 1..=word_order over `words`.
struct LineNgrams<'a> {
    chars: Vec<Counts<&'a str>>,
    words: Vec<Counts<&'a [&'a str]>>,
}

/// Character boundaries of `s` (byte offsets, end included), so that character
/// n-grams can be borrowed slices rather than new strings.
fn char_bounds(s: &str) -> Vec<usize> {
    s.char_indices().map(|(i, _)| i).chain([s.len()]).collect()
}

/// Separates one ASCII punctuation mark from the end (or else the start) of each
/// word longer than one character, as sacreBLEU's chrF++ does (so `(hi)` gives
/// `(hi` and `)`).
fn split_word_punctuation(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for w in py_split(line) {
        let mut chars = w.chars();
        let (Some(first), Some(last)) = (chars.next(), chars.next_back()) else {
            // A single character stays as is.
            out.push(w);
            continue;
        };
        if PUNCTS.contains(last) {
            out.push(&w[..w.len() - last.len_utf8()]);
            out.push(&w[w.len() - last.len_utf8()..]);
        } else if PUNCTS.contains(first) {
            out.push(&w[..first.len_utf8()]);
            out.push(&w[first.len_utf8()..]);
        } else {
            out.push(w);
        }
    }
    out
}

fn line_ngrams<'a>(
    chars_text: &'a str,
    words: &'a [&'a str],
    options: &ChrfOptions,
) -> LineNgrams<'a> {
    let bounds = char_bounds(chars_text);
    let n_chars = bounds.len() - 1;
    let chars = (1..=options.char_order)
        .map(|n| {
            count(
                (0..(n_chars + 1).saturating_sub(n)).map(|i| &chars_text[bounds[i]..bounds[i + n]]),
            )
        })
        .collect();
    let words = (1..=options.word_order)
        .map(|n| count(words.windows(n)))
        .collect();
    LineNgrams { chars, words }
}

/// `[hyp, ref, match]` for one order; hypothesis n-grams only count when the
/// reference has n-grams of that order (sacreBLEU's rule).
fn match_stats<K: Hash + Eq>(hyp: &Counts<K>, reference: &Counts<K>) -> [usize; 3] {
    let mut hyp_count = 0;
    let mut matches = 0;
    for (g, &c) in hyp {
        hyp_count += c;
        if let Some(&r) = reference.get(g) {
            matches += c.min(r);
        }
    }
    let ref_count = reference.values().sum();
    [
        if reference.is_empty() { 0 } else { hyp_count },
        ref_count,
        matches,
    ]
}

/// The text chrF's character n-grams are taken from.
fn char_text(line: &str, options: &ChrfOptions) -> String {
    if options.whitespace {
        line.to_owned()
    } else {
        py_remove_spaces(line)
    }
}

/// What [`line_ngrams`] takes the n-grams of `line` from: its [`char_text`] and, for chrF++
/// (a word order), its words.
fn ngram_sources<'a>(line: &'a str, options: &ChrfOptions) -> (String, Vec<&'a str>) {
    let words = if options.word_order > 0 {
        split_word_punctuation(line)
    } else {
        Vec::new()
    };
    (char_text(line, options), words)
}

/// chrF statistics of one preprocessed hypothesis against its preprocessed
/// references: those of the reference with the best F-score (the first on ties).
fn segment_stats<S: AsRef<str>>(hyp: &str, refs: &[S], options: &ChrfOptions) -> ChrfStats {
    let (hyp_chars, hyp_words) = ngram_sources(hyp, options);
    let hyp_ngrams = line_ngrams(&hyp_chars, &hyp_words, options);
    let mut best: Option<(f64, ChrfStats)> = None;
    for r in refs {
        let r = r.as_ref();
        let (ref_chars, ref_words) = ngram_sources(r, options);
        let ref_ngrams = line_ngrams(&ref_chars, &ref_words, options);
        let orders = hyp_ngrams
            .chars
            .iter()
            .zip(&ref_ngrams.chars)
            .map(|(h, r)| match_stats(h, r))
            .chain(
                hyp_ngrams
                    .words
                    .iter()
                    .zip(&ref_ngrams.words)
                    .map(|(h, r)| match_stats(h, r)),
            )
            .collect();
        let stats = ChrfStats { orders };
        let f = options.f_score(&stats);
        if best.as_ref().is_none_or(|(best_f, _)| f > *best_f) {
            best = Some((f, stats));
        }
    }
    best.map(|(_, s)| s)
        .unwrap_or_else(|| ChrfStats::zero(options.char_order + options.word_order))
}

/// A chrF scorer holding preprocessed references (see [`crate::bleu::Bleu`]).
#[derive(Debug, Clone)]
pub struct Chrf {
    options: ChrfOptions,
    refs: References,
}

impl Chrf {
    /// Preprocesses reference streams `refs` (`refs[k][i]` is the k-th reference of
    /// segment `i`) with `options`.
    pub fn new<R: AsRef<str>>(refs: &[Vec<R>], options: ChrfOptions) -> Result<Self, EvalError> {
        options.validate()?;
        let refs = References::new(refs, |r| options.preprocess(r))?;
        Ok(Chrf { options, refs })
    }

    /// The options this scorer uses.
    pub fn options(&self) -> &ChrfOptions {
        &self.options
    }

    /// Per-segment statistics of `hyps`.
    pub fn segment_stats<H: AsRef<str>>(&self, hyps: &[H]) -> Result<Vec<ChrfStats>, EvalError> {
        self.refs.map_segments(hyps, |h, refs| {
            segment_stats(&self.options.preprocess(h), refs, &self.options)
        })
    }

    fn score_stats(&self, stats: &ChrfStats) -> ChrfScore {
        ChrfScore {
            score: self.options.f_score(stats),
            name: self.options.metric_name(),
            signature: self.options.signature(self.refs.nrefs),
        }
    }

    /// Corpus chrF of `hyps`.
    pub fn corpus_score<H: AsRef<str>>(&self, hyps: &[H]) -> Result<ChrfScore, EvalError> {
        let mut total = ChrfStats::zero(self.options.char_order + self.options.word_order);
        for s in self.segment_stats(hyps)? {
            total.add(&s);
        }
        Ok(self.score_stats(&total))
    }

    /// Sentence chrF of every line of `hyps`.
    pub fn sentence_scores<H: AsRef<str>>(&self, hyps: &[H]) -> Result<Vec<ChrfScore>, EvalError> {
        Ok(self
            .segment_stats(hyps)?
            .iter()
            .map(|s| self.score_stats(s))
            .collect())
    }
}

/// Corpus chrF of `hyps` against reference streams `refs` (`refs[k][i]` is the
/// k-th reference of `hyps[i]`), as sacreBLEU's `CHRF(**options).corpus_score`.
pub fn corpus_chrf<H: AsRef<str>, R: AsRef<str>>(
    hyps: &[H],
    refs: &[Vec<R>],
    options: &ChrfOptions,
) -> Result<ChrfScore, EvalError> {
    check_streams(hyps, refs)?;
    Chrf::new(refs, options.clone())?.corpus_score(hyps)
}

/// Sentence chrF of one hypothesis against its references.
pub fn sentence_chrf<R: AsRef<str>>(
    hyp: &str,
    refs: &[R],
    options: &ChrfOptions,
) -> Result<ChrfScore, EvalError> {
    let streams: Vec<Vec<&str>> = refs.iter().map(|r| vec![r.as_ref()]).collect();
    Chrf::new(&streams, options.clone())?.corpus_score(&[hyp])
}
