use clap::Parser;

/// Score translations.
#[derive(Parser)]
#[command(name = "nmt-eval", version)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
