//! `nmt-bundle`: inspect a model bundle, or copy it with its weights in float16.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use model::bundle::{self, WeightsDtype};
use model::Bundle;

/// Inspect model bundles and convert their weights (float16 halves the size
/// for shipping; loading always computes in float32).
#[derive(Parser, Debug)]
#[command(name = "nmt-bundle", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a bundle's languages, architecture, parameter count, weight type,
    /// size and training metadata as JSON.
    Info {
        /// Bundle directory.
        bundle: PathBuf,
    },
    /// Write a copy of a bundle with its weights stored as --dtype.
    Convert {
        /// Bundle to read.
        input: PathBuf,
        /// Directory to write (replaced atomically when it exists).
        output: PathBuf,
        /// Stored weight type.
        #[arg(long, value_enum, default_value_t = Dtype::F16)]
        dtype: Dtype,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Dtype {
    F16,
    F32,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Info { bundle: dir } => {
            let loaded = Bundle::load(&dir, tch::Device::Cpu)
                .with_context(|| format!("cannot load bundle {}", dir.display()))?;
            println!("{}", serde_json::to_string_pretty(&describe(&loaded)?)?);
        }
        Command::Convert {
            input,
            output,
            dtype,
        } => {
            let dtype = match dtype {
                Dtype::F16 => WeightsDtype::Float16,
                Dtype::F32 => WeightsDtype::Float32,
            };
            let converted = bundle::convert(&input, &output, dtype).with_context(|| {
                format!("cannot convert {} to {}", input.display(), output.display())
            })?;
            println!("{}", serde_json::to_string_pretty(&describe(&converted)?)?);
        }
    }
    Ok(())
}

fn describe(b: &Bundle) -> Result<serde_json::Value> {
    let weights = b.dir.join(bundle::WEIGHTS_FILE);
    let bytes = std::fs::metadata(&weights)
        .with_context(|| weights.display().to_string())?
        .len();
    let parameters: i64 = b.vars.variables().values().map(|t| t.numel() as i64).sum();
    Ok(serde_json::json!({
        "dir": b.dir,
        "src_lang": b.config.src_lang,
        "tgt_lang": b.config.tgt_lang,
        "model": b.config.model,
        "parameters": parameters,
        "weights_bytes": bytes,
        "metadata": b.metadata,
    }))
}
