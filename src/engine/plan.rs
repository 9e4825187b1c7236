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

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::jiff::Timestamp;
use rust_decimal::{Decimal, prelude::*};

use super::{
    conditions::Verdict,
    cost::{Usage, WorkloadCost, workload_cost},
    desired::{Desired, DesiredEndpoint, DesiredMount, DesiredPod},
    identity::{OWNER_ENV, Owner},
    index::Lookup,
    prices::{HOURS_PER_MONTH, PriceCatalogue},
};
use crate::{
    api::{
        CONDITION_DRIFTED, CONDITION_INSUFFICIENT_CREDIT, CONDITION_READY, CONDITION_RECONCILING,
        CONDITION_SPEND_CAP_EXCEEDED, CONDITION_STALLED, CreditAction, DriftEntry, GpuWorkloadSpec,
        ManagementPolicy, NetworkVolumeSpec, ReplacePolicy, StoppedVolumeAction,
        StoppedVolumePolicy, VolumeTier,
    },
    runpod::types::{
        CreateEndpoint, CreateGpu, CreateNetworkVolume, CreatePod, Endpoint, EndpointGpu, Mounts,
        NetworkMount, NetworkVolume as RunPodVolume, PersistentMount, Pod, UpdateEndpoint,
        UpdateNetworkVolume, UpdatePod, Workers,
    },
};

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

/// Spending that is approved but not yet in RunPod's figures: the earlier spending actions of
/// the same pass (the CLI), or writes sent and not yet seen by a refresh (the controller).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    /// What it adds per hour at worst (weighed by the one-hour credit rule).
    pub worst_per_hour: Decimal,
    /// What it adds per hour as expected (weighed by the credit policy's runway).
    pub expected_per_hour: Decimal,
    /// Who took it (`namespace/name`), named in a refusal.
    pub by: Vec<String>,
}

impl Pending {
    /// Adds one approved action.
    pub fn add(&mut self, key: &str, worst_per_hour: Decimal, expected_per_hour: Decimal) {
        self.worst_per_hour += worst_per_hour;
        self.expected_per_hour += expected_per_hour;
        self.by.push(key.to_string());
    }

    fn names(&self) -> String {
        self.by.join(", ")
    }
}

/// The account's money as one workload's plan sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Money {
    /// The account cap, USD per hour (default 80, RunPod's spend limit).
    pub account_cap_per_hour: Decimal,
    /// The worst-case hourly cost of every other workload of the account.
    pub others_worst_case_per_hour: Decimal,
    /// The balance, if known.
    pub balance: Option<Decimal>,
    /// What the account spends per hour now, if known.
    pub spend_per_hour: Option<Decimal>,
    /// Hours of spend the balance should cover.
    pub minimum_runway_hours: u32,
    /// Set when the account's credit policy stops this workload, with the reason.
    pub forced_down: Option<String>,
    /// What the credit policy does when the runway is short.
    pub credit_action: CreditAction,
    /// Spending approved before this workload's and not yet billed.
    pub pending: Pending,
}

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
        }
    }
}

/// One step towards the desired state.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum Action {
    /// Create a pod, trying the GPU types in order on capacity errors.
    CreatePod {
        /// The request (its GPU is the first candidate).
        request: CreatePod,
        /// GPU types to try, in order.
        candidates: Vec<String>,
    },
    /// Create an endpoint.
    CreateEndpoint {
        /// The request.
        request: CreateEndpoint,
    },
    /// Change a pod in place.
    UpdatePod {
        /// Pod id.
        id: String,
        /// The change.
        request: UpdatePod,
        /// Whether the change resets the container (container disk wiped).
        resets: bool,
    },
    /// Change an endpoint in place.
    UpdateEndpoint {
        /// Endpoint id.
        id: String,
        /// The change.
        request: UpdateEndpoint,
        /// Whether it only lowers cost (scale down).
        saving: bool,
    },
    /// Create a new pod, then delete the old one (the next pass deletes it as an extra).
    ReplacePod {
        /// The pod being replaced.
        old_id: String,
        /// The new pod.
        request: CreatePod,
        /// GPU types to try, in order.
        candidates: Vec<String>,
        /// Why a replace is needed.
        because: Vec<String>,
        /// What is lost, if anything.
        loses: Option<String>,
    },
    /// Start a stopped pod.
    StartPod {
        /// Pod id.
        id: String,
    },
    /// Stop a pod.
    StopPod {
        /// Pod id.
        id: String,
        /// Why.
        reason: String,
    },
    /// Delete a pod.
    DeletePod {
        /// Pod id.
        id: String,
        /// Why.
        reason: String,
    },
    /// Delete an endpoint.
    DeleteEndpoint {
        /// Endpoint id.
        id: String,
        /// Why.
        reason: String,
    },
    /// Create a network volume.
    CreateVolume {
        /// The request.
        request: CreateNetworkVolume,
    },
    /// Grow or rename a network volume.
    UpdateVolume {
        /// Volume id.
        id: String,
        /// The change.
        request: UpdateNetworkVolume,
    },
    /// Delete a network volume (its data is lost).
    DeleteVolume {
        /// Volume id.
        id: String,
        /// Why.
        reason: String,
    },
    /// Nothing to send; look again later.
    Wait {
        /// Why.
        reason: String,
        /// When to look again.
        #[serde(skip)]
        after: Duration,
    },
}

impl Action {
    /// Whether the action lowers the bill (and so goes first, and may use the budget reserve).
    pub fn saves_money(&self) -> bool {
        matches!(
            self,
            Self::StopPod { .. }
                | Self::DeletePod { .. }
                | Self::DeleteEndpoint { .. }
                | Self::DeleteVolume { .. }
                | Self::UpdateEndpoint { saving: true, .. }
        )
    }

    /// Whether the action writes to RunPod.
    pub fn writes(&self) -> bool {
        !matches!(self, Self::Wait { .. })
    }

    /// The action in words, for status and the CLI.
    pub fn describe(&self) -> String {
        match self {
            Self::CreatePod {
                request,
                candidates,
            } => format!(
                "create pod {} ({} x {})",
                request.name,
                request.gpu.count,
                candidates.join(" | ")
            ),
            Self::CreateEndpoint { request } => format!(
                "create endpoint {} (workers {}-{})",
                request.name,
                request.workers.min.unwrap_or(0),
                request.workers.max.unwrap_or(0)
            ),
            Self::UpdatePod { id, resets, .. } => {
                format!(
                    "update pod {id}{}",
                    if *resets {
                        " (resets the container)"
                    } else {
                        ""
                    }
                )
            }
            Self::UpdateEndpoint { id, .. } => format!("update endpoint {id}"),
            Self::ReplacePod {
                old_id,
                because,
                loses,
                ..
            } => format!(
                "replace pod {old_id} ({}){}",
                because.join(", "),
                loses
                    .as_ref()
                    .map(|l| format!("; destroys {l}"))
                    .unwrap_or_default()
            ),
            Self::StartPod { id } => format!("start pod {id}"),
            Self::StopPod { id, reason } => format!("stop pod {id}: {reason}"),
            Self::DeletePod { id, reason } => format!("delete pod {id}: {reason}"),
            Self::DeleteEndpoint { id, reason } => format!("delete endpoint {id}: {reason}"),
            Self::CreateVolume { request } => format!(
                "create network volume {} ({} GB in {})",
                request.name, request.size, request.data_center
            ),
            Self::UpdateVolume { id, request } => format!(
                "grow network volume {id} to {} GB",
                request.size.unwrap_or_default()
            ),
            Self::DeleteVolume { id, reason } => format!("delete network volume {id}: {reason}"),
            Self::Wait { reason, .. } => format!("wait: {reason}"),
        }
    }
}

/// The plan for one workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// What to do, money-saving first; the executor runs the first write per pass.
    pub actions: Vec<Action>,
    /// The RunPod object the workload tracks.
    pub runpod_id: Option<String>,
    /// What RunPod reports as its state.
    pub state: Option<String>,
    /// Where RunPod differs from the spec.
    pub drift: Vec<DriftEntry>,
    /// Conditions to merge into the status.
    pub verdicts: Vec<Verdict>,
    /// The desired cost.
    pub cost: Option<WorkloadCost>,
    /// What the tracked object costs per hour now.
    pub current_per_hour: Decimal,
    /// How the hourly cost changes when the plan is done (worst case after - now).
    pub delta_per_hour: Decimal,
    /// A hash of the actions; approving a replace means annotating it.
    pub hash: String,
    /// The spending action the plan asked for, approved or refused.
    pub spend: Option<Spend>,
}

/// A spending action (create, start, replace, scale-up) as the money rules weighed it: what a
/// pass needs to admit the spending of many workloads against one budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spend {
    /// The workload's worst case per hour once it is done.
    pub worst_per_hour: Decimal,
    /// The workload's expected cost per hour once it is done.
    pub expected_per_hour: Decimal,
    /// What the workload costs at worst per hour if it is refused (what RunPod runs for it
    /// now): what it still takes from the account cap of the others.
    pub floor_per_hour: Decimal,
    /// Whether the money rules let it go.
    pub approved: bool,
}

impl Plan {
    /// Whether there is anything to write.
    pub fn has_writes(&self) -> bool {
        self.actions.iter().any(Action::writes)
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

// ---- owners ---------------------------------------------------------------------------------

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

// ---- money ----------------------------------------------------------------------------------

/// Why spending more is refused, with the figures.
struct Refusal {
    reason: &'static str,
    condition: &'static str,
    message: String,
}

/// The money rules for an action that raises this workload's cost to `cost`. `restart` is a
/// start of a stopped pod or a scale-up of an endpoint at zero workers, which needs the
/// restart margin under the credit policy.
fn check_money(ctx: &Context<'_>, cost: &WorkloadCost, restart: bool) -> Option<Refusal> {
    let cap = ctx.spec.spending_cap.usd_per_hour.amount();
    if cost.worst_case_per_hour > cap {
        return Some(Refusal {
            reason: "SpendCapExceeded",
            condition: CONDITION_SPEND_CAP_EXCEEDED,
            message: format!(
                "worst case {} USD/h exceeds the workload cap {} USD/h (spec.spendingCap.usdPerHour)",
                usd(cost.worst_case_per_hour),
                usd(cap)
            ),
        });
    }
    if let Some(month_cap) = ctx.spec.spending_cap.usd_per_month {
        let month = cost.expected_per_hour * Decimal::from(HOURS_PER_MONTH);
        if month > month_cap.amount() {
            return Some(Refusal {
                reason: "SpendCapExceeded",
                condition: CONDITION_SPEND_CAP_EXCEEDED,
                message: format!(
                    "projected month {} USD exceeds the workload cap {} USD (spec.spendingCap.usdPerMonth)",
                    usd(month),
                    usd(month_cap.amount())
                ),
            });
        }
    }
    let pending = &ctx.money.pending;
    let taken = if pending.by.is_empty() {
        String::new()
    } else {
        format!("; approved before it: {}", pending.names())
    };
    let account = ctx.money.others_worst_case_per_hour + cost.worst_case_per_hour;
    if account > ctx.money.account_cap_per_hour {
        return Some(Refusal {
            reason: "AccountCapExceeded",
            condition: CONDITION_SPEND_CAP_EXCEEDED,
            message: format!(
                "worst case {} USD/h for the account (this workload {} USD/h) exceeds the account cap {} USD/h{taken}",
                usd(account),
                usd(cost.worst_case_per_hour),
                usd(ctx.money.account_cap_per_hour)
            ),
        });
    }
    let (Some(balance), Some(spend)) = (ctx.money.balance, ctx.money.spend_per_hour) else {
        return Some(Refusal {
            reason: "BalanceUnknown",
            condition: CONDITION_INSUFFICIENT_CREDIT,
            message: "the account balance is not known yet; nothing is started until it is"
                .to_string(),
        });
    };
    let added = cost.worst_case_per_hour;
    let hour = spend + pending.worst_per_hour + added;
    if balance < hour {
        let approved = if pending.by.is_empty() {
            String::new()
        } else {
            format!(
                " + {} USD/h approved before it for {}",
                usd(pending.worst_per_hour),
                pending.names()
            )
        };
        return Some(Refusal {
            reason: "InsufficientCredit",
            condition: CONDITION_INSUFFICIENT_CREDIT,
            message: format!(
                "balance {} USD is below one hour of spend ({} USD/h now{approved} + {} USD/h new)",
                usd(balance),
                usd(spend),
                usd(added)
            ),
        });
    }
    // What the credit policy would stop is not started: the same rule, seen from the start.
    if ctx.money.credit_action == CreditAction::StopLowestPriority {
        let margin = if restart { RESTART_MARGIN_HOURS } else { 0 };
        let hours = ctx.money.minimum_runway_hours + margin;
        let rate = spend + pending.expected_per_hour + cost.expected_per_hour;
        if !rate.is_zero() && balance < rate * Decimal::from(hours) {
            let why = if restart {
                format!(
                    "the minimum runway of {} hours plus {RESTART_MARGIN_HOURS} hour, so that what the credit policy stopped is not started again before the balance has room",
                    ctx.money.minimum_runway_hours
                )
            } else {
                format!(
                    "the minimum runway of {} hours: the credit policy would stop it",
                    ctx.money.minimum_runway_hours
                )
            };
            return Some(Refusal {
                reason: "RunwayTooShort",
                condition: CONDITION_INSUFFICIENT_CREDIT,
                message: format!(
                    "balance {} USD would last {} hours at {} USD/h with it, under {why}{taken}",
                    usd(balance),
                    (balance / rate).round_dp(1),
                    usd(rate)
                ),
            });
        }
    }
    None
}

/// The workloads the credit policy stops, lowest priority first, until the runway is back:
/// `(key, priority, cost per hour)` in, keys out. Then, highest priority first, a chosen one
/// that still fits with the restart margin (the minimum runway plus
/// [`RESTART_MARGIN_HOURS`]) keeps running: the planner would start it again on the next
/// pass, and the policy must never stop what the planner starts. Pure, for the account's
/// reconcile.
pub fn credit_victims(
    balance: Decimal,
    spend_per_hour: Decimal,
    minimum_runway_hours: u32,
    workloads: &[(String, i32, Decimal)],
) -> Vec<String> {
    let sorted = credit_order(workloads);
    credit_victims_ranked(
        balance,
        spend_per_hour,
        minimum_runway_hours,
        sorted.iter().map(|(k, p, c)| (k.as_str(), *p, *c)),
    )
}

/// The workloads that cost something now, in the order the credit policy stops them: lowest
/// priority first, then the most expensive, then by key.
pub fn credit_order(workloads: &[(String, i32, Decimal)]) -> Vec<(String, i32, Decimal)> {
    let mut sorted: Vec<_> = workloads
        .iter()
        .filter(|(_, _, c)| *c > Decimal::ZERO)
        .cloned()
        .collect();
    sorted.sort_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
    sorted
}

/// [`credit_victims`] over workloads already in [`credit_order`] (the controller keeps the
/// ranking as workloads change): reads only as far down the ranking as the runway needs.
pub fn credit_victims_ranked<'a>(
    balance: Decimal,
    spend_per_hour: Decimal,
    minimum_runway_hours: u32,
    ranked: impl IntoIterator<Item = (&'a str, i32, Decimal)>,
) -> Vec<String> {
    let hours = Decimal::from(minimum_runway_hours);
    let mut spend = spend_per_hour;
    let mut victims: Vec<(&str, Decimal)> = Vec::new();
    for (key, _, cost) in ranked {
        if spend.is_zero() || balance / spend >= hours {
            break;
        }
        victims.push((key, cost));
        spend -= cost;
    }
    let with_margin = Decimal::from(minimum_runway_hours + RESTART_MARGIN_HOURS);
    let mut kept = Vec::new();
    for (key, cost) in victims.iter().rev() {
        if balance >= (spend + *cost) * with_margin {
            spend += *cost;
            kept.push(*key);
        }
    }
    victims
        .into_iter()
        .filter(|(key, _)| !kept.contains(key))
        .map(|(key, _)| key.to_string())
        .collect()
}

// ---- the plan -------------------------------------------------------------------------------------

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
    let cost = workload_cost(ctx.spec, ctx.prices, Usage::default()).ok();
    let mut draft = Draft::new();
    if management != ManagementPolicy::Paused {
        match desired {
            Desired::Pod(pod) => plan_pod(pod, observed, ctx, cost.as_ref(), &mut draft),
            Desired::Endpoint(endpoint) => {
                plan_endpoint(endpoint, observed, ctx, cost.as_ref(), &mut draft)
            }
        }
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
        && balance / spend < Decimal::from(ctx.money.minimum_runway_hours)
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
                (balance / spend).round_dp(1),
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

// ---- pods -----------------------------------------------------------------------------------------

fn pod_request(pod: &DesiredPod, gpu: &str) -> CreatePod {
    CreatePod {
        name: pod.name.clone(),
        image: pod.container.image.clone(),
        args: pod.container.args.clone(),
        disk: Some(pod.container.disk),
        ports: pod.container.ports.clone(),
        env: pod.container.env.clone(),
        registry: None,
        cloud: Some(pod.cloud.to_string()),
        gpu: CreateGpu {
            id: gpu.to_string(),
            count: pod.gpu_count,
            allowed_cuda_versions: pod.allowed_cuda_versions.clone(),
            min_cuda_version: pod.min_cuda_version.clone(),
        },
        data_center_ids: pod.data_centers.clone(),
        mounts: pod.mount.as_ref().map(mounts),
    }
}

fn mounts(mount: &DesiredMount) -> Mounts {
    match mount {
        DesiredMount::Persistent { size, path } => Mounts {
            persistent: Some(PersistentMount {
                size: *size,
                path: path.clone(),
            }),
            network: None,
        },
        DesiredMount::Network { volume_id, path } => Mounts {
            persistent: None,
            network: Some(vec![NetworkMount {
                volume_id: volume_id.clone(),
                path: path.clone(),
            }]),
        },
    }
}

fn drift(field: &str, declared: impl ToString, observed: impl ToString) -> DriftEntry {
    DriftEntry {
        field: field.to_string(),
        declared: declared.to_string(),
        observed: observed.to_string(),
    }
}

/// Environment drift, by key, never by value (values may come from Secrets).
fn env_drift(
    desired: &BTreeMap<String, String>,
    observed: &BTreeMap<String, String>,
) -> Vec<DriftEntry> {
    let keys: std::collections::BTreeSet<&String> = desired.keys().chain(observed.keys()).collect();
    keys.into_iter()
        .filter(|k| k.as_str() != OWNER_ENV)
        .filter_map(|k| match (desired.get(k), observed.get(k)) {
            (Some(a), Some(b)) if a == b => None,
            (Some(_), Some(_)) => Some(drift(
                &format!("spec.env[{k}]"),
                "(value)",
                "(another value)",
            )),
            (Some(_), None) => Some(drift(&format!("spec.env[{k}]"), "set", "unset")),
            (None, _) => Some(drift(&format!("spec.env[{k}]"), "unset", "set")),
        })
        .collect()
}

fn env_matches(desired: &BTreeMap<String, String>, observed: &BTreeMap<String, String>) -> bool {
    env_drift(desired, observed).is_empty()
}

/// What RunPod cannot change in place on this pod, as reasons.
fn replace_reasons(desired: &DesiredPod, pod: &Pod) -> Vec<String> {
    let mut reasons = Vec::new();
    let (gpu, count) = pod
        .gpu
        .as_ref()
        .map_or(("", 0), |g| (g.id.as_str(), g.count));
    if !desired.gpu_types.iter().any(|t| t == gpu) {
        reasons.push(format!("GPU type {gpu} is not in spec.gpu.types"));
    }
    if count != desired.gpu_count {
        reasons.push(format!("GPU count {count} -> {}", desired.gpu_count));
    }
    if pod.cloud != desired.cloud {
        reasons.push(format!("cloud {} -> {}", pod.cloud, desired.cloud));
    }
    if let Some(dc) = &pod.data_center_id
        && !desired.data_centers.is_empty()
        && !desired.data_centers.contains(dc)
    {
        reasons.push(format!("data centre {dc} is not in spec.dataCenters"));
    }
    match (&desired.mount, &pod.mounts.persistent, &pod.mounts.network) {
        (Some(DesiredMount::Persistent { size, .. }), Some(p), _) if *size < p.size => reasons
            .push(format!(
                "pod volume {} GB -> {size} GB (volumes only grow)",
                p.size
            )),
        (Some(DesiredMount::Persistent { .. }), Some(_), _) => {}
        (Some(DesiredMount::Network { volume_id, .. }), _, Some(list))
            if list.first().is_some_and(|m| &m.volume_id == volume_id) => {}
        (None, None, None) => {}
        (None, None, Some(list)) if list.is_empty() => {}
        _ => reasons.push("the mount changes kind or network volume".to_string()),
    }
    reasons
}

fn pod_drift(desired: &DesiredPod, pod: &Pod) -> Vec<DriftEntry> {
    let mut out = Vec::new();
    let c = &desired.container;
    if pod.image != c.image {
        out.push(drift("spec.image", &c.image, &pod.image));
    }
    if pod.args != c.args.clone().unwrap_or_default() && c.args.is_some() {
        out.push(drift(
            "spec.args",
            c.args.as_deref().unwrap_or(""),
            &pod.args,
        ));
    }
    if pod.disk != c.disk {
        out.push(drift("spec.containerDiskGb", c.disk, pod.disk));
    }
    if pod.ports != c.ports {
        out.push(drift("spec.ports", c.ports.join(","), pod.ports.join(",")));
    }
    out.extend(env_drift(&c.env, &pod.env));
    let (gpu, count) = pod
        .gpu
        .as_ref()
        .map_or(("", 0), |g| (g.id.as_str(), g.count));
    if !desired.gpu_types.iter().any(|t| t == gpu) {
        out.push(drift("spec.gpu.types", desired.gpu_types.join(" | "), gpu));
    }
    if count != desired.gpu_count {
        out.push(drift("spec.gpu.count", desired.gpu_count, count));
    }
    if pod.cloud != desired.cloud {
        out.push(drift("spec.gpu.cloud", desired.cloud, &pod.cloud));
    }
    if let Some(dc) = &pod.data_center_id
        && !desired.data_centers.is_empty()
        && !desired.data_centers.contains(dc)
    {
        out.push(drift(
            "spec.dataCenters",
            desired.data_centers.join(","),
            dc,
        ));
    }
    match (&desired.mount, &pod.mounts.persistent) {
        (Some(DesiredMount::Persistent { size, path }), Some(p)) => {
            if p.size != *size {
                out.push(drift("spec.volume.sizeGb", size, p.size));
            }
            if &p.path != path {
                out.push(drift("spec.volume.mountPath", path, &p.path));
            }
        }
        (Some(DesiredMount::Network { path, .. }), _) => {
            if let Some(m) = pod.mounts.network.as_ref().and_then(|l| l.first())
                && &m.path != path
            {
                out.push(drift("spec.networkVolumes[0].mountPath", path, &m.path));
            }
        }
        _ => {}
    }
    let running = matches!(pod.status.as_str(), "RUNNING" | "PROVISIONING" | "STARTING");
    if running != desired.running {
        out.push(drift(
            "spec.state",
            if desired.running {
                "Running"
            } else {
                "Stopped"
            },
            &pod.status,
        ));
    }
    out
}

/// The in-place change that brings the pod to the desired state, if any.
fn pod_update(desired: &DesiredPod, pod: &Pod) -> Option<(UpdatePod, bool)> {
    let c = &desired.container;
    let mut update = UpdatePod::default();
    let mut resets = false;
    if pod.image != c.image {
        update.image = Some(c.image.clone());
        resets = true;
    }
    if let Some(args) = &c.args
        && &pod.args != args
    {
        update.args = Some(args.clone());
        resets = true;
    }
    if pod.disk != c.disk {
        update.disk = Some(c.disk);
        resets = true;
    }
    if pod.ports != c.ports {
        update.ports = Some(c.ports.clone());
        resets = true;
    }
    if !env_matches(&c.env, &pod.env) {
        update.env = Some(c.env.clone());
        resets = true;
    }
    match (&desired.mount, &pod.mounts.persistent, &pod.mounts.network) {
        (Some(DesiredMount::Persistent { size, path }), Some(p), _)
            if p.size != *size || &p.path != path =>
        {
            update.mounts = Some(mounts(desired.mount.as_ref().expect("matched")));
            resets = true;
        }
        (Some(DesiredMount::Network { path, .. }), _, Some(list))
            if list.first().is_some_and(|m| &m.path != path) =>
        {
            update.mounts = Some(mounts(desired.mount.as_ref().expect("matched")));
            resets = true;
        }
        _ => {}
    }
    if pod.name != desired.name {
        update.name = Some(desired.name.clone());
    }
    (update != UpdatePod::default()).then_some((update, resets))
}

fn plan_pod(
    desired: &DesiredPod,
    observed: Observed<'_>,
    ctx: &Context<'_>,
    cost: Option<&WorkloadCost>,
    draft: &mut Draft,
) {
    let mine = owned(
        observed.pods,
        observed.index.map(|i| i.pods),
        |p| &p.id,
        |p| &p.name,
        |p| p.env.get(OWNER_ENV).map(String::as_str),
        ctx,
    );
    // Keep the pod that needs no replace (a finished replace), else the one recorded, else
    // the newest; the rest are extras the operator made.
    let keep = mine
        .iter()
        .find(|p| replace_reasons(desired, p).is_empty())
        .or_else(|| mine.iter().find(|p| ctx.known_id == Some(p.id.as_str())))
        .or_else(|| mine.iter().max_by_key(|p| p.created_at.clone()))
        .copied();
    for extra in mine.iter().filter(|p| keep.is_none_or(|k| k.id != p.id)) {
        draft.actions.push(Action::DeletePod {
            id: extra.id.clone(),
            reason: "a second pod for the same workload".to_string(),
        });
    }

    let Some(pod) = keep else {
        if !desired.running {
            draft.state = Some("Stopped (not created)".to_string());
            return;
        }
        if let Some(reason) = &ctx.money.forced_down {
            draft.waiting = Some(format!("not created: {reason}"));
            return;
        }
        let create = Action::CreatePod {
            request: pod_request(desired, &desired.gpu_types[0]),
            candidates: desired.gpu_types.clone(),
        };
        draft.spend(ctx, cost, Decimal::ZERO, create);
        draft.drift.push(drift("pod", "exists", "missing"));
        return;
    };

    draft.runpod_id = Some(pod.id.clone());
    draft.state = Some(pod.status.clone());
    draft.current_per_hour = decimal(pod.cost);
    draft.drift = pod_drift(desired, pod);
    let is_running = matches!(pod.status.as_str(), "RUNNING" | "PROVISIONING" | "STARTING");

    // The credit policy chose this workload to stop.
    if let Some(reason) = &ctx.money.forced_down {
        if is_running {
            draft.actions.push(Action::StopPod {
                id: pod.id.clone(),
                reason: reason.clone(),
            });
        }
        draft.suspended = Some(reason.clone());
        return;
    }

    // The stopped-volume policy.
    if pod.status == "EXITED"
        && !desired.running
        && let (Some(policy), Some(since)) = (&ctx.stopped_volume_policy, ctx.stopped_since)
    {
        let stopped_for = ctx.now.duration_since(since).as_secs_f64() / 3600.0;
        if stopped_for >= f64::from(policy.after_hours) {
            let volume = pod.mounts.persistent.as_ref().map_or(0, |p| p.size);
            let monthly = Decimal::from(volume) * ctx.prices.storage.pod_volume_stopped;
            let message = format!(
                "stopped for {stopped_for:.0} hours (policy: {} hours); its {volume} GB volume costs {} USD/month while stopped",
                policy.after_hours,
                usd(monthly)
            );
            draft.verdicts.push(Verdict::yes(
                CONDITION_STOPPED_TOO_LONG,
                "StoppedVolumePolicy",
                message.clone(),
            ));
            if policy.action == StoppedVolumeAction::Delete {
                draft.actions.push(Action::DeletePod {
                    id: pod.id.clone(),
                    reason: format!("stopped-volume policy: {message}"),
                });
            }
            return;
        }
    }

    let because = replace_reasons(desired, pod);
    if !because.is_empty() {
        let loses = pod
            .mounts
            .persistent
            .as_ref()
            .map(|p| format!("the {} GB pod volume at {} and its data", p.size, p.path));
        let action = Action::ReplacePod {
            old_id: pod.id.clone(),
            request: pod_request(desired, &desired.gpu_types[0]),
            candidates: desired.gpu_types.clone(),
            because,
            loses: loses.clone(),
        };
        let hash = plan_hash(std::slice::from_ref(&action));
        let approved = ctx.spec.replace_policy == ReplacePolicy::Allow
            || ctx.approved_hash == Some(hash.as_str());
        if loses.is_some() && !approved {
            let message = format!(
                "{}; to go ahead, annotate the workload with runpod-operator.dev/approve-replace={hash} or set spec.replacePolicy: Allow",
                action.describe()
            );
            draft.verdicts.push(Verdict::yes(
                CONDITION_REPLACE_NEEDS_APPROVAL,
                "DataWouldBeLost",
                message.clone(),
            ));
            draft.stalled = Some(("ReplaceNeedsApproval", message));
            return;
        }
        draft.spend(ctx, cost, decimal(pod.cost), action);
        return;
    }

    if let Some((update, resets)) = pod_update(desired, pod) {
        draft.actions.push(Action::UpdatePod {
            id: pod.id.clone(),
            request: update,
            resets,
        });
    }
    match (desired.running, pod.status.as_str()) {
        (true, "EXITED" | "ERROR") => draft.spend(
            ctx,
            cost,
            decimal(pod.cost),
            Action::StartPod { id: pod.id.clone() },
        ),
        (false, "RUNNING" | "PROVISIONING" | "STARTING") => draft.actions.push(Action::StopPod {
            id: pod.id.clone(),
            reason: "spec.state is Stopped".to_string(),
        }),
        (true, "PROVISIONING" | "STARTING") => {
            draft.waiting = Some(format!("pod {} is {}", pod.id, pod.status.to_lowercase()));
        }
        _ => {}
    }
}

// ---- endpoints -------------------------------------------------------------------------------------

fn endpoint_gpu(desired: &DesiredEndpoint) -> EndpointGpu {
    EndpointGpu {
        pools: desired.pools.clone(),
        count: desired.gpu_count,
        allowed_cuda_versions: desired.allowed_cuda_versions.clone(),
        min_cuda_version: desired.min_cuda_version.clone(),
    }
}

fn endpoint_workers(desired: &DesiredEndpoint) -> Workers {
    Workers {
        min: Some(desired.workers_min),
        max: Some(desired.workers_max),
        idle_timeout: desired.idle_timeout,
    }
}

fn endpoint_request(desired: &DesiredEndpoint) -> CreateEndpoint {
    CreateEndpoint {
        name: desired.name.clone(),
        endpoint_type: "QUEUE".to_string(),
        image: desired.container.image.clone(),
        args: desired.container.args.clone(),
        disk: Some(desired.container.disk),
        env: desired.container.env.clone(),
        ports: desired.container.ports.clone(),
        registry: None,
        gpu: endpoint_gpu(desired),
        workers: endpoint_workers(desired),
        scaling: desired.scaling.clone(),
        data_center_ids: desired.data_centers.clone(),
        network_volumes: desired.network_volumes.clone(),
        timeout: desired.timeout_ms,
        flashboot: desired.flashboot.to_string(),
    }
}

/// The endpoint's drift and the PATCH that corrects it.
fn endpoint_diff(
    desired: &DesiredEndpoint,
    e: &Endpoint,
) -> (Vec<DriftEntry>, UpdateEndpoint, bool) {
    let mut out = Vec::new();
    let mut update = UpdateEndpoint::default();
    let c = &desired.container;
    let mut raises = false;
    if e.image != c.image {
        out.push(drift("spec.image", &c.image, &e.image));
        update.image = Some(c.image.clone());
    }
    if e.disk != c.disk {
        out.push(drift("spec.containerDiskGb", c.disk, e.disk));
        update.disk = Some(c.disk);
        raises |= c.disk > e.disk;
    }
    if !env_matches(&c.env, &e.env) {
        out.extend(env_drift(&c.env, &e.env));
        update.env = Some(c.env.clone());
    }
    let gpu = e.gpu.clone().unwrap_or_default();
    if gpu.pools != desired.pools || gpu.count != desired.gpu_count {
        out.push(drift(
            "spec.gpu",
            format!("{} x {}", desired.gpu_count, desired.pools.join("|")),
            format!("{} x {}", gpu.count, gpu.pools.join("|")),
        ));
        update.gpu = Some(endpoint_gpu(desired));
        raises = true;
    }
    let workers = e.workers;
    let mut workers_changed = false;
    if workers.min != Some(desired.workers_min) {
        out.push(drift(
            "spec.serverless.activeWorkers",
            desired.workers_min,
            workers.min.unwrap_or(0),
        ));
        raises |= Some(desired.workers_min) > workers.min;
        workers_changed = true;
    }
    if workers.max != Some(desired.workers_max) {
        out.push(drift(
            "spec.serverless.maxWorkers",
            desired.workers_max,
            workers.max.unwrap_or(0),
        ));
        raises |= Some(desired.workers_max) > workers.max;
        workers_changed = true;
    }
    if let Some(idle) = desired.idle_timeout
        && workers.idle_timeout != Some(idle)
    {
        out.push(drift(
            "spec.serverless.idleTimeoutSeconds",
            idle,
            workers
                .idle_timeout
                .map_or("unset".to_string(), |v| v.to_string()),
        ));
        workers_changed = true;
    }
    if workers_changed {
        update.workers = Some(endpoint_workers(desired));
    }
    if e.scaling != desired.scaling {
        out.push(drift(
            "spec.serverless.scaler",
            format!("{:?}", desired.scaling),
            format!("{:?}", e.scaling),
        ));
        update.scaling = Some(desired.scaling.clone());
    }
    if e.data_center_ids != desired.data_centers {
        out.push(drift(
            "spec.dataCenters",
            desired.data_centers.join(","),
            e.data_center_ids.join(","),
        ));
        update.data_center_ids = Some(desired.data_centers.clone());
    }
    if e.network_volumes != desired.network_volumes {
        out.push(drift(
            "spec.networkVolumes",
            desired.network_volumes.join(","),
            e.network_volumes.join(","),
        ));
        update.network_volumes = Some(desired.network_volumes.clone());
    }
    if let Some(timeout) = desired.timeout_ms
        && e.timeout != timeout
    {
        out.push(drift(
            "spec.serverless.executionTimeoutSeconds",
            timeout / 1000,
            e.timeout / 1000,
        ));
        update.timeout = Some(timeout);
    }
    if e.flashboot != desired.flashboot {
        out.push(drift(
            "spec.serverless.flashBoot",
            desired.flashboot,
            &e.flashboot,
        ));
        update.flashboot = Some(desired.flashboot.to_string());
    }
    if e.name != desired.name {
        update.name = Some(desired.name.clone());
    }
    (out, update, raises)
}

fn plan_endpoint(
    desired: &DesiredEndpoint,
    observed: Observed<'_>,
    ctx: &Context<'_>,
    cost: Option<&WorkloadCost>,
    draft: &mut Draft,
) {
    let mine = owned(
        observed.endpoints,
        observed.index.map(|i| i.endpoints),
        |e| &e.id,
        |e| &e.name,
        |e| e.env.get(OWNER_ENV).map(String::as_str),
        ctx,
    );
    let keep = mine
        .iter()
        .find(|e| ctx.known_id == Some(e.id.as_str()))
        .or_else(|| mine.first())
        .copied();
    for extra in mine.iter().filter(|e| keep.is_none_or(|k| k.id != e.id)) {
        draft.actions.push(Action::DeleteEndpoint {
            id: extra.id.clone(),
            reason: "a second endpoint for the same workload".to_string(),
        });
    }
    let floor = cost.map_or(Decimal::ZERO, |c| c.expected_per_hour);

    let Some(endpoint) = keep else {
        if let Some(reason) = &ctx.money.forced_down {
            draft.waiting = Some(format!("not created: {reason}"));
            return;
        }
        let create = Action::CreateEndpoint {
            request: endpoint_request(desired),
        };
        draft.spend(ctx, cost, Decimal::ZERO, create);
        draft.drift.push(drift("endpoint", "exists", "missing"));
        return;
    };

    draft.runpod_id = Some(endpoint.id.clone());
    draft.state = Some(format!(
        "{} active / {} max",
        endpoint.workers.min.unwrap_or(0),
        endpoint.workers.max.unwrap_or(0)
    ));
    draft.current_per_hour = floor;

    if let Some(reason) = &ctx.money.forced_down {
        if endpoint.workers.max != Some(0) || endpoint.workers.min != Some(0) {
            draft.actions.push(Action::UpdateEndpoint {
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
            });
        }
        draft.suspended = Some(reason.clone());
        return;
    }

    let (drift, update, raises) = endpoint_diff(desired, endpoint);
    draft.drift = drift;
    if update == UpdateEndpoint::default() {
        return;
    }
    // A refused scale-up leaves the endpoint as it is; what that costs at worst is not
    // known here, so the declared worst case stands for it (never under-counted).
    // An endpoint at zero workers (where the credit policy puts it) coming back up is a
    // restart: it needs the margin too.
    let floor = cost.map_or(Decimal::ZERO, |c| c.worst_case_per_hour);
    let restart = endpoint.workers.max == Some(0);
    if raises && !draft.admit(ctx, cost, floor, restart) {
        return;
    }
    let saving = !raises
        && update.image.is_none()
        && update.env.is_none()
        && update.gpu.is_none()
        && update.workers.is_some();
    draft.actions.push(Action::UpdateEndpoint {
        id: endpoint.id.clone(),
        request: update,
        saving,
    });
}

// ---- deletion ------------------------------------------------------------------------------------------

/// What deleting the workload does on RunPod. Never reads the spec's validity: a broken spec
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
    actions
}

// ---- network volumes -----------------------------------------------------------------------------------

/// The plan of one NetworkVolume: the actions, the tracked id, drift and conditions.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumePlan {
    /// What to do.
    pub actions: Vec<Action>,
    /// The RunPod id.
    pub runpod_id: Option<String>,
    /// Where RunPod differs.
    pub drift: Vec<DriftEntry>,
    /// Conditions.
    pub verdicts: Vec<Verdict>,
    /// USD per month.
    pub cost_per_month: Decimal,
}

/// Plans a NetworkVolume: create it, grow it; report what cannot change (data centre, tier,
/// a smaller size). The account cap counts its hourly cost with the rest of the account.
pub fn plan_volume(
    owner: &Owner,
    spec: &NetworkVolumeSpec,
    volumes: &[RunPodVolume],
    known_id: Option<&str>,
    adopt_id: Option<&str>,
    money: &Money,
    prices: &PriceCatalogue,
) -> VolumePlan {
    let name = owner.runpod_name();
    let cost_per_month = super::cost::network_volume_per_month(spec.size_gb, &prices.storage);
    let per_hour = cost_per_month / Decimal::from(HOURS_PER_MONTH);
    let tier = if spec.tier == VolumeTier::HighPerformance {
        "HIGH_PERFORMANCE"
    } else {
        "STANDARD"
    };
    let found = volumes
        .iter()
        .find(|v| adopt_id == Some(v.id.as_str()) || known_id == Some(v.id.as_str()))
        .or_else(|| volumes.iter().find(|v| v.name == name));
    let mut plan = VolumePlan {
        actions: Vec::new(),
        runpod_id: found.map(|v| v.id.clone()),
        drift: Vec::new(),
        verdicts: Vec::new(),
        cost_per_month,
    };
    let manage = spec.management_policy == ManagementPolicy::Manage;
    let mut stalled: Option<(&'static str, String)> = None;
    match found {
        None if spec.management_policy == ManagementPolicy::Paused => {}
        None => {
            plan.drift.push(drift("networkVolume", "exists", "missing"));
            let account = money.others_worst_case_per_hour + per_hour;
            if account > money.account_cap_per_hour {
                let message = format!(
                    "worst case {} USD/h for the account exceeds the account cap {} USD/h",
                    usd(account),
                    usd(money.account_cap_per_hour)
                );
                plan.verdicts.push(Verdict::yes(
                    CONDITION_SPEND_CAP_EXCEEDED,
                    "AccountCapExceeded",
                    message.clone(),
                ));
                stalled = Some(("AccountCapExceeded", message));
            } else if manage {
                plan.actions.push(Action::CreateVolume {
                    request: CreateNetworkVolume {
                        name,
                        size: spec.size_gb,
                        data_center: spec.data_center.clone(),
                        volume_type: Some(tier.to_string()),
                    },
                });
            }
        }
        Some(v) => {
            if v.size != spec.size_gb {
                plan.drift.push(drift("spec.sizeGb", spec.size_gb, v.size));
            }
            if v.data_center != spec.data_center {
                plan.drift
                    .push(drift("spec.dataCenter", &spec.data_center, &v.data_center));
                stalled = Some((
                    "Immutable",
                    format!(
                        "the volume is in {}, not {}: a volume cannot move; create a new NetworkVolume instead",
                        v.data_center, spec.data_center
                    ),
                ));
            }
            if !v.volume_type.is_empty() && v.volume_type != tier {
                plan.drift.push(drift("spec.tier", tier, &v.volume_type));
                stalled = Some((
                    "Immutable",
                    format!(
                        "the volume's tier is {}, and a tier cannot change",
                        v.volume_type
                    ),
                ));
            }
            if v.size > spec.size_gb {
                stalled = Some((
                    "CannotShrink",
                    format!(
                        "the volume has {} GB and cannot shrink to {} GB",
                        v.size, spec.size_gb
                    ),
                ));
            } else if v.size < spec.size_gb && manage {
                plan.actions.push(Action::UpdateVolume {
                    id: v.id.clone(),
                    request: UpdateNetworkVolume {
                        name: None,
                        size: Some(spec.size_gb),
                    },
                });
            }
        }
    }
    let drifted = !plan.drift.is_empty();
    match (&stalled, plan.actions.first()) {
        (Some((reason, message)), _) => {
            plan.verdicts
                .push(Verdict::no(CONDITION_READY, reason, message.clone()));
            plan.verdicts
                .push(Verdict::yes(CONDITION_STALLED, reason, message.clone()));
            plan.verdicts
                .push(Verdict::no(CONDITION_RECONCILING, reason, ""));
        }
        (None, Some(action)) => {
            plan.verdicts.push(Verdict::no(
                CONDITION_READY,
                "Progressing",
                action.describe(),
            ));
            plan.verdicts
                .push(Verdict::no(CONDITION_STALLED, "Progressing", ""));
            plan.verdicts.push(Verdict::yes(
                CONDITION_RECONCILING,
                "Progressing",
                action.describe(),
            ));
        }
        (None, None) => {
            plan.verdicts.push(Verdict::yes(
                CONDITION_READY,
                "InSync",
                "RunPod matches the spec",
            ));
            plan.verdicts
                .push(Verdict::no(CONDITION_STALLED, "InSync", ""));
            plan.verdicts
                .push(Verdict::no(CONDITION_RECONCILING, "InSync", ""));
        }
    }
    plan.verdicts.push(if drifted {
        Verdict::yes(
            CONDITION_DRIFTED,
            "FieldsDiffer",
            "RunPod differs from the spec (see status)",
        )
    } else {
        Verdict::no(CONDITION_DRIFTED, "InSync", "")
    });
    plan
}

/// What deleting a NetworkVolume does: nothing with `Orphan`; with `Delete`, the volume goes,
/// but never while a pod or endpoint still uses it (the error names them).
pub fn plan_volume_delete(
    owner: &Owner,
    known_id: Option<&str>,
    volumes: &[RunPodVolume],
    observed: Observed<'_>,
    orphan: bool,
) -> Result<Vec<Action>, String> {
    if orphan {
        return Ok(Vec::new());
    }
    let name = owner.runpod_name();
    let Some(volume) = volumes
        .iter()
        .find(|v| known_id == Some(v.id.as_str()) || v.name == name)
    else {
        return Ok(Vec::new());
    };
    let mut users: Vec<String> = observed
        .pods
        .iter()
        .filter(|p| {
            p.mounts
                .network
                .as_ref()
                .is_some_and(|l| l.iter().any(|m| m.volume_id == volume.id))
        })
        .map(|p| format!("pod {} ({})", p.id, p.name))
        .collect();
    users.extend(
        observed
            .endpoints
            .iter()
            .filter(|e| e.network_volumes.contains(&volume.id))
            .map(|e| format!("endpoint {} ({})", e.id, e.name)),
    );
    if !users.is_empty() {
        return Err(format!("the volume is still used by {}", users.join(", ")));
    }
    Ok(vec![Action::DeleteVolume {
        id: volume.id.clone(),
        reason: "the NetworkVolume was deleted".to_string(),
    }])
}
