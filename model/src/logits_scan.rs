//! One pass per row over a step's logits on the CPU: the log-normaliser
//! `log Σ_v exp(logit_v)` and the `k` best log-probabilities with their token ids.
//!
//! Beam search needs exactly these two things from each `[V]` row of logits. Done with
//! libtorch ops they are `logsumexp` (a max, a subtraction, an `exp` and a sum, each a
//! pass over the whole `[rows, V]` tensor, which is far larger than the cache, plus a
//! temporary of that size) and `topk` (another pass): a large share of a beam-5 search on
//! the CPU (the figures: docs/BENCHMARKS.md, "one scan per row of the logits"). Here each
//! row is read while it is still in the L1 cache from the pass before: one pass finds the
//! maximum and the best `k`, one sums `exp(logit - max)`.
//!
//! Written by hand because no crate offers this fused scan; the exponential is Cephes'
//! `expf` polynomial written branch-free so that the compiler vectorises it (the standard
//! library's `f32::exp` is a scalar libm call). Plain multiplies and adds, no FMA, so the
//! results do not depend on the CPU's instruction set.

use tch::{Device, Kind, Tensor};

/// What [`scan_logits`] returns for `rows` rows and `k` candidates per row.
#[derive(Debug, Clone, PartialEq)]
pub struct RowScan {
    /// Candidates per row.
    pub k: usize,
    /// `[rows]`: `log Σ_v exp(logit_v)` over the whole row (banned tokens included, as a
    /// `log_softmax` taken before the bans would have it).
    pub log_norm: Vec<f32>,
    /// `[rows · k]`: per row, the `k` best `logit - log_norm`, best first; among equal
    /// values the lower token id comes first. Rows with fewer than `k` allowed tokens
    /// are filled up with `-inf`.
    pub log_probs: Vec<f32>,
    /// `[rows · k]`: the token id of each entry of `log_probs`.
    pub tokens: Vec<i64>,
}

/// The `k` best log-probabilities of every row of `logits` `[R, V]` and their token ids,
/// best first (`[R · k]` each), never one of `banned`: log p(token) = logit −
/// logsumexp(logits), the normaliser taken over every token, banned ones included (as a
/// `log_softmax` followed by the bans would). On the CPU in float32 one fused scan per row
/// ([`scan_logits`]); elsewhere libtorch's `logsumexp` and `topk`, which overwrite the
/// banned columns of `logits` with -inf.
pub fn best_per_row(
    logits: &Tensor,
    k: usize,
    banned: &[u32],
) -> Result<(Vec<f32>, Vec<i64>), tch::TchError> {
    if let Some(scan) = scan_logits(logits, k, banned) {
        return Ok((scan.log_probs, scan.tokens));
    }
    let log_norm = logits.logsumexp([-1i64].as_slice(), true);
    for &id in banned {
        let _ = logits.select(1, id as i64).fill_(f64::NEG_INFINITY);
    }
    let (best, tokens) = logits.topk(k as i64, -1, true, true);
    let best: Vec<f32> = Vec::try_from((best - &log_norm).to_device(Device::Cpu).view([-1]))?;
    let tokens: Vec<i64> = Vec::try_from(tokens.to_device(Device::Cpu).view([-1]))?;
    Ok((best, tokens))
}

/// Scans a `[rows, V]` float32 tensor of logits on the CPU. `banned` tokens are never
/// candidates but still count in the normaliser. `None` when the tensor is not a
/// contiguous 2-d float32 CPU tensor (callers then use libtorch's ops).
pub fn scan_logits(logits: &Tensor, k: usize, banned: &[u32]) -> Option<RowScan> {
    let size = logits.size();
    if size.len() != 2
        || logits.device() != Device::Cpu
        || logits.kind() != Kind::Float
        || !logits.is_contiguous()
    {
        return None;
    }
    let (rows, vocab) = (size[0] as usize, size[1] as usize);
    if rows == 0 || vocab == 0 {
        return Some(RowScan {
            k,
            log_norm: vec![0.0; rows],
            log_probs: vec![f32::NEG_INFINITY; rows * k],
            tokens: vec![0; rows * k],
        });
    }
    // SAFETY: the tensor is a contiguous float32 CPU tensor of rows·vocab elements (checked
    // above), so its storage holds that many f32 from data_ptr on; `logits` is borrowed for
    // the whole call, so the storage outlives the slice, and nothing writes to it meanwhile
    // (this function only reads). Copying it out instead would be one more pass over the
    // largest tensor of a step, which is what this module exists to avoid.
    let data = unsafe { std::slice::from_raw_parts(logits.data_ptr() as *const f32, rows * vocab) };
    Some(scan_rows(data, vocab, k, banned))
}

/// [`scan_logits`] on a plain row-major `[rows, vocab]` slice.
pub fn scan_rows(logits: &[f32], vocab: usize, k: usize, banned: &[u32]) -> RowScan {
    let rows = logits.len().checked_div(vocab).unwrap_or(0);
    let mut out = RowScan {
        k,
        log_norm: Vec::with_capacity(rows),
        log_probs: Vec::with_capacity(rows * k),
        tokens: Vec::with_capacity(rows * k),
    };
    // The banned ids may be among the best of a row: keep that many more and drop them.
    let keep = k + banned.len();
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(keep + 1);
    for row in logits.chunks_exact(vocab.max(1)).take(rows) {
        let log_norm = row_scan(row, keep, &mut best);
        out.log_norm.push(log_norm);
        let mut taken = 0;
        for &(value, token) in best.iter() {
            if taken == k {
                break;
            }
            if banned.contains(&token) {
                continue;
            }
            out.log_probs.push(value - log_norm);
            out.tokens.push(token as i64);
            taken += 1;
        }
        for _ in taken..k {
            out.log_probs.push(f32::NEG_INFINITY);
            out.tokens.push(0);
        }
    }
    out
}

/// One row: its `keep` largest entries into `best`, and its log-normaliser.
fn row_scan(row: &[f32], keep: usize, best: &mut Vec<(f32, u32)>) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { row_scan_avx2(row, keep, best) };
        }
    }
    row_scan_portable(row, keep, best)
}

// The same code compiled twice: with AVX2 (8 lanes) where the CPU has it (AVX-512 measured
// no faster here), and for the baseline instruction set otherwise. No FMA in either, so
// both give the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_scan_avx2(row: &[f32], keep: usize, best: &mut Vec<(f32, u32)>) -> f32 {
    row_scan_portable(row, keep, best)
}

#[inline(always)]
fn row_scan_portable(row: &[f32], keep: usize, best: &mut Vec<(f32, u32)>) -> f32 {
    let max = best_of(row, keep, best);
    if max.is_infinite() {
        // -inf: every logit is -inf (or NaN), no token is possible; +inf: it takes all the
        // mass. Either way the normaliser is the maximum (and inf - inf would be NaN).
        return max;
    }
    max + (sum_exp_below(row, max) as f64).ln() as f32
}

/// Elements compared at once in the final scan: a block with no element at or above the
/// threshold is passed over after one vectorised comparison.
const BLOCK: usize = 32;
/// Rows up to this long are scanned element by element, without a threshold.
const SHORT: usize = 256;

/// The `keep` largest entries of `values` into `best` (largest first, ties in index
/// order, NaN skipped); returns the maximum (-inf when there is no number).
///
/// Scanning with the running k-th best as the bar lets far too many elements through
/// early on (a random row renews its top 12 ~80 times), so the bar is set first: the
/// maxima of disjoint groups of 16 elements (lane-wise maxima of 16 vectors, no
/// horizontal steps) form a row 16 times shorter, and the `keep`-th largest of those is
/// a value that at least `keep` elements reach. Then only blocks holding an element at
/// or above it are looked at one element at a time.
#[inline(always)]
fn best_of(values: &[f32], keep: usize, best: &mut Vec<(f32, u32)>) -> f32 {
    best.clear();
    let mut bar = f32::NEG_INFINITY;
    let max = if values.len() <= SHORT {
        max_of(values)
    } else {
        let maxima = group_maxima(values);
        if keep > 0 && maxima.len() >= keep {
            // Only the values matter here, not which group they came from.
            for block in maxima.chunks(BLOCK) {
                let full = best.len() == keep;
                if !full
                    || block
                        .iter()
                        .fold(false, |any, &x| any | (x > best[keep - 1].0))
                {
                    insert_at_or_above(block, 0, keep, f32::NEG_INFINITY, best);
                }
            }
            bar = best.get(keep - 1).map_or(f32::NEG_INFINITY, |b| b.0);
            best.clear();
        }
        max_of(&maxima)
    };
    if keep == 0 {
        return max;
    }
    for (b, block) in values.chunks(BLOCK).enumerate() {
        // `>=` is false for NaN, so NaNs never enter the list.
        if block.iter().fold(false, |any, &x| any | (x >= bar)) {
            insert_at_or_above(block, b * BLOCK, keep, bar, best);
        }
    }
    max
}

/// Puts the elements of `block` (whose first element has index `first`) that are at or
/// above `bar` into the sorted list `best` of at most `keep` entries.
#[inline(always)]
fn insert_at_or_above(
    block: &[f32],
    first: usize,
    keep: usize,
    bar: f32,
    best: &mut Vec<(f32, u32)>,
) {
    for (j, &x) in block.iter().enumerate() {
        if x.is_nan() || x < bar || (best.len() == keep && x <= best[keep - 1].0) {
            continue;
        }
        // Past every smaller entry (they move down one place, the last one drops out
        // when the list is full): equal values keep index order.
        let entry = (x, (first + j) as u32);
        let mut at = best.len();
        if at < keep {
            best.push(entry);
        } else {
            at = keep - 1;
        }
        while at > 0 && best[at - 1].0 < x {
            best[at] = best[at - 1];
            at -= 1;
        }
        best[at] = entry;
    }
}

/// Maxima of disjoint groups of 16 elements: in each run of 256 elements, group `l` holds
/// elements `l, l + 16, …, l + 240` (so the 16 maxima are lane-wise maxima of 16
/// vectors); elements after the last whole run are groups of one. NaN is ignored (a group
/// of NaNs gives -inf), and so is -inf, as the maximum starts there.
#[inline(always)]
fn group_maxima(values: &[f32]) -> Vec<f32> {
    const LANES: usize = 16;
    let mut maxima = Vec::with_capacity(values.len() / LANES + 256);
    let mut runs = values.chunks_exact(LANES * LANES);
    for run in &mut runs {
        let mut m = [f32::NEG_INFINITY; LANES];
        for v in 0..LANES {
            for l in 0..LANES {
                let x = run[v * LANES + l];
                m[l] = if x > m[l] { x } else { m[l] };
            }
        }
        maxima.extend_from_slice(&m);
    }
    maxima.extend(runs.remainder().iter().map(|&x| {
        if x > f32::NEG_INFINITY {
            x
        } else {
            f32::NEG_INFINITY
        }
    }));
    maxima
}

/// Maximum of a row (NaN ignored), written as lane-wise selects so that it vectorises.
#[inline(always)]
fn max_of(row: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane = if x > *lane { x } else { *lane };
        }
    }
    let mut m = lanes
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    for &x in chunks.remainder() {
        if x > m {
            m = x;
        }
    }
    m
}

/// `Σ exp(x - max)` over the row, `max` being the row's maximum.
#[inline(always)]
fn sum_exp_below(row: &[f32], max: f32) -> f32 {
    // 32 partial sums: each gathers ~V/32 terms, which keeps the rounding error of the
    // sum near that of libtorch's cascade summation.
    const LANES: usize = 32;
    let mut lanes = [0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += exp_nonpositive(x - max);
        }
    }
    let mut tail = 0f32;
    for &x in chunks.remainder() {
        tail += exp_nonpositive(x - max);
    }
    // Pairwise: 32 → 16 → … → 1.
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
    }
    lanes[0] + tail
}

/// `exp(x)` for `x <= 0` (Cephes `expf`: `x = n·ln 2 + r`, `|r| <= ln 2 / 2`,
/// `exp(r)` by a degree-7 polynomial, `2^n` put into the exponent bits). Relative error
/// below 2e-7; results under `exp(-87.3)` (the smallest normal float) come out as
/// about that value, which no sum of real probabilities can notice. NaN stays NaN.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LOWEST: f32 = -87.336_55;
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split into a part exact in float32 and the rest (Cody and Waite).
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = if x < LOWEST { LOWEST } else { x };
    let shifted = x * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    p = p * (r * r) + r + 1.0;
    // n sits in the low bits of `shifted`; 2^n has exponent field n + 127 (n in -126..=0).
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let two_to_n = f32::from_bits(n_bits.wrapping_add(127) << 23);
    p * two_to_n
}

#[cfg(test)]
mod tests {
    use super::exp_nonpositive;

    #[test]
    fn exp_is_accurate_over_its_range() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let want = (x as f64).exp();
            let got = exp_nonpositive(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.000_731;
        }
        assert!(worst < 2e-7, "worst relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(f32::NEG_INFINITY) < 1.3e-38);
        assert!(exp_nonpositive(f32::NAN).is_nan());
    }
}
