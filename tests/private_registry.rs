//! A private image end to end, as users run the operator (`run_until` against the fake API
//! server, the simulator as RunPod, which pulls a private image only with a matching
//! credential): without its Secret the workload is Stalled and nothing is created; with it the
//! pod runs; rotating the Secret leaves exactly one RunPod credential; deleting the workload
//! leaves none; and the password is in no log line (at trace level), Event or status.

mod support;

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use runpod_operator::{api::GpuWorkload, sim::world::PrivateImage};
use serde_json::json;
use support::{Harness, eventually, ready};

const IMAGE: &str = "ghcr.io/acme/trainer:1.4";
const USER: &str = "acme-bot";
const FIRST: &str = "ghp-first-Zq8RTTn2wX";
const SECOND: &str = "ghp-second-Lm4KPd7vQe";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn docker_config(password: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"));
    json!({"auths": {"ghcr.io": {"username": USER, "password": password, "auth": auth}}})
        .to_string()
}

fn secret_data(password: &str) -> serde_json::Value {
    json!({".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(docker_config(password))})
}

/// The simulator's registry credentials, by name, and what the pods use.
/// (id, name) of each credential; (status, credential id) of each pod.
type Seen = (Vec<(String, String)>, Vec<(String, Option<String>)>);

fn credentials(h: &Harness) -> Seen {
    let key = h.sim.api_key.clone();
    h.sim.sim.with_world(move |world| {
        let account = world.account(&key).unwrap();
        (
            account
                .registries
                .values()
                .map(|r| (r.id.clone(), r.name.clone()))
                .collect(),
            account
                .pods
                .values()
                .map(|p| {
                    (
                        format!("{:?}", p.status).to_uppercase(),
                        p.container.registry.clone(),
                    )
                })
                .collect(),
        )
    })
}

fn private(h: &Harness, password: &str) {
    let login = PrivateImage {
        username: USER.into(),
        password: password.into(),
    };
    h.sim.sim.with_world(move |w| {
        w.private_images
            .insert("ghcr.io/acme/trainer".into(), login);
    });
}

fn condition(w: &GpuWorkload, kind: &str) -> Option<(String, String)> {
    w.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == kind)
            .map(|c| (c.status.clone(), c.message.clone()))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_image_runs_with_its_secret_rotates_and_leaves_no_credential() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();

    let h = Harness::new(40.0).await;
    private(&h, FIRST);
    h.account(5).await;
    h.create(json!({
        "apiVersion": "runpod-operator.dev/v1alpha1", "kind": "GpuWorkload",
        "metadata": {"name": "trainer", "namespace": "ml"},
        "spec": {"type": "Pod", "image": IMAGE, "registryCredentials": {"name": "ghcr-login"},
                 "gpu": {"types": ["NVIDIA RTX A5000"], "count": 1}, "spendingCap": {"usdPerHour": "2"}}
    }))
    .await;
    let operator = h.start("op-1", Duration::from_millis(500));
    let workloads: Api<GpuWorkload> = Api::namespaced(h.client.clone(), "ml");

    // Without the Secret: Stalled, naming it; nothing made on RunPod.
    eventually(
        Duration::from_secs(30),
        "Stalled naming the Secret",
        || async {
            let w = workloads.get("trainer").await.unwrap();
            condition(&w, "Stalled").is_some_and(|(status, message)| {
                status == "True" && message.contains("\"ghcr-login\"")
            })
        },
    )
    .await;
    let (registries, pods) = credentials(&h);
    assert!(
        registries.is_empty() && pods.is_empty(),
        "{registries:?} {pods:?}"
    );

    // With it: one credential, the pod pulls the image and runs, the workload is Ready.
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), "ml");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "ghcr-login"}, "type": "kubernetes.io/dockerconfigjson",
                "data": secret_data(FIRST)
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    eventually(Duration::from_secs(60), "Ready with the Secret", || async {
        ready(&workloads.get("trainer").await.unwrap())
    })
    .await;
    let (registries, pods) = credentials(&h);
    assert_eq!(registries.len(), 1, "{registries:?}");
    assert_eq!(
        pods,
        vec![("RUNNING".to_string(), Some(registries[0].0.clone()))]
    );
    let first_id = registries[0].0.clone();
    // What `kubectl get gw` (and `-o wide`) print for it.
    let status = workloads.get("trainer").await.unwrap().status.unwrap();
    assert_eq!(status.gpu.as_deref(), Some("1x RTX A5000"));
    assert_eq!(status.drift_count, Some(0));
    assert_eq!(status.state.as_deref(), Some("RUNNING"));
    // It never failed to pull on the way: the pod was created with the credential.
    let errors = h.sim.sim.with_world(|w| w.pod_errors.clone());
    assert!(errors.is_empty(), "{errors:?}");

    // The registry token rotates: RunPod's credential follows the Secret, make-before-break,
    // and exactly one is left.
    private(&h, SECOND);
    secrets
        .patch(
            "ghcr-login",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": secret_data(SECOND)})),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "the new credential, alone, in use",
        || async {
            let (registries, pods) = credentials(&h);
            let w = workloads.get("trainer").await.unwrap();
            registries.len() == 1
                && registries[0].0 != first_id
                && pods == vec![("RUNNING".to_string(), Some(registries[0].0.clone()))]
                && ready(&w)
        },
    )
    .await;

    // Deleting the workload deletes its pod, then its credential.
    workloads
        .delete("trainer", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "no pod and no credential",
        || async {
            let (registries, pods) = credentials(&h);
            registries.is_empty() && pods.is_empty()
        },
    )
    .await;
    operator.stop().await.unwrap();

    // The password went nowhere a person reads.
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("registry credential"),
        "the trace log was captured"
    );
    let events = h.kube.list("events.k8s.io/v1/events");
    assert!(!events.is_empty());
    let events = serde_json::to_string(&events).unwrap();
    let statuses =
        serde_json::to_string(&h.kube.list("runpod-operator.dev/v1alpha1/gpuworkloads")).unwrap();
    let requests = serde_json::to_string(&h.sim.sim.requests()).unwrap();
    for password in [FIRST, SECOND] {
        assert!(!logs.contains(password), "a log line holds the password");
        assert!(!events.contains(password), "an Event holds the password");
        assert!(!statuses.contains(password), "a status holds the password");
        assert!(
            !requests.contains(password),
            "the simulator's request log holds it"
        );
    }
}
