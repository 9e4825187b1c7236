//! `runpod-operator cost`: what the declared workloads cost, expected and worst case, per
//! hour and per month, with the break-even advice for each. Needs no RunPod.

use std::{path::PathBuf, process::ExitCode};

use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use kube::ResourceExt;
use rust_decimal::Decimal;
use serde_json::json;

use super::{CliError, OutputFormat, render, workspace};
use crate::{
    api::{GpuWorkloadSpec, WorkerClass, WorkloadType},
    engine::{
        cost::{
            FlexOverhead, Usage, active_vs_flex, network_volume_per_month, per_month, pod_vs_flex,
            workload_cost,
        },
        prices::PriceCatalogue,
    },
};

/// Flags of `cost`.
#[derive(Debug, Args)]
pub struct CostArgs {
    /// Manifest files or folders.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Which way of running the workload's first GPU type is cheaper, and from when.
pub fn advice(spec: &GpuWorkloadSpec, prices: &PriceCatalogue) -> String {
    let Some(gpu) = spec.gpu.types.first() else {
        return "-".to_string();
    };
    let pod = prices.pod_per_hour(gpu, false).ok();
    let pool = prices.pool_of(gpu).ok();
    let none = FlexOverhead::default();
    let pod_flex = match (pod, pool) {
        (Some(pod), Some(pool)) => Some(pod_vs_flex(pod, pool.flex_per_second, none)),
        _ => None,
    };
    let active_flex = pool.and_then(|p| {
        p.active_per_second
            .map(|a| active_vs_flex(a, p.flex_per_second, none))
    });
    let hours = |b: crate::engine::cost::BreakEven| {
        if b.within_a_day() {
            format!("{} busy h/day", b.rounded())
        } else {
            "never within a day".to_string()
        }
    };
    let active = spec
        .serverless
        .as_ref()
        .is_some_and(|s| s.worker_class == WorkerClass::Active);
    match (spec.workload_type, pod_flex, active_flex) {
        (WorkloadType::Pod, Some(b), _) => format!("flex workers are cheaper below {}", hours(b)),
        (WorkloadType::Pod, None, _) => "no serverless price to compare".to_string(),
        (_, Some(b), Some(a)) if active => format!(
            "flex is cheaper than each active worker below {}; a Pod wins above {}",
            hours(a),
            hours(b)
        ),
        (_, Some(b), Some(a)) => format!(
            "a Pod wins above {}; active workers above {}",
            hours(b),
            hours(a)
        ),
        (_, Some(b), None) => format!("a Pod wins above {}", hours(b)),
        _ => "no pod price to compare".to_string(),
    }
}

pub(super) fn run(args: &CostArgs) -> Result<ExitCode, CliError> {
    let ws = workspace::load(&args.paths)?;
    let prices = PriceCatalogue::builtin();
    let mut rows = Vec::new();
    let (mut expected_total, mut worst_total) = (Decimal::ZERO, Decimal::ZERO);
    for w in &ws.workloads {
        let name = format!("{}/{}", w.namespace().unwrap_or_default(), w.name_any());
        let (expected, worst) = match workload_cost(&w.spec, &prices, Usage::default()) {
            Ok(c) => (Some(c.expected_per_hour), Some(c.worst_case_per_hour)),
            Err(e) => {
                eprintln!("{name}: {e}");
                (None, None)
            }
        };
        expected_total += expected.unwrap_or_default();
        worst_total += worst.unwrap_or_default();
        rows.push((
            "GpuWorkload",
            name,
            format!("{:?}", w.spec.workload_type),
            expected,
            worst,
            advice(&w.spec, &prices),
        ));
    }
    for v in &ws.volumes {
        let hourly = network_volume_per_month(v.spec.size_gb, &prices.storage) / Decimal::from(720);
        expected_total += hourly;
        worst_total += hourly;
        rows.push((
            "NetworkVolume",
            format!("{}/{}", v.namespace().unwrap_or_default(), v.name_any()),
            format!("{} GB", v.spec.size_gb),
            Some(hourly),
            Some(hourly),
            "-".to_string(),
        ));
    }
    let money = |d: Option<Decimal>| d.map_or("-".to_string(), |d| format!("{:.2}", d.round_dp(2)));
    match args.output {
        OutputFormat::Table => {
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED).set_header([
                "Kind",
                "Name",
                "Type",
                "Expected $/h",
                "Worst $/h",
                "Expected $/month",
                "Worst $/month",
                "Advice",
            ]);
            for (kind, name, kind_of, expected, worst, advice) in &rows {
                table.add_row(vec![
                    kind.to_string(),
                    name.clone(),
                    kind_of.clone(),
                    money(*expected),
                    money(*worst),
                    money(expected.map(per_month)),
                    money(worst.map(per_month)),
                    advice.clone(),
                ]);
            }
            table.add_row(vec![
                "Total".to_string(),
                String::new(),
                String::new(),
                money(Some(expected_total)),
                money(Some(worst_total)),
                money(Some(per_month(expected_total))),
                money(Some(per_month(worst_total))),
                String::new(),
            ]);
            println!("{table}");
            println!(
                "Expected: always-on parts only (flex workers idle). Worst case: every worker busy, the dearest GPU type. A month is 30 days."
            );
        }
        format => {
            let items: Vec<_> = rows
                .iter()
                .map(|(kind, name, kind_of, expected, worst, advice)| {
                    json!({"kind": kind, "name": name, "type": kind_of,
                           "expectedPerHour": money(*expected), "worstCasePerHour": money(*worst),
                           "expectedPerMonth": money(expected.map(per_month)), "worstCasePerMonth": money(worst.map(per_month)),
                           "advice": advice})
                })
                .collect();
            let total = json!({"expectedPerHour": money(Some(expected_total)), "worstCasePerHour": money(Some(worst_total)),
                               "expectedPerMonth": money(Some(per_month(expected_total))), "worstCasePerMonth": money(Some(per_month(worst_total)))});
            print!(
                "{}",
                render(&json!({"items": items, "total": total}), format)?
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
