//! Advice: what a workload would have cost over a measured window, run each way RunPod offers
//! (a Pod, flex workers only, or `k` active workers with flex above them), and which way is
//! cheapest, with the saving. Pure: measurements and prices in, figures out.
//!
//! The measurement is a concurrency histogram: for each number of busy workers, how many
//! seconds of the window had exactly that many. From it:
//!
//! - **flex only** pays every busy worker-second at the flex rate, plus each scale-up's billed
//!   cold start and idle tail;
//! - **`k` active + flex** pays `k` workers for the whole window at the active rate, and the
//!   demand above `k` at the flex rate. The `k`-th worker pays off as active when `k` or more
//!   workers are busy more than `active ÷ flex` of the time (A100: 0.00060 ÷ 0.00076 = 79%,
//!   18.9 hours a day), so the best `k` is the number of levels that are;
//! - **Pods** run all the time: as many as the most workers measured busy at once, so the Pod
//!   side serves the peak the window saw (one Pod of A100 beats one flex worker above 16.6 busy
//!   hours a day).
//!
//! Storage (container disk, volumes) is left out: it is the same whichever way runs. The
//! scale-ups of the flex workers above `k` active ones are counted in proportion to the
//! worker-seconds they serve (the histogram does not say which worker started).

use rust_decimal::{Decimal, prelude::ToPrimitive};
use serde::Serialize;

use super::{cost::SECONDS_PER_HOUR, prices::HOURS_PER_MONTH};

/// The most busy-worker levels a histogram keeps: RunPod's endpoints have at most a few
/// hundred workers, and a level above this counts as this one (memory stays bounded whatever
/// a measurement says).
pub const MAX_LEVELS: usize = 1_024;

/// Seconds of a window by how many workers were busy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Concurrency {
    /// `seconds[c]`: seconds during which exactly `c` workers were busy.
    pub seconds: Vec<u64>,
    /// How many times a flex worker started (each start bills a cold start and an idle tail).
    pub scale_ups: u64,
    /// The most workers seen busy at once by sampling `/health` (0: not sampled). A histogram
    /// from hourly bills averages each hour; a burst shorter than that shows here, and the Pod
    /// side is sized for it.
    pub peak: u32,
}

impl Concurrency {
    /// Adds `seconds` with `busy` workers busy.
    pub fn record(&mut self, busy: u32, seconds: u64) {
        let level = (busy as usize).min(MAX_LEVELS - 1);
        if self.seconds.len() <= level {
            self.seconds.resize(level + 1, 0);
        }
        self.seconds[level] = self.seconds[level].saturating_add(seconds);
    }

    /// A histogram from hourly measurements: for each hour, the worker-seconds flex workers
    /// ran (what RunPod's hourly billing says, divided by the rate), beside `active`
    /// always-on workers. An hour whose flex workers averaged `m` busy workers counts as
    /// `floor(m)` busy for part of the hour and one more for the rest, so the worker-seconds
    /// are kept exactly; the active workers count as busy whenever flex ones run (RunPod sends
    /// jobs to them first) and as busy all hour otherwise (the bill does not say how busy
    /// they were: the measurement errs towards keeping them).
    pub fn from_hours(active: u32, flex_worker_seconds: &[Decimal]) -> Self {
        let hour = u64::from(SECONDS_PER_HOUR);
        let mut usage = Self::default();
        for seconds in flex_worker_seconds {
            let seconds = (*seconds).max(Decimal::ZERO);
            let mean = seconds / Decimal::from(hour);
            let whole = mean.trunc();
            let part = ((mean - whole) * Decimal::from(hour))
                .round()
                .to_u64()
                .unwrap_or(0)
                .min(hour);
            let level = whole.to_u32().unwrap_or(u32::MAX).saturating_add(active);
            usage.record(level, hour - part);
            if part > 0 {
                usage.record(level.saturating_add(1), part);
            }
        }
        usage
    }

    /// A histogram from `/health` samples, over `window_seconds`: each number of busy workers
    /// gets the share of the window that its share of the samples says.
    pub fn from_samples(sampled: &Sampled, window_seconds: u64) -> Self {
        let samples = u128::from(sampled.samples().max(1));
        let mut usage = Self::default();
        for (level, n) in sampled.busy.seconds.iter().enumerate() {
            let seconds = u128::from(*n) * u128::from(window_seconds) / samples;
            usage.record(level as u32, u64::try_from(seconds).unwrap_or(u64::MAX));
        }
        usage
    }

    /// The window's length.
    pub fn window_seconds(&self) -> u64 {
        self.seconds.iter().sum()
    }

    /// Seconds during which at least `k` workers were busy.
    pub fn seconds_at_least(&self, k: u32) -> u64 {
        self.seconds.iter().skip(k as usize).sum()
    }

    /// Busy worker-seconds above `k` workers (what flex serves beside `k` active ones).
    pub fn worker_seconds_above(&self, k: u32) -> u64 {
        self.seconds
            .iter()
            .enumerate()
            .skip(k as usize + 1)
            .map(|(c, s)| (c as u64 - u64::from(k)).saturating_mul(*s))
            .fold(0u64, u64::saturating_add)
    }

    /// The most workers busy at once.
    pub fn max(&self) -> u32 {
        self.seconds
            .iter()
            .rposition(|s| *s > 0)
            .map_or(0, |c| c as u32)
    }

    /// The busy workers at a percentile (0-100) of the window's time.
    pub fn percentile(&self, percent: u32) -> u32 {
        let window = self.window_seconds();
        if window == 0 {
            return 0;
        }
        let wanted = (u128::from(window) * u128::from(percent.min(100))).div_ceil(100);
        let mut seen = 0u128;
        for (c, s) in self.seconds.iter().enumerate() {
            seen += u128::from(*s);
            if seen >= wanted && seen > 0 {
                return c as u32;
            }
        }
        self.max()
    }

    /// Hours per day with at least one worker busy.
    pub fn busy_hours_per_day(&self) -> Decimal {
        let window = self.window_seconds();
        if window == 0 {
            return Decimal::ZERO;
        }
        Decimal::from(self.seconds_at_least(1)) * Decimal::from(24) / Decimal::from(window)
    }
}

/// Samples an hour, on average, before `/health` samples measure a window (see
/// [`Sampled::covers`]).
pub const SAMPLES_PER_HOUR: u64 = 4;

/// What `/health` said at the instants it was read (the controller reads it once a resync):
/// how many workers ran a job, and whether a worker waited for a GPU (throttled: RunPod had
/// none free) or a job waited in the queue. Hourly bills average an hour; samples see a burst
/// shorter than one, and the time the endpoint could not get the GPUs it wanted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sampled {
    /// Samples by how many workers were running a job (each sample counts one).
    pub busy: Concurrency,
    /// Samples with a worker throttled.
    pub throttled: u64,
    /// Samples with a job in the queue.
    pub queued: u64,
    /// Hours with at least one sample.
    pub hours: u32,
}

impl Sampled {
    /// Adds one sample.
    pub fn record(&mut self, running: u64, throttled: bool, queued: bool) {
        self.busy
            .record(u32::try_from(running).unwrap_or(u32::MAX), 1);
        self.throttled += u64::from(throttled);
        self.queued += u64::from(queued);
    }

    /// Adds the samples of `other` (another hour).
    pub fn merge(&mut self, other: &Sampled) {
        for (level, n) in other.busy.seconds.iter().enumerate() {
            if *n > 0 {
                self.busy.record(level as u32, *n);
            }
        }
        self.throttled = self.throttled.saturating_add(other.throttled);
        self.queued = self.queued.saturating_add(other.queued);
        self.hours = self.hours.saturating_add(other.hours);
    }

    /// How many samples.
    pub fn samples(&self) -> u64 {
        self.busy.window_seconds()
    }

    /// Whether the samples measure a window of `hours`: every hour of it sampled, and
    /// [`SAMPLES_PER_HOUR`] an hour on average.
    pub fn covers(&self, hours: u32) -> bool {
        self.hours >= hours && self.samples() >= u64::from(hours) * SAMPLES_PER_HOUR
    }

    /// The hours of the sampled time that `count` of the samples stand for (the share of the
    /// samples, of the hours sampled), to a tenth.
    fn hours_of(&self, count: u64) -> Decimal {
        let samples = self.samples();
        if samples == 0 {
            return Decimal::ZERO;
        }
        (Decimal::from(count) * Decimal::from(self.hours) / Decimal::from(samples)).round_dp(1)
    }

    /// Hours a worker waited for a GPU (estimated from the samples).
    pub fn throttled_hours(&self) -> Decimal {
        self.hours_of(self.throttled)
    }

    /// Hours a job waited in the queue (estimated from the samples).
    pub fn queued_hours(&self) -> Decimal {
        self.hours_of(self.queued)
    }
}

/// What one worker (or Pod) costs, for one workload's GPU type and count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rates {
    /// USD per GPU-hour of a Pod; `None` when no Pod of this GPU is priced.
    pub pod_per_hour: Option<Decimal>,
    /// USD per GPU-second of a flex worker.
    pub flex_per_second: Decimal,
    /// USD per GPU-second of an active worker; `None` when RunPod publishes none.
    pub active_per_second: Option<Decimal>,
    /// GPUs per worker (or Pod).
    pub gpus: u32,
    /// Billed seconds of a flex worker's cold start.
    pub cold_start_seconds: u32,
    /// Billed seconds a flex worker idles after its last job.
    pub idle_timeout_seconds: u32,
}

/// A way to run a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Config {
    /// `count` Pods, always on.
    Pod {
        /// How many.
        count: u32,
    },
    /// Serverless: `active` always-on workers, flex workers above them (`0`: flex only).
    Serverless {
        /// Active workers.
        active: u32,
    },
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Config::Pod { count: 1 } => f.write_str("1 Pod"),
            Config::Pod { count } => write!(f, "{count} Pods"),
            Config::Serverless { active: 0 } => f.write_str("Serverless, flex workers only"),
            Config::Serverless { active } => {
                write!(f, "Serverless, {active} active + flex workers")
            }
        }
    }
}

/// One way to run, with what it would have cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Costed {
    /// The way.
    pub config: Config,
    /// USD over the measured window.
    #[serde(with = "rust_decimal::serde::str")]
    pub window_cost: Decimal,
    /// USD per 30-day month at the measured usage.
    #[serde(with = "rust_decimal::serde::str")]
    pub per_month: Decimal,
}

/// The advice for one workload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Advice {
    /// Hours the measurement covers.
    #[serde(with = "rust_decimal::serde::str")]
    pub window_hours: Decimal,
    /// Hours per day with at least one worker busy.
    #[serde(with = "rust_decimal::serde::str")]
    pub busy_hours_per_day: Decimal,
    /// Busy workers: the median, the 95th percentile and the most at once.
    pub p50: u32,
    /// See `p50`.
    pub p95: u32,
    /// See `p50`.
    pub max: u32,
    /// The way it runs now, costed.
    pub current: Costed,
    /// Every way it could run, cheapest first.
    pub options: Vec<Costed>,
    /// The cheapest.
    pub best: Costed,
    /// USD per month saved by the best way (0 when the current one is best).
    #[serde(with = "rust_decimal::serde::str")]
    pub saving_per_month: Decimal,
    /// What `/health` showed when sampled, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampled: Option<Sampled>,
    /// Whether the busy workers above were measured from the samples rather than the bill
    /// (see [`auto_decide`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub from_samples: bool,
}

/// Why no advice can be given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdviceError {
    /// Nothing measured yet.
    #[error("no usage is measured yet")]
    NoMeasurement,
    /// The current way has no price.
    #[error("{0} has no price for this GPU type")]
    NoPrice(Config),
}

/// The best number of active workers: the levels busy more than `active ÷ flex` of the
/// window, at most `max_workers`. 0 without an active price.
pub fn best_active(usage: &Concurrency, rates: &Rates, max_workers: u32) -> u32 {
    let (Some(active), window) = (rates.active_per_second, usage.window_seconds()) else {
        return 0;
    };
    if window == 0 || rates.flex_per_second.is_zero() {
        return 0;
    }
    let threshold = active / rates.flex_per_second;
    (1..=max_workers.min(usage.max()))
        .take_while(|k| {
            Decimal::from(usage.seconds_at_least(*k)) / Decimal::from(window) > threshold
        })
        .last()
        .unwrap_or(0)
}

/// What `config` would have cost over the measured window; `None` when it has no price.
pub fn cost_of(config: Config, usage: &Concurrency, rates: &Rates) -> Option<Decimal> {
    let window = Decimal::from(usage.window_seconds());
    let gpus = Decimal::from(rates.gpus);
    match config {
        Config::Pod { count } => {
            let hours = window / Decimal::from(SECONDS_PER_HOUR);
            Some(rates.pod_per_hour? * gpus * Decimal::from(count) * hours)
        }
        Config::Serverless { active } => {
            let active_cost = if active == 0 {
                Decimal::ZERO
            } else {
                rates.active_per_second? * gpus * Decimal::from(active) * window
            };
            let all = usage.worker_seconds_above(0);
            let flex_seconds = usage.worker_seconds_above(active);
            // The scale-ups of the workers above the active ones, in proportion to the work
            // they serve.
            let scale_ups = if all == 0 {
                Decimal::ZERO
            } else {
                Decimal::from(usage.scale_ups) * Decimal::from(flex_seconds) / Decimal::from(all)
            };
            let overhead =
                scale_ups * Decimal::from(rates.cold_start_seconds + rates.idle_timeout_seconds);
            let flex_cost = rates.flex_per_second * gpus * (Decimal::from(flex_seconds) + overhead);
            Some(active_cost + flex_cost)
        }
    }
}

/// The advice for a workload that runs as `current`, measured as `usage`. `pods_allowed`:
/// whether a Pod is an option at all (a workload whose shape only Serverless supports says
/// no); `max_workers` bounds the active workers.
pub fn advise(
    current: Config,
    usage: &Concurrency,
    rates: &Rates,
    max_workers: u32,
    pods_allowed: bool,
) -> Result<Advice, AdviceError> {
    let window = usage.window_seconds();
    if window == 0 {
        return Err(AdviceError::NoMeasurement);
    }
    let month = Decimal::from(HOURS_PER_MONTH * SECONDS_PER_HOUR) / Decimal::from(window);
    let costed = |config: Config| {
        cost_of(config, usage, rates).map(|window_cost| Costed {
            config,
            window_cost: window_cost.round_dp(4),
            per_month: (window_cost * month).round_dp(2),
        })
    };
    let current = costed(current).ok_or(AdviceError::NoPrice(current))?;
    let mut candidates = vec![Config::Serverless { active: 0 }];
    let k = best_active(usage, rates, max_workers);
    if k > 0 {
        candidates.push(Config::Serverless { active: k });
    }
    if pods_allowed {
        candidates.push(Config::Pod {
            count: usage.max().max(usage.peak).max(1),
        });
    }
    if !candidates.contains(&current.config) {
        candidates.push(current.config);
    }
    let mut options: Vec<Costed> = candidates.into_iter().filter_map(costed).collect();
    // Cheapest first; on a tie the current way stays first (no change for nothing).
    options.sort_by(|a, b| {
        a.window_cost
            .cmp(&b.window_cost)
            .then_with(|| (b.config == current.config).cmp(&(a.config == current.config)))
    });
    let best = options.first().cloned().unwrap_or_else(|| current.clone());
    let saving_per_month = (current.per_month - best.per_month).max(Decimal::ZERO);
    Ok(Advice {
        window_hours: (Decimal::from(window) / Decimal::from(SECONDS_PER_HOUR)).round_dp(1),
        busy_hours_per_day: usage.busy_hours_per_day().round_dp(1),
        p50: usage.percentile(50),
        p95: usage.percentile(95),
        max: usage.max(),
        current,
        options,
        best,
        saving_per_month,
        sampled: None,
        from_samples: false,
    })
}

/// What a Serverless workload's workers cost: the first of `spec.gpu.types` with a serverless
/// price (what its workers are billed at), with that GPU's Pod price in the cloud the spec
/// asks for (`spec.gpu.cloud`, Secure by default) for the Pod alternative.
pub fn serverless_rates(
    spec: &crate::api::GpuWorkloadSpec,
    prices: &super::prices::PriceCatalogue,
) -> Result<Rates, String> {
    let (gpu, pool) = spec
        .gpu
        .types
        .iter()
        .find_map(|g| prices.pool_of(g).ok().map(|p| (g.clone(), p.clone())))
        .ok_or("none of spec.gpu.types has a serverless price")?;
    Ok(Rates {
        pod_per_hour: prices
            .pod_per_hour(&gpu, spec.gpu.cloud == Some(crate::api::Cloud::Community))
            .ok(),
        flex_per_second: pool.flex_per_second,
        active_per_second: pool.active_per_second,
        gpus: spec.gpu.count.max(1),
        cold_start_seconds: 0,
        idle_timeout_seconds: 0,
    })
}

/// The flex worker-seconds of each hour from what RunPod billed for it (`gpuAmount`, USD):
/// the hour's bill less `active` always-on workers, at the flex rate.
pub fn flex_seconds_of(billed: &[Decimal], active: u32, rates: &Rates) -> Vec<Decimal> {
    let gpus = Decimal::from(rates.gpus.max(1));
    let active_per_hour = rates.active_per_second.unwrap_or(rates.flex_per_second)
        * gpus
        * Decimal::from(active)
        * Decimal::from(SECONDS_PER_HOUR);
    let flex_rate = rates.flex_per_second * gpus;
    billed
        .iter()
        .map(|amount| {
            if flex_rate.is_zero() {
                return Decimal::ZERO;
            }
            ((*amount - active_per_hour).max(Decimal::ZERO) / flex_rate).round_dp(3)
        })
        .collect()
}

/// The advice as a workload's status says it: the measured use, the recommendation, and the
/// informational `CostAdvice` condition (True when another way is cheaper; it never blocks
/// `Ready`). `measured_until`: the end of the last hour measured.
pub fn advice_status(
    advice: &Advice,
    measured_until: &str,
) -> (
    crate::api::Utilisation,
    crate::api::Recommendation,
    super::conditions::Verdict,
) {
    use super::conditions::Verdict;
    let utilisation = crate::api::Utilisation {
        window_hours: advice.window_hours.to_string(),
        busy_hours_per_day: advice.busy_hours_per_day.to_string(),
        busy_workers_p50: advice.p50,
        busy_workers_p95: advice.p95,
        busy_workers_max: advice.max,
        measured_until: measured_until.to_string(),
        measured_from: None,
        sampled: advice
            .sampled
            .as_ref()
            .filter(|s| s.samples() > 0)
            .map(|s| crate::api::SampledUse {
                samples: s.samples(),
                hours: s.hours,
                busy_workers_p50: s.busy.percentile(50),
                busy_workers_p95: s.busy.percentile(95),
                busy_workers_max: s.busy.max(),
                throttled_hours: s.throttled_hours().to_string(),
                queued_hours: s.queued_hours().to_string(),
            }),
    };
    let cheaper =
        advice.best.config != advice.current.config && advice.saving_per_month > Decimal::ZERO;
    let recommendation = crate::api::Recommendation {
        configuration: if cheaper {
            advice.best.config.to_string()
        } else {
            advice.current.config.to_string()
        },
        current_per_month: crate::api::Usd(advice.current.per_month),
        recommended_per_month: crate::api::Usd(if cheaper {
            advice.best.per_month
        } else {
            advice.current.per_month
        }),
        saving_per_month: crate::api::Usd(if cheaper {
            advice.saving_per_month
        } else {
            Decimal::ZERO
        }),
    };
    let mut evidence = format!(
        "measured {} h: busy {} h/day, busy workers p50/p95/max {}/{}/{}",
        advice.window_hours, advice.busy_hours_per_day, advice.p50, advice.p95, advice.max
    );
    if advice.from_samples {
        evidence.push_str(
            " (from /health samples: the bill cannot say how busy the active workers were)",
        );
    }
    if let Some(s) = advice.sampled.as_ref().filter(|s| s.samples() > 0) {
        evidence.push_str(&format!(
            "; sampled {} times over {} h: at most {} busy at once, throttled {} h, queued {} h",
            s.samples(),
            s.hours,
            s.busy.max(),
            s.throttled_hours(),
            s.queued_hours()
        ));
    }
    let verdict = if cheaper {
        Verdict::yes(
            crate::api::CONDITION_COST_ADVICE,
            "CheaperConfiguration",
            format!(
                "{} would cost {}/month instead of {} ({} saved); {evidence}",
                advice.best.config,
                advice.best.per_month,
                advice.current.per_month,
                advice.saving_per_month
            ),
        )
    } else {
        Verdict::no(
            crate::api::CONDITION_COST_ADVICE,
            "CurrentIsCheapest",
            format!(
                "{} is the cheapest way to run it; {evidence}",
                advice.current.config
            ),
        )
    };
    (utilisation, recommendation, verdict)
}

/// What `Auto` switches to, with hysteresis: the best way only when it is cheaper than the
/// current one by more than `margin` (a fraction, e.g. 0.1 for 10%) of the current cost. A
/// workload sitting at a break-even never switches back and forth.
pub fn switch_to(advice: &Advice, margin: Decimal) -> Option<Config> {
    let current = advice.current.window_cost;
    let best = &advice.best;
    (best.config != advice.current.config
        && best.window_cost < current * (Decimal::ONE - margin.max(Decimal::ZERO)))
    .then_some(best.config)
}

/// What `Auto` does with a measurement (see [`auto_decide`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AutoDecision {
    /// `workerClass: Auto`: the active workers to run (`None` for another worker class).
    pub active: Option<u32>,
    /// `type: Auto`: the side to run as (`None` for another type).
    pub side: Option<crate::api::WorkloadType>,
    /// Why `Auto` leaves the cheaper way the advice names, if it does.
    pub held: Option<String>,
}

/// The advice for a serverless workload measured as `billed` (USD per hour, oldest first,
/// from its endpoint's hourly bill while it ran `active` always-on workers) and `sampled`
/// (its `/health` samples, if any: the Pod side is sized for the most workers they saw busy
/// at once), and what `Auto` does with it. `side`: the side a `type: Auto` workload runs as
/// now (`None` for another type). `Auto` acts only on a whole window (`spec.measurement.windowDays`) and only when
/// the new way is cheaper than what runs by more than the spec's margin; `type: Auto` moves
/// to one Pod only (a workload is one pod). Pure: the controller and the CLI both call it.
pub fn auto_decide(
    spec: &crate::api::GpuWorkloadSpec,
    side: Option<crate::api::WorkloadType>,
    active: u32,
    billed: &[Decimal],
    sampled: Option<&Sampled>,
    rates: &Rates,
) -> (Option<Advice>, AutoDecision) {
    use crate::api::{WorkerClass, WorkloadType};
    let Some(settings) = spec.serverless.as_ref() else {
        return (None, AutoDecision::default());
    };
    let auto = settings.worker_class == WorkerClass::Auto;
    let margin = spec.switch_margin();
    let window = spec.window_hours();
    let whole = billed.len() >= usize::try_from(window).unwrap_or(usize::MAX);
    let billing = Concurrency::from_hours(active, &flex_seconds_of(billed, active, rates));
    // The bill cannot say how busy always-on workers were (they bill the same busy or idle, so
    // it counts them busy all hour): with active workers running, samples that cover the
    // window measure instead. Else an endpoint whose traffic stopped would keep its active
    // workers, and pay for them, for ever.
    let from_samples = sampled.filter(|s| active > 0 && whole && s.covers(window));
    let mut histogram = match from_samples {
        Some(s) => Concurrency::from_samples(s, billing.window_seconds()),
        None => billing,
    };
    histogram.peak = sampled.map_or(0, |s| s.busy.max());
    let max = settings.max_workers.max(1);
    let auto_active = auto.then(|| {
        if !whole {
            return active;
        }
        let best = best_active(&histogram, rates, max);
        let cost = |k| cost_of(Config::Serverless { active: k }, &histogram, rates);
        match (cost(best), cost(active)) {
            (Some(new), Some(now)) if best != active && new < now * (Decimal::ONE - margin) => best,
            _ => active,
        }
    });
    let advice = advise(Config::Serverless { active }, &histogram, rates, max, true)
        .ok()
        .map(|a| Advice {
            sampled: sampled.cloned(),
            from_samples: from_samples.is_some(),
            ..a
        });
    let auto_side = side.map(
        |side| match advice.as_ref().and_then(|a| switch_to(a, margin)) {
            Some(Config::Pod { count: 1 }) if whole && side == WorkloadType::Serverless => {
                WorkloadType::Pod
            }
            _ => side,
        },
    );
    // What `Auto` could take and did not: the cheapest way when it is a Pod and the workload
    // is of type Auto; else, for `workerClass: Auto`, the cheapest serverless way.
    let held = advice.as_ref().and_then(|a| {
        if auto_active.is_some_and(|k| k != active) || auto_side != side {
            return None;
        }
        let cheaper = |o: &&Costed| o.config != a.current.config && o.window_cost < a.current.window_cost;
        let candidate = a
            .options
            .iter()
            .filter(cheaper)
            .find(|o| match o.config {
                Config::Pod { .. } => side == Some(WorkloadType::Serverless),
                Config::Serverless { .. } => auto,
            })?;
        Some(match candidate.config {
            _ if !whole => format!(
                "Auto acts on a whole window of {window} h and {} h are measured",
                billed.len()
            ),
            Config::Pod { count } if count > 1 => format!(
                "{count} workers were busy at once, so {count} pods would serve it and a workload runs one pod: Auto stays Serverless"
            ),
            config => format!(
                "Auto keeps what runs: {config} saves less than the {}% margin (spec.measurement.switchMarginPercent)",
                (margin * Decimal::from(100)).normalize()
            ),
        })
    });
    (
        advice,
        AutoDecision {
            active: auto_active,
            side: auto_side,
            held,
        },
    )
}

/// [`auto_decide`] for a `type: Auto` workload that runs as a Pod, measured as `busy` (busy
/// seconds per sampled hour of the pod's GPUs, oldest first): it moves back to Serverless
/// when the window is whole and a serverless way is cheaper than the Pod by more than the
/// margin. The serverless estimate from a pod's samples has no cold starts or idle tails in
/// it (a pod has none to measure); the margin must cover them.
pub fn auto_decide_pod(
    spec: &crate::api::GpuWorkloadSpec,
    busy: &[Decimal],
    rates: &Rates,
) -> (Option<Advice>, AutoDecision) {
    use crate::api::{WorkerClass, WorkloadType};
    let Some(settings) = spec.serverless.as_ref() else {
        return (None, AutoDecision::default());
    };
    let margin = spec.switch_margin();
    let window = spec.window_hours();
    let whole = busy.len() >= usize::try_from(window).unwrap_or(usize::MAX);
    let histogram = Concurrency::from_hours(0, busy);
    let max = settings.max_workers.max(1);
    let advice = advise(Config::Pod { count: 1 }, &histogram, rates, max, true).ok();
    let to = advice
        .as_ref()
        .and_then(|a| switch_to(a, margin))
        .filter(|c| matches!(c, Config::Serverless { .. }));
    let mut decision = AutoDecision {
        active: None,
        side: Some(WorkloadType::Pod),
        held: None,
    };
    match to {
        Some(Config::Serverless { active }) if whole => {
            decision.side = Some(WorkloadType::Serverless);
            if settings.worker_class == WorkerClass::Auto {
                decision.active = Some(active);
            }
        }
        _ => {
            decision.held = advice.as_ref().and_then(|a| {
                let cheaper = a
                    .options
                    .iter()
                    .find(|o| matches!(o.config, Config::Serverless { .. }))
                    .filter(|o| o.window_cost < a.current.window_cost)?;
                Some(if whole {
                    format!(
                        "Auto keeps the Pod: {} saves less than the {}% margin (spec.measurement.switchMarginPercent)",
                        cheaper.config,
                        (margin * Decimal::from(100)).normalize()
                    )
                } else {
                    format!(
                        "Auto acts on a whole window of {window} h and {} h of the pod are sampled",
                        busy.len()
                    )
                })
            });
        }
    }
    (advice, decision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::prices::PriceCatalogue;

    const A100: &str = "NVIDIA A100-SXM4-80GB";
    const DAY: u64 = 24 * 3600;

    /// The seed's A100 rates, with no cold start or idle tail (the break-evens as quoted).
    fn a100() -> Rates {
        let prices = PriceCatalogue::builtin();
        let pool = prices.pool_of(A100).unwrap();
        Rates {
            pod_per_hour: Some(prices.pod_per_hour(A100, false).unwrap()),
            flex_per_second: pool.flex_per_second,
            active_per_second: pool.active_per_second,
            gpus: 1,
            cold_start_seconds: 0,
            idle_timeout_seconds: 0,
        }
    }

    /// A week with one worker busy `hours` a day.
    fn one_worker(hours_tenths: u64) -> Concurrency {
        let busy = hours_tenths * 360;
        let mut usage = Concurrency::default();
        usage.record(1, 7 * busy);
        usage.record(0, 7 * (DAY - busy));
        usage
    }

    #[test]
    fn below_16_6_busy_hours_flex_wins_above_it_the_pod() {
        let flex = Config::Serverless { active: 0 };
        for (tenths, best) in [
            (10, flex),
            (80, flex),
            (165, flex),
            (167, Config::Pod { count: 1 }),
            (200, Config::Pod { count: 1 }),
        ] {
            let advice = advise(flex, &one_worker(tenths), &a100(), 3, true).unwrap();
            assert_eq!(advice.best.config, best, "{tenths} tenths of an hour a day");
            assert_eq!(advice.busy_hours_per_day, Decimal::new(tenths as i64, 1));
            if best == flex {
                assert_eq!(advice.saving_per_month, Decimal::ZERO);
            } else {
                assert!(advice.saving_per_month > Decimal::ZERO);
            }
        }
        // 20 hours a day: flex 20 × 2.736 = 54.72 a day, the Pod 45.36: 9.36 a day, 280.80 a
        // month saved.
        let advice = advise(flex, &one_worker(200), &a100(), 3, true).unwrap();
        assert_eq!(advice.saving_per_month, Decimal::new(28080, 2));
        assert_eq!(advice.best.per_month, Decimal::new(136080, 2));
    }

    #[test]
    fn the_kth_active_worker_pays_off_above_18_9_busy_hours() {
        let rates = a100();
        // Serverless only (a Pod is not an option): one worker busy 18.8 h a day stays flex,
        // 19.0 h makes it active.
        let flex = Config::Serverless { active: 0 };
        assert_eq!(best_active(&one_worker(188), &rates, 3), 0);
        assert_eq!(best_active(&one_worker(190), &rates, 3), 1);
        let advice = advise(flex, &one_worker(190), &rates, 3, false).unwrap();
        assert_eq!(advice.best.config, Config::Serverless { active: 1 });

        // Two workers busy 23 h a day, a third 20 h, a fourth 10 h: the first three pay off as
        // active, the fourth does not; max workers 2 caps it.
        let mut usage = Concurrency::default();
        usage.record(0, 7 * 3600);
        usage.record(2, 7 * 3 * 3600);
        usage.record(3, 7 * 10 * 3600);
        usage.record(4, 7 * 10 * 3600);
        assert_eq!(usage.window_seconds(), 7 * DAY);
        assert_eq!(best_active(&usage, &rates, 10), 3);
        assert_eq!(best_active(&usage, &rates, 2), 2);
        assert_eq!(usage.percentile(50), 3);
        assert_eq!(usage.percentile(95), 4);
        assert_eq!(usage.max(), 4);
        let advice = advise(flex, &usage, &rates, 10, false).unwrap();
        assert_eq!(advice.best.config, Config::Serverless { active: 3 });
        // The figures by hand, per day: 3 active × 86,400 s × 0.0006 = 155.52; the flex
        // above them: 10 h × 3,600 × 0.00076 = 27.36; flex only: (2×3 + 3×10 + 4×10) h ×
        // 3,600 × 0.00076 = 207.936.
        let day = |c: &Costed| c.window_cost / Decimal::from(7);
        assert_eq!(day(&advice.best), Decimal::new(18288, 2));
        assert_eq!(day(&advice.current), Decimal::new(207936, 3));
    }

    #[test]
    fn cold_starts_and_idle_tails_are_billed_to_flex() {
        let mut rates = a100();
        rates.cold_start_seconds = 20;
        rates.idle_timeout_seconds = 40;
        let mut usage = one_worker(100);
        usage.scale_ups = 7 * 60;
        // 10 busy hours + 60 starts × 60 s = 11 billed hours a day.
        let cost = cost_of(Config::Serverless { active: 0 }, &usage, &rates).unwrap();
        assert_eq!(cost / Decimal::from(7), Decimal::new(11 * 3600 * 76, 5));
        // An active worker serving all of it has no start to pay.
        let active = cost_of(Config::Serverless { active: 1 }, &usage, &rates).unwrap();
        assert_eq!(active / Decimal::from(7), Decimal::new(86_400 * 60, 5));
    }

    #[test]
    fn at_the_break_even_auto_never_flaps() {
        let margin = Decimal::new(10, 2);
        let rates = a100();
        // Usage wobbling around the Pod's 16.6 h break-even, day after day.
        let mut current = Config::Serverless { active: 0 };
        let mut switches = 0;
        for tenths in [160, 172, 158, 175, 161, 170, 166, 167, 165] {
            let advice = advise(current, &one_worker(tenths), &rates, 3, true).unwrap();
            if let Some(next) = switch_to(&advice, margin) {
                current = next;
                switches += 1;
            }
        }
        assert_eq!(switches, 0, "a switch within the margin");
        // Well past it (22 h: the Pod is 25% cheaper), one switch; then back near the
        // break-even, it stays.
        let advice = advise(current, &one_worker(220), &rates, 3, true).unwrap();
        current = switch_to(&advice, margin).expect("a switch past the margin");
        assert_eq!(current, Config::Pod { count: 1 });
        for tenths in [160, 172, 158] {
            let advice = advise(current, &one_worker(tenths), &rates, 3, true).unwrap();
            assert_eq!(switch_to(&advice, margin), None, "{tenths}");
        }
        // Far below (4 h a day: flex is 76% cheaper): back to flex.
        let advice = advise(current, &one_worker(40), &rates, 3, true).unwrap();
        assert_eq!(
            switch_to(&advice, margin),
            Some(Config::Serverless { active: 0 })
        );
    }

    #[test]
    fn hourly_measurements_keep_the_worker_seconds() {
        let hours = [
            Decimal::ZERO,
            Decimal::from(1800),
            Decimal::from(3600),
            Decimal::from(9000),
        ];
        let usage = Concurrency::from_hours(0, &hours);
        assert_eq!(usage.window_seconds(), 4 * 3600);
        assert_eq!(usage.worker_seconds_above(0), 1800 + 3600 + 9000);
        // 9,000 s in an hour: two workers for half of it, three for the other half.
        assert_eq!(usage.seconds, vec![3600 + 1800, 1800 + 3600, 1800, 1800]);
        // Beside one active worker every level moves up by one.
        let with_active = Concurrency::from_hours(1, &hours);
        assert_eq!(with_active.seconds_at_least(1), 4 * 3600);
        assert_eq!(with_active.worker_seconds_above(1), 1800 + 3600 + 9000);
    }

    #[test]
    fn no_measurement_no_advice_and_an_unpriced_way_is_not_offered() {
        let rates = a100();
        assert_eq!(
            advise(
                Config::Serverless { active: 0 },
                &Concurrency::default(),
                &rates,
                3,
                true
            ),
            Err(AdviceError::NoMeasurement)
        );
        let no_pod = Rates {
            pod_per_hour: None,
            ..rates
        };
        let advice = advise(
            Config::Serverless { active: 0 },
            &one_worker(230),
            &no_pod,
            3,
            true,
        )
        .unwrap();
        assert!(
            advice
                .options
                .iter()
                .all(|o| !matches!(o.config, Config::Pod { .. }))
        );
        // A histogram level past the bound counts at the bound.
        let mut usage = Concurrency::default();
        usage.record(u32::MAX, 5);
        assert_eq!(usage.max() as usize, MAX_LEVELS - 1);
    }

    #[test]
    fn the_status_says_cost_advice_true_only_when_another_way_is_cheaper() {
        let flex = Config::Serverless { active: 0 };
        // 22 busy hours a day: the Pod is cheaper.
        let advice = advise(flex, &one_worker(220), &a100(), 3, true).unwrap();
        let (utilisation, recommendation, verdict) = advice_status(&advice, "2026-01-08T00:00:00Z");
        assert!(verdict.status);
        assert_eq!(verdict.kind, crate::api::CONDITION_COST_ADVICE);
        assert_eq!(verdict.reason, "CheaperConfiguration");
        assert!(verdict.message.contains("1 Pod"), "{}", verdict.message);
        assert_eq!(recommendation.configuration, "1 Pod");
        assert_eq!(recommendation.saving_per_month.0, advice.saving_per_month);
        assert!(recommendation.saving_per_month.0 > Decimal::ZERO);
        assert_eq!(utilisation.busy_hours_per_day, "22");
        assert_eq!(utilisation.window_hours, "168");
        // 4 hours a day: flex is the cheapest, which is what runs.
        let advice = advise(flex, &one_worker(40), &a100(), 3, true).unwrap();
        let (_, recommendation, verdict) = advice_status(&advice, "x");
        assert!(!verdict.status);
        assert_eq!(verdict.reason, "CurrentIsCheapest");
        assert_eq!(recommendation.configuration, flex.to_string());
        assert_eq!(recommendation.saving_per_month.0, Decimal::ZERO);
    }

    fn auto_spec(extra: serde_json::Value) -> crate::api::GpuWorkloadSpec {
        let mut spec = serde_json::json!({
            "type": "Auto", "image": "img:1", "gpu": {"types": [A100]},
            "serverless": {"maxWorkers": 1},
            "measurement": {"windowDays": 2},
            "spendingCap": {"usdPerHour": "9"}
        });
        if let (Some(base), serde_json::Value::Object(more)) = (spec.as_object_mut(), extra) {
            base.extend(more);
        }
        serde_json::from_value(spec).unwrap()
    }

    /// `hours` hours of one flex worker busy `fraction` of each, as RunPod bills them.
    fn billed(hours: usize, fraction: Decimal, rates: &Rates) -> Vec<Decimal> {
        vec![rates.flex_per_second * Decimal::from(SECONDS_PER_HOUR) * fraction; hours]
    }

    #[test]
    fn type_auto_moves_to_a_pod_only_on_a_whole_window_past_the_margin() {
        use crate::api::WorkloadType::{Pod, Serverless};
        let rates = a100();
        let spec = auto_spec(serde_json::json!({}));
        // 22 busy hours a day: the Pod is about a quarter cheaper.
        let busy = Decimal::new(22, 0) / Decimal::from(24);
        // Half a window: no move, and the advice says why.
        let (advice, decision) = auto_decide(
            &spec,
            Some(Serverless),
            0,
            &billed(24, busy, &rates),
            None,
            &rates,
        );
        assert_eq!(advice.unwrap().best.config, Config::Pod { count: 1 });
        assert_eq!(decision.side, Some(Serverless));
        assert!(
            decision
                .held
                .unwrap()
                .contains("whole window of 48 h and 24 h")
        );
        // The whole window: it moves.
        let (_, decision) = auto_decide(
            &spec,
            Some(Serverless),
            0,
            &billed(48, busy, &rates),
            None,
            &rates,
        );
        assert_eq!((decision.side, decision.held), (Some(Pod), None));
        // At 17.5 h a day the Pod is cheaper, but by less than the 10% margin: it stays.
        let near = Decimal::new(175, 1) / Decimal::from(24);
        let (advice, decision) = auto_decide(
            &spec,
            Some(Serverless),
            0,
            &billed(48, near, &rates),
            None,
            &rates,
        );
        assert_eq!(advice.unwrap().best.config, Config::Pod { count: 1 });
        assert_eq!(decision.side, Some(Serverless));
        assert!(decision.held.unwrap().contains("less than the 10% margin"));
        // A margin of 0 moves it; a workload not of type Auto never moves.
        let eager = auto_spec(
            serde_json::json!({"measurement": {"windowDays": 2, "switchMarginPercent": 0}}),
        );
        let (_, decision) = auto_decide(
            &eager,
            Some(Serverless),
            0,
            &billed(48, near, &rates),
            None,
            &rates,
        );
        assert_eq!(decision.side, Some(Pod));
        let (_, decision) = auto_decide(&eager, None, 0, &billed(48, busy, &rates), None, &rates);
        assert_eq!((decision.side, decision.held), (None, None));
    }

    #[test]
    fn type_auto_stays_serverless_when_the_busiest_hour_needs_more_than_one_pod() {
        use crate::api::WorkloadType::Serverless;
        let rates = a100();
        let spec = auto_spec(serde_json::json!({"serverless": {"maxWorkers": 3}}));
        // Three workers busy all the time: three pods would be cheapest.
        let (advice, decision) = auto_decide(
            &spec,
            Some(Serverless),
            0,
            &billed(48, Decimal::from(3), &rates),
            None,
            &rates,
        );
        let advice = advice.unwrap();
        assert!(
            advice
                .options
                .iter()
                .any(|o| o.config == Config::Pod { count: 3 }),
            "{:?}",
            advice.options
        );
        assert_eq!(decision.side, Some(Serverless));
    }

    /// Two workers busy for half of every hour read as one busy all hour in the hourly bill (22
    /// h/day: a Pod looks a quarter cheaper). `/health` samples see the two at once: the Pod
    /// side needs two pods, and `type: Auto` stays an endpoint.
    #[test]
    fn type_auto_stays_serverless_when_samples_saw_a_burst_the_bill_averages() {
        use crate::api::WorkloadType::{Pod, Serverless};
        let rates = a100();
        let spec = auto_spec(serde_json::json!({"serverless": {"maxWorkers": 3}}));
        let bill = billed(48, Decimal::new(22, 0) / Decimal::from(24), &rates);
        let (_, unsampled) = auto_decide(&spec, Some(Serverless), 0, &bill, None, &rates);
        assert_eq!(unsampled.side, Some(Pod), "the bill alone moves it");
        let mut sampled = Sampled::default();
        for n in 0..100u64 {
            // Half the samples see two busy, a tenth a worker waiting for a GPU, a fifth a
            // job queued.
            sampled.record(if n % 2 == 0 { 2 } else { 0 }, n % 10 == 0, n % 5 == 0);
        }
        let mut second = Sampled {
            hours: 47,
            ..Sampled::default()
        };
        second.record(1, false, false);
        sampled.hours = 1;
        sampled.merge(&second);
        assert_eq!((sampled.samples(), sampled.hours), (101, 48));
        let (advice, decision) =
            auto_decide(&spec, Some(Serverless), 0, &bill, Some(&sampled), &rates);
        let advice = advice.unwrap();
        assert_eq!(decision.side, Some(Serverless));
        assert!(
            advice
                .options
                .iter()
                .any(|o| o.config == Config::Pod { count: 2 }),
            "{:?}",
            advice.options
        );
        // One active worker (busy 22 h/day, past 18.9) is the cheapest way now.
        assert_eq!(advice.best.config, Config::Serverless { active: 1 });
        // The status says what the samples saw: 10 of 101 samples throttled over 48 h.
        let (utilisation, _, verdict) = advice_status(&advice, "x");
        let seen = utilisation.sampled.unwrap();
        assert_eq!(
            (seen.samples, seen.hours, seen.busy_workers_max),
            (101, 48, 2)
        );
        assert_eq!(seen.busy_workers_p95, 2);
        assert_eq!(seen.throttled_hours, "4.8");
        assert_eq!(seen.queued_hours, "9.5");
        assert!(
            verdict
                .message
                .contains("at most 2 busy at once, throttled 4.8 h"),
            "{}",
            verdict.message
        );
        // Cheaper as two pods (four workers busy at once for most of the window, a bill of
        // three): the advice names 4 pods and Auto says why it stays.
        let mut crowded = Sampled::default();
        crowded.record(4, false, false);
        let (_, decision) = auto_decide(
            &spec,
            Some(Serverless),
            0,
            &billed(48, Decimal::from(3), &rates),
            Some(&crowded),
            &rates,
        );
        assert_eq!(decision.side, Some(Serverless));
        let held = decision.held.unwrap_or_default();
        assert!(held.contains("4 workers were busy at once"), "{held}");
    }

    /// The Pod side is costed in the cloud the spec asks for: a Community pod at the Community
    /// price, not the Secure one.
    #[test]
    fn the_pod_side_is_priced_in_the_spec_cloud() {
        let prices = PriceCatalogue::builtin();
        let secure = auto_spec(serde_json::json!({}));
        let community =
            auto_spec(serde_json::json!({"gpu": {"types": [A100], "cloud": "Community"}}));
        let rates = |spec| serverless_rates(spec, &prices).unwrap().pod_per_hour;
        assert_eq!(rates(&secure), prices.pod_per_hour(A100, false).ok());
        assert_eq!(rates(&community), prices.pod_per_hour(A100, true).ok());
        assert_ne!(rates(&secure), rates(&community));
    }

    #[test]
    fn worker_class_auto_sets_the_best_active_count_on_a_whole_window_only() {
        let rates = a100();
        let spec = auto_spec(serde_json::json!({
            "type": "Serverless",
            "serverless": {"workerClass": "Auto", "maxWorkers": 4}
        }));
        // Two workers busy all the time: two active ones pay off.
        let two = billed(48, Decimal::from(2), &rates);
        let (_, decision) = auto_decide(&spec, None, 0, &two, None, &rates);
        assert_eq!(decision.active, Some(2));
        let (_, decision) = auto_decide(&spec, None, 0, &two[..47], None, &rates);
        assert_eq!(decision.active, Some(0), "half a window changes nothing");
        assert!(decision.held.is_some());
    }

    /// An endpoint with an active worker whose traffic stopped: its bill is the active
    /// worker's, every hour, busy or not, so the bill alone keeps the worker for ever. Samples
    /// that cover the window see it idle, and `workerClass: Auto` lets it go.
    #[test]
    fn worker_class_auto_lets_an_idle_active_worker_go_when_samples_cover_the_window() {
        let rates = a100();
        let spec = auto_spec(serde_json::json!({
            "type": "Serverless",
            "serverless": {"workerClass": "Auto", "maxWorkers": 4}
        }));
        let active_hour = rates.active_per_second.unwrap() * Decimal::from(SECONDS_PER_HOUR);
        let idle = vec![active_hour; 48];
        let (_, decision) = auto_decide(&spec, None, 1, &idle, None, &rates);
        assert_eq!(decision.active, Some(1), "the bill alone cannot tell");
        let sampled = |hours: u32, per_hour: u64, busy_every: u64| {
            let mut all = Sampled::default();
            for _ in 0..hours {
                let mut hour = Sampled {
                    hours: 1,
                    ..Sampled::default()
                };
                for n in 0..per_hour {
                    hour.record(u64::from(n % busy_every == 0), false, false);
                }
                all.merge(&hour);
            }
            all
        };
        // 48 hours of samples, one in sixty busy: the worker goes.
        let quiet = sampled(48, 60, u64::MAX);
        let (advice, decision) = auto_decide(&spec, None, 1, &idle, Some(&quiet), &rates);
        assert_eq!(decision.active, Some(0));
        let advice = advice.unwrap();
        assert!(advice.from_samples);
        let (_, _, verdict) = advice_status(&advice, "x");
        assert!(
            verdict.message.contains("from /health samples"),
            "{}",
            verdict.message
        );
        // Busy in every sample: it stays (and the bill's figures are not what decided it).
        let busy = sampled(48, 60, 1);
        let (_, decision) = auto_decide(&spec, None, 1, &idle, Some(&busy), &rates);
        assert_eq!(decision.active, Some(1));
        // Samples that do not cover the window (hours missing, or too few) leave the bill to
        // decide.
        for thin in [sampled(40, 60, u64::MAX), sampled(48, 2, u64::MAX)] {
            let (advice, decision) = auto_decide(&spec, None, 1, &idle, Some(&thin), &rates);
            assert_eq!(decision.active, Some(1));
            assert!(!advice.unwrap().from_samples);
        }
    }

    #[test]
    fn type_auto_moves_an_idle_pod_back_to_serverless_on_a_whole_window_past_the_margin() {
        use crate::api::WorkloadType::{Pod, Serverless};
        let rates = a100();
        let spec = auto_spec(serde_json::json!({"serverless": {"maxWorkers": 2}}));
        let hours = |n: usize, busy_hours_a_day: i64| {
            vec![Decimal::from(busy_hours_a_day * 3600) / Decimal::from(24); n]
        };
        // Five busy hours a day: flex is far cheaper than a Pod all day.
        let (advice, decision) = auto_decide_pod(&spec, &hours(48, 5), &rates);
        assert_eq!(advice.unwrap().current.config, Config::Pod { count: 1 });
        assert_eq!((decision.side, decision.active), (Some(Serverless), None));
        // Not a whole window yet: it stays, and says so.
        let (_, decision) = auto_decide_pod(&spec, &hours(30, 5), &rates);
        assert_eq!(decision.side, Some(Pod));
        assert!(
            decision
                .held
                .unwrap()
                .contains("30 h of the pod are sampled")
        );
        // 16 busy hours a day: flex is a little cheaper, within the margin: it stays.
        let (_, decision) = auto_decide_pod(&spec, &hours(48, 16), &rates);
        assert_eq!(decision.side, Some(Pod));
        assert!(decision.held.unwrap().contains("less than the 10% margin"));
        // Busy all day: the Pod is the cheapest; nothing to hold back.
        let (_, decision) = auto_decide_pod(&spec, &hours(48, 24), &rates);
        assert_eq!((decision.side, decision.held), (Some(Pod), None));
    }
}
