//! `nmt-translate`: translate a file or stdin with a model bundle.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use model::cli::{read_text_lines, translation_progress, DecodeArgs};
use model::device::DeviceChoice;
use model::translate::translate;
use model::Bundle;

/// Translate text with a model bundle: one line in, one line out, in input order. Empty
/// lines give empty lines. A line of several sentences is translated sentence by sentence
/// (in text format), an over-long sentence in pieces cut at clause punctuation.
#[derive(Parser, Debug)]
#[command(name = "nmt-translate", version)]
struct Cli {
    /// Model bundle directory.
    #[arg(long, default_value = "checkpoints/multi30k-de-en", env = "NMT_MODEL")]
    model: PathBuf,
    /// Input file (UTF-8, one sentence per line); stdin when absent or `-`.
    #[arg(long, short)]
    input: Option<PathBuf>,
    #[command(flatten)]
    decode: DecodeArgs,
    /// Output format: text (the best translation per line; with --nbest N, N lines per
    /// input line, best first), or json (one JSON object per input line with score,
    /// alternatives, source/target tokens and attention).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Translate each line as one unit, however many sentences it holds (an over-long
    /// line is then cut at --max-source-tokens). JSON output always does: its attention
    /// matrix is the whole line's.
    #[arg(long)]
    no_split_sentences: bool,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Format {
    Text,
    Json,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let mut opts = cli
        .decode
        .options(cli.format == Format::Json)
        .map_err(anyhow::Error::msg)?;
    opts.split_sentences = cli.format == Format::Text && !cli.no_split_sentences;
    let device = cli.device.resolve()?;
    let mut bundle = Bundle::load(&cli.model, device).with_context(|| {
        format!(
            "cannot load model bundle {} (pass --model DIR; see README: Training)",
            cli.model.display()
        )
    })?;
    cli.decode.apply_to(&mut bundle);
    let lines = read_text_lines(cli.input.as_deref()).map_err(anyhow::Error::msg)?;
    let bar =
        translation_progress(lines.len(), cli.quiet).context("the progress bar's template")?;
    let results = translate(&bundle, &lines, &opts, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    let truncated = results.iter().filter(|r| r.truncated).count();
    if truncated > 0 {
        eprintln!(
            "warning: {truncated} source line(s) longer than {} subword tokens were cut",
            cli.decode.max_source_tokens
        );
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    for r in &results {
        match cli.format {
            Format::Text => {
                writeln!(out, "{}", r.text)?;
                for alt in r
                    .alternatives
                    .iter()
                    .take(cli.decode.nbest.saturating_sub(1))
                {
                    writeln!(out, "{}", alt.text)?;
                }
            }
            Format::Json => {
                let value = serde_json::json!({
                    "text": r.text,
                    "score": r.score,
                    "ranking_score": r.ranking_score,
                    "alternatives": r.alternatives.iter().map(|a| serde_json::json!({"text": a.text, "score": a.score, "ranking_score": a.ranking_score})).collect::<Vec<_>>(),
                    "source_tokens": r.source_tokens,
                    "target_tokens": r.target_tokens,
                    "attention": r.attention,
                    "truncated": r.truncated,
                });
                writeln!(out, "{value}")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
