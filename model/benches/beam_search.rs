//! Beam-search speed of `model::beam::beam_search` on Multi30k test.de, pre-encoded
//! and batched as `model::translate` does (the `prepare` bench writes the batches),
//! so that `bench/pytorch/beam_search.py` decodes exactly the same id batches.
//!
//! Prints one JSON line (sentences per second); `--out` writes the hypotheses
//! (ids per input line) for a token-by-token comparison with PyTorch's.
//!
//! `cargo bench -p model --bench beam_search -- --bundle DIR --batches FILE`

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use model::beam::{beam_search, BeamOptions, LengthPenalty};
use model::search::MaxLength;
use model::Bundle;
use tch::Device;

#[derive(Parser, Debug)]
#[command(about = "Beam-search sentences per second of the Rust model")]
struct Args {
    /// Bundle folder.
    #[arg(long)]
    bundle: PathBuf,
    /// test_batches.safetensors written by the prepare bench.
    #[arg(long)]
    batches: PathBuf,
    /// Write the hypotheses (ids per input line) here as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Beam size.
    #[arg(long, default_value_t = 5)]
    beam: usize,
    /// Intra-op threads.
    #[arg(long, default_value_t = 2)]
    threads: i32,
    /// Keep freed memory in the process (glibc mallopt: mmap threshold 32 MiB, no trim)
    /// instead of paying page faults for every large tensor.
    #[arg(long)]
    mallopt: bool,
    /// Compute in bfloat16 (weights and activations; log-probabilities in float32).
    #[arg(long)]
    bf16: bool,
    /// Decode only the first N batches (for profiling).
    #[arg(long)]
    max_batches: Option<usize>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.mallopt && !common::keep_freed_memory() {
        anyhow::bail!("glibc refused the mallopt settings");
    }
    tch::set_num_threads(args.threads);
    let mut bundle = Bundle::load(&args.bundle, Device::Cpu)?;
    if args.bf16 {
        bundle.vars.bfloat16();
    }
    let mut batches = common::read_search_batches(&args.batches)?;
    let lines: usize = batches.iter().map(|b| b.src.size()[0] as usize).sum();
    batches.truncate(args.max_batches.unwrap_or(usize::MAX));
    let opts = BeamOptions {
        beam_size: args.beam,
        n_best: 1,
        length_penalty: LengthPenalty::Gnmt(0.6),
        max_length: MaxLength { a: 1.5, b: 10 },
        // The PyTorch reference keeps no attention either.
        keep_attention: false,
        ..Default::default()
    };
    let total: usize = batches.iter().map(|b| b.src.size()[0] as usize).sum();
    let mut results: Vec<Vec<u32>> = vec![Vec::new(); lines];
    let start = Instant::now();
    for b in &batches {
        let hyps = beam_search(&bundle.model, &b.src, &b.lengths, &opts);
        let index: Vec<i64> = Vec::try_from(&b.index)?;
        for (i, nbest) in index.into_iter().zip(hyps) {
            if let Some(best) = nbest.into_iter().next() {
                results[i as usize] = best.tokens;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let out_tokens: usize = results.iter().map(Vec::len).sum();
    println!(
        "{}",
        serde_json::json!({
            "impl": "rust",
            "bench": "beam_search",
            "beam": args.beam,
            "threads": args.threads,
            "mallopt": args.mallopt,
            "bf16": args.bf16,
            "sentences": total,
            "output_tokens": out_tokens,
            "seconds": elapsed,
            "sentences_per_s": total as f64 / elapsed,
        })
    );
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_string(&results)?)?;
    }
    Ok(())
}
