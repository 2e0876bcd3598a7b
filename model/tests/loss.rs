//! Label-smoothed cross-entropy: against a hand computation, padding neutrality, and the
//! output projection fused with the loss against autograd through the logits.

use model::loss::{label_smoothed_nll, projected_label_smoothed_nll};
use tch::{Device, Kind, Tensor};

fn log_softmax(row: &[f64]) -> Vec<f64> {
    let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = row.iter().map(|x| (x - max).exp()).sum::<f64>().ln() + max;
    row.iter().map(|x| x - lse).collect()
}

#[test]
fn matches_a_hand_computation() {
    // batch 1, 3 positions, vocab 4; gold ids 2, 3 and pad (0).
    let logits = [
        [0.1, 1.2, -0.3, 0.5],
        [2.0, -1.0, 0.0, 0.3],
        [9.0, 9.0, 9.0, 9.0],
    ];
    let gold = [2usize, 3, 0];
    let eps = 0.1;
    let v = 4.0;
    let mut expect_loss = 0.0;
    let mut expect_nll = 0.0;
    for t in 0..2 {
        let lp = log_softmax(&logits[t]);
        let nll = -lp[gold[t]];
        // (1-ε)·nll + ε · mean over the other V-1 entries of -log p.
        let others: f64 = (0..4)
            .filter(|&k| k != gold[t])
            .map(|k| -lp[k])
            .sum::<f64>()
            / (v - 1.0);
        expect_loss += (1.0 - eps) * nll + eps * others;
        expect_nll += nll;
    }
    let flat: Vec<f32> = logits.iter().flatten().map(|&x| x as f32).collect();
    let lt = Tensor::from_slice(&flat).view([1, 3, 4]);
    let tgt = Tensor::from_slice(&[2i64, 3, 0]).view([1, 3]);
    let out = label_smoothed_nll(&lt, &tgt, 0, eps).unwrap();
    assert_eq!(out.tokens, 2);
    assert!(
        (out.loss.double_value(&[]) - expect_loss).abs() < 1e-5,
        "{} vs {expect_loss}",
        out.loss.double_value(&[])
    );
    assert!((out.nll.double_value(&[]) - expect_nll).abs() < 1e-5);
}

#[test]
fn without_smoothing_it_is_summed_cross_entropy() {
    tch::manual_seed(1);
    let logits = Tensor::randn([3, 5, 11], (Kind::Float, Device::Cpu));
    let tgt = Tensor::randint_low(4, 11, [3, 5], (Kind::Int64, Device::Cpu));
    let out = label_smoothed_nll(&logits, &tgt, 0, 0.0).unwrap();
    let reference = logits
        .view([-1, 11])
        .cross_entropy_for_logits(&tgt.view([-1]))
        * 15.0;
    assert!((out.loss.double_value(&[]) - reference.double_value(&[])).abs() < 1e-3);
    assert_eq!(out.tokens, 15);
}

#[test]
fn padding_contributes_nothing_to_loss_or_gradient() {
    tch::manual_seed(2);
    let base = Tensor::randn([2, 4, 7], (Kind::Float, Device::Cpu));
    // Row 0 is padded after 2 tokens, row 1 after 3.
    let tgt = Tensor::from_slice(&[5i64, 6, 0, 0, 4, 4, 5, 0]).view([2, 4]);
    let logits = base.copy().set_requires_grad(true);
    let out = label_smoothed_nll(&logits, &tgt, 0, 0.2).unwrap();
    out.loss.backward();
    let grad = logits.grad();
    for (b, t) in [(0, 2), (0, 3), (1, 3)] {
        let g = grad.get(b).get(t).abs().sum(Kind::Float).double_value(&[]);
        assert_eq!(g, 0.0, "pad position ({b},{t}) got gradient {g}");
    }
    assert!(grad.get(0).get(0).abs().sum(Kind::Float).double_value(&[]) > 0.0);
    assert_eq!(out.tokens, 5);

    // Changing logits at pad positions (even to huge values) leaves the loss unchanged.
    let changed = base.copy();
    let _ = changed.get(0).get(3).fill_(1e4);
    let _ = changed.get(1).get(3).fill_(-3e4);
    let out2 = label_smoothed_nll(&changed, &tgt, 0, 0.2).unwrap();
    assert_eq!(out.loss.double_value(&[]), out2.loss.double_value(&[]));
    assert_eq!(out.nll.double_value(&[]), out2.nll.double_value(&[]));
}

#[test]
fn an_all_padding_batch_has_zero_loss_and_tokens() {
    let logits = Tensor::randn([1, 3, 5], (Kind::Float, Device::Cpu));
    let tgt = Tensor::zeros([1, 3], (Kind::Int64, Device::Cpu));
    let out = label_smoothed_nll(&logits, &tgt, 0, 0.1).unwrap();
    assert_eq!(out.tokens, 0);
    assert_eq!(out.loss.double_value(&[]), 0.0);
}

/// Largest difference, relative to the largest entry of `reference`.
fn relative_diff(got: &Tensor, reference: &Tensor) -> f64 {
    let scale = reference.abs().max().double_value(&[]).max(1e-12);
    (got - reference).abs().max().double_value(&[]) / scale
}

/// The fused loss against `label_smoothed_nll` on `hidden · weightᵀ + bias` differentiated by
/// autograd: same value, nll and tokens, and the same gradients for every input after the
/// loss is scaled (as the trainer's per-token normalisation does).
fn check_fused_against_autograd(gold: &[i64], vocab: i64, eps: f64, with_bias: bool) {
    let n = gold.len() as i64;
    let dim = 5;
    let hidden =
        (Tensor::randn([n, dim], (Kind::Float, Device::Cpu)) * 2.0).set_requires_grad(true);
    let weight = Tensor::randn([vocab, dim], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let bias = with_bias
        .then(|| Tensor::randn([vocab], (Kind::Float, Device::Cpu)).set_requires_grad(true));
    let gold = Tensor::from_slice(gold);
    let inputs: Vec<&Tensor> = [Some(&hidden), Some(&weight), bias.as_ref()]
        .into_iter()
        .flatten()
        .collect();
    let grads_of = |loss: &Tensor| -> Vec<Tensor> {
        for t in &inputs {
            let mut g = t.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        (loss * 0.37).backward();
        inputs.iter().map(|t| t.grad().copy()).collect()
    };

    let reference =
        label_smoothed_nll(&hidden.linear(&weight, bias.as_ref()), &gold, 0, eps).unwrap();
    let expected = grads_of(&reference.loss);
    let fused =
        projected_label_smoothed_nll(&hidden, &weight, bias.as_ref(), &gold, 0, eps).unwrap();
    let got = grads_of(&fused.loss);

    assert_eq!(fused.tokens, reference.tokens);
    let (a, b) = (
        fused.loss.double_value(&[]),
        reference.loss.double_value(&[]),
    );
    assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "loss {a} vs {b}");
    let (a, b) = (fused.nll.double_value(&[]), reference.nll.double_value(&[]));
    assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "nll {a} vs {b}");
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g.size(), e.size());
        let d = relative_diff(g, e);
        assert!(
            d < 1e-5,
            "gradient of input {i} differs by {d} (eps {eps}, bias {with_bias})"
        );
    }
}

#[test]
fn fused_projection_loss_equals_autograd_through_the_logits() {
    tch::manual_seed(3);
    // Pad (0) rows among real ones, a gold id repeated, smoothing on, with a bias (tied output).
    check_fused_against_autograd(&[4, 0, 7, 7, 12, 0, 1], 13, 0.1, true);
    // No smoothing, no bias (an untied projection without one), no padding.
    check_fused_against_autograd(&[2, 3, 5, 8], 9, 0.0, false);
    // Strong smoothing over a two-entry vocabulary.
    check_fused_against_autograd(&[1, 1, 0], 2, 0.4, true);
}

#[test]
fn fused_projection_loss_of_padding_only_is_zero_with_zero_gradients() {
    let hidden = Tensor::randn([3, 4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let weight = Tensor::randn([6, 4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let bias = Tensor::randn([6], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let gold = Tensor::zeros([3], (Kind::Int64, Device::Cpu));
    let out = projected_label_smoothed_nll(&hidden, &weight, Some(&bias), &gold, 0, 0.1).unwrap();
    assert_eq!(out.tokens, 0);
    assert_eq!(out.loss.double_value(&[]), 0.0);
    out.loss.backward();
    for t in [&hidden, &weight, &bias] {
        assert_eq!(t.grad().abs().max().double_value(&[]), 0.0);
    }
}

#[test]
fn fused_projection_loss_records_nothing_without_autograd() {
    let hidden = Tensor::randn([4, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let weight = Tensor::randn([5, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let gold = Tensor::from_slice(&[1i64, 2, 3, 4]);
    let with_grad = projected_label_smoothed_nll(&hidden, &weight, None, &gold, 0, 0.1).unwrap();
    let without = tch::no_grad(|| {
        projected_label_smoothed_nll(&hidden, &weight, None, &gold, 0, 0.1).unwrap()
    });
    assert!(with_grad.loss.requires_grad());
    assert!(!without.loss.requires_grad());
    assert_eq!(
        with_grad.loss.double_value(&[]),
        without.loss.double_value(&[])
    );
}

#[test]
fn fused_projection_loss_is_nan_when_the_logits_are() {
    let hidden = Tensor::from_slice(&[f32::NAN, 1.0, 0.5, 2.0]).view([2, 2]);
    let weight = Tensor::randn([3, 2], (Kind::Float, Device::Cpu));
    let gold = Tensor::from_slice(&[1i64, 2]);
    let out = projected_label_smoothed_nll(&hidden, &weight, None, &gold, 0, 0.1).unwrap();
    assert!(
        out.loss.double_value(&[]).is_nan(),
        "a NaN must reach the trainer's check"
    );
}
