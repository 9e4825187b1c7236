//! `GpuWorkload`: one RunPod Pod or Serverless endpoint, declared as a Kubernetes object.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DeletionPolicy, LocalObjectRef, ManagementPolicy, SecretKeySelector, Usd};

/// A GPU workload on RunPod: a Pod (billed per second while it exists) or a Serverless
/// endpoint (workers billed per second while they run), with the money rules that bound it.
// Each printcolumn(...) repeats `type_`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "runpod-operator.dev",
    version = "v1alpha1",
    kind = "GpuWorkload",
    doc = "A GPU workload on RunPod (a Pod or a Serverless endpoint) that the operator keeps in line with its spec and its spending cap.",
    namespaced,
    shortname = "gw",
    category = "runpod",
    status = "GpuWorkloadStatus",
    cel,
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "GPU", type_ = "string", json_path = ".status.gpu"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "$/h", type_ = "string", json_path = ".status.costPerHour"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "RunPod ID",
        type_ = "string",
        json_path = ".status.runpodId",
        priority = "1"
    ),
    printcolumn(
        name = "$/month",
        type_ = "string",
        json_path = ".status.projectedMonthlyCost",
        priority = "1"
    ),
    printcolumn(
        name = "Drift",
        type_ = "integer",
        json_path = ".status.driftCount",
        priority = "1"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type != 'Pod' || !has(self.serverless)")
        .message("spec.serverless applies only to type Serverless or Auto: remove it, or set spec.type to Serverless"),
    validation = Rule::new("self.type == 'Pod' || has(self.serverless)")
        .message("spec.serverless is required when spec.type is Serverless or Auto: set at least spec.serverless.maxWorkers"),
    validation = Rule::new("self.type == 'Pod' || !has(self.volume)")
        .message("spec.volume (a pod volume) applies only to type Pod: it cannot follow an Auto workload to Serverless; attach a NetworkVolume through spec.networkVolumes instead (both sides mount it)"),
    validation = Rule::new("self.type != 'Serverless' || !has(self.state)")
        .message("spec.state applies only to type Pod or Auto: remove it; a Serverless endpoint scales with spec.serverless.activeWorkers and maxWorkers"),
    validation = Rule::new("self.type != 'Serverless' || !has(self.stoppedVolumePolicy)")
        .message("spec.stoppedVolumePolicy applies only to type Pod or Auto: remove it"),
    validation = Rule::new("self.type != 'Serverless' || !has(self.gpu.cloud)")
        .message("spec.gpu.cloud applies only to type Pod or Auto (Serverless workers choose their own cloud): remove it"),
    validation = Rule::new("self.type == 'Serverless' || (has(self.volume) ? 1 : 0) + (has(self.networkVolumes) ? size(self.networkVolumes) : 0) <= 1")
        .message("a RunPod pod has at most one mount: keep either spec.volume or a single entry in spec.networkVolumes"),
    validation = Rule::new("self.type != 'Serverless' || !has(self.networkVolumes) || self.networkVolumes.all(v, !has(v.mountPath))")
        .message("Serverless workers mount network volumes at /runpod-volume: remove spec.networkVolumes[].mountPath"),
)]
pub struct GpuWorkloadSpec {
    /// How the workload runs: `Pod` (a long-lived container billed per second while it
    /// exists), `Serverless` (an endpoint whose workers are billed per second while they run),
    /// or `Auto` (starts as Serverless; the operator moves it to one Pod when the measured
    /// window shows the Pod cheaper by `spec.measurement.switchMarginPercent`, the endpoint
    /// serving until the pod does; `status.runsAs` says which).
    #[serde(rename = "type")]
    pub workload_type: WorkloadType,

    /// The cluster-scoped RunPodAccount whose API key, caps and credit policy apply.
    /// Defaults to the account named `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<LocalObjectRef>,

    /// The container image, e.g. `ghcr.io/acme/matting-worker:1.4.2`.
    #[x_kube(validation = Rule::new("size(self) > 0").message("spec.image is empty: set the container image, e.g. ghcr.io/acme/worker:1.0"))]
    #[schemars(length(max = 512))]
    pub image: String,

    /// Arguments given to the container's start command, as one string (RunPod's `args`).
    /// Unset keeps the image's CMD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub args: Option<String>,

    /// Environment variables of the container, each a plain `value` or a `valueFrom` Secret
    /// key. Names are unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 100),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"])
    )]
    pub env: Vec<EnvVar>,

    /// Ports the container exposes, each `<port>/http` or `<port>/tcp`, e.g. `8888/http`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(validation = Rule::new("self.all(p, p.matches('^[0-9]{1,5}/(http|tcp)$'))").message("spec.ports entries must look like 8888/http or 22/tcp"))]
    pub ports: Vec<String>,

    /// A Secret (same namespace) with the login of the image's private registry: a
    /// `kubernetes.io/dockerconfigjson` Secret (`kubectl create secret docker-registry`), whose
    /// entry for the image's host is used, or keys `username` and `password`. The operator
    /// makes a RunPod registry credential from it, follows the Secret when it changes, and
    /// deletes the credential with the workload. A missing Secret stalls the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_credentials: Option<LocalObjectRef>,

    /// The GPUs: an ordered list of acceptable types, how many, and the CUDA constraint.
    pub gpu: GpuSpec,

    /// RunPod data centre ids the workload may run in, e.g. `EU-RO-1`. Empty means any.
    /// RunPod enforces the list: too narrow a list fails with a capacity error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 40))]
    pub data_centers: Vec<String>,

    /// Container disk in GB. It is wiped whenever the container restarts or the pod stops.
    /// Unset means RunPod's default of 50 GB, shown in every plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 4096").message("spec.containerDiskGb must be between 1 and 4096 GB"))]
    pub container_disk_gb: Option<u32>,

    /// A pod volume: disk that survives restarts and stops, destroyed when the pod is deleted
    /// or replaced. Pod only. Billed while stopped at twice the running rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<PodVolume>,

    /// Network volumes to attach, by the name of a NetworkVolume in the same namespace. A pod
    /// takes at most one (instead of spec.volume); an endpoint takes one per data centre.
    /// Attaching pins the workload to the volume's data centre.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub network_volumes: Vec<NetworkVolumeMount>,

    /// Serverless settings: worker class, worker counts, scaling and timeouts.
    /// Required for `Serverless` and `Auto`, refused for `Pod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless: Option<ServerlessSpec>,

    /// The pod's desired state: `Running` or `Stopped` (a stopped pod keeps its volume and
    /// pays only for storage). Pod only; defaults to `Running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<DesiredState>,

    /// The most this workload may cost. The operator refuses to create, start or scale up
    /// anything whose worst-case cost passes it.
    pub spending_cap: SpendingCap,

    /// What to do with a pod that stays stopped (its volume bills at $0.20/GB/month). Pod
    /// only; defaults to the account's policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_volume_policy: Option<StoppedVolumePolicy>,

    /// Whether a change that needs a new pod (GPU type or count, cloud, data centre, mount)
    /// may destroy the pod volume's data without approval. `RequireApproval` (default): the
    /// workload reports `ReplaceNeedsApproval` until the annotation
    /// `runpod-operator.dev/approve-replace` carries the plan's hash. `Allow`: replace at once.
    #[serde(default)]
    pub replace_policy: ReplacePolicy,

    /// What happens on RunPod when this object is deleted: `Delete` (default) or `Orphan`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// How much the operator may do: `Manage` (default), `ObserveOnly` or `Paused`.
    #[serde(default)]
    pub management_policy: ManagementPolicy,

    /// When credit runs low and the account policy stops workloads, lower priorities stop
    /// first. Default 0.
    #[serde(default)]
    pub priority: i32,

    /// How the operator measures the workload's use (for `status.utilisation`, the cost
    /// advice, `workerClass: Auto` and `type: Auto`). Defaults: a 7-day window, a 10% margin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement: Option<MeasurementSpec>,
}

/// The trailing window of measured use, and the margin `Auto` needs before it changes
/// anything.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementSpec {
    /// Days of measured use the advice and `Auto` look at (1-7). Default 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 7").message("spec.measurement.windowDays must be between 1 and 7"))]
    pub window_days: Option<u32>,
    /// How much cheaper, in percent of what runs now over the window, another way must be
    /// before `Auto` switches to it (0-90). A workload at a break-even never flaps. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 90").message("spec.measurement.switchMarginPercent must be between 0 and 90"))]
    pub switch_margin_percent: Option<u32>,
}

impl GpuWorkloadSpec {
    /// The measurement window, in hours.
    pub fn window_hours(&self) -> u32 {
        self.measurement
            .as_ref()
            .and_then(|m| m.window_days)
            .unwrap_or(7)
            .clamp(1, 7)
            * 24
    }

    /// The margin `Auto` needs, as a fraction.
    pub fn switch_margin(&self) -> rust_decimal::Decimal {
        let percent = self
            .measurement
            .as_ref()
            .and_then(|m| m.switch_margin_percent)
            .unwrap_or(10)
            .min(90);
        rust_decimal::Decimal::new(i64::from(percent), 2)
    }
}

/// Whether replacing a pod may destroy its volume's data without approval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ReplacePolicy {
    /// Wait for the plan's hash in the `runpod-operator.dev/approve-replace` annotation.
    #[default]
    RequireApproval,
    /// Replace without asking; the pod volume's data is lost.
    Allow,
}

/// How a workload runs on RunPod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum WorkloadType {
    /// A RunPod Pod.
    Pod,
    /// A RunPod Serverless endpoint.
    Serverless,
    /// The operator chooses: Serverless until the measured use shows one Pod cheaper by the
    /// margin, then a Pod (make-before-break). Refuses `spec.volume`.
    Auto,
}

/// One environment variable.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.value) != has(self.valueFrom)")
    .message("spec.env entries need exactly one of value or valueFrom"))]
pub struct EnvVar {
    /// The variable's name.
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z_][A-Za-z0-9_]*$')").message("spec.env[].name must be a shell variable name: letters, digits and _, not starting with a digit"))]
    #[schemars(length(max = 256))]
    pub name: String,
    /// A literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32768))]
    pub value: Option<String>,
    /// Where to read the value from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// The source of an environment variable's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    /// A key of a Secret in the workload's namespace.
    pub secret_key_ref: SecretKeySelector,
}

/// The GPUs a workload needs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.allowedCudaVersions) || size(self.allowedCudaVersions) == 0 || !has(self.minCudaVersion)")
    .message("set either spec.gpu.allowedCudaVersions or spec.gpu.minCudaVersion, not both"))]
pub struct GpuSpec {
    /// Acceptable GPU type ids in order of preference, exactly as RunPod names them, e.g.
    /// `NVIDIA A100-SXM4-80GB`. Changing them on a pod is a planned replace.
    #[schemars(length(max = 10))]
    #[x_kube(validation = Rule::new("size(self) >= 1").message("spec.gpu.types needs at least one GPU type id, such as \"NVIDIA A100-SXM4-80GB\""))]
    pub types: Vec<String>,

    /// GPUs per pod, or per worker for an endpoint. Default 1. The most a GPU type allows
    /// comes from RunPod's catalogue and is checked by the operator.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    #[x_kube(validation = Rule::new("self >= 1").message("spec.gpu.count must be at least 1"))]
    pub count: u32,

    /// `Secure` (default) or `Community` cloud. Pod only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<Cloud>,

    /// CUDA versions the host may run, exactly, e.g. `["12.4", "12.8"]`. Empty means any.
    /// A version no host reports fails with a capacity error, not a fallback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 12), inner(length(max = 7)))]
    #[x_kube(validation = Rule::new("self.all(v, v.matches('^[0-9]{1,3}[.][0-9]{1,3}$'))").message("spec.gpu.allowedCudaVersions entries must be CUDA versions written major.minor, e.g. \"12.4\""))]
    pub allowed_cuda_versions: Vec<String>,

    /// The lowest CUDA version the host may run, e.g. `12.4` (compared numerically, so 12.11
    /// is above 12.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 7))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{1,3}[.][0-9]{1,3}$')").message("spec.gpu.minCudaVersion must be a CUDA version written major.minor, e.g. \"12.4\""))]
    pub min_cuda_version: Option<String>,
}

fn one() -> u32 {
    1
}

/// RunPod's two clouds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Cloud {
    /// RunPod's own data centres.
    Secure,
    /// Third-party hosts; cheaper, no new hosts accepted since 2026.
    Community,
}

/// A pod volume.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodVolume {
    /// Size in GB, at least 10. It can only grow in place; shrinking means a replace, which
    /// destroys the data.
    #[x_kube(validation = Rule::new("self >= 10 && self <= 4096").message("spec.volume.sizeGb must be between 10 and 4096 GB"))]
    pub size_gb: u32,
    /// Where the volume is mounted. Default `/workspace`.
    #[serde(default = "workspace")]
    #[schemars(length(max = 256))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("spec.volume.mountPath must be an absolute path such as /workspace"))]
    pub mount_path: String,
}

fn workspace() -> String {
    "/workspace".to_string()
}

/// A NetworkVolume attached to the workload.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkVolumeMount {
    /// The name of a NetworkVolume in the workload's namespace.
    #[x_kube(validation = Rule::new("size(self) > 0").message("spec.networkVolumes[].name is empty: name a NetworkVolume in this namespace"))]
    #[schemars(length(max = 253))]
    pub name: String,
    /// Where a pod mounts it (default `/workspace`). Serverless workers always mount at
    /// `/runpod-volume`, so endpoints leave this unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("spec.networkVolumes[].mountPath must be an absolute path such as /workspace"))]
    pub mount_path: Option<String>,
}

/// Serverless endpoint settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.maxWorkers >= self.activeWorkers")
        .message("spec.serverless.maxWorkers must be at least spec.serverless.activeWorkers: raise maxWorkers or lower activeWorkers"),
    validation = Rule::new("self.workerClass != 'Flex' || self.activeWorkers == 0")
        .message("Flex workers scale to zero, so spec.serverless.activeWorkers must be 0: set workerClass to Active for always-on workers"),
    validation = Rule::new("self.workerClass != 'Active' || self.activeWorkers >= 1")
        .message("workerClass Active needs spec.serverless.activeWorkers of at least 1: set it, or use workerClass Flex"),
    validation = Rule::new("self.workerClass != 'Auto' || self.activeWorkers == 0")
        .message("with workerClass Auto the operator chooses the active workers from measured use: remove spec.serverless.activeWorkers (maxWorkers bounds them)"),
    validation = Rule::new("!has(self.idleTimeoutSeconds) || !has(self.scaler) || self.scaler.type != 'RequestCount'")
        .message("RunPod refuses spec.serverless.idleTimeoutSeconds with scaler type RequestCount: remove idleTimeoutSeconds or use QueueDelay"),
)]
pub struct ServerlessSpec {
    /// `Flex` (default): workers scale to zero and cost nothing idle. `Active`: the first
    /// `activeWorkers` run all the time at a discount. `Auto`: the operator sets the active
    /// workers to the number the measured week says pays off (0 until measured), within
    /// `maxWorkers` and every spending rule.
    #[serde(default)]
    pub worker_class: WorkerClass,

    /// Always-on workers (RunPod's `workers.min`), billed around the clock. 0 for Flex.
    #[serde(default)]
    pub active_workers: u32,

    /// The most workers the endpoint may run at once (RunPod's `workers.max`). The
    /// worst-case cost, checked against the spending cap, is this many workers busy.
    pub max_workers: u32,

    /// Seconds a worker stays up, and billed, after its last job (1-3600). RunPod's default
    /// is 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 3600").message("spec.serverless.idleTimeoutSeconds must be between 1 and 3600"))]
    pub idle_timeout_seconds: Option<u32>,

    /// How RunPod adds workers. Default: queue delay of 4 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaler: Option<Scaler>,

    /// The longest one job may run, in seconds (5 s to 7 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 5 && self <= 604800").message("spec.serverless.executionTimeoutSeconds must be between 5 and 604800 (7 days)"))]
    pub execution_timeout_seconds: Option<u32>,

    /// FlashBoot keeps worker state after spin-down for faster cold starts, at no charge:
    /// `Off` (RunPod's API default), `FlashBoot` or `PriorityFlashBoot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flash_boot: Option<FlashBoot>,
}

/// Serverless worker class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum WorkerClass {
    /// Workers scale to zero; billed only while they run.
    #[default]
    Flex,
    /// `activeWorkers` workers always on, billed continuously at the active rate.
    Active,
    /// The operator chooses the active workers from the measured use: a worker is made
    /// active when that many workers were busy more than active price ÷ flex price of the
    /// measured window (A100: 79%, 18.9 hours a day). Flex only until measured.
    Auto,
}

/// How RunPod scales an endpoint's workers.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Scaler {
    /// `QueueDelay`: add a worker when a job has waited `value` seconds. `RequestCount`:
    /// one worker per `value` queued or running jobs.
    #[serde(rename = "type")]
    pub scaler_type: ScalerType,
    /// Seconds (QueueDelay) or jobs per worker (RequestCount); at least 1.
    #[x_kube(validation = Rule::new("self >= 1").message("spec.serverless.scaler.value must be at least 1"))]
    pub value: u32,
}

/// RunPod's scaler kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ScalerType {
    /// Scale on how long jobs wait in the queue.
    QueueDelay,
    /// Scale on queued plus running jobs.
    RequestCount,
}

/// FlashBoot modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FlashBoot {
    /// No FlashBoot.
    Off,
    /// FlashBoot on.
    FlashBoot,
    /// FlashBoot on priority capacity.
    PriorityFlashBoot,
}

/// The desired state of a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DesiredState {
    /// The pod runs and its GPUs bill.
    Running,
    /// The pod is stopped: GPUs released, container disk wiped, volume kept and billed.
    Stopped,
}

/// Spending caps of one workload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpendingCap {
    /// The most the workload may cost per hour in the worst case (a pod: GPUs and storage;
    /// an endpoint: every worker busy), in USD as a decimal string, e.g. `"2.50"`.
    pub usd_per_hour: Usd,
    /// An optional cap on the projected month, in USD, e.g. `"600"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_per_month: Option<Usd>,
}

/// What to do with a pod that stays stopped.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoppedVolumePolicy {
    /// `Alert` (report it and its storage cost) or `Delete` (delete the pod and its volume:
    /// the data is lost).
    pub action: StoppedVolumeAction,
    /// Hours a pod may stay stopped before the action applies.
    #[x_kube(validation = Rule::new("self >= 1").message("stoppedVolumePolicy.afterHours must be at least 1"))]
    pub after_hours: u32,
}

/// The stopped-volume actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum StoppedVolumeAction {
    /// Report the pod and what its volume costs; delete nothing.
    Alert,
    /// Delete the stopped pod; its pod volume and data are destroyed.
    Delete,
}

/// What the operator last saw and did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GpuWorkloadStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling`, `Stalled` (kstatus) and the domain conditions `Drifted`,
    /// `SpendCapExceeded`, `InsufficientCredit`, `ReplaceNeedsApproval`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The RunPod pod or endpoint id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runpod_id: Option<String>,
    /// The state RunPod reports, e.g. `RUNNING`, `EXITED`, or for an endpoint its workers
    /// running over its maximum, `3/30 running` (`2 active / 30 max` until its health is read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The GPUs as `kubectl get` shows them: the count and the type RunPod placed the pod on,
    /// e.g. `2x A100-SXM4-80GB`; before placement (and for an endpoint) the first choice, with
    /// `+1` when more types are allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    /// What the workload costs per hour right now, in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_hour: Option<Usd>,
    /// The worst-case cost per hour (an endpoint at max workers), in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst_case_cost_per_hour: Option<Usd>,
    /// The month projected from the current hourly cost, in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected_monthly_cost: Option<Usd>,
    /// How many fields differ from RunPod (`kubectl get -o wide` shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_count: Option<u32>,
    /// Fields where RunPod differs from the spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<DriftEntry>,
    /// The last plan the operator made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_plan: Option<PlanSummary>,
    /// When the operator first saw the pod stopped; the stopped-volume policy counts from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_since: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// How busy the endpoint was over the measured window, from RunPod's hourly billing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilisation: Option<Utilisation>,
    /// The cheapest way to run the measured use, with the saving (the `CostAdvice`
    /// condition says it in words; informational, it never blocks `Ready`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<Recommendation>,
    /// `type: Auto`: the side the operator chose, `Pod` or `Serverless` (runpodId names its
    /// object once it exists; the old side goes once the new one is ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_as: Option<WorkloadType>,
}

/// Measured use over a trailing window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Utilisation {
    /// Hours the measurement covers (up to the window of 7 days; less while it fills, or for
    /// an endpoint younger than that).
    pub window_hours: String,
    /// Hours per day with at least one worker busy.
    pub busy_hours_per_day: String,
    /// Busy workers: the median over the window.
    pub busy_workers_p50: u32,
    /// Busy workers: the 95th percentile.
    pub busy_workers_p95: u32,
    /// Busy workers: the most at once (hour by hour).
    pub busy_workers_max: u32,
    /// The last hour measured (RunPod's billing is read an hour after it closes).
    pub measured_until: String,
    /// Where the figures come from: `Billing` (an endpoint's hourly bill) or `PodGpu` (a
    /// `type: Auto` pod's GPU utilisation, sampled by the controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_from: Option<MeasuredFrom>,
    /// What the endpoint's `/health` showed when the controller sampled it (once a resync):
    /// bursts shorter than an hour, and time spent waiting for GPUs. Kept in the controller's
    /// memory (a restart starts the samples over; the hourly figures above come back from
    /// RunPod's billing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled: Option<SampledUse>,
}

/// Where a measurement comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MeasuredFrom {
    /// The endpoint's hourly serverless bill (RunPod keeps it: rebuilt after a restart).
    Billing,
    /// The pod's GPU utilisation, sampled on each reconcile (a restart starts from the
    /// status's figures, if recent).
    PodGpu,
}

/// An endpoint's `/health` samples over the measured window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SampledUse {
    /// How many samples.
    pub samples: u64,
    /// Hours with at least one sample.
    pub hours: u32,
    /// Workers running a job: the median sample.
    pub busy_workers_p50: u32,
    /// Workers running a job: the 95th percentile of the samples.
    pub busy_workers_p95: u32,
    /// Workers running a job: the most in one sample (the Pod side of the advice is sized for
    /// it).
    pub busy_workers_max: u32,
    /// Hours a worker waited for a GPU (RunPod had none free: `throttled`), estimated as the
    /// share of samples that saw one, of the hours sampled.
    pub throttled_hours: String,
    /// Hours a job waited in the queue, estimated the same way.
    pub queued_hours: String,
}

/// The cheapest configuration for the measured use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// E.g. `Serverless, 2 active + flex workers` or `1 Pod`; the current one when it is
    /// already the cheapest.
    pub configuration: String,
    /// What the current configuration costs per 30-day month at the measured use, in USD.
    pub current_per_month: Usd,
    /// What the recommended one would, in USD.
    pub recommended_per_month: Usd,
    /// The difference, in USD per month (0 when the current one is the cheapest).
    pub saving_per_month: Usd,
}

/// One field that differs between the spec and RunPod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftEntry {
    /// The spec path, e.g. `spec.serverless.maxWorkers`.
    pub field: String,
    /// The declared value.
    pub declared: String,
    /// The value RunPod reports.
    pub observed: String,
}

/// A summary of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanSummary {
    /// The plan's hash; approving a replace means putting it in an annotation.
    pub hash: String,
    /// The actions, in order, in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// How the hourly cost changes when the plan is applied, in USD (may be negative).
    pub cost_delta_per_hour: String,
}
