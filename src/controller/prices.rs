//! One account's prices: RunPod's catalogue (`GET /v2/catalog/gpus`) read on the account's
//! interval, over the built-in snapshot. The money rules of the account's workloads use them.
//!
//! A failed read keeps the prices in use (the last catalogue read, or the snapshot) and is
//! tried again after at most [`RETRY_AFTER_FAILURE`]; the account's status says where the
//! prices come from and how old they are, and `PricesStale` says when they may be wrong. A
//! GPU type the catalogue does not price keeps the snapshot's figure or, without one, stays
//! unknown: refused, never zero. Reads are single-flight: the reconciles of one account that
//! find the prices due wait for one read.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::{
    api::{CONDITION_PRICES_STALE, PricesStatus},
    engine::{conditions::Verdict, prices::PriceCatalogue},
};

/// After a failed read, the next one comes at most this much later.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);

/// `status.prices.source` when RunPod's catalogue was read.
pub const SOURCE_CATALOGUE: &str = "Catalogue";
/// `status.prices.source` before any read succeeded.
pub const SOURCE_BUILT_IN: &str = "BuiltIn";

#[derive(Clone)]
struct State {
    catalogue: Arc<PriceCatalogue>,
    /// The last successful read.
    fetched: Option<Timestamp>,
    /// The last read, successful or not.
    attempted: Option<Timestamp>,
    gpu_types: usize,
    error: Option<String>,
}

/// An account's prices and their history.
pub struct Prices {
    state: Mutex<State>,
    reading: tokio::sync::Mutex<()>,
}

/// What one read of the catalogue gave.
pub type Read = Result<(PriceCatalogue, usize), String>;

impl Prices {
    /// Prices that start as `builtin`, with no read made.
    pub fn new(builtin: Arc<PriceCatalogue>) -> Self {
        Self {
            state: Mutex::new(State {
                catalogue: builtin,
                fetched: None,
                attempted: None,
                gpu_types: 0,
                error: None,
            }),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The prices in use.
    pub fn current(&self) -> Arc<PriceCatalogue> {
        self.state().catalogue.clone()
    }

    /// Whether a read is due at `now`: none made yet, the interval passed since the last
    /// success, or a minute (at most the interval) passed since a failure.
    pub fn due(&self, interval: Duration, now: Timestamp) -> bool {
        let state = self.state();
        let Some(attempted) = state.attempted else {
            return true;
        };
        let wait = if state.error.is_some() {
            interval.min(RETRY_AFTER_FAILURE)
        } else {
            interval
        };
        elapsed(attempted, now) >= wait
    }

    /// Reads the catalogue with `read` when due, one read at a time: while one is in flight,
    /// the others use the prices in use (or, before the first read, wait for it and do not
    /// read again). Returns the prices in use afterwards.
    pub async fn refresh<F, Fut>(
        &self,
        interval: Duration,
        now: impl Fn() -> Timestamp,
        read: F,
    ) -> Arc<PriceCatalogue>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Read>,
    {
        if !self.due(interval, now()) {
            return self.current();
        }
        let _reading = match self.reading.try_lock() {
            Ok(guard) => guard,
            // Another reconcile is reading: use the prices read before rather than wait (a
            // slow catalogue must not hold every reconcile of the account).
            Err(_) if self.state().attempted.is_some() => return self.current(),
            // Nothing read yet: wait for the first read rather than decide on the snapshot.
            Err(_) => self.reading.lock().await,
        };
        if !self.due(interval, now()) {
            return self.current();
        }
        let result = read().await;
        let at = now();
        let mut state = self.state();
        state.attempted = Some(at);
        match result {
            Ok((catalogue, gpu_types)) => {
                if *state.catalogue != catalogue {
                    state.catalogue = Arc::new(catalogue);
                }
                state.fetched = Some(at);
                state.gpu_types = gpu_types;
                state.error = None;
            }
            Err(error) => {
                tracing::warn!(%error, "RunPod's price catalogue could not be read; the prices in use stay");
                state.error = Some(error);
            }
        }
        state.catalogue.clone()
    }

    /// The account's `status.prices` and its `PricesStale` verdict at `now`.
    pub fn report(&self, interval: Duration, now: Timestamp) -> (PricesStatus, Verdict) {
        let state = self.state();
        let status = PricesStatus {
            source: if state.fetched.is_some() {
                SOURCE_CATALOGUE
            } else {
                SOURCE_BUILT_IN
            }
            .to_string(),
            fetched_at: state.fetched.map(|t| t.to_string()),
            gpu_types: state
                .fetched
                .map(|_| u32::try_from(state.gpu_types).unwrap_or(u32::MAX)),
            last_error: state.error.clone(),
        };
        let in_use = match state.fetched {
            Some(at) => format!("RunPod's catalogue as read at {at}"),
            None => "the built-in price snapshot".to_string(),
        };
        let verdict = match (&state.error, state.fetched) {
            (Some(error), _) => Verdict::yes(
                CONDITION_PRICES_STALE,
                "ReadFailed",
                format!(
                    "RunPod's price catalogue could not be read ({error}); the money rules use {in_use}"
                ),
            ),
            (None, Some(at)) if elapsed(at, now) > interval * 2 => Verdict::yes(
                CONDITION_PRICES_STALE,
                "Old",
                format!(
                    "the prices are older than two refresh intervals; the money rules use {in_use}"
                ),
            ),
            (None, Some(_)) => Verdict::no(CONDITION_PRICES_STALE, "Current", in_use),
            (None, None) => Verdict::no(
                CONDITION_PRICES_STALE,
                "NotReadYet",
                "RunPod's price catalogue is read on the first reconcile; until then the built-in snapshot",
            ),
        };
        (status, verdict)
    }
}

fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    let d: SignedDuration = to.duration_since(from);
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

/// Reads RunPod's catalogue through the account's client: the built-in snapshot with the
/// catalogue on top, and how many GPU types it priced. An empty catalogue is a failure: the
/// money rules must not lose every live price to an answer that priced nothing.
pub async fn read_catalogue(client: &crate::runpod::Client) -> Read {
    match crate::reconcile::live_prices(client).await {
        Ok((_, 0)) => Err("the catalogue priced no GPU type".to_string()),
        Ok(read) => Ok(read),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn catalogue_with_a100(cents: i64) -> PriceCatalogue {
        let mut prices = PriceCatalogue::builtin();
        prices.apply_live([crate::engine::prices::LiveGpuPrice {
            gpu_type: "NVIDIA A100-SXM4-80GB".into(),
            pool: None,
            secure_per_hour: Some(rust_decimal::Decimal::new(cents, 2)),
            community_per_hour: None,
            serverless_per_hour: None,
        }]);
        prices
    }

    #[tokio::test]
    async fn reads_when_due_keeps_prices_on_failure_and_retries_within_a_minute() {
        let hour = Duration::from_secs(3600);
        let prices = Prices::new(Arc::new(PriceCatalogue::builtin()));
        let (status, verdict) = prices.report(hour, at(0));
        assert_eq!(status.source, SOURCE_BUILT_IN);
        assert!(!verdict.status, "{verdict:?}");

        // First read: the catalogue.
        let got = prices
            .refresh(
                hour,
                || at(0),
                || async { Ok((catalogue_with_a100(250), 1)) },
            )
            .await;
        assert_eq!(*got, catalogue_with_a100(250));
        let (status, verdict) = prices.report(hour, at(10));
        assert_eq!(status.source, SOURCE_CATALOGUE);
        assert_eq!(status.gpu_types, Some(1));
        assert_eq!(verdict.reason, "Current");

        // Not due: no read.
        let got = prices
            .refresh(hour, || at(1800), || async { panic!("not due") })
            .await;
        assert_eq!(*got, catalogue_with_a100(250));

        // Due, and the read fails: the catalogue read before stays, the condition says why.
        let got = prices
            .refresh(hour, || at(3600), || async { Err("503".to_string()) })
            .await;
        assert_eq!(*got, catalogue_with_a100(250));
        let (status, verdict) = prices.report(hour, at(3601));
        assert_eq!(status.source, SOURCE_CATALOGUE);
        assert_eq!(status.last_error.as_deref(), Some("503"));
        assert!(verdict.status);
        assert_eq!(verdict.reason, "ReadFailed");
        assert!(verdict.message.contains("503"), "{}", verdict.message);

        // A failure is retried after a minute, not an hour.
        assert!(!prices.due(hour, at(3630)));
        assert!(prices.due(hour, at(3660)));
        let got = prices
            .refresh(
                hour,
                || at(3660),
                || async { Ok((catalogue_with_a100(300), 1)) },
            )
            .await;
        assert_eq!(*got, catalogue_with_a100(300));
        assert!(!prices.report(hour, at(3660)).1.status);

        // Older than two intervals (no read happened, e.g. no reconcile ran): stale.
        let (_, verdict) = prices.report(hour, at(3660 + 7201));
        assert_eq!(verdict.reason, "Old");
    }

    #[tokio::test]
    async fn one_read_for_reconciles_that_find_the_prices_due_together() {
        let hour = Duration::from_secs(3600);
        let prices = Arc::new(Prices::new(Arc::new(PriceCatalogue::builtin())));
        let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (prices, reads) = (prices.clone(), reads.clone());
                tokio::spawn(async move {
                    prices
                        .refresh(
                            hour,
                            || at(0),
                            || async move {
                                reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                Ok((catalogue_with_a100(250), 1))
                            },
                        )
                        .await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(*task.await.unwrap(), catalogue_with_a100(250));
        }
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
