//! The RunPod simulator: a real HTTP server on loopback that behaves like RunPod, held to the
//! official REST v2 spec and to RunPod's documented behaviour (`docs/runpod.md`).
//!
//! [`start`] binds two listeners (REST v2 + GraphQL, and the serverless job/health host) and
//! returns a [`SimHandle`] with their URLs; `runpod-operator sim` does the same from the
//! shell. [`world`] holds the rules (pure), [`server`] the HTTP side, [`spec`] the compiled
//! spec. Tests, the benchmark and the demo all run against it; it is never a mock inside the
//! engine.
//!
//! **Numbers from a request are checked, never cast.** A whole number goes through
//! `world::whole` / `world::whole32` (out of range or not whole: 422 naming the field),
//! seconds through [`clock::millis_from_seconds`], and sums of client numbers (the worker
//! quota) are taken in 64 bits. `grep -n " as u32\| as u64\| as Millis" src/sim` should find
//! no cast of request JSON; the ones left widen our own values.

pub mod capacity;
pub mod catalog;
pub mod clock;
pub mod server;
pub mod serverless;
pub mod spec;
pub mod world;

use std::{net::SocketAddr, sync::Arc};

pub use server::{FaultRule, RequestRecord, Sim, SimConfig};
use tokio::{net::TcpListener, sync::oneshot};

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A listener could not bind.
    #[error("failed to bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A running simulator. Dropping it stops the servers.
pub struct SimHandle {
    /// The REST v2 base URL (paths start with `/v2`), e.g. `http://127.0.0.1:8787`.
    pub api_url: String,
    /// The GraphQL URL.
    pub graphql_url: String,
    /// The serverless host's base URL (`/v2/{endpointId}/health`, ...).
    pub serverless_url: String,
    /// The funded account's key.
    pub api_key: String,
    /// The shared state, for tests that inspect or steer it directly.
    pub sim: Arc<Sim>,
    stop: Option<oneshot::Sender<()>>,
}

impl SimHandle {
    /// The lines `runpod-operator sim` prints, ready for `eval "$(...)"`.
    pub fn env_lines(&self) -> String {
        format!(
            "export RUNPOD_API_URL={}\nexport RUNPOD_GRAPHQL_URL={}\nexport RUNPOD_SERVERLESS_URL={}\nexport RUNPOD_API_KEY={}\n",
            self.api_url, self.graphql_url, self.serverless_url, self.api_key
        )
    }

    /// Stops the servers.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, SimError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })
}

/// Starts a simulator on the configured addresses (port 0 picks free ports).
pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
    let api = bind(config.listen).await?;
    let serverless = bind(config.serverless_listen).await?;
    let api_addr = api.local_addr().map_err(|source| SimError::Bind {
        addr: config.listen,
        source,
    })?;
    let serverless_addr = serverless.local_addr().map_err(|source| SimError::Bind {
        addr: config.serverless_listen,
        source,
    })?;
    let sim = Sim::new(&config);
    let (api_router, serverless_router) = server::routers(sim.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let (stop_serverless, stopped_serverless) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(api, api_router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
                let _ = stop_serverless.send(());
            })
            .await;
    });
    tokio::spawn(async move {
        let _ = axum::serve(serverless, serverless_router)
            .with_graceful_shutdown(async {
                let _ = stopped_serverless.await;
            })
            .await;
    });
    Ok(SimHandle {
        api_url: format!("http://{api_addr}"),
        graphql_url: format!("http://{api_addr}/graphql"),
        serverless_url: format!("http://{serverless_addr}"),
        api_key: config.api_key,
        sim,
        stop: Some(stop),
    })
}
