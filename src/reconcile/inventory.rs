//! The account inventory: one cached view of an account's pods, endpoints and network
//! volumes (and its balance), refreshed by one list call per kind on the resync interval and
//! updated after every write. Observing N workloads costs three list calls, not N GETs.

use std::{
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use crate::runpod::{
    Client, Error,
    types::{Account, Endpoint, NetworkVolume, Pod},
};

/// What RunPod holds for one account, as last seen.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Pods.
    pub pods: Vec<Pod>,
    /// Serverless endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Network volumes.
    pub volumes: Vec<NetworkVolume>,
    /// Balance, spend per hour, spend limit.
    pub account: Option<Account>,
}

struct State {
    snapshot: Snapshot,
    refreshed_at: Option<Instant>,
    stale: bool,
}

/// The cached view of one account.
pub struct Inventory {
    client: Client,
    resync: Duration,
    state: Mutex<State>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inventory {
    /// An empty inventory that refreshes every `resync`.
    pub fn new(client: Client, resync: Duration) -> Self {
        Self {
            client,
            resync,
            state: Mutex::new(State {
                snapshot: Snapshot::default(),
                refreshed_at: None,
                stale: true,
            }),
        }
    }

    /// The client the inventory reads with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Reads everything again: three list calls and the account query.
    pub async fn refresh(&self) -> Result<(), Error> {
        let pods = self.client.list_pods().await?;
        let endpoints = self.client.list_endpoints().await?;
        let volumes = self.client.list_network_volumes().await?;
        let account = self.client.account().await.ok();
        let mut state = lock(&self.state);
        state.snapshot = Snapshot {
            pods,
            endpoints,
            volumes,
            account,
        };
        state.refreshed_at = Some(Instant::now());
        state.stale = false;
        Ok(())
    }

    /// Refreshes when the resync interval has passed or a write's outcome is unknown.
    pub async fn ensure_fresh(&self) -> Result<(), Error> {
        let due = {
            let state = lock(&self.state);
            state.stale
                || state
                    .refreshed_at
                    .is_none_or(|t| t.elapsed() >= self.resync)
        };
        if due { self.refresh().await } else { Ok(()) }
    }

    /// Forces the next [`Inventory::ensure_fresh`] to read RunPod again (after an unknown
    /// outcome, so a create is resolved by looking).
    pub fn mark_stale(&self) {
        lock(&self.state).stale = true;
    }

    /// A copy of the view.
    pub fn snapshot(&self) -> Snapshot {
        lock(&self.state).snapshot.clone()
    }

    /// Records a pod a write returned.
    pub fn put_pod(&self, pod: Pod) {
        let mut state = lock(&self.state);
        state.snapshot.pods.retain(|p| p.id != pod.id);
        state.snapshot.pods.push(pod);
    }

    /// Forgets a deleted pod.
    pub fn remove_pod(&self, id: &str) {
        lock(&self.state).snapshot.pods.retain(|p| p.id != id);
    }

    /// Records an endpoint a write returned.
    pub fn put_endpoint(&self, endpoint: Endpoint) {
        let mut state = lock(&self.state);
        state.snapshot.endpoints.retain(|e| e.id != endpoint.id);
        state.snapshot.endpoints.push(endpoint);
    }

    /// Forgets a deleted endpoint.
    pub fn remove_endpoint(&self, id: &str) {
        lock(&self.state).snapshot.endpoints.retain(|e| e.id != id);
    }

    /// Records a volume a write returned.
    pub fn put_volume(&self, volume: NetworkVolume) {
        let mut state = lock(&self.state);
        state.snapshot.volumes.retain(|v| v.id != volume.id);
        state.snapshot.volumes.push(volume);
    }

    /// Forgets a deleted volume.
    pub fn remove_volume(&self, id: &str) {
        lock(&self.state).snapshot.volumes.retain(|v| v.id != id);
    }
}
