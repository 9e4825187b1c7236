//! The request budget of one RunPod account, shared by every caller of the client.
//!
//! Three things hold calls back, in order:
//! 1. a pause: after a 429 (`Retry-After`) or when RunPod reports the window empty
//!    (`RateLimit: ...;r=0;t=T`), nobody calls until it ends;
//! 2. the reserve: when RunPod reports few calls left in the window, only money-saving calls
//!    (stop, scale down, delete) may spend them; the rest wait for the window to reset;
//! 3. pacing: `governor` spreads calls evenly at a little under the quota, so a burst never
//!    hits RunPod's fixed window all at once.
//!
//! The quota starts from the account's configuration and follows `RateLimit-Policy` when
//! RunPod announces a stricter one. An account that sets no budget follows RunPod's policy
//! either way, so a raised quota is used as soon as RunPod announces it.

use std::{
    collections::BTreeMap,
    num::NonZeroU32,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;

/// Whether a call saves money (and may spend the reserve) or not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Priority {
    /// Stop, scale down, delete: goes ahead when the budget is tight.
    Saving,
    /// Everything else.
    #[default]
    Normal,
}

/// Calls and outcomes of one route.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RouteStats {
    /// Calls sent.
    pub calls: u64,
    /// Answers with an error status or no answer.
    pub errors: u64,
    /// 429 answers.
    pub rate_limited: u64,
}

/// The budget as metrics see it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BudgetSnapshot {
    /// Calls allowed per window.
    pub quota: u32,
    /// The window, seconds.
    pub window_seconds: u64,
    /// What RunPod last said is left in the window.
    pub remaining: Option<u32>,
    /// Per route (templated, e.g. `GET /v2/pods/{id}`).
    pub routes: BTreeMap<String, RouteStats>,
}

struct State {
    /// Whether `quota` is the account's own ceiling (RunPod may only lower it) or RunPod's
    /// announcement is followed either way.
    ceiling: bool,
    quota: u32,
    window: Duration,
    remaining: Option<u32>,
    reset_at: Option<Instant>,
    paused_until: Option<Instant>,
    routes: BTreeMap<String, RouteStats>,
}

/// The budget. Clone the `Arc` to share it.
pub struct Budget {
    state: Mutex<State>,
    limiter: Mutex<Arc<DefaultDirectRateLimiter>>,
}

/// Pace at this share of the quota, to stay clear of the window edge.
const PACE_SHARE: f64 = 0.9;

fn limiter(quota: u32, window: Duration) -> Arc<DefaultDirectRateLimiter> {
    let per_call = window.mul_f64(1.0 / (f64::from(quota.max(1)) * PACE_SHARE));
    let quota = Quota::with_period(per_call.max(Duration::from_millis(1)))
        .expect("a positive period")
        .allow_burst(NonZeroU32::MIN);
    Arc::new(RateLimiter::direct(quota))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Budget {
    /// A budget of `requests_per_minute`, a ceiling: RunPod's policy may only lower it.
    pub fn new(requests_per_minute: u32) -> Arc<Self> {
        Self::build(requests_per_minute, true)
    }

    /// A budget that follows RunPod's announced policy, up or down, starting at
    /// `requests_per_minute` until the first answer.
    pub fn following(requests_per_minute: u32) -> Arc<Self> {
        Self::build(requests_per_minute, false)
    }

    fn build(requests_per_minute: u32, ceiling: bool) -> Arc<Self> {
        let window = Duration::from_secs(60);
        Arc::new(Self {
            state: Mutex::new(State {
                ceiling,
                quota: requests_per_minute.max(1),
                window,
                remaining: None,
                reset_at: None,
                paused_until: None,
                routes: BTreeMap::new(),
            }),
            limiter: Mutex::new(limiter(requests_per_minute, window)),
        })
    }

    /// Waits until a call of this priority may go.
    pub async fn acquire(&self, priority: Priority) {
        // Wait out any pause or reserve, take a pacing slot, and check again: a pause may
        // have begun (a 429 or an empty window) while this call waited for its slot.
        loop {
            self.wait_for_room(priority).await;
            let limiter = lock(&self.limiter).clone();
            limiter.until_ready().await;
            if !self.held_back(priority) {
                return;
            }
        }
    }

    fn held_back(&self, priority: Priority) -> bool {
        let state = lock(&self.state);
        let now = Instant::now();
        let paused = state.paused_until.is_some_and(|t| t > now);
        let reserve = (state.quota / 10).max(1);
        let tight = state.remaining.is_some_and(|r| r <= reserve)
            && state.reset_at.is_some_and(|t| t > now);
        paused || (tight && priority == Priority::Normal)
    }

    async fn wait_for_room(&self, priority: Priority) {
        loop {
            let wait = {
                let state = lock(&self.state);
                let now = Instant::now();
                let paused = state.paused_until.filter(|t| *t > now);
                let reserve = (state.quota / 10).max(1);
                let tight = state.remaining.is_some_and(|r| r <= reserve)
                    && state.reset_at.is_some_and(|t| t > now);
                match (paused, tight, priority) {
                    (Some(until), _, _) => Some(until - now),
                    (None, true, Priority::Normal) => state.reset_at.map(|t| t - now),
                    _ => None,
                }
            };
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                None => break,
            }
        }
    }

    /// Reads `RateLimit` and `RateLimit-Policy` from an answer.
    pub fn observe(&self, headers: &HeaderMap) {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let now = Instant::now();
        let mut state = lock(&self.state);
        if let Some(policy) = header("ratelimit-policy") {
            let q = field(&policy, "q").and_then(|v| v.parse::<u32>().ok());
            let w = field(&policy, "w").and_then(|v| v.parse::<u64>().ok());
            if let (Some(q), Some(w)) = (q, w) {
                let window = Duration::from_secs(w.max(1));
                let stricter = f64::from(q) / window.as_secs_f64()
                    < f64::from(state.quota) / state.window.as_secs_f64();
                let changed = q.max(1) != state.quota || window != state.window;
                // The account's own budget is a ceiling: RunPod's policy may only tighten it.
                // Without one, RunPod's policy is the budget.
                if (state.ceiling && stricter) || (!state.ceiling && changed) {
                    state.quota = q.max(1);
                    state.window = window;
                    *lock(&self.limiter) = limiter(state.quota, window);
                }
            }
        }
        if let Some(limit) = header("ratelimit") {
            let r = field(&limit, "r").and_then(|v| v.parse::<u32>().ok());
            let t = field(&limit, "t").and_then(|v| v.parse::<u64>().ok());
            if let (Some(r), Some(t)) = (r, t) {
                state.remaining = Some(r);
                state.reset_at = Some(now + Duration::from_secs(t));
                if r == 0 {
                    state.paused_until = Some(now + Duration::from_secs(t));
                }
            }
        }
    }

    /// Stops every call for `d` (after a 429).
    pub fn pause_for(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut state = lock(&self.state);
        if state.paused_until.is_none_or(|t| t < until) {
            state.paused_until = Some(until);
        }
    }

    /// Counts a call's outcome.
    pub fn count(&self, route: &str, status: Option<u16>) {
        let mut state = lock(&self.state);
        let stats = state.routes.entry(route.to_string()).or_default();
        stats.calls += 1;
        if status.is_none_or(|s| s >= 400) {
            stats.errors += 1;
        }
        if status == Some(429) {
            stats.rate_limited += 1;
        }
    }

    /// The budget now.
    pub fn snapshot(&self) -> BudgetSnapshot {
        let state = lock(&self.state);
        BudgetSnapshot {
            quota: state.quota,
            window_seconds: state.window.as_secs(),
            remaining: state.remaining,
            routes: state.routes.clone(),
        }
    }
}

/// A parameter of a structured header item: `"minute";q=60;w=60` -> `q` = `60`. The first
/// item (the tightest window RunPod names first) is read.
fn field(header: &str, name: &str) -> Option<String> {
    let item = header.split(',').next()?;
    item.split(';').skip(1).find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k == name).then(|| v.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(policy: &str, limit: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("ratelimit-policy", policy.parse().unwrap());
        h.insert("ratelimit", limit.parse().unwrap());
        h
    }

    #[test]
    fn reads_runpods_header_examples() {
        let policy = r#""minute";q=60;w=60, "hour";q=3000;w=3600, "day";q=50000;w=86400"#;
        let limit = r#""minute";r=0;t=12, "hour";r=2800;t=1812, "day";r=49500;t=45012"#;
        assert_eq!(field(policy, "q").as_deref(), Some("60"));
        assert_eq!(field(limit, "t").as_deref(), Some("12"));
        let budget = Budget::new(600);
        budget.observe(&headers(policy, limit));
        let snapshot = budget.snapshot();
        assert_eq!(
            (snapshot.quota, snapshot.window_seconds),
            (60, 60),
            "RunPod's stricter quota wins"
        );
        assert_eq!(snapshot.remaining, Some(0));
    }

    #[test]
    fn without_a_ceiling_runpods_policy_is_the_budget_up_or_down() {
        let raised = r#""minute";q=600;w=60"#;
        let left = r#""minute";r=599;t=60"#;
        let following = Budget::following(60);
        following.observe(&headers(raised, left));
        assert_eq!(following.snapshot().quota, 600, "a raised quota is used");
        following.observe(&headers(r#""minute";q=30;w=60"#, left));
        assert_eq!(following.snapshot().quota, 30, "a lowered one too");

        let ceiling = Budget::new(60);
        ceiling.observe(&headers(raised, left));
        assert_eq!(ceiling.snapshot().quota, 60, "a set budget stays a ceiling");
    }

    #[tokio::test]
    async fn saving_calls_spend_the_reserve_and_normal_calls_wait() {
        let budget = Budget::new(6000);
        budget.observe(&headers(r#""10s";q=100;w=10"#, r#""10s";r=3;t=5"#));
        // 3 left of 100 is under the 10% reserve: a stop goes at once, a create waits.
        let saving =
            tokio::time::timeout(Duration::from_millis(200), budget.acquire(Priority::Saving))
                .await;
        assert!(saving.is_ok(), "a saving call is not held back");
        let normal =
            tokio::time::timeout(Duration::from_millis(200), budget.acquire(Priority::Normal))
                .await;
        assert!(
            normal.is_err(),
            "a normal call waits for the window to reset"
        );
    }

    #[test]
    fn outcomes_are_counted_per_route() {
        let budget = Budget::new(60);
        budget.count("GET /v2/pods", Some(200));
        budget.count("GET /v2/pods", Some(429));
        budget.count("POST /v2/pods", None);
        let routes = budget.snapshot().routes;
        assert_eq!(
            routes["GET /v2/pods"],
            RouteStats {
                calls: 2,
                errors: 1,
                rate_limited: 1
            }
        );
        assert_eq!(routes["POST /v2/pods"].errors, 1);
    }
}
