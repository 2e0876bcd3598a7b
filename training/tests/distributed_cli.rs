//! `nmt-train` as a data-parallel job of two processes over Gloo on loopback, launched as
//! torchrun does (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT):
//! - its weights after N updates equal those of one process with `update_freq = 2`;
//! - `kill -9` of one rank makes the other exit non-zero, naming the rank, within its timeout;
//! - a killed job resumes on the same loss curve, and with another world size only when each
//!   update keeps its batches.
//!
//! The corpus is generated (a word-reordering task over a made-up vocabulary), so these tests
//! need nothing outside the repository.

mod common;
#[path = "../../test-support/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{resume_args, train_args, train_log};

use tch::Tensor;

const BIN: &str = env!("CARGO_BIN_EXE_nmt-train");

/// A deterministic pseudo-random corpus: sources of 3–9 words from 40 made-up words, each
/// target the source's words mapped one to one and reversed.
fn write_corpus(dir: &Path, name: &str, pairs: usize, seed: u64) {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = |n: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    let mut src = std::fs::File::create(dir.join(format!("{name}.de"))).unwrap();
    let mut tgt = std::fs::File::create(dir.join(format!("{name}.en"))).unwrap();
    for _ in 0..pairs {
        let len = 3 + next(7);
        let words: Vec<u64> = (0..len).map(|_| next(40)).collect();
        let s: Vec<String> = words.iter().map(|w| format!("wort{w}")).collect();
        let t: Vec<String> = words
            .iter()
            .rev()
            .map(|w| format!("word{}", (w * 7) % 40))
            .collect();
        writeln!(src, "{}", s.join(" ")).unwrap();
        writeln!(tgt, "{}", t.join(" ")).unwrap();
    }
}

/// Corpus and config in `dir`.
fn fixture(dir: &Path) -> PathBuf {
    write_corpus(dir, "train", 400, 1);
    write_corpus(dir, "valid", 16, 2);
    common::write_tiny_config(
        dir,
        20,
        120,
        r#"batch_tokens = 300
max_epochs = 0
max_steps = 8
lr = 0.003
validate_every = 4
log_every = 1
seed = 3
threads = 1
device = "cpu"
dist_timeout_secs = 20
"#,
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// nmt-train with `args` as rank `rank` of `world` (the variables torchrun sets).
fn rank_command(rank: usize, world: usize, port: u16, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("RANK", rank.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn spawn_ranks(world: usize, args: &[&str]) -> Vec<Child> {
    let port = free_port();
    (0..world)
        .map(|r| rank_command(r, world, port, args).spawn().unwrap())
        .collect()
}

fn wait_ok(children: Vec<Child>) {
    for (rank, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        process::assert_success(&out, &format!("rank {rank} failed: "));
    }
}

fn run_alone(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// One process with `update_freq = 2` on `cfg`, into `run`: the updates a 2-rank job makes.
fn train_alone_update_freq_2(cfg: &str, run: &Path) {
    let update_freq_2 = ["--set", "training.update_freq=2"];
    let out = run_alone(&train_args(cfg, run.to_str().unwrap(), &update_freq_2));
    process::assert_success(&out, "");
}

/// Fails unless every weight of the `last` checkpoints of runs `a` and `b` is within 1e-5.
fn assert_same_weights(a: &Path, b: &Path) {
    let (a, b) = (weights(a), weights(b));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, wa) in &a {
        let diff = (wa - &b[name]).abs().max().double_value(&[]);
        assert!(diff <= 1e-5, "{name}: the job's weights differ by {diff}");
    }
}

fn weights(run: &Path) -> BTreeMap<String, Tensor> {
    let file = run.join("last/model/model.safetensors");
    Tensor::read_safetensors(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .into_iter()
        .collect()
}

#[test]
fn two_ranks_make_the_updates_of_one_process_with_update_freq_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fixture(dir.path());
    let cfg = cfg.to_str().unwrap();
    let alone = dir.path().join("alone");
    let job = dir.path().join("job");

    train_alone_update_freq_2(cfg, &alone);
    wait_ok(spawn_ranks(2, &train_args(cfg, job.to_str().unwrap(), &[])));

    assert_same_weights(&alone, &job);
    let a = weights(&alone);
    // The tolerance tells updates apart: one batch per update (other updates) ends elsewhere.
    let other = dir.path().join("other");
    let out = run_alone(&train_args(cfg, other.to_str().unwrap(), &[]));
    process::assert_success(&out, "");
    let c = weights(&other);
    let apart = a
        .iter()
        .map(|(name, wa)| (wa - &c[name]).abs().max().double_value(&[]))
        .fold(0.0, f64::max);
    assert!(
        apart > 1e-3,
        "other updates ended within {apart} of the job's weights"
    );
    // Both logged the same losses, step by step, and only rank 0 wrote logs.
    let (la, lb) = (train_log(&alone), train_log(&job));
    assert_eq!(la.len(), 8);
    for ((sa, xa), (sb, xb)) in la.iter().zip(&lb) {
        assert_eq!(sa, sb);
        let (xa, xb): (f64, f64) = (xa.parse().unwrap(), xb.parse().unwrap());
        assert!(
            (xa - xb).abs() <= 1e-6,
            "step {sa}: loss {xa} alone, {xb} in the job"
        );
    }
    assert!(job.join("train.rank-1.log").is_file());
    let valid = std::fs::read_to_string(job.join("valid.jsonl")).unwrap();
    assert_eq!(valid.lines().count(), 2, "{valid}");
}

/// A 2-rank job on `cfg` into `job`, told to run for ever (and `set`, one more override),
/// returned once `steps` updates are logged; fails if a rank exits first.
fn job_running_until(cfg: &Path, job: &Path, set: &str, steps: usize) -> Vec<Child> {
    let (cfg, job_str) = (cfg.to_str().unwrap(), job.to_str().unwrap());
    let for_ever = ["--max-steps", "100000", "--set", set];
    let mut ranks = spawn_ranks(2, &train_args(cfg, job_str, &for_ever));
    let start = Instant::now();
    while train_log(job).len() < steps {
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "the job made no progress"
        );
        for (rank, child) in ranks.iter_mut().enumerate() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("rank {rank} exited early: {status}");
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ranks
}

#[test]
fn a_killed_rank_stops_the_other_with_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fixture(dir.path());
    let job = dir.path().join("job");
    let mut ranks = job_running_until(&cfg, &job, "training.dist_timeout_secs=10", 3);
    let mut killed = ranks.pop().unwrap();
    killed.kill().unwrap(); // SIGKILL
    killed.wait().unwrap();
    let killed_at = Instant::now();
    let survivor = ranks.pop().unwrap();
    let out = survivor.wait_with_output().unwrap();
    let took = killed_at.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rank 0 went on without rank 1");
    // Within the job's 10 s timeout (and the test's margin for a loaded machine).
    assert!(
        took < Duration::from_secs(40),
        "rank 0 needed {took:?} to stop"
    );
    assert!(stderr.contains("rank 0:"), "{stderr}");
    assert!(
        stderr.contains("rank 1 (at step"),
        "the error does not name rank 1: {stderr}"
    );
}

#[test]
fn a_killed_job_resumes_on_the_same_loss_curve_and_world_sizes_must_keep_the_update() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fixture(dir.path());
    let job = dir.path().join("job");
    let job_str = job.to_str().unwrap();
    let mut ranks = job_running_until(&cfg, &job, "training.save_every=3", 7);
    for child in &mut ranks {
        child.kill().unwrap();
    }
    for child in &mut ranks {
        child.wait().unwrap();
    }
    let before = train_log(&job);
    assert!(job.join("last").exists());

    // One process with one batch per update would change the run's updates: refused.
    let out = run_alone(&resume_args(job_str, "12"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("from 2 batches") && stderr.contains("training.update_freq"),
        "{stderr}"
    );

    // The same job resumed continues the same curve.
    wait_ok(spawn_ranks(2, &resume_args(job_str, "10")));
    let after = train_log(&job);
    assert_eq!(
        after.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    for (step, loss) in &before {
        if *step <= 10 {
            assert_eq!(
                &after[*step as usize - 1].1,
                loss,
                "step {step} after the resume"
            );
        }
    }
    // From there, one process with update_freq = 2 makes the job's next updates.
    let copy = dir.path().join("copy");
    let status = Command::new("cp")
        .args(["-r", job_str, copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_ok(spawn_ranks(2, &resume_args(job_str, "12")));
    let copy_str = copy.to_str().unwrap();
    let out = run_alone(
        &[
            &resume_args(copy_str, "12")[..],
            &["--set", "training.update_freq=2"],
        ]
        .concat(),
    );
    process::assert_success(&out, "");
    let (in_job, alone) = (train_log(&job), train_log(&copy));
    assert_eq!(in_job.len(), 12);
    assert_eq!(alone.len(), 12);
    for step in [11, 12] {
        let (a, b): (f64, f64) = (
            alone[step - 1].1.parse().unwrap(),
            in_job[step - 1].1.parse().unwrap(),
        );
        assert!(
            (a - b).abs() <= 1e-6,
            "step {step}: {a} alone, {b} in the job"
        );
    }
}

/// torchrun, as the README shows it (`--no-python`): its agent hosts the rendezvous store and
/// sets the variables; the job makes the updates of one process with `update_freq = 2`.
#[test]
fn torchrun_launches_a_job() {
    let torchrun = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/torchrun");
    if !torchrun.is_file() {
        eprintln!(
            "NOT RUN: {} is absent (scripts/setup-libtorch.sh installs torch, which brings it)",
            torchrun.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = fixture(dir.path());
    let cfg = cfg.to_str().unwrap();
    let job = dir.path().join("job");
    let port = free_port().to_string();
    let out = Command::new(&torchrun)
        .args([
            "--no-python",
            "--nproc-per-node",
            "2",
            "--master-port",
            &port,
            BIN,
        ])
        .args(train_args(cfg, job.to_str().unwrap(), &[]))
        .output()
        .unwrap();
    process::assert_success(&out, "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("launcher=torchrun"), "{stderr}");
    let alone = dir.path().join("alone");
    train_alone_update_freq_2(cfg, &alone);
    assert_same_weights(&alone, &job);
}
