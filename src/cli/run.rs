//! `runpod-operator run`: the controller in a cluster (or against `KUBECONFIG`).

use std::{net::SocketAddr, process::ExitCode};

use clap::Args;

use super::CliError;
use crate::controller::run::{RunConfig, run as run_controller};

/// Flags of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A kubeconfig file (default: `KUBECONFIG`, `~/.kube/config`, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Watch one namespace only (all namespaces by default).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Objects reconciled at once per kind.
    #[arg(long, env = "CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// Where `/healthz`, `/readyz` and `/metrics` listen.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// The leader-election Lease's namespace.
    #[arg(long, env = "LEASE_NAMESPACE", default_value = "runpod-operator")]
    pub lease_namespace: String,
    /// The leader-election Lease's name.
    #[arg(long, env = "LEASE_NAME", default_value = "runpod-operator")]
    pub lease_name: String,
    /// This instance's identity in the election (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
}

pub(super) fn run(args: &RunArgs) -> Result<ExitCode, CliError> {
    let identity = args.identity.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "runpod-operator".into()),
            std::process::id()
        )
    });
    let config = RunConfig {
        kubeconfig: args.kubeconfig.clone(),
        namespace: args.namespace.clone(),
        concurrency: args.concurrency.max(1),
        metrics_addr: args.metrics_addr,
        lease_namespace: args.lease_namespace.clone(),
        lease_name: args.lease_name.clone(),
        identity,
        lease: Default::default(),
        progress_interval: crate::controller::PROGRESS_INTERVAL,
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|source| CliError::Io {
        what: "the async runtime".into(),
        source,
    })?;
    runtime
        .block_on(run_controller(config))
        .map_err(|e| CliError::Usage(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}
