//! Length filtering in subword tokens, as Moses clean-corpus-n does.

mod data_support;

use data_support::{multi30k, pair_files, write, WordVocab};
use training::data::{CorpusSpec, EncodedCorpus, FilterReason, LengthFilter, ReadOptions, Side};

#[test]
fn check_rules() {
    let f = LengthFilter::moses(2, 5, 1.5);
    assert_eq!(f.check(1, 3), Some(FilterReason::TooShort(Side::Source)));
    assert_eq!(f.check(3, 1), Some(FilterReason::TooShort(Side::Target)));
    assert_eq!(f.check(6, 5), Some(FilterReason::TooLong(Side::Source)));
    assert_eq!(f.check(5, 6), Some(FilterReason::TooLong(Side::Target)));
    // Ratio 4/2 = 2 > 1.5 either way round; 3/2 = 1.5 is kept (not above).
    assert_eq!(f.check(4, 2), Some(FilterReason::Ratio));
    assert_eq!(f.check(2, 4), Some(FilterReason::Ratio));
    assert_eq!(f.check(3, 2), None);
    assert_eq!(f.check(5, 5), None);
    assert_eq!(
        LengthFilter::default().check(0, 3),
        Some(FilterReason::TooShort(Side::Source))
    );
    assert_eq!(LengthFilter::keep_all().check(0, 300), None);
}

#[test]
fn invalid_settings_are_rejected() {
    assert!(LengthFilter::moses(5, 2, 1.5).validate().is_err());
    assert!(LengthFilter::moses(1, 2, 0.5).validate().is_err());
    assert!(LengthFilter::moses(1, 2, f64::NAN).validate().is_err());
    assert!(LengthFilter::moses(1, 2, 1.0).validate().is_ok());
    let (_dir, s, t) = pair_files(("a.de", "x\n"), ("a.en", "y\n"));
    let v = WordVocab::build(["x y"]);
    let err = EncodedCorpus::read(
        &CorpusSpec::new(s, t),
        &ReadOptions::default(),
        &v,
        &v,
        &LengthFilter::moses(3, 1, 2.0),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("max_len 1 is below min_len 3"),
        "{err}"
    );
}

#[test]
fn filtered_pairs_are_counted_and_the_rest_kept_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let src = "a\na b\na b c d e f\na b c\na b c d\n";
    let tgt = "A\nA B\nA B C D E F\nA\nA B C D\n";
    let s = write(dir.path(), "f.de", src);
    let t = write(dir.path(), "f.en", tgt);
    let v = WordVocab::build([src, tgt]);
    let filter = LengthFilter::moses(2, 5, 2.0);
    let (corpus, report) = EncodedCorpus::read(
        &CorpusSpec::new(s, t),
        &ReadOptions::default(),
        &v,
        &v,
        &filter,
    )
    .unwrap();
    // Kept: pair 1 (2/2) and pair 4 (4/4); dropped: 0 short, 2 long, 3 short target.
    assert_eq!(corpus.len(), 2);
    assert_eq!(corpus.number(0), 1);
    assert_eq!(corpus.number(1), 4);
    assert_eq!(corpus.src(1).len(), 4);
    assert_eq!(
        report.filtered.get(&FilterReason::TooShort(Side::Source)),
        Some(&1)
    );
    assert_eq!(
        report.filtered.get(&FilterReason::TooShort(Side::Target)),
        Some(&1)
    );
    assert_eq!(
        report.filtered.get(&FilterReason::TooLong(Side::Source)),
        Some(&1)
    );
    assert_eq!(report.total_filtered(), 3);
    assert_eq!((report.pairs_seen, report.pairs_kept), (5, 2));
    assert!(
        report.to_string().contains("filtered (source too long): 1"),
        "{report}"
    );
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn ratio_filter_on_real_data_matches_a_direct_count() {
    let (_, raw) = multi30k("valid");
    let v = WordVocab::build(raw.src.iter().chain(raw.tgt.iter()));
    let filter = LengthFilter::moses(1, 20, 1.3);
    let (corpus, report) = EncodedCorpus::encode(&raw, &v, &v, &filter).unwrap();
    // Count directly on whitespace words (the test vocabulary's tokens).
    let mut expect_kept = 0;
    for i in 0..raw.len() {
        let (s, t) = raw.get(i);
        let (a, b) = (
            s.split_whitespace().count() as f64,
            t.split_whitespace().count() as f64,
        );
        if a >= 1.0 && b >= 1.0 && a <= 20.0 && b <= 20.0 && a / b <= 1.3 && b / a <= 1.3 {
            expect_kept += 1;
        }
    }
    assert_eq!(corpus.len(), expect_kept);
    assert_eq!(report.pairs_kept as usize, expect_kept);
    assert_eq!(report.total_filtered() as usize, raw.len() - expect_kept);
    assert!(
        report
            .filtered
            .get(&FilterReason::Ratio)
            .copied()
            .unwrap_or(0)
            > 0
    );
}
