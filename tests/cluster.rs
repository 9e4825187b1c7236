//! Opt-in: the controller against a real cluster (whatever `KUBECONFIG` points at), with the
//! simulator standing in for RunPod. Ignored by default; run it with
//!
//! ```sh
//! kubectl apply -f crds/
//! cargo test --test cluster -- --ignored --nocapture
//! ```
//!
//! It creates the namespace `runpod-operator-e2e`, a Secret, a RunPodAccount named
//! `e2e-sim` and a GpuWorkload, waits for the pod on the simulator and a Ready status, deletes
//! the workload and waits for the pod to go, then removes what it made.

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use runpod_operator::{
    api::{GpuWorkload, RunPodAccount},
    controller::{
        http::Probe,
        metrics::Metrics,
        run::{RunConfig, controllers},
    },
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

    let config = RunConfig {
        kubeconfig: None,
        namespace: Some(NS.to_string()),
        concurrency: 2,
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        lease_namespace: NS.to_string(),
        lease_name: "e2e".to_string(),
        identity: "e2e".to_string(),
        lease: Default::default(),
        progress_interval: runpod_operator::controller::PROGRESS_INTERVAL,
    };
    let metrics = Arc::new(Metrics::default());
    let probe = Probe {
        ready: Default::default(),
        metrics: metrics.clone(),
        context: Default::default(),
    };
    let running = tokio::spawn(controllers(client.clone(), config, metrics, probe));

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

    running.abort();
    let _ = accounts.delete("e2e-sim", &DeleteParams::default()).await;
    let _ = namespaces.delete(NS, &DeleteParams::default()).await;
}
