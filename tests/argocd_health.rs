//! The Argo CD health checks (Lua) against status fixtures for each outcome, run by a real
//! Lua 5.1 interpreter (Argo CD's dialect). Needs `lua5.1`: CI installs it; locally these tests
//! say they skipped when it is missing.

use std::process::Command;

use serde_json::{Value, json};

const HEALTH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/runpod-operator/files/health"
);

fn lua() -> Option<&'static str> {
    match Command::new("lua5.1").arg("-v").output() {
        Ok(o) if o.status.success() => Some("lua5.1"),
        _ if std::env::var_os("CI").is_some() => {
            panic!("lua5.1 is required in CI: .ci/run installs it")
        }
        _ => {
            eprintln!("SKIPPED: no lua5.1 (apt-get install lua5.1)");
            None
        }
    }
}

/// A JSON value as a Lua literal.
fn to_lua(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!(
            "{{{}}}",
            items.iter().map(to_lua).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("[{k:?}] = {}", to_lua(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Runs a kind's health script on an object: `(status, message)`.
fn health(lua: &str, kind: &str, obj: Value) -> (String, String) {
    let script = std::fs::read_to_string(format!("{HEALTH}/{kind}.lua")).unwrap();
    let program = format!(
        "obj = {}\nlocal function check()\n{script}\nend\nlocal hs = check()\nio.write(hs.status .. \"|\" .. (hs.message or \"\"))",
        to_lua(&obj)
    );
    let output = Command::new(lua).args(["-e", &program]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let (status, message) = text.split_once('|').unwrap();
    (status.to_string(), message.to_string())
}

fn condition(kind: &str, status: bool, reason: &str, message: &str) -> Value {
    json!({"type": kind, "status": if status { "True" } else { "False" }, "reason": reason, "message": message})
}

fn object(spec: Value, generation: i64, observed: Option<i64>, conditions: Vec<Value>) -> Value {
    let mut obj = json!({"metadata": {"name": "w", "generation": generation}, "spec": spec});
    if let Some(observed) = observed {
        obj["status"] = json!({"observedGeneration": observed, "conditions": conditions});
    }
    obj
}

#[test]
fn a_workload_is_healthy_when_ready_for_the_latest_spec() {
    let Some(lua) = lua() else { return };
    let obj = object(
        json!({}),
        3,
        Some(3),
        vec![condition(
            "Ready",
            true,
            "InSync",
            "RunPod matches the spec",
        )],
    );
    assert_eq!(
        health(lua, "GpuWorkload", obj),
        ("Healthy".into(), "RunPod matches the spec".into())
    );
}

#[test]
fn a_workload_is_progressing_while_reconciling_or_behind_or_new() {
    let Some(lua) = lua() else { return };
    let reconciling = object(
        json!({}),
        2,
        Some(2),
        vec![
            condition("Ready", false, "Progressing", "create pod"),
            condition("Reconciling", true, "Progressing", "create pod rpo-ml-w"),
        ],
    );
    assert_eq!(
        health(lua, "GpuWorkload", reconciling),
        ("Progressing".into(), "create pod rpo-ml-w".into())
    );
    let behind = object(
        json!({}),
        4,
        Some(3),
        vec![condition("Ready", true, "InSync", "")],
    );
    assert_eq!(
        health(lua, "GpuWorkload", behind).0,
        "Progressing",
        "observedGeneration lags"
    );
    assert_eq!(
        health(lua, "GpuWorkload", object(json!({}), 1, None, vec![])).0,
        "Progressing"
    );
}

#[test]
fn a_workload_is_degraded_when_stalled() {
    let Some(lua) = lua() else { return };
    let message = "worst case 82.16 USD/h for the account exceeds the account cap 80.00 USD/h";
    let obj = object(
        json!({}),
        1,
        Some(1),
        vec![
            condition("Ready", false, "AccountCapExceeded", message),
            condition("Stalled", true, "AccountCapExceeded", message),
        ],
    );
    assert_eq!(
        health(lua, "GpuWorkload", obj),
        ("Degraded".into(), message.into())
    );
}

#[test]
fn a_workload_is_suspended_when_paused_stopped_or_held_down_by_policy() {
    let Some(lua) = lua() else { return };
    let paused = object(json!({"managementPolicy": "Paused"}), 1, Some(1), vec![]);
    assert_eq!(health(lua, "GpuWorkload", paused).0, "Suspended");
    let stopped = object(
        json!({"state": "Stopped"}),
        1,
        Some(1),
        vec![condition("Ready", true, "InSync", "")],
    );
    assert_eq!(health(lua, "GpuWorkload", stopped).0, "Suspended");
    let credit = object(
        json!({}),
        1,
        Some(1),
        vec![condition(
            "Ready",
            false,
            "StoppedByPolicy",
            "credit policy: the balance covers less than 24 hours",
        )],
    );
    assert_eq!(
        health(lua, "GpuWorkload", credit),
        (
            "Suspended".into(),
            "credit policy: the balance covers less than 24 hours".into()
        )
    );
}

#[test]
fn a_network_volume_follows_the_same_rules() {
    let Some(lua) = lua() else { return };
    let ready = object(
        json!({}),
        1,
        Some(1),
        vec![condition("Ready", true, "InSync", "ok")],
    );
    assert_eq!(health(lua, "NetworkVolume", ready).0, "Healthy");
    let immutable = object(
        json!({}),
        2,
        Some(2),
        vec![condition(
            "Stalled",
            true,
            "Immutable",
            "a volume cannot move",
        )],
    );
    assert_eq!(
        health(lua, "NetworkVolume", immutable),
        ("Degraded".into(), "a volume cannot move".into())
    );
    assert_eq!(
        health(
            lua,
            "NetworkVolume",
            object(json!({"managementPolicy": "Paused"}), 1, Some(1), vec![])
        )
        .0,
        "Suspended"
    );
    assert_eq!(
        health(lua, "NetworkVolume", object(json!({}), 1, None, vec![])).0,
        "Progressing"
    );
}

#[test]
fn an_account_is_degraded_without_a_working_key_or_on_a_short_runway() {
    let Some(lua) = lua() else { return };
    let healthy = object(
        json!({}),
        1,
        Some(1),
        vec![condition(
            "Ready",
            true,
            "Connected",
            "RunPod answers with this key",
        )],
    );
    assert_eq!(health(lua, "RunPodAccount", healthy).0, "Healthy");
    let no_key = object(
        json!({}),
        1,
        Some(1),
        vec![condition(
            "Stalled",
            true,
            "NoApiKey",
            "Secret runpod-operator/runpod-api-key does not exist",
        )],
    );
    assert_eq!(health(lua, "RunPodAccount", no_key).0, "Degraded");
    let low = object(
        json!({}),
        1,
        Some(1),
        vec![
            condition("Ready", true, "Connected", ""),
            condition(
                "InsufficientCredit",
                true,
                "LowRunway",
                "the balance lasts 5.0 hours",
            ),
        ],
    );
    assert_eq!(
        health(lua, "RunPodAccount", low),
        ("Degraded".into(), "the balance lasts 5.0 hours".into())
    );
}
