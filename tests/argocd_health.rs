//! The Argo CD health checks (Lua) against status fixtures for each outcome, run by an
//! embedded Lua 5.1 interpreter (Argo CD's dialect, built from source by `mlua`): no system
//! package, no skip.

use mlua::{Lua, Value as LuaValue};
use serde_json::{Value, json};

const HEALTH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/runpod-operator/files/health"
);

/// A JSON value as a Lua literal (JSON null is Lua nil, as Argo CD passes objects).
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

/// Runs a kind's health script on an object as Argo CD does (the object as the global `obj`,
/// the script as a function body that returns `hs`): `(status, message)`.
fn health(kind: &str, obj: Value) -> (String, String) {
    let script = std::fs::read_to_string(format!("{HEALTH}/{kind}.lua")).unwrap();
    let lua = Lua::new();
    lua.load(format!("obj = {}", to_lua(&obj))).exec().unwrap();
    let hs: mlua::Table = lua
        .load(script.as_str())
        .set_name(kind)
        .call(())
        .unwrap_or_else(|e| panic!("{kind}.lua failed: {e}"));
    let status: String = hs.get("status").unwrap();
    let message = match hs.get::<LuaValue>("message").unwrap() {
        LuaValue::Nil => String::new(),
        LuaValue::String(s) => s.to_str().unwrap().to_string(),
        other => panic!("{kind}.lua: message is a {}", other.type_name()),
    };
    (status, message)
}

#[test]
fn the_interpreter_is_lua_5_1() {
    let lua = Lua::new();
    let version: String = lua.globals().get("_VERSION").unwrap();
    assert_eq!(version, "Lua 5.1");
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
        health("GpuWorkload", obj),
        ("Healthy".into(), "RunPod matches the spec".into())
    );
}

#[test]
fn a_workload_is_progressing_while_reconciling_or_behind_or_new() {
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
        health("GpuWorkload", reconciling),
        ("Progressing".into(), "create pod rpo-ml-w".into())
    );
    let behind = object(
        json!({}),
        4,
        Some(3),
        vec![condition("Ready", true, "InSync", "")],
    );
    assert_eq!(
        health("GpuWorkload", behind).0,
        "Progressing",
        "observedGeneration lags"
    );
    assert_eq!(
        health("GpuWorkload", object(json!({}), 1, None, vec![])).0,
        "Progressing"
    );
}

#[test]
fn a_workload_is_degraded_when_stalled() {
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
        health("GpuWorkload", obj),
        ("Degraded".into(), message.into())
    );
}

#[test]
fn a_workload_is_suspended_when_paused_stopped_or_held_down_by_policy() {
    let paused = object(json!({"managementPolicy": "Paused"}), 1, Some(1), vec![]);
    assert_eq!(health("GpuWorkload", paused).0, "Suspended");
    let stopped = object(
        json!({"state": "Stopped"}),
        1,
        Some(1),
        vec![condition("Ready", true, "InSync", "")],
    );
    assert_eq!(health("GpuWorkload", stopped).0, "Suspended");
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
        health("GpuWorkload", credit),
        (
            "Suspended".into(),
            "credit policy: the balance covers less than 24 hours".into()
        )
    );
}

#[test]
fn a_network_volume_follows_the_same_rules() {
    let ready = object(
        json!({}),
        1,
        Some(1),
        vec![condition("Ready", true, "InSync", "ok")],
    );
    assert_eq!(health("NetworkVolume", ready).0, "Healthy");
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
        health("NetworkVolume", immutable),
        ("Degraded".into(), "a volume cannot move".into())
    );
    assert_eq!(
        health(
            "NetworkVolume",
            object(json!({"managementPolicy": "Paused"}), 1, Some(1), vec![])
        )
        .0,
        "Suspended"
    );
    assert_eq!(
        health("NetworkVolume", object(json!({}), 1, None, vec![])).0,
        "Progressing"
    );
}

#[test]
fn an_account_is_degraded_without_a_working_key_or_on_a_short_runway() {
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
    assert_eq!(health("RunPodAccount", healthy).0, "Healthy");
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
    assert_eq!(health("RunPodAccount", no_key).0, "Degraded");
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
        health("RunPodAccount", low),
        ("Degraded".into(), "the balance lasts 5.0 hours".into())
    );
}
