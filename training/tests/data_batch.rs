//! Token-budget batching: budget, coverage, reproducibility, resume,
//! evaluation order, padding and masks.

mod data_support;

use std::collections::HashSet;

use data_support::{multi30k, source_ids, WordVocab};
use proptest::prelude::*;
use training::data::{
    restore_order, Batch, BatchConfig, CorpusBuilder, DataError, EncodedCorpus, LengthFilter, Side,
    TokenBatcher,
};
use vocab::{BOS_ID, EOS_ID, PAD_ID};

/// A corpus with the given (source, target) token counts; ids encode the
/// pair and position so rows can be checked.
fn corpus_of(lens: &[(usize, usize)]) -> EncodedCorpus {
    let mut b = CorpusBuilder::with_vocab_lens(1000, 1000);
    for (i, &(s, t)) in lens.iter().enumerate() {
        let src: Vec<u32> = (0..s).map(|k| 4 + ((i * 7 + k) % 900) as u32).collect();
        let tgt: Vec<u32> = (0..t).map(|k| 4 + ((i * 11 + k) % 900) as u32).collect();
        b.push(&src, &tgt, i as u64).unwrap();
    }
    b.finish()
}

fn plan_sets(plan: &training::data::BatchPlan) -> Vec<Vec<u32>> {
    plan.iter().map(|b| b.to_vec()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn budget_holds_and_every_pair_appears_once(
        lens in prop::collection::vec((0usize..60, 0usize..60), 1..300),
        budget in 61usize..2000,
        max_sent in prop::option::of(1usize..40),
        seed in any::<u64>(),
        epoch in 0u64..5,
    ) {
        let corpus = corpus_of(&lens);
        let cfg = BatchConfig { max_tokens: budget, max_sentences: max_sent };
        let batcher = TokenBatcher::new(&corpus, cfg, seed).unwrap();
        for plan in [batcher.epoch(epoch), batcher.ordered()] {
            let mut seen = vec![0u32; lens.len()];
            for batch in plan.batches(&corpus, 0) {
                prop_assert!(batch.batch_size >= 1);
                prop_assert!(batch.batch_size * batch.src_len <= budget);
                prop_assert!(batch.batch_size * batch.tgt_len <= budget);
                if let Some(m) = max_sent {
                    prop_assert!(batch.batch_size <= m);
                }
                for &i in &batch.indices {
                    seen[i] += 1;
                }
            }
            prop_assert!(seen.iter().all(|&c| c == 1));
        }
    }
}

#[test]
fn same_seed_same_plan_other_epoch_other_plan() {
    let lens: Vec<(usize, usize)> = (0..2000).map(|i| (1 + i % 37, 1 + (i * 7) % 41)).collect();
    let corpus = corpus_of(&lens);
    let cfg = BatchConfig::tokens(400);
    let a = TokenBatcher::new(&corpus, cfg, 42).unwrap();
    let b = TokenBatcher::new(&corpus, cfg, 42).unwrap();
    assert_eq!(a.epoch(3), b.epoch(3));
    assert_ne!(plan_sets(&a.epoch(3)), plan_sets(&a.epoch(4)));
    // Not just the batch order: the batch composition changes too.
    let sets = |p: &training::data::BatchPlan| -> HashSet<Vec<u32>> {
        p.iter()
            .map(|b| {
                let mut v = b.to_vec();
                v.sort();
                v
            })
            .collect()
    };
    assert_ne!(sets(&a.epoch(3)), sets(&a.epoch(4)));
    // seed + epoch: (seed 42, epoch 4) == (seed 43, epoch 3), as in fairseq.
    let c = TokenBatcher::new(&corpus, cfg, 43).unwrap();
    assert_eq!(a.epoch(4), c.epoch(3));
    assert_ne!(a.epoch(0), c.epoch(0));
    // The ordered plan ignores the seed.
    assert_eq!(a.ordered(), c.ordered());
}

#[test]
fn resume_regenerates_the_remaining_batches() {
    let lens: Vec<(usize, usize)> = (0..500).map(|i| (1 + i % 23, 2 + i % 19)).collect();
    let corpus = corpus_of(&lens);
    let batcher = TokenBatcher::new(&corpus, BatchConfig::tokens(256), 7).unwrap();
    let full: Vec<Batch> = batcher.epoch(2).batches(&corpus, 0).collect();
    let k = full.len() / 3;
    // A "restarted" trainer: new batcher, same (seed, epoch), skip k batches.
    let again = TokenBatcher::new(&corpus, BatchConfig::tokens(256), 7).unwrap();
    let plan = again.epoch(2);
    let rest: Vec<Batch> = plan.batches(&corpus, k).collect();
    assert_eq!(rest.as_slice(), &full[k..]);
    assert_eq!(plan.batches(&corpus, plan.len() + 5).count(), 0);
}

#[test]
fn padding_layout_and_masks() {
    let corpus = corpus_of(&[(3, 2), (1, 4), (5, 0)]);
    let batch = Batch::collate(&corpus, &[0, 1, 2]);
    // Rows by decreasing source length: pairs 2, 0, 1.
    assert_eq!(batch.indices, vec![2, 0, 1]);
    assert_eq!((batch.batch_size, batch.src_len, batch.tgt_len), (3, 6, 5));
    assert_eq!(batch.src_lengths, vec![6, 4, 2]);
    assert_eq!(batch.tgt_lengths, vec![1, 3, 5]);
    assert_eq!(batch.src.len(), 3 * 6);
    assert_eq!(batch.tgt_in.len(), 3 * 5);
    let (pad, bos, eos) = (PAD_ID as i64, BOS_ID as i64, EOS_ID as i64);
    for (r, &i) in batch.indices.iter().enumerate() {
        let s: Vec<i64> = corpus.src(i).iter().map(i64::from).collect();
        let t: Vec<i64> = corpus.tgt(i).iter().map(i64::from).collect();
        let src_row = &batch.src[r * 6..(r + 1) * 6];
        let mut want = s.clone();
        want.push(eos);
        want.resize(6, pad);
        assert_eq!(src_row, want.as_slice(), "src row {r}");
        let mut want_in = vec![bos];
        want_in.extend(&t);
        want_in.resize(5, pad);
        assert_eq!(
            &batch.tgt_in[r * 5..(r + 1) * 5],
            want_in.as_slice(),
            "tgt_in row {r}"
        );
        let mut want_out = t.clone();
        want_out.push(eos);
        want_out.resize(5, pad);
        assert_eq!(
            &batch.tgt_out[r * 5..(r + 1) * 5],
            want_out.as_slice(),
            "tgt_out row {r}"
        );
    }
    let mask = batch.src_mask();
    assert_eq!(mask.len(), 18);
    for r in 0..3 {
        for c in 0..6 {
            assert_eq!(
                mask[r * 6 + c],
                batch.src[r * 6 + c] != pad,
                "src mask ({r},{c})"
            );
        }
    }
    let tmask = batch.tgt_mask();
    assert_eq!(tmask.len(), 15);
    for (k, (&m, &out)) in tmask.iter().zip(&batch.tgt_out).enumerate() {
        assert_eq!(m, out != pad, "tgt mask {k}");
    }
    assert_eq!(batch.src_tokens, 12);
    assert_eq!(batch.tgt_tokens, 9);
    assert_eq!(mask.iter().filter(|&&m| m).count(), batch.src_tokens);
}

#[test]
fn too_long_sentence_is_an_error_naming_it() {
    let corpus = corpus_of(&[(3, 3), (10, 2)]);
    let err = TokenBatcher::new(&corpus, BatchConfig::tokens(8), 0).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::TooLong {
                index: 1,
                side: Side::Source,
                positions: 11,
                max_tokens: 8
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("sentence 1"), "{err}");
    assert!(TokenBatcher::new(&corpus, BatchConfig::tokens(0), 0).is_err());
    let cfg = BatchConfig {
        max_tokens: 100,
        max_sentences: Some(0),
    };
    assert!(TokenBatcher::new(&corpus, cfg, 0).is_err());
}

#[test]
fn max_sentences_caps_batches() {
    let corpus = corpus_of(&vec![(2, 2); 100]);
    let cfg = BatchConfig {
        max_tokens: 10_000,
        max_sentences: Some(16),
    };
    let plan = TokenBatcher::new(&corpus, cfg, 1).unwrap().ordered();
    let sizes: Vec<usize> = plan.iter().map(|b| b.len()).collect();
    assert_eq!(sizes, vec![16, 16, 16, 16, 16, 16, 4]);
    // Budget alone: 3 positions per side, 10 per batch -> 3 sentences.
    let plan = TokenBatcher::new(&corpus, BatchConfig::tokens(10), 1)
        .unwrap()
        .ordered();
    assert!(plan.iter().all(|b| b.len() <= 3));
    assert_eq!(plan.len(), 34);
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn translation_round_trip_restores_input_order_on_real_data() {
    let (_, raw) = multi30k("test");
    let lines: Vec<&str> = raw.src.iter().collect();
    let v = WordVocab::build(lines.iter().copied());
    let corpus = EncodedCorpus::encode_sources("test.de", &lines, &v).unwrap();
    let batcher = TokenBatcher::new(&corpus, BatchConfig::tokens(300), 0).unwrap();
    let plan = batcher.ordered();
    assert!(plan.len() > 10);
    // "Translate" by decoding the source row back, then restore the order.
    let mut outputs = Vec::new();
    let mut prev_max = 0;
    for batch in plan.batches(&corpus, 0) {
        assert!(
            batch.src_len >= prev_max,
            "ordered plan is sorted by length"
        );
        prev_max = batch.src_len;
        for (r, &i) in batch.indices.iter().enumerate() {
            let ids = source_ids(&batch, r);
            outputs.push((i, v.decode(&ids)));
        }
    }
    let restored = restore_order(corpus.len(), outputs).unwrap();
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(
            restored[i],
            line.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn real_training_plan_covers_multi30k() {
    let (_, raw) = multi30k("train");
    let sv = WordVocab::build(raw.src.iter());
    let tv = WordVocab::build(raw.tgt.iter());
    let (corpus, _) =
        EncodedCorpus::encode(&raw, &sv, &tv, &LengthFilter::moses(1, 80, 9.0)).unwrap();
    let batcher = TokenBatcher::new(&corpus, BatchConfig::tokens(2048), 1).unwrap();
    let plan = batcher.epoch(0);
    let mut seen = vec![false; corpus.len()];
    let mut padded = 0usize;
    let mut real = 0usize;
    for b in plan.iter() {
        for &i in b {
            assert!(!seen[i as usize]);
            seen[i as usize] = true;
        }
    }
    for batch in plan.batches(&corpus, 0) {
        padded += batch.batch_size * batch.src_len;
        real += batch.src_tokens;
    }
    assert!(seen.iter().all(|&s| s));
    // Length bucketing keeps padding low (< 10% of source positions).
    assert!(
        (padded - real) * 10 < padded,
        "padding {padded} vs real {real}"
    );
}

/// How often each pair occurs in a plan.
fn draws(plan: &training::data::BatchPlan, n: usize) -> Vec<u32> {
    let mut seen = vec![0u32; n];
    for b in plan.iter() {
        for &i in b {
            seen[i as usize] += 1;
        }
    }
    seen
}

#[test]
fn corpus_weights_draw_pairs_as_often_as_they_say_and_resume_exactly() {
    // Three corpora in a row: 40 pairs at weight 2, 50 at 0.5, 30 at 1.5.
    let lens: Vec<(usize, usize)> = (0..120).map(|i| (1 + i % 9, 1 + i % 7)).collect();
    let corpus = corpus_of(&lens);
    let plain = TokenBatcher::new(&corpus, BatchConfig::tokens(60), 7).unwrap();
    let weighted = plain
        .clone()
        .with_weights(&[(40, 2.0), (50, 0.5), (30, 1.5)])
        .unwrap();
    let mut halves = Vec::new();
    for epoch in 0..3 {
        let seen = draws(&weighted.epoch(epoch), 120);
        assert!(
            seen[..40].iter().all(|&c| c == 2),
            "weight 2: {:?}",
            &seen[..40]
        );
        let second: Vec<u32> = seen[40..90].to_vec();
        assert!(second.iter().all(|&c| c <= 1));
        assert_eq!(second.iter().sum::<u32>(), 25, "weight 0.5 of 50 pairs");
        let third = &seen[90..];
        assert!(third.iter().all(|&c| c == 1 || c == 2));
        assert_eq!(third.iter().sum::<u32>(), 45, "weight 1.5 of 30 pairs");
        halves.push(second);
        // The same (seed, epoch) gives the same plan: what an exact resume replays.
        assert_eq!(
            plan_sets(&weighted.epoch(epoch)),
            plan_sets(&weighted.epoch(epoch))
        );
    }
    assert!(
        halves[0] != halves[1] && halves[1] != halves[2],
        "each epoch draws another half"
    );
    // Every weight 1 is the plain plan, bit for bit.
    let ones = plain.clone().with_weights(&[(40, 1.0), (80, 1.0)]).unwrap();
    assert_eq!(plan_sets(&ones.epoch(2)), plan_sets(&plain.epoch(2)));
    // Bad weights are errors.
    for groups in [
        &[(40, 1.0), (70, 1.0)][..],
        &[(120, 0.0)],
        &[(120, f64::NAN)],
        &[(120, -1.0)],
    ] {
        let e = plain.clone().with_weights(groups).unwrap_err();
        assert!(matches!(e, DataError::Invalid(_)), "{groups:?}: {e}");
    }
}
