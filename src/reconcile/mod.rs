//! Reconciling a set of objects against one RunPod account: the inventory (I/O), the
//! executor (I/O) and the pass that ties them to the engine. [`plan_workspace`] is pure (the
//! CLI's `plan` and the tests use it); [`apply_pass`] refreshes the inventory, plans, and
//! runs the first write of every object, money-saving writes first. [`AccountView`] (in `view`)
//! is what one object's plan sees of its account.

pub mod executor;
pub mod inventory;
mod view;

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use rust_decimal::{Decimal, prelude::FromPrimitive};

use crate::{
    api::{GpuWorkload, NetworkVolume, RunPodAccountSpec},
    engine::{
        conditions::Verdict,
        cost::network_volume_per_month,
        identity::ADOPT_ANNOTATION,
        plan::{Action, Pending, Spend},
        prices::{HOURS_PER_MONTH, PriceCatalogue},
    },
};
use executor::{Outcome, execute};
use inventory::{Inventory, Snapshot};
use view::owner_of;
pub use view::{AccountView, volume_hourly, worst_case};

/// The built-in price snapshot with RunPod's catalogue (`GET /v2/catalog/gpus`) on top: what
/// RunPod charges today wins, and a type the catalogue does not price keeps the snapshot's
/// figure or, if it has none, stays unknown (refused, never zero). With it, how many GPU types
/// the catalogue priced. One request.
pub async fn live_prices(
    client: &crate::runpod::Client,
) -> Result<(PriceCatalogue, usize), crate::runpod::Error> {
    let gpus = client.catalog_gpus().await?;
    let priced = priced(&gpus);
    let count = priced.len();
    let mut prices = PriceCatalogue::builtin();
    prices.apply_live(priced);
    Ok((prices, count))
}

/// The entries of RunPod's catalogue that price something.
pub fn priced(
    gpus: &[crate::runpod::types::CatalogGpu],
) -> Vec<crate::engine::prices::LiveGpuPrice> {
    gpus.iter()
        .map(crate::engine::prices::LiveGpuPrice::from_catalog)
        .filter(|p| {
            p.secure_per_hour.is_some()
                || p.community_per_hour.is_some()
                || p.serverless_per_hour.is_some()
        })
        .collect()
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
    /// What `Auto` chose from measured use, by workload (`namespace/name`), when a measurement
    /// was made for this pass (the CLI's); a workload not listed keeps what RunPod runs.
    pub auto: BTreeMap<String, crate::engine::advice::AutoDecision>,
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
    /// `workerClass: Auto`: the active workers the controller's measurement chose.
    pub auto_active: Option<u32>,
    /// `type: Auto`: the side the controller's measurement chose.
    pub auto_type: Option<crate::api::WorkloadType>,
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
            auto_active: None,
            auto_type: None,
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
    // A declared volume owns one RunPod volume (the one its plan uses); others with its
    // name are extras, reported like any object nobody declared.
    let mut volumes_kept = std::collections::BTreeSet::new();
    for v in &ws.volumes {
        let owner = owner_of(v.namespace(), &v.name_any(), v.uid());
        let known = v.status.as_ref().and_then(|s| s.runpod_id.clone());
        let adopt = v.annotations().get(ADOPT_ANNOTATION).cloned();
        if let Some(kept) = crate::engine::plan::find_volume(
            &owner,
            &snapshot.volumes,
            known.as_deref(),
            adopt.as_deref(),
        ) {
            volumes_kept.insert(kept.id.clone());
        }
        ids.extend(known);
        ids.extend(adopt);
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
        if !volumes_kept.contains(&volume.id) && !ids.contains(&volume.id) {
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
