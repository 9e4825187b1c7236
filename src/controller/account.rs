//! The RunPodAccount reconciler: reads the account's balance, spend and spend limit, and
//! reports the runway, how many objects use the account, and the RunPod objects nobody owns
//! with what they cost.

use std::{sync::Arc, time::Duration};

use k8s_openapi::jiff::Timestamp;
use kube::{Api, ResourceExt, runtime::controller::Action};
use rust_decimal::{Decimal, prelude::FromPrimitive};

use super::{Context, Error, account_name, apply_status};
use crate::{
    api::{
        CONDITION_CREATES_HELD, CONDITION_INSUFFICIENT_CREDIT, CONDITION_PRICES_STALE,
        CONDITION_READY, CONDITION_STALLED, Orphan, RunPodAccount, RunPodAccountStatus, Usd,
    },
    engine::conditions::{Verdict, merge},
    reconcile::{Workspace, orphans},
};

/// The reconcile entry.
pub async fn reconcile(account: Arc<RunPodAccount>, ctx: Arc<Context>) -> Result<Action, Error> {
    if let Some(wait) = ctx.wait_for_stores() {
        return Ok(wait);
    }
    let timer = ctx.metrics.start("RunPodAccount");
    let result = apply(&account, &ctx).await;
    timer.finish(&result);
    result
}

/// What to do after a failure: report it in the status and look again with backoff.
pub fn error_policy(account: Arc<RunPodAccount>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(account = %account.name_any(), error = %error, "reconcile failed");
    ctx.metrics.error("RunPodAccount", error.metric_label());
    Action::requeue(ctx.backoff_for(&account.name_any()))
}

/// Whether the account's status says the condition `kind` is True (an Event goes out only
/// when it turns).
fn holds(account: &RunPodAccount, kind: &str) -> bool {
    account.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == kind && c.status == "True")
    })
}

fn usd(value: f64) -> Option<Usd> {
    Decimal::from_f64(value).map(|d| Usd(d.max(Decimal::ZERO).round_dp(4)))
}

async fn apply(account: &RunPodAccount, ctx: &Context) -> Result<Action, Error> {
    let api: Api<RunPodAccount> = Api::all(ctx.client.clone());
    let name = account.name_any();
    let runtime = match ctx.runtimes.get(&ctx.client, account).await {
        Ok(r) => r,
        Err(e) => {
            let verdicts = [
                Verdict::no(CONDITION_READY, "NoApiKey", e.to_string()),
                Verdict::yes(CONDITION_STALLED, "NoApiKey", e.to_string()),
            ];
            let status = RunPodAccountStatus {
                observed_generation: account.metadata.generation,
                conditions: merge(
                    account
                        .status
                        .as_ref()
                        .map(|s| s.conditions.as_slice())
                        .unwrap_or_default(),
                    &verdicts,
                    account.metadata.generation,
                    Timestamp::now(),
                ),
                ..RunPodAccountStatus::default()
            };
            apply_status(&api, account, account.status.as_ref(), &status).await?;
            return Err(e);
        }
    };
    runtime.inventory.refresh().await?;
    let prices = ctx.prices_of(account, &runtime).await;
    let snapshot = runtime.inventory.snapshot();
    let workloads: Vec<_> = ctx
        .workloads
        .state()
        .iter()
        .filter(|w| account_name(w.spec.account_ref.as_ref()) == name)
        .map(|w| (**w).clone())
        .collect();
    let volumes: Vec<_> = ctx
        .volumes
        .state()
        .iter()
        .filter(|v| account_name(v.spec.account_ref.as_ref()) == name)
        .map(|v| (**v).clone())
        .collect();
    let managed = (workloads.len() + volumes.len()) as u32;
    // Measure the endpoints' use (one billing read at most), when any workload has one.
    if !snapshot.endpoints.is_empty()
        && workloads
            .iter()
            .any(|w| w.spec.workload_type != crate::api::WorkloadType::Pod)
        && let Err(e) = runtime
            .usage
            .step(
                runtime.inventory.client(),
                snapshot.endpoints.len(),
                super::usage::Usage::head_every(Duration::from_secs(u64::from(
                    account.spec.resync_interval_seconds,
                ))),
            )
            .await
    {
        tracing::warn!(account = %name, error = %e, "RunPod's billing could not be read; the measurement waits");
    }
    let ws = Workspace {
        account: account.spec.clone(),
        workloads,
        volumes,
        secrets: Default::default(),
        auto: Default::default(),
    };
    let found: Vec<Orphan> = orphans(&ws, &snapshot, &prices)
        .into_iter()
        .map(|o| Orphan {
            kind: o.kind.to_string(),
            id: o.id,
            name: o.name,
            cost_per_hour: Usd(o.cost_per_hour.round_dp(4)),
        })
        .collect();
    let money = snapshot.account;
    let runway = money.as_ref().and_then(|m| m.runway_hours());
    let minimum = Decimal::from(account.spec.credit_policy.minimum_runway_hours);
    let mut verdicts = vec![Verdict::yes(
        CONDITION_READY,
        "Connected",
        "RunPod answers with this key",
    )];
    verdicts.push(match runway {
        Some(hours) if hours < minimum => Verdict::yes(
            CONDITION_INSUFFICIENT_CREDIT,
            "LowRunway",
            format!("the balance lasts {:.1} hours at the current spend, under the minimum of {minimum}", hours.round_dp(1)),
        ),
        _ => Verdict::no(CONDITION_INSUFFICIENT_CREDIT, "Enough", ""),
    });
    verdicts.push(Verdict::no(CONDITION_STALLED, "Connected", ""));
    let interval = Duration::from_secs(u64::from(
        account.spec.price_refresh_interval_seconds.max(10),
    ));
    let (prices_status, prices_verdict) = runtime.prices.report(interval, Timestamp::now());
    if prices_verdict.status && !holds(account, CONDITION_PRICES_STALE) {
        ctx.event(account, true, "PricesStale", prices_verdict.message.clone())
            .await;
    }
    verdicts.push(prices_verdict);
    let gap = runtime.inventory.identity_gap();
    let held_before = holds(account, CONDITION_CREATES_HELD);
    match &gap {
        Some(problem) => {
            verdicts.push(Verdict::yes(
                CONDITION_CREATES_HELD,
                "ListsIncomplete",
                problem.clone(),
            ));
            if !held_before {
                ctx.event(account, true, "CreatesHeld", problem.clone())
                    .await;
            }
        }
        None => verdicts.push(Verdict::no(CONDITION_CREATES_HELD, "ListsWhole", "")),
    }
    let status = RunPodAccountStatus {
        observed_generation: account.metadata.generation,
        conditions: merge(
            account
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default(),
            &verdicts,
            account.metadata.generation,
            Timestamp::now(),
        ),
        balance: money.and_then(|m| usd(m.client_balance)),
        spend_per_hour: money.and_then(|m| usd(m.current_spend_per_hr)),
        spend_limit: money.and_then(|m| usd(m.spend_limit)),
        runway_hours: runway.map(|h| format!("{:.1}", h.round_dp(1))),
        managed_count: Some(managed),
        orphans: found,
        prices: Some(prices_status),
    };
    apply_status(&api, account, account.status.as_ref(), &status).await?;
    if let Some(m) = money {
        ctx.metrics
            .account(&name, m.balance().unwrap_or_default(), runway);
    }
    ctx.metrics.account_spend(
        &name,
        money.and_then(|m| m.spend_per_hour()),
        account.spec.spending_cap_usd_per_hour.amount(),
    );
    // Look again at the resync, or sooner when the prices are due (the workloads read them
    // too, but an account without workloads must still report them).
    let resync = Duration::from_secs(u64::from(account.spec.resync_interval_seconds));
    Ok(Action::requeue(resync.min(interval)))
}
