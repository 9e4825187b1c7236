//! The simulated RunPod: accounts and everything in them, on a virtual clock.
//!
//! Pure state and rules, no I/O: the HTTP layer turns requests into calls here and the
//! results into responses. Time only moves through [`World::advance_to`], which bills every
//! account second by second (exactly, piecewise between events), finishes pod boots, and
//! applies the zero-balance rule at the instant a balance reaches zero.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::{Decimal, prelude::ToPrimitive};
use serde::Serialize;
use serde_json::{Value, json};

use super::serverless::{Job, Runtime, Scaling, Timing};
use crate::engine::{
    cost::network_volume_per_month,
    prices::{HOURS_PER_MONTH, PriceCatalogue},
};

/// Milliseconds on the virtual clock since [`EPOCH`].
pub type Millis = u64;

/// The instant the virtual clock starts at: 2026-01-01T00:00:00Z, in Unix seconds.
pub const EPOCH_UNIX_SECONDS: i64 = 1_767_225_600;

/// RunPod's message when no machine fits (FACTS 1.1).
pub const CAPACITY_MESSAGE: &str = "There are no longer any instances available with the requested specifications. Please refresh and try again.";

/// The data centres RunPod lists (FACTS 1.9).
pub const DATA_CENTERS: &[&str] = &[
    "EU-RO-1", "CA-MTL-1", "EU-SE-1", "US-IL-1", "EUR-IS-1", "EU-CZ-1", "US-TX-3", "EUR-IS-2",
    "US-KS-2", "US-GA-2", "US-WA-1", "US-TX-1", "CA-MTL-3", "EU-NL-1", "US-TX-4", "US-CA-2",
    "US-NC-1", "OC-AU-1", "US-DE-1", "EUR-IS-3", "CA-MTL-2", "AP-JP-1", "EUR-NO-1", "EU-FR-1",
    "US-KS-3", "US-GA-1",
];

/// Free GPUs per (GPU type, data centre, cloud) when nothing else is set: plenty.
pub const DEFAULT_FREE_GPUS: u32 = 1000;

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

/// Pod statuses of REST v2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodStatus {
    /// Created, placing and pulling.
    Provisioning,
    /// Started again after a stop.
    Starting,
    /// Running.
    Running,
    /// Stopped.
    Exited,
    /// Failed.
    Error,
}

impl PodStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "PROVISIONING",
            Self::Starting => "STARTING",
            Self::Running => "RUNNING",
            Self::Exited => "EXITED",
            Self::Error => "ERROR",
        }
    }

    /// The actions legal in this status (FACTS 2.2).
    pub fn actions(self) -> &'static [&'static str] {
        match self {
            Self::Running => &["stop", "restart", "terminate"],
            Self::Exited | Self::Error => &["start", "terminate"],
            Self::Provisioning | Self::Starting => &["stop", "terminate"],
        }
    }

    /// Whether the pod holds GPUs and bills compute.
    fn holds_gpus(self) -> bool {
        matches!(self, Self::Provisioning | Self::Starting | Self::Running)
    }
}

/// A pod's one mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mount {
    /// A pod volume on the host.
    Persistent {
        /// GB.
        size: u32,
        /// Mount path.
        path: String,
    },
    /// A network volume.
    Network {
        /// The volume id.
        volume_id: String,
        /// Mount path.
        path: String,
    },
}

/// The container settings pods and endpoints share.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Container {
    /// Image.
    pub image: String,
    /// Start arguments.
    pub args: String,
    /// Container disk, GB.
    pub disk: u32,
    /// Ports.
    pub ports: Vec<String>,
    /// Environment.
    pub env: BTreeMap<String, String>,
    /// Registry id.
    pub registry: Option<String>,
}

impl Container {
    /// Applies the container fields of a create or PATCH body; true when anything changed.
    fn apply(&mut self, body: &Value) -> bool {
        let before = self.clone();
        if let Some(v) = body["image"].as_str() {
            self.image = v.to_string();
        }
        if let Some(v) = body["args"].as_str() {
            self.args = v.to_string();
        }
        if let Some(v) = body["disk"].as_u64() {
            self.disk = v as u32;
        }
        if let Some(v) = body["ports"].as_array() {
            self.ports = v
                .iter()
                .filter_map(|p| p.as_str().map(String::from))
                .collect();
        }
        if let Some(v) = body["env"].as_object() {
            self.env = v
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
        }
        match &body["registry"] {
            Value::String(id) => self.registry = Some(id.clone()),
            Value::Null if body.get("registry").is_some() => self.registry = None,
            _ => {}
        }
        *self != before
    }
}

/// A pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    /// Id: 14 lowercase alphanumerics.
    pub id: String,
    /// Name (not unique).
    pub name: String,
    /// Container settings.
    pub container: Container,
    /// GPU type id.
    pub gpu_type: String,
    /// GPU count.
    pub gpu_count: u32,
    /// `SECURE` or `COMMUNITY`.
    pub cloud: String,
    /// Where it was placed; a stopped pod keeps it (its host).
    pub data_center: String,
    /// Mount, if any.
    pub mount: Option<Mount>,
    /// Status.
    pub status: PodStatus,
    /// Locked pods refuse stop.
    pub locked: bool,
    /// Global networking flag.
    pub global_networking: bool,
    /// When it was created.
    pub created_at: Millis,
    /// When it last started: the start request while booting, then the instant it ran.
    pub started_at: Option<Millis>,
    /// When a boot in progress finishes.
    pub boot_done_at: Option<Millis>,
    /// When it was last stopped.
    pub stopped_at: Option<Millis>,
    /// How many times the container was reset (PATCH) or restarted.
    pub resets: u32,
}

/// An endpoint's workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workers {
    /// Always-on workers.
    pub min: u32,
    /// Cap.
    pub max: u32,
    /// Idle timeout, seconds.
    pub idle_timeout: u32,
}

/// A serverless endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// Id: 14 lowercase alphanumerics.
    pub id: String,
    /// Name.
    pub name: String,
    /// `QUEUE` or `LOAD_BALANCER`.
    pub endpoint_type: String,
    /// Container settings.
    pub container: Container,
    /// The `gpu` object as sent (pools, count, CUDA).
    pub gpu: Value,
    /// Workers.
    pub workers: Workers,
    /// The `scaling` object as sent.
    pub scaling: Value,
    /// Data centres.
    pub data_centers: Vec<String>,
    /// Network volume ids.
    pub network_volumes: Vec<String>,
    /// Execution timeout, ms (0 = none).
    pub timeout: u64,
    /// FlashBoot mode.
    pub flashboot: String,
    /// When it was created.
    pub created_at: Millis,
    /// Release version: bumped by container changes.
    pub version: u64,
    /// Workers and jobs.
    pub runtime: Runtime,
}

/// A network volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    /// Id: 10 lowercase alphanumerics.
    pub id: String,
    /// Name.
    pub name: String,
    /// GB.
    pub size: u32,
    /// Data centre.
    pub data_center: String,
    /// `STANDARD` or `HIGH_PERFORMANCE`.
    pub volume_type: String,
}

/// A registry credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registry {
    /// Id, cuid-like.
    pub id: String,
    /// Unique name.
    pub name: String,
}

/// Money billed to one object over one hour bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Amounts {
    /// GPU compute.
    pub gpu: Decimal,
    /// Container disk and pod volume.
    pub disk: Decimal,
    /// Network volume storage.
    pub storage: Decimal,
}

impl Amounts {
    /// The sum.
    pub fn total(&self) -> Decimal {
        self.gpu + self.disk + self.storage
    }
}

/// What kind of object a ledger line bills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Billed {
    /// A pod.
    Pod,
    /// A serverless endpoint.
    Serverless,
    /// A network volume.
    NetworkVolume,
}

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
}

impl Account {
    fn new(balance: Decimal) -> Self {
        Self {
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

    /// The serverless worker quota at this balance (FACTS 4.2).
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

/// Where GPUs are free.
#[derive(Clone, Debug, Default)]
pub struct Capacity {
    free: HashMap<(String, String, String), u32>,
}

impl Capacity {
    /// Free GPUs of a type in a data centre on a cloud.
    pub fn free(&self, gpu: &str, dc: &str, cloud: &str) -> u32 {
        *self
            .free
            .get(&(gpu.to_string(), dc.to_string(), cloud.to_string()))
            .unwrap_or(&DEFAULT_FREE_GPUS)
    }

    /// Sets the free GPUs of a type in a data centre on a cloud.
    pub fn set(&mut self, gpu: &str, dc: &str, cloud: &str, free: u32) {
        self.free
            .insert((gpu.to_string(), dc.to_string(), cloud.to_string()), free);
    }

    /// Takes `count` GPUs if that many are free.
    pub fn take_gpus(&mut self, gpu: &str, dc: &str, cloud: &str, count: u32) -> bool {
        let free = self.free(gpu, dc, cloud);
        if free < count {
            return false;
        }
        self.set(gpu, dc, cloud, free - count);
        true
    }

    /// Gives GPUs back.
    pub fn release_gpus(&mut self, gpu: &str, dc: &str, cloud: &str, count: u32) {
        let free = self.free(gpu, dc, cloud);
        self.set(gpu, dc, cloud, free + count);
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
    pub prices: PriceCatalogue,
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

const MS_PER_HOUR: u64 = 3_600_000;

fn per_ms(per_hour: Decimal) -> Decimal {
    per_hour / Decimal::from(MS_PER_HOUR)
}

/// Renders a virtual instant as RFC 3339 UTC.
pub fn timestamp(at: Millis) -> String {
    let seconds = EPOCH_UNIX_SECONDS + (at / 1000) as i64;
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl World {
    /// An empty world with one funded account per key.
    pub fn new(seed: u64) -> Self {
        Self {
            now: 0,
            accounts: BTreeMap::new(),
            capacity: Capacity::default(),
            prices: PriceCatalogue::builtin(),
            ids: IdGen::new(seed),
            boot_seconds: DEFAULT_BOOT_SECONDS,
            volume_grace_hours: None,
            timing: Timing::default(),
            places: Places::default(),
        }
    }

    /// Adds an account for a key.
    pub fn add_account(&mut self, key: &str, balance: Decimal) {
        self.accounts.insert(key.to_string(), Account::new(balance));
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

    // ---- prices of things ----------------------------------------------------------------

    fn storage_per_hour(&self, gb: u32, per_gb_month: Decimal) -> Decimal {
        Decimal::from(gb) * per_gb_month / Decimal::from(HOURS_PER_MONTH)
    }

    /// USD/h of a pod's GPUs in its current status (0 when stopped, as v2 reports `cost`).
    pub fn pod_compute_per_hour(&self, pod: &Pod) -> Decimal {
        if !pod.status.holds_gpus() {
            return Decimal::ZERO;
        }
        let community = pod.cloud == "COMMUNITY";
        self.prices
            .pod_per_hour(&pod.gpu_type, community)
            .map(|p| p * Decimal::from(pod.gpu_count))
            .unwrap_or_default()
    }

    /// USD/h of a pod's disks in its current status: container disk and volume while it runs,
    /// the volume at the stopped rate while it is stopped.
    pub fn pod_disk_per_hour(&self, pod: &Pod) -> Decimal {
        let rates = &self.prices.storage;
        let volume = match &pod.mount {
            Some(Mount::Persistent { size, .. }) => *size,
            _ => 0,
        };
        if pod.status.holds_gpus() {
            self.storage_per_hour(pod.container.disk, rates.container_disk)
                + self.storage_per_hour(volume, rates.pod_volume_running)
        } else {
            self.storage_per_hour(volume, rates.pod_volume_stopped)
        }
    }

    /// Per-second rates of a worker of this endpoint, one GPU: (flex, active). Where the pool
    /// publishes no active rate, active workers bill at flex.
    fn worker_rates(&self, endpoint: &Endpoint) -> (Decimal, Decimal) {
        let pool = endpoint.gpu["pools"][0].as_str().unwrap_or_default();
        self.prices
            .gpu_types()
            .find(|g| g.pool.as_deref() == Some(pool))
            .and_then(|g| self.prices.pool_of(&g.gpu_type).ok())
            .map(|p| {
                (
                    p.flex_per_second,
                    p.active_per_second.unwrap_or(p.flex_per_second),
                )
            })
            .unwrap_or_default()
    }

    fn worker_per_hour(&self, endpoint: &Endpoint, active: bool) -> Decimal {
        let gpus = Decimal::from(endpoint.gpu["count"].as_u64().unwrap_or(1));
        let (flex, active_rate) = self.worker_rates(endpoint);
        let rate = if active { active_rate } else { flex };
        gpus * rate * Decimal::from(3600)
            + self.storage_per_hour(endpoint.container.disk, self.prices.storage.container_disk)
    }

    /// USD/h of an endpoint's always-on floor (`workers.min` active workers): what the credit
    /// and spend-limit rules weigh when an endpoint is created or changed.
    pub fn endpoint_floor_per_hour(&self, endpoint: &Endpoint) -> Decimal {
        Decimal::from(endpoint.workers.min) * self.worker_per_hour(endpoint, true)
    }

    /// USD/h an endpoint bills now: every worker that is not throttled, from its start
    /// (cold start included) to its stop (idle timeout included).
    pub fn endpoint_per_hour(&self, endpoint: &Endpoint) -> Decimal {
        endpoint
            .runtime
            .workers
            .iter()
            .filter(|w| w.billed())
            .map(|w| self.worker_per_hour(endpoint, w.active))
            .sum()
    }

    /// The scaling settings of an endpoint, for the serverless step.
    pub fn endpoint_scaling(&self, endpoint: &Endpoint) -> Scaling {
        let places = self.places(endpoint);
        let scaler = &endpoint.scaling;
        let flashboot = endpoint.flashboot != "OFF";
        Scaling {
            min: endpoint.workers.min,
            max: endpoint.workers.max,
            idle_timeout_ms: u64::from(endpoint.workers.idle_timeout_or_default()) * 1000,
            queue_delay_ms: (scaler["type"] == "QUEUE_DELAY")
                .then(|| (scaler["queueDelay"].as_f64().unwrap_or(4.0) * 1000.0) as Millis),
            request_count: (scaler["type"] == "REQUEST_COUNT")
                .then(|| scaler["requestCount"].as_u64().unwrap_or(1) as u32),
            version: endpoint.version,
            gpus: endpoint.gpu["count"].as_u64().unwrap_or(1) as u32,
            places,
            cold_start_ms: self.timing.cold_start_ms.max(1),
            // FlashBoot revives a worker from retained state: only once one has run before.
            revival_ms: flashboot.then_some(self.timing.flashboot_cold_start_ms.max(1)),
        }
    }

    /// Where an endpoint's workers may be placed: (GPU type, data centre) in preference order.
    fn places(&self, endpoint: &Endpoint) -> PlaceList {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        };
        let pools = strings(&endpoint.gpu["pools"]);
        let excluded = strings(&endpoint.gpu["excludedTypes"]);
        let key = format!(
            "{}|{}|{}",
            pools.join(","),
            excluded.join(","),
            endpoint.data_centers.join(",")
        );
        let mut cache = self.places.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(places) = cache.get(&key) {
            return places.clone();
        }
        let dcs: Vec<String> = if endpoint.data_centers.is_empty() {
            DATA_CENTERS.iter().map(|d| d.to_string()).collect()
        } else {
            endpoint.data_centers.clone()
        };
        let mut places = Vec::new();
        for pool in &pools {
            for gpu in self
                .prices
                .gpu_types()
                .filter(|g| g.pool.as_deref() == Some(pool.as_str()))
            {
                if excluded.contains(&gpu.gpu_type) {
                    continue;
                }
                for dc in &dcs {
                    places.push((gpu.gpu_type.clone(), dc.clone()));
                }
            }
        }
        let places: PlaceList = places.into();
        cache.insert(key, places.clone());
        places
    }

    /// Runs the serverless step of every endpoint of an account at `at`.
    fn step_endpoints(&mut self, key: &str, at: Millis) {
        let ids: Vec<String> = self.accounts[key].endpoints.keys().cloned().collect();
        for id in ids {
            let scaling = self.endpoint_scaling(&self.accounts[key].endpoints[&id]);
            let account = self.accounts.get_mut(key).expect("the key exists");
            let endpoint = account.endpoints.get_mut(&id).expect("listed");
            endpoint.runtime.step(&id, &scaling, at, &mut self.capacity);
        }
    }

    /// Runs the serverless step of every endpoint now, after something outside the clock
    /// changed (capacity set by the admin route, say).
    pub fn step_all(&mut self) {
        let keys: Vec<String> = self.accounts.keys().cloned().collect();
        for key in keys {
            self.step_endpoints(&key, self.now);
        }
    }

    /// Queues a job on an endpoint (`POST /v2/{id}/run`); returns the job id.
    pub fn submit_job(&mut self, key: &str, endpoint_id: &str, input: Value) -> Outcome<String> {
        let job_id = format!("{}-{}", self.ids.id(8), self.ids.id(4));
        let now = self.now;
        let timing = self.timing;
        let endpoint = self
            .account_mut(key)?
            .endpoints
            .get_mut(endpoint_id)
            .ok_or_else(|| Refusal::not_found("endpoint"))?;
        endpoint.runtime.submit(job_id.clone(), input, now, &timing);
        self.step_endpoints(key, now);
        Ok(job_id)
    }

    /// A job of an endpoint.
    pub fn job(&self, key: &str, endpoint_id: &str, job_id: &str) -> Option<&Job> {
        self.accounts
            .get(key)?
            .endpoints
            .get(endpoint_id)?
            .runtime
            .jobs
            .get(job_id)
    }

    /// USD/h of a network volume.
    pub fn volume_per_hour(&self, volume: &Volume) -> Decimal {
        network_volume_per_month(volume.size, &self.prices.storage) / Decimal::from(HOURS_PER_MONTH)
    }

    /// What an account spends per hour now (`currentSpendPerHr`).
    pub fn spend_per_hour(&self, key: &str) -> Decimal {
        let Some(account) = self.accounts.get(key) else {
            return Decimal::ZERO;
        };
        let pods: Decimal = account
            .pods
            .values()
            .map(|p| self.pod_compute_per_hour(p) + self.pod_disk_per_hour(p))
            .sum();
        let endpoints: Decimal = account
            .endpoints
            .values()
            .map(|e| self.endpoint_per_hour(e))
            .sum();
        let volumes: Decimal = account
            .volumes
            .values()
            .map(|v| self.volume_per_hour(v))
            .sum();
        pods + endpoints + volumes
    }

    // ---- the clock -------------------------------------------------------------------------

    /// Moves the clock to `to`, billing every account and applying what happens on the way.
    /// All accounts move in lockstep from event to event, since they share GPU capacity.
    pub fn advance_to(&mut self, to: Millis) {
        let keys: Vec<String> = self.accounts.keys().cloned().collect();
        while self.now < to {
            let now = self.now;
            let next = keys
                .iter()
                .filter_map(|key| self.next_account_event(key, now))
                .chain(keys.iter().flat_map(|key| {
                    self.accounts[key]
                        .endpoints
                        .values()
                        .filter_map(|e| e.runtime.next_event(&self.endpoint_scaling(e), now))
                        .collect::<Vec<_>>()
                }))
                .min()
                .map_or(to, |t| t.min(to));
            for key in &keys {
                self.bill(key, now, next);
            }
            self.now = next;
            for key in &keys {
                self.apply_account_events(key, next);
                self.step_endpoints(key, next);
            }
            self.finish_boots();
        }
    }

    /// The next instant at which the account's rate changes by itself: its balance reaching
    /// zero, or the zero-balance grace ending.
    fn next_account_event(&self, key: &str, at: Millis) -> Option<Millis> {
        let account = &self.accounts[key];
        let rate = self.spend_per_hour(key);
        let mut next: Option<Millis> = None;
        if account.zero_since.is_none() && rate > Decimal::ZERO && account.balance > Decimal::ZERO {
            let ms = (account.balance / per_ms(rate)).ceil();
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

    /// Bills one account from `from` to `to` at its current rates, split by hour bucket.
    fn bill(&mut self, key: &str, from: Millis, to: Millis) {
        let account = &self.accounts[key];
        let mut rates: Vec<((Billed, String), Amounts)> = Vec::new();
        for pod in account.pods.values() {
            let amounts = Amounts {
                gpu: per_ms(self.pod_compute_per_hour(pod)),
                disk: per_ms(self.pod_disk_per_hour(pod)),
                storage: Decimal::ZERO,
            };
            rates.push(((Billed::Pod, pod.id.clone()), amounts));
        }
        for endpoint in account.endpoints.values() {
            let amounts = Amounts {
                gpu: per_ms(self.endpoint_per_hour(endpoint)),
                ..Amounts::default()
            };
            rates.push(((Billed::Serverless, endpoint.id.clone()), amounts));
        }
        for volume in account.volumes.values() {
            let amounts = Amounts {
                storage: per_ms(self.volume_per_hour(volume)),
                ..Amounts::default()
            };
            rates.push(((Billed::NetworkVolume, volume.id.clone()), amounts));
        }
        let account = self.accounts.get_mut(key).expect("the key exists");
        let mut at = from;
        while at < to {
            let bucket = at / MS_PER_HOUR;
            let end = ((bucket + 1) * MS_PER_HOUR).min(to);
            let ms = Decimal::from(end - at);
            for ((kind, id), rate) in &rates {
                if rate.total().is_zero() {
                    continue;
                }
                let line = account
                    .ledger
                    .entry((bucket, *kind, id.clone()))
                    .or_default();
                line.gpu += rate.gpu * ms;
                line.disk += rate.disk * ms;
                line.storage += rate.storage * ms;
                account.balance -= rate.total() * ms;
            }
            at = end;
        }
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
                let gpus = endpoint.gpu["count"].as_u64().unwrap_or(1) as u32;
                endpoint.workers.min = 0;
                endpoint.runtime.stop_all(gpus, &mut self.capacity);
            }
        }
        if let (Some(since), Some(grace)) = (account.zero_since, self.volume_grace_hours)
            && at >= since + grace * MS_PER_HOUR
        {
            account.volumes.clear();
        }
    }

    fn finish_boots(&mut self) {
        let now = self.now;
        for account in self.accounts.values_mut() {
            for pod in account.pods.values_mut() {
                if let Some(done) = pod.boot_done_at.filter(|t| *t <= now) {
                    pod.status = PodStatus::Running;
                    pod.started_at = Some(done);
                    pod.boot_done_at = None;
                }
            }
        }
    }

    // ---- money rules -------------------------------------------------------------------------

    /// Refuses a create or start (or a raise) when the balance cannot cover one hour of
    /// everything running and provisioning plus the new cost, or when it would take the
    /// account past its spend limit. Both answer 402.
    fn check_money(&self, key: &str, new_per_hour: Decimal) -> Outcome<()> {
        let account = &self.accounts[key];
        let spend = self.spend_per_hour(key);
        if account.balance < spend + new_per_hour {
            return Err(Refusal::new(
                402,
                format!(
                    "Insufficient balance: deploying needs one hour of credit for everything running ({} USD/h now + {} USD/h new), the balance is {} USD",
                    spend.round_dp(4),
                    new_per_hour.round_dp(4),
                    account.balance.round_dp(4)
                ),
            ));
        }
        if spend + new_per_hour > account.spend_limit {
            return Err(Refusal::new(
                402,
                format!(
                    "Spend limit exceeded: {} USD/h now plus {} USD/h would pass the account's limit of {} USD/h",
                    spend.round_dp(4),
                    new_per_hour.round_dp(4),
                    account.spend_limit
                ),
            ));
        }
        Ok(())
    }

    // ---- pods ----------------------------------------------------------------------------------

    /// `POST /v2/pods` (body already valid against the spec).
    pub fn create_pod(&mut self, key: &str, body: &Value) -> Outcome<String> {
        self.account_mut(key)?;
        if body.get("cpu").is_some() {
            return Err(Refusal::new(400, "CPU pods are not simulated: send gpu"));
        }
        let gpu = body
            .get("gpu")
            .ok_or_else(|| Refusal::new(400, "exactly one of gpu or cpu must be set"))?;
        if body.get("image").is_none() && body.get("templateId").is_none() {
            return Err(Refusal::new(
                400,
                "image is required unless templateId is set",
            ));
        }
        let gpu_type = gpu["id"].as_str().unwrap_or_default().to_string();
        let gpu_count = gpu["count"].as_u64().unwrap_or(1) as u32;
        let allowed = gpu["allowedCudaVersions"].as_array().map_or(0, Vec::len);
        if allowed > 0 && gpu.get("minCudaVersion").is_some() {
            return Err(Refusal::new(
                400,
                "allowedCudaVersions and minCudaVersion are mutually exclusive",
            ));
        }
        let cloud = body["cloud"].as_str().unwrap_or("SECURE").to_string();
        if self
            .prices
            .pod_per_hour(&gpu_type, cloud == "COMMUNITY")
            .is_err()
        {
            return Err(Refusal::new(
                400,
                format!("GPU type {gpu_type:?} is not offered on {cloud} cloud"),
            ));
        }
        let mounts = &body["mounts"];
        if mounts.get("persistent").is_some() && mounts.get("network").is_some() {
            return Err(Refusal::new(
                400,
                "mounts: at most one of persistent or network",
            ));
        }
        let mount = self.mount_from(key, mounts)?;
        let mut container = Container {
            disk: DEFAULT_CONTAINER_DISK_GB,
            ..Container::default()
        };
        container.apply(body);
        self.check_registry(key, container.registry.as_deref())?;

        let wanted: Vec<String> = match body["dataCenterIds"].as_array() {
            Some(list) if !list.is_empty() => list
                .iter()
                .filter_map(|d| d.as_str().map(String::from))
                .collect(),
            _ => DATA_CENTERS.iter().map(|d| d.to_string()).collect(),
        };
        // A network volume pins the pod to the volume's data centre.
        let candidates: Vec<String> = match &mount {
            Some(Mount::Network { volume_id, .. }) => {
                let dc = self.accounts[key].volumes[volume_id].data_center.clone();
                wanted.into_iter().filter(|d| *d == dc).collect()
            }
            _ => wanted,
        };
        let mut pod = Pod {
            id: String::new(),
            name: body["name"].as_str().unwrap_or_default().to_string(),
            container,
            gpu_type,
            gpu_count,
            cloud,
            data_center: String::new(),
            mount,
            status: PodStatus::Provisioning,
            locked: body["locked"].as_bool().unwrap_or(false),
            global_networking: body["globalNetworking"].as_bool().unwrap_or(false),
            created_at: self.now,
            started_at: Some(self.now),
            boot_done_at: Some(self.now + self.boot_seconds * 1000),
            stopped_at: None,
            resets: 0,
        };
        let cost = self.pod_compute_per_hour(&pod) + self.pod_disk_per_hour(&pod);
        self.check_money(key, cost)?;
        let placed = candidates
            .into_iter()
            .find(|dc| {
                self.capacity
                    .take_gpus(&pod.gpu_type, dc, &pod.cloud, pod.gpu_count)
            })
            .ok_or_else(|| Refusal::new(400, CAPACITY_MESSAGE))?;
        pod.data_center = placed;
        pod.id = self.ids.id(14);
        let id = pod.id.clone();
        self.accounts
            .get_mut(key)
            .expect("checked")
            .pods
            .insert(id.clone(), pod);
        Ok(id)
    }

    fn mount_from(&self, key: &str, mounts: &Value) -> Outcome<Option<Mount>> {
        if let Some(p) = mounts.get("persistent") {
            return Ok(Some(Mount::Persistent {
                size: p["size"].as_u64().unwrap_or(10) as u32,
                path: p["path"].as_str().unwrap_or("/workspace").to_string(),
            }));
        }
        if let Some(list) = mounts.get("network").and_then(Value::as_array) {
            let Some(first) = list.first() else {
                return Err(Refusal::new(400, "mounts.network must not be empty"));
            };
            let volume_id = first["volumeId"].as_str().unwrap_or_default().to_string();
            if !self.accounts[key].volumes.contains_key(&volume_id) {
                return Err(Refusal::new(
                    400,
                    format!("network volume {volume_id} not found"),
                ));
            }
            return Ok(Some(Mount::Network {
                volume_id,
                path: first["path"].as_str().unwrap_or_default().to_string(),
            }));
        }
        Ok(None)
    }

    fn check_registry(&self, key: &str, registry: Option<&str>) -> Outcome<()> {
        match registry {
            Some(id) if !self.accounts[key].registries.contains_key(id) => {
                Err(Refusal::new(400, format!("registry {id} not found")))
            }
            _ => Ok(()),
        }
    }

    /// A pod as REST v2 renders it, ready to serialize. Borrowed and typed: listing 10,000
    /// pods is dominated by rendering, and typed serialization is an order of magnitude
    /// faster than building `Value` trees.
    pub fn pod_view<'p>(&self, pod: &'p Pod) -> PodView<'p> {
        let mut cost = self.pod_compute_per_hour(pod);
        if pod.status.holds_gpus() {
            cost += self.pod_disk_per_hour(pod);
        }
        let mounts = match &pod.mount {
            Some(Mount::Persistent { size, path }) => MountsView {
                persistent: Some(PersistentView { size: *size, path }),
                network: None,
            },
            Some(Mount::Network { volume_id, path }) => MountsView {
                persistent: None,
                network: Some([NetworkView { volume_id, path }]),
            },
            None => MountsView::default(),
        };
        let runtime = (pod.status == PodStatus::Running).then(|| RuntimeView {
            uptime: (self.now - pod.started_at.unwrap_or(self.now)) / 1000,
            gpus: [],
            ports: pod
                .container
                .ports
                .iter()
                .filter_map(|p| p.split_once('/'))
                .map(|(port, kind)| {
                    let private: u64 = port.parse().unwrap_or(0);
                    PortView {
                        private,
                        public: 10000 + private,
                        kind,
                        ip: "127.0.0.1",
                    }
                })
                .collect(),
        });
        PodView {
            id: &pod.id,
            name: &pod.name,
            status: pod.status.as_str(),
            actions: pod.status.actions(),
            image: &pod.container.image,
            args: &pod.container.args,
            disk: pod.container.disk,
            ports: &pod.container.ports,
            env: &pod.container.env,
            registry: pod.container.registry.as_deref(),
            mounts,
            gpu: GpuView {
                id: &pod.gpu_type,
                count: pod.gpu_count,
            },
            cloud: &pod.cloud,
            data_center_id: &pod.data_center,
            cuda_version: "12.8",
            ssh: SshView {
                proxy: None,
                direct: None,
            },
            template: None,
            cost: cost.round_dp(6).to_f64().unwrap_or(0.0),
            locked: pod.locked,
            global_networking: GlobalNetworkingView {
                enabled: pod.global_networking,
            },
            runtime,
            created_at: timestamp(pod.created_at),
            started_at: pod
                .started_at
                .filter(|_| pod.status.holds_gpus())
                .map(timestamp),
        }
    }

    /// A pod as REST v2 renders it, as JSON.
    pub fn pod_json(&self, pod: &Pod) -> Value {
        serde_json::to_value(self.pod_view(pod)).unwrap_or(Value::Null)
    }

    /// `PATCH /v2/pods/{id}`: mount kind and volume id fixed, volume grows only, container
    /// disk either way; a container change resets the pod (container disk wiped).
    pub fn update_pod(&mut self, key: &str, id: &str, body: &Value) -> Outcome<()> {
        let registry = body["registry"].as_str().map(String::from);
        self.check_registry(key, registry.as_deref())?;
        let now = self.now;
        let account = self.account_mut(key)?;
        let pod = account
            .pods
            .get_mut(id)
            .ok_or_else(|| Refusal::not_found("pod"))?;
        let mut next = pod.clone();
        if let Some(mounts) = body.get("mounts").and_then(Value::as_object) {
            if let Some(network) = mounts.get("network") {
                let list = network.as_array().cloned().unwrap_or_default();
                let Some(first) = list.first() else {
                    return Err(Refusal::new(
                        400,
                        "mounts.network: clearing mounts is not supported",
                    ));
                };
                match &mut next.mount {
                    Some(Mount::Network { volume_id, path }) => {
                        if first["volumeId"].as_str() != Some(volume_id.as_str()) {
                            return Err(Refusal::new(
                                400,
                                "mounts.network[0].volumeId is immutable",
                            ));
                        }
                        *path = first["path"].as_str().unwrap_or_default().to_string();
                    }
                    _ => {
                        return Err(Refusal::new(
                            400,
                            "mounts: the mount kind is fixed at create",
                        ));
                    }
                }
            }
            if let Some(persistent) = mounts.get("persistent") {
                match &mut next.mount {
                    Some(Mount::Persistent { size, path }) => {
                        let new_size = persistent["size"].as_u64().unwrap_or(0) as u32;
                        if new_size < *size {
                            return Err(Refusal::new(
                                400,
                                format!(
                                    "mounts.persistent.size can only grow: {new_size} GB is below the current {size} GB"
                                ),
                            ));
                        }
                        *size = new_size;
                        *path = persistent["path"].as_str().unwrap_or_default().to_string();
                    }
                    _ => {
                        return Err(Refusal::new(
                            400,
                            "mounts: the mount kind is fixed at create",
                        ));
                    }
                }
            }
        }
        let container_changed = next.container.apply(body);
        if let Some(name) = body["name"].as_str() {
            next.name = name.to_string();
        }
        if let Some(locked) = body["locked"].as_bool() {
            next.locked = locked;
        }
        if let Some(global) = body["globalNetworking"].as_bool() {
            next.global_networking = global;
        }
        let volume_changed = next.mount != pod.mount;
        if (container_changed || volume_changed) && next.status == PodStatus::Running {
            // Editing a running pod resets it: the container is recreated.
            next.resets += 1;
            next.started_at = Some(now);
        }
        *pod = next;
        Ok(())
    }

    /// `POST /v2/pods/{id}/action`; returns false when the pod is gone (terminate).
    pub fn pod_action(&mut self, key: &str, id: &str, action: &str) -> Outcome<bool> {
        let now = self.now;
        let boot = self.boot_seconds * 1000;
        let account = self
            .accounts
            .get(key)
            .ok_or_else(|| Refusal::new(403, "access denied"))?;
        let pod = account
            .pods
            .get(id)
            .ok_or_else(|| Refusal::not_found("pod"))?
            .clone();
        if !pod.status.actions().contains(&action) {
            return Err(Refusal::new(
                409,
                format!(
                    "cannot {action} a pod in status {}; allowed: {}",
                    pod.status.as_str(),
                    pod.status.actions().join(", ")
                ),
            ));
        }
        match action {
            "stop" => {
                if pod.locked {
                    return Err(Refusal::new(
                        409,
                        "the pod is locked: unlock it before stopping",
                    ));
                }
                self.capacity.release_gpus(
                    &pod.gpu_type,
                    &pod.data_center,
                    &pod.cloud,
                    pod.gpu_count,
                );
                let pod = self.pod_mut(key, id)?;
                pod.status = PodStatus::Exited;
                pod.stopped_at = Some(now);
                pod.boot_done_at = None;
                Ok(true)
            }
            "start" => {
                let mut running = pod.clone();
                running.status = PodStatus::Starting;
                let cost = self.pod_compute_per_hour(&running) + self.pod_disk_per_hour(&running)
                    - self.pod_disk_per_hour(&pod);
                self.check_money(key, cost)?;
                // A stopped pod keeps its host: it starts there or not at all.
                if !self.capacity.take_gpus(
                    &pod.gpu_type,
                    &pod.data_center,
                    &pod.cloud,
                    pod.gpu_count,
                ) {
                    return Err(Refusal::new(
                        400,
                        "There are not enough free GPUs on the host machine to start this pod.",
                    ));
                }
                let pod = self.pod_mut(key, id)?;
                pod.status = PodStatus::Starting;
                pod.started_at = Some(now);
                pod.boot_done_at = Some(now + boot);
                pod.stopped_at = None;
                Ok(true)
            }
            "restart" => {
                let pod = self.pod_mut(key, id)?;
                pod.resets += 1;
                pod.started_at = Some(now);
                Ok(true)
            }
            _ => {
                self.delete_pod(key, id)?;
                Ok(false)
            }
        }
    }

    fn pod_mut(&mut self, key: &str, id: &str) -> Outcome<&mut Pod> {
        self.account_mut(key)?
            .pods
            .get_mut(id)
            .ok_or_else(|| Refusal::not_found("pod"))
    }

    /// `DELETE /v2/pods/{id}`: the pod volume is destroyed; a network volume only detached.
    pub fn delete_pod(&mut self, key: &str, id: &str) -> Outcome<()> {
        let pod = self
            .account_mut(key)?
            .pods
            .remove(id)
            .ok_or_else(|| Refusal::not_found("pod"))?;
        if pod.status.holds_gpus() {
            self.capacity
                .release_gpus(&pod.gpu_type, &pod.data_center, &pod.cloud, pod.gpu_count);
        }
        Ok(())
    }

    // ---- endpoints -------------------------------------------------------------------------

    fn check_endpoint_rules(&self, key: &str, endpoint: &Endpoint, others_max: u32) -> Outcome<()> {
        if endpoint.scaling["type"] == "REQUEST_COUNT" && endpoint.workers.idle_timeout_was_set() {
            let mut refusal = Refusal::new(422, "Request validation failed.");
            refusal
                .errors
                .push("$.workers.idleTimeout: not allowed with REQUEST_COUNT scaling".to_string());
            return Err(refusal);
        }
        if endpoint.workers.min > endpoint.workers.max {
            return Err(Refusal::new(400, "workers.min must not exceed workers.max"));
        }
        for pool in endpoint.gpu["pools"].as_array().into_iter().flatten() {
            let pool = pool.as_str().unwrap_or_default();
            let known = self
                .prices
                .gpu_types()
                .any(|g| g.pool.as_deref() == Some(pool));
            if !known {
                return Err(Refusal::new(400, format!("unknown GPU pool {pool:?}")));
            }
        }
        for volume in &endpoint.network_volumes {
            if !self.accounts[key].volumes.contains_key(volume) {
                return Err(Refusal::new(
                    400,
                    format!("network volume {volume} not found"),
                ));
            }
        }
        let quota = self.accounts[key].worker_quota();
        if others_max + endpoint.workers.max > quota {
            return Err(Refusal::new(
                400,
                format!(
                    "max workers across endpoints would be {}, above the account's quota of {quota} at this balance",
                    others_max + endpoint.workers.max
                ),
            ));
        }
        Ok(())
    }

    /// `POST /v2/serverless`.
    pub fn create_endpoint(&mut self, key: &str, body: &Value) -> Outcome<String> {
        self.account_mut(key)?;
        if body.get("cpu").is_some() {
            return Err(Refusal::new(
                400,
                "CPU endpoints are not simulated: send gpu",
            ));
        }
        let mut container = Container {
            disk: DEFAULT_CONTAINER_DISK_GB,
            ..Container::default()
        };
        container.apply(body);
        self.check_registry(key, container.registry.as_deref())?;
        let workers = &body["workers"];
        let mut endpoint = Endpoint {
            id: String::new(),
            name: body["name"].as_str().unwrap_or_default().to_string(),
            endpoint_type: body["type"].as_str().unwrap_or("QUEUE").to_string(),
            container,
            gpu: body
                .get("gpu")
                .cloned()
                .unwrap_or(json!({"pools": ["AMPERE_16"]})),
            workers: Workers {
                min: workers["min"].as_u64().unwrap_or(0) as u32,
                max: workers["max"].as_u64().unwrap_or(3) as u32,
                idle_timeout: workers["idleTimeout"]
                    .as_u64()
                    .map_or(Workers::UNSET_IDLE, |v| v as u32),
            },
            scaling: body["scaling"].clone(),
            data_centers: strings(&body["dataCenterIds"]),
            network_volumes: strings(&body["networkVolumes"]),
            // Observed: 0 when omitted, despite the documented 300000 (FACTS 2.2).
            timeout: body["timeout"].as_u64().unwrap_or(0),
            flashboot: body["flashboot"].as_str().unwrap_or("OFF").to_string(),
            created_at: self.now,
            version: 1,
            runtime: Runtime::default(),
        };
        if endpoint.gpu.get("count").is_none() {
            endpoint.gpu["count"] = json!(1);
        }
        let others: u32 = self.accounts[key]
            .endpoints
            .values()
            .map(|e| e.workers.max)
            .sum();
        self.check_endpoint_rules(key, &endpoint, others)?;
        self.check_money(key, self.endpoint_floor_per_hour(&endpoint))?;
        endpoint.id = self.ids.id(14);
        let id = endpoint.id.clone();
        self.accounts
            .get_mut(key)
            .expect("checked")
            .endpoints
            .insert(id.clone(), endpoint);
        self.step_endpoints(key, self.now);
        Ok(id)
    }

    /// `PATCH /v2/serverless/{id}`: scaling and workers apply at once; a container change
    /// makes a new release (version + 1).
    pub fn update_endpoint(&mut self, key: &str, id: &str, body: &Value) -> Outcome<()> {
        let account = self
            .accounts
            .get(key)
            .ok_or_else(|| Refusal::new(403, "access denied"))?;
        let current = account
            .endpoints
            .get(id)
            .ok_or_else(|| Refusal::not_found("endpoint"))?;
        let mut next = current.clone();
        if body.get("cpu").is_some() {
            return Err(Refusal::new(
                400,
                "computeType cannot change: this endpoint runs on GPUs",
            ));
        }
        let container_changed = next.container.apply(body);
        if let Some(name) = body["name"].as_str() {
            next.name = name.to_string();
        }
        if let Some(gpu) = body.get("gpu").and_then(Value::as_object) {
            for (k, v) in gpu {
                next.gpu[k] = v.clone();
            }
        }
        if let Some(workers) = body.get("workers") {
            if let Some(v) = workers["min"].as_u64() {
                next.workers.min = v as u32;
            }
            if let Some(v) = workers["max"].as_u64() {
                next.workers.max = v as u32;
            }
            if let Some(v) = workers["idleTimeout"].as_u64() {
                next.workers.idle_timeout = v as u32;
            }
        }
        if let Some(scaling) = body.get("scaling") {
            next.scaling = scaling.clone();
        }
        if body.get("dataCenterIds").is_some() {
            next.data_centers = strings(&body["dataCenterIds"]);
        }
        if body.get("networkVolumes").is_some() {
            next.network_volumes = strings(&body["networkVolumes"]);
        }
        if let Some(v) = body["timeout"].as_u64() {
            next.timeout = v;
        }
        if let Some(v) = body["flashboot"].as_str() {
            next.flashboot = v.to_string();
        }
        let others: u32 = account
            .endpoints
            .values()
            .filter(|e| e.id != id)
            .map(|e| e.workers.max)
            .sum();
        self.check_endpoint_rules(key, &next, others)?;
        let added = self.endpoint_floor_per_hour(&next) - self.endpoint_floor_per_hour(current);
        if added > Decimal::ZERO {
            self.check_money(key, added)?;
        }
        if container_changed || body.get("gpu").is_some() || body.get("networkVolumes").is_some() {
            next.version += 1;
        }
        self.account_mut(key)?
            .endpoints
            .insert(id.to_string(), next);
        self.step_endpoints(key, self.now);
        Ok(())
    }

    /// An endpoint as REST v2 renders it.
    pub fn endpoint_json(&self, endpoint: &Endpoint) -> Value {
        serde_json::to_value(Self::endpoint_view(endpoint)).unwrap_or(Value::Null)
    }

    /// An endpoint as REST v2 renders it, typed: a list of 10,000 endpoints is dominated by
    /// rendering, and typed serialization is an order of magnitude faster than `Value` trees.
    pub fn endpoint_view(endpoint: &Endpoint) -> EndpointView<'_> {
        let mut gpu = endpoint.gpu.clone();
        if gpu.get("allowedCudaVersions").is_none() {
            gpu["allowedCudaVersions"] = json!([]);
        }
        if gpu.get("minCudaVersion").is_none() {
            gpu["minCudaVersion"] = Value::Null;
        }
        let container = &endpoint.container;
        EndpointView {
            image: &container.image,
            args: &container.args,
            disk: container.disk,
            ports: &container.ports,
            env: &container.env,
            registry: container.registry.as_deref(),
            id: &endpoint.id,
            name: &endpoint.name,
            endpoint_type: &endpoint.endpoint_type,
            gpu,
            workers: WorkersView {
                min: endpoint.workers.min,
                max: endpoint.workers.max,
                idle_timeout: (endpoint.workers.idle_timeout_was_set()
                    || endpoint.scaling["type"] != "REQUEST_COUNT")
                    .then(|| endpoint.workers.idle_timeout_or_default()),
            },
            scaling: &endpoint.scaling,
            data_center_ids: &endpoint.data_centers,
            network_volumes: &endpoint.network_volumes,
            timeout: endpoint.timeout,
            flashboot: &endpoint.flashboot,
            created_at: timestamp(endpoint.created_at),
        }
    }

    /// `GET /v2/serverless/{id}/workers`.
    pub fn workers_json(&self, endpoint: &Endpoint) -> Value {
        let runtime = &endpoint.runtime;
        let workers: Vec<Value> = runtime
            .workers
            .iter()
            .map(|w| {
                let (gpu, dc) = w.placed.clone().unzip();
                json!({
                    "id": w.id,
                    "status": w.status(),
                    "isStale": w.version < endpoint.version,
                    "version": w.version,
                    "gpuCount": endpoint.gpu["count"].as_u64().unwrap_or(1),
                    "image": endpoint.container.image,
                    "uptimeSeconds": (self.now - w.started_at) / 1000,
                    "gpuTypeId": gpu,
                    "dataCenterId": dc,
                    "startedAt": timestamp(w.started_at),
                })
            })
            .collect();
        let count = |s: &str| runtime.workers_in(s);
        json!({
            "workers": workers,
            "summary": {
                "running": count("RUNNING"), "idle": count("IDLE"), "initializing": count("INITIALIZING"),
                "throttled": count("THROTTLED"), "unhealthy": 0, "total": runtime.workers.len(),
            },
            "endpointVersion": endpoint.version,
        })
    }

    /// `GET /v2/{id}/health` on the serverless host: the live counters.
    pub fn health_json(endpoint: &Endpoint) -> Value {
        let runtime = &endpoint.runtime;
        let count = |s: &str| runtime.workers_in(s);
        json!({
            "jobs": {"completed": runtime.completed, "failed": 0, "inProgress": runtime.in_progress(),
                     "inQueue": runtime.in_queue(), "retried": 0},
            "workers": {"idle": count("IDLE"), "initializing": count("INITIALIZING"), "ready": count("IDLE"),
                        "running": count("RUNNING"), "throttled": count("THROTTLED"), "unhealthy": 0},
        })
    }

    /// `DELETE /v2/serverless/{id}`: workers stop, queued jobs are cancelled.
    pub fn delete_endpoint(&mut self, key: &str, id: &str) -> Outcome<()> {
        let mut endpoint = self
            .account_mut(key)?
            .endpoints
            .remove(id)
            .ok_or_else(|| Refusal::not_found("endpoint"))?;
        let gpus = endpoint.gpu["count"].as_u64().unwrap_or(1) as u32;
        endpoint.runtime.stop_all(gpus, &mut self.capacity);
        Ok(())
    }

    // ---- network volumes ---------------------------------------------------------------------

    /// `POST /v2/network-volumes`.
    pub fn create_volume(&mut self, key: &str, body: &Value) -> Outcome<String> {
        self.account_mut(key)?;
        let dc = body["dataCenter"].as_str().unwrap_or_default().to_string();
        if !DATA_CENTERS.contains(&dc.as_str()) {
            return Err(Refusal::new(
                400,
                format!(
                    "data center {dc:?} does not support network volumes; use one of: {}",
                    DATA_CENTERS.join(", ")
                ),
            ));
        }
        let volume = Volume {
            id: self.ids.id(10),
            name: body["name"].as_str().unwrap_or_default().to_string(),
            size: body["size"].as_u64().unwrap_or(10) as u32,
            data_center: dc,
            volume_type: body["type"].as_str().unwrap_or("STANDARD").to_string(),
        };
        let id = volume.id.clone();
        self.account_mut(key)?.volumes.insert(id.clone(), volume);
        Ok(id)
    }

    /// `PATCH /v2/network-volumes/{id}`: name, and size that only grows.
    pub fn update_volume(&mut self, key: &str, id: &str, body: &Value) -> Outcome<()> {
        let volume = self
            .account_mut(key)?
            .volumes
            .get_mut(id)
            .ok_or_else(|| Refusal::not_found("network volume"))?;
        if let Some(size) = body["size"].as_u64() {
            if (size as u32) < volume.size {
                return Err(Refusal::new(
                    400,
                    format!(
                        "size can only grow: {size} GB is below the current {} GB",
                        volume.size
                    ),
                ));
            }
            volume.size = size as u32;
        }
        if let Some(name) = body["name"].as_str() {
            volume.name = name.to_string();
        }
        Ok(())
    }

    /// `DELETE /v2/network-volumes/{id}`: refused while a pod or endpoint uses it.
    pub fn delete_volume(&mut self, key: &str, id: &str) -> Outcome<()> {
        let account = self.account_mut(key)?;
        if !account.volumes.contains_key(id) {
            return Err(Refusal::not_found("network volume"));
        }
        let used_by_pod = account
            .pods
            .values()
            .any(|p| matches!(&p.mount, Some(Mount::Network { volume_id, .. }) if volume_id == id));
        let used_by_endpoint = account
            .endpoints
            .values()
            .any(|e| e.network_volumes.iter().any(|v| v == id));
        if used_by_pod || used_by_endpoint {
            return Err(Refusal::new(
                400,
                "You must remove this network volume from all pods before deleting it.",
            ));
        }
        account.volumes.remove(id);
        Ok(())
    }

    /// A volume as REST v2 renders it.
    pub fn volume_json(volume: &Volume) -> Value {
        json!({"id": volume.id, "name": volume.name, "size": volume.size, "dataCenter": volume.data_center, "type": volume.volume_type})
    }

    // ---- registries ---------------------------------------------------------------------------

    /// `POST /v2/registries`: names are unique; credentials are write-only.
    pub fn create_registry(&mut self, key: &str, body: &Value) -> Outcome<String> {
        let name = body["name"].as_str().unwrap_or_default().to_string();
        let id = format!("c{}", self.ids.id(24));
        let account = self.account_mut(key)?;
        if account.registries.values().any(|r| r.name == name) {
            return Err(Refusal::new(
                400,
                format!("a registry named {name:?} already exists"),
            ));
        }
        account.registries.insert(
            id.clone(),
            Registry {
                id: id.clone(),
                name,
            },
        );
        Ok(id)
    }

    /// `DELETE /v2/registries/{id}`: refused while a pod uses it.
    pub fn delete_registry(&mut self, key: &str, id: &str) -> Outcome<()> {
        let account = self.account_mut(key)?;
        if !account.registries.contains_key(id) {
            return Err(Refusal::not_found("registry"));
        }
        if account
            .pods
            .values()
            .any(|p| p.container.registry.as_deref() == Some(id))
        {
            return Err(Refusal::new(400, "the registry is used by a pod"));
        }
        account.registries.remove(id);
        Ok(())
    }
}

impl Workers {
    /// Marks an idle timeout the request did not set.
    pub const UNSET_IDLE: u32 = 0;
    /// RunPod's default idle timeout (v2 create default).
    pub const DEFAULT_IDLE: u32 = 10;

    fn idle_timeout_was_set(&self) -> bool {
        self.idle_timeout != Self::UNSET_IDLE
    }

    /// The idle timeout in force.
    pub fn idle_timeout_or_default(&self) -> u32 {
        if self.idle_timeout_was_set() {
            self.idle_timeout
        } else {
            Self::DEFAULT_IDLE
        }
    }
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

/// An endpoint as REST v2 renders it (`Endpoint` in the spec).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView<'e> {
    image: &'e str,
    args: &'e str,
    disk: u32,
    ports: &'e [String],
    env: &'e BTreeMap<String, String>,
    registry: Option<&'e str>,
    id: &'e str,
    name: &'e str,
    #[serde(rename = "type")]
    endpoint_type: &'e str,
    gpu: Value,
    workers: WorkersView,
    scaling: &'e Value,
    data_center_ids: &'e [String],
    network_volumes: &'e [String],
    timeout: u64,
    flashboot: &'e str,
    created_at: String,
}

/// An endpoint's workers as REST v2 renders them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkersView {
    min: u32,
    max: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    idle_timeout: Option<u32>,
}

/// A pod as REST v2 renders it (`Pod` in the spec).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodView<'p> {
    id: &'p str,
    name: &'p str,
    status: &'static str,
    actions: &'static [&'static str],
    image: &'p str,
    args: &'p str,
    disk: u32,
    ports: &'p [String],
    env: &'p BTreeMap<String, String>,
    registry: Option<&'p str>,
    mounts: MountsView<'p>,
    gpu: GpuView<'p>,
    cloud: &'p str,
    data_center_id: &'p str,
    cuda_version: &'static str,
    ssh: SshView,
    template: Option<&'p str>,
    cost: f64,
    locked: bool,
    global_networking: GlobalNetworkingView,
    runtime: Option<RuntimeView<'p>>,
    created_at: String,
    started_at: Option<String>,
}

#[derive(Debug, Default, Serialize)]
struct MountsView<'p> {
    #[serde(skip_serializing_if = "Option::is_none")]
    persistent: Option<PersistentView<'p>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<[NetworkView<'p>; 1]>,
}

#[derive(Debug, Serialize)]
struct PersistentView<'p> {
    size: u32,
    path: &'p str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NetworkView<'p> {
    volume_id: &'p str,
    path: &'p str,
}

#[derive(Debug, Serialize)]
struct GpuView<'p> {
    id: &'p str,
    count: u32,
}

#[derive(Debug, Serialize)]
struct SshView {
    proxy: Option<()>,
    direct: Option<()>,
}

#[derive(Debug, Serialize)]
struct GlobalNetworkingView {
    enabled: bool,
}

#[derive(Debug, Serialize)]
struct RuntimeView<'p> {
    uptime: u64,
    gpus: [u8; 0],
    ports: Vec<PortView<'p>>,
}

#[derive(Debug, Serialize)]
struct PortView<'p> {
    private: u64,
    public: u64,
    #[serde(rename = "type")]
    kind: &'p str,
    ip: &'static str,
}
