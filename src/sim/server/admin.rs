//! The `/_sim/` admin routes tests and the demo drive the simulator with: accounts, the
//! clock, capacity, faults, prices, timing, the request log and spec violations.

use axum::{body::Bytes, http::HeaderMap};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::{Answer, FaultRule, Sim, bearer, lock};
use crate::sim::{
    catalog::Catalog,
    clock::millis_from_seconds,
    world::{World, timestamp},
};

pub(super) fn admin(
    sim: &Sim,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    body: &Bytes,
) -> Answer {
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
                    "registries": account.registries.values().map(|r| json!({"id": r.id, "name": r.name})).collect::<Vec<_>>(),
                    "podErrors": account.pods.keys().filter_map(|id| Some((id.clone(), world.pod_errors.get(id)?.clone()))).collect::<std::collections::BTreeMap<_, _>>(),
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
                *lock(&sim.quota) = u32::try_from(quota).unwrap_or(u32::MAX);
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
        ("POST", "traffic") => play_traffic(sim, &key, &body),
        ("POST", "pod-load") => {
            let (Some(id), Some(busy)) = (body["podId"].as_str(), body["gpuBusy"].as_f64()) else {
                return Answer::problem(400, "podId and gpuBusy (0-1) are required");
            };
            if !(0.0..=1.0).contains(&busy) {
                return Answer::problem(400, "gpuBusy is a share of the time, from 0 to 1");
            }
            let mut world = sim.world();
            match world
                .accounts
                .get_mut(&key)
                .and_then(|a| a.pods.get_mut(id))
            {
                Some(pod) => {
                    // In range, checked above.
                    pod.gpu_busy_permille = (busy * 1000.0).round() as u32;
                    Answer::empty(204)
                }
                None => Answer::problem(404, format!("no pod {id}")),
            }
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
            world
                .capacity
                .set(gpu, dc, cloud, u32::try_from(free).unwrap_or(u32::MAX));
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
        ("POST", "images") => {
            let field = |f: &str| body[f].as_str().filter(|v| !v.is_empty());
            let (Some(image), Some(username), Some(password)) =
                (field("image"), field("username"), field("password"))
            else {
                return Answer::problem(400, "image, username and password are required");
            };
            sim.world().private_images.insert(
                crate::sim::world::repository(image).to_string(),
                crate::sim::world::PrivateImage {
                    username: username.to_string(),
                    password: password.to_string(),
                },
            );
            Answer::empty(204)
        }
        ("POST", "serverless") => {
            let mut world = sim.world();
            let ms = |v: &Value| v.as_f64().and_then(millis_from_seconds);
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

/// The most hours one `POST /_sim/traffic` plays: a month.
const MAX_TRAFFIC_HOURS: u64 = 31 * 24;
/// The most jobs one hour of a traffic pattern may hold.
const MAX_JOBS_PER_HOUR: u64 = 3_600;

/// `POST /_sim/traffic`: plays a traffic pattern at an endpoint on the virtual clock, from
/// now: `{"endpointId", "hours", "jobsPerHour", "jobSeconds", "bursts"?}`, where `jobsPerHour`
/// is one number or 24 (by hour of the day, UTC) and the jobs of an hour arrive evenly spread;
/// `bursts: {"everyHours", "jobs", "jobSeconds"?}` adds `jobs` jobs arriving together at the
/// start of every `everyHours`-th hour (the first hour included), of `jobSeconds` each (the
/// pattern's by default). The clock ends `hours` later, with every job submitted at its
/// instant as `POST /v2/{id}/run` would, so a week of traffic passes in one request and
/// `/health` and billing follow it.
fn play_traffic(sim: &Sim, key: &str, body: &Value) -> Answer {
    let Some(endpoint) = body["endpointId"].as_str() else {
        return Answer::problem(400, "endpointId is required");
    };
    let Some(hours) = body["hours"]
        .as_u64()
        .filter(|h| (1..=MAX_TRAFFIC_HOURS).contains(h))
    else {
        return Answer::problem(400, format!("hours must be 1 to {MAX_TRAFFIC_HOURS}"));
    };
    let count = |v: &Value| v.as_u64().filter(|n| *n <= MAX_JOBS_PER_HOUR);
    let per_hour: Vec<u64> = match &body["jobsPerHour"] {
        Value::Array(by_hour) if by_hour.len() == 24 => {
            match by_hour.iter().map(count).collect::<Option<Vec<_>>>() {
                Some(counts) => counts,
                None => {
                    return Answer::problem(
                        400,
                        format!("jobsPerHour: each hour must be 0 to {MAX_JOBS_PER_HOUR} jobs"),
                    );
                }
            }
        }
        v => match count(v) {
            Some(n) => vec![n; 24],
            None => {
                return Answer::problem(
                    400,
                    format!(
                        "jobsPerHour must be 0 to {MAX_JOBS_PER_HOUR} jobs, or a list of 24 (by hour of the day)"
                    ),
                );
            }
        },
    };
    let Some(job_seconds) = body["jobSeconds"]
        .as_f64()
        .filter(|s| *s > 0.0 && *s <= 86_400.0)
    else {
        return Answer::problem(400, "jobSeconds must be more than 0 and at most 86400");
    };
    // Bursts: (every so many hours, jobs at once, seconds each).
    let bursts = match &body["bursts"] {
        Value::Null => None,
        b => {
            let every = b["everyHours"]
                .as_u64()
                .filter(|h| (1..=MAX_TRAFFIC_HOURS).contains(h));
            let jobs = count(&b["jobs"]).filter(|n| *n >= 1);
            let seconds = match &b["jobSeconds"] {
                Value::Null => Some(job_seconds),
                v => v.as_f64().filter(|s| *s > 0.0 && *s <= 86_400.0),
            };
            match (every, jobs, seconds) {
                (Some(every), Some(jobs), Some(seconds)) => Some((every, jobs, seconds)),
                _ => {
                    return Answer::problem(
                        400,
                        format!(
                            "bursts must be {{everyHours: 1 to {MAX_TRAFFIC_HOURS}, jobs: 1 to {MAX_JOBS_PER_HOUR}, jobSeconds?: more than 0 and at most 86400}}"
                        ),
                    );
                }
            }
        }
    };
    let start = sim.world().now;
    if sim
        .world()
        .account(key)
        .is_none_or(|a| !a.endpoints.contains_key(endpoint))
    {
        return Answer::problem(404, "endpoint not found");
    }
    // Moves the clock to `at` (it may have run on by itself meanwhile).
    let move_to = |at: u64| {
        let mut clock = lock(&sim.clock);
        let now = clock.now();
        let speed = clock.speed;
        clock.rebase(speed, at.saturating_sub(now));
    };
    let mut jobs = 0u64;
    for hour in 0..hours {
        let at = start + hour * crate::sim::clock::MS_PER_HOUR;
        let hour_of_day = ((crate::sim::clock::EPOCH_UNIX_SECONDS as u64 * 1000 + at)
            / crate::sim::clock::MS_PER_HOUR
            % 24) as usize;
        let n = per_hour[hour_of_day];
        let burst = bursts.filter(|(every, _, _)| hour % every == 0);
        let arrivals = (0..n)
            .map(|j| (at + j * crate::sim::clock::MS_PER_HOUR / n, job_seconds))
            .chain(burst.into_iter().flat_map(|(_, b, seconds)| {
                std::iter::repeat_n((at, seconds), usize::try_from(b).unwrap_or(0))
            }));
        let mut arrivals: Vec<(u64, f64)> = arrivals.collect();
        arrivals.sort_by_key(|(at, _)| *at);
        for (instant, seconds) in arrivals {
            move_to(instant);
            let mut world = sim.world();
            if let Err(refusal) = world.submit_job(
                key,
                endpoint,
                json!({"simulatedSeconds": seconds, "traffic": jobs}),
            ) {
                return Answer::refusal(refusal);
            }
            jobs += 1;
        }
    }
    move_to(start + hours * crate::sim::clock::MS_PER_HOUR);
    let now = sim.world().now;
    Answer::json(200, json!({"jobs": jobs, "now": timestamp(now)}))
}

/// `POST /_sim/prices`: changes the simulator's own catalogue while it runs. A GPU:
/// `{"gpuType", "secure"?, "community"?}` (a price, or `null`: not offered there) or
/// `{"gpuType", "remove": true}`; a pool: `{"pool", "flexPerSecond"?, "activePerSecond"?}`.
/// What already runs bills at the new rate from the next instant of the clock.
pub(super) fn set_price(
    sim: &Sim,
    body: &Value,
    decimal: impl Fn(&Value) -> Option<Decimal>,
) -> Answer {
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
    // Caught up with the clock: what ran so far bills at the old price, what runs from now
    // at the new one.
    let mut world = sim.world();
    let answer = change_catalog(&mut world.prices, body, &price);
    world.resync();
    answer
}

type Price<'a> = &'a dyn Fn(&str) -> Result<Option<Option<Decimal>>, Answer>;

fn change_catalog(catalog: &mut Catalog, body: &Value, price: Price<'_>) -> Answer {
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
