//! `nmt-eval translate` end to end with the shipped Multi30k model on a few sentences (in this
//! file, so the test needs nothing outside the repository).

#[path = "../../test-support/process.rs"]
mod process;

use std::fs;
use std::process::Command;

use process::output_ok;

const BIN: &str = env!("CARGO_BIN_EXE_nmt-eval");
/// The trained German→English model that ships in the repository.
const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../checkpoints/multi30k-de-en");

/// Multi30k-style German captions with an English reference each (written for this test).
const PAIRS: &[(&str, &str)] = &[
    ("Ein Mann fährt Fahrrad.", "A man is riding a bike."),
    (
        "Zwei Hunde spielen im Schnee.",
        "Two dogs are playing in the snow.",
    ),
    (
        "Eine Frau sitzt auf einer Bank.",
        "A woman is sitting on a bench.",
    ),
    (
        "Kinder spielen auf der Straße.",
        "Children are playing in the street.",
    ),
    (
        "Ein Hund rennt über eine Wiese.",
        "A dog runs across a meadow.",
    ),
    (
        "Ein Junge springt in einen See.",
        "A boy jumps into a lake.",
    ),
    (
        "Eine Gruppe von Menschen steht vor einem Gebäude.",
        "A group of people is standing in front of a building.",
    ),
    (
        "Ein Mann in einem blauen Hemd steht auf einer Leiter.",
        "A man in a blue shirt is standing on a ladder.",
    ),
];

/// `nmt-eval bleu -b` of `hyp` against `reference`, with `extra` flags.
fn rescore(reference: &std::path::Path, hyp: &std::path::Path, extra: &[&str]) -> f64 {
    let out = output_ok(
        Command::new(BIN)
            .args(["bleu", "-b"])
            .args(extra)
            .args(["--ref", reference.to_str().unwrap()])
            .args(["--hyp", hyp.to_str().unwrap()]),
        "",
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn translates_and_scores_with_the_shipped_model() {
    let tmp = tempfile::tempdir().unwrap();
    let (src_file, ref_file, out_file) = (
        tmp.path().join("src"),
        tmp.path().join("ref"),
        tmp.path().join("hyp"),
    );
    let src: Vec<&str> = PAIRS.iter().map(|p| p.0).collect();
    let refs: Vec<&str> = PAIRS.iter().map(|p| p.1).collect();
    fs::write(&src_file, src.join("\n") + "\n").unwrap();
    fs::write(&ref_file, refs.join("\n") + "\n").unwrap();
    let out = output_ok(
        Command::new(BIN)
            .args([
                "translate",
                "--quiet",
                "--device",
                "cpu",
                "--beam",
                "2",
                "--json",
            ])
            .args(["--model", MODEL])
            .args(["--src", src_file.to_str().unwrap()])
            .args(["--ref", ref_file.to_str().unwrap()])
            .args(["--output", out_file.to_str().unwrap()]),
        "",
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sentences"], PAIRS.len());
    assert!(v["bleu_signature"].as_str().unwrap().contains("tok:13a"));
    assert!(v["bleu_tokenized_lowercased_signature"]
        .as_str()
        .unwrap()
        .contains("case:lc"));
    let hyps = fs::read_to_string(&out_file).unwrap();
    assert_eq!(hyps.lines().count(), PAIRS.len());
    assert!(hyps.lines().all(|l| !l.trim().is_empty()), "{hyps}");
    // The trained model translates these captions: the scores are far from 0, so comparing
    // them with a rescoring below can fail.
    let (bleu, tok_lc) = (
        v["bleu"].as_f64().unwrap(),
        v["bleu_tokenized_lowercased"].as_f64().unwrap(),
    );
    assert!(bleu > 15.0, "BLEU {bleu} on {hyps}");
    // The scores printed are the scores of the written hypotheses.
    let rescored = rescore(&ref_file, &out_file, &[]);
    assert!((rescored - bleu).abs() < 0.01, "{rescored} vs {bleu}");
    let rescored_lc = rescore(&ref_file, &out_file, &["--lowercase"]);
    assert!(
        (rescored_lc - tok_lc).abs() < 0.01,
        "{rescored_lc} vs {tok_lc}"
    );
}

#[test]
fn mismatched_line_counts_are_an_error_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let (src_file, ref_file) = (tmp.path().join("src"), tmp.path().join("ref"));
    fs::write(&src_file, "a\nb\nc\n").unwrap();
    fs::write(&ref_file, "a\nb\n").unwrap();
    let err = process::stderr_of_failure(Command::new(BIN).args([
        "translate",
        "--quiet",
        "--model",
        "/nonexistent",
        "--src",
        src_file.to_str().unwrap(),
        "--ref",
        ref_file.to_str().unwrap(),
    ]));
    let want = format!(
        "line counts differ: hypotheses {} have 3 lines but reference {} has 2",
        src_file.display(),
        ref_file.display()
    );
    assert!(err.contains(&want), "{want:?} not in {err}");
}
