//! G2-LSTM's gates: the noise has the logistic distribution on the fraction `p` it should,
//! the fast executors equal the reference equations under the same noise, `gumbel` with
//! `τ = 1, p = 0` is the textbook cell, and inference with Gumbel-trained weights is
//! deterministic and batch-invariant.

#[allow(dead_code)] // the tests here use only some of the helpers
mod common;

use model::cell::{lstm_gates, LayerWeights, Matrix};
use model::gates::{
    GateConfig, GateInference, GateKind, GateNoise, GateRecorder, GateSide, GateSite,
    RecordedGates, StepContext,
};
use model::rnn::{RnnShape, RnnStack};
use model::search::{greedy, MaxLength};
use model::{CellKind, Executor, ModelConfig, Seq2Seq};
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

fn gumbel(temperature: f64, noise_prob: f64) -> GateConfig {
    GateConfig {
        kind: GateKind::Gumbel,
        temperature,
        noise_prob,
        inference: GateInference::Soft,
    }
}

const SITE: GateSite = GateSite {
    side: GateSide::Encoder,
    layer: 0,
    direction: 0,
};

fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.reshape([-1])).unwrap()
}

#[test]
fn gate_noise_is_logistic_on_the_input_and_forget_columns() {
    let (steps, rows, hidden) = (40, 50, 60);
    let noise =
        GateNoise::from_seed(17).logistic(SITE, 0, steps, rows, hidden, 1.0, 1.0, Device::Cpu);
    assert_eq!(noise.size(), vec![steps, rows, 4 * hidden]);
    // Candidate and output columns get nothing.
    assert_eq!(
        values(&noise.narrow(2, 2 * hidden, 2 * hidden).abs().max()),
        vec![0.0]
    );
    let gate_noise = values(&noise.narrow(2, 0, 2 * hidden));
    let n = gate_noise.len() as f64;
    let mean = gate_noise.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = gate_noise
        .iter()
        .map(|&x| (x as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    // Logistic(0, 1): mean 0, variance π²/3. With n = 240,000 draws the standard error of
    // the mean is 0.0037 and of the variance about 0.015.
    assert!(mean.abs() < 0.02, "mean {mean}");
    let expected_var = std::f64::consts::PI.powi(2) / 3.0;
    assert!(
        (var - expected_var).abs() < 0.08,
        "variance {var}, expected {expected_var}"
    );
    // The distribution function at a few points: 1 / (1 + e^-x).
    for x in [-3.0f64, -1.0, 0.0, 0.5, 2.0] {
        let below = gate_noise.iter().filter(|&&v| (v as f64) < x).count() as f64 / n;
        let cdf = 1.0 / (1.0 + (-x).exp());
        assert!(
            (below - cdf).abs() < 0.005,
            "P(n < {x}) = {below}, logistic gives {cdf}"
        );
    }
}

#[test]
fn a_fraction_p_of_the_gate_elements_is_noised() {
    let (steps, rows, hidden) = (30, 40, 64);
    for p in [0.2, 0.5] {
        let noise =
            GateNoise::from_seed(3).logistic(SITE, 0, steps, rows, hidden, p, 1.0, Device::Cpu);
        let gates = values(&noise.narrow(2, 0, 2 * hidden));
        let noised = gates.iter().filter(|&&v| v != 0.0).count() as f64 / gates.len() as f64;
        // 153,600 elements: the standard error of the fraction is about 0.0013.
        assert!(
            (noised - p).abs() < 0.01,
            "p = {p}: {noised} of the elements noised"
        );
    }
    let none = GateNoise::from_seed(3).logistic(SITE, 0, 5, 6, 8, 0.0, 1.0, Device::Cpu);
    assert_eq!(values(&none.abs().max()), vec![0.0]);
}

#[test]
fn gate_noise_is_keyed_by_site_and_step_and_scaled() {
    let noise = GateNoise::from_seed(9);
    let all = noise.logistic(SITE, 0, 6, 5, 4, 0.5, 1.0, Device::Cpu);
    // Step by step, or fewer rows: the same numbers.
    for step in 0..6 {
        let one = noise.logistic(SITE, step, 1, 3, 4, 0.5, 1.0, Device::Cpu);
        assert_eq!(values(&one), values(&all.get(step).narrow(0, 0, 3)));
    }
    let scaled = noise.logistic(SITE, 0, 6, 5, 4, 0.5, 1.0 / 0.9, Device::Cpu);
    assert!(max_diff(&scaled, &(&all / 0.9)) < 1e-5);
    let other_site = GateSite {
        direction: 1,
        ..SITE
    };
    let other = noise.logistic(other_site, 0, 6, 5, 4, 0.5, 1.0, Device::Cpu);
    assert!(
        max_diff(&other, &all) > 0.1,
        "another site must draw other noise"
    );
    let other_seed = GateNoise::from_seed(10).logistic(SITE, 0, 6, 5, 4, 0.5, 1.0, Device::Cpu);
    assert!(
        max_diff(&other_seed, &all) > 0.1,
        "another seed must draw other noise"
    );
}

#[test]
fn gumbel_with_unit_temperature_and_no_noise_is_the_textbook_cell() {
    tch::manual_seed(21);
    let vs = nn::VarStore::new(Device::Cpu);
    let p = vs.root();
    let init = nn::Init::Uniform { lo: -0.5, up: 0.5 };
    let w = LayerWeights {
        w_ih: Matrix::Dense(p.var("w_ih", &[4 * 7, 5], init)),
        w_hh: Matrix::Dense(p.var("w_hh", &[4 * 7, 7], init)),
        b_ih: p.var("b_ih", &[4 * 7], init),
        b_hh: p.var("b_hh", &[4 * 7], init),
    };
    let x = Tensor::randn([4, 5], (Kind::Float, Device::Cpu)) * 3.0;
    let h = Tensor::randn([4, 7], (Kind::Float, Device::Cpu));
    let c = Tensor::randn([4, 7], (Kind::Float, Device::Cpu));
    let activation = gumbel(1.0, 0.0).activation(true);
    let ctx = StepContext::new(&gumbel(1.0, 0.0), true);
    assert!(ctx.noise.is_none(), "p = 0 draws no noise");
    let gates = lstm_gates(&x, &h, &w, &activation, None);
    let (h_ours, c_ours) = model::cell::lstm_apply(&gates, &c);
    let (h_ref, c_ref) = common::libtorch_lstm_cell(&x, &h, &c, &w);
    assert!(max_diff(&h_ours, &h_ref) < 1e-6);
    assert!(max_diff(&c_ours, &c_ref) < 1e-6);
    // With τ = 0.5 the same inputs give other gates: the temperature is applied.
    let sharper = lstm_gates(&x, &h, &w, &gumbel(0.5, 0.0).activation(true), None);
    assert!(max_diff(&sharper.input, &gates.input) > 1e-2);
    assert!(
        max_diff(&sharper.output, &gates.output) == 0.0,
        "output gate untouched"
    );
}

fn encoder_stack(vs: &nn::VarStore, layers: i64) -> RnnStack {
    RnnStack::new(
        &vs.root(),
        RnnShape {
            cell: CellKind::Lstm,
            executor: Executor::Step,
            side: GateSide::Encoder,
            input_dim: 5,
            hidden_dim: 7,
            layers,
            bidirectional: true,
            dropout: 0.0,
        },
    )
}

#[test]
fn the_fast_encoder_equals_the_reference_under_the_same_gumbel_noise() {
    tch::manual_seed(5);
    let vs = nn::VarStore::new(Device::Cpu);
    let rnn = encoder_stack(&vs, 2);
    let x = Tensor::randn([3, 6, 5], (Kind::Float, Device::Cpu));
    let lengths = Tensor::from_slice(&[4i64, 6, 2]);
    for gates in [
        gumbel(0.9, 0.2),
        gumbel(0.5, 1.0),
        GateConfig::of_kind(GateKind::Sharpened),
    ] {
        let noise = (gates.noise_prob > 0.0).then(|| GateNoise::from_seed(77));
        let ctx = StepContext::new(&gates, true).with_noise(noise);
        let (fast_out, fast_state) = rnn.forward_seq(&x, &lengths, &ctx);
        let (ref_out, ref_state) = rnn.reference_seq(&x, &lengths, &ctx);
        assert!(
            max_diff(&fast_out, &ref_out) < 1e-5,
            "{gates:?}: outputs differ"
        );
        assert!(max_diff(&fast_state.h, &ref_state.h) < 1e-5);
        assert!(
            max_diff(
                fast_state.c.as_ref().unwrap(),
                ref_state.c.as_ref().unwrap()
            ) < 1e-5
        );
        // The same gradients reach the weights.
        let grad_of = |out: &Tensor| {
            let w = rnn.weights(0, 1).w_ih.dense().unwrap();
            let mut w2 = w.shallow_clone();
            w2.zero_grad();
            (out * out.ones_like().cumsum(2, Kind::Float))
                .sum(Kind::Float)
                .backward();
            w.grad().copy()
        };
        let (g_fast, g_ref) = (grad_of(&fast_out), grad_of(&ref_out));
        assert!(
            max_diff(&g_fast, &g_ref) < 1e-4,
            "{gates:?}: gradients differ"
        );
        // The noise and temperature are really applied: the standard cell gives other outputs.
        let plain = StepContext::new(&GateConfig::default(), true);
        let (plain_out, _) = rnn.forward_seq(&x, &lengths, &plain);
        assert!(
            max_diff(&plain_out, &fast_out) > 1e-3,
            "{gates:?} made no difference"
        );
    }
}

fn decoder_model(gates: GateConfig) -> (nn::VarStore, Seq2Seq) {
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ModelConfig {
        embed_dim: 8,
        hidden_dim: 6,
        dropout: 0.0,
        gates,
        ..ModelConfig::new(20, 17)
    };
    let model = Seq2Seq::new(&vs.root(), &cfg).unwrap();
    (vs, model)
}

#[test]
fn the_prepared_decoder_equals_the_reference_steps_under_the_same_noise() {
    tch::manual_seed(8);
    let (_vs, model) = decoder_model(gumbel(0.9, 0.5));
    let src = Tensor::from_slice(&[9i64, 8, 7, 6, 5, 0, 4, 0, 0]).view([3, 3]);
    let src_lengths = Tensor::from_slice(&[3i64, 2, 1]);
    let tgt_in = Tensor::from_slice(&[2i64, 5, 6, 7, 2, 6, 7, 0, 2, 9, 0, 0]).view([3, 4]);
    // Sorted longest first, so both passes see the rows in the same order.
    let tgt_lengths = [4i64, 3, 2];
    let ctx = model
        .context(true)
        .with_noise(Some(GateNoise::from_seed(5)));
    let full = model.forward(&src, &src_lengths, &tgt_in, &ctx);
    let (packed, positions) = model.forward_packed(&src, &src_lengths, &tgt_in, &tgt_lengths, &ctx);
    let gathered = full.view([-1, 17]).index_select(0, &positions);
    assert!(max_diff(&packed, &gathered) < 1e-5, "logits differ");
    let other = model
        .context(true)
        .with_noise(Some(GateNoise::from_seed(6)));
    let (packed_other, _) = model.forward_packed(&src, &src_lengths, &tgt_in, &tgt_lengths, &other);
    assert!(
        max_diff(&packed, &packed_other) > 1e-4,
        "other noise, same logits"
    );
}

/// Counts the gate values it is shown, and the smallest and largest input gate.
#[derive(Default)]
struct Census(std::sync::Mutex<(usize, f64, f64)>);

impl GateRecorder for Census {
    fn record(
        &self,
        _site: GateSite,
        _step: i64,
        gates: RecordedGates<'_>,
        _valid: Option<&Tensor>,
    ) {
        if let RecordedGates::Lstm(g) = gates {
            let mut c = self.0.lock().unwrap();
            c.0 += g.input.numel();
            c.1 = c.1.min(g.input.min().double_value(&[]));
            c.2 = c.2.max(g.input.max().double_value(&[]));
        }
    }
}

#[test]
fn hard_inference_gates_are_zero_or_one() {
    tch::manual_seed(2);
    let gates = GateConfig {
        inference: GateInference::Hard,
        ..gumbel(0.9, 0.2)
    };
    let (_vs, model) = decoder_model(gates);
    let src = Tensor::from_slice(&[9i64, 8, 7, 6, 5, 0]).view([2, 3]);
    let lengths = Tensor::from_slice(&[3i64, 2]);
    let census = Census(std::sync::Mutex::new((0, f64::MAX, f64::MIN)));
    let ctx = model.context(false).with_recorder(&census);
    let _ = model.encode(&src, &lengths, &ctx);
    let (count, low, high) = *census.0.lock().unwrap();
    // 2 layers × 2 directions × 3 steps × 2 rows × 6 units.
    assert_eq!(count, 2 * 2 * 3 * 2 * 6);
    assert_eq!((low, high), (0.0, 1.0));
    let census = Census(std::sync::Mutex::new((0, f64::MAX, f64::MIN)));
    let soft = Seq2Seq::context(&model, false);
    let soft = StepContext {
        gates: GateConfig::default().activation(false),
        ..soft
    }
    .with_recorder(&census);
    let _ = model.encode(&src, &lengths, &soft);
    let (_, low, high) = *census.0.lock().unwrap();
    assert!(
        low > 0.0 && high < 1.0,
        "soft gates are strictly between 0 and 1"
    );
}

#[test]
fn inference_with_gumbel_trained_weights_is_deterministic_and_batch_invariant() {
    let (_vs, model) = common::with_seed(31, || {
        let (vs, model) = decoder_model(gumbel(0.9, 0.2));
        let mut opt = nn::Adam::default().build(&vs, 0.02).unwrap();
        let src = Tensor::from_slice(&[9i64, 8, 7, 6, 5, 4, 4, 0, 0]).view([3, 3]);
        let lengths = Tensor::from_slice(&[3i64, 3, 1]);
        let tgt_in = Tensor::from_slice(&[2i64, 7, 8, 9, 2, 4, 5, 6, 2, 4, 0, 0]).view([3, 4]);
        let tgt_out = Tensor::from_slice(&[7i64, 8, 9, 3, 4, 5, 6, 3, 4, 3, 0, 0]).view([3, 4]);
        for _ in 0..40 {
            let ctx = model.context(true);
            assert!(
                ctx.noise.is_some(),
                "training with gumbel gates draws noise"
            );
            let logits = model.forward(&src, &lengths, &tgt_in, &ctx);
            let loss = common::token_loss(&logits, &tgt_out, 17);
            opt.backward_step(&loss);
        }
        (vs, model)
    });
    let inference = model.context(false);
    assert!(inference.noise.is_none());
    let batch = Tensor::from_slice(&[9i64, 8, 7, 4, 0, 0, 6, 5, 4]).view([3, 3]);
    let lengths = Tensor::from_slice(&[3i64, 1, 3]);
    let enc_a = model.encode(&batch, &lengths, &inference);
    let enc_b = model.encode(&batch, &lengths, &inference);
    assert_eq!(
        max_diff(&enc_a.outputs, &enc_b.outputs),
        0.0,
        "inference is not deterministic"
    );
    for row in 0..3 {
        let len = lengths.int64_value(&[row]);
        let alone = batch.narrow(0, row, 1).narrow(1, 0, len);
        let enc_alone = model.encode(&alone, &Tensor::from_slice(&[len]), &inference);
        let in_batch = enc_a.outputs.narrow(0, row, 1).narrow(1, 0, len);
        assert!(
            max_diff(&enc_alone.outputs, &in_batch) < 1e-5,
            "row {row} depends on the batch"
        );
    }
    let max_len = MaxLength { a: 0.0, b: 6 };
    let first = greedy(&model, &batch, &lengths, max_len, false).unwrap();
    let again = greedy(&model, &batch, &lengths, max_len, false).unwrap();
    for (a, b) in first.iter().zip(&again) {
        assert_eq!(a.tokens, b.tokens);
        assert_eq!(a.score, b.score);
    }
    for row in 0..3 {
        let len = lengths.int64_value(&[row]);
        let alone = batch.narrow(0, row, 1).narrow(1, 0, len);
        let single = greedy(&model, &alone, &Tensor::from_slice(&[len]), max_len, false).unwrap();
        assert_eq!(single[0].tokens, first[row as usize].tokens, "row {row}");
    }
}
