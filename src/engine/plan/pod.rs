//! Pods: find the workload's pod, create, update in place, replace (with approval when data
//! would be lost), start and stop, and the stopped-volume policy.

use rust_decimal::Decimal;

use super::{
    Action, CONDITION_REPLACE_NEEDS_APPROVAL, CONDITION_STOPPED_TOO_LONG, Context, Draft, Observed,
    decimal,
    drift::{drift, env_matches, pod_drift},
    owned_pods, plan_hash, usd,
};
use crate::{
    api::{ReplacePolicy, StoppedVolumeAction},
    engine::{
        conditions::Verdict,
        cost::WorkloadCost,
        desired::{DesiredMount, DesiredPod},
    },
    runpod::types::{CreateGpu, CreatePod, Mounts, NetworkMount, PersistentMount, Pod, UpdatePod},
};

fn pod_request(pod: &DesiredPod, gpu: &str) -> CreatePod {
    CreatePod {
        name: pod.name.clone(),
        image: pod.container.image.clone(),
        args: pod.container.args.clone(),
        disk: Some(pod.container.disk),
        ports: pod.container.ports.clone(),
        env: pod.container.env.clone(),
        registry: None,
        cloud: Some(pod.cloud.to_string()),
        gpu: CreateGpu {
            id: gpu.to_string(),
            count: pod.gpu_count,
            allowed_cuda_versions: pod.allowed_cuda_versions.clone(),
            min_cuda_version: pod.min_cuda_version.clone(),
        },
        data_center_ids: pod.data_centers.clone(),
        mounts: pod.mount.as_ref().map(mounts),
    }
}

fn mounts(mount: &DesiredMount) -> Mounts {
    match mount {
        DesiredMount::Persistent { size, path } => Mounts {
            persistent: Some(PersistentMount {
                size: *size,
                path: path.clone(),
            }),
            network: None,
        },
        DesiredMount::Network { volume_id, path } => Mounts {
            persistent: None,
            network: Some(vec![NetworkMount {
                volume_id: volume_id.clone(),
                path: path.clone(),
            }]),
        },
    }
}

/// What RunPod cannot change in place on this pod, as reasons.
fn replace_reasons(desired: &DesiredPod, pod: &Pod) -> Vec<String> {
    let mut reasons = Vec::new();
    let (gpu, count) = pod
        .gpu
        .as_ref()
        .map_or(("", 0), |g| (g.id.as_str(), g.count));
    if !desired.gpu_types.iter().any(|t| t == gpu) {
        reasons.push(format!("GPU type {gpu} is not in spec.gpu.types"));
    }
    if count != desired.gpu_count {
        reasons.push(format!("GPU count {count} -> {}", desired.gpu_count));
    }
    if pod.cloud != desired.cloud {
        reasons.push(format!("cloud {} -> {}", pod.cloud, desired.cloud));
    }
    if let Some(dc) = &pod.data_center_id
        && !desired.data_centers.is_empty()
        && !desired.data_centers.contains(dc)
    {
        reasons.push(format!("data centre {dc} is not in spec.dataCenters"));
    }
    match (&desired.mount, &pod.mounts.persistent, &pod.mounts.network) {
        (Some(DesiredMount::Persistent { size, .. }), Some(p), _) if *size < p.size => reasons
            .push(format!(
                "pod volume {} GB -> {size} GB (volumes only grow)",
                p.size
            )),
        (Some(DesiredMount::Persistent { .. }), Some(_), _) => {}
        (Some(DesiredMount::Network { volume_id, .. }), _, Some(list))
            if list.first().is_some_and(|m| &m.volume_id == volume_id) => {}
        (None, None, None) => {}
        (None, None, Some(list)) if list.is_empty() => {}
        _ => reasons.push("the mount changes kind or network volume".to_string()),
    }
    reasons
}

/// The in-place change that brings the pod to the desired state, if any.
fn pod_update(desired: &DesiredPod, pod: &Pod) -> Option<(UpdatePod, bool)> {
    let c = &desired.container;
    let mut update = UpdatePod::default();
    let mut resets = false;
    if pod.image != c.image {
        update.image = Some(c.image.clone());
        resets = true;
    }
    if let Some(args) = &c.args
        && &pod.args != args
    {
        update.args = Some(args.clone());
        resets = true;
    }
    if pod.disk != c.disk {
        update.disk = Some(c.disk);
        resets = true;
    }
    if pod.ports != c.ports {
        update.ports = Some(c.ports.clone());
        resets = true;
    }
    if !env_matches(&c.env, &pod.env) {
        update.env = Some(c.env.clone());
        resets = true;
    }
    match (&desired.mount, &pod.mounts.persistent, &pod.mounts.network) {
        (Some(DesiredMount::Persistent { size, path }), Some(p), _)
            if p.size != *size || &p.path != path =>
        {
            update.mounts = Some(mounts(desired.mount.as_ref().expect("matched")));
            resets = true;
        }
        (Some(DesiredMount::Network { path, .. }), _, Some(list))
            if list.first().is_some_and(|m| &m.path != path) =>
        {
            update.mounts = Some(mounts(desired.mount.as_ref().expect("matched")));
            resets = true;
        }
        _ => {}
    }
    if pod.name != desired.name {
        update.name = Some(desired.name.clone());
    }
    (update != UpdatePod::default()).then_some((update, resets))
}

pub(super) fn plan_pod(
    desired: &DesiredPod,
    observed: Observed<'_>,
    ctx: &Context<'_>,
    cost: Option<&WorkloadCost>,
    draft: &mut Draft,
) {
    let mine = owned_pods(observed, ctx);
    // Keep the pod that needs no replace (a finished replace), else the one recorded, else
    // the newest; the rest are extras the operator made.
    let keep = mine
        .iter()
        .find(|p| replace_reasons(desired, p).is_empty())
        .or_else(|| mine.iter().find(|p| ctx.known_id == Some(p.id.as_str())))
        .or_else(|| mine.iter().max_by_key(|p| p.created_at.clone()))
        .copied();
    for extra in mine.iter().filter(|p| keep.is_none_or(|k| k.id != p.id)) {
        draft.actions.push(Action::DeletePod {
            id: extra.id.clone(),
            reason: "a second pod for the same workload".to_string(),
        });
    }

    let Some(pod) = keep else {
        if !desired.running {
            draft.state = Some("Stopped (not created)".to_string());
            return;
        }
        if let Some(reason) = &ctx.money.forced_down {
            draft.waiting = Some(format!("not created: {reason}"));
            return;
        }
        let create = Action::CreatePod {
            request: pod_request(desired, &desired.gpu_types[0]),
            candidates: desired.gpu_types.clone(),
        };
        draft.spend(ctx, cost, Decimal::ZERO, create);
        draft.drift.push(drift("pod", "exists", "missing"));
        return;
    };

    draft.runpod_id = Some(pod.id.clone());
    draft.object_registry = Some((true, pod.registry.clone()));
    draft.state = Some(pod.status.clone());
    draft.current_per_hour = decimal(pod.cost);
    draft.drift = pod_drift(desired, pod);
    let is_running = matches!(pod.status.as_str(), "RUNNING" | "PROVISIONING" | "STARTING");

    // The credit policy chose this workload to stop.
    if let Some(reason) = &ctx.money.forced_down {
        if is_running {
            draft.actions.push(Action::StopPod {
                id: pod.id.clone(),
                reason: reason.clone(),
            });
        }
        draft.suspended = Some(reason.clone());
        return;
    }

    // The stopped-volume policy.
    if pod.status == "EXITED"
        && !desired.running
        && let (Some(policy), Some(since)) = (&ctx.stopped_volume_policy, ctx.stopped_since)
    {
        let stopped_for = ctx.now.duration_since(since).as_secs_f64() / 3600.0;
        if stopped_for >= f64::from(policy.after_hours) {
            let volume = pod.mounts.persistent.as_ref().map_or(0, |p| p.size);
            let monthly = Decimal::from(volume) * ctx.prices.storage.pod_volume_stopped;
            let message = format!(
                "stopped for {stopped_for:.0} hours (policy: {} hours); its {volume} GB volume costs {} USD/month while stopped",
                policy.after_hours,
                usd(monthly)
            );
            draft.verdicts.push(Verdict::yes(
                CONDITION_STOPPED_TOO_LONG,
                "StoppedVolumePolicy",
                message.clone(),
            ));
            if policy.action == StoppedVolumeAction::Delete {
                draft.actions.push(Action::DeletePod {
                    id: pod.id.clone(),
                    reason: format!("stopped-volume policy: {message}"),
                });
            }
            return;
        }
    }

    let because = replace_reasons(desired, pod);
    if !because.is_empty() {
        let loses = pod
            .mounts
            .persistent
            .as_ref()
            .map(|p| format!("the {} GB pod volume at {} and its data", p.size, p.path));
        let action = Action::ReplacePod {
            old_id: pod.id.clone(),
            request: pod_request(desired, &desired.gpu_types[0]),
            candidates: desired.gpu_types.clone(),
            because,
            loses: loses.clone(),
        };
        let hash = plan_hash(std::slice::from_ref(&action));
        let approved = ctx.spec.replace_policy == ReplacePolicy::Allow
            || ctx.approved_hash == Some(hash.as_str());
        if loses.is_some() && !approved {
            let message = format!(
                "{}; to go ahead, annotate the workload with runpod-operator.dev/approve-replace={hash} or set spec.replacePolicy: Allow",
                action.describe()
            );
            draft.verdicts.push(Verdict::yes(
                CONDITION_REPLACE_NEEDS_APPROVAL,
                "DataWouldBeLost",
                message.clone(),
            ));
            draft.stalled = Some(("ReplaceNeedsApproval", message));
            return;
        }
        draft.spend(ctx, cost, decimal(pod.cost), action);
        return;
    }

    if let Some((update, resets)) = pod_update(desired, pod) {
        draft.actions.push(Action::UpdatePod {
            id: pod.id.clone(),
            request: update,
            resets,
        });
    }
    match (desired.running, pod.status.as_str()) {
        (true, "EXITED" | "ERROR") => draft.spend(
            ctx,
            cost,
            decimal(pod.cost),
            Action::StartPod { id: pod.id.clone() },
        ),
        (false, "RUNNING" | "PROVISIONING" | "STARTING") => draft.actions.push(Action::StopPod {
            id: pod.id.clone(),
            reason: "spec.state is Stopped".to_string(),
        }),
        (true, "PROVISIONING" | "STARTING") => {
            draft.waiting = Some(format!("pod {} is {}", pod.id, pod.status.to_lowercase()));
        }
        _ => {}
    }
}
