//! Writes reference outputs of small random models so that `bench/pytorch/model.py
//! check DIR` can prove the PyTorch port computes the same function: for each of
//! several configurations, `DIR/<name>/` gets
//!
//! - `config.json` (the `ModelConfig`) and `model.safetensors` (VarStore names);
//! - `batch.safetensors`: `src [B, S]`, `src_lengths [B]`, `tgt_in [B, T]`, `tgt_out [B, T]`;
//! - `outputs.safetensors`: eval-mode `logits [B, T, V]`, the label-smoothed
//!   `loss` (ε = 0.1, dropout 0) and its gradient for every weight (`grad.<name>`);
//! - `beam.json`: beam-3 search results (tokens and scores) for the batch.
//!
//! Sentences come from Multi30k train with character-level ids, so lengths vary
//! like real text.
//!
//! `cargo bench -p model --bench export_reference -- --out DIR`

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use model::beam::{beam_search_general, BeamOptions};
use model::search::MaxLength;
use model::{AttentionKind, ModelConfig, Seq2Seq};
use tch::{nn, Device, Kind};

#[derive(Parser, Debug)]
#[command(
    about = "Writes random small models, a batch and our outputs for the PyTorch parity check"
)]
struct Args {
    /// Output folder (created).
    #[arg(long)]
    out: PathBuf,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Character ids (4 + byte value mod 60), so the vocabulary stays small.
fn char_ids(text: &str, limit: usize) -> Vec<i64> {
    text.bytes()
        .take(limit)
        .map(|b| 4 + (b as i64 % 60))
        .collect()
}

fn main() -> Result<()> {
    let args = Args::parse();
    tch::set_num_threads(2);
    let data = common::multi30k_dir();
    let de = common::read_lines(&data.join("train.de"))?;
    let en = common::read_lines(&data.join("train.en"))?;
    // Different lengths on purpose (padding, packing, masks); short for speed.
    let pairs: Vec<(Vec<i64>, Vec<i64>)> = (0..6)
        .map(|i| {
            (
                char_ids(&de[i * 7], 10 + 5 * i),
                char_ids(&en[i * 7], 8 + 4 * i),
            )
        })
        .collect();
    let batch = common::train_batch(&pairs);
    let vocab = 64;
    let base = ModelConfig {
        embed_dim: 24,
        hidden_dim: 32,
        dropout: 0.0,
        ..ModelConfig::new(vocab, vocab)
    };
    let configs = [
        (
            "general_untied",
            ModelConfig {
                encoder_layers: 2,
                decoder_layers: 3,
                ..base.clone()
            },
        ),
        (
            "shared_tied_mlp",
            ModelConfig {
                encoder_layers: 1,
                decoder_layers: 2,
                share_embeddings: true,
                tie_output: true,
                attention: AttentionKind::Mlp,
                ..base.clone()
            },
        ),
        (
            "dot_unidirectional",
            ModelConfig {
                bidirectional: false,
                attention: AttentionKind::Dot,
                input_feeding: false,
                ..base.clone()
            },
        ),
    ];
    for (seed, (name, cfg)) in configs.into_iter().enumerate() {
        let dir = args.out.join(name);
        std::fs::create_dir_all(&dir)?;
        tch::manual_seed(seed as i64 + 7);
        let vars = nn::VarStore::new(Device::Cpu);
        let model = Seq2Seq::new(&vars.root(), &cfg)?;
        std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&cfg)?)?;
        common::write_tensors(
            &dir.join("model.safetensors"),
            vars.variables().into_iter().collect(),
        )?;
        common::write_tensors(
            &dir.join("batch.safetensors"),
            vec![
                ("src".into(), batch.src.shallow_clone()),
                ("src_lengths".into(), batch.src_lengths.shallow_clone()),
                ("tgt_in".into(), batch.tgt_in.shallow_clone()),
                ("tgt_out".into(), batch.tgt_out.shallow_clone()),
            ],
        )?;
        let logits = tch::no_grad(|| {
            model.forward(
                &batch.src,
                &batch.src_lengths,
                &batch.tgt_in,
                &model.context(false),
            )
        });
        // Training mode with dropout 0 is deterministic: the loss and gradients must agree too.
        // They come from what nmt-train runs (real positions only, projection fused with the
        // loss); the port differentiates log-softmax over every padded position.
        let (attentional, positions) = model.forward_packed_attentional(
            &batch.src,
            &batch.src_lengths,
            &batch.tgt_in,
            &batch.tgt_lengths,
            &model.context(true),
        );
        let gold = batch.tgt_out.view([-1]).index_select(0, &positions);
        let (weight, bias) = model.output_projection();
        let loss = model::loss::projected_label_smoothed_nll(
            &attentional,
            weight,
            bias,
            &gold,
            vocab::PAD_ID as i64,
            0.1,
        )?
        .loss;
        loss.backward();
        let mut outputs = vec![
            ("logits".to_string(), logits),
            ("loss".to_string(), loss.detach().reshape([1])),
        ];
        for (n, v) in vars.variables() {
            outputs.push((format!("grad.{n}"), v.grad().to_kind(Kind::Float)));
        }
        common::write_tensors(&dir.join("outputs.safetensors"), outputs)?;
        let opts = BeamOptions {
            beam_size: 3,
            max_length: MaxLength { a: 1.5, b: 10 },
            ..Default::default()
        };
        let hyps = beam_search_general(&model, &batch.src, &batch.src_lengths, &opts)?;
        let beam: Vec<serde_json::Value> = hyps
            .iter()
            .map(|n| serde_json::json!({"tokens": n[0].tokens, "score": n[0].score}))
            .collect();
        std::fs::write(dir.join("beam.json"), serde_json::to_string(&beam)?)?;
        eprintln!("wrote {}", dir.display());
    }
    Ok(())
}
