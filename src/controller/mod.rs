//! The Kubernetes controller: GpuWorkload, NetworkVolume and RunPodAccount reconciled by
//! kube-runtime, with the engine deciding and the executor acting.
//!
//! - [`workload`], [`volume`], [`account`]: one reconciler per kind; each reads its
//!   neighbours from shared reflector stores (no GET per reconcile), and writes status by
//!   server-side apply under one field manager.
//! - [`runtimes`]: one RunPod client and inventory per RunPodAccount, shared by every
//!   reconciler, built from the API key Secret the account names.
//! - [`metrics`] and [`http`]: `/healthz`, `/readyz` and `/metrics` on one port.
//! - [`leader`]: only the holder of the Lease reconciles; losing it ends the process.
//! - [`run`]: wiring, watches, graceful shutdown.

pub mod account;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod prices;
pub mod rbac;
pub mod run;
pub mod runtimes;
pub mod totals;
pub mod usage;
pub mod volume;
pub mod workload;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use kube::{
    Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
    runtime::{
        events::{Event, EventType, Recorder, Reporter},
        reflector::Store,
    },
};
use serde::Serialize;
use serde_json::json;

use crate::{
    api::{GpuWorkload, NetworkVolume, RunPodAccount},
    engine::prices::PriceCatalogue,
};

/// The finalizer on GpuWorkloads and NetworkVolumes: cleanup on RunPod before deletion.
pub const FINALIZER: &str = "runpod-operator.dev/cleanup";
/// The one field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "runpod-operator";
/// The account a workload uses when it names none.
pub const DEFAULT_ACCOUNT: &str = "default";

/// Why a reconcile failed. Names are stable: they label the error metric.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes call failed.
    #[error("failed to {action}: {}", kube_text(.source))]
    Kube {
        /// What was being done.
        action: String,
        /// The cause.
        source: kube::Error,
    },
    /// The RunPodAccount a workload names does not exist.
    #[error("RunPodAccount {0:?} not found: create it, or set spec.accountRef to an existing one")]
    AccountMissing(String),
    /// The API key Secret could not be read.
    #[error("failed to read the RunPod API key: {0}")]
    ApiKey(String),
    /// RunPod failed.
    #[error(transparent)]
    RunPod(#[from] crate::runpod::Error),
    /// A NetworkVolume is still in use and cannot be deleted yet.
    #[error("{0}")]
    VolumeInUse(String),
    /// The finalizer machinery failed.
    #[error("finalizer failed: {0}")]
    Finalizer(String),
    /// A write was refused because the object changed since the watch saw it (409, or a
    /// failed JSON patch test, 422): the watch brings the new version; retried in a second.
    #[error("{0} (the object changed since it was read; retrying)")]
    StaleCache(String),
}

/// Whether the API server refused a write made against an older version of the object.
fn stale(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == 409 || s.code == 422)
}

/// The quick retry of a stale-cache conflict: logged quietly, retried in a second, without
/// growing the object's backoff. `None` for every other error.
pub fn quick_retry(kind: &str, key: &str, error: &Error, ctx: &Context) -> Option<Action> {
    if !matches!(error, Error::StaleCache(_)) {
        return None;
    }
    tracing::debug!(kind, object = key, error = %error, "retrying after a conflict");
    ctx.metrics.error(kind, error.metric_label());
    Some(Action::requeue(Duration::from_secs(1)))
}

/// A Kubernetes error in one line a person reads: the API server's code, reason and message
/// (a conflict from a stale cache reads `409 Conflict: ...`), not a `Status { .. }` dump.
pub fn kube_text(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let reason = if status.reason.is_empty() {
                "Failure"
            } else {
                status.reason.as_str()
            };
            format!("{} {reason}: {}", status.code, status.message)
        }
        other => other.to_string(),
    }
}

impl Error {
    /// A stable lowercase name for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube { .. } => "kube",
            Self::AccountMissing(_) => "account_missing",
            Self::ApiKey(_) => "api_key",
            Self::RunPod(e) => e.class().as_str(),
            Self::VolumeInUse(_) => "volume_in_use",
            Self::Finalizer(_) => "finalizer",
            Self::StaleCache(_) => "conflict",
        }
    }

    /// Whether waiting and trying again may help (else it waits for a change).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::RunPod(e) => e.is_transient(),
            Self::AccountMissing(_) | Self::ApiKey(_) => false,
            _ => true,
        }
    }
}

/// Which reflector stores have loaded their first full list. A reconcile reads its neighbours
/// from the stores (a workload reads its account and volumes), so none runs before all have
/// loaded: a new leader would otherwise find "no such account" and wait minutes.
#[derive(Debug)]
pub struct Synced {
    workloads: AtomicBool,
    volumes: AtomicBool,
    accounts: AtomicBool,
    /// Set when all three are; `/readyz` reads it.
    ready: Arc<AtomicBool>,
}

/// One of the stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// GpuWorkloads.
    Workloads,
    /// NetworkVolumes.
    Volumes,
    /// RunPodAccounts.
    Accounts,
}

impl Synced {
    /// Nothing loaded yet; `ready` turns true once everything has.
    pub fn pending(ready: Arc<AtomicBool>) -> Self {
        ready.store(false, Ordering::SeqCst);
        Self {
            workloads: AtomicBool::new(false),
            volumes: AtomicBool::new(false),
            accounts: AtomicBool::new(false),
            ready,
        }
    }

    /// Stores filled by their owner (tests, tools): loaded.
    pub fn assumed() -> Self {
        Self {
            workloads: AtomicBool::new(true),
            volumes: AtomicBool::new(true),
            accounts: AtomicBool::new(true),
            ready: Arc::new(AtomicBool::new(true)),
        }
    }

    /// A store has loaded its first list.
    pub fn mark(&self, kind: StoreKind) {
        match kind {
            StoreKind::Workloads => &self.workloads,
            StoreKind::Volumes => &self.volumes,
            StoreKind::Accounts => &self.accounts,
        }
        .store(true, Ordering::SeqCst);
        if self.all() {
            self.ready.store(true, Ordering::SeqCst);
        }
    }

    /// Whether every store has loaded.
    pub fn all(&self) -> bool {
        self.workloads.load(Ordering::SeqCst)
            && self.volumes.load(Ordering::SeqCst)
            && self.accounts.load(Ordering::SeqCst)
    }
}

/// How soon a reconcile that arrived before the stores loaded looks again.
pub const STORES_LOADING_RETRY: Duration = Duration::from_millis(500);

/// What every reconciler shares.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// RunPod clients and inventories by account.
    pub runtimes: runtimes::Runtimes,
    /// Prices.
    pub prices: PriceCatalogue,
    /// Every GpuWorkload.
    pub workloads: Store<GpuWorkload>,
    /// Every NetworkVolume.
    pub volumes: Store<NetworkVolume>,
    /// Every RunPodAccount.
    pub accounts: Store<RunPodAccount>,
    /// Metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// The one event recorder.
    pub recorder: Recorder,
    /// Backoff state per object, for transient errors.
    pub backoff: std::sync::Mutex<std::collections::HashMap<String, u32>>,
    /// Which stores have loaded.
    pub synced: Arc<Synced>,
    /// How soon a workload with something in progress (a write sent, an object provisioning)
    /// is looked at again.
    pub progress_interval: Duration,
    /// Every account's totals (worst case, credit ranking), kept by the watches.
    pub totals: Arc<totals::Totals>,
}

/// The default of [`Context::progress_interval`].
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

impl Context {
    /// A context over a client and the three stores.
    pub fn new(
        client: Client,
        workloads: Store<GpuWorkload>,
        volumes: Store<NetworkVolume>,
        accounts: Store<RunPodAccount>,
        metrics: Arc<metrics::Metrics>,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.to_string(),
                instance: std::env::var("POD_NAME").ok(),
            },
        );
        Self {
            runtimes: runtimes::Runtimes::default(),
            prices: PriceCatalogue::builtin(),
            client,
            workloads,
            volumes,
            accounts,
            metrics,
            recorder,
            backoff: Default::default(),
            synced: Arc::new(Synced::assumed()),
            progress_interval: PROGRESS_INTERVAL,
            totals: Arc::default(),
        }
    }

    /// Reads one account's totals: kept by the watches when they feed them, else computed
    /// from the stores.
    pub fn account_totals<R>(
        &self,
        account: &str,
        f: impl FnOnce(&crate::engine::totals::AccountTotals) -> R,
    ) -> R {
        if self.totals.is_fed() {
            self.totals.read(account, f)
        } else {
            f(&totals::Totals::from_stores(
                account,
                &self.workloads.state(),
                &self.volumes.state(),
                &self.totals.prices_of(account),
            ))
        }
    }

    /// The account's prices, read from RunPod's catalogue when due (see [`prices`]). When they
    /// differ from those the account's totals were counted with, the totals are counted again
    /// once, so the account cap compares figures of one price list.
    pub async fn prices_of(
        &self,
        account: &RunPodAccount,
        runtime: &runtimes::Runtime,
    ) -> Arc<PriceCatalogue> {
        let interval = Duration::from_secs(u64::from(
            account.spec.price_refresh_interval_seconds.max(10),
        ));
        let client = runtime.inventory.client();
        let prices = runtime
            .prices
            .refresh(interval, k8s_openapi::jiff::Timestamp::now, || {
                prices::read_catalogue(client)
            })
            .await;
        let name = account.name_any();
        if !Arc::ptr_eq(&self.totals.prices_of(&name), &prices) {
            self.totals.reprice(&name, prices.clone(), || {
                (self.workloads.state(), self.volumes.state())
            });
        }
        prices
    }

    /// The same context, reading account totals that watches keep (see [`totals`]).
    #[must_use]
    pub fn with_totals(mut self, totals: Arc<totals::Totals>) -> Self {
        self.totals = totals;
        self
    }

    /// The same context, reconciling only once `synced` says every store has loaded.
    #[must_use]
    pub fn with_synced(mut self, synced: Arc<Synced>) -> Self {
        self.synced = synced;
        self
    }

    /// The same context, looking again after `interval` while something is in progress.
    #[must_use]
    pub fn with_progress_interval(mut self, interval: Duration) -> Self {
        self.progress_interval = interval;
        self
    }

    /// `Some(requeue)` while a store is still loading: the reconcile does nothing yet.
    pub fn wait_for_stores(&self) -> Option<kube::runtime::controller::Action> {
        (!self.synced.all())
            .then(|| kube::runtime::controller::Action::requeue(STORES_LOADING_RETRY))
    }

    /// Publishes an event about an object; failures are logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(note),
            action: reason.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %kube_text(&e), "failed to publish an event");
        }
    }

    /// How long to wait after a failure of this object: doubling from 5 s to 5 min.
    pub fn backoff_for(&self, key: &str) -> Duration {
        let mut map = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        let attempts = map.entry(key.to_string()).or_insert(0);
        *attempts = (*attempts + 1).min(6);
        Duration::from_secs(5 << (*attempts - 1)).min(Duration::from_secs(300))
    }

    /// Forgets an object's failures after a success.
    pub fn reset_backoff(&self, key: &str) {
        self.backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

impl Context {
    /// The RunPodAccount of that name, from the store.
    pub fn account(&self, name: &str) -> Option<Arc<RunPodAccount>> {
        self.accounts
            .state()
            .into_iter()
            .find(|a| a.name_any() == name)
    }
}

/// The reconcile entry both finalized kinds share: time it, dispatch apply or cleanup through
/// the finalizer, and unwrap the finalizer's error into ours.
pub async fn finalized<K, A, AFut, C, CFut>(
    kind: &'static str,
    obj: Arc<K>,
    ctx: &Context,
    apply: A,
    cleanup: C,
) -> Result<kube::runtime::controller::Action, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + Serialize
        + std::fmt::Debug,
    A: FnOnce(Arc<K>) -> AFut,
    AFut: std::future::Future<Output = Result<kube::runtime::controller::Action, Error>>,
    C: FnOnce(Arc<K>) -> CFut,
    CFut: std::future::Future<Output = Result<kube::runtime::controller::Action, Error>>,
{
    use kube::runtime::finalizer::{Error as FinalizerError, Event as Finalizer, finalizer};
    let timer = ctx.metrics.start(kind);
    let api: kube::Api<K> =
        kube::Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Finalizer::Apply(o) => apply(o).await,
            Finalizer::Cleanup(o) => cleanup(o).await,
        }
    })
    .await
    .map_err(|e| match e {
        FinalizerError::ApplyFailed(e) | FinalizerError::CleanupFailed(e) => e,
        FinalizerError::AddFinalizer(e) if stale(&e) => {
            Error::StaleCache(format!("failed to add the finalizer: {}", kube_text(&e)))
        }
        FinalizerError::RemoveFinalizer(e) if stale(&e) => {
            Error::StaleCache(format!("failed to remove the finalizer: {}", kube_text(&e)))
        }
        FinalizerError::AddFinalizer(e) => {
            Error::Finalizer(format!("failed to add the finalizer: {}", kube_text(&e)))
        }
        FinalizerError::RemoveFinalizer(e) => {
            Error::Finalizer(format!("failed to remove the finalizer: {}", kube_text(&e)))
        }
        other => Error::Finalizer(other.to_string()),
    });
    timer.finish(&result);
    result
}

/// Writes an object's status by server-side apply, under the operator's field manager,
/// unless it is the status the object already has (`previous`): a steady resync writes
/// nothing. Returns whether it wrote.
pub async fn apply_status<K, S>(
    api: &kube::Api<K>,
    obj: &K,
    previous: Option<&S>,
    status: &S,
) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if previous == Some(status) {
        return Ok(false);
    }
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| true)
    .map_err(|source| Error::Kube {
        action: format!("write the status of {}", obj.name_any()),
        source,
    })
}

/// The name of the account an object uses.
pub fn account_name(account_ref: Option<&crate::api::LocalObjectRef>) -> String {
    account_ref.map_or_else(|| DEFAULT_ACCOUNT.to_string(), |r| r.name.clone())
}
