//! Learning-rate schedules: optional linear warmup, then constant, inverse square root, or
//! reduce-on-plateau driven by a validation metric.

use serde::{Deserialize, Serialize};

/// Which validation figure drives reduce-on-plateau.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PlateauMetric {
    /// Validation loss; lower is better.
    #[default]
    Loss,
    /// Validation BLEU; higher is better.
    Bleu,
}

/// The schedule's shape after warmup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// `lr` throughout.
    #[default]
    Constant,
    /// `lr · sqrt(warmup_steps / step)` after warmup (fairseq's `inverse_sqrt`); with no warmup,
    /// `lr / sqrt(step)`.
    InverseSqrt,
    /// `lr`, multiplied by `factor` whenever the metric has not improved (by more than the
    /// relative `threshold`) for more than `patience` validations, never below `min_lr`
    /// (PyTorch's `ReduceLROnPlateau` in `rel` mode).
    Plateau,
}

/// Schedule options (`[training.schedule]` in the config). The plateau options are ignored by
/// the other kinds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    pub kind: ScheduleKind,
    /// Linear warmup from `warmup_init_lr` to the peak over this many steps (0: none).
    pub warmup_steps: u64,
    pub warmup_init_lr: f64,
    pub factor: f64,
    pub patience: u32,
    pub min_lr: f64,
    pub metric: PlateauMetric,
    pub threshold: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            kind: ScheduleKind::Constant,
            warmup_steps: 0,
            warmup_init_lr: 0.0,
            factor: 0.5,
            patience: 1,
            min_lr: 0.0,
            metric: PlateauMetric::Loss,
            threshold: 1e-4,
        }
    }
}

/// A schedule option that makes no sense.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScheduleError {
    #[error("training.schedule.{field} = {value}: {why}")]
    Invalid {
        field: &'static str,
        value: f64,
        why: &'static str,
    },
}

/// Mutable state of the schedule (only reduce-on-plateau has any); goes into checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// Current plateau learning rate (the peak `lr` until the first reduction).
    pub plateau_lr: f64,
    /// Best metric seen so far, in "higher is better" form (negated loss for `Loss`).
    pub best: Option<f64>,
    /// Validations since the last improvement.
    pub bad_validations: u32,
    /// How many times the rate was reduced.
    pub reductions: u32,
}

/// A learning-rate schedule.
#[derive(Clone, Debug)]
pub struct LrSchedule {
    peak: f64,
    cfg: ScheduleConfig,
    state: ScheduleState,
}

impl LrSchedule {
    /// `peak`: the configured `training.lr`.
    pub fn new(peak: f64, cfg: ScheduleConfig) -> Result<Self, ScheduleError> {
        let bad = |field, value, why| Err(ScheduleError::Invalid { field, value, why });
        if !(peak > 0.0 && peak.is_finite()) {
            return bad("lr", peak, "must be a positive number");
        }
        if !(cfg.warmup_init_lr >= 0.0 && cfg.warmup_init_lr.is_finite()) {
            return bad("warmup_init_lr", cfg.warmup_init_lr, "must be >= 0");
        }
        if cfg.kind == ScheduleKind::Plateau {
            let ScheduleConfig {
                factor,
                min_lr,
                threshold,
                ..
            } = cfg;
            if !(factor > 0.0 && factor < 1.0) {
                return bad("factor", factor, "must be in (0, 1)");
            }
            if !(min_lr >= 0.0 && min_lr.is_finite()) {
                return bad("min_lr", min_lr, "must be >= 0");
            }
            if !(threshold >= 0.0 && threshold.is_finite()) {
                return bad("threshold", threshold, "must be >= 0");
            }
        }
        let state = ScheduleState {
            plateau_lr: peak,
            best: None,
            bad_validations: 0,
            reductions: 0,
        };
        Ok(Self { peak, cfg, state })
    }

    /// Learning rate for update number `step` (1-based: the first update is step 1).
    pub fn lr_at(&self, step: u64) -> f64 {
        let step = step.max(1);
        let w = self.cfg.warmup_steps;
        let target = match self.cfg.kind {
            ScheduleKind::Constant => self.peak,
            ScheduleKind::Plateau => self.state.plateau_lr,
            ScheduleKind::InverseSqrt => {
                if step <= w {
                    self.peak
                } else {
                    self.peak * (w.max(1) as f64 / step as f64).sqrt()
                }
            }
        };
        if step <= w && w > 0 {
            let init = self.cfg.warmup_init_lr;
            init + (target - init) * step as f64 / w as f64
        } else {
            target
        }
    }

    /// Feeds one validation result; returns `true` when the rate was just reduced.
    /// Only reduce-on-plateau reacts; the others ignore it.
    pub fn on_validation(&mut self, loss: f64, bleu: Option<f64>) -> bool {
        if self.cfg.kind != ScheduleKind::Plateau {
            return false;
        }
        let ScheduleConfig {
            factor,
            patience,
            min_lr,
            metric,
            threshold,
            ..
        } = self.cfg;
        let value = match metric {
            PlateauMetric::Loss => -loss,
            PlateauMetric::Bleu => match bleu {
                Some(b) => b,
                None => return false,
            },
        };
        if !value.is_finite() {
            self.state.bad_validations += 1;
        } else {
            let improved = match self.state.best {
                None => true,
                // Relative threshold as in PyTorch's mode="rel", on the "higher is better" value.
                Some(best) => value > best + threshold * best.abs(),
            };
            if improved {
                self.state.best = Some(value);
                self.state.bad_validations = 0;
                return false;
            }
            self.state.bad_validations += 1;
        }
        if self.state.bad_validations > patience {
            let new_lr = (self.state.plateau_lr * factor).max(min_lr);
            self.state.bad_validations = 0;
            if new_lr < self.state.plateau_lr {
                self.state.plateau_lr = new_lr;
                self.state.reductions += 1;
                return true;
            }
        }
        false
    }

    /// The state to checkpoint.
    pub fn state(&self) -> &ScheduleState {
        &self.state
    }

    /// Restores a checkpointed state.
    pub fn restore(&mut self, state: ScheduleState) {
        self.state = state;
    }
}
