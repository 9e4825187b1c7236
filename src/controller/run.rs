//! `runpod-operator run`: the controllers of the three kinds, the HTTP port, leader election
//! and graceful shutdown on SIGTERM.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::{StreamExt, TryStreamExt};
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
use tokio::sync::watch;

use super::{
    Context, StoreKind, Synced, account, account_name,
    http::{Probe, router},
    leader::{LeadError, LeaseTimings, elect, lead},
    metrics::Metrics,
    totals::Totals,
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
    /// Lease timings.
    pub lease: LeaseTimings,
    /// How soon a workload with something in progress is looked at again.
    pub progress_interval: Duration,
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

/// How long the reconciles in flight may take to finish after a shutdown, leaving room for the
/// Lease release inside the chart's 30 s termination grace period.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Runs the operator until SIGTERM (or ctrl-c), or until it loses the lease.
pub async fn run(config: RunConfig) -> Result<(), RunError> {
    run_until(config, shutdown_signal()).await
}

/// SIGTERM or ctrl-c, whichever comes first.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// A shutdown every part can wait on: once `trigger` fires, every clone ends.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A shutdown that happens when `trigger` ends.
    pub fn on(trigger: impl Future<Output = ()> + Send + 'static) -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            trigger.await;
            tracing::info!("shutting down: finishing the reconciles in flight");
            let _ = tx.send(true);
        });
        Self(rx)
    }

    /// Ends when the shutdown happens.
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// Runs the operator until `shutdown` ends, or until it loses the lease. On the way out it
/// finishes the reconciles in flight, then releases the Lease so a standby takes over within
/// about a second instead of waiting for the Lease to expire.
pub async fn run_until(
    config: RunConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
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
    let shutdown = Shutdown::on(shutdown);
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
    let server_stop = shutdown.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router(probe).into_make_service())
            .with_graceful_shutdown(server_stop.wait())
            .await;
    });

    let (leader, election) = elect(
        client.clone(),
        &config.lease_namespace,
        &config.lease_name,
        &config.identity,
        config.lease,
    );
    tracing::info!(identity = %config.identity, lease = %config.lease_name, "waiting for the lease");
    // A standby waiting for the lease is healthy and ready: were it not, a PodDisruptionBudget
    // would count only the leader and block every drain. A new leader turns unready until its
    // watches have synced (see `controllers`).
    probe_for_work.ready.store(true, Ordering::SeqCst);
    let work_stop = shutdown.clone();
    let work = || {
        controllers(
            client.clone(),
            config.clone(),
            metrics.clone(),
            probe_for_work,
            work_stop,
        )
    };
    // `lead` owns the only receiver: when it returns, the election task sees the channel close
    // and releases the Lease. Wait for that (bounded), then for the HTTP server.
    let grace = shutdown.clone();
    let result = tokio::select! {
        result = lead(leader, work, shutdown.wait()) => result,
        // A reconcile may be waiting out a RunPod Retry-After: do not outlive the Pod's grace
        // period. Dropping a reconcile is safe: every create is looked up before it is retried.
        () = async {
            grace.wait().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("reconciles still running {SHUTDOWN_GRACE:?} after the shutdown: stopping them");
            Ok(())
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), election)
        .await
        .is_err()
    {
        tracing::warn!("the lease was not released within 5 s; it expires on its own");
    }
    server.abort();
    result.map_err(RunError::from)
}

/// What a reconcile reacts to: spec changes (generation), finalizers, and annotations
/// (approvals, adoption) — not its own status writes.
fn changes<K: kube::Resource>() -> impl Predicate<K> {
    let generation: fn(&K) -> Option<u64> = predicates::generation;
    let finalizers: fn(&K) -> Option<u64> = predicates::finalizers;
    let annotations: fn(&K) -> Option<u64> = predicates::annotations;
    generation.combine(finalizers).combine(annotations)
}

/// Marks `kind` loaded on its watch's first complete list.
fn loaded<K>(synced: &Arc<Synced>, kind: StoreKind) -> impl FnMut(&watcher::Event<K>) + use<K> {
    let synced = synced.clone();
    move |event| {
        if matches!(event, watcher::Event::InitDone) {
            synced.mark(kind);
        }
    }
}

/// The three controllers, sharing stores, runtimes and metrics, until SIGTERM.
pub async fn controllers(
    client: Client,
    config: RunConfig,
    metrics: Arc<Metrics>,
    probe: Probe,
    shutdown: Shutdown,
) {
    let ns = config.namespace.as_deref();
    let wc = watcher::Config::default().any_semantic();
    // Readiness and the reconcile gate follow each watch's first complete list, observed on
    // the stream itself: waiting on the stores would compete with kube-runtime's own wait
    // (a store wakes one waiter only).
    let synced = Arc::new(Synced::pending(probe.ready.clone()));
    // Account totals follow every workload and volume event, so no reconcile walks the others.
    let totals = Arc::new(Totals::default());
    totals.feed();

    let (workloads, workload_writer) = reflector::store::<GpuWorkload>();
    let workload_stream = reflector::reflector(
        workload_writer,
        watcher(api::<GpuWorkload>(&client, ns), wc.clone()),
    )
    .default_backoff()
    .inspect_ok({
        let totals = totals.clone();
        move |event| totals.workload_event(event)
    })
    .inspect_ok(loaded(&synced, StoreKind::Workloads))
    .applied_objects()
    .predicate_filter(changes(), Default::default());
    let (volumes, volume_writer) = reflector::store::<NetworkVolume>();
    let volume_stream = reflector::reflector(
        volume_writer,
        watcher(api::<NetworkVolume>(&client, ns), wc.clone()),
    )
    .default_backoff()
    .inspect_ok({
        let totals = totals.clone();
        move |event| totals.volume_event(event)
    })
    .inspect_ok(loaded(&synced, StoreKind::Volumes))
    .applied_objects()
    .predicate_filter(changes(), Default::default());
    let (accounts, account_writer) = reflector::store::<RunPodAccount>();
    let account_stream = reflector::reflector(
        account_writer,
        watcher(Api::<RunPodAccount>::all(client.clone()), wc.clone()),
    )
    .default_backoff()
    .inspect_ok(loaded(&synced, StoreKind::Accounts))
    .applied_objects()
    .predicate_filter(changes(), Default::default());

    let ctx = Arc::new(
        Context::new(
            client.clone(),
            workloads.clone(),
            volumes.clone(),
            accounts.clone(),
            metrics,
        )
        .with_synced(synced)
        .with_progress_interval(config.progress_interval)
        .with_totals(totals),
    );
    let _ = probe.context.set(ctx.clone());
    let controller_config = Config::default().concurrency(config.concurrency);

    // A Secret or NetworkVolume a workload references changes: reconcile the workload.
    let by_secret = workloads.clone();
    let by_volume = workloads.clone();
    let by_account = workloads.clone();
    let workload_controller = Controller::for_stream(workload_stream, workloads.clone())
        .watches(api::<Secret>(&client, ns), wc.clone(), move |secret| {
            let namespace = secret.namespace().unwrap_or_default();
            let name = secret.name_any();
            by_secret
                .state()
                .into_iter()
                .filter(|w| {
                    w.namespace().unwrap_or_default() == namespace
                        && (w.spec.env.iter().any(|e| {
                            e.value_from
                                .as_ref()
                                .is_some_and(|f| f.secret_key_ref.name == name)
                        }) || w
                            .spec
                            .registry_credentials
                            .as_ref()
                            .is_some_and(|r| r.name == name))
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
        // A RunPodAccount appears or changes: its workloads look again (no 5-minute wait after
        // "account not found").
        .watches(
            Api::<RunPodAccount>::all(client.clone()),
            wc.clone(),
            move |account| {
                let name = account.name_any();
                by_account
                    .state()
                    .into_iter()
                    .filter(|w| account_name(w.spec.account_ref.as_ref()) == name)
                    .map(|w| ObjectRef::from_obj(&*w))
                    .collect::<Vec<_>>()
            },
        )
        .with_config(controller_config.clone())
        .graceful_shutdown_on(shutdown.clone().wait())
        .run(workload::reconcile, workload::error_policy, ctx.clone())
        .for_each(|_| async {});
    // A workload that attaches volumes appears, changes or goes: its volumes look again (a
    // deletion waiting for its last user proceeds at once).
    let volume_controller = Controller::for_stream(volume_stream, volumes.clone())
        .watches(api::<GpuWorkload>(&client, ns), wc.clone(), |w| {
            let namespace = w.namespace().unwrap_or_default();
            w.spec
                .network_volumes
                .iter()
                .map(|m| ObjectRef::<NetworkVolume>::new(&m.name).within(&namespace))
                .collect::<Vec<_>>()
        })
        .with_config(controller_config.clone())
        .graceful_shutdown_on(shutdown.clone().wait())
        .run(volume::reconcile, volume::error_policy, ctx.clone())
        .for_each(|_| async {});
    let account_controller = Controller::for_stream(account_stream, accounts.clone())
        .with_config(controller_config)
        .graceful_shutdown_on(shutdown.wait())
        .run(account::reconcile, account::error_policy, ctx.clone())
        .for_each(|_| async {});
    tokio::join!(workload_controller, volume_controller, account_controller);
}
