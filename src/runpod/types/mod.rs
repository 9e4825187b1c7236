//! What the operator sends to and reads from RunPod, typed from the official REST v2 spec
//! (`openapi-v2.json`), the GraphQL `myself` query and the serverless health route.
//!
//! Requests skip absent (`None`) fields but always send `Some(0)`: a zero must reach the
//! server (RunPod's own CLI once dropped `workers.min: 0` and endpoints kept billing).
//! Responses keep unknown fields out and tolerate missing optional ones.

mod account;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use account::*;

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
    // RunPod's `actions` (the transitions legal now) are not kept: the status says the same,
    // and a list of 10,000 pods would hold 30,000 strings for nothing.
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
    /// The live container: `null` until it runs (RunPod says `RUNNING` before the container's
    /// services are up; `runtime` comes later).
    #[serde(default)]
    pub runtime: Option<PodRuntime>,
}

/// A running pod's live figures (`PodRuntime`): only what the operator reads.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct PodRuntime {
    /// Seconds since the container started; a value that is not a whole number of seconds
    /// reads as unknown.
    #[serde(
        default,
        deserialize_with = "seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub uptime: Option<u64>,
    /// The busiest GPU's utilisation now, in percent (RunPod's `gpus[].util`): `None` when no
    /// GPU says a percentage. Only the highest is kept (no list per pod in memory).
    #[serde(
        default,
        rename = "gpus",
        deserialize_with = "busiest",
        skip_serializing
    )]
    pub gpu_util_max: Option<f64>,
}

/// A count of seconds, or `None` for anything else (never a failed list for it).
fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(serde_json::Value::deserialize(d)?.as_u64())
}

/// The highest `util` of a pod's `runtime.gpus` list that is a percentage: lenient, bounded
/// (the first 16 GPUs), never a failed list for it.
fn busiest<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(value.as_array().and_then(|gpus| {
        gpus.iter()
            .take(16)
            .filter_map(|g| g.get("util").and_then(serde_json::Value::as_f64))
            .filter(|u| (0.0..=100.0).contains(u))
            .reduce(f64::max)
    }))
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
    /// Registry credential id; `Some(None)` sends `null` (no credential). Resets the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<Option<String>>,
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
    /// Registry credential id.
    #[serde(default)]
    pub registry: Option<String>,
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
    /// Registry credential id; `Some(None)` sends `null` (no credential).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<Option<String>>,
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
