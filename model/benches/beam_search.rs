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
    /// Intra-op threads (in all; each worker gets threads / workers).
    #[arg(long, default_value_t = 2)]
    threads: i32,
    /// Decoders running side by side, each with its own copy of the model, taking the
    /// next batch when done with one.
    #[arg(long, default_value_t = 1)]
    workers: usize,
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

/// A decoded batch: its rows' line numbers and each row's best hypothesis.
type Decoded = (Vec<i64>, Vec<Vec<u32>>);

fn main() -> Result<()> {
    let args = Args::parse();
    if args.mallopt && !common::keep_freed_memory() {
        anyhow::bail!("glibc refused the mallopt settings");
    }
    let workers = args.workers.max(1);
    let per_worker = (args.threads / workers as i32).max(1);
    tch::set_num_threads(per_worker);
    let mut bundle = Bundle::load(&args.bundle, Device::Cpu)?;
    if args.bf16 {
        bundle.vars.bfloat16();
    }
    // What model::translate does with --workers: every worker a view of the same weights.
    let models = (0..workers)
        .map(|_| bundle.share_model())
        .collect::<Result<Vec<_>, _>>()?;
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
    let queue = std::sync::Mutex::new(
        batches
            .into_iter()
            .collect::<std::collections::VecDeque<_>>(),
    );
    let start = Instant::now();
    let decoded: Vec<Decoded> = std::thread::scope(|scope| {
        let handles: Vec<_> = models
            .into_iter()
            .map(|(vars, model)| {
                let (queue, opts) = (&queue, &opts);
                scope.spawn(move || -> Result<Vec<Decoded>> {
                    let _store = vars;
                    tch::set_num_threads(per_worker);
                    let mut out = Vec::new();
                    loop {
                        let next = queue
                            .lock()
                            .map_err(|_| anyhow::anyhow!("poisoned"))?
                            .pop_front();
                        let Some(b) = next else { break };
                        let hyps = beam_search(&model, &b.src, &b.lengths, opts)?;
                        let index: Vec<i64> = Vec::try_from(&b.index)?;
                        let best = hyps
                            .into_iter()
                            .map(|n| n.into_iter().next().map(|h| h.tokens).unwrap_or_default())
                            .collect();
                        out.push((index, best));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a decoder thread panicked"))?
            })
            .collect::<Result<Vec<_>>>()
            .map(|v| v.into_iter().flatten().collect())
    })?;
    for (index, best) in decoded {
        for (i, tokens) in index.into_iter().zip(best) {
            results[i as usize] = tokens;
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
            "workers": workers,
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
