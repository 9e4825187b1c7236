//! What the operator sends to and reads from RunPod, typed from the official REST v2 spec
//! (`openapi-v2.json`), the GraphQL `myself` query and the serverless health route.
//!
//! Requests skip absent (`None`) fields but always send `Some(0)`: a zero must reach the
//! server (RunPod's own CLI once dropped `workers.min: 0` and endpoints kept billing).
//! Responses keep unknown fields out and tolerate missing optional ones.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A pod (`Pod`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `PROVISIONING`, `STARTING`, `RUNNING`, `EXITED`, `ERROR` or `TERMINATED`.
    pub status: String,
    /// The actions legal now.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Image.
    #[serde(default)]
    pub image: String,
    /// Start arguments.
    #[serde(default)]
    pub args: String,
    /// Container disk, GB.
    #[serde(default)]
    pub disk: u32,
    /// Ports.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Registry id.
    #[serde(default)]
    pub registry: Option<String>,
    /// Mounts.
    #[serde(default)]
    pub mounts: Mounts,
    /// GPU, for GPU pods.
    #[serde(default)]
    pub gpu: Option<PodGpu>,
    /// `SECURE` or `COMMUNITY`.
    #[serde(default)]
    pub cloud: String,
    /// Where it runs.
    #[serde(default)]
    pub data_center_id: Option<String>,
    /// USD per hour (0 when stopped).
    #[serde(default)]
    pub cost: f64,
    /// Locked pods refuse stop.
    #[serde(default)]
    pub locked: bool,
    /// When it was created.
    #[serde(default)]
    pub created_at: String,
}

/// A pod's GPU.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct PodGpu {
    /// GPU type id.
    pub id: String,
    /// Count.
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// Mounts: at most one of a pod volume or a network volume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Mounts {
    /// A pod volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<PersistentMount>,
    /// A network volume (one entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Vec<NetworkMount>>,
}

/// A pod volume.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct PersistentMount {
    /// GB, at least 10.
    pub size: u32,
    /// Mount path.
    pub path: String,
}

/// A network volume mount.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkMount {
    /// The volume id.
    pub volume_id: String,
    /// Mount path.
    pub path: String,
}

/// `CreatePodRequest`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePod {
    /// Name (the operator's deterministic name).
    pub name: String,
    /// Image.
    pub image: String,
    /// Start arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<String>,
    /// Container disk, GB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<u32>,
    /// Ports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Environment (carries the owner marker).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Registry id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// `SECURE` or `COMMUNITY`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    /// The one GPU type (v2 takes no fallback list).
    pub gpu: CreateGpu,
    /// Data centres, enforced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data_center_ids: Vec<String>,
    /// Mounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Mounts>,
}

/// The GPU of a pod create.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateGpu {
    /// GPU type id.
    pub id: String,
    /// Count.
    pub count: u32,
    /// Exact CUDA versions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_cuda_versions: Vec<String>,
    /// Lowest CUDA version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_cuda_version: Option<String>,
}

/// `UpdatePodRequest`: only what is set is sent.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePod {
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Image (resets the pod).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Start arguments (resets the pod).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<String>,
    /// Container disk, GB (resets the pod).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<u32>,
    /// Ports (resets the pod).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<String>>,
    /// Environment, replaced whole (resets the pod).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Mounts: the full entry, same kind as at create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Mounts>,
    /// Lock or unlock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
}

/// Pod lifecycle actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PodAction {
    /// Start a stopped pod on its host.
    Start,
    /// Stop: GPUs released, volume kept.
    Stop,
    /// Restart the container.
    Restart,
    /// Delete the pod and its pod volume.
    Terminate,
}

/// A serverless endpoint (`Endpoint`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Image.
    #[serde(default)]
    pub image: String,
    /// Start arguments.
    #[serde(default)]
    pub args: String,
    /// Ports.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Container disk, GB.
    #[serde(default)]
    pub disk: u32,
    /// GPU settings.
    #[serde(default)]
    pub gpu: Option<EndpointGpu>,
    /// Workers.
    pub workers: Workers,
    /// Scaling.
    pub scaling: Scaling,
    /// Data centres.
    #[serde(default)]
    pub data_center_ids: Vec<String>,
    /// Network volume ids.
    #[serde(default)]
    pub network_volumes: Vec<String>,
    /// Execution timeout, ms (0: none).
    #[serde(default)]
    pub timeout: u64,
    /// FlashBoot mode.
    #[serde(default)]
    pub flashboot: String,
}

/// An endpoint's GPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointGpu {
    /// Pool ids, e.g. `AMPERE_80`.
    pub pools: Vec<String>,
    /// GPUs per worker.
    #[serde(default = "one")]
    pub count: u32,
    /// Exact CUDA versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_cuda_versions: Vec<String>,
    /// Lowest CUDA version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cuda_version: Option<String>,
}

/// Worker counts. Every field is sent when set, zeros included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Workers {
    /// Always-on workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    /// Most workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// Idle timeout, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<u32>,
}

/// How the endpoint scales.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Scaling {
    /// Add a worker when a job waited this many seconds.
    #[serde(rename_all = "camelCase")]
    QueueDelay {
        /// Seconds, at least 0.5.
        queue_delay: f64,
    },
    /// One worker per this many queued or running jobs.
    #[serde(rename_all = "camelCase")]
    RequestCount {
        /// Jobs per worker, at least 1.
        request_count: u32,
    },
}

/// `CreateEndpointRequest`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateEndpoint {
    /// Name.
    pub name: String,
    /// `QUEUE`.
    #[serde(rename = "type")]
    pub endpoint_type: String,
    /// Image.
    pub image: String,
    /// Start arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<String>,
    /// Container disk, GB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<u32>,
    /// Environment (carries the owner marker).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Ports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Registry id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// GPUs.
    pub gpu: EndpointGpu,
    /// Workers.
    pub workers: Workers,
    /// Scaling.
    pub scaling: Scaling,
    /// Data centres.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data_center_ids: Vec<String>,
    /// Network volume ids.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network_volumes: Vec<String>,
    /// Execution timeout, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// `OFF`, `FLASHBOOT` or `PRIORITY_FLASHBOOT`; sent explicitly (v2 defaults to `OFF`).
    pub flashboot: String,
}

/// `UpdateEndpointRequest`: only what is set is sent; zeros are sent.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateEndpoint {
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Image (new release).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Environment (new release).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Container disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<u32>,
    /// GPUs (new release).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<EndpointGpu>,
    /// Workers (in place).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<Workers>,
    /// Scaling (in place).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
    /// Data centres.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_center_ids: Option<Vec<String>>,
    /// Network volumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_volumes: Option<Vec<String>>,
    /// Execution timeout, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// FlashBoot mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flashboot: Option<String>,
}

/// `ListEndpointWorkersResponse`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointWorkers {
    /// Workers.
    pub workers: Vec<Worker>,
    /// Counts by status.
    pub summary: WorkerSummary,
    /// The endpoint's release.
    #[serde(default)]
    pub endpoint_version: Option<u64>,
}

/// One worker.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Worker {
    /// Id.
    pub id: String,
    /// `RUNNING`, `IDLE`, `INITIALIZING`, `THROTTLED` or `UNHEALTHY`.
    pub status: String,
    /// Runs an older release.
    pub is_stale: bool,
    /// GPUs.
    pub gpu_count: u32,
}

/// Worker counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct WorkerSummary {
    /// Running a job.
    pub running: u32,
    /// Idle.
    pub idle: u32,
    /// Starting.
    pub initializing: u32,
    /// Waiting for capacity.
    pub throttled: u32,
    /// Crashed.
    pub unhealthy: u32,
    /// All.
    pub total: u32,
}

/// A network volume.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkVolume {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// GB.
    pub size: u32,
    /// Data centre.
    pub data_center: String,
    /// `STANDARD` or `HIGH_PERFORMANCE`.
    #[serde(rename = "type", default)]
    pub volume_type: String,
}

/// `CreateNetworkVolumeRequest`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateNetworkVolume {
    /// Name.
    pub name: String,
    /// GB, 10-4096.
    pub size: u32,
    /// Data centre.
    pub data_center: String,
    /// `STANDARD` or `HIGH_PERFORMANCE`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
}

/// `UpdateNetworkVolumeRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UpdateNetworkVolume {
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// GB, not below the current size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
}

/// A registry credential.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Registry {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
}

/// `CreateRegistryRequest`. The password is never logged: Debug redacts it.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct CreateRegistry {
    /// Unique name.
    pub name: String,
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for CreateRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateRegistry")
            .field("name", &self.name)
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

/// A GPU type in the catalogue.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogGpu {
    /// GPU type id.
    pub id: String,
    /// Serverless pool id.
    #[serde(default)]
    pub pool: Option<String>,
    /// Prices, USD per GPU per hour.
    pub price: CatalogPrice,
}

/// Catalogue prices.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
pub struct CatalogPrice {
    /// Secure Cloud pod.
    pub secure: f64,
    /// Community Cloud pod.
    pub community: f64,
    /// A flex serverless worker of the pool.
    #[serde(default)]
    pub serverless: Option<f64>,
}

/// A data centre.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataCenter {
    /// Id, e.g. `EU-RO-1`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Network volume types offered.
    #[serde(default)]
    pub network_volume_types: Vec<String>,
}

/// What a billing route reports.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Billing {
    /// One record per object and bucket.
    pub records: Vec<serde_json::Value>,
    /// The totals.
    pub metadata: BillingMetadata,
}

/// Billing totals.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingMetadata {
    /// Records.
    pub record_count: u64,
    /// Sums, `totalAmount` first.
    pub totals: BillingTotals,
}

/// Billing sums.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingTotals {
    /// USD.
    pub total_amount: f64,
}

/// A billing window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BillingQuery {
    /// RFC 3339 start.
    pub start_time: Option<String>,
    /// RFC 3339 end.
    pub end_time: Option<String>,
    /// `hour`, `day`, `week`, `month` or `year`.
    pub bucket_size: Option<String>,
    /// One object only: its pod, endpoint or volume id.
    pub id: Option<String>,
}

/// The account, from GraphQL `myself`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// Credit, USD.
    pub client_balance: f64,
    /// Spend now, USD per hour.
    pub current_spend_per_hr: f64,
    /// The account's hourly spend limit, USD.
    pub spend_limit: f64,
}

/// The most money, USD, the operator believes an account figure can be: anything larger (or
/// not finite) is a figure it could not read, and spends nothing on.
const PLAUSIBLE_USD: f64 = 1e12;

fn plausible(value: f64, min: f64) -> Option<rust_decimal::Decimal> {
    use rust_decimal::prelude::FromPrimitive;
    (value.is_finite() && (min..=PLAUSIBLE_USD).contains(&value))
        .then(|| rust_decimal::Decimal::from_f64(value))
        .flatten()
}

impl Account {
    /// The balance, when RunPod's figure is plausible (finite, within ±10^12 USD); `None`
    /// otherwise, and the money rules then start nothing.
    pub fn balance(&self) -> Option<rust_decimal::Decimal> {
        plausible(self.client_balance, -PLAUSIBLE_USD)
    }

    /// The spend per hour, when RunPod's figure is plausible (finite, 0 to 10^12 USD).
    pub fn spend_per_hour(&self) -> Option<rust_decimal::Decimal> {
        plausible(self.current_spend_per_hr, 0.0)
    }

    /// Hours the balance lasts at the spend: `None` when nothing is spent or a figure could
    /// not be read.
    pub fn runway_hours(&self) -> Option<rust_decimal::Decimal> {
        let spend = self.spend_per_hour().filter(|s| !s.is_zero())?;
        self.balance()?.checked_div(spend)
    }
}

/// `GET /v2/{endpointId}/health`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Health {
    /// Job counters.
    pub jobs: HealthJobs,
    /// Worker counters.
    pub workers: HealthWorkers,
}

/// Job counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthJobs {
    /// Completed (recent window).
    pub completed: u64,
    /// Failed.
    #[serde(default)]
    pub failed: u64,
    /// Running.
    pub in_progress: u64,
    /// Waiting.
    pub in_queue: u64,
    /// Retried.
    #[serde(default)]
    pub retried: u64,
}

/// Worker counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct HealthWorkers {
    /// Idle.
    pub idle: u64,
    /// Starting.
    #[serde(default)]
    pub initializing: u64,
    /// Warm and routable.
    #[serde(default)]
    pub ready: u64,
    /// Running.
    pub running: u64,
    /// Waiting for capacity.
    #[serde(default)]
    pub throttled: u64,
    /// Crashed.
    #[serde(default)]
    pub unhealthy: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_figures_that_cannot_be_money_are_not_read() {
        let account = |balance: f64, spend: f64| Account {
            client_balance: balance,
            current_spend_per_hr: spend,
            spend_limit: 80.0,
        };
        let fine = account(120.5, 2.5);
        assert_eq!(fine.balance(), Some(rust_decimal::Decimal::new(1205, 1)));
        assert_eq!(
            fine.runway_hours(),
            Some(rust_decimal::Decimal::new(482, 1))
        );
        for (balance, spend) in [
            (f64::NAN, 1.0),
            (f64::INFINITY, 1.0),
            (1e300, 1.0),
            (-1e300, 1.0),
        ] {
            assert_eq!(account(balance, spend).balance(), None, "{balance}");
            assert_eq!(account(balance, spend).runway_hours(), None);
        }
        for spend in [f64::NAN, -1.0, 1e300] {
            assert_eq!(account(10.0, spend).spend_per_hour(), None, "{spend}");
        }
        // Nothing spent: no runway to speak of.
        assert_eq!(account(10.0, 0.0).runway_hours(), None);
        // The largest plausible balance over the smallest spend does not overflow into a panic.
        assert_eq!(account(1e12, 1e-300).runway_hours(), None);
    }
}
