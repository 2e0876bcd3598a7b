//! Label-smoothed cross-entropy against a hand computation, and padding neutrality.

use tch::{Device, Kind, Tensor};
use training::loss::label_smoothed_nll;

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
