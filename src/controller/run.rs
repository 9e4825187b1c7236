//! `runpod-operator run`: the controllers of the three kinds, the HTTP port, leader election
//! and graceful shutdown on SIGTERM.

use std::{
    net::SocketAddr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt,
    runtime::{
        Controller, Predicate, WatchStreamExt,
        controller::Config,
        predicates,
        reflector::{self, ObjectRef},
        watcher,
    },
};

use super::{
    Context, account,
    http::{Probe, router},
    leader::{LeadError, lead},
    metrics::Metrics,
    volume, workload,
};
use crate::api::{GpuWorkload, NetworkVolume, RunPodAccount};

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// A kubeconfig file; unset: `KUBECONFIG`, `~/.kube/config`, or the in-cluster account.
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Watch one namespace only; all namespaces when unset.
    pub namespace: Option<String>,
    /// Objects reconciled at once per kind.
    pub concurrency: u16,
    /// Where `/healthz`, `/readyz` and `/metrics` listen.
    pub metrics_addr: SocketAddr,
    /// The Lease's namespace.
    pub lease_namespace: String,
    /// The Lease's name.
    pub lease_name: String,
    /// This instance's name in the election (the pod name in a cluster).
    pub identity: String,
}

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No cluster could be reached.
    #[error("failed to connect to Kubernetes: {0}")]
    Connect(String),
    /// The HTTP port could not be bound.
    #[error("failed to listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Leader election failed.
    #[error("leader election failed: {0}")]
    Lease(String),
    /// Leading ended.
    #[error(transparent)]
    Lead(#[from] LeadError),
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the operator until SIGTERM, or until it loses the lease.
pub async fn run(config: RunConfig) -> Result<(), RunError> {
    crate::tls::install_crypto_provider();
    let client = match &config.kubeconfig {
        None => Client::try_default()
            .await
            .map_err(|e| RunError::Connect(e.to_string()))?,
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| RunError::Connect(format!("{}: {e}", path.display())))?;
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| RunError::Connect(e.to_string()))?;
            Client::try_from(config).map_err(|e| RunError::Connect(e.to_string()))?
        }
    };
    let metrics = Arc::new(Metrics::default());
    let probe = Probe {
        ready: Arc::new(AtomicBool::new(false)),
        metrics: metrics.clone(),
        context: Arc::new(OnceLock::new()),
    };
    let listener = tokio::net::TcpListener::bind(config.metrics_addr)
        .await
        .map_err(|source| RunError::Listen {
            addr: config.metrics_addr,
            source,
        })?;
    let probe_for_work = probe.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router(probe).into_make_service()).await;
    });

    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &config.lease_name)
        .with_namespace(&config.lease_namespace)
        .with_identity(&config.identity)
        .with_field_manager(super::FIELD_MANAGER)
        .build()
        .await
        .map_err(|e| RunError::Lease(e.to_string()))?;
    let (leader, lease_task) = manager.watch().await;
    tracing::info!(identity = %config.identity, lease = %config.lease_name, "waiting for the lease");
    // A standby waiting for the lease is healthy and ready: were it not, a PodDisruptionBudget
    // would count only the leader and block every drain. A new leader turns unready until its
    // watches have synced (see `controllers`).
    probe_for_work.ready.store(true, Ordering::SeqCst);
    let work = || {
        controllers(
            client.clone(),
            config.clone(),
            metrics.clone(),
            probe_for_work,
        )
    };
    tokio::select! {
        result = lead(leader, work) => result.map_err(RunError::from),
        _ = lease_task => Err(RunError::Lead(LeadError::LeaseTaskEnded)),
    }
}

/// What a reconcile reacts to: spec changes (generation), finalizers, and annotations
/// (approvals, adoption) — not its own status writes.
fn changes<K: kube::Resource>() -> impl Predicate<K> {
    let generation: fn(&K) -> Option<u64> = predicates::generation;
    let finalizers: fn(&K) -> Option<u64> = predicates::finalizers;
    let annotations: fn(&K) -> Option<u64> = predicates::annotations;
    generation.combine(finalizers).combine(annotations)
}

/// The three controllers, sharing stores, runtimes and metrics, until SIGTERM.
pub async fn controllers(client: Client, config: RunConfig, metrics: Arc<Metrics>, probe: Probe) {
    let ns = config.namespace.as_deref();
    let wc = watcher::Config::default().any_semantic();

    let (workloads, workload_writer) = reflector::store::<GpuWorkload>();
    let workload_stream = reflector::reflector(
        workload_writer,
        watcher(api::<GpuWorkload>(&client, ns), wc.clone()),
    )
    .default_backoff()
    .applied_objects()
    .predicate_filter(changes(), Default::default());
    let (volumes, volume_writer) = reflector::store::<NetworkVolume>();
    let volume_stream = reflector::reflector(
        volume_writer,
        watcher(api::<NetworkVolume>(&client, ns), wc.clone()),
    )
    .default_backoff()
    .applied_objects()
    .predicate_filter(changes(), Default::default());
    let (accounts, account_writer) = reflector::store::<RunPodAccount>();
    let account_stream = reflector::reflector(
        account_writer,
        watcher(Api::<RunPodAccount>::all(client.clone()), wc.clone()),
    )
    .default_backoff()
    .applied_objects()
    .predicate_filter(changes(), Default::default());

    let ctx = Arc::new(Context::new(
        client.clone(),
        workloads.clone(),
        volumes.clone(),
        accounts.clone(),
        metrics,
    ));
    let _ = probe.context.set(ctx.clone());
    probe.ready.store(false, Ordering::SeqCst);
    tokio::spawn(mark_ready(probe.ready.clone(), ctx.clone()));
    let controller_config = Config::default().concurrency(config.concurrency);

    // A Secret or NetworkVolume a workload references changes: reconcile the workload.
    let by_secret = workloads.clone();
    let by_volume = workloads.clone();
    let workload_controller = Controller::for_stream(workload_stream, workloads.clone())
        .watches(api::<Secret>(&client, ns), wc.clone(), move |secret| {
            let namespace = secret.namespace().unwrap_or_default();
            let name = secret.name_any();
            by_secret
                .state()
                .into_iter()
                .filter(|w| {
                    w.namespace().unwrap_or_default() == namespace
                        && w.spec.env.iter().any(|e| {
                            e.value_from
                                .as_ref()
                                .is_some_and(|f| f.secret_key_ref.name == name)
                        })
                })
                .map(|w| ObjectRef::from_obj(&*w))
                .collect::<Vec<_>>()
        })
        .watches(
            api::<NetworkVolume>(&client, ns),
            wc.clone(),
            move |volume| {
                let namespace = volume.namespace().unwrap_or_default();
                let name = volume.name_any();
                by_volume
                    .state()
                    .into_iter()
                    .filter(|w| {
                        w.namespace().unwrap_or_default() == namespace
                            && w.spec.network_volumes.iter().any(|m| m.name == name)
                    })
                    .map(|w| ObjectRef::from_obj(&*w))
                    .collect::<Vec<_>>()
            },
        )
        .with_config(controller_config.clone())
        .shutdown_on_signal()
        .run(workload::reconcile, workload::error_policy, ctx.clone())
        .for_each(|_| async {});
    let volume_controller = Controller::for_stream(volume_stream, volumes.clone())
        .with_config(controller_config.clone())
        .shutdown_on_signal()
        .run(volume::reconcile, volume::error_policy, ctx.clone())
        .for_each(|_| async {});
    let account_controller = Controller::for_stream(account_stream, accounts.clone())
        .with_config(controller_config)
        .shutdown_on_signal()
        .run(account::reconcile, account::error_policy, ctx.clone())
        .for_each(|_| async {});
    tokio::join!(workload_controller, volume_controller, account_controller);
}

/// Marks the probe ready once every store has synced.
pub async fn mark_ready(ready: Arc<AtomicBool>, ctx: Arc<Context>) {
    let _ = ctx.workloads.wait_until_ready().await;
    let _ = ctx.volumes.wait_until_ready().await;
    let _ = ctx.accounts.wait_until_ready().await;
    ready.store(true, Ordering::SeqCst);
}
