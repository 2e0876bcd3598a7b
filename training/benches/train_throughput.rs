//! Training throughput (target tokens per second) of `model::Seq2Seq`: teacher-forced
//! forward, label-smoothed cross-entropy ignoring padding, backward, gradient-norm
//! clipping and an Adam step, on fixed batches written by the `prepare` bench.
//! `bench/pytorch/train_throughput.py` runs the same steps on the same batches.
//!
//! By default each step is what `nmt-train` runs: the real target positions only
//! (`Seq2Seq::forward_packed_attentional`) and the output projection fused with the loss
//! (`model::loss::projected_label_smoothed_nll`). `--logits-loss` and `--padded` measure the
//! steps before those changes.
//!
//! With more than one thread, the step is split among worker threads as nmt-train does
//! (`training::split_step`; `--workers 1` for one pass with all threads).
//!
//! Prints one JSON line with the throughput and where the time went
//! (forward / loss / backward / optimizer, measured with the CPU's synchronous ops; with the
//! fused loss, "loss" includes the output projection and its gradient GEMMs; with workers,
//! forward, loss and backward run together and count as "backward").
//!
//! `cargo bench -p training --bench train_throughput -- --bundle DIR --batches FILE`

// The exchange files of the model crate's benchmarks (the `prepare` bench writes the batches).
#[path = "../../model/benches/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use model::bundle::load_weights;
use model::loss::{label_smoothed_nll, projected_label_smoothed_nll};
use model::Seq2Seq;
use tch::nn::{self, OptimizerConfig};
use tch::Device;
use training::split_step::SplitStep;
use training::trainable::DeviceBatch;

#[derive(Parser, Debug)]
#[command(about = "Training steps per second of the Rust model on fixed batches")]
struct Args {
    /// Bundle folder (config.json, model.safetensors).
    #[arg(long)]
    bundle: PathBuf,
    /// train_batches.safetensors written by the prepare bench.
    #[arg(long)]
    batches: PathBuf,
    /// Untimed steps first (allocator and kernel warm-up), cycling through the batches.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed passes over all batches.
    #[arg(long, default_value_t = 1)]
    passes: usize,
    /// Intra-op threads (torch.set_num_threads on the Python side).
    #[arg(long, default_value_t = 2)]
    threads: i32,
    /// Label smoothing ε.
    #[arg(long, default_value_t = 0.1)]
    label_smoothing: f64,
    /// Gradient-norm clip.
    #[arg(long, default_value_t = 1.0)]
    clip: f64,
    /// Keep freed memory in the process (glibc mallopt: mmap threshold 32 MiB, no trim)
    /// instead of paying page faults for every large tensor.
    #[arg(long)]
    mallopt: bool,
    /// Compute every padded target position too (`Seq2Seq::forward`, what the PyTorch
    /// reference does) instead of the real ones only (what nmt-train does); implies
    /// --logits-loss.
    #[arg(long)]
    padded: bool,
    /// Worker threads per step, each on a slice of the batch's rows with threads / workers
    /// intra-op threads (`training::split_step`, what nmt-train does on a CPU); default: one
    /// per thread. Ignored with --logits-loss and --padded (one pass, as before).
    #[arg(long)]
    workers: Option<usize>,
    /// Score the logits with `model::loss::label_smoothed_nll` and let autograd differentiate
    /// the log-softmax (what the PyTorch reference does) instead of the fused projection loss.
    #[arg(long)]
    logits_loss: bool,
    /// Train with this gate mode instead of the bundle's (`standard`, `gumbel` or `sharpened`,
    /// with the paper's parameters): G2-LSTM's cost.
    #[arg(long)]
    gates: Option<String>,
    /// Run the recurrent layers with this executor instead of the bundle's (`auto`, `fused`,
    /// `step`).
    #[arg(long)]
    executor: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// What the forward phase hands to the loss.
enum Forward {
    /// `[N, V]` or `[B, T, V]` logits.
    Logits(tch::Tensor),
    /// `[N, A]` attentional vectors (the output projection happens inside the loss).
    Attentional(tch::Tensor),
}

#[derive(Default)]
struct Phases {
    forward: f64,
    loss: f64,
    backward: f64,
    optimizer: f64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.mallopt && !common::keep_freed_memory() {
        anyhow::bail!("glibc refused the mallopt settings");
    }
    tch::set_num_threads(args.threads);
    let mut config = model::bundle::read_config(&args.bundle)?;
    if let Some(kind) = &args.gates {
        let kind: model::GateKind = serde_json::from_value(serde_json::json!(kind))?;
        config.model.gates = model::GateConfig::of_kind(kind);
    }
    if let Some(executor) = &args.executor {
        config.model.executor = serde_json::from_value(serde_json::json!(executor))?;
    }
    config.model.validate()?;
    let mut vars = nn::VarStore::new(Device::Cpu);
    let model = Seq2Seq::new(&vars.root(), &config.model)?;
    load_weights(&mut vars, &args.bundle.join(model::bundle::WEIGHTS_FILE))?;
    let batches = common::read_train_batches(&args.batches)?;
    let mut opt = nn::Adam::default().build(&vars, 1e-4)?;
    tch::manual_seed(0);
    let one_pass = args.padded || args.logits_loss;
    let workers = if one_pass {
        1
    } else {
        args.workers.unwrap_or(args.threads.max(1) as usize)
    };
    let parallel = (workers > 1)
        .then(|| SplitStep::new(&vars, &config.model, workers))
        .transpose()?;

    let mut step = |b: &common::TrainBatch, phases: &mut Phases| {
        let t0 = Instant::now();
        if let Some(parallel) = &parallel {
            // Forward, loss and backward happen together in the workers: one phase.
            opt.zero_grad();
            let batch = DeviceBatch {
                src: b.src.shallow_clone(),
                src_lengths: b.src_lengths.shallow_clone(),
                tgt_in: b.tgt_in.shallow_clone(),
                tgt_out: b.tgt_out.shallow_clone(),
                tgt_lengths: b.tgt_lengths.clone(),
            };
            let seed = model::random::seed_from_libtorch();
            let out = parallel
                .backward(&model, &vars, &batch, args.label_smoothing, 1.0, seed)
                .expect("the benchmark batches fit the model");
            let _ = out.loss.double_value(&[]);
            let t3 = Instant::now();
            opt.clip_grad_norm(args.clip);
            opt.step();
            phases.backward += (t3 - t0).as_secs_f64();
            phases.optimizer += t3.elapsed().as_secs_f64();
            return;
        }
        let smoothing = args.label_smoothing;
        let gold_of = |positions: &tch::Tensor| b.tgt_out.view([-1]).index_select(0, positions);
        // The loss is computed in the forward phase's closure only where the logits are kept.
        let (forward_out, gold): (Forward, tch::Tensor) = if args.padded {
            let logits = model.forward(&b.src, &b.src_lengths, &b.tgt_in, &model.context(true));
            (Forward::Logits(logits), b.tgt_out.shallow_clone())
        } else if args.logits_loss {
            let (logits, positions) = model.forward_packed(
                &b.src,
                &b.src_lengths,
                &b.tgt_in,
                &b.tgt_lengths,
                &model.context(true),
            );
            (Forward::Logits(logits), gold_of(&positions))
        } else {
            let (attentional, positions) = model.forward_packed_attentional(
                &b.src,
                &b.src_lengths,
                &b.tgt_in,
                &b.tgt_lengths,
                &model.context(true),
            );
            (Forward::Attentional(attentional), gold_of(&positions))
        };
        let t1 = Instant::now();
        let pad = vocab::PAD_ID as i64;
        let out = match &forward_out {
            Forward::Logits(logits) => label_smoothed_nll(logits, &gold, pad, smoothing),
            Forward::Attentional(attentional) => {
                let (weight, bias) = model.output_projection();
                projected_label_smoothed_nll(attentional, weight, bias, &gold, pad, smoothing)
            }
        }
        .expect("the benchmark batches fit the model");
        let loss = out.loss;
        let _ = loss.double_value(&[]);
        let t2 = Instant::now();
        opt.zero_grad();
        loss.backward();
        let t3 = Instant::now();
        opt.clip_grad_norm(args.clip);
        opt.step();
        let t4 = Instant::now();
        phases.forward += (t1 - t0).as_secs_f64();
        phases.loss += (t2 - t1).as_secs_f64();
        phases.backward += (t3 - t2).as_secs_f64();
        phases.optimizer += (t4 - t3).as_secs_f64();
    };
    let mut ignored = Phases::default();
    for i in 0..args.warmup {
        step(&batches[i % batches.len()], &mut ignored);
    }
    let mut phases = Phases::default();
    let mut tokens = 0i64;
    let mut per_step = Vec::new();
    let start = Instant::now();
    for _ in 0..args.passes {
        for b in &batches {
            let s = Instant::now();
            step(b, &mut phases);
            per_step.push(s.elapsed().as_secs_f64());
            tokens += b.tgt_tokens;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "impl": "rust",
            "bench": "train_throughput",
            "threads": args.threads,
            "mallopt": args.mallopt,
            "padded": args.padded,
            "workers": workers,
            "logits_loss": args.logits_loss || args.padded,
            "gates": config.model.gates.kind.name(),
            "executor": config.model.executor.name(),
            "steps": per_step.len(),
            "target_tokens": tokens,
            "seconds": elapsed,
            "tokens_per_s": tokens as f64 / elapsed,
            "median_step_s": common::median(&per_step),
            "phases_s": {
                "forward": phases.forward,
                "loss": phases.loss,
                "backward": phases.backward,
                "optimizer": phases.optimizer,
            },
        })
    );
    Ok(())
}
