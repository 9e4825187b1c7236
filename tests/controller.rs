//! The controller with kube's real `Client` over a mocked API server, and the simulator as
//! RunPod. The fake API server answers by route and records every request, and each test
//! asserts the exact sequence of Kubernetes calls and what reached RunPod.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use http::{Request, Response, StatusCode};
use kube::{
    Client,
    client::Body,
    runtime::{reflector, watcher},
};
use runpod_operator::{
    api::{GpuWorkload, NetworkVolume, RunPodAccount},
    controller::{Context, FINALIZER, account, leader, metrics::Metrics, workload},
    sim::{self, SimConfig, SimHandle},
};
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// One request the controller made.
#[derive(Clone, Debug)]
struct Call {
    method: String,
    path: String,
    body: Value,
}

/// A fake API server: Secrets by `namespace/name`, objects echoed back, every call recorded.
#[derive(Clone, Default)]
struct FakeApi {
    calls: Arc<Mutex<Vec<Call>>>,
    secrets: Arc<Mutex<BTreeMap<String, Value>>>,
}

impl FakeApi {
    fn client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = self.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().to_string();
                let path = request.uri().path().to_string();
                let bytes = request.into_body().collect_bytes().await.unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                fake.calls.lock().unwrap().push(Call {
                    method: method.clone(),
                    path: path.clone(),
                    body: body.clone(),
                });
                let (status, reply) = fake.answer(&method, &path, &body);
                send.send_response(
                    Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                        .unwrap(),
                );
            }
        });
        Client::new(service, "default")
    }

    fn answer(&self, method: &str, path: &str, body: &Value) -> (StatusCode, Value) {
        let segments: Vec<&str> = path.split('/').collect();
        match (method, segments.as_slice()) {
            ("GET", ["", "api", "v1", "namespaces", ns, "secrets", name]) => {
                match self.secrets.lock().unwrap().get(&format!("{ns}/{name}")) {
                    Some(secret) => (StatusCode::OK, secret.clone()),
                    None => (
                        StatusCode::NOT_FOUND,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
                    ),
                }
            }
            // Finalizer patches (JSON patch) and status applies: answer with a plausible object.
            ("PATCH", _) => (StatusCode::OK, self.object_for(path, body)),
            ("POST", _) => (StatusCode::CREATED, body.clone()),
            _ => (
                StatusCode::NOT_FOUND,
                json!({"kind": "Status", "code": 404, "reason": "NotFound"}),
            ),
        }
    }

    /// The object a PATCH returns: the JSON patch applied to a minimal object, or the
    /// server-side-apply body itself.
    fn object_for(&self, path: &str, body: &Value) -> Value {
        let name = path
            .trim_end_matches("/status")
            .rsplit('/')
            .next()
            .unwrap_or_default();
        let (kind, spec) = if path.contains("/runpodaccounts/") {
            (
                "RunPodAccount",
                json!({"apiKeySecretRef": {"namespace": "runpod-operator", "name": "runpod-api-key"}}),
            )
        } else if path.contains("/networkvolumes/") {
            (
                "NetworkVolume",
                json!({"sizeGb": 10, "dataCenter": "EU-RO-1"}),
            )
        } else {
            ("GpuWorkload", workload_spec(json!({})))
        };
        let mut object = json!({
            "apiVersion": "runpod-operator.dev/v1alpha1",
            "kind": kind,
            "metadata": {"name": name, "namespace": "ml", "uid": "uid-1", "finalizers": [FINALIZER]},
            "spec": spec,
        });
        if let Some(status) = body.get("status") {
            object["status"] = status.clone();
        }
        object
    }

    fn secret(&self, namespace: &str, name: &str, data: &[(&str, &str)]) {
        use base64::Engine;
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    json!(base64::engine::general_purpose::STANDARD.encode(v)),
                )
            })
            .collect();
        self.secrets.lock().unwrap().insert(
            format!("{namespace}/{name}"),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace}, "data": data}),
        );
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn routes(&self) -> Vec<String> {
        self.calls()
            .iter()
            .map(|c| format!("{} {}", c.method, c.path))
            .collect()
    }
}

fn workload_spec(overrides: Value) -> Value {
    let mut spec = json!({
        "type": "Pod",
        "image": "ghcr.io/acme/trainer:1",
        "gpu": {"types": ["NVIDIA A100-SXM4-80GB"], "count": 1},
        "volume": {"sizeGb": 20},
        "spendingCap": {"usdPerHour": "3"},
    });
    if let (Some(base), Value::Object(extra)) = (spec.as_object_mut(), overrides) {
        base.extend(extra);
    }
    spec
}

fn workload(finalized: bool, overrides: Value) -> GpuWorkload {
    let mut metadata =
        json!({"name": "trainer", "namespace": "ml", "uid": "uid-1", "generation": 1});
    if finalized {
        metadata["finalizers"] = json!([FINALIZER]);
    }
    serde_json::from_value(json!({
        "apiVersion": "runpod-operator.dev/v1alpha1",
        "kind": "GpuWorkload",
        "metadata": metadata,
        "spec": workload_spec(overrides),
    }))
    .unwrap()
}

fn deleting(mut w: GpuWorkload) -> GpuWorkload {
    w.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    w
}

struct Setup {
    api: FakeApi,
    sim: SimHandle,
    ctx: Arc<Context>,
}

impl Setup {
    async fn new(workloads: &[GpuWorkload]) -> Self {
        let sim = sim::start(SimConfig {
            balance: Decimal::from(1000),
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let api = FakeApi::default();
        api.secret(
            "runpod-operator",
            "runpod-api-key",
            &[("apiKey", &sim.api_key)],
        );
        let account: RunPodAccount = serde_json::from_value(json!({
            "apiVersion": "runpod-operator.dev/v1alpha1", "kind": "RunPodAccount",
            "metadata": {"name": "default", "generation": 1},
            "spec": {
                "apiKeySecretRef": {"namespace": "runpod-operator", "name": "runpod-api-key"},
                "apiUrl": sim.api_url, "graphqlUrl": sim.graphql_url, "serverlessUrl": sim.serverless_url,
                "requestsPerMinute": 6000,
            }
        }))
        .unwrap();
        let (workload_store, mut workload_writer) = reflector::store::<GpuWorkload>();
        for w in workloads {
            workload_writer.apply_watcher_event(&watcher::Event::Apply(w.clone()));
        }
        let (volume_store, _volume_writer) = reflector::store::<NetworkVolume>();
        let (account_store, mut account_writer) = reflector::store::<RunPodAccount>();
        account_writer.apply_watcher_event(&watcher::Event::Apply(account));
        let ctx = Arc::new(Context::new(
            api.client(),
            workload_store,
            volume_store,
            account_store,
            Arc::new(Metrics::default()),
        ));
        // The writers must outlive the test's use of the stores.
        std::mem::forget(workload_writer);
        std::mem::forget(_volume_writer);
        std::mem::forget(account_writer);
        Self { api, sim, ctx }
    }

    fn runpod_writes(&self) -> Vec<String> {
        self.sim
            .sim
            .requests()
            .iter()
            .filter(|r| r.method != "GET" && r.path != "/graphql")
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    fn runpod_calls(&self) -> usize {
        self.sim.sim.requests().len()
    }

    fn pods(&self) -> usize {
        let key = self.sim.api_key.clone();
        self.sim
            .sim
            .with_world(|w| w.account(&key).unwrap().pods.len())
    }

    fn status_patch(&self) -> Value {
        self.api
            .calls()
            .into_iter()
            .rev()
            .find(|c| c.method == "PATCH" && c.path.ends_with("/status"))
            .map(|c| c.body)
            .expect("a status patch")
    }
}

const WORKLOAD_PATH: &str = "/apis/runpod-operator.dev/v1alpha1/namespaces/ml/gpuworkloads/trainer";

#[tokio::test]
async fn the_finalizer_is_added_before_anything_else() {
    let w = workload(false, json!({}));
    let s = Setup::new(std::slice::from_ref(&w)).await;
    workload::reconcile(Arc::new(w), s.ctx.clone())
        .await
        .unwrap();
    assert_eq!(s.api.routes(), [format!("PATCH {WORKLOAD_PATH}")]);
    assert!(s.api.calls()[0].body.to_string().contains(FINALIZER));
    assert_eq!(
        s.runpod_calls(),
        0,
        "RunPod is not touched before the finalizer is in place"
    );
}

#[tokio::test]
async fn a_new_workload_is_created_on_runpod_and_its_status_carries_the_id() {
    let w = workload(true, json!({}));
    let s = Setup::new(std::slice::from_ref(&w)).await;
    workload::reconcile(Arc::new(w), s.ctx.clone())
        .await
        .unwrap();
    let routes = s.api.routes();
    assert_eq!(
        routes[0], "GET /api/v1/namespaces/runpod-operator/secrets/runpod-api-key",
        "{routes:?}"
    );
    assert_eq!(
        routes[1], "POST /apis/events.k8s.io/v1/namespaces/ml/events",
        "a Created event: {routes:?}"
    );
    assert_eq!(
        routes[2],
        format!("PATCH {WORKLOAD_PATH}/status"),
        "{routes:?}"
    );
    assert_eq!(s.runpod_writes(), ["POST /v2/pods"]);
    assert_eq!(s.pods(), 1);
    let status = &s.status_patch()["status"];
    assert_eq!(status["runpodId"].as_str().unwrap().len(), 14);
    assert_eq!(status["state"], "PROVISIONING");
    assert_eq!(status["observedGeneration"], 1);
    let calls = s.api.calls();
    let event = &calls[1].body;
    assert_eq!(event["reason"], "Created");
    // The status write is a server-side apply under the operator's field manager.
    let patch = calls.iter().find(|c| c.path.ends_with("/status")).unwrap();
    assert_eq!(patch.body["kind"], "GpuWorkload");
}

#[tokio::test]
async fn deleting_with_policy_delete_removes_the_pod_and_then_the_finalizer() {
    let w = workload(true, json!({}));
    let s = Setup::new(std::slice::from_ref(&w)).await;
    workload::reconcile(Arc::new(w.clone()), s.ctx.clone())
        .await
        .unwrap();
    assert_eq!(s.pods(), 1);
    workload::reconcile(Arc::new(deleting(w)), s.ctx.clone())
        .await
        .unwrap();
    assert_eq!(s.pods(), 0);
    assert!(
        s.runpod_writes()
            .iter()
            .any(|r| r.starts_with("DELETE /v2/pods/"))
    );
    let last = s.api.calls().last().cloned().unwrap();
    assert_eq!(
        format!("{} {}", last.method, last.path),
        format!("PATCH {WORKLOAD_PATH}")
    );
    assert!(
        last.body.to_string().contains("remove"),
        "the finalizer is removed: {}",
        last.body
    );
}

#[tokio::test]
async fn deleting_with_policy_orphan_only_removes_the_finalizer() {
    let w = workload(true, json!({"deletionPolicy": "Orphan"}));
    let s = Setup::new(std::slice::from_ref(&w)).await;
    workload::reconcile(Arc::new(w.clone()), s.ctx.clone())
        .await
        .unwrap();
    workload::reconcile(Arc::new(deleting(w)), s.ctx.clone())
        .await
        .unwrap();
    assert_eq!(s.pods(), 1, "the pod keeps running");
    assert!(!s.runpod_writes().iter().any(|r| r.starts_with("DELETE")));
    let last = s.api.calls().last().cloned().unwrap();
    assert_eq!(
        format!("{} {}", last.method, last.path),
        format!("PATCH {WORKLOAD_PATH}")
    );
}

#[tokio::test]
async fn observe_only_never_writes_to_runpod_and_reports_what_is_missing() {
    let w = workload(true, json!({"managementPolicy": "ObserveOnly"}));
    let s = Setup::new(std::slice::from_ref(&w)).await;
    workload::reconcile(Arc::new(w), s.ctx.clone())
        .await
        .unwrap();
    assert!(s.runpod_writes().is_empty(), "{:?}", s.runpod_writes());
    assert!(s.runpod_calls() > 0, "it does look");
    let status = &s.status_patch()["status"];
    assert_eq!(status["drift"][0]["field"], "pod");
    assert_eq!(status["drift"][0]["observed"], "missing");
}

#[tokio::test]
async fn paused_writes_nothing_anywhere() {
    let w = workload(true, json!({"managementPolicy": "Paused"}));
    let s = Setup::new(std::slice::from_ref(&w)).await;
    workload::reconcile(Arc::new(w), s.ctx.clone())
        .await
        .unwrap();
    assert!(s.api.calls().is_empty(), "{:?}", s.api.routes());
    assert_eq!(s.runpod_calls(), 0);
}

#[tokio::test]
async fn an_invalid_spec_is_stalled_with_the_field_and_no_runpod_call() {
    let w = workload(true, json!({"gpu": {"types": ["NVIDIA A100"], "count": 1}}));
    let s = Setup::new(std::slice::from_ref(&w)).await;
    workload::reconcile(Arc::new(w), s.ctx.clone())
        .await
        .unwrap();
    assert_eq!(s.runpod_calls(), 0, "not even a list");
    let status = &s.status_patch()["status"];
    let stalled = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Stalled")
        .unwrap();
    assert_eq!(stalled["status"], "True");
    assert!(
        stalled["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.gpu.types[0]: unknown GPU type"),
        "{stalled}"
    );
    assert!(
        s.api.routes().iter().any(|r| r.ends_with("/events")),
        "an InvalidSpec event"
    );
}

#[tokio::test]
async fn a_missing_api_key_secret_is_an_error_that_says_how_to_fix_it() {
    let w = workload(true, json!({}));
    let s = Setup::new(std::slice::from_ref(&w)).await;
    s.api.secrets.lock().unwrap().clear();
    let err = workload::reconcile(Arc::new(w), s.ctx.clone())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Secret runpod-operator/runpod-api-key does not exist"),
        "{err}"
    );
    assert_eq!(s.runpod_calls(), 0);
}

#[tokio::test]
async fn the_account_status_shows_balance_runway_and_undeclared_objects() {
    let w = workload(true, json!({}));
    let s = Setup::new(std::slice::from_ref(&w)).await;
    // A pod nobody declared.
    let key = s.sim.api_key.clone();
    s.sim.sim.with_world(|world| {
        world
            .create_pod(
                &key,
                &json!({"name": "forgotten", "image": "i", "gpu": {"id": "NVIDIA A100-SXM4-80GB"}}),
            )
            .unwrap();
    });
    let account_obj = s.ctx.accounts.state()[0].clone();
    account::reconcile(account_obj, s.ctx.clone())
        .await
        .unwrap();
    let status = &s.status_patch()["status"];
    assert_eq!(status["balance"], "1000");
    assert_eq!(status["spendLimit"], "80");
    assert_eq!(status["managedCount"], 1);
    assert_eq!(status["orphans"][0]["name"], "forgotten");
    assert_eq!(status["orphans"][0]["costPerHour"], "1.8969");
    assert!(
        status["runwayHours"].as_str().unwrap().starts_with("52"),
        "{status}"
    );
}

#[tokio::test]
async fn metrics_name_what_the_issue_asks_for() {
    let w = workload(true, json!({}));
    let s = Setup::new(std::slice::from_ref(&w)).await;
    workload::reconcile(Arc::new(w), s.ctx.clone())
        .await
        .unwrap();
    account::reconcile(s.ctx.accounts.state()[0].clone(), s.ctx.clone())
        .await
        .unwrap();
    workload::error_policy(
        Arc::new(workload(true, json!({}))),
        &runpod_operator::controller::Error::AccountMissing("x".into()),
        s.ctx.clone(),
    );
    for (account, runtime) in s.ctx.runtimes.all() {
        s.ctx
            .metrics
            .runpod(&account, &runtime.inventory.client().budget());
    }
    let text = s.ctx.metrics.encode();
    for name in [
        "runpod_operator_reconciles_total{kind=\"GpuWorkload\",outcome=\"ok\"} 1",
        "runpod_operator_reconcile_duration_seconds_bucket",
        "runpod_operator_reconcile_errors_total{kind=\"GpuWorkload\",outcome=\"account_missing\"} 1",
        "runpod_operator_runpod_requests_total{account=\"default\",route=\"POST /v2/pods\",outcome=\"ok\"} 1",
        "runpod_operator_runpod_request_budget_remaining{account=\"default\"}",
        "runpod_operator_workload_cost_usd_per_hour{namespace=\"ml\",name=\"trainer\"}",
        "runpod_operator_workload_drift_fields{namespace=\"ml\",name=\"trainer\"}",
        "runpod_operator_account_balance_usd{account=\"default\"}",
        "runpod_operator_account_runway_hours{account=\"default\"}",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
}

#[tokio::test]
async fn of_two_instances_sharing_one_lease_only_the_leader_writes() {
    let w = workload(true, json!({}));
    let s = Setup::new(std::slice::from_ref(&w)).await;
    let lease = Arc::new(leader::LocalLease::default());
    let first = lease.join("first");
    let second = lease.join("second");
    let writes = Arc::new(Mutex::new(Vec::new()));
    let instance = |name: &'static str, rx| {
        let (ctx, w, writes) = (s.ctx.clone(), w.clone(), writes.clone());
        tokio::spawn(leader::lead(
            rx,
            move || async move {
                workload::reconcile(Arc::new(w), ctx).await.unwrap();
                writes.lock().unwrap().push(name);
                // Keep leading until told otherwise.
                std::future::pending::<()>().await;
            },
            std::future::pending::<()>(),
        ))
    };
    let a = instance("first", first);
    let b = instance("second", second);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        *writes.lock().unwrap(),
        ["first"],
        "only the holder reconciled"
    );
    assert_eq!(s.runpod_writes(), ["POST /v2/pods"]);
    // The holder loses the lease: it stops (and the process would exit); the other takes over.
    lease.release("first");
    assert_eq!(a.await.unwrap(), Err(leader::LeadError::Lost));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(*writes.lock().unwrap(), ["first", "second"]);
    assert_eq!(
        s.pods(),
        1,
        "the new leader found the pod, it did not create another"
    );
    b.abort();
}

#[tokio::test]
async fn one_port_serves_health_readiness_and_metrics() {
    use runpod_operator::controller::http::{Probe, router};
    let metrics = Arc::new(Metrics::default());
    metrics.workload("ml", "trainer", Decimal::new(189, 2), 0);
    let probe = Probe {
        ready: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        metrics,
        context: Arc::new(std::sync::OnceLock::new()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ready = probe.ready.clone();
    tokio::spawn(async move { axum::serve(listener, router(probe)).await });
    let http = runpod_operator::tls::http_client_builder().build().unwrap();
    let get = |path: &str| http.get(format!("http://{addr}{path}")).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(
        get("/readyz").await.unwrap().status(),
        503,
        "not ready before the watches sync"
    );
    ready.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let text = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        text.contains(
            "runpod_operator_workload_cost_usd_per_hour{namespace=\"ml\",name=\"trainer\"} 1.89"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn every_kubernetes_call_the_controller_makes_is_granted_by_its_rbac() {
    use runpod_operator::controller::rbac::allows;
    let w = workload(
        true,
        json!({"env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "t"}}}]}),
    );
    let s = Setup::new(std::slice::from_ref(&w)).await;
    s.api.secret("ml", "hf", &[("t", "token")]);
    workload::reconcile(Arc::new(workload(false, json!({}))), s.ctx.clone())
        .await
        .unwrap();
    workload::reconcile(Arc::new(w.clone()), s.ctx.clone())
        .await
        .unwrap();
    account::reconcile(s.ctx.accounts.state()[0].clone(), s.ctx.clone())
        .await
        .unwrap();
    workload::reconcile(Arc::new(deleting(w)), s.ctx.clone())
        .await
        .unwrap();
    let calls = s.api.calls();
    assert!(calls.len() >= 6, "{:?}", s.api.routes());
    for call in calls {
        assert!(
            allows(&call.method, &call.path),
            "not granted: {} {}",
            call.method,
            call.path
        );
    }
}
