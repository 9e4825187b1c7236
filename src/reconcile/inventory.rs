//! The account inventory: one cached view of an account's pods, endpoints and network
//! volumes (and its balance), refreshed by one list call per kind on the resync interval and
//! updated after every write. Observing N workloads costs three list calls, not N GETs.
//!
//! One refresh per account runs at a time, and a write recorded while a refresh is in flight
//! survives it: each write gets a sequence number, and the refresh lays the writes made since
//! it began over what its lists saw (a list that answered before a create cannot erase it).
//! The inventory also keeps the account's spending ledger: what reconciles have approved and
//! sent and RunPod's figures do not show yet, so two reconciles cannot spend the same dollars.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use rust_decimal::Decimal;

use crate::{
    engine::{
        identity::OWNER_ENV,
        index::Lookup,
        plan::{Observed, ObservedIndex, Pending},
    },
    runpod::{
        Client, Error,
        types::{Account, Endpoint, Health, NetworkVolume, Pod, Registry},
    },
};

/// What RunPod holds for one account, as last seen, with an index of it (by RunPod id, name
/// and owner marker) so one workload's objects are found without scanning the account.
///
/// The inventory shares one snapshot between every reconcile of the account (an `Arc`, not a
/// copy each). The lists are public for the tests and the CLI; a list changed in place after
/// the index was built is found by scanning until [`Snapshot::reindex`] runs again (the index
/// answers only for lists of the length it saw, and every candidate is checked).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Pods.
    pub pods: Vec<Pod>,
    /// Serverless endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Network volumes.
    pub volumes: Vec<NetworkVolume>,
    /// Balance, spend per hour, spend limit.
    pub account: Option<Account>,
    /// Registry credentials, name -> id; `None` when not listed (see
    /// [`Inventory::want_registries`]).
    pub registries: Option<std::collections::BTreeMap<String, String>>,
    index: Index,
    /// The sum of `workers.max` over the endpoints, kept by [`Snapshot::reindex`].
    workers_max_total: u64,
}

#[derive(Clone, Debug, Default)]
struct Index {
    pods: Lookup,
    endpoints: Lookup,
    volumes: Lookup,
}

impl PartialEq for Snapshot {
    /// What RunPod holds; the index follows from it.
    fn eq(&self, other: &Self) -> bool {
        self.pods == other.pods
            && self.endpoints == other.endpoints
            && self.volumes == other.volumes
            && self.account == other.account
            && self.registries == other.registries
    }
}

fn marker(env: &std::collections::BTreeMap<String, String>) -> Option<&str> {
    env.get(OWNER_ENV).map(String::as_str)
}

impl Snapshot {
    /// A snapshot of these lists, indexed.
    pub fn new(
        pods: Vec<Pod>,
        endpoints: Vec<Endpoint>,
        volumes: Vec<NetworkVolume>,
        account: Option<Account>,
    ) -> Self {
        let mut snapshot = Self {
            pods,
            endpoints,
            volumes,
            account,
            registries: None,
            index: Index::default(),
            workers_max_total: 0,
        };
        snapshot.reindex();
        snapshot
    }

    /// The same snapshot with the account's registry credentials listed.
    #[must_use]
    pub fn with_registries(mut self, registries: Vec<Registry>) -> Self {
        self.registries = Some(registries.into_iter().map(|r| (r.name, r.id)).collect());
        self
    }

    /// Whether any pod or endpoint uses a registry credential.
    fn uses_registries(&self) -> bool {
        self.pods.iter().any(|p| p.registry.is_some())
            || self.endpoints.iter().any(|e| e.registry.is_some())
    }

    /// Builds the index again, after the lists changed.
    pub fn reindex(&mut self) {
        // Lists read from RunPod grew by doubling: hold what they contain, not twice that.
        self.pods.shrink_to_fit();
        self.endpoints.shrink_to_fit();
        self.volumes.shrink_to_fit();
        self.index = Index {
            pods: Lookup::build(&self.pods, |p| &p.id, |p| &p.name, |p| marker(&p.env)),
            endpoints: Lookup::build(&self.endpoints, |e| &e.id, |e| &e.name, |e| marker(&e.env)),
            volumes: Lookup::build(&self.volumes, |v| &v.id, |v| &v.name, |_| None),
        };
        self.workers_max_total = self
            .endpoints
            .iter()
            .map(|e| u64::from(e.workers.max.unwrap_or(0)))
            .sum();
    }

    /// The sum of `maxWorkers` over the account's endpoints (what RunPod's worker quota
    /// counts), as of the last [`Snapshot::reindex`].
    pub fn workers_max_total(&self) -> u64 {
        self.workers_max_total
    }

    /// The pods and endpoints, as the planner reads them, with the index when it is current.
    pub fn observed(&self) -> Observed<'_> {
        let current = self.index.pods.fits(self.pods.len())
            && self.index.endpoints.fits(self.endpoints.len());
        Observed {
            pods: &self.pods,
            endpoints: &self.endpoints,
            index: current.then_some(ObservedIndex {
                pods: &self.index.pods,
                endpoints: &self.index.endpoints,
            }),
            registries: self.registries.as_ref(),
        }
    }

    /// The pod with RunPod id `id`.
    pub fn pod(&self, id: &str) -> Option<&Pod> {
        match self.index.pods.by_id(self.pods.len(), id) {
            Some(at) => at.map(|at| &self.pods[at]).filter(|p| p.id == id),
            None => self.pods.iter().find(|p| p.id == id),
        }
    }

    /// The endpoint with RunPod id `id`.
    pub fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        match self.index.endpoints.by_id(self.endpoints.len(), id) {
            Some(at) => at.map(|at| &self.endpoints[at]).filter(|e| e.id == id),
            None => self.endpoints.iter().find(|e| e.id == id),
        }
    }

    /// The pod with RunPod id `known` if there is one, else the first named `name`.
    pub fn pod_of(&self, known: Option<&str>, name: &str) -> Option<&Pod> {
        let len = self.pods.len();
        known
            .and_then(|id| self.pod(id))
            .or_else(|| match self.index.pods.by_name(len, name) {
                Some(at) => at.map(|at| &self.pods[at]).filter(|p| p.name == name),
                None => self.pods.iter().find(|p| p.name == name),
            })
    }

    /// The endpoint with RunPod id `known` if there is one, else the first named `name`.
    pub fn endpoint_of(&self, known: Option<&str>, name: &str) -> Option<&Endpoint> {
        let len = self.endpoints.len();
        known.and_then(|id| self.endpoint(id)).or_else(|| {
            match self.index.endpoints.by_name(len, name) {
                Some(at) => at.map(|at| &self.endpoints[at]).filter(|e| e.name == name),
                None => self.endpoints.iter().find(|e| e.name == name),
            }
        })
    }

    /// The network volume with RunPod id `known` if there is one, else the first named `name`.
    pub fn volume(&self, known: Option<&str>, name: &str) -> Option<&NetworkVolume> {
        let len = self.volumes.len();
        let by_id = known.and_then(|id| match self.index.volumes.by_id(len, id) {
            Some(at) => at.map(|at| &self.volumes[at]).filter(|v| v.id == id),
            None => self.volumes.iter().find(|v| v.id == id),
        });
        by_id.or_else(|| match self.index.volumes.by_name(len, name) {
            Some(at) => at.map(|at| &self.volumes[at]).filter(|v| v.name == name),
            None => self.volumes.iter().find(|v| v.name == name),
        })
    }
}

/// A full refresh younger than this is fresh enough: [`Inventory::look`] reads nothing.
pub const FRESH_ENOUGH: Duration = Duration::from_secs(2);

/// Reads by id between two full refreshes, at most: a refresh costs three lists and the
/// account query, so beyond this many one refresh is the cheaper way to look.
pub const LOOKS_PER_REFRESH: u32 = 3;

/// Endpoint health reads per account per resync interval, at most. Health only feeds the
/// status's worker count (there is no list form of it), so it may never take the request
/// budget the lists and writes need: an account with more endpoints shows worker counts for
/// those read, and `N active / M max` for the others.
pub const HEALTH_READS_PER_RESYNC: u32 = 20;

/// A write RunPod answered, kept until a refresh that began after it.
#[derive(Clone, Debug)]
enum Write {
    Pod(Pod),
    PodGone(String),
    Endpoint(Endpoint),
    EndpointGone(String),
    Volume(NetworkVolume),
    VolumeGone(String),
    Registry(Registry),
    RegistryGone(String),
}

impl Write {
    fn apply(&self, snapshot: &mut Snapshot) {
        match self {
            Self::Pod(pod) => {
                snapshot.pods.retain(|p| p.id != pod.id);
                snapshot.pods.push(pod.clone());
            }
            Self::PodGone(id) => snapshot.pods.retain(|p| &p.id != id),
            Self::Endpoint(endpoint) => {
                snapshot.endpoints.retain(|e| e.id != endpoint.id);
                snapshot.endpoints.push(endpoint.clone());
            }
            Self::EndpointGone(id) => snapshot.endpoints.retain(|e| &e.id != id),
            Self::Volume(volume) => {
                snapshot.volumes.retain(|v| v.id != volume.id);
                snapshot.volumes.push(volume.clone());
            }
            Self::VolumeGone(id) => snapshot.volumes.retain(|v| &v.id != id),
            Self::Registry(registry) => {
                let list = snapshot.registries.get_or_insert_default();
                list.retain(|_, id| *id != registry.id);
                list.insert(registry.name.clone(), registry.id.clone());
            }
            Self::RegistryGone(gone) => {
                if let Some(list) = snapshot.registries.as_mut() {
                    list.retain(|_, id| id != gone);
                }
            }
        }
    }
}

/// Spending one workload's reconcile approved: reserved before the write is sent, kept until
/// a refresh that began after the write ended (RunPod's spend figure then counts it).
#[derive(Clone, Debug)]
struct Sent {
    key: String,
    worst_per_hour: Decimal,
    expected_per_hour: Decimal,
    /// The write sequence number when the write ended; `None` while in flight.
    ended: Option<u64>,
}

struct State {
    snapshot: Arc<Snapshot>,
    refreshed_at: Option<Instant>,
    /// Set by an unknown outcome: the sequence number when it was marked. Only a refresh that
    /// began after it clears it (one already in flight may have listed before the object).
    stale_at: Option<u64>,
    /// The last write's sequence number.
    seq: u64,
    /// Writes not yet covered by a refresh that began after them.
    writes: Vec<(u64, Write)>,
    /// The spending ledger.
    sent: Vec<Sent>,
    /// Reads by id since the last full refresh (see [`Inventory::look`]).
    looks: u32,
    /// Moves on every reservation and release, so a reconcile that planned against an older
    /// ledger plans again.
    ledger_version: u64,
    /// Whether refreshes list the registry credentials (a workload asked, or an object uses
    /// one): an account without private images pays no fourth list.
    want_registries: bool,
    /// The last health read of each endpoint, and when.
    health: std::collections::HashMap<String, (Instant, Health)>,
    /// Health reads in the current resync interval, and when that interval began.
    health_reads: (u32, Option<Instant>),
    /// Every create this process made, by owner (see [`Inventory::made_for`]).
    made: std::collections::HashMap<String, Made>,
    /// Why the last lists cannot prove what exists (see [`identity_gap`]); creates wait.
    identity_gap: Option<String>,
}

/// One create this process made: what, which id, when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Made {
    /// What was made.
    pub kind: MadeKind,
    /// Its RunPod id.
    pub id: String,
    /// When.
    pub at: Instant,
}

/// The kinds of object the journal records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MadeKind {
    /// A pod.
    Pod,
    /// A serverless endpoint.
    Endpoint,
    /// A network volume.
    Volume,
}

/// Why a snapshot's lists cannot prove which objects exist, if they cannot: an object without
/// an id or a name. RunPod names every object (the operator's names are deterministic), so a
/// blank name is a list that lost fields, not a console edit; planning on it could create an
/// object that already exists, or "correct" a field the list lost, so creates and changes
/// wait until the lists are whole again. (A pod or endpoint whose owner marker was removed in
/// the console is still found by its name, and the marker is put back as drift.)
pub fn identity_gap(snapshot: &Snapshot) -> Option<String> {
    let blank = |id: &str, name: &str| id.trim().is_empty() || name.trim().is_empty();
    let pods = snapshot
        .pods
        .iter()
        .filter(|p| blank(&p.id, &p.name))
        .count();
    let endpoints = snapshot
        .endpoints
        .iter()
        .filter(|e| blank(&e.id, &e.name))
        .count();
    let volumes = snapshot
        .volumes
        .iter()
        .filter(|v| blank(&v.id, &v.name))
        .count();
    (pods + endpoints + volumes > 0).then(|| {
        format!(
            "RunPod listed {pods} pod(s), {endpoints} endpoint(s) and {volumes} network volume(s) without an id or a name, so what already exists cannot be told apart; creates and changes on this account wait until the lists are whole again (stops and deletions that save money still run)"
        )
    })
}

/// The cached view of one account.
pub struct Inventory {
    client: Client,
    resync: Duration,
    state: Mutex<State>,
    /// One refresh at a time.
    refreshing: tokio::sync::Mutex<()>,
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
                snapshot: Arc::default(),
                refreshed_at: None,
                stale_at: Some(0),
                seq: 0,
                writes: Vec::new(),
                sent: Vec::new(),
                looks: 0,
                ledger_version: 0,
                want_registries: false,
                health: std::collections::HashMap::new(),
                health_reads: (0, None),
                made: std::collections::HashMap::new(),
                identity_gap: None,
            }),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The client the inventory reads with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Reads everything again: three list calls and the account query. Waits for a refresh
    /// already running, then reads again (deletion wants what RunPod holds now).
    pub async fn refresh(&self) -> Result<(), Error> {
        let _one = self.refreshing.lock().await;
        self.read_all().await
    }

    async fn read_all(&self) -> Result<(), Error> {
        let began = lock(&self.state).seq;
        let pods = self.client.list_pods().await?;
        let endpoints = self.client.list_endpoints().await?;
        let volumes = self.client.list_network_volumes().await?;
        let account = self.client.account().await.ok();
        let mut snapshot = Snapshot {
            pods,
            endpoints,
            volumes,
            account,
            registries: None,
            index: Index::default(),
            workers_max_total: 0,
        };
        if lock(&self.state).want_registries || snapshot.uses_registries() {
            snapshot = snapshot.with_registries(self.client.list_registries().await?);
        }
        let mut state = lock(&self.state);
        // What was written while the lists were read may be missing from them: lay it over.
        for (_, write) in state.writes.iter().filter(|(seq, _)| *seq > began) {
            write.apply(&mut snapshot);
        }
        snapshot.reindex();
        let gap = identity_gap(&snapshot);
        if gap.is_some() && state.identity_gap.is_none() {
            tracing::warn!(problem = gap.as_deref().unwrap_or_default(), "creates held");
        }
        state.identity_gap = gap;
        state.writes.retain(|(seq, _)| *seq > began);
        // Spending that ended before the reads began is in the account's figures now.
        let before = state.sent.len();
        state.sent.retain(|s| s.ended.is_none_or(|end| end > began));
        if state.sent.len() != before {
            state.ledger_version += 1;
        }
        state.snapshot = Arc::new(snapshot);
        state.looks = 0;
        state.refreshed_at = Some(Instant::now());
        if state.stale_at.is_some_and(|at| at <= began) {
            state.stale_at = None;
        }
        Ok(())
    }

    fn due(&self) -> bool {
        let state = lock(&self.state);
        state.stale_at.is_some()
            || state
                .refreshed_at
                .is_none_or(|t| t.elapsed() >= self.resync)
    }

    /// Refreshes when the resync interval has passed or a write's outcome is unknown. Callers
    /// that arrive while a refresh runs wait for it instead of starting their own.
    pub async fn ensure_fresh(&self) -> Result<(), Error> {
        if !self.due() {
            return Ok(());
        }
        let _one = self.refreshing.lock().await;
        if self.due() {
            self.read_all().await
        } else {
            Ok(())
        }
    }

    /// Reads one known pod or endpoint again (`GET /v2/pods/{id}` or the endpoint), for a
    /// workload waiting on RunPod (provisioning, starting): the state is seen when it changes,
    /// not on the next resync. Nothing is read when the last full refresh is younger than
    /// [`FRESH_ENOUGH`]. When many workloads wait at once, one refresh serves them all: after
    /// [`LOOKS_PER_REFRESH`] reads by id (what a refresh costs) the next look refreshes the
    /// whole account instead, so waiting workloads never cost more than the lists would. An id
    /// the inventory does not hold is left alone (the next refresh finds it); one RunPod no
    /// longer knows is removed.
    pub async fn look(&self, id: &str) -> Result<(), Error> {
        let fresh = |state: &State| {
            state
                .refreshed_at
                .is_some_and(|t| t.elapsed() < FRESH_ENOUGH)
        };
        let (is_pod, is_endpoint, refresh) = {
            let mut state = lock(&self.state);
            if fresh(&state) {
                return Ok(());
            }
            state.looks += 1;
            (
                state.snapshot.pod(id).is_some(),
                state.snapshot.endpoint(id).is_some(),
                state.looks > LOOKS_PER_REFRESH,
            )
        };
        if refresh {
            let _one = self.refreshing.lock().await;
            if fresh(&lock(&self.state)) {
                return Ok(());
            }
            return self.read_all().await;
        }
        if is_pod {
            match self.client.get_pod(id).await {
                Ok(pod) => self.put_pod(pod),
                Err(e) if e.class() == crate::runpod::ErrorClass::NotFound => self.remove_pod(id),
                Err(e) => return Err(e),
            }
        } else if is_endpoint {
            match self.client.get_endpoint(id).await {
                Ok(endpoint) => self.put_endpoint(endpoint),
                Err(e) if e.class() == crate::runpod::ErrorClass::NotFound => {
                    self.remove_endpoint(id);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Forces the next [`Inventory::ensure_fresh`] to read RunPod again (after an unknown
    /// outcome, so a create is resolved by looking).
    pub fn mark_stale(&self) {
        let mut state = lock(&self.state);
        state.seq += 1;
        state.stale_at = Some(state.seq);
    }

    /// The view, shared: a reference, not a copy. A write after this call makes a new
    /// view and leaves this one as it was.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        lock(&self.state).snapshot.clone()
    }

    fn record(&self, write: Write) {
        let mut state = lock(&self.state);
        state.seq += 1;
        let seq = state.seq;
        let snapshot = Arc::make_mut(&mut state.snapshot);
        write.apply(snapshot);
        snapshot.reindex();
        state.writes.push((seq, write));
    }

    /// Records a pod a write returned.
    pub fn put_pod(&self, pod: Pod) {
        self.record(Write::Pod(pod));
    }

    /// Forgets a deleted pod.
    pub fn remove_pod(&self, id: &str) {
        self.record(Write::PodGone(id.to_string()));
    }

    /// Records an endpoint a write returned.
    pub fn put_endpoint(&self, endpoint: Endpoint) {
        self.record(Write::Endpoint(endpoint));
    }

    /// Forgets a deleted endpoint.
    pub fn remove_endpoint(&self, id: &str) {
        self.record(Write::EndpointGone(id.to_string()));
    }

    /// Records a volume a write returned.
    pub fn put_volume(&self, volume: NetworkVolume) {
        self.record(Write::Volume(volume));
    }

    /// Forgets a deleted volume.
    pub fn remove_volume(&self, id: &str) {
        self.record(Write::VolumeGone(id.to_string()));
    }

    /// Records a registry credential a create returned.
    pub fn put_registry(&self, registry: Registry) {
        self.record(Write::Registry(registry));
    }

    /// Forgets a deleted registry credential.
    pub fn remove_registry(&self, id: &str) {
        self.record(Write::RegistryGone(id.to_string()));
    }

    /// From now on refreshes list the registry credentials too; if the current snapshot lacks
    /// them, the next [`Inventory::ensure_fresh`] reads RunPod.
    pub fn want_registries(&self) {
        let mut state = lock(&self.state);
        if !state.want_registries {
            state.want_registries = true;
            if state.snapshot.registries.is_none() {
                state.seq += 1;
                state.stale_at = Some(state.seq);
            }
        }
    }

    /// An endpoint's live worker and job counters (`/v2/{id}/health`), read at most once per
    /// resync interval, and at most [`HEALTH_READS_PER_RESYNC`] reads per interval for the
    /// account; otherwise (or on a failed read) the last one known, or `None`. With the
    /// instant it was read (a caller that samples it takes each read once).
    pub async fn endpoint_health(&self, id: &str) -> Option<(Instant, Health)> {
        {
            let mut state = lock(&self.state);
            let known = state.health.get(id).copied();
            if let Some((at, _)) = known
                && at.elapsed() < self.resync
            {
                return known;
            }
            let (reads, since) = &mut state.health_reads;
            if since.is_none_or(|t| t.elapsed() >= self.resync) {
                *reads = 0;
                *since = Some(Instant::now());
            }
            if *reads >= HEALTH_READS_PER_RESYNC {
                return known;
            }
            *reads += 1;
        }
        match self.client.endpoint_health(id).await {
            Ok(health) => {
                let mut state = lock(&self.state);
                // Forget endpoints that are gone, so the map stays the size of the account.
                if state.health.len() > 2 * state.snapshot.endpoints.len() + 16 {
                    let live: std::collections::HashSet<String> = state
                        .snapshot
                        .endpoints
                        .iter()
                        .map(|e| e.id.clone())
                        .collect();
                    state.health.retain(|k, _| live.contains(k));
                }
                let read = (Instant::now(), health);
                state.health.insert(id.to_string(), read);
                Some(read)
            }
            Err(_) => lock(&self.state).health.get(id).copied(),
        }
    }

    // ---- the create journal ---------------------------------------------------------------------

    /// Why creates on this account wait, if they do: the last lists lacked what identity
    /// needs (see [`identity_gap`]).
    pub fn identity_gap(&self) -> Option<String> {
        lock(&self.state).identity_gap.clone()
    }

    /// The last create this process made for `owner` (the owner marker, or the name of a
    /// volume), if it is not known to be gone. A list can lag, lose fields or be wrong; this
    /// record cannot: while it stands, no second create is sent for that owner until a direct
    /// read by id proves the first one gone (see [`Inventory::confirm_gone`]).
    pub fn made_for(&self, owner: &str) -> Option<Made> {
        lock(&self.state).made.get(owner).cloned()
    }

    /// Records a create that RunPod answered with an id.
    pub fn remember_made(&self, owner: &str, kind: MadeKind, id: &str) {
        lock(&self.state).made.insert(
            owner.to_string(),
            Made {
                kind,
                id: id.to_string(),
                at: Instant::now(),
            },
        );
    }

    /// Forgets the journal's records of `id` (deleted, or read gone).
    pub fn forget_made(&self, id: &str) {
        lock(&self.state).made.retain(|_, m| m.id != id);
    }

    /// Reads a recorded object by id. Gone (404): the record is forgotten, `true`. Still
    /// there: it is laid into the view (so the next plan finds it however the lists look),
    /// `false`. Any other failure is returned: nothing is known, nothing may be created.
    pub async fn confirm_gone(&self, made: &Made) -> Result<bool, Error> {
        let not_found = |e: &Error| e.class() == crate::runpod::ErrorClass::NotFound;
        match made.kind {
            MadeKind::Pod => match self.client.get_pod(&made.id).await {
                Ok(pod) => self.put_pod(pod),
                Err(e) if not_found(&e) => {
                    self.forget_made(&made.id);
                    return Ok(true);
                }
                Err(e) => return Err(e),
            },
            MadeKind::Endpoint => match self.client.get_endpoint(&made.id).await {
                Ok(endpoint) => self.put_endpoint(endpoint),
                Err(e) if not_found(&e) => {
                    self.forget_made(&made.id);
                    return Ok(true);
                }
                Err(e) => return Err(e),
            },
            MadeKind::Volume => match self.client.get_network_volume(&made.id).await {
                Ok(volume) => self.put_volume(volume),
                Err(e) if not_found(&e) => {
                    self.forget_made(&made.id);
                    return Ok(true);
                }
                Err(e) => return Err(e),
            },
        }
        Ok(false)
    }

    // ---- the spending ledger ------------------------------------------------------------------

    /// Spending approved by other workloads' reconciles and not yet in RunPod's figures, and
    /// the ledger version to reserve against.
    pub fn pending(&self, except: &str) -> (Pending, u64) {
        let state = lock(&self.state);
        let mut pending = Pending::default();
        for sent in state.sent.iter().filter(|s| s.key != except) {
            pending.add(&sent.key, sent.worst_per_hour, sent.expected_per_hour);
        }
        (pending, state.ledger_version)
    }

    /// Reserves `key`'s spending before its write is sent, if the ledger is still the one
    /// its plan saw (`version`); `false` means another reconcile spent first: plan again.
    pub fn reserve(
        &self,
        key: &str,
        worst_per_hour: Decimal,
        expected_per_hour: Decimal,
        version: u64,
    ) -> bool {
        let mut state = lock(&self.state);
        if state.ledger_version != version {
            return false;
        }
        state.ledger_version += 1;
        state.sent.retain(|s| s.key != key);
        state.sent.push(Sent {
            key: key.to_string(),
            worst_per_hour,
            expected_per_hour,
            ended: None,
        });
        true
    }

    /// `key`'s write ended: if it may have spent (`sent`), the reservation stays until a
    /// refresh sees it; if nothing was made, it is released.
    pub fn settle(&self, key: &str, sent: bool) {
        let mut state = lock(&self.state);
        let seq = state.seq;
        if sent {
            for s in state.sent.iter_mut().filter(|s| s.key == key) {
                s.ended = Some(seq);
            }
        } else {
            state.sent.retain(|s| s.key != key);
            state.ledger_version += 1;
        }
    }
}
