//! Opt-in: the controller against a real cluster (whatever `KUBECONFIG` points at), with the
//! simulator standing in for RunPod. Ignored by default; run it with
//!
//! ```sh
//! kubectl apply -f crds/
//! cargo test --test cluster -- --ignored --nocapture
//! ```
//!
//! It creates the namespace `runpod-operator-e2e`, a Secret, a RunPodAccount named
//! `e2e-sim` and a GpuWorkload, runs the operator through `run_until` (what `run` calls),
//! waits for `/readyz` of the leader to answer 200, for the pod on the simulator and a Ready
//! status, deletes the workload and waits for the pod to go and its metric series to leave
//! `/metrics`, shuts down and checks the Lease was released, then removes what it made. The
//! same list runs on every `cargo test` against a fake API server (`tests/wiring.rs`).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use runpod_operator::{
    api::{GpuWorkload, RunPodAccount},
    controller::run::{RunConfig, run_until},
    sim::{self, SimConfig},
};
use serde_json::json;

const NS: &str = "runpod-operator-e2e";

#[tokio::test]
#[ignore = "needs a cluster: KUBECONFIG, and the CRDs from crds/ installed"]
async fn the_controller_runs_a_workload_on_a_real_cluster() {
    runpod_operator::tls::install_crypto_provider();
    let client = Client::try_default()
        .await
        .expect("a cluster from KUBECONFIG");
    let sim = sim::start(SimConfig {
        balance: 1000.into(),
        speed: 10.0,
        ..SimConfig::default()
    })
    .await
    .unwrap();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap(),
        )
        .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let _ = secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "runpod-api-key"}, "stringData": {"apiKey": sim.api_key}}))
                .unwrap(),
        )
        .await;
    let accounts: Api<RunPodAccount> = Api::all(client.clone());
    let _ = accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "e2e-sim"},
                "spec": {"apiKeySecretRef": {"namespace": NS, "name": "runpod-api-key"},
                         "apiUrl": sim.api_url, "graphqlUrl": sim.graphql_url, "serverlessUrl": sim.serverless_url,
                         "resyncIntervalSeconds": 10}
            }))
            .unwrap(),
        )
        .await;
    let workloads: Api<GpuWorkload> = Api::namespaced(client.clone(), NS);
    workloads
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "trainer"},
                "spec": {"type": "Pod", "accountRef": {"name": "e2e-sim"}, "image": "img:1",
                         "gpu": {"types": ["NVIDIA A100-SXM4-80GB"]}, "spendingCap": {"usdPerHour": "3"}}
            }))
            .unwrap(),
        )
        .await
        .expect("the CRDs are installed (kubectl apply -f crds/)");

    // `run_until` is what `runpod-operator run` calls: the watches, readiness, the Lease.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = RunConfig {
        kubeconfig: None,
        namespace: Some(NS.to_string()),
        concurrency: 2,
        metrics_addr: addr,
        lease_namespace: NS.to_string(),
        lease_name: "e2e".to_string(),
        identity: "e2e".to_string(),
        lease: Default::default(),
        progress_interval: Duration::from_secs(2),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(run_until(config, async move {
        let _ = stopped.await;
    }));
    let http = runpod_operator::tls::http_client_builder().build().unwrap();
    let get = |path: &'static str| {
        let http = http.clone();
        async move {
            match http.get(format!("http://{addr}{path}")).send().await {
                Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                Err(_) => (0, String::new()),
            }
        }
    };
    let mut leader_ready = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if get("/readyz").await.0 == 200 {
            leader_ready = true;
            break;
        }
    }
    assert!(leader_ready, "the leader's /readyz answered 200");

    let key = sim.api_key.clone();
    let pods = |sim: &sim::SimHandle| {
        let key = key.clone();
        sim.sim
            .with_world(move |w| w.account(&key).map_or(0, |a| a.pods.len()))
    };
    let mut ready = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let w = workloads.get("trainer").await.unwrap();
        ready = w.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        if ready {
            break;
        }
    }
    assert!(ready, "the workload became Ready");
    assert_eq!(pods(&sim), 1);

    workloads
        .delete("trainer", &DeleteParams::default())
        .await
        .unwrap();
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if workloads.get_opt("trainer").await.unwrap().is_none() {
            break;
        }
    }
    assert!(
        workloads.get_opt("trainer").await.unwrap().is_none(),
        "the finalizer was removed"
    );
    assert_eq!(pods(&sim), 0, "the pod was deleted on RunPod");

    let (_, metrics) = get("/metrics").await;
    assert!(
        !metrics.contains("name=\"trainer\""),
        "a deleted workload kept its metric series:\n{metrics}"
    );
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("run_until ended within 10 s of the shutdown")
        .unwrap()
        .unwrap();
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), NS);
    let lease = leases.get("e2e").await.unwrap();
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity),
        None,
        "the Lease was released on shutdown"
    );
    let _ = accounts.delete("e2e-sim", &DeleteParams::default()).await;
    let _ = namespaces.delete(NS, &DeleteParams::default()).await;
}
