//! Reconciling a set of objects against one RunPod account: the inventory (I/O), the
//! executor (I/O) and the pass that ties them to the engine. [`plan_workspace`] is pure (the
//! CLI's `plan` and the tests use it); [`apply_pass`] refreshes the inventory, plans, and
//! runs the first write of every object, money-saving writes first.

pub mod executor;
pub mod inventory;

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use rust_decimal::{Decimal, prelude::FromPrimitive};

use crate::{
    api::{CreditAction, GpuWorkload, NetworkVolume, RunPodAccountSpec},
    engine::{
        conditions::Verdict,
        cost::{Usage, network_volume_per_month, workload_cost},
        desired::{DesiredError, References, VolumeRef, desired},
        identity::{ADOPT_ANNOTATION, APPROVE_REPLACE_ANNOTATION, Owner},
        plan::{
            Action, Context, Money, Observed, Pending, Spend, credit_order, credit_victims_ranked,
            plan, plan_volume,
        },
        prices::{HOURS_PER_MONTH, PriceCatalogue},
    },
};
use executor::{Outcome, execute};
use inventory::{Inventory, Snapshot};

/// The built-in price snapshot with RunPod's catalogue (`GET /v2/catalog/gpus`) on top: what
/// RunPod charges today wins, and a type the catalogue does not price keeps the snapshot's
/// figure or, if it has none, stays unknown (refused, never zero). One request.
pub async fn live_prices(
    client: &crate::runpod::Client,
) -> Result<PriceCatalogue, crate::runpod::Error> {
    let gpus = client.catalog_gpus().await?;
    let mut prices = PriceCatalogue::builtin();
    prices.apply_live(
        gpus.iter()
            .map(crate::engine::prices::LiveGpuPrice::from_catalog),
    );
    Ok(prices)
}

/// Everything declared for one account: the objects and the Secrets they read.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// The account's settings.
    pub account: RunPodAccountSpec,
    /// Workloads.
    pub workloads: Vec<GpuWorkload>,
    /// Network volumes.
    pub volumes: Vec<NetworkVolume>,
    /// Secrets: namespace -> name -> key -> value.
    pub secrets: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>,
}

/// The plan of one object, and what came of it.
#[derive(Debug)]
pub struct Item {
    /// `GpuWorkload` or `NetworkVolume`.
    pub kind: &'static str,
    /// `namespace/name`.
    pub key: String,
    /// What to do, money first.
    pub actions: Vec<Action>,
    /// Where RunPod differs.
    pub drift: Vec<crate::api::DriftEntry>,
    /// Conditions.
    pub verdicts: Vec<Verdict>,
    /// The RunPod id.
    pub runpod_id: Option<String>,
    /// RunPod's state.
    pub state: Option<String>,
    /// Worst-case USD per hour of the declared configuration.
    pub worst_case_per_hour: Option<Decimal>,
    /// Expected USD per hour.
    pub expected_per_hour: Option<Decimal>,
    /// What the tracked object costs per hour now (a stopped pod: what RunPod reports).
    pub current_per_hour: Decimal,
    /// How the hourly cost changes when the plan is done.
    pub delta_per_hour: Decimal,
    /// The plan's hash.
    pub hash: String,
    /// What happened to the first write, after [`apply_pass`].
    pub outcome: Option<Outcome>,
    /// The spending action the plan asked for, approved or refused.
    pub spend: Option<Spend>,
}

impl Item {
    /// Whether the object is `Ready`.
    pub fn ready(&self) -> bool {
        self.verdicts
            .iter()
            .any(|v| v.kind == crate::api::CONDITION_READY && v.status)
    }

    /// The first condition that says why it is not ready.
    pub fn reason(&self) -> Option<&Verdict> {
        self.verdicts
            .iter()
            .find(|v| v.kind == crate::api::CONDITION_STALLED && v.status)
            .or_else(|| {
                self.verdicts
                    .iter()
                    .find(|v| v.kind == crate::api::CONDITION_READY)
            })
    }
}

fn owner_of(meta_namespace: Option<String>, name: &str, uid: Option<String>) -> Owner {
    Owner::of(meta_namespace.as_deref(), name, uid.as_deref())
}

/// The account-wide figures one object's plan needs: the snapshot, the balance, and the
/// worst case of everything declared (for the account cap). Pure.
pub struct AccountView<'a> {
    ws: &'a Workspace,
    snapshot: &'a Snapshot,
    prices: &'a PriceCatalogue,
    now: Timestamp,
    total_worst: Decimal,
    balance: Option<Decimal>,
    spend: Option<Decimal>,
}

fn item(kind: &'static str, key: String) -> Item {
    Item {
        kind,
        key,
        actions: Vec::new(),
        drift: Vec::new(),
        verdicts: Vec::new(),
        runpod_id: None,
        state: None,
        worst_case_per_hour: None,
        expected_per_hour: None,
        current_per_hour: Decimal::ZERO,
        delta_per_hour: Decimal::ZERO,
        hash: String::new(),
        outcome: None,
        spend: None,
    }
}

/// A workload's worst case per hour, as the account cap counts it (zero when it cannot be
/// priced: the workload itself is refused then).
pub fn worst_case(w: &GpuWorkload, prices: &PriceCatalogue) -> Decimal {
    workload_cost(&w.spec, prices, Usage::default())
        .map(|c| c.worst_case_per_hour)
        .unwrap_or_default()
}

/// What a network volume costs per hour, as the account cap counts it.
pub fn volume_hourly(v: &NetworkVolume, prices: &PriceCatalogue) -> Decimal {
    network_volume_per_month(v.spec.size_gb, &prices.storage) / Decimal::from(HOURS_PER_MONTH)
}

impl<'a> AccountView<'a> {
    /// The view of one account.
    pub fn new(
        ws: &'a Workspace,
        snapshot: &'a Snapshot,
        prices: &'a PriceCatalogue,
        now: Timestamp,
    ) -> Self {
        let total_worst = ws
            .workloads
            .iter()
            .map(|w| worst_case(w, prices))
            .sum::<Decimal>()
            + ws.volumes
                .iter()
                .map(|v| volume_hourly(v, prices))
                .sum::<Decimal>();
        Self::with_total(ws, snapshot, prices, now, total_worst)
    }

    /// The view of one account whose worst case is already known (the controller keeps it up
    /// to date as objects change): `total_worst` is what [`AccountView::plan_workload`]
    /// counts for every declared workload and volume, the planned one included. `ws.workloads`
    /// is not read, and may be empty. Plans made with a [`Budget`] that names the others'
    /// worst case do not read `total_worst` at all.
    pub fn with_total(
        ws: &'a Workspace,
        snapshot: &'a Snapshot,
        prices: &'a PriceCatalogue,
        now: Timestamp,
        total_worst: Decimal,
    ) -> Self {
        let account = snapshot.account.as_ref();
        Self {
            ws,
            snapshot,
            prices,
            now,
            total_worst,
            balance: account.and_then(|a| Decimal::from_f64(a.client_balance)),
            spend: account.and_then(|a| Decimal::from_f64(a.current_spend_per_hr)),
        }
    }

    fn money(&self, own: Decimal, forced_down: Option<String>, budget: &Budget) -> Money {
        Money {
            account_cap_per_hour: self.ws.account.spending_cap_usd_per_hour.amount(),
            others_worst_case_per_hour: budget
                .others_worst_per_hour
                .unwrap_or(self.total_worst - own),
            balance: self.balance,
            spend_per_hour: self.spend,
            minimum_runway_hours: self.ws.account.credit_policy.minimum_runway_hours,
            forced_down,
            credit_action: self.ws.account.credit_policy.action,
            pending: budget.pending.clone(),
        }
    }

    fn observed(&self) -> Observed<'a> {
        self.snapshot.observed()
    }

    /// Plans one NetworkVolume.
    pub fn plan_volume(&self, volume: &NetworkVolume) -> Item {
        let owner = owner_of(volume.namespace(), &volume.name_any(), volume.uid());
        let known = volume.status.as_ref().and_then(|s| s.runpod_id.clone());
        let adopt = volume.annotations().get(ADOPT_ANNOTATION).cloned();
        let hourly = volume_hourly(volume, self.prices);
        let p = plan_volume(
            &owner,
            &volume.spec,
            &self.snapshot.volumes,
            known.as_deref(),
            adopt.as_deref(),
            &self.money(hourly, None, &Budget::default()),
            self.prices,
        );
        Item {
            actions: p.actions,
            drift: p.drift,
            verdicts: p.verdicts,
            runpod_id: p.runpod_id,
            worst_case_per_hour: Some(hourly),
            expected_per_hour: Some(hourly),
            ..item("NetworkVolume", owner.key())
        }
    }

    /// The references of a workload: its namespace's NetworkVolumes (with their RunPod ids)
    /// and Secrets.
    fn references(&self, namespace: &str) -> References {
        References {
            volumes: self
                .ws
                .volumes
                .iter()
                .filter(|v| v.namespace().unwrap_or_default() == namespace)
                .map(|v| {
                    let volume_owner = owner_of(v.namespace(), &v.name_any(), v.uid());
                    let runpod_name = volume_owner.runpod_name();
                    let known = v.status.as_ref().and_then(|s| s.runpod_id.clone());
                    let id = self
                        .snapshot
                        .volume(known.as_deref(), &runpod_name)
                        .map(|rv| rv.id.clone());
                    (
                        v.name_any(),
                        VolumeRef {
                            runpod_id: id,
                            data_center: v.spec.data_center.clone(),
                        },
                    )
                })
                .collect(),
            secrets: self.ws.secrets.get(namespace).cloned().unwrap_or_default(),
        }
    }

    /// Plans one workload; `forced` is the credit policy's reason to stop it, if any.
    pub fn plan_workload(&self, workload: &GpuWorkload, forced: Option<String>) -> Item {
        self.plan_within(workload, forced, &Budget::default())
    }

    /// Plans one workload within a budget: what the others take and what was approved
    /// before it.
    pub fn plan_within(
        &self,
        workload: &GpuWorkload,
        forced: Option<String>,
        budget: &Budget,
    ) -> Item {
        let owner = owner_of(workload.namespace(), &workload.name_any(), workload.uid());
        let namespace = workload.namespace().unwrap_or_default();
        let base = item("GpuWorkload", owner.key());
        match desired(
            &owner,
            &workload.spec,
            &self.references(&namespace),
            self.prices,
        ) {
            Err(DesiredError::Invalid(errors)) => {
                let message = errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                Item {
                    verdicts: vec![
                        Verdict::no(crate::api::CONDITION_READY, "InvalidSpec", message.clone()),
                        Verdict::no(crate::api::CONDITION_RECONCILING, "InvalidSpec", ""),
                        Verdict::yes(crate::api::CONDITION_STALLED, "InvalidSpec", message),
                    ],
                    ..base
                }
            }
            Err(DesiredError::Waiting(reason)) => Item {
                actions: vec![Action::Wait {
                    reason: reason.clone(),
                    after: crate::engine::plan::RECHECK_SOON,
                }],
                verdicts: vec![
                    Verdict::no(crate::api::CONDITION_READY, "Waiting", reason.clone()),
                    Verdict::yes(crate::api::CONDITION_RECONCILING, "Waiting", reason),
                    Verdict::no(crate::api::CONDITION_STALLED, "Waiting", ""),
                ],
                ..base
            },
            Ok(desired) => {
                let known = workload.status.as_ref().and_then(|s| s.runpod_id.clone());
                let adopt = workload.annotations().get(ADOPT_ANNOTATION).cloned();
                let approved = workload
                    .annotations()
                    .get(APPROVE_REPLACE_ANNOTATION)
                    .cloned();
                let ctx = Context {
                    owner: &owner,
                    spec: &workload.spec,
                    approved_hash: approved.as_deref(),
                    adopt_id: adopt.as_deref(),
                    known_id: known.as_deref(),
                    prices: self.prices,
                    money: self.money(worst_case(workload, self.prices), forced, budget),
                    stopped_volume_policy: workload
                        .spec
                        .stopped_volume_policy
                        .clone()
                        .or_else(|| self.ws.account.default_stopped_volume_policy.clone()),
                    stopped_since: workload
                        .status
                        .as_ref()
                        .and_then(|s| s.stopped_since.as_ref().map(|t| t.0)),
                    now: self.now,
                };
                let p = plan(&desired, self.observed(), &ctx);
                Item {
                    actions: p.actions,
                    drift: p.drift,
                    verdicts: p.verdicts,
                    runpod_id: p.runpod_id,
                    state: p.state,
                    worst_case_per_hour: p.cost.as_ref().map(|c| c.worst_case_per_hour),
                    expected_per_hour: p.cost.as_ref().map(|c| c.expected_per_hour),
                    current_per_hour: p.current_per_hour,
                    delta_per_hour: p.delta_per_hour,
                    hash: p.hash,
                    spend: p.spend,
                    ..base
                }
            }
        }
    }

    /// The workloads the credit policy stops now (lowest priority first), by key, given each
    /// one's current cost.
    pub fn credit_victims(&self, current: &[(String, i32, Decimal)]) -> Vec<String> {
        let ranked = credit_order(current);
        self.credit_victims_ranked(ranked.iter().map(|(key, p, c)| (key.as_str(), *p, *c)))
    }

    /// [`AccountView::credit_victims`] over workloads already in the credit policy's order
    /// (see [`crate::engine::totals::AccountTotals::ranking`]).
    pub fn credit_victims_ranked<'r>(
        &self,
        ranked: impl IntoIterator<Item = (&'r str, i32, Decimal)>,
    ) -> Vec<String> {
        match (self.balance, self.spend) {
            (Some(balance), Some(spend))
                if self.ws.account.credit_policy.action == CreditAction::StopLowestPriority =>
            {
                credit_victims_ranked(
                    balance,
                    spend,
                    self.ws.account.credit_policy.minimum_runway_hours,
                    ranked,
                )
            }
            _ => Vec::new(),
        }
    }

    /// The credit policy's reason for stopping a workload.
    pub fn forced_reason(&self, workload: &GpuWorkload) -> String {
        format!(
            "credit policy: the balance covers less than {} hours, and this workload has the lowest priority ({})",
            self.ws.account.credit_policy.minimum_runway_hours, workload.spec.priority
        )
    }
}

/// What the other workloads of the account take from one workload's money rules. The default
/// is what a lone reconcile sees: every other declared workload at its worst case, nothing
/// approved before it.
#[derive(Clone, Debug, Default)]
pub struct Budget {
    /// The others' worst case per hour, when a pass (or the controller's account totals) has
    /// worked it out.
    pub others_worst_per_hour: Option<Decimal>,
    /// Spending approved before this workload's and not yet billed.
    pub pending: Pending,
}

impl Budget {
    /// The same budget with the others' worst case known.
    #[must_use]
    pub fn with_others(mut self, others_worst_per_hour: Decimal) -> Self {
        self.others_worst_per_hour = Some(others_worst_per_hour);
        self
    }
}

/// Admits the spending actions of one pass against one budget, highest `spec.priority` first
/// (then by name): each is weighed against the account cap and the credit rules with what
/// was approved before it, so two creates that each fit alone cannot both pass when together
/// they do not. A refused workload still takes what RunPod runs for it now (its
/// [`Spend::floor_per_hour`]) from the account cap of the others. Pure.
fn admit_in_order(view: &AccountView<'_>, workloads: &[GpuWorkload], planned: &mut [Item]) {
    let candidates: Vec<usize> = (0..planned.len())
        .filter(|i| planned[*i].spend.is_some())
        .collect();
    if candidates.len() < 2 {
        // Alone, the default budget is already exact.
        return;
    }
    let floor_of: Vec<Decimal> = planned
        .iter()
        .map(|p| p.spend.as_ref().map_or(Decimal::ZERO, |s| s.floor_per_hour))
        .collect();
    let declared: Decimal = candidates
        .iter()
        .map(|i| worst_case(&workloads[*i], view.prices))
        .sum();
    let floors: Decimal = candidates.iter().map(|i| floor_of[*i]).sum();
    // Everything that asks for nothing, at its declared worst case, as a lone reconcile counts it.
    let settled = view.total_worst - declared;
    let mut order = candidates;
    order.sort_by(|a, b| {
        workloads[*b]
            .spec
            .priority
            .cmp(&workloads[*a].spec.priority)
            .then_with(|| planned[*a].key.cmp(&planned[*b].key))
    });
    let mut pending = Pending::default();
    let mut approved_above_floor = Decimal::ZERO;
    for i in order {
        let budget = Budget {
            others_worst_per_hour: Some(settled + floors - floor_of[i] + approved_above_floor),
            pending: pending.clone(),
        };
        let item = view.plan_within(&workloads[i], None, &budget);
        if let Some(spend) = item.spend.as_ref().filter(|s| s.approved) {
            pending.add(&item.key, spend.worst_per_hour, spend.expected_per_hour);
            approved_above_floor += spend.worst_per_hour - spend.floor_per_hour;
        }
        planned[i] = item;
    }
}

/// Plans every object of the workspace against a snapshot of the account: the credit policy
/// first (what it stops spends nothing), then the spending of every workload admitted against
/// one budget. Pure.
pub fn plan_workspace(
    ws: &Workspace,
    snapshot: &Snapshot,
    prices: &PriceCatalogue,
    now: Timestamp,
) -> Vec<Item> {
    let view = AccountView::new(ws, snapshot, prices, now);
    // One list, volumes first, sized once: ten thousand plans are not copied into a second.
    let mut items: Vec<Item> = Vec::with_capacity(ws.volumes.len() + ws.workloads.len());
    items.extend(ws.volumes.iter().map(|v| view.plan_volume(v)));
    items.extend(ws.workloads.iter().map(|w| view.plan_workload(w, None)));
    let planned = &mut items[ws.volumes.len()..];
    let current: Vec<(String, i32, Decimal)> = ws
        .workloads
        .iter()
        .zip(planned.iter())
        .map(|(w, item)| (item.key.clone(), w.spec.priority, item.current_per_hour))
        .collect();
    let victims = view.credit_victims(&current);
    for (workload, slot) in ws.workloads.iter().zip(planned.iter_mut()) {
        if victims.contains(&slot.key) {
            *slot = view.plan_workload(workload, Some(view.forced_reason(workload)));
        }
    }
    admit_in_order(&view, &ws.workloads, planned);
    items
}

/// The result of one pass.
#[derive(Debug)]
pub struct Report {
    /// Every object, with its plan and outcome.
    pub items: Vec<Item>,
    /// Writes sent.
    pub writes: usize,
}

/// One pass: refresh the inventory if due, plan everything, run the first write of each
/// object (money-saving writes first, across objects).
pub async fn apply_pass(
    ws: &Workspace,
    inventory: &Inventory,
    prices: &PriceCatalogue,
    now: Timestamp,
) -> Result<Report, crate::runpod::Error> {
    inventory.ensure_fresh().await?;
    let snapshot = inventory.snapshot();
    let items = plan_workspace(ws, &snapshot, prices, now);
    Ok(execute_plan(items, inventory).await)
}

/// Runs the first write of each planned object, money-saving writes first, across objects:
/// the second half of [`apply_pass`], for a plan already made (the one `apply` showed).
pub async fn execute_plan(mut items: Vec<Item>, inventory: &Inventory) -> Report {
    let mut order: Vec<usize> = (0..items.len())
        .filter(|i| items[*i].actions.iter().any(Action::writes))
        .collect();
    order.sort_by_key(|i| {
        !items[*i]
            .actions
            .iter()
            .find(|a| a.writes())
            .is_some_and(Action::saves_money)
    });
    let mut writes = 0;
    for i in order {
        let Some(action) = items[i].actions.iter().find(|a| a.writes()).cloned() else {
            continue;
        };
        let outcome = execute(&action, inventory).await;
        writes += 1;
        tracing::info!(object = %items[i].key, action = %action.describe(), outcome = %outcome.describe(), "applied");
        items[i].outcome = Some(outcome);
    }
    Report { items, writes }
}

/// A RunPod object that no declared object owns.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Orphan {
    /// `Pod`, `Endpoint` or `NetworkVolume`.
    pub kind: &'static str,
    /// RunPod id.
    pub id: String,
    /// RunPod name.
    pub name: String,
    /// What it costs per hour (an endpoint: its always-on workers).
    #[serde(with = "rust_decimal::serde::str")]
    pub cost_per_hour: Decimal,
}

/// The account's objects that nothing in the workspace owns (by marker, name or recorded
/// id), with what they cost. Pure.
pub fn orphans(ws: &Workspace, snapshot: &Snapshot, prices: &PriceCatalogue) -> Vec<Orphan> {
    use crate::engine::identity::OWNER_ENV;
    let mut uids = std::collections::BTreeSet::new();
    let mut names = std::collections::BTreeSet::new();
    let mut ids = std::collections::BTreeSet::new();
    for w in &ws.workloads {
        let owner = owner_of(w.namespace(), &w.name_any(), w.uid());
        names.insert(owner.runpod_name());
        uids.insert(owner.uid);
        ids.extend(w.status.as_ref().and_then(|s| s.runpod_id.clone()));
        ids.extend(w.annotations().get(ADOPT_ANNOTATION).cloned());
    }
    for v in &ws.volumes {
        let owner = owner_of(v.namespace(), &v.name_any(), v.uid());
        names.insert(owner.runpod_name());
        ids.extend(v.status.as_ref().and_then(|s| s.runpod_id.clone()));
        ids.extend(v.annotations().get(ADOPT_ANNOTATION).cloned());
    }
    let owned = |id: &str, name: &str, marker: Option<&String>| {
        ids.contains(id) || names.contains(name) || marker.is_some_and(|m| uids.contains(m))
    };
    let mut out = Vec::new();
    for pod in &snapshot.pods {
        if !owned(&pod.id, &pod.name, pod.env.get(OWNER_ENV)) {
            let storage = pod.mounts.persistent.as_ref().map_or(Decimal::ZERO, |p| {
                let rate = if pod.status == "EXITED" {
                    prices.storage.pod_volume_stopped
                } else {
                    Decimal::ZERO
                };
                Decimal::from(p.size) * rate / Decimal::from(HOURS_PER_MONTH)
            });
            out.push(Orphan {
                kind: "Pod",
                id: pod.id.clone(),
                name: pod.name.clone(),
                cost_per_hour: Decimal::from_f64(pod.cost).unwrap_or_default() + storage,
            });
        }
    }
    for endpoint in &snapshot.endpoints {
        if !owned(&endpoint.id, &endpoint.name, endpoint.env.get(OWNER_ENV)) {
            let active = endpoint.workers.min.unwrap_or(0);
            let gpus = endpoint.gpu.as_ref().map_or(1, |g| g.count);
            let rate = endpoint
                .gpu
                .as_ref()
                .and_then(|g| g.pools.first())
                .and_then(|pool| {
                    prices
                        .gpu_types()
                        .find(|t| t.pool.as_deref() == Some(pool.as_str()))
                        .and_then(|t| prices.pool_of(&t.gpu_type).ok())
                })
                .map_or(Decimal::ZERO, |p| {
                    p.active_per_second.unwrap_or(p.flex_per_second)
                });
            out.push(Orphan {
                kind: "Endpoint",
                id: endpoint.id.clone(),
                name: endpoint.name.clone(),
                cost_per_hour: Decimal::from(active)
                    * Decimal::from(gpus)
                    * rate
                    * Decimal::from(3600),
            });
        }
    }
    for volume in &snapshot.volumes {
        if !owned(&volume.id, &volume.name, None) {
            out.push(Orphan {
                kind: "NetworkVolume",
                id: volume.id.clone(),
                name: volume.name.clone(),
                cost_per_hour: network_volume_per_month(volume.size, &prices.storage)
                    / Decimal::from(HOURS_PER_MONTH),
            });
        }
    }
    out
}
