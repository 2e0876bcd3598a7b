//! The step executors equal libtorch's fused kernels on the same weights, padding never
//! leaks, and the hand-written equations have the right gradients.

#[allow(dead_code)] // the tests here use only common::libtorch_lstm_cell
mod common;

use model::cell::{
    gru_step, lstm_apply, lstm_gates, lstm_gates_from, lstm_step, LayerWeights, Matrix,
};
use model::gates::{GateConfig, GateKind, GateNoise, GateSide, GateSite, StepContext};
use model::rnn::{reverse_within_length, RnnShape, RnnStack, RnnState};
use model::{CellKind, Executor};
use tch::{nn, Device, Kind, Tensor};

fn stack(vs: &nn::VarStore, cell: CellKind, layers: i64, bidirectional: bool) -> RnnStack {
    let shape = RnnShape {
        cell,
        executor: Executor::Auto,
        side: GateSide::Encoder,
        input_dim: 5,
        hidden_dim: 7,
        layers,
        bidirectional,
        dropout: 0.0,
    };
    RnnStack::new(&vs.root(), shape)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

fn assert_same_run(a: &(Tensor, RnnState), b: &(Tensor, RnnState), what: &str) {
    assert!(max_diff(&a.0, &b.0) < 1e-5, "{what}: outputs differ");
    assert!(max_diff(&a.1.h, &b.1.h) < 1e-5, "{what}: final h differ");
    match (&a.1.c, &b.1.c) {
        (Some(x), Some(y)) => assert!(max_diff(x, y) < 1e-5, "{what}: final c differ"),
        (None, None) => {}
        _ => panic!("{what}: one executor returned a cell state and the other not"),
    }
}

/// Runs one stack with the fused kernels, the step executor (the fast one for LSTMs) and the
/// reference equations over a padded batch.
fn compare_executors(cell: CellKind, layers: i64, bidirectional: bool) {
    tch::manual_seed(11);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut rnn = stack(&vs, cell, layers, bidirectional);
    let x = Tensor::randn([3, 6, 5], (Kind::Float, Device::Cpu));
    let lengths = Tensor::from_slice(&[4i64, 6, 1]);
    let ctx = StepContext::new(&GateConfig::default(), false);
    rnn.set_executor(Executor::Fused);
    let fused = rnn.forward_seq(&x, &lengths, &ctx);
    rnn.set_executor(Executor::Step);
    let step = rnn.forward_seq(&x, &lengths, &ctx);
    let reference = rnn.reference_seq(&x, &lengths, &ctx);
    assert_same_run(&fused, &step, "fused vs step");
    assert_same_run(&reference, &step, "reference vs step");
    // Outputs past each length are exactly zero.
    for (out, name) in [
        (&step.0, "step"),
        (&fused.0, "fused"),
        (&reference.0, "reference"),
    ] {
        let past_end = out
            .get(0)
            .narrow(0, 4, 2)
            .abs()
            .sum(Kind::Float)
            .double_value(&[])
            + out
                .get(2)
                .narrow(0, 1, 5)
                .abs()
                .sum(Kind::Float)
                .double_value(&[]);
        assert_eq!(past_end, 0.0, "{name}: output past a sentence's end");
    }
}

#[test]
fn our_lstm_equals_libtorch_fused_lstm() {
    compare_executors(CellKind::Lstm, 1, false);
    compare_executors(CellKind::Lstm, 3, false);
    compare_executors(CellKind::Lstm, 2, true);
}

#[test]
fn our_gru_equals_libtorch_fused_gru() {
    compare_executors(CellKind::Gru, 1, false);
    compare_executors(CellKind::Gru, 2, true);
}

#[test]
fn our_lstm_cell_equals_libtorch_lstm_cell() {
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let rnn = stack(&vs, CellKind::Lstm, 1, false);
    let w = rnn.weights(0, 0);
    let x = Tensor::randn([4, 5], (Kind::Float, Device::Cpu));
    let h = Tensor::randn([4, 7], (Kind::Float, Device::Cpu));
    let c = Tensor::randn([4, 7], (Kind::Float, Device::Cpu));
    let (h_ours, c_ours) = lstm_step(&x, &h, &c, w);
    let (h_ref, c_ref) = common::libtorch_lstm_cell(&x, &h, &c, w);
    assert!(max_diff(&h_ours, &h_ref) < 1e-6);
    assert!(max_diff(&c_ours, &c_ref) < 1e-6);
    let gw = gru_weights(&vs);
    let h_gru = gru_step(&x, &h, &gw);
    let h_gru_ref = x.gru_cell(
        &h,
        gw.w_ih.dense().unwrap(),
        gw.w_hh.dense().unwrap(),
        Some(&gw.b_ih),
        Some(&gw.b_hh),
    );
    assert!(max_diff(&h_gru, &h_gru_ref) < 1e-6);
}

fn gru_weights(vs: &nn::VarStore) -> LayerWeights {
    let p = vs.root() / "gru";
    let init = nn::Init::Uniform { lo: -0.5, up: 0.5 };
    LayerWeights {
        w_ih: Matrix::Dense(p.var("w_ih", &[21, 5], init)),
        w_hh: Matrix::Dense(p.var("w_hh", &[21, 7], init)),
        b_ih: p.var("b_ih", &[21], init),
        b_hh: p.var("b_hh", &[21], init),
    }
}

#[test]
fn hard_gates_are_the_sign_of_the_preactivation() {
    let pre = Tensor::from_slice(&[-2.0f32, 0.0, 3.0, -0.1, 1.0, -1.0, 0.5, 2.0]).view([1, 8]);
    let hard = lstm_gates_from(&pre, true);
    let soft = lstm_gates_from(&pre, false);
    let values = |t: &Tensor| Vec::<f32>::try_from(t.view([-1])).unwrap();
    assert_eq!(values(&hard.input), vec![0.0, 1.0]);
    assert_eq!(values(&hard.forget), vec![1.0, 0.0]);
    // Candidate and output gate are never hard.
    assert_eq!(values(&hard.candidate), values(&soft.candidate));
    assert_eq!(values(&hard.output), values(&soft.output));
    assert!((values(&soft.input)[0] - 1.0 / (1.0 + 2f32.exp())).abs() < 1e-7);
}

/// Central finite differences of a scalar function of `param` against autograd.
fn check_gradient(param: &Tensor, loss: impl Fn() -> Tensor) {
    let analytic = {
        param.shallow_clone().zero_grad();
        loss().backward();
        param.grad().copy()
    };
    let eps = 1e-6;
    let flat = param.view([-1]);
    let n = flat.size()[0];
    for i in (0..n).step_by(((n / 25).max(1)) as usize) {
        let orig = flat.double_value(&[i]);
        let at = |v: f64| {
            tch::no_grad(|| {
                let _ = flat.get(i).fill_(v);
            });
            tch::no_grad(|| loss().double_value(&[]))
        };
        let numeric = (at(orig + eps) - at(orig - eps)) / (2.0 * eps);
        tch::no_grad(|| {
            let _ = flat.get(i).fill_(orig);
        });
        let a = analytic.view([-1]).double_value(&[i]);
        assert!(
            (a - numeric).abs() < 1e-6 * (1.0 + numeric.abs()),
            "param[{i}]: autograd {a} vs finite difference {numeric}"
        );
    }
}

/// [`check_gradient`] of every weight of a layer.
fn check_layer_gradients(w: &LayerWeights, loss: impl Fn() -> Tensor) {
    for p in [
        w.w_ih.dense().unwrap(),
        w.w_hh.dense().unwrap(),
        &w.b_ih,
        &w.b_hh,
    ] {
        check_gradient(p, &loss);
    }
}

#[test]
fn lstm_and_gru_equations_match_finite_differences() {
    tch::manual_seed(7);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let rnn = stack(&vs, CellKind::Lstm, 1, false);
    vs.double();
    let w = rnn.weights(0, 0);
    let x = Tensor::randn([2, 5], (Kind::Double, Device::Cpu));
    let h = Tensor::randn([2, 7], (Kind::Double, Device::Cpu));
    let c = Tensor::randn([2, 7], (Kind::Double, Device::Cpu));
    let target = Tensor::randn([2, 7], (Kind::Double, Device::Cpu));
    // A loss through two steps, so the gradient also flows through the recurrence.
    let lstm_loss = || {
        let (h1, c1) = lstm_step(&x, &h, &c, w);
        let (h2, c2) = lstm_step(&x, &h1, &c1, w);
        ((h2 - &target).square().sum(Kind::Double)) + c2.sum(Kind::Double) * 0.1
    };
    check_layer_gradients(w, lstm_loss);
    // G2-LSTM's gates with a fixed draw of noise: σ((α + n)/τ) is differentiated right too.
    let g2 = GateConfig::of_kind(GateKind::Gumbel).activation(true);
    let site = GateSite {
        side: GateSide::Encoder,
        layer: 0,
        direction: 0,
    };
    let noise = GateNoise::from_seed(4)
        .logistic(site, 0, 2, 2, 7, 0.5, g2.scale, Device::Cpu)
        .to_kind(Kind::Double);
    assert!(noise.abs().max().double_value(&[]) > 0.0);
    let g2_loss = || {
        let gates = lstm_gates(&x, &h, w, &g2, Some(&noise.get(0)));
        let (h1, c1) = lstm_apply(&gates, &c);
        let gates = lstm_gates(&x, &h1, w, &g2, Some(&noise.get(1)));
        let (h2, c2) = lstm_apply(&gates, &c1);
        ((h2 - &target).square().sum(Kind::Double)) + c2.sum(Kind::Double) * 0.1
    };
    check_layer_gradients(w, g2_loss);
    let mut gvs = nn::VarStore::new(Device::Cpu);
    let gw = gru_weights(&gvs);
    gvs.double();
    let gru_loss = || {
        let h1 = gru_step(&x, &h, &gw);
        (gru_step(&x, &h1, &gw) - &target)
            .square()
            .sum(Kind::Double)
    };
    check_layer_gradients(&gw, gru_loss);
}

#[test]
fn reverse_within_length_keeps_padding_in_place() {
    let x = Tensor::from_slice(&[1i64, 2, 3, 0, 4, 5, 0, 0]).view([2, 4, 1]);
    let lengths = Tensor::from_slice(&[3i64, 2]);
    let r = reverse_within_length(&x, &lengths);
    assert_eq!(
        Vec::<i64>::try_from(r.view([-1])).unwrap(),
        vec![3, 2, 1, 0, 5, 4, 0, 0]
    );
    let back = reverse_within_length(&r, &lengths);
    assert_eq!(
        Vec::<i64>::try_from(back.view([-1])).unwrap(),
        vec![1, 2, 3, 0, 4, 5, 0, 0]
    );
}
