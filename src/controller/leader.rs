//! Leadership: only the holder of the Lease reconciles. [`lead`] runs the work while this
//! instance holds the lease and ends with an error the moment it does not, so the process
//! exits and a fresh one queues for the lease (as linkerd's policy controller does).

use std::{
    future::Future,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{Api, Client, api::PostParams};
use tokio::sync::watch;

/// Why leading ended.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeadError {
    /// Another instance holds the lease now.
    #[error("lost the lease: another instance leads now")]
    Lost,
    /// The task keeping the lease ended.
    #[error("the lease task ended")]
    LeaseTaskEnded,
}

/// Waits for the lease, then runs `work` until it ends (shutdown) or the lease is lost. A
/// `shutdown` while waiting ends the wait (a standby exits at once); once leading, `work`
/// itself is expected to end on shutdown, after finishing what it has in flight.
pub async fn lead<W, Fut>(
    mut leader: watch::Receiver<bool>,
    work: W,
    shutdown: impl Future<Output = ()>,
) -> Result<(), LeadError>
where
    W: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    tokio::pin!(shutdown);
    while !*leader.borrow_and_update() {
        tokio::select! {
            changed = leader.changed() => changed.map_err(|_| LeadError::LeaseTaskEnded)?,
            () = &mut shutdown => return Ok(()),
        }
    }
    tracing::info!("leading: reconciling");
    let work = work();
    tokio::pin!(work);
    loop {
        tokio::select! {
            () = &mut work => return Ok(()),
            changed = leader.changed() => {
                changed.map_err(|_| LeadError::LeaseTaskEnded)?;
                if !*leader.borrow_and_update() {
                    return Err(LeadError::Lost);
                }
            }
        }
    }
}

/// Timings of the Lease election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTimings {
    /// How long a Lease holds without renewal (`leaseDurationSeconds`).
    pub duration: Duration,
    /// How often the holder renews.
    pub renew_every: Duration,
    /// How often a standby looks whether the Lease is free.
    pub retry_every: Duration,
}

impl Default for LeaseTimings {
    /// client-go's leader election timings, with a 1 s standby poll so a released Lease is
    /// taken within about a second: 15 s lease, renewed every 5 s.
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            retry_every: Duration::from_secs(1),
        }
    }
}

/// Joins the election for the Lease `namespace/name` as `identity`.
///
/// Returns whether this instance leads (a watch channel) and the election task. Dropping every
/// receiver ends the task: it releases the Lease if it holds it (an empty holder, so a standby
/// polling every [`LeaseTimings::retry_every`] takes over at once) and returns. Every write is
/// a `PUT` carrying the `resourceVersion` read, so two instances can never both win.
pub fn elect(
    client: Client,
    namespace: &str,
    name: &str,
    identity: &str,
    timings: LeaseTimings,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let (tx, rx) = watch::channel(false);
    let elector = Elector {
        api,
        name: name.to_string(),
        identity: identity.to_string(),
        timings,
        observed: None,
    };
    (rx, tokio::spawn(elector.run(tx)))
}

struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: LeaseTimings,
    /// The last Lease record seen, and when it changed (locally measured, as client-go does:
    /// expiry never depends on the other instance's clock).
    observed: Option<(LeaseSpec, Instant)>,
}

impl Elector {
    async fn run(mut self, tx: watch::Sender<bool>) {
        let mut leading = false;
        let mut renewed_at = Instant::now();
        loop {
            let now = Instant::now();
            let holds = match self.try_acquire_or_renew().await {
                Ok(holds) => {
                    if holds {
                        renewed_at = now;
                    }
                    holds
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %super::kube_text(&e), "failed to read or write the Lease");
                    // A holder that cannot renew keeps leading until the Lease would expire
                    // for the others, never longer.
                    leading
                        && renewed_at.elapsed()
                            < self
                                .timings
                                .duration
                                .saturating_sub(self.timings.renew_every)
                }
            };
            if holds != leading {
                leading = holds;
                if leading {
                    tracing::info!(identity = %self.identity, lease = %self.name, "acquired the lease");
                }
                if tx.send(leading).is_err() {
                    break;
                }
            }
            let wait = if leading {
                self.timings.renew_every
            } else {
                self.timings.retry_every
            };
            tokio::select! {
                () = tx.closed() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if leading {
            match self.release().await {
                Ok(()) => {
                    tracing::info!(identity = %self.identity, lease = %self.name, "released the lease")
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %super::kube_text(&e), "failed to release the lease; it expires on its own")
                }
            }
        }
    }

    /// Whether the record `spec`, unchanged since this instance first saw it, has outlived its
    /// duration. A record seen for the first time counts from now.
    fn expired(&self, spec: &LeaseSpec) -> bool {
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.timings.duration, Duration::from_secs);
        self.observed
            .as_ref()
            .is_some_and(|(seen, at)| seen == spec && at.elapsed() >= duration)
    }

    /// One round: returns whether this instance holds the Lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let seconds = i32::try_from(self.timings.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(created.spec.unwrap_or_default());
                    Ok(true)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mine = holder.as_deref() == Some(self.identity.as_str());
        if !mine {
            let changed = self.observed.as_ref().is_none_or(|(seen, _)| seen != &spec);
            if changed {
                self.observe(spec.clone());
            }
            if holder.is_some() && !self.expired(&spec) {
                return Ok(false);
            }
        }
        let mut next = spec.clone();
        if !mine {
            next.acquire_time = Some(now.clone());
            next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        next.holder_identity = Some(self.identity.clone());
        next.lease_duration_seconds = Some(seconds);
        next.renew_time = Some(now);
        let mut update = lease;
        update.spec = Some(next);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &update)
            .await
        {
            Ok(written) => {
                self.observe(written.spec.unwrap_or_default());
                Ok(true)
            }
            // Someone else wrote first: they hold it, or we lost it.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn observe(&mut self, spec: LeaseSpec) {
        self.observed = Some((spec, Instant::now()));
    }

    /// Lets go: an empty holder and a 1 s duration, only if this instance still holds it.
    async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: None,
            renew_time: Some(MicroTime(Timestamp::now())),
            lease_transitions: spec.lease_transitions,
            ..Default::default()
        });
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }
}

/// An in-process lease for tests and single-instance runs: the first to ask holds it until it
/// lets go; the others wait.
#[derive(Debug, Default)]
pub struct LocalLease {
    holder: std::sync::Mutex<Option<String>>,
    senders: std::sync::Mutex<Vec<(String, watch::Sender<bool>)>>,
}

impl LocalLease {
    /// Joins the election as `identity`; the receiver says whether it leads.
    pub fn join(&self, identity: &str) -> watch::Receiver<bool> {
        let mut holder = self.holder.lock().unwrap_or_else(|e| e.into_inner());
        let leads = holder.get_or_insert_with(|| identity.to_string()) == identity;
        let (tx, rx) = watch::channel(leads);
        self.senders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((identity.to_string(), tx));
        rx
    }

    /// The holder lets go; the next in line leads.
    pub fn release(&self, identity: &str) {
        let mut holder = self.holder.lock().unwrap_or_else(|e| e.into_inner());
        if holder.as_deref() != Some(identity) {
            return;
        }
        let senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        *holder = senders
            .iter()
            .find(|(id, _)| id != identity)
            .map(|(id, _)| id.clone());
        for (id, tx) in senders.iter() {
            let _ = tx.send(holder.as_deref() == Some(id.as_str()));
        }
    }
}
