//! The `runpod-operator` binary: parse flags, set up logging, hand over to the library.

use std::{io::IsTerminal, process::ExitCode};

use clap::Parser;
use runpod_operator::cli::{self, Cli};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&cli.log)?)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a log file or a collector gets plain text.
        .with_ansi(std::io::stderr().is_terminal());
    match cli.log_format {
        cli::LogFormat::Text => logs.init(),
        cli::LogFormat::Json => logs.json().init(),
    }
    match cli::run(cli) {
        Ok(code) => Ok(code),
        // The message is for people: no debug form, no backtrace.
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
