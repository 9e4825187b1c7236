//! Serverless endpoints: find the workload's endpoint, create it, PATCH what differs, and scale
//! it to zero when the credit policy stops it.

use rust_decimal::Decimal;

use super::{
    Action, Context, Draft, Observed,
    drift::{drift, env_drift, env_matches},
    money::check_worker_quota,
    owned_endpoints, scale_to_zero,
};
use crate::{
    api::DriftEntry,
    engine::{cost::WorkloadCost, desired::DesiredEndpoint},
    runpod::types::{CreateEndpoint, Endpoint, EndpointGpu, UpdateEndpoint, Workers},
};

fn endpoint_gpu(desired: &DesiredEndpoint) -> EndpointGpu {
    EndpointGpu {
        pools: desired.pools.clone(),
        count: desired.gpu_count,
        allowed_cuda_versions: desired.allowed_cuda_versions.clone(),
        min_cuda_version: desired.min_cuda_version.clone(),
    }
}

fn endpoint_workers(desired: &DesiredEndpoint) -> Workers {
    Workers {
        min: Some(desired.workers_min),
        max: Some(desired.workers_max),
        idle_timeout: desired.idle_timeout,
    }
}

fn endpoint_request(desired: &DesiredEndpoint) -> CreateEndpoint {
    CreateEndpoint {
        name: desired.name.clone(),
        endpoint_type: "QUEUE".to_string(),
        image: desired.container.image.clone(),
        args: desired.container.args.clone(),
        disk: Some(desired.container.disk),
        env: desired.container.env.clone(),
        ports: desired.container.ports.clone(),
        registry: None,
        gpu: endpoint_gpu(desired),
        workers: endpoint_workers(desired),
        scaling: desired.scaling.clone(),
        data_center_ids: desired.data_centers.clone(),
        network_volumes: desired.network_volumes.clone(),
        timeout: desired.timeout_ms,
        flashboot: desired.flashboot.to_string(),
    }
}

/// The endpoint's drift and the PATCH that corrects it.
fn endpoint_diff(
    desired: &DesiredEndpoint,
    e: &Endpoint,
) -> (Vec<DriftEntry>, UpdateEndpoint, bool) {
    let mut out = Vec::new();
    let mut update = UpdateEndpoint::default();
    let c = &desired.container;
    let mut raises = false;
    if e.image != c.image {
        out.push(drift("spec.image", &c.image, &e.image));
        update.image = Some(c.image.clone());
    }
    if e.disk != c.disk {
        out.push(drift("spec.containerDiskGb", c.disk, e.disk));
        update.disk = Some(c.disk);
        raises |= c.disk > e.disk;
    }
    if !env_matches(&c.env, &e.env) {
        out.extend(env_drift(&c.env, &e.env));
        update.env = Some(c.env.clone());
    }
    let gpu = e.gpu.clone().unwrap_or_default();
    if gpu.pools != desired.pools || gpu.count != desired.gpu_count {
        out.push(drift(
            "spec.gpu",
            format!("{} x {}", desired.gpu_count, desired.pools.join("|")),
            format!("{} x {}", gpu.count, gpu.pools.join("|")),
        ));
        update.gpu = Some(endpoint_gpu(desired));
        raises = true;
    }
    let workers = e.workers;
    let mut workers_changed = false;
    if workers.min != Some(desired.workers_min) {
        out.push(drift(
            "spec.serverless.activeWorkers",
            desired.workers_min,
            workers.min.unwrap_or(0),
        ));
        raises |= Some(desired.workers_min) > workers.min;
        workers_changed = true;
    }
    if workers.max != Some(desired.workers_max) {
        out.push(drift(
            "spec.serverless.maxWorkers",
            desired.workers_max,
            workers.max.unwrap_or(0),
        ));
        raises |= Some(desired.workers_max) > workers.max;
        workers_changed = true;
    }
    if let Some(idle) = desired.idle_timeout
        && workers.idle_timeout != Some(idle)
    {
        out.push(drift(
            "spec.serverless.idleTimeoutSeconds",
            idle,
            workers
                .idle_timeout
                .map_or("unset".to_string(), |v| v.to_string()),
        ));
        workers_changed = true;
    }
    if workers_changed {
        update.workers = Some(endpoint_workers(desired));
    }
    if e.scaling != desired.scaling {
        out.push(drift(
            "spec.serverless.scaler",
            format!("{:?}", desired.scaling),
            format!("{:?}", e.scaling),
        ));
        update.scaling = Some(desired.scaling.clone());
    }
    if e.data_center_ids != desired.data_centers {
        out.push(drift(
            "spec.dataCenters",
            desired.data_centers.join(","),
            e.data_center_ids.join(","),
        ));
        update.data_center_ids = Some(desired.data_centers.clone());
    }
    if e.network_volumes != desired.network_volumes {
        out.push(drift(
            "spec.networkVolumes",
            desired.network_volumes.join(","),
            e.network_volumes.join(","),
        ));
        update.network_volumes = Some(desired.network_volumes.clone());
    }
    if let Some(timeout) = desired.timeout_ms
        && e.timeout != timeout
    {
        out.push(drift(
            "spec.serverless.executionTimeoutSeconds",
            timeout / 1000,
            e.timeout / 1000,
        ));
        update.timeout = Some(timeout);
    }
    if e.flashboot != desired.flashboot {
        out.push(drift(
            "spec.serverless.flashBoot",
            desired.flashboot,
            &e.flashboot,
        ));
        update.flashboot = Some(desired.flashboot.to_string());
    }
    if e.name != desired.name {
        update.name = Some(desired.name.clone());
    }
    (out, update, raises)
}

pub(super) fn plan_endpoint(
    desired: &DesiredEndpoint,
    observed: Observed<'_>,
    ctx: &Context<'_>,
    cost: Option<&WorkloadCost>,
    draft: &mut Draft,
) {
    let mine = owned_endpoints(observed, ctx);
    let keep = mine
        .iter()
        .find(|e| ctx.known_id == Some(e.id.as_str()))
        .or_else(|| mine.first())
        .copied();
    for extra in mine.iter().filter(|e| keep.is_none_or(|k| k.id != e.id)) {
        draft.actions.push(Action::DeleteEndpoint {
            id: extra.id.clone(),
            reason: "a second endpoint for the same workload".to_string(),
        });
    }
    let floor = cost.map_or(Decimal::ZERO, |c| c.expected_per_hour);

    let Some(endpoint) = keep else {
        if let Some(reason) = &ctx.money.forced_down {
            draft.waiting = Some(format!("not created: {reason}"));
            return;
        }
        if let Some(refusal) = check_worker_quota(ctx, desired.workers_max, 0) {
            draft.refuse(refusal);
            draft.drift.push(drift("endpoint", "exists", "missing"));
            return;
        }
        let create = Action::CreateEndpoint {
            request: endpoint_request(desired),
        };
        draft.spend(ctx, cost, Decimal::ZERO, create);
        draft.drift.push(drift("endpoint", "exists", "missing"));
        return;
    };

    draft.runpod_id = Some(endpoint.id.clone());
    draft.object_registry = Some((false, endpoint.registry.clone()));
    draft.state = Some(format!(
        "{} active / {} max",
        endpoint.workers.min.unwrap_or(0),
        endpoint.workers.max.unwrap_or(0)
    ));
    draft.current_per_hour = floor;

    if let Some(reason) = &ctx.money.forced_down {
        draft.actions.extend(scale_to_zero(endpoint));
        draft.suspended = Some(reason.clone());
        return;
    }

    let (drift, update, raises) = endpoint_diff(desired, endpoint);
    draft.drift = drift;
    if update == UpdateEndpoint::default() {
        return;
    }
    // A refused scale-up leaves the endpoint as it is; what that costs at worst is not
    // known here, so the declared worst case stands for it (never under-counted).
    // An endpoint at zero workers (where the credit policy puts it) coming back up is a
    // restart: it needs the margin too.
    let current_max = endpoint.workers.max.unwrap_or(0);
    if desired.workers_max > current_max
        && let Some(refusal) = check_worker_quota(ctx, desired.workers_max, current_max)
    {
        draft.refuse(refusal);
        return;
    }
    let floor = cost.map_or(Decimal::ZERO, |c| c.worst_case_per_hour);
    let restart = endpoint.workers.max == Some(0);
    if raises && !draft.admit(ctx, cost, floor, restart) {
        return;
    }
    let saving = !raises
        && update.image.is_none()
        && update.env.is_none()
        && update.gpu.is_none()
        && update.workers.is_some();
    draft.actions.push(Action::UpdateEndpoint {
        id: endpoint.id.clone(),
        request: update,
        saving,
    });
}
