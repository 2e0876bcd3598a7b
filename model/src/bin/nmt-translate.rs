//! `nmt-translate`: translate a file or stdin with a model bundle.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use model::beam::{BeamOptions, LengthPenalty, UnkPolicy};
use model::device::DeviceChoice;
use model::search::MaxLength;
use model::translate::{translate, TranslateOptions};
use model::Bundle;

/// Translate text with a model bundle: one sentence per line in, one per line out,
/// in input order. Empty lines give empty lines.
#[derive(Parser, Debug)]
#[command(name = "nmt-translate", version)]
struct Cli {
    /// Model bundle directory.
    #[arg(long, default_value = "checkpoints/multi30k-de-en", env = "NMT_MODEL")]
    model: PathBuf,
    /// Input file (UTF-8, one sentence per line); stdin when absent or `-`.
    #[arg(long, short)]
    input: Option<PathBuf>,
    /// Beam size (1 = greedy search).
    #[arg(long, default_value_t = 5)]
    beam: usize,
    /// Hypotheses per sentence (at most --beam): text output prints that many lines per
    /// input line, best first; JSON lines carry them as `alternatives`.
    #[arg(long, default_value_t = 1)]
    nbest: usize,
    /// Length penalty α: hypotheses are ranked by score / lp(|Y|).
    #[arg(long, default_value_t = 0.6)]
    lenpen: f64,
    /// Length penalty formula: gnmt ((5+|Y|)/6)^α, or plain |Y|^α, or none.
    #[arg(long, value_enum, default_value_t = LenpenKind::Gnmt)]
    lenpen_kind: LenpenKind,
    /// Maximum output length is max-len-a × source length + max-len-b.
    #[arg(long, default_value_t = 1.5)]
    max_len_a: f64,
    #[arg(long, default_value_t = 10)]
    max_len_b: i64,
    /// No end of sentence before this many tokens.
    #[arg(long, default_value_t = 0)]
    min_len: usize,
    /// Never produce the unknown token.
    #[arg(long)]
    ban_unk: bool,
    /// GNMT coverage penalty weight β (0 = off).
    #[arg(long, default_value_t = 0.0)]
    coverage_penalty: f64,
    /// Padded source tokens per batch.
    #[arg(long, default_value_t = 6000)]
    max_tokens: usize,
    /// Sources longer than this many subword tokens are cut (with a warning).
    #[arg(long, default_value_t = 250)]
    max_source_tokens: usize,
    /// Output format: plain text, or JSON lines with scores, n-best and alignments.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LenpenKind {
    Gnmt,
    Plain,
    None,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Format {
    Text,
    Json,
}

fn read_lines(input: &Option<PathBuf>) -> Result<Vec<String>> {
    let (name, reader): (String, Box<dyn BufRead>) = match input {
        Some(p) if p.as_os_str() != "-" => {
            let f =
                std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            (
                p.display().to_string(),
                Box::new(std::io::BufReader::new(f)),
            )
        }
        _ => ("<stdin>".to_string(), Box::new(std::io::stdin().lock())),
    };
    let mut lines = Vec::new();
    for (n, line) in reader.split(b'\n').enumerate() {
        let bytes = line.with_context(|| format!("{name}: read error"))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("{name}:{}: invalid UTF-8", n + 1))?;
        lines.push(text.trim_end_matches('\r').to_string());
    }
    Ok(lines)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.beam == 0 {
        bail!("--beam must be at least 1");
    }
    if cli.nbest == 0 || cli.nbest > cli.beam {
        bail!("--nbest must be in 1..=--beam ({})", cli.beam);
    }
    let device = cli.device.resolve()?;
    let bundle = Bundle::load(&cli.model, device).with_context(|| {
        format!(
            "cannot load model bundle {} (pass --model DIR; see README: Training)",
            cli.model.display()
        )
    })?;
    let lines = read_lines(&cli.input)?;
    let length_penalty = match cli.lenpen_kind {
        LenpenKind::Gnmt => LengthPenalty::Gnmt(cli.lenpen),
        LenpenKind::Plain => LengthPenalty::Plain(cli.lenpen),
        LenpenKind::None => LengthPenalty::None,
    };
    let opts = TranslateOptions {
        beam: BeamOptions {
            beam_size: cli.beam,
            n_best: cli.nbest,
            length_penalty,
            max_length: MaxLength {
                a: cli.max_len_a,
                b: cli.max_len_b,
            },
            min_length: cli.min_len,
            unk: if cli.ban_unk {
                UnkPolicy::Ban
            } else {
                UnkPolicy::Allow
            },
            coverage_penalty: cli.coverage_penalty,
        },
        max_tokens: cli.max_tokens,
        max_source_tokens: cli.max_source_tokens,
        return_attention: cli.format == Format::Json,
        ..Default::default()
    };
    let bar = if cli.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(lines.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} sentences ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let results = translate(&bundle, &lines, &opts, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    let truncated = results.iter().filter(|r| r.truncated).count();
    if truncated > 0 {
        eprintln!(
            "warning: {truncated} source line(s) longer than {} subword tokens were cut",
            cli.max_source_tokens
        );
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    for r in &results {
        match cli.format {
            Format::Text => {
                writeln!(out, "{}", r.text)?;
                for alt in r.alternatives.iter().take(cli.nbest.saturating_sub(1)) {
                    writeln!(out, "{}", alt.text)?;
                }
            }
            Format::Json => {
                let value = serde_json::json!({
                    "text": r.text,
                    "score": r.score,
                    "alternatives": r.alternatives.iter().map(|a| serde_json::json!({"text": a.text, "score": a.score})).collect::<Vec<_>>(),
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
