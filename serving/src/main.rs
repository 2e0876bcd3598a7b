//! `nmt-serve`: see `nmt-serve --help` and the serving section of the README.
use clap::Parser;
use serving::config::{Cli, Settings};

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: log files and pipes get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let settings = Settings::resolve(Cli::parse())?;
    serving::server::run(settings)?;
    Ok(())
}
