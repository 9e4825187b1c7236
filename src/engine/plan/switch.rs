//! Switching sides: a workload whose type changed (`Serverless` to `Pod` or back, by the spec
//! or by `type: Auto`) still owns an object of the other kind. Make-before-break: the old side
//! keeps serving until the new one is Ready, and only then goes. While both run, the money
//! rules see both: the new side's worst case plus what the old side spends now. An old pod's
//! volume is never destroyed without the approval rule of a replace: without it the old pod is
//! stopped (its volume kept) and the workload asks for approval.

use rust_decimal::Decimal;

use super::{
    Action, CONDITION_REPLACE_NEEDS_APPROVAL, Context, Draft, Observed, decimal, drift::drift,
    owned_endpoints, owned_pods, plan_hash, scale_to_zero, usd,
};
use crate::{
    api::ReplacePolicy,
    engine::{conditions::Verdict, desired::Desired, prices::PriceCatalogue},
    runpod::types::{Endpoint, Pod},
};

/// Seconds a new pod's container must have been up before the old side goes: RunPod says
/// `RUNNING` before the container runs, and its ports and proxy answer 30-60 s after that.
pub const SERVING_AFTER_SECONDS: u64 = 60;

/// Whether a pod serves: running, its container up for [`SERVING_AFTER_SECONDS`].
fn serving(pod: &Pod) -> bool {
    pod.status == "RUNNING"
        && pod
            .runtime
            .as_ref()
            .and_then(|r| r.uptime)
            .is_some_and(|up| up >= SERVING_AFTER_SECONDS)
}

/// The workload's objects of the kind it no longer runs as.
pub(super) enum OldSide<'a> {
    /// Pods, while the workload runs as an endpoint.
    Pods(Vec<&'a Pod>),
    /// Endpoints, while the workload runs as a pod.
    Endpoints(Vec<&'a Endpoint>),
}

impl OldSide<'_> {
    pub(super) fn is_empty(&self) -> bool {
        match self {
            Self::Pods(pods) => pods.is_empty(),
            Self::Endpoints(endpoints) => endpoints.is_empty(),
        }
    }

    fn first_id(&self) -> Option<&str> {
        match self {
            Self::Pods(pods) => pods.first().map(|p| p.id.as_str()),
            Self::Endpoints(endpoints) => endpoints.first().map(|e| e.id.as_str()),
        }
    }

    /// What the old side spends per hour now: a running pod its price; an endpoint its
    /// always-on workers at the active rate (flex workers bill only while busy).
    pub(super) fn per_hour(&self, prices: &PriceCatalogue) -> Decimal {
        match self {
            Self::Pods(pods) => pods
                .iter()
                .filter(|p| running(p))
                .map(|p| decimal(p.cost))
                .sum(),
            Self::Endpoints(endpoints) => endpoints.iter().map(|e| endpoint_floor(e, prices)).sum(),
        }
    }
}

fn running(pod: &Pod) -> bool {
    matches!(pod.status.as_str(), "RUNNING" | "PROVISIONING" | "STARTING")
}

/// An endpoint's always-on workers at the dearest active rate of its pools (an unknown pool
/// counts at the dearest known rate: never under-counted).
fn endpoint_floor(endpoint: &Endpoint, prices: &PriceCatalogue) -> Decimal {
    let active = endpoint.workers.min.unwrap_or(0);
    if active == 0 {
        return Decimal::ZERO;
    }
    let gpu = endpoint.gpu.as_ref();
    let count = gpu.map_or(1, |g| g.count.max(1));
    let pools = || {
        prices
            .gpu_types()
            .filter_map(|g| prices.pool_of(&g.gpu_type).ok())
    };
    let rate =
        |p: &crate::engine::prices::PoolPrice| p.active_per_second.unwrap_or(p.flex_per_second);
    let of_endpoint = gpu.and_then(|g| {
        pools()
            .filter(|p| g.pools.contains(&p.pool))
            .map(rate)
            .max()
    });
    let rate = of_endpoint.unwrap_or_else(|| pools().map(rate).max().unwrap_or_default());
    rate * Decimal::from(count) * Decimal::from(active) * Decimal::from(3600)
}

/// The workload's objects of the other kind than `desired`.
pub(super) fn old_side<'a>(
    desired: &Desired,
    observed: Observed<'a>,
    ctx: &Context<'_>,
) -> OldSide<'a> {
    match desired {
        Desired::Pod(_) => OldSide::Endpoints(owned_endpoints(observed, ctx)),
        Desired::Endpoint(_) => OldSide::Pods(owned_pods(observed, ctx)),
    }
}

/// What becomes of the old side, once the new side is planned in `draft`.
pub(super) fn retire(
    old: &OldSide<'_>,
    new_pod: Option<&Pod>,
    desired: &Desired,
    ctx: &Context<'_>,
    draft: &mut Draft,
) {
    if old.is_empty() {
        return;
    }
    let (now_kind, was_kind) = match old {
        OldSide::Endpoints(_) => ("Pod", "Serverless"),
        OldSide::Pods(_) => ("Serverless", "Pod"),
    };
    draft.drift.push(drift("type", now_kind, was_kind));
    let new_id = draft.runpod_id.clone();
    if new_id.is_none() {
        // Until the new side exists, the status names what still serves.
        draft.runpod_id = old.first_id().map(str::to_string);
    }
    // The credit policy forces the workload down: the old side goes down too (never deleted
    // for it: a pod keeps its volume).
    if let Some(reason) = &ctx.money.forced_down {
        down(old, reason, draft);
        return;
    }
    let nothing_to_make = matches!(desired, Desired::Pod(pod) if !pod.running);
    let new_id = new_id.unwrap_or_default();
    let ready = nothing_to_make
        || (!new_id.is_empty()
            && draft.waiting.is_none()
            && draft.stalled.is_none()
            && !draft.actions.iter().any(Action::writes)
            && match desired {
                Desired::Pod(_) => new_pod.is_some_and(serving),
                Desired::Endpoint(_) => true,
            });
    if !ready {
        if draft.waiting.is_none() && draft.stalled.is_none() {
            let old_id = old.first_id().unwrap_or_default();
            draft.waiting = Some(format!(
                "switching from {was_kind} to {now_kind}: {old_id} keeps serving until the new {} is ready{}",
                now_kind.to_lowercase(),
                if new_id.is_empty() || !matches!(desired, Desired::Pod(_)) {
                    String::new()
                } else {
                    format!(
                        " (pod {new_id}: running, its container up for {SERVING_AFTER_SECONDS} s)"
                    )
                }
            ));
        }
        return;
    }
    let because = if nothing_to_make {
        format!("spec.type is {now_kind} and spec.state is Stopped")
    } else {
        format!("the workload now runs as {now_kind} {new_id}")
    };
    match old {
        OldSide::Endpoints(endpoints) => {
            for endpoint in endpoints {
                draft.actions.push(Action::DeleteEndpoint {
                    id: endpoint.id.clone(),
                    reason: because.clone(),
                });
            }
        }
        OldSide::Pods(pods) => {
            for pod in pods {
                retire_pod(pod, &because, ctx, draft);
            }
        }
    }
}

/// An old pod goes, unless that destroys its volume without approval: then it is stopped
/// (its volume kept, billed as stopped storage) and the workload asks for approval.
fn retire_pod(pod: &Pod, because: &str, ctx: &Context<'_>, draft: &mut Draft) {
    let delete = Action::DeletePod {
        id: pod.id.clone(),
        reason: because.to_string(),
    };
    let Some(volume) = pod.mounts.persistent.as_ref() else {
        draft.actions.push(delete);
        return;
    };
    let hash = plan_hash(std::slice::from_ref(&delete));
    let approved =
        ctx.spec.replace_policy == ReplacePolicy::Allow || ctx.approved_hash == Some(hash.as_str());
    if approved {
        draft.actions.push(delete);
        return;
    }
    if running(pod) {
        draft.actions.push(Action::StopPod {
            id: pod.id.clone(),
            reason: format!("{because}; stopped, not deleted: its pod volume waits for approval"),
        });
    }
    let monthly = Decimal::from(volume.size) * ctx.prices.storage.pod_volume_stopped;
    let message = format!(
        "{because}: deleting the old pod {} destroys its {} GB pod volume at {} and its data (it is kept stopped meanwhile, {} USD/month); to go ahead, annotate the workload with runpod-operator.dev/approve-replace={hash} or set spec.replacePolicy: Allow",
        pod.id,
        volume.size,
        volume.path,
        usd(monthly)
    );
    draft.verdicts.push(Verdict::yes(
        CONDITION_REPLACE_NEEDS_APPROVAL,
        "DataWouldBeLost",
        message.clone(),
    ));
    draft.stalled = Some(("ReplaceNeedsApproval", message));
}

fn down(old: &OldSide<'_>, reason: &str, draft: &mut Draft) {
    match old {
        OldSide::Pods(pods) => {
            for pod in pods.iter().filter(|p| running(p)) {
                draft.actions.push(Action::StopPod {
                    id: pod.id.clone(),
                    reason: reason.to_string(),
                });
            }
        }
        OldSide::Endpoints(endpoints) => {
            draft
                .actions
                .extend(endpoints.iter().filter_map(|e| scale_to_zero(e)));
        }
    }
}
