//! The RunPod client against the simulator on loopback: every call, every error class, the
//! retry rule, `Retry-After`, explicit zeros on the wire, the shared budget, and request
//! bodies that the official spec accepts.

use std::{collections::BTreeMap, time::Duration};

use runpod_operator::{
    runpod::{
        BillingKind, Client, ClientConfig, ErrorClass,
        types::{
            BillingQuery, CreateEndpoint, CreateGpu, CreateNetworkVolume, CreatePod,
            CreateRegistry, EndpointGpu, Mounts, PersistentMount, PodAction, Scaling,
            UpdateEndpoint, UpdateNetworkVolume, UpdatePod, Workers,
        },
    },
    sim::{self, SimConfig, SimHandle, spec::spec},
    tls,
};
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{Value, json};

const A100: &str = "NVIDIA A100-SXM4-80GB";

struct Setup {
    sim: SimHandle,
    client: Client,
    admin: reqwest::Client,
}

fn config_for(sim: &SimHandle, key: &str) -> ClientConfig {
    ClientConfig {
        api_url: sim.api_url.clone(),
        graphql_url: sim.graphql_url.clone(),
        serverless_url: sim.serverless_url.clone(),
        requests_per_minute: 6000,
        min_retry_delay: Duration::from_millis(10),
        max_retry_delay: Duration::from_millis(100),
        ..ClientConfig::new(SecretString::from(key.to_string()))
    }
}

impl Setup {
    async fn new() -> Self {
        let sim = sim::start(SimConfig::default()).await.unwrap();
        let client = Client::new(config_for(&sim, &sim.api_key)).unwrap();
        Self {
            client,
            admin: tls::http_client_builder().build().unwrap(),
            sim,
        }
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let reply = self
            .admin
            .request(method, format!("{}/_sim/{path}", self.sim.api_url))
            .bearer_auth(&self.sim.api_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let text = reply.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn faults(&self, rules: Value) {
        self.admin(reqwest::Method::PUT, "faults", json!({ "rules": rules }))
            .await;
    }

    /// The calls the simulator saw for a method and path.
    fn seen(&self, method: &str, path: &str) -> Vec<u16> {
        self.sim
            .sim
            .requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .map(|r| r.status)
            .collect()
    }
}

impl Drop for Setup {
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

fn pod_request(name: &str) -> CreatePod {
    CreatePod {
        name: name.into(),
        image: "img:1".into(),
        disk: Some(20),
        env: BTreeMap::from([("RUNPOD_OPERATOR_OWNER".to_string(), "uid-1".to_string())]),
        gpu: CreateGpu {
            id: A100.into(),
            count: 1,
            ..CreateGpu::default()
        },
        mounts: Some(Mounts {
            persistent: Some(PersistentMount {
                size: 20,
                path: "/workspace".into(),
            }),
            network: None,
        }),
        ..CreatePod::default()
    }
}

fn endpoint_request(name: &str) -> CreateEndpoint {
    CreateEndpoint {
        name: name.into(),
        endpoint_type: "QUEUE".into(),
        image: "img:1".into(),
        args: None,
        disk: Some(20),
        env: BTreeMap::new(),
        ports: vec![],
        registry: None,
        gpu: EndpointGpu {
            pools: vec!["AMPERE_80".into()],
            count: 1,
            ..EndpointGpu::default()
        },
        workers: Workers {
            min: Some(0),
            max: Some(3),
            idle_timeout: Some(5),
        },
        scaling: Scaling::QueueDelay { queue_delay: 4.0 },
        data_center_ids: vec![],
        network_volumes: vec![],
        timeout: Some(600_000),
        flashboot: "FLASHBOOT".into(),
    }
}

// ---- every call ------------------------------------------------------------------------------

#[tokio::test]
async fn pods_round_trip_through_every_call() {
    let s = Setup::new().await;
    let pod = s.client.create_pod(&pod_request("trainer")).await.unwrap();
    assert_eq!(pod.status, "PROVISIONING");
    assert_eq!(s.client.list_pods().await.unwrap().len(), 1);
    assert_eq!(s.client.get_pod(&pod.id).await.unwrap().name, "trainer");
    let update = UpdatePod {
        image: Some("img:2".into()),
        ..UpdatePod::default()
    };
    assert_eq!(
        s.client.update_pod(&pod.id, &update).await.unwrap().image,
        "img:2"
    );
    let stopped = s
        .client
        .pod_action(&pod.id, PodAction::Stop)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stopped.status, "EXITED");
    let started = s
        .client
        .pod_action(&pod.id, PodAction::Start)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(started.status, "STARTING");
    s.sim.sim.advance(30);
    assert_eq!(
        s.client
            .pod_action(&pod.id, PodAction::Restart)
            .await
            .unwrap()
            .unwrap()
            .status,
        "RUNNING"
    );
    assert_eq!(
        s.client
            .pod_action(&pod.id, PodAction::Terminate)
            .await
            .unwrap(),
        None
    );
    let other = s.client.create_pod(&pod_request("other")).await.unwrap();
    s.client.delete_pod(&other.id).await.unwrap();
    assert!(s.client.list_pods().await.unwrap().is_empty());
}

#[tokio::test]
async fn endpoints_round_trip_through_every_call() {
    let s = Setup::new().await;
    let endpoint = s
        .client
        .create_endpoint(&endpoint_request("matting"))
        .await
        .unwrap();
    assert_eq!(endpoint.flashboot, "FLASHBOOT");
    assert_eq!(s.client.list_endpoints().await.unwrap().len(), 1);
    assert_eq!(
        s.client
            .get_endpoint(&endpoint.id)
            .await
            .unwrap()
            .workers
            .max,
        Some(3)
    );
    let update = UpdateEndpoint {
        workers: Some(Workers {
            min: Some(1),
            max: Some(2),
            idle_timeout: None,
        }),
        ..UpdateEndpoint::default()
    };
    assert_eq!(
        s.client
            .update_endpoint(&endpoint.id, &update)
            .await
            .unwrap()
            .workers
            .min,
        Some(1)
    );
    let workers = s.client.endpoint_workers(&endpoint.id).await.unwrap();
    assert_eq!(workers.summary.initializing, 1);
    let health = s.client.endpoint_health(&endpoint.id).await.unwrap();
    assert_eq!(health.workers.initializing, 1);
    s.client.delete_endpoint(&endpoint.id).await.unwrap();
    assert!(s.client.list_endpoints().await.unwrap().is_empty());
}

#[tokio::test]
async fn volumes_registries_catalogue_billing_and_account_round_trip() {
    let s = Setup::new().await;
    let volume = s
        .client
        .create_network_volume(&CreateNetworkVolume {
            name: "weights".into(),
            size: 100,
            data_center: "EU-RO-1".into(),
            volume_type: None,
        })
        .await
        .unwrap();
    let grown = UpdateNetworkVolume {
        size: Some(200),
        ..UpdateNetworkVolume::default()
    };
    assert_eq!(
        s.client
            .update_network_volume(&volume.id, &grown)
            .await
            .unwrap()
            .size,
        200
    );
    assert_eq!(
        s.client
            .get_network_volume(&volume.id)
            .await
            .unwrap()
            .data_center,
        "EU-RO-1"
    );
    assert_eq!(s.client.list_network_volumes().await.unwrap().len(), 1);
    s.client.delete_network_volume(&volume.id).await.unwrap();

    let registry = s
        .client
        .create_registry(&CreateRegistry {
            name: "ghcr".into(),
            username: "u".into(),
            password: "p".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        s.client.get_registry(&registry.id).await.unwrap().name,
        "ghcr"
    );
    assert_eq!(s.client.list_registries().await.unwrap().len(), 1);
    s.client.delete_registry(&registry.id).await.unwrap();

    let gpus = s.client.catalog_gpus().await.unwrap();
    let a100 = gpus.iter().find(|g| g.id == A100).unwrap();
    assert_eq!(a100.price.secure, 1.89);
    assert_eq!(a100.pool.as_deref(), Some("AMPERE_80"));
    assert!(
        s.client
            .catalog_datacenters()
            .await
            .unwrap()
            .iter()
            .any(|d| d.id == "EU-RO-1")
    );

    s.client.create_pod(&pod_request("billed")).await.unwrap();
    s.sim.sim.advance(3600);
    let query = BillingQuery {
        bucket_size: Some("hour".into()),
        ..BillingQuery::default()
    };
    let pods = s.client.billing(BillingKind::Pods, &query).await.unwrap();
    assert!(pods.metadata.totals.total_amount > 1.89);
    assert_eq!(
        s.client
            .billing(BillingKind::Serverless, &query)
            .await
            .unwrap()
            .records
            .len(),
        0
    );
    s.client
        .billing(BillingKind::NetworkVolumes, &query)
        .await
        .unwrap();

    let account = s.client.account().await.unwrap();
    assert_eq!(account.spend_limit, 80.0);
    assert!(account.client_balance < 500.0 && account.client_balance > 497.0);
    assert!(account.current_spend_per_hr > 1.89);
}

// ---- error classes ----------------------------------------------------------------------------

#[tokio::test]
async fn each_refusal_has_its_class() {
    let s = Setup::new().await;
    let missing = s.client.get_pod("nosuchpod00000").await.unwrap_err();
    assert_eq!(missing.class(), ErrorClass::NotFound);

    let pod = s.client.create_pod(&pod_request("p")).await.unwrap();
    let conflict = s
        .client
        .pod_action(&pod.id, PodAction::Start)
        .await
        .unwrap_err();
    assert_eq!(conflict.class(), ErrorClass::Conflict);

    let invalid = s
        .client
        .create_network_volume(&CreateNetworkVolume {
            name: "v".into(),
            size: 5,
            data_center: "EU-RO-1".into(),
            volume_type: None,
        })
        .await
        .unwrap_err();
    assert_eq!(invalid.class(), ErrorClass::InvalidRequest);
    assert!(
        invalid
            .to_string()
            .contains("$.size: 5 is less than the minimum of 10"),
        "{invalid}"
    );

    s.admin(
        reqwest::Method::POST,
        "capacity",
        json!({"gpuType": "NVIDIA H200", "dataCenter": "EU-RO-1", "free": 0}),
    )
    .await;
    let mut h200 = pod_request("h200");
    h200.gpu.id = "NVIDIA H200".into();
    h200.data_center_ids = vec!["EU-RO-1".into()];
    assert_eq!(
        s.client.create_pod(&h200).await.unwrap_err().class(),
        ErrorClass::Capacity
    );

    s.admin(reqwest::Method::POST, "account", json!({"balance": "1"}))
        .await;
    let broke = s
        .client
        .create_pod(&pod_request("broke"))
        .await
        .unwrap_err();
    assert_eq!(broke.class(), ErrorClass::InsufficientBalance);
    assert_eq!(broke.status(), Some(402));

    let stranger = Client::new(config_for(&s.sim, "not-a-key")).unwrap();
    assert_eq!(
        stranger.list_pods().await.unwrap_err().class(),
        ErrorClass::Unauthorized
    );
}

#[tokio::test]
async fn a_dead_server_is_a_transient_transport_error() {
    let s = Setup::new().await;
    let mut config = config_for(&s.sim, &s.sim.api_key);
    // A port nothing listens on.
    config.api_url = "http://127.0.0.1:9".into();
    config.max_retries = 1;
    let client = Client::new(config).unwrap();
    let e = client.list_pods().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient);
    assert!(
        e.to_string()
            .starts_with("GET /v2/pods: connection refused"),
        "{e}"
    );
}

// ---- the retry rule --------------------------------------------------------------------------

#[tokio::test]
async fn a_read_is_retried_through_injected_5xx() {
    let s = Setup::new().await;
    s.faults(
        json!([{"method": "GET", "path": "/v2/pods", "kind": "status", "status": 503, "count": 2}]),
    )
    .await;
    assert!(s.client.list_pods().await.unwrap().is_empty());
    assert_eq!(s.seen("GET", "/v2/pods"), [503, 503, 200]);
}

#[tokio::test]
async fn a_read_gives_up_after_the_retry_bound() {
    let s = Setup::new().await;
    s.faults(json!([{"method": "GET", "path": "/v2/pods", "kind": "status", "status": 502}]))
        .await;
    let e = s.client.list_pods().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(
        s.seen("GET", "/v2/pods").len(),
        5,
        "the first try and 4 retries"
    );
}

#[tokio::test]
async fn a_create_is_never_retried_after_a_5xx() {
    let s = Setup::new().await;
    s.faults(json!([{"method": "POST", "path": "/v2/pods", "kind": "status", "status": 503, "count": 1}]))
        .await;
    let e = s.client.create_pod(&pod_request("once")).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::OutcomeUnknown);
    assert_eq!(s.seen("POST", "/v2/pods"), [503], "exactly one POST");
    assert!(e.to_string().contains("look the object up"), "{e}");
}

#[tokio::test]
async fn a_500_after_create_is_outcome_unknown_and_the_pod_exists() {
    let s = Setup::new().await;
    s.faults(json!([{"method": "POST", "path": "/v2/pods", "kind": "afterCreate", "count": 1}]))
        .await;
    let e = s
        .client
        .create_pod(&pod_request("ghost"))
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::OutcomeUnknown);
    assert_eq!(e.status(), Some(500));
    let pods = s.client.list_pods().await.unwrap();
    assert_eq!(
        pods.len(),
        1,
        "one pod, found by looking, not by creating again"
    );
    assert_eq!(pods[0].name, "ghost");
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after_even_for_a_create() {
    let s = Setup::new().await;
    s.faults(json!([{"method": "POST", "path": "/v2/pods", "kind": "rateLimit", "count": 1}]))
        .await;
    let started = std::time::Instant::now();
    s.client.create_pod(&pod_request("patient")).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited the Retry-After second"
    );
    assert_eq!(s.seen("POST", "/v2/pods"), [429, 201]);
    assert_eq!(s.client.list_pods().await.unwrap().len(), 1);
    assert_eq!(s.client.budget().routes["POST /v2/pods"].rate_limited, 1);
}

#[tokio::test]
async fn a_patch_and_an_action_are_retried_through_5xx() {
    let s = Setup::new().await;
    let pod = s.client.create_pod(&pod_request("p")).await.unwrap();
    let path = format!("/v2/pods/{}", pod.id);
    s.faults(json!([{"path": path, "kind": "status", "status": 500, "count": 2}]))
        .await;
    let update = UpdatePod {
        name: Some("renamed".into()),
        ..UpdatePod::default()
    };
    assert_eq!(
        s.client.update_pod(&pod.id, &update).await.unwrap().name,
        "renamed"
    );
    assert_eq!(s.seen("PATCH", &path), [500, 500, 200]);
}

// ---- what goes on the wire ---------------------------------------------------------------------

#[tokio::test]
async fn zero_workers_reach_the_server() {
    let s = Setup::new().await;
    let endpoint = s
        .client
        .create_endpoint(&endpoint_request("e"))
        .await
        .unwrap();
    let update = UpdateEndpoint {
        workers: Some(Workers {
            min: Some(0),
            max: Some(0),
            idle_timeout: None,
        }),
        ..UpdateEndpoint::default()
    };
    let updated = s
        .client
        .update_endpoint(&endpoint.id, &update)
        .await
        .unwrap();
    assert_eq!(updated.workers.max, Some(0));
    let sent = s
        .sim
        .sim
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .and_then(|r| r.body)
        .unwrap();
    let sent: Value = serde_json::from_str(&sent).unwrap();
    assert_eq!(sent, json!({"workers": {"min": 0, "max": 0}}));
}

#[test]
fn every_request_body_the_client_builds_passes_the_official_spec() {
    let check = |method: &str, path: &str, body: Value| {
        let errors = spec().request_errors(method, path, &body);
        assert!(errors.is_empty(), "{method} {path} {body}: {errors:?}");
    };
    check(
        "POST",
        "/v2/pods",
        serde_json::to_value(pod_request("p")).unwrap(),
    );
    let mut network = pod_request("n");
    network.mounts = Some(Mounts {
        persistent: None,
        network: Some(vec![runpod_operator::runpod::types::NetworkMount {
            volume_id: "vol".into(),
            path: "/models".into(),
        }]),
    });
    network.gpu.min_cuda_version = Some("12.4".into());
    network.cloud = Some("SECURE".into());
    network.data_center_ids = vec!["EU-RO-1".into()];
    network.ports = vec!["8888/http".into()];
    network.args = Some("python serve.py".into());
    check("POST", "/v2/pods", serde_json::to_value(network).unwrap());
    let update = UpdatePod {
        registry: Some(Some("clzdaifot0001l90809257ynb".into())),
        name: Some("n".into()),
        image: Some("i".into()),
        args: Some("a".into()),
        disk: Some(30),
        ports: Some(vec!["22/tcp".into()]),
        env: Some(BTreeMap::from([("K".into(), "V".into())])),
        mounts: Some(Mounts {
            persistent: Some(PersistentMount {
                size: 40,
                path: "/w".into(),
            }),
            network: None,
        }),
        locked: Some(false),
    };
    check(
        "PATCH",
        "/v2/pods/{id}",
        serde_json::to_value(update).unwrap(),
    );
    check(
        "POST",
        "/v2/pods/{id}/action",
        json!({"action": PodAction::Terminate}),
    );
    check(
        "POST",
        "/v2/serverless",
        serde_json::to_value(endpoint_request("e")).unwrap(),
    );
    let mut counted = endpoint_request("r");
    counted.scaling = Scaling::RequestCount { request_count: 2 };
    counted.workers.idle_timeout = None;
    check(
        "POST",
        "/v2/serverless",
        serde_json::to_value(counted).unwrap(),
    );
    let update = UpdateEndpoint {
        // `null`: no credential (the type is string or null).
        registry: Some(None),
        name: Some("e".into()),
        image: Some("i".into()),
        env: Some(BTreeMap::new()),
        disk: Some(10),
        gpu: Some(EndpointGpu {
            pools: vec!["ADA_24".into()],
            count: 2,
            allowed_cuda_versions: vec!["12.4".into()],
            min_cuda_version: None,
        }),
        workers: Some(Workers {
            min: Some(0),
            max: Some(0),
            idle_timeout: Some(10),
        }),
        scaling: Some(Scaling::QueueDelay { queue_delay: 0.5 }),
        data_center_ids: Some(vec![]),
        network_volumes: Some(vec!["vol".into()]),
        timeout: Some(0),
        flashboot: Some("OFF".into()),
    };
    check(
        "PATCH",
        "/v2/serverless/{id}",
        serde_json::to_value(update).unwrap(),
    );
    let volume = CreateNetworkVolume {
        name: "v".into(),
        size: 10,
        data_center: "EU-RO-1".into(),
        volume_type: Some("STANDARD".into()),
    };
    check(
        "POST",
        "/v2/network-volumes",
        serde_json::to_value(volume).unwrap(),
    );
    let grow = UpdateNetworkVolume {
        name: None,
        size: Some(20),
    };
    check(
        "PATCH",
        "/v2/network-volumes/{id}",
        serde_json::to_value(grow).unwrap(),
    );
    let registry = CreateRegistry {
        name: "r".into(),
        username: "u".into(),
        password: "p".into(),
    };
    check(
        "POST",
        "/v2/registries",
        serde_json::to_value(registry).unwrap(),
    );
}

// ---- the shared budget ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_ten_windows_of_calls_reaches_the_caller_without_a_429() {
    let sim = sim::start(SimConfig {
        balance: Decimal::from(500),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    // RunPod allows Q = 3 calls per 1-second window here; the caller fires 10 x Q at once.
    let admin = tls::http_client_builder().build().unwrap();
    admin
        .post(format!("{}/_sim/account", sim.api_url))
        .bearer_auth(&sim.api_key)
        .json(&json!({"requestsPerMinute": 3, "rateWindowSeconds": 1}))
        .send()
        .await
        .unwrap();
    let client = Client::new(config_for(&sim, &sim.api_key)).unwrap();
    let calls = (0..30).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.list_pods().await })
    });
    let mut failures = 0;
    for call in calls {
        if call.await.unwrap().is_err() {
            failures += 1;
        }
    }
    assert_eq!(failures, 0, "no call failed, so no 429 reached a caller");
    let statuses: Vec<u16> = sim
        .sim
        .requests()
        .iter()
        .filter(|r| r.path == "/v2/pods")
        .map(|r| r.status)
        .collect();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    println!("server saw {ok} answers 200 and {throttled} answers 429 for 30 calls");
    assert_eq!(ok, 30);
    let budget = client.budget();
    assert_eq!(
        (budget.quota, budget.window_seconds),
        (3, 1),
        "the client took RunPod's policy"
    );
}

#[tokio::test]
async fn clones_share_one_budget() {
    let s = Setup::new().await;
    let other = s.client.saving();
    s.client.list_pods().await.unwrap();
    other.list_pods().await.unwrap();
    assert_eq!(s.client.budget().routes["GET /v2/pods"].calls, 2);
    assert!(s.client.budget().remaining.is_some());
}
