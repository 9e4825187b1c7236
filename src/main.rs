//! The `runpod-operator` binary: parse flags, set up logging, hand over to the library.

use std::{io::IsTerminal, process::ExitCode};

use clap::Parser;
use runpod_operator::cli::{self, Cli};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = cli.log_filter();
    let filter = match EnvFilter::try_new(&filter) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!(
                "error: the log filter {filter:?} (--log, RUNPOD_OPERATOR_LOG or RUST_LOG) is not valid: {e}; e.g. info or runpod_operator=debug"
            );
            return ExitCode::FAILURE;
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a log file or a collector gets plain text.
        .with_ansi(std::io::stderr().is_terminal());
    match cli.log_format {
        cli::LogFormat::Text => logs.init(),
        cli::LogFormat::Json => logs.json().init(),
    }
    match cli::run(cli) {
        Ok(code) => code,
        // The message is for people: no debug form, no backtrace (even with RUST_BACKTRACE set).
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
