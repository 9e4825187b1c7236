//! Measured use of an account's endpoints and `type: Auto` pods. The endpoints' hourly
//! billing is kept in memory per account and rebuilt from RunPod after a restart (RunPod keeps
//! the billing).
//!
//! One request at most per account reconcile, through the account's client and budget:
//!
//! - every five resyncs of the account (at least 10 s, at most [`HEAD_EVERY`]), `GET /v2/billing/serverless?bucketSize=hour&lastN=3`: RunPod's
//!   current hour (from the answered window, on RunPod's clock) and the records of the hour
//!   two before it. An hour is read only when an hour has passed since it closed: RunPod's
//!   billing can lag by up to about an hour, and an hour read too early would look idle.
//! - otherwise the newest hours of the window not read yet (a restart's week, or hours the
//!   head reads skipped), by `startTime`/`endTime`, as many hours per request as keep the
//!   answer under [`MAX_RECORDS`] records (every endpoint of the account has a record per
//!   hour it was billed).
//!
//! An answer is taken whole or not at all: one record that cannot be read (no endpoint id,
//! a time or an amount that is not one) drops the answer, and the hours are read again later.
//! Memory: per endpoint, one `(hour, USD)` pair per billed hour of the last [`KEEP_HOURS`].
//!
//! Beside the bill, the workload reconciler hands in what it reads anyway or reads for
//! `type: Auto` only, each kept by hour for [`KEEP_HOURS`] at most:
//!
//! - each endpoint's `/health` samples ([`Usage::sample_health`]): bursts shorter than the
//!   bill's hour, and time throttled or queued (in memory only: a restart starts them over);
//! - a `type: Auto` pod's GPU samples ([`Usage::sample_pod`], seeded from the status after a
//!   restart) and its hourly bill ([`Usage::read_pod_bill`], one request per pod every few
//!   resyncs), which prices the Pod side of its advice.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::jiff::Timestamp;
use rust_decimal::{
    Decimal,
    prelude::{FromPrimitive, ToPrimitive},
};

use crate::{
    engine::advice::Sampled,
    runpod::{
        BillingKind, Client, Error,
        types::{BillingQuery, Health},
    },
};

/// The measured window: a week.
pub const WINDOW_HOURS: i64 = 7 * 24;
/// Hours kept (the window, and a day of slack while it moves on).
pub const KEEP_HOURS: i64 = WINDOW_HOURS + 24;
/// How often RunPod's current hour is read.
pub const HEAD_EVERY: Duration = Duration::from_secs(300);
/// The most records one backfill answer may hold.
pub const MAX_RECORDS: usize = 20_000;
/// The most hours one backfill request asks for.
const MAX_HOURS_PER_READ: i64 = 24;

/// What was measured for one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measured {
    /// USD billed per hour (`gpuAmount`), from the endpoint's first billed hour in the window
    /// to the last hour read, in order.
    pub billed: Vec<Decimal>,
    /// The end of the last hour read.
    pub until: Timestamp,
}

#[derive(Default)]
struct State {
    /// RunPod's current hour (hours since 1970) at the last head read, and when it was read.
    head: Option<(i64, Instant)>,
    /// Hours whose records are in.
    read: BTreeSet<i64>,
    /// Endpoint id -> (hour, USD) for each billed hour, by hour.
    billed: HashMap<String, Vec<(i64, f32)>>,
    last_error: Option<String>,
    /// Pod id -> its GPU samples.
    pods: HashMap<String, PodSamples>,
    /// Endpoint id -> its `/health` samples.
    health: HashMap<String, HealthSamples>,
    /// Pod id -> what its bill says (a `type: Auto` pod's), and when it was read.
    pod_bills: HashMap<String, (Instant, Option<PodRate>)>,
    /// The hour (controller's clock) the samples of gone pods and endpoints were last
    /// forgotten.
    pruned: i64,
}

/// An endpoint's `/health` samples, by hour of the controller's clock.
#[derive(Default)]
struct HealthSamples {
    /// The read the last sample came from (a read the inventory answers again from its cache
    /// is not sampled twice).
    last: Option<Instant>,
    /// (hour since 1970, that hour's samples), oldest first; [`KEEP_HOURS`] at most.
    hours: std::collections::VecDeque<(i64, Sampled)>,
    /// The last sum over a window: ((the measurement's last hour, the window), the sum).
    summary: Option<((i64, u32), Sampled)>,
}

/// A running pod's GPU samples, by hour of its container's uptime (RunPod's clock: the
/// `runtime.uptime` it reports), so that a restarted container starts over.
#[derive(Default)]
struct PodSamples {
    /// The last uptime seen, seconds.
    uptime: u64,
    /// Uptime hour -> (samples, samples with a GPU busy).
    hours: std::collections::BTreeMap<u64, (u32, u32)>,
    /// When it was last sampled (pods not sampled for [`KEEP_HOURS`] are forgotten).
    seen: Option<Instant>,
}

/// What a pod's hourly bill says it costs: the GPU USD of its whole billed hours, per hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodRate {
    /// USD per hour, all its GPUs.
    pub per_hour: Decimal,
    /// How many hours it is the mean of.
    pub hours: u32,
}

/// What a pod's hourly bill (`GET /v2/billing/pods?podId=&bucketSize=hour`) says it costs per
/// hour: the mean GPU amount of its billed hours, leaving out its first billed hour (it may
/// have started within it) and the hour in progress and the one before it (RunPod bills them
/// with a lag), so each hour counted is one it ran whole. `end`: the end of the answer's
/// window (of RunPod's current hour). `Ok(None)` before such an hour; an error naming the
/// first record that cannot be read (the whole answer is then dropped).
pub fn pod_rate(
    records: &[serde_json::Value],
    pod: &str,
    end: Timestamp,
) -> Result<Option<PodRate>, String> {
    let mut hours = std::collections::BTreeMap::new();
    for (n, r) in records.iter().enumerate() {
        if r["podId"].as_str().is_some_and(|id| id != pod) {
            continue;
        }
        let at: Timestamp = r["startTime"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("pod billing record {n}: startTime is not an RFC 3339 time"))?;
        let amount = r["gpuAmount"]
            .as_f64()
            .filter(|a| a.is_finite() && *a >= 0.0 && *a < 1e6)
            .ok_or_else(|| format!("pod billing record {n}: gpuAmount is not an amount of USD"))?;
        *hours.entry(hour_of(at)).or_insert(0.0) += amount;
    }
    // The current hour is the one before `end`; the newest read is two before that.
    let newest_whole = hour_of(end) - 3;
    let billed: Vec<f64> = hours
        .iter()
        .filter(|(h, a)| **h <= newest_whole && **a > 0.0)
        .skip(1)
        .map(|(_, a)| *a)
        .collect();
    if billed.is_empty() {
        return Ok(None);
    }
    let mean = billed.iter().sum::<f64>() / billed.len() as f64;
    Ok(Decimal::from_f64(mean).map(|m| PodRate {
        per_hour: m.round_dp(6),
        hours: u32::try_from(billed.len()).unwrap_or(u32::MAX),
    }))
}

/// A GPU at or above this percent of utilisation counts the pod as busy.
pub const POD_BUSY_PERCENT: f64 = 10.0;

/// The measurements of one account.
#[derive(Default)]
pub struct Usage {
    state: Mutex<State>,
    /// One read at a time (a second caller returns at once).
    reading: tokio::sync::Mutex<()>,
}

fn hour_of(t: Timestamp) -> i64 {
    t.as_second().div_euclid(3600)
}

fn time_of(hour: i64) -> Timestamp {
    Timestamp::from_second(hour.saturating_mul(3600)).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The records of an answer as `(endpoint, hour, USD)`, each within `hours`; an error naming
/// the first record that cannot be read.
fn records(
    records: &[serde_json::Value],
    hours: std::ops::RangeInclusive<i64>,
) -> Result<Vec<(String, i64, f32)>, String> {
    let mut out = Vec::with_capacity(records.len());
    for (n, r) in records.iter().enumerate() {
        let id = r["serverlessId"]
            .as_str()
            .filter(|s| !s.is_empty() && s.len() <= 64)
            .ok_or_else(|| format!("billing record {n}: serverlessId is missing"))?;
        let at: Timestamp = r["startTime"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("billing record {n}: startTime is not an RFC 3339 time"))?;
        let amount = r["gpuAmount"]
            .as_f64()
            .filter(|a| a.is_finite() && *a >= 0.0 && *a < 1e9)
            .ok_or_else(|| format!("billing record {n}: gpuAmount is not an amount of USD"))?;
        let hour = hour_of(at);
        if hours.contains(&hour) {
            out.push((id.to_string(), hour, amount as f32));
        }
    }
    Ok(out)
}

impl Usage {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest hour that may be read: two before RunPod's current one.
    fn newest(state: &State) -> Option<i64> {
        state.head.map(|(current, _)| current - 2)
    }

    /// Takes the records of `hours`, marking them read.
    fn take(
        state: &mut State,
        hours: std::ops::RangeInclusive<i64>,
        found: Vec<(String, i64, f32)>,
    ) {
        for hour in hours {
            state.read.insert(hour);
        }
        for (id, hour, amount) in found {
            let entries = state.billed.entry(id).or_default();
            match entries.binary_search_by_key(&hour, |(h, _)| *h) {
                // Two records of one endpoint and hour: RunPod's parts of it, summed.
                Ok(i) => entries[i].1 += amount,
                Err(i) => entries.insert(i, (hour, amount)),
            }
        }
        if let Some(newest) = Self::newest(state) {
            let oldest = newest - KEEP_HOURS;
            state.read.retain(|h| *h > oldest && *h <= newest);
            state.billed.retain(|_, entries| {
                entries.retain(|(h, _)| *h > oldest);
                !entries.is_empty()
            });
        }
    }

    /// The next hours to read by time, newest first: the newest unread run of the window,
    /// at most `per_read` hours long.
    fn next_gap(state: &State, per_read: i64) -> Option<std::ops::RangeInclusive<i64>> {
        let newest = Self::newest(state)?;
        let oldest = newest - WINDOW_HOURS + 1;
        let end = (oldest..=newest).rev().find(|h| !state.read.contains(h))?;
        let mut start = end;
        while start > oldest && end - start + 1 < per_read && !state.read.contains(&(start - 1)) {
            start -= 1;
        }
        Some(start..=end)
    }

    /// How often RunPod's current hour is read for an account resynced every `resync`.
    pub fn head_every(resync: Duration) -> Duration {
        (resync * 5).clamp(Duration::from_secs(10), HEAD_EVERY)
    }

    /// One step of measurement (at most one request); `endpoints`: how many endpoints the
    /// account has (it sizes a backfill read); `head_every`: see [`Usage::head_every`].
    /// Returns whether anything was read.
    pub async fn step(
        &self,
        client: &Client,
        endpoints: usize,
        head_every: Duration,
    ) -> Result<bool, Error> {
        let Ok(_one) = self.reading.try_lock() else {
            return Ok(false);
        };
        let head_due = self
            .lock()
            .head
            .is_none_or(|(_, at)| at.elapsed() >= head_every);
        let per_read = i64::try_from(MAX_RECORDS / endpoints.max(1))
            .unwrap_or(1)
            .clamp(1, MAX_HOURS_PER_READ);
        let gap = if head_due {
            None
        } else {
            Self::next_gap(&self.lock(), per_read)
        };
        let query = match &gap {
            None if !head_due => return Ok(false),
            None => BillingQuery {
                bucket_size: Some("hour".into()),
                last_n: Some(3),
                ..BillingQuery::default()
            },
            Some(hours) => BillingQuery {
                bucket_size: Some("hour".into()),
                start_time: Some(time_of(*hours.start()).to_string()),
                end_time: Some(time_of(*hours.end() + 1).to_string()),
                ..BillingQuery::default()
            },
        };
        let bill = client.billing(BillingKind::Serverless, &query).await?;
        let mut state = self.lock();
        let hours = match gap {
            Some(hours) => hours,
            None => {
                let Some((start, end)) = bill.window() else {
                    state.last_error =
                        Some("RunPod's billing answer says no window (metadata.query)".into());
                    return Ok(false);
                };
                let (first, current) = (hour_of(start), hour_of(end) - 1);
                if current - first != 2 {
                    state.last_error = Some(format!(
                        "RunPod answered lastN=3 hours with {start} to {end}"
                    ));
                    return Ok(false);
                }
                state.head = Some((current, Instant::now()));
                first..=first
            }
        };
        match records(&bill.records, hours.clone()) {
            Ok(found) => {
                Self::take(&mut state, hours, found);
                state.last_error = None;
                Ok(true)
            }
            Err(why) => {
                tracing::warn!(error = %why, "a billing answer could not be read; its hours are read again later");
                state.last_error = Some(why);
                Ok(false)
            }
        }
    }

    /// What was measured for `endpoint`: the read hours of the window that run without a gap
    /// up to the newest read, from the endpoint's first billed hour among them. `None` before
    /// any billed hour (an endpoint that never ran, or nothing read yet). `window`: hours,
    /// at most [`WINDOW_HOURS`].
    pub fn measured(&self, endpoint: &str, window: u32) -> Option<Measured> {
        let window = i64::from(window).clamp(1, WINDOW_HOURS);
        let state = self.lock();
        let newest = *state.read.last()?;
        let mut oldest = newest;
        while oldest > newest - window + 1 && state.read.contains(&(oldest - 1)) {
            oldest -= 1;
        }
        let entries = state.billed.get(endpoint)?;
        let first = entries
            .iter()
            .map(|(h, _)| *h)
            .find(|h| (oldest..=newest).contains(h))?;
        let mut billed = vec![Decimal::ZERO; usize::try_from(newest - first + 1).ok()?];
        for (hour, amount) in entries {
            if (first..=newest).contains(hour) {
                billed[usize::try_from(hour - first).ok()?] =
                    Decimal::from_f32(*amount).unwrap_or_default().round_dp(6);
            }
        }
        Some(Measured {
            billed,
            until: time_of(newest + 1),
        })
    }

    /// Forgets, once an hour, the samples of pods and endpoints not sampled for
    /// [`KEEP_HOURS`] (gone, or no longer measured), so memory stays the size of what runs.
    fn prune(state: &mut State, hour: i64) {
        if state.pruned == hour {
            return;
        }
        state.pruned = hour;
        let keep = Duration::from_secs(u64::try_from(KEEP_HOURS).unwrap_or(192) * 3600);
        state
            .pods
            .retain(|_, p| p.seen.is_none_or(|at| at.elapsed() < keep));
        state
            .health
            .retain(|_, e| e.hours.back().is_some_and(|(h, _)| *h > hour - KEEP_HOURS));
    }

    /// Takes one sample of an endpoint's `/health` read at `read_at` (a read already sampled
    /// is not taken again): how many workers ran a job (at most `max_workers`, what the
    /// endpoint may run, so a hostile answer cannot grow the histogram), whether one was
    /// throttled and whether a job was queued. By hour of the controller's clock; hours older
    /// than [`KEEP_HOURS`] are dropped.
    pub fn sample_health(
        &self,
        endpoint: &str,
        read_at: Instant,
        health: &Health,
        max_workers: u32,
    ) {
        self.sample_health_at(
            hour_of(Timestamp::now()),
            endpoint,
            read_at,
            health,
            max_workers,
        );
    }

    /// [`Usage::sample_health`] at `hour` (hours since 1970).
    fn sample_health_at(
        &self,
        hour: i64,
        endpoint: &str,
        read_at: Instant,
        health: &Health,
        max_workers: u32,
    ) {
        let mut state = self.lock();
        Self::prune(&mut state, hour);
        if !state.health.contains_key(endpoint) {
            state
                .health
                .insert(endpoint.to_string(), HealthSamples::default());
        }
        let Some(samples) = state.health.get_mut(endpoint) else {
            return;
        };
        if samples.last == Some(read_at) {
            return;
        }
        samples.last = Some(read_at);
        if samples.hours.back().is_none_or(|(h, _)| *h != hour) {
            samples.hours.push_back((
                hour,
                Sampled {
                    hours: 1,
                    ..Sampled::default()
                },
            ));
        }
        while samples
            .hours
            .front()
            .is_some_and(|(h, _)| *h <= hour - KEEP_HOURS)
        {
            samples.hours.pop_front();
        }
        if let Some((_, sampled)) = samples.hours.back_mut() {
            sampled.record(
                health.workers.running.min(u64::from(max_workers)),
                health.workers.throttled > 0,
                health.jobs.in_queue > 0,
            );
        }
    }

    /// An endpoint's `/health` samples over the last `window` hours (the hour in progress
    /// included), as they were when the measurement last moved on: summed again only when
    /// `until` (the end of the last billed hour read) changes, so the figures in the status
    /// change hourly, not with every sample (a status write per resync otherwise). `None`
    /// before the first sample.
    pub fn health_sampled(&self, endpoint: &str, window: u32, until: Timestamp) -> Option<Sampled> {
        self.health_sampled_at(hour_of(Timestamp::now()), endpoint, window, hour_of(until))
    }

    /// [`Usage::health_sampled`] at `hour`.
    fn health_sampled_at(
        &self,
        hour: i64,
        endpoint: &str,
        window: u32,
        until: i64,
    ) -> Option<Sampled> {
        let oldest = hour - i64::from(window.max(1));
        let mut state = self.lock();
        let samples = state.health.get_mut(endpoint)?;
        if let Some((key, sampled)) = &samples.summary
            && *key == (until, window)
        {
            return Some(sampled.clone());
        }
        let mut all = Sampled::default();
        for (_, hour) in samples.hours.iter().filter(|(h, _)| *h > oldest) {
            all.merge(hour);
        }
        let all = (all.samples() > 0).then_some(all)?;
        samples.summary = Some(((until, window), all.clone()));
        Some(all)
    }

    /// Takes one sample of a pod's GPUs, if it runs and RunPod says its utilisation: busy when
    /// any GPU is at [`POD_BUSY_PERCENT`] or more. The controller samples a pod each time it
    /// reconciles its workload (every resync at least). RunPod keeps no history of it (a pod's
    /// bill is flat): after a restart the samples start from the status's figures
    /// ([`Usage::seed_pod`]) or over.
    pub fn sample_pod(&self, pod: &crate::runpod::types::Pod) {
        let Some(runtime) = pod.runtime.as_ref().filter(|_| pod.status == "RUNNING") else {
            return;
        };
        let (Some(uptime), Some(util)) = (runtime.uptime, runtime.gpu_util_max) else {
            return;
        };
        let busy = util >= POD_BUSY_PERCENT;
        let mut state = self.lock();
        Self::prune(&mut state, hour_of(Timestamp::now()));
        let samples = state.pods.entry(pod.id.clone()).or_default();
        if uptime < samples.uptime {
            // The container restarted: its uptime hours begin again.
            samples.hours.clear();
        }
        samples.uptime = uptime;
        samples.seen = Some(Instant::now());
        let hour = uptime / 3600;
        let slot = samples.hours.entry(hour).or_default();
        slot.0 = slot.0.saturating_add(1);
        slot.1 = slot.1.saturating_add(u32::from(busy));
        if let Some(oldest) = hour.checked_sub(u64::try_from(KEEP_HOURS).unwrap_or(192)) {
            samples.hours.retain(|h, _| *h > oldest);
        }
    }

    /// Reads a `type: Auto` pod's hourly bill over the last `window` hours, at most once per
    /// `every` (one request; a failed or unreadable answer keeps what was known, and is
    /// tried again after `every`). See [`pod_rate`].
    pub async fn read_pod_bill(&self, client: &Client, pod: &str, window: u32, every: Duration) {
        {
            let mut state = self.lock();
            if state
                .pod_bills
                .get(pod)
                .is_some_and(|(at, _)| at.elapsed() < every)
            {
                return;
            }
            // Taken now, so that reconciles meanwhile do not read it again.
            let known = state.pod_bills.get(pod).and_then(|(_, rate)| *rate);
            let live: std::collections::HashSet<&String> = state.pods.keys().collect();
            if state.pod_bills.len() > 2 * live.len() + 16 {
                let keep: std::collections::HashSet<String> = live.into_iter().cloned().collect();
                state.pod_bills.retain(|id, _| keep.contains(id));
            }
            state
                .pod_bills
                .insert(pod.to_string(), (Instant::now(), known));
        }
        let last_n = window.clamp(1, u32::try_from(WINDOW_HOURS).unwrap_or(168)) + 3;
        let query = BillingQuery {
            bucket_size: Some("hour".into()),
            id: Some(pod.to_string()),
            last_n: Some(last_n),
            ..BillingQuery::default()
        };
        let read = match client.billing(BillingKind::Pods, &query).await {
            Ok(bill) => match bill.window() {
                Some((_, end)) => pod_rate(&bill.records, pod, end),
                None => Err("RunPod's pod billing answer says no window (metadata.query)".into()),
            },
            Err(e) => Err(e.to_string()),
        };
        match read {
            Ok(rate) => {
                if let Some(entry) = self.lock().pod_bills.get_mut(pod) {
                    entry.1 = rate;
                }
            }
            Err(why) => {
                tracing::warn!(pod, error = %why, "a pod's bill could not be read; its catalogue price stands in");
            }
        }
    }

    /// What a pod's bill says it costs, when read (see [`Usage::read_pod_bill`]).
    pub fn pod_bill(&self, pod: &str) -> Option<PodRate> {
        self.lock().pod_bills.get(pod).and_then(|(_, rate)| *rate)
    }

    /// Seeds a pod that has no samples in this process (the controller restarted) with what
    /// the workload's status says was measured before: `hours` whole hours of uptime just
    /// before the current one, each busy `busy_per_day` ÷ 24 of the hour, so a restart does
    /// not cost a `type: Auto` Pod a week of measuring. Only the hours the pod's container has
    /// been up for (a restarted container starts over). The figures a decision reads (total
    /// busy time over the window) are the status's exactly; how they spread over the hours is
    /// not kept. Returns whether it seeded.
    pub fn seed_pod(
        &self,
        pod: &crate::runpod::types::Pod,
        hours: u32,
        busy_per_day: Decimal,
    ) -> bool {
        let Some(uptime) = pod.runtime.as_ref().and_then(|r| r.uptime) else {
            return false;
        };
        let current = uptime / 3600;
        let hours = u64::from(hours)
            .min(current)
            .min(u64::try_from(WINDOW_HOURS).unwrap_or(168));
        let share = (busy_per_day / Decimal::from(24)).clamp(Decimal::ZERO, Decimal::ONE);
        let busy = (share * Decimal::from(1_000)).round().to_u32().unwrap_or(0);
        let mut state = self.lock();
        let samples = state.pods.entry(pod.id.clone()).or_default();
        if hours == 0 || !samples.hours.is_empty() {
            return false;
        }
        samples.uptime = uptime;
        samples.seen = Some(Instant::now());
        for hour in current - hours..current {
            samples.hours.insert(hour, (1_000, busy));
        }
        true
    }

    /// A pod's busy seconds per sampled hour (the busy share of its samples, times an hour)
    /// over the last `window` whole hours of its uptime (the hour in progress is not one yet,
    /// so the figures change hourly at most), oldest first; hours without a sample are left
    /// out (so a window is whole only when every hour of it was sampled).
    pub fn pod_measured(&self, pod: &str, window: u32) -> Option<Vec<Decimal>> {
        let state = self.lock();
        let samples = state.pods.get(pod)?;
        let current = samples.uptime / 3600;
        let oldest = current.saturating_sub(u64::from(window.max(1)));
        let hours: Vec<Decimal> = samples
            .hours
            .range(oldest..current)
            .map(|(_, (n, busy))| {
                Decimal::from(*busy) * Decimal::from(3600) / Decimal::from((*n).max(1))
            })
            .collect();
        (!hours.is_empty()).then_some(hours)
    }

    /// The last error, if the last read failed to be taken.
    pub fn last_error(&self) -> Option<String> {
        self.lock().last_error.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: &str, hour: i64, amount: f64) -> serde_json::Value {
        json!({"serverlessId": id, "startTime": time_of(hour).to_string(), "gpuAmount": amount})
    }

    fn with_head(current: i64) -> State {
        State {
            head: Some((current, Instant::now())),
            ..State::default()
        }
    }

    #[test]
    fn a_backfill_reads_the_newest_gap_first_in_bounded_chunks() {
        let mut state = with_head(1_000);
        // Nothing read: the newest hours first, 24 at a time.
        assert_eq!(Usage::next_gap(&state, 24), Some(975..=998));
        Usage::take(&mut state, 975..=998, vec![]);
        assert_eq!(Usage::next_gap(&state, 24), Some(951..=974));
        // A head read of a newer hour leaves a gap behind it, read next.
        state.head = Some((1_003, Instant::now()));
        Usage::take(&mut state, 1_001..=1_001, vec![]);
        assert_eq!(Usage::next_gap(&state, 24), Some(999..=1_000));
        // Ten thousand endpoints: one hour per read.
        assert_eq!(Usage::next_gap(&state, 1), Some(1_000..=1_000));
        // The whole window read: nothing to do.
        let mut full = with_head(1_000);
        Usage::take(&mut full, 1_000 - 1 - WINDOW_HOURS..=998, vec![]);
        assert_eq!(Usage::next_gap(&full, 24), None);
    }

    #[test]
    fn measured_hours_start_at_the_first_billed_one_and_stop_at_a_gap() {
        let usage = Usage::default();
        let mut state = with_head(102);
        let found = records(
            &[
                record("ep1", 95, 1.5),
                record("ep1", 98, 2.0),
                record("ep1", 98, 0.5),
                record("ep2", 100, 3.0),
                record("ep3", 50, 9.0),
            ],
            90..=100,
        )
        .unwrap();
        assert_eq!(
            found.len(),
            4,
            "a record outside the hours asked for is dropped"
        );
        Usage::take(&mut state, 90..=100, found);
        *usage.state.lock().unwrap() = state;
        let m = usage.measured("ep1", 168).unwrap();
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(
            m.billed,
            vec![d("1.5"), d("0"), d("0"), d("2.5"), d("0"), d("0")]
        );
        assert_eq!(m.until, time_of(101));
        assert_eq!(usage.measured("ep2", 168).unwrap().billed, vec![d("3")]);
        assert_eq!(usage.measured("ep3", 168), None);
        assert_eq!(usage.measured("nobody", 168), None);
        // Hours 85-89 unread: a read of 80-84 does not join the window (a gap).
        Usage::take(
            &mut usage.state.lock().unwrap(),
            80..=84,
            vec![("ep1".into(), 80, 7.0)],
        );
        assert_eq!(usage.measured("ep1", 168).unwrap().billed.len(), 6);
    }

    #[test]
    fn one_unreadable_record_drops_the_answer_and_old_hours_are_let_go() {
        for bad in [
            json!({"startTime": time_of(5).to_string(), "gpuAmount": 1.0}),
            json!({"serverlessId": "e", "startTime": "yesterday", "gpuAmount": 1.0}),
            json!({"serverlessId": "e", "startTime": time_of(5).to_string(), "gpuAmount": -1.0}),
            json!({"serverlessId": "e", "startTime": time_of(5).to_string(), "gpuAmount": "1"}),
        ] {
            assert!(
                records(&[record("e", 5, 1.0), bad.clone()], 0..=10).is_err(),
                "{bad}"
            );
        }
        let mut state = with_head(10_000);
        Usage::take(&mut state, 9_990..=9_990, vec![("e".into(), 9_990, 1.0)]);
        state.head = Some((10_000 + KEEP_HOURS + 10, Instant::now()));
        Usage::take(
            &mut state,
            10_000 + KEEP_HOURS..=10_000 + KEEP_HOURS,
            vec![],
        );
        assert!(state.billed.is_empty(), "hours past the keep are dropped");
        assert_eq!(state.read.len(), 1);
    }

    fn pod(uptime: u64, utils: &[Option<f64>]) -> crate::runpod::types::Pod {
        serde_json::from_value(serde_json::json!({
            "id": "p1", "name": "n", "status": "RUNNING",
            "runtime": {"uptime": uptime, "gpus": utils.iter().map(|u| serde_json::json!({"util": u})).collect::<Vec<_>>()}
        }))
        .unwrap()
    }

    fn health(running: u64, throttled: u64, in_queue: u64) -> Health {
        serde_json::from_value(json!({
            "jobs": {"completed": 0, "inProgress": running, "inQueue": in_queue},
            "workers": {"idle": 0, "running": running, "throttled": throttled}
        }))
        .unwrap()
    }

    #[test]
    fn health_samples_are_kept_by_hour_each_read_once_and_bounded() {
        let usage = Usage::default();
        let first = Instant::now();
        let second = first + Duration::from_secs(1);
        let third = first + Duration::from_secs(2);
        // Hour 100: two reads, the second given twice (a cached answer): two samples.
        usage.sample_health_at(100, "ep", first, &health(2, 0, 0), 5);
        usage.sample_health_at(100, "ep", second, &health(0, 1, 3), 5);
        usage.sample_health_at(100, "ep", second, &health(0, 1, 3), 5);
        // Hour 101: a hostile count of running workers counts as the endpoint's maximum.
        usage.sample_health_at(101, "ep", third, &health(1_000_000, 0, 0), 5);
        let all = usage.health_sampled_at(101, "ep", 24, 99).unwrap();
        assert_eq!((all.samples(), all.hours), (3, 2));
        assert_eq!((all.busy.max(), all.throttled, all.queued), (5, 1, 1));
        assert_eq!(all.busy.seconds.len(), 6, "levels up to the maximum only");
        // The sum stays until the measurement moves on (no status write per sample).
        let fourth = first + Duration::from_secs(10);
        usage.sample_health_at(101, "ep", fourth, &health(3, 0, 0), 5);
        let samples = |until| {
            usage
                .health_sampled_at(101, "ep", 24, until)
                .unwrap()
                .samples()
        };
        assert_eq!(samples(99), 3);
        assert_eq!(samples(100), 4);
        // A one-hour window at hour 101 holds that hour only.
        let last = usage.health_sampled_at(101, "ep", 1, 100).unwrap();
        assert_eq!((last.samples(), last.hours), (2, 1));
        // Another endpoint, never sampled: nothing. Hours past the kept ones are dropped.
        assert!(usage.health_sampled_at(101, "other", 24, 100).is_none());
        let later = first + Duration::from_secs(3);
        usage.sample_health_at(101 + KEEP_HOURS, "ep", later, &health(0, 0, 0), 5);
        let kept = usage
            .health_sampled_at(101 + KEEP_HOURS, "ep", 7 * 24, 101 + KEEP_HOURS)
            .unwrap();
        assert_eq!(kept.samples(), 1, "hours older than the kept ones are gone");
        assert_eq!(usage.lock().health["ep"].hours.len(), 1);
        // An endpoint not sampled for the kept hours is forgotten (once an hour).
        let latest = first + Duration::from_secs(4);
        usage.sample_health_at(200 + 2 * KEEP_HOURS, "new", latest, &health(0, 0, 0), 5);
        assert!(!usage.lock().health.contains_key("ep"));
    }

    #[test]
    fn pod_samples_are_kept_by_hour_of_uptime_and_a_restart_starts_over() {
        let usage = Usage::default();
        // Hour 0: 1 of 4 samples busy; hour 1: 2 of 2; hour 2 is in progress.
        for (up, util) in [
            (10, 50.0),
            (900, 0.0),
            (1800, 5.0),
            (2700, 0.0),
            (3700, 99.0),
            (5000, 12.0),
            (7300, 0.0),
        ] {
            usage.sample_pod(&pod(up, &[Some(util)]));
        }
        assert_eq!(
            usage.pod_measured("p1", 24).unwrap(),
            vec![Decimal::from(900), Decimal::from(3600)]
        );
        assert_eq!(
            usage.pod_measured("p1", 1).unwrap(),
            vec![Decimal::from(3600)]
        );
        // Not a percentage, no GPUs, not running: no sample.
        usage.sample_pod(&pod(7400, &[Some(250.0)]));
        usage.sample_pod(&pod(7400, &[]));
        let mut stopped = pod(7400, &[Some(80.0)]);
        stopped.status = "EXITED".into();
        usage.sample_pod(&stopped);
        assert_eq!(usage.pod_measured("p1", 24).unwrap().len(), 2);
        // The container restarted: its hours begin again.
        usage.sample_pod(&pod(30, &[Some(80.0)]));
        assert_eq!(
            usage.pod_measured("p1", 24),
            None,
            "only an hour in progress"
        );
        assert_eq!(usage.pod_measured("nobody", 24), None);
        // A runtime that is not what the spec says reads as unknown, never a failed list.
        for runtime in [
            serde_json::json!({"uptime": -5, "gpus": "x"}),
            serde_json::json!({"uptime": "ten", "gpus": [{"util": "high"}, 7, null]}),
            serde_json::json!({"uptime": 1.5, "gpus": {"util": 50}}),
        ] {
            let odd: crate::runpod::types::Pod = serde_json::from_value(serde_json::json!({
                "id": "p2", "name": "n", "status": "RUNNING", "runtime": runtime
            }))
            .unwrap();
            usage.sample_pod(&odd);
            assert_eq!(odd.runtime.as_ref().unwrap().uptime, None);
        }
        assert_eq!(usage.pod_measured("p2", 24), None);
    }

    #[test]
    fn a_restarted_controller_seeds_a_pod_from_the_status_figures_within_its_uptime() {
        let pod = |up: u64| -> crate::runpod::types::Pod {
            serde_json::from_value(json!({
                "id": "p1", "name": "n", "status": "RUNNING",
                "runtime": {"uptime": up, "gpus": [{"id": "g", "gpuUtilPercent": 0}]}
            }))
            .unwrap()
        };
        // 12 hours measured at 6 busy hours a day, the pod up 10.5 hours: only the 10 whole
        // hours it has been up are seeded, each a quarter busy.
        let usage = Usage::default();
        assert!(usage.seed_pod(&pod(37_800), 12, Decimal::from(6)));
        let hours = usage.pod_measured("p1", 24).unwrap();
        assert_eq!(hours, vec![Decimal::from(900); 10]);
        // Seeded once: samples already there are never replaced.
        assert!(!usage.seed_pod(&pod(37_900), 12, Decimal::from(24)));
        assert_eq!(usage.pod_measured("p1", 24).unwrap().len(), 10);
        // A busy share past a whole day counts as a whole day; a pod without uptime, or up
        // less than an hour, is not seeded.
        let usage = Usage::default();
        assert!(usage.seed_pod(&pod(7_300), 168, Decimal::from(1_000)));
        assert_eq!(
            usage.pod_measured("p1", 24).unwrap(),
            vec![Decimal::from(3_600); 2]
        );
        let usage = Usage::default();
        assert!(!usage.seed_pod(&pod(1_000), 12, Decimal::from(6)));
        let mut unknown = pod(37_800);
        unknown.runtime = None;
        assert!(!usage.seed_pod(&unknown, 12, Decimal::from(6)));
        assert_eq!(usage.pod_measured("p1", 24), None);
    }

    #[test]
    fn a_pods_bill_gives_the_mean_of_its_whole_hours() {
        let rec = |pod: &str, hour: i64, gpu: f64| json!({"podId": pod, "startTime": time_of(hour).to_string(), "gpuAmount": gpu});
        // RunPod's current hour is 110 (the answer ends at 111): 109 and 110 are left out.
        let end = time_of(111);
        let records = vec![
            rec("p1", 100, 0.5), // its first billed hour: started within it
            rec("p1", 101, 1.89),
            rec("p1", 102, 2.51),
            rec("p1", 103, 0.0), // stopped: no GPU billed
            rec("other", 104, 99.0),
            rec("p1", 108, 1.99),
            rec("p1", 109, 0.7),
            rec("p1", 110, 0.1),
        ];
        let rate = pod_rate(&records, "p1", end).unwrap().unwrap();
        assert_eq!(rate.hours, 3);
        assert_eq!(rate.per_hour, Decimal::new(213, 2));
        // Nothing whole yet.
        assert_eq!(pod_rate(&records[..1], "p1", end).unwrap(), None);
        assert_eq!(pod_rate(&[], "p1", end).unwrap(), None);
        // One record that cannot be read drops the answer, naming it.
        for bad in [
            json!({"podId": "p1", "startTime": "yesterday", "gpuAmount": 1.0}),
            json!({"podId": "p1", "startTime": time_of(101).to_string(), "gpuAmount": -1.0}),
            json!({"podId": "p1", "startTime": time_of(101).to_string(), "gpuAmount": "1"}),
            json!({"podId": "p1", "startTime": time_of(101).to_string(), "gpuAmount": 1e300}),
        ] {
            let mut all = records.clone();
            all.push(bad);
            let why = pod_rate(&all, "p1", end).unwrap_err();
            assert!(why.contains("pod billing record 8"), "{why}");
        }
    }
}
