//! Our Adam against closed forms, against tch's own (libtorch's) Adam/AdamW, and across a
//! save → load round trip.

use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};
use training::optim::{Adam, AdamConfig, OptimError};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// A quadratic loss with a fixed target so gradients change from step to step.
fn quad_loss(w: &Tensor, x: &Tensor, y: &Tensor) -> Tensor {
    (x.matmul(w) - y).square().mean(Kind::Float)
}

#[test]
fn first_step_matches_the_closed_form() {
    let p0 = [0.5f32, -1.0, 2.0, 0.0];
    let g = [0.3f64, -2.0, 1e-3, 4.0];
    let p = Tensor::from_slice(&p0).set_requires_grad(true);
    let mut opt = Adam::from_named(vec![("p".into(), p.shallow_clone())], AdamConfig::default());
    // loss = sum(g * p) has gradient g.
    (Tensor::from_slice(&g).to_kind(Kind::Float) * &p)
        .sum(Kind::Float)
        .backward();
    let lr = 0.01;
    opt.step(lr).unwrap();
    // m̂ = g, v̂ = g², so p1 = p0 - lr·g/(|g| + eps).
    for i in 0..4 {
        let expect = p0[i] as f64 - lr * g[i] / (g[i].abs() + 1e-8);
        let got = p.double_value(&[i as i64]);
        assert!((got - expect).abs() < 1e-6, "param {i}: {got} vs {expect}");
    }
    assert_eq!(opt.step_count(), 1);
}

#[test]
fn three_steps_with_constant_gradient_match_the_closed_form() {
    let (b1, b2, eps, lr) = (0.9f64, 0.999f64, 1e-8, 0.05);
    let g = 0.7f64;
    let p = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
    let mut opt = Adam::from_named(vec![("p".into(), p.shallow_clone())], AdamConfig::default());
    let (mut m, mut v, mut expect) = (0.0, 0.0, 1.0f64);
    for t in 1..=3 {
        opt.zero_grad();
        (&p * g).sum(Kind::Float).backward();
        opt.step(lr).unwrap();
        m = b1 * m + (1.0 - b1) * g;
        v = b2 * v + (1.0 - b2) * g * g;
        let mhat = m / (1.0 - b1.powi(t));
        let vhat = v / (1.0 - b2.powi(t));
        expect -= lr * mhat / (vhat.sqrt() + eps);
    }
    assert!((p.double_value(&[0]) - expect).abs() < 1e-6);
}

#[test]
fn decoupled_weight_decay_shrinks_weights_without_gradient_effects() {
    // With a zero gradient, AdamW only decays: p ← p·(1 - lr·wd); L2 Adam instead sees a
    // gradient wd·p and moves by ~lr.
    let p = step_on_zero_gradient(true);
    assert!((p - 2.0 * (1.0 - 0.05)).abs() < 1e-6);

    let q = step_on_zero_gradient(false);
    assert!((q - 1.5).abs() < 1e-6, "{}", q);
}

/// The value of a weight 2.0 after one step at lr 0.5 with weight decay 0.1 (`decoupled`
/// or L2) and a zero gradient.
fn step_on_zero_gradient(decoupled: bool) -> f64 {
    let cfg = AdamConfig {
        weight_decay: 0.1,
        decoupled,
        ..AdamConfig::default()
    };
    let p = Tensor::from_slice(&[2.0f32]).set_requires_grad(true);
    let mut opt = Adam::from_named(vec![("p".into(), p.shallow_clone())], cfg);
    (&p * 0.0).sum(Kind::Float).backward();
    opt.step(0.5).unwrap();
    p.double_value(&[0])
}

/// Runs 25 steps of our optimizer and of tch's on identical copies of a small regression.
fn compare_with_tch(cfg: AdamConfig) {
    tch::manual_seed(7);
    let x = Tensor::randn([16, 5], (Kind::Float, Device::Cpu));
    let y = Tensor::randn([16, 3], (Kind::Float, Device::Cpu));
    let init = Tensor::randn([5, 3], (Kind::Float, Device::Cpu));

    let vs_ours = nn::VarStore::new(Device::Cpu);
    let w_ours = vs_ours.root().var_copy("w", &init);
    let mut ours = Adam::new(&vs_ours, cfg);

    let vs_tch = nn::VarStore::new(Device::Cpu);
    let w_tch = vs_tch.root().var_copy("w", &init);
    let mut theirs = if cfg.decoupled {
        nn::adamw(cfg.beta1, cfg.beta2, cfg.weight_decay)
            .build(&vs_tch, 0.0)
            .unwrap()
    } else {
        nn::adam(cfg.beta1, cfg.beta2, cfg.weight_decay)
            .build(&vs_tch, 0.0)
            .unwrap()
    };
    for step in 0..25 {
        let lr = 0.01 * (1.0 + step as f64 / 10.0);
        ours.zero_grad();
        quad_loss(&w_ours, &x, &y).backward();
        ours.step(lr).unwrap();
        theirs.set_lr(lr);
        theirs.zero_grad();
        quad_loss(&w_tch, &x, &y).backward();
        theirs.step();
        let d = max_abs_diff(&w_ours, &w_tch);
        assert!(d < 1e-6, "step {step}: max |Δw| = {d}");
    }
    // The run moved the weights, so the agreement is not trivial.
    assert!(max_abs_diff(&w_ours, &init) > 0.05);
}

#[test]
fn matches_tch_adam() {
    compare_with_tch(AdamConfig::default());
}

#[test]
fn matches_tch_adam_with_l2_weight_decay() {
    compare_with_tch(AdamConfig {
        weight_decay: 0.01,
        ..AdamConfig::default()
    });
}

#[test]
fn matches_tch_adamw() {
    compare_with_tch(AdamConfig {
        weight_decay: 0.05,
        decoupled: true,
        beta2: 0.98,
        ..AdamConfig::default()
    });
}

#[test]
fn save_load_continue_is_bit_identical() {
    tch::manual_seed(3);
    let x = Tensor::randn([8, 4], (Kind::Float, Device::Cpu));
    let y = Tensor::randn([8, 2], (Kind::Float, Device::Cpu));
    let init = Tensor::randn([4, 2], (Kind::Float, Device::Cpu));
    let cfg = AdamConfig {
        weight_decay: 0.01,
        decoupled: true,
        ..AdamConfig::default()
    };
    let run = |w: &Tensor, opt: &mut Adam, steps: usize| {
        for _ in 0..steps {
            opt.zero_grad();
            quad_loss(w, &x, &y).backward();
            opt.step(0.02).unwrap();
        }
    };

    let vs_a = nn::VarStore::new(Device::Cpu);
    let w_a = vs_a.root().var_copy("w", &init);
    let mut opt_a = Adam::new(&vs_a, cfg);
    run(&w_a, &mut opt_a, 20);

    let dir = tempfile::tempdir().unwrap();
    let vs_b = nn::VarStore::new(Device::Cpu);
    let w_b = vs_b.root().var_copy("w", &init);
    let mut opt_b = Adam::new(&vs_b, cfg);
    run(&w_b, &mut opt_b, 10);
    opt_b.save(&dir.path().join("opt.safetensors")).unwrap();
    vs_b.save(dir.path().join("w.safetensors")).unwrap();
    drop(opt_b);

    let mut vs_c = nn::VarStore::new(Device::Cpu);
    let w_c = vs_c.root().var("w", &[4, 2], nn::Init::Const(0.0));
    vs_c.load(dir.path().join("w.safetensors")).unwrap();
    let mut opt_c = Adam::new(&vs_c, cfg);
    opt_c.load(&dir.path().join("opt.safetensors")).unwrap();
    assert_eq!(opt_c.step_count(), 10);
    run(&w_c, &mut opt_c, 10);

    assert!(
        w_a.equal(&w_c),
        "resumed weights differ: {}",
        max_abs_diff(&w_a, &w_c)
    );
    for ((na, ta), (nc, tc)) in opt_a
        .state_tensors()
        .iter()
        .zip(opt_c.state_tensors().iter())
    {
        assert_eq!(na, nc);
        assert!(ta.equal(tc), "state {na} differs");
    }
}

#[test]
fn load_state_rejects_missing_wrong_shaped_and_foreign_tensors() {
    let p = Tensor::zeros([3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let mut opt = Adam::from_named(vec![("p".into(), p)], AdamConfig::default());
    let good = opt.state_tensors();

    let missing: Vec<_> = good
        .iter()
        .filter(|(n, _)| n != "exp_avg_sq.p")
        .map(|(n, t)| (n.clone(), t.copy()))
        .collect();
    assert!(matches!(opt.load_state(missing), Err(OptimError::Missing(n)) if n == "exp_avg_sq.p"));

    let mut shaped: Vec<_> = good.iter().map(|(n, t)| (n.clone(), t.copy())).collect();
    shaped[0].1 = Tensor::zeros([4], (Kind::Float, Device::Cpu));
    assert!(matches!(
        opt.load_state(shaped),
        Err(OptimError::Shape { .. })
    ));

    let mut foreign: Vec<_> = good.iter().map(|(n, t)| (n.clone(), t.copy())).collect();
    foreign.push((
        "exp_avg.q".into(),
        Tensor::zeros([1], (Kind::Float, Device::Cpu)),
    ));
    assert!(matches!(opt.load_state(foreign), Err(OptimError::Unexpected(n)) if n == "exp_avg.q"));

    let err = opt
        .load(std::path::Path::new("/nonexistent/opt.safetensors"))
        .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/opt.safetensors"));
}

#[test]
fn clip_grad_norm_scales_to_the_limit_and_reports_the_total() {
    let a = Tensor::from_slice(&[0.0f32, 0.0]).set_requires_grad(true);
    let b = Tensor::from_slice(&[0.0f32]).set_requires_grad(true);
    let mut opt = Adam::from_named(
        vec![
            ("a".into(), a.shallow_clone()),
            ("b".into(), b.shallow_clone()),
        ],
        AdamConfig::default(),
    );
    // Gradients (3, 0) and (4): total norm 5.
    ((&a * Tensor::from_slice(&[3.0f32, 0.0])).sum(Kind::Float) + (&b * 4.0).sum(Kind::Float))
        .backward();
    let norm = opt.clip_grad_norm(1.0).unwrap();
    assert!((norm - 5.0).abs() < 1e-5);
    assert!((opt.grad_norm().unwrap() - 1.0).abs() < 1e-5);
    assert!((a.grad().double_value(&[0]) - 0.6).abs() < 1e-5);
    assert!((b.grad().double_value(&[0]) - 0.8).abs() < 1e-5);
    // Under the limit: untouched.
    assert!((opt.clip_grad_norm(10.0).unwrap() - 1.0).abs() < 1e-5);
    assert!((b.grad().double_value(&[0]) - 0.8).abs() < 1e-5);
}

#[test]
fn a_non_finite_gradient_norm_is_reported_and_left_alone() {
    let a = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
    let mut opt = Adam::from_named(vec![("a".into(), a.shallow_clone())], AdamConfig::default());
    (&a * f64::NAN).sum(Kind::Float).backward();
    assert!(opt.clip_grad_norm(1.0).unwrap().is_nan());
}
