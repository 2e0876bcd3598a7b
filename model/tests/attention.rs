//! Attention (`model::attention`): a group of queries per sentence (how beam search asks)
//! gives what one query per row over repeated encoder outputs gives (the one-query path is
//! covered through the whole model in seq2seq.rs). This holds for any weights and inputs,
//! so the test draws them without a seed.

use model::attention::Attention;
use model::AttentionKind;
use tch::{nn, Device, Kind, Tensor};

const SENTENCES: i64 = 3;
const SRC_LEN: i64 = 7;
const ENC_DIM: i64 = 10;
const QUERY_DIM: i64 = 6;

/// Encoder outputs `[3, 7, 10]`, mask `[3, 7]` for lengths 7, 4 and 1 (padding zeroed).
fn encoder_side() -> (Tensor, Tensor) {
    let lengths = Tensor::from_slice(&[7i64, 4, 1]);
    let mask = Tensor::arange(SRC_LEN, (Kind::Int64, Device::Cpu))
        .unsqueeze(0)
        .lt_tensor(&lengths.unsqueeze(1));
    let outputs = Tensor::randn([SENTENCES, SRC_LEN, ENC_DIM], (Kind::Float, Device::Cpu))
        * mask.unsqueeze(2).to_kind(Kind::Float);
    (outputs, mask)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn a_group_of_queries_per_sentence_matches_one_query_per_repeated_row() {
    for kind in [
        AttentionKind::Dot,
        AttentionKind::General,
        AttentionKind::Mlp,
    ] {
        let vs = nn::VarStore::new(Device::Cpu);
        let enc_dim = if kind == AttentionKind::Dot {
            QUERY_DIM
        } else {
            ENC_DIM
        };
        let attention = Attention::new(&vs.root(), kind, enc_dim, QUERY_DIM);
        let (outputs, mask) = encoder_side();
        let outputs = outputs.narrow(2, 0, enc_dim);
        let keys = attention.keys(&outputs);
        for group in [2i64, 5] {
            let query = Tensor::randn([SENTENCES * group, QUERY_DIM], (Kind::Float, Device::Cpu));
            let (context, weights) = attention.forward(&query, &keys, &outputs, &mask);
            assert_eq!(context.size(), [SENTENCES * group, enc_dim]);
            assert_eq!(weights.size(), [SENTENCES * group, SRC_LEN]);

            // Row r belongs to sentence r / group: repeat the encoder side and ask row by row.
            let repeat = Tensor::arange(SENTENCES, (Kind::Int64, Device::Cpu))
                .repeat_interleave_self_int(group, 0, None);
            let (one_context, one_weights) = attention.forward(
                &query,
                &keys.index_select(0, &repeat),
                &outputs.index_select(0, &repeat),
                &mask.index_select(0, &repeat),
            );
            assert!(
                max_abs_diff(&context, &one_context) < 1e-5,
                "{kind:?} g={group}"
            );
            assert!(
                max_abs_diff(&weights, &one_weights) < 1e-6,
                "{kind:?} g={group}"
            );
            // Padding still gets exactly nothing.
            let padding = mask.index_select(0, &repeat).logical_not();
            assert_eq!(
                weights
                    .masked_select(&padding)
                    .abs()
                    .sum(Kind::Float)
                    .double_value(&[]),
                0.0
            );
        }
    }
}
