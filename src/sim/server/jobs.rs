//! The serverless host: `/run`, `/runsync`, `/status`, `/health` of each endpoint.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, Uri, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{
    Answer, Sim, bearer,
    pipeline::{read_body, record, too_large},
    query_param,
};
use crate::sim::world::World;

/// The largest `/run` body RunPod takes.
const RUN_BODY_LIMIT: usize = 10 * 1024 * 1024;
/// The largest `/runsync` body RunPod takes.
const RUNSYNC_BODY_LIMIT: usize = 20 * 1024 * 1024;

pub(super) async fn serverless_entry(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let path = uri.path().to_string();
    // RunPod takes 10 MB on `/run` and 20 MB on `/runsync`.
    let limit = if path.ends_with("/runsync") {
        RUNSYNC_BODY_LIMIT
    } else {
        RUN_BODY_LIMIT
    };
    let Some(body) = read_body(body, limit).await else {
        record(&sim, method.as_str(), path, 413, &Bytes::new());
        return too_large(limit).into_response();
    };
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

pub(super) async fn serverless_call(
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
