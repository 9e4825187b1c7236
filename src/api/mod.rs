//! The Kubernetes API of the operator: group `runpod-operator.dev`, version `v1alpha1`.
//!
//! Three custom resources live here as Rust types, and their CRDs are derived from them:
//! [`GpuWorkload`], [`NetworkVolume`] and [`RunPodAccount`]. Every rule that needs no prices
//! or account data is a CEL rule in the CRD (`x-kubernetes-validations`), so the API server
//! refuses a bad manifest before the operator sees it; [`validate`] runs the same rules
//! without a cluster. This module does no I/O.

mod account;
mod common;
mod gpu_workload;
mod network_volume;
pub mod validate;

pub use account::*;
pub use common::*;
pub use gpu_workload::*;
pub use network_volume::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every custom resource of the operator.
pub const API_GROUP: &str = "runpod-operator.dev";
/// The one served and stored version.
pub const API_VERSION: &str = "v1alpha1";

/// Every CRD of the operator, in the order `runpod-operator crd` prints them.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        published(GpuWorkload::crd()),
        published(NetworkVolume::crd()),
        published(RunPodAccount::crd()),
    ]
}

/// The CRD as published: no `nullable` on optional fields. The API server drops the `type`
/// of a nullable field when it publishes OpenAPI v2, and `kubectl explain` then prints `<>`
/// and shows nothing below it. An optional field is left out, never sent as `null`, and a
/// `null` a user writes is pruned by the API server as if absent.
pub fn published(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let Ok(mut value) = serde_json::to_value(&crd) else {
        return crd;
    };
    if let Some(versions) = value["spec"]["versions"].as_array_mut() {
        for version in versions {
            strip_nullable(&mut version["schema"]["openAPIV3Schema"]);
        }
    }
    serde_json::from_value(value).unwrap_or(crd)
}

fn strip_nullable(node: &mut serde_json::Value) {
    let Some(object) = node.as_object_mut() else {
        return;
    };
    object.remove("nullable");
    if let Some(serde_json::Value::Object(children)) = object.get_mut("properties") {
        for child in children.values_mut() {
            strip_nullable(child);
        }
    }
    for key in ["additionalProperties", "items"] {
        if let Some(child) = object.get_mut(key) {
            strip_nullable(child);
        }
    }
}

/// The CRDs as one multi-document YAML stream, exactly what `crds/` holds.
pub fn crds_yaml() -> Result<String, serde_norway::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(&crd)?);
    }
    Ok(out)
}

/// The file name under `crds/` for one CRD, e.g. `gpuworkloads.runpod-operator.dev.yaml`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}
