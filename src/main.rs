//! The `runpod-operator` binary: parse flags, set up logging, hand over to the library.

use std::process::ExitCode;

use clap::Parser;
use runpod_operator::cli::{self, Cli};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&cli.log)?)
        .with_writer(std::io::stderr);
    match cli.log_format {
        cli::LogFormat::Text => logs.init(),
        cli::LogFormat::Json => logs.json().init(),
    }
    Ok(cli::run(cli)?)
}
