//! The recurrent cells written out with their classic equations.
//!
//! Weights are laid out exactly as PyTorch's `nn.LSTM`/`nn.GRU` (and libtorch's
//! fused kernels) expect them, so the same parameters run either here, step by
//! step, or in libtorch's fused kernels ([`crate::executor::pick`] decides). The step
//! path exists so that gates can be seen (gate histograms, per-token gate values)
//! and changed (G2-LSTM's Gumbel gates, [`crate::gates`]) without touching the fused
//! path's speed. These functions are the reference: written to be read, one op per term
//! of the equations; the fast executors in [`crate::rnn`] are held equal to them by tests.

use std::ops::Range;
use std::sync::Arc;

use quantized::Int8Weight;
use tch::{nn, Kind, Tensor};

use crate::gates::{GateActivation, GateConfig};

/// A weight matrix `W` (`[R, C]`) of a recurrent layer: dense, with some of its rows
/// replaced by rank-K factors `U V` (`nmt-bundle compress --svd-rank K`), which run as two
/// thin GEMMs instead of one full one, or with some rows in int8 (`nmt-bundle compress
/// --int8`), run by fbgemm's int8 kernel on the CPU.
#[derive(Debug)]
pub enum Matrix {
    Dense(Tensor),
    LowRank {
        /// `[rows.len(), K]`
        u: Tensor,
        /// `[K, C]`
        v: Tensor,
        /// Which rows of `W` the factors stand for.
        rows: Range<i64>,
        /// The other rows of `W`, in order (`[R − rows.len(), C]`); `None` when every row
        /// is factored.
        rest: Option<Tensor>,
    },
    /// `W[rows] ≈ diag(scale) · q[:, columns]`, `q` int8 (CPU only).
    Int8 {
        /// The int8 rows, all columns (`[rows.len(), C_all]`), and their packed forms: shared
        /// by the column blocks of one matrix, so each block is packed once.
        q: Arc<Int8Weight>,
        /// Which columns of `q` this matrix is (all, or a block the step executor runs apart).
        columns: Range<i64>,
        /// `[rows.len()]`: the rows' quantization steps, times any factor [`Self::scale_rows`]
        /// folded in.
        scale: Tensor,
        /// Which rows of `W` are int8.
        rows: Range<i64>,
        /// The other rows of `W`, in order, as floats (`[R − rows.len(), C]`); `None` when
        /// every row is int8.
        rest: Option<Tensor>,
    },
}

/// `t`'s rows (dimension `dim`) in `rows`, and the other rows in order (`None` when there
/// are none): how a [`Matrix::LowRank`] and a compressed bundle keep a weight's rows apart.
pub fn split_rows(t: &Tensor, rows: &Range<i64>, dim: i64) -> (Tensor, Option<Tensor>) {
    let n = t.size()[dim.rem_euclid(t.dim() as i64) as usize];
    let chosen = t.narrow(dim, rows.start, rows.end - rows.start);
    let others: Vec<Tensor> = [(0, rows.start), (rows.end, n)]
        .into_iter()
        .filter(|(a, b)| b > a)
        .map(|(a, b)| t.narrow(dim, a, b - a))
        .collect();
    (
        chosen,
        (!others.is_empty()).then(|| Tensor::cat(&others, dim)),
    )
}

/// The inverse of [`split_rows`]: `rest`'s first `start` rows, `chosen`, then `rest`'s others.
pub fn join_rows(chosen: &Tensor, rest: Option<&Tensor>, start: i64, dim: i64) -> Tensor {
    match rest {
        None => chosen.shallow_clone(),
        Some(rest) => {
            let n = rest.size()[dim.rem_euclid(rest.dim() as i64) as usize];
            let before = rest.narrow(dim, 0, start);
            let after = rest.narrow(dim, start, n - start);
            Tensor::cat(&[&before, chosen, &after], dim)
        }
    }
}

impl Matrix {
    /// An int8 matrix on the same codes (`q`, shared) and rows as another, with its own
    /// columns, steps and float rows.
    fn int8_like(
        q: &Arc<Int8Weight>,
        rows: &Range<i64>,
        columns: Range<i64>,
        scale: Tensor,
        rest: Option<Tensor>,
    ) -> Matrix {
        Matrix::Int8 {
            q: Arc::clone(q),
            columns,
            scale,
            rows: rows.clone(),
            rest,
        }
    }

    /// An int8 matrix `W` (`[rows, cols]`) as variables under `path`: the codes of its rows
    /// `chosen`, `name_int8_q` (int8 `[chosen, cols]`, not trainable), their steps
    /// `name_int8_scale` (`[chosen]`), and, when `chosen` leaves rows out, the other rows as
    /// floats, `name_int8_rest` (`[rows − chosen, cols]`, initialised by `init`). The values
    /// are placeholders that loading a bundle overwrites in place; packing for the kernel
    /// waits for the first use.
    pub fn int8_var(
        path: &nn::Path,
        name: &str,
        (rows, cols): (i64, i64),
        chosen: Range<i64>,
        init: nn::Init,
    ) -> Matrix {
        let n = chosen.end - chosen.start;
        let rest =
            (n < rows).then(|| path.var(&format!("{name}_int8_rest"), &[rows - n, cols], init));
        let device = path.device();
        let q = path.add(
            &format!("{name}_int8_q"),
            Tensor::zeros([n, cols], (Kind::Int8, device)),
            false,
        );
        let scale = path.add(
            &format!("{name}_int8_scale"),
            Tensor::ones([n], (Kind::Float, device)),
            false,
        );
        Matrix::Int8 {
            q: Arc::new(Int8Weight::new(q)),
            columns: 0..cols,
            scale,
            rows: chosen,
            rest,
        }
    }

    /// `[A | B]` as one int8 matrix (`[R, C_A + C_B]`), so that `[x; y] [A | B]ᵀ` runs as one
    /// kernel call instead of two: when both are int8 over the same rows with bitwise equal
    /// steps ([`quantized::quantize_rows_joint`] quantized them together; the decoder's
    /// matrices are stored so) and both or neither have float rows. `None` otherwise (the
    /// caller then runs them apart). The codes are copied into a new matrix, packed on its
    /// first use.
    pub fn join_columns(a: &Matrix, b: &Matrix) -> Option<Matrix> {
        let (
            Matrix::Int8 {
                q: qa,
                columns: ca,
                scale: sa,
                rows: ra,
                rest: rest_a,
            },
            Matrix::Int8 {
                q: qb,
                columns: cb,
                scale: sb,
                rows: rb,
                rest: rest_b,
            },
        ) = (a, b)
        else {
            return None;
        };
        if ra != rb || sa.size() != sb.size() || !sa.equal(sb) {
            return None;
        }
        let rest = match (rest_a, rest_b) {
            (Some(x), Some(y)) => Some(Tensor::cat(&[x, y], 1)),
            (None, None) => None,
            _ => return None,
        };
        let block = |q: &Arc<Int8Weight>, c: &Range<i64>| q.q().narrow(1, c.start, c.end - c.start);
        let joint = Tensor::cat(&[block(qa, ca), block(qb, cb)], 1).contiguous();
        let width = joint.size()[1];
        Some(Matrix::Int8 {
            q: Arc::new(Int8Weight::new(joint)),
            columns: 0..width,
            scale: sa.shallow_clone(),
            rows: ra.clone(),
            rest,
        })
    }

    /// The dense tensor, when this matrix is one.
    pub fn dense(&self) -> Option<&Tensor> {
        match self {
            Matrix::Dense(t) => Some(t),
            Matrix::LowRank { .. } | Matrix::Int8 { .. } => None,
        }
    }

    /// Another handle on the same tensors.
    pub fn shallow_clone(&self) -> Matrix {
        match self {
            Matrix::Dense(w) => Matrix::Dense(w.shallow_clone()),
            Matrix::LowRank { u, v, rows, rest } => Matrix::LowRank {
                u: u.shallow_clone(),
                v: v.shallow_clone(),
                rows: rows.clone(),
                rest: rest.as_ref().map(Tensor::shallow_clone),
            },
            Matrix::Int8 {
                q,
                columns,
                scale,
                rows,
                rest,
            } => Matrix::int8_like(
                q,
                rows,
                columns.clone(),
                scale.shallow_clone(),
                rest.as_ref().map(Tensor::shallow_clone),
            ),
        }
    }

    /// `x W^T (+ b)`. x: `[.., C]` → `[.., R]`
    ///
    /// # Panics
    /// Like tch's own ops, when libtorch fails; for an int8 matrix, also when the int8 kernel
    /// refuses (`x` off the CPU: [`crate::Bundle::load`] refuses int8 bundles there first).
    pub fn linear(&self, x: &Tensor, bias: Option<&Tensor>) -> Tensor {
        // The chosen rows' product, then the float rest's beside them, then the bias.
        let with_rest = |chosen: Tensor, rows: &Range<i64>, rest: &Option<Tensor>| {
            let other = rest.as_ref().map(|r| x.linear::<&Tensor>(r, None));
            let out = join_rows(&chosen, other.as_ref(), rows.start, -1);
            match bias {
                Some(b) => out + b,
                None => out,
            }
        };
        match self {
            Matrix::Dense(w) => x.linear(w, bias),
            Matrix::LowRank { u, v, rows, rest } => {
                let factored = x.linear::<&Tensor>(v, None).linear::<&Tensor>(u, None);
                with_rest(factored, rows, rest)
            }
            Matrix::Int8 {
                q,
                columns,
                scale,
                rows,
                rest,
            } => {
                // Without float rows the kernel's output takes the bias in the same op.
                let own_bias = if rest.is_none() { bias } else { None };
                let int8 = q
                    .linear(x, columns.clone(), scale, own_bias)
                    .unwrap_or_else(|e| panic!("{e}"));
                match rest {
                    None => int8,
                    Some(_) => with_rest(int8, rows, rest),
                }
            }
        }
    }

    /// The columns `start..start + len` of `W` (`[R, len]`), in the same form.
    pub fn narrow_columns(&self, start: i64, len: i64) -> Matrix {
        match self {
            Matrix::Dense(w) => Matrix::Dense(w.narrow(1, start, len)),
            Matrix::LowRank { u, v, rows, rest } => Matrix::LowRank {
                u: u.shallow_clone(),
                v: v.narrow(1, start, len),
                rows: rows.clone(),
                rest: rest.as_ref().map(|r| r.narrow(1, start, len)),
            },
            Matrix::Int8 {
                q,
                columns,
                scale,
                rows,
                rest,
            } => Matrix::int8_like(
                q,
                rows,
                columns.start + start..columns.start + start + len,
                scale.shallow_clone(),
                rest.as_ref().map(|r| r.narrow(1, start, len)),
            ),
        }
    }

    /// `W` with each row `r` multiplied by `f(full)[r]`, where `full` is `W` as a dense
    /// matrix would be scaled by `f` (the gate temperature folded in, [`crate::gates`]).
    /// `f` must scale rows independently.
    pub fn scale_rows(&self, f: impl Fn(Tensor) -> Tensor) -> Matrix {
        // The factor of each row of W, from f applied to a column of ones: `[chosen, 1]` for
        // the rows in `rows`, and the rest's.
        let factors = |chosen: &Tensor, rows: &Range<i64>, rest: &Option<Tensor>| {
            let total = chosen.size()[0] + rest.as_ref().map_or(0, |r| r.size()[0]);
            let ones = Tensor::ones([total, 1], (chosen.kind(), chosen.device()));
            split_rows(&f(ones), rows, 0)
        };
        let scaled_rest = |rest: &Option<Tensor>, factor: Option<Tensor>| {
            rest.as_ref().zip(factor).map(|(r, fr)| r * fr)
        };
        match self {
            Matrix::Dense(w) => Matrix::Dense(f(w.shallow_clone())),
            Matrix::LowRank { u, v, rows, rest } => {
                let (factor_u, factor_rest) = factors(u, rows, rest);
                Matrix::LowRank {
                    u: u * factor_u,
                    v: v.shallow_clone(),
                    rows: rows.clone(),
                    rest: scaled_rest(rest, factor_rest),
                }
            }
            Matrix::Int8 {
                q,
                columns,
                scale,
                rows,
                rest,
            } => {
                // The int8 rows keep their codes; the factor joins their steps.
                let (factor_q, factor_rest) = factors(&scale.unsqueeze(1), rows, rest);
                Matrix::int8_like(
                    q,
                    rows,
                    columns.clone(),
                    scale * factor_q.squeeze_dim(1),
                    scaled_rest(rest, factor_rest),
                )
            }
        }
    }
}

/// Parameters of one recurrent layer in one direction.
///
/// `G` is the number of gate blocks (4 for LSTM: i, f, g, o; 3 for GRU: r, z, n),
/// `H` the hidden size, `I` the input size.
#[derive(Debug)]
pub struct LayerWeights {
    /// `[G*H, I]`
    pub w_ih: Matrix,
    /// `[G*H, H]`
    pub w_hh: Matrix,
    /// `[G*H]`
    pub b_ih: Tensor,
    /// `[G*H]`
    pub b_hh: Tensor,
}

impl LayerWeights {
    /// `x W_ih^T + b_ih + h W_hh^T + b_hh`, the pre-activations of all gates.
    ///
    /// x: `[B, I]`, h: `[B, H]` → `[B, G*H]`
    fn gate_inputs(&self, x: &Tensor, h: &Tensor) -> Tensor {
        self.w_ih.linear(x, Some(&self.b_ih)) + self.w_hh.linear(h, Some(&self.b_hh))
    }
}

/// The four activations of one LSTM step, each `[B, H]`.
#[derive(Debug)]
pub struct LstmGates {
    /// `i_t = σ(W_i x_t + U_i h_{t-1} + b_i)`: how much of the candidate enters the cell.
    pub input: Tensor,
    /// `f_t = σ(W_f x_t + U_f h_{t-1} + b_f)`: how much of the old cell is kept.
    pub forget: Tensor,
    /// `g_t = tanh(W_g x_t + U_g h_{t-1} + b_g)`: the candidate cell content.
    pub candidate: Tensor,
    /// `o_t = σ(W_o x_t + U_o h_{t-1} + b_o)`: how much of the cell is exposed as `h_t`.
    pub output: Tensor,
}

/// Computes the gates of one LSTM step, the reference way: the pre-activations `α`, then
/// `i = σ(s·α_i + n_i)`, `f = σ(s·α_f + n_f)` with `s = 1/τ` and `n` the (already scaled)
/// noise, or steps `α ≥ 0` when the activation is hard; `g = tanh(α_g)`, `o = σ(α_o)`.
///
/// x: `[B, I]`, h: `[B, H]`, noise: `[B, 4H]` (zero outside the first `2H` columns) → four
/// `[B, H]` tensors.
pub fn lstm_gates(
    x: &Tensor,
    h: &Tensor,
    w: &LayerWeights,
    activation: &GateActivation,
    noise: Option<&Tensor>,
) -> LstmGates {
    let pre = w.gate_inputs(x, h).chunk(4, -1);
    let noised = |alpha: &Tensor, block: i64| -> Tensor {
        let h = alpha.size()[1];
        let scaled = alpha * activation.scale;
        match noise {
            Some(n) => scaled + n.narrow(1, block * h, h),
            None => scaled,
        }
    };
    let gate = |alpha: Tensor| -> Tensor {
        if activation.hard {
            alpha.ge(0.0).to_kind(alpha.kind())
        } else {
            alpha.sigmoid()
        }
    };
    LstmGates {
        input: gate(noised(&pre[0], 0)),
        forget: gate(noised(&pre[1], 1)),
        candidate: pre[2].tanh(),
        output: pre[3].sigmoid(),
    }
}

/// The gates from pre-activations that already hold the scale and the noise (the fast
/// executors fold both into their GEMMs), `[B, 4H]` in PyTorch's order (i, f, g, o) → four
/// `[B, H]` tensors. `hard`: input and forget gates as steps `α ≥ 0`.
pub fn lstm_gates_from(preactivations: &Tensor, hard: bool) -> LstmGates {
    let pre = preactivations.chunk(4, -1);
    let gate = |alpha: &Tensor| {
        if hard {
            alpha.ge(0.0).to_kind(alpha.kind())
        } else {
            alpha.sigmoid()
        }
    };
    LstmGates {
        input: gate(&pre[0]),
        forget: gate(&pre[1]),
        candidate: pre[2].tanh(),
        output: pre[3].sigmoid(),
    }
}

/// Applies gates to the previous cell state: `c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t`,
/// `h_t = o_t ⊙ tanh(c_t)`. c: `[B, H]` → `(h_t, c_t)`, each `[B, H]`.
pub fn lstm_apply(gates: &LstmGates, c: &Tensor) -> (Tensor, Tensor) {
    let c_next = &gates.forget * c + &gates.input * &gates.candidate;
    let h_next = &gates.output * c_next.tanh();
    (h_next, c_next)
}

/// One standard LSTM step. x: `[B, I]`, h, c: `[B, H]` → `(h_t, c_t)`, each `[B, H]`.
pub fn lstm_step(x: &Tensor, h: &Tensor, c: &Tensor, w: &LayerWeights) -> (Tensor, Tensor) {
    let standard = GateConfig::default().activation(false);
    lstm_apply(&lstm_gates(x, h, w, &standard, None), c)
}

/// The gates of one GRU step, PyTorch's formulation: `r = σ(W_r x + b_ir + U_r h + b_hr)`,
/// `z = σ(W_z x + b_iz + U_z h + b_hz)`, `n = tanh(W_n x + b_in + r ⊙ (U_n h + b_hn))`.
///
/// x: `[B, I]`, h: `[B, H]` → `(r, z, n)`, each `[B, H]`.
pub fn gru_gates(x: &Tensor, h: &Tensor, w: &LayerWeights) -> (Tensor, Tensor, Tensor) {
    let gi = w.w_ih.linear(x, Some(&w.b_ih)).chunk(3, -1);
    let gh = w.w_hh.linear(h, Some(&w.b_hh)).chunk(3, -1);
    let r = (&gi[0] + &gh[0]).sigmoid();
    let z = (&gi[1] + &gh[1]).sigmoid();
    let n = (&gi[2] + &r * &gh[2]).tanh();
    (r, z, n)
}

/// One GRU step: `h_t = (1 - z) ⊙ n + z ⊙ h` with the gates of [`gru_gates`].
///
/// x: `[B, I]`, h: `[B, H]` → `[B, H]`
pub fn gru_step(x: &Tensor, h: &Tensor, w: &LayerWeights) -> Tensor {
    let (_, z, n) = gru_gates(x, h, w);
    (1.0 - &z) * n + z * h
}
