//! Greedy and beam search on fixed random models.

mod common;

use model::beam::{self, BeamOptions, LengthPenalty, UnkPolicy};
use model::search::{self, Hypothesis, MaxLength};
use model::{ModelConfig, Seq2Seq};
use tch::{nn, Device, Tensor};

// The searches of these tests never fail: their results, unwrapped.
fn greedy(m: &Seq2Seq, src: &Tensor, len: &Tensor, max: MaxLength, att: bool) -> Vec<Hypothesis> {
    search::greedy(m, src, len, max, att).unwrap()
}

fn beam_search(m: &Seq2Seq, src: &Tensor, len: &Tensor, o: &BeamOptions) -> Vec<Vec<Hypothesis>> {
    beam::beam_search(m, src, len, o).unwrap()
}

fn beam_search_general(
    m: &Seq2Seq,
    src: &Tensor,
    len: &Tensor,
    o: &BeamOptions,
) -> Vec<Vec<Hypothesis>> {
    beam::beam_search_general(m, src, len, o).unwrap()
}

fn fixed_model(seed: i64) -> (nn::VarStore, Seq2Seq) {
    common::with_seed(seed, random_model)
}

fn random_model() -> (nn::VarStore, Seq2Seq) {
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ModelConfig {
        embed_dim: 16,
        hidden_dim: 16,
        dropout: 0.0,
        ..ModelConfig::new(30, 12)
    };
    let model = Seq2Seq::new(&vs.root(), &cfg).unwrap();
    // Sharper output distributions than the small initialisation gives, so
    // that search decisions matter.
    tch::no_grad(|| {
        for (name, mut var) in vs.variables() {
            if name.starts_with("output") {
                let _ = var.g_mul_scalar_(6.0);
            }
        }
    });
    (vs, model)
}

fn batch() -> (Tensor, Tensor) {
    let src = Tensor::from_slice(&[
        5i64, 6, 7, 8, 9, 10, 11, 12, 0, 0, 13, 0, 0, 0, 0, 14, 15, 16, 17, 18,
    ])
    .view([4, 5]);
    (src, Tensor::from_slice(&[5i64, 3, 1, 5]))
}

fn opts(beam: usize) -> BeamOptions {
    BeamOptions {
        beam_size: beam,
        n_best: beam,
        length_penalty: LengthPenalty::None,
        max_length: MaxLength { a: 1.0, b: 4 },
        ..Default::default()
    }
}

#[test]
fn beam_one_equals_greedy() {
    let (_vs, model) = fixed_model(1);
    let (src, lengths) = batch();
    let g = greedy(&model, &src, &lengths, MaxLength { a: 1.0, b: 4 }, true);
    let b = beam_search_general(&model, &src, &lengths, &opts(1));
    for (g, b) in g.iter().zip(&b) {
        assert_eq!(g.tokens, b[0].tokens);
        assert!(
            (g.score - b[0].score).abs() < 1e-4,
            "{} vs {}",
            g.score,
            b[0].score
        );
    }
    let fast = beam_search(&model, &src, &lengths, &opts(1));
    assert_eq!(
        fast.iter().map(|h| h[0].tokens.clone()).collect::<Vec<_>>(),
        g.iter().map(|h| h.tokens.clone()).collect::<Vec<_>>()
    );
}

#[test]
fn n_best_lists_are_sorted_distinct_and_scored_consistently() {
    let (_vs, model) = fixed_model(2);
    let (src, lengths) = batch();
    for penalty in [
        LengthPenalty::None,
        LengthPenalty::Gnmt(1.0),
        LengthPenalty::Plain(1.0),
    ] {
        let o = BeamOptions {
            length_penalty: penalty,
            ..opts(5)
        };
        for (s, nbest) in beam_search(&model, &src, &lengths, &o).iter().enumerate() {
            assert_eq!(
                nbest.len(),
                5,
                "sentence {s} has {} hypotheses",
                nbest.len()
            );
            // As the search ranks them: EOS counts in the length, except for hypotheses cut
            // at the length limit (a·|src| + b tokens), which end without one.
            let limit = lengths.int64_value(&[s as i64]) as usize + 4;
            let ranks: Vec<f64> = nbest
                .iter()
                .map(|h| {
                    let with_eos = h.tokens.len() + usize::from(h.tokens.len() < limit);
                    h.score / penalty.divisor(with_eos)
                })
                .collect();
            assert!(
                ranks.windows(2).all(|w| w[0] >= w[1] - 1e-9),
                "not sorted: {ranks:?}"
            );
            for (i, a) in nbest.iter().enumerate() {
                for b in &nbest[i + 1..] {
                    assert_ne!(a.tokens, b.tokens, "duplicate hypothesis");
                }
                let sum: f64 = a.token_scores.iter().map(|&x| x as f64).sum();
                assert!(
                    (sum - a.score).abs() < 1e-3,
                    "token scores {sum} vs total {}",
                    a.score
                );
                assert_eq!(a.attention.len(), a.tokens.len());
            }
        }
    }
}

#[test]
fn results_are_deterministic_and_the_same_alone_or_in_a_batch() {
    let (_vs, model) = fixed_model(3);
    let (src, lengths) = batch();
    let all = beam_search(&model, &src, &lengths, &opts(4));
    assert_eq!(all, beam_search(&model, &src, &lengths, &opts(4)));
    for s in 0..4 {
        let len = lengths.int64_value(&[s]);
        let alone = beam_search(
            &model,
            &src.narrow(0, s, 1).narrow(1, 0, len),
            &lengths.narrow(0, s, 1),
            &opts(4),
        );
        for (a, b) in alone[0].iter().zip(&all[s as usize]) {
            assert_eq!(a.tokens, b.tokens, "sentence {s}");
            assert!((a.score - b.score).abs() < 1e-4);
        }
    }
}

#[test]
fn asking_for_fewer_hypotheses_keeps_the_best_ones_unchanged() {
    // A sentence stops as soon as its n-best list is settled; the first n of the
    // full k-best list must come out the same, for every length penalty, on a
    // random model (erratic searches) and a half-trained one (realistic scores).
    let (_vs_random, random) = fixed_model(6);
    let (_vs_trained, trained) = common::trained_reverser(60);
    let cases = [
        (&random, batch()),
        (&trained, common::random_sources(24, 11)),
    ];
    for (model, (src, lengths)) in cases {
        for penalty in [
            LengthPenalty::None,
            LengthPenalty::Gnmt(0.6),
            LengthPenalty::Plain(1.0),
        ] {
            let with_n = |n: usize| {
                beam_search(
                    model,
                    &src,
                    &lengths,
                    &BeamOptions {
                        n_best: n,
                        length_penalty: penalty,
                        max_length: MaxLength { a: 1.5, b: 5 },
                        ..opts(5)
                    },
                )
            };
            let full = with_n(5);
            for n in [1, 2] {
                for (s, (few, all)) in with_n(n).iter().zip(&full).enumerate() {
                    assert_eq!(few.len(), n, "sentence {s}, n-best {n}");
                    // Sentences leave the batch at other steps, so the batch shapes (and
                    // the last bits of the sums) differ: tokens exact, scores close.
                    for (a, b) in few.iter().zip(all) {
                        assert_eq!(a.tokens, b.tokens, "sentence {s}, n-best {n}, {penalty:?}");
                        assert!((a.score - b.score).abs() < 1e-4, "sentence {s}");
                    }
                }
            }
        }
    }
}

#[test]
fn a_larger_beam_never_finds_a_worse_best_score() {
    // On a trained model (random models make beam search erratic, and no
    // beam search is monotone in general), with a half-trained reverser so
    // that there is still something to search.
    let (_vs, model) = common::trained_reverser(60);
    let (src, lengths) = common::random_sources(24, 7);
    let mut previous: Option<Vec<f64>> = None;
    for beam in [1, 2, 4, 8] {
        let o = BeamOptions {
            max_length: MaxLength { a: 1.0, b: 3 },
            ..opts(beam)
        };
        let best: Vec<f64> = beam_search(&model, &src, &lengths, &o)
            .iter()
            .map(|h| h[0].score)
            .collect();
        if let Some(prev) = &previous {
            for (s, (p, b)) in prev.iter().zip(&best).enumerate() {
                assert!(*b >= p - 1e-4, "sentence {s}, beam {beam}: {b} < {p}");
            }
        }
        previous = Some(best);
    }
}

#[test]
fn constraints_hold() {
    let (_vs, model) = fixed_model(4);
    let (src, lengths) = batch();
    let o = BeamOptions {
        min_length: 3,
        unk: UnkPolicy::Ban,
        max_length: MaxLength { a: 0.0, b: 6 },
        ..opts(3)
    };
    for nbest in beam_search(&model, &src, &lengths, &o) {
        for h in nbest {
            assert!(
                h.tokens.len() >= 3 && h.tokens.len() <= 6,
                "length {}",
                h.tokens.len()
            );
            assert!(!h.tokens.contains(&vocab::UNK_ID));
            assert!(h.tokens.iter().all(|&t| t > vocab::EOS_ID));
        }
    }
}

#[test]
fn leaving_out_attention_changes_nothing_else() {
    let (_vs, model) = fixed_model(5);
    let (src, lengths) = batch();
    for beam in [1, 4] {
        let with = beam_search(&model, &src, &lengths, &opts(beam));
        let without = beam_search(
            &model,
            &src,
            &lengths,
            &BeamOptions {
                keep_attention: false,
                ..opts(beam)
            },
        );
        for (s, (w, wo)) in with.iter().zip(&without).enumerate() {
            assert_eq!(w.len(), wo.len(), "sentence {s}, beam {beam}");
            for (a, b) in w.iter().zip(wo) {
                assert_eq!(a.tokens, b.tokens, "sentence {s}, beam {beam}");
                assert_eq!(a.score, b.score);
                assert_eq!(a.token_scores, b.token_scores);
                assert!(
                    b.attention.is_empty(),
                    "attention kept although not asked for"
                );
                let src_len = lengths.int64_value(&[s as i64]) as usize;
                assert_eq!(a.attention.len(), a.tokens.len());
                for row in &a.attention {
                    assert_eq!(row.len(), src_len);
                    let total: f32 = row.iter().sum();
                    assert!((total - 1.0).abs() < 1e-4, "attention sums to {total}");
                }
            }
        }
    }
}

#[test]
fn the_coverage_penalty_ranks_hypotheses_that_end_at_the_length_limit_too() {
    // EOS is banned until the limit, so every hypothesis ends there, and its ranking score
    // is score + β·Σ_i log(min(Σ_t a_ti, 1)) over the attention of all its tokens.
    // A half-trained reverser: its attention follows the source, so hypotheses differ in
    // coverage (a random model's attention is about the same for all of them).
    let (_vs, model) = common::trained_reverser(60);
    let (src, lengths) = common::random_sources(12, 9);
    let beta = 5.0;
    let o = BeamOptions {
        min_length: 4,
        max_length: MaxLength { a: 0.0, b: 4 },
        coverage_penalty: beta,
        keep_attention: true,
        ..opts(4)
    };
    let results = beam_search(&model, &src, &lengths, &o);
    let mut reordered = 0;
    for (s, nbest) in results.iter().enumerate() {
        let src_len = lengths.int64_value(&[s as i64]) as usize;
        let rank = |h: &model::search::Hypothesis| {
            let coverage: f64 = (0..src_len)
                .map(|i| {
                    let total: f32 = h.attention.iter().map(|a| a[i]).sum();
                    (total.min(1.0) as f64).max(1e-10).ln()
                })
                .sum();
            h.score + beta * coverage
        };
        assert_eq!(nbest.len(), 4);
        for h in nbest {
            assert_eq!(h.tokens.len(), 4);
            assert_eq!(h.attention.len(), 4);
        }
        for pair in nbest.windows(2) {
            assert!(
                rank(&pair[0]) >= rank(&pair[1]) - 1e-4,
                "sentence {s}: {} ranked before {}",
                rank(&pair[0]),
                rank(&pair[1])
            );
            reordered += usize::from(pair[0].score < pair[1].score);
        }
    }
    // The penalty did change an order somewhere, so the check above had something to check.
    assert!(reordered > 0, "the coverage penalty reordered nothing");
}
