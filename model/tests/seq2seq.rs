//! The encoder-decoder on padded batches and its basic contract.

#[allow(dead_code)] // the tests here use only common::seeded and common::token_loss
mod common;

use model::{AttentionKind, CellKind, Executor, ModelConfig, Seq2Seq};
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

fn config(cell: CellKind, attention: AttentionKind) -> ModelConfig {
    ModelConfig {
        embed_dim: 8,
        hidden_dim: 6,
        encoder_layers: 2,
        decoder_layers: 2,
        dropout: 0.0,
        cell,
        attention,
        ..ModelConfig::new(20, 17)
    }
}

/// A model of `cfg` in a new CPU variable store.
fn build(cfg: &ModelConfig) -> (nn::VarStore, Seq2Seq) {
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Seq2Seq::new(&vs.root(), cfg).unwrap();
    (vs, model)
}

/// Whether a model of `cfg` can be built (in a new CPU variable store).
fn builds(cfg: &ModelConfig) -> bool {
    Seq2Seq::new(&nn::VarStore::new(Device::Cpu).root(), cfg).is_ok()
}

/// Every trainable variable's gradient of `loss` alone (earlier gradients cleared).
fn gradients_of(vs: &nn::VarStore, loss: Tensor) -> Vec<Tensor> {
    for mut v in vs.trainable_variables() {
        v.zero_grad();
    }
    loss.backward();
    vs.trainable_variables()
        .iter()
        .map(|v| v.grad().copy())
        .collect()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn a_sentence_alone_and_inside_a_padded_batch_encode_the_same() {
    for (cell, executor) in [
        (CellKind::Lstm, Executor::Fused),
        (CellKind::Lstm, Executor::Step),
        (CellKind::Gru, Executor::Fused),
        (CellKind::Gru, Executor::Step),
    ] {
        let _rng = common::seeded(1);
        let (_vs, model) = build(&ModelConfig {
            executor,
            ..config(cell, AttentionKind::General)
        });
        let alone = Tensor::from_slice(&[5i64, 6, 7]).view([1, 3]);
        let batch = Tensor::from_slice(&[9i64, 8, 7, 6, 5, 4, 5, 6, 7, 0, 0, 0, 4, 0, 0, 0, 0, 0])
            .view([3, 6]);
        let enc_alone = model.encode(&alone, &Tensor::from_slice(&[3i64]), &model.context(false));
        let enc_batch = model.encode(
            &batch,
            &Tensor::from_slice(&[6i64, 3, 1]),
            &model.context(false),
        );
        let row = enc_batch.outputs.get(1);
        assert!(
            max_diff(&enc_alone.outputs.get(0), &row.narrow(0, 0, 3)) < 1e-5,
            "{cell:?}: outputs leak padding"
        );
        assert_eq!(
            row.narrow(0, 3, 3).abs().sum(Kind::Float).double_value(&[]),
            0.0
        );
        let h_alone = enc_alone.final_state.h.select(1, 0);
        let h_batch = enc_batch.final_state.h.select(1, 1);
        assert!(
            max_diff(&h_alone, &h_batch) < 1e-5,
            "{cell:?}: final states leak padding"
        );
        // The whole decoder path agrees too.
        let tgt = Tensor::from_slice(&[2i64, 5, 9]).view([1, 3]);
        let logits_alone = model.forward(
            &alone,
            &Tensor::from_slice(&[3i64]),
            &tgt,
            &model.context(false),
        );
        let tgt3 = tgt.repeat([3, 1]);
        let logits_batch = model.forward(
            &batch,
            &Tensor::from_slice(&[6i64, 3, 1]),
            &tgt3,
            &model.context(false),
        );
        assert!(
            max_diff(&logits_alone.get(0), &logits_batch.get(1)) < 1e-5,
            "{cell:?}: decoder sees padding"
        );
    }
}

#[test]
fn attention_ignores_padding_and_sums_to_one() {
    for attention in [AttentionKind::General, AttentionKind::Mlp] {
        let _rng = common::seeded(2);
        let (_vs, model) = build(&config(CellKind::Lstm, attention));
        let src = Tensor::from_slice(&[4i64, 5, 6, 7, 8, 0, 0, 0]).view([2, 4]);
        let lengths = Tensor::from_slice(&[4i64, 1]);
        let enc = model.encode(&src, &lengths, &model.context(false));
        let state = model.init_decoder(&enc);
        let step = model.decode_step(
            &Tensor::from_slice(&[2i64, 2]),
            &state,
            &enc,
            &model.context(false),
        );
        let sums = step.attention.sum_dim_intlist(-1, false, Kind::Float);
        assert!(max_diff(&sums, &Tensor::ones([2], (Kind::Float, Device::Cpu))) < 1e-6);
        assert_eq!(
            step.attention
                .get(1)
                .narrow(0, 1, 3)
                .abs()
                .sum(Kind::Float)
                .double_value(&[]),
            0.0
        );
    }
}

#[test]
fn dot_attention_with_mismatched_sizes_is_a_config_error() {
    let vs = nn::VarStore::new(Device::Cpu);
    let err = Seq2Seq::new(&vs.root(), &config(CellKind::Lstm, AttentionKind::Dot)).unwrap_err();
    assert!(err.to_string().contains("dot attention"), "{err}");
    assert!(builds(&ModelConfig {
        bidirectional: false,
        ..config(CellKind::Lstm, AttentionKind::Dot)
    }));
}

#[test]
fn shared_and_tied_embeddings_are_one_parameter() {
    let (vs, model) = build(&ModelConfig {
        share_embeddings: true,
        tie_output: true,
        ..ModelConfig {
            tgt_vocab_size: 20,
            ..config(CellKind::Lstm, AttentionKind::General)
        }
    });
    let names: Vec<String> = vs.variables().into_keys().collect();
    assert!(names.iter().any(|n| n == "src_embedding"));
    assert!(
        !names
            .iter()
            .any(|n| n == "tgt_embedding" || n.starts_with("output.")),
        "{names:?}"
    );
    let logits = model.forward(
        &Tensor::from_slice(&[4i64, 5]).view([1, 2]),
        &Tensor::from_slice(&[2i64]),
        &Tensor::from_slice(&[2i64]).view([1, 1]),
        &model.context(false),
    );
    assert_eq!(logits.size(), [1, 1, 20]);
    assert!(!builds(&ModelConfig {
        share_embeddings: true,
        ..config(CellKind::Lstm, AttentionKind::General)
    }));
}

#[test]
fn bad_source_ids_and_lengths_are_errors_not_aborts() {
    let (_vs, model) = build(&config(CellKind::Lstm, AttentionKind::General));
    let src = Tensor::from_slice(&[4i64, 25]).view([1, 2]);
    assert!(model
        .check_source(&src, &Tensor::from_slice(&[2i64]))
        .unwrap_err()
        .to_string()
        .contains("0..20"));
    let src = Tensor::from_slice(&[4i64, 5]).view([1, 2]);
    assert!(model
        .check_source(&src, &Tensor::from_slice(&[3i64]))
        .is_err());
    assert!(model
        .check_source(&src, &Tensor::from_slice(&[0i64]))
        .is_err());
    assert!(model
        .check_source(&src, &Tensor::from_slice(&[2i64]))
        .is_ok());
}

#[test]
fn learns_to_copy_a_tiny_sequence() {
    // A model that cannot fit 3 fixed pairs in 150 steps is broken (no gradient
    // flow through attention, input feeding or the bridge).
    let _rng = common::seeded(4);
    let (vs, model) = build(&config(CellKind::Lstm, AttentionKind::General));
    let src = Tensor::from_slice(&[4i64, 5, 6, 7, 8, 9, 10, 0, 11, 0, 0, 0]).view([3, 4]);
    let lengths = Tensor::from_slice(&[4i64, 3, 1]);
    let tgt_in =
        Tensor::from_slice(&[2i64, 4, 5, 6, 7, 2, 8, 9, 10, 0, 2, 11, 0, 0, 0]).view([3, 5]);
    let tgt_out =
        Tensor::from_slice(&[4i64, 5, 6, 7, 3, 8, 9, 10, 3, 0, 11, 3, 0, 0, 0]).view([3, 5]);
    let mut opt = nn::Adam::default().build(&vs, 0.02).unwrap();
    let loss_of = |train| {
        let logits = model.forward(&src, &lengths, &tgt_in, &model.context(train));
        common::token_loss(&logits, &tgt_out, 17)
    };
    let first = loss_of(false).double_value(&[]);
    for _ in 0..150 {
        opt.backward_step(&loss_of(true));
    }
    let last = loss_of(false).double_value(&[]);
    assert!(
        last < 0.05 && last < first / 20.0,
        "loss went from {first} to {last}"
    );
}

#[test]
fn packed_forward_equals_forward_at_the_real_target_positions() {
    // Target lengths not sorted, so the rows are reordered inside; the second set has a row
    // without any target position (it leaves before the first step).
    let cases = [
        (CellKind::Lstm, Executor::Fused, [2i64, 4, 1, 3]),
        (CellKind::Lstm, Executor::Step, [2, 4, 1, 3]),
        (CellKind::Gru, Executor::Step, [2, 4, 1, 3]),
        (CellKind::Gru, Executor::Fused, [2, 4, 1, 3]),
        (CellKind::Lstm, Executor::Auto, [2, 4, 0, 3]),
    ];
    for (cell, executor, tgt_lengths) in cases {
        let _rng = common::seeded(7);
        let (vs, model) = build(&ModelConfig {
            executor,
            ..config(cell, AttentionKind::General)
        });
        let src = Tensor::from_slice(&[9i64, 8, 7, 6, 5, 0, 4, 0, 0, 6, 7, 8]).view([4, 3]);
        let src_lengths = Tensor::from_slice(&[3i64, 2, 1, 3]);
        let tgt_in =
            Tensor::from_slice(&[2i64, 5, 0, 0, 2, 6, 7, 8, 2, 0, 0, 0, 2, 9, 10, 0]).view([4, 4]);
        let positions_expected: Vec<i64> = (0..4i64)
            .flat_map(|b| (0..tgt_lengths[b as usize]).map(move |t| b * 4 + t))
            .collect();

        let full = model.forward(&src, &src_lengths, &tgt_in, &model.context(true));
        let (packed, positions) = model.forward_packed(
            &src,
            &src_lengths,
            &tgt_in,
            &tgt_lengths,
            &model.context(true),
        );
        let positions_vec: Vec<i64> = Vec::try_from(&positions).unwrap();
        let mut sorted = positions_vec.clone();
        sorted.sort();
        assert_eq!(
            sorted, positions_expected,
            "{cell:?}: every real position once"
        );
        let vocab = full.size()[2];
        let gathered = full.view([-1, vocab]).index_select(0, &positions);
        assert_eq!(packed.size(), gathered.size());
        assert!(
            max_diff(&packed, &gathered) < 1e-5,
            "{cell:?}: logits differ"
        );

        // Same gradients for the same loss on the real positions.
        let weights = Tensor::randn(
            [positions_vec.len() as i64, vocab],
            (Kind::Float, Device::Cpu),
        );
        let grads = |loss: Tensor| gradients_of(&vs, loss);
        let g_full = grads((gathered * &weights).sum(Kind::Float));
        let g_packed = grads((packed * &weights).sum(Kind::Float));
        for (a, b) in g_full.iter().zip(&g_packed) {
            assert!(
                max_diff(a, b) < 1e-4,
                "{cell:?}: gradients differ by {}",
                max_diff(a, b)
            );
        }
    }
}

#[test]
fn fused_output_loss_trains_every_parameter_as_the_logits_loss_does() {
    use model::loss::{label_smoothed_nll, projected_label_smoothed_nll};
    for tie_output in [true, false] {
        let _rng = common::seeded(11);
        // Tied: the target embedding is also the projection (shared with the source, so one
        // vocabulary size), and its gradient comes from both uses.
        let (vs, model) = build(&ModelConfig {
            tie_output,
            share_embeddings: tie_output,
            src_vocab_size: 17,
            ..config(CellKind::Lstm, AttentionKind::General)
        });
        let src = Tensor::from_slice(&[9i64, 8, 7, 6, 5, 0, 4, 0, 0]).view([3, 3]);
        let src_lengths = Tensor::from_slice(&[3i64, 2, 1]);
        let tgt_lengths = [3i64, 4, 2];
        let tgt_in = Tensor::from_slice(&[2i64, 5, 6, 0, 2, 6, 7, 8, 2, 9, 0, 0]).view([3, 4]);
        let tgt_out = Tensor::from_slice(&[5i64, 6, 3, 0, 6, 7, 8, 3, 9, 3, 0, 0]).view([-1]);
        let grads = |loss: Tensor| gradients_of(&vs, loss);
        let (logits, positions) = model.forward_packed(
            &src,
            &src_lengths,
            &tgt_in,
            &tgt_lengths,
            &model.context(false),
        );
        let gold = tgt_out.index_select(0, &positions);
        let reference = label_smoothed_nll(&logits, &gold, 0, 0.1).unwrap();
        let expected = grads(reference.loss.shallow_clone());
        let (attentional, positions) = model.forward_packed_attentional(
            &src,
            &src_lengths,
            &tgt_in,
            &tgt_lengths,
            &model.context(false),
        );
        let gold = tgt_out.index_select(0, &positions);
        let (weight, bias) = model.output_projection();
        let fused =
            projected_label_smoothed_nll(&attentional, weight, bias, &gold, 0, 0.1).unwrap();
        assert!(
            (fused.loss.double_value(&[]) - reference.loss.double_value(&[])).abs() < 1e-4,
            "tie_output {tie_output}: losses differ"
        );
        let got = grads(fused.loss);
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            let d = max_diff(g, e);
            assert!(
                d < 1e-5,
                "tie_output {tie_output}: a gradient differs by {d}"
            );
        }
        assert!(
            expected
                .iter()
                .all(|e| e.abs().max().double_value(&[]) > 0.0),
            "tie_output {tie_output}: every parameter gets a gradient"
        );
    }
}

#[test]
fn the_search_step_on_prepared_weights_equals_the_decoder_step() {
    for (executor, attention, input_feeding) in [
        (Executor::Auto, AttentionKind::General, true),
        (Executor::Step, AttentionKind::Mlp, false),
    ] {
        let _rng = common::seeded(8);
        let (_vs, model) = build(&ModelConfig {
            input_feeding,
            executor,
            ..config(CellKind::Lstm, attention)
        });
        let prepared = model
            .prepare_search(Device::Cpu, &model.context(false))
            .expect("LSTM decoders on the CPU are prepared");
        let src = Tensor::from_slice(&[4i64, 5, 6, 7, 8, 9, 0, 0]).view([2, 4]);
        let lengths = Tensor::from_slice(&[4i64, 2]);
        let enc = model.encode(&src, &lengths, &model.context(false));
        let (mut plain, mut fast) = (model.init_decoder(&enc), model.init_decoder(&enc));
        for prev in [[2i64, 2], [5, 16], [3, 0]] {
            let prev = Tensor::from_slice(&prev);
            let a = model.decode_step(&prev, &plain, &enc, &model.context(false));
            let b = model.search_step(Some(&prepared), &prev, &fast, &enc, &model.context(false));
            assert!(max_diff(&a.attentional, &b.attentional) < 1e-6);
            assert!(max_diff(&a.attention, &b.attention) < 1e-6);
            assert!(max_diff(&a.state.rnn.h, &b.state.rnn.h) < 1e-6);
            let (ca, cb) = (a.state.rnn.c.as_ref(), b.state.rnn.c.as_ref());
            assert!(max_diff(ca.expect("LSTM"), cb.expect("LSTM")) < 1e-6);
            // Without prepared weights it is the decoder step itself.
            let c = model.search_step(None, &prev, &plain, &enc, &model.context(false));
            assert_eq!(max_diff(&a.attentional, &c.attentional), 0.0);
            (plain, fast) = (a.state, b.state);
        }
    }
    // GRU decoders and GPUs keep the plain step.
    let (_vs, gru) = build(&config(CellKind::Gru, AttentionKind::General));
    assert!(gru
        .prepare_search(Device::Cpu, &gru.context(false))
        .is_none());
    let (_vs, lstm) = build(&config(CellKind::Lstm, AttentionKind::General));
    assert!(lstm
        .prepare_search(Device::Cuda(0), &lstm.context(false))
        .is_none());
}
