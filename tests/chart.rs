//! The Helm chart: its CRDs are `crds/`; rendered with default and non-default values it is
//! hardened as promised; its RBAC grants exactly what the controller uses; bad values fail.
//! Needs `helm` (from `HELM` or the PATH; `.ci/run` installs it). Where the build finds no
//! helm (`build.rs`), the tests that render are compiled as ignored and `cargo test` counts
//! them in its summary.

use std::{collections::BTreeSet, path::Path, process::Command};

use runpod_operator::controller::rbac::{PERMISSIONS, Scope};
use serde_json::Value;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/runpod-operator");

fn helm() -> String {
    std::env::var("HELM").unwrap_or_else(|_| "helm".to_string())
}

fn render(helm: &str, args: &[&str]) -> Result<Vec<Value>, String> {
    let output = Command::new(helm)
        .args(["template", "rpo", CHART, "--namespace", "runpod-operator"])
        .args(args)
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let text = String::from_utf8(output.stdout).unwrap();
    Ok(serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect())
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

#[test]
fn the_charts_crds_are_the_generated_ones() {
    let generated = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let chart = Path::new(CHART).join("crds");
    let names = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names(&generated), names(&chart));
    for name in names(&generated) {
        assert_eq!(
            std::fs::read_to_string(generated.join(&name)).unwrap(),
            std::fs::read_to_string(chart.join(&name)).unwrap(),
            "charts/runpod-operator/crds/{name} is stale: run `cargo run -- crd --out-dir charts/runpod-operator/crds`"
        );
    }
}

#[test]
#[cfg_attr(
    helm_missing,
    ignore = "needs helm: set HELM or put helm on the PATH (.ci/run installs it)"
)]
fn the_rbac_grants_exactly_what_the_controller_uses() {
    let helm = helm();
    let docs = render(&helm, &[]).unwrap();
    let grants = |role_kind: &str| -> BTreeSet<(String, String, String)> {
        kind(&docs, role_kind)
            .iter()
            .flat_map(|role| role["rules"].as_array().unwrap().clone())
            .flat_map(|rule| {
                let mut out = Vec::new();
                for group in rule["apiGroups"].as_array().unwrap() {
                    for resource in rule["resources"].as_array().unwrap() {
                        for verb in rule["verbs"].as_array().unwrap() {
                            out.push((
                                group.as_str().unwrap().to_string(),
                                resource.as_str().unwrap().to_string(),
                                verb.as_str().unwrap().to_string(),
                            ));
                        }
                    }
                }
                out
            })
            .collect()
    };
    let wanted = |scope: Scope| -> BTreeSet<(String, String, String)> {
        PERMISSIONS
            .iter()
            .filter(|p| p.scope == scope)
            .flat_map(|p| {
                p.verbs
                    .iter()
                    .map(move |v| (p.group.to_string(), p.resource.to_string(), v.to_string()))
            })
            .collect()
    };
    assert_eq!(grants("ClusterRole"), wanted(Scope::Cluster));
    assert_eq!(grants("Role"), wanted(Scope::ReleaseNamespace));
    assert!(
        !grants("ClusterRole")
            .iter()
            .any(|(_, r, v)| r == "secrets" && (v == "create" || v == "update" || v == "delete")),
        "Secrets are only read"
    );
}

#[test]
#[cfg_attr(
    helm_missing,
    ignore = "needs helm: set HELM or put helm on the PATH (.ci/run installs it)"
)]
fn the_deployment_is_hardened_probed_and_led_by_one_of_two() {
    let helm = helm();
    let docs = render(&helm, &[]).unwrap();
    let deployment = kind(&docs, "Deployment")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"][0],
        "ALL"
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(container["args"][0], "run");
    let env: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for name in [
        "POD_NAME",
        "LEASE_NAMESPACE",
        "LEASE_NAME",
        "METRICS_ADDR",
        "LOG_FORMAT",
    ] {
        assert!(env.contains(&name), "{name} missing from {env:?}");
    }
    assert_eq!(kind(&docs, "Service")[0]["spec"]["ports"][0]["port"], 8080);
    assert_eq!(
        kind(&docs, "PodDisruptionBudget")[0]["spec"]["minAvailable"],
        1
    );
    assert!(
        kind(&docs, "ServiceMonitor").is_empty(),
        "optional, off by default"
    );
    assert!(
        kind(&docs, "RunPodAccount").is_empty(),
        "optional, off by default"
    );
}

#[test]
#[cfg_attr(
    helm_missing,
    ignore = "needs helm: set HELM or put helm on the PATH (.ci/run installs it)"
)]
fn non_default_values_render_the_optional_parts() {
    let helm = helm();
    let docs = render(
        &helm,
        &[
            "--set",
            "watchNamespace=ml,serviceMonitor.enabled=true,defaultAccount.enabled=true,argocdHealth.enabled=true,replicaCount=3,logFormat=text,podDisruptionBudget.enabled=false",
        ],
    )
    .unwrap();
    let container = &kind(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "WATCH_NAMESPACE" && e["value"] == "ml")
    );
    assert_eq!(
        kind(&docs, "ServiceMonitor")[0]["spec"]["endpoints"][0]["path"],
        "/metrics"
    );
    let account = kind(&docs, "RunPodAccount")[0];
    assert_eq!(account["metadata"]["name"], "default");
    assert_eq!(
        account["spec"]["apiKeySecretRef"]["namespace"],
        "runpod-operator"
    );
    assert_eq!(account["spec"]["spendingCapUsdPerHour"], "80");
    let health = kind(&docs, "ConfigMap")[0];
    assert!(
        health["data"]["resource.customizations.health.runpod-operator.dev_GpuWorkload"]
            .as_str()
            .unwrap()
            .contains("hs.status = \"Degraded\"")
    );
    assert!(kind(&docs, "PodDisruptionBudget").is_empty());
}

#[test]
#[cfg_attr(
    helm_missing,
    ignore = "needs helm: set HELM or put helm on the PATH (.ci/run installs it)"
)]
fn bad_values_fail_at_install_with_the_field() {
    let helm = helm();
    let err = render(&helm, &["--set", "logFormat=xml"]).unwrap_err();
    assert!(err.contains("/logFormat"), "{err}");
    let err = render(
        &helm,
        &["--set", "defaultAccount.spendingCapUsdPerHour=lots"],
    )
    .unwrap_err();
    assert!(err.contains("spendingCapUsdPerHour"), "{err}");
    let err = render(&helm, &["--set", "replicaCount=0"]).unwrap_err();
    assert!(err.contains("replicaCount"), "{err}");
}
