//! The simulated RunPod: accounts and everything in them, on a virtual clock.
//!
//! Pure state and rules, no I/O: the HTTP layer turns requests into calls here and the
//! results into responses. Time only moves through [`World::advance_to`], which bills every
//! account exactly (piecewise between events), finishes pod boots, steps the serverless
//! endpoints that have something to do, and applies the zero-balance rule at the instant a
//! balance reaches zero.
//!
//! Billing is by meter: each object that bills has one ([`Meter`]: its rate and since when),
//! read again only when the object changes, and written into the hour ledger then or when
//! the ledger is read. The account keeps the sum, so its balance and spend are O(1) and a
//! request costs what it changes, not the size of the account. Whoever edits the world
//! directly calls [`World::resync`] after.
//!
//! - this module: the world, its accounts and the clock ([`World::advance_to`]);
//! - `billing`: rates, the ledger and the money rules;
//! - `pods`, `endpoints`, `volumes`, `registries`: one module per RunPod resource;
//! - `render`: the REST v2 shapes of the objects.

mod billing;
mod endpoints;
mod pods;
mod registries;
mod render;
mod volumes;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rust_decimal::Decimal;
use serde_json::Value;

pub use super::capacity::{Capacity, DEFAULT_FREE_GPUS};
use super::catalog::Catalog;
use super::clock::per_ms;
pub use super::clock::{EPOCH_UNIX_SECONDS, MS_PER_HOUR, Millis, timestamp};
use super::serverless::Timing;
pub use billing::{Amounts, Billed, Meter};
pub use endpoints::{Endpoint, Workers};
pub use pods::{Container, Mount, Pod, PodStatus};
pub use registries::Registry;
pub use registries::{PrivateImage, repository};
pub use render::{EndpointView, PodView};
pub use volumes::Volume;

/// RunPod's message when no machine fits (docs/runpod.md, Pods).
pub const CAPACITY_MESSAGE: &str = "There are no longer any instances available with the requested specifications. Please refresh and try again.";

/// The data centres RunPod lists (docs/runpod.md, Data centres).
pub const DATA_CENTERS: &[&str] = &[
    "EU-RO-1", "CA-MTL-1", "EU-SE-1", "US-IL-1", "EUR-IS-1", "EU-CZ-1", "US-TX-3", "EUR-IS-2",
    "US-KS-2", "US-GA-2", "US-WA-1", "US-TX-1", "CA-MTL-3", "EU-NL-1", "US-TX-4", "US-CA-2",
    "US-NC-1", "OC-AU-1", "US-DE-1", "EUR-IS-3", "CA-MTL-2", "AP-JP-1", "EUR-NO-1", "EU-FR-1",
    "US-KS-3", "US-GA-1",
];

/// The CUDA version of a data centre's hosts. RunPod's hosts differ; the simulator gives most
/// data centres 12.8 and two older ones 12.4 and 12.6, so a pod's CUDA constraint decides
/// where it can go.
pub fn cuda_version(dc: &str) -> &'static str {
    match dc {
        "US-TX-1" => "12.4",
        "CA-MTL-1" => "12.6",
        _ => "12.8",
    }
}

/// Whether a host with CUDA `host` meets a pod's `allowedCudaVersions` (exact) or
/// `minCudaVersion` (numeric, major then minor).
pub fn cuda_fits(host: &str, allowed: &[String], min: Option<&str>) -> bool {
    let parse = |v: &str| -> Option<(u32, u32)> {
        let (major, minor) = v.split_once('.').unwrap_or((v, "0"));
        Some((major.parse().ok()?, minor.parse().ok()?))
    };
    if !allowed.is_empty() && !allowed.iter().any(|a| a == host) {
        return false;
    }
    match min {
        Some(min) => matches!((parse(host), parse(min)), (Some(h), Some(m)) if h >= m),
        None => true,
    }
}

/// Seconds a pod spends provisioning or starting before it runs.
pub const DEFAULT_BOOT_SECONDS: u64 = 15;

/// Container disk when a create names none (RunPod's template default).
pub const DEFAULT_CONTAINER_DISK_GB: u32 = 50;

/// A refusal, shaped like RunPod's problem JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// The explanation (`detail`).
    pub detail: String,
    /// Validation failures (`errors`), for 422.
    pub errors: Vec<String>,
}

impl Refusal {
    /// A refusal with a status and a detail.
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }
    fn not_found(what: &str) -> Self {
        Self::new(404, format!("{what} not found"))
    }
}

type Outcome<T> = Result<T, Refusal>;

/// One account: what a key sees.
#[derive(Clone, Debug)]
pub struct Account {
    /// Credit, USD. Goes below zero only through storage that keeps billing at zero.
    pub balance: Decimal,
    /// RunPod's hourly spend limit, USD.
    pub spend_limit: Decimal,
    /// Pods by id.
    pub pods: BTreeMap<String, Pod>,
    /// Endpoints by id.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Network volumes by id.
    pub volumes: BTreeMap<String, Volume>,
    /// Registries by id.
    pub registries: BTreeMap<String, Registry>,
    /// Hour bucket (hours since the epoch) x object -> amounts.
    pub ledger: BTreeMap<(u64, Billed, String), Amounts>,
    /// When the balance reached zero, if it is at zero now.
    pub zero_since: Option<Millis>,
    /// The meter of every object that bills, by kind and id.
    pub meters: HashMap<(Billed, String), Meter>,
    /// The sum of the meters, USD per hour.
    pub metered_per_hour: Decimal,
    /// The sum of the meters, USD per millisecond.
    pub metered_per_ms: Decimal,
    /// The instant `balance` is settled to.
    pub settled_at: Millis,
}

impl Account {
    fn new(balance: Decimal, now: Millis) -> Self {
        Self {
            meters: HashMap::new(),
            metered_per_hour: Decimal::ZERO,
            metered_per_ms: Decimal::ZERO,
            settled_at: now,
            balance,
            spend_limit: Decimal::from(80),
            pods: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            volumes: BTreeMap::new(),
            registries: BTreeMap::new(),
            ledger: BTreeMap::new(),
            zero_since: None,
        }
    }

    /// The serverless worker quota at this balance (docs/runpod.md, Serverless).
    pub fn worker_quota(&self) -> u32 {
        const TABLE: &[(i64, u32)] = &[
            (900, 60),
            (700, 50),
            (500, 40),
            (300, 30),
            (200, 20),
            (100, 10),
        ];
        TABLE
            .iter()
            .find(|(at_least, _)| self.balance >= Decimal::from(*at_least))
            .map_or(5, |(_, quota)| *quota)
    }
}

/// Deterministic ids: the same seed gives the same ids, so a run repeats.
#[derive(Clone, Debug)]
pub struct IdGen {
    state: u64,
}

impl IdGen {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next pseudo-random number (splitmix64).
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An id of `len` lowercase alphanumerics.
    pub fn id(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| ALPHABET[(self.next_u64() % ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}

/// The whole simulated RunPod.
#[derive(Clone, Debug)]
pub struct World {
    /// The virtual clock.
    pub now: Millis,
    /// Accounts by API key.
    pub accounts: BTreeMap<String, Account>,
    /// GPU capacity.
    pub capacity: Capacity,
    /// Prices.
    pub prices: Catalog,
    /// Id generator.
    pub ids: IdGen,
    /// Seconds a pod boots.
    pub boot_seconds: u64,
    /// Hours at zero balance after which network volumes are deleted; `None` keeps them.
    pub volume_grace_hours: Option<u64>,
    /// Serverless cold starts and job lengths.
    pub timing: Timing,
    /// Where an endpoint's workers may go, by its pools, exclusions and data centres: every
    /// step of every endpoint reads it, and building it anew cost most of a request with
    /// 10,000 endpoints.
    places: Places,
    /// The endpoints the clock steps, by (key, id): those with workers, jobs or always-on
    /// workers. The others have nothing to step, so a request costs what is live, not the
    /// size of the account.
    live: BTreeSet<(String, String)>,
    /// Private image repositories and the login each takes (`POST /_sim/images`).
    pub private_images: BTreeMap<String, registries::PrivateImage>,
    /// Why a pod failed to start (`ERROR`), by pod id: REST v2 has no field for it, so the
    /// simulator shows it in `/_sim/state`.
    pub pod_errors: BTreeMap<String, String>,
}

type PlaceList = std::sync::Arc<[(String, String)]>;

/// The cache of [`World::places`]: pure, so it never goes stale.
#[derive(Debug, Default)]
struct Places(std::sync::Mutex<std::collections::HashMap<String, PlaceList>>);

impl Clone for Places {
    fn clone(&self) -> Self {
        Self(std::sync::Mutex::new(
            self.0.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        ))
    }
}

/// A whole number the request carries at `path` (fields separated by dots), or `default` when
/// it is absent or null. A number that is not whole or does not fit `0..=max` is a 422 naming
/// the field: the simulator never casts a client's number (no `as` on request JSON).
pub(super) fn whole(body: &Value, path: &str, default: u64, max: u64) -> Outcome<u64> {
    let mut value = body;
    for field in path.split('.') {
        match value.get(field) {
            Some(v) => value = v,
            None => return Ok(default),
        }
    }
    if value.is_null() {
        return Ok(default);
    }
    value.as_u64().filter(|n| *n <= max).ok_or_else(|| {
        let mut refusal = Refusal::new(422, "Request validation failed.");
        refusal.errors.push(format!(
            "$.{path}: {value} is not a whole number from 0 to {max}"
        ));
        refusal
    })
}

/// [`whole`] for a field RunPod keeps in 32 bits.
pub(super) fn whole32(body: &Value, path: &str, default: u32) -> Outcome<u32> {
    let n = whole(body, path, u64::from(default), u64::from(u32::MAX))?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// The GPU count an endpoint's stored `gpu` object holds (checked when it was sent).
pub(super) fn gpu_count(gpu: &Value) -> u32 {
    gpu["count"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

impl World {
    /// An empty world with one funded account per key.
    pub fn new(seed: u64) -> Self {
        Self {
            now: 0,
            accounts: BTreeMap::new(),
            capacity: Capacity::default(),
            prices: Catalog::published(),
            ids: IdGen::new(seed),
            boot_seconds: DEFAULT_BOOT_SECONDS,
            volume_grace_hours: None,
            timing: Timing::default(),
            places: Places::default(),
            live: BTreeSet::new(),
            private_images: BTreeMap::new(),
            pod_errors: BTreeMap::new(),
        }
    }

    /// Adds an account for a key.
    pub fn add_account(&mut self, key: &str, balance: Decimal) {
        self.accounts
            .insert(key.to_string(), Account::new(balance, self.now));
    }

    /// The account of a key.
    pub fn account(&self, key: &str) -> Option<&Account> {
        self.accounts.get(key)
    }

    fn account_mut(&mut self, key: &str) -> Outcome<&mut Account> {
        self.accounts
            .get_mut(key)
            .ok_or_else(|| Refusal::new(403, "access denied"))
    }

    /// Moves the clock to `to`, billing every account and applying what happens on the way.
    /// All accounts move in lockstep from event to event, since they share GPU capacity.
    /// Billing is by meter (settled when a rate changes), so moving the clock costs the
    /// accounts and the live endpoints, not every object.
    pub fn advance_to(&mut self, to: Millis) {
        let keys: Vec<String> = self.accounts.keys().cloned().collect();
        while self.now < to {
            let now = self.now;
            let next = keys
                .iter()
                .filter_map(|key| self.next_account_event(key, now))
                .chain(self.next_endpoint_event(now))
                .min()
                .map_or(to, |t| t.min(to));
            for key in &keys {
                self.settle_balance(key, next);
            }
            self.now = next;
            for key in &keys {
                self.apply_account_events(key, next);
                self.step_endpoints(key, next);
            }
            self.finish_boots();
        }
    }

    /// Reads every meter and every endpoint's liveness again: after the world was edited
    /// directly (tests and benchmarks set it up that way) or a price changed.
    pub fn resync(&mut self) {
        let keys: Vec<String> = self.accounts.keys().cloned().collect();
        for key in keys {
            self.remeter_all(&key);
            let ids: Vec<String> = self.accounts[&key].endpoints.keys().cloned().collect();
            for id in ids {
                self.touch_endpoint(&key, &id);
            }
        }
        self.live.retain(|(key, id)| {
            self.accounts
                .get(key)
                .is_some_and(|a| a.endpoints.contains_key(id))
        });
    }

    /// The next instant at which the account's rate changes by itself: its balance reaching
    /// zero, or the zero-balance grace ending.
    fn next_account_event(&self, key: &str, at: Millis) -> Option<Millis> {
        let account = &self.accounts[key];
        let rate = account.metered_per_hour;
        // The balance as of `at`: settled to `settled_at`, less what ran since.
        let balance = account.balance
            - account.metered_per_ms * Decimal::from(at.saturating_sub(account.settled_at));
        let mut next: Option<Millis> = None;
        if account.zero_since.is_none() && rate > Decimal::ZERO && balance > Decimal::ZERO {
            let ms = (balance / per_ms(rate)).ceil();
            let ms = ms.try_into().unwrap_or(u64::MAX);
            next = Some(at.saturating_add(ms.max(1)));
        }
        if let (Some(since), Some(grace)) = (account.zero_since, self.volume_grace_hours)
            && !account.volumes.is_empty()
        {
            let deadline = since + grace * MS_PER_HOUR;
            if deadline > at {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
            }
        }
        next
    }

    /// What happens to an account at an instant: at zero balance every pod stops and pods
    /// without a network volume are terminated; after the grace, volumes are deleted.
    fn apply_account_events(&mut self, key: &str, at: Millis) {
        let account = self.accounts.get_mut(key).expect("the key exists");
        if account.zero_since.is_none() && account.balance <= Decimal::ZERO {
            account.zero_since = Some(at);
            let ids: Vec<String> = account.pods.keys().cloned().collect();
            for id in ids {
                let pod = account.pods.get_mut(&id).expect("listed");
                if pod.status.holds_gpus() {
                    self.capacity.release_gpus(
                        &pod.gpu_type,
                        &pod.data_center,
                        &pod.cloud,
                        pod.gpu_count,
                    );
                }
                if matches!(pod.mount, Some(Mount::Network { .. })) {
                    pod.status = PodStatus::Exited;
                    pod.stopped_at = Some(at);
                    pod.boot_done_at = None;
                } else {
                    account.pods.remove(&id);
                }
            }
            for endpoint in account.endpoints.values_mut() {
                let gpus = gpu_count(&endpoint.gpu);
                endpoint.workers.min = 0;
                endpoint.runtime.stop_all(gpus, &mut self.capacity);
            }
        }
        let mut changed = account.zero_since == Some(at);
        if let (Some(since), Some(grace)) = (account.zero_since, self.volume_grace_hours)
            && at >= since + grace * MS_PER_HOUR
            && !account.volumes.is_empty()
        {
            account.volumes.clear();
            changed = true;
        }
        if changed {
            self.remeter_all(key);
            let ids: Vec<String> = self.accounts[key].endpoints.keys().cloned().collect();
            for id in ids {
                self.touch_endpoint(key, &id);
            }
        }
    }

    fn finish_boots(&mut self) {
        let now = self.now;
        // Booted pods whose image cannot be pulled: they end in ERROR, not RUNNING.
        let mut failed = Vec::new();
        if !self.private_images.is_empty() {
            for (key, account) in &self.accounts {
                for pod in account.pods.values() {
                    if pod.boot_done_at.is_some_and(|t| t <= now)
                        && let Some(why) = self.pull_refusal(key, &pod.container)
                    {
                        failed.push((key.clone(), pod.id.clone(), why));
                    }
                }
            }
        }
        for (key, id, why) in failed {
            if let Some(pod) = self
                .accounts
                .get_mut(&key)
                .and_then(|a| a.pods.get_mut(&id))
            {
                pod.status = PodStatus::Error;
                pod.boot_done_at = None;
                pod.started_at = None;
            }
            self.pod_errors.insert(id.clone(), why);
            self.remeter(&key, Billed::Pod, &id);
        }
        for account in self.accounts.values_mut() {
            for pod in account.pods.values_mut() {
                if let Some(done) = pod.boot_done_at.filter(|t| *t <= now) {
                    pod.status = PodStatus::Running;
                    pod.started_at = Some(done);
                    pod.boot_done_at = None;
                } else if let (PodStatus::Provisioning, Some(done), Some(started)) =
                    (pod.status, pod.boot_done_at, pod.started_at)
                    && now >= started + (done - started) / 2
                {
                    // Placed and pulled: the container starts (REST v2 shows STARTING).
                    pod.status = PodStatus::Starting;
                }
            }
        }
    }
}
