//! The `nmt-vocab` binary: train, encode, decode, info, and bad input.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::process;

const BIN: &str = env!("CARGO_BIN_EXE_nmt-vocab");

fn run(args: &[&str], stdin: &[u8]) -> Output {
    process::output_with_stdin(
        Command::new(BIN).args(args).env("RUST_BACKTRACE", "0"),
        stdin,
    )
}

fn ok(args: &[&str], stdin: &[u8]) -> String {
    let out = run(args, stdin);
    process::assert_success(&out, &format!("nmt-vocab {args:?} failed: "));
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str], stdin: &[u8], needle: &str) {
    let out = run(args, stdin);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nmt-vocab {args:?} succeeded");
    assert!(
        err.contains(needle),
        "nmt-vocab {args:?}: {needle:?} not in {err}"
    );
}

/// Cuts of Multi30k train (1500 lines a side) into `dir`.
fn cuts(dir: &Path) -> (String, String) {
    let de = common::head("multi30k/train.de", 1500);
    let en = common::head("multi30k/train.en", 1500);
    let (pde, pen) = (dir.join("train.de"), dir.join("train.en"));
    std::fs::write(&pde, de.join("\n")).unwrap();
    std::fs::write(&pen, en.join("\n")).unwrap();
    (pde.display().to_string(), pen.display().to_string())
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn train_encode_decode_info() {
    let dir = tempfile::tempdir().unwrap();
    let (de, en) = cuts(dir.path());
    let out = dir.path().join("joint");
    let out_s = out.display().to_string();
    for model in ["unigram", "bpe"] {
        ok(
            &[
                "train",
                "--model",
                model,
                "--vocab-size",
                "1200",
                "--min-frequency",
                "2",
                "--character-coverage",
                "1.0",
                "--joint",
                "--input",
                &de,
                &en,
                "--output",
                &out_s,
            ],
            b"",
        );
        let vocab = out.join("tokenizer.json").display().to_string();
        let info = ok(&["info", "--vocab", &vocab], b"");
        assert!(info.contains(&format!("kind: {model}")), "{info}");
        assert!(info.contains("size: 1200"), "{info}");
        assert!(
            info.contains("special: 0 <pad>") && info.contains("special: 3 </s>"),
            "{info}"
        );

        let test = common::head("multi30k/test.de", 50).join("\n") + "\n";
        let ids = ok(&["encode", "--vocab", &vocab, "--ids"], test.as_bytes());
        assert_eq!(ids.lines().count(), 50);
        assert!(ids
            .lines()
            .all(|l| l.split(' ').all(|t| t.parse::<u32>().unwrap() >= 1)));
        let back = ok(&["decode", "--vocab", &vocab], ids.as_bytes());
        let lib = vocab::load(&vocab).unwrap();
        for (got, line) in back.lines().zip(test.lines()) {
            assert_eq!(got, lib.decode(&lib.encode(line).unwrap()).unwrap());
        }
        let pieces = ok(&["encode", "--vocab", &vocab, "--pieces"], b"Ein Mann\n");
        assert_eq!(pieces, "\u{2581}Ein \u{2581}Mann\n");
    }
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn train_separate_vocabularies_into_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (de, en) = cuts(dir.path());
    let out = dir.path().join("sep");
    ok(
        &[
            "train",
            "--model",
            "bpe",
            "--vocab-size",
            "800",
            "--input",
            &de,
            &en,
            "--output",
            &out.display().to_string(),
        ],
        b"",
    );
    for name in ["train.de.tokenizer.json", "train.en.tokenizer.json"] {
        let v = vocab::load(out.join(name)).unwrap();
        assert_eq!(v.len(), 800);
    }
    // A single file name cannot hold two vocabularies.
    let file = dir.path().join("one.json").display().to_string();
    fails(
        &[
            "train",
            "--vocab-size",
            "800",
            "--input",
            &de,
            &en,
            "--output",
            &file,
        ],
        b"",
        "--output must be a directory",
    );
    // A *.json output is written as named.
    ok(
        &[
            "train",
            "--vocab-size",
            "800",
            "--input",
            &de,
            "--output",
            &file,
        ],
        b"",
    );
    assert_eq!(vocab::load(&file).unwrap().len(), 800);
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn spm_model_through_the_cli() {
    let lines = common::train_text();
    let dir = tempfile::tempdir().unwrap();
    let model = common::spm_train(dir.path(), &lines, &["--vocab_size=1000"]);
    let model = model.display().to_string();
    let info = ok(&["info", "--vocab", &model], b"");
    assert!(
        info.contains("kind: sentencepiece") && info.contains("size: 1001"),
        "{info}"
    );
    let ids = ok(&["encode", "--vocab", &model], b"Zwei Hunde spielen.\n");
    assert_eq!(
        ok(&["decode", "--vocab", &model], ids.as_bytes()),
        "Zwei Hunde spielen.\n"
    );
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn bad_input_exits_nonzero_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    fails(
        &["info", "--vocab", "/no/such/vocab.json"],
        b"",
        "/no/such/vocab.json",
    );
    let corrupt = dir.path().join("corrupt.json");
    std::fs::write(&corrupt, "{\"model\": {\"type\": \"Unigram\", ").unwrap();
    let corrupt_s = corrupt.display().to_string();
    fails(&["info", "--vocab", &corrupt_s], b"", "corrupt.json");
    fails(
        &["encode", "--vocab", &corrupt_s],
        b"text\n",
        "corrupt.json",
    );

    let (de, _) = cuts(dir.path());
    let out = dir.path().join("v.json").display().to_string();
    ok(
        &[
            "train",
            "--vocab-size",
            "600",
            "--input",
            &de,
            "--output",
            &out,
        ],
        b"",
    );
    fails(
        &["encode", "--vocab", &out],
        b"gut\n\xff kaputt\n",
        "<stdin>:2: not valid UTF-8",
    );
    fails(
        &["decode", "--vocab", &out],
        b"5 6\n7 x\n",
        "<stdin>:2: \"x\" is not an id",
    );
    fails(
        &["decode", "--vocab", &out],
        b"999999\n",
        "<stdin>:1: id 999999 is out of range",
    );

    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, b"gut\nauch gut\n\xc3 nein\n").unwrap();
    let bad_s = bad.display().to_string();
    fails(
        &[
            "train",
            "--vocab-size",
            "100",
            "--input",
            &bad_s,
            "--output",
            &out,
        ],
        b"",
        "bad.txt:3:",
    );
    fails(
        &[
            "train",
            "--vocab-size",
            "100",
            "--input",
            "/no/such.txt",
            "--output",
            &out,
        ],
        b"",
        "/no/such.txt",
    );
    fails(
        &[
            "train",
            "--vocab-size",
            "3",
            "--input",
            &de,
            "--output",
            &out,
        ],
        b"",
        "vocabulary size",
    );
    fails(
        &[
            "train",
            "--character-coverage",
            "2",
            "--input",
            &de,
            "--output",
            &out,
        ],
        b"",
        "character coverage",
    );
    fails(
        &[
            "train",
            "--model",
            "wordpiece",
            "--input",
            &de,
            "--output",
            &out,
        ],
        b"",
        "wordpiece",
    );
}
