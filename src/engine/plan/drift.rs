//! Drift: where what RunPod runs differs from the spec, field by field (environment values
//! are never shown, only keys).

use std::collections::BTreeMap;

use crate::{
    api::DriftEntry,
    engine::{
        desired::{DesiredMount, DesiredPod},
        identity::OWNER_ENV,
    },
    runpod::types::Pod,
};

pub(super) fn drift(field: &str, declared: impl ToString, observed: impl ToString) -> DriftEntry {
    DriftEntry {
        field: field.to_string(),
        declared: declared.to_string(),
        observed: observed.to_string(),
    }
}

/// Environment drift, by key, never by value (values may come from Secrets).
pub(super) fn env_drift(
    desired: &BTreeMap<String, String>,
    observed: &BTreeMap<String, String>,
) -> Vec<DriftEntry> {
    let keys: std::collections::BTreeSet<&String> = desired.keys().chain(observed.keys()).collect();
    keys.into_iter()
        .filter(|k| k.as_str() != OWNER_ENV)
        .filter_map(|k| match (desired.get(k), observed.get(k)) {
            (Some(a), Some(b)) if a == b => None,
            (Some(_), Some(_)) => Some(drift(
                &format!("spec.env[{k}]"),
                "(value)",
                "(another value)",
            )),
            (Some(_), None) => Some(drift(&format!("spec.env[{k}]"), "set", "unset")),
            (None, _) => Some(drift(&format!("spec.env[{k}]"), "unset", "set")),
        })
        .collect()
}

pub(super) fn env_matches(
    desired: &BTreeMap<String, String>,
    observed: &BTreeMap<String, String>,
) -> bool {
    env_drift(desired, observed).is_empty()
}

pub(super) fn pod_drift(desired: &DesiredPod, pod: &Pod) -> Vec<DriftEntry> {
    let mut out = Vec::new();
    let c = &desired.container;
    if pod.image != c.image {
        out.push(drift("spec.image", &c.image, &pod.image));
    }
    if pod.args != c.args.clone().unwrap_or_default() && c.args.is_some() {
        out.push(drift(
            "spec.args",
            c.args.as_deref().unwrap_or(""),
            &pod.args,
        ));
    }
    if pod.disk != c.disk {
        out.push(drift("spec.containerDiskGb", c.disk, pod.disk));
    }
    if pod.ports != c.ports {
        out.push(drift("spec.ports", c.ports.join(","), pod.ports.join(",")));
    }
    out.extend(env_drift(&c.env, &pod.env));
    let (gpu, count) = pod
        .gpu
        .as_ref()
        .map_or(("", 0), |g| (g.id.as_str(), g.count));
    if !desired.gpu_types.iter().any(|t| t == gpu) {
        out.push(drift("spec.gpu.types", desired.gpu_types.join(" | "), gpu));
    }
    if count != desired.gpu_count {
        out.push(drift("spec.gpu.count", desired.gpu_count, count));
    }
    if pod.cloud != desired.cloud {
        out.push(drift("spec.gpu.cloud", desired.cloud, &pod.cloud));
    }
    if let Some(dc) = &pod.data_center_id
        && !desired.data_centers.is_empty()
        && !desired.data_centers.contains(dc)
    {
        out.push(drift(
            "spec.dataCenters",
            desired.data_centers.join(","),
            dc,
        ));
    }
    match (&desired.mount, &pod.mounts.persistent) {
        (Some(DesiredMount::Persistent { size, path }), Some(p)) => {
            if p.size != *size {
                out.push(drift("spec.volume.sizeGb", size, p.size));
            }
            if &p.path != path {
                out.push(drift("spec.volume.mountPath", path, &p.path));
            }
        }
        (Some(DesiredMount::Network { path, .. }), _) => {
            if let Some(m) = pod.mounts.network.as_ref().and_then(|l| l.first())
                && &m.path != path
            {
                out.push(drift("spec.networkVolumes[0].mountPath", path, &m.path));
            }
        }
        _ => {}
    }
    let running = matches!(pod.status.as_str(), "RUNNING" | "PROVISIONING" | "STARTING");
    if running != desired.running {
        out.push(drift(
            "spec.state",
            if desired.running {
                "Running"
            } else {
                "Stopped"
            },
            &pod.status,
        ));
    }
    out
}
