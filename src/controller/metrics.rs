//! Prometheus metrics: reconciles by kind and outcome, their durations and errors, RunPod
//! requests by route and outcome, the request budget left, per-workload hourly cost, drift and
//! conditions, and each account's balance, runway, spend and cap. The chart's dashboard and
//! alerts read only these (a test checks it).

use std::{
    collections::BTreeSet,
    sync::{Mutex, atomic::AtomicU64},
    time::Instant,
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use rust_decimal::{Decimal, prelude::ToPrimitive};

/// Labels of a reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindOutcome {
    /// The kind.
    pub kind: String,
    /// `ok` or an error name.
    pub outcome: String,
}

/// Labels of a kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The kind.
    pub kind: String,
}

/// Labels of a RunPod route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOutcome {
    /// The account.
    pub account: String,
    /// e.g. `GET /v2/pods`.
    pub route: String,
    /// `ok`, `error` or `rate_limited`.
    pub outcome: String,
}

/// Labels of a workload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkloadLabel {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// Labels of one condition of a workload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkloadConditionLabel {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The condition type, e.g. `Stalled`.
    pub condition: String,
}

/// The conditions exported as `runpod_operator_workload_condition`.
pub const EXPORTED_CONDITIONS: [&str; 5] = [
    crate::api::CONDITION_READY,
    crate::api::CONDITION_STALLED,
    crate::api::CONDITION_DRIFTED,
    crate::api::CONDITION_SPEND_CAP_EXCEEDED,
    crate::api::CONDITION_INSUFFICIENT_CREDIT,
];

/// Labels of an account.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabel {
    /// The RunPodAccount's name.
    pub account: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every metric of the operator.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindOutcome, Counter>,
    errors: Family<KindOutcome, Counter>,
    durations: Family<KindLabel, Histogram>,
    requests: Family<RouteOutcome, Counter>,
    budget: Family<AccountLabel, Gauge>,
    cost: Family<WorkloadLabel, FloatGauge>,
    drift: Family<WorkloadLabel, Gauge>,
    saving: Family<WorkloadLabel, FloatGauge>,
    balance: Family<AccountLabel, FloatGauge>,
    runway: Family<AccountLabel, FloatGauge>,
    spend: Family<AccountLabel, FloatGauge>,
    cap: Family<AccountLabel, FloatGauge>,
    conditions: Family<WorkloadConditionLabel, Gauge>,
    seen_requests: Mutex<std::collections::HashMap<RouteOutcome, u64>>,
    /// Workloads (`namespace`, `name`) and accounts with series, for [`Metrics::retain`].
    workloads: Mutex<BTreeSet<(String, String)>>,
    accounts: Mutex<BTreeSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("runpod_operator");
        let reconciles = Family::<KindOutcome, Counter>::default();
        let errors = Family::<KindOutcome, Counter>::default();
        let durations = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
        });
        let requests = Family::<RouteOutcome, Counter>::default();
        let budget = Family::<AccountLabel, Gauge>::default();
        let cost = Family::<WorkloadLabel, FloatGauge>::default();
        let drift = Family::<WorkloadLabel, Gauge>::default();
        let saving = Family::<WorkloadLabel, FloatGauge>::default();
        let balance = Family::<AccountLabel, FloatGauge>::default();
        let runway = Family::<AccountLabel, FloatGauge>::default();
        let spend = Family::<AccountLabel, FloatGauge>::default();
        let cap = Family::<AccountLabel, FloatGauge>::default();
        let conditions = Family::<WorkloadConditionLabel, Gauge>::default();
        registry.register(
            "reconciles",
            "Reconciles by kind and outcome",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles by kind and error",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciles take, by kind",
            durations.clone(),
        );
        registry.register(
            "runpod_requests",
            "RunPod requests by route and outcome",
            requests.clone(),
        );
        registry.register(
            "runpod_request_budget_remaining",
            "Requests RunPod says are left in the current window",
            budget.clone(),
        );
        registry.register(
            "workload_cost_usd_per_hour",
            "What each workload costs per hour now",
            cost.clone(),
        );
        registry.register(
            "workload_drift_fields",
            "Fields where RunPod differs from the spec",
            drift.clone(),
        );
        registry.register(
            "workload_achievable_saving_usd_per_month",
            "What the cheapest configuration for the measured use would save per month",
            saving.clone(),
        );
        registry.register(
            "account_balance_usd",
            "Each account's balance",
            balance.clone(),
        );
        registry.register(
            "account_runway_hours",
            "Hours each account's balance lasts at the current spend",
            runway.clone(),
        );
        registry.register(
            "account_spend_usd_per_hour",
            "What each account spends per hour, as RunPod reports it",
            spend.clone(),
        );
        registry.register(
            "account_spending_cap_usd_per_hour",
            "Each account's spending cap (spec.spendingCapUsdPerHour)",
            cap.clone(),
        );
        registry.register(
            "workload_condition",
            "1 when a workload's condition is True (Ready, Stalled, Drifted, SpendCapExceeded, InsufficientCredit)",
            conditions.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            durations,
            requests,
            budget,
            cost,
            drift,
            saving,
            balance,
            runway,
            spend,
            cap,
            conditions,
            seen_requests: Mutex::default(),
            workloads: Mutex::default(),
            accounts: Mutex::default(),
        }
    }
}

/// A reconcile being timed.
pub struct Timer<'a> {
    metrics: &'a Metrics,
    kind: &'static str,
    started: Instant,
}

impl Timer<'_> {
    /// Records the duration and the outcome.
    pub fn finish<T>(self, result: &Result<T, super::Error>) {
        let outcome = match result {
            Ok(_) => "ok".to_string(),
            Err(e) => e.metric_label().to_string(),
        };
        self.metrics
            .durations
            .get_or_create(&KindLabel {
                kind: self.kind.to_string(),
            })
            .observe(self.started.elapsed().as_secs_f64());
        self.metrics
            .reconciles
            .get_or_create(&KindOutcome {
                kind: self.kind.to_string(),
                outcome,
            })
            .inc();
    }
}

impl Metrics {
    /// Starts timing a reconcile.
    pub fn start(&self, kind: &'static str) -> Timer<'_> {
        Timer {
            metrics: self,
            kind,
            started: Instant::now(),
        }
    }

    /// Counts a failed reconcile.
    pub fn error(&self, kind: &str, reason: &str) {
        self.errors
            .get_or_create(&KindOutcome {
                kind: kind.to_string(),
                outcome: reason.to_string(),
            })
            .inc();
    }

    /// Records a workload's cost and drift.
    pub fn workload(&self, namespace: &str, name: &str, cost_per_hour: Decimal, drift: usize) {
        let label = WorkloadLabel {
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        self.cost
            .get_or_create(&label)
            .set(cost_per_hour.to_f64().unwrap_or(0.0));
        self.drift.get_or_create(&label).set(drift as i64);
        lock(&self.workloads).insert((namespace.to_string(), name.to_string()));
    }

    /// What the recommendation for a workload's measured use would save per month (`None`:
    /// not measured, no series).
    pub fn workload_saving(&self, namespace: &str, name: &str, saving_per_month: Option<Decimal>) {
        let label = WorkloadLabel {
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        match saving_per_month {
            Some(s) => {
                self.saving
                    .get_or_create(&label)
                    .set(s.to_f64().unwrap_or(0.0));
            }
            None => {
                self.saving.remove(&label);
            }
        }
    }

    /// Drops the series of a workload that is gone (deleted, or not this instance's any more).
    pub fn forget_workload(&self, namespace: &str, name: &str) {
        let label = WorkloadLabel {
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        self.cost.remove(&label);
        self.drift.remove(&label);
        self.saving.remove(&label);
        for condition in EXPORTED_CONDITIONS {
            self.conditions.remove(&WorkloadConditionLabel {
                namespace: namespace.to_string(),
                name: name.to_string(),
                condition: condition.to_string(),
            });
        }
        lock(&self.workloads).remove(&(namespace.to_string(), name.to_string()));
    }

    /// Keeps only the workload and account series `live` names (called at scrape time with
    /// what the watches hold, so a deleted object leaves no series behind).
    pub fn retain(
        &self,
        live_workloads: &BTreeSet<(String, String)>,
        live_accounts: &BTreeSet<String>,
    ) {
        let gone: Vec<(String, String)> = lock(&self.workloads)
            .iter()
            .filter(|k| !live_workloads.contains(*k))
            .cloned()
            .collect();
        for (namespace, name) in gone {
            self.forget_workload(&namespace, &name);
        }
        let gone: Vec<String> = lock(&self.accounts)
            .iter()
            .filter(|a| !live_accounts.contains(*a))
            .cloned()
            .collect();
        for account in gone {
            let label = AccountLabel {
                account: account.clone(),
            };
            self.balance.remove(&label);
            self.runway.remove(&label);
            self.spend.remove(&label);
            self.cap.remove(&label);
            self.budget.remove(&label);
            lock(&self.accounts).remove(&account);
        }
    }

    /// Records which of a workload's exported conditions are True.
    pub fn workload_conditions(&self, namespace: &str, name: &str, is_true: impl Fn(&str) -> bool) {
        for condition in EXPORTED_CONDITIONS {
            self.conditions
                .get_or_create(&WorkloadConditionLabel {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    condition: condition.to_string(),
                })
                .set(i64::from(is_true(condition)));
        }
    }

    /// Records an account's spend per hour and spending cap.
    pub fn account_spend(&self, account: &str, spend_per_hour: Option<Decimal>, cap: Decimal) {
        let label = AccountLabel {
            account: account.to_string(),
        };
        lock(&self.accounts).insert(account.to_string());
        if let Some(spend) = spend_per_hour {
            self.spend
                .get_or_create(&label)
                .set(spend.to_f64().unwrap_or(0.0));
        }
        self.cap
            .get_or_create(&label)
            .set(cap.to_f64().unwrap_or(0.0));
    }

    /// Records an account's balance and runway.
    pub fn account(&self, account: &str, balance: Decimal, runway_hours: Option<Decimal>) {
        let label = AccountLabel {
            account: account.to_string(),
        };
        lock(&self.accounts).insert(account.to_string());
        self.balance
            .get_or_create(&label)
            .set(balance.to_f64().unwrap_or(0.0));
        if let Some(runway) = runway_hours {
            self.runway
                .get_or_create(&label)
                .set(runway.to_f64().unwrap_or(0.0));
        }
    }

    /// Takes in a RunPod client's per-route counts and budget (called at scrape time).
    pub fn runpod(&self, account: &str, budget: &crate::runpod::BudgetSnapshot) {
        if let Some(remaining) = budget.remaining {
            lock(&self.accounts).insert(account.to_string());
            self.budget
                .get_or_create(&AccountLabel {
                    account: account.to_string(),
                })
                .set(i64::from(remaining));
        }
        let mut seen = self.seen_requests.lock().unwrap_or_else(|e| e.into_inner());
        for (route, stats) in &budget.routes {
            let ok = stats.calls - stats.errors;
            for (outcome, total) in [
                ("ok", ok),
                ("error", stats.errors - stats.rate_limited),
                ("rate_limited", stats.rate_limited),
            ] {
                let label = RouteOutcome {
                    account: account.to_string(),
                    route: route.clone(),
                    outcome: outcome.to_string(),
                };
                let before = seen.insert(label.clone(), total).unwrap_or(0);
                self.requests
                    .get_or_create(&label)
                    .inc_by(total.saturating_sub(before));
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}
