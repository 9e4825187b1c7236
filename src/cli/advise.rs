//! `runpod-operator advise`: how busy each declared Serverless workload really was, from its
//! endpoint's hourly billing over the last days (RunPod keeps it), what it cost, and what it
//! would have cost as flex workers, `k` active + flex, or Pods (see
//! [`crate::engine::advice`]), with the monthly saving.
//!
//! One billing read per endpoint. The hourly bill gives the worker-seconds flex workers ran in
//! each hour (cold starts and idle tails included, as billed); within an hour the busy workers
//! are taken as even, so bursts shorter than an hour are averaged. Pods are not measured yet
//! (that needs the pod's GPU utilisation over time), and are listed as such.

use std::process::ExitCode;

use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use k8s_openapi::jiff::Timestamp;
use rust_decimal::{
    Decimal,
    prelude::{FromPrimitive, ToPrimitive},
};
use serde::Serialize;
use serde_json::Value;

use super::{CliError, OutputFormat, ops::ManifestArgs, render, workspace};
use crate::{
    api::{GpuWorkload, WorkloadType},
    engine::{
        advice::{
            Advice, AutoDecision, Concurrency, Config, advise, flex_seconds_of, serverless_rates,
        },
        prices::PriceCatalogue,
    },
    reconcile::plan_workspace,
    runpod::{BillingKind, types::BillingQuery},
};

/// Flags of `advise`.
#[derive(Debug, Args)]
pub struct AdviseArgs {
    /// Manifests and RunPod.
    #[command(flatten)]
    pub common: ManifestArgs,
    /// Days of billing to read: the measured window (1-31).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=31))]
    pub days: u32,
}

/// What `advise` says about one workload.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `namespace/name`.
    pub workload: String,
    /// The endpoint measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
    /// Why there is no advice, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_advice: Option<String>,
    /// The advice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<Advice>,
    /// Mean busy workers per hour of the day (UTC), over the window.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub busy_by_hour_of_day: Vec<f64>,
    /// Busy workers above which an active worker pays off (active ÷ flex rate), when priced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_pays_off_above: Option<f64>,
}

impl Report {
    fn none(workload: String, endpoint_id: Option<String>, why: impl Into<String>) -> Self {
        Self {
            workload,
            endpoint_id,
            no_advice: Some(why.into()),
            advice: None,
            busy_by_hour_of_day: Vec::new(),
            active_pays_off_above: None,
        }
    }
}

pub(super) fn run(args: &AdviseArgs) -> Result<ExitCode, CliError> {
    let ws = workspace::load(&args.common.paths)?;
    workspace::require_secrets(&ws)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| CliError::Io {
            what: "the async runtime".into(),
            source,
        })?;
    runtime.block_on(async {
        let conn = super::connect::connect(&args.common.runpod, &ws.account).await?;
        let prices = conn.prices().await;
        conn.inventory.refresh().await.map_err(CliError::RunPod)?;
        // Lists without ids or names: an endpoint may not be found, and is then reported as
        // not there yet; say why on stderr.
        super::ops::warn_identity_gap(&conn.inventory);
        let snapshot = conn.inventory.snapshot();
        let items = plan_workspace(&ws, &snapshot, &prices, Timestamp::now());
        let mut reports = Vec::new();
        for w in &ws.workloads {
            let key = w_key(w);
            let id = items
                .iter()
                .find(|i| i.kind == "GpuWorkload" && i.key == key)
                .and_then(|i| i.runpod_id.clone());
            if w.spec.workload_type == WorkloadType::Pod {
                reports.push(Report::none(
                    key,
                    id,
                    "a Pod: its GPU utilisation is not measured yet",
                ));
                continue;
            }
            let Some(id) = id else {
                reports.push(Report::none(
                    key,
                    None,
                    "no endpoint on RunPod yet: apply it first",
                ));
                continue;
            };
            // The last `days` whole hours and the current one, on RunPod's clock (the
            // window comes back in the answer).
            let query = BillingQuery {
                bucket_size: Some("hour".into()),
                id: Some(id.clone()),
                last_n: Some(args.days * 24 + 1),
                ..BillingQuery::default()
            };
            let bill = conn
                .inventory
                .client()
                .billing(BillingKind::Serverless, &query)
                .await
                .map_err(CliError::RunPod)?;
            // The bill holds what RunPod ran: read it at the endpoint's always-on workers.
            let active = snapshot
                .endpoint(&id)
                .and_then(|e| e.workers.min)
                .unwrap_or(0);
            let advice = match bill.window() {
                Some((start, end)) => report(
                    w,
                    key.clone(),
                    id.clone(),
                    active,
                    &bill.records,
                    start,
                    end,
                    &prices,
                ),
                None => Err(
                    "RunPod's billing answer says no window (metadata.query.startTime and endTime)"
                        .to_string(),
                ),
            };
            reports.push(advice.unwrap_or_else(|why| Report::none(key, Some(id), why)));
        }
        match args.common.output {
            OutputFormat::Table => print!("{}", table(&reports)),
            f => print!("{}", render(&reports, f)?),
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn w_key(w: &GpuWorkload) -> String {
    format!(
        "{}/{}",
        w.metadata.namespace.as_deref().unwrap_or("default"),
        w.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `Auto` in the CLI, as the controller does it: for each workload with `workerClass: Auto`
/// or `type: Auto` that runs as an endpoint (and is not mid-switch), the endpoint's hourly
/// bill over the spec's window, and what `Auto` does with it (see
/// [`crate::engine::advice::auto_decide`]). One billing read per such workload; a workload
/// whose bill cannot be read is left out (it keeps what RunPod runs), and said on stderr.
pub async fn measure_auto(
    ws: &crate::reconcile::Workspace,
    inventory: &crate::reconcile::inventory::Inventory,
    prices: &PriceCatalogue,
) -> std::collections::BTreeMap<String, AutoDecision> {
    use crate::{api::WorkerClass, engine::identity::Owner};
    let snapshot = inventory.snapshot();
    let mut chosen = std::collections::BTreeMap::new();
    for w in &ws.workloads {
        let type_auto = w.spec.workload_type == WorkloadType::Auto;
        let class_auto = w
            .spec
            .serverless
            .as_ref()
            .is_some_and(|s| s.worker_class == WorkerClass::Auto);
        if !(type_auto || class_auto) {
            continue;
        }
        let owner = Owner::of(
            w.metadata.namespace.as_deref(),
            w.metadata.name.as_deref().unwrap_or_default(),
            w.metadata.uid.as_deref(),
        );
        let name = owner.runpod_name();
        // A pod of a `type: Auto` workload: it runs as a Pod (or is becoming one).
        if type_auto && snapshot.pod_of(None, &name).is_some() {
            continue;
        }
        let Some(endpoint) = snapshot.endpoint_of(None, &name) else {
            continue;
        };
        let Ok(rates) = serverless_rates(&w.spec, prices) else {
            continue;
        };
        let query = BillingQuery {
            bucket_size: Some("hour".into()),
            id: Some(endpoint.id.clone()),
            last_n: Some(w.spec.window_hours() + 1),
            ..BillingQuery::default()
        };
        let measured = match inventory
            .client()
            .billing(BillingKind::Serverless, &query)
            .await
        {
            Ok(bill) => bill
                .window()
                .ok_or_else(|| "the answer says no window".to_string())
                .and_then(|(start, end)| hourly(&bill.records, start, end)),
            Err(e) => Err(e.to_string()),
        };
        match measured {
            Ok((billed, _)) => {
                let side = type_auto.then_some(WorkloadType::Serverless);
                let active = endpoint.workers.min.unwrap_or(0);
                let (_, decision) = crate::engine::advice::auto_decide(
                    &w.spec, side, active, &billed, None, &rates,
                );
                if let Some(why) = &decision.held {
                    eprintln!("{}: {why}", owner.key());
                }
                chosen.insert(owner.key(), decision);
            }
            Err(why) => eprintln!(
                "{}: Auto keeps what runs: the billing of endpoint {} could not be read ({why})",
                owner.key(),
                endpoint.id
            ),
        }
    }
    chosen
}

/// The whole hours of an hourly bill (USD each, oldest first) from the first billed hour, and
/// that hour's offset in the window. Every record must be readable: an answer with one that
/// is not is refused whole (nothing is measured on half a bill).
fn hourly(
    records: &[Value],
    start: Timestamp,
    end: Timestamp,
) -> Result<(Vec<Decimal>, usize), String> {
    // Whole hours only: the last bucket of the window is the hour in progress.
    let span = (end.as_second() - start.as_second()) / 3600;
    if !(2..=24 * 32).contains(&span) {
        return Err(format!(
            "RunPod's billing window {start} to {end} is not what was asked for"
        ));
    }
    let hours = usize::try_from(span - 1).unwrap_or(0);
    let mut billed = vec![Decimal::ZERO; hours];
    let mut first_billed: Option<usize> = None;
    for (n, record) in records.iter().enumerate() {
        let at: Timestamp = record["startTime"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("billing record {n}: startTime is not an RFC 3339 time"))?;
        let amount = record["gpuAmount"]
            .as_f64()
            .filter(|a| a.is_finite() && *a >= 0.0)
            .and_then(Decimal::from_f64)
            .ok_or_else(|| format!("billing record {n}: gpuAmount is not an amount of USD"))?;
        let offset = at.as_second() - start.as_second();
        if offset < 0 {
            continue;
        }
        let index = usize::try_from(offset / 3600).unwrap_or(usize::MAX);
        if let Some(slot) = billed.get_mut(index) {
            *slot += amount;
            first_billed = Some(first_billed.map_or(index, |f| f.min(index)));
        }
    }
    // The window covered starts at the first billed hour: before it the endpoint may not
    // have existed, and idle hours it never had would make it look less busy than it is.
    let Some(first) = first_billed else {
        return Err(format!(
            "nothing billed in the {} hours measured: no usage to measure",
            hours
        ));
    };
    Ok((billed.split_off(first), first))
}

/// The advice for one endpoint from its hourly billing records, read at `active`, the
/// always-on workers the endpoint runs (RunPod's `workers.min`: what the bill holds, whatever
/// the spec says). Pure, for the tests.
#[allow(clippy::too_many_arguments)]
pub fn report(
    w: &GpuWorkload,
    key: String,
    endpoint_id: String,
    active: u32,
    records: &[Value],
    start: Timestamp,
    end: Timestamp,
    prices: &PriceCatalogue,
) -> Result<Report, String> {
    let max_workers = w
        .spec
        .serverless
        .as_ref()
        .map_or(1, |s| s.max_workers.max(1));
    let rates = serverless_rates(&w.spec, prices)?;
    let (billed, first) = hourly(records, start, end)?;
    let flex_seconds = flex_seconds_of(&billed, active, &rates);
    let usage = Concurrency::from_hours(active, &flex_seconds);
    let current = Config::Serverless { active };
    // A Pod is an alternative only where the workload could run as one: the operator's
    // `Auto` rules (ports, volumes) decide that when it acts; here, any GPU with a Pod price.
    let advice = advise(current, &usage, &rates, max_workers, true).map_err(|e| e.to_string())?;
    let mut by_hour = [(0f64, 0u32); 24];
    for (i, seconds) in flex_seconds.iter().enumerate() {
        let hour_of_day = ((start.as_second() / 3600) as usize + first + i) % 24;
        let busy = f64::from(active) + seconds.to_f64().unwrap_or(0.0) / 3600.0;
        by_hour[hour_of_day].0 += busy;
        by_hour[hour_of_day].1 += 1;
    }
    Ok(Report {
        workload: key,
        endpoint_id: Some(endpoint_id),
        no_advice: None,
        advice: Some(advice),
        busy_by_hour_of_day: by_hour
            .iter()
            .map(|(sum, n)| if *n == 0 { 0.0 } else { sum / f64::from(*n) })
            .map(|v| (v * 100.0).round() / 100.0)
            .collect(),
        active_pays_off_above: rates
            .active_per_second
            .and_then(|a| a.checked_div(rates.flex_per_second)?.to_f64())
            .map(|v| (v * 100.0).round() / 100.0),
    })
}

/// The table, then one picture per workload: busy workers by hour of the day against the
/// level above which an active worker pays off.
pub fn table(reports: &[Report]) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header([
        "WORKLOAD",
        "MEASURED",
        "BUSY H/DAY",
        "BUSY WORKERS p50/p95/max",
        "NOW $/MONTH",
        "RECOMMENDED",
        "$/MONTH",
        "SAVING $/MONTH",
    ]);
    for r in reports {
        match &r.advice {
            Some(a) => {
                t.add_row([
                    r.workload.clone(),
                    format!("{} h", a.window_hours),
                    a.busy_hours_per_day.to_string(),
                    format!("{}/{}/{}", a.p50, a.p95, a.max),
                    a.current.per_month.to_string(),
                    if a.best.config == a.current.config {
                        "keep as is".to_string()
                    } else {
                        a.best.config.to_string()
                    },
                    a.best.per_month.to_string(),
                    a.saving_per_month.to_string(),
                ]);
            }
            None => {
                t.add_row([
                    r.workload.clone(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    r.no_advice.clone().unwrap_or_default(),
                    "-".into(),
                    "-".into(),
                ]);
            }
        }
    }
    let mut out = format!("{t}\n");
    for r in reports.iter().filter(|r| r.advice.is_some()) {
        out.push_str(&picture(r));
    }
    out
}

/// Mean busy workers per hour of the day as bars, with `|` where an active worker pays off.
fn picture(r: &Report) -> String {
    const WIDTH: f64 = 40.0;
    let top = r
        .busy_by_hour_of_day
        .iter()
        .copied()
        .chain(r.active_pays_off_above)
        .fold(1.0f64, f64::max);
    let mark = r
        .active_pays_off_above
        .map(|m| (m / top * WIDTH).round() as usize);
    let mut out = format!(
        "\n{}: mean busy workers by hour of the day (UTC){}\n",
        r.workload,
        r.active_pays_off_above.map_or(String::new(), |m| format!(
            "; | = {m} busy workers, above which an active worker pays off"
        ))
    );
    for (hour, busy) in r.busy_by_hour_of_day.iter().enumerate() {
        let len = (busy / top * WIDTH).round() as usize;
        let mut bar: Vec<char> = std::iter::repeat_n('█', len).collect();
        if let Some(m) = mark {
            while bar.len() <= m {
                bar.push(' ');
            }
            bar[m] = '|';
        }
        let bar: String = bar.into_iter().collect();
        out.push_str(&format!("  {hour:02}h {bar} {busy:.2}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn workload() -> GpuWorkload {
        serde_json::from_value(json!({
            "apiVersion": "runpod-operator.dev/v1alpha1", "kind": "GpuWorkload",
            "metadata": {"name": "e", "namespace": "ml"},
            "spec": {"type": "Serverless", "image": "i",
                     "gpu": {"types": ["NVIDIA A100-SXM4-80GB"]},
                     "serverless": {"maxWorkers": 3},
                     "spendingCap": {"usdPerHour": "9"}}
        }))
        .unwrap()
    }

    fn at(hours: i64) -> Timestamp {
        Timestamp::from_second(1_767_225_600 + hours * 3600).unwrap()
    }

    #[test]
    fn the_bill_is_read_at_the_active_workers_the_endpoint_runs_not_the_spec() {
        let prices = PriceCatalogue::builtin();
        // One flex A100 worker busy every hour, on an endpoint that runs no active worker,
        // whatever a spec says: 24 busy hours a day either way.
        let records: Vec<Value> = (0..48)
            .map(|h| json!({"startTime": at(h).to_string(), "gpuAmount": 2.736}))
            .collect();
        let mut active_spec = workload();
        if let Some(s) = active_spec.spec.serverless.as_mut() {
            s.worker_class = crate::api::WorkerClass::Active;
            s.active_workers = 1;
        }
        for w in [workload(), active_spec] {
            let advice = super::report(
                &w,
                "ml/e".into(),
                "ep".into(),
                0,
                &records,
                at(0),
                at(49),
                &prices,
            )
            .unwrap()
            .advice
            .unwrap();
            assert_eq!(advice.busy_hours_per_day, Decimal::from(24));
            assert_eq!(advice.current.config, Config::Serverless { active: 0 });
        }
    }

    #[test]
    fn a_billing_record_that_cannot_be_read_is_named_and_nothing_is_advised() {
        let prices = PriceCatalogue::builtin();
        let report = |records: Vec<Value>| {
            super::report(
                &workload(),
                "ml/e".into(),
                "ep".into(),
                0,
                &records,
                at(0),
                at(49),
                &prices,
            )
        };
        for (record, field) in [
            (
                json!({"startTime": "yesterday", "gpuAmount": 1.0}),
                "startTime",
            ),
            (
                json!({"startTime": "2026-01-01T00:00:00Z", "gpuAmount": -1.0}),
                "gpuAmount",
            ),
            (
                json!({"startTime": "2026-01-01T00:00:00Z", "gpuAmount": "1"}),
                "gpuAmount",
            ),
            (json!({"startTime": "2026-01-01T00:00:00Z"}), "gpuAmount"),
        ] {
            let error = report(vec![record]).unwrap_err();
            assert!(error.contains(field), "{error}");
            assert!(error.starts_with("billing record 0"), "{error}");
        }
        assert!(report(Vec::new()).unwrap_err().contains("nothing billed"));
        // An hour of one flex A100 worker busy all hour, every hour: 2.736 USD an hour.
        let records: Vec<Value> = (0..48)
            .map(|h| json!({"startTime": at(h).to_string(), "gpuAmount": 2.736}))
            .collect();
        let advice = report(records).unwrap().advice.unwrap();
        assert_eq!(advice.window_hours, Decimal::from(48));
        assert_eq!(advice.busy_hours_per_day, Decimal::from(24));
        assert_eq!(advice.best.config, Config::Pod { count: 1 });
        // A window RunPod did not answer as asked is refused, not guessed at.
        let error = super::report(
            &workload(),
            "ml/e".into(),
            "ep".into(),
            0,
            &[],
            at(0),
            at(0),
            &prices,
        )
        .unwrap_err();
        assert!(error.contains("not what was asked for"), "{error}");
    }
}
