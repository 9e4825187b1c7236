//! The CRDs in `crds/` are exactly what `runpod-operator crd` generates, and every CEL rule
//! in them would pass the API server's own checks (it compiles, uses only CRD variables,
//! stays inside the cost budget, and carries a message).

use std::{collections::BTreeSet, path::Path};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::cel::{ScopeContext, analyze_rule, compile_schema};
use runpod_operator::api::{crd_file_name, crds};
use serde_json::Value;

#[test]
fn crds_folder_is_in_sync_with_the_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut expected = BTreeSet::new();
    for crd in crds() {
        let name = crd_file_name(&crd);
        let generated = serde_norway::to_string(&crd).unwrap();
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_else(|e| {
            panic!("crds/{name} is missing ({e}): run `cargo run -- crd --out-dir crds`")
        });
        assert!(
            committed == generated,
            "crds/{name} is stale: run `cargo run -- crd --out-dir crds` and commit the result"
        );
        expected.insert(name);
    }
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        present, expected,
        "crds/ holds files the code no longer generates"
    );
}

fn openapi_schema(crd: &CustomResourceDefinition) -> Value {
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref());
    serde_json::to_value(schema.expect("a derived CRD has a schema")).unwrap()
}

/// Every `x-kubernetes-validations` entry under a schema node, with its JSON path.
fn rules(schema: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    if let Some(list) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        out.extend(list.iter().map(|r| (path.to_string(), r.clone())));
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (key, child) in props {
            rules(child, &format!("{path}.{key}"), out);
        }
    }
    if let Some(items) = schema.get("items") {
        rules(items, &format!("{path}[]"), out);
    }
}

/// Variables a rule binds itself in `all`, `exists`, `exists_one`, `map` or `filter`. The
/// scope analysis counts them as free variables; the API server does not.
fn macro_variables(rule: &str) -> Vec<String> {
    let mut bound = Vec::new();
    for name in [".all(", ".exists(", ".exists_one(", ".map(", ".filter("] {
        for (i, _) in rule.match_indices(name) {
            if let Some((variable, _)) = rule[i + name.len()..].split_once(',') {
                bound.push(variable.trim().to_string());
            }
        }
    }
    bound
}

#[test]
fn every_rule_compiles_stays_in_budget_and_explains_itself() {
    let mut total = 0;
    for crd in crds() {
        let schema = openapi_schema(&crd);
        let compiled = compile_schema(&schema);
        assert!(
            !compiled.has_errors(),
            "{}: {:?}",
            crd.spec.names.kind,
            compiled.compilation_errors()
        );

        let mut found = Vec::new();
        rules(&schema, "", &mut found);
        for (path, rule) in &found {
            let text = rule["rule"].as_str().unwrap();
            let message = rule["message"].as_str().unwrap_or_default();
            assert!(
                message.len() > 20,
                "{path}: rule {text:?} has no useful message"
            );
            let bound = macro_variables(text);
            let warnings: Vec<_> = analyze_rule(text, &compiled, ScopeContext::CrdValidation)
                .into_iter()
                .filter(|w| {
                    !bound
                        .iter()
                        .any(|v| w.message.contains(&format!("variable '{v}'")))
                })
                .collect();
            assert!(warnings.is_empty(), "{path}: rule {text:?}: {warnings:?}");
        }
        total += found.len();
    }
    // The three kinds carry 40 rules; a rule lost in a refactor shows here.
    assert!(total >= 40, "only {total} rules found");
}

#[test]
fn gpu_workload_prints_the_columns_users_read() {
    let crd = crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "GpuWorkload")
        .unwrap();
    let columns: Vec<_> = crd.spec.versions[0]
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.json_path.as_str(),
                c.priority.unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("Type", ".spec.type", 0),
            ("GPU", ".status.gpu", 0),
            ("State", ".status.state", 0),
            ("$/h", ".status.costPerHour", 0),
            (
                "Ready",
                ".status.conditions[?(@.type==\"Ready\")].status",
                0
            ),
            ("Age", ".metadata.creationTimestamp", 0),
            // `kubectl get -o wide` adds these.
            ("RunPod ID", ".status.runpodId", 1),
            ("$/month", ".status.projectedMonthlyCost", 1),
            ("Drift", ".status.driftCount", 1),
        ]
    );
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["gw".to_string()][..])
    );
    assert_eq!(crd.spec.scope, "Namespaced");
}

#[test]
fn every_kind_has_a_status_subresource_and_the_right_scope() {
    for crd in crds() {
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{} has no status subresource",
            crd.spec.names.kind
        );
        let scope = if crd.spec.names.kind == "RunPodAccount" {
            "Cluster"
        } else {
            "Namespaced"
        };
        assert_eq!(crd.spec.scope, scope, "{}", crd.spec.names.kind);
        assert_eq!(crd.spec.group, "runpod-operator.dev");
    }
}

/// `kubectl explain` shows each field's description: no field of a spec goes without one.
#[test]
fn every_spec_field_is_documented() {
    fn walk(schema: &Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (key, child) in props {
                let child_path = format!("{path}.{key}");
                if child
                    .get("description")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    missing.push(child_path.clone());
                }
                walk(child, &child_path, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(items, &format!("{path}[]"), missing);
        }
    }
    let mut missing = Vec::new();
    for crd in crds() {
        let schema = openapi_schema(&crd);
        // Conditions come from Kubernetes' own type and are documented there.
        walk(
            &schema["properties"]["spec"],
            &format!("{}.spec", crd.spec.names.kind),
            &mut missing,
        );
    }
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:#?}"
    );
}

/// `kubectl explain` descends into every field and prints its type: the API server drops the
/// type of a `nullable` field when it publishes OpenAPI v2, so no field is published nullable,
/// and every schema node names its type.
#[test]
fn every_published_field_has_a_type_and_none_is_nullable() {
    fn walk(node: &Value, path: &str, out: &mut Vec<String>) {
        let Some(object) = node.as_object() else {
            return;
        };
        if object.contains_key("nullable") {
            out.push(format!("{path}: nullable"));
        }
        if !object.contains_key("type")
            && !object.contains_key("x-kubernetes-int-or-string")
            && !object.contains_key("x-kubernetes-preserve-unknown-fields")
        {
            out.push(format!("{path}: no type"));
        }
        if let Some(Value::Object(properties)) = object.get("properties") {
            for (name, child) in properties {
                walk(child, &format!("{path}.{name}"), out);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = object.get(key) {
                walk(child, &format!("{path}[{key}]"), out);
            }
        }
    }
    for crd in crds() {
        let value = serde_json::to_value(&crd).unwrap();
        let mut problems = Vec::new();
        walk(
            &value["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
            crd.metadata.name.as_deref().unwrap_or_default(),
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
