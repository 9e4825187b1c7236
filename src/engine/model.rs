//! A small pure model of what an action does to RunPod's state, for previews and for the
//! property tests (apply a plan, plan again: nothing left to do). It is not the simulator:
//! it knows only the fields the planner compares.

use super::plan::Action;
use crate::runpod::types::{Endpoint, EndpointGpu, Pod, PodGpu, PodRuntime, Workers};

/// Applies one action to the observed objects. New ids come from `next_id`.
pub fn apply(
    action: &Action,
    pods: &mut Vec<Pod>,
    endpoints: &mut Vec<Endpoint>,
    next_id: &mut u64,
) {
    let mut new_id = || {
        *next_id += 1;
        format!("model{next_id:09}")
    };
    match action {
        Action::CreatePod { request, .. } | Action::ReplacePod { request, .. } => {
            pods.push(Pod {
                id: new_id(),
                name: request.name.clone(),
                status: "RUNNING".into(),
                image: request.image.clone(),
                args: request.args.clone().unwrap_or_default(),
                disk: request.disk.unwrap_or(50),
                ports: request.ports.clone(),
                env: request.env.clone(),
                registry: request.registry.clone(),
                mounts: request.mounts.clone().unwrap_or_default(),
                gpu: Some(PodGpu {
                    id: request.gpu.id.clone(),
                    count: request.gpu.count,
                }),
                cloud: request.cloud.clone().unwrap_or_else(|| "SECURE".into()),
                data_center_id: Some(
                    request
                        .data_center_ids
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "EU-RO-1".into()),
                ),
                cost: 1.0,
                locked: false,
                created_at: format!("2026-01-01T00:00:{:02}Z", *next_id % 60),
                // The model's pods come up settled: serving, as a switch of side waits for.
                runtime: Some(PodRuntime {
                    uptime: Some(crate::engine::plan::SERVING_AFTER_SECONDS),
                    gpu_util_max: None,
                }),
            });
        }
        Action::UpdatePod { id, request, .. } => {
            if let Some(pod) = pods.iter_mut().find(|p| &p.id == id) {
                if let Some(v) = &request.image {
                    pod.image = v.clone();
                }
                if let Some(v) = &request.args {
                    pod.args = v.clone();
                }
                if let Some(v) = request.disk {
                    pod.disk = v;
                }
                if let Some(v) = &request.ports {
                    pod.ports = v.clone();
                }
                if let Some(v) = &request.env {
                    pod.env = v.clone();
                }
                if let Some(v) = &request.mounts {
                    pod.mounts = v.clone();
                }
                if let Some(v) = &request.name {
                    pod.name = v.clone();
                }
                if let Some(v) = &request.registry {
                    pod.registry = v.clone();
                }
            }
        }
        Action::StartPod { id } => set_status(pods, id, "RUNNING"),
        Action::StopPod { id, .. } => set_status(pods, id, "EXITED"),
        Action::DeletePod { id, .. } => pods.retain(|p| &p.id != id),
        Action::CreateEndpoint { request } => endpoints.push(Endpoint {
            id: new_id(),
            name: request.name.clone(),
            image: request.image.clone(),
            args: request.args.clone().unwrap_or_default(),
            ports: request.ports.clone(),
            env: request.env.clone(),
            disk: request.disk.unwrap_or(50),
            gpu: Some(request.gpu.clone()),
            workers: Workers {
                min: request.workers.min.or(Some(0)),
                max: request.workers.max.or(Some(3)),
                idle_timeout: request.workers.idle_timeout.or(Some(10)),
            },
            scaling: request.scaling.clone(),
            data_center_ids: request.data_center_ids.clone(),
            network_volumes: request.network_volumes.clone(),
            timeout: request.timeout.unwrap_or(0),
            flashboot: request.flashboot.clone(),
            registry: request.registry.clone(),
        }),
        Action::UpdateEndpoint { id, request, .. } => {
            if let Some(e) = endpoints.iter_mut().find(|e| &e.id == id) {
                if let Some(v) = &request.image {
                    e.image = v.clone();
                }
                if let Some(v) = &request.env {
                    e.env = v.clone();
                }
                if let Some(v) = request.disk {
                    e.disk = v;
                }
                if let Some(v) = &request.gpu {
                    e.gpu = Some(EndpointGpu { ..v.clone() });
                }
                if let Some(w) = request.workers {
                    e.workers.min = w.min.or(e.workers.min);
                    e.workers.max = w.max.or(e.workers.max);
                    e.workers.idle_timeout = w.idle_timeout.or(e.workers.idle_timeout);
                }
                if let Some(v) = &request.scaling {
                    e.scaling = v.clone();
                }
                if let Some(v) = &request.data_center_ids {
                    e.data_center_ids = v.clone();
                }
                if let Some(v) = &request.network_volumes {
                    e.network_volumes = v.clone();
                }
                if let Some(v) = request.timeout {
                    e.timeout = v;
                }
                if let Some(v) = &request.flashboot {
                    e.flashboot = v.clone();
                }
                if let Some(v) = &request.name {
                    e.name = v.clone();
                }
                if let Some(v) = &request.registry {
                    e.registry = v.clone();
                }
            }
        }
        Action::DeleteEndpoint { id, .. } => endpoints.retain(|e| &e.id != id),
        // Volumes and registry credentials are planned on their own; the model tracks pods
        // and endpoints.
        Action::CreateRegistry { .. }
        | Action::DeleteRegistry { .. }
        | Action::CreateVolume { .. }
        | Action::UpdateVolume { .. }
        | Action::DeleteVolume { .. }
        | Action::Wait { .. } => {}
    }
}

fn set_status(pods: &mut [Pod], id: &str, status: &str) {
    if let Some(pod) = pods.iter_mut().find(|p| p.id == id) {
        pod.status = status.to_string();
    }
}
