//! `nmt-eval`: sacreBLEU-exact BLEU and chrF from the command line (the `evaluation`
//! library), and translate-and-score with a model bundle (the `model` library).

use anyhow::Result;
use clap::{Parser, Subcommand};

mod score;
mod translate;

use score::{BleuArgs, ChrfArgs};

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
    /// Translate a test set with a model bundle and score it: sacreBLEU (detokenized,
    /// cased, 13a), tokenized lowercased BLEU in the multi-bleu line format, and chrF.
    Translate(translate::TranslateArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let stdin = std::io::stdin().lock();
    let out = match &cli.command {
        Command::Bleu(args) => args.run(stdin)?,
        Command::Chrf(args) => args.run(stdin)?,
        Command::Translate(args) => args.run()?,
    };
    println!("{out}");
    Ok(())
}
