//! What the wiring tests share: the fake API server, the simulator as RunPod, and operator
//! instances started with `run_until` exactly as `runpod-operator run` starts them.

#![allow(dead_code)]

pub mod fake_kube;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use fake_kube::FakeKube;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt,
    api::{PatchParams, PostParams},
};
use runpod_operator::{
    api::{GpuWorkload, NetworkVolume, RunPodAccount},
    controller::{
        leader::LeaseTimings,
        run::{RunConfig, RunError, run_until},
    },
    engine::identity::Owner,
    sim::{self, SimConfig, SimHandle},
};
use serde_json::{Value, json};
use tokio::{sync::oneshot, task::JoinHandle};

/// The Lease the instances compete for.
pub const LEASE_NAMESPACE: &str = "runpod-operator";

/// A fake cluster with the simulator as RunPod.
pub struct Harness {
    /// The API server.
    pub kube: FakeKube,
    /// A client of it, for the test's own writes.
    pub client: Client,
    /// RunPod.
    pub sim: SimHandle,
    dir: PathBuf,
    kubeconfig: PathBuf,
}

/// One running operator.
pub struct Instance {
    /// Its election identity.
    pub identity: String,
    /// Where `/readyz` and `/metrics` answer.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    /// The `run_until` task.
    pub task: JoinHandle<Result<(), RunError>>,
}

impl Instance {
    /// Asks it to shut down (as SIGTERM does) and waits for `run_until` to end, at most 30 s:
    /// a Pod's default termination grace period. The reconciles in flight finish first, and
    /// one may be waiting out a RunPod backoff after an injected 429 or 503.
    pub async fn stop(mut self) -> Result<(), RunError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("run_until ended within 30 s of the shutdown")
            .expect("run_until did not panic")
    }

    /// `GET path` on its HTTP port: status and body (0 when nothing answers).
    pub async fn http(&self, path: &str) -> (u16, String) {
        let client = runpod_operator::tls::http_client_builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        match client
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
        {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    }
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

static DIRS: AtomicU64 = AtomicU64::new(0);

impl Harness {
    /// A fresh API server and simulator; the simulator's clock runs `speed` times real time.
    pub async fn new(speed: f64) -> Self {
        runpod_operator::tls::install_crypto_provider();
        // `RUST_LOG=info cargo test --test wiring -- --nocapture` shows the operator's logs.
        if let Ok(filter) = std::env::var("RUST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let kube = FakeKube::start().await;
        let sim = sim::start(SimConfig {
            balance: 100_000.into(),
            speed,
            requests_per_minute: 100_000,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let dir = std::env::temp_dir().join(format!(
            "rpo-wiring-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = kube.kubeconfig(&dir);
        let client = kube.client();
        Self {
            kube,
            client,
            sim,
            dir,
            kubeconfig,
        }
    }

    /// Creates a Secret with one key.
    pub async fn secret(&self, namespace: &str, name: &str, key: &str, value: &str) {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": {key: value}}))
                .unwrap();
        api.create(&PostParams::default(), &secret).await.unwrap();
    }

    /// Creates every object of a manifest file (`---`-separated documents); a RunPodAccount
    /// is pointed at the simulator.
    pub async fn apply_file(&self, path: &str) {
        let text = std::fs::read_to_string(path).unwrap();
        for doc in text.split("\n---") {
            let value: Value = match serde_norway::from_str(doc) {
                Ok(Value::Null) | Err(_) => continue,
                Ok(v) => v,
            };
            self.create(value).await;
        }
    }

    /// Creates one object from its JSON form.
    pub async fn create(&self, mut value: Value) {
        let namespace = value["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let pp = PostParams::default();
        match value["kind"].as_str().unwrap_or_default() {
            "RunPodAccount" => {
                value["spec"]["apiUrl"] = json!(self.sim.api_url);
                value["spec"]["graphqlUrl"] = json!(self.sim.graphql_url);
                value["spec"]["serverlessUrl"] = json!(self.sim.serverless_url);
                // The simulator's budget, not RunPod's: tests run many passes a second.
                value["spec"]["requestsPerMinute"] = json!(6000);
                let api: Api<RunPodAccount> = Api::all(self.client.clone());
                api.create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap();
            }
            "GpuWorkload" => {
                let api: Api<GpuWorkload> = Api::namespaced(self.client.clone(), &namespace);
                api.create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap();
            }
            "NetworkVolume" => {
                let api: Api<NetworkVolume> = Api::namespaced(self.client.clone(), &namespace);
                api.create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap();
            }
            other => panic!("no support for kind {other}"),
        }
    }

    /// The `default` account on the simulator, with the API key Secret.
    pub async fn account(&self, resync_seconds: u32) {
        self.secret(
            LEASE_NAMESPACE,
            "runpod-api-key",
            "apiKey",
            &self.sim.api_key.clone(),
        )
        .await;
        self.create(json!({
            "apiVersion": "runpod-operator.dev/v1alpha1", "kind": "RunPodAccount",
            "metadata": {"name": "default"},
            "spec": {"apiKeySecretRef": {"namespace": LEASE_NAMESPACE, "name": "runpod-api-key", "key": "apiKey"},
                     "spendingCapUsdPerHour": "1000", "resyncIntervalSeconds": resync_seconds}
        }))
        .await;
    }

    /// Starts an operator instance as `runpod-operator run --kubeconfig ...` would.
    pub fn start(&self, identity: &str, progress_interval: Duration) -> Instance {
        let addr = free_port();
        let config = RunConfig {
            kubeconfig: Some(self.kubeconfig.clone()),
            namespace: None,
            concurrency: 4,
            metrics_addr: addr,
            lease_namespace: LEASE_NAMESPACE.to_string(),
            lease_name: "runpod-operator".to_string(),
            identity: identity.to_string(),
            lease: LeaseTimings::default(),
            progress_interval,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run_until(config, async move {
            let _ = stopped.await;
        }));
        Instance {
            identity: identity.to_string(),
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Who holds the Lease now.
    pub fn holder(&self) -> Option<String> {
        self.kube
            .get(
                "coordination.k8s.io/v1/leases",
                LEASE_NAMESPACE,
                "runpod-operator",
            )
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    }

    /// Every GpuWorkload in the API server.
    pub async fn workloads(&self) -> Vec<GpuWorkload> {
        let api: Api<GpuWorkload> = Api::all(self.client.clone());
        api.list(&Default::default()).await.unwrap().items
    }

    /// RunPod pods and endpoints by name.
    pub fn runpod_objects(&self) -> BTreeMap<String, usize> {
        self.runpod_names(|a| {
            a.pods
                .values()
                .map(|p| p.name.clone())
                .chain(a.endpoints.values().map(|e| e.name.clone()))
                .collect()
        })
    }

    /// RunPod network volumes by name.
    pub fn runpod_volumes(&self) -> BTreeMap<String, usize> {
        self.runpod_names(|a| a.volumes.values().map(|v| v.name.clone()).collect())
    }

    /// How many objects of each name `names` finds in the test account.
    fn runpod_names(
        &self,
        names: impl FnOnce(&runpod_operator::sim::world::Account) -> Vec<String>,
    ) -> BTreeMap<String, usize> {
        let key = self.sim.api_key.clone();
        self.sim.sim.with_world(move |w| {
            let mut out = BTreeMap::new();
            for name in w.account(&key).map(names).unwrap_or_default() {
                *out.entry(name).or_default() += 1;
            }
            out
        })
    }

    /// Requests RunPod answered, by `METHOD path-prefix`, whatever the status.
    pub fn runpod_requests(&self, method: &str, prefix: &str) -> usize {
        self.sim.sim.calls(method, prefix)
    }

    /// Creates RunPod made (`POST /v2/pods`, `/v2/serverless`, `/v2/network-volumes`): the
    /// ones answered 2xx, and the ones answered 500 by the simulator's `afterCreate` fault,
    /// which makes the object first (tests inject other failures as 503s, which make nothing).
    pub fn creates(&self) -> usize {
        self.sim
            .sim
            .requests()
            .iter()
            .filter(|r| {
                r.method == "POST"
                    && ((200..300).contains(&r.status) || r.status == 500)
                    && matches!(
                        r.path.as_str(),
                        "/v2/pods" | "/v2/serverless" | "/v2/network-volumes"
                    )
            })
            .count()
    }

    /// Sets the simulator's fault rules (`PUT /_sim/faults`).
    pub async fn faults(&self, rules: Value) {
        let client = runpod_operator::tls::http_client_builder().build().unwrap();
        let r = client
            .put(format!("{}/_sim/faults", self.sim.api_url))
            .bearer_auth(&self.sim.api_key)
            .json(&json!({"rules": rules}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "faults accepted: {}", r.status());
    }

    /// Posts to one of the simulator's admin routes (`/_sim/<route>`), e.g. `prices`.
    pub async fn sim_admin(&self, route: &str, body: Value) {
        let client = runpod_operator::tls::http_client_builder().build().unwrap();
        let r = client
            .post(format!("{}/_sim/{route}", self.sim.api_url))
            .bearer_auth(&self.sim.api_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{route} accepted: {}", r.status());
    }

    /// Patches a workload's spec by JSON merge.
    pub async fn edit(&self, namespace: &str, name: &str, spec: Value) {
        let api: Api<GpuWorkload> = Api::namespaced(self.client.clone(), namespace);
        api.patch(
            name,
            &PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": spec})),
        )
        .await
        .unwrap();
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The RunPod name the operator gives a workload.
pub fn runpod_name(w: &GpuWorkload) -> String {
    Owner::of(w.namespace().as_deref(), &w.name_any(), w.uid().as_deref()).runpod_name()
}

/// Whether a workload's status says Ready for its current generation.
pub fn ready(w: &GpuWorkload) -> bool {
    w.status.as_ref().is_some_and(|s| {
        s.observed_generation == w.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Polls `check` every 50 ms until it holds or `within` passes; returns how long it took.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "timed out after {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
