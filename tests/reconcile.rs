//! The engine, the inventory and the executor against the simulator on loopback: the
//! examples converge, each kind of change produces the right call, crashes and
//! 500-after-create leave exactly one object, console edits are caught and corrected, and a
//! steady account of 1,000 workloads costs three list calls a resync and no writes.

use std::{collections::BTreeMap, path::Path, time::Duration};

use k8s_openapi::jiff::Timestamp;
use runpod_operator::{
    api::{
        GpuWorkload, NetworkVolume, RunPodAccountSpec,
        validate::{Manifest, parse_manifests},
    },
    engine::prices::PriceCatalogue,
    reconcile::{
        Report, Workspace, apply_pass,
        executor::{Outcome, execute},
        inventory::{self, Inventory},
        plan_workspace,
    },
    runpod::{Client, ClientConfig},
    sim::{self, SimConfig, SimHandle},
    tls,
};
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{Value, json};

struct Operator {
    sim: SimHandle,
    inventory: Inventory,
    prices: PriceCatalogue,
    admin: reqwest::Client,
}

fn client_for(sim: &SimHandle) -> Client {
    Client::new(ClientConfig {
        api_url: sim.api_url.clone(),
        graphql_url: sim.graphql_url.clone(),
        serverless_url: sim.serverless_url.clone(),
        requests_per_minute: 100_000,
        min_retry_delay: Duration::from_millis(5),
        max_retry_delay: Duration::from_millis(20),
        ..ClientConfig::new(SecretString::from(sim.api_key.clone()))
    })
    .unwrap()
}

impl Operator {
    async fn start(config: SimConfig) -> Self {
        let sim = sim::start(config).await.unwrap();
        // Resync every pass: each pass reads RunPod again, as a resync would.
        let inventory = Inventory::new(client_for(&sim), Duration::ZERO);
        Self {
            inventory,
            prices: PriceCatalogue::builtin(),
            admin: tls::http_client_builder().build().unwrap(),
            sim,
        }
    }

    /// A new process: an empty inventory, nothing remembered.
    fn restart(&mut self) {
        self.inventory = Inventory::new(client_for(&self.sim), Duration::ZERO);
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let reply = self
            .admin
            .request(method, format!("{}{path}", self.sim.api_url))
            .bearer_auth(&self.sim.api_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        serde_json::from_str(&reply.text().await.unwrap()).unwrap_or(Value::Null)
    }

    async fn pass(&self, ws: &Workspace) -> Report {
        let now = Timestamp::from_second(1_767_225_600).unwrap();
        apply_pass(ws, &self.inventory, &self.prices, now)
            .await
            .unwrap()
    }

    /// Passes until nothing is written (pods boot in between); returns the passes it took.
    async fn converge(&self, ws: &Workspace) -> usize {
        for pass in 1..=12 {
            let report = self.pass(ws).await;
            for item in &report.items {
                if let Some(Outcome::Failed(e)) = &item.outcome {
                    panic!("{}: {e}", item.key);
                }
            }
            if report.writes == 0 {
                return pass;
            }
            self.sim.sim.advance(30);
        }
        panic!("no convergence in 12 passes");
    }

    fn calls(&self, method: &str, prefix: &str) -> usize {
        self.sim.sim.calls(method, prefix)
    }

    async fn state(&self) -> Value {
        self.admin(reqwest::Method::GET, "/_sim/state", Value::Null)
            .await
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let violations = self.sim.sim.violations();
            assert!(
                violations.is_empty(),
                "answers that break the spec: {violations:#?}"
            );
        }
    }
}

/// The examples run 33 serverless workers at most, which RunPod allows from a $500 balance.
fn funded() -> SimConfig {
    SimConfig {
        balance: Decimal::from(1000),
        ..SimConfig::default()
    }
}

fn examples() -> Workspace {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut ws = Workspace {
        account: serde_json::from_value(
            json!({"apiKeySecretRef": {"namespace": "x", "name": "y"}}),
        )
        .unwrap(),
        workloads: vec![],
        volumes: vec![],
        secrets: BTreeMap::new(),
        auto: Default::default(),
    };
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for manifest in parse_manifests(&text, &path.display().to_string()).unwrap() {
            match manifest {
                Manifest::GpuWorkload(w) => ws.workloads.push(*w),
                Manifest::NetworkVolume(v) => ws.volumes.push(*v),
                Manifest::RunPodAccount(a) => ws.account = a.spec,
                Manifest::Other(_) => {}
            }
        }
    }
    ws.workloads.sort_by_key(|w| w.metadata.name.clone());
    let secret = |ns: &str, name: &str, key: &str| {
        (
            ns.to_string(),
            BTreeMap::from([(
                name.to_string(),
                BTreeMap::from([(key.to_string(), "s3cr3t".to_string())]),
            )]),
        )
    };
    ws.secrets.extend([
        secret("research", "wandb", "apiKey"),
        secret("inference", "huggingface", "token"),
    ]);
    ws
}

fn workload<'a>(ws: &'a mut Workspace, name: &str) -> &'a mut GpuWorkload {
    ws.workloads
        .iter_mut()
        .find(|w| w.metadata.name.as_deref() == Some(name))
        .unwrap()
}

fn items_ready(report: &Report) -> bool {
    report.items.iter().all(|i| i.ready())
}

// ---- convergence ----------------------------------------------------------------------------------

#[tokio::test]
async fn the_examples_converge_and_are_ready() {
    let op = Operator::start(funded()).await;
    let ws = examples();
    let passes = op.converge(&ws).await;
    assert!(passes <= 4, "{passes} passes");
    let report = op.pass(&ws).await;
    assert_eq!(report.writes, 0);
    for item in &report.items {
        assert!(
            item.ready(),
            "{} is not ready: {:?}",
            item.key,
            item.reason()
        );
    }
    let state = op.state().await;
    assert_eq!(state["pods"].as_array().unwrap().len(), 1);
    assert_eq!(state["endpoints"].as_array().unwrap().len(), 2);
    assert_eq!(state["networkVolumes"].as_array().unwrap().len(), 1);
    // The LLM endpoint found its volume by name and attached it.
    let volume_id = state["networkVolumes"][0]["id"].clone();
    assert!(
        state["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["networkVolumes"][0] == volume_id)
    );
}

// ---- each change, the right call ---------------------------------------------------------------------

#[tokio::test]
async fn an_image_change_is_one_patch_and_nothing_else() {
    let op = Operator::start(funded()).await;
    let mut ws = examples();
    op.converge(&ws).await;
    let (posts, patches) = (op.calls("POST", "/v2/pods"), op.calls("PATCH", "/v2/pods/"));
    workload(&mut ws, "llama-finetune").spec.image = "ghcr.io/acme/trainer:2.4.0".into();
    op.converge(&ws).await;
    assert_eq!(op.calls("PATCH", "/v2/pods/") - patches, 1);
    assert_eq!(op.calls("POST", "/v2/pods"), posts, "no new pod");
    assert_eq!(
        op.state().await["pods"][0]["image"],
        "ghcr.io/acme/trainer:2.4.0"
    );
}

#[tokio::test]
async fn a_gpu_count_change_replaces_the_pod_once_approved_by_policy() {
    let op = Operator::start(funded()).await;
    let mut ws = examples();
    op.converge(&ws).await;
    let old = op.state().await["pods"][0]["id"].clone();
    let trainer = workload(&mut ws, "llama-finetune");
    trainer.spec.gpu.count = 1;
    // Without approval the pod volume is safe: nothing is written, the status says why.
    let report = op.pass(&ws).await;
    assert_eq!(report.writes, 0);
    let item = report
        .items
        .iter()
        .find(|i| i.key == "research/llama-finetune")
        .unwrap();
    assert_eq!(item.reason().unwrap().reason, "ReplaceNeedsApproval");
    // With the policy, a new pod comes up and the old one goes.
    workload(&mut ws, "llama-finetune").spec.replace_policy =
        runpod_operator::api::ReplacePolicy::Allow;
    op.converge(&ws).await;
    let pods = op.state().await["pods"].clone();
    assert_eq!(pods.as_array().unwrap().len(), 1);
    assert_ne!(pods[0]["id"], old);
    assert_eq!(pods[0]["gpu"]["count"], 1);
    assert_eq!(op.calls("DELETE", "/v2/pods/"), 1);
}

#[tokio::test]
async fn endpoint_and_volume_changes_are_patches() {
    let op = Operator::start(funded()).await;
    let mut ws = examples();
    op.converge(&ws).await;
    workload(&mut ws, "image-matting")
        .spec
        .serverless
        .as_mut()
        .unwrap()
        .max_workers = 10;
    ws.volumes[0].spec.size_gb = 150;
    op.converge(&ws).await;
    assert_eq!(op.calls("PATCH", "/v2/serverless/"), 1);
    assert_eq!(op.calls("PATCH", "/v2/network-volumes/"), 1);
    let state = op.state().await;
    assert_eq!(state["networkVolumes"][0]["size"], 150);
    assert!(
        state["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["workers"]["max"] == 10)
    );
}

#[tokio::test]
async fn stopping_and_starting_a_pod_follows_spec_state() {
    let op = Operator::start(funded()).await;
    let mut ws = examples();
    op.converge(&ws).await;
    workload(&mut ws, "llama-finetune").spec.state =
        Some(runpod_operator::api::DesiredState::Stopped);
    op.converge(&ws).await;
    assert_eq!(op.state().await["pods"][0]["status"], "EXITED");
    workload(&mut ws, "llama-finetune").spec.state = None;
    op.converge(&ws).await;
    assert_eq!(op.state().await["pods"][0]["status"], "RUNNING");
}

// ---- crash safety ----------------------------------------------------------------------------------------

#[tokio::test]
async fn a_crash_between_create_and_recording_the_id_leaves_one_pod() {
    let mut op = Operator::start(funded()).await;
    let ws = examples();
    let report = op.pass(&ws).await;
    assert!(report.writes > 0);
    // The process dies here: nothing of the first pass is remembered.
    op.restart();
    op.converge(&ws).await;
    assert_eq!(
        op.calls("POST", "/v2/pods"),
        1,
        "the second process found the pod by its marker"
    );
    assert_eq!(op.state().await["pods"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_500_after_create_is_resolved_by_looking_not_by_creating_again() {
    let op = Operator::start(funded()).await;
    let ws = examples();
    op.admin(
        reqwest::Method::PUT,
        "/_sim/faults",
        json!({"rules": [{"method": "POST", "path": "/v2/pods", "kind": "afterCreate", "count": 1}]}),
    )
    .await;
    let report = op.pass(&ws).await;
    let trainer = report
        .items
        .iter()
        .find(|i| i.key == "research/llama-finetune")
        .unwrap();
    assert!(
        matches!(trainer.outcome, Some(Outcome::Unknown(_))),
        "{:?}",
        trainer.outcome
    );
    op.converge(&ws).await;
    assert_eq!(op.calls("POST", "/v2/pods"), 1);
    assert_eq!(op.state().await["pods"].as_array().unwrap().len(), 1);
}

// ---- drift -------------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_endpoint_edited_in_the_console_is_reported_and_corrected() {
    let op = Operator::start(funded()).await;
    let ws = examples();
    op.converge(&ws).await;
    let state = op.state().await;
    let matting = state["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str().unwrap().contains("image-matting"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    op.admin(
        reqwest::Method::PATCH,
        &format!("/_sim/console/v2/serverless/{matting}"),
        json!({"workers": {"max": 2}, "env": {"MODEL_VARIANT": "lite"}}),
    )
    .await;
    let report = op.pass(&ws).await;
    let item = report
        .items
        .iter()
        .find(|i| i.key == "vision/image-matting")
        .unwrap();
    let fields: Vec<_> = item.drift.iter().map(|d| d.field.as_str()).collect();
    assert!(fields.contains(&"spec.serverless.maxWorkers"), "{fields:?}");
    assert!(fields.contains(&"spec.env[MODEL_VARIANT]"), "{fields:?}");
    assert!(
        !format!("{:?}", item.drift).contains("BiRefNet"),
        "env values stay out of the drift report"
    );
    assert!(matches!(item.outcome, Some(Outcome::Done(_))));
    let report = op.pass(&ws).await;
    assert_eq!(report.writes, 0);
    assert!(items_ready(&report));
}

// ---- money ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn nothing_is_written_when_a_money_rule_refuses() {
    let op = Operator::start(funded()).await;
    let mut ws = examples();
    ws.account.spending_cap_usd_per_hour = "50".parse().unwrap();
    let report = op.pass(&ws).await;
    let matting = report
        .items
        .iter()
        .find(|i| i.key == "vision/image-matting")
        .unwrap();
    assert!(matting.actions.is_empty());
    assert!(
        matting
            .reason()
            .unwrap()
            .message
            .contains("exceeds the account cap 50.00 USD/h")
    );
    assert_eq!(
        op.calls("POST", "/v2/serverless"),
        0,
        "refused before RunPod was asked"
    );
}

// ---- money for the account as a whole -------------------------------------------------------

/// Two copies of the training pod (2 x A100, 3.81 USD/h each) under other names.
fn two_training_pods(account: Value) -> Workspace {
    let mut ws = examples();
    ws.account = serde_json::from_value(account).unwrap();
    ws.volumes.clear();
    let pod = ws
        .workloads
        .iter()
        .find(|w| w.metadata.name.as_deref() == Some("llama-finetune"))
        .unwrap()
        .clone();
    ws.workloads = ["pod-a", "pod-b"]
        .iter()
        .map(|name| {
            let mut copy = pod.clone();
            copy.metadata.name = Some(name.to_string());
            copy
        })
        .collect();
    ws
}

/// $5 of credit and two 3.81 USD/h pods: one is created, the other refused with the figures,
/// and over 10 passes RunPod sees no stop and no start, with either credit policy.
#[tokio::test]
async fn five_dollars_and_two_pods_create_exactly_one_and_nothing_flaps() {
    for policy in [
        json!({"action": "Alert"}),
        json!({"action": "StopLowestPriority", "minimumRunwayHours": 1}),
    ] {
        let op = Operator::start(SimConfig {
            balance: Decimal::from(5),
            ..SimConfig::default()
        })
        .await;
        let ws = two_training_pods(json!({
            "apiKeySecretRef": {"namespace": "x", "name": "y"},
            "creditPolicy": policy,
        }));
        let first = op.pass(&ws).await;
        let b = first
            .items
            .iter()
            .find(|i| i.key == "research/pod-b")
            .unwrap();
        assert!(b.actions.is_empty(), "{policy}: {:?}", b.actions);
        assert_eq!(
            b.reason().unwrap().message,
            "balance 5.00 USD is below one hour of spend (0.00 USD/h now + 3.81 USD/h approved before it for research/pod-a + 3.81 USD/h new)"
        );
        for _ in 0..10 {
            op.sim.sim.advance(30);
            op.pass(&ws).await;
        }
        assert_eq!(op.calls("POST", "/v2/pods"), 1, "{policy}");
        let stops_and_starts = op
            .sim
            .sim
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/stop") || r.path.ends_with("/start"))
            .count();
        assert_eq!(stops_and_starts, 0, "{policy}");
    }
}

// ---- the inventory under concurrency ------------------------------------------------------------

/// A create answered while a refresh is reading its lists survives the refresh: the list of
/// pods was read before the pod existed, and the next plan must still see the pod (else it
/// creates a second one: the controller's start-up duplicate).
#[tokio::test]
async fn a_create_recorded_while_a_refresh_is_in_flight_survives_it() {
    let op = Operator::start(funded()).await;
    let ws = two_training_pods(json!({"apiKeySecretRef": {"namespace": "x", "name": "y"}}));
    op.inventory.refresh().await.unwrap();
    let items = plan_workspace(&ws, &op.inventory.snapshot(), &op.prices, Timestamp::now());
    let create = items[0].actions[0].clone();
    // The endpoints list (`/v2/serverless`, read after the pods list) is slow: the create
    // lands in between.
    op.admin(
        reqwest::Method::PUT,
        "/_sim/faults",
        json!({"rules": [{"method": "GET", "path": "/v2/serverless", "kind": "latency", "latencyMs": 400}]}),
    )
    .await;
    let (refreshed, outcome) = tokio::join!(op.inventory.refresh(), async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        execute(&create, &op.inventory).await
    });
    refreshed.unwrap();
    let Outcome::Done(id) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        op.inventory.snapshot().pods.iter().any(|p| p.id == id),
        "the refresh erased the pod created while it ran"
    );
    let again = plan_workspace(&ws, &op.inventory.snapshot(), &op.prices, Timestamp::now());
    assert!(
        !again[0]
            .actions
            .iter()
            .any(|a| matches!(a, runpod_operator::engine::plan::Action::CreatePod { .. })),
        "{:?}",
        again[0].actions
    );
}

/// An unknown outcome marked while a refresh is in flight keeps the inventory due: that
/// refresh may have listed before the object existed, so it must not count as the look the
/// unknown outcome asks for (else the next pass creates again: a soak-test duplicate).
#[tokio::test]
async fn an_unknown_outcome_during_a_refresh_forces_another_one() {
    let op = Operator::start(funded()).await;
    let inventory = Inventory::new(client_for(&op.sim), Duration::from_secs(60));
    inventory.refresh().await.unwrap();
    op.admin(
        reqwest::Method::PUT,
        "/_sim/faults",
        json!({"rules": [{"method": "GET", "path": "/v2/serverless", "kind": "latency", "latencyMs": 400}]}),
    )
    .await;
    let (refreshed, ()) = tokio::join!(inventory.refresh(), async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        inventory.mark_stale();
    });
    refreshed.unwrap();
    let before = op.calls("GET", "/v2/pods");
    inventory.ensure_fresh().await.unwrap();
    assert_eq!(
        op.calls("GET", "/v2/pods"),
        before + 1,
        "the refresh that began before the unknown outcome cleared it"
    );
    inventory.ensure_fresh().await.unwrap();
    assert_eq!(
        op.calls("GET", "/v2/pods"),
        before + 1,
        "one look is enough"
    );
}

/// A workload waiting on RunPod reads its own object by id, but waiting workloads never
/// cost more than a refresh would: after three reads by id the next look refreshes the
/// account, and looks right after a refresh read nothing.
#[tokio::test]
async fn waiting_workloads_cost_no_more_than_a_refresh() {
    let op = Operator::start(funded()).await;
    let ws = two_training_pods(json!({"apiKeySecretRef": {"namespace": "x", "name": "y"}}));
    op.inventory.refresh().await.unwrap();
    let items = plan_workspace(&ws, &op.inventory.snapshot(), &op.prices, Timestamp::now());
    let Outcome::Done(id) = execute(&items[0].actions[0], &op.inventory).await else {
        panic!("the create failed")
    };
    op.inventory.look(&id).await.unwrap();
    assert_eq!(op.calls("GET", "/v2/pods/"), 0, "a fresh refresh is enough");
    tokio::time::sleep(inventory::FRESH_ENOUGH + Duration::from_millis(100)).await;
    let lists = |op: &Operator| op.calls("GET", "/v2/pods") - op.calls("GET", "/v2/pods/");
    let lists_before = lists(&op);
    for _ in 0..10 {
        op.inventory.look(&id).await.unwrap();
    }
    assert_eq!(
        op.calls("GET", "/v2/pods/"),
        inventory::LOOKS_PER_REFRESH as usize,
        "reads by id"
    );
    assert_eq!(
        lists(&op),
        lists_before + 1,
        "then one refresh served the rest"
    );
}

/// Reconciles that find the inventory due at the same moment share one refresh.
#[tokio::test]
async fn concurrent_reconciles_share_one_refresh() {
    let op = Operator::start(funded()).await;
    let inventory = Inventory::new(client_for(&op.sim), Duration::from_secs(60));
    op.admin(
        reqwest::Method::PUT,
        "/_sim/faults",
        json!({"rules": [{"method": "GET", "path": "/v2/pods", "kind": "latency", "latencyMs": 200}]}),
    )
    .await;
    let results = futures::future::join_all((0..8).map(|_| inventory.ensure_fresh())).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(op.calls("GET", "/v2/pods"), 1);
}

/// The spending ledger: a reconcile that planned against an older ledger cannot reserve;
/// spending stays pending until a refresh that began after the write ended.
#[tokio::test]
async fn the_spending_ledger_lets_one_reconcile_spend_the_same_dollars() {
    let op = Operator::start(funded()).await;
    let inventory = &op.inventory;
    let (_, seen_by_a) = inventory.pending("ml/a");
    let (_, seen_by_b) = inventory.pending("ml/b");
    assert!(inventory.reserve("ml/a", Decimal::from(4), Decimal::from(4), seen_by_a));
    assert!(!inventory.reserve("ml/b", Decimal::from(4), Decimal::from(4), seen_by_b));
    let (pending, version) = inventory.pending("ml/b");
    assert_eq!(pending.worst_per_hour, Decimal::from(4));
    assert_eq!(pending.by, ["ml/a"]);
    assert!(
        inventory.pending("ml/a").0.by.is_empty(),
        "its own spending is not its budget"
    );
    // A failed write releases; a sent one stays until a later refresh.
    assert!(inventory.reserve("ml/b", Decimal::from(2), Decimal::from(2), version));
    inventory.settle("ml/b", false);
    inventory.settle("ml/a", true);
    assert_eq!(inventory.pending("ml/x").0.by, ["ml/a"]);
    inventory.refresh().await.unwrap();
    assert!(inventory.pending("ml/x").0.by.is_empty());
}

// ---- steady state ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_workloads_in_sync_cost_three_list_calls_and_no_writes() {
    let op = Operator::start(SimConfig {
        balance: Decimal::from(10_000_000),
        requests_per_minute: 1_000_000,
        check_responses: false,
        ..SimConfig::default()
    })
    .await;
    op.admin(
        reqwest::Method::POST,
        "/_sim/account",
        json!({"spendLimit": "1000000"}),
    )
    .await;
    let account: RunPodAccountSpec = serde_json::from_value(json!({
        "apiKeySecretRef": {"namespace": "x", "name": "y"}, "spendingCapUsdPerHour": "1000000"
    }))
    .unwrap();
    let workloads = (0..1000)
        .map(|i| {
            serde_json::from_value(json!({
                "apiVersion": "runpod-operator.dev/v1alpha1", "kind": "GpuWorkload",
                "metadata": {"name": format!("w{i:04}"), "namespace": "fleet", "uid": format!("uid-{i:04}")},
                "spec": {"type": "Pod", "image": "img:1", "gpu": {"types": ["NVIDIA RTX A5000"]},
                         "containerDiskGb": 10, "spendingCap": {"usdPerHour": "1"}}
            }))
            .unwrap()
        })
        .collect();
    let ws = Workspace {
        account,
        workloads,
        volumes: Vec::<NetworkVolume>::new(),
        secrets: BTreeMap::new(),
        auto: Default::default(),
    };
    op.converge(&ws).await;
    assert_eq!(op.calls("POST", "/v2/pods"), 1000);

    op.admin(reqwest::Method::DELETE, "/_sim/requests", Value::Null)
        .await;
    let report = op.pass(&ws).await;
    assert_eq!(report.writes, 0);
    assert!(items_ready(&report));
    let log = op.sim.sim.requests();
    let lists: Vec<_> = log
        .iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(lists, ["/v2/pods", "/v2/serverless", "/v2/network-volumes"]);
    let writes = log
        .iter()
        .filter(|r| r.method != "GET" && r.path != "/graphql" && !r.path.starts_with("/_sim/"))
        .count();
    assert_eq!(writes, 0);
}

/// Endpoint health feeds only the worker count of the status: an account's inventory reads it
/// at most once per endpoint and [`HEALTH_READS_PER_RESYNC`] times per resync interval, so 10,000
/// endpoints cannot spend the request budget the lists and writes need.
#[tokio::test]
async fn health_reads_are_capped_per_resync_and_cached_per_endpoint() {
    use runpod_operator::reconcile::inventory::HEALTH_READS_PER_RESYNC;
    let sim = sim::start(SimConfig::default()).await.unwrap();
    let inventory = Inventory::new(client_for(&sim), Duration::from_secs(3600));
    let ids: Vec<String> = (0..HEALTH_READS_PER_RESYNC + 5)
        .map(|i| format!("ep{i}"))
        .collect();
    for id in ids.iter().chain(ids.iter()) {
        let _ = inventory.endpoint_health(id).await;
    }
    let reads = sim
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/health"))
        .count();
    assert_eq!(reads, HEALTH_READS_PER_RESYNC as usize);
}
