//! A linear layer `y = x Wᵀ (+ b)` whose weight is float (libtorch's `nn::Linear`, as
//! trained) or int8 with per-row steps (`nmt-bundle compress --int8 --params all`), run by
//! fbgemm's int8 kernel on the CPU ([`Matrix::Int8`]).

use tch::{nn, nn::Module, Tensor};

use crate::cell::Matrix;

/// The attention's and the decoder's linear layers.
#[derive(Debug)]
pub enum Linear {
    /// Variables `weight` `[out, in]` and, with a bias, `bias` `[out]`.
    Float(nn::Linear),
    /// Variables `weight_int8_q` (int8 `[out, in]`), `weight_int8_scale` (`[out]`) and,
    /// with a bias, `bias` (float `[out]`).
    Int8 {
        weight: Matrix,
        bias: Option<Tensor>,
    },
}

impl Linear {
    /// The layer under `path`, `in_dim` → `out_dim`, with or without a bias, its weight
    /// float (initialised as `nn::linear` does) or int8 (placeholders a bundle's weights
    /// overwrite).
    pub fn new(path: nn::Path, in_dim: i64, out_dim: i64, bias: bool, int8: bool) -> Self {
        let config = nn::LinearConfig {
            bias,
            ..Default::default()
        };
        if !int8 {
            return Linear::Float(nn::linear(path, in_dim, out_dim, config));
        }
        let bound = 1.0 / (in_dim as f64).sqrt();
        let init = nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        Linear::Int8 {
            weight: Matrix::int8_var(&path, "weight", (out_dim, in_dim), 0..out_dim, init),
            bias: bias.then(|| path.var("bias", &[out_dim], init)),
        }
    }

    /// `x Wᵀ (+ b)`. x: `[.., in]` → `[.., out]`
    ///
    /// # Panics
    /// As [`Matrix::linear`] (an int8 layer with `x` off the CPU).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Linear::Float(linear) => linear.forward(x),
            Linear::Int8 { weight, bias } => weight.linear(x, bias.as_ref()),
        }
    }
}
