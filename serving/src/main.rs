use clap::Parser;

/// Serve model bundles over HTTP.
#[derive(Parser)]
#[command(name = "nmt-serve", version)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
