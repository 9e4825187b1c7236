//! The plan: what to do about one workload, given what is desired, what RunPod runs, the
//! policies, the prices, the account's money and the time. Pure: every input is an argument
//! and the result is data ([`Plan`]); the executor carries it out.
//!
//! The rules, in the order they are applied:
//! 1. Find the workload's RunPod objects: by adoption annotation, by the recorded id, by the
//!    owner marker. Extras made by the operator are deleted (money first).
//! 2. `Paused` does nothing; `ObserveOnly` reports and never writes.
//! 3. Compare field by field (drift). What RunPod changes in place is PATCHed; what it cannot
//!    (GPU type or count, cloud, data centre, mount kind or network volume, a smaller pod
//!    volume) needs a replace, which waits for approval when it would destroy a pod volume.
//! 4. Before anything is created, started, replaced or scaled up, the money rules: the
//!    workload cap, the account cap, and the credit rule (one hour of current spend, plus what
//!    was already approved and is not billed yet, plus the new cost). Under the
//!    `StopLowestPriority` credit policy, nothing is started that the policy would stop: the
//!    runway after it must stay at the policy's minimum, and a restart needs one hour more
//!    (so what the policy stopped stays stopped until the balance has room). A refusal says the
//!    figures. The plan records what it asked to spend ([`Spend`]), so a pass can admit the
//!    spending of many workloads against one budget.
//! 5. The credit policy may force the workload down; the stopped-volume policy may alert on or
//!    delete a pod that stays stopped.
//!
//! Money-saving actions come first; the executor runs only the first action of a plan per pass.
//!
//! Where each rule lives:
//! - this module: the inputs ([`Context`], [`Observed`]), finding a workload's objects, the
//!   conditions a plan ends with, and deletion of a workload;
//! - `pod`: when a pod is created, updated in place, replaced, started or stopped, and the
//!   stopped-volume policy;
//! - `endpoint`: the same for Serverless endpoints;
//! - `volume`: network volumes ([`plan_volume`], [`plan_volume_delete`]);
//! - `money`: the caps, the one-hour credit rule, the runway, and [`credit_victims`];
//! - `drift`: field-by-field differences ([`DriftEntry`]);
//! - `action`: what a plan asks for ([`Action`], [`Plan`], [`Spend`]).

mod action;
mod drift;
mod endpoint;
mod money;
mod pod;
mod registry;
mod switch;
mod volume;

pub use action::{Action, Plan, Spend};
pub use money::{Money, Pending, credit_order, credit_victims, credit_victims_ranked};
pub use registry::plan_registry_delete;
pub use switch::SERVING_AFTER_SECONDS;
pub use volume::{VolumePlan, find_volume, plan_volume, plan_volume_delete};

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::jiff::Timestamp;
use rust_decimal::{Decimal, prelude::*};

use crate::{
    api::{
        CONDITION_DRIFTED, CONDITION_INSUFFICIENT_CREDIT, CONDITION_READY, CONDITION_RECONCILING,
        CONDITION_SPEND_CAP_EXCEEDED, CONDITION_STALLED, DriftEntry, GpuWorkloadSpec,
        ManagementPolicy, StoppedVolumePolicy,
    },
    engine::{
        conditions::Verdict,
        cost::{Usage, WorkloadCost, workload_cost},
        desired::Desired,
        identity::{OWNER_ENV, Owner},
        index::Lookup,
        prices::PriceCatalogue,
    },
    runpod::types::{Endpoint, Pod, UpdateEndpoint, Workers},
};
use endpoint::plan_endpoint;
use money::{Refusal, check_caps, check_money};
use pod::plan_pod;

/// Condition type: a replace would destroy data and waits for approval.
pub const CONDITION_REPLACE_NEEDS_APPROVAL: &str = "ReplaceNeedsApproval";

/// Condition type: a pod has been stopped longer than its policy allows.
pub const CONDITION_STOPPED_TOO_LONG: &str = "StoppedTooLong";

/// How long to wait before looking again while something is in progress.
pub const RECHECK_SOON: Duration = Duration::from_secs(10);

/// Hours of runway, on top of the credit policy's minimum, that a restart needs (a stopped
/// pod started, an endpoint at zero workers scaled up): what the policy stopped is not started
/// again by the next pass that sees it stopped.
pub const RESTART_MARGIN_HOURS: u32 = 1;

/// Everything a plan needs besides the desired and observed state.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    /// Who owns the RunPod objects.
    pub owner: &'a Owner,
    /// The spec (for caps and policies).
    pub spec: &'a GpuWorkloadSpec,
    /// The hash approved by the `approve-replace` annotation, if any.
    pub approved_hash: Option<&'a str>,
    /// The id named by the adoption annotation, if any.
    pub adopt_id: Option<&'a str>,
    /// The id the status recorded last time, if any.
    pub known_id: Option<&'a str>,
    /// Prices.
    pub prices: &'a PriceCatalogue,
    /// Money.
    pub money: Money,
    /// The stopped-volume policy in force (the workload's or the account's).
    pub stopped_volume_policy: Option<StoppedVolumePolicy>,
    /// When the pod was first seen stopped.
    pub stopped_since: Option<Timestamp>,
    /// Now.
    pub now: Timestamp,
}

/// What RunPod currently runs, as the account inventory holds it.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// Every pod of the account.
    pub pods: &'a [Pod],
    /// Every endpoint of the account.
    pub endpoints: &'a [Endpoint],
    /// Where each pod and endpoint is, when the inventory keeps an index: a workload's own
    /// objects are then found by look-up, not by a scan of the account. `None` scans.
    pub index: Option<ObservedIndex<'a>>,
    /// The account's registry credentials, name -> id; `None` when they were not listed
    /// (then a workload with a private image waits, and no credential is deleted).
    pub registries: Option<&'a BTreeMap<String, String>>,
}

/// The indexes of [`Observed`]'s two lists.
#[derive(Clone, Copy, Debug)]
pub struct ObservedIndex<'a> {
    /// Of `pods`.
    pub pods: &'a Lookup,
    /// Of `endpoints`.
    pub endpoints: &'a Lookup,
}

impl<'a> Observed<'a> {
    /// The lists alone, found by scanning.
    pub fn scan(pods: &'a [Pod], endpoints: &'a [Endpoint]) -> Self {
        Self {
            pods,
            endpoints,
            index: None,
            registries: None,
        }
    }
}

/// FNV-1a, 64 bits: a stable hash of the plan (not for security; the approver sees it).
fn fnv(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn plan_hash(actions: &[Action]) -> String {
    fnv(&serde_json::to_string(actions).unwrap_or_default())
}

fn usd(d: Decimal) -> String {
    format!("{:.2}", d.round_dp(2))
}

fn decimal(f: f64) -> Decimal {
    Decimal::from_f64(f).unwrap_or_default()
}

/// The objects that belong to the workload: adopted by annotation, recorded in the status,
/// marked with the owner's UID, or carrying the owner's deterministic name (which embeds the
/// UID). The name still finds an object whose environment was replaced in the console, marker
/// and all, so a console edit can never make the operator create a second one.
fn owned<'a, T>(
    items: &'a [T],
    index: Option<&Lookup>,
    id: impl Fn(&T) -> &str,
    name: impl Fn(&T) -> &str,
    marker: impl Fn(&T) -> Option<&str>,
    ctx: &Context<'_>,
) -> Vec<&'a T> {
    let runpod_name = ctx.owner.runpod_name();
    let mine = |item: &T| {
        let item_id = id(item);
        ctx.adopt_id == Some(item_id)
            || ctx.known_id == Some(item_id)
            || marker(item) == Some(ctx.owner.uid.as_str())
            || name(item) == runpod_name
    };
    let candidates = index.and_then(|index| {
        index.candidates(
            items.len(),
            &[ctx.adopt_id, ctx.known_id],
            &runpod_name,
            Some(ctx.owner.uid.as_str()),
        )
    });
    match candidates {
        // The index narrows the search; the rule itself still decides.
        Some(positions) => positions
            .into_iter()
            .map(|at| &items[at])
            .filter(|item| mine(item))
            .collect(),
        None => items.iter().filter(|item| mine(item)).collect(),
    }
}

/// The workload's pods ([`owned`] over the account's pods).
fn owned_pods<'a>(observed: Observed<'a>, ctx: &Context<'_>) -> Vec<&'a Pod> {
    owned(
        observed.pods,
        observed.index.map(|i| i.pods),
        |p| &p.id,
        |p| &p.name,
        |p| p.env.get(OWNER_ENV).map(String::as_str),
        ctx,
    )
}

/// The workload's endpoints ([`owned`] over the account's endpoints).
fn owned_endpoints<'a>(observed: Observed<'a>, ctx: &Context<'_>) -> Vec<&'a Endpoint> {
    owned(
        observed.endpoints,
        observed.index.map(|i| i.endpoints),
        |e| &e.id,
        |e| &e.name,
        |e| e.env.get(OWNER_ENV).map(String::as_str),
        ctx,
    )
}

/// What takes an endpoint down to zero workers (the credit policy's saving), if it is not
/// there already.
fn scale_to_zero(endpoint: &Endpoint) -> Option<Action> {
    (endpoint.workers.max != Some(0) || endpoint.workers.min != Some(0)).then(|| {
        Action::UpdateEndpoint {
            id: endpoint.id.clone(),
            request: UpdateEndpoint {
                workers: Some(Workers {
                    min: Some(0),
                    max: Some(0),
                    idle_timeout: None,
                }),
                ..UpdateEndpoint::default()
            },
            saving: true,
        }
    })
}

struct Draft {
    actions: Vec<Action>,
    verdicts: Vec<Verdict>,
    drift: Vec<DriftEntry>,
    runpod_id: Option<String>,
    state: Option<String>,
    current_per_hour: Decimal,
    waiting: Option<String>,
    stalled: Option<(&'static str, String)>,
    /// Held down on purpose by a policy (credit): not ready, not stalled, not progressing.
    suspended: Option<String>,
    /// The spending action asked for, approved or refused.
    spend: Option<Spend>,
    /// Once the tracked object is found: whether it is a pod, and the registry credential it
    /// uses now.
    object_registry: Option<(bool, Option<String>)>,
}

impl Draft {
    fn new() -> Self {
        Self {
            actions: Vec::new(),
            verdicts: Vec::new(),
            drift: Vec::new(),
            runpod_id: None,
            state: None,
            current_per_hour: Decimal::ZERO,
            waiting: None,
            stalled: None,
            suspended: None,
            spend: None,
            object_registry: None,
        }
    }

    /// The money rules in front of an action that spends: whether it may go, recording the
    /// request (with `floor`, what the workload costs if refused) for the pass's budget. A
    /// refusal says the figures. An unknown price refuses too: the operator never guesses
    /// what it will spend.
    fn admit(
        &mut self,
        ctx: &Context<'_>,
        cost: Option<&WorkloadCost>,
        floor: Decimal,
        restart: bool,
    ) -> bool {
        let Some(cost) = cost else {
            self.refuse(Refusal {
                reason: "NoPrice",
                condition: CONDITION_SPEND_CAP_EXCEEDED,
                message: "no price is known for this configuration: nothing is started".to_string(),
            });
            return false;
        };
        let refusal = check_money(ctx, cost, restart);
        self.spend = Some(Spend {
            worst_per_hour: cost.worst_case_per_hour,
            expected_per_hour: cost.expected_per_hour,
            floor_per_hour: floor,
            approved: refusal.is_none(),
        });
        match refusal {
            None => true,
            Some(refusal) => {
                self.refuse(refusal);
                false
            }
        }
    }

    /// [`Draft::admit`], then push the action if it may go.
    fn spend(
        &mut self,
        ctx: &Context<'_>,
        cost: Option<&WorkloadCost>,
        floor: Decimal,
        action: Action,
    ) {
        let restart = matches!(action, Action::StartPod { .. });
        if self.admit(ctx, cost, floor, restart) {
            self.actions.push(action);
        }
    }

    fn refuse(&mut self, refusal: Refusal) {
        self.verdicts.push(Verdict::yes(
            refusal.condition,
            refusal.reason,
            refusal.message.clone(),
        ));
        self.stalled = Some((refusal.reason, refusal.message));
    }
}

/// Plans one workload.
pub fn plan(desired: &Desired, observed: Observed<'_>, ctx: &Context<'_>) -> Plan {
    let management = ctx.spec.management_policy;
    // `workerClass: Auto` runs the active workers the measurement chose, not the spec's 0:
    // the money rules see them (always on, at the active rate).
    let chosen_active = match desired {
        Desired::Endpoint(e)
            if ctx
                .spec
                .serverless
                .as_ref()
                .is_some_and(|s| s.active_workers != e.workers_min) =>
        {
            Some(e.workers_min)
        }
        _ => None,
    };
    let cost = match chosen_active {
        Some(active) => {
            let mut spec = ctx.spec.clone();
            if let Some(settings) = spec.serverless.as_mut() {
                settings.active_workers = active;
            }
            workload_cost(&spec, ctx.prices, Usage::default()).ok()
        }
        None => workload_cost(ctx.spec, ctx.prices, Usage::default()).ok(),
    };
    let mut draft = Draft::new();
    if management != ManagementPolicy::Paused {
        // A switch of side (the type changed): while the old side still runs, what it spends
        // now counts with the new side's worst case for every money rule.
        let old = switch::old_side(desired, observed, ctx);
        let overlap = old.per_hour(ctx.prices);
        let admitted = cost.clone().map(|c| WorkloadCost {
            expected_per_hour: c.expected_per_hour + overlap,
            worst_case_per_hour: c.worst_case_per_hour + overlap,
            ..c
        });
        match desired {
            Desired::Pod(pod) => plan_pod(pod, observed, ctx, admitted.as_ref(), &mut draft),
            Desired::Endpoint(endpoint) => {
                plan_endpoint(endpoint, observed, ctx, admitted.as_ref(), &mut draft)
            }
        }
        // An endpoint's current spend is its planned floor, which includes the overlap.
        if draft.runpod_id.is_none() || matches!(desired, Desired::Pod(_)) {
            draft.current_per_hour += overlap;
        }
        // The new pod, looked up only while a switch is under way.
        let new_pod = match (&draft.runpod_id, desired) {
            (Some(id), Desired::Pod(_)) if !old.is_empty() => {
                observed.pods.iter().find(|p| &p.id == id)
            }
            _ => None,
        };
        switch::retire(&old, new_pod, desired, ctx, &mut draft);
        let container = match desired {
            Desired::Pod(pod) => &pod.container,
            Desired::Endpoint(endpoint) => &endpoint.container,
        };
        registry::plan_registry(
            container.registry.as_ref(),
            observed.registries,
            ctx.owner,
            &mut draft,
        );
    }
    finish(draft, ctx, cost, management)
}

fn finish(
    mut draft: Draft,
    ctx: &Context<'_>,
    cost: Option<WorkloadCost>,
    management: ManagementPolicy,
) -> Plan {
    let observe_only = management == ManagementPolicy::ObserveOnly;
    if observe_only {
        // Report what would be done, do none of it.
        draft.actions.clear();
        draft.spend = None;
    }
    // Money first.
    draft.actions.sort_by_key(|a| !a.saves_money());
    let hash = plan_hash(&draft.actions);

    let drifted = !draft.drift.is_empty();
    let verdicts = &mut draft.verdicts;
    if management == ManagementPolicy::Paused {
        verdicts.push(Verdict::yes(
            CONDITION_READY,
            "Paused",
            "managementPolicy is Paused: the operator does nothing",
        ));
        verdicts.push(Verdict::no(CONDITION_RECONCILING, "Paused", ""));
        verdicts.push(Verdict::no(CONDITION_STALLED, "Paused", ""));
    } else if let (Some(message), None) = (&draft.suspended, draft.actions.first()) {
        verdicts.push(Verdict::no(
            CONDITION_READY,
            "StoppedByPolicy",
            message.clone(),
        ));
        verdicts.push(Verdict::no(CONDITION_RECONCILING, "StoppedByPolicy", ""));
        verdicts.push(Verdict::no(CONDITION_STALLED, "StoppedByPolicy", ""));
    } else if let Some((reason, message)) = &draft.stalled {
        verdicts.push(Verdict::no(CONDITION_READY, reason, message.clone()));
        verdicts.push(Verdict::no(CONDITION_RECONCILING, reason, ""));
        verdicts.push(Verdict::yes(CONDITION_STALLED, reason, message.clone()));
    } else if !draft.actions.is_empty() || draft.waiting.is_some() {
        let message = draft
            .waiting
            .clone()
            .or_else(|| draft.actions.first().map(Action::describe))
            .unwrap_or_default();
        verdicts.push(Verdict::no(CONDITION_READY, "Progressing", message.clone()));
        verdicts.push(Verdict::yes(CONDITION_RECONCILING, "Progressing", message));
        verdicts.push(Verdict::no(CONDITION_STALLED, "Progressing", ""));
    } else {
        let message = if observe_only && drifted {
            "observing only: RunPod differs from the spec (see status.drift)".to_string()
        } else {
            "RunPod matches the spec".to_string()
        };
        verdicts.push(Verdict::yes(CONDITION_READY, "InSync", message));
        verdicts.push(Verdict::no(CONDITION_RECONCILING, "InSync", ""));
        verdicts.push(Verdict::no(CONDITION_STALLED, "InSync", ""));
    }
    let drift_message = if drifted {
        let fields: Vec<_> = draft.drift.iter().map(|d| d.field.as_str()).collect();
        format!("RunPod differs in {}", fields.join(", "))
    } else {
        String::new()
    };
    verdicts.push(if drifted {
        Verdict::yes(CONDITION_DRIFTED, "FieldsDiffer", drift_message)
    } else {
        Verdict::no(CONDITION_DRIFTED, "InSync", "")
    });
    // What already runs and no longer fits its caps (the prices rose, or a cap was lowered):
    // reported, and left running. Nothing is stopped or deleted for it; what would spend more
    // (a create, a start, a scale-up, a replacement) is refused by the rules above.
    if !observe_only
        && draft.current_per_hour > Decimal::ZERO
        && !verdicts
            .iter()
            .any(|v| v.kind == CONDITION_SPEND_CAP_EXCEEDED)
        && let Some(over) = cost.as_ref().and_then(|c| check_caps(ctx, c))
    {
        verdicts.push(Verdict::yes(
            CONDITION_SPEND_CAP_EXCEEDED,
            "RunningOverCap",
            format!(
                "{}, with what RunPod holds now: it is left as it is (a price rise or a lower cap stops and deletes nothing), and nothing that spends more is started until it fits: raise the cap or lower the GPU count",
                over.message
            ),
        ));
    }
    for kind in [
        CONDITION_SPEND_CAP_EXCEEDED,
        CONDITION_INSUFFICIENT_CREDIT,
        CONDITION_REPLACE_NEEDS_APPROVAL,
    ] {
        if !verdicts.iter().any(|v| v.kind == kind) {
            verdicts.push(Verdict::no(kind, "Clear", ""));
        }
    }
    if let (Some(balance), Some(spend)) = (ctx.money.balance, ctx.money.spend_per_hour)
        && !spend.is_zero()
        && balance
            .checked_div(spend)
            .is_some_and(|hours| hours < Decimal::from(ctx.money.minimum_runway_hours))
        && !verdicts
            .iter()
            .any(|v| v.kind == CONDITION_INSUFFICIENT_CREDIT && v.status)
    {
        verdicts.retain(|v| v.kind != CONDITION_INSUFFICIENT_CREDIT);
        verdicts.push(Verdict::yes(
            CONDITION_INSUFFICIENT_CREDIT,
            "LowRunway",
            format!(
                "balance {} USD lasts {:.1} hours at {} USD/h, under the account's minimum runway of {} hours",
                usd(balance),
                balance.checked_div(spend).unwrap_or_default().round_dp(1),
                usd(spend),
                ctx.money.minimum_runway_hours
            ),
        ));
    }

    let after = cost
        .as_ref()
        .map_or(Decimal::ZERO, |c| c.worst_case_per_hour);
    Plan {
        hash,
        delta_per_hour: if draft.actions.iter().any(Action::writes) {
            after - draft.current_per_hour
        } else {
            Decimal::ZERO
        },
        actions: draft.actions,
        runpod_id: draft.runpod_id,
        state: draft.state,
        drift: draft.drift,
        verdicts: draft.verdicts,
        cost,
        current_per_hour: draft.current_per_hour,
        spend: draft.spend,
    }
}

/// What deleting the workload does on RunPod: its pods and endpoints, then its registry
/// credentials (run the actions in order). Never reads the spec's validity: a broken spec
/// cannot wedge deletion. `orphan` leaves everything.
pub fn plan_delete(
    owner: &Owner,
    known_id: Option<&str>,
    observed: Observed<'_>,
    orphan: bool,
) -> Vec<Action> {
    if orphan {
        return Vec::new();
    }
    let runpod_name = owner.runpod_name();
    let mine = |id: &str, name: &str, marker: Option<&String>| {
        known_id == Some(id)
            || name == runpod_name
            || marker.map(String::as_str) == Some(owner.uid.as_str())
    };
    let mut actions: Vec<Action> = observed
        .pods
        .iter()
        .filter(|p| mine(&p.id, &p.name, p.env.get(OWNER_ENV)))
        .map(|p| Action::DeletePod {
            id: p.id.clone(),
            reason: "the GpuWorkload was deleted".to_string(),
        })
        .collect();
    actions.extend(
        observed
            .endpoints
            .iter()
            .filter(|e| mine(&e.id, &e.name, e.env.get(OWNER_ENV)))
            .map(|e| Action::DeleteEndpoint {
                id: e.id.clone(),
                reason: "the GpuWorkload was deleted".to_string(),
            }),
    );
    // Its registry credentials last: run in order, the objects that use them are gone by then.
    actions.extend(plan_registry_delete(owner, observed.registries, false));
    actions
}
