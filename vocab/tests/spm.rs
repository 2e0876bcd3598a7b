//! SentencePiece models (module `spm`): a model made by `spm_train` at test
//! time, its id layout mapped onto ours, round trip on real test sets, and no
//! panic on any input.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use proptest::prelude::*;
use vocab::{SpmVocab, Vocab, VocabKind, BOS_ID, EOS_ID, NUM_SPECIAL, PAD_ID, UNK_ID, UNK_SURFACE};

/// A 2000-piece unigram model with spm_train's default layout (unk 0, bos 1,
/// eos 2, no pad), trained once per test binary on a Multi30k cut.
fn model() -> &'static (tempfile::TempDir, PathBuf) {
    static MODEL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let lines = common::train_text();
        let dir = tempfile::tempdir().unwrap();
        let path = common::spm_train(
            dir.path(),
            &lines,
            &["--vocab_size=2000", "--character_coverage=1.0"],
        );
        (dir, path)
    })
}

fn vocab() -> &'static SpmVocab {
    static VOCAB: OnceLock<SpmVocab> = OnceLock::new();
    VOCAB.get_or_init(|| SpmVocab::from_file(&model().1).unwrap())
}

/// Ids as the `spm_encode` tool writes them, one vector per line.
fn spm_encode_ids(model: &std::path::Path, lines: &[String]) -> Vec<Vec<u32>> {
    use std::io::Write;
    let mut child = common::spm_command("spm_encode")
        .arg(format!("--model={}", model.display()))
        .arg("--output_format=id")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let text = lines.join("\n") + "\n";
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect()
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn default_layout_is_remapped() {
    let v = vocab();
    assert_eq!(v.kind(), VocabKind::SentencePiece);
    assert_eq!(v.file_name(), "sentencepiece.model");
    // spm_train default: unk 0, bos 1, eos 2, no pad; we add pad.
    assert_eq!(v.from_spm_id(0), Some(UNK_ID));
    assert_eq!(v.from_spm_id(1), Some(BOS_ID));
    assert_eq!(v.from_spm_id(2), Some(EOS_ID));
    assert_eq!(v.from_spm_id(3), Some(NUM_SPECIAL));
    assert_eq!(v.to_spm_id(PAD_ID), None);
    assert_eq!(v.to_spm_id(NUM_SPECIAL), Some(3));
    assert_eq!(v.len(), 2001);
    for id in NUM_SPECIAL..v.len() as u32 {
        let spm = v.to_spm_id(id).unwrap();
        assert_eq!(v.from_spm_id(spm), Some(id));
        let piece = v.id_to_piece(id).unwrap();
        assert_eq!(v.piece_to_id(&piece), Some(id));
    }
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn ids_agree_with_spm_encode() {
    let ((_, path), v) = (model(), vocab());
    let lines = common::head("multi30k/test.de", 200);
    let theirs = spm_encode_ids(path, &lines);
    assert_eq!(theirs.len(), lines.len());
    for (line, spm_ids) in lines.iter().zip(theirs) {
        let mapped: Vec<u32> = spm_ids.iter().map(|&s| v.from_spm_id(s).unwrap()).collect();
        assert_eq!(v.encode(line).unwrap(), mapped, "{line}");
    }
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn other_layouts_are_remapped() {
    let lines = common::head("multi30k/train.en", 1500);
    let dir = tempfile::tempdir().unwrap();
    // eos first, pad, unk at 3, no bos; and a BPE model for good measure.
    let path = common::spm_train(
        dir.path(),
        &lines,
        &[
            "--vocab_size=500",
            "--model_type=bpe",
            "--eos_id=0",
            "--pad_id=1",
            "--unk_id=3",
            "--bos_id=-1",
        ],
    );
    let v = SpmVocab::from_file(&path).unwrap();
    assert_eq!(v.from_spm_id(0), Some(EOS_ID));
    assert_eq!(v.from_spm_id(1), Some(PAD_ID));
    assert_eq!(v.from_spm_id(3), Some(UNK_ID));
    assert_eq!(v.from_spm_id(2), Some(NUM_SPECIAL));
    assert_eq!(v.to_spm_id(BOS_ID), None);
    assert_eq!(v.len(), 501);
    let line = &lines[0];
    let ids = v.encode(line).unwrap();
    assert!(ids.iter().all(|&id| id >= NUM_SPECIAL));
    assert_eq!(v.decode(&ids).unwrap(), v.normalize(line).unwrap());
    assert_eq!(v.decode(&[BOS_ID, PAD_ID, EOS_ID]).unwrap(), "");
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn round_trips_real_test_sets() {
    let v = vocab();
    for set in common::TEST_SETS {
        let lines = common::head(set, usize::MAX);
        let clean = lines.iter().filter(|l| common::round_trips(v, l)).count();
        eprintln!("spm {set}: {clean}/{} lines without unk", lines.len());
        let floor = if set.starts_with("multi30k") {
            0.97
        } else {
            0.5
        };
        assert!(clean as f64 >= floor * lines.len() as f64, "{set}");
    }
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn unknown_text_and_bad_ids() {
    let v = vocab();
    let ids = v.encode("Ein Привет Mann").unwrap();
    assert!(ids.contains(&UNK_ID));
    assert_eq!(v.decode(&ids).unwrap(), format!("Ein {UNK_SURFACE} Mann"));
    assert_eq!(v.decode(&v.encode("日本").unwrap()).unwrap(), UNK_SURFACE);
    assert!(v.decode(&[v.len() as u32]).is_err());
    // Special names in text are text.
    let ids = v.encode("<s> </s> <pad>").unwrap();
    assert!(ids
        .iter()
        .all(|&id| id != BOS_ID && id != EOS_ID && id != PAD_ID));
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn save_writes_the_same_model() {
    let v = vocab();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.model");
    v.save(&path).unwrap();
    let again = SpmVocab::from_file(&path).unwrap();
    let line = "Zwei Hunde spielen im Schnee.";
    assert_eq!(again.encode(line).unwrap(), v.encode(line).unwrap());
    assert_eq!(again.len(), v.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]

    #[ignore = "needs ../shared/data (the project's corpora)"]
    fn never_panics_and_round_trips(s in common::text()) {
        { let v = vocab(); common::round_trips(v, &s); }
    }

    #[test]

    #[ignore = "needs ../shared/data (the project's corpora)"]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        { let v = vocab(); common::round_trips(v, &s); }
    }

    #[test]

    #[ignore = "needs ../shared/data (the project's corpora)"]
    fn arbitrary_ids_decode_or_fail_cleanly(ids in prop::collection::vec(0u32..2100, 0..64)) {
        { let v = vocab();
            prop_assert_eq!(v.decode(&ids).is_ok(), ids.iter().all(|&id| (id as usize) < v.len()));
        }
    }
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn very_long_line_round_trips() {
    let v = vocab();
    let lines = common::head("multi30k/test.en", 1000);
    common::round_trips(v, &lines.join(" "));
    assert!(common::round_trips(v, &"ab".repeat(50_000)));
}
