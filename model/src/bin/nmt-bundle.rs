//! `nmt-bundle`: inspect a model bundle; copy it with its weights in float16, compressed, or
//! averaged with other checkpoints.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use model::bundle::{self, WeightsDtype};
use model::compress::{ParamSet, RoundClip};
use model::config::LowRankRows;
use model::Bundle;

/// Inspect and describe model bundles, convert their weights (float16 halves the size
/// for shipping; loading always computes in float32), compress them (round/clip, low rank,
/// int8) or average checkpoints.
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
    /// Set the bundle's description: a few words on its training data and domain, which
    /// `nmt-bundle info`, `nmt-serve`'s /v1/models and its web page show (rewrites
    /// metadata.json in place).
    Describe {
        /// Bundle directory.
        bundle: PathBuf,
        /// The description, e.g. "Multi30k: 29k image captions, German to English".
        #[arg(long, required_unless_present = "clear", conflicts_with = "clear")]
        text: Option<String>,
        /// Remove the description.
        #[arg(long)]
        clear: bool,
    },
    /// Write a copy of a bundle with its weights stored as --dtype.
    Convert {
        /// Bundle to read.
        input: PathBuf,
        /// Directory to write (replaced atomically when it exists).
        output: PathBuf,
        /// Stored weight type.
        #[arg(long, value_enum, default_value_t = WeightsDtype::Float16)]
        dtype: WeightsDtype,
    },
    /// Write a copy of a bundle with weights compressed (bundle format 2; every tool loads
    /// it like any other). `--round R` rounds the chosen weights to multiples of R,
    /// `--clip C` then clips them to [-C, C] (the G2-LSTM paper's setting: --round 0.5
    /// --clip 1); they are stored as a codebook and 4- or 8-bit indices and load as float
    /// weights. `--svd-rank K` replaces the chosen rows of the recurrent matrices by their
    /// best rank-K factors, stored as factors and run as two GEMMs. `--int8` stores the chosen
    /// rows of the recurrent matrices (with --params all also the attention, W_c and output
    /// projection matrices) as int8 with one scale per row (symmetric, 7 bits), run by
    /// libtorch's fbgemm int8 kernel: CPU only, always on the step executor (bundle format
    /// 3). --int8 and --svd-rank do not combine.
    Compress {
        /// Bundle to read.
        input: PathBuf,
        /// Directory to write (replaced atomically when it exists).
        output: PathBuf,
        /// Round the chosen weights to multiples of this step (> 0).
        #[arg(
            long,
            required_unless_present_any = ["svd_rank", "int8"],
            conflicts_with_all = ["svd_rank", "int8"]
        )]
        round: Option<f64>,
        /// Factor the chosen rows with this rank (--params gates or recurrent).
        #[arg(long)]
        svd_rank: Option<i64>,
        /// Store the chosen rows as int8 with per-row scales, run by int8 kernels on the CPU
        /// (--params recurrent, the default with --int8: every row of every recurrent
        /// layer's input and recurrent matrix; gates: only the input- and forget-gate rows,
        /// the others stay float and run as a second, float GEMM; all: every row of the
        /// recurrent matrices, and also the attention's key (and MLP query) projection, the
        /// decoder's W_c and the output projection, which gets an int8 copy of its weight
        /// beside the float one (a tied embedding's lookups stay float: the bundle grows by
        /// that copy). The embeddings' lookups, the biases and the bridges from encoder to
        /// decoder stay float. A decoder layer's input and recurrent matrices share each
        /// row's scale, so that a search step runs them as one int8 GEMM.
        #[arg(long)]
        int8: bool,
        /// Then clip them to [-CLIP, CLIP] (> 0).
        #[arg(long, requires = "round")]
        clip: Option<f64>,
        /// Which weights: the input- and forget-gate rows of every recurrent layer's input
        /// and recurrent matrices (gates, what the paper compressed), all rows of those
        /// matrices (recurrent), or every weight (all; with --int8: every matrix a decoder
        /// step multiplies by, see --int8; refused with --svd-rank). Default: gates;
        /// recurrent with --int8.
        #[arg(long, value_enum)]
        params: Option<ParamSet>,
        /// Stored type of the other weights.
        #[arg(long, value_enum, default_value_t = WeightsDtype::Float16)]
        dtype: WeightsDtype,
    },
    /// Average the weights of several checkpoints of one run (same architecture and
    /// vocabulary) into a new bundle: BUNDLE... OUTPUT. Its metadata is the newest
    /// checkpoint's, without validation scores (the average was not validated).
    Average {
        /// The bundles to average, then the directory to write (replaced atomically).
        #[arg(num_args = 2.., required = true)]
        paths: Vec<PathBuf>,
        /// Stored weight type.
        #[arg(long, value_enum, default_value_t = WeightsDtype::Float16)]
        dtype: WeightsDtype,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Info { bundle: dir } => {
            let loaded = Bundle::load(&dir, tch::Device::Cpu)
                .with_context(|| format!("cannot load bundle {}", dir.display()))?;
            println!("{}", serde_json::to_string_pretty(&describe(&loaded)?)?);
        }
        Command::Describe {
            bundle: dir, text, ..
        } => {
            bundle::set_description(&dir, text.as_deref())
                .with_context(|| format!("cannot describe bundle {}", dir.display()))?;
            let loaded = Bundle::load(&dir, tch::Device::Cpu)
                .with_context(|| format!("cannot load bundle {}", dir.display()))?;
            println!("{}", serde_json::to_string_pretty(&describe(&loaded)?)?);
        }
        Command::Convert {
            input,
            output,
            dtype,
        } => {
            let converted = bundle::convert(&input, &output, dtype).with_context(|| {
                format!("cannot convert {} to {}", input.display(), output.display())
            })?;
            println!("{}", serde_json::to_string_pretty(&describe(&converted)?)?);
        }
        Command::Compress {
            input,
            output,
            round,
            svd_rank,
            int8,
            clip,
            params,
            dtype,
        } => {
            if int8 && svd_rank.is_some() {
                bail!(
                    "--int8 and --svd-rank cannot be combined: --int8 quantizes dense matrices \
                     and does not quantize rank-K factors (compress with one of them)"
                );
            }
            let rows = |params: ParamSet, flag: &str| match params {
                ParamSet::Gates => Ok(LowRankRows::Gates),
                ParamSet::Recurrent => Ok(LowRankRows::All),
                ParamSet::All => Err(anyhow::anyhow!(
                    "{flag} compresses recurrent matrices only: give --params gates or recurrent"
                )),
            };
            let result = match (round, svd_rank) {
                _ if int8 => {
                    let params = params.unwrap_or(ParamSet::Recurrent);
                    let (rows, linear) = match params {
                        ParamSet::All => (LowRankRows::All, true),
                        other => (rows(other, "--int8")?, false),
                    };
                    bundle::compress_int8(&input, &output, rows, linear, dtype)
                }
                (Some(round), _) => bundle::compress_round_clip(
                    &input,
                    &output,
                    params.unwrap_or(ParamSet::Gates),
                    RoundClip { round, clip },
                    dtype,
                ),
                (None, Some(rank)) => bundle::compress_low_rank(
                    &input,
                    &output,
                    rows(params.unwrap_or(ParamSet::Gates), "--svd-rank")?,
                    rank,
                    dtype,
                ),
                // clap requires one of the three.
                (None, None) => bail!("give --round, --svd-rank or --int8"),
            };
            let compressed = result.with_context(|| {
                format!(
                    "cannot compress {} into {}",
                    input.display(),
                    output.display()
                )
            })?;
            println!("{}", serde_json::to_string_pretty(&describe(&compressed)?)?);
        }
        Command::Average { mut paths, dtype } => {
            // clap's num_args = 2.. guarantees an output after at least one input.
            let output = paths.pop().context("no output directory")?;
            let averaged = bundle::average(&paths, &output, dtype)
                .with_context(|| format!("cannot average into {}", output.display()))?;
            println!("{}", serde_json::to_string_pretty(&describe(&averaged)?)?);
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
        "description": b.metadata.description,
        "model": b.config.model,
        "parameters": parameters,
        "weights_bytes": bytes,
        "format_version": b.config.format_version,
        "compression": b.metadata.extra.get("compression"),
        "metadata": b.metadata,
    }))
}
