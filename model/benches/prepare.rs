//! Writes the inputs of the speed benchmarks against PyTorch into one folder:
//!
//! - `bundle/`: a randomly initialised model with the shape of
//!   `configs/multi30k-de-en.toml` by default (embed 256, hidden 256, 2+2 layers,
//!   bidirectional, shared and tied embeddings, dropout 0.3) and a joint 8k unigram
//!   vocabulary trained on Multi30k train (de + en);
//! - `train_batches.safetensors`: fixed training batches cut from Multi30k train;
//! - `test_batches.safetensors`: Multi30k test.de encoded with the bundle's
//!   vocabulary and cut into batches exactly as `model::translate` would.
//!
//! `--bundle` reuses an existing (e.g. trained) bundle instead of writing one.
//!
//! `cargo bench -p model --bench prepare -- --out DIR`

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use model::testing::write_untrained_bundle_with;
use model::{Bundle, ModelConfig};
use tch::Device;

#[derive(Parser, Debug)]
#[command(about = "Writes the bundle and id batches the Rust and PyTorch benchmarks share")]
struct Args {
    /// Output folder (created).
    #[arg(long)]
    out: PathBuf,
    /// Use this bundle instead of writing a random one (its vocabulary encodes the data).
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Joint vocabulary size of the random bundle.
    #[arg(long, default_value_t = 8000)]
    vocab_size: usize,
    /// Embedding size of the random bundle.
    #[arg(long, default_value_t = 256)]
    embed_dim: i64,
    /// Hidden size (per encoder direction, and of the decoder) of the random bundle
    /// (configs/multi30k-de-en.toml: 256).
    #[arg(long, default_value_t = 256)]
    hidden_dim: i64,
    /// Untie the output projection from the target embedding (the Multi30k preset ties them).
    #[arg(long)]
    untied_output: bool,
    /// Encoder and decoder layers of the random bundle.
    #[arg(long, default_value_t = 2)]
    layers: i64,
    /// Padded positions per training batch (`rows × max(src_len, tgt_len)`).
    #[arg(long, default_value_t = 4000)]
    batch_tokens: usize,
    /// Number of training batches to write (spread over the length range).
    #[arg(long, default_value_t = 12)]
    train_batches: usize,
    /// Padded source positions per search batch (as `TranslateOptions::max_tokens`).
    #[arg(long, default_value_t = 6000)]
    search_max_tokens: usize,
    /// Sentences per search batch (as `TranslateOptions::max_sentences`).
    #[arg(long, default_value_t = 128)]
    search_max_sentences: usize,
    /// Random seed of the weights.
    #[arg(long, default_value_t = 1)]
    seed: i64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn write_random_bundle(args: &Args, dir: &std::path::Path, lines: &[String]) -> Result<()> {
    let train = vocab::TrainConfig {
        vocab_size: args.vocab_size,
        ..Default::default()
    };
    write_untrained_bundle_with(dir, lines.iter(), &train, ("de", "en"), args.seed, |m| {
        ModelConfig {
            embed_dim: args.embed_dim,
            hidden_dim: args.hidden_dim,
            encoder_layers: args.layers,
            decoder_layers: args.layers,
            dropout: 0.3,
            tie_output: !args.untied_output,
            ..m
        }
    })
    .context("writing the random bundle")?;
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)?;
    let data = common::multi30k_dir();
    let de = common::read_lines(&data.join("train.de"))?;
    let en = common::read_lines(&data.join("train.en"))?;
    let bundle_dir = match &args.bundle {
        Some(dir) => dir.clone(),
        None => {
            let dir = args.out.join("bundle");
            let joint: Vec<String> = de.iter().chain(en.iter()).cloned().collect();
            write_random_bundle(&args, &dir, &joint)?;
            dir
        }
    };
    let bundle = Bundle::load(&bundle_dir, Device::Cpu)?;
    eprintln!("bundle {}: {:?}", bundle_dir.display(), bundle.config.model);

    // Training batches: pairs sorted by length, cut by the padded-token budget,
    // then `train_batches` of them taken evenly across the length range.
    let mut pairs = Vec::with_capacity(de.len());
    for (s, t) in de.iter().zip(&en) {
        let src: Vec<i64> = bundle
            .src_vocab
            .encode(s)?
            .into_iter()
            .map(i64::from)
            .collect();
        let tgt: Vec<i64> = bundle
            .tgt_vocab
            .encode(t)?
            .into_iter()
            .map(i64::from)
            .collect();
        if !src.is_empty() && !tgt.is_empty() && src.len() < 100 && tgt.len() < 100 {
            pairs.push((src, tgt));
        }
    }
    pairs.sort_by_key(|(s, t)| (s.len().max(t.len()), s.len(), t.len()));
    let mut cuts = Vec::new();
    let mut start = 0;
    while start < pairs.len() {
        let mut end = start;
        let mut longest = 0;
        while end < pairs.len() {
            let len = pairs[end].0.len().max(pairs[end].1.len()) + 1;
            if (end - start + 1) * len.max(longest) > args.batch_tokens && end > start {
                break;
            }
            longest = longest.max(len);
            end += 1;
        }
        cuts.push((start, end));
        start = end;
    }
    let count = args.train_batches.clamp(1, cuts.len());
    let batches: Vec<common::TrainBatch> = (0..count)
        .map(|i| {
            let (a, b) = cuts[i * cuts.len() / count + cuts.len() / (2 * count)];
            common::train_batch(&pairs[a..b])
        })
        .collect();
    let tokens: i64 = batches.iter().map(|b| b.tgt_tokens).sum();
    eprintln!(
        "{} training batches, {:.0} target tokens per batch on average",
        batches.len(),
        tokens as f64 / batches.len() as f64
    );
    common::write_train_batches(&args.out.join("train_batches.safetensors"), &batches)?;

    let test = common::read_lines(&data.join("test.de"))?;
    let mut encoded = Vec::with_capacity(test.len());
    for line in &test {
        let mut ids: Vec<i64> = bundle
            .src_vocab
            .encode(line)?
            .into_iter()
            .map(i64::from)
            .collect();
        ids.truncate(250);
        ids.push(vocab::EOS_ID as i64);
        encoded.push(ids);
    }
    let search =
        common::search_batches(&encoded, args.search_max_tokens, args.search_max_sentences);
    eprintln!(
        "{} test sentences in {} search batches",
        encoded.len(),
        search.len()
    );
    common::write_search_batches(&args.out.join("test_batches.safetensors"), &search)?;
    std::fs::write(
        args.out.join("bundle_path.txt"),
        format!("{}\n", bundle_dir.display()),
    )?;
    Ok(())
}
