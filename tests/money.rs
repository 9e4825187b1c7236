//! Money for the account as a whole: one pass admits the spending of every workload against
//! one budget (the account cap and the credit rules are cumulative, the lowest priority is
//! refused first), and the credit policy never stops and starts the same workload. Pure:
//! `plan_workspace` against snapshots, with the engine's small apply model standing in for
//! RunPod between passes.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;
use runpod_operator::{
    api::{CONDITION_INSUFFICIENT_CREDIT, CONDITION_SPEND_CAP_EXCEEDED, GpuWorkload},
    engine::{
        cost::{Usage, workload_cost},
        identity::OWNER_ENV,
        model::apply,
        plan::Action,
        prices::PriceCatalogue,
    },
    reconcile::{Item, Workspace, inventory::Snapshot, plan_workspace},
    runpod::types::{Account, Endpoint},
};
use rust_decimal::{Decimal, prelude::ToPrimitive};
use serde_json::json;

/// A 1- or 2-GPU A100 training pod: 1.91 or 3.81 USD/h, worst case and expected alike.
fn pod(name: &str, priority: i32, gpus: u32) -> GpuWorkload {
    serde_json::from_value(json!({
        "apiVersion": "runpod-operator.dev/v1alpha1",
        "kind": "GpuWorkload",
        "metadata": {"name": name, "namespace": "research", "uid": format!("uid-{name}")},
        "spec": {
            "type": "Pod",
            "image": "ghcr.io/acme/trainer:2.3.0",
            "gpu": {"types": ["NVIDIA A100-SXM4-80GB"], "count": gpus},
            "containerDiskGb": 50,
            "volume": {"sizeGb": 200, "mountPath": "/workspace"},
            "spendingCap": {"usdPerHour": "10"},
            "priority": priority,
        }
    }))
    .unwrap()
}

fn workspace(cap: u32, action: &str, runway: u32, workloads: Vec<GpuWorkload>) -> Workspace {
    Workspace {
        account: serde_json::from_value(json!({
            "apiKeySecretRef": {"namespace": "runpod-operator", "name": "runpod-api-key"},
            "spendingCapUsdPerHour": cap.to_string(),
            "creditPolicy": {"minimumRunwayHours": runway, "action": action},
        }))
        .unwrap(),
        workloads,
        volumes: vec![],
        secrets: BTreeMap::new(),
        auto: Default::default(),
    }
}

fn account(balance: Decimal, spend: Decimal) -> Option<Account> {
    Some(Account {
        client_balance: balance.to_f64().unwrap(),
        current_spend_per_hr: spend.to_f64().unwrap(),
        spend_limit: 80.0,
    })
}

fn now() -> Timestamp {
    Timestamp::from_second(1_767_225_600).unwrap()
}

fn worst(w: &GpuWorkload, prices: &PriceCatalogue) -> Decimal {
    workload_cost(&w.spec, prices, Usage::default())
        .unwrap()
        .worst_case_per_hour
}

fn first_write(item: &Item) -> Option<&Action> {
    item.actions.iter().find(|a| a.writes())
}

fn spends(action: &Action) -> bool {
    matches!(
        action,
        Action::CreatePod { .. } | Action::StartPod { .. } | Action::ReplacePod { .. }
    )
}

fn item<'a>(items: &'a [Item], key: &str) -> &'a Item {
    items.iter().find(|i| i.key == key).unwrap()
}

fn refusal(item: &Item) -> Option<(&str, &str, &str)> {
    item.verdicts
        .iter()
        .find(|v| {
            v.status
                && (v.kind == CONDITION_INSUFFICIENT_CREDIT
                    || v.kind == CONDITION_SPEND_CAP_EXCEEDED)
                && v.reason != "LowRunway"
        })
        .map(|v| (v.kind, v.reason, v.message.as_str()))
}

/// RunPod as the apply model leaves it, with what each pod really costs.
struct Account1 {
    prices: PriceCatalogue,
    ws: Workspace,
    snapshot: Snapshot,
    next_id: u64,
    balance: Decimal,
}

impl Account1 {
    fn new(ws: Workspace, balance: Decimal) -> Self {
        let mut me = Self {
            prices: PriceCatalogue::builtin(),
            ws,
            snapshot: Snapshot::default(),
            next_id: 0,
            balance,
        };
        me.settle();
        me
    }

    /// The running pods' cost and the account figures, as RunPod would report them.
    fn settle(&mut self) {
        let mut spend = Decimal::ZERO;
        for p in &mut self.snapshot.pods {
            let owner = self
                .ws
                .workloads
                .iter()
                .find(|w| p.env.get(OWNER_ENV) == w.metadata.uid.as_ref())
                .unwrap();
            let cost = if p.status == "RUNNING" {
                worst(owner, &self.prices)
            } else {
                Decimal::ZERO
            };
            p.cost = cost.to_f64().unwrap();
            spend += cost;
        }
        self.snapshot.account = account(self.balance, spend);
    }

    fn spend(&self) -> Decimal {
        Decimal::try_from(self.snapshot.account.as_ref().unwrap().current_spend_per_hr).unwrap()
    }

    fn plan(&self) -> Vec<Item> {
        plan_workspace(&self.ws, &self.snapshot, &self.prices, now())
    }

    /// One pass: plan, run the first write of each object (money-saving first), settle.
    /// Returns the plan and the writes in the order they ran.
    fn pass(&mut self) -> (Vec<Item>, Vec<(String, Action)>) {
        let items = self.plan();
        let mut writes: Vec<(String, Action)> = items
            .iter()
            .filter_map(|i| first_write(i).map(|a| (i.key.clone(), a.clone())))
            .collect();
        writes.sort_by_key(|(_, a)| !a.saves_money());
        let mut endpoints: Vec<Endpoint> = Vec::new();
        for (_, action) in &writes {
            apply(
                action,
                &mut self.snapshot.pods,
                &mut endpoints,
                &mut self.next_id,
            );
        }
        self.settle();
        (items, writes)
    }
}

// ---- the reproduction: $5 of credit, two 3.81 USD/h pods ------------------------------------

#[test]
fn two_pods_that_each_fit_one_hour_of_credit_alone_are_not_both_created() {
    let ws = workspace(
        80,
        "Alert",
        24,
        vec![pod("pod-a", 10, 2), pod("pod-b", 10, 2)],
    );
    let mut rp = Account1::new(ws, Decimal::from(5));
    let (items, writes) = rp.pass();
    // Equal priority: the later name is refused, with the figures and who took the room.
    assert!(matches!(
        first_write(item(&items, "research/pod-a")),
        Some(Action::CreatePod { .. })
    ));
    let b = item(&items, "research/pod-b");
    assert!(b.actions.is_empty());
    assert_eq!(
        refusal(b),
        Some((
            CONDITION_INSUFFICIENT_CREDIT,
            "InsufficientCredit",
            "balance 5.00 USD is below one hour of spend (0.00 USD/h now + 3.81 USD/h approved before it for research/pod-a + 3.81 USD/h new)"
        ))
    );
    assert_eq!(writes.len(), 1);
    // Later passes see the pod in RunPod's spend and keep refusing the second one.
    for _ in 0..10 {
        let (_, writes) = rp.pass();
        assert!(writes.is_empty(), "{writes:?}");
    }
    assert_eq!(rp.snapshot.pods.len(), 1);
}

#[test]
fn the_higher_priority_gets_the_room_whatever_the_names() {
    let ws = workspace(80, "Alert", 24, vec![pod("aaa", 0, 2), pod("zzz", 5, 2)]);
    let rp = Account1::new(ws, Decimal::from(5));
    let items = rp.plan();
    assert!(first_write(item(&items, "research/zzz")).is_some());
    let refused = refusal(item(&items, "research/aaa")).unwrap();
    assert!(
        refused.2.contains("approved before it for research/zzz"),
        "{refused:?}"
    );
}

#[test]
fn the_account_cap_is_shared_by_the_creates_of_one_pass() {
    // Cap 8: 3.81 + 3.81 fits, a third does not; the lowest priority is the one refused.
    let ws = workspace(
        8,
        "Alert",
        24,
        vec![pod("low", -1, 2), pod("mid", 0, 2), pod("top", 1, 2)],
    );
    let rp = Account1::new(ws, Decimal::from(1000));
    let items = rp.plan();
    assert!(first_write(item(&items, "research/top")).is_some());
    assert!(first_write(item(&items, "research/mid")).is_some());
    assert_eq!(
        refusal(item(&items, "research/low")),
        Some((
            CONDITION_SPEND_CAP_EXCEEDED,
            "AccountCapExceeded",
            "worst case 11.44 USD/h for the account (this workload 3.81 USD/h) exceeds the account cap 8.00 USD/h; approved before it: research/top, research/mid"
        ))
    );
}

#[test]
fn a_refused_running_workload_still_counts_against_the_cap_of_the_others() {
    // `big` runs with 2 GPUs (3.81 USD/h) and wants 4 (a replace to 7.63 USD/h, refused: it
    // would pass the cap); `new` (higher priority) wants 2. While `big` runs at 3.81, `new`
    // fits a cap of 8 and not a cap of 7.
    let mut big = pod("big", 0, 2);
    let mut rp = Account1::new(
        workspace(7, "Alert", 24, vec![big.clone()]),
        Decimal::from(1000),
    );
    rp.pass();
    assert_eq!(rp.spend().round_dp(2), Decimal::new(381, 2));
    big.spec.gpu.count = 4;
    big.spec.replace_policy = serde_json::from_value(json!("Allow")).unwrap();
    rp.ws.workloads = vec![big, pod("new", 5, 2)];
    let items = rp.plan();
    assert_eq!(
        refusal(item(&items, "research/big")).map(|r| r.1),
        Some("AccountCapExceeded")
    );
    assert_eq!(
        refusal(item(&items, "research/new")),
        Some((
            CONDITION_SPEND_CAP_EXCEEDED,
            "AccountCapExceeded",
            "worst case 7.63 USD/h for the account (this workload 3.81 USD/h) exceeds the account cap 7.00 USD/h"
        ))
    );
    rp.ws.account.spending_cap_usd_per_hour = serde_json::from_value(json!("8")).unwrap();
    let items = rp.plan();
    assert!(first_write(item(&items, "research/new")).is_some());
    assert_eq!(
        refusal(item(&items, "research/big")).map(|r| r.1),
        Some("AccountCapExceeded")
    );
}

// ---- the credit policy and the start decision: one rule -------------------------------------

#[test]
fn what_the_credit_policy_would_stop_is_not_created() {
    // A 24-hour minimum runway and $5: one 3.81 USD/h pod would last 1.3 hours, and the policy
    // would stop it on the next pass. Nothing is created, nothing flaps.
    let ws = workspace(
        80,
        "StopLowestPriority",
        24,
        vec![pod("pod-a", 10, 2), pod("pod-b", 10, 2)],
    );
    let mut rp = Account1::new(ws, Decimal::from(5));
    let (items, writes) = rp.pass();
    assert!(writes.is_empty());
    let (_, reason, message) = refusal(item(&items, "research/pod-a")).unwrap();
    assert_eq!(reason, "RunwayTooShort");
    assert_eq!(
        message,
        "balance 5.00 USD would last 1.3 hours at 3.81 USD/h with it, under the minimum runway of 24 hours: the credit policy would stop it"
    );
}

#[test]
fn with_a_one_hour_runway_one_pod_is_created_and_never_stopped_and_started() {
    let ws = workspace(
        80,
        "StopLowestPriority",
        1,
        vec![pod("pod-a", 10, 2), pod("pod-b", 10, 2)],
    );
    let mut rp = Account1::new(ws, Decimal::from(5));
    let mut log = Vec::new();
    for _ in 0..10 {
        log.extend(rp.pass().1);
    }
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(matches!(&log[0], (key, Action::CreatePod { .. }) if key == "research/pod-a"));
}

#[test]
fn a_pod_the_policy_stopped_stays_stopped_until_the_balance_has_an_hour_of_room() {
    // Two pods run; the balance falls to $10 with a 2-hour minimum: 10 / 7.62 = 1.3 hours, so
    // the policy stops the lower priority. With only the other running, 10 / 3.81 = 2.6 hours
    // is above the minimum, but a restart needs 3 hours (2 + 1): it stays stopped.
    let ws = workspace(
        80,
        "StopLowestPriority",
        2,
        vec![pod("keep", 5, 2), pod("spare", 0, 2)],
    );
    let mut rp = Account1::new(ws, Decimal::from(1000));
    rp.pass();
    assert_eq!(rp.spend().round_dp(2), Decimal::new(763, 2));
    rp.balance = Decimal::from(10);
    rp.settle();
    let (_, writes) = rp.pass();
    assert!(
        matches!(&writes[..], [(key, Action::StopPod { reason, .. })] if key == "research/spare" && reason.starts_with("credit policy")),
        "{writes:?}"
    );
    for _ in 0..10 {
        let (items, writes) = rp.pass();
        assert!(writes.is_empty(), "{writes:?}");
        let spare = item(&items, "research/spare");
        assert_eq!(refusal(spare).map(|r| r.1), Some("RunwayTooShort"));
        assert!(refusal(spare).unwrap().2.contains("plus 1 hour"));
    }
    // A top-up with room: 3 hours of 7.63 USD/h is 22.89.
    rp.balance = Decimal::from(23);
    rp.settle();
    let (_, writes) = rp.pass();
    assert!(
        matches!(&writes[..], [(key, Action::StartPod { .. })] if key == "research/spare"),
        "{writes:?}"
    );
}

// ---- properties -------------------------------------------------------------------------------

fn arb_workloads() -> impl Strategy<Value = Vec<(i32, u32)>> {
    prop::collection::vec((-2i32..3, 1u32..3), 1..7)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// After any pass, what the pass approved fits the account cap and the one-hour credit
    /// rule together, and under the credit policy the minimum runway; and over any sequence
    /// of passes at a fixed balance, nothing the policy stopped is started or created again.
    #[test]
    fn a_pass_never_spends_past_the_budget_and_the_policy_never_flaps(
        shape in arb_workloads(),
        cap in 2u32..20,
        balance in 0u32..120,
        runway in 1u32..6,
        stop in any::<bool>(),
        drop_to in 0u32..60,
    ) {
        let workloads: Vec<GpuWorkload> = shape
            .iter()
            .enumerate()
            .map(|(i, (priority, gpus))| pod(&format!("w{i}"), *priority, *gpus))
            .collect();
        let action = if stop { "StopLowestPriority" } else { "Alert" };
        let mut rp = Account1::new(
            workspace(cap, action, runway, workloads),
            Decimal::from(balance),
        );
        let mut stopped_by_policy = BTreeSet::new();
        for pass in 0..8 {
            if pass == 4 {
                // The balance falls: the policy may stop some; none may come back.
                rp.balance = Decimal::from(drop_to.min(balance));
                rp.settle();
            }
            let spend_before = rp.spend();
            let (_, writes) = rp.pass();
            let approved: Decimal = writes
                .iter()
                .filter(|(_, a)| spends(a))
                .map(|(key, _)| {
                    let w = rp.ws.workloads.iter().find(|w| key.ends_with(w.metadata.name.as_deref().unwrap())).unwrap();
                    worst(w, &rp.prices)
                })
                .sum();
            if !approved.is_zero() {
                prop_assert!(rp.balance >= spend_before + approved,
                    "one-hour rule: balance {} < {} + {}", rp.balance, spend_before, approved);
                if stop {
                    prop_assert!(rp.balance >= (spend_before + approved) * Decimal::from(runway),
                        "runway: balance {} < ({} + {}) x {}", rp.balance, spend_before, approved, runway);
                }
            }
            // Everything running together fits the account cap.
            prop_assert!(rp.spend() <= Decimal::from(cap), "cap {} < running {}", cap, rp.spend());
            for (key, action) in &writes {
                match action {
                    Action::StopPod { reason, .. } if reason.starts_with("credit policy") => {
                        stopped_by_policy.insert(key.clone());
                    }
                    a if spends(a) => prop_assert!(
                        !stopped_by_policy.contains(key),
                        "{} was stopped by the credit policy and then {:?}", key, a
                    ),
                    _ => {}
                }
            }
        }
    }
}
