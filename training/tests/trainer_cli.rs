//! The `nmt-train` binary: a run killed with SIGKILL mid-training and resumed continues the
//! same loss curve; bad invocations fail with a clear message.

mod common;
#[path = "../../test-support/process.rs"]
mod process;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{resume_args, train_args, train_log};

const BIN: &str = env!("CARGO_BIN_EXE_nmt-train");
const MULTI30K: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/multi30k");

/// Cuts `n` lines of `src` into `dst`.
/// Runs nmt-train with `args` and fails the test, with its stderr, unless it succeeds.
fn run_ok(args: &[&str]) {
    process::output_ok(
        Command::new(BIN).args(args),
        &format!("nmt-train {args:?} failed: "),
    );
}

fn head(src: &Path, dst: &Path, n: usize) {
    let f = std::fs::File::open(src).unwrap();
    let mut out = std::fs::File::create(dst).unwrap();
    for line in BufReader::new(f).lines().take(n) {
        writeln!(out, "{}", line.unwrap()).unwrap();
    }
}

/// A tiny corpus (cut from Multi30k) and config in `dir`. Panics, saying why, when the
/// shared data is absent: the tests that call this are marked as needing it.
fn fixture(dir: &Path) -> PathBuf {
    fixture_with(dir, "")
}

/// [`fixture`] with `extra` appended to the config (TOML: more sections).
fn fixture_with(dir: &Path, extra: &str) -> PathBuf {
    let data = Path::new(MULTI30K);
    assert!(
        data.is_dir(),
        "this test needs ../shared/data (the project's corpora), and {MULTI30K} is absent"
    );
    for (split, n) in [("train", 300), ("valid", 24)] {
        for lang in ["de", "en"] {
            head(
                &data.join(format!("{split}.{lang}")),
                &dir.join(format!("{split}.{lang}")),
                n,
            );
        }
    }
    common::write_tiny_config(
        dir,
        40,
        300,
        &format!(
            r#"batch_tokens = 400
max_epochs = 0
max_steps = 36
lr = 0.003
validate_every = 12
save_every = 4
log_every = 1
seed = 5
# Two threads: each step runs as two workers on halves of the batch (training::split_step),
# which the resume test must find exactly reproducible too.
threads = 2
device = "cpu"
tensorboard = true
{extra}"#
        ),
    )
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn sigkill_mid_run_then_resume_continues_the_same_loss_curve() {
    sigkill_then_resume("");
}

/// The same with G2-LSTM's Gumbel gates: their noise comes from the per-worker generators, so
/// the resumed run draws the same noise.
#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn sigkill_mid_run_with_gumbel_gates_then_resume_continues_the_same_loss_curve() {
    sigkill_then_resume("\n[model.gates]\nkind = \"gumbel\"\n");
}

fn sigkill_then_resume(extra_config: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fixture_with(dir.path(), extra_config);
    let run = dir.path().join("run");

    // The config stops at step 36; the run to be killed is told 1000 so that it cannot end
    // before the kill however fast the machine is (no schedule depends on max_steps), and the
    // resumed run is held to the config's 36.
    let mut child = Command::new(BIN)
        .args(train_args(
            cfg.to_str().unwrap(),
            run.to_str().unwrap(),
            &["--max-steps", "1000"],
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill once a checkpoint exists and a few more steps were logged after it.
    let start = Instant::now();
    loop {
        let n = train_log(&run).len();
        if n >= 14 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "no progress: {n} steps logged"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("nmt-train exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = train_log(&run);
    assert!(before.len() < 36, "the run finished before the kill");
    assert!(run.join("last").exists());

    run_ok(&resume_args(run.to_str().unwrap(), "36"));
    let after = train_log(&run);
    // One record per step, 1..=36, and every step logged before the kill has the same loss.
    assert_eq!(
        after.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=36).collect::<Vec<_>>()
    );
    for (step, loss) in &before {
        let again = &after[*step as usize - 1];
        assert_eq!(
            &again.1, loss,
            "step {step}: loss before the kill {loss}, after resume {}",
            again.1
        );
    }
    // TensorBoard sees the same curve: the killed run's events past its checkpoint are
    // purged by the resumed run's first event, one value per step remains.
    let events = common::tensorboard_scalars(&run);
    let tb_loss = &events["train/loss"];
    assert_eq!(
        tb_loss.iter().map(|e| e.0).collect::<Vec<_>>(),
        (1..=36).collect::<Vec<_>>(),
        "{tb_loss:?}"
    );
    for ((step, value), (_, loss)) in tb_loss.iter().zip(&after) {
        assert_eq!(
            *value as f32,
            loss.parse::<f64>().unwrap() as f32,
            "step {step}"
        );
    }
    assert_eq!(events["valid/bleu"].len(), 3, "{:?}", events["valid/bleu"]);
    // The bundles are complete: `best` holds a model bundle with weights and config.
    let best = run.join("best/model");
    for f in ["config.json", "model.safetensors", "metadata.json"] {
        assert!(best.join(f).is_file(), "{f} missing in {}", best.display());
    }
    // It records which data it was trained on.
    let metadata: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(best.join("metadata.json")).unwrap())
            .unwrap();
    let fingerprint = metadata["data_fingerprint"].as_str().unwrap_or_default();
    assert!(fingerprint.starts_with("sha256:"), "{metadata}");
    // The bundle records the gate mode the model was trained with.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(best.join("config.json")).unwrap()).unwrap();
    let gates = &config["model"]["gates"];
    if extra_config.contains("gumbel") {
        assert_eq!(gates["kind"], "gumbel", "{config}");
        assert_eq!(gates["noise_prob"], 0.2, "{config}");
        assert_eq!(gates["temperature"], 0.9, "{config}");
    } else {
        assert_eq!(gates["kind"], "standard", "{config}");
    }
    let valid = std::fs::read_to_string(run.join("valid.jsonl")).unwrap();
    assert_eq!(valid.lines().count(), 3, "{valid}");
    assert!(valid.contains("\"bleu\""));
    // And it draws its curves.
    let curves = std::fs::read_to_string(run.join("curves.svg")).unwrap();
    assert!(curves.contains("<svg") && curves.contains("validation BLEU"));
    // `--plot` redraws them from the logs alone.
    std::fs::remove_file(run.join("curves.svg")).unwrap();
    run_ok(&["--run-dir", run.to_str().unwrap(), "--plot"]);
    assert_eq!(
        std::fs::read_to_string(run.join("curves.svg")).unwrap(),
        curves
    );
}

#[test]
fn bad_invocations_fail_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = Command::new(BIN)
        .args(["--run-dir", run.to_str().unwrap(), "--resume"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("config.toml"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[data]\nsrc_lang='de'\ntgt_lang='en'\ntrain='t'\nvalid='v'\n[training]\nlearning_rate=1\n",
    )
    .unwrap();
    let err = process::stderr_of_failure(Command::new(BIN).args([
        "--config",
        cfg.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
    ]));
    assert!(
        err.contains("learning_rate") && err.contains("bad.toml"),
        "{err}"
    );

    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--run-dir",
        "--resume",
        "--set",
        "--device",
        "--bf16",
        "--quiet",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn bad_training_lines_stop_with_file_and_line_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fixture(dir.path());
    // Line 7 of the German side becomes empty, line 9 invalid UTF-8.
    let de = dir.path().join("train.de");
    let mut lines: Vec<Vec<u8>> = std::fs::read(&de)
        .unwrap()
        .split(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    lines[6] = Vec::new();
    lines[8] = b"kaputt \xff\xfe text".to_vec();
    std::fs::write(&de, lines.join(&b'\n')).unwrap();

    // Two short runs on the damaged corpus: strict, then with --skip-bad-lines.
    let two_steps = |name: &str, extra: &[&str]| {
        let run = dir.path().join(name);
        Command::new(BIN)
            .args([
                "--config",
                cfg.to_str().unwrap(),
                "--run-dir",
                run.to_str().unwrap(),
            ])
            .args(["-q", "--max-steps", "2"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = two_steps("strict", &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // The first bad line stops the run, named by file and line.
    assert!(
        err.contains("train.de:7: source empty line"),
        "the error names train.de line 7: {err}"
    );

    let out = two_steps("lenient", &["--skip-bad-lines"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // The report counts the skips, by reason.
    for want in [
        "2 skipped",
        "skipped (empty line): 1",
        "skipped (invalid UTF-8): 1",
    ] {
        assert!(err.contains(want), "{want:?} not in the report: {err}");
    }
}

/// `training.average_last`: a run whose last step is saved before its final validation
/// (32 is a `save_every` step, not a `validate_every` one) averages its kept checkpoints into
/// `averaged/`, and the final checkpoint carries the final validation's scores and the
/// config's data description.
#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn a_run_averages_its_last_checkpoints_and_records_its_final_validation() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fixture(dir.path());
    let run = dir.path().join("run");
    run_ok(&train_args(
        cfg.to_str().unwrap(),
        run.to_str().unwrap(),
        &[
            "--max-steps",
            "32",
            "--set",
            "training.keep_every=12",
            "--set",
            "training.average_last=3",
            "--set",
            "data.description=\"300 Multi30k captions\"",
        ],
    ));
    let read_json = |path: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    // The final validation (step 32) is what the final checkpoint's metadata says.
    let valid = std::fs::read_to_string(run.join("valid.jsonl")).unwrap();
    let final_valid: serde_json::Value =
        serde_json::from_str(valid.lines().last().unwrap()).unwrap();
    assert_eq!(final_valid["step"], 32, "{valid}");
    let metadata = read_json(&run.join("last/model/metadata.json"));
    assert_eq!(metadata["step"], 32, "{metadata}");
    // `[data] description` reaches every bundle the run writes.
    assert_eq!(
        metadata["description"], "300 Multi30k captions",
        "{metadata}"
    );
    assert_eq!(
        metadata["validation"]["loss"], final_valid["loss"],
        "{metadata} against {final_valid}"
    );
    // Kept: 12 and 24 (keep_every) and 32 (last); their average, tensor by tensor.
    let checkpoint = |step: u64| run.join(format!("checkpoints/step-{step:08}/model"));
    let weights = |dir: &Path| {
        let mut named = tch::Tensor::read_safetensors(dir.join("model.safetensors")).unwrap();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    };
    let averaged = run.join("averaged");
    assert_eq!(
        read_json(&averaged.join("config.json"))["model"],
        read_json(&checkpoint(32).join("config.json"))["model"]
    );
    let inputs: Vec<_> = [12, 24, 32].map(|s| weights(&checkpoint(s))).into();
    let out = weights(&averaged);
    assert_eq!(out.len(), inputs[0].len());
    for (i, (name, t)) in out.iter().enumerate() {
        let mean = inputs
            .iter()
            .map(|w| w[i].1.to_kind(tch::Kind::Float))
            .fold(None::<tch::Tensor>, |acc, t| {
                Some(acc.map_or(t.shallow_clone(), |a| a + t))
            })
            .unwrap()
            / 3.0;
        let diff = (t.to_kind(tch::Kind::Float) - mean)
            .abs()
            .max()
            .double_value(&[]);
        assert!(
            diff < 1e-6,
            "{name}: off the mean of steps 12, 24, 32 by {diff}"
        );
    }
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn mixed_corpora_are_counted_weighted_warned_about_and_validated_apart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fixture(dir.path());
    // A second training corpus (Multi30k lines 301..400 would need the full file: take
    // the fixture's own lines 1..100 under another name, drawn at weight 0.5), and a
    // second validation set cut from the training text, which must be warned about.
    for (name, n) in [("extra", 100), ("seen", 10)] {
        for lang in ["de", "en"] {
            let file = |stem: &str| dir.path().join(format!("{stem}.{lang}"));
            head(&file("train"), &file(name), n);
        }
    }
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "train = \"train\"\nvalid = \"valid\"",
        "train = [\"train\", { prefix = \"extra\", weight = 0.5 }, \"train\"]\n\
         [data.valid]\nheld-out = \"valid\"\nseen = \"seen\"",
    );
    // `[data.valid]` must come after the other `[data]` keys: move max_len up.
    let text = text.replace("\nmax_len = 40\n", "\n").replacen(
        "tgt_lang = \"en\"\n",
        "tgt_lang = \"en\"\nmax_len = 40\n",
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    let run = dir.path().join("run");
    run_ok(&train_args(
        cfg.to_str().unwrap(),
        run.to_str().unwrap(),
        &["--max-steps", "8", "--set", "training.validate_every=4"],
    ));
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    let lines_with = |needles: &[&str]| {
        log.lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    };
    // Pairs after filtering (max_len 40 drops some), per corpus, with its weight.
    let kept: Vec<(u64, String)> = log
        .lines()
        .filter(|l| l.contains("training corpus part"))
        .map(|l| {
            let field = |name: &str| {
                let at = l.find(&format!(" {name}=")).unwrap() + name.len() + 2;
                l[at..].split(' ').next().unwrap().to_string()
            };
            (field("pairs").parse().unwrap(), field("weight"))
        })
        .collect();
    assert_eq!(kept.len(), 3, "{log}");
    assert_eq!(kept[0], kept[2], "the corpus listed twice");
    assert!(
        kept[0].0 > 200 && kept[0].0 <= 300 && kept[0].1 == "1.0",
        "{kept:?}"
    );
    assert!(
        kept[1].0 > 50 && kept[1].0 <= 100 && kept[1].1 == "0.5",
        "{kept:?}"
    );
    let twice = format!("listed 2 times: its {} pairs", kept[0].0);
    assert_eq!(lines_with(&[&twice, "train.de"]), 1, "{log}");
    // The set cut from the training text shares its kept lines (one warning, naming it).
    let shared = log
        .lines()
        .find_map(|l| l.split("validation set seen shares ").nth(1))
        .unwrap_or_else(|| panic!("no overlap warning in {log}"));
    let n: u64 = shared.split(' ').next().unwrap().parse().unwrap();
    assert!((5..=10).contains(&n), "{shared}");
    assert!(
        shared.starts_with(&format!("{n} source and {n} target lines (of 10)")),
        "{shared}"
    );
    assert_eq!(lines_with(&["seen.de", "shared_source_lines"]), 1, "{log}");
    assert_eq!(lines_with(&["validation set held-out shares"]), 0, "{log}");
    // Each validation scores both sets; the ranking scores are their mean.
    let valid = std::fs::read_to_string(run.join("valid.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = valid
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{valid}");
    for r in &records {
        let sets = r["sets"].as_array().unwrap();
        let names: Vec<&str> = sets.iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["held-out", "seen"]);
        let mean = (sets[0]["bleu"].as_f64().unwrap() + sets[1]["bleu"].as_f64().unwrap()) / 2.0;
        assert!((r["bleu"].as_f64().unwrap() - mean).abs() < 1e-9, "{r}");
        assert_eq!(r["ranked_on"], "mean");
    }
    let metadata: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("last/model/metadata.json")).unwrap(),
    )
    .unwrap();
    let scores = &metadata["validation"];
    for key in ["bleu", "held-out.bleu", "seen.bleu", "seen.loss"] {
        assert!(scores[key].is_number(), "{key} missing from {metadata}");
    }
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn fine_tuning_starts_from_a_bundle_records_it_and_refuses_what_disagrees() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fixture(dir.path());
    let cfg = cfg.to_str().unwrap();
    let parent_run = dir.path().join("parent");
    run_ok(&train_args(
        cfg,
        parent_run.to_str().unwrap(),
        &["--max-steps", "24"],
    ));
    let parent = parent_run.join("last/model");
    let parent_losses = train_log(&parent_run);

    // The same config (its [model] and [vocab] agree with the bundle) and a new dropout.
    let child = dir.path().join("child");
    run_ok(&train_args(
        cfg,
        child.to_str().unwrap(),
        &[
            "--init-from",
            parent.to_str().unwrap(),
            "--max-steps",
            "4",
            "--set",
            "model.dropout=0.1",
        ],
    ));
    let losses = train_log(&child);
    assert_eq!(losses[0].0, 1, "the step starts fresh: {losses:?}");
    let loss = |s: &str| s.parse::<f64>().unwrap();
    // From the parent's weights, the first update's loss is nearer the parent's last than
    // its first (a fresh start, from the same seed, would repeat the parent's first).
    let (first, parent_first, parent_last) = (
        loss(&losses[0].1),
        loss(&parent_losses[0].1),
        loss(&parent_losses.last().unwrap().1),
    );
    assert!(
        first < parent_first && (first - parent_last).abs() < (first - parent_first).abs(),
        "fine-tune's first loss {first}, the parent's first {parent_first} and last {parent_last}"
    );
    let read_json = |path: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let metadata = read_json(&child.join("last/model/metadata.json"));
    let recorded = &metadata["parent"];
    assert_eq!(
        recorded["path"],
        std::fs::canonicalize(&parent)
            .unwrap()
            .display()
            .to_string(),
        "{metadata}"
    );
    assert_eq!(recorded["step"], 24);
    assert!(recorded["fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    let config = read_json(&child.join("last/model/config.json"));
    assert_eq!(config["model"]["dropout"], 0.1);
    assert_eq!(
        config["model"]["hidden_dim"],
        read_json(&parent.join("config.json"))["model"]["hidden_dim"]
    );
    // The run holds the parent's vocabulary and needs nothing else to resume: with the
    // parent gone, it continues, still recording it.
    let vocab_file = |d: &Path| std::fs::read(d.join("tokenizer.json")).unwrap();
    assert_eq!(vocab_file(&child.join("vocab/joint")), vocab_file(&parent));
    std::fs::rename(&parent_run, dir.path().join("moved")).unwrap();
    run_ok(&resume_args(child.to_str().unwrap(), "8"));
    assert_eq!(train_log(&child).last().unwrap().0, 8);
    let metadata = read_json(&child.join("last/model/metadata.json"));
    assert_eq!(metadata["parent"], *recorded);
    let parent = dir.path().join("moved/last/model");

    // What disagrees is refused, each key named, before anything is read or written.
    let refused = dir.path().join("refused");
    let err = process::stderr_of_failure(Command::new(BIN).args(train_args(
        cfg,
        refused.to_str().unwrap(),
        &[
            "--init-from",
            parent.to_str().unwrap(),
            "--set",
            "model.hidden_dim=32",
            "--set",
            "vocab.size=999",
            "--set",
            "data.src_lang=fr",
        ],
    )));
    for key in [
        "model.hidden_dim",
        "vocab.size",
        "data.src_lang",
        "32",
        "999",
    ] {
        assert!(err.contains(key), "{key} not in: {err}");
    }
    assert!(!refused.join("config.toml").exists());
    let err = process::stderr_of_failure(Command::new(BIN).args(train_args(
        cfg,
        refused.to_str().unwrap(),
        &[
            "--init-from",
            dir.path().join("no-such-bundle").to_str().unwrap(),
        ],
    )));
    assert!(err.contains("no-such-bundle"), "{err}");
}
