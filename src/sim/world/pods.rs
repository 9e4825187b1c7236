//! Pods: create (placement on free capacity), update, start, stop, restart, delete.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    Billed, CAPACITY_MESSAGE, DATA_CENTERS, DEFAULT_CONTAINER_DISK_GB, Millis, Outcome, Refusal,
    World, cuda_fits, cuda_version, strings, whole32,
};

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
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "PROVISIONING",
            Self::Starting => "STARTING",
            Self::Running => "RUNNING",
            Self::Exited => "EXITED",
            Self::Error => "ERROR",
        }
    }

    /// The actions legal in this status (docs/runpod.md, Pods).
    pub fn actions(self) -> &'static [&'static str] {
        match self {
            Self::Running => &["stop", "restart", "terminate"],
            Self::Exited | Self::Error => &["start", "terminate"],
            Self::Provisioning | Self::Starting => &["stop", "terminate"],
        }
    }

    /// Whether the pod holds GPUs and bills compute.
    pub(super) fn holds_gpus(self) -> bool {
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
    pub(super) fn apply(&mut self, body: &Value) -> bool {
        let before = self.clone();
        if let Some(v) = body["image"].as_str() {
            self.image = v.to_string();
        }
        if let Some(v) = body["args"].as_str() {
            self.args = v.to_string();
        }
        if let Some(v) = body["disk"].as_u64().and_then(|v| u32::try_from(v).ok()) {
            self.disk = v;
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
    /// The share of the time its GPUs are busy, in thousandths (`POST /_sim/pod-load`), shown
    /// in `runtime.gpus[].util` while it runs.
    pub gpu_busy_permille: u32,
}

impl World {
    /// `POST /v2/pods` (body already valid against the spec).
    pub fn create_pod(&mut self, key: &str, body: &Value) -> Outcome<String> {
        let result = self.create_pod_unmetered(key, body);
        if let Ok(id) = &result {
            self.remeter(key, Billed::Pod, id);
        }
        result
    }

    /// [`World::create_pod`] before the meters are read again.
    fn create_pod_unmetered(&mut self, key: &str, body: &Value) -> Outcome<String> {
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
        let gpu_count = whole32(body, "gpu.count", 1)?;
        whole32(body, "disk", 0)?;
        whole32(body, "mounts.persistent.size", 10)?;
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
            .is_none()
        {
            return Err(Refusal::new(
                400,
                format!("GPU type {gpu_type:?} is not offered on {cloud} cloud"),
            ));
        }
        let max = self.prices.gpus.get(&gpu_type).map_or(0, |g| g.max_count);
        if gpu_count > max {
            return Err(Refusal::new(
                400,
                format!(
                    "gpu.count {gpu_count} is above the {max} GPUs of type {gpu_type} one pod can have"
                ),
            ));
        }
        if let Some(unknown) = unknown_data_center(
            body["dataCenterIds"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str),
        ) {
            return Err(Refusal::new(
                400,
                format!("dataCenterIds: {unknown:?} is not a RunPod data centre"),
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
        // Only hosts whose CUDA meets the constraint: none is RunPod's capacity answer.
        let allowed = strings(&gpu["allowedCudaVersions"]);
        let min = gpu["minCudaVersion"].as_str();
        let candidates: Vec<String> = candidates
            .into_iter()
            .filter(|dc| cuda_fits(cuda_version(dc), &allowed, min))
            .collect();
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
            gpu_busy_permille: 0,
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

    pub(super) fn mount_from(&self, key: &str, mounts: &Value) -> Outcome<Option<Mount>> {
        if let Some(p) = mounts.get("persistent") {
            return Ok(Some(Mount::Persistent {
                size: whole32(mounts, "persistent.size", 10)?,
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

    /// `PATCH /v2/pods/{id}`: mount kind and volume id fixed, volume grows only, container
    /// disk either way; a container change resets the pod (container disk wiped).
    pub fn update_pod(&mut self, key: &str, id: &str, body: &Value) -> Outcome<()> {
        let result = self.update_pod_unmetered(key, id, body);
        self.remeter(key, Billed::Pod, id);
        result
    }

    /// [`World::update_pod`] before the meters are read again.
    fn update_pod_unmetered(&mut self, key: &str, id: &str, body: &Value) -> Outcome<()> {
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
                        let new_size = whole32(body, "mounts.persistent.size", 0)?;
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
        whole32(body, "disk", 0)?;
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
        let result = self.pod_action_unmetered(key, id, action);
        self.remeter(key, Billed::Pod, id);
        result
    }

    /// [`World::pod_action`] before the meters are read again.
    fn pod_action_unmetered(&mut self, key: &str, id: &str, action: &str) -> Outcome<bool> {
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

    pub(super) fn pod_mut(&mut self, key: &str, id: &str) -> Outcome<&mut Pod> {
        self.account_mut(key)?
            .pods
            .get_mut(id)
            .ok_or_else(|| Refusal::not_found("pod"))
    }

    /// `DELETE /v2/pods/{id}`: the pod volume is destroyed; a network volume only detached.
    pub fn delete_pod(&mut self, key: &str, id: &str) -> Outcome<()> {
        let result = self.delete_pod_unmetered(key, id);
        self.remeter(key, Billed::Pod, id);
        result
    }

    /// [`World::delete_pod`] before the meters are read again.
    fn delete_pod_unmetered(&mut self, key: &str, id: &str) -> Outcome<()> {
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
}

/// The first id of a `dataCenterIds` list that is not a RunPod data centre.
pub(super) fn unknown_data_center<'a>(ids: impl IntoIterator<Item = &'a str>) -> Option<String> {
    ids.into_iter()
        .find(|id| !DATA_CENTERS.contains(id))
        .map(String::from)
}
