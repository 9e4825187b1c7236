//! The rule book: every rule of the planner as a test, named so that the list of tests reads
//! as the rules. Pure: no simulator, no cluster; prices, money and time are arguments.

mod common;

use std::collections::BTreeMap;

use common::money;
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;
use runpod_operator::{
    api::{
        CONDITION_DRIFTED, CONDITION_INSUFFICIENT_CREDIT, CONDITION_READY,
        CONDITION_SPEND_CAP_EXCEEDED, CONDITION_STALLED, GpuWorkloadSpec, StoppedVolumeAction,
        StoppedVolumePolicy, WorkloadType,
    },
    engine::{
        conditions::Verdict,
        desired::{Desired, DesiredError, References, VolumeRef, desired},
        identity::{OWNER_ENV, Owner},
        index::Lookup,
        model::apply,
        plan::{
            Action, CONDITION_REPLACE_NEEDS_APPROVAL, CONDITION_STOPPED_TOO_LONG, Context, Money,
            Observed, ObservedIndex, Plan, credit_victims, credit_victims_ranked, plan,
            plan_delete,
        },
        prices::PriceCatalogue,
        totals::{AccountTotals, Share},
    },
    runpod::types::{Endpoint, Pod, PodRuntime},
};
use rust_decimal::Decimal;

const POD: &str = r#"
type: Pod
image: ghcr.io/acme/trainer:1
gpu: {types: ["NVIDIA A100-SXM4-80GB"], count: 1}
containerDiskGb: 50
volume: {sizeGb: 100}
spendingCap: {usdPerHour: "3"}
"#;

const ENDPOINT: &str = r#"
type: Serverless
image: ghcr.io/acme/matting:1
gpu: {types: ["NVIDIA A100-SXM4-80GB"]}
containerDiskGb: 20
serverless: {maxWorkers: 3, idleTimeoutSeconds: 5}
spendingCap: {usdPerHour: "9"}
"#;

fn spec(yaml: &str) -> GpuWorkloadSpec {
    serde_norway::from_str(yaml).expect("fixture spec")
}

fn with(yaml: &str, extra: &str) -> GpuWorkloadSpec {
    let mut base: serde_json::Value = serde_norway::from_str(yaml).unwrap();
    let extra: serde_json::Value = serde_norway::from_str(extra).unwrap();
    merge(&mut base, extra);
    serde_json::from_value(base).unwrap()
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (slot, value) => *slot = value,
    }
}

fn owner() -> Owner {
    Owner {
        namespace: "ml".into(),
        name: "trainer".into(),
        uid: "0b7f3c2a-1111-2222-3333-444455556666".into(),
    }
}

fn now() -> Timestamp {
    Timestamp::from_second(1_767_225_600).unwrap()
}

struct World {
    prices: PriceCatalogue,
    owner: Owner,
    pods: Vec<Pod>,
    endpoints: Vec<Endpoint>,
    next_id: u64,
    /// `type: Auto`: the side chosen.
    auto_type: Option<WorkloadType>,
    /// `workerClass: Auto`: the active workers chosen.
    auto_active: Option<u32>,
}

impl World {
    fn new() -> Self {
        Self {
            prices: PriceCatalogue::builtin(),
            owner: owner(),
            pods: vec![],
            endpoints: vec![],
            next_id: 0,
            auto_type: None,
            auto_active: None,
        }
    }

    fn desired(&self, spec: &GpuWorkloadSpec) -> Desired {
        let refs = References {
            auto_type: self.auto_type,
            auto_active: self.auto_active,
            ..References::default()
        };
        desired(&self.owner, spec, &refs, &self.prices).expect("valid desired state")
    }

    fn ctx<'a>(&'a self, spec: &'a GpuWorkloadSpec, money: Money) -> Context<'a> {
        Context {
            owner: &self.owner,
            spec,
            approved_hash: None,
            adopt_id: None,
            known_id: None,
            prices: &self.prices,
            money,
            stopped_volume_policy: None,
            stopped_since: None,
            now: now(),
        }
    }

    /// Plans by scanning the account and again through the inventory's index: every test of
    /// this file also checks that the two find the same objects and plan the same.
    fn plan_with(&self, spec: &GpuWorkloadSpec, ctx: Context<'_>) -> Plan {
        let desired = self.desired(spec);
        let scanned = plan(&desired, Observed::scan(&self.pods, &self.endpoints), &ctx);
        let pods = Lookup::build(
            &self.pods,
            |p| &p.id,
            |p| &p.name,
            |p| p.env.get(OWNER_ENV).map(String::as_str),
        );
        let endpoints = Lookup::build(
            &self.endpoints,
            |e| &e.id,
            |e| &e.name,
            |e| e.env.get(OWNER_ENV).map(String::as_str),
        );
        let observed = Observed {
            pods: &self.pods,
            endpoints: &self.endpoints,
            index: Some(ObservedIndex {
                pods: &pods,
                endpoints: &endpoints,
            }),
            registries: None,
        };
        let indexed = plan(&desired, observed, &ctx);
        assert_eq!(indexed, scanned, "the index finds what a scan finds");
        indexed
    }

    fn plan(&self, spec: &GpuWorkloadSpec) -> Plan {
        self.plan_with(spec, self.ctx(spec, money()))
    }

    fn apply(&mut self, action: &Action) {
        apply(
            action,
            &mut self.pods,
            &mut self.endpoints,
            &mut self.next_id,
        );
    }

    /// Plans and applies the first write until nothing is left (at most 10 passes).
    fn converge(&mut self, spec: &GpuWorkloadSpec) -> usize {
        for pass in 0..10 {
            let plan = self.plan(spec);
            match plan.actions.iter().find(|a| a.writes()) {
                Some(action) => {
                    let action = action.clone();
                    self.apply(&action);
                }
                None => return pass,
            }
        }
        panic!("no convergence in 10 passes: {:?}", self.plan(spec).actions);
    }
}

fn condition<'a>(plan: &'a Plan, kind: &str) -> &'a Verdict {
    plan.verdicts
        .iter()
        .find(|v| v.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} condition"))
}

// ---- identity and creation --------------------------------------------------------------------

#[test]
fn a_missing_pod_is_created_with_a_deterministic_name_and_the_owner_marker() {
    let w = World::new();
    let plan = w.plan(&spec(POD));
    let Action::CreatePod {
        request,
        candidates,
    } = &plan.actions[0]
    else {
        panic!("{:?}", plan.actions)
    };
    assert_eq!(request.name, "rpo-ml-trainer-0b7f3c2a");
    assert_eq!(request.env[OWNER_ENV], w.owner.uid);
    assert_eq!(candidates, &["NVIDIA A100-SXM4-80GB"]);
    assert_eq!(
        request
            .mounts
            .as_ref()
            .unwrap()
            .persistent
            .as_ref()
            .unwrap()
            .size,
        100
    );
    assert!(!condition(&plan, CONDITION_READY).status);
}

#[test]
fn a_pod_that_matches_its_spec_needs_nothing_and_is_ready() {
    let mut w = World::new();
    let s = spec(POD);
    w.converge(&s);
    let plan = w.plan(&s);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert!(condition(&plan, CONDITION_READY).status);
    assert!(!condition(&plan, CONDITION_DRIFTED).status);
    assert_eq!(plan.runpod_id.as_deref(), Some(w.pods[0].id.as_str()));
}

#[test]
fn an_existing_pod_found_by_its_owner_marker_is_never_created_again() {
    let mut w = World::new();
    let s = spec(POD);
    w.converge(&s);
    // As after a crash between the create and recording its id: no known id, the marker finds it.
    assert!(!w.plan(&s).has_writes());
    assert_eq!(w.pods.len(), 1);
}

#[test]
fn a_second_pod_for_the_same_owner_is_deleted_before_anything_else() {
    let mut w = World::new();
    let s = spec(POD);
    w.converge(&s);
    let mut twin = w.pods[0].clone();
    twin.id = "twin0000000000".into();
    twin.image = "other:1".into();
    w.pods.push(twin);
    let plan = w.plan(&s);
    assert!(matches!(&plan.actions[0], Action::DeletePod { id, .. } if id == "twin0000000000"));
}

#[test]
fn a_pod_named_by_the_adoption_annotation_is_adopted_not_created() {
    let mut w = World::new();
    let s = spec(POD);
    w.converge(&s);
    w.pods[0].env.remove(OWNER_ENV);
    let adopted = w.pods[0].id.clone();
    let mut ctx = w.ctx(&s, money());
    ctx.adopt_id = Some(&adopted);
    let plan = w.plan_with(&s, ctx);
    assert_eq!(plan.runpod_id.as_deref(), Some(adopted.as_str()));
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::CreatePod { .. }))
    );
}

// ---- in place vs replace ----------------------------------------------------------------------

#[test]
fn an_image_change_is_patched_in_place_and_resets_the_container() {
    let mut w = World::new();
    w.converge(&spec(POD));
    let plan = w.plan(&with(POD, "image: ghcr.io/acme/trainer:2"));
    let Action::UpdatePod {
        request, resets, ..
    } = &plan.actions[0]
    else {
        panic!("{:?}", plan.actions)
    };
    assert_eq!(request.image.as_deref(), Some("ghcr.io/acme/trainer:2"));
    assert!(resets);
    assert_eq!(plan.drift[0].field, "spec.image");
}

#[test]
fn a_bigger_pod_volume_is_patched_and_a_smaller_one_needs_a_replace() {
    let mut w = World::new();
    w.converge(&spec(POD));
    let grow = w.plan(&with(POD, "volume: {sizeGb: 200}"));
    assert!(
        matches!(&grow.actions[0], Action::UpdatePod { .. }),
        "{:?}",
        grow.actions
    );
    let shrink = w.plan(&with(POD, "volume: {sizeGb: 50}"));
    assert!(shrink.actions.is_empty());
    assert!(condition(&shrink, CONDITION_REPLACE_NEEDS_APPROVAL).status);
    assert!(
        condition(&shrink, CONDITION_REPLACE_NEEDS_APPROVAL)
            .message
            .contains("volumes only grow")
    );
}

#[test]
fn a_gpu_change_on_a_pod_with_data_waits_for_approval_and_says_what_is_lost() {
    let mut w = World::new();
    w.converge(&spec(POD));
    let plan = w.plan(&with(POD, r#"gpu: {types: ["NVIDIA H100 80GB HBM3"]}"#));
    assert!(
        plan.actions.is_empty(),
        "nothing is destroyed without approval"
    );
    let verdict = condition(&plan, CONDITION_REPLACE_NEEDS_APPROVAL);
    assert!(verdict.status);
    assert!(
        verdict
            .message
            .contains("the 100 GB pod volume at /workspace and its data"),
        "{}",
        verdict.message
    );
    assert!(
        verdict
            .message
            .contains("runpod-operator.dev/approve-replace=")
    );
    assert!(condition(&plan, CONDITION_STALLED).status);
}

#[test]
fn the_approved_hash_lets_the_replace_go_and_a_stale_hash_does_not() {
    let mut w = World::new();
    w.converge(&spec(POD));
    // An H100 with these disks is 3.01 USD/h: the cap must allow it, or money refuses first.
    let s = with(
        POD,
        "gpu: {types: [\"NVIDIA H100 80GB HBM3\"]}\nspendingCap: {usdPerHour: \"4\"}",
    );
    let message = condition(&w.plan(&s), CONDITION_REPLACE_NEEDS_APPROVAL)
        .message
        .clone();
    let hash = message
        .rsplit("approve-replace=")
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let mut ctx = w.ctx(&s, money());
    ctx.approved_hash = Some(&hash);
    assert!(matches!(
        &w.plan_with(&s, ctx).actions[0],
        Action::ReplacePod { .. }
    ));
    let mut stale = w.ctx(&s, money());
    stale.approved_hash = Some("0000000000000000");
    assert!(w.plan_with(&s, stale).actions.is_empty());
}

#[test]
fn replace_policy_allow_replaces_at_once_and_the_old_pod_goes_next() {
    let mut w = World::new();
    w.converge(&spec(POD));
    let old = w.pods[0].id.clone();
    let s = with(
        POD,
        "replacePolicy: Allow\ngpu: {count: 2}\nspendingCap: {usdPerHour: \"5\"}",
    );
    let plan = w.plan(&s);
    assert!(matches!(&plan.actions[0], Action::ReplacePod { old_id, .. } if *old_id == old));
    w.converge(&s);
    assert_eq!(w.pods.len(), 1);
    assert_ne!(w.pods[0].id, old);
    assert_eq!(w.pods[0].gpu.as_ref().unwrap().count, 2);
}

#[test]
fn a_replace_that_destroys_no_data_needs_no_approval() {
    let mut w = World::new();
    let bare = with(POD, "volume: null");
    w.converge(&bare);
    let plan = w.plan(&with(
        POD,
        "volume: null\ngpu: {types: [\"NVIDIA A100 80GB PCIe\"]}",
    ));
    assert!(
        matches!(&plan.actions[0], Action::ReplacePod { loses: None, .. }),
        "{:?}",
        plan.actions
    );
}

#[test]
fn another_gpu_type_from_the_list_is_no_drift() {
    let mut w = World::new();
    w.converge(&spec(POD));
    let s = with(
        POD,
        r#"gpu: {types: ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"]}"#,
    );
    assert!(w.plan(&s).actions.is_empty());
}

// ---- state ------------------------------------------------------------------------------------------

#[test]
fn spec_state_stopped_stops_a_running_pod_and_running_starts_it_again() {
    let mut w = World::new();
    w.converge(&spec(POD));
    let stopped = with(POD, "state: Stopped");
    assert!(matches!(
        &w.plan(&stopped).actions[0],
        Action::StopPod { .. }
    ));
    w.converge(&stopped);
    assert_eq!(w.pods[0].status, "EXITED");
    assert!(matches!(
        &w.plan(&spec(POD)).actions[0],
        Action::StartPod { .. }
    ));
}

#[test]
fn a_stopped_workload_that_does_not_exist_is_not_created() {
    let w = World::new();
    let plan = w.plan(&with(POD, "state: Stopped"));
    assert!(plan.actions.is_empty());
    assert_eq!(plan.state.as_deref(), Some("Stopped (not created)"));
}

// ---- money ------------------------------------------------------------------------------------------

#[test]
fn the_workload_cap_refuses_a_create_and_says_the_figures() {
    let w = World::new();
    let plan = w.plan(&with(POD, "spendingCap: {usdPerHour: \"1\"}"));
    assert!(plan.actions.is_empty());
    let verdict = condition(&plan, CONDITION_SPEND_CAP_EXCEEDED);
    assert!(verdict.status);
    assert_eq!(
        verdict.message,
        "worst case 1.91 USD/h exceeds the workload cap 1.00 USD/h (spec.spendingCap.usdPerHour)"
    );
    assert!(condition(&plan, CONDITION_STALLED).status);
}

/// Issue 12 item 1: a price rise that breaks the cap of what already runs is reported, and
/// nothing is stopped or deleted for it; what would spend more is refused.
#[test]
fn a_price_rise_past_the_cap_is_reported_for_what_runs_and_stops_nothing() {
    let mut w = World::new();
    let pod = spec(POD);
    w.converge(&pod);
    assert!(!condition(&w.plan(&pod), CONDITION_SPEND_CAP_EXCEEDED).status);

    // The A100 rises from 1.89 to 3.50 USD/h: the worst case passes the 3 USD/h cap.
    w.prices
        .apply_live([runpod_operator::engine::prices::LiveGpuPrice {
            gpu_type: "NVIDIA A100-SXM4-80GB".into(),
            pool: None,
            secure_per_hour: Some(Decimal::new(350, 2)),
            community_per_hour: None,
            serverless_per_hour: None,
        }]);
    let plan = w.plan(&pod);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    let verdict = condition(&plan, CONDITION_SPEND_CAP_EXCEEDED);
    assert!(verdict.status);
    assert_eq!(verdict.reason, "RunningOverCap");
    assert!(
        verdict
            .message
            .starts_with("worst case 3.52 USD/h exceeds the workload cap 3.00 USD/h"),
        "{}",
        verdict.message
    );
    // Reported, not stalled: the pod runs and matches its spec.
    assert!(!condition(&plan, CONDITION_STALLED).status);
    assert!(condition(&plan, CONDITION_READY).status);

    // A change that needs a new pod at the new price is refused (nothing deleted first).
    let plan = w.plan(&with(
        POD,
        "gpu: {types: [\"NVIDIA A100-SXM4-80GB\"], count: 2}",
    ));
    assert!(
        plan.actions.iter().all(|a| !a.writes()),
        "{:?}",
        plan.actions
    );
    // Stopping it by spec still goes: saving money is never refused.
    let plan = w.plan(&with(POD, "state: Stopped"));
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::StopPod { .. })),
        "{:?}",
        plan.actions
    );
}

#[test]
fn the_monthly_cap_refuses_a_projected_month_above_it() {
    let w = World::new();
    let plan = w.plan(&with(
        POD,
        "spendingCap: {usdPerHour: \"3\", usdPerMonth: \"1000\"}",
    ));
    assert!(plan.actions.is_empty());
    assert!(
        condition(&plan, CONDITION_SPEND_CAP_EXCEEDED)
            .message
            .starts_with("projected month 1375.80 USD exceeds")
    );
}

#[test]
fn the_account_cap_refuses_before_runpod_does_the_seed_endpoint_at_82_16() {
    let w = World::new();
    let seed = with(
        ENDPOINT,
        "serverless: {maxWorkers: 30}\nspendingCap: {usdPerHour: \"84\"}",
    );
    let plan = w.plan(&seed);
    assert!(plan.actions.is_empty());
    assert_eq!(
        condition(&plan, CONDITION_SPEND_CAP_EXCEEDED).message,
        "worst case 82.16 USD/h for the account (this workload 82.16 USD/h) exceeds the account cap 80.00 USD/h"
    );
}

#[test]
fn other_workloads_count_against_the_account_cap() {
    let w = World::new();
    let s = spec(POD);
    let mut busy = money();
    busy.others_worst_case_per_hour = Decimal::from(79);
    let plan = w.plan_with(&s, w.ctx(&s, busy));
    assert!(
        condition(&plan, CONDITION_SPEND_CAP_EXCEEDED)
            .message
            .contains("80.91 USD/h for the account")
    );
}

#[test]
fn the_credit_rule_wants_one_hour_of_current_spend_plus_the_new_cost() {
    let w = World::new();
    let s = spec(POD);
    let mut poor = money();
    poor.balance = Some(Decimal::from(10));
    poor.spend_per_hour = Some(Decimal::from(9));
    let plan = w.plan_with(&s, w.ctx(&s, poor));
    assert!(plan.actions.is_empty());
    assert_eq!(
        condition(&plan, CONDITION_INSUFFICIENT_CREDIT).message,
        "balance 10.00 USD is below one hour of spend (9.00 USD/h now + 1.91 USD/h new)"
    );
}

#[test]
fn a_runway_too_long_to_compute_is_long_enough_and_never_a_panic() {
    // A huge balance over a tiny spend overflows a decimal division: the runway is then
    // simply long enough (no LowRunway, no victim), never a crash.
    let w = World::new();
    let s = spec(POD);
    let mut rich = money();
    rich.balance = Some(Decimal::MAX);
    rich.spend_per_hour = Some(Decimal::new(1, 28));
    let plan = w.plan_with(&s, w.ctx(&s, rich));
    assert!(!plan.actions.is_empty(), "{:?}", plan.verdicts);
    assert!(!condition(&plan, CONDITION_INSUFFICIENT_CREDIT).status);
    let workloads = vec![("ml/a".to_string(), 0, Decimal::ONE)];
    assert!(credit_victims(Decimal::MAX, Decimal::new(1, 28), 24, &workloads).is_empty());
}

#[test]
fn nothing_is_started_while_the_balance_is_unknown() {
    let w = World::new();
    let s = spec(POD);
    let mut unknown = money();
    unknown.balance = None;
    let plan = w.plan_with(&s, w.ctx(&s, unknown));
    assert!(plan.actions.is_empty());
    assert_eq!(condition(&plan, CONDITION_STALLED).reason, "BalanceUnknown");
}

#[test]
fn a_short_runway_is_reported_even_when_nothing_is_refused() {
    let mut w = World::new();
    let s = spec(POD);
    w.converge(&s);
    let mut low = money();
    low.balance = Some(Decimal::from(20));
    low.spend_per_hour = Some(Decimal::from(2));
    let plan = w.plan_with(&s, w.ctx(&s, low));
    let verdict = condition(&plan, CONDITION_INSUFFICIENT_CREDIT);
    assert_eq!(verdict.reason, "LowRunway");
    assert!(verdict.message.contains("lasts 10.0 hours"));
}

#[test]
fn credit_victims_are_the_lowest_priority_first_until_the_runway_is_back() {
    let workloads = vec![
        ("ml/train".to_string(), 10, Decimal::from(4)),
        ("ml/batch".to_string(), -5, Decimal::from(3)),
        ("ml/chat".to_string(), 0, Decimal::from(2)),
    ];
    // $90 at $9/h is 10 hours; 24 are wanted. Stopping batch (-5) leaves $6/h: 15 h; then
    // chat (0) leaves $4/h: 22.5 h; then train: done. Then, highest priority first, what
    // still fits 25 hours (24 + the restart margin) keeps running: train alone would last
    // 22.5 h (stopped), chat alone 45 h (kept), batch with chat 18 h (stopped).
    assert_eq!(
        credit_victims(Decimal::from(90), Decimal::from(9), 24, &workloads),
        ["ml/batch", "ml/train"]
    );
    assert!(credit_victims(Decimal::from(1000), Decimal::from(9), 24, &workloads).is_empty());
}

#[test]
fn a_workload_forced_down_by_the_credit_policy_stops_or_scales_to_zero() {
    let mut w = World::new();
    let (pod, endpoint) = (spec(POD), spec(ENDPOINT));
    w.converge(&pod);
    let mut serverless = World::new();
    serverless.converge(&endpoint);
    let mut forced = money();
    forced.forced_down = Some("credit policy: lowest priority while the runway is short".into());
    let plan = w.plan_with(&pod, w.ctx(&pod, forced.clone()));
    assert!(
        matches!(&plan.actions[0], Action::StopPod { reason, .. } if reason.starts_with("credit policy"))
    );
    let plan = serverless.plan_with(&endpoint, serverless.ctx(&endpoint, forced));
    let Action::UpdateEndpoint {
        request, saving, ..
    } = &plan.actions[0]
    else {
        panic!()
    };
    assert!(saving);
    assert_eq!(
        (request.workers.unwrap().min, request.workers.unwrap().max),
        (Some(0), Some(0))
    );
    // Once down, it is not Ready, on purpose: StoppedByPolicy (Argo CD shows Suspended).
    w.pods[0].status = "EXITED".into();
    let plan = w.plan_with(&pod, w.ctx(&pod, money_forced()));
    assert!(plan.actions.is_empty());
    assert_eq!(condition(&plan, CONDITION_READY).reason, "StoppedByPolicy");
    assert!(!condition(&plan, CONDITION_STALLED).status);
}

fn money_forced() -> Money {
    Money {
        forced_down: Some("credit policy: lowest priority while the runway is short".into()),
        ..money()
    }
}

// ---- the stopped-volume policy ---------------------------------------------------------------------

fn stopped_world() -> (World, GpuWorkloadSpec) {
    let mut w = World::new();
    let s = with(POD, "state: Stopped");
    w.converge(&spec(POD));
    w.converge(&s);
    (w, s)
}

#[test]
fn a_pod_stopped_too_long_is_alerted_on_with_its_storage_cost() {
    let (w, s) = stopped_world();
    let mut ctx = w.ctx(&s, money());
    ctx.stopped_volume_policy = Some(StoppedVolumePolicy {
        action: StoppedVolumeAction::Alert,
        after_hours: 24,
    });
    ctx.stopped_since = Some(Timestamp::from_second(1_767_225_600 - 48 * 3600).unwrap());
    let plan = w.plan_with(&s, ctx);
    assert!(plan.actions.is_empty(), "alert only deletes nothing");
    let verdict = condition(&plan, CONDITION_STOPPED_TOO_LONG);
    assert_eq!(
        verdict.message,
        "stopped for 48 hours (policy: 24 hours); its 100 GB volume costs 20.00 USD/month while stopped"
    );
}

#[test]
fn a_pod_stopped_too_long_is_deleted_only_when_the_policy_says_delete() {
    let (w, s) = stopped_world();
    let mut ctx = w.ctx(&s, money());
    ctx.stopped_volume_policy = Some(StoppedVolumePolicy {
        action: StoppedVolumeAction::Delete,
        after_hours: 24,
    });
    ctx.stopped_since = Some(Timestamp::from_second(1_767_225_600 - 25 * 3600).unwrap());
    assert!(matches!(
        &w.plan_with(&s, ctx).actions[0],
        Action::DeletePod { .. }
    ));
    let mut early = w.ctx(&s, money());
    early.stopped_volume_policy = Some(StoppedVolumePolicy {
        action: StoppedVolumeAction::Delete,
        after_hours: 24,
    });
    early.stopped_since = Some(Timestamp::from_second(1_767_225_600 - 3600).unwrap());
    assert!(w.plan_with(&s, early).actions.is_empty());
}

// ---- management policies and drift ------------------------------------------------------------------

#[test]
fn observe_only_reports_drift_and_never_writes() {
    let mut w = World::new();
    w.converge(&spec(POD));
    let s = with(
        POD,
        "managementPolicy: ObserveOnly\nimage: ghcr.io/acme/trainer:2",
    );
    let plan = w.plan(&s);
    assert!(plan.actions.is_empty());
    assert!(condition(&plan, CONDITION_DRIFTED).status);
    assert_eq!(plan.drift[0].field, "spec.image");
    let missing = World::new().plan(&with(POD, "managementPolicy: ObserveOnly"));
    assert!(missing.actions.is_empty(), "observing never creates");
}

#[test]
fn paused_does_nothing_at_all() {
    let w = World::new();
    let plan = w.plan(&with(POD, "managementPolicy: Paused"));
    assert!(plan.actions.is_empty());
    assert!(plan.drift.is_empty());
    assert_eq!(condition(&plan, CONDITION_READY).reason, "Paused");
}

#[test]
fn env_drift_names_the_key_and_never_the_value() {
    let mut w = World::new();
    w.converge(&spec(POD));
    w.pods[0]
        .env
        .insert("HF_TOKEN".into(), "hf_secret_value".into());
    let plan = w.plan(&spec(POD));
    let entry = plan
        .drift
        .iter()
        .find(|d| d.field == "spec.env[HF_TOKEN]")
        .unwrap();
    assert_eq!(
        (entry.declared.as_str(), entry.observed.as_str()),
        ("unset", "set")
    );
    assert!(!format!("{:?}", plan.drift).contains("hf_secret_value"));
}

// ---- endpoints -------------------------------------------------------------------------------------

#[test]
fn a_missing_endpoint_is_created_with_explicit_zero_active_workers() {
    let w = World::new();
    let plan = w.plan(&spec(ENDPOINT));
    let Action::CreateEndpoint { request } = &plan.actions[0] else {
        panic!("{:?}", plan.actions)
    };
    assert_eq!(request.workers.min, Some(0));
    assert_eq!(request.gpu.pools, ["AMPERE_80"]);
    assert_eq!(request.env[OWNER_ENV], w.owner.uid);
}

#[test]
fn an_endpoint_scale_down_is_a_money_saving_patch_and_a_scale_up_checks_the_cap() {
    let mut w = World::new();
    w.converge(&spec(ENDPOINT));
    let down = w.plan(&with(ENDPOINT, "serverless: {maxWorkers: 1}"));
    assert!(matches!(
        &down.actions[0],
        Action::UpdateEndpoint { saving: true, .. }
    ));
    let up = w.plan(&with(ENDPOINT, "serverless: {maxWorkers: 10}"));
    assert!(
        up.actions.is_empty(),
        "10 workers are 27.4 USD/h, over the 9 USD/h cap"
    );
    assert!(condition(&up, CONDITION_SPEND_CAP_EXCEEDED).status);
}

#[test]
fn an_endpoint_edited_in_the_console_is_drift_and_patched_back() {
    let mut w = World::new();
    let s = spec(ENDPOINT);
    w.converge(&s);
    w.endpoints[0].workers.max = Some(1);
    w.endpoints[0].flashboot = "FLASHBOOT".into();
    let plan = w.plan(&s);
    let fields: Vec<_> = plan.drift.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        ["spec.serverless.maxWorkers", "spec.serverless.flashBoot"]
    );
    w.converge(&s);
    assert_eq!(w.endpoints[0].workers.max, Some(3));
}

// ---- deletion ----------------------------------------------------------------------------------------

#[test]
fn deleting_the_workload_deletes_what_it_owns_and_orphan_keeps_it() {
    let mut w = World::new();
    w.converge(&spec(POD));
    // A type change half done: the new endpoint made, the old pod kept for its volume.
    w.converge(&with(ENDPOINT, "spendingCap: {usdPerHour: \"20\"}"));
    assert_eq!((w.pods.len(), w.endpoints.len()), (1, 1));
    let observed = Observed::scan(&w.pods, &w.endpoints);
    assert_eq!(plan_delete(&w.owner, None, observed, false).len(), 2);
    assert!(plan_delete(&w.owner, None, observed, true).is_empty());
    let stranger = Owner {
        uid: "someone-else".into(),
        ..owner()
    };
    assert!(plan_delete(&stranger, None, observed, false).is_empty());
}

// ---- desired state ----------------------------------------------------------------------------------

#[test]
fn an_unknown_gpu_type_is_named_by_its_path() {
    let w = World::new();
    let err = desired(
        &w.owner,
        &with(POD, r#"gpu: {types: ["NVIDIA A100"]}"#),
        &References::default(),
        &w.prices,
    )
    .unwrap_err();
    let DesiredError::Invalid(errors) = err else {
        panic!()
    };
    assert_eq!(errors[0].path, "spec.gpu.types[0]");
}

#[test]
fn a_missing_secret_is_waited_for_not_refused() {
    let w = World::new();
    let s = with(
        POD,
        "env: [{name: TOKEN, valueFrom: {secretKeyRef: {name: hf, key: token}}}]",
    );
    let err = desired(&w.owner, &s, &References::default(), &w.prices).unwrap_err();
    assert!(matches!(err, DesiredError::Waiting(reason) if reason.contains("Secret \"hf\"")));
    let refs = References {
        secrets: BTreeMap::from([(
            "hf".into(),
            BTreeMap::from([("token".into(), "t0k".into())]),
        )]),
        ..References::default()
    };
    let Ok(Desired::Pod(pod)) = desired(&w.owner, &s, &refs, &w.prices) else {
        panic!()
    };
    assert_eq!(pod.container.env["TOKEN"], "t0k");
}

#[test]
fn a_network_volume_pins_a_pod_to_its_data_centre_and_must_be_allowed() {
    let w = World::new();
    let refs = References {
        volumes: BTreeMap::from([(
            "weights".into(),
            VolumeRef {
                runpod_id: Some("vol0000001".into()),
                data_center: "EU-RO-1".into(),
            },
        )]),
        ..References::default()
    };
    let s = with(POD, "volume: null\nnetworkVolumes: [{name: weights}]");
    let Ok(Desired::Pod(pod)) = desired(&w.owner, &s, &refs, &w.prices) else {
        panic!()
    };
    assert_eq!(pod.data_centers, ["EU-RO-1"]);
    let excluded = with(
        POD,
        "volume: null\nnetworkVolumes: [{name: weights}]\ndataCenters: [US-TX-3]",
    );
    let Err(DesiredError::Invalid(errors)) = desired(&w.owner, &excluded, &refs, &w.prices) else {
        panic!()
    };
    assert!(errors[0].message.contains("spec.dataCenters excludes"));
    let not_yet = References {
        volumes: BTreeMap::from([(
            "weights".into(),
            VolumeRef {
                runpod_id: None,
                data_center: "EU-RO-1".into(),
            },
        )]),
        ..References::default()
    };
    assert!(matches!(
        desired(&w.owner, &s, &not_yet, &w.prices),
        Err(DesiredError::Waiting(_))
    ));
}

#[test]
fn the_owner_marker_cannot_be_set_by_hand() {
    let w = World::new();
    let s = with(POD, &format!("env: [{{name: {OWNER_ENV}, value: x}}]"));
    assert!(matches!(
        desired(&w.owner, &s, &References::default(), &w.prices),
        Err(DesiredError::Invalid(_))
    ));
}

// ---- properties ----------------------------------------------------------------------------------------

fn pod_variant(image: u8, disk: u32, count: u32, volume: u32, stopped: bool) -> GpuWorkloadSpec {
    with(
        POD,
        &format!(
            "image: img:{image}\ncontainerDiskGb: {disk}\ngpu: {{count: {count}}}\nvolume: {{sizeGb: {volume}}}\nstate: {}\nreplacePolicy: Allow\nspendingCap: {{usdPerHour: \"100\"}}",
            if stopped { "Stopped" } else { "Running" }
        ),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Applying a plan and planning again converges: after a few passes nothing is left to do.
    #[test]
    fn plans_converge(
        first in (0u8..3, 10u32..60, 1u32..3, 10u32..200, any::<bool>()),
        second in (0u8..3, 10u32..60, 1u32..3, 10u32..200, any::<bool>()),
        workers in (0u32..3, 3u32..6),
    ) {
        let mut w = World::new();
        w.converge(&pod_variant(first.0, first.1, first.2, first.3, first.4));
        let target = pod_variant(second.0, second.1, second.2, second.3, second.4);
        w.converge(&target);
        prop_assert!(!w.plan(&target).has_writes());
        prop_assert!(w.pods.len() <= 1);

        let endpoint = with(ENDPOINT, &format!(
            "serverless: {{workerClass: {}, activeWorkers: {}, maxWorkers: {}}}\nspendingCap: {{usdPerHour: \"100\"}}",
            if workers.0 > 0 { "Active" } else { "Flex" }, workers.0, workers.1));
        w.converge(&endpoint);
        prop_assert!(!w.plan(&endpoint).has_writes());
    }

    /// No plan creates, starts, replaces or scales up past the workload cap, the account cap or
    /// the credit rule.
    #[test]
    fn no_plan_spends_past_a_cap_or_the_credit_rule(
        cap in 0u32..12, count in 1u32..4, others in 0u32..90, balance in 0u32..40, spend in 0u32..20, max in 1u32..8,
    ) {
        let w = World::new();
        let money = Money {
            others_worst_case_per_hour: Decimal::from(others),
            balance: Some(Decimal::from(balance)),
            spend_per_hour: Some(Decimal::from(spend)),
            ..money()
        };
        for s in [
            with(POD, &format!("gpu: {{count: {count}}}\nspendingCap: {{usdPerHour: \"{cap}\"}}")),
            with(ENDPOINT, &format!("serverless: {{maxWorkers: {max}}}\nspendingCap: {{usdPerHour: \"{cap}\"}}")),
        ] {
            let plan = w.plan_with(&s, w.ctx(&s, money.clone()));
            if plan.actions.iter().any(|a| matches!(a, Action::CreatePod { .. } | Action::CreateEndpoint { .. })) {
                let worst = plan.cost.as_ref().unwrap().worst_case_per_hour;
                prop_assert!(worst <= Decimal::from(cap));
                prop_assert!(worst + Decimal::from(others) <= Decimal::from(80));
                prop_assert!(Decimal::from(balance) >= Decimal::from(spend) + worst);
            }
        }
    }

    /// No plan deletes or replaces a pod with data unless a policy or an approval says so.
    #[test]
    fn no_plan_destroys_data_without_consent(
        image in 0u8..3, count in 1u32..3, volume in 10u32..200, types in 0usize..3, dc in any::<bool>(),
    ) {
        let mut w = World::new();
        w.converge(&with(POD, "spendingCap: {usdPerHour: \"100\"}"));
        let gpu = ["NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "NVIDIA A100 80GB PCIe"][types];
        let s = with(POD, &format!(
            "image: img:{image}\ngpu: {{types: [\"{gpu}\"], count: {count}}}\nvolume: {{sizeGb: {volume}}}\n{}spendingCap: {{usdPerHour: \"100\"}}",
            if dc { "dataCenters: [US-TX-3]\n" } else { "" }));
        let plan = w.plan(&s);
        let id = w.pods[0].id.clone();
        for action in &plan.actions {
            let destroys = matches!(action, Action::DeletePod { id: d, .. } if *d == id)
                || matches!(action, Action::ReplacePod { old_id, .. } if *old_id == id);
            prop_assert!(!destroys, "{:?}", action);
        }
    }
}

#[test]
fn a_pod_whose_marker_was_removed_in_the_console_is_still_found_by_its_name() {
    let mut w = World::new();
    let s = spec(POD);
    w.converge(&s);
    w.pods[0].env.clear();
    let plan = w.plan(&s);
    // No second pod, and no env PATCH just to restore the marker: that would reset the pod.
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(plan.runpod_id.as_deref(), Some(w.pods[0].id.as_str()));
}

#[test]
fn a_stopped_pod_is_not_started_when_its_price_is_unknown() {
    let (w, _) = stopped_world();
    let s = spec(POD);
    assert_eq!(w.pods[0].status, "EXITED");
    let wanted = w.desired(&s);
    // The planner is handed no prices: starting the pod would spend blind, so it refuses.
    let empty = PriceCatalogue::from_parts(vec![], vec![], Default::default());
    let mut ctx = w.ctx(&s, money());
    ctx.prices = &empty;
    let observed = Observed::scan(&w.pods, &w.endpoints);
    let plan = plan(&wanted, observed, &ctx);
    assert_eq!(
        plan.state.as_deref(),
        Some("EXITED"),
        "the stopped pod is found"
    );
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::StartPod { .. })),
        "{:?}",
        plan.actions
    );
    assert_eq!(condition(&plan, CONDITION_STALLED).reason, "NoPrice");
}

// ---- account totals kept incrementally ---------------------------------------------------------

/// One change to an account: which object, and its new worst case (thousandths of a USD/h)
/// with, for a workload, its priority and current cost (cents/h); `None` deletes it.
type TotalsOp = (usize, Option<(i64, Option<(i32, i64)>)>);

fn totals_op() -> impl Strategy<Value = TotalsOp> {
    (
        0..12usize,
        prop::option::weighted(
            0.75,
            (
                0..50_000i64,
                prop::option::weighted(0.8, (-3..4i32, 0..3_000i64)),
            ),
        ),
    )
}

proptest! {
    /// After any sequence of adds, edits and deletes, the totals kept one object at a time
    /// equal the totals computed from scratch, and the credit policy picks the same victims
    /// from the kept ranking as from a fresh sort.
    #[test]
    fn incremental_totals_equal_a_from_scratch_computation(
        ops in prop::collection::vec(totals_op(), 1..80),
        balance in 0..20_000i64,
        spend in 0..3_000i64,
        runway in 0..48u32,
    ) {
        let mut totals = AccountTotals::default();
        let mut model: BTreeMap<String, Share> = BTreeMap::new();
        for (object, change) in ops {
            let key = format!("ml/w-{object}");
            match change {
                Some((worst, ranked)) => {
                    let share = Share {
                        worst_per_hour: Decimal::new(worst, 3),
                        ranked: ranked.map(|(p, c)| (p, Decimal::new(c, 2))),
                    };
                    totals.set(&key, share.clone());
                    model.insert(key, share);
                }
                None => {
                    totals.remove(&key);
                    model.remove(&key);
                }
            }
            let scratch = AccountTotals::from_scratch(model.iter().map(|(k, s)| (k.as_str(), s)));
            prop_assert_eq!(totals.figures(), scratch);
            prop_assert_eq!(totals.len(), model.len());
            for other in 0..12 {
                let key = format!("ml/w-{other}");
                let without: Decimal = model
                    .iter()
                    .filter(|(k, _)| **k != key)
                    .map(|(_, s)| s.worst_per_hour)
                    .sum();
                prop_assert_eq!(totals.worst_per_hour_without(&key), without);
            }
        }
        let current: Vec<(String, i32, Decimal)> = model
            .iter()
            .filter_map(|(k, s)| s.ranked.map(|(p, c)| (k.clone(), p, c)))
            .collect();
        let (balance, spend) = (Decimal::new(balance, 2), Decimal::new(spend, 2));
        prop_assert_eq!(
            credit_victims_ranked(balance, spend, runway, totals.ranking()),
            credit_victims(balance, spend, runway, &current)
        );
    }
}

// ---- the serverless worker quota -----------------------------------------------------------------------

/// RunPod's account-wide worker quota, by balance (docs/runpod.md): a create or a raise of
/// `maxWorkers` past it is refused in the plan, with the figures, before RunPod is called.
#[test]
fn the_worker_quota_refuses_a_create_or_raise_past_it_with_the_figures() {
    let quota_money = |balance: u32, account_workers: u64| Money {
        balance: Some(Decimal::from(balance)),
        account_workers_max: Some(account_workers),
        ..money()
    };
    let endpoint = |max: u32| {
        with(
            ENDPOINT,
            &format!("serverless: {{maxWorkers: {max}}}\nspendingCap: {{usdPerHour: \"100\"}}"),
        )
    };
    let creates = |plan: &Plan| {
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::CreateEndpoint { .. }))
    };
    let w = World::new();

    // $50: 5 workers for the whole account.
    let s = endpoint(8);
    let plan = w.plan_with(&s, w.ctx(&s, quota_money(50, 0)));
    assert!(!creates(&plan), "{:?}", plan.actions);
    let refusal = condition(&plan, CONDITION_INSUFFICIENT_CREDIT);
    assert!(refusal.status);
    assert_eq!(refusal.reason, "WorkerQuota");
    for figure in ["8", "quota of 5", "50", "$100"] {
        assert!(
            refusal.message.contains(figure),
            "{figure}: {}",
            refusal.message
        );
    }
    let s = endpoint(5);
    assert!(creates(&w.plan_with(&s, w.ctx(&s, quota_money(50, 0)))));

    // $150: 10 workers; other endpoints already take 6.
    let s = endpoint(5);
    assert!(!creates(&w.plan_with(&s, w.ctx(&s, quota_money(150, 6)))));
    let s = endpoint(4);
    assert!(creates(&w.plan_with(&s, w.ctx(&s, quota_money(150, 6)))));
    // Unknown figures (no balance read, lists not read): RunPod decides.
    let s = endpoint(8);
    let unknown = Money {
        account_workers_max: None,
        ..quota_money(50, 0)
    };
    assert!(creates(&w.plan_with(&s, w.ctx(&s, unknown))));

    // A running endpoint of 3: raising it to 8 at $50 is refused (its own 3 are not counted
    // twice), lowering it is not.
    let mut w = World::new();
    let three = endpoint(3);
    w.converge(&three);
    let raise = endpoint(8);
    let plan = w.plan_with(&raise, w.ctx(&raise, quota_money(50, 3)));
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::UpdateEndpoint { .. })),
        "{:?}",
        plan.actions
    );
    assert_eq!(
        condition(&plan, CONDITION_INSUFFICIENT_CREDIT).reason,
        "WorkerQuota"
    );
    let raise = endpoint(5);
    let plan = w.plan_with(&raise, w.ctx(&raise, quota_money(50, 3)));
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::UpdateEndpoint { .. }))
    );
    let lower = endpoint(2);
    let plan = w.plan_with(&lower, w.ctx(&lower, quota_money(50, 30)));
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::UpdateEndpoint { .. }))
    );
}

#[test]
fn worker_class_auto_runs_the_measured_active_workers_within_max_workers() {
    let w = World::new();
    let auto = with(
        ENDPOINT,
        "serverless: {workerClass: Auto, maxWorkers: 3, idleTimeoutSeconds: 5}",
    );
    let min = |measured: Option<u32>| {
        let refs = References {
            auto_active: measured,
            ..References::default()
        };
        match desired(&w.owner, &auto, &refs, &w.prices).unwrap() {
            Desired::Endpoint(e) => e.workers_min,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(min(None), 0, "flex only until measured");
    assert_eq!(min(Some(2)), 2);
    assert_eq!(min(Some(9)), 3, "never past maxWorkers");
    // Flex and Active ignore the measurement: the spec says.
    let flex = with(ENDPOINT, "serverless: {maxWorkers: 3}");
    let refs = References {
        auto_active: Some(2),
        ..References::default()
    };
    match desired(&w.owner, &flex, &refs, &w.prices).unwrap() {
        Desired::Endpoint(e) => assert_eq!(e.workers_min, 0),
        other => panic!("{other:?}"),
    }
}

// ---- switching sides: a type change, by the spec or by type Auto ---------------------------------

/// A pod with no pod volume (the endpoint's shape, on a Pod).
const BARE_POD: &str = r#"
type: Pod
image: ghcr.io/acme/matting:1
gpu: {types: ["NVIDIA A100-SXM4-80GB"], count: 1}
containerDiskGb: 20
spendingCap: {usdPerHour: "9"}
"#;

fn hash_in(message: &str) -> String {
    message
        .rsplit("approve-replace=")
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_type_change_keeps_the_old_endpoint_serving_until_the_new_pod_runs_then_deletes_it() {
    let mut w = World::new();
    w.converge(&spec(ENDPOINT));
    let endpoint_id = w.endpoints[0].id.clone();
    let pod = spec(BARE_POD);
    let plan = w.plan(&pod);
    assert!(
        matches!(plan.actions.as_slice(), [Action::CreatePod { .. }]),
        "the new side first, the old one untouched: {:?}",
        plan.actions
    );
    assert_eq!(plan.runpod_id.as_deref(), Some(endpoint_id.as_str()));
    assert!(plan.drift.iter().any(|d| d.field == "type"));
    w.apply(&plan.actions[0]);
    // Provisioning, then RUNNING before the container is up, then up for less than a minute
    // (RunPod's proxy answers 30-60 s later): the endpoint stays, the workload is not Ready.
    let settled = w.pods[0].runtime.clone();
    for (status, uptime) in [
        ("PROVISIONING", None),
        ("RUNNING", None),
        ("RUNNING", Some(30)),
    ] {
        w.pods[0].status = status.into();
        w.pods[0].runtime = uptime.map(|up| PodRuntime {
            uptime: Some(up),
            gpu_util_max: None,
        });
        let plan = w.plan(&pod);
        assert!(
            plan.actions.is_empty(),
            "{status} {uptime:?}: {:?}",
            plan.actions
        );
        assert!(!condition(&plan, CONDITION_READY).status);
        assert_eq!(w.endpoints.len(), 1);
    }
    // Serving: now the endpoint goes, and it is the only action.
    w.pods[0].runtime = settled;
    let plan = w.plan(&pod);
    let [Action::DeleteEndpoint { id, reason }] = plan.actions.as_slice() else {
        panic!("{:?}", plan.actions)
    };
    assert_eq!(id, &endpoint_id);
    assert!(reason.contains(&w.pods[0].id), "{reason}");
    assert_eq!(w.converge(&pod), 1);
    assert!(w.endpoints.is_empty());
    assert_eq!(w.pods.len(), 1, "one pod, never a second");
    let plan = w.plan(&pod);
    assert!(condition(&plan, CONDITION_READY).status);
}

#[test]
fn while_both_sides_run_the_old_sides_spend_counts_against_the_cap() {
    // One active A100 worker, at the active rate, on top of the pod's price while both run.
    let active = with(
        ENDPOINT,
        "serverless: {workerClass: Active, activeWorkers: 1, maxWorkers: 1}",
    );
    let mut w = World::new();
    w.converge(&active);
    let tight = with(BARE_POD, "spendingCap: {usdPerHour: \"3\"}");
    let plan = w.plan(&tight);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    let refusal = condition(&plan, CONDITION_SPEND_CAP_EXCEEDED);
    assert!(refusal.status, "{refusal:?}");
    assert_eq!(w.endpoints.len(), 1, "the endpoint keeps serving");
    // A cap that holds both for the overlap lets the switch go.
    let roomy = with(BARE_POD, "spendingCap: {usdPerHour: \"5\"}");
    let plan = w.plan(&roomy);
    assert!(
        matches!(plan.actions.as_slice(), [Action::CreatePod { .. }]),
        "{:?}",
        plan.verdicts
    );
    let spend = plan.spend.expect("the create asks to spend");
    assert!(
        spend.worst_per_hour > Decimal::from(3),
        "pod + the old active worker: {}",
        spend.worst_per_hour
    );
}

#[test]
fn a_switch_away_from_a_pod_with_a_volume_stops_it_and_deletes_it_only_with_approval() {
    let mut w = World::new();
    w.converge(&spec(POD));
    let pod_id = w.pods[0].id.clone();
    // The cap holds the endpoint's worst case and the pod while both run.
    let endpoint = with(ENDPOINT, "spendingCap: {usdPerHour: \"20\"}");
    w.converge(&endpoint);
    assert_eq!(w.endpoints.len(), 1);
    assert_eq!(w.pods.len(), 1, "the pod volume is never destroyed unasked");
    assert_eq!(
        w.pods[0].status, "EXITED",
        "stopped: it bills as storage only"
    );
    let plan = w.plan(&endpoint);
    let asks = condition(&plan, CONDITION_REPLACE_NEEDS_APPROVAL);
    assert!(asks.status);
    assert!(
        asks.message.contains("100 GB pod volume"),
        "{}",
        asks.message
    );
    assert!(asks.message.contains(&pod_id));
    let hash = hash_in(&asks.message);
    let mut ctx = w.ctx(&endpoint, money());
    ctx.approved_hash = Some(&hash);
    let plan = w.plan_with(&endpoint, ctx);
    assert!(
        matches!(plan.actions.as_slice(), [Action::DeletePod { id, .. }] if *id == pod_id),
        "{:?}",
        plan.actions
    );
    let mut stale = w.ctx(&endpoint, money());
    stale.approved_hash = Some("0000000000000000");
    assert!(w.plan_with(&endpoint, stale).actions.is_empty());
}

#[test]
fn a_switch_forced_down_by_the_credit_policy_takes_the_old_side_down_and_deletes_nothing() {
    let mut w = World::new();
    w.converge(&with(
        ENDPOINT,
        "serverless: {workerClass: Active, activeWorkers: 1, maxWorkers: 1}",
    ));
    let pod = spec(BARE_POD);
    let plan = w.plan_with(&pod, w.ctx(&pod, money_forced()));
    let [
        Action::UpdateEndpoint {
            request, saving, ..
        },
    ] = plan.actions.as_slice()
    else {
        panic!("{:?}", plan.actions)
    };
    assert!(saving);
    assert_eq!(request.workers.unwrap().max, Some(0));
}

#[test]
fn a_stopped_pod_needs_nothing_made_so_the_old_endpoint_goes_at_once() {
    let mut w = World::new();
    w.converge(&spec(ENDPOINT));
    let stopped = with(BARE_POD, "state: Stopped");
    let plan = w.plan(&stopped);
    assert!(matches!(
        plan.actions.as_slice(),
        [Action::DeleteEndpoint { .. }]
    ));
}

#[test]
fn type_auto_runs_as_the_chosen_side_and_moves_with_make_before_break() {
    let auto = with(ENDPOINT, "type: Auto");
    let mut w = World::new();
    // Nothing chosen: Serverless.
    assert!(matches!(w.desired(&auto), Desired::Endpoint(_)));
    w.converge(&auto);
    assert_eq!(w.endpoints.len(), 1);
    // Chosen: a Pod, made before the endpoint goes.
    w.auto_type = Some(WorkloadType::Pod);
    assert!(matches!(w.desired(&auto), Desired::Pod(_)));
    let plan = w.plan(&auto);
    assert!(matches!(
        plan.actions.as_slice(),
        [Action::CreatePod { .. }]
    ));
    w.converge(&auto);
    assert_eq!((w.pods.len(), w.endpoints.len()), (1, 0));
    // Auto's worst case is the dearer side, whichever runs.
    let plan = w.plan(&auto);
    let serverless_worst = w_cost(&spec(ENDPOINT));
    assert_eq!(plan.cost.unwrap().worst_case_per_hour, serverless_worst);
}

fn w_cost(s: &GpuWorkloadSpec) -> Decimal {
    runpod_operator::engine::cost::workload_cost(
        s,
        &PriceCatalogue::builtin(),
        runpod_operator::engine::cost::Usage::default(),
    )
    .unwrap()
    .worst_case_per_hour
}

#[test]
fn type_auto_refuses_a_pod_volume_and_a_gpu_either_side_cannot_price() {
    let w = World::new();
    let with_volume = with(ENDPOINT, "type: Auto\nvolume: {sizeGb: 20}");
    let Err(DesiredError::Invalid(errors)) =
        desired(&w.owner, &with_volume, &References::default(), &w.prices)
    else {
        panic!("a pod volume cannot follow Auto to Serverless")
    };
    assert!(
        errors
            .iter()
            .any(|e| e.path == "spec.volume" && e.message.contains("NetworkVolume"))
    );
    // An RTX 4090 has a pod price and a serverless pool; a type with only one of them is
    // refused for Auto even while it runs as the side that has it.
    for gpu in w.prices.gpu_types() {
        let both = gpu.pool.is_some() && gpu.secure_per_hour.is_some();
        let auto = with(
            ENDPOINT,
            &format!("type: Auto\ngpu: {{types: [\"{}\"]}}", gpu.gpu_type),
        );
        let built = desired(&w.owner, &auto, &References::default(), &w.prices);
        assert_eq!(built.is_ok(), both, "{}: {built:?}", gpu.gpu_type);
    }
}

#[test]
fn worker_class_auto_counts_the_active_workers_it_chose_against_the_caps() {
    let auto = with(
        ENDPOINT,
        "serverless: {workerClass: Auto, maxWorkers: 3}\nspendingCap: {usdPerHour: \"9\", usdPerMonth: \"1000\"}",
    );
    let mut w = World::new();
    w.converge(&auto);
    assert_eq!(w.endpoints[0].workers.min, Some(0));
    // Two active A100 workers around the clock are well past 1,000 USD a month.
    w.auto_active = Some(2);
    let plan = w.plan(&auto);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    let refusal = condition(&plan, CONDITION_SPEND_CAP_EXCEEDED);
    assert!(
        refusal.message.contains("usdPerMonth"),
        "{}",
        refusal.message
    );
    let active_per_hour = w
        .prices
        .pool_of("NVIDIA A100-SXM4-80GB")
        .unwrap()
        .active_per_second
        .unwrap()
        * Decimal::from(3600 * 2);
    assert!(plan.cost.unwrap().expected_per_hour >= active_per_hour);
    // With room in the month, the chosen count is what RunPod is asked for.
    let roomy = with(
        &serde_norway::to_string(&auto).unwrap(),
        "spendingCap: {usdPerMonth: \"5000\"}",
    );
    let plan = w.plan(&roomy);
    let [Action::UpdateEndpoint { request, .. }] = plan.actions.as_slice() else {
        panic!("{:?}", plan.actions)
    };
    assert_eq!(request.workers.unwrap().min, Some(2));
}
