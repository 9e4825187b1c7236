//! `NetworkVolume`: a RunPod network volume, shared by workloads in one data centre.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DeletionPolicy, LocalObjectRef, ManagementPolicy, Usd};

/// A RunPod network volume: storage that outlives pods, billed hourly whether or not anything
/// uses it ($0.07/GB/month under 1 TB, $0.05 above).
// Each printcolumn(...) repeats `type_`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "runpod-operator.dev",
    version = "v1alpha1",
    kind = "NetworkVolume",
    doc = "A RunPod network volume that workloads in its data centre attach; it bills whether or not anything uses it.",
    namespaced,
    shortname = "nv",
    category = "runpod",
    status = "NetworkVolumeStatus",
    cel,
    printcolumn(name = "Size", type_ = "integer", json_path = ".spec.sizeGb"),
    printcolumn(name = "DC", type_ = "string", json_path = ".spec.dataCenter"),
    printcolumn(name = "$/month", type_ = "string", json_path = ".status.costPerMonth"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct NetworkVolumeSpec {
    /// The cluster-scoped RunPodAccount that owns the volume. Defaults to `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<LocalObjectRef>,

    /// Size in GB, 10 to 4096. It can only grow: RunPod cannot shrink a volume.
    #[x_kube(
        validation = Rule::new("self >= 10 && self <= 4096")
            .message("spec.sizeGb must be between 10 and 4096 GB"),
        validation = Rule::new("self >= oldSelf")
            .message("spec.sizeGb can only grow (RunPod cannot shrink a volume): keep it at least the current size, or create a new NetworkVolume"),
    )]
    pub size_gb: u32,

    /// The RunPod data centre id, e.g. `EU-RO-1`. Fixed at creation: a volume cannot move.
    #[schemars(length(max = 64))]
    #[x_kube(
        validation = Rule::new("size(self) > 0").message("spec.dataCenter is empty: set a RunPod data centre id such as EU-RO-1"),
        validation = Rule::new("self == oldSelf")
            .message("spec.dataCenter is immutable (a volume cannot move): create a new NetworkVolume in the other data centre"),
    )]
    pub data_center: String,

    /// `Standard` (default) or `HighPerformance`. Fixed at creation.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf")
        .message("spec.tier is immutable: create a new NetworkVolume with the other tier"))]
    pub tier: VolumeTier,

    /// What happens on RunPod when this object is deleted. Default `Orphan`: the volume and
    /// its data stay (and keep billing) until deleted by hand or the policy is set to
    /// `Delete`. A volume still used by a workload is never deleted.
    #[serde(default = "orphan")]
    pub deletion_policy: DeletionPolicy,

    /// How much the operator may do: `Manage` (default), `ObserveOnly` or `Paused`.
    #[serde(default)]
    pub management_policy: ManagementPolicy,
}

fn orphan() -> DeletionPolicy {
    DeletionPolicy::Orphan
}

/// Network volume tiers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum VolumeTier {
    /// Standard network storage.
    #[default]
    Standard,
    /// High-performance network storage (a premium rate; see the RunPod console).
    HighPerformance,
}

/// What the operator last saw of the volume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkVolumeStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling`, `Stalled` and `Drifted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The RunPod network volume id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runpod_id: Option<String>,
    /// The size RunPod reports, in GB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<u32>,
    /// What the volume costs per month, in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_month: Option<Usd>,
    /// The GpuWorkloads (`namespace/name`) that attach the volume.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<String>,
}
