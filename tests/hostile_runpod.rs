//! A hostile RunPod: answers cut short, of the wrong types, without names or owner markers,
//! 10 MB of junk, a body that never ends, an HTML error page, a list that lags behind the
//! writes. Each must give a clear error, no panic, no duplicate create, and no write based
//! on what could not be read. The simulator's fault rules make the answers; the operator's
//! own inventory, executor and client read them.

use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use runpod_operator::{
    cli::manifests_from_texts,
    engine::prices::PriceCatalogue,
    reconcile::{Report, Workspace, apply_pass, executor::Outcome, inventory::Inventory},
    runpod::{Client, ClientConfig},
    sim::{self, SimConfig, SimHandle},
    tls,
};
use secrecy::SecretString;
use serde_json::{Value, json};

struct RunPod {
    sim: SimHandle,
    admin: reqwest::Client,
}

impl RunPod {
    async fn start() -> Self {
        Self {
            sim: sim::start(SimConfig::default()).await.unwrap(),
            admin: tls::http_client_builder().build().unwrap(),
        }
    }

    fn client(&self) -> Client {
        Client::new(ClientConfig {
            api_url: self.sim.api_url.clone(),
            graphql_url: self.sim.graphql_url.clone(),
            serverless_url: self.sim.serverless_url.clone(),
            requests_per_minute: 100_000,
            timeout: Duration::from_secs(1),
            call_deadline: Duration::from_secs(3),
            min_retry_delay: Duration::from_millis(5),
            max_retry_delay: Duration::from_millis(20),
            ..ClientConfig::new(SecretString::from(self.sim.api_key.clone()))
        })
        .unwrap()
    }

    /// An inventory that reads RunPod on every pass.
    fn inventory(&self) -> Inventory {
        Inventory::new(self.client(), Duration::ZERO)
    }

    async fn faults(&self, rules: Value) {
        self.admin
            .put(format!("{}/_sim/faults", self.sim.api_url))
            .bearer_auth(&self.sim.api_key)
            .json(&json!({ "rules": rules }))
            .send()
            .await
            .unwrap();
    }

    fn writes(&self) -> usize {
        ["POST", "PATCH", "DELETE"]
            .iter()
            .map(|m| self.sim.sim.calls(m, "/v2/"))
            .sum()
    }

    async fn pods(&self) -> usize {
        let state: Value = self
            .admin
            .get(format!("{}/_sim/state", self.sim.api_url))
            .bearer_auth(&self.sim.api_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        state["pods"].as_array().map_or(0, Vec::len)
    }
}

fn workspace() -> Workspace {
    let yaml = r#"
apiVersion: runpod-operator.dev/v1alpha1
kind: GpuWorkload
metadata: {name: trainer, namespace: ml}
spec:
  type: Pod
  image: ghcr.io/acme/trainer:1
  gpu: {types: ["NVIDIA A100-SXM4-80GB"]}
  spendingCap: {usdPerHour: "10"}
"#;
    manifests_from_texts([("trainer.yaml", yaml)]).unwrap()
}

async fn pass(ws: &Workspace, inventory: &Inventory) -> Result<Report, String> {
    let now = Timestamp::from_second(1_767_225_600).unwrap();
    apply_pass(ws, inventory, &PriceCatalogue::builtin(), now)
        .await
        .map_err(|e| e.to_string())
}

fn outcome(report: &Report) -> String {
    report.items[0]
        .outcome
        .as_ref()
        .map(Outcome::describe)
        .unwrap_or_default()
}

/// An unreadable list: the pass fails with a clear error and writes nothing. The account
/// holds the workload's pod already, so a list read wrong would mean a second one.
async fn unreadable_list(kind: &str, expected: &str) {
    let runpod = RunPod::start().await;
    let inventory = runpod.inventory();
    let ws = workspace();
    pass(&ws, &inventory).await.unwrap();
    let before = runpod.writes();
    assert_eq!(before, 1);
    runpod
        .faults(json!([{"method": "GET", "path": "/v2/pods", "kind": kind}]))
        .await;
    // A new process too: nothing remembered, only the lists to go by.
    let inventory = runpod.inventory();
    let began = Instant::now();
    for _ in 0..3 {
        let err = pass(&ws, &inventory).await.expect_err(kind);
        assert!(err.contains(expected), "{kind}: {err}");
        assert!(
            err.contains("GET /v2/pods"),
            "{kind}: the route is named: {err}"
        );
    }
    assert_eq!(
        runpod.writes(),
        before,
        "{kind}: a write after an unreadable list"
    );
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "{kind}: took {:?}",
        began.elapsed()
    );
}

#[tokio::test]
async fn a_list_cut_short_is_an_error_and_nothing_is_written() {
    unreadable_list("truncate", "failed to decode the answer").await;
}

#[tokio::test]
async fn a_list_of_the_wrong_types_is_an_error_and_nothing_is_written() {
    unreadable_list("wrongTypes", "failed to decode the answer").await;
}

#[tokio::test]
async fn ten_megabytes_of_junk_is_an_error_and_nothing_is_written() {
    unreadable_list("huge", "failed to decode the answer").await;
}

#[tokio::test]
async fn an_answer_that_never_ends_fails_within_the_call_deadline() {
    // Each pass is bounded by the 3 s deadline the client sets (1 s per attempt), not by
    // 5 attempts of 1 s and the backoff between them.
    let runpod = RunPod::start().await;
    runpod
        .faults(json!([{"method": "GET", "path": "/v2/pods", "kind": "endless"}]))
        .await;
    let inventory = runpod.inventory();
    let began = Instant::now();
    let err = pass(&workspace(), &inventory).await.expect_err("endless");
    let took = began.elapsed();
    assert!(err.contains("GET /v2/pods: no answer within 3 s"), "{err}");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(4),
        "took {took:?}"
    );
    assert_eq!(runpod.writes(), 0);
}

#[tokio::test]
async fn an_html_error_page_is_named_as_one() {
    unreadable_list(
        "html",
        "an HTML page instead of RunPod's JSON answer: 502 Bad Gateway",
    )
    .await;
}

#[tokio::test]
async fn a_create_answered_201_with_a_cut_body_is_an_unknown_outcome_not_a_second_create() {
    let runpod = RunPod::start().await;
    runpod
        .faults(json!([{"method": "POST", "path": "/v2/pods", "kind": "truncate", "count": 1}]))
        .await;
    let inventory = runpod.inventory();
    let ws = workspace();
    let first = pass(&ws, &inventory).await.unwrap();
    assert!(
        matches!(first.items[0].outcome, Some(Outcome::Unknown(_))),
        "{}",
        outcome(&first)
    );
    for _ in 0..4 {
        pass(&ws, &inventory).await.unwrap();
    }
    assert_eq!(runpod.sim.sim.calls("POST", "/v2/pods"), 1);
    assert_eq!(runpod.pods().await, 1);
}

#[tokio::test]
async fn lists_without_names_or_markers_hold_every_create() {
    let runpod = RunPod::start().await;
    let inventory = runpod.inventory();
    let ws = workspace();
    // The pod is made while the lists are whole.
    pass(&ws, &inventory).await.unwrap();
    assert_eq!(runpod.pods().await, 1);
    // From now on every list blanks names and env: the pod cannot be recognised. A second
    // process (no journal) must not create either.
    runpod
        .faults(json!([{"method": "GET", "path": "/v2/pods", "kind": "blankIdentity"}]))
        .await;
    let fresh = runpod.inventory();
    for inventory in [&inventory, &fresh] {
        for _ in 0..5 {
            let report = pass(&ws, inventory).await.unwrap();
            let said = outcome(&report);
            assert!(
                said.contains("held back") && said.contains("without an id or a name"),
                "{said}: {:?}",
                report.items[0]
            );
        }
    }
    assert_eq!(runpod.sim.sim.calls("POST", "/v2/pods"), 1);
    assert_eq!(runpod.pods().await, 1);
    assert!(fresh.identity_gap().is_some());
    // Whole lists again: the pod is found, nothing is held.
    runpod.faults(json!([])).await;
    let report = pass(&ws, &fresh).await.unwrap();
    assert_eq!(report.writes, 0, "{}", outcome(&report));
    assert!(fresh.identity_gap().is_none());
}

#[tokio::test]
async fn a_list_that_lags_behind_a_create_does_not_make_a_second_one() {
    let runpod = RunPod::start().await;
    let inventory = runpod.inventory();
    let ws = workspace();
    let first = pass(&ws, &inventory).await.unwrap();
    let Some(Outcome::Done(id)) = &first.items[0].outcome else {
        panic!("{}", outcome(&first));
    };
    // Every later list is empty, as a list that has not caught up: the journal remembers the
    // create, reads the pod by id and finds it.
    runpod
        .faults(json!([{"method": "GET", "path": "/v2/pods", "kind": "empty"}]))
        .await;
    for _ in 0..5 {
        pass(&ws, &inventory).await.unwrap();
    }
    assert_eq!(runpod.sim.sim.calls("POST", "/v2/pods"), 1);
    assert_eq!(runpod.pods().await, 1);
    assert!(
        runpod.sim.sim.calls("GET", "/v2/pods/") >= 1,
        "the pod was read by id"
    );
    // Deleted for real (in the console): the direct read proves it gone, and a new one is made.
    runpod
        .admin
        .delete(format!("{}/_sim/console/v2/pods/{id}", runpod.sim.api_url))
        .bearer_auth(&runpod.sim.api_key)
        .send()
        .await
        .unwrap();
    pass(&ws, &inventory).await.unwrap();
    assert_eq!(runpod.sim.sim.calls("POST", "/v2/pods"), 2);
    assert_eq!(runpod.pods().await, 1);
}
