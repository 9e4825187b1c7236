//! The GpuWorkload reconciler.
//!
//! Steps: finalizer first; `Paused` stops here; the account and referenced Secrets are read;
//! the desired state is checked before RunPod is touched (a bad spec makes no RunPod call);
//! the account inventory is refreshed if due; the engine plans; the executor runs the first
//! write (none for `ObserveOnly`); the status is written by server-side apply; Events mark
//! the edges. Cleanup on deletion never depends on the spec being valid and treats "already
//! gone" as done.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{Api, ResourceExt, runtime::controller::Action};
use rust_decimal::Decimal;

use super::{Context, Error, account_name, apply_status, finalized};
use crate::{
    api::{
        CONDITION_COST_ADVICE, CONDITION_INSUFFICIENT_CREDIT, CONDITION_READY,
        CONDITION_RECONCILING, CONDITION_SPEND_CAP_EXCEEDED, DeletionPolicy, GpuWorkload,
        GpuWorkloadStatus, ManagementPolicy, MeasuredFrom, Recommendation, RunPodAccount,
        Utilisation, WorkerClass, WorkloadType,
    },
    engine::{
        advice::{Advice, advice_status, auto_decide, auto_decide_pod, serverless_rates},
        identity::Owner,
        plan::{Action as Step, plan_delete},
        prices::PriceCatalogue,
        status::{Observation, workload_status},
    },
    reconcile::{
        AccountView, Budget, Item, Workspace, executor::Outcome, executor::execute,
        inventory::Snapshot, worst_case,
    },
    runpod::ErrorClass,
};

/// The RunPod id of a workload whose object exists and is not Ready yet: it waits on RunPod.
fn waiting_on(w: &GpuWorkload) -> Option<&str> {
    let status = w.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == CONDITION_READY && c.status == "True");
    (!ready).then_some(status.runpod_id.as_deref()).flatten()
}

fn owner(w: &GpuWorkload) -> Owner {
    Owner::of(w.namespace().as_deref(), &w.name_any(), w.uid().as_deref())
}

/// The reconcile entry: cross-cutting work only (timer, finalizer dispatch).
pub async fn reconcile(workload: Arc<GpuWorkload>, ctx: Arc<Context>) -> Result<Action, Error> {
    if let Some(wait) = ctx.wait_for_stores() {
        return Ok(wait);
    }
    finalized(
        "GpuWorkload",
        workload,
        &ctx,
        |o| apply(o, &ctx),
        |o| cleanup(o, &ctx),
    )
    .await
}

/// What to do after a failure: a bad spec or a missing account waits for a change (with a
/// slow look again); transient failures back off per object.
pub fn error_policy(workload: Arc<GpuWorkload>, error: &Error, ctx: Arc<Context>) -> Action {
    if let Some(action) = super::quick_retry("GpuWorkload", &owner(&workload).key(), error, &ctx) {
        return action;
    }
    tracing::warn!(workload = %owner(&workload).key(), error = %error, "reconcile failed");
    ctx.metrics.error("GpuWorkload", error.metric_label());
    if error.is_transient() {
        Action::requeue(ctx.backoff_for(&owner(&workload).key()))
    } else {
        Action::requeue(Duration::from_secs(300))
    }
}

/// The Secrets a workload reads (its env, its registry login), by name -> key -> value.
/// Missing ones are left out: the engine reports what it waits for, or that the registry
/// Secret is missing.
async fn env_secrets(
    w: &GpuWorkload,
    ctx: &Context,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, Error> {
    let namespace = w.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut out = BTreeMap::new();
    let names: std::collections::BTreeSet<&str> = w
        .spec
        .env
        .iter()
        .filter_map(|e| {
            e.value_from
                .as_ref()
                .map(|f| f.secret_key_ref.name.as_str())
        })
        .chain(
            w.spec
                .registry_credentials
                .as_ref()
                .map(|r| r.name.as_str()),
        )
        .collect();
    for name in names {
        let secret = api.get_opt(name).await.map_err(|source| Error::Kube {
            action: format!("read Secret {namespace}/{name}"),
            source,
        })?;
        if let Some(secret) = secret {
            let data = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            out.insert(name.to_string(), data);
        }
    }
    Ok(out)
}

/// What one workload's plan reads of its account: the settings, the NetworkVolumes of its
/// namespace (its references) and the Secrets it reads. The other workloads are not copied:
/// the account cap and the credit policy read the account's totals.
fn workspace(
    ctx: &Context,
    account: &RunPodAccount,
    namespace: &str,
    secrets: BTreeMap<String, BTreeMap<String, String>>,
) -> Workspace {
    let name = account.name_any();
    Workspace {
        account: account.spec.clone(),
        workloads: Vec::new(),
        volumes: ctx
            .volumes
            .state()
            .iter()
            .filter(|v| {
                v.metadata.namespace.as_deref().unwrap_or_default() == namespace
                    && account_name(v.spec.account_ref.as_ref()) == name
            })
            .map(|v| (**v).clone())
            .collect(),
        secrets: BTreeMap::from([(namespace.to_string(), secrets)]),
        auto: Default::default(),
    }
}

/// A GPU type as a column shows it: `NVIDIA A100-SXM4-80GB` -> `A100-SXM4-80GB`.
fn short_gpu(id: &str) -> &str {
    id.strip_prefix("NVIDIA ").unwrap_or(id)
}

/// The GPU column of `kubectl get gpuworkloads`: the count and the type RunPod placed the pod
/// on (`2x A100-SXM4-80GB`); before that, and for an endpoint, the first choice and how many
/// more types are allowed (`1x L40S +2`).
fn gpu_summary(w: &GpuWorkload, placed: Option<&crate::runpod::types::PodGpu>) -> Option<String> {
    if let Some(gpu) = placed {
        return Some(format!("{}x {}", gpu.count, short_gpu(&gpu.id)));
    }
    let gpu = &w.spec.gpu;
    let first = short_gpu(gpu.types.first()?);
    let more = gpu.types.len() - 1;
    Some(if more == 0 {
        format!("{}x {first}", gpu.count)
    } else {
        format!("{}x {first} +{more}", gpu.count)
    })
}

fn stalled(w: &GpuWorkload) -> bool {
    w.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == crate::api::CONDITION_STALLED && c.status == "True")
    })
}

/// What the measured use says for one workload: the advice (with the end of the last hour
/// measured), for `workerClass: Auto` the active workers to run, and for `type: Auto` the side
/// to run as.
#[derive(Default)]
struct Measurement {
    advice: Option<(Advice, Timestamp)>,
    auto_active: Option<u32>,
    auto_type: Option<WorkloadType>,
    /// Why `Auto` does not take the cheaper way the advice names, if it does not.
    held: Option<String>,
    /// Where the advice's figures come from.
    from: Option<MeasuredFrom>,
    /// A `type: Auto` pod's bill, when it priced the Pod side.
    bill: Option<super::usage::PodRate>,
}

/// The side a `type: Auto` workload runs as now: the one the status records, else the one
/// RunPod runs (a pod of the workload: Pod), else Serverless.
fn current_side(w: &GpuWorkload, snapshot: &Snapshot) -> WorkloadType {
    let status = w.status.as_ref();
    status.and_then(|s| s.runs_as).unwrap_or_else(|| {
        let known = status.and_then(|s| s.runpod_id.as_deref());
        if snapshot.pod_of(known, &owner(w).runpod_name()).is_some() {
            WorkloadType::Pod
        } else {
            WorkloadType::Serverless
        }
    })
}

/// The advice for a serverless workload from its endpoint's measured billing over the spec's
/// window, and what `Auto` does with it. Unmeasured, what RunPod runs now stays (a restart
/// changes nothing). Measured over the whole window (`spec.measurement.windowDays`),
/// `workerClass: Auto` runs the best count of active workers and `type: Auto` moves to one
/// Pod, each only when cheaper by more than the spec's margin
/// (`spec.measurement.switchMarginPercent`). A `type: Auto` workload that runs as a Pod is
/// measured from its pod's GPUs instead ([`measure_pod`]).
fn measure(
    w: &GpuWorkload,
    usage: &super::usage::Usage,
    snapshot: &Snapshot,
    prices: &PriceCatalogue,
) -> Measurement {
    let type_auto = w.spec.workload_type == WorkloadType::Auto;
    let side = type_auto.then(|| current_side(w, snapshot));
    let Some(settings) = w.spec.serverless.as_ref() else {
        return Measurement::default();
    };
    if side == Some(WorkloadType::Pod) {
        return measure_pod(w, usage, snapshot, prices);
    }
    let auto = settings.worker_class == WorkerClass::Auto;
    let id = w.status.as_ref().and_then(|s| s.runpod_id.as_deref());
    let running = id
        .and_then(|id| snapshot.endpoint(id))
        .map(|e| e.workers.min.unwrap_or(0));
    let active = running.unwrap_or(if auto { 0 } else { settings.active_workers });
    // Unmeasured: the endpoint RunPod runs keeps its active workers (found by the planner's
    // own rule when the status has no id yet).
    let keep = Measurement {
        advice: None,
        auto_active: running.filter(|_| auto),
        auto_type: side,
        held: None,
        from: None,
        bill: None,
    };
    let (Some(id), Some(_)) = (id, running) else {
        return keep;
    };
    let Some(measured) = usage.measured(id, w.spec.window_hours()) else {
        return keep;
    };
    let Ok(rates) = serverless_rates(&w.spec, prices) else {
        return keep;
    };
    let sampled = usage.health_sampled(id, w.spec.window_hours(), measured.until);
    let (advice, decision) = auto_decide(
        &w.spec,
        side,
        active,
        &measured.billed,
        sampled.as_ref(),
        &rates,
    );
    Measurement {
        advice: advice.map(|a| (a, measured.until)),
        auto_active: decision.active,
        auto_type: decision.side,
        held: decision.held,
        from: Some(MeasuredFrom::Billing),
        bill: None,
    }
}

/// [`measure`] for a `type: Auto` workload that runs as a Pod: a sample of the pod's GPUs now,
/// and over a whole window of sampled hours, whether a serverless way beats the Pod by the
/// margin (then it moves back, make-before-break).
fn measure_pod(
    w: &GpuWorkload,
    usage: &super::usage::Usage,
    snapshot: &Snapshot,
    prices: &PriceCatalogue,
) -> Measurement {
    let stay = Measurement {
        auto_type: Some(WorkloadType::Pod),
        ..Measurement::default()
    };
    let known = w.status.as_ref().and_then(|s| s.runpod_id.as_deref());
    let Some(pod) = snapshot.pod_of(known, &owner(w).runpod_name()) else {
        return stay;
    };
    seed_from_status(w, usage, pod);
    usage.sample_pod(pod);
    let (Some(busy), Ok(mut rates)) = (
        usage.pod_measured(&pod.id, w.spec.window_hours()),
        serverless_rates(&w.spec, prices),
    ) else {
        return stay;
    };
    // What the pod is billed (its cloud, its GPU type, a price changed since the catalogue was
    // read) prices the Pod side, once a whole hour of it is billed.
    let bill = usage.pod_bill(&pod.id);
    if let Some(bill) = bill {
        rates.pod_per_hour = Some(bill.per_hour / Decimal::from(rates.gpus.max(1)));
    }
    let (advice, decision) = auto_decide_pod(&w.spec, &busy, &rates);
    // The end of the last whole hour measured: the start of the pod's current hour of uptime,
    // to five minutes (so that it moves hourly, not with every sample's latency).
    let into_hour = pod.runtime.as_ref().and_then(|r| r.uptime).unwrap_or(0) % 3600;
    let start = Timestamp::now().as_second() - i64::try_from(into_hour).unwrap_or(0);
    let until = Timestamp::from_second((start + 150).div_euclid(300) * 300)
        .unwrap_or_else(|_| Timestamp::now());
    Measurement {
        advice: advice.map(|a| (a, until)),
        auto_active: decision.active,
        auto_type: decision.side,
        held: decision.held,
        from: Some(MeasuredFrom::PodGpu),
        bill,
    }
}

/// How old the measurement in a status may be and still seed a restarted controller's pod
/// samples (a restart that took longer measures again).
const SEED_WITHIN_SECONDS: i64 = 3 * 3600;

/// After a restart, the pod's samples start from what the status says was measured (RunPod
/// keeps no history of a pod's GPU use): the window's hours and busy hours a day, when the
/// status measured this pod, recently. Status fields that do not read are ignored (then the
/// pod is measured again).
fn seed_from_status(w: &GpuWorkload, usage: &super::usage::Usage, pod: &crate::runpod::types::Pod) {
    let Some(status) = w.status.as_ref() else {
        return;
    };
    let Some(u) = status.utilisation.as_ref().filter(|u| {
        u.measured_from == Some(MeasuredFrom::PodGpu)
            && status.runs_as == Some(WorkloadType::Pod)
            && status.runpod_id.as_deref() == Some(&pod.id)
    }) else {
        return;
    };
    let recent = u
        .measured_until
        .parse::<Timestamp>()
        .is_ok_and(|t| (Timestamp::now().as_second() - t.as_second()).abs() <= SEED_WITHIN_SECONDS);
    let hours = u.window_hours.parse::<Decimal>().ok().and_then(|h| {
        use rust_decimal::prelude::ToPrimitive;
        h.trunc().to_u32().filter(|h| *h <= w.spec.window_hours())
    });
    let busy = u
        .busy_hours_per_day
        .parse::<Decimal>()
        .ok()
        .filter(|b| (Decimal::ZERO..=Decimal::from(24)).contains(b));
    if let (true, Some(hours), Some(busy)) = (recent, hours, busy)
        && usage.seed_pod(pod, hours, busy)
    {
        tracing::info!(pod = %pod.id, hours, busy_hours_per_day = %busy, "pod samples seeded from the status after a restart");
    }
}

async fn write_status(
    w: &GpuWorkload,
    ctx: &Context,
    item: &Item,
    current_per_hour: Decimal,
    placed: Option<&crate::runpod::types::PodGpu>,
    measured: Option<(Utilisation, Recommendation)>,
    runs_as: Option<WorkloadType>,
) -> Result<GpuWorkloadStatus, Error> {
    let api: Api<GpuWorkload> =
        Api::namespaced(ctx.client.clone(), &w.namespace().unwrap_or_default());
    let seen = Observation {
        runpod_id: item.runpod_id.as_deref(),
        state: item.state.as_deref(),
        current_per_hour,
        worst_case_per_hour: item.worst_case_per_hour,
        drift: &item.drift,
        verdicts: &item.verdicts,
        actions: &item.actions,
        hash: &item.hash,
        delta_per_hour: item.delta_per_hour,
    };
    let mut status = workload_status(
        w.status.as_ref(),
        &seen,
        w.metadata.generation,
        Timestamp::now(),
    );
    status.gpu = gpu_summary(w, placed);
    if let Some((utilisation, recommendation)) = measured {
        status.utilisation = Some(utilisation);
        status.recommendation = Some(recommendation);
    } else if runs_as == Some(WorkloadType::Pod) {
        // A Pod with no whole hour sampled yet (just moved, or the controller restarted): the
        // last measurement stays as the evidence (its measuredUntil says how old it is).
        let previous = w.status.as_ref();
        status.utilisation = previous.and_then(|s| s.utilisation.clone());
        status.recommendation = previous.and_then(|s| s.recommendation.clone());
    }
    if runs_as.is_some() {
        status.runs_as = runs_as;
    }
    apply_status(&api, w, w.status.as_ref(), &status).await?;
    Ok(status)
}

async fn apply(w: Arc<GpuWorkload>, ctx: &Context) -> Result<Action, Error> {
    if w.spec.management_policy == ManagementPolicy::Paused {
        // Paused: no RunPod call and no write of any kind.
        return Ok(Action::await_change());
    }
    let key = owner(&w).key();
    let namespace = w.namespace().unwrap_or_default();
    let name = account_name(w.spec.account_ref.as_ref());
    let Some(account) = ctx.account(&name) else {
        return Err(Error::AccountMissing(name));
    };
    let secrets = env_secrets(&w, ctx).await?;
    let ws = workspace(ctx, &account, &namespace, secrets);

    // The spec first: a workload that cannot be built makes no RunPod call.
    let empty = Snapshot::default();
    let precheck =
        AccountView::with_total(&ws, &empty, &ctx.prices, Timestamp::now(), Decimal::ZERO)
            .plan_workload(&w, None);
    if precheck.verdicts.iter().any(|v| v.reason == "InvalidSpec") {
        let was_stalled = stalled(&w);
        write_status(&w, ctx, &precheck, Decimal::ZERO, None, None, None).await?;
        if !was_stalled {
            let message = precheck
                .reason()
                .map(|r| r.message.clone())
                .unwrap_or_default();
            ctx.event(&*w, true, "InvalidSpec", message).await;
        }
        return Ok(Action::await_change());
    }

    let runtime = ctx.runtimes.get(&ctx.client, &account).await?;
    if w.spec.registry_credentials.is_some() {
        runtime.inventory.want_registries();
    }
    let fresh = runtime.inventory.ensure_fresh().await;
    // Waiting on RunPod (provisioning, starting): read this workload's own object again, so
    // it turns Ready when RunPod says so, not on the next account-wide resync.
    let look = match (&fresh, waiting_on(&w)) {
        (Ok(()), Some(id)) => runtime.inventory.look(id).await,
        _ => Ok(()),
    };
    if let Err(e) = fresh.and(look) {
        if e.class() == ErrorClass::Unauthorized {
            ctx.runtimes.invalidate(&name);
        }
        return Err(e.into());
    }
    let prices = ctx.prices_of(&account, &runtime).await;
    let snapshot = runtime.inventory.snapshot();
    let now = Timestamp::now();
    // The other workloads and volumes of the account at their worst case, from the totals the
    // watches keep (not this workload's own recorded share, which may be one edit behind).
    let others_worst = ctx.account_totals(&name, |t| t.worst_per_hour_without(&key));
    let total_worst = others_worst + worst_case(&w, &prices);
    let view = AccountView::with_total(&ws, &snapshot, &prices, now, total_worst);
    // What other reconciles of the account approved and RunPod does not bill yet.
    let (pending, ledger) = runtime.inventory.pending(&key);
    // A `type: Auto` pod: its bill, read now and then, prices its side of the advice.
    if w.spec.workload_type == WorkloadType::Auto
        && current_side(&w, &snapshot) == WorkloadType::Pod
        && let Some(pod) = snapshot.pod_of(
            w.status.as_ref().and_then(|s| s.runpod_id.as_deref()),
            &owner(&w).runpod_name(),
        )
    {
        let pod = pod.id.clone();
        let every = super::usage::Usage::head_every(Duration::from_secs(u64::from(
            account.spec.resync_interval_seconds,
        )));
        runtime
            .usage
            .read_pod_bill(
                runtime.inventory.client(),
                &pod,
                w.spec.window_hours(),
                every,
            )
            .await;
    }
    let mut measurement = measure(&w, &runtime.usage, &snapshot, &prices);
    let mut budget = Budget {
        others_worst_per_hour: Some(others_worst),
        pending,
        auto_active: measurement.auto_active,
        auto_type: measurement.auto_type,
    };
    let mut item = view.plan_within(&w, None, &budget);
    // `type: Auto` chose the other side, and the money rules refuse it: the workload stays as
    // it is (serving), and the advice says why it did not move.
    let side_now =
        (w.spec.workload_type == WorkloadType::Auto).then(|| current_side(&w, &snapshot));
    let mut switch_refused = None;
    if measurement.auto_type != side_now
        && let Some(refusal) = spend_refused(&item)
    {
        switch_refused = Some(refusal);
        measurement.auto_type = side_now;
        budget.auto_type = side_now;
        item = view.plan_within(&w, None, &budget);
    }
    let victim = ctx
        .account_totals(&name, |t| view.credit_victims_ranked(t.ranking()))
        .contains(&key);
    if victim {
        item = view.plan_within(&w, Some(view.forced_reason(&w)), &budget);
    }

    // One write per pass. Spending is reserved in the account's ledger first, so two
    // reconciles cannot both spend the same dollars; one that lost the race plans again.
    let mut outcome = None;
    if let Some(step) = item.actions.iter().find(|a| a.writes()).cloned() {
        let spending = item
            .spend
            .as_ref()
            .filter(|s| s.approved && !step.saves_money());
        if let Some(spend) = spending
            && !runtime.inventory.reserve(
                &key,
                spend.worst_per_hour,
                spend.expected_per_hour,
                ledger,
            )
        {
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        let result = execute(&step, &runtime.inventory).await;
        if spending.is_some() {
            let may_have_spent = matches!(result, Outcome::Done(_) | Outcome::Unknown(_));
            runtime.inventory.settle(&key, may_have_spent);
        }
        tracing::info!(workload = %key, action = %step.describe(), outcome = %result.describe(), "applied");
        announce(&w, ctx, &step, &result, &item).await;
        outcome = Some((step, result));
        // Show what RunPod holds now.
        let snapshot = runtime.inventory.snapshot();
        let view = AccountView::with_total(&ws, &snapshot, &prices, now, total_worst);
        let after = view.plan_within(
            &w,
            None,
            &Budget {
                auto_active: measurement.auto_active,
                auto_type: measurement.auto_type,
                ..Budget::default().with_others(others_worst)
            },
        );
        item = Item {
            outcome: None,
            ..after
        };
    }

    let snapshot = runtime.inventory.snapshot();
    let current_per_hour = snapshot_cost(&snapshot, &item);
    let tracked = item.runpod_id.clone();
    let placed = tracked
        .as_deref()
        .and_then(|id| snapshot.pod(id))
        .and_then(|p| p.gpu.clone());
    // An endpoint's state: its workers up over its maximum, from its health (read at most once
    // per resync interval), which is also a sample of its use.
    if let Some(id) = tracked.as_deref()
        && let Some(max) = snapshot.endpoint(id).map(|e| e.workers.max.unwrap_or(0))
        && let Some((read_at, health)) = runtime.inventory.endpoint_health(id).await
    {
        let up = health.workers.idle + health.workers.running;
        item.state = Some(format!("{up}/{max} running"));
        runtime.usage.sample_health(id, read_at, &health, max);
    }
    let previous_ready = w
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == CONDITION_READY))
        .map(|c| c.status == "True");
    let measured = measurement.advice.as_ref().map(|(advice, until)| {
        let (mut utilisation, recommendation, mut verdict) =
            advice_status(advice, &until.to_string());
        utilisation.measured_from = measurement.from;
        if let Some(bill) = measurement.bill {
            verdict.message = format!(
                "{}; the pod is priced from its bill: {} USD/h over {} h",
                verdict.message,
                bill.per_hour.round_dp(4),
                bill.hours
            );
        }
        if let Some(why) = &switch_refused {
            verdict.message = format!("{}; type Auto did not switch: {why}", verdict.message);
        } else if let Some(why) = &measurement.held {
            verdict.message = format!("{}; {why}", verdict.message);
        }
        item.verdicts.push(verdict);
        (utilisation, recommendation)
    });
    let advised = measured.as_ref().map(|(_, r)| r.clone());
    let status = write_status(
        &w,
        ctx,
        &item,
        current_per_hour,
        placed.as_ref(),
        measured,
        measurement.auto_type,
    )
    .await?;
    // `type: Auto` changed side: said once, with the evidence.
    if let (Some(now), Some(before)) = (measurement.auto_type, side_now)
        && now != before
    {
        let evidence = measurement
            .advice
            .as_ref()
            .map(|(a, _)| {
                format!(
                    "measured {} h, busy {} h/day: {} costs {}/month instead of {}",
                    a.window_hours,
                    a.busy_hours_per_day,
                    a.best.config,
                    a.best.per_month,
                    a.current.per_month
                )
            })
            .unwrap_or_default();
        ctx.event(
            &*w,
            false,
            "AutoSwitch",
            format!(
                "type Auto: switching from {before:?} to {now:?} ({evidence}); the old side keeps serving until the new one is ready"
            ),
        )
        .await;
    }
    // The advice is announced when it changes to a new cheaper configuration.
    if let Some(advised) = &advised
        && advised.saving_per_month.0 > Decimal::ZERO
    {
        let before = w.status.as_ref().and_then(|s| s.recommendation.as_ref());
        if before.is_none_or(|b| b.configuration != advised.configuration) {
            let message = item
                .verdicts
                .iter()
                .find(|v| v.kind == CONDITION_COST_ADVICE)
                .map(|v| v.message.clone())
                .unwrap_or_default();
            ctx.event(&*w, false, "CostAdvice", message).await;
        }
    }
    ctx.metrics.workload_saving(
        &namespace,
        &w.name_any(),
        advised.map(|r| r.saving_per_month.0),
    );
    // A refusal is announced once, on its edge, not on every pass.
    for (kind, event) in [
        (CONDITION_SPEND_CAP_EXCEEDED, "SpendCapRefused"),
        (CONDITION_INSUFFICIENT_CREDIT, "CreditRefused"),
    ] {
        let refused_now = refused(&status.conditions, kind);
        let refused_before = w
            .status
            .as_ref()
            .is_some_and(|s| refused(&s.conditions, kind));
        if refused_now && !refused_before {
            let message = item.reason().map(|r| r.message.clone()).unwrap_or_default();
            ctx.event(&*w, true, event, message).await;
        }
    }
    let ready = item.ready();
    if previous_ready != Some(ready) && ready {
        ctx.event(&*w, false, "Ready", "RunPod matches the spec".to_string())
            .await;
    }
    ctx.metrics.workload(
        &namespace,
        &w.name_any(),
        current_per_hour,
        item.drift.len(),
    );
    ctx.metrics
        .workload_conditions(&namespace, &w.name_any(), |kind| {
            status
                .conditions
                .iter()
                .any(|c| c.type_ == kind && c.status == "True")
        });

    match outcome {
        Some((_, Outcome::Failed(e))) => Err(e.into()),
        Some(_) => Ok(Action::requeue(ctx.progress_interval)),
        // Something left to do, or RunPod still working on it (provisioning, starting):
        // look again soon, with a targeted read, not after the account's full resync.
        None if !item.actions.is_empty() || reconciling(&item) => {
            Ok(Action::requeue(ctx.progress_interval))
        }
        None => {
            ctx.reset_backoff(&key);
            Ok(Action::requeue(Duration::from_secs(u64::from(
                account.spec.resync_interval_seconds,
            ))))
        }
    }
}

/// Whether the plan says the workload is still converging.
fn reconciling(item: &Item) -> bool {
    item.verdicts
        .iter()
        .any(|v| v.kind == CONDITION_RECONCILING && v.status)
}

/// Whether a money rule refuses the workload by condition `kind` (a short runway that refuses
/// nothing, `LowRunway`, is a report, not a refusal).
fn refused(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    kind: &str,
) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == kind && c.status == "True" && c.reason != "LowRunway")
}

/// Why the money rules refused what the plan wanted to spend, if they did.
fn spend_refused(item: &Item) -> Option<String> {
    item.spend.as_ref().filter(|s| !s.approved)?;
    Some(
        item.reason()
            .map(|r| r.message.clone())
            .unwrap_or_else(|| "the money rules refuse it".to_string()),
    )
}

/// What the tracked object costs per hour: a pod's reported cost, else the expected cost.
fn snapshot_cost(snapshot: &Snapshot, item: &Item) -> Decimal {
    let Some(id) = &item.runpod_id else {
        return Decimal::ZERO;
    };
    match snapshot.pod(id) {
        Some(pod) => Decimal::try_from(pod.cost).unwrap_or_default(),
        None => item.expected_per_hour.unwrap_or_default(),
    }
}

/// Whether the spec changed since the status last recorded it (a user's edit).
fn spec_edited(w: &GpuWorkload) -> bool {
    let observed = w.status.as_ref().and_then(|s| s.observed_generation);
    observed.is_some() && observed != w.metadata.generation
}

/// Events on the edges a person cares about.
async fn announce(w: &GpuWorkload, ctx: &Context, step: &Step, outcome: &Outcome, item: &Item) {
    let Outcome::Done(id) = outcome else {
        if let Outcome::Failed(e) = outcome {
            // Held by the operator itself (lists without identity, an earlier create not yet
            // proven gone), not refused by RunPod.
            let reason = if matches!(e, crate::runpod::Error::Held { .. }) {
                "WriteHeld"
            } else {
                "RunPodRefused"
            };
            ctx.event(w, true, reason, format!("{}: {e}", step.describe()))
                .await;
        }
        return;
    };
    let (warning, reason) = match step {
        Step::CreatePod { .. } | Step::CreateEndpoint { .. } => (false, "Created"),
        Step::ReplacePod { .. } => (false, "Replaced"),
        Step::StopPod { reason, .. } if reason.starts_with("credit policy") => {
            (true, "StoppedByPolicy")
        }
        Step::DeletePod { reason, .. } if reason.starts_with("stopped-volume policy") => {
            (true, "StoppedByPolicy")
        }
        // A spec the user changed is an update; the same write with the spec unchanged since
        // it was last applied undoes a change made on RunPod's side.
        Step::UpdatePod { .. } | Step::UpdateEndpoint { .. } if spec_edited(w) => {
            (false, "Updated")
        }
        Step::UpdatePod { .. } | Step::UpdateEndpoint { .. } if !item.drift.is_empty() => {
            (false, "DriftCorrected")
        }
        Step::DeletePod { .. } | Step::DeleteEndpoint { .. } => (false, "DuplicateDeleted"),
        _ => return,
    };
    ctx.event(w, warning, reason, format!("{} ({id})", step.describe()))
        .await;
}

async fn cleanup(w: Arc<GpuWorkload>, ctx: &Context) -> Result<Action, Error> {
    if w.spec.deletion_policy == DeletionPolicy::Orphan {
        ctx.event(
            &*w,
            false,
            "Orphaned",
            "the RunPod object is left running (deletionPolicy: Orphan)".to_string(),
        )
        .await;
        ctx.metrics
            .forget_workload(&w.namespace().unwrap_or_default(), &w.name_any());
        return Ok(Action::await_change());
    }
    let name = account_name(w.spec.account_ref.as_ref());
    let account = ctx.account(&name).ok_or(Error::AccountMissing(name))?;
    let runtime = ctx.runtimes.get(&ctx.client, &account).await?;
    if w.spec.registry_credentials.is_some() {
        runtime.inventory.want_registries();
    }
    // Deleting acts on what RunPod holds now, not on a cached view.
    runtime.inventory.refresh().await?;
    let snapshot = runtime.inventory.snapshot();
    let known = w.status.as_ref().and_then(|s| s.runpod_id.clone());
    let observed = snapshot.observed();
    for step in plan_delete(&owner(&w), known.as_deref(), observed, false) {
        match execute(&step, &runtime.inventory).await {
            Outcome::Failed(e) => return Err(e.into()),
            Outcome::Unknown(e) => return Err(e.into()),
            _ => ctx.event(&*w, false, "Deleted", step.describe()).await,
        }
    }
    ctx.metrics
        .forget_workload(&w.namespace().unwrap_or_default(), &w.name_any());
    Ok(Action::await_change())
}
