//! The cost model against the seed's figures and hand-computed bills, plus properties that
//! hold for any prices.

use proptest::prelude::*;
use runpod_operator::{
    api::{
        DeletionPolicy, DesiredState, GpuSpec, GpuWorkloadSpec, ManagementPolicy, PodVolume,
        ReplacePolicy, ServerlessSpec, SpendingCap, WorkerClass, WorkloadType,
    },
    engine::{
        cost::{
            CostError, FlexOverhead, Usage, active_vs_flex, breakeven_report,
            network_volume_per_month, per_month, pod_vs_flex, workload_cost,
        },
        prices::{PriceCatalogue, PriceError},
    },
};
use rust_decimal::Decimal;

const A100: &str = "NVIDIA A100-SXM4-80GB";

fn usd(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn pod(gpu: &str, count: u32) -> GpuWorkloadSpec {
    GpuWorkloadSpec {
        workload_type: WorkloadType::Pod,
        account_ref: None,
        image: "img".into(),
        args: None,
        env: vec![],
        ports: vec![],
        registry_credentials: None,
        gpu: GpuSpec {
            types: vec![gpu.into()],
            count,
            cloud: None,
            allowed_cuda_versions: vec![],
            min_cuda_version: None,
        },
        data_centers: vec![],
        container_disk_gb: Some(72),
        volume: None,
        network_volumes: vec![],
        serverless: None,
        state: None,
        spending_cap: SpendingCap {
            usd_per_hour: "100".parse().unwrap(),
            usd_per_month: None,
        },
        stopped_volume_policy: None,
        replace_policy: ReplacePolicy::RequireApproval,
        deletion_policy: DeletionPolicy::Delete,
        management_policy: ManagementPolicy::Manage,
        priority: 0,
        measurement: None,
    }
}

fn endpoint(gpu: &str, active: u32, max: u32) -> GpuWorkloadSpec {
    GpuWorkloadSpec {
        workload_type: WorkloadType::Serverless,
        serverless: Some(ServerlessSpec {
            worker_class: if active > 0 {
                WorkerClass::Active
            } else {
                WorkerClass::Flex
            },
            active_workers: active,
            max_workers: max,
            idle_timeout_seconds: None,
            scaler: None,
            execution_timeout_seconds: None,
            flash_boot: None,
        }),
        ..pod(gpu, 1)
    }
}

// ---- the seed's figures -----------------------------------------------------------------

#[test]
fn seed_a100_pod_costs_45_36_a_day() {
    let report = breakeven_report(
        A100,
        usd("1.89"),
        usd("0.00076"),
        None,
        FlexOverhead::default(),
    );
    assert_eq!(report.options[0].per_24h.to_string(), "45.36");
}

#[test]
fn seed_flex_a100_costs_2_736_per_busy_hour() {
    let report = breakeven_report(
        A100,
        usd("1.89"),
        usd("0.00076"),
        None,
        FlexOverhead::default(),
    );
    assert_eq!(report.options[1].per_busy_hour.to_string(), "2.736");
}

#[test]
fn seed_break_even_is_16_6_busy_hours_a_day() {
    let b = pod_vs_flex(usd("1.89"), usd("0.00076"), FlexOverhead::default());
    assert_eq!(b.rounded().to_string(), "16.6");
    assert!(b.within_a_day());
    // Exactly: 45.36 / 2.736.
    assert_eq!(b.busy_hours_per_day, usd("45.36") / usd("2.736"));
}

#[test]
fn the_builtin_catalogue_gives_the_seed_figures_too() {
    let prices = PriceCatalogue::builtin();
    let pool = prices.pool_of(A100).unwrap();
    let b = pod_vs_flex(
        prices.pod_per_hour(A100, false).unwrap(),
        pool.flex_per_second,
        FlexOverhead::default(),
    );
    assert_eq!(b.rounded().to_string(), "16.6");
}

#[test]
fn active_a100_workers_beat_flex_above_18_9_busy_hours() {
    // 0.00060 x 86400 = 51.84 a day; 51.84 / 2.736 = 18.947...
    let b = active_vs_flex(usd("0.00060"), usd("0.00076"), FlexOverhead::default());
    assert_eq!(b.rounded().to_string(), "18.9");
}

#[test]
fn cold_starts_and_the_idle_tail_make_flex_dearer() {
    // 2 scale-ups an hour, 30 s cold start, 5 s idle: 3600 + 2 x 35 = 3670 billed s per busy hour.
    let overhead = FlexOverhead {
        cold_start_seconds: 30,
        idle_timeout_seconds: 5,
        scale_ups_per_busy_hour: Decimal::from(2),
    };
    assert_eq!(overhead.billed_seconds_per_busy_hour(), Decimal::from(3670));
    let b = pod_vs_flex(usd("1.89"), usd("0.00076"), overhead);
    // 45.36 / (0.00076 x 3670) = 45.36 / 2.7892 = 16.26...
    assert_eq!(b.rounded().to_string(), "16.3");
}

#[test]
fn a_pod_dearer_than_flex_all_day_never_breaks_even() {
    let b = pod_vs_flex(usd("3.00"), usd("0.00076"), FlexOverhead::default());
    assert!(!b.within_a_day());
}

// ---- workload costs ------------------------------------------------------------------------

#[test]
fn a_running_pod_pays_gpus_container_disk_and_volume() {
    let mut spec = pod(A100, 2);
    spec.volume = Some(PodVolume {
        size_gb: 144,
        mount_path: "/workspace".into(),
    });
    let cost = workload_cost(&spec, &PriceCatalogue::builtin(), Usage::default()).unwrap();
    // 2 x 1.89 + 72 GB x 0.10 / 720 + 144 GB x 0.10 / 720 = 3.78 + 0.01 + 0.02.
    assert_eq!(cost.worst_case_per_hour, usd("3.81"));
    assert_eq!(cost.expected_per_hour, usd("3.81"));
    assert_eq!(cost.worst_case_per_month(), usd("2743.2"));
    assert_eq!(cost.lines.len(), 3);
}

#[test]
fn a_stopped_pod_pays_only_its_volume_at_the_stopped_rate() {
    let mut spec = pod(A100, 2);
    spec.state = Some(DesiredState::Stopped);
    spec.volume = Some(PodVolume {
        size_gb: 360,
        mount_path: "/workspace".into(),
    });
    let cost = workload_cost(&spec, &PriceCatalogue::builtin(), Usage::default()).unwrap();
    // 360 GB x 0.20 / 720 = 0.10 an hour, $72 a month.
    assert_eq!(cost.worst_case_per_hour, usd("0.1"));
    assert_eq!(per_month(cost.worst_case_per_hour), usd("72"));
}

#[test]
fn a_pod_fears_the_dearest_acceptable_gpu_and_expects_the_first() {
    let mut spec = pod("NVIDIA A100 80GB PCIe", 1);
    spec.gpu.types.push("NVIDIA H100 80GB HBM3".into());
    spec.container_disk_gb = Some(0);
    let cost = workload_cost(&spec, &PriceCatalogue::builtin(), Usage::default()).unwrap();
    assert_eq!(cost.expected_per_hour, usd("1.64"));
    assert_eq!(cost.worst_case_per_hour, usd("2.99"));
}

#[test]
fn a_flex_endpoint_costs_nothing_idle_and_max_workers_at_worst() {
    let mut spec = endpoint(A100, 0, 10);
    spec.container_disk_gb = Some(0);
    let cost = workload_cost(&spec, &PriceCatalogue::builtin(), Usage::default()).unwrap();
    assert_eq!(cost.expected_per_hour, Decimal::ZERO);
    assert_eq!(cost.worst_case_per_hour, usd("27.36"));
    let busy = Usage {
        busy_flex_workers: Decimal::from(2),
    };
    assert_eq!(
        workload_cost(&spec, &PriceCatalogue::builtin(), busy)
            .unwrap()
            .expected_per_hour,
        usd("5.472")
    );
}

#[test]
fn active_workers_bill_all_day_at_the_active_rate() {
    let mut spec = endpoint(A100, 2, 5);
    spec.container_disk_gb = Some(0);
    let cost = workload_cost(&spec, &PriceCatalogue::builtin(), Usage::default()).unwrap();
    // 2 x 0.00060 x 3600 = 4.32 always; + 3 flex x 2.736 = 8.208 at worst.
    assert_eq!(cost.expected_per_hour, usd("4.32"));
    assert_eq!(cost.worst_case_per_hour, usd("12.528"));
}

#[test]
fn gpus_per_worker_multiply_the_worker_price() {
    let mut spec = endpoint(A100, 0, 3);
    spec.gpu.count = 2;
    spec.container_disk_gb = Some(0);
    let cost = workload_cost(&spec, &PriceCatalogue::builtin(), Usage::default()).unwrap();
    assert_eq!(cost.worst_case_per_hour, usd("16.416"));
}

#[test]
fn auto_counts_the_dearer_of_pod_and_serverless() {
    let mut spec = endpoint(A100, 0, 3);
    spec.workload_type = WorkloadType::Auto;
    spec.container_disk_gb = Some(0);
    let cost = workload_cost(&spec, &PriceCatalogue::builtin(), Usage::default()).unwrap();
    assert_eq!(cost.worst_case_per_hour, usd("8.208"));
    assert_eq!(
        cost.expected_per_hour,
        usd("1.89"),
        "an idle flex endpoint is cheaper than the pod"
    );
}

#[test]
fn an_unknown_price_is_an_error_never_zero() {
    let err = workload_cost(
        &pod("NVIDIA A100", 1),
        &PriceCatalogue::builtin(),
        Usage::default(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        CostError::Price(PriceError::UnknownGpu("NVIDIA A100".into()))
    );
    assert!(err.to_string().starts_with("spec.gpu.types: "), "{err}");
    let err = workload_cost(
        &endpoint("NVIDIA GeForce RTX 5090", 0, 1),
        &PriceCatalogue::builtin(),
        Usage::default(),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        CostError::Price(PriceError::NoServerlessPrice(_))
    ));
}

#[test]
fn network_volumes_bill_the_first_1024_gb_at_0_07_and_the_rest_at_0_05() {
    let rates = PriceCatalogue::builtin().storage;
    assert_eq!(network_volume_per_month(100, &rates), usd("7"));
    assert_eq!(network_volume_per_month(1024, &rates), usd("71.68"));
    assert_eq!(network_volume_per_month(2048, &rates), usd("122.88"));
}

// ---- properties --------------------------------------------------------------------------

fn money(max_millionths: i64) -> impl Strategy<Value = Decimal> {
    (1..max_millionths).prop_map(|m| Decimal::new(m, 6))
}

proptest! {
    /// At the break-even, a day of the always-on option costs exactly the flex bill.
    #[test]
    fn break_even_is_where_the_bills_meet(pod in money(20_000_000), flex in money(10_000), cold in 0u32..300, idle in 0u32..600, ups in 0i64..20) {
        let overhead = FlexOverhead { cold_start_seconds: cold, idle_timeout_seconds: idle, scale_ups_per_busy_hour: Decimal::from(ups) };
        let b = pod_vs_flex(pod, flex, overhead);
        let flex_bill = b.busy_hours_per_day * flex * overhead.billed_seconds_per_busy_hour();
        prop_assert!((flex_bill - pod * Decimal::from(24)).abs() < Decimal::new(1, 9));
    }

    /// More billed overhead per busy hour never makes flex look better.
    #[test]
    fn overhead_never_raises_the_break_even(pod in money(20_000_000), flex in money(10_000), cold in 0u32..300, extra in 1u32..300) {
        let base = FlexOverhead { cold_start_seconds: cold, idle_timeout_seconds: 0, scale_ups_per_busy_hour: Decimal::ONE };
        let more = FlexOverhead { cold_start_seconds: cold + extra, ..base };
        prop_assert!(pod_vs_flex(pod, flex, more).busy_hours_per_day < pod_vs_flex(pod, flex, base).busy_hours_per_day);
    }

    /// The worst case is never below the expected cost, for pods and endpoints alike.
    #[test]
    fn worst_case_bounds_expected(active in 0u32..5, extra in 0u32..30, busy in 0i64..40, gpus in 1u32..8, disk in 0u32..500) {
        let prices = PriceCatalogue::builtin();
        let mut spec = endpoint(A100, active, active + extra);
        spec.gpu.count = gpus;
        spec.container_disk_gb = Some(disk);
        let usage = Usage { busy_flex_workers: Decimal::from(busy) };
        let cost = workload_cost(&spec, &prices, usage).unwrap();
        prop_assert!(cost.worst_case_per_hour >= cost.expected_per_hour);
        let mut p = pod(A100, gpus);
        p.container_disk_gb = Some(disk);
        let cost = workload_cost(&p, &prices, usage).unwrap();
        prop_assert!(cost.worst_case_per_hour >= cost.expected_per_hour);
    }
}
