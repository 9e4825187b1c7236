//! The plan's output: the actions, the plan and the spending it asked for.

use std::time::Duration;

use rust_decimal::Decimal;

use crate::{
    api::DriftEntry,
    engine::{conditions::Verdict, cost::WorkloadCost, registry::Sensitive},
    runpod::types::{
        CreateEndpoint, CreateNetworkVolume, CreatePod, UpdateEndpoint, UpdateNetworkVolume,
        UpdatePod,
    },
};

/// One step towards the desired state.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum Action {
    /// Create a pod, trying the GPU types in order on capacity errors.
    CreatePod {
        /// The request (its GPU is the first candidate).
        request: CreatePod,
        /// GPU types to try, in order.
        candidates: Vec<String>,
    },
    /// Create an endpoint.
    CreateEndpoint {
        /// The request.
        request: CreateEndpoint,
    },
    /// Change a pod in place.
    UpdatePod {
        /// Pod id.
        id: String,
        /// The change.
        request: UpdatePod,
        /// Whether the change resets the container (container disk wiped).
        resets: bool,
    },
    /// Change an endpoint in place.
    UpdateEndpoint {
        /// Endpoint id.
        id: String,
        /// The change.
        request: UpdateEndpoint,
        /// Whether it only lowers cost (scale down).
        saving: bool,
    },
    /// Create a new pod, then delete the old one (the next pass deletes it as an extra).
    ReplacePod {
        /// The pod being replaced.
        old_id: String,
        /// The new pod.
        request: CreatePod,
        /// GPU types to try, in order.
        candidates: Vec<String>,
        /// Why a replace is needed.
        because: Vec<String>,
        /// What is lost, if anything.
        loses: Option<String>,
    },
    /// Start a stopped pod.
    StartPod {
        /// Pod id.
        id: String,
    },
    /// Stop a pod.
    StopPod {
        /// Pod id.
        id: String,
        /// Why.
        reason: String,
    },
    /// Delete a pod.
    DeletePod {
        /// Pod id.
        id: String,
        /// Why.
        reason: String,
    },
    /// Delete an endpoint.
    DeleteEndpoint {
        /// Endpoint id.
        id: String,
        /// Why.
        reason: String,
    },
    /// Create a network volume.
    CreateVolume {
        /// The request.
        request: CreateNetworkVolume,
    },
    /// Grow or rename a network volume.
    UpdateVolume {
        /// Volume id.
        id: String,
        /// The change.
        request: UpdateNetworkVolume,
    },
    /// Delete a network volume (its data is lost).
    DeleteVolume {
        /// Volume id.
        id: String,
        /// Why.
        reason: String,
    },
    /// Create a registry credential (RunPod keeps the password write-only).
    CreateRegistry {
        /// Its name: the owner's prefix and a digest of the login.
        name: String,
        /// The registry host, for messages.
        server: String,
        /// User name.
        username: String,
        /// Password or token: never serialized, `[REDACTED]` in Debug.
        #[serde(skip)]
        password: Sensitive,
    },
    /// Delete a registry credential nothing uses any more.
    DeleteRegistry {
        /// Credential id.
        id: String,
        /// Its name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Nothing to send; look again later.
    Wait {
        /// Why.
        reason: String,
        /// When to look again.
        #[serde(skip)]
        after: Duration,
    },
}

impl Action {
    /// Whether the action lowers the bill (and so goes first, and may use the budget reserve).
    pub fn saves_money(&self) -> bool {
        matches!(
            self,
            Self::StopPod { .. }
                | Self::DeletePod { .. }
                | Self::DeleteEndpoint { .. }
                | Self::DeleteVolume { .. }
                | Self::UpdateEndpoint { saving: true, .. }
        )
    }

    /// Whether the action writes to RunPod.
    pub fn writes(&self) -> bool {
        !matches!(self, Self::Wait { .. })
    }

    /// The action in words, for status and the CLI.
    pub fn describe(&self) -> String {
        match self {
            Self::CreatePod {
                request,
                candidates,
            } => format!(
                "create pod {} ({} x {})",
                request.name,
                request.gpu.count,
                candidates.join(" | ")
            ),
            Self::CreateEndpoint { request } => format!(
                "create endpoint {} (workers {}-{})",
                request.name,
                request.workers.min.unwrap_or(0),
                request.workers.max.unwrap_or(0)
            ),
            Self::UpdatePod { id, resets, .. } => {
                format!(
                    "update pod {id}{}",
                    if *resets {
                        " (resets the container)"
                    } else {
                        ""
                    }
                )
            }
            Self::UpdateEndpoint { id, .. } => format!("update endpoint {id}"),
            Self::ReplacePod {
                old_id,
                because,
                loses,
                ..
            } => format!(
                "replace pod {old_id} ({}){}",
                because.join(", "),
                loses
                    .as_ref()
                    .map(|l| format!("; destroys {l}"))
                    .unwrap_or_default()
            ),
            Self::StartPod { id } => format!("start pod {id}"),
            Self::StopPod { id, reason } => format!("stop pod {id}: {reason}"),
            Self::DeletePod { id, reason } => format!("delete pod {id}: {reason}"),
            Self::DeleteEndpoint { id, reason } => format!("delete endpoint {id}: {reason}"),
            Self::CreateVolume { request } => format!(
                "create network volume {} ({} GB in {})",
                request.name, request.size, request.data_center
            ),
            Self::UpdateVolume { id, request } => format!(
                "grow network volume {id} to {} GB",
                request.size.unwrap_or_default()
            ),
            Self::DeleteVolume { id, reason } => format!("delete network volume {id}: {reason}"),
            Self::CreateRegistry { name, server, .. } => {
                format!("create registry credential {name} for {server}")
            }
            Self::DeleteRegistry { id, name, reason } => {
                format!("delete registry credential {id} ({name}): {reason}")
            }
            Self::Wait { reason, .. } => format!("wait: {reason}"),
        }
    }
}

/// The plan for one workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// What to do, money-saving first; the executor runs the first write per pass.
    pub actions: Vec<Action>,
    /// The RunPod object the workload tracks.
    pub runpod_id: Option<String>,
    /// What RunPod reports as its state.
    pub state: Option<String>,
    /// Where RunPod differs from the spec.
    pub drift: Vec<DriftEntry>,
    /// Conditions to merge into the status.
    pub verdicts: Vec<Verdict>,
    /// The desired cost.
    pub cost: Option<WorkloadCost>,
    /// What the tracked object costs per hour now.
    pub current_per_hour: Decimal,
    /// How the hourly cost changes when the plan is done (worst case after - now).
    pub delta_per_hour: Decimal,
    /// A hash of the actions; approving a replace means annotating it.
    pub hash: String,
    /// The spending action the plan asked for, approved or refused.
    pub spend: Option<Spend>,
}

/// A spending action (create, start, replace, scale-up) as the money rules weighed it: what a
/// pass needs to admit the spending of many workloads against one budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spend {
    /// The workload's worst case per hour once it is done.
    pub worst_per_hour: Decimal,
    /// The workload's expected cost per hour once it is done.
    pub expected_per_hour: Decimal,
    /// What the workload costs at worst per hour if it is refused (what RunPod runs for it
    /// now): what it still takes from the account cap of the others.
    pub floor_per_hour: Decimal,
    /// Whether the money rules let it go.
    pub approved: bool,
}

impl Plan {
    /// Whether there is anything to write.
    pub fn has_writes(&self) -> bool {
        self.actions.iter().any(Action::writes)
    }
}
