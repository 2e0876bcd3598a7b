//! Writes a randomly initialised bundle of a realistic size, for the serving
//! load benchmark (bench/serve/run.sh) before a trained model exists. Like
//! `model::testing::write_untrained_bundle`, but with the architecture chosen
//! on the command line instead of a 16-unit toy.
//!
//! `cargo run --release -p serving --example untrained_bundle -- --out DIR --lines a.txt --lines b.txt`
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use model::testing::write_untrained_bundle_with;
use model::ModelConfig;

/// Write an untrained (random-weight) bundle.
#[derive(Parser)]
struct Args {
    /// Bundle directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Text files to train the joint vocabulary on (repeat).
    #[arg(long, required = true)]
    lines: Vec<PathBuf>,
    /// Lines read from each file.
    #[arg(long, default_value_t = 20000)]
    max_lines: usize,
    #[arg(long, default_value_t = 8000)]
    vocab_size: usize,
    #[arg(long, default_value_t = 256)]
    embed_dim: i64,
    #[arg(long, default_value_t = 256)]
    hidden_dim: i64,
    #[arg(long, default_value_t = 2)]
    layers: i64,
    #[arg(long, default_value = "de")]
    src_lang: String,
    #[arg(long, default_value = "en")]
    tgt_lang: String,
    #[arg(long, default_value_t = 1)]
    seed: i64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut lines = Vec::new();
    for path in &args.lines {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        lines.extend(text.lines().take(args.max_lines).map(String::from));
    }
    let train = vocab::TrainConfig {
        vocab_size: args.vocab_size,
        ..Default::default()
    };
    let config = write_untrained_bundle_with(
        &args.out,
        lines.iter(),
        &train,
        (&args.src_lang, &args.tgt_lang),
        args.seed,
        |m| ModelConfig {
            embed_dim: args.embed_dim,
            hidden_dim: args.hidden_dim,
            encoder_layers: args.layers,
            decoder_layers: args.layers,
            ..m
        },
    )?;
    let n = config.model.src_vocab_size;
    println!("wrote {} (vocabulary {n})", args.out.display());
    Ok(())
}
