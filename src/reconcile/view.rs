//! What one object's plan sees of its account ([`AccountView`]): the snapshot, the balance
//! and the account's worst case, and the planning of one workload or volume against them.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use rust_decimal::Decimal;

use super::{Budget, Item, Workspace, inventory::Snapshot};
use crate::{
    api::{CreditAction, GpuWorkload, NetworkVolume},
    engine::{
        conditions::Verdict,
        cost::{Usage, network_volume_per_month, workload_cost},
        desired::{DesiredError, References, VolumeRef, desired},
        identity::{ADOPT_ANNOTATION, APPROVE_REPLACE_ANNOTATION, Owner},
        plan::{
            Action, Context, Money, Observed, credit_order, credit_victims_ranked, plan,
            plan_volume,
        },
        prices::{HOURS_PER_MONTH, PriceCatalogue},
    },
};

pub(super) fn owner_of(meta_namespace: Option<String>, name: &str, uid: Option<String>) -> Owner {
    Owner::of(meta_namespace.as_deref(), name, uid.as_deref())
}

/// The account-wide figures one object's plan needs: the snapshot, the balance, and the
/// worst case of everything declared (for the account cap). Pure.
pub struct AccountView<'a> {
    ws: &'a Workspace,
    snapshot: &'a Snapshot,
    pub(super) prices: &'a PriceCatalogue,
    now: Timestamp,
    pub(super) total_worst: Decimal,
    balance: Option<Decimal>,
    spend: Option<Decimal>,
}

pub(super) fn item(kind: &'static str, key: String) -> Item {
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
            balance: account.and_then(|a| a.balance()),
            spend: account.and_then(|a| a.spend_per_hour()),
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
            account_workers_max: Some(self.snapshot.workers_max_total()),
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
                    // The rule of `find_volume`, through the index.
                    let id = self
                        .snapshot
                        .volume(known.as_deref(), &runpod_name)
                        .or_else(|| {
                            let legacy = volume_owner.legacy_runpod_name()?;
                            self.snapshot.volume(None, &legacy)
                        })
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
            auto_active: None,
            auto_type: None,
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
        let mut refs = self.references(&namespace);
        // `workerClass: Auto` without a measurement (the CLI, a controller that has not read
        // the billing yet): what RunPod runs now stays; nothing is changed on no evidence.
        let chosen = self.ws.auto.get(&owner.key());
        refs.auto_active = budget
            .auto_active
            .or(chosen.and_then(|c| c.active))
            .or_else(|| {
                let known = workload
                    .status
                    .as_ref()
                    .and_then(|s| s.runpod_id.as_deref());
                self.snapshot
                    .endpoint_of(known, &owner.runpod_name())
                    .map(|e| e.workers.min.unwrap_or(0))
            });
        // `type: Auto`: the side the controller chose (recorded in the status), else the side
        // RunPod runs (a pod of the workload: Pod), else Serverless.
        if workload.spec.workload_type == crate::api::WorkloadType::Auto {
            refs.auto_type = budget
                .auto_type
                .or(chosen.and_then(|c| c.side))
                .or_else(|| {
                    let status = workload.status.as_ref();
                    status.and_then(|s| s.runs_as).or_else(|| {
                        let known = status.and_then(|s| s.runpod_id.as_deref());
                        self.snapshot
                            .pod_of(known, &owner.runpod_name())
                            .map(|_| crate::api::WorkloadType::Pod)
                    })
                });
        }
        match desired(&owner, &workload.spec, &refs, self.prices) {
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
