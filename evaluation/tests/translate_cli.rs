//! `nmt-eval translate` end to end on a cut of the real Multi30k test set.

use std::fs;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_nmt-eval");
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/multi30k");

fn head(path: &str, n: usize) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .take(n)
        .map(str::to_string)
        .collect()
}

#[test]
fn translates_and_scores_a_real_test_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let src = head(&format!("{DATA}/test.de"), 12);
    let refs = head(&format!("{DATA}/test.en"), 12);
    let lines: Vec<&str> = src.iter().chain(&refs).map(String::as_str).collect();
    let bundle = tmp.path().join("bundle");
    model::bundle::write_untrained_bundle(&bundle, &lines, 120, ("de", "en"), 1).unwrap();
    let (src_file, ref_file, out_file) = (
        tmp.path().join("src"),
        tmp.path().join("ref"),
        tmp.path().join("hyp"),
    );
    fs::write(&src_file, src.join("\n") + "\n").unwrap();
    fs::write(&ref_file, refs.join("\n") + "\n").unwrap();
    let out = Command::new(BIN)
        .args([
            "translate",
            "--quiet",
            "--device",
            "cpu",
            "--beam",
            "2",
            "--max-len-a",
            "0",
            "--max-len-b",
            "8",
            "--json",
        ])
        .args([
            "--model",
            bundle.to_str().unwrap(),
            "--src",
            src_file.to_str().unwrap(),
            "--ref",
            ref_file.to_str().unwrap(),
        ])
        .args(["--output", out_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sentences"], 12);
    assert!(v["bleu_signature"].as_str().unwrap().contains("tok:13a"));
    assert!(v["bleu_tokenized_lowercased_signature"]
        .as_str()
        .unwrap()
        .contains("case:lc"));
    // The score printed is the score of the written hypotheses.
    let hyps = fs::read_to_string(&out_file).unwrap();
    assert_eq!(hyps.lines().count(), 12);
    let rescored = Command::new(BIN)
        .args([
            "bleu",
            "-b",
            "--ref",
            ref_file.to_str().unwrap(),
            "--hyp",
            out_file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let rescored: f64 = String::from_utf8_lossy(&rescored.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(
        (rescored - v["bleu"].as_f64().unwrap()).abs() < 0.01,
        "{rescored} vs {}",
        v["bleu"]
    );
}

#[test]
fn mismatched_line_counts_are_an_error_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let (src_file, ref_file) = (tmp.path().join("src"), tmp.path().join("ref"));
    fs::write(&src_file, "a\nb\nc\n").unwrap();
    fs::write(&ref_file, "a\nb\n").unwrap();
    let out = Command::new(BIN)
        .args([
            "translate",
            "--quiet",
            "--model",
            "/nonexistent",
            "--src",
            src_file.to_str().unwrap(),
            "--ref",
            ref_file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("3") && err.contains("2") && err.contains("ref"),
        "{err}"
    );
}
