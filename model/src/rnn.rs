//! A stack of recurrent layers (LSTM or GRU, one or two directions) with three
//! executors over one set of parameters ([`crate::executor`] picks): libtorch's fused
//! kernels, this crate's fast step executor (LSTM; "prepared" weights), and the reference
//! step loop over the classic equations of [`crate::cell`].
//!
//! Padding never leaks: the fused path packs the batch (libtorch's packed
//! sequences), the step paths freeze the state past each sequence's end and run
//! the backward direction over each sequence reversed *within its length*. Either
//! way the final state of a sequence is the state at its last real token.
//!
//! Every pass takes a [`StepContext`]: training or not, the gate activation (G2-LSTM's
//! temperature and noise, [`crate::gates`]), and an optional recorder that sees every gate.

use tch::{nn, Device, Kind, Tensor};

use crate::dropout::dropout;

use crate::cell::{
    gru_gates, lstm_apply, lstm_gates, lstm_gates_from, LayerWeights, LstmGates, Matrix,
};
use crate::config::{CellKind, Executor, Int8, LowRank};
use crate::executor::{pick, Exec, RnnPart};
use crate::gates::{GateSide, GateSite, RecordedGates, StepContext};

/// Hidden state of a stack, libtorch's layout.
#[derive(Debug)]
pub struct RnnState {
    /// `[layers * directions, B, H]`
    pub h: Tensor,
    /// `[layers * directions, B, H]`, LSTM only.
    pub c: Option<Tensor>,
}

impl RnnState {
    /// Keeps (or repeats) batch rows. index: `[B']` i64 → state with batch `B'`.
    pub fn index_select(&self, index: &Tensor) -> Self {
        Self {
            h: self.h.index_select(1, index),
            c: self.c.as_ref().map(|c| c.index_select(1, index)),
        }
    }

    /// Keeps the first `rows` entries of the batch dimension (contiguous copies, which
    /// the fused kernels need; a no-op when nothing is dropped).
    pub fn first_rows(&self, rows: i64) -> Self {
        let keep = |t: &Tensor| {
            if t.size()[1] == rows {
                t.shallow_clone()
            } else {
                t.narrow(1, 0, rows).contiguous()
            }
        };
        Self {
            h: keep(&self.h),
            c: self.c.as_ref().map(keep),
        }
    }

    /// Selects entries of the first dimension (layer*direction). `layer`: which one.
    fn layer(&self, layer: i64) -> (Tensor, Option<Tensor>) {
        (self.h.get(layer), self.c.as_ref().map(|c| c.get(layer)))
    }

    fn stack(h: Vec<Tensor>, c: Vec<Tensor>) -> Self {
        Self {
            h: Tensor::stack(&h, 0),
            c: if c.is_empty() {
                None
            } else {
                Some(Tensor::stack(&c, 0))
            },
        }
    }
}

/// Sizes of a stack.
#[derive(Clone, Copy, Debug)]
pub struct RnnShape {
    pub cell: CellKind,
    pub executor: Executor,
    /// Which part of the network the stack is (names its gates for noise and recorders).
    pub side: GateSide,
    pub input_dim: i64,
    pub hidden_dim: i64,
    pub layers: i64,
    pub bidirectional: bool,
    /// Dropout on the outputs of every layer but the last (training only).
    pub dropout: f64,
}

impl RnnShape {
    pub fn directions(&self) -> i64 {
        if self.bidirectional {
            2
        } else {
            1
        }
    }
}

/// The stack itself. Parameter names follow PyTorch (`weight_ih_l0_reverse`, ...).
#[derive(Debug)]
pub struct RnnStack {
    shape: RnnShape,
    /// `[layer][direction]`
    weights: Vec<Vec<LayerWeights>>,
}

/// A recurrent matrix's parameters under `path`: dense (`name`, `[rows, cols]`); or with the
/// rows `low_rank` chooses as factors `name_svd_u` (`[chosen, K]`) and `name_svd_v`
/// (`[K, cols]`), the other rows as `name_svd_rest`; or with the rows `int8` chooses as
/// `name_int8_q` (int8 `[chosen, cols]`, not trainable) and their steps `name_int8_scale`
/// (`[chosen]`), the other rows as `name_int8_rest`.
fn matrix_var(
    path: &nn::Path,
    name: &str,
    (rows, cols): (i64, i64),
    hidden: i64,
    (low_rank, int8): (Option<LowRank>, Option<Int8>),
    init: nn::Init,
) -> Matrix {
    if let Some(int8) = int8 {
        return Matrix::int8_var(
            path,
            name,
            (rows, cols),
            int8.rows.range(hidden, rows),
            init,
        );
    }
    match low_rank {
        None => Matrix::Dense(path.var(name, &[rows, cols], init)),
        Some(lr) => {
            let range = lr.row_range(hidden, rows);
            let chosen = range.end - range.start;
            let rest = (chosen < rows)
                .then(|| path.var(&format!("{name}_svd_rest"), &[rows - chosen, cols], init));
            Matrix::LowRank {
                u: path.var(&format!("{name}_svd_u"), &[chosen, lr.rank], init),
                v: path.var(&format!("{name}_svd_v"), &[lr.rank, cols], init),
                rows: range,
                rest,
            }
        }
    }
}

impl RnnStack {
    /// Creates the parameters under `path`, initialised like PyTorch's
    /// `U(-1/sqrt(H), 1/sqrt(H))`.
    pub fn new(path: &nn::Path, shape: RnnShape) -> Self {
        Self::with_low_rank(path, shape, None)
    }

    /// [`Self::new`] with the input and recurrent matrices factored as `low_rank` says.
    pub fn with_low_rank(path: &nn::Path, shape: RnnShape, low_rank: Option<LowRank>) -> Self {
        Self::compressed(path, shape, low_rank, None)
    }

    /// [`Self::new`] with the input and recurrent matrices factored as `low_rank` says, or
    /// partly int8 as `int8` says.
    pub fn compressed(
        path: &nn::Path,
        shape: RnnShape,
        low_rank: Option<LowRank>,
        int8: Option<Int8>,
    ) -> Self {
        let h = shape.hidden_dim;
        let rows = shape.cell.gate_count() * h;
        let bound = 1.0 / (h as f64).sqrt();
        let init = nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let weights = (0..shape.layers)
            .map(|layer| {
                (0..shape.directions())
                    .map(|dir| {
                        let input = if layer == 0 {
                            shape.input_dim
                        } else {
                            h * shape.directions()
                        };
                        let suffix = if dir == 1 { "_reverse" } else { "" };
                        LayerWeights {
                            w_ih: matrix_var(
                                path,
                                &format!("weight_ih_l{layer}{suffix}"),
                                (rows, input),
                                h,
                                (low_rank, int8),
                                init,
                            ),
                            w_hh: matrix_var(
                                path,
                                &format!("weight_hh_l{layer}{suffix}"),
                                (rows, h),
                                h,
                                (low_rank, int8),
                                init,
                            ),
                            b_ih: path.var(&format!("bias_ih_l{layer}{suffix}"), &[rows], init),
                            b_hh: path.var(&format!("bias_hh_l{layer}{suffix}"), &[rows], init),
                        }
                    })
                    .collect()
            })
            .collect();
        let stack = Self { shape, weights };
        stack.flatten_for_cudnn();
        stack
    }

    /// On CUDA, lays the fused cell's weights out in one cuDNN buffer, the variables
    /// becoming views into it (what PyTorch's `flatten_parameters` does). Without it cuDNN
    /// copies every weight into such a buffer at each call (each decoder step) and warns
    /// about it. Loading weights later copies into the same storage, so once suffices.
    pub fn flatten_for_cudnn(&self) {
        if self.factored() {
            return;
        }
        let weights = self.flat_weights_of(0, self.shape.layers);
        let on_cuda = weights.first().is_some_and(|w| w.device().is_cuda());
        if self.shape.executor == Executor::Step || !on_cuda || !tch::Cuda::cudnn_is_available() {
            return;
        }
        // cuDNN's mode numbers (ATen's cudnn RNN): 2 = LSTM, 3 = GRU.
        let mode = if self.shape.cell.is_lstm() { 2 } else { 3 };
        tch::no_grad(|| {
            let _ = Tensor::internal_cudnn_rnn_flatten_weight(
                &weights,
                4, // tensors per layer and direction: w_ih, w_hh, b_ih, b_hh
                self.shape.input_dim,
                mode,
                self.shape.hidden_dim,
                0, // no projection
                self.shape.layers,
                true, // batch first, as every call here
                self.shape.bidirectional,
            );
        });
    }

    pub fn shape(&self) -> RnnShape {
        self.shape
    }

    /// Runs the same parameters with another executor setting.
    pub fn set_executor(&mut self, executor: Executor) {
        self.shape.executor = executor;
    }

    /// The gate site of `layer` and `direction` of this stack.
    pub fn site(&self, layer: usize, direction: usize) -> GateSite {
        GateSite {
            side: self.shape.side,
            layer,
            direction,
        }
    }

    /// Whether some matrices are not dense: rank-K factors or int8 (then only the step
    /// executors run it).
    fn factored(&self) -> bool {
        self.weights
            .iter()
            .flatten()
            .any(|w| w.w_ih.dense().is_none() || w.w_hh.dense().is_none())
    }

    /// How this stack runs `part` in the pass `ctx` on `device`.
    pub fn exec(&self, part: RnnPart, ctx: &StepContext<'_>, device: Device) -> Exec {
        // Factored and int8 matrices run on the step executors only (the fused kernels take
        // dense float ones).
        let executor = if self.factored() {
            Executor::Step
        } else {
            self.shape.executor
        };
        pick(part, self.shape.cell, executor, ctx, device)
    }

    /// Weights of one layer and direction (for gate inspection and tests).
    pub fn weights(&self, layer: usize, direction: usize) -> &LayerWeights {
        &self.weights[layer][direction]
    }

    /// How the fused kernels run the stack: `(first layer, layer count)` per call. One call
    /// for all layers, except when training with dropout between layers: then one call per
    /// layer, with [`dropout`] (this crate's generator, not libtorch's) in between.
    fn fused_groups(&self, train: bool) -> Vec<(i64, i64)> {
        let layers = self.shape.layers;
        if train && self.shape.dropout > 0.0 && layers > 1 {
            (0..layers).map(|l| (l, 1)).collect()
        } else {
            vec![(0, layers)]
        }
    }

    /// The fused kernels' parameter list (libtorch's order) for `layers` layers from `first`;
    /// empty for a factored stack, which never runs there ([`Self::exec`]).
    fn flat_weights_of(&self, first: i64, layers: i64) -> Vec<&Tensor> {
        self.weights[first as usize..(first + layers) as usize]
            .iter()
            .flatten()
            .filter_map(|w| Some([w.w_ih.dense()?, w.w_hh.dense()?, &w.b_ih, &w.b_hh]))
            .flatten()
            .collect()
    }

    /// Zeros, `[layers * directions, B, H]`.
    pub fn zero_state(&self, batch: i64, like: &Tensor) -> RnnState {
        let shape = [
            self.shape.layers * self.shape.directions(),
            batch,
            self.shape.hidden_dim,
        ];
        let zeros = Tensor::zeros(shape, (like.kind(), like.device()));
        let c = self.shape.cell.is_lstm().then(|| zeros.zeros_like());
        RnnState { h: zeros, c }
    }

    /// Runs whole sequences with the executor [`crate::executor::pick`] chooses for an
    /// encoder.
    ///
    /// x: `[B, T, I]`; lengths: `[B]` i64, each in `1..=T` (any order) →
    /// (outputs `[B, T, directions*H]`, zero past each length; final state at each
    /// sequence's last real token).
    pub fn forward_seq(
        &self,
        x: &Tensor,
        lengths: &Tensor,
        ctx: &StepContext<'_>,
    ) -> (Tensor, RnnState) {
        match self.exec(RnnPart::Encoder, ctx, x.device()) {
            Exec::Fused => self.fused_seq(x, lengths, ctx.train),
            Exec::Prepared => self.sequence(x, lengths, ctx, true),
            Exec::Reference => self.sequence(x, lengths, ctx, false),
        }
    }

    /// [`Self::forward_seq`] on the reference equations, step by step, whatever the
    /// executor setting (tests hold the other executors to it).
    pub fn reference_seq(
        &self,
        x: &Tensor,
        lengths: &Tensor,
        ctx: &StepContext<'_>,
    ) -> (Tensor, RnnState) {
        self.sequence(x, lengths, ctx, false)
    }

    fn fused_seq(&self, x: &Tensor, lengths: &Tensor, train: bool) -> (Tensor, RnnState) {
        let (batch, time) = (x.size()[0], x.size()[1]);
        // libtorch's packing wants lengths sorted in decreasing order, on the CPU.
        let lengths_cpu = lengths.to_device(tch::Device::Cpu).to_kind(Kind::Int64);
        let (sorted_lengths, order) = lengths_cpu.sort(0, true);
        let inverse = order.argsort(0, false);
        let order = order.to_device(x.device());
        let inverse = inverse.to_device(x.device());
        let (data, batch_sizes) = x
            .index_select(0, &order)
            .internal_pack_padded_sequence(&sorted_lengths, true);
        let zero = self.zero_state(batch, x);
        let s = self.shape;
        let mut packed_out = data;
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        for (i, (first, layers)) in self.fused_groups(train).into_iter().enumerate() {
            if i > 0 {
                packed_out = dropout(&packed_out, s.dropout, true);
            }
            let params = self.flat_weights_of(first, layers);
            let rows = first * s.directions();
            let h0 = zero.h.narrow(0, rows, layers * s.directions());
            if s.cell.is_lstm() {
                let c0 = zero.c.as_ref().expect("lstm state has c");
                let c0 = c0.narrow(0, rows, layers * s.directions());
                let (out, h, c) = Tensor::lstm_data(
                    &packed_out,
                    &batch_sizes,
                    &[&h0, &c0],
                    &params,
                    true,
                    layers,
                    0.0,
                    train,
                    s.bidirectional,
                );
                packed_out = out;
                hs.push(h);
                cs.push(c);
            } else {
                let (out, h) = Tensor::gru_data(
                    &packed_out,
                    &batch_sizes,
                    &h0,
                    &params,
                    true,
                    layers,
                    0.0,
                    train,
                    s.bidirectional,
                );
                packed_out = out;
                hs.push(h);
            }
        }
        let h = Tensor::cat(&hs, 0);
        let c = (!cs.is_empty()).then(|| Tensor::cat(&cs, 0));
        let (out, _) =
            Tensor::internal_pad_packed_sequence(&packed_out, &batch_sizes, true, 0.0, time);
        let state = RnnState {
            h: h.index_select(1, &inverse),
            c: c.map(|c| c.index_select(1, &inverse)),
        };
        (out.index_select(0, &inverse), state)
    }

    /// The step executors over whole sequences, layer by layer: `fast` runs LSTMs as
    /// [`Self::fast_direction`], otherwise [`Self::reference_direction`].
    fn sequence(
        &self,
        x: &Tensor,
        lengths: &Tensor,
        ctx: &StepContext<'_>,
        fast: bool,
    ) -> (Tensor, RnnState) {
        let time = x.size()[1];
        let lengths = lengths.to_device(x.device()).to_kind(Kind::Int64);
        // valid[b, t] = t < length[b], as [B, T, 1].
        let steps = Tensor::arange(time, (Kind::Int64, x.device()));
        let valid = steps
            .unsqueeze(0)
            .lt_tensor(&lengths.unsqueeze(1))
            .unsqueeze(-1);
        let mut input = x.shallow_clone();
        let (mut final_h, mut final_c) = (Vec::new(), Vec::new());
        for (layer, directions) in self.weights.iter().enumerate() {
            let mut outputs = Vec::with_capacity(directions.len());
            for (dir, w) in directions.iter().enumerate() {
                let seq = if dir == 1 {
                    reverse_within_length(&input, &lengths)
                } else {
                    input.shallow_clone()
                };
                let site = self.site(layer, dir);
                let (out, h, c) = if fast && self.shape.cell.is_lstm() {
                    self.fast_direction(&seq, &valid, w, site, ctx)
                } else {
                    self.reference_direction(&seq, &valid, w, site, ctx)
                };
                outputs.push(if dir == 1 {
                    reverse_within_length(&out, &lengths)
                } else {
                    out
                });
                final_h.push(h);
                final_c.extend(c);
            }
            input = Tensor::cat(&outputs, -1);
            if ctx.train && self.shape.dropout > 0.0 && layer + 1 < self.weights.len() {
                input = dropout(&input, self.shape.dropout, true);
            }
        }
        (input, RnnState::stack(final_h, final_c))
    }

    /// One direction of one layer over time on the reference equations, freezing the state
    /// on padding. seq: `[B, T, I]`, valid: `[B, T, 1]` bool → (out `[B, T, H]`, h `[B, H]`, c).
    fn reference_direction(
        &self,
        seq: &Tensor,
        valid: &Tensor,
        w: &LayerWeights,
        site: GateSite,
        ctx: &StepContext<'_>,
    ) -> (Tensor, Tensor, Option<Tensor>) {
        let hidden = self.shape.hidden_dim;
        self.over_time(
            seq,
            &seq.unbind(1),
            valid,
            site,
            ctx,
            |t, x_t, h, c, keep| match c {
                Some(c_prev) => {
                    let noise = ctx
                        .noise_for(site, t, 1, x_t.size()[0], hidden, x_t.device())
                        .map(|n| n.squeeze_dim(0));
                    let gates = lstm_gates(x_t, h, w, &ctx.gates, noise.as_ref());
                    record_lstm(ctx, site, t, &gates, keep);
                    let (h_new, c_new) = lstm_apply(&gates, c_prev);
                    (h_new, Some(c_new))
                }
                None => (gru_recorded(x_t, h, w, ctx, site, t, Some(keep)), None),
            },
        )
    }

    /// One direction of one LSTM layer over time, fast: the input projection of all steps
    /// (biases, gate temperature and noise included) in one GEMM, then one GEMM of the state
    /// per step. Same equations as [`Self::reference_direction`]; the temperature is folded
    /// into the weights, so the rounding differs slightly.
    fn fast_direction(
        &self,
        seq: &Tensor,
        valid: &Tensor,
        w: &LayerWeights,
        site: GateSite,
        ctx: &StepContext<'_>,
    ) -> (Tensor, Tensor, Option<Tensor>) {
        let (batch, time) = (seq.size()[0], seq.size()[1]);
        let hidden = self.shape.hidden_dim;
        let scaled = |t: Tensor| ctx.gates.scale_gate_rows(t);
        let w_ih = w.w_ih.scale_rows(scaled);
        let w_hh = w.w_hh.scale_rows(scaled);
        // Dense: one `addmm` per step with the transposed matrix made once.
        let w_hh_t = w_hh.dense().map(|t| t.tr());
        let bias = scaled(&w.b_ih + &w.b_hh);
        // [B, T, 4H]
        let mut ahead = w_ih.linear(seq, Some(&bias));
        if let Some(noise) = ctx.noise_for(site, 0, time, batch, hidden, seq.device()) {
            // Out of place: autograd keeps the projection's result as it was.
            ahead = ahead.g_add(&noise.transpose(0, 1));
        }
        // Views, one per step: autograd stacks their gradients once.
        self.over_time(
            seq,
            &ahead.unbind(1),
            valid,
            site,
            ctx,
            |t, ahead_t, h, c, keep| {
                let c_prev = c.expect("an LSTM stack carries a cell state");
                let pre = match &w_hh_t {
                    Some(w_hh_t) => ahead_t.addmm(h, w_hh_t),
                    None => ahead_t + w_hh.linear(h, None),
                };
                let gates = lstm_gates_from(&pre, ctx.gates.hard);
                record_lstm(ctx, site, t, &gates, keep);
                let (h_new, c_new) = lstm_apply(&gates, c_prev);
                (h_new, Some(c_new))
            },
        )
    }

    /// The time loop both step executors share: `cell(t, input_t, h, c, keep)` gives a step's
    /// new `h` and `c`; rows past their end (`keep` false) keep their state and output zeros.
    /// The pass's recorder, if any, sees each step's new state (`site` names it).
    ///
    /// like: a tensor of the batch's kind and device, `[B, ..]`; inputs: one `[B, ..]` per
    /// step; valid: `[B, T, 1]` bool → (out `[B, T, H]`, final h `[B, H]`, final c).
    fn over_time(
        &self,
        like: &Tensor,
        inputs: &[Tensor],
        valid: &Tensor,
        site: GateSite,
        ctx: &StepContext<'_>,
        mut cell: impl FnMut(
            i64,
            &Tensor,
            &Tensor,
            Option<&Tensor>,
            &Tensor,
        ) -> (Tensor, Option<Tensor>),
    ) -> (Tensor, Tensor, Option<Tensor>) {
        let zero = Tensor::zeros(
            [like.size()[0], self.shape.hidden_dim],
            (like.kind(), like.device()),
        );
        let mut h = zero.shallow_clone();
        let mut c = self.shape.cell.is_lstm().then(|| zero.zeros_like());
        let mut outs = Vec::with_capacity(inputs.len());
        for (t, input) in inputs.iter().enumerate() {
            let keep = valid.select(1, t as i64);
            let (h_new, c_new) = cell(t as i64, input, &h, c.as_ref(), &keep);
            if let Some(recorder) = ctx.recorder {
                let valid = keep.squeeze_dim(-1);
                recorder.record_state(site, t as i64, &h_new, c_new.as_ref(), Some(&valid));
            }
            if let (Some(c_prev), Some(c_new)) = (&c, c_new) {
                let frozen = c_new.where_self(&keep, c_prev);
                c = Some(frozen);
            }
            h = h_new.where_self(&keep, &h);
            outs.push(&h_new * &keep);
        }
        (Tensor::stack(&outs, 1), h, c)
    }

    /// One time step of a unidirectional stack (the decoder), on libtorch's fused kernels
    /// when [`crate::executor::pick`] allows them for [`RnnPart::DecoderStep`], else on the
    /// reference equations. `step` is the time step (it keys the gate noise and the recorder).
    ///
    /// x: `[B, I]`, state: `[layers, B, H]` → (top-layer output `[B, H]`, new state).
    pub fn step(
        &self,
        x: &Tensor,
        state: &RnnState,
        ctx: &StepContext<'_>,
        step: i64,
    ) -> (Tensor, RnnState) {
        assert!(
            !self.shape.bidirectional,
            "step() runs unidirectional stacks only"
        );
        let s = self.shape;
        let train = ctx.train;
        if self.exec(RnnPart::DecoderStep, ctx, x.device()) == Exec::Fused {
            let mut out = x.unsqueeze(1);
            let (mut hs, mut cs) = (Vec::new(), Vec::new());
            for (i, (first, layers)) in self.fused_groups(train).into_iter().enumerate() {
                if i > 0 {
                    out = dropout(&out, s.dropout, true);
                }
                let params = self.flat_weights_of(first, layers);
                let h0 = state.h.narrow(0, first, layers);
                match &state.c {
                    Some(c) => {
                        let c0 = c.narrow(0, first, layers);
                        let (o, h, c) =
                            out.lstm(&[&h0, &c0], &params, true, layers, 0.0, train, false, true);
                        out = o;
                        hs.push(h);
                        cs.push(c);
                    }
                    None => {
                        let (o, h) = out.gru(&h0, &params, true, layers, 0.0, train, false, true);
                        out = o;
                        hs.push(h);
                    }
                }
            }
            let h = Tensor::cat(&hs, 0);
            let c = (!cs.is_empty()).then(|| Tensor::cat(&cs, 0));
            return (out.squeeze_dim(1), RnnState { h, c });
        }
        let batch = x.size()[0];
        let mut input = x.shallow_clone();
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        for (layer, directions) in self.weights.iter().enumerate() {
            let w = &directions[0];
            let site = self.site(layer, 0);
            let (h, c) = state.layer(layer as i64);
            let h_new = match c {
                Some(c) => {
                    let noise = ctx
                        .noise_for(site, step, 1, batch, s.hidden_dim, x.device())
                        .map(|n| n.squeeze_dim(0));
                    let gates = lstm_gates(&input, &h, w, &ctx.gates, noise.as_ref());
                    if let Some(recorder) = ctx.recorder {
                        recorder.record(site, step, RecordedGates::Lstm(&gates), None);
                    }
                    let (h_new, c_new) = lstm_apply(&gates, &c);
                    if let Some(recorder) = ctx.recorder {
                        recorder.record_state(site, step, &h_new, Some(&c_new), None);
                    }
                    cs.push(c_new);
                    h_new
                }
                None => {
                    let h_new = gru_recorded(&input, &h, w, ctx, site, step, None);
                    if let Some(recorder) = ctx.recorder {
                        recorder.record_state(site, step, &h_new, None, None);
                    }
                    h_new
                }
            };
            input = if train && s.dropout > 0.0 && layer + 1 < self.weights.len() {
                dropout(&h_new, s.dropout, true)
            } else {
                h_new.shallow_clone()
            };
            hs.push(h_new);
        }
        (input, RnnState::stack(hs, cs))
    }
}

/// The weights of a unidirectional LSTM stack rearranged for the fast step executor
/// ([`crate::executor::Exec::Prepared`]), where every step's input is known up front except
/// its last columns (the decoder's input feeding): [`RnnStack::prepare`] makes it once per
/// pass, [`RnnStack::ahead`] projects the known columns of all steps in one GEMM,
/// [`RnnStack::step_prepared`] runs a step.
///
/// Same equations and parameters as [`RnnStack::step`]; less work per step: layer 0 projects
/// only the late columns, and each layer multiplies `[x; h]` by `[W_ih W_hh]` in one GEMM
/// instead of two GEMMs and an add (int8 matrices too, when they share their row steps, as
/// `nmt-bundle compress --int8` stores the decoder's). The gate temperature of the pass is folded into the
/// weights (the input and forget rows times `1/τ`). The rearranged weights are built from
/// the parameters with differentiable ops, so gradients reach the parameters as usual
/// (summed over the steps by one backward `cat`/`narrow` per weight rather than per step).
#[derive(Debug)]
pub struct PreparedStack {
    /// Leading input columns of layer 0 projected ahead of the loop.
    ahead_dim: i64,
    /// Layer 0: `W_ih[:, :ahead_dim]`, `[4H, ahead_dim]`.
    w_ahead: Matrix,
    /// Layer 0: `b_ih + b_hh`, `[4H]`.
    b_ahead: Tensor,
    /// Per layer: the step's weights.
    w_step: Vec<StepWeights>,
    /// Per layer but the first: `b_ih + b_hh`, `[4H]`.
    b_step: Vec<Tensor>,
}

/// One layer's weights in a prepared step.
#[derive(Debug)]
enum StepWeights {
    /// `[W_ih (late columns for layer 0) | W_hh]`, `[4H, I' + H]`: one GEMM of `[x; h]`.
    Joint(Tensor),
    /// Int8 matrices quantized with one step per row for both ([`Matrix::join_columns`]):
    /// `[W_ih (late columns for layer 0) | W_hh]` as one int8 matrix, one kernel call of
    /// `[x; h]`.
    JointInt8(Matrix),
    /// Factored matrices ([`Matrix::LowRank`]), and int8 ones with their own steps, cannot
    /// be joined: `x W_ih^T + h W_hh^T`. (Also the reference the joint forms are held to.)
    Split { ih: Matrix, hh: Matrix },
}

impl RnnStack {
    /// Rearranged weights for [`Self::step_prepared`], the first `ahead_dim` input columns to
    /// be projected ahead by [`Self::ahead`]; `None` where that path does not apply (GRU
    /// cells, two directions, `ahead_dim` outside `0..=input_dim`).
    ///
    /// The weights are those of the pass `ctx` (its gate temperature folded in): a pass with
    /// other gates (training after inference) needs its own.
    pub fn prepare(&self, ahead_dim: i64, ctx: &StepContext<'_>) -> Option<PreparedStack> {
        let s = self.shape;
        if !s.cell.is_lstm() || s.bidirectional || !(0..=s.input_dim).contains(&ahead_dim) {
            return None;
        }
        let layer0 = &self.weights[0][0];
        let scaled = |t: Tensor| ctx.gates.scale_gate_rows(t);
        let late = s.input_dim - ahead_dim;
        let w_step = self
            .weights
            .iter()
            .enumerate()
            .map(|(layer, dirs)| {
                let w = &dirs[0];
                let w_ih = if layer == 0 {
                    w.w_ih.narrow_columns(ahead_dim, late)
                } else {
                    w.w_ih.shallow_clone()
                };
                match (w_ih.dense(), w.w_hh.dense()) {
                    (Some(ih), Some(hh)) => StepWeights::Joint(scaled(Tensor::cat(&[ih, hh], 1))),
                    _ => match Matrix::join_columns(&w_ih, &w.w_hh) {
                        Some(joint) => StepWeights::JointInt8(joint.scale_rows(scaled)),
                        None => StepWeights::Split {
                            ih: w_ih.scale_rows(scaled),
                            hh: w.w_hh.scale_rows(scaled),
                        },
                    },
                }
            })
            .collect();
        let b_step = self.weights[1..]
            .iter()
            .map(|dirs| scaled(&dirs[0].b_ih + &dirs[0].b_hh))
            .collect();
        Some(PreparedStack {
            ahead_dim,
            w_ahead: layer0.w_ih.narrow_columns(0, ahead_dim).scale_rows(scaled),
            b_ahead: scaled(&layer0.b_ih + &layer0.b_hh),
            w_step,
            b_step,
        })
    }

    /// Layer 0's gate pre-activations from the known input columns, biases (and the gate
    /// temperature) included; the noise is added per step by [`Self::step_prepared`].
    ///
    /// x: `[.., ahead_dim]` → `[.., 4H]`
    pub fn ahead(&self, prepared: &PreparedStack, x: &Tensor) -> Tensor {
        prepared.w_ahead.linear(x, Some(&prepared.b_ahead))
    }

    /// One step of [`Self::step`] from layer 0's precomputed part. `step` is the time step
    /// (it keys the gate noise and the recorder).
    ///
    /// ahead: `[B, 4H]` (a row of [`Self::ahead`]); late: `[B, input_dim − ahead_dim]`;
    /// state: `[layers, B, H]` → (top-layer output `[B, H]`, new state).
    pub fn step_prepared(
        &self,
        prepared: &PreparedStack,
        ahead: &Tensor,
        late: &Tensor,
        state: &RnnState,
        ctx: &StepContext<'_>,
        step: i64,
    ) -> (Tensor, RnnState) {
        let s = self.shape;
        debug_assert_eq!(late.size()[1], s.input_dim - prepared.ahead_dim);
        let c_all = state.c.as_ref().expect("prepared stacks are LSTMs");
        let rows = late.size()[0];
        let mut input = late.shallow_clone();
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        for (layer, w_step) in prepared.w_step.iter().enumerate() {
            let site = self.site(layer, 0);
            let h = state.h.get(layer as i64);
            let known = if layer == 0 {
                ahead
            } else {
                &prepared.b_step[layer - 1]
            };
            let mut pre = match w_step {
                StepWeights::Joint(w) => known.addmm(&Tensor::cat(&[&input, &h], 1), &w.tr()),
                StepWeights::JointInt8(w) => w.linear(&Tensor::cat(&[&input, &h], 1), Some(known)),
                StepWeights::Split { ih, hh } => {
                    known + ih.linear(&input, None) + hh.linear(&h, None)
                }
            };
            if let Some(noise) = ctx.noise_for(site, step, 1, rows, s.hidden_dim, late.device()) {
                pre = pre.g_add(&noise.squeeze_dim(0));
            }
            let gates = lstm_gates_from(&pre, ctx.gates.hard);
            if let Some(recorder) = ctx.recorder {
                recorder.record(site, step, RecordedGates::Lstm(&gates), None);
            }
            let (h_new, c_new) = lstm_apply(&gates, &c_all.get(layer as i64));
            if let Some(recorder) = ctx.recorder {
                recorder.record_state(site, step, &h_new, Some(&c_new), None);
            }
            input = if ctx.train && s.dropout > 0.0 && layer + 1 < prepared.w_step.len() {
                dropout(&h_new, s.dropout, true)
            } else {
                h_new.shallow_clone()
            };
            hs.push(h_new);
            cs.push(c_new);
        }
        (input, RnnState::stack(hs, cs))
    }
}

/// One GRU step on the reference equations ([`gru_gates`]), its gates handed to the pass's
/// recorder, if any. x: `[B, I]`, h: `[B, H]`, keep: `[B, 1]` bool → `[B, H]`.
fn gru_recorded(
    x: &Tensor,
    h: &Tensor,
    w: &LayerWeights,
    ctx: &StepContext<'_>,
    site: GateSite,
    step: i64,
    keep: Option<&Tensor>,
) -> Tensor {
    let (r, z, n) = gru_gates(x, h, w);
    if let Some(recorder) = ctx.recorder {
        let gates = RecordedGates::Gru {
            reset: &r,
            update: &z,
        };
        let valid = keep.map(|k| k.squeeze_dim(-1));
        recorder.record(site, step, gates, valid.as_ref());
    }
    (1.0 - &z) * n + z * h
}

/// Hands one step's LSTM gates to the pass's recorder, if any; keep: `[B, 1]` bool.
fn record_lstm(ctx: &StepContext<'_>, site: GateSite, step: i64, gates: &LstmGates, keep: &Tensor) {
    if let Some(recorder) = ctx.recorder {
        recorder.record(
            site,
            step,
            RecordedGates::Lstm(gates),
            Some(&keep.squeeze_dim(-1)),
        );
    }
}

/// Reverses each sequence within its own length, leaving padding in place:
/// `[a b c PAD]` becomes `[c b a PAD]`. Its own inverse.
///
/// x: `[B, T, D]`, lengths: `[B]` i64 → `[B, T, D]`
pub fn reverse_within_length(x: &Tensor, lengths: &Tensor) -> Tensor {
    let size = x.size();
    let steps = Tensor::arange(size[1], (Kind::Int64, x.device())).unsqueeze(0);
    let lengths = lengths.to_device(x.device()).unsqueeze(1);
    let reversed = &lengths - 1 - &steps;
    let index = reversed.where_self(
        &steps.lt_tensor(&lengths),
        &steps.expand([size[0], size[1]], false),
    );
    x.gather(1, &index.unsqueeze(-1).expand(&size, false), false)
}
