//! The dispatching loader (module `load`): by directory, extension or
//! content, with errors naming the path and never a panic.

mod common;

use std::path::Path;

use vocab::{load, ModelType, Vocab, VocabError, VocabKind};

fn save_trained(dir: &Path, name: &str) -> std::path::PathBuf {
    let v = common::trained_generated(ModelType::Unigram);
    let p = dir.join(name);
    v.save(&p).unwrap();
    p
}

fn load_err(path: &Path) -> VocabError {
    match load(path) {
        Ok(v) => panic!("{} loaded as a {} vocabulary", path.display(), v.kind()),
        Err(e) => {
            assert!(
                e.to_string().contains(&path.display().to_string()),
                "error does not name the path: {e}"
            );
            e
        }
    }
}

#[test]
fn dispatches_by_extension_directory_and_content() {
    let dir = tempfile::tempdir().unwrap();
    let json = save_trained(dir.path(), "tokenizer.json");
    assert_eq!(load(&json).unwrap().kind(), VocabKind::Unigram);
    // A directory holding tokenizer.json.
    assert_eq!(load(dir.path()).unwrap().kind(), VocabKind::Unigram);
    // No telling extension: sniffed as JSON.
    let odd = dir.path().join("vocab.bin");
    std::fs::copy(&json, &odd).unwrap();
    assert_eq!(load(&odd).unwrap().kind(), VocabKind::Unigram);

    let lines = common::generated_text();
    let spm_dir = tempfile::tempdir().unwrap();
    let model = common::spm_train(spm_dir.path(), &lines, &["--vocab_size=800"]);
    assert_eq!(load(&model).unwrap().kind(), VocabKind::SentencePiece);
    // A directory whose only vocabulary is a .model (spm_train also wrote spm.vocab).
    std::fs::remove_file(spm_dir.path().join("spm_input.txt")).unwrap();
    assert_eq!(
        load(spm_dir.path()).unwrap().kind(),
        VocabKind::SentencePiece
    );
    // No telling extension: not JSON, so SentencePiece.
    let odd = spm_dir.path().join("model.bin");
    std::fs::copy(&model, &odd).unwrap();
    assert_eq!(load(&odd).unwrap().kind(), VocabKind::SentencePiece);
    // What we save is what we load.
    let v = load(&model).unwrap();
    let copy = dir.path().join(v.file_name());
    v.save(&copy).unwrap();
    assert_eq!(
        load(&copy).unwrap().encode("Ein Hund").unwrap(),
        v.encode("Ein Hund").unwrap()
    );
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let e = load_err(Path::new("/no/such/tokenizer.json"));
    assert!(matches!(e, VocabError::Io { .. }));
}

#[test]
fn corrupt_and_foreign_files_are_load_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = save_trained(dir.path(), "good.json");
    let text = std::fs::read_to_string(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.json", vec![]),
        ("truncated.json", text.as_bytes()[..text.len() / 2].to_vec()),
        ("other.json", br#"{"hello": "world"}"#.to_vec()),
        ("list.json", b"[1, 2, 3]".to_vec()),
        ("binary.json", vec![0xff, 0x00, 0x13, 0x37]),
        (
            "wordlevel.json",
            text.replace("\"type\": \"Unigram\"", "\"type\": \"WordLevel\"")
                .into_bytes(),
        ),
        (
            "swapped.json",
            text.replacen("\"<pad>\"", "\"<PAD>\"", 1).into_bytes(),
        ),
        (
            "unk.json",
            text.replace("\"unk_id\": 1", "\"unk_id\": 5").into_bytes(),
        ),
        ("empty.model", vec![]),
        ("text.model", b"this is plain text, not a model\n".to_vec()),
        ("junk.model", (0..=255u8).cycle().take(5000).collect()),
    ];
    for (name, bytes) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = load_err(&p);
        assert!(matches!(e, VocabError::Load { .. }), "{name}: {e:?}");
    }
}

#[test]
fn truncated_spm_model_is_a_load_error() {
    let lines = common::generated_text();
    let dir = tempfile::tempdir().unwrap();
    let model = common::spm_train(dir.path(), &lines, &["--vocab_size=800"]);
    let bytes = std::fs::read(&model).unwrap();
    for cut in [1, 10, bytes.len() / 3, bytes.len() - 1] {
        let p = dir.path().join(format!("cut{cut}.model"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        // Some cuts end on a message boundary and still parse as a shorter
        // model; those must load cleanly or fail cleanly, never crash.
        if let Err(e) = load(&p) {
            assert!(e.to_string().contains(&p.display().to_string()), "{e}");
        }
    }
    let p = dir.path().join("half.model");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(load_err(&p), VocabError::Load { .. }));
}

#[test]
fn directory_without_or_with_several_vocabularies() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_err(dir.path());
    assert!(e.to_string().contains("no tokenizer.json"), "{e}");
    save_trained(dir.path(), "a.json");
    save_trained(dir.path(), "b.json");
    let e = load_err(dir.path());
    assert!(e.to_string().contains("2 candidate"), "{e}");
}
