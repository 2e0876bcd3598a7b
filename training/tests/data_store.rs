//! Compact storage: flat ids with offsets, u16/u32 widths, order kept by
//! the parallel encoder, and order restoration.

mod data_support;

use data_support::{multi30k, pair_files, source_ids, WordVocab};
use training::data::{
    restore_order, CorpusBuilder, CorpusSpec, EncodedCorpus, IdWidth, LengthFilter, ReadOptions,
    TokenColumn,
};

#[test]
fn width_follows_vocabulary_size() {
    assert_eq!(IdWidth::for_vocab_len(10_000), IdWidth::U16);
    assert_eq!(IdWidth::for_vocab_len(65_536), IdWidth::U16);
    assert_eq!(IdWidth::for_vocab_len(65_537), IdWidth::U32);
    let small = WordVocab::numbered(100);
    let big = WordVocab::numbered(70_000);
    let b = CorpusBuilder::for_vocabs(&small, &big);
    let c = b.finish();
    assert_eq!(c.src_column().width(), IdWidth::U16);
    assert_eq!(c.tgt_column().width(), IdWidth::U32);
}

#[test]
fn columns_round_trip_ids_in_both_widths() {
    for width in [IdWidth::U16, IdWidth::U32] {
        let mut col = TokenColumn::new(width);
        let seqs: Vec<Vec<u32>> = vec![vec![4, 5, 6], vec![], vec![65_535], vec![7; 300]];
        for s in &seqs {
            col.push(s).unwrap();
        }
        assert_eq!(col.len(), 4);
        assert_eq!(col.num_tokens(), 304);
        for (i, s) in seqs.iter().enumerate() {
            assert_eq!(&col.get(i).to_vec(), s);
            assert_eq!(col.seq_len(i), s.len());
            assert_eq!(col.get(i).iter().len(), s.len());
        }
    }
    let mut narrow = TokenColumn::new(IdWidth::U16);
    let err = narrow.push(&[70_000]).unwrap_err();
    assert!(err.to_string().contains("70000"), "{err}");
    let mut wide = TokenColumn::new(IdWidth::U32);
    wide.push(&[70_000]).unwrap();
    assert_eq!(wide.get(0).to_vec(), vec![70_000]);
}

#[test]
fn builder_rejects_ids_outside_the_vocabulary() {
    let mut b = CorpusBuilder::with_vocab_lens(10, 10);
    b.push(&[4, 9], &[5], 0).unwrap();
    let err = b.push(&[4], &[10], 1).unwrap_err();
    assert!(err.to_string().contains("target token id 10"), "{err}");
    assert_eq!(b.len(), 1);
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn streaming_and_in_memory_encoding_agree_on_real_data() {
    let (spec, raw) = multi30k("train");
    assert_eq!(raw.len(), 29_000);
    let sv = WordVocab::build(raw.src.iter());
    let tv = WordVocab::build(raw.tgt.iter());
    let filter = LengthFilter::default();
    let (a, ra) = EncodedCorpus::encode(&raw, &sv, &tv, &filter).unwrap();
    let (b, rb) = EncodedCorpus::read(&spec, &ReadOptions::default(), &sv, &tv, &filter).unwrap();
    assert_eq!(a, b);
    assert_eq!(ra.pairs_kept, rb.pairs_kept);
    // 29,000 pairs span several parallel chunks: order must be input order.
    for i in [0, 1, 17_000, 28_999] {
        assert_eq!(a.number(i), i as u64);
        assert_eq!(a.src(i).to_vec(), sv.encode(raw.get(i).0).unwrap());
        assert_eq!(
            tv.decode(&a.tgt(i).to_vec()),
            raw.get(i)
                .1
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    let tokens = a.src_column().num_tokens() + a.tgt_column().num_tokens();
    // u16 ids + u64 offsets + u64 numbers: compact, no per-sentence allocation.
    assert!(
        a.heap_bytes() <= tokens * 2 + 29_001 * 16 + 29_000 * 8 + 64,
        "{} bytes",
        a.heap_bytes()
    );
}

#[test]
fn numbers_map_kept_pairs_back_to_input_positions() {
    let (_dir, s, t) = pair_files(("n.de", "a\n\nb c\nd\n"), ("n.en", "A\nX\nB C\nD E F G\n"));
    let v = WordVocab::build(["a b c d A B C D E F G X"]);
    let opts = ReadOptions {
        skip_bad_lines: true,
        ..Default::default()
    };
    let (c, report) = EncodedCorpus::read(
        &CorpusSpec::new(s, t),
        &opts,
        &v,
        &v,
        &LengthFilter::moses(1, 3, 9.0),
    )
    .unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(c.number(0), 0);
    assert_eq!(c.number(1), 2);
    assert_eq!(report.total_skipped(), 1);
    assert_eq!(report.total_filtered(), 1);
}

#[test]
fn source_only_corpus_for_translation() {
    let v = WordVocab::build(["ein Haus zwei"]);
    let lines = ["ein Haus", "", "zwei Häuser"];
    let c = EncodedCorpus::encode_sources("input", &lines, &v).unwrap();
    assert_eq!(c.len(), 3);
    assert_eq!(c.src(0).to_vec(), vec![4, 5]);
    assert!(c.src(1).is_empty());
    assert_eq!(c.src(2).to_vec(), vec![6, vocab::UNK_ID]);
    assert!(c.tgt(2).is_empty());
    assert_eq!(c.number(2), 2);
}

#[test]
fn restore_order_checks_completeness() {
    let got = restore_order(3, vec![(2, "c"), (0, "a"), (1, "b")]).unwrap();
    assert_eq!(got, vec!["a", "b", "c"]);
    assert!(restore_order(3, vec![(2, "c"), (0, "a")])
        .unwrap_err()
        .to_string()
        .contains("index 1 missing"));
    assert!(restore_order(2, vec![(0, 1), (0, 2)])
        .unwrap_err()
        .to_string()
        .contains("twice"));
    assert!(restore_order(1, vec![(5, 1)]).is_err());
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn real_trained_vocabulary_through_read_encode_and_batch() {
    use training::data::{Batch, BatchConfig, TokenBatcher};
    use vocab::{ModelType, TrainConfig, Vocab, UNK_ID};
    let (spec, raw) = multi30k("valid");
    let config = TrainConfig {
        model: ModelType::Bpe,
        vocab_size: 1000,
        ..TrainConfig::default()
    };
    let joint = vocab::train_lines(&config, raw.src.iter().chain(raw.tgt.iter())).unwrap();
    // Used as the rest of the project will: a `Box<dyn Vocab>` passed as `&*`.
    let boxed: Box<dyn Vocab> = Box::new(joint);
    let (corpus, report) = EncodedCorpus::read(
        &spec,
        &ReadOptions::default(),
        &*boxed,
        &*boxed,
        &LengthFilter::default(),
    )
    .unwrap();
    assert_eq!(corpus.len(), raw.len());
    assert_eq!(report.pairs_kept as usize, raw.len());
    assert_eq!(corpus.src_column().width(), IdWidth::U16);
    // Subword sentences are longer than word sentences.
    assert!(
        corpus.src_column().num_tokens()
            > raw.src.iter().map(|s| s.split_whitespace().count()).sum()
    );
    let batcher = TokenBatcher::new(&corpus, BatchConfig::tokens(1024), 3).unwrap();
    let mut checked = 0;
    for b in batcher.epoch(0).iter().take(5) {
        let batch = Batch::collate(&corpus, b);
        for (r, &i) in batch.indices.iter().enumerate() {
            let ids = source_ids(&batch, r);
            assert_eq!(ids.len() as i64 + 1, batch.src_lengths[r]);
            if !ids.contains(&UNK_ID) {
                let text = raw.get(corpus.number(i) as usize).0;
                assert_eq!(boxed.decode(&ids).unwrap(), boxed.normalize(text).unwrap());
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "only {checked} rows checked");
}

#[test]
fn fingerprints_follow_the_ids_not_their_storage_width() {
    let corpus = |vocab_len: usize, pairs: &[(&[u32], &[u32])]| {
        let mut b = CorpusBuilder::with_vocab_lens(vocab_len, vocab_len);
        for (n, (s, t)) in pairs.iter().enumerate() {
            b.push(s, t, n as u64).unwrap();
        }
        b.finish()
    };
    let pairs: &[(&[u32], &[u32])] = &[(&[4, 5], &[6]), (&[7], &[8, 9])];
    let narrow = corpus(100, pairs);
    let wide = corpus(70_000, pairs);
    assert_eq!(narrow.src_column().width(), IdWidth::U16);
    assert_eq!(wide.src_column().width(), IdWidth::U32);
    let fp = narrow.fingerprint();
    assert!(fp.starts_with("sha256:") && fp.len() == 7 + 64, "{fp}");
    assert_eq!(fp, wide.fingerprint());
    // Any change of ids, order or pair boundaries changes it.
    let changed_id = corpus(100, &[(&[4, 5], &[6]), (&[7], &[8, 10])]);
    let swapped = corpus(100, &[(&[7], &[8, 9]), (&[4, 5], &[6])]);
    let moved_boundary = corpus(100, &[(&[4], &[5, 6]), (&[7], &[8, 9])]);
    for other in [changed_id, swapped, moved_boundary] {
        assert_ne!(other.fingerprint(), fp);
    }
}
