//! Helpers shared by the test files: real data from ../shared/data, cut at
//! test time, and small vocabularies trained once per test binary.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use vocab::{train_lines, HfVocab, ModelType, TrainConfig};

pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data");

/// Path of a data file, or `None` (with a printed note) when the shared data
/// folder is absent.
pub fn data_file(rel: &str) -> Option<PathBuf> {
    let root = PathBuf::from(DATA);
    if !root.is_dir() {
        eprintln!("note: {DATA} is absent; skipping a test that needs real data");
        return None;
    }
    let p = root.join(rel);
    assert!(
        p.is_file(),
        "{} is missing from the shared data",
        p.display()
    );
    Some(p)
}

/// The first `n` lines of a data file.
pub fn head(rel: &str, n: usize) -> Option<Vec<String>> {
    let p = data_file(rel)?;
    let text = std::fs::read_to_string(&p).unwrap();
    Some(text.lines().take(n).map(String::from).collect())
}

/// Training text: the first 3000 lines of Multi30k train, both sides.
pub fn train_text() -> Option<Vec<String>> {
    let mut lines = head("multi30k/train.de", 3000)?;
    lines.extend(head("multi30k/train.en", 3000)?);
    Some(lines)
}

pub fn config(model: ModelType, vocab_size: usize) -> TrainConfig {
    TrainConfig {
        model,
        vocab_size,
        ..TrainConfig::default()
    }
}

/// A joint 2000-id vocabulary on [`train_text`], trained once per test binary.
pub fn trained(model: ModelType) -> Option<&'static HfVocab> {
    static UNIGRAM: OnceLock<Option<HfVocab>> = OnceLock::new();
    static BPE: OnceLock<Option<HfVocab>> = OnceLock::new();
    let cell = match model {
        ModelType::Unigram => &UNIGRAM,
        ModelType::Bpe => &BPE,
    };
    cell.get_or_init(|| {
        let lines = train_text()?;
        Some(train_lines(&config(model, 2000), &lines).unwrap())
    })
    .as_ref()
}

/// A SentencePiece command-line tool from the Debian package. Cargo puts
/// the vendored libsentencepiece (built by sentencepiece-sys) on the test's
/// LD_LIBRARY_PATH; the Debian tools must not pick it up (newer, with other
/// flag handling: spm_train would silently ignore its flags).
pub fn spm_command(tool: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(tool);
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd
}

/// Runs `spm_train` on `lines` into `dir` with extra flags; returns the
/// model path, or `None` (with a printed note) when spm_train is absent.
pub fn spm_train(dir: &std::path::Path, lines: &[String], extra: &[&str]) -> Option<PathBuf> {
    if spm_command("spm_train").arg("--help").output().is_err() {
        eprintln!("note: spm_train is not installed (Debian package sentencepiece); skipping");
        return None;
    }
    let input = dir.join("spm_input.txt");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let prefix = dir.join("spm");
    let out = spm_command("spm_train")
        .arg(format!("--input={}", input.display()))
        .arg(format!("--model_prefix={}", prefix.display()))
        .arg("--minloglevel=2")
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "spm_train failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(prefix.with_extension("model"))
}

/// Test sets whose round trip is checked.
pub const TEST_SETS: [&str; 6] = [
    "multi30k/test.de",
    "multi30k/test.en",
    "iwslt14/test.de",
    "iwslt14/test.en",
    "wmt14/test.de",
    "wmt14/test.en",
];
