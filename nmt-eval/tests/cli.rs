//! The `nmt-eval` binary: output formats (checked against the `sacrebleu`
//! command itself where sacreBLEU has the same format), flags and error handling.

#[path = "../../test-support/process.rs"]
mod process;
#[path = "../../test-support/sacrebleu.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use evaluation::{corpus_bleu, BleuOptions};
use serde_json::Value;
use support::{data_dir, sacrebleu_cli};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_nmt-eval");

/// A small hypothesis/reference pair: real Multi30k lines when available (cut at
/// run time), otherwise generated text.
struct Fixture {
    dir: TempDir,
    hyp: PathBuf,
    ref1: PathBuf,
    ref2: PathBuf,
    hyps: Vec<String>,
    refs: Vec<String>,
}

fn fixture() -> Fixture {
    let refs: Vec<String> = match std::fs::read_to_string(data_dir().join("multi30k/test.en")) {
        Ok(text) => text.lines().take(40).map(str::to_owned).collect(),
        Err(_) => {
            eprintln!("note: shared data absent; using generated sentences");
            (0..40)
                .map(|i| {
                    format!(
                        "A man number {i} walks his dog, and it's {} degrees.",
                        i * 3
                    )
                })
                .collect()
        }
    };
    let hyps: Vec<String> = refs
        .iter()
        .enumerate()
        .map(|(i, r)| match i % 3 {
            0 => r.replace(" a ", " the "),
            1 => r.split(' ').rev().collect::<Vec<_>>().join(" "),
            _ => r.clone(),
        })
        .collect();
    let ref2: Vec<String> = refs.iter().map(|r| r.replace(" is ", " was ")).collect();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, lines: &[String]| {
        let p = dir.path().join(name);
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        p
    };
    Fixture {
        hyp: write("hyp.txt", &hyps),
        ref1: write("ref1.txt", &refs),
        ref2: write("ref2.txt", &ref2),
        hyps,
        refs,
        dir,
    }
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    process::output_with_stdin(Command::new(BIN).args(args), stdin.unwrap_or_default())
}

fn ok_stdout(args: &[&str], stdin: Option<&[u8]>) -> String {
    let out = run(args, stdin);
    process::assert_success(&out, &format!("nmt-eval {args:?} failed: "));
    String::from_utf8(out.stdout).unwrap()
}

impl Fixture {
    /// stdout of `nmt-eval METRIC -r ref1 -i HYP EXTRA...`, which must succeed.
    fn score(&self, metric: &str, hyp: &Path, extra: &[&str]) -> String {
        let mut args = vec![metric, "-r", s(&self.ref1), "-i", s(hyp)];
        args.extend_from_slice(extra);
        ok_stdout(&args, None)
    }
}

fn err_text(args: &[&str]) -> String {
    let out = run(args, None);
    assert!(!out.status.success(), "nmt-eval {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn sacrebleu(args: &[&str]) -> String {
    let out = process::output_ok(
        Command::new(sacrebleu_cli()).args(args),
        &format!("sacrebleu {args:?}: "),
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn default_text_line_puts_score_first_and_signature_last() {
    let f = fixture();
    let out = ok_stdout(&["bleu", "--ref", s(&f.ref1), "--hyp", s(&f.hyp)], None);
    let want = corpus_bleu(
        &f.hyps,
        std::slice::from_ref(&f.refs),
        &BleuOptions::default(),
    )
    .unwrap();
    let line = out.trim_end();
    assert!(
        line.starts_with(&format!("BLEU = {:.2} ", want.score)),
        "{line}"
    );
    assert!(line.contains(&format!(
        "hyp_len = {} ref_len = {})",
        want.sys_len, want.ref_len
    )));
    assert!(
        line.ends_with("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"),
        "{line}"
    );
    assert!(
        want.score > 5.0 && want.score < 95.0,
        "fixture should give a non-trivial score"
    );
}

#[test]
fn hypotheses_from_stdin_equal_hypotheses_from_file() {
    let f = fixture();
    let from_file = f.score("bleu", &f.hyp, &[]);
    let bytes = std::fs::read(&f.hyp).unwrap();
    let from_stdin = ok_stdout(&["bleu", "-r", s(&f.ref1)], Some(&bytes));
    assert_eq!(from_file, from_stdin);
}

#[test]
fn sacrebleu_format_matches_the_sacrebleu_command() {
    let f = fixture();
    let (h, r1, r2) = (s(&f.hyp), s(&f.ref1), s(&f.ref2));
    let cases: [(Vec<&str>, Vec<&str>); 6] = [
        (vec!["bleu", "-r", r1], vec![r1, "-m", "bleu"]),
        (
            vec!["bleu", "-r", r1, "-r", r2, "-l", "-t", "intl"],
            vec![r1, r2, "-m", "bleu", "-lc", "-tok", "intl"],
        ),
        (
            vec!["bleu", "-r", r1, "-s", "floor", "--smooth-value", "0.2"],
            vec![r1, "-m", "bleu", "-s", "floor", "-sv", "0.2"],
        ),
        (
            vec!["bleu", "-r", r1, "--sentence", "-t", "char"],
            vec![r1, "-m", "bleu", "--sentence-level", "-tok", "char"],
        ),
        (
            vec!["chrf", "-r", r1, "--chrf-word-order", "2"],
            vec![r1, "-m", "chrf", "--chrf-word-order", "2"],
        ),
        (
            vec!["chrf", "-r", r1, "-r", r2, "--sentence"],
            vec![r1, r2, "-m", "chrf", "--sentence-level"],
        ),
    ];
    for (ours, theirs) in cases {
        let mut ours = ours.clone();
        ours.extend(["-i", h, "--format", "sacrebleu"]);
        let mut theirs = theirs.clone();
        theirs.extend(["-i", h, "-f", "text", "-w", "2"]);
        assert_eq!(ok_stdout(&ours, None), sacrebleu(&theirs), "{ours:?}");
    }
}

#[test]
fn score_only_matches_sacrebleu_b() {
    let f = fixture();
    let ours = f.score("bleu", &f.hyp, &["-b", "-w", "3"]);
    let theirs = sacrebleu(&[s(&f.ref1), "-i", s(&f.hyp), "-m", "bleu", "-b", "-w", "3"]);
    assert_eq!(ours, theirs);
    assert!(ours.trim().parse::<f64>().is_ok(), "{ours}");
}

#[test]
fn json_carries_sacrebleu_fields() {
    let f = fixture();
    let ours = f.score("bleu", &f.hyp, &["--json"]);
    let theirs = sacrebleu(&[s(&f.ref1), "-i", s(&f.hyp), "-m", "bleu", "-w", "2"]);
    let ours: Value = serde_json::from_str(&ours).unwrap();
    let theirs: Value = serde_json::from_str(&theirs).unwrap();
    for key in [
        "name",
        "score",
        "signature",
        "verbose_score",
        "nrefs",
        "case",
        "eff",
        "tok",
        "smooth",
        "version",
    ] {
        assert_eq!(ours[key], theirs[key], "{key}");
    }
    assert!(ours["score_exact"].as_f64().is_some());
    assert_eq!(ours["counts"].as_array().unwrap().len(), 4);

    let chrf = f.score("chrf", &f.hyp, &["--format", "json"]);
    let chrf: Value = serde_json::from_str(&chrf).unwrap();
    assert_eq!(chrf["name"], "chrF2");
    assert_eq!(chrf["nw"], "0");
}

#[test]
fn sentence_json_is_one_object_per_line() {
    let f = fixture();
    let out = f.score("bleu", &f.hyp, &["--sentence", "--json"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), f.hyps.len());
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["eff"], "yes");
    }
}

#[test]
fn multi_bleu_format() {
    let f = fixture();
    // Hypotheses shorter than the references (every third loses its last word), so that the
    // brevity penalty and the length ratio are not 1 and hyp_len differs from ref_len.
    let hyps: Vec<String> = f
        .hyps
        .iter()
        .enumerate()
        .map(|(i, h)| match (i % 3, h.rsplit_once(' ')) {
            (0, Some((rest, _))) => rest.to_string(),
            _ => h.clone(),
        })
        .collect();
    let hyp = f.dir.path().join("short.txt");
    std::fs::write(&hyp, hyps.join("\n") + "\n").unwrap();
    let out = f.score(
        "bleu",
        &hyp,
        &["--format", "multi-bleu", "-t", "none", "-l"],
    );
    // The expected line comes from elsewhere: sacreBLEU's statistics on the same text
    // (tokenize none, lowercased), printed with Moses' multi-bleu.perl format string.
    let script = r#"
import json, sys, sacrebleu
hyps, refs = json.load(sys.stdin)
b = sacrebleu.corpus_bleu(hyps, [refs], tokenize="none", lowercase=True)
print("BLEU = %.2f, %.1f/%.1f/%.1f/%.1f (BP=%.3f, ratio=%.3f, hyp_len=%d, ref_len=%d)"
      % (b.score, *b.precisions, b.bp, b.sys_len / b.ref_len, b.sys_len, b.ref_len))
"#;
    let input = serde_json::to_vec(&(&hyps, &f.refs)).unwrap();
    let want = process::output_with_stdin(
        Command::new(support::sacrebleu_python()).args(["-c", script]),
        &input,
    );
    process::assert_success(&want, "");
    assert_eq!(
        out.trim_end(),
        String::from_utf8(want.stdout).unwrap().trim_end()
    );
}

#[test]
fn chrf_plus_plus_text_line() {
    let f = fixture();
    let out = f.score("chrf", &f.hyp, &["--chrf-word-order", "2"]);
    assert!(out.starts_with("chrF2++ = "), "{out}");
    assert!(out
        .trim_end()
        .ends_with("nrefs:1|case:mixed|eff:yes|nc:6|nw:2|space:no|version:2.6.0"));
}

#[test]
fn missing_file_is_named() {
    let f = fixture();
    let missing = f.dir.path().join("nope.txt");
    let err = err_text(&["bleu", "-r", s(&missing), "-i", s(&f.hyp)]);
    assert!(err.contains("nope.txt"), "{err}");
    let err = err_text(&["chrf", "-r", s(&f.ref1), "-i", s(&missing)]);
    assert!(err.contains("nope.txt"), "{err}");
}

#[test]
fn invalid_utf8_names_file_and_line() {
    let f = fixture();
    let bad = f.dir.path().join("bad.txt");
    let mut bytes = b"fine\nalso fine\n".to_vec();
    bytes.extend_from_slice(b"caf\xe9\n");
    std::fs::write(&bad, &bytes).unwrap();
    let err = err_text(&["bleu", "-r", s(&f.ref1), "-i", s(&bad)]);
    assert!(err.contains("bad.txt:3: not valid UTF-8"), "{err}");
}

#[test]
fn mismatched_line_counts_name_both_files_and_counts() {
    let f = fixture();
    let short = f.dir.path().join("short.txt");
    std::fs::write(&short, "one line\n").unwrap();
    let err = err_text(&["bleu", "-r", s(&f.ref1), "-r", s(&short), "-i", s(&f.hyp)]);
    assert!(
        err.contains("hyp.txt") && err.contains("have 40 lines"),
        "{err}"
    );
    assert!(err.contains("short.txt has 1"), "{err}");
    let err = err_text(&["chrf", "-r", s(&short)]);
    assert!(
        err.contains("<stdin> have 0 lines") && err.contains("short.txt has 1"),
        "{err}"
    );
}

#[test]
fn bad_option_combinations_fail_clearly() {
    let f = fixture();
    let (r, h) = (s(&f.ref1), s(&f.hyp));
    let err = err_text(&["chrf", "-r", r, "-i", h, "--format", "multi-bleu"]);
    assert!(err.contains("multi-bleu is a BLEU format"), "{err}");
    let err = err_text(&["bleu", "-r", r, "-i", h, "--smooth-value", "0.5"]);
    assert!(err.contains("takes no value"), "{err}");
    let err = err_text(&[
        "bleu",
        "-r",
        r,
        "-i",
        h,
        "-s",
        "floor",
        "--smooth-value",
        "-1",
    ]);
    assert!(err.contains("smooth-value"), "{err}");
    let err = err_text(&["bleu", "-r", r, "-i", h, "-t", "zh"]);
    assert!(err.contains("zh"), "{err}");
    let err = err_text(&["bleu", "-i", h]);
    assert!(err.contains("--ref"), "{err}");
}

/// Fails unless `SUBCOMMAND --help` names each of `flags`.
fn assert_help_names(subcommand: &str, flags: &[&str]) {
    let help = ok_stdout(&[subcommand, "--help"], None);
    for flag in flags {
        assert!(help.contains(flag), "{subcommand} --help lacks {flag}");
    }
}

#[test]
fn help_documents_every_flag() {
    for sub in ["bleu", "chrf"] {
        let common = [
            "--ref",
            "--hyp",
            "--lowercase",
            "--sentence",
            "--json",
            "--format",
            "--score-only",
            "--width",
        ];
        assert_help_names(sub, &common);
    }
    let bleu = [
        "--tokenize",
        "--smooth",
        "--smooth-value",
        "--effective-order",
    ];
    assert_help_names("bleu", &bleu);
    assert_help_names("chrf", &["--chrf-word-order"]);
}
