//! Bad data: every problem is an error naming file and line, or with
//! `skip_bad_lines` a counted skip that never misaligns the kept pairs.

mod data_support;

use data_support::{pair_files, write, WordVocab};
use training::data::{
    CorpusSpec, DataError, EncodedCorpus, LengthFilter, LineProblem, RawPairs, ReadOptions, Side,
    SkipReason,
};

const SKIP: ReadOptions = ReadOptions {
    skip_bad_lines: true,
    format: None,
    tag_lines: training::data::TagLines::DropAll,
};

fn read_err(spec: &CorpusSpec, opts: &ReadOptions) -> DataError {
    match RawPairs::read(spec, opts) {
        Ok((raw, _)) => panic!("expected an error, read {} pairs", raw.len()),
        Err(e) => e,
    }
}

#[test]
fn line_count_mismatch_is_an_error_even_when_skipping() {
    let (_dir, src, tgt) = pair_files(("c.de", "a\nb\nc\nd\n"), ("c.en", "A\nB\n"));
    let spec = CorpusSpec::new(&src, &tgt);
    for opts in [ReadOptions::default(), SKIP] {
        let err = read_err(&spec, &opts);
        let msg = err.to_string();
        match &err {
            DataError::CountMismatch {
                longer_side,
                first_unpaired,
                longer_count,
                shorter_count,
                ..
            } => {
                assert_eq!(*longer_side, Side::Source);
                assert_eq!(first_unpaired.line, 3);
                assert_eq!((*longer_count, *shorter_count), (4, 2));
            }
            other => panic!("wrong error {other:?}"),
        }
        assert!(msg.contains("c.de:3"), "{msg}");
        assert!(msg.contains("c.en"), "{msg}");
        assert!(
            msg.contains("4 sentences") && msg.contains("has 2"),
            "{msg}"
        );
    }
    // Target longer: named as such.
    let err = read_err(&CorpusSpec::new(&tgt, &src), &ReadOptions::default());
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                longer_side: Side::Target,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn invalid_utf8_names_file_line_and_side() {
    let (_dir, src, tgt) = pair_files(("u.de", "gut\n"), ("u.en", b"good\xff\xfe\n".as_slice()));
    let err = read_err(&CorpusSpec::new(&src, &tgt), &ReadOptions::default());
    let msg = err.to_string();
    assert!(
        matches!(
            &err,
            DataError::BadLine { at, side: Side::Target, problem: LineProblem::InvalidUtf8 { byte: 4 } }
                if at.line == 1 && at.path == tgt
        ),
        "{err:?}"
    );
    assert!(
        msg.contains("u.en:1") && msg.contains("target") && msg.contains("UTF-8"),
        "{msg}"
    );
    assert!(
        msg.contains("skip"),
        "the message should say how to skip: {msg}"
    );
}

#[test]
fn empty_lines_are_errors() {
    let (_dir, src, tgt) = pair_files(("e.de", "eins\n   \ndrei\n"), ("e.en", "one\ntwo\nthree\n"));
    let err = read_err(&CorpusSpec::new(&src, &tgt), &ReadOptions::default());
    assert!(
        err.to_string().contains("e.de:2: source empty line"),
        "{err}"
    );
}

#[test]
fn seg_id_mismatch_and_malformed_segments() {
    let (_dir, src, tgt) = pair_files(
        (
            "s.de.xml",
            "<doc>\n<seg id=\"1\"> a </seg>\n<seg id=\"2\"> b </seg>\n<seg id=\"4\"> c </seg>\n<seg id=\"5\"> d\n<seg id=\"6\"> e </seg>\n</doc>\n",
        ),
        (
            "s.en.xml",
            "<doc>\n<seg id=\"1\"> A </seg>\n<seg id=\"2\"> B </seg>\n<seg id=\"3\"> C </seg>\n<seg id=\"5\"> D </seg>\n<seg id=\"6\"> E </seg>\n</doc>\n",
        ),
    );
    let spec = CorpusSpec::new(&src, &tgt);
    let err = read_err(&spec, &ReadOptions::default());
    let msg = err.to_string();
    assert!(matches!(err, DataError::SegIdMismatch { .. }), "{err:?}");
    assert!(
        msg.contains("s.de.xml:4") && msg.contains("s.en.xml:4"),
        "{msg}"
    );
    assert!(
        msg.contains("id=\"4\"") && msg.contains("id=\"3\""),
        "{msg}"
    );

    let (raw, report) = RawPairs::read(&spec, &SKIP).unwrap();
    assert_eq!(raw.len(), 3);
    assert_eq!(raw.get(0), ("a", "A"));
    assert_eq!(raw.get(1), ("b", "B"));
    assert_eq!(raw.get(2), ("e", "E"));
    assert_eq!(report.skipped.get(&SkipReason::SegIdMismatch), Some(&1));
    assert_eq!(report.skipped.get(&SkipReason::Malformed), Some(&1));
    assert_eq!(report.pairs_seen, 5);
    assert_eq!(report.pairs_kept, 3);
    assert!(
        report
            .examples
            .iter()
            .any(|e| e.contains("s.de.xml:5") && e.contains("</seg>")),
        "{report}"
    );
}

#[test]
fn skipping_counts_by_reason_and_keeps_alignment() {
    let dir = tempfile::tempdir().unwrap();
    let mut src = Vec::new();
    let mut tgt = Vec::new();
    // Pair k is "s k" / "t k" unless broken; kept pairs must still match.
    for k in 0..20 {
        match k {
            3 => {
                src.extend_from_slice(b"s \xc3\x28 bad\n");
                tgt.extend_from_slice(format!("t {k}\n").as_bytes());
            }
            7 | 8 => {
                src.extend_from_slice(format!("s {k}\n").as_bytes());
                tgt.extend_from_slice(b"\n");
            }
            12 => {
                src.extend_from_slice(b" \t\n");
                tgt.extend_from_slice(b"\xff\n");
            }
            _ => {
                src.extend_from_slice(format!("s {k}\n").as_bytes());
                tgt.extend_from_slice(format!("t {k}\n").as_bytes());
            }
        }
    }
    let s = write(dir.path(), "k.de", &src);
    let t = write(dir.path(), "k.en", &tgt);
    let (raw, report) = RawPairs::read(&CorpusSpec::new(&s, &t), &SKIP).unwrap();
    assert_eq!(raw.len(), 16);
    for i in 0..raw.len() {
        let (a, b) = raw.get(i);
        assert_eq!(
            a.strip_prefix("s "),
            b.strip_prefix("t "),
            "pair {i} misaligned"
        );
        assert_eq!(raw.origins[i].number + 1, raw.origins[i].src_line);
    }
    assert_eq!(report.skipped.get(&SkipReason::InvalidUtf8), Some(&1));
    // Pair 12 has an empty source and bad target: counted once, as the
    // source problem.
    assert_eq!(report.skipped.get(&SkipReason::EmptyLine), Some(&3));
    assert_eq!(report.total_skipped(), 4);
    assert_eq!(report.pairs_seen, 20);
    let summary = report.to_string();
    assert!(summary.contains("skipped (empty line): 3"), "{summary}");
    assert!(summary.contains("k.de:4"), "{summary}");
}

#[test]
fn missing_file_and_format_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let src = write(dir.path(), "m.de", "a\n");
    let missing = dir.path().join("nope.en");
    let err = read_err(&CorpusSpec::new(&src, &missing), &ReadOptions::default());
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains("nope.en"), "{err}");

    let sgm = write(dir.path(), "m.en.sgm", "<seg id=1>a</seg>\n");
    let err = read_err(&CorpusSpec::new(&src, &sgm), &ReadOptions::default());
    assert!(matches!(err, DataError::FormatMismatch { .. }), "{err:?}");
    // An explicit format overrides detection.
    let opts = ReadOptions {
        format: Some(training::data::Format::WmtSgml),
        ..Default::default()
    };
    let plain_as_sgm = write(dir.path(), "m2.de", "<seg id=1>x</seg>\n");
    let (raw, _) = RawPairs::read(&CorpusSpec::new(plain_as_sgm, &sgm), &opts).unwrap();
    assert_eq!(raw.get(0), ("x", "a"));
}

#[test]
fn corrupt_gzip_is_an_io_error_with_the_file() {
    let (_dir, src, tgt) = pair_files(
        (
            "z.de.gz",
            [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3].as_slice(),
        ),
        ("z.en", "a\n"),
    );
    let err = read_err(&CorpusSpec::new(&src, &tgt), &ReadOptions::default());
    assert!(matches!(err, DataError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("z.de.gz"), "{err}");
}

#[test]
fn vocabulary_errors_name_file_line_and_side() {
    let (_dir, src, tgt) = pair_files(("v.de", "gut\nsehr gut\n"), ("v.en", "good\nvery FAIL\n"));
    let vocab = WordVocab::build(["gut sehr good very"]);
    let spec = CorpusSpec::new(&src, &tgt);
    let err = EncodedCorpus::read(
        &spec,
        &ReadOptions::default(),
        &vocab,
        &vocab,
        &LengthFilter::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Encode {
                side: Side::Target,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("v.en:2"), "{err}");
    let (raw, _) = RawPairs::read(&spec, &ReadOptions::default()).unwrap();
    let err = EncodedCorpus::encode(&raw, &vocab, &vocab, &LengthFilter::default()).unwrap_err();
    assert!(err.to_string().contains("v.en:2"), "{err}");
    let err = EncodedCorpus::encode_sources("stdin", &["gut", "FAIL"], &vocab).unwrap_err();
    assert!(err.to_string().contains("stdin:2"), "{err}");
}
