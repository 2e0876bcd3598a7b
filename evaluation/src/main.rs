//! `nmt-eval`: sacreBLEU-exact BLEU and chrF from the command line.
//!
//! Thin wrapper: argument parsing lives in `evaluation::cli`, scoring in the library.

use anyhow::Result;
use clap::{Parser, Subcommand};
use evaluation::cli::{BleuArgs, ChrfArgs};

/// Score translations against references as sacreBLEU 2.x does.
#[derive(Parser)]
#[command(name = "nmt-eval", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// BLEU (corpus, or per line with --sentence). Hypotheses from --hyp or stdin.
    Bleu(BleuArgs),
    /// chrF, or chrF++ with --chrf-word-order 2. Hypotheses from --hyp or stdin.
    Chrf(ChrfArgs),
    // `Translate(TranslateArgs)` goes here: decode a test set with a trained model and
    // score it. It lives in the binary, not the library, because it needs the model crate.
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let stdin = std::io::stdin().lock();
    let out = match &cli.command {
        Command::Bleu(args) => args.run(stdin)?,
        Command::Chrf(args) => args.run(stdin)?,
    };
    println!("{out}");
    Ok(())
}
