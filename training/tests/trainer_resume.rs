//! Exact resume: an interrupted and resumed run repeats the uninterrupted run bit for bit.

mod common;

use std::path::Path;

use common::*;
use tch::Device;
use training::config::TrainingConfig;
use training::log::{read_log, TrainRecord, ValidRecord, TRAIN_LOG, VALID_LOG};
use training::trainer::{RunOptions, StopReason, Trainer};

fn cfg(max_steps: u64) -> TrainingConfig {
    TrainingConfig {
        max_steps,
        max_epochs: 0,
        lr: 3e-3,
        validate_every: 4,
        save_every: 0,
        log_every: 1,
        label_smoothing: 0.1,
        seed: 11,
        clip_norm: 0.5,
        ..TrainingConfig::default()
    }
}

fn weights(model: &TinyModel) -> Vec<(String, tch::Tensor)> {
    let mut v: Vec<_> = model.vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn run(dir: &Path, cfg: TrainingConfig, resume: bool) -> (Trainer<TinyModel>, Vec<(u64, f64)>) {
    // A different init seed for the resumed model: the checkpoint must overwrite it all.
    let model = TinyModel::new(if resume { 99 } else { 5 }, 0.3);
    let mut t = Trainer::new(model, cfg, dir, Device::Cpu).unwrap();
    if resume {
        assert!(t.resume().unwrap(), "no checkpoint to resume from");
    }
    let mut data = train_source(120, 48, 11);
    let scorer = bleu;
    let valid = bleu_validation(500, 20, &scorer);
    let out = t
        .train(&mut data, Some(&valid), &RunOptions { quiet: true })
        .unwrap();
    assert_eq!(out.reason, StopReason::MaxSteps);
    (t, out.losses)
}

#[test]
fn half_plus_resume_plus_half_equals_uninterrupted() {
    let _rng = torch_rng_lock();
    let full_dir = tempfile::tempdir().unwrap();
    let (full, full_losses) = run(full_dir.path(), cfg(40), false);
    assert_eq!(full_losses.len(), 40);
    // The batches span several epochs, so the resume crosses an epoch boundary too.
    assert!(full.state().epoch >= 1, "epoch {}", full.state().epoch);

    let dir = tempfile::tempdir().unwrap();
    let (_, first) = run(dir.path(), cfg(18), false);
    let (resumed, second) = run(dir.path(), cfg(40), true);
    let joined: Vec<_> = first.iter().chain(second.iter()).cloned().collect();
    assert_eq!(joined.len(), 40);
    for (a, b) in full_losses.iter().zip(&joined) {
        assert_eq!(a.0, b.0);
        assert_eq!(
            a.1.to_bits(),
            b.1.to_bits(),
            "step {}: {} vs {}",
            a.0,
            a.1,
            b.1
        );
    }
    for ((na, wa), (nb, wb)) in weights(full.model())
        .iter()
        .zip(weights(resumed.model()).iter())
    {
        assert_eq!(na, nb);
        assert!(wa.equal(wb), "weight {na} differs after resume");
    }
    assert_eq!(full.state().epoch, resumed.state().epoch);
    assert_eq!(full.state().batch_in_epoch, resumed.state().batch_in_epoch);
    assert_eq!(full.state().tokens_seen, resumed.state().tokens_seen);

    // The training log reads as one run: every step once, same losses.
    let log_full: Vec<TrainRecord> = read_log(&full_dir.path().join(TRAIN_LOG)).unwrap();
    let log_res: Vec<TrainRecord> = read_log(&dir.path().join(TRAIN_LOG)).unwrap();
    assert_eq!(
        log_res.iter().map(|r| r.step).collect::<Vec<_>>(),
        (1..=40).collect::<Vec<_>>()
    );
    for (a, b) in log_full.iter().zip(&log_res) {
        assert_eq!(a.loss.to_bits(), b.loss.to_bits());
    }
    // Validation scores at the shared validation steps agree exactly too (training makes
    // progress: the last BLEU is above the first).
    let v_full: Vec<ValidRecord> = read_log(&full_dir.path().join(VALID_LOG)).unwrap();
    let v_res: Vec<ValidRecord> = read_log(&dir.path().join(VALID_LOG)).unwrap();
    for a in &v_full {
        let b = v_res.iter().find(|b| b.step == a.step).unwrap();
        assert_eq!(
            a.loss.to_bits(),
            b.loss.to_bits(),
            "validation at {}",
            a.step
        );
        assert_eq!(a.bleu, b.bleu);
    }
    assert!(v_full.last().unwrap().loss < v_full.first().unwrap().loss);
}

#[test]
fn resuming_from_an_older_checkpoint_after_a_crash_repeats_the_same_steps() {
    let _rng = torch_rng_lock();
    // Simulates a kill -9 after step 10: `last` still points at the checkpoint of step 8
    // (kept by keep_every), the logs hold records past it.
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(10);
    c.keep_every = 4;
    let (_, original) = run(dir.path(), c.clone(), false);
    let step8 = dir.path().join("checkpoints/step-00000008");
    assert!(step8.is_dir());
    let link = dir.path().join("last");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("checkpoints/step-00000008", &link).unwrap();

    let (t, again) = run(dir.path(), c, true);
    assert_eq!(t.state().step, 10);
    assert_eq!(again.len(), 2);
    for (a, b) in original[8..].iter().zip(&again) {
        assert_eq!(a.0, b.0);
        assert_eq!(a.1.to_bits(), b.1.to_bits());
    }
    let log: Vec<TrainRecord> = read_log(&dir.path().join(TRAIN_LOG)).unwrap();
    assert_eq!(
        log.iter().map(|r| r.step).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
}

#[test]
fn dropout_masks_depend_on_the_batch_position_only() {
    // Same weights, same batch position → same training loss even after unrelated libtorch
    // random draws; another seed for the position → another mask, hence another loss.
    use training::trainer::batch_seed;
    assert_ne!(batch_seed(1, 0, 0), batch_seed(1, 0, 1));
    assert_ne!(batch_seed(1, 0, 0), batch_seed(1, 1, 0));
    assert_ne!(batch_seed(1, 0, 0), batch_seed(2, 0, 0));
    assert_eq!(batch_seed(3, 4, 5), batch_seed(3, 4, 5));

    let _rng = torch_rng_lock();
    let (batches, _) = valid_set(0, 8);
    let batch = &batches[0];
    // The loss of the first training step of a fresh trainer (model init seed 5, `dropout`),
    // with run seed `seed`, after `noise` unrelated draws from libtorch's generator.
    let first_loss = |dropout: f64, seed: u64, noise: i64| {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Trainer::new(
            TinyModel::new(5, dropout),
            TrainingConfig { seed, ..cfg(1) },
            dir.path(),
            Device::Cpu,
        )
        .unwrap();
        if noise > 0 {
            tch::manual_seed(noise);
            let _ = tch::Tensor::rand([noise], (tch::Kind::Float, Device::Cpu));
            let _ = tch::Tensor::randn([3, 3], (tch::Kind::Float, Device::Cpu)).dropout(0.5, true);
        }
        let r = t.train_step(batch).unwrap();
        assert!(r.applied && r.loss.is_finite(), "{r:?}");
        r.loss
    };
    let reference = first_loss(0.3, 11, 0);
    for noise in [1, 977] {
        assert_eq!(
            first_loss(0.3, 11, noise).to_bits(),
            reference.to_bits(),
            "unrelated random draws ({noise}) changed the loss"
        );
    }
    // The mask does change with the position's seed...
    assert_ne!(
        first_loss(0.3, 12, 0),
        reference,
        "the dropout mask ignores the seed"
    );
    // ... and only through dropout: without it the seed does not matter.
    assert_eq!(
        first_loss(0.0, 11, 5).to_bits(),
        first_loss(0.0, 12, 0).to_bits()
    );
}
