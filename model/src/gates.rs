//! How an LSTM's input and forget gates are computed, and what travels with every step.
//!
//! Three gate modes (`[model.gates]` in a training config, `gates` in a bundle's config):
//!
//! - `standard`: `σ(α)`, the textbook LSTM.
//! - `gumbel`: G2-LSTM (Li et al., ICML 2018, "Towards Binary-Valued Gates for Robust LSTM
//!   Training"). While training, the input and forget gates are `σ((α + n) / τ)` where each
//!   element gets logistic noise `n = log U − log(1 − U)`, `U ~ Uniform(0, 1)`, with
//!   probability `noise_prob` (0 otherwise), and every input/forget pre-activation is divided
//!   by `τ`, noised or not. This is what the authors' released code does (`p = 0.2`, `τ = 0.9`
//!   in all the paper's experiments; the paper's formula noises every element). Output gate
//!   and candidate are untouched. At inference the gates are plain `σ(α)`, the released
//!   code's default.
//! - `sharpened`: the paper's "sharpened sigmoid" baseline, `σ(α / τ)` with `τ = 0.2` and no
//!   noise, in training and at inference alike (it is a different activation, not a
//!   training-time perturbation).
//!
//! `inference = "hard"` turns the input and forget gates into steps at inference (`α ≥ 0 → 1`,
//! else 0), for any mode.
//!
//! A [`StepContext`] goes with every step of a pass: whether it trains, the resolved gate
//! activation ([`GateActivation`]), the pass's noise ([`GateNoise`]), and an optional
//! [`GateRecorder`] that sees every gate value (nothing is recorded, and nothing costs,
//! without one).

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::cell::LstmGates;

/// Which gate function a model trains with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GateKind {
    /// `σ(α)`.
    #[default]
    Standard,
    /// G2-LSTM: logistic noise and a temperature on the input and forget gates while training.
    Gumbel,
    /// `σ(α / τ)` on the input and forget gates, always.
    Sharpened,
}

impl GateKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Gumbel => "gumbel",
            Self::Sharpened => "sharpened",
        }
    }

    /// The paper's settings: `(temperature, noise_prob)`.
    pub fn default_parameters(self) -> (f64, f64) {
        match self {
            Self::Standard => (1.0, 0.0),
            Self::Gumbel => (0.9, 0.2),
            Self::Sharpened => (0.2, 0.0),
        }
    }
}

/// What the input and forget gates are at inference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GateInference {
    /// The gate function's value (for `gumbel`, plain `σ(α)`).
    #[default]
    Soft,
    /// Steps: 1 where the pre-activation is ≥ 0, else 0.
    Hard,
}

/// `[model.gates]`: the gate mode and its parameters. Missing parameters take the paper's
/// values for the kind ([`GateKind::default_parameters`]); a bundle records them resolved.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GateConfigFields")]
pub struct GateConfig {
    pub kind: GateKind,
    /// `τ`, dividing the input and forget pre-activations (`gumbel`: while training only).
    pub temperature: f64,
    /// The probability that an element gets logistic noise (`gumbel` only).
    pub noise_prob: f64,
    pub inference: GateInference,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self::of_kind(GateKind::Standard)
    }
}

/// The serde form of [`GateConfig`], before defaults and checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GateConfigFields {
    #[serde(default)]
    kind: GateKind,
    temperature: Option<f64>,
    noise_prob: Option<f64>,
    #[serde(default)]
    inference: GateInference,
}

impl TryFrom<GateConfigFields> for GateConfig {
    type Error = String;

    fn try_from(f: GateConfigFields) -> Result<Self, String> {
        let (temperature, noise_prob) = f.kind.default_parameters();
        let config = Self {
            kind: f.kind,
            temperature: f.temperature.unwrap_or(temperature),
            noise_prob: f.noise_prob.unwrap_or(noise_prob),
            inference: f.inference,
        };
        config.check()?;
        Ok(config)
    }
}

impl GateConfig {
    /// The kind with the paper's parameters and soft gates at inference.
    pub fn of_kind(kind: GateKind) -> Self {
        let (temperature, noise_prob) = kind.default_parameters();
        Self {
            kind,
            temperature,
            noise_prob,
            inference: GateInference::Soft,
        }
    }

    /// Checks the parameters against the kind; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(format!(
                "temperature must be a positive number, got {}",
                self.temperature
            ));
        }
        if !(0.0..=1.0).contains(&self.noise_prob) {
            return Err(format!(
                "noise_prob must be in [0, 1], got {}",
                self.noise_prob
            ));
        }
        match self.kind {
            GateKind::Standard if self.temperature != 1.0 || self.noise_prob != 0.0 => {
                Err(format!(
                    "kind = \"standard\" takes no temperature or noise_prob (got {} and {}); \
                 use kind = \"sharpened\" or \"gumbel\"",
                    self.temperature, self.noise_prob
                ))
            }
            GateKind::Sharpened if self.noise_prob != 0.0 => Err(format!(
                "kind = \"sharpened\" has no noise (noise_prob = {}); use kind = \"gumbel\"",
                self.noise_prob
            )),
            _ => Ok(()),
        }
    }

    /// What the gates compute in a training (`train`) or inference pass.
    pub fn activation(&self, train: bool) -> GateActivation {
        let hard = !train && self.inference == GateInference::Hard;
        match self.kind {
            GateKind::Standard => GateActivation::plain(hard),
            GateKind::Gumbel if train => GateActivation {
                scale: 1.0 / self.temperature,
                noise_prob: self.noise_prob,
                hard: false,
            },
            GateKind::Gumbel => GateActivation::plain(hard),
            GateKind::Sharpened => GateActivation {
                scale: 1.0 / self.temperature,
                noise_prob: 0.0,
                hard,
            },
        }
    }
}

/// The input/forget gate function of one pass: `σ(scale · (α + n))` with `n` logistic noise on
/// a `noise_prob` fraction of the elements, or a step function when `hard`. The output gate
/// and the candidate are always `σ(α)` and `tanh(α)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GateActivation {
    /// `1 / τ`.
    pub scale: f64,
    pub noise_prob: f64,
    /// `α ≥ 0 → 1`, else 0 (inference only).
    pub hard: bool,
}

impl GateActivation {
    fn plain(hard: bool) -> Self {
        Self {
            scale: 1.0,
            noise_prob: 0.0,
            hard,
        }
    }

    /// The textbook `σ(α)`: what libtorch's fused kernels compute.
    pub fn is_standard(&self) -> bool {
        *self == Self::plain(false)
    }

    /// `t` with its input and forget rows (the first half of dimension 0 of a `[4H, ..]`
    /// weight or a `[4H]` bias, PyTorch's gate order i, f, g, o) multiplied by `scale`: folds
    /// `1/τ` into the GEMMs. `t` itself when the scale is 1.
    pub fn scale_gate_rows(&self, t: Tensor) -> Tensor {
        if self.scale == 1.0 {
            return t;
        }
        let rows = t.size()[0];
        let mut v = vec![self.scale as f32; (rows / 2) as usize];
        v.resize(rows as usize, 1.0);
        let s = Tensor::from_slice(&v)
            .to_kind(t.kind())
            .to_device(t.device());
        if t.dim() == 2 {
            t * s.unsqueeze(1)
        } else {
            t * s
        }
    }
}

/// Which recurrent layer a gate belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GateSide {
    Encoder,
    Decoder,
}

/// One layer and direction of the encoder or decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GateSite {
    pub side: GateSide,
    pub layer: usize,
    /// 0 forward, 1 backward (the encoder's second direction).
    pub direction: usize,
}

impl GateSite {
    fn code(&self) -> u64 {
        let side = match self.side {
            GateSide::Encoder => 0u64,
            GateSide::Decoder => 1,
        };
        (side << 32) | ((self.layer as u64) << 1) | self.direction as u64
    }
}

/// The gate values of one step of one layer, each `[B, H]`.
#[derive(Debug)]
pub enum RecordedGates<'a> {
    Lstm(&'a LstmGates),
    Gru {
        reset: &'a Tensor,
        update: &'a Tensor,
    },
}

/// Sees every gate value of a pass (gate histograms, per-token gates). Called once per layer,
/// direction and step; `valid` (`[B]` bool) marks the rows whose sequence has not ended
/// (`None`: every row). In the encoder's backward direction, step `t` of a row of length `L`
/// is source position `L − 1 − t`. The rows are those the executor holds:
/// [`crate::Seq2Seq::forward_packed`] runs the target rows longest first and only while
/// they last (its `positions` give the order), [`crate::Seq2Seq::forward`] runs every row
/// at every step, padding included, with `valid = None`.
pub trait GateRecorder: Sync {
    fn record(&self, site: GateSite, step: i64, gates: RecordedGates<'_>, valid: Option<&Tensor>);

    /// The new state of the same layer, direction and step: `h` `[B, H]` (the output, before
    /// rows past their end are masked) and, for an LSTM, the cell `c` `[B, H]`; rows as in
    /// [`Self::record`]. `h` is the tensor the rest of the pass reads, so a recorder that keeps
    /// it can ask autograd for `∂L/∂h_t` (gradient flow). Most recorders need only the gates.
    fn record_state(
        &self,
        _site: GateSite,
        _step: i64,
        _h: &Tensor,
        _c: Option<&Tensor>,
        _valid: Option<&Tensor>,
    ) {
    }
}

/// The logistic noise of one training pass. Each `(site, step)` has its own ChaCha8 stream,
/// seeded from the pass's seed: the noise of a step does not depend on the order in which
/// the executors draw it (a whole sequence at once, or step by step), so the fast and the
/// reference executors see the same noise. On CUDA libtorch's generator is used instead
/// (seeded by `tch::manual_seed`), as for dropout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateNoise {
    seed: u64,
}

impl GateNoise {
    /// Noise whose streams derive from `seed`.
    pub fn from_seed(seed: u64) -> Self {
        Self { seed }
    }

    /// Noise seeded from the calling thread's generator ([`crate::random`]).
    pub fn draw_seed() -> Self {
        Self::from_seed(crate::random::next_u64())
    }

    fn stream(&self, site: GateSite, step: i64) -> ChaCha8Rng {
        // splitmix64 over (seed, site, step): well-spread seeds for neighbouring keys.
        let mut z = self.seed
            ^ site.code().wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (step as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ChaCha8Rng::seed_from_u64(z ^ (z >> 31))
    }

    /// Logistic noise for the gate pre-activations of `steps` steps from `first_step`, `rows`
    /// rows and hidden size `H`, multiplied by `scale`: `[steps, rows, 4H]`, zero outside the
    /// input and forget columns (`0..2H`) and on the elements left unnoised (probability
    /// `1 − p`). Rows come first in each step's stream, so the first `r` rows of a step are
    /// the same whatever `rows ≥ r` is asked for.
    #[allow(clippy::too_many_arguments)]
    pub fn logistic(
        &self,
        site: GateSite,
        first_step: i64,
        steps: i64,
        rows: i64,
        hidden: i64,
        p: f64,
        scale: f64,
        device: Device,
    ) -> Tensor {
        let width = 4 * hidden;
        if device != Device::Cpu {
            let shape = [steps, rows, 2 * hidden];
            let opts = (Kind::Float, device);
            let u = Tensor::rand(shape, opts).clamp(f64::from(f32::EPSILON), 1.0 - 1e-7);
            let keep = Tensor::rand(shape, opts).lt(p).to_kind(Kind::Float);
            let n = (u.log() - (-&u).log1p()) * keep * scale;
            return Tensor::cat(&[n, Tensor::zeros(shape, opts)], -1);
        }
        let threshold = (p * 4_294_967_296.0) as u64;
        let mut out = vec![0f32; (steps * rows * width) as usize];
        for (s, chunk) in out.chunks_mut((rows * width) as usize).enumerate() {
            let mut g = self.stream(site, first_step + s as i64);
            for row in chunk.chunks_mut(width as usize) {
                for x in &mut row[..(2 * hidden) as usize] {
                    if u64::from(g.next_u32()) < threshold {
                        // U in (0, 1): never 0 or 1, so the logarithms stay finite.
                        let u = (f64::from(g.next_u32()) + 0.5) / 4_294_967_296.0;
                        *x = ((u / (1.0 - u)).ln() * scale) as f32;
                    }
                }
            }
        }
        Tensor::from_slice(&out).view([steps, rows, width])
    }
}

/// What travels with every step of a pass (cell → stack → encoder/decoder → search).
#[derive(Clone, Copy)]
pub struct StepContext<'a> {
    /// Dropout on, and (for `gumbel`) noisy gates.
    pub train: bool,
    /// The input/forget gate function of this pass.
    pub gates: GateActivation,
    /// The noise of this pass; `Some` exactly when `gates.noise_prob > 0`.
    pub noise: Option<GateNoise>,
    /// Sees every gate value when set (and makes the stacks run the step executor).
    pub recorder: Option<&'a dyn GateRecorder>,
}

impl std::fmt::Debug for StepContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepContext")
            .field("train", &self.train)
            .field("gates", &self.gates)
            .field("noise", &self.noise)
            .field("recording", &self.recorder.is_some())
            .finish()
    }
}

impl StepContext<'static> {
    /// A pass of a model whose gates are `gates`; draws the pass's noise seed from the
    /// calling thread's generator when the gates are noisy.
    pub fn new(gates: &GateConfig, train: bool) -> Self {
        let activation = gates.activation(train);
        Self {
            train,
            gates: activation,
            noise: (activation.noise_prob > 0.0).then(GateNoise::draw_seed),
            recorder: None,
        }
    }
}

impl<'a> StepContext<'a> {
    /// The same pass with `recorder` seeing every gate.
    pub fn with_recorder<'b>(self, recorder: &'b dyn GateRecorder) -> StepContext<'b> {
        StepContext {
            train: self.train,
            gates: self.gates,
            noise: self.noise,
            recorder: Some(recorder),
        }
    }

    /// The same pass with the given noise (tests hold executors equal under the same draws).
    pub fn with_noise(mut self, noise: Option<GateNoise>) -> Self {
        self.noise = noise;
        self
    }

    /// Whether nothing in this pass needs more than libtorch's fused kernels compute.
    pub fn fused_suffices(&self) -> bool {
        self.gates.is_standard() && self.recorder.is_none()
    }

    /// The noise of `steps` steps of `site` as [`GateNoise::logistic`] gives it (already
    /// multiplied by the gates' scale), or `None` for a pass without noise.
    pub fn noise_for(
        &self,
        site: GateSite,
        first_step: i64,
        steps: i64,
        rows: i64,
        hidden: i64,
        device: Device,
    ) -> Option<Tensor> {
        self.noise.map(|n| {
            n.logistic(
                site,
                first_step,
                steps,
                rows,
                hidden,
                self.gates.noise_prob,
                self.gates.scale,
                device,
            )
        })
    }
}
