//! The `nmt-vocab` binary: train, encode, decode, info, and bad input.

mod common;

use std::process::{Command, Output};

use tempfile::TempDir;

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

/// A new temporary folder with cuts of Multi30k train (1500 lines a side) in it, and
/// their paths.
fn cuts() -> (TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let de = common::head("multi30k/train.de", 1500);
    let en = common::head("multi30k/train.en", 1500);
    let (pde, pen) = (dir.path().join("train.de"), dir.path().join("train.en"));
    std::fs::write(&pde, de.join("\n")).unwrap();
    std::fs::write(&pen, en.join("\n")).unwrap();
    (dir, pde.display().to_string(), pen.display().to_string())
}

/// `train OPTIONS... --input INPUTS... --output OUTPUT`.
fn train_args<'a>(options: &[&'a str], inputs: &[&'a str], output: &'a str) -> Vec<&'a str> {
    [
        &["train"],
        options,
        &["--input"],
        inputs,
        &["--output", output],
    ]
    .concat()
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn train_encode_decode_info() {
    let (dir, de, en) = cuts();
    let out = dir.path().join("joint");
    let out_s = out.display().to_string();
    for model in ["unigram", "bpe"] {
        let options = [
            "--model",
            model,
            "--vocab-size",
            "1200",
            "--min-frequency",
            "2",
            "--character-coverage",
            "1.0",
            "--joint",
        ];
        ok(&train_args(&options, &[&de, &en], &out_s), b"");
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
    let (dir, de, en) = cuts();
    let out = dir.path().join("sep");
    ok(
        &train_args(
            &["--model", "bpe", "--vocab-size", "800"],
            &[&de, &en],
            &out.display().to_string(),
        ),
        b"",
    );
    for name in ["train.de.tokenizer.json", "train.en.tokenizer.json"] {
        let v = vocab::load(out.join(name)).unwrap();
        assert_eq!(v.len(), 800);
    }
    // A single file name cannot hold two vocabularies.
    let file = dir.path().join("one.json").display().to_string();
    fails(
        &train_args(&["--vocab-size", "800"], &[&de, &en], &file),
        b"",
        "--output must be a directory",
    );
    // A *.json output is written as named.
    ok(&train_args(&["--vocab-size", "800"], &[&de], &file), b"");
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
    let (dir, de, _) = cuts();
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

    let out = dir.path().join("v.json").display().to_string();
    ok(&train_args(&["--vocab-size", "600"], &[&de], &out), b"");
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
        &train_args(&["--vocab-size", "100"], &[&bad_s], &out),
        b"",
        "bad.txt:3:",
    );
    fails(
        &train_args(&["--vocab-size", "100"], &["/no/such.txt"], &out),
        b"",
        "/no/such.txt",
    );
    fails(
        &train_args(&["--vocab-size", "3"], &[&de], &out),
        b"",
        "vocabulary size",
    );
    fails(
        &train_args(&["--character-coverage", "2"], &[&de], &out),
        b"",
        "character coverage",
    );
    fails(
        &train_args(&["--model", "wordpiece"], &[&de], &out),
        b"",
        "wordpiece",
    );
}
