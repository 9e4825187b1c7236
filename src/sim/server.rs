//! The simulator's HTTP side: REST v2 and GraphQL on one listener, the serverless job and
//! health routes on another (RunPod serves them from a different host), and the `/_sim/`
//! admin routes tests and the demo drive it with.
//!
//! Every REST request goes through the same steps, in RunPod's order: bearer key, rate
//! budget (with `RateLimit` / `RateLimit-Policy` on every authenticated answer), route
//! (404, 405 with `Allow`), injected faults, request body against the official spec (422),
//! then the world. Every answer is checked against the spec's response schema and any
//! mismatch is recorded for `/_sim/violations`.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use rust_decimal::{Decimal, prelude::ToPrimitive};
use serde_json::{Value, json};

use super::{
    spec::spec,
    world::{Billed, DATA_CENTERS, Millis, Refusal, World, timestamp},
};

/// One request the simulator answered, for tests that count calls.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// The status answered.
    pub status: u16,
    /// The request body, for calls that send one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// A fault to inject on matching requests.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// Method to match, e.g. `POST`; empty matches any.
    #[serde(default)]
    pub method: String,
    /// Path prefix to match, e.g. `/v2/pods`.
    pub path: String,
    /// `status` (answer `status` without acting), `afterCreate` (act, then answer 500),
    /// `rateLimit` (answer 429 with `Retry-After`), or `latency` (wait `latencyMs`, then act).
    pub kind: String,
    /// The status for `status` faults. Default 503.
    #[serde(default)]
    pub status: Option<u16>,
    /// Added latency for `latency` faults.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// How many requests it hits; unset means every matching request.
    #[serde(default)]
    pub count: Option<u32>,
    /// The chance (0-1) that a matching request is hit; drawn from the seeded generator.
    #[serde(default)]
    pub probability: Option<f64>,
}

/// Settings of one simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Where the REST v2 and GraphQL listener binds; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Where the serverless job and health listener binds.
    pub serverless_listen: SocketAddr,
    /// The API key of the account created at start.
    pub api_key: String,
    /// That account's credit, USD.
    pub balance: Decimal,
    /// Seed for ids and fault draws, so a run repeats.
    pub seed: u64,
    /// Virtual seconds per real second; 0 freezes the clock (tests advance it by hand).
    pub speed: f64,
    /// Requests per minute each key may make.
    pub requests_per_minute: u32,
    /// Check every response against the spec and record mismatches (`/_sim/violations`).
    pub check_responses: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            serverless_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_key: "rpa_SIMULATOR0000000000000000000000".to_string(),
            balance: Decimal::from(500),
            seed: 42,
            speed: 0.0,
            requests_per_minute: 6000,
            check_responses: true,
        }
    }
}

struct Clock {
    real_base: Instant,
    virtual_base: Millis,
    speed: f64,
}

impl Clock {
    fn now(&self) -> Millis {
        let real = self.real_base.elapsed().as_secs_f64() * self.speed * 1000.0;
        self.virtual_base + real as Millis
    }
    fn rebase(&mut self, speed: f64, advance_ms: Millis) {
        self.virtual_base = self.now() + advance_ms;
        self.real_base = Instant::now();
        self.speed = speed;
    }
}

struct Window {
    started: Instant,
    used: u32,
}

struct Faults {
    rules: Vec<FaultRule>,
    draws: super::world::IdGen,
}

/// The simulator's shared state.
pub struct Sim {
    world: Mutex<World>,
    clock: Mutex<Clock>,
    log: Mutex<Vec<RequestRecord>>,
    violations: Mutex<Vec<String>>,
    windows: Mutex<HashMap<String, Window>>,
    quota: Mutex<u32>,
    window_seconds: Mutex<u64>,
    faults: Mutex<Faults>,
    check_responses: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock is a bug in the simulator; carry on with the state.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sim {
    /// A simulator with one funded account.
    pub fn new(config: &SimConfig) -> Arc<Self> {
        let mut world = World::new(config.seed);
        world.add_account(&config.api_key, config.balance);
        Arc::new(Self {
            world: Mutex::new(world),
            clock: Mutex::new(Clock {
                real_base: Instant::now(),
                virtual_base: 0,
                speed: config.speed,
            }),
            log: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            windows: Mutex::new(HashMap::new()),
            quota: Mutex::new(config.requests_per_minute),
            window_seconds: Mutex::new(60),
            faults: Mutex::new(Faults {
                rules: Vec::new(),
                draws: super::world::IdGen::new(config.seed ^ 0x5EED),
            }),
            check_responses: config.check_responses,
        })
    }

    /// The world, caught up with the clock.
    fn world(&self) -> MutexGuard<'_, World> {
        let now = lock(&self.clock).now();
        let mut world = lock(&self.world);
        world.advance_to(now);
        world
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.log).clone()
    }

    /// How many requests `method` to a path starting with `prefix` were answered so far.
    pub fn calls(&self, method: &str, prefix: &str) -> usize {
        lock(&self.log)
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(prefix))
            .count()
    }

    /// Every response that broke the spec so far.
    pub fn violations(&self) -> Vec<String> {
        lock(&self.violations).clone()
    }

    /// Adds an isolated account.
    pub fn add_account(&self, key: &str, balance: Decimal) {
        self.world().add_account(key, balance);
    }

    /// Moves the virtual clock forward.
    pub fn advance(&self, seconds: u64) {
        let speed = lock(&self.clock).speed;
        lock(&self.clock).rebase(speed, seconds * 1000);
        drop(self.world());
    }

    /// Runs `f` on the world, caught up with the clock.
    pub fn with_world<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.world())
    }
}

/// The routers of one simulator: the API host and the serverless host.
pub fn routers(sim: Arc<Sim>) -> (Router, Router) {
    let api = Router::new().fallback(api_entry).with_state(sim.clone());
    let serverless = Router::new().fallback(serverless_entry).with_state(sim);
    (api, serverless)
}

// ---- answers ----------------------------------------------------------------------------------

struct Answer {
    status: u16,
    body: Value,
    /// A body already serialized (big lists); `body` is then `Null`.
    raw: Option<String>,
    headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body,
            raw: None,
            headers: Vec::new(),
        }
    }
    fn raw(status: u16, text: String) -> Self {
        Self {
            raw: Some(text),
            ..Self::json(status, Value::Null)
        }
    }
    fn empty(status: u16) -> Self {
        Self::json(status, Value::Null)
    }
    fn problem(status: u16, detail: impl Into<String>) -> Self {
        Self::refusal(Refusal::new(status, detail))
    }
    fn refusal(r: Refusal) -> Self {
        let title = StatusCode::from_u16(r.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        let mut body = json!({"title": title, "status": r.status, "detail": r.detail});
        if !r.errors.is_empty() {
            body["errors"] = json!(r.errors);
        }
        Self::json(r.status, body)
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = if let Some(text) = self.raw {
            let mut r = (status, text).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        } else if self.body.is_null() {
            status.into_response()
        } else {
            let content_type = if self.status >= 400 {
                "application/problem+json"
            } else {
                "application/json"
            };
            let mut r = (status, self.body.to_string()).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            r
        };
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

// ---- the REST pipeline ----------------------------------------------------------------------

/// Which operation a path names, with the spec's path template and the methods it allows.
struct Route {
    template: &'static str,
    allow: &'static [&'static str],
    id: String,
}

fn route(path: &str) -> Option<Route> {
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

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim().to_string()).filter(|t| !t.is_empty())
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| v.replace("%3A", ":").replace("%2B", "+"))
    })
}

async fn api_entry(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let answer = if path == "/graphql" {
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
        rest_entry(&sim, method.as_str(), &path, &uri, &headers, &body).await
    };
    record(&sim, method.as_str(), path, answer.status, &body);
    answer.into_response()
}

/// The request log keeps the newest entries, so a long-running simulator stays small.
const REQUEST_LOG_LIMIT: usize = 100_000;

fn record(sim: &Sim, method: &str, path: String, status: u16, body: &Bytes) {
    let mut log = lock(&sim.log);
    if log.len() >= REQUEST_LOG_LIMIT {
        log.drain(..REQUEST_LOG_LIMIT / 2);
    }
    log.push(RequestRecord {
        method: method.to_string(),
        path,
        status,
        body: (!body.is_empty()).then(|| String::from_utf8_lossy(body).into_owned()),
    });
}

async fn rest_entry(
    sim: &Sim,
    method: &str,
    path: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
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
        None => rest_call(sim, &key, method, path, uri, body, true).await,
    };
    answer.headers.extend(rate_headers);
    answer
}

/// Counts a request against its key's minute window. Returns the `Retry-After` seconds when
/// over quota, and the rate-limit headers either way.
fn rate_budget(sim: &Sim, key: &str) -> (Option<u64>, Vec<(&'static str, String)>) {
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
fn draw_fault(sim: &Sim, method: &str, path: &str) -> Option<FaultRule> {
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

async fn rest_call(
    sim: &Sim,
    key: &str,
    method: &str,
    path: &str,
    uri: &Uri,
    body: &Bytes,
    faults: bool,
) -> Answer {
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
            _ => {}
        }
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
    if fault.is_some_and(|f| f.kind == "afterCreate") && answer.status < 300 {
        // RunPod's known bug: the object exists, the answer says 500.
        answer = Answer::problem(500, "internal server error");
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

fn outcome(result: Result<Value, Refusal>, status: u16) -> Answer {
    match result {
        Ok(body) => Answer::json(status, body),
        Err(r) => Answer::refusal(r),
    }
}

fn handle(
    world: &mut World,
    key: &str,
    method: &str,
    route: &Route,
    uri: &Uri,
    body: &Value,
) -> Answer {
    let id = route.id.as_str();
    fn account<'w>(world: &'w World, key: &str) -> &'w super::world::Account {
        world.account(key).expect("authenticated")
    }
    match (method, route.template) {
        ("GET", "/v2/pods") => {
            // The inventory refresh of a big account: serialized straight from typed views.
            let pods: Vec<_> = account(world, key)
                .pods
                .values()
                .map(|p| world.pod_view(p))
                .collect();
            match serde_json::to_string(&json_list("pods", &pods)) {
                Ok(text) => Answer::raw(200, text),
                Err(e) => Answer::problem(500, format!("failed to render pods: {e}")),
            }
        }
        ("POST", "/v2/pods") => outcome(
            world
                .create_pod(key, body)
                .map(|id| world.pod_json(&world.account(key).expect("authenticated").pods[&id])),
            201,
        ),
        ("GET", "/v2/pods/{id}") => match world.account(key).and_then(|a| a.pods.get(id)) {
            Some(pod) => Answer::json(200, world.pod_json(pod)),
            None => Answer::problem(404, "pod not found"),
        },
        ("PATCH", "/v2/pods/{id}") => outcome(
            world
                .update_pod(key, id, body)
                .map(|()| world.pod_json(&world.account(key).expect("authenticated").pods[id])),
            200,
        ),
        ("DELETE", "/v2/pods/{id}") => match world.delete_pod(key, id) {
            Ok(()) => Answer::empty(204),
            Err(r) => Answer::refusal(r),
        },
        ("POST", "/v2/pods/{id}/action") => {
            let action = body["action"].as_str().unwrap_or_default();
            match world.pod_action(key, id, action) {
                Ok(true) => Answer::json(
                    200,
                    world.pod_json(&world.account(key).expect("authenticated").pods[id]),
                ),
                Ok(false) => Answer::empty(204),
                Err(r) => Answer::refusal(r),
            }
        }
        ("GET", "/v2/serverless") => {
            // Serialized straight from typed views, as the pods are.
            let endpoints: Vec<_> = account(world, key)
                .endpoints
                .values()
                .map(World::endpoint_view)
                .collect();
            match serde_json::to_string(&json_list("endpoints", &endpoints)) {
                Ok(text) => Answer::raw(200, text),
                Err(e) => Answer::problem(500, format!("failed to render endpoints: {e}")),
            }
        }
        ("POST", "/v2/serverless") => outcome(
            world.create_endpoint(key, body).map(|id| {
                world.endpoint_json(&world.account(key).expect("authenticated").endpoints[&id])
            }),
            201,
        ),
        ("GET", "/v2/serverless/{id}") => {
            match world.account(key).and_then(|a| a.endpoints.get(id)) {
                Some(e) => Answer::json(200, world.endpoint_json(e)),
                None => Answer::problem(404, "endpoint not found"),
            }
        }
        ("PATCH", "/v2/serverless/{id}") => outcome(
            world.update_endpoint(key, id, body).map(|()| {
                world.endpoint_json(&world.account(key).expect("authenticated").endpoints[id])
            }),
            200,
        ),
        ("DELETE", "/v2/serverless/{id}") => match world.delete_endpoint(key, id) {
            Ok(()) => Answer::empty(204),
            Err(r) => Answer::refusal(r),
        },
        ("GET", "/v2/serverless/{id}/workers") => {
            match world.account(key).and_then(|a| a.endpoints.get(id)) {
                Some(e) => Answer::json(200, world.workers_json(e)),
                None => Answer::problem(404, "endpoint not found"),
            }
        }
        ("GET", "/v2/network-volumes") => {
            let volumes: Vec<Value> = account(world, key)
                .volumes
                .values()
                .map(World::volume_json)
                .collect();
            Answer::json(200, json!({ "networkVolumes": volumes }))
        }
        ("POST", "/v2/network-volumes") => outcome(
            world.create_volume(key, body).map(|id| {
                World::volume_json(&world.account(key).expect("authenticated").volumes[&id])
            }),
            201,
        ),
        ("GET", "/v2/network-volumes/{id}") => {
            match world.account(key).and_then(|a| a.volumes.get(id)) {
                Some(v) => Answer::json(200, World::volume_json(v)),
                None => Answer::problem(404, "network volume not found"),
            }
        }
        ("PATCH", "/v2/network-volumes/{id}") => outcome(
            world.update_volume(key, id, body).map(|()| {
                World::volume_json(&world.account(key).expect("authenticated").volumes[id])
            }),
            200,
        ),
        ("DELETE", "/v2/network-volumes/{id}") => match world.delete_volume(key, id) {
            Ok(()) => Answer::empty(204),
            Err(r) => Answer::refusal(r),
        },
        ("GET", "/v2/registries") => {
            let list: Vec<Value> = account(world, key)
                .registries
                .values()
                .map(|r| json!({"id": r.id, "name": r.name}))
                .collect();
            Answer::json(200, json!({ "registries": list }))
        }
        ("POST", "/v2/registries") => outcome(
            world
                .create_registry(key, body)
                .map(|id| json!({"id": id, "name": body["name"]})),
            201,
        ),
        ("GET", "/v2/registries/{id}") => {
            match world.account(key).and_then(|a| a.registries.get(id)) {
                Some(r) => Answer::json(200, json!({"id": r.id, "name": r.name})),
                None => Answer::problem(404, "registry not found"),
            }
        }
        ("DELETE", "/v2/registries/{id}") => match world.delete_registry(key, id) {
            Ok(()) => Answer::empty(204),
            Err(r) => Answer::refusal(r),
        },
        ("GET", "/v2/catalog/gpus") => Answer::json(200, json!({ "gpus": catalog_gpus(world) })),
        ("GET", "/v2/catalog/gpus/{id}") => {
            let id = id.replace("%20", " ");
            match catalog_gpus(world)
                .into_iter()
                .find(|g| g["id"] == id.as_str())
            {
                Some(g) => Answer::json(200, g),
                None => Answer::problem(404, "GPU type not found"),
            }
        }
        ("GET", "/v2/catalog/datacenters") => {
            Answer::json(200, json!({ "dataCenters": catalog_dcs() }))
        }
        ("GET", "/v2/catalog/datacenters/{id}") => {
            match catalog_dcs().into_iter().find(|d| d["id"] == id) {
                Some(d) => Answer::json(200, d),
                None => Answer::problem(404, "data center not found"),
            }
        }
        ("GET", "/v2/billing/pods") => billing(world, key, uri, Billed::Pod),
        ("GET", "/v2/billing/serverless") => billing(world, key, uri, Billed::Serverless),
        ("GET", "/v2/billing/network-volumes") => billing(world, key, uri, Billed::NetworkVolume),
        _ => Answer::problem(404, "resource not found"),
    }
}

/// `{"<field>": [items]}` without building a `Value`.
fn json_list<'a, T: serde::Serialize>(
    field: &'static str,
    items: &'a [T],
) -> impl serde::Serialize + 'a {
    std::collections::BTreeMap::from([(field, items)])
}

fn money(amount: Decimal) -> Value {
    json!(amount.round_dp(10).to_f64().unwrap_or(0.0))
}

fn catalog_gpus(world: &World) -> Vec<Value> {
    let catalog = &world.prices;
    catalog
        .gpus
        .values()
        .map(|g| {
            let mut price = json!({
                "secure": money(g.secure_per_hour.unwrap_or_default()),
                "community": money(g.community_per_hour.unwrap_or_default()),
            });
            if let Some(rates) = g.pool.as_deref().and_then(|p| catalog.pool_rates(p)) {
                price["serverless"] = money(rates.flex_per_second * Decimal::from(3600));
            }
            let max = |offered: bool| if offered { g.max_count } else { 0 };
            json!({
                "id": g.id,
                "name": g.id.trim_start_matches("NVIDIA ").trim_start_matches("GeForce "),
                "pool": g.pool,
                "manufacturer": if g.id.starts_with("AMD") { "AMD" } else { "NVIDIA" },
                "memory": g.memory_gb,
                "secure": g.secure_per_hour.is_some(),
                "community": g.community_per_hour.is_some(),
                "price": price,
                "maxCount": {
                    "secure": max(g.secure_per_hour.is_some()),
                    "community": max(g.community_per_hour.is_some()),
                },
            })
        })
        .collect()
}

fn catalog_dcs() -> Vec<Value> {
    DATA_CENTERS
        .iter()
        .map(|id| {
            let region = match &id[..2] {
                "EU" => "EUROPE",
                "US" | "CA" => "NORTH_AMERICA",
                "OC" => "OCEANIA",
                "AP" => "ASIA",
                _ => "UNKNOWN",
            };
            json!({"id": id, "name": id, "region": region, "globalNetwork": false,
                   "networkVolumeTypes": ["STANDARD"], "compliance": []})
        })
        .collect()
}

// ---- billing ----------------------------------------------------------------------------------

const MS_PER_HOUR: Millis = 3_600_000;

fn parse_time(text: &str) -> Option<Millis> {
    let t: jiff::Timestamp = text.parse().ok()?;
    let seconds = t.as_second() - super::world::EPOCH_UNIX_SECONDS;
    (seconds >= 0).then_some(seconds as Millis * 1000)
}

/// The bucket an hour of the ledger falls in, as a start instant.
fn bucket_start(hour: u64, size: &str) -> Millis {
    let at = hour * MS_PER_HOUR;
    let day = 24 * MS_PER_HOUR;
    match size {
        "hour" => at,
        "week" => at / (7 * day) * (7 * day),
        "month" | "year" => {
            let seconds = super::world::EPOCH_UNIX_SECONDS + (at / 1000) as i64;
            let date = jiff::Timestamp::from_second(seconds)
                .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date())
                .unwrap_or_default();
            let first = if size == "month" {
                date.first_of_month()
            } else {
                date.first_of_year()
            };
            let start = first
                .to_zoned(jiff::tz::TimeZone::UTC)
                .map(|z| z.timestamp().as_second())
                .unwrap_or(super::world::EPOCH_UNIX_SECONDS);
            ((start - super::world::EPOCH_UNIX_SECONDS).max(0) as Millis) * 1000
        }
        _ => at / day * day,
    }
}

fn bucket_end(start: Millis, size: &str) -> Millis {
    let day = 24 * MS_PER_HOUR;
    match size {
        "hour" => start + MS_PER_HOUR,
        "week" => start + 7 * day,
        "month" | "year" => {
            let mut hour = start / MS_PER_HOUR;
            loop {
                hour += 24;
                let b = bucket_start(hour, size);
                if b != start {
                    return b;
                }
            }
        }
        _ => start + day,
    }
}

fn billing(world: &World, key: &str, uri: &Uri, kind: Billed) -> Answer {
    let size = query_param(uri, "bucketSize").unwrap_or_else(|| "day".to_string());
    if !["hour", "day", "week", "month", "year"].contains(&size.as_str()) {
        let mut r = Refusal::new(422, "Request validation failed.");
        r.errors.push(format!(
            "bucketSize: {size:?} is not one of hour, day, week, month, year"
        ));
        return Answer::refusal(r);
    }
    let end = query_param(uri, "endTime")
        .and_then(|t| parse_time(&t))
        .unwrap_or(world.now);
    let start = query_param(uri, "startTime")
        .and_then(|t| parse_time(&t))
        .unwrap_or_else(|| end.saturating_sub(30 * 24 * MS_PER_HOUR));
    let (id_field, id_filter) = match kind {
        Billed::Pod => ("podId", query_param(uri, "podId")),
        Billed::Serverless => ("serverlessId", query_param(uri, "serverlessId")),
        Billed::NetworkVolume => ("networkVolumeId", query_param(uri, "networkVolumeId")),
    };
    let account = world.account(key).expect("authenticated");
    let mut buckets: std::collections::BTreeMap<(Millis, String), super::world::Amounts> =
        Default::default();
    for ((hour, billed, id), amounts) in &account.ledger {
        let at = hour * MS_PER_HOUR;
        if *billed != kind || at < start || at >= end || id_filter.as_ref().is_some_and(|f| f != id)
        {
            continue;
        }
        let line = buckets
            .entry((bucket_start(*hour, &size), id.clone()))
            .or_default();
        line.gpu += amounts.gpu;
        line.disk += amounts.disk;
        line.storage += amounts.storage;
    }
    let mut totals = super::world::Amounts::default();
    let mut ids = std::collections::BTreeSet::new();
    let records: Vec<Value> = buckets
        .iter()
        .map(|((at, id), a)| {
            totals.gpu += a.gpu;
            totals.disk += a.disk;
            totals.storage += a.storage;
            ids.insert(id.clone());
            let mut record = amounts_json(kind, a);
            record["startTime"] = json!(timestamp(*at));
            record["endTime"] = json!(timestamp(bucket_end(*at, &size)));
            record[id_field] = json!(id);
            record
        })
        .collect();
    let unique = match kind {
        Billed::Pod => "uniquePodCount",
        Billed::Serverless => "uniqueServerlessCount",
        Billed::NetworkVolume => "uniqueNetworkVolumeCount",
    };
    let mut query =
        json!({"startTime": timestamp(start), "endTime": timestamp(end), "bucketSize": size});
    query[id_field] = json!(id_filter);
    let metadata = json!({
        "query": query,
        "recordCount": records.len(),
        unique: ids.len(),
        "totals": amounts_json(kind, &totals),
    });
    Answer::json(200, json!({"records": records, "metadata": metadata}))
}

fn amounts_json(kind: Billed, a: &super::world::Amounts) -> Value {
    match kind {
        Billed::Pod => {
            json!({"totalAmount": money(a.total()), "gpuAmount": money(a.gpu), "cpuAmount": 0.0, "diskAmount": money(a.disk)})
        }
        Billed::Serverless => {
            json!({"totalAmount": money(a.total()), "gpuAmount": money(a.gpu), "cpuAmount": 0.0, "diskAmount": money(a.disk), "feeAmount": 0.0})
        }
        Billed::NetworkVolume => {
            json!({"totalAmount": money(a.total()), "standardAmount": money(a.storage), "highPerformanceAmount": 0.0})
        }
    }
}

// ---- GraphQL ----------------------------------------------------------------------------------

/// The GraphQL subset: `myself { clientBalance currentSpendPerHr spendLimit }`. Anything else
/// is a GraphQL error (HTTP 200 with `errors[]`), as RunPod answers.
fn graphql(sim: &Sim, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Answer {
    let Some(key) = bearer(headers).or_else(|| query_param(uri, "api_key")) else {
        return Answer::problem(401, "missing bearer token");
    };
    let world = sim.world();
    let Some(account) = world.account(&key) else {
        return Answer::problem(401, "invalid api key");
    };
    let error = |message: String| {
        Answer::json(
            200,
            json!({"errors": [{"message": message, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]}),
        )
    };
    let query = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["query"].as_str().map(String::from))
        .unwrap_or_default();
    let Some(start) = query.find("myself") else {
        return error("only the myself query is simulated".to_string());
    };
    let rest = &query[start + "myself".len()..];
    let (Some(open), Some(close)) = (rest.find('{'), rest.find('}')) else {
        return error("myself needs a selection set".to_string());
    };
    let mut myself = serde_json::Map::new();
    for field in rest[open + 1..close].split_whitespace() {
        let value = match field {
            "clientBalance" => money(account.balance),
            "currentSpendPerHr" => money(world.spend_per_hour(&key)),
            "spendLimit" => money(account.spend_limit),
            "id" => json!("user_simulated"),
            other => return error(format!("Cannot query field \"{other}\" on type \"User\".")),
        };
        myself.insert(field.to_string(), value);
    }
    Answer::json(200, json!({"data": {"myself": myself}}))
}

// ---- the serverless host -----------------------------------------------------------------------

async fn serverless_entry(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    // The job API takes the bare key (as RunPod's docs send it) or a bearer token.
    let key = bearer(&headers).or_else(|| {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    });
    let answer = match key {
        None => Answer::problem(401, "missing bearer token"),
        Some(key) => serverless_call(&sim, &key, method.as_str(), &path, &uri, &body).await,
    };
    record(&sim, method.as_str(), path, answer.status, &body);
    answer.into_response()
}

async fn serverless_call(
    sim: &Sim,
    key: &str,
    method: &str,
    path: &str,
    uri: &Uri,
    body: &Bytes,
) -> Answer {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let endpoint_of = |world: &World, id: &str| {
        world
            .account(key)
            .and_then(|a| a.endpoints.get(id))
            .cloned()
    };
    match (method, segments.as_slice()) {
        ("GET", ["v2", id, "health"]) => match endpoint_of(&sim.world(), id) {
            Some(endpoint) => Answer::json(200, World::health_json(&endpoint)),
            None => Answer::problem(404, "endpoint not found"),
        },
        ("POST", ["v2", id, run @ ("run" | "runsync")]) => {
            let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let Some(input) = request.get("input").cloned() else {
                return Answer::problem(400, "the body needs an input object: {\"input\": {...}}");
            };
            let job = match sim.world().submit_job(key, id, input) {
                Ok(job) => job,
                Err(r) => return Answer::refusal(r),
            };
            if *run == "run" {
                return Answer::json(200, json!({"id": job, "status": "IN_QUEUE"}));
            }
            // /runsync holds the request (in real time) until the job ends or `wait` passes.
            let wait = query_param(uri, "wait")
                .and_then(|w| w.parse::<u64>().ok())
                .unwrap_or(90_000)
                .clamp(1000, 300_000);
            let deadline = Instant::now() + Duration::from_millis(wait);
            loop {
                let done = sim.world().job(key, id, &job).cloned();
                match done {
                    Some(j) if j.finished.is_some() || Instant::now() >= deadline => {
                        return Answer::json(200, j.to_json());
                    }
                    None => return Answer::problem(404, "job not found"),
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }
        ("GET", ["v2", id, "status", job]) => match sim.world().job(key, id, job) {
            Some(j) => Answer::json(200, j.to_json()),
            None => Answer::problem(404, "job not found"),
        },
        _ => Answer::problem(404, "resource not found"),
    }
}

// ---- admin ------------------------------------------------------------------------------------

fn admin(sim: &Sim, headers: &HeaderMap, method: &str, path: &str, body: &Bytes) -> Answer {
    let Some(key) = bearer(headers) else {
        return Answer::problem(
            401,
            "missing bearer token: admin routes act on the key's account",
        );
    };
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let decimal = |v: &Value| -> Option<Decimal> {
        match v {
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.to_string().parse().ok(),
            _ => None,
        }
    };
    match (method, path) {
        ("GET", "state") => {
            let world = sim.world();
            let Some(account) = world.account(&key) else {
                return Answer::problem(404, "no account for this key");
            };
            Answer::json(
                200,
                json!({
                    "now": timestamp(world.now),
                    "balance": account.balance.round_dp(10).to_string(),
                    "spendLimit": account.spend_limit.to_string(),
                    "spendPerHour": world.spend_per_hour(&key).round_dp(10).to_string(),
                    "pods": account.pods.values().map(|p| world.pod_json(p)).collect::<Vec<_>>(),
                    "endpoints": account.endpoints.values().map(|e| world.endpoint_json(e)).collect::<Vec<_>>(),
                    "networkVolumes": account.volumes.values().map(World::volume_json).collect::<Vec<_>>(),
                }),
            )
        }
        ("POST", "accounts") => {
            let balance = decimal(&body["balance"]).unwrap_or(Decimal::from(500));
            let Some(new_key) = body["apiKey"].as_str() else {
                return Answer::problem(400, "apiKey is required");
            };
            sim.add_account(new_key, balance);
            Answer::empty(204)
        }
        ("POST", "account") => {
            let mut world = sim.world();
            let Some(account) = world.accounts.get_mut(&key) else {
                return Answer::problem(404, "no account for this key");
            };
            if let Some(balance) = decimal(&body["balance"]) {
                account.balance = balance;
                if balance > Decimal::ZERO {
                    account.zero_since = None;
                }
            }
            if let Some(limit) = decimal(&body["spendLimit"]) {
                account.spend_limit = limit;
            }
            drop(world);
            if let Some(quota) = body["requestsPerMinute"].as_u64() {
                *lock(&sim.quota) = quota as u32;
                lock(&sim.windows).clear();
            }
            // A shorter window lets a test of the rate budget run in seconds, not minutes.
            if let Some(seconds) = body["rateWindowSeconds"].as_u64() {
                *lock(&sim.window_seconds) = seconds.max(1);
                lock(&sim.windows).clear();
            }
            if let Some(hours) = body["volumeGraceHours"].as_u64() {
                sim.world().volume_grace_hours = Some(hours);
            }
            Answer::empty(204)
        }
        ("POST", "clock") => {
            let speed = body["speed"].as_f64();
            let advance = body["advanceSeconds"].as_u64().unwrap_or(0);
            let mut clock = lock(&sim.clock);
            let speed = speed.unwrap_or(clock.speed);
            clock.rebase(speed, advance * 1000);
            drop(clock);
            let now = sim.world().now;
            Answer::json(200, json!({"now": timestamp(now)}))
        }
        ("POST", "capacity") => {
            let (Some(gpu), Some(dc), Some(free)) = (
                body["gpuType"].as_str(),
                body["dataCenter"].as_str(),
                body["free"].as_u64(),
            ) else {
                return Answer::problem(400, "gpuType, dataCenter and free are required");
            };
            let cloud = body["cloud"].as_str().unwrap_or("SECURE");
            let mut world = sim.world();
            world.capacity.set(gpu, dc, cloud, free as u32);
            world.step_all();
            Answer::empty(204)
        }
        ("PUT", "faults") => {
            match serde_json::from_value::<Vec<FaultRule>>(body["rules"].clone()) {
                Ok(rules) => {
                    lock(&sim.faults).rules = rules;
                    Answer::empty(204)
                }
                Err(e) => Answer::problem(400, format!("rules: {e}")),
            }
        }
        ("DELETE", "faults") => {
            lock(&sim.faults).rules.clear();
            Answer::empty(204)
        }
        ("POST", "prices") => set_price(sim, &body, decimal),
        ("POST", "serverless") => {
            let mut world = sim.world();
            let ms = |v: &Value| v.as_f64().map(|s| (s * 1000.0) as Millis);
            if let Some(v) = ms(&body["coldStartSeconds"]) {
                world.timing.cold_start_ms = v;
            }
            if let Some(v) = ms(&body["flashbootColdStartSeconds"]) {
                world.timing.flashboot_cold_start_ms = v;
            }
            if let Some(v) = ms(&body["jobSeconds"]) {
                world.timing.job_ms = v;
            }
            Answer::empty(204)
        }
        ("GET", "requests") => Answer::json(200, json!(sim.requests())),
        ("DELETE", "requests") => {
            lock(&sim.log).clear();
            Answer::empty(204)
        }
        ("GET", "violations") => Answer::json(200, json!(sim.violations())),
        _ => Answer::problem(404, "no such admin route"),
    }
}

/// `POST /admin/prices`: changes the simulator's own catalogue while it runs. A GPU:
/// `{"gpuType", "secure"?, "community"?}` (a price, or `null`: not offered there) or
/// `{"gpuType", "remove": true}`; a pool: `{"pool", "flexPerSecond"?, "activePerSecond"?}`.
/// What already runs bills at the new rate from the next instant of the clock.
fn set_price(sim: &Sim, body: &Value, decimal: impl Fn(&Value) -> Option<Decimal>) -> Answer {
    let price = |field: &str| -> Result<Option<Option<Decimal>>, Answer> {
        match body.get(field) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => match decimal(v) {
                Some(d) if d > Decimal::ZERO => Ok(Some(Some(d))),
                _ => Err(Answer::problem(
                    400,
                    format!("{field} must be a positive price or null"),
                )),
            },
        }
    };
    // Caught up with the clock: what ran so far bills at the old price.
    let mut world = sim.world();
    let catalog = &mut world.prices;
    if let Some(gpu) = body["gpuType"].as_str() {
        if body["remove"] == json!(true) {
            return match catalog.gpus.remove(gpu) {
                Some(_) => Answer::empty(204),
                None => Answer::problem(404, format!("GPU type {gpu:?} is not in the catalogue")),
            };
        }
        let (secure, community) = match (price("secure"), price("community")) {
            (Ok(s), Ok(c)) => (s, c),
            (Err(answer), _) | (_, Err(answer)) => return answer,
        };
        let Some(offer) = catalog.gpus.get_mut(gpu) else {
            return Answer::problem(404, format!("GPU type {gpu:?} is not in the catalogue"));
        };
        if let Some(secure) = secure {
            offer.secure_per_hour = secure;
        }
        if let Some(community) = community {
            offer.community_per_hour = community;
        }
        return Answer::empty(204);
    }
    if let Some(pool) = body["pool"].as_str() {
        let (flex, active) = match (price("flexPerSecond"), price("activePerSecond")) {
            (Ok(f), Ok(a)) => (f, a),
            (Err(answer), _) | (_, Err(answer)) => return answer,
        };
        let Some(rates) = catalog.pools.get_mut(pool) else {
            return Answer::problem(404, format!("pool {pool:?} is not in the catalogue"));
        };
        match flex {
            Some(Some(flex)) => rates.flex_per_second = flex,
            Some(None) => return Answer::problem(400, "flexPerSecond cannot be null"),
            None => {}
        }
        if let Some(active) = active {
            rates.active_per_second = active;
        }
        return Answer::empty(204);
    }
    Answer::problem(400, "gpuType or pool is required")
}
