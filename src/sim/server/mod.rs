//! The simulator's HTTP side: REST v2 and GraphQL on one listener, the serverless job and
//! health routes on another (RunPod serves them from a different host), and the `/_sim/`
//! admin routes tests and the demo drive it with.
//!
//! Every REST request goes through the same steps, in RunPod's order: bearer key, rate
//! budget (with `RateLimit` / `RateLimit-Policy` on every authenticated answer), route
//! (404, 405 with `Allow`), injected faults, request body against the official spec (422),
//! then the world. Every answer is checked against the spec's response schema and any
//! mismatch is recorded for `/_sim/violations`.
//!
//! `pipeline` holds those steps, `routes` the REST routes, `reports` the catalogue and billing,
//! `graphql` the account query, `jobs` the serverless host, `admin` the `/_sim/` routes.

mod admin;
mod graphql;
mod jobs;
mod pipeline;
mod reports;
mod routes;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use axum::{
    Router,
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::world::{Millis, Refusal, World};
use jobs::serverless_entry;
use pipeline::api_entry;

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
    /// A hostile RunPod, for the operator's defences: `html` (answer `status`, default 502,
    /// with an HTML page, without acting); and after acting: `truncate` (the answer cut in
    /// half), `blankIdentity` (every `name` blank, every `env` empty), `wrongTypes` (ids and
    /// names as numbers), `huge` (10 MB that is not JSON), `endless` (a 200 whose body never
    /// ends), `empty` (a list answered empty, as a list that lags behind the writes).
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
    draws: crate::sim::world::IdGen,
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
                draws: crate::sim::world::IdGen::new(config.seed ^ 0x5EED),
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
        let mut world = self.world();
        let out = f(&mut world);
        // The closure may have edited objects directly: meters and liveness read again.
        world.resync();
        out
    }
}

/// The routers of one simulator: the API host and the serverless host.
pub fn routers(sim: Arc<Sim>) -> (Router, Router) {
    let api = Router::new().fallback(api_entry).with_state(sim.clone());
    let serverless = Router::new().fallback(serverless_entry).with_state(sim);
    (api, serverless)
}

struct Answer {
    status: u16,
    body: Value,
    /// A body already serialized (big lists); `body` is then `Null`.
    raw: Option<String>,
    headers: Vec<(&'static str, String)>,
    /// A body that never ends (the `endless` fault).
    endless: bool,
}

impl Answer {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body,
            raw: None,
            headers: Vec::new(),
            endless: false,
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
        let mut response = if self.endless {
            let chunks = futures::stream::unfold((), |()| async {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Some((
                    Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"[{\"id\":\"x\"},")),
                    (),
                ))
            });
            let mut r = (status, axum::body::Body::from_stream(chunks)).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        } else if let Some(text) = self.raw {
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
