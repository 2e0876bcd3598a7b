//! Adam / AdamW on plain tensors, with gradient-norm clipping.
//!
//! Hand-written rather than `tch::nn::Optimizer` because that wraps a C++ optimizer whose
//! moments cannot be read out or written back: a checkpoint must hold them for an exact resume.
//! The update follows libtorch's `torch::optim::Adam` (and `AdamW` when `decoupled`) step for
//! step, so results agree with tch's own optimizer.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Errors from the optimizer (restoring state, tensor failures).
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    #[error("optimizer state: missing tensor {0:?}")]
    Missing(String),
    #[error(
        "optimizer state: tensor {name:?} has shape {found:?}, the parameter has {expected:?}"
    )]
    Shape {
        name: String,
        expected: Vec<i64>,
        found: Vec<i64>,
    },
    #[error("optimizer state: unexpected tensor {0:?} (the model has no such parameter)")]
    Unexpected(String),
    #[error("optimizer state file {path}: {source}")]
    File { path: String, source: tch::TchError },
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// Adam hyper-parameters (the learning rate comes from the schedule at each step).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// 0 disables weight decay.
    pub weight_decay: f64,
    /// `true`: AdamW (decay applied to the weights, `p -= lr·wd·p`);
    /// `false`: classic L2 (`wd·p` added to the gradient).
    pub decoupled: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }
}

/// Adam over a fixed, named set of parameters.
pub struct Adam {
    cfg: AdamConfig,
    /// Sorted by name so that state files and iteration order never depend on hash order.
    params: Vec<(String, Tensor)>,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    step: i64,
}

impl Adam {
    /// Optimizes every trainable variable of `vs`.
    pub fn new(vs: &tch::nn::VarStore, cfg: AdamConfig) -> Self {
        let named: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        Self::from_named(named, cfg)
    }

    /// Optimizes the given named parameters (tensors that require grad).
    pub fn from_named(mut params: Vec<(String, Tensor)>, cfg: AdamConfig) -> Self {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let exp_avg = params
            .iter()
            .map(|(_, p)| p.zeros_like().detach())
            .collect();
        let exp_avg_sq = params
            .iter()
            .map(|(_, p)| p.zeros_like().detach())
            .collect();
        Self {
            cfg,
            params,
            exp_avg,
            exp_avg_sq,
            step: 0,
        }
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamConfig {
        &self.cfg
    }

    /// Number of updates applied so far.
    pub fn step_count(&self) -> i64 {
        self.step
    }

    /// The optimized parameters, sorted by name.
    pub fn params(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// Clears every parameter's gradient.
    pub fn zero_grad(&mut self) {
        for (_, p) in self.params.iter_mut() {
            p.zero_grad();
        }
    }

    /// Total L2 norm of all gradients (as `f64`), computed in f32 on the parameters' device.
    pub fn grad_norm(&self) -> Result<f64, OptimError> {
        tch::no_grad(|| {
            let mut sq: Option<Tensor> = None;
            for (_, p) in &self.params {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let n = g.f_to_kind(Kind::Float)?.f_square()?.f_sum(Kind::Float)?;
                sq = Some(match sq {
                    None => n,
                    Some(acc) => acc.f_add(&n)?,
                });
            }
            Ok(match sq {
                None => 0.0,
                Some(s) => s.f_sqrt()?.f_double_value(&[])?,
            })
        })
    }

    /// Scales all gradients so that their total norm is at most `max_norm` (as
    /// `torch.nn.utils.clip_grad_norm_`, with its 1e-6 guard). Returns the norm before clipping;
    /// a non-finite norm is returned as is and nothing is scaled (the caller skips the step).
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Result<f64, OptimError> {
        let total = self.grad_norm()?;
        if !total.is_finite() || max_norm <= 0.0 {
            return Ok(total);
        }
        let coef = max_norm / (total + 1e-6);
        if coef < 1.0 {
            tch::no_grad(|| -> Result<(), OptimError> {
                for (_, p) in &self.params {
                    let mut g = p.grad();
                    if g.defined() {
                        let _ = g.f_mul_scalar_(coef)?;
                    }
                }
                Ok(())
            })?;
        }
        Ok(total)
    }

    /// Applies one update with learning rate `lr`. Parameters without a gradient are left alone
    /// (their moments too), as libtorch does.
    pub fn step(&mut self, lr: f64) -> Result<(), OptimError> {
        self.step += 1;
        let AdamConfig {
            beta1,
            beta2,
            eps,
            weight_decay: wd,
            decoupled,
        } = self.cfg;
        let bias1 = 1.0 - beta1.powi(self.step as i32);
        let bias2_sqrt = (1.0 - beta2.powi(self.step as i32)).sqrt();
        let step_size = lr / bias1;
        tch::no_grad(|| -> Result<(), OptimError> {
            for (i, (_, p)) in self.params.iter_mut().enumerate() {
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                let grad = if wd != 0.0 && !decoupled {
                    grad.f_add(&p.f_mul_scalar(wd)?)?
                } else {
                    grad
                };
                if wd != 0.0 && decoupled {
                    let _ = p.f_mul_scalar_(1.0 - lr * wd)?;
                }
                let m = &mut self.exp_avg[i];
                let _ = m.f_mul_scalar_(beta1)?;
                let _ = m.f_add_(&grad.f_mul_scalar(1.0 - beta1)?)?;
                let v = &mut self.exp_avg_sq[i];
                let _ = v.f_mul_scalar_(beta2)?;
                let _ = v.f_add_(&grad.f_mul(&grad)?.f_mul_scalar(1.0 - beta2)?)?;
                let denom = v.f_sqrt()?.f_div_scalar(bias2_sqrt)?.f_add_scalar(eps)?;
                let update = self.exp_avg[i].f_div(&denom)?.f_mul_scalar(step_size)?;
                let _ = p.f_sub_(&update)?;
            }
            Ok(())
        })
    }

    /// The full optimizer state as named tensors (`exp_avg.<param>`, `exp_avg_sq.<param>`, and
    /// `step` as a 1-element i64 tensor), ready for [`Tensor::write_safetensors`].
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len() + 1);
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.push((format!("exp_avg.{name}"), self.exp_avg[i].shallow_clone()));
            out.push((
                format!("exp_avg_sq.{name}"),
                self.exp_avg_sq[i].shallow_clone(),
            ));
        }
        out.push(("step".to_string(), Tensor::from_slice(&[self.step])));
        out
    }

    /// Restores what [`Adam::state_tensors`] produced. Every parameter must have both moments
    /// with its exact shape; unknown names are an error (they mean a different model).
    pub fn load_state(&mut self, tensors: Vec<(String, Tensor)>) -> Result<(), OptimError> {
        let mut map: HashMap<String, Tensor> = tensors.into_iter().collect();
        let step = map
            .remove("step")
            .ok_or_else(|| OptimError::Missing("step".into()))?;
        let step = step.f_int64_value(&[0])?;
        let mut new_avg = Vec::with_capacity(self.params.len());
        let mut new_sq = Vec::with_capacity(self.params.len());
        for (name, p) in &self.params {
            for (prefix, dst) in [("exp_avg", &mut new_avg), ("exp_avg_sq", &mut new_sq)] {
                let key = format!("{prefix}.{name}");
                let t = map
                    .remove(&key)
                    .ok_or_else(|| OptimError::Missing(key.clone()))?;
                if t.size() != p.size() {
                    return Err(OptimError::Shape {
                        name: key,
                        expected: p.size(),
                        found: t.size(),
                    });
                }
                dst.push(t.f_to_device(p.device())?.f_to_kind(p.kind())?.detach());
            }
        }
        if let Some(name) = map.into_keys().next() {
            return Err(OptimError::Unexpected(name));
        }
        self.exp_avg = new_avg;
        self.exp_avg_sq = new_sq;
        self.step = step;
        Ok(())
    }

    /// Writes the state to a safetensors file (not atomic by itself: see [`crate::checkpoint`]).
    pub fn save(&self, path: &Path) -> Result<(), OptimError> {
        let t = self.state_tensors();
        Tensor::write_safetensors(&t, path).map_err(|source| OptimError::File {
            path: path.display().to_string(),
            source,
        })
    }

    /// Reads a state written by [`Adam::save`].
    pub fn load(&mut self, path: &Path) -> Result<(), OptimError> {
        let t = Tensor::read_safetensors(path).map_err(|source| OptimError::File {
            path: path.display().to_string(),
            source,
        })?;
        self.load_state(t)
    }
}
