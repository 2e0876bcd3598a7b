//! Checkpoint layout, atomic replacement, retention, non-finite losses and early stopping.

mod common;

use std::path::Path;

use common::*;
use tch::{Device, Tensor};
use training::checkpoint::{
    read_state, CheckpointContents, RunDir, TrainerState, MODEL_DIR, OPTIMIZER_FILE, STATE_FILE,
};
use training::config::TrainingConfig;
use training::schedule::ScheduleState;
use training::trainable::{BundleInfo, DynError, TrainableModel};
use training::trainer::{RunOptions, StopReason, TrainError, TrainOutcome, Trainer};

struct Files {
    fail_model: bool,
}

impl CheckpointContents for Files {
    fn write_model(&self, dir: &Path) -> Result<(), String> {
        std::fs::write(dir.join("weights"), b"w").map_err(|e| e.to_string())?;
        if self.fail_model {
            return Err("disk full (simulated)".into());
        }
        Ok(())
    }
    fn write_optimizer(&self, path: &Path) -> Result<(), String> {
        std::fs::write(path, b"o").map_err(|e| e.to_string())
    }
}

fn state(step: u64) -> TrainerState {
    let mut s = TrainerState::new(
        1,
        ScheduleState {
            plateau_lr: 1.0,
            best: None,
            bad_validations: 0,
            reductions: 0,
        },
    );
    s.step = step;
    s
}

fn step_dirs(run: &RunDir) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(run.checkpoints())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn last_best_and_kept_checkpoints_are_retained_others_swept() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::create(dir.path()).unwrap();
    let ok = Files { fail_model: false };
    run.save(&state(1), &ok, true, 4).unwrap();
    run.save(&state(2), &ok, false, 4).unwrap();
    assert_eq!(step_dirs(&run), ["step-00000001", "step-00000002"]);
    run.save(&state(3), &ok, false, 4).unwrap();
    // step 2 is neither last, best nor a multiple of 4.
    assert_eq!(step_dirs(&run), ["step-00000001", "step-00000003"]);
    run.save(&state(4), &ok, false, 4).unwrap();
    run.save(&state(5), &ok, true, 4).unwrap();
    assert_eq!(step_dirs(&run), ["step-00000004", "step-00000005"]);
    assert_eq!(run.last().unwrap(), run.step_dir(5));
    assert_eq!(run.best().unwrap(), run.step_dir(5));
    let last = run.last().unwrap();
    for f in [STATE_FILE, OPTIMIZER_FILE] {
        assert!(last.join(f).is_file(), "{f}");
    }
    assert!(last.join(MODEL_DIR).join("weights").is_file());
    assert_eq!(read_state(&last).unwrap().step, 5);
}

/// Contents whose model file says which save wrote it.
struct Tagged(&'static [u8]);

impl CheckpointContents for Tagged {
    fn write_model(&self, dir: &Path) -> Result<(), String> {
        std::fs::write(dir.join("weights"), self.0).map_err(|e| e.to_string())
    }
    fn write_optimizer(&self, path: &Path) -> Result<(), String> {
        std::fs::write(path, self.0).map_err(|e| e.to_string())
    }
}

/// A step saved before its validation (a `keep_every` step that is the last one), then again
/// after it: the second save's files (its scores, the best BLEU a resume continues from)
/// replace the first's.
#[test]
fn saving_a_step_again_replaces_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::create(dir.path()).unwrap();
    run.save(&state(4), &Tagged(b"before"), false, 4).unwrap();
    let mut validated = state(4);
    validated.best_bleu = Some(40.5);
    run.save(&validated, &Tagged(b"after"), true, 4).unwrap();
    assert_eq!(step_dirs(&run), ["step-00000004"]);
    assert_eq!(run.best().unwrap(), run.step_dir(4));
    let last = run.last().unwrap();
    assert_eq!(read_state(&last).unwrap().best_bleu, Some(40.5));
    assert_eq!(
        std::fs::read(last.join(MODEL_DIR).join("weights")).unwrap(),
        b"after"
    );
    assert_eq!(std::fs::read(last.join(OPTIMIZER_FILE)).unwrap(), b"after");
}

#[test]
fn a_failed_write_leaves_the_previous_checkpoint_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::create(dir.path()).unwrap();
    run.save(&state(7), &Files { fail_model: false }, false, 0)
        .unwrap();
    let err = run
        .save(&state(8), &Files { fail_model: true }, false, 0)
        .unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    assert_eq!(run.last().unwrap(), run.step_dir(7));
    assert_eq!(read_state(&run.last().unwrap()).unwrap().step, 7);
    // The half-written temporary is swept by the next successful save.
    assert!(step_dirs(&run).iter().any(|d| d.starts_with(".tmp-")));
    run.save(&state(9), &Files { fail_model: false }, false, 0)
        .unwrap();
    assert_eq!(step_dirs(&run), ["step-00000009"]);
}

#[test]
fn a_corrupt_or_foreign_state_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(STATE_FILE), "{ not json").unwrap();
    let e = read_state(dir.path()).unwrap_err().to_string();
    assert!(e.contains(STATE_FILE), "{e}");
    std::fs::write(dir.path().join(STATE_FILE), r#"{"version": 99}"#).unwrap();
    let e = read_state(dir.path()).unwrap_err().to_string();
    assert!(e.contains("version 99"), "{e}");
}

/// Wraps the tiny model and poisons the logits with NaN for the listed updates.
struct Poisoned {
    inner: TinyModel,
    calls: std::cell::Cell<u64>,
    poison: Vec<u64>,
}

impl TrainableModel for Poisoned {
    fn var_store(&self) -> &tch::nn::VarStore {
        self.inner.var_store()
    }
    fn forward(&self, s: &Tensor, l: &Tensor, t: &Tensor, train: bool) -> Result<Tensor, DynError> {
        let out = self.inner.forward(s, l, t, train)?;
        if !train {
            return Ok(out);
        }
        let n = self.calls.get();
        self.calls.set(n + 1);
        Ok(if self.poison.contains(&n) {
            out * f64::NAN
        } else {
            out
        })
    }
    fn greedy(&self, s: &Tensor, l: &Tensor, a: f64, b: i64) -> Result<Vec<Vec<i64>>, DynError> {
        self.inner.greedy(s, l, a, b)
    }
    fn save_bundle(&self, d: &Path, i: &BundleInfo) -> Result<(), DynError> {
        self.inner.save_bundle(d, i)
    }
    fn load_weights(&mut self, d: &Path) -> Result<(), DynError> {
        self.inner.load_weights(d)
    }
}

fn small_cfg() -> TrainingConfig {
    TrainingConfig {
        max_steps: 12,
        max_epochs: 0,
        validate_every: 0,
        log_every: 1,
        max_nonfinite: 3,
        seed: 2,
        ..TrainingConfig::default()
    }
}

/// A trainer of a [`Poisoned`] model (non-finite losses at the calls in `poison`) in a new
/// folder, after its run on the training batches, and what the run returned.
fn poisoned_run(
    poison: Vec<u64>,
) -> (
    tempfile::TempDir,
    Trainer<Poisoned>,
    Result<TrainOutcome, TrainError>,
) {
    let dir = tempfile::tempdir().unwrap();
    let model = Poisoned {
        inner: TinyModel::new(1, 0.0),
        calls: 0.into(),
        poison,
    };
    let mut t = Trainer::new(model, small_cfg(), dir.path(), Device::Cpu).unwrap();
    let out = t.train(
        &mut train_source(60, 40, 2),
        None,
        &RunOptions { quiet: true },
    );
    (dir, t, out)
}

#[test]
fn non_finite_batches_are_skipped_and_a_streak_stops_the_run() {
    let _rng = torch_rng_lock();
    let (_dir, t, out) = poisoned_run(vec![2, 3]);
    let out = out.unwrap();
    assert_eq!(out.reason, StopReason::MaxSteps);
    assert_eq!(t.state().step, 12);
    assert_eq!(t.state().skipped_batches, 2);
    assert_eq!(out.losses.iter().filter(|(_, l)| l.is_nan()).count(), 2);
    assert!(t.model().var_store().variables().values().all(|v| v
        .isfinite()
        .all()
        .int64_value(&[])
        == 1));

    let (_dir, t, out) = poisoned_run(vec![4, 5, 6, 7]);
    let err = out.unwrap_err();
    assert!(
        matches!(err, TrainError::NonFinite { count: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("max_nonfinite"));
    assert_eq!(t.state().step, 4);
}

#[test]
fn early_stopping_after_patience_validations_without_a_better_bleu() {
    let _rng = torch_rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainingConfig {
        max_steps: 100,
        max_epochs: 0,
        validate_every: 2,
        patience: 2,
        seed: 4,
        ..TrainingConfig::default()
    };
    let mut t = Trainer::new(TinyModel::new(3, 0.0), cfg, dir.path(), Device::Cpu).unwrap();
    // A scorer that only ever gets worse: the first validation stays the best.
    let calls = std::cell::Cell::new(0.0);
    let scorer = |_: &[String], _: &[String]| -> Result<f64, DynError> {
        calls.set(calls.get() + 1.0);
        Ok(50.0 - calls.get())
    };
    let valid = bleu_validation(300, 10, &scorer);
    let out = t
        .train(
            &mut train_source(60, 40, 4),
            Some(&valid),
            &RunOptions { quiet: true },
        )
        .unwrap();
    assert_eq!(out.reason, StopReason::EarlyStopping);
    assert_eq!(t.state().step, 6);
    assert_eq!(t.state().best_step, Some(2));
    assert_eq!(t.state().best_bleu, Some(49.0));
    assert_eq!(t.run_dir().best().unwrap(), t.run_dir().step_dir(2));
    assert_eq!(t.run_dir().last().unwrap(), t.run_dir().step_dir(6));
}

#[test]
fn resuming_with_another_seed_is_refused() {
    let _rng = torch_rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_cfg();
    cfg.max_steps = 2;
    let mut t = Trainer::new(TinyModel::new(1, 0.0), cfg.clone(), dir.path(), Device::Cpu).unwrap();
    t.train(
        &mut train_source(30, 40, 2),
        None,
        &RunOptions { quiet: true },
    )
    .unwrap();
    cfg.seed = 3;
    let mut t = Trainer::new(TinyModel::new(1, 0.0), cfg, dir.path(), Device::Cpu).unwrap();
    let e = t.resume().unwrap_err().to_string();
    assert!(e.contains("seed"), "{e}");
}

/// Trains 6 updates validating every 2 on two sets whose BLEU the scorers script: `rising`
/// gives 10, 20, 30 and `falling` 50, 30, 10 (means 30, 25, 20). Returns the trainer and
/// the validation log.
fn two_set_run(
    best_on: training::config::BestOn,
    dir: &Path,
) -> (Trainer<TinyModel>, Vec<training::log::ValidRecord>) {
    two_set_run_with(best_on, dir, |_| {})
}

/// [`two_set_run`] with `adjust` applied to the training config first.
fn two_set_run_with(
    best_on: training::config::BestOn,
    dir: &Path,
    adjust: impl FnOnce(&mut TrainingConfig),
) -> (Trainer<TinyModel>, Vec<training::log::ValidRecord>) {
    use training::trainer::{Validation, ValidationSet};
    let mut cfg = TrainingConfig {
        max_steps: 6,
        max_epochs: 0,
        validate_every: 2,
        seed: 4,
        best_on: best_on.clone(),
        ..TrainingConfig::default()
    };
    adjust(&mut cfg);
    let mut t = Trainer::new(TinyModel::new(3, 0.0), cfg, dir, Device::Cpu).unwrap();
    let rising = std::cell::Cell::new(0.0);
    let falling = std::cell::Cell::new(70.0);
    let up = |_: &[String], _: &[String]| -> Result<f64, DynError> {
        rising.set(rising.get() + 10.0);
        Ok(rising.get())
    };
    let down = |_: &[String], _: &[String]| -> Result<f64, DynError> {
        falling.set(falling.get() - 20.0);
        Ok(falling.get())
    };
    let set = |name: &str, offset, scorer| {
        let v = bleu_validation(offset, 10, scorer);
        let one = v.sets.into_iter().next().unwrap();
        ValidationSet {
            name: name.into(),
            ..one
        }
    };
    let valid = Validation {
        sets: vec![set("rising", 300, &up), set("falling", 400, &down)],
        best_on,
    };
    t.train(
        &mut train_source(60, 40, 4),
        Some(&valid),
        &RunOptions { quiet: true },
    )
    .unwrap();
    let log = training::log::read_log(&dir.join(training::log::VALID_LOG)).unwrap();
    (t, log)
}

#[test]
fn several_validation_sets_are_scored_apart_and_ranked_on_their_mean_or_one_of_them() {
    use training::config::BestOn;
    let _rng = torch_rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let (t, log) = two_set_run(BestOn::Mean, dir.path());
    assert_eq!(log.len(), 3);
    let names: Vec<&str> = log[0].sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["rising", "falling"]);
    let bleu = |r: &training::log::ValidRecord, i: usize| r.sets[i].bleu.unwrap();
    assert_eq!((bleu(&log[2], 0), bleu(&log[2], 1)), (30.0, 10.0));
    // The ranking scores are the mean: loss averaged, BLEU averaged.
    let means: Vec<f64> = log.iter().map(|r| r.bleu.unwrap()).collect();
    assert_eq!(means, [30.0, 25.0, 20.0]);
    let r = &log[1];
    assert!((r.loss - (r.sets[0].loss + r.sets[1].loss) / 2.0).abs() < 1e-12);
    assert_eq!(r.ranked_on.as_deref(), Some("mean"));
    assert!(r.summary().contains("rising loss") && r.summary().contains("mean loss"));
    assert_eq!(t.state().best_step, Some(2));

    let dir = tempfile::tempdir().unwrap();
    let (t, log) = two_set_run(BestOn::Set("rising".into()), dir.path());
    assert_eq!(t.state().best_step, Some(6));
    assert_eq!(log[2].bleu, Some(30.0));
    assert_eq!(log[2].ranked_on.as_deref(), Some("rising"));
    assert!(log.iter().all(|r| r.sets.len() == 2));
}

#[test]
fn tensorboard_event_files_hold_what_the_json_logs_hold() {
    use training::config::BestOn;
    let _rng = torch_rng_lock();
    let dir = tempfile::tempdir().unwrap();
    // `two_set_run` with the event files on (and a training record every update).
    let (_t, valid_log) = {
        let run = dir.path();
        std::fs::create_dir_all(run).unwrap();
        two_set_run_with(BestOn::Mean, run, |cfg| {
            cfg.tensorboard = true;
            cfg.log_every = 1;
        })
    };
    let train_log: Vec<training::log::TrainRecord> =
        training::log::read_log(&dir.path().join(training::log::TRAIN_LOG)).unwrap();
    assert_eq!(train_log.len(), 6);
    let scalars = tensorboard_scalars(dir.path());
    let series = |tag: &str| -> Vec<(u64, f64)> {
        scalars
            .get(tag)
            .unwrap_or_else(|| panic!("no {tag} in {:?}", scalars.keys()))
            .clone()
    };
    // Event values are float32: equal to the logs' float64 as float32.
    let same = |tag: &str, expected: Vec<(u64, f64)>| {
        let got = series(tag);
        assert_eq!(got.len(), expected.len(), "{tag}: {got:?} vs {expected:?}");
        for ((s1, v1), (s2, v2)) in got.iter().zip(&expected) {
            assert_eq!(s1, s2, "{tag}");
            assert_eq!(*v1 as f32, *v2 as f32, "{tag} at step {s1}");
        }
    };
    same(
        "train/loss",
        train_log.iter().map(|r| (r.step, r.loss)).collect(),
    );
    same(
        "train/lr",
        train_log.iter().map(|r| (r.step, r.lr)).collect(),
    );
    same(
        "train/tokens_per_sec",
        train_log
            .iter()
            .map(|r| (r.step, r.tokens_per_sec))
            .collect(),
    );
    same(
        "valid/bleu",
        valid_log
            .iter()
            .map(|r| (r.step, r.bleu.unwrap()))
            .collect(),
    );
    same(
        "valid/loss",
        valid_log.iter().map(|r| (r.step, r.loss)).collect(),
    );
    for (i, name) in ["rising", "falling"].iter().enumerate() {
        same(
            &format!("valid/{name}/bleu"),
            valid_log
                .iter()
                .map(|r| (r.step, r.sets[i].bleu.unwrap()))
                .collect(),
        );
        same(
            &format!("valid/{name}/ppl"),
            valid_log.iter().map(|r| (r.step, r.sets[i].ppl)).collect(),
        );
    }
}
