//! `nmt-train`: trains an LSTM encoder-decoder from a TOML config (see `training::config`).
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer};
use training::run::{run, RunArgs};

/// Train an LSTM encoder-decoder translation model.
///
/// The run directory receives checkpoints (`last`, `best`, and every `training.keep_every`
/// steps; each holds a model bundle in `model/`), `train.jsonl` / `valid.jsonl` logs,
/// `train.log`, the resolved `config.toml` and `curves.svg` (loss and BLEU by update, redrawn
/// at every validation), and with `training.average_last = N` the average of the last N
/// checkpoints in `averaged/` (a model bundle). A run killed at any instant continues exactly
/// where its last checkpoint left it with `--resume`.
///
/// Relative paths in the config's [data] and [vocab] sections are resolved against the
/// config file's folder.
///
/// Several processes (GPUs, machines): start it with `torchrun --no-python --nproc-per-node N
/// nmt-train ...`, under Slurm's `srun`, or with RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT
/// set; each update then takes training.update_freq batches on every process, rank 0 writes
/// the run directory (README: "Training on several GPUs or machines").
#[derive(Parser)]
#[command(name = "nmt-train", version)]
struct Cli {
    /// TOML config (sections [data], [vocab], [model], [training]); optional with --resume,
    /// which then reads <run-dir>/config.toml.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for checkpoints, logs and the run's vocabulary (created when missing).
    #[arg(long, value_name = "DIR")]
    run_dir: PathBuf,
    /// Continue the run in --run-dir from its `last` checkpoint (same seed required).
    #[arg(long)]
    resume: bool,
    /// Only redraw <run-dir>/curves.svg from the run's logs, then exit (no training).
    #[arg(long, conflicts_with_all = ["config", "resume"])]
    plot: bool,
    /// Override a config value, e.g. `--set training.lr=0.002` or
    /// `--set training.schedule.kind=inverse_sqrt` (value in TOML syntax; bare words are
    /// strings). Repeatable; applied after the file, before the flags below.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Fine-tune: start from this bundle's weights, with its architecture and vocabulary
    /// (fresh data, optimizer, schedule and step; [model] may still change dropout and
    /// executor). A config key that disagrees with the bundle, other languages, or a
    /// compressed or int8 bundle is refused. Shorthand for --set training.init_from=...
    #[arg(long, value_name = "BUNDLE")]
    init_from: Option<PathBuf>,
    /// Also write TensorBoard event files to <run-dir>/tensorboard/ (`tensorboard --logdir
    /// <run-dir>`); shorthand for --set training.tensorboard=true.
    #[arg(long)]
    tensorboard: bool,
    /// Shorthand for --set training.device=...: auto, cpu, cuda or cuda:N.
    #[arg(long, value_name = "DEVICE")]
    device: Option<String>,
    /// Shorthand for --set training.bf16=true: bf16 autocast on CUDA.
    #[arg(long)]
    bf16: bool,
    /// Shorthand for --set training.lr=...
    #[arg(long, value_name = "LR")]
    lr: Option<f64>,
    /// Shorthand for --set training.max_steps=... (0: no limit).
    #[arg(long, value_name = "N")]
    max_steps: Option<u64>,
    /// Shorthand for --set training.max_epochs=... (0: no limit).
    #[arg(long, value_name = "N")]
    max_epochs: Option<u64>,
    /// Shorthand for --set training.batch_tokens=...
    #[arg(long, value_name = "N")]
    batch_tokens: Option<usize>,
    /// Shorthand for --set training.seed=...
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Skip (and count, in the report at the end) sentence pairs with invalid UTF-8, an
    /// empty side or mismatched segment ids instead of stopping; shorthand for
    /// --set data.skip_bad_lines=true. Different line counts are always an error.
    #[arg(long)]
    skip_bad_lines: bool,
    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long, short)]
    quiet: bool,
    /// Log filter for stderr and <run-dir>/train.log (RUST_LOG syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info", value_name = "FILTER")]
    log: String,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.plot {
        training::plot::write_run_curves(&cli.run_dir)
            .with_context(|| format!("plotting the run in {}", cli.run_dir.display()))?;
        println!(
            "{}",
            cli.run_dir.join(training::plot::CURVES_FILE).display()
        );
        return Ok(());
    }
    std::fs::create_dir_all(&cli.run_dir)
        .with_context(|| format!("creating run directory {}", cli.run_dir.display()))?;
    // Each rank of a multi-process job logs to its own file; rank 0's (or a lone process's) is
    // train.log. A bad launch environment is reported by `run` below.
    let rank = distributed::LaunchEnv::from_env()
        .ok()
        .flatten()
        .map_or(0, |l| l.rank);
    let log_path = cli.run_dir.join(if rank == 0 {
        "train.log".to_owned()
    } else {
        format!("train.rank-{rank}.log")
    });
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let filter = || EnvFilter::try_new(&cli.log).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr)
                .with_filter(filter()),
        )
        .with(
            fmt::layer()
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(log_file))
                .with_filter(filter()),
        )
        .init();

    let mut overrides = cli.set.clone();
    if let Some(bundle) = &cli.init_from {
        // Relative to where the command runs (a config's own paths are relative to it).
        let bundle = std::path::absolute(bundle)
            .with_context(|| format!("--init-from {}", bundle.display()))?;
        let quoted = toml::Value::String(bundle.display().to_string());
        overrides.push(format!("training.init_from={quoted}"));
    }
    if let Some(d) = &cli.device {
        overrides.push(format!("training.device=\"{d}\""));
    }
    if cli.tensorboard {
        overrides.push("training.tensorboard=true".into());
    }
    if cli.bf16 {
        overrides.push("training.bf16=true".into());
    }
    if cli.skip_bad_lines {
        overrides.push("data.skip_bad_lines=true".into());
    }
    if let Some(v) = cli.lr {
        overrides.push(format!("training.lr={v:?}"));
    }
    for (key, v) in [
        ("max_steps", cli.max_steps),
        ("max_epochs", cli.max_epochs),
        ("seed", cli.seed),
    ] {
        if let Some(v) = v {
            overrides.push(format!("training.{key}={v}"));
        }
    }
    if let Some(v) = cli.batch_tokens {
        overrides.push(format!("training.batch_tokens={v}"));
    }
    let args = RunArgs {
        config: cli.config,
        run_dir: cli.run_dir,
        resume: cli.resume,
        overrides,
        quiet: cli.quiet,
    };
    let (outcome, run_dir) = run(&args)?;
    if rank != 0 {
        return Ok(());
    }
    let best = run_dir
        .best()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "none".into());
    eprintln!(
        "training stopped ({:?}); best checkpoint: {best}",
        outcome.reason
    );
    Ok(())
}
