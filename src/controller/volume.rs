//! The NetworkVolume reconciler: create, grow, report what cannot change; on deletion, keep
//! the volume (`Orphan`, the default) or delete it, but never while a workload uses it.

use std::{sync::Arc, time::Duration};

use k8s_openapi::jiff::Timestamp;
use kube::{Api, ResourceExt, runtime::controller::Action};

use super::{Context, Error, account_name, apply_status, finalized};
use crate::{
    api::{DeletionPolicy, ManagementPolicy, NetworkVolume, NetworkVolumeStatus, Usd},
    engine::{conditions::merge, identity::Owner, plan::plan_volume_delete},
    reconcile::{AccountView, Workspace, executor::Outcome, executor::execute},
};

fn owner(v: &NetworkVolume) -> Owner {
    Owner::of(v.namespace().as_deref(), &v.name_any(), v.uid().as_deref())
}

/// The workloads (`namespace/name`) that attach this volume.
fn users(v: &NetworkVolume, ctx: &Context) -> Vec<String> {
    let namespace = v.namespace().unwrap_or_default();
    let name = v.name_any();
    let mut out: Vec<String> = ctx
        .workloads
        .state()
        .iter()
        .filter(|w| {
            w.namespace().unwrap_or_default() == namespace
                && w.spec.network_volumes.iter().any(|m| m.name == name)
        })
        .map(|w| format!("{namespace}/{}", w.name_any()))
        .collect();
    out.sort();
    out
}

/// Whether the workload `namespace/name` is being deleted.
fn deleting(ctx: &Context, key: &str) -> bool {
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    ctx.workloads.state().iter().any(|w| {
        w.namespace().as_deref() == Some(namespace)
            && w.name_any() == name
            && w.metadata.deletion_timestamp.is_some()
    })
}

/// The reconcile entry.
pub async fn reconcile(volume: Arc<NetworkVolume>, ctx: Arc<Context>) -> Result<Action, Error> {
    if let Some(wait) = ctx.wait_for_stores() {
        return Ok(wait);
    }
    finalized(
        "NetworkVolume",
        volume,
        &ctx,
        |o| apply(o, &ctx),
        |o| cleanup(o, &ctx),
    )
    .await
}

/// What to do after a failure.
pub fn error_policy(volume: Arc<NetworkVolume>, error: &Error, ctx: Arc<Context>) -> Action {
    if let Some(action) = super::quick_retry("NetworkVolume", &owner(&volume).key(), error, &ctx) {
        return action;
    }
    tracing::warn!(volume = %owner(&volume).key(), error = %error, "reconcile failed");
    ctx.metrics.error("NetworkVolume", error.metric_label());
    Action::requeue(ctx.backoff_for(&owner(&volume).key()))
}

async fn apply(v: Arc<NetworkVolume>, ctx: &Context) -> Result<Action, Error> {
    if v.spec.management_policy == ManagementPolicy::Paused {
        return Ok(Action::await_change());
    }
    let name = account_name(v.spec.account_ref.as_ref());
    let account = ctx.account(&name).ok_or(Error::AccountMissing(name))?;
    let runtime = ctx.runtimes.get(&ctx.client, &account).await?;
    runtime.inventory.ensure_fresh().await?;
    let prices = ctx.prices_of(&account, &runtime).await;
    let ws = Workspace {
        account: account.spec.clone(),
        workloads: ctx
            .workloads
            .state()
            .iter()
            .map(|w| (**w).clone())
            .collect(),
        volumes: ctx.volumes.state().iter().map(|x| (**x).clone()).collect(),
        secrets: Default::default(),
        auto: Default::default(),
    };
    let mut item = {
        let snapshot = runtime.inventory.snapshot();
        AccountView::new(&ws, &snapshot, &prices, Timestamp::now()).plan_volume(&v)
    };
    let mut failure = None;
    if let Some(step) = item.actions.iter().find(|a| a.writes()).cloned() {
        match execute(&step, &runtime.inventory).await {
            Outcome::Failed(e) | Outcome::Unknown(e) => failure = Some(e),
            Outcome::Done(id) => {
                ctx.event(&*v, false, "Applied", format!("{} ({id})", step.describe()))
                    .await;
                let snapshot = runtime.inventory.snapshot();
                item = AccountView::new(&ws, &snapshot, &prices, Timestamp::now()).plan_volume(&v);
            }
            Outcome::Nothing => {}
        }
    }
    let snapshot = runtime.inventory.snapshot();
    let observed = item
        .runpod_id
        .as_ref()
        .and_then(|id| snapshot.volumes.iter().find(|rv| &rv.id == id));
    let status = NetworkVolumeStatus {
        observed_generation: v.metadata.generation,
        conditions: merge(
            v.status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default(),
            &item.verdicts,
            v.metadata.generation,
            Timestamp::now(),
        ),
        runpod_id: item.runpod_id.clone(),
        size_gb: observed.map(|rv| rv.size),
        cost_per_month: item
            .worst_case_per_hour
            .map(|h| Usd((h * rust_decimal::Decimal::from(720)).round_dp(4))),
        used_by: users(&v, ctx),
    };
    let api: Api<NetworkVolume> =
        Api::namespaced(ctx.client.clone(), &v.namespace().unwrap_or_default());
    apply_status(&api, &*v, v.status.as_ref(), &status).await?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    Ok(if item.actions.is_empty() {
        Action::requeue(Duration::from_secs(u64::from(
            account.spec.resync_interval_seconds,
        )))
    } else {
        Action::requeue(Duration::from_secs(10))
    })
}

async fn cleanup(v: Arc<NetworkVolume>, ctx: &Context) -> Result<Action, Error> {
    if v.spec.deletion_policy == DeletionPolicy::Orphan {
        ctx.event(
            &*v,
            false,
            "Orphaned",
            "the RunPod volume and its data are kept (deletionPolicy: Orphan)".to_string(),
        )
        .await;
        return Ok(Action::await_change());
    }
    // A workload already being deleted does not hold the volume here: RunPod's own view
    // (below) still refuses while its pod or endpoint attaches the volume, and the workload's
    // final removal triggers this reconcile again (the workload watch).
    let used_by: Vec<String> = users(&v, ctx)
        .into_iter()
        .filter(|key| !deleting(ctx, key))
        .collect();
    if !used_by.is_empty() {
        let message = format!("not deleted: still used by {}", used_by.join(", "));
        ctx.event(&*v, true, "InUse", message.clone()).await;
        return Err(Error::VolumeInUse(message));
    }
    let name = account_name(v.spec.account_ref.as_ref());
    let account = ctx.account(&name).ok_or(Error::AccountMissing(name))?;
    let runtime = ctx.runtimes.get(&ctx.client, &account).await?;
    runtime.inventory.refresh().await?;
    let snapshot = runtime.inventory.snapshot();
    let known = v.status.as_ref().and_then(|s| s.runpod_id.clone());
    let observed = snapshot.observed();
    let steps = plan_volume_delete(
        &owner(&v),
        known.as_deref(),
        &snapshot.volumes,
        observed,
        false,
    )
    .map_err(Error::VolumeInUse)?;
    for step in steps {
        if let Outcome::Failed(e) | Outcome::Unknown(e) = execute(&step, &runtime.inventory).await {
            return Err(e.into());
        }
    }
    Ok(Action::await_change())
}
