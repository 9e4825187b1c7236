//! Desired state: what RunPod should run for one GpuWorkload, in RunPod's own terms, built
//! from the spec and what it references (NetworkVolumes, Secrets). Every error names the
//! field path and the fix. Pure: references come in already read.

use std::collections::BTreeMap;

use super::{
    identity::OWNER_ENV,
    prices::PriceCatalogue,
    registry::{self, DesiredRegistry},
};
use crate::{
    api::{
        Cloud, DesiredState, FlashBoot, GpuWorkloadSpec, ScalerType, WorkerClass, WorkloadType,
        validate::FieldError,
    },
    engine::{cost::DEFAULT_CONTAINER_DISK_GB, identity::Owner},
    runpod::types::Scaling,
};

/// Where a pod mounts a network volume when the spec names no path.
pub const DEFAULT_MOUNT_PATH: &str = "/workspace";

/// A NetworkVolume as a workload sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeRef {
    /// The RunPod id, once the volume exists.
    pub runpod_id: Option<String>,
    /// Its data centre.
    pub data_center: String,
}

/// What a workload references, already read from the cluster (or from files).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct References {
    /// NetworkVolumes of the workload's namespace, by name.
    pub volumes: BTreeMap<String, VolumeRef>,
    /// Secrets of the workload's namespace: name -> key -> value.
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// `spec.serverless.workerClass: Auto`: the active workers the measured use says pay off
    /// (the controller's measurement; `None`, as in the CLI, until measured: flex only).
    pub auto_active: Option<u32>,
    /// `spec.type: Auto`: the side the workload runs as, `Pod` or `Serverless` (the
    /// controller's choice, else what RunPod runs); `None`: Serverless.
    pub auto_type: Option<WorkloadType>,
}

/// Why no desired state could be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DesiredError {
    /// The spec is wrong; a human must change it (`Stalled`).
    Invalid(Vec<FieldError>),
    /// Something it references is not there yet (`Reconciling`; look again).
    Waiting(String),
}

/// A pod's mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DesiredMount {
    /// A pod volume.
    Persistent {
        /// GB.
        size: u32,
        /// Path.
        path: String,
    },
    /// A network volume.
    Network {
        /// RunPod volume id.
        volume_id: String,
        /// Path.
        path: String,
    },
}

/// The container settings pods and endpoints share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredContainer {
    /// Image.
    pub image: String,
    /// Start arguments.
    pub args: Option<String>,
    /// Container disk, GB.
    pub disk: u32,
    /// Ports.
    pub ports: Vec<String>,
    /// Environment, owner marker included.
    pub env: BTreeMap<String, String>,
    /// The registry credential a private image needs.
    pub registry: Option<DesiredRegistry>,
}

/// A pod as RunPod should run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredPod {
    /// The deterministic name.
    pub name: String,
    /// Container.
    pub container: DesiredContainer,
    /// Acceptable GPU types, in order.
    pub gpu_types: Vec<String>,
    /// GPU count.
    pub gpu_count: u32,
    /// `SECURE` or `COMMUNITY`.
    pub cloud: &'static str,
    /// Acceptable data centres; empty means any.
    pub data_centers: Vec<String>,
    /// Exact CUDA versions.
    pub allowed_cuda_versions: Vec<String>,
    /// Lowest CUDA version.
    pub min_cuda_version: Option<String>,
    /// The mount.
    pub mount: Option<DesiredMount>,
    /// Running or stopped.
    pub running: bool,
}

/// An endpoint as RunPod should run it.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredEndpoint {
    /// The deterministic name.
    pub name: String,
    /// Container.
    pub container: DesiredContainer,
    /// Serverless pools, in order of the spec's GPU types.
    pub pools: Vec<String>,
    /// GPUs per worker.
    pub gpu_count: u32,
    /// Exact CUDA versions.
    pub allowed_cuda_versions: Vec<String>,
    /// Lowest CUDA version.
    pub min_cuda_version: Option<String>,
    /// Always-on workers.
    pub workers_min: u32,
    /// Most workers.
    pub workers_max: u32,
    /// Idle timeout, if set.
    pub idle_timeout: Option<u32>,
    /// Scaling.
    pub scaling: Scaling,
    /// Data centres; empty means any.
    pub data_centers: Vec<String>,
    /// Network volume ids.
    pub network_volumes: Vec<String>,
    /// Execution timeout, ms.
    pub timeout_ms: Option<u64>,
    /// `OFF`, `FLASHBOOT` or `PRIORITY_FLASHBOOT`.
    pub flashboot: &'static str,
}

/// What RunPod should run for one workload.
#[derive(Clone, Debug, PartialEq)]
pub enum Desired {
    /// A pod.
    Pod(DesiredPod),
    /// A serverless endpoint.
    Endpoint(DesiredEndpoint),
}

fn invalid(path: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        path: path.to_string(),
        message: message.into(),
    }
}

/// Builds the desired state of a workload. `Auto` runs as the side `refs.auto_type` names;
/// `Serverless` until one is chosen (flex workers cost nothing idle, the safe default).
pub fn desired(
    owner: &Owner,
    spec: &GpuWorkloadSpec,
    refs: &References,
    prices: &PriceCatalogue,
) -> Result<Desired, DesiredError> {
    let mut errors = Vec::new();
    let auto = spec.workload_type == WorkloadType::Auto;
    let serverless = match spec.workload_type {
        WorkloadType::Auto => refs.auto_type != Some(WorkloadType::Pod),
        kind => kind == WorkloadType::Serverless,
    };

    // GPU types must be priced: the money rules cannot check what they cannot price. `Auto`
    // may run either way, so it needs both prices.
    for (i, gpu) in spec.gpu.types.iter().enumerate() {
        let path = format!("spec.gpu.types[{i}]");
        let pod_price = || prices.pod_per_hour(gpu, spec.gpu.cloud == Some(Cloud::Community));
        match prices.gpu(gpu) {
            Err(_) => errors.push(invalid(
                &path,
                format!("unknown GPU type {gpu:?}: use RunPod's exact id, such as \"NVIDIA A100-SXM4-80GB\""),
            )),
            Ok(_) if (serverless || auto) && prices.pool_of(gpu).is_err() => errors.push(invalid(
                &path,
                format!("{gpu:?} has no known Serverless price: pick a type with a serverless pool, or use type Pod"),
            )),
            Ok(_) if (!serverless || auto) && pod_price().is_err() => {
                errors.push(invalid(&path, format!("{gpu:?} has no known pod price on that cloud")))
            }
            Ok(_) => {}
        }
    }
    if auto && spec.volume.is_some() {
        errors.push(invalid(
            "spec.volume",
            "a pod volume cannot follow an Auto workload to Serverless: attach a NetworkVolume through spec.networkVolumes instead (both sides mount it), or use type Pod",
        ));
    }
    // A private image: the login comes from a Secret. A missing or unreadable Secret stalls
    // the workload (a human must fix it); nothing is created without the login.
    let mut registry = None;
    if let Some(reference) = &spec.registry_credentials {
        let path = "spec.registryCredentials.name";
        match refs.secrets.get(&reference.name) {
            None => errors.push(invalid(
                path,
                format!(
                    "Secret {:?} is not there: create it in the workload's namespace (kubectl create secret docker-registry {} --docker-server=... --docker-username=... --docker-password=...), or fix the name",
                    reference.name, reference.name
                ),
            )),
            Some(data) => match registry::desired_registry(owner, &reference.name, data, &spec.image) {
                Ok(r) => registry = Some(r),
                Err(message) => errors.push(invalid(path, message)),
            },
        }
    }

    let mut env = BTreeMap::new();
    let mut waiting = None;
    for (i, var) in spec.env.iter().enumerate() {
        if var.name == OWNER_ENV {
            errors.push(invalid(
                &format!("spec.env[{i}].name"),
                format!("{OWNER_ENV} is reserved: the operator marks its objects with it"),
            ));
            continue;
        }
        match (&var.value, &var.value_from) {
            (Some(value), _) => {
                env.insert(var.name.clone(), value.clone());
            }
            (None, Some(from)) => {
                let key = &from.secret_key_ref;
                match refs
                    .secrets
                    .get(&key.name)
                    .and_then(|data| data.get(&key.key))
                {
                    Some(value) => {
                        env.insert(var.name.clone(), value.clone());
                    }
                    None => {
                        waiting = Some(format!(
                            "waiting for Secret {:?} with key {:?} (spec.env[{i}])",
                            key.name, key.key
                        ))
                    }
                }
            }
            (None, None) => {}
        }
    }
    env.insert(OWNER_ENV.to_string(), owner.uid.clone());

    // Network volumes: each must exist on RunPod and sit in an allowed data centre.
    let mut volumes = Vec::new();
    for (i, mount) in spec.network_volumes.iter().enumerate() {
        let path = format!("spec.networkVolumes[{i}].name");
        match refs.volumes.get(&mount.name) {
            None => {
                waiting = Some(format!(
                    "waiting for NetworkVolume {:?} ({path})",
                    mount.name
                ))
            }
            Some(VolumeRef {
                runpod_id: None, ..
            }) => {
                waiting = Some(format!(
                    "waiting for NetworkVolume {:?} to be created on RunPod",
                    mount.name
                ))
            }
            Some(VolumeRef {
                runpod_id: Some(id),
                data_center,
            }) => {
                if !spec.data_centers.is_empty() && !spec.data_centers.contains(data_center) {
                    errors.push(invalid(
                        &path,
                        format!(
                            "NetworkVolume {:?} is in {data_center}, which spec.dataCenters excludes: add {data_center} or use a volume in an allowed data centre",
                            mount.name
                        ),
                    ));
                }
                volumes.push((id.clone(), data_center.clone(), mount.mount_path.clone()));
            }
        }
    }
    if serverless || auto {
        let mut seen = BTreeMap::new();
        for (i, (_, dc, _)) in volumes.iter().enumerate() {
            if let Some(first) = seen.insert(dc.clone(), i) {
                errors.push(invalid(
                    &format!("spec.networkVolumes[{i}]"),
                    format!("an endpoint takes one network volume per data centre, and spec.networkVolumes[{first}] is in {dc} too"),
                ));
            }
        }
    }

    if !errors.is_empty() {
        return Err(DesiredError::Invalid(errors));
    }
    if let Some(reason) = waiting {
        return Err(DesiredError::Waiting(reason));
    }

    let container = DesiredContainer {
        image: spec.image.clone(),
        args: spec.args.clone(),
        disk: spec.container_disk_gb.unwrap_or(DEFAULT_CONTAINER_DISK_GB),
        ports: spec.ports.clone(),
        env,
        registry,
    };
    let name = owner.runpod_name();

    if serverless {
        let settings = spec.serverless.as_ref().ok_or_else(|| {
            DesiredError::Invalid(vec![invalid(
                "spec.serverless",
                "required for Serverless and Auto",
            )])
        })?;
        let mut pools: Vec<String> = Vec::new();
        for gpu in &spec.gpu.types {
            if let Ok(pool) = prices.pool_of(gpu)
                && !pools.contains(&pool.pool)
            {
                pools.push(pool.pool.clone());
            }
        }
        let scaling = match &settings.scaler {
            Some(s) if s.scaler_type == ScalerType::RequestCount => Scaling::RequestCount {
                request_count: s.value,
            },
            Some(s) => Scaling::QueueDelay {
                queue_delay: f64::from(s.value),
            },
            None => Scaling::QueueDelay { queue_delay: 4.0 },
        };
        let flashboot = match settings.flash_boot {
            None | Some(FlashBoot::Off) => "OFF",
            Some(FlashBoot::FlashBoot) => "FLASHBOOT",
            Some(FlashBoot::PriorityFlashBoot) => "PRIORITY_FLASHBOOT",
        };
        return Ok(Desired::Endpoint(DesiredEndpoint {
            name,
            container,
            pools,
            gpu_count: spec.gpu.count,
            allowed_cuda_versions: spec.gpu.allowed_cuda_versions.clone(),
            min_cuda_version: spec.gpu.min_cuda_version.clone(),
            workers_min: match settings.worker_class {
                WorkerClass::Auto => refs.auto_active.unwrap_or(0).min(settings.max_workers),
                _ => settings.active_workers,
            },
            workers_max: settings.max_workers,
            idle_timeout: settings.idle_timeout_seconds,
            scaling,
            data_centers: spec.data_centers.clone(),
            network_volumes: volumes.into_iter().map(|(id, _, _)| id).collect(),
            timeout_ms: settings
                .execution_timeout_seconds
                .map(|s| u64::from(s) * 1000),
            flashboot,
        }));
    }

    let mount = match (&spec.volume, volumes.first()) {
        (Some(volume), _) => Some(DesiredMount::Persistent {
            size: volume.size_gb,
            path: volume.mount_path.clone(),
        }),
        (None, Some((id, _, path))) => Some(DesiredMount::Network {
            volume_id: id.clone(),
            path: path
                .clone()
                .unwrap_or_else(|| DEFAULT_MOUNT_PATH.to_string()),
        }),
        (None, None) => None,
    };
    // A network volume pins the pod to its data centre.
    let data_centers = match volumes.first() {
        Some((_, dc, _)) => vec![dc.clone()],
        None => spec.data_centers.clone(),
    };
    Ok(Desired::Pod(DesiredPod {
        name,
        container,
        gpu_types: spec.gpu.types.clone(),
        gpu_count: spec.gpu.count,
        cloud: if spec.gpu.cloud == Some(Cloud::Community) {
            "COMMUNITY"
        } else {
            "SECURE"
        },
        data_centers,
        allowed_cuda_versions: spec.gpu.allowed_cuda_versions.clone(),
        min_cuda_version: spec.gpu.min_cuda_version.clone(),
        mount,
        running: spec.state != Some(DesiredState::Stopped),
    }))
}
