//! The cost model: what a workload costs per hour (expected and worst case), per month, and
//! how many busy hours a day make a Pod cheaper than flex workers, or active workers cheaper
//! than flex ones.
//!
//! All money is `Decimal`, so the seed's figures come out exact ($1.89/h x 24 = $45.36).
//! Network volumes are not part of a workload's cost: they bill on their own, whether or not
//! anything attaches them, and are counted once, on the NetworkVolume.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use super::prices::{
    HOURS_PER_MONTH, NETWORK_VOLUME_TIER_GB, PoolPrice, PriceCatalogue, PriceError, StorageRates,
};
use crate::api::{Cloud, DesiredState, GpuWorkloadSpec, ServerlessSpec, WorkloadType};

/// Container disk RunPod gives when none is asked for, in GB.
pub const DEFAULT_CONTAINER_DISK_GB: u32 = 50;

/// Seconds in an hour.
pub const SECONDS_PER_HOUR: u32 = 3600;
const HOURS_PER_DAY: u32 = 24;

/// Why a cost cannot be computed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CostError {
    /// A price is missing; the operator never guesses one.
    #[error("spec.gpu.types: {0}")]
    Price(#[from] PriceError),
    /// No GPU type is listed (the CRD refuses this; a spec built in code may not).
    #[error("spec.gpu.types is empty: list at least one GPU type id")]
    NoGpuTypes,
    /// A Serverless or Auto workload without serverless settings.
    #[error("spec.serverless is required to price a {0:?} workload")]
    MissingServerless(WorkloadType),
}

/// One part of a workload's cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CostLine {
    /// What is billed, e.g. `2 x NVIDIA A100-SXM4-80GB (Secure)`.
    pub item: String,
    /// USD per hour, worst case.
    #[serde(with = "rust_decimal::serde::str")]
    pub per_hour: Decimal,
}

/// What a workload costs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadCost {
    /// USD per hour at the expected usage (see [`Usage`]).
    #[serde(with = "rust_decimal::serde::str")]
    pub expected_per_hour: Decimal,
    /// USD per hour in the worst case: the dearest acceptable GPU, and for an endpoint every
    /// worker up to `maxWorkers` busy. Spending caps are checked against this.
    #[serde(with = "rust_decimal::serde::str")]
    pub worst_case_per_hour: Decimal,
    /// The worst case, item by item.
    pub lines: Vec<CostLine>,
}

impl WorkloadCost {
    /// The expected cost over a 30-day month.
    pub fn expected_per_month(&self) -> Decimal {
        per_month(self.expected_per_hour)
    }

    /// The worst-case cost over a 30-day month.
    pub fn worst_case_per_month(&self) -> Decimal {
        per_month(self.worst_case_per_hour)
    }
}

/// How busy a workload is expected to be, for the expected (not worst-case) cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Flex workers running on average, beyond the always-on active ones. 0 by default:
    /// without measurements the expected cost of an endpoint is its always-on floor.
    pub busy_flex_workers: Decimal,
}

/// A cost per hour over RunPod's 30-day month.
pub fn per_month(per_hour: Decimal) -> Decimal {
    per_hour * Decimal::from(HOURS_PER_MONTH)
}

/// A per-GB-per-month storage rate as USD per hour for `gb` GB.
fn storage_per_hour(gb: u32, rate_per_gb_month: Decimal) -> Decimal {
    Decimal::from(gb) * rate_per_gb_month / Decimal::from(HOURS_PER_MONTH)
}

/// What a standard network volume of `size_gb` GB costs per month: the first
/// [`NETWORK_VOLUME_TIER_GB`] GB at the first-tier rate, the rest at the lower one.
pub fn network_volume_per_month(size_gb: u32, rates: &StorageRates) -> Decimal {
    let first = size_gb.min(NETWORK_VOLUME_TIER_GB);
    let above = size_gb - first;
    Decimal::from(first) * rates.network_volume_first_tier
        + Decimal::from(above) * rates.network_volume_above_tier
}

/// The hourly cost of a workload, expected and worst case.
pub fn workload_cost(
    spec: &GpuWorkloadSpec,
    prices: &PriceCatalogue,
    usage: Usage,
) -> Result<WorkloadCost, CostError> {
    match spec.workload_type {
        WorkloadType::Pod => pod_cost(spec, prices),
        WorkloadType::Serverless => serverless_cost(spec, prices, usage),
        WorkloadType::Auto => {
            // Until the operator has chosen, either may run: count the dearer.
            let pod = pod_cost(spec, prices)?;
            let serverless = serverless_cost(spec, prices, usage)?;
            Ok(
                if pod.worst_case_per_hour >= serverless.worst_case_per_hour {
                    WorkloadCost {
                        expected_per_hour: pod.expected_per_hour.max(serverless.expected_per_hour),
                        ..pod
                    }
                } else {
                    WorkloadCost {
                        expected_per_hour: pod.expected_per_hour.max(serverless.expected_per_hour),
                        ..serverless
                    }
                },
            )
        }
    }
}

fn pod_cost(spec: &GpuWorkloadSpec, prices: &PriceCatalogue) -> Result<WorkloadCost, CostError> {
    let community = spec.gpu.cloud == Some(Cloud::Community);
    let cloud = if community { "Community" } else { "Secure" };
    let count = Decimal::from(spec.gpu.count);
    let storage = &prices.storage;
    let volume_gb = spec.volume.as_ref().map_or(0, |v| v.size_gb);

    if spec.state == Some(DesiredState::Stopped) {
        let per_hour = storage_per_hour(volume_gb, storage.pod_volume_stopped);
        let lines = vec![CostLine {
            item: format!("pod volume {volume_gb} GB (stopped)"),
            per_hour,
        }];
        return Ok(WorkloadCost {
            expected_per_hour: per_hour,
            worst_case_per_hour: per_hour,
            lines,
        });
    }

    // Every listed type may be the one RunPod places the pod on: price each, fail on any
    // unknown one, expect the first and fear the dearest.
    let mut first = None;
    let mut dearest: Option<(&str, Decimal)> = None;
    for gpu in &spec.gpu.types {
        let price = prices.pod_per_hour(gpu, community)?;
        first.get_or_insert(price);
        if dearest.is_none_or(|(_, p)| price > p) {
            dearest = Some((gpu, price));
        }
    }
    let (Some(first), Some((dearest_type, dearest))) = (first, dearest) else {
        return Err(CostError::NoGpuTypes);
    };

    let disk_gb = spec.container_disk_gb.unwrap_or(DEFAULT_CONTAINER_DISK_GB);
    let disk = storage_per_hour(disk_gb, storage.container_disk);
    let volume = storage_per_hour(volume_gb, storage.pod_volume_running);
    let mut lines = vec![
        CostLine {
            item: format!("{} x {dearest_type} ({cloud})", spec.gpu.count),
            per_hour: count * dearest,
        },
        CostLine {
            item: format!("container disk {disk_gb} GB"),
            per_hour: disk,
        },
    ];
    if volume_gb > 0 {
        lines.push(CostLine {
            item: format!("pod volume {volume_gb} GB (running)"),
            per_hour: volume,
        });
    }
    Ok(WorkloadCost {
        expected_per_hour: count * first + disk + volume,
        worst_case_per_hour: lines.iter().map(|l| l.per_hour).sum(),
        lines,
    })
}

fn serverless_cost(
    spec: &GpuWorkloadSpec,
    prices: &PriceCatalogue,
    usage: Usage,
) -> Result<WorkloadCost, CostError> {
    let serverless: &ServerlessSpec = spec
        .serverless
        .as_ref()
        .ok_or(CostError::MissingServerless(spec.workload_type))?;
    let gpus = Decimal::from(spec.gpu.count);
    let per_hour = Decimal::from(SECONDS_PER_HOUR);

    let mut first = None;
    let mut dearest = None;
    for gpu in &spec.gpu.types {
        let pool = prices.pool_of(gpu)?;
        first.get_or_insert(pool);
        if dearest.is_none_or(|d: &PoolPrice| pool.flex_per_second > d.flex_per_second) {
            dearest = Some(pool);
        }
    }
    let (Some(first), Some(dearest)) = (first, dearest) else {
        return Err(CostError::NoGpuTypes);
    };

    // An active worker bills at the active rate; where RunPod publishes none, at flex.
    let active_rate = |p: &PoolPrice| p.active_per_second.unwrap_or(p.flex_per_second);
    let active = Decimal::from(serverless.active_workers);
    let flex_max = Decimal::from(
        serverless.max_workers - serverless.active_workers.min(serverless.max_workers),
    );
    let disk_gb = spec.container_disk_gb.unwrap_or(DEFAULT_CONTAINER_DISK_GB);
    let disk_per_worker = storage_per_hour(disk_gb, prices.storage.container_disk);

    let mut lines = Vec::new();
    if serverless.active_workers > 0 {
        lines.push(CostLine {
            item: format!(
                "{} active worker(s) x {} GPU ({}, active rate)",
                serverless.active_workers, spec.gpu.count, dearest.pool
            ),
            per_hour: active * gpus * active_rate(dearest) * per_hour,
        });
    }
    if flex_max > Decimal::ZERO {
        lines.push(CostLine {
            item: format!(
                "{flex_max} flex worker(s) x {} GPU ({}, all busy)",
                spec.gpu.count, dearest.pool
            ),
            per_hour: flex_max * gpus * dearest.flex_per_second * per_hour,
        });
    }
    lines.push(CostLine {
        item: format!(
            "container disk {disk_gb} GB x {} worker(s)",
            serverless.max_workers
        ),
        per_hour: Decimal::from(serverless.max_workers) * disk_per_worker,
    });

    let busy = usage.busy_flex_workers.min(flex_max).max(Decimal::ZERO);
    let expected = active * gpus * active_rate(first) * per_hour
        + busy * gpus * first.flex_per_second * per_hour
        + (active + busy) * disk_per_worker;
    Ok(WorkloadCost {
        expected_per_hour: expected,
        worst_case_per_hour: lines.iter().map(|l| l.per_hour).sum(),
        lines,
    })
}

/// The billed time a flex worker adds around its work each time it scales up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlexOverhead {
    /// Seconds of billed cold start per scale-up.
    pub cold_start_seconds: u32,
    /// Seconds of billed idle time after the last job, per scale-up (the idle timeout).
    pub idle_timeout_seconds: u32,
    /// How many times a worker scales up per busy hour.
    pub scale_ups_per_busy_hour: Decimal,
}

impl FlexOverhead {
    /// Billed seconds per busy hour: the hour itself plus every scale-up's cold start and
    /// idle tail.
    pub fn billed_seconds_per_busy_hour(&self) -> Decimal {
        Decimal::from(SECONDS_PER_HOUR)
            + self.scale_ups_per_busy_hour
                * Decimal::from(self.cold_start_seconds + self.idle_timeout_seconds)
    }
}

/// What one flex worker with one GPU costs per busy hour, overhead included.
pub fn flex_per_busy_hour(flex_per_second: Decimal, overhead: FlexOverhead) -> Decimal {
    flex_per_second * overhead.billed_seconds_per_busy_hour()
}

/// Busy hours per day at which two ways of running cost the same. Below it the
/// pay-per-use option (flex) is cheaper; above it the always-on one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakEven {
    /// The exact figure; 24 or more means the pay-per-use option wins all day.
    pub busy_hours_per_day: Decimal,
}

impl Serialize for BreakEven {
    /// `{"busyHoursPerDay": "16.6", "exactBusyHoursPerDay": "16.57...", "withinADay": true}`:
    /// the figure people read, the one programs compute with, and the verdict.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("BreakEven", 3)?;
        s.serialize_field("busyHoursPerDay", &self.rounded().to_string())?;
        s.serialize_field(
            "exactBusyHoursPerDay",
            &self.busy_hours_per_day.normalize().to_string(),
        )?;
        s.serialize_field("withinADay", &self.within_a_day())?;
        s.end()
    }
}

impl BreakEven {
    /// Whether the always-on option wins for some usage within a day.
    pub fn within_a_day(&self) -> bool {
        self.busy_hours_per_day < Decimal::from(HOURS_PER_DAY)
    }

    /// The figure rounded to one decimal, as people read it (16.578... -> 16.6).
    pub fn rounded(&self) -> Decimal {
        self.busy_hours_per_day
            .round_dp_with_strategy(1, RoundingStrategy::MidpointAwayFromZero)
    }
}

/// Busy hours per day above which a Pod (always on) beats a flex worker (pay per use).
/// Compares one GPU of each; GPU count scales both sides alike.
pub fn pod_vs_flex(
    pod_per_hour: Decimal,
    flex_per_second: Decimal,
    overhead: FlexOverhead,
) -> BreakEven {
    always_on_vs_flex(
        pod_per_hour * Decimal::from(HOURS_PER_DAY),
        flex_per_second,
        overhead,
    )
}

/// Busy hours per day above which an active worker (always on, discounted) beats a flex one.
pub fn active_vs_flex(
    active_per_second: Decimal,
    flex_per_second: Decimal,
    overhead: FlexOverhead,
) -> BreakEven {
    let per_day = active_per_second * Decimal::from(SECONDS_PER_HOUR * HOURS_PER_DAY);
    always_on_vs_flex(per_day, flex_per_second, overhead)
}

fn always_on_vs_flex(
    always_on_per_day: Decimal,
    flex_per_second: Decimal,
    overhead: FlexOverhead,
) -> BreakEven {
    let flex_hour = flex_per_busy_hour(flex_per_second, overhead);
    let busy_hours_per_day = if flex_hour.is_zero() {
        // Free flex time never loses; report it as "flex wins all day".
        Decimal::from(HOURS_PER_DAY)
    } else {
        always_on_per_day / flex_hour
    };
    BreakEven { busy_hours_per_day }
}

/// One row of the break-even table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOption {
    /// `Pod`, `Serverless flex` or `Serverless active`.
    pub model: String,
    /// The rate as RunPod quotes it, e.g. `$1.89/h` or `$0.00076/s`.
    pub rate: String,
    /// USD for 24 hours: a Pod or active worker always, a flex worker busy all day.
    #[serde(with = "rust_decimal::serde::str")]
    pub per_24h: Decimal,
    /// USD per busy hour, overhead included for flex.
    #[serde(with = "rust_decimal::serde::str")]
    pub per_busy_hour: Decimal,
}

/// The break-even comparison of one GPU type run three ways.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakEvenReport {
    /// The GPU type id.
    pub gpu: String,
    /// Pod, flex and (if priced) active.
    pub options: Vec<RunOption>,
    /// Above this many busy hours a day the Pod is cheaper than flex workers.
    pub pod_vs_flex: BreakEven,
    /// Above this many busy hours a day an active worker is cheaper than flex; absent when
    /// no active price is known.
    pub active_vs_flex: Option<BreakEven>,
}

/// Builds the break-even comparison from explicit rates (USD per GPU).
pub fn breakeven_report(
    gpu: &str,
    pod_per_hour: Decimal,
    flex_per_second: Decimal,
    active_per_second: Option<Decimal>,
    overhead: FlexOverhead,
) -> BreakEvenReport {
    let day = Decimal::from(HOURS_PER_DAY);
    let hour = Decimal::from(SECONDS_PER_HOUR);
    let flex_hour = flex_per_busy_hour(flex_per_second, overhead);
    let mut options = vec![
        RunOption {
            model: "Pod".into(),
            rate: format!("${}/h", pod_per_hour.normalize()),
            per_24h: (pod_per_hour * day).normalize(),
            per_busy_hour: pod_per_hour.normalize(),
        },
        RunOption {
            model: "Serverless flex".into(),
            rate: format!("${}/s", flex_per_second.normalize()),
            per_24h: (flex_hour * day).normalize(),
            per_busy_hour: flex_hour.normalize(),
        },
    ];
    if let Some(active) = active_per_second {
        options.push(RunOption {
            model: "Serverless active".into(),
            rate: format!("${}/s", active.normalize()),
            per_24h: (active * hour * day).normalize(),
            per_busy_hour: (active * hour).normalize(),
        });
    }
    BreakEvenReport {
        gpu: gpu.to_string(),
        options,
        pod_vs_flex: pod_vs_flex(pod_per_hour, flex_per_second, overhead),
        active_vs_flex: active_per_second.map(|a| active_vs_flex(a, flex_per_second, overhead)),
    }
}
