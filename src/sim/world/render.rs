//! Objects rendered as REST v2 answers them, typed so a list of 10,000 serialises without
//! building a JSON tree.

use std::collections::BTreeMap;

use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    EPOCH_UNIX_SECONDS, Endpoint, Millis, Mount, Pod, PodStatus, Volume, World, timestamp,
};

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
    gpu: EndpointGpuView<'e>,
    workers: WorkersView,
    scaling: &'e Value,
    data_center_ids: &'e [String],
    network_volumes: &'e [String],
    timeout: u64,
    flashboot: &'e str,
    created_at: Instant,
}

/// An endpoint's `gpu` object as sent, with the CUDA fields REST v2 always renders: borrowed,
/// so a list of 10,000 endpoints copies none of them.
#[derive(Debug)]
pub(super) struct EndpointGpuView<'e>(&'e Value);

impl Serialize for EndpointGpuView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let fields = self.0.as_object();
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in fields.into_iter().flatten() {
            map.serialize_entry(key, value)?;
        }
        let has = |key: &str| fields.is_some_and(|f| f.contains_key(key));
        if !has("allowedCudaVersions") {
            map.serialize_entry("allowedCudaVersions", &[] as &[&str])?;
        }
        if !has("minCudaVersion") {
            map.serialize_entry("minCudaVersion", &Value::Null)?;
        }
        map.end()
    }
}

/// A virtual instant rendered as RFC 3339 UTC straight into the answer.
#[derive(Debug)]
pub(super) struct Instant(Millis);

impl Serialize for Instant {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let seconds = EPOCH_UNIX_SECONDS + (self.0 / 1000) as i64;
        match jiff::Timestamp::from_second(seconds) {
            Ok(t) => serializer.collect_str(&t),
            Err(_) => serializer.serialize_str(""),
        }
    }
}

/// An endpoint's workers as REST v2 renders them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WorkersView {
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
pub(super) struct MountsView<'p> {
    #[serde(skip_serializing_if = "Option::is_none")]
    persistent: Option<PersistentView<'p>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<[NetworkView<'p>; 1]>,
}

#[derive(Debug, Serialize)]
pub(super) struct PersistentView<'p> {
    size: u32,
    path: &'p str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NetworkView<'p> {
    volume_id: &'p str,
    path: &'p str,
}

#[derive(Debug, Serialize)]
pub(super) struct GpuView<'p> {
    id: &'p str,
    count: u32,
}

#[derive(Debug, Serialize)]
pub(super) struct SshView {
    proxy: Option<()>,
    direct: Option<()>,
}

#[derive(Debug, Serialize)]
pub(super) struct GlobalNetworkingView {
    enabled: bool,
}

#[derive(Debug, Serialize)]
pub(super) struct RuntimeView<'p> {
    uptime: u64,
    gpus: Vec<GpuUtilView>,
    ports: Vec<PortView<'p>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GpuUtilView {
    util: u32,
    memory_util: u32,
}

#[derive(Debug, Serialize)]
pub(super) struct PortView<'p> {
    private: u64,
    public: u64,
    #[serde(rename = "type")]
    kind: &'p str,
    ip: &'static str,
}

impl World {
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
            // Busy or idle at this virtual second, drawn so that the busy share over time is
            // the pod's load (a fixed phase would make a sample each hour always agree).
            gpus: {
                let second = self.now / 1000;
                let draw = (second ^ pod.created_at).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
                let busy = (draw % 1000) < u64::from(pod.gpu_busy_permille.min(1000));
                let util = if busy { 97 } else { 0 };
                (0..pod.gpu_count)
                    .map(|_| GpuUtilView {
                        util,
                        memory_util: if busy { 60 } else { 5 },
                    })
                    .collect()
            },
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
            cuda_version: super::cuda_version(&pod.data_center),
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

    /// An endpoint as REST v2 renders it.
    pub fn endpoint_json(&self, endpoint: &Endpoint) -> Value {
        serde_json::to_value(Self::endpoint_view(endpoint)).unwrap_or(Value::Null)
    }

    /// An endpoint as REST v2 renders it, typed: a list of 10,000 endpoints is dominated by
    /// rendering, and typed serialization is an order of magnitude faster than `Value` trees.
    pub fn endpoint_view(endpoint: &Endpoint) -> EndpointView<'_> {
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
            gpu: EndpointGpuView(&endpoint.gpu),
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
            created_at: Instant(endpoint.created_at),
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

    /// A volume as REST v2 renders it.
    pub fn volume_json(volume: &Volume) -> Value {
        json!({"id": volume.id, "name": volume.name, "size": volume.size, "dataCenter": volume.data_center, "type": volume.volume_type})
    }
}
