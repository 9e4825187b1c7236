//! The `runpod-operator` binary: parse flags, set up logging, hand over to the library.

use std::process::ExitCode;

use clap::Parser;
use runpod_operator::cli::{self, Cli};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&cli.log)?)
        .with_writer(std::io::stderr)
        .init();
    Ok(cli::run(cli)?)
}
