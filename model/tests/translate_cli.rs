//! `nmt-translate` as a user runs it.

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_nmt-translate");
const LINES: &[&str] = &[
    "ein hund läuft",
    "zwei männer spielen",
    "a dog runs",
    "two men play",
];

fn bundle(dir: &std::path::Path) -> std::path::PathBuf {
    let b = dir.join("bundle");
    model::testing::write_untrained_bundle(&b, LINES, 40, ("de", "en"), 5).unwrap();
    b
}

fn run(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--quiet")
        .args(if args.contains(&"--device") {
            &[][..]
        } else {
            &["--device", "cpu"][..]
        })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn one_line_out_per_line_in_with_empty_lines_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let b = bundle(tmp.path());
    let (code, out, err) = run(
        &["--model", b.to_str().unwrap(), "--beam", "3"],
        "ein hund\n\nzwei männer\r\n".as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.split('\n').collect();
    assert_eq!(lines.len(), 4, "{out:?}"); // 3 lines + final newline
    assert_eq!(lines[1], "");
    // From a file, the same.
    let input = tmp.path().join("in.txt");
    fs::write(&input, "ein hund\n\nzwei männer\n").unwrap();
    let (code, out2, _) = run(
        &[
            "--model",
            b.to_str().unwrap(),
            "--beam",
            "3",
            "--input",
            input.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(code, 0);
    assert_eq!(out, out2);
}

#[test]
fn json_lines_carry_scores_alternatives_and_alignments() {
    let tmp = tempfile::tempdir().unwrap();
    let b = bundle(tmp.path());
    let (code, out, err) = run(
        &[
            "--model",
            b.to_str().unwrap(),
            "--beam",
            "4",
            "--nbest",
            "3",
            "--format",
            "json",
        ],
        "ein hund läuft\n".as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["alternatives"].as_array().unwrap().len(), 2);
    for alt in v["alternatives"].as_array().unwrap() {
        assert!(alt["score"].as_f64().unwrap() < 0.0, "{v}");
    }
    // The score is the model's log-probability of the printed tokens (EOS included unless the
    // length limit cut the hypothesis), recomputed teacher-forced from the bundle.
    let score = v["score"].as_f64().unwrap();
    let pieces = |key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect()
    };
    let (with_eos, without_eos) = model::testing::teacher_forced_log_prob(
        &b,
        &pieces("source_tokens"),
        &pieces("target_tokens"),
    );
    assert!(
        (score - with_eos).abs() < 1e-3 || (score - without_eos).abs() < 1e-3,
        "score {score}, model {with_eos} (with EOS) or {without_eos} (cut)"
    );
    let src = v["source_tokens"].as_array().unwrap().len();
    assert_eq!(
        v["source_tokens"].as_array().unwrap().last().unwrap(),
        "</s>"
    );
    let att = v["attention"].as_array().unwrap();
    assert_eq!(att.len(), v["target_tokens"].as_array().unwrap().len());
    assert!(att.iter().all(|row| row.as_array().unwrap().len() == src));
}

#[test]
fn bad_input_gives_clear_errors_and_nonzero_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let b = bundle(tmp.path());
    let model = b.to_str().unwrap();
    let (code, _, err) = run(&["--model", "/nonexistent/bundle"], b"x\n");
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/bundle"), "{err}");
    let (code, _, err) = run(&["--model", model], b"ok\n\xff\xfe bad\n");
    assert_ne!(code, 0);
    assert!(err.contains("<stdin>:2: invalid UTF-8"), "{err}");
    let (code, _, err) = run(&["--model", model, "--beam", "2", "--nbest", "3"], b"x\n");
    assert_ne!(code, 0);
    assert!(err.contains("--nbest"), "{err}");
    let (code, _, err) = run(&["--model", model, "--device", "cuda:7"], b"x\n");
    assert_ne!(code, 0);
    assert!(err.contains("cuda"), "{err}");
    let (code, _, err) = run(
        &["--model", model, "--input", "/nonexistent/input.txt"],
        b"",
    );
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/input.txt"), "{err}");
}

#[test]
fn over_long_lines_are_translated_in_pieces_or_cut_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let b = bundle(tmp.path());
    let long = "ein hund läuft ".repeat(400) + "\n";
    let args = [
        "--model",
        b.to_str().unwrap(),
        "--beam",
        "2",
        "--max-source-tokens",
        "30",
        "--max-len-a",
        "0",
        "--max-len-b",
        "5",
    ];
    // Sentence by sentence (the default): the line is translated in pieces of at most 30
    // tokens, nothing is cut.
    let (code, pieces, err) = run(&args, long.as_bytes());
    assert_eq!(code, 0, "{err}");
    assert_eq!(pieces.lines().count(), 1);
    assert!(!err.contains("warning"), "{err}");
    // As one unit, it is cut, with a warning.
    let whole: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--no-split-sentences"])
        .collect();
    let (code, cut, err) = run(&whole, long.as_bytes());
    assert_eq!(code, 0, "{err}");
    assert_eq!(cut.lines().count(), 1);
    assert!(err.contains("warning: 1 source line"), "{err}");
    assert!(
        pieces.split_whitespace().count() > cut.split_whitespace().count(),
        "the pieces translate more than the cut line: {pieces:?} vs {cut:?}"
    );
}

#[test]
fn gates_inference_flag_equals_editing_the_bundle_config() {
    // `--gates-inference hard` must translate exactly like a copy of the bundle whose
    // config.json says `"inference": "hard"`, and `soft` like the bundle as it is.
    let tmp = tempfile::tempdir().unwrap();
    let b = bundle(tmp.path());
    let hard_copy = tmp.path().join("hard");
    fs::create_dir(&hard_copy).unwrap();
    for entry in fs::read_dir(&b).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, hard_copy.join(path.file_name().unwrap())).unwrap();
    }
    let config_path = hard_copy.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&config_path).unwrap()).unwrap();
    config["model"]["gates"]["inference"] = "hard".into();
    fs::write(&config_path, config.to_string()).unwrap();

    let input = "ein hund läuft\nzwei männer spielen\na dog runs\n".as_bytes();
    let translate = |dir: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["--model", dir.to_str().unwrap(), "--format", "json"];
        args.extend_from_slice(extra);
        let (code, out, err) = run(&args, input);
        assert_eq!(code, 0, "{err}");
        out
    };
    let soft = translate(&b, &[]);
    let hard_flag = translate(&b, &["--gates-inference", "hard"]);
    let hard_config = translate(&hard_copy, &[]);
    assert_eq!(hard_flag, hard_config);
    assert_eq!(translate(&hard_copy, &["--gates-inference", "soft"]), soft);
    // Hard gates change the scores (else this test would check nothing).
    assert_ne!(hard_flag, soft);
    let (code, _, err) = run(
        &["--model", b.to_str().unwrap(), "--gates-inference", "half"],
        input,
    );
    assert_ne!(code, 0);
    assert!(err.contains("half"), "{err}");
}
