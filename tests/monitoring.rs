//! The chart's Grafana dashboard and Prometheus alerts read only metrics the operator exports:
//! every expression is parsed as PromQL (syntax checked), and every `runpod_operator_*` name
//! it uses must be on `/metrics` of an operator run (`run_until` against the fake API server,
//! the simulator as RunPod). Needs helm to render the chart; see `build.rs`.

mod support;

use std::{collections::BTreeSet, process::Command, time::Duration};

use serde_json::Value;
use support::{Harness, eventually, ready};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/runpod-operator");
const VALUES: &str = "grafanaDashboard.enabled=true,prometheusRule.enabled=true";

fn helm() -> String {
    std::env::var("HELM").unwrap_or_else(|_| "helm".to_string())
}

/// The names a scrape can be queried by: each sample's name, and for each family its
/// OpenMetrics sample names (`_total`, `_bucket`, `_sum`, `_count`).
fn exported(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            match kind {
                "counter" => {
                    names.insert(format!("{name}_total"));
                }
                "histogram" => {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{suffix}"));
                    }
                }
                _ => {
                    names.insert(name.to_string());
                }
            }
        } else if !line.starts_with('#') {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

/// Every `runpod_operator_*` identifier in a PromQL expression, which must parse.
fn used(expr: &str) -> BTreeSet<String> {
    promql_parser::parser::parse(expr).unwrap_or_else(|e| panic!("not PromQL: {expr}: {e}"));
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut at = 0;
    while let Some(found) = expr[at..].find("runpod_operator_") {
        let start = at + found;
        let end = start
            + expr[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len() - start);
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if !preceded {
            names.insert(expr[start..end].to_string());
        }
        at = end;
    }
    names
}

fn render() -> Vec<Value> {
    let output = Command::new(helm())
        .args([
            "template",
            "rpo",
            CHART,
            "--namespace",
            "runpod-operator",
            "--set",
            VALUES,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// The dashboard's and the rules' expressions, by where they are.
fn expressions(docs: &[Value]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let dashboard = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("the dashboard ConfigMap, with the sidecar label");
    let json: Value =
        serde_json::from_str(dashboard["data"]["runpod-operator.json"].as_str().unwrap()).unwrap();
    for panel in json["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            out.push((
                format!("panel {:?}", panel["title"]),
                target["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    let rules = docs
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("the PrometheusRule");
    for group in rules["spec"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let expr = match &rule["expr"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push((format!("alert {}", rule["alert"]), expr));
        }
    }
    out
}

#[test]
#[cfg_attr(
    helm_missing,
    ignore = "needs helm: set HELM or put helm on the PATH (.ci/run installs it)"
)]
fn the_chart_with_dashboard_and_alerts_lints() {
    let output = Command::new(helm())
        .args(["lint", CHART, "--set", VALUES])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let docs = render();
    let alerts: Vec<String> = expressions(&docs)
        .into_iter()
        .filter(|(at, _)| at.starts_with("alert"))
        .map(|(at, _)| at)
        .collect();
    for wanted in [
        "RunPodRunwayShort",
        "RunPodSpendNearCap",
        "GpuWorkloadStalled",
        "GpuWorkloadRefusedByCap",
        "GpuWorkloadDriftPersists",
        "RunPodOperatorReconcileErrors",
        "RunPodRequestBudgetExhausted",
    ] {
        assert!(
            alerts.iter().any(|a| a.contains(wanted)),
            "no alert {wanted}: {alerts:?}"
        );
    }
}

#[test]
fn a_wrong_expression_or_name_is_caught() {
    assert!(promql_parser::parser::parse("sum by (account (rate(x[5m]))").is_err());
    assert_eq!(
        used("rate(runpod_operator_reconciles_total[5m]) / runpod_operator_nope"),
        BTreeSet::from([
            "runpod_operator_reconciles_total".to_string(),
            "runpod_operator_nope".to_string()
        ])
    );
    let names = exported(
        "# TYPE runpod_operator_reconciles counter\nrunpod_operator_reconciles_total{kind=\"x\"} 1\n",
    );
    assert!(names.contains("runpod_operator_reconciles_total"));
    assert!(!names.contains("runpod_operator_nope"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    helm_missing,
    ignore = "needs helm: set HELM or put helm on the PATH (.ci/run installs it)"
)]
async fn every_metric_the_dashboard_and_alerts_use_is_exported() {
    let h = Harness::new(40.0).await;
    h.account(5).await;
    h.secret("research", "wandb", "apiKey", "wandb-key").await;
    h.secret("inference", "huggingface", "token", "hf-token")
        .await;
    for file in [
        "examples/weights-volume.yaml",
        "examples/training-pod.yaml",
        "examples/image-matting-endpoint.yaml",
    ] {
        h.apply_file(file).await;
    }
    let operator = h.start("op-1", Duration::from_millis(500));
    eventually(Duration::from_secs(90), "every workload Ready", || async {
        let workloads = h.workloads().await;
        !workloads.is_empty() && workloads.iter().all(ready)
    })
    .await;
    // The account's figures come from its own reconcile; wait for them too.
    let metrics_at = |op: &support::Instance| {
        let addr = op.addr;
        async move {
            let body = runpod_operator::tls::http_client_builder()
                .build()
                .unwrap()
                .get(format!("http://{addr}/metrics"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            Some(body)
        }
    };
    // The account's figures (the runway once something bills) come from its own reconcile:
    // scrape until every name is there, or report what never came.
    let docs = render();
    let wanted: BTreeSet<String> = expressions(&docs)
        .iter()
        .flat_map(|(_, e)| used(e))
        .collect();
    let started = std::time::Instant::now();
    let mut exported = BTreeSet::new();
    while started.elapsed() < Duration::from_secs(60) {
        exported = metrics_at(&operator)
            .await
            .map(|m| self::exported(&m))
            .unwrap_or_default();
        if wanted.is_subset(&exported) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut missing = Vec::new();
    for (at, expr) in expressions(&docs) {
        let names = used(&expr);
        assert!(!names.is_empty(), "{at} reads no operator metric: {expr}");
        for name in names {
            if !exported.contains(&name) {
                missing.push(format!("{at}: {name}"));
            }
        }
    }
    operator.stop().await.unwrap();
    assert!(
        missing.is_empty(),
        "not exported: {missing:#?}\nexported: {exported:#?}"
    );
}
