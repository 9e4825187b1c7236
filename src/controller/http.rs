//! One HTTP port: `/healthz` (the process is up), `/readyz` (the watches have synced), and
//! `/metrics` (Prometheus text).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use kube::ResourceExt;

use super::{Context, metrics::Metrics};

/// What the HTTP endpoints read.
#[derive(Clone)]
pub struct Probe {
    /// Set once every watch has synced.
    pub ready: Arc<AtomicBool>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The controller context, once this instance leads (for RunPod request counts).
    pub context: Arc<std::sync::OnceLock<Arc<Context>>>,
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(probe): State<Probe>) -> impl IntoResponse {
    if probe.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the watches to sync",
        )
    }
}

async fn metrics(State(probe): State<Probe>) -> impl IntoResponse {
    if let Some(ctx) = probe.context.get() {
        // Series of objects the watches no longer hold go (a deleted workload, an account
        // removed); only once the watches have synced, so a fresh leader drops nothing real.
        let synced = ctx.synced.all();
        let accounts: std::collections::BTreeSet<String> =
            ctx.accounts.state().iter().map(|a| a.name_any()).collect();
        if synced {
            let workloads = ctx
                .workloads
                .state()
                .iter()
                .map(|w| (w.namespace().unwrap_or_default(), w.name_any()))
                .collect();
            probe.metrics.retain(&workloads, &accounts);
        }
        for (account, runtime) in ctx.runtimes.all() {
            if synced && !accounts.contains(&account) {
                continue;
            }
            probe
                .metrics
                .runpod(&account, &runtime.inventory.client().budget());
        }
    }
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        probe.metrics.encode(),
    )
}

/// The router.
pub fn router(probe: Probe) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(probe)
}
