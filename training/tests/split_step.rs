//! A training step split among worker threads: the same loss and gradient as one pass,
//! reproducible dropout, and replicas that follow the weights.

use model::{AttentionKind, CellKind, ModelConfig, Seq2Seq};
use tch::{nn, Device, Tensor};
use training::split_step::{split_rows, teacher_forced_loss, SplitStep};
use training::trainable::DeviceBatch;

fn config(dropout: f64) -> ModelConfig {
    ModelConfig {
        embed_dim: 8,
        hidden_dim: 6,
        encoder_layers: 2,
        decoder_layers: 2,
        dropout,
        cell: CellKind::Lstm,
        attention: AttentionKind::General,
        share_embeddings: true,
        tie_output: true,
        ..ModelConfig::new(17, 17)
    }
}

/// Six rows of different lengths.
/// A model of [`config`] with `dropout`, initialised after seeding libtorch with `seed`.
fn seeded_model(seed: i64, dropout: f64) -> (nn::VarStore, Seq2Seq) {
    tch::manual_seed(seed);
    let vars = nn::VarStore::new(Device::Cpu);
    let model = Seq2Seq::new(&vars.root(), &config(dropout)).unwrap();
    (vars, model)
}

fn batch() -> DeviceBatch {
    let src = Tensor::from_slice(&[
        9i64, 8, 7, 3, 6, 5, 3, 0, 4, 3, 0, 0, 5, 6, 7, 3, 8, 3, 0, 0, 10, 11, 3, 0,
    ])
    .view([6, 4]);
    let src_lengths = Tensor::from_slice(&[4i64, 3, 2, 4, 2, 3]);
    let tgt_in = Tensor::from_slice(&[
        2i64, 5, 6, 7, 2, 6, 7, 0, 2, 9, 0, 0, 2, 5, 5, 8, 2, 4, 0, 0, 2, 12, 13, 0,
    ])
    .view([6, 4]);
    let tgt_out = Tensor::from_slice(&[
        5i64, 6, 7, 3, 6, 7, 3, 0, 9, 3, 0, 0, 5, 5, 8, 3, 4, 3, 0, 0, 12, 13, 3, 0,
    ])
    .view([6, 4]);
    DeviceBatch {
        src,
        src_lengths,
        tgt_in,
        tgt_out,
        tgt_lengths: vec![4, 3, 2, 4, 2, 3],
    }
}

fn gradients(vars: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut g: Vec<(String, Tensor)> = vars
        .variables()
        .into_iter()
        .map(|(n, v)| (n, v.grad().copy()))
        .collect();
    g.sort_by(|a, b| a.0.cmp(&b.0));
    g
}

fn zero_grads(vars: &nn::VarStore) {
    for (_, mut v) in vars.variables() {
        v.zero_grad();
    }
}

#[test]
fn rows_split_into_contiguous_slices_of_about_equal_tokens() {
    let lengths = [5i64, 1, 1, 1, 1, 1, 4, 2, 0, 3];
    for parts in 1..=12 {
        let slices = split_rows(&lengths, parts);
        assert!(!slices.is_empty() && slices.len() <= parts.min(lengths.len()));
        let mut next = 0;
        for &(start, len) in &slices {
            assert_eq!(start, next, "contiguous");
            assert!(len > 0, "non-empty");
            next = start + len;
        }
        assert_eq!(next, lengths.len(), "every row once");
    }
    // Two parts of 19 tokens: the first closes at 10 tokens (5+1+1+1+1+1).
    assert_eq!(split_rows(&lengths, 2), vec![(0, 6), (6, 4)]);
    assert_eq!(split_rows(&[3, 3], 5), vec![(0, 1), (1, 1)]);
    assert_eq!(split_rows(&[], 2), Vec::<(usize, usize)>::new());
}

#[test]
fn workers_compute_the_loss_and_gradient_of_one_pass() {
    let (vars, model) = seeded_model(3, 0.0);
    let b = batch();
    let scale = 1.0 / 18.0;
    let parallel = SplitStep::new(&vars, &config(0.0), 3).unwrap();
    for round in 0..2 {
        zero_grads(&vars);
        let one = teacher_forced_loss(&model, &b, 0.1, true).unwrap();
        (&one.loss * scale).backward();
        let expected = gradients(&vars);

        zero_grads(&vars);
        let split = parallel.backward(&model, &vars, &b, 0.1, scale, 7).unwrap();
        let got = gradients(&vars);
        assert_eq!(split.tokens, one.tokens);
        let (a, e) = (split.loss.double_value(&[]), one.loss.double_value(&[]));
        assert!(
            (a - e).abs() < 1e-4 * e.abs(),
            "round {round}: loss {a} vs {e}"
        );
        for ((name, g), (_, e)) in got.iter().zip(&expected) {
            let d = (g - e).abs().max().double_value(&[]);
            assert!(d < 1e-6, "round {round}: {name} differs by {d}");
            assert!(
                e.abs().max().double_value(&[]) > 0.0,
                "{name} has a gradient"
            );
        }
        // An optimizer-like update in place: the replicas must compute with the new weights.
        tch::no_grad(|| {
            for (_, mut v) in vars.variables() {
                let _ = v.g_sub_(&(v.grad() * 0.5));
            }
        });
    }
}

#[test]
fn dropout_masks_depend_on_the_seed_only() {
    let (vars, model) = seeded_model(4, 0.3);
    let b = batch();
    let parallel = SplitStep::new(&vars, &config(0.3), 2).unwrap();
    let run = |seed: u64| {
        zero_grads(&vars);
        let out = parallel
            .backward(&model, &vars, &b, 0.1, 1.0, seed)
            .unwrap();
        (out.loss.double_value(&[]), gradients(&vars))
    };
    let (loss_a, grads_a) = run(11);
    let (loss_b, grads_b) = run(11);
    let (loss_c, _) = run(12);
    assert_eq!(loss_a, loss_b, "same seed, same masks");
    for ((name, a), (_, b)) in grads_a.iter().zip(&grads_b) {
        assert!(a.equal(b), "{name}: same seed, same gradient");
    }
    assert_ne!(loss_a, loss_c, "another seed, other masks");
    let no_dropout = tch::no_grad(|| teacher_forced_loss(&model, &b, 0.1, false).unwrap());
    assert_ne!(loss_a, no_dropout.loss.double_value(&[]), "dropout is on");
}
