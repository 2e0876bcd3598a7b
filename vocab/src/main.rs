use clap::Parser;

/// Train, inspect and apply subword vocabularies.
#[derive(Parser)]
#[command(name = "nmt-vocab", version)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
