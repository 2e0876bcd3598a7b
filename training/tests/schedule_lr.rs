//! Learning-rate schedules.

use training::schedule::{LrSchedule, PlateauMetric, ScheduleConfig, ScheduleKind};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

#[test]
fn constant_with_linear_warmup() {
    let s = LrSchedule::new(
        1e-3,
        ScheduleConfig {
            warmup_steps: 4,
            warmup_init_lr: 1e-4,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(close(s.lr_at(1), 1e-4 + 0.9e-3 / 4.0));
    assert!(close(s.lr_at(2), 1e-4 + 0.9e-3 / 2.0));
    assert!(close(s.lr_at(4), 1e-3));
    assert!(close(s.lr_at(5), 1e-3));
    assert!(close(s.lr_at(10_000), 1e-3));
}

#[test]
fn inverse_sqrt_after_warmup() {
    let cfg = ScheduleConfig {
        kind: ScheduleKind::InverseSqrt,
        warmup_steps: 100,
        ..Default::default()
    };
    let s = LrSchedule::new(5e-4, cfg).unwrap();
    assert!(close(s.lr_at(50), 2.5e-4));
    assert!(close(s.lr_at(100), 5e-4));
    assert!(close(s.lr_at(400), 2.5e-4));
    assert!(close(s.lr_at(10_000), 5e-5));
    // Monotone decay after the peak.
    assert!(s.lr_at(101) < s.lr_at(100));
    // No warmup: lr / sqrt(step).
    let s = LrSchedule::new(
        1.0,
        ScheduleConfig {
            kind: ScheduleKind::InverseSqrt,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(close(s.lr_at(4), 0.5));
}

#[test]
fn plateau_on_loss_reduces_after_patience_and_respects_min_lr() {
    let cfg = ScheduleConfig {
        kind: ScheduleKind::Plateau,
        factor: 0.5,
        patience: 1,
        min_lr: 0.3,
        ..Default::default()
    };
    let mut s = LrSchedule::new(1.0, cfg).unwrap();
    assert!(!s.on_validation(5.0, None)); // first: best
    assert!(!s.on_validation(4.0, None)); // improved
    assert!(!s.on_validation(4.5, None)); // bad 1 (patience 1: tolerated)
    assert_eq!(s.lr_at(10), 1.0);
    assert!(s.on_validation(4.2, None)); // bad 2 > patience → halve
    assert_eq!(s.lr_at(10), 0.5);
    assert!(!s.on_validation(3.0, None)); // improved
    assert!(!s.on_validation(3.0, None)); // equal is not an improvement: bad 1
    assert!(s.on_validation(3.1, None)); // bad 2 → 0.5·0.5 = 0.25, clamped to 0.3
    assert_eq!(s.lr_at(10), 0.3);
    assert!(!s.on_validation(3.2, None));
    assert!(!s.on_validation(3.3, None)); // would reduce but already at min_lr
    assert_eq!(s.lr_at(10), 0.3);
    assert_eq!(s.state().reductions, 2);
}

#[test]
fn plateau_on_bleu_treats_higher_as_better_and_state_round_trips() {
    let cfg = ScheduleConfig {
        kind: ScheduleKind::Plateau,
        factor: 0.1,
        patience: 0,
        metric: PlateauMetric::Bleu,
        ..Default::default()
    };
    let mut s = LrSchedule::new(2.0, cfg).unwrap();
    assert!(!s.on_validation(9.0, Some(20.0)));
    assert!(!s.on_validation(9.9, Some(21.0))); // loss worse, BLEU better: improvement
    assert!(s.on_validation(1.0, Some(20.5))); // loss better, BLEU worse: patience 0 → reduce
    assert!(close(s.lr_at(1), 0.2));
    let saved = s.state().clone();
    let mut t = LrSchedule::new(2.0, cfg).unwrap();
    t.restore(saved);
    assert!(close(t.lr_at(1), 0.2));
    assert!(t.on_validation(1.0, Some(20.0)));
    assert!(close(t.lr_at(1), 0.02));
}

#[test]
fn other_schedules_ignore_validations() {
    let mut s = LrSchedule::new(1e-3, ScheduleConfig::default()).unwrap();
    for _ in 0..5 {
        assert!(!s.on_validation(10.0, Some(0.0)));
    }
    assert_eq!(s.lr_at(100), 1e-3);
}

#[test]
fn nonsense_options_are_rejected_with_the_field_named() {
    let e = LrSchedule::new(0.0, ScheduleConfig::default()).unwrap_err();
    assert!(e.to_string().contains("lr"));
    let e = LrSchedule::new(
        1.0,
        ScheduleConfig {
            kind: ScheduleKind::Plateau,
            factor: 1.5,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("factor"));
}

#[test]
fn config_parses_from_toml_and_rejects_unknown_keys() {
    let cfg: ScheduleConfig =
        toml::from_str("kind = \"inverse_sqrt\"\nwarmup_steps = 4000").unwrap();
    assert_eq!(cfg.kind, ScheduleKind::InverseSqrt);
    assert_eq!(cfg.warmup_steps, 4000);
    let err = toml::from_str::<ScheduleConfig>("kind = \"constant\"\nwarmup = 3").unwrap_err();
    assert!(err.to_string().contains("warmup"), "{err}");
}
