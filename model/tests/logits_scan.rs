//! The fused per-row scan of beam search (`model::logits_scan`) against its definition:
//! libtorch's `logsumexp` for the normaliser, and the `k` largest entries (ties by lower
//! index, banned ids left out) for the candidates.

use model::logits_scan::{best_per_row, scan_logits, scan_rows, RowScan};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

/// `[rows, vocab]` logits shaped like a decoder's: mostly in -8..4, a few peaks up to 12,
/// optionally rounded to halves so that many entries tie.
fn logits(rows: usize, vocab: usize, seed: u64, ties: bool) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..rows * vocab)
        .map(|_| {
            let base: f32 = rng.gen_range(-8.0..4.0);
            let x = if rng.gen_bool(0.002) {
                base + 8.0
            } else {
                base
            };
            if ties {
                (x * 2.0).round() / 2.0
            } else {
                x
            }
        })
        .collect()
}

/// The definition, computed the slow way: every allowed index sorted by (value desc,
/// index asc), the normaliser by libtorch → (normalisers, token ids, log-probabilities).
fn expected(
    data: &[f32],
    vocab: usize,
    k: usize,
    banned: &[u32],
) -> (Vec<f32>, Vec<i64>, Vec<f32>) {
    let rows = data.len() / vocab;
    let lse = Tensor::from_slice(data)
        .view([rows as i64, vocab as i64])
        .logsumexp([-1i64].as_slice(), false);
    let lse: Vec<f32> = Vec::try_from(lse).expect("logsumexp to host");
    let (mut probs, mut tokens) = (vec![], vec![]);
    for (r, row) in data.chunks(vocab).enumerate() {
        let mut order: Vec<usize> = (0..vocab)
            .filter(|&v| !banned.contains(&(v as u32)))
            .collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        for i in 0..k {
            match order.get(i) {
                Some(&v) => {
                    probs.push(row[v] - lse[r]);
                    tokens.push(v as i64);
                }
                None => {
                    probs.push(f32::NEG_INFINITY);
                    tokens.push(0);
                }
            }
        }
    }
    (lse, tokens, probs)
}

fn assert_matches(scan: &RowScan, data: &[f32], vocab: usize, k: usize, banned: &[u32]) {
    let (lse, tokens, probs) = expected(data, vocab, k, banned);
    assert_eq!(scan.k, k);
    assert_eq!(scan.log_norm.len(), lse.len());
    for (r, (&got, &want)) in scan.log_norm.iter().zip(&lse).enumerate() {
        assert!(
            (got - want).abs() <= 2e-6 * want.abs().max(1.0),
            "row {r}: log-normaliser {got} vs libtorch {want}"
        );
    }
    assert_eq!(
        scan.tokens, tokens,
        "token ids (vocab {vocab}, k {k}, banned {banned:?})"
    );
    for (i, (&got, &want)) in scan.log_probs.iter().zip(&probs).enumerate() {
        assert!(
            got == want || (got - want).abs() <= 2e-6 * want.abs().max(1.0),
            "entry {i}: log-probability {got} vs {want}"
        );
    }
}

#[test]
fn matches_logsumexp_and_the_k_largest_at_decoder_sizes() {
    // 8000 = a multiple of the 256-element runs; 8191 and 300 leave a tail; 40 is short.
    for (vocab, seed) in [(8000, 1), (8191, 2), (300, 3), (40, 4)] {
        let data = logits(7, vocab, seed, false);
        for (k, banned) in [(10, vec![0u32, 2]), (1, vec![]), (12, vec![0, 1, 2, 3])] {
            let scan = scan_rows(&data, vocab, k, &banned);
            assert_matches(&scan, &data, vocab, k, &banned);
        }
    }
}

#[test]
fn equal_logits_come_out_lower_token_first() {
    let vocab = 3000;
    let data = logits(5, vocab, 11, true);
    let scan = scan_rows(&data, vocab, 10, &[0, 2]);
    assert_matches(&scan, &data, vocab, 10, &[0, 2]);
    // All equal: the first k allowed ids, in order.
    let flat = vec![0.25f32; 2 * vocab];
    let scan = scan_rows(&flat, vocab, 4, &[1]);
    assert_eq!(scan.tokens, vec![0, 2, 3, 4, 0, 2, 3, 4]);
    let uniform = -(vocab as f32).ln();
    assert!(scan.log_probs.iter().all(|&p| (p - uniform).abs() < 1e-5));
}

#[test]
fn banned_tokens_are_skipped_even_when_best_but_still_normalise() {
    let vocab = 1000;
    let mut data = logits(2, vocab, 5, false);
    data[3] = 50.0; // row 0: the banned id 3 dominates
    data[vocab + 7] = 50.0; // row 1: id 7 dominates and is allowed
    let scan = scan_rows(&data, vocab, 3, &[3]);
    assert_matches(&scan, &data, vocab, 3, &[3]);
    assert!(!scan.tokens[..3].contains(&3));
    // Row 0's mass is almost all on the banned token: its candidates are very unlikely.
    assert!(scan.log_probs[0] < -40.0, "{}", scan.log_probs[0]);
    assert_eq!(scan.tokens[3], 7);
    assert!(scan.log_probs[3].abs() < 1e-5);
}

#[test]
fn rows_with_too_few_allowed_tokens_are_filled_with_minus_infinity() {
    let data = vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let scan = scan_rows(&data, 3, 3, &[1]);
    assert_eq!(scan.tokens, vec![2, 0, 0, 2, 0, 0]);
    assert!(scan.log_probs[2].is_infinite() && scan.log_probs[2] < 0.0);
    assert!(scan.log_probs[0].is_finite() && scan.log_probs[1].is_finite());
    assert_matches(&scan, &data, 3, 3, &[1]);
}

#[test]
fn odd_values_give_no_panic_and_sensible_answers() {
    let vocab = 600;
    let mut data = logits(3, vocab, 9, false);
    // Row 0: a NaN in the middle is never a candidate; the normaliser is NaN, as
    // libtorch's logsumexp makes it (a NaN logit means a broken model, not a choice).
    data[100] = f32::NAN;
    // Row 1: every entry -inf but two.
    for x in &mut data[vocab..2 * vocab] {
        *x = f32::NEG_INFINITY;
    }
    data[vocab + 10] = 1.0;
    data[vocab + 20] = 1.0;
    // Row 2: all NaN.
    for x in &mut data[2 * vocab..] {
        *x = f32::NAN;
    }
    let scan = scan_rows(&data, vocab, 3, &[]);
    assert!(!scan.tokens[..3].contains(&100));
    assert!(scan.log_norm[0].is_nan());
    let lse = Tensor::from_slice(&data[..vocab]).logsumexp([0i64].as_slice(), false);
    assert!(f32::try_from(lse).expect("scalar").is_nan());
    assert_eq!(&scan.tokens[3..5], &[10, 20]);
    assert!((scan.log_probs[3] - (-(2f32).ln())).abs() < 1e-6);
    assert_eq!(scan.log_probs[5], f32::NEG_INFINITY);
    // Row 2: nothing to choose; whatever comes out is not a usable score.
    assert!(scan.log_probs[6..]
        .iter()
        .all(|p| p.is_nan() || *p == f32::NEG_INFINITY));
}

#[test]
fn takes_float32_cpu_tensors_and_declines_the_rest() {
    let vocab = 500;
    let data = logits(4, vocab, 21, false);
    let t = Tensor::from_slice(&data).view([4, vocab as i64]);
    let scan = scan_logits(&t, 5, &[0]).expect("a contiguous float32 CPU tensor");
    assert_eq!(scan, scan_rows(&data, vocab, 5, &[0]));
    assert!(scan_logits(&t.tr(), 5, &[]).is_none(), "not contiguous");
    assert!(
        scan_logits(&t.to_kind(Kind::Double), 5, &[]).is_none(),
        "not float32"
    );
    assert!(scan_logits(&t.view([-1]), 5, &[]).is_none(), "not 2-d");
    let empty = scan_logits(
        &Tensor::zeros([0, vocab as i64], (Kind::Float, tch::Device::Cpu)),
        5,
        &[],
    )
    .expect("no rows");
    assert!(empty.log_norm.is_empty() && empty.tokens.is_empty());
}

#[test]
fn libtorch_fallback_gives_the_same_candidates() {
    // A float64 tensor is not the scan's: best_per_row takes libtorch's logsumexp and topk.
    let vocab = 700;
    let data = logits(6, vocab, 31, false);
    let t = Tensor::from_slice(&data).view([6, vocab as i64]);
    let (fast, fast_tokens) = best_per_row(&t, 4, &[0, 2]).unwrap();
    let (slow, slow_tokens) = best_per_row(&t.to_kind(Kind::Double), 4, &[0, 2]).unwrap();
    assert_eq!(fast_tokens, slow_tokens);
    for (a, b) in fast.iter().zip(&slow) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    assert_eq!(fast.len(), 6 * 4);
}
