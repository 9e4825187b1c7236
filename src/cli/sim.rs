//! `runpod-operator sim`: the RunPod simulator in the foreground until Ctrl-C.

use std::{io::Write, net::SocketAddr, process::ExitCode};

use clap::Args;
use rust_decimal::Decimal;

use super::CliError;
use crate::sim::{self, SimConfig};

/// Flags of `sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Where the REST v2 and GraphQL API listens.
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// Where the serverless job and health host listens.
    #[arg(long, default_value = "127.0.0.1:8788")]
    pub serverless_listen: SocketAddr,
    /// Credit of the funded account, USD.
    #[arg(long, default_value = "500")]
    pub balance: Decimal,
    /// The funded account's API key.
    #[arg(long, default_value = "rpa_SIMULATOR0000000000000000000000")]
    pub api_key: String,
    /// Virtual seconds per real second (0 freezes the clock; advance it with
    /// `POST /_sim/clock {"advanceSeconds": N}`).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Requests per minute per key before 429.
    #[arg(long, default_value_t = 600)]
    pub requests_per_minute: u32,
    /// Seed for ids and fault draws.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Skip checking every response against the official spec (faster for big accounts;
    /// mismatches are otherwise listed at `GET /_sim/violations`).
    #[arg(long)]
    pub no_check_responses: bool,
}

pub(super) fn run(args: &SimArgs) -> Result<ExitCode, CliError> {
    let runtime = tokio::runtime::Runtime::new().map_err(|source| CliError::Io {
        what: "the async runtime".into(),
        source,
    })?;
    runtime.block_on(async {
        let config = SimConfig {
            listen: args.listen,
            serverless_listen: args.serverless_listen,
            api_key: args.api_key.clone(),
            balance: args.balance,
            seed: args.seed,
            speed: args.speed,
            requests_per_minute: args.requests_per_minute,
            check_responses: !args.no_check_responses,
        };
        let handle = sim::start(config)
            .await
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let mut out = std::io::stdout();
        let _ = out.write_all(handle.env_lines().as_bytes());
        let _ = out.flush();
        eprintln!("RunPod simulator running; Ctrl-C stops it.");
        let _ = tokio::signal::ctrl_c().await;
        handle.stop();
        Ok(ExitCode::SUCCESS)
    })
}
