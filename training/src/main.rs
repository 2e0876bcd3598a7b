use clap::Parser;

/// Train an LSTM encoder-decoder.
#[derive(Parser)]
#[command(name = "nmt-train", version)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
