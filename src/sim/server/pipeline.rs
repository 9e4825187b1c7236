//! The REST pipeline, in RunPod's order: bearer key, rate budget (with `RateLimit` headers on
//! every authenticated answer), route (404, 405 with `Allow`), injected faults, the request
//! body against the official spec (422), then the world; every answer is checked against the
//! spec's response schema.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{
    Answer, FaultRule, Faults, RequestRecord, Sim, Window, admin::admin, bearer, graphql::graphql,
    lock, routes::handle,
};
use crate::sim::{spec::spec, world::Refusal};

/// Which operation a path names, with the spec's path template and the methods it allows.
pub(super) struct Route {
    pub(super) template: &'static str,
    allow: &'static [&'static str],
    pub(super) id: String,
}

pub(super) fn route(path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let r = |template, allow, id: &str| {
        Some(Route {
            template,
            allow,
            id: id.to_string(),
        })
    };
    match segments.as_slice() {
        ["v2", "pods"] => r("/v2/pods", &["GET", "POST"], ""),
        ["v2", "pods", id] => r("/v2/pods/{id}", &["GET", "PATCH", "DELETE"], id),
        ["v2", "pods", id, "action"] => r("/v2/pods/{id}/action", &["POST"], id),
        ["v2", "serverless"] => r("/v2/serverless", &["GET", "POST"], ""),
        ["v2", "serverless", id] => r("/v2/serverless/{id}", &["GET", "PATCH", "DELETE"], id),
        ["v2", "serverless", id, "workers"] => r("/v2/serverless/{id}/workers", &["GET"], id),
        ["v2", "network-volumes"] => r("/v2/network-volumes", &["GET", "POST"], ""),
        ["v2", "network-volumes", id] => {
            r("/v2/network-volumes/{id}", &["GET", "PATCH", "DELETE"], id)
        }
        ["v2", "registries"] => r("/v2/registries", &["GET", "POST"], ""),
        ["v2", "registries", id] => r("/v2/registries/{id}", &["GET", "DELETE"], id),
        ["v2", "catalog", "gpus"] => r("/v2/catalog/gpus", &["GET"], ""),
        ["v2", "catalog", "gpus", id] => r("/v2/catalog/gpus/{id}", &["GET"], id),
        ["v2", "catalog", "datacenters"] => r("/v2/catalog/datacenters", &["GET"], ""),
        ["v2", "catalog", "datacenters", id] => r("/v2/catalog/datacenters/{id}", &["GET"], id),
        ["v2", "billing", "pods"] => r("/v2/billing/pods", &["GET"], ""),
        ["v2", "billing", "serverless"] => r("/v2/billing/serverless", &["GET"], ""),
        ["v2", "billing", "network-volumes"] => r("/v2/billing/network-volumes", &["GET"], ""),
        _ => None,
    }
}

/// The routes of RunPod's spec the simulator does not serve, as their spec template: they
/// answer 501 problem JSON saying so, not a 404 that reads like a wrong id.
pub(super) fn unsimulated(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    Some(match segments.as_slice() {
        ["v2", "account", "ssh-keys"] => "/v2/account/ssh-keys",
        ["v2", "billing"] => "/v2/billing",
        ["v2", "billing", "clusters"] => "/v2/billing/clusters",
        ["v2", "billing", "endpoints"] => "/v2/billing/endpoints",
        ["v2", "catalog", "cpus"] => "/v2/catalog/cpus",
        ["v2", "catalog", "cpus", _] => "/v2/catalog/cpus/{id}",
        ["v2", "catalog", "templates"] => "/v2/catalog/templates",
        ["v2", "clusters"] => "/v2/clusters",
        ["v2", "clusters", _] => "/v2/clusters/{id}",
        ["v2", "clusters", _, "pods"] => "/v2/clusters/{id}/pods",
        ["v2", "pods", _, "logs"] => "/v2/pods/{id}/logs",
        ["v2", "registries", "delegations"] => "/v2/registries/delegations",
        ["v2", "registries", "delegations", _] => "/v2/registries/delegations/{id}",
        ["v2", "serverless", _, "releases"] => "/v2/serverless/{id}/releases",
        ["v2", "serverless", _, "workers", _, "logs"] => {
            "/v2/serverless/{id}/workers/{workerId}/logs"
        }
        ["v2", "templates"] => "/v2/templates",
        ["v2", "templates", _] => "/v2/templates/{id}",
        _ => return None,
    })
}

/// The rules between query parameters the spec states in words (400, as it says).
fn query_rules(template: &str, query: &str) -> Option<String> {
    let pairs = crate::sim::spec::query_pairs(query);
    let has = |name: &str| pairs.iter().any(|(k, _)| k == name);
    if template.starts_with("/v2/billing") && has("lastN") && (has("startTime") || has("endTime")) {
        return Some("lastN is mutually exclusive with startTime and endTime".to_string());
    }
    if template.starts_with("/v2/catalog/gpus") {
        let availability = pairs
            .iter()
            .any(|(k, v)| k == "include" && v.split(',').any(|i| i == "AVAILABILITY"));
        if !availability {
            let only_with = [
                "product",
                "count",
                "cloud",
                "countryCodes",
                "cudaVersions",
                "minCudaVersion",
            ];
            if let Some(name) = only_with.iter().find(|n| has(n)) {
                return Some(format!("{name} is valid only with include=AVAILABILITY"));
            }
        } else if !has("product") {
            return Some(
                "include=AVAILABILITY needs product (POD, CLUSTER or SERVERLESS)".to_string(),
            );
        }
    }
    None
}

/// Whether a path is a REST route (not GraphQL, not the admin or console routes).
fn is_rest(path: &str) -> bool {
    path != "/graphql" && !path.starts_with("/_sim/")
}

/// The largest request body the API host reads (REST and GraphQL).
pub(super) const API_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// A request body read up to `limit` bytes: `None` when it is longer (no more is read).
pub(super) async fn read_body(body: axum::body::Body, limit: usize) -> Option<Bytes> {
    axum::body::to_bytes(body, limit).await.ok()
}

/// The refusal of a body over a limit, as problem JSON.
pub(super) fn too_large(limit: usize) -> Answer {
    Answer::problem(
        413,
        format!(
            "the request body is larger than {} MB",
            limit / (1024 * 1024)
        ),
    )
}

pub(super) async fn api_entry(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let path = uri.path().to_string();
    let read = read_body(body, API_BODY_LIMIT).await;
    let oversized = read.is_none();
    let body = read.unwrap_or_default();
    let answer = if oversized && !is_rest(&path) {
        too_large(API_BODY_LIMIT)
    } else if path == "/graphql" {
        graphql(&sim, &uri, &headers, &body)
    } else if let Some(rest) = path.strip_prefix("/_sim/console") {
        // "Someone in the RunPod console": the same operations, no rate budget, no faults.
        match bearer(&headers) {
            Some(key) => rest_call(&sim, &key, method.as_str(), rest, &uri, &body, false).await,
            None => Answer::problem(401, "missing bearer token"),
        }
    } else if let Some(rest) = path.strip_prefix("/_sim/") {
        admin(&sim, &headers, method.as_str(), rest, &body)
    } else {
        rest_entry(
            &sim,
            method.as_str(),
            &path,
            &uri,
            &headers,
            &body,
            oversized,
        )
        .await
    };
    record(&sim, method.as_str(), path, answer.status, &body);
    answer.into_response()
}

/// The request log keeps the newest entries, so a long-running simulator stays small.
pub(super) const REQUEST_LOG_LIMIT: usize = 100_000;

pub(super) fn record(sim: &Sim, method: &str, path: String, status: u16, body: &Bytes) {
    let mut log = lock(&sim.log);
    if log.len() >= REQUEST_LOG_LIMIT {
        log.drain(..REQUEST_LOG_LIMIT / 2);
    }
    let mut text = (!body.is_empty()).then(|| String::from_utf8_lossy(body).into_owned());
    // A registry password is write-only at RunPod: the log keeps the request without it
    // (and without the login of a private image the simulator was given).
    if (path.starts_with("/v2/registries") || path.ends_with("/_sim/images"))
        && let Some(Ok(mut json)) = text
            .as_deref()
            .map(serde_json::from_str::<serde_json::Value>)
        && let Some(password) = json.get_mut("password")
    {
        *password = serde_json::Value::String("[REDACTED]".into());
        text = Some(json.to_string());
    }
    log.push(RequestRecord {
        method: method.to_string(),
        path,
        status,
        body: text,
    });
}

pub(super) async fn rest_entry(
    sim: &Sim,
    method: &str,
    path: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    oversized: bool,
) -> Answer {
    let Some(key) = bearer(headers) else {
        return Answer::problem(401, "missing bearer token");
    };
    if !lock(&sim.world).accounts.contains_key(&key) {
        return Answer::problem(401, "invalid api key");
    }
    let (limited, rate_headers) = rate_budget(sim, &key);
    let mut answer = match limited {
        Some(retry_after) => {
            let mut a = Answer::problem(429, "rate limit exceeded for the minute window");
            a.headers.push(("retry-after", retry_after.to_string()));
            a
        }
        // Refused like any other request: after the key and the budget, with the headers.
        None if oversized => too_large(API_BODY_LIMIT),
        None => rest_call(sim, &key, method, path, uri, body, true).await,
    };
    answer.headers.extend(rate_headers);
    answer
}

/// Counts a request against its key's minute window. Returns the `Retry-After` seconds when
/// over quota, and the rate-limit headers either way.
pub(super) fn rate_budget(sim: &Sim, key: &str) -> (Option<u64>, Vec<(&'static str, String)>) {
    let quota = *lock(&sim.quota);
    let window_seconds = *lock(&sim.window_seconds);
    let mut windows = lock(&sim.windows);
    let window = windows.entry(key.to_string()).or_insert_with(|| Window {
        started: Instant::now(),
        used: 0,
    });
    let length = Duration::from_secs(window_seconds);
    if window.started.elapsed() >= length {
        window.started = Instant::now();
        window.used = 0;
    }
    // Seconds until the window resets, rounded up so a client that waits them is never early.
    let left = length.saturating_sub(window.started.elapsed());
    let reset = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    let reset = reset.max(1);
    let over = window.used >= quota;
    if !over {
        window.used += 1;
    }
    let remaining = quota.saturating_sub(window.used);
    let name = if window_seconds == 60 {
        "minute".to_string()
    } else {
        format!("{window_seconds}s")
    };
    let headers = vec![
        (
            "ratelimit-policy",
            format!("\"{name}\";q={quota};w={window_seconds}"),
        ),
        ("ratelimit", format!("\"{name}\";r={remaining};t={reset}")),
    ];
    (over.then_some(reset), headers)
}

/// The fault, if any, that hits this request.
pub(super) fn draw_fault(sim: &Sim, method: &str, path: &str) -> Option<FaultRule> {
    let mut faults = lock(&sim.faults);
    let Faults { rules, draws } = &mut *faults;
    for rule in rules.iter_mut() {
        let matches = (rule.method.is_empty() || rule.method.eq_ignore_ascii_case(method))
            && path.starts_with(&rule.path)
            && rule.count != Some(0);
        if !matches {
            continue;
        }
        if let Some(p) = rule.probability {
            let draw = (draws.next_u64() % 1_000_000) as f64 / 1_000_000.0;
            if draw >= p {
                continue;
            }
        }
        if let Some(count) = rule.count.as_mut() {
            *count -= 1;
        }
        return Some(rule.clone());
    }
    None
}

pub(super) async fn rest_call(
    sim: &Sim,
    key: &str,
    method: &str,
    path: &str,
    uri: &Uri,
    body: &Bytes,
    faults: bool,
) -> Answer {
    if let Some(template) = unsimulated(path) {
        return Answer::problem(
            501,
            format!(
                "{template} is in RunPod's API but not simulated here (the README lists what is not)"
            ),
        );
    }
    let Some(route) = route(path) else {
        return Answer::problem(404, "resource not found");
    };
    if !route.allow.contains(&method) {
        let mut a = Answer::problem(405, format!("{method} is not allowed here"));
        a.headers.push(("allow", route.allow.join(", ")));
        return a;
    }
    let fault = if faults {
        draw_fault(sim, method, path)
    } else {
        None
    };
    if let Some(fault) = &fault {
        match fault.kind.as_str() {
            "status" => return Answer::problem(fault.status.unwrap_or(503), "injected fault"),
            "rateLimit" => {
                let mut a = Answer::problem(429, "rate limit exceeded for the minute window");
                a.headers.push(("retry-after", "1".to_string()));
                return a;
            }
            "latency" => {
                tokio::time::sleep(Duration::from_millis(fault.latency_ms.unwrap_or(0))).await
            }
            "html" => {
                let mut a = Answer::raw(
                    fault.status.unwrap_or(502),
                    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>".to_string(),
                );
                a.headers.push(("content-type", "text/html".to_string()));
                return a;
            }
            _ => {}
        }
    }

    let query = uri.query().unwrap_or_default();
    let errors = spec().query_errors(method, route.template, query);
    if !errors.is_empty() {
        let mut refusal = Refusal::new(422, "Request validation failed.");
        refusal.errors = errors;
        return Answer::refusal(refusal);
    }
    if let Some(problem) = query_rules(route.template, query) {
        return Answer::problem(400, problem);
    }

    let parsed: Value = if spec().takes_body(method, route.template) {
        if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return Answer::problem(400, format!("the body is not JSON: {e}")),
            }
        }
    } else {
        Value::Null
    };
    if spec().takes_body(method, route.template) {
        let errors = spec().request_errors(method, route.template, &parsed);
        if !errors.is_empty() {
            let mut refusal = Refusal::new(422, "Request validation failed.");
            refusal.errors = errors;
            return Answer::refusal(refusal);
        }
    }

    let mut answer = {
        let mut world = sim.world();
        handle(&mut world, key, method, &route, uri, &parsed)
    };
    if fault.as_ref().is_some_and(|f| f.kind == "afterCreate") && answer.status < 300 {
        // RunPod's known bug: the object exists, the answer says 500.
        answer = Answer::problem(500, "internal server error");
    }
    if let Some(kind) = fault.as_ref().map(|f| f.kind.as_str())
        && let Some(mangled) = mangle(kind, &answer)
    {
        // A hostile answer breaks the spec on purpose: not a simulator bug to record.
        return mangled;
    }
    let violations = if sim.check_responses {
        let parsed;
        let body = match &answer.raw {
            Some(text) => {
                parsed = serde_json::from_str(text).unwrap_or(Value::Null);
                &parsed
            }
            None => &answer.body,
        };
        spec().response_errors(method, route.template, answer.status, body)
    } else {
        Vec::new()
    };
    if !violations.is_empty() {
        lock(&sim.violations).extend(
            violations
                .into_iter()
                .map(|v| format!("{method} {path} -> {}: {v}", answer.status)),
        );
    }
    answer
}

/// The objects of an answer: the items of each list in it (`{"pods": [...]}`), or the
/// answer itself when it is one object.
fn listed(body: &mut Value) -> Vec<&mut Value> {
    let has_lists = body
        .as_object()
        .is_some_and(|map| map.values().any(Value::is_array));
    if has_lists {
        body.as_object_mut()
            .into_iter()
            .flat_map(|map| map.values_mut())
            .filter_map(Value::as_array_mut)
            .flatten()
            .collect()
    } else {
        vec![body]
    }
}

/// The hostile answers (see [`super::FaultRule::kind`]), made from the real one.
fn mangle(kind: &str, answer: &Answer) -> Option<Answer> {
    let text = || {
        answer
            .raw
            .clone()
            .unwrap_or_else(|| answer.body.to_string())
    };
    let mut out = match kind {
        "truncate" => {
            let text = text();
            let mut cut = text.len() / 2;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            Answer::raw(answer.status, text[..cut].to_string())
        }
        "blankIdentity" => {
            let mut body: Value = serde_json::from_str(&text()).unwrap_or(Value::Null);
            for item in listed(&mut body) {
                if let Some(map) = item.as_object_mut() {
                    map.insert("name".to_string(), Value::String(String::new()));
                    if map.contains_key("env") {
                        map.insert("env".to_string(), json!({}));
                    }
                }
            }
            Answer::json(answer.status, body)
        }
        "wrongTypes" => {
            let mut body: Value = serde_json::from_str(&text()).unwrap_or(Value::Null);
            for item in listed(&mut body) {
                *item = json!({"id": 7, "name": ["not", "a", "name"], "env": "x"});
            }
            Answer::json(answer.status, body)
        }
        "huge" => Answer::raw(answer.status, "x".repeat(10 << 20)),
        // A list that lags behind the writes: nothing in it yet.
        "empty" => {
            let mut body: Value = serde_json::from_str(&text()).unwrap_or(Value::Null);
            let lists = body.as_object_mut()?;
            let mut emptied = false;
            for value in lists.values_mut().filter(|v| v.is_array()) {
                *value = json!([]);
                emptied = true;
            }
            if !emptied {
                return None;
            }
            Answer::json(answer.status, body)
        }
        "endless" => Answer {
            endless: true,
            ..Answer::empty(200)
        },
        _ => return None,
    };
    out.headers = answer.headers.clone();
    Some(out)
}

pub(super) fn outcome(result: Result<Value, Refusal>, status: u16) -> Answer {
    match result {
        Ok(body) => Answer::json(status, body),
        Err(r) => Answer::refusal(r),
    }
}
