//! The operator as users run it: `run_until` (what `runpod-operator run` calls) against a
//! stateful fake Kubernetes API server on loopback (list and watch with resourceVersions and
//! bookmarks, patches, the status subresource, finalizers, Leases), with the simulator as
//! RunPod. These tests cover what the reconciler tests cannot: the watches, readiness, the
//! reconcile gate, the Lease and shutdown, and the metrics a scrape sees.

mod support;

use std::time::{Duration, Instant};

use kube::{Api, ResourceExt, api::DeleteParams};
use runpod_operator::api::{GpuWorkload, NetworkVolume, WorkloadType};
use serde_json::json;
use support::{Harness, eventually, ready, runpod_name};

const EXAMPLES: [&str; 4] = [
    "examples/account.yaml",
    "examples/weights-volume.yaml",
    "examples/training-pod.yaml",
    "examples/image-matting-endpoint.yaml",
];

async fn examples(h: &Harness) {
    let key = h.sim.api_key.clone();
    h.secret(support::LEASE_NAMESPACE, "runpod-api-key", "apiKey", &key)
        .await;
    h.secret("research", "wandb", "apiKey", "wandb-key").await;
    h.secret("inference", "huggingface", "token", "hf-token")
        .await;
    for file in EXAMPLES {
        h.apply_file(file).await;
    }
}

/// A one-A100 pod workload in `ml`, capped at 3 USD/h.
fn pod(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "runpod-operator.dev/v1alpha1", "kind": "GpuWorkload",
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {"type": "Pod", "image": "img:1", "gpu": {"types": [A100]},
                 "spendingCap": {"usdPerHour": "3"}}
    })
}

const A100: &str = "NVIDIA A100-SXM4-80GB";

async fn all_ready(h: &Harness) -> bool {
    let workloads = h.workloads().await;
    let done = !workloads.is_empty() && workloads.iter().all(ready);
    if !done && std::env::var("WIRING_DEBUG").is_ok() {
        for w in &workloads {
            eprintln!(
                "{}: {:?}",
                w.name_any(),
                w.status.as_ref().map(|s| (
                    &s.runpod_id,
                    &s.state,
                    s.conditions
                        .iter()
                        .map(|c| format!("{}={} {}", c.type_, c.status, c.message))
                        .collect::<Vec<_>>()
                ))
            );
        }
    }
    done
}

/// Every workload has exactly one RunPod object under its name, and RunPod has nothing else.
async fn one_object_per_workload(h: &Harness) -> Result<(), String> {
    let objects = h.runpod_objects();
    let workloads = h.workloads().await;
    for w in &workloads {
        let n = objects.get(&runpod_name(w)).copied().unwrap_or(0);
        if n != 1 {
            return Err(format!("{}: {n} RunPod objects: {objects:?}", w.name_any()));
        }
    }
    if objects.len() != workloads.len() {
        return Err(format!(
            "{} RunPod objects for {} workloads: {objects:?}",
            objects.len(),
            workloads.len()
        ));
    }
    Ok(())
}

/// Issue 13 items 1, 2 and 5: from a cold start, every example converges with exactly one
/// create per object, the leader turns Ready, and a pod is Ready as soon as RunPod runs it (by
/// a targeted read), although the account's full resync is 60 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_converges_every_example_with_one_create_each_and_the_leader_turns_ready() {
    let h = Harness::new(20.0).await;
    examples(&h).await;
    let a = h.start("a", Duration::from_secs(1));
    eventually(
        Duration::from_secs(20),
        "the leader's /readyz answers 200",
        || async { h.holder().as_deref() == Some("a") && a.http("/readyz").await.0 == 200 },
    )
    .await;
    let took = eventually(
        Duration::from_secs(30),
        "every example workload is Ready",
        || all_ready(&h),
    )
    .await;
    one_object_per_workload(&h).await.unwrap();
    // One pod, two endpoints, one volume: four creates, and no more over several passes.
    assert_eq!(
        h.creates(),
        4,
        "{:?}",
        h.sim
            .sim
            .requests()
            .iter()
            .filter(|r| r.method != "GET")
            .map(|r| format!("{} {} {}", r.method, r.path, r.status))
            .collect::<Vec<_>>()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(h.creates(), 4, "a later pass created again");
    one_object_per_workload(&h).await.unwrap();
    assert!(
        took < Duration::from_secs(30),
        "Ready within the account's 60 s resync (took {took:?})"
    );
    assert!(
        h.runpod_requests("GET", "/v2/pods/") > 0,
        "the waiting pod was read by id"
    );
    let (code, body) = a.http("/readyz").await;
    assert_eq!((code, body.as_str()), (200, "ready"));
    a.stop().await.unwrap();
    assert_eq!(h.holder(), None, "the Lease was released on shutdown");
}

/// Issue 13 items 3 and 4: a shutdown hands the Lease to the standby within 2 s, and the new
/// leader's first pass manages the existing workloads (no "account not found", no create).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_hands_over_in_under_two_seconds_and_the_new_leader_takes_over_cleanly() {
    let h = Harness::new(20.0).await;
    h.account(10).await;
    h.create(json!({
        "apiVersion": "runpod-operator.dev/v1alpha1", "kind": "GpuWorkload",
        "metadata": {"name": "trainer", "namespace": "ml"},
        "spec": {"type": "Pod", "image": "img:1", "gpu": {"types": ["NVIDIA A100-SXM4-80GB"]},
                 "spendingCap": {"usdPerHour": "3"}}
    }))
    .await;
    let a = h.start("a", Duration::from_secs(1));
    eventually(Duration::from_secs(30), "the workload is Ready", || {
        all_ready(&h)
    })
    .await;
    let b = h.start("b", Duration::from_secs(1));
    eventually(Duration::from_secs(10), "the standby is Ready", || async {
        b.http("/readyz").await.0 == 200
    })
    .await;
    assert_eq!(h.holder().as_deref(), Some("a"));
    let creates = h.creates();

    let signalled = Instant::now();
    let stopping = tokio::spawn(a.stop());
    eventually(
        Duration::from_secs(10),
        "the standby holds the Lease",
        || async { h.holder().as_deref() == Some("b") },
    )
    .await;
    let handover = signalled.elapsed();
    stopping.await.unwrap().unwrap();
    assert!(
        handover < Duration::from_secs(2),
        "the Lease changed hands {handover:?} after the shutdown"
    );

    // The new leader's first pass: an edit is applied, nothing is created, no error.
    h.edit("ml", "trainer", json!({"image": "img:2"})).await;
    eventually(
        Duration::from_secs(15),
        "the edit reached RunPod",
        || async {
            let key = h.sim.api_key.clone();
            let image = h.sim.sim.with_world(move |w| {
                w.account(&key)
                    .and_then(|a| a.pods.values().next().map(|p| p.container.image.clone()))
            });
            image.as_deref() == Some("img:2") && all_ready(&h).await
        },
    )
    .await;
    assert_eq!(h.creates(), creates, "the new leader created nothing");
    one_object_per_workload(&h).await.unwrap();
    let (_, metrics) = b.http("/metrics").await;
    assert!(
        metrics.contains("runpod_operator_reconciles_total{kind=\"GpuWorkload\",outcome=\"ok\"}"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("reconcile_errors_total{kind=\"GpuWorkload\""),
        "the new leader's reconciles failed:\n{metrics}"
    );
    b.stop().await.unwrap();
}

/// Issue 13 items 6 and 7: deleting a workload leaves no metric series, and the volume it
/// used, deleted with it, goes as soon as its last user has (not after an error backoff).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_objects_leave_no_series_and_a_volume_goes_right_after_its_last_user() {
    let h = Harness::new(20.0).await;
    h.account(10).await;
    h.create(json!({
        "apiVersion": "runpod-operator.dev/v1alpha1", "kind": "NetworkVolume",
        "metadata": {"name": "weights", "namespace": "ml"},
        "spec": {"sizeGb": 10, "dataCenter": "EU-RO-1", "deletionPolicy": "Delete"}
    }))
    .await;
    h.create(json!({
        "apiVersion": "runpod-operator.dev/v1alpha1", "kind": "GpuWorkload",
        "metadata": {"name": "reader", "namespace": "ml"},
        "spec": {"type": "Serverless", "image": "img:1", "gpu": {"types": ["NVIDIA L40S"]},
                 "dataCenters": ["EU-RO-1"], "networkVolumes": [{"name": "weights"}],
                 "serverless": {"workerClass": "Flex", "maxWorkers": 1},
                 "spendingCap": {"usdPerHour": "5"}}
    }))
    .await;
    h.create(json!({
        "apiVersion": "runpod-operator.dev/v1alpha1", "kind": "GpuWorkload",
        "metadata": {"name": "keeper", "namespace": "ml"},
        "spec": {"type": "Pod", "image": "img:1", "gpu": {"types": ["NVIDIA A100-SXM4-80GB"]},
                 "spendingCap": {"usdPerHour": "3"}}
    }))
    .await;
    let a = h.start("a", Duration::from_secs(1));
    eventually(Duration::from_secs(30), "both workloads are Ready", || {
        all_ready(&h)
    })
    .await;
    assert_eq!(h.runpod_volumes().len(), 1);
    let (_, metrics) = a.http("/metrics").await;
    assert!(metrics.contains("name=\"reader\""), "{metrics}");

    let workloads: Api<GpuWorkload> = Api::namespaced(h.client.clone(), "ml");
    let volumes: Api<NetworkVolume> = Api::namespaced(h.client.clone(), "ml");
    volumes
        .delete("weights", &DeleteParams::default())
        .await
        .unwrap();
    workloads
        .delete("reader", &DeleteParams::default())
        .await
        .unwrap();
    eventually(Duration::from_secs(15), "the workload is gone", || async {
        workloads.get_opt("reader").await.unwrap().is_none()
    })
    .await;
    let after_user = eventually(Duration::from_secs(15), "the volume is gone", || async {
        volumes.get_opt("weights").await.unwrap().is_none()
    })
    .await;
    assert!(
        after_user < Duration::from_secs(4),
        "the volume waited {after_user:?} after its last user (an error backoff starts at 5 s)"
    );
    assert!(h.runpod_volumes().is_empty(), "deleted on RunPod too");
    one_object_per_workload(&h).await.unwrap();
    let (_, metrics) = a.http("/metrics").await;
    assert!(
        !metrics.contains("name=\"reader\""),
        "a deleted workload kept its series:\n{metrics}"
    );
    assert!(metrics.contains("name=\"keeper\""), "{metrics}");
    a.stop().await.unwrap();
}

/// Issue 14 item 3 in the controller: when RunPod's pod list loses names and markers, creates
/// on the account wait. The RunPodAccount says `CreatesHeld` (with a Warning Event), a new
/// workload gets no RunPod object and a `WriteHeld` Event, the existing pod is left alone;
/// whole lists again release the hold and the new workload gets exactly one object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_without_identity_hold_creates_and_the_account_says_so() {
    let h = Harness::new(20.0).await;
    h.account(1).await;
    h.create(pod("first")).await;
    let a = h.start("a", Duration::from_secs(1));
    eventually(
        Duration::from_secs(30),
        "the first workload is Ready",
        || all_ready(&h),
    )
    .await;
    let creates = h.creates();
    assert_eq!(creates, 1);
    let patches = h.runpod_requests("PATCH", "/v2/pods");

    h.faults(json!([{"method": "GET", "path": "/v2/pods", "kind": "blankIdentity"}]))
        .await;
    let accounts: Api<runpod_operator::api::RunPodAccount> = Api::all(h.client.clone());
    // The account's CreatesHeld condition, "True" or "False", once it has one.
    let held = || async {
        accounts.get("default").await.ok().and_then(|a| {
            a.status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "CreatesHeld")
                .map(|c| c.status)
        })
    };
    eventually(
        Duration::from_secs(30),
        "the account says CreatesHeld",
        || async { held().await.as_deref() == Some("True") },
    )
    .await;
    // Created once the account has read the broken list (a workload reconciled before that
    // planned on the last whole list, rightly).
    h.create(pod("second")).await;
    eventually(
        Duration::from_secs(30),
        "the second workload's create is held",
        || async {
            h.kube
                .list("events.k8s.io/v1/events")
                .iter()
                .any(|e| e["reason"] == "WriteHeld" && e["regarding"]["name"] == "second")
        },
    )
    .await;
    // A few more passes while held: still nothing made.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        h.creates(),
        creates,
        "a create while the lists lack identity"
    );
    // The first pod's env reads blank in those lists: not "drift" to correct with a PATCH
    // (which would reset the pod).
    assert_eq!(
        h.runpod_requests("PATCH", "/v2/pods"),
        patches,
        "a change written from a list that lost fields"
    );
    let events = h.kube.list("events.k8s.io/v1/events");
    let event = events
        .iter()
        .find(|e| e["reason"] == "CreatesHeld")
        .expect("a CreatesHeld Event on the account");
    assert_eq!(event["type"], "Warning");
    assert!(
        event["note"]
            .as_str()
            .unwrap_or_default()
            .contains("without an id or a name"),
        "{event}"
    );

    h.faults(json!([])).await;
    eventually(Duration::from_secs(30), "both workloads are Ready", || {
        all_ready(&h)
    })
    .await;
    assert_eq!(h.creates(), 2, "exactly one create for the second workload");
    one_object_per_workload(&h).await.unwrap();
    eventually(Duration::from_secs(15), "the hold is lifted", || async {
        held().await.as_deref() == Some("False")
    })
    .await;
    a.stop().await.unwrap();
}

/// Issue 12 item 1: each account reads RunPod's catalogue on its own interval and its money
/// rules use what it says. A price rise that breaks a cap is reported for what runs (nothing
/// stopped or deleted) and refuses a new create; a failed read keeps the prices and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_price_change_is_seen_within_one_refresh_and_stops_nothing() {
    let h = Harness::new(20.0).await;
    h.secret(
        support::LEASE_NAMESPACE,
        "runpod-api-key",
        "apiKey",
        &h.sim.api_key.clone(),
    )
    .await;
    h.create(json!({
        "apiVersion": "runpod-operator.dev/v1alpha1", "kind": "RunPodAccount",
        "metadata": {"name": "default"},
        "spec": {"apiKeySecretRef": {"namespace": support::LEASE_NAMESPACE, "name": "runpod-api-key", "key": "apiKey"},
                 "spendingCapUsdPerHour": "1000", "resyncIntervalSeconds": 2,
                 "priceRefreshIntervalSeconds": 10}
    }))
    .await;
    h.create(pod("first")).await;
    let a = h.start("a", Duration::from_secs(1));
    eventually(
        Duration::from_secs(30),
        "the first workload is Ready",
        || all_ready(&h),
    )
    .await;
    let accounts: Api<runpod_operator::api::RunPodAccount> = Api::all(h.client.clone());
    let account = || async { accounts.get("default").await.unwrap() };
    let condition = |a: &runpod_operator::api::RunPodAccount, kind: &str| {
        a.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == kind)
                .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        })
    };
    eventually(
        Duration::from_secs(15),
        "the account's prices come from the catalogue",
        || async {
            let a = account().await;
            a.status
                .as_ref()
                .and_then(|s| s.prices.as_ref())
                .is_some_and(|p| p.source == "Catalogue" && p.fetched_at.is_some())
                && condition(&a, "PricesStale").is_some_and(|c| c.0 == "False")
        },
    )
    .await;
    let catalogue_reads = h.runpod_requests("GET", "/v2/catalog/gpus");
    assert!(catalogue_reads >= 1);

    // The A100 rises from 1.89 to 3.50 USD/h: the running pod no longer fits its 3 USD/h cap.
    h.sim_admin("prices", json!({"gpuType": A100, "secure": "3.50"}))
        .await;
    let changed = Instant::now();
    let workloads: Api<GpuWorkload> = Api::namespaced(h.client.clone(), "ml");
    eventually(
        Duration::from_secs(25),
        "the running pod reports that it no longer fits its cap",
        || async {
            workloads.get("first").await.ok().is_some_and(|w| {
                w.status.is_some_and(|s| {
                    s.conditions.iter().any(|c| {
                        c.type_ == "SpendCapExceeded"
                            && c.status == "True"
                            && c.reason == "RunningOverCap"
                            && c.message.contains("3.5")
                    })
                })
            })
        },
    )
    .await;
    // Within one refresh interval (10 s) and a resync, not at the next hour.
    assert!(
        changed.elapsed() < Duration::from_secs(20),
        "seen after {:?}",
        changed.elapsed()
    );
    // The catalogue is read on the interval, not per reconcile.
    let reads = h.runpod_requests("GET", "/v2/catalog/gpus") - catalogue_reads;
    assert!(
        (1..=3).contains(&reads),
        "{reads} catalogue reads in {:?}",
        changed.elapsed()
    );

    // A second workload of the same shape is refused before RunPod is called.
    let creates = h.creates();
    h.create(pod("second")).await;
    eventually(
        Duration::from_secs(20),
        "the second workload is refused by its cap",
        || async {
            workloads.get("second").await.ok().is_some_and(|w| {
                w.status.is_some_and(|s| {
                    s.conditions.iter().any(|c| {
                        c.type_ == "Stalled" && c.status == "True" && c.reason == "SpendCapExceeded"
                    })
                })
            })
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        h.creates(),
        creates,
        "a create past the cap at the new price"
    );
    // Nothing was stopped or deleted for the price.
    assert_eq!(h.runpod_requests("DELETE", "/v2/pods"), 0);
    assert_eq!(
        h.runpod_requests("POST", "/v2/pods/"),
        0,
        "a stop or restart"
    );
    one_object_per_workload(&h)
        .await
        .expect_err("the second workload has no pod");
    assert_eq!(h.runpod_objects().len(), 1);

    // The catalogue fails: the prices read stay in use, and the account says so.
    h.faults(
        json!([{"method": "GET", "path": "/v2/catalog/gpus", "kind": "status", "status": 503}]),
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the account says PricesStale",
        || async {
            let a = account().await;
            condition(&a, "PricesStale").is_some_and(|c| c.0 == "True" && c.1 == "ReadFailed")
                && a.status
                    .as_ref()
                    .and_then(|s| s.prices.as_ref())
                    .is_some_and(|p| p.source == "Catalogue" && p.last_error.is_some())
        },
    )
    .await;
    let events = h.kube.list("events.k8s.io/v1/events");
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "PricesStale" && e["type"] == "Warning"),
        "a PricesStale Event"
    );
    // Still refused at the price last read, not at the built-in 1.89.
    let w = workloads.get("second").await.unwrap();
    assert!(
        w.status
            .unwrap()
            .conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True" && c.reason == "SpendCapExceeded")
    );
    assert_eq!(h.creates(), creates);
    a.stop().await.unwrap();
}

/// Issue 12: the controller measures an endpoint's use from RunPod's hourly billing, says
/// what is cheapest in the status (`utilisation`, `recommendation`, `CostAdvice`), and with
/// `workerClass: Auto` runs that many active workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measured_steady_traffic_is_advised_and_auto_sets_the_active_workers() {
    let h = Harness::new(20.0).await;
    let (_a, workloads, id) = one_ready(
        &h,
        "steady",
        json!({"type": "Serverless", "image": "img:1", "gpu": {"types": [A100]},
               "serverless": {"workerClass": "Auto", "maxWorkers": 4},
               "measurement": {"windowDays": 1},
               "spendingCap": {"usdPerHour": "20"}}),
    )
    .await;
    let key = h.sim.api_key.clone();
    let active = |id: String| {
        let key = key.clone();
        h.sim.sim.with_world(move |w| {
            w.account(&key)
                .and_then(|a| a.endpoints.get(&id).map(|e| e.workers.min))
        })
    };
    assert_eq!(active(id.clone()), Some(0), "flex only until measured");
    // Two days of two workers busy around the clock: 60 jobs an hour of 120 s each.
    h.sim_admin(
        "traffic",
        json!({"endpointId": id, "hours": 48, "jobsPerHour": 60, "jobSeconds": 120}),
    )
    .await;
    eventually(
        Duration::from_secs(60),
        "the status carries the measured use and the advice",
        || async {
            workloads.get("steady").await.ok().is_some_and(|w| {
                w.status.is_some_and(|s| {
                    s.utilisation.as_ref().is_some_and(|u| {
                        u.window_hours.parse::<f64>().unwrap_or(0.0) >= 20.0
                            && u.busy_workers_p50 >= 2
                    }) && s.recommendation.is_some()
                        && s.conditions.iter().any(|c| c.type_ == "CostAdvice")
                })
            })
        },
    )
    .await;
    // Two or more workers busy all the time (the simulator bills cold starts and idle tails
    // too) pay off as active: 79% of the time is the line.
    eventually(
        Duration::from_secs(30),
        "Auto runs the measured busy workers as active ones",
        || async { active(id.clone()).is_some_and(|k| k >= 2) },
    )
    .await;
    let k = active(id.clone()).unwrap();
    assert!(k <= 4, "within maxWorkers: {k}");
    // Running them, what is left to save among the serverless ways is within Auto's margin
    // (10%): the advice says the cheapest way (Pods are advice only for a Serverless workload),
    // and why Auto leaves a cheaper serverless count, if there is one; Ready stays.
    let w = eventually_status(&workloads, "steady", |s| {
        s.conditions.iter().any(|c| {
            c.type_ == "CostAdvice"
                && (c.status == "False"
                    || c.message.contains("less than the 10% margin")
                    || c.message.contains("Pod"))
        })
    })
    .await;
    let status = w.status.clone().unwrap();
    let advice = status
        .conditions
        .iter()
        .find(|c| c.type_ == "CostAdvice")
        .unwrap()
        .message
        .clone();
    assert!(
        !advice.contains("Auto acts on a whole window"),
        "the window is whole: {advice}"
    );
    assert!(status.recommendation.is_some());
    assert!(ready(&w));
    assert_eq!(h.creates(), 1, "one endpoint, changed in place");
}

/// `type: Auto`: a busy endpoint moves to one Pod once the measured use says the Pod is
/// cheaper by the margin; the endpoint serves until the pod runs, and only then goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_auto_moves_a_busy_endpoint_to_a_pod_make_before_break() {
    let h = Harness::new(20.0).await;
    let (_a, workloads, endpoint_id) = one_ready(
        &h,
        "busy",
        json!({"type": "Auto", "image": "img:1", "gpu": {"types": [A100]},
               "serverless": {"maxWorkers": 1},
               "measurement": {"windowDays": 1},
               "spendingCap": {"usdPerHour": "6"}}),
    )
    .await;
    let status = workloads.get("busy").await.unwrap().status.unwrap();
    assert_eq!(
        status.runs_as,
        Some(WorkloadType::Serverless),
        "Serverless until measured"
    );
    // Two days of one worker busy about two thirds of every hour (24 jobs of 100 s): about
    // 17 busy hours a day, past the A100's break-even of 16.6 with the cold starts billed.
    h.sim_admin(
        "traffic",
        json!({"endpointId": endpoint_id, "hours": 48, "jobsPerHour": 24, "jobSeconds": 100}),
    )
    .await;
    let key = h.sim.api_key.clone();
    let sim = &h.sim.sim;
    let sides = move || {
        let key = key.clone();
        sim.with_world(move |w| {
            let now = w.now;
            w.account(&key).map(|a| {
                (
                    a.endpoints.len(),
                    a.pods
                        .values()
                        .map(|p| {
                            let up = p.started_at.map(|at| now.saturating_sub(at) / 1000);
                            (format!("{:?}", p.status), up.unwrap_or(0))
                        })
                        .collect::<Vec<_>>(),
                )
            })
        })
    };
    // Watched all along: the endpoint never goes before the pod runs.
    let started = Instant::now();
    loop {
        let (endpoints, pods) = sides().unwrap();
        if endpoints == 0 {
            assert_eq!(pods.len(), 1, "{pods:?}");
            // Running, and its container up for a minute (RunPod's proxy answers 30-60 s
            // after RUNNING).
            assert!(
                pods[0].0 == "Running" && pods[0].1 >= 60,
                "the endpoint went before the pod served: {pods:?}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no switch: {:?}",
            workloads.get("busy").await.ok().and_then(|w| w.status)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let w = eventually_status(&workloads, "busy", |s| {
        s.runs_as == Some(WorkloadType::Pod)
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
            && s.runpod_id.as_deref() != Some(endpoint_id.as_str())
    })
    .await;
    let status = w.status.unwrap();
    let recommendation = status.recommendation.expect("the advice that moved it");
    assert_eq!(recommendation.configuration, "1 Pod");
    assert_eq!(h.creates(), 2, "one endpoint, then one pod");
    // It stays a Pod: no flapping back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(h.creates(), 2);
    assert_eq!(sides().unwrap().0, 0);
}

/// `type: Auto` on an endpoint whose traffic comes in pairs: two jobs of 1,500 s at the top of
/// every hour. RunPod's hourly bill averages that to one worker busy most of the hour (about
/// 20 h/day, where one Pod looks cheapest and the bill alone would move the workload); the
/// controller's `/health` samples see the two at once, so the Pod side needs two pods and the
/// workload stays an endpoint. The status shows what the samples saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_auto_keeps_an_endpoint_whose_bursts_one_pod_could_not_serve() {
    let h = Harness::new(20.0).await;
    let (_a, workloads, endpoint_id) = one_ready(
        &h,
        "pairs",
        json!({"type": "Auto", "image": "img:1", "gpu": {"types": [A100]},
               "serverless": {"maxWorkers": 3},
               "measurement": {"windowDays": 1},
               "spendingCap": {"usdPerHour": "10"}}),
    )
    .await;
    let key = h.sim.api_key.clone();
    for _ in 0..27 {
        let (key, id) = (key.clone(), endpoint_id.clone());
        h.sim.sim.with_world(move |w| {
            for _ in 0..2 {
                w.submit_job(&key, &id, json!({"simulatedSeconds": 1500}))
                    .unwrap();
            }
        });
        // Two seconds (40 s of the simulator's clock): past the cold start, sampled by a
        // resync or two while both run. Then on to the next hour.
        tokio::time::sleep(Duration::from_secs(2)).await;
        h.sim_admin("clock", json!({"advanceSeconds": 3560})).await;
    }
    // A whole day measured from the bill (read an hour after each closes).
    let w = eventually_status(&workloads, "pairs", |s| {
        s.utilisation.as_ref().is_some_and(|u| {
            u.window_hours.parse::<f64>().unwrap_or(0.0) >= 24.0 && u.sampled.is_some()
        })
    })
    .await;
    let status = w.status.unwrap();
    let utilisation = status.utilisation.unwrap();
    let busy: f64 = utilisation.busy_hours_per_day.parse().unwrap();
    assert!(
        busy > 16.6,
        "the bill reads one worker busy most of every hour: {utilisation:?}"
    );
    assert_eq!(
        utilisation.busy_workers_max, 1,
        "the bill averages the pairs: {utilisation:?}"
    );
    let sampled = utilisation.sampled.unwrap();
    assert_eq!(sampled.busy_workers_max, 2, "{sampled:?}");
    assert_eq!(status.runs_as, Some(WorkloadType::Serverless));
    let recommendation = status.recommendation.unwrap();
    assert_ne!(recommendation.configuration, "1 Pod", "{recommendation:?}");
    let advice = status
        .conditions
        .iter()
        .find(|c| c.type_ == "CostAdvice")
        .unwrap();
    assert!(
        advice.message.contains("at most 2 busy at once"),
        "{}",
        advice.message
    );
    // And it stays an endpoint. With RunPod's clock stopped, the samples that keep coming (one
    // a resync) write nothing: the status's figures move on with the measured hours only.
    h.sim_admin("clock", json!({"speed": 0.0})).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status_writes = || {
        h.kube.requests(
            "PATCH /apis/runpod-operator.dev/v1alpha1/namespaces/ml/gpuworkloads/pairs/status",
        )
    };
    let before = status_writes();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(status_writes(), before, "a status write per sample");
    assert_eq!(h.creates(), 1, "no pod was made");
}

/// `type: Auto` on a Pod: the controller samples the pod's GPUs on each reconcile, by hour of
/// the pod's uptime; once a whole window of hours shows it busy a fifth of the time, it moves
/// the workload back to a flex endpoint, and deletes the pod only once the endpoint exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_auto_moves_a_mostly_idle_pod_back_to_serverless() {
    let h = Harness::new(20.0).await;
    let (a, workloads, pod_id) = one_ready(
        &h,
        "quiet",
        json!({"type": "Pod", "image": "img:1", "gpu": {"types": [A100]},
               "spendingCap": {"usdPerHour": "10"}}),
    )
    .await;
    // Now `type: Auto`: what runs (the pod) stays until measured. (The cap holds the pod and
    // two flex workers while both run, at the raised price below: 3.51 + 2 x 2.74 USD/h.)
    h.edit(
        "ml",
        "quiet",
        json!({"type": "Auto", "serverless": {"maxWorkers": 2}, "measurement": {"windowDays": 1}}),
    )
    .await;
    eventually_status(&workloads, "quiet", |s| {
        s.runs_as == Some(WorkloadType::Pod)
    })
    .await;
    h.sim_admin("pod-load", json!({"podId": pod_id, "gpuBusy": 0.2}))
        .await;
    // A day and more of uptime, an hour at a time, each hour sampled by a reconcile.
    let key = h.sim.api_key.clone();
    let sim = &h.sim.sim;
    let counts = move || {
        let key = key.clone();
        sim.with_world(move |w| {
            w.account(&key)
                .map(|a| (a.pods.len(), a.endpoints.len()))
                .unwrap_or_default()
        })
    };
    let mut measured = None;
    let mut priced = None;
    let mut controller = Some(a);
    for hour in 0..27 {
        if hour == 14 {
            // The controller restarts half way: RunPod keeps no history of a pod's GPUs, so
            // the new one starts from the status's figures (else it would need a whole day
            // again, past this loop).
            controller.take().unwrap().stop().await.unwrap();
            controller = Some(h.start("b", Duration::from_secs(1)));
        }
        if hour == 15 {
            // RunPod raises the A100's price; the controller's catalogue (read hourly) still
            // says 1.89, but the pod's bill says what it costs now.
            h.sim_admin("prices", json!({"gpuType": A100, "secure": "3.50"}))
                .await;
        }
        h.sim_admin("clock", json!({"advanceSeconds": 3600})).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (pods, endpoints) = counts();
        assert!(
            pods + endpoints >= 1,
            "the pod went before the endpoint was made"
        );
        if let Some(s) = workloads
            .get("quiet")
            .await
            .ok()
            .and_then(|w| w.status)
            .filter(|s| s.runs_as == Some(WorkloadType::Pod))
        {
            let advice = s
                .conditions
                .iter()
                .find(|c| c.type_ == "CostAdvice")
                .map(|c| c.message.clone());
            if let (Some(u), Some(r)) = (s.utilisation, s.recommendation) {
                measured = Some(u);
                priced = Some((r, advice.unwrap_or_default()));
            }
        }
    }
    let started = Instant::now();
    loop {
        let (pods, endpoints) = counts();
        // Make-before-break: never a moment with neither.
        assert!(
            pods + endpoints >= 1,
            "the pod went before the endpoint was made"
        );
        if (pods, endpoints) == (0, 1) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no move back: {:?}",
            workloads.get("quiet").await.ok().and_then(|w| w.status)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let w = eventually_status(&workloads, "quiet", |s| {
        s.runs_as == Some(WorkloadType::Serverless)
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
    .await;
    assert!(w.status.is_some());
    let utilisation = measured.expect("the pod's measured use, in the status before the move");
    assert_eq!(
        utilisation.measured_from,
        Some(runpod_operator::api::MeasuredFrom::PodGpu)
    );
    // The Pod side at what the pod was billed: part of the window at 1.89 USD/h, part at 3.50.
    let (recommendation, advice) = priced.unwrap();
    let now: f64 = recommendation
        .current_per_month
        .to_string()
        .parse()
        .unwrap();
    assert!(
        now > 1.89 * 720.0 + 1.0 && now < 3.50 * 720.0,
        "{recommendation:?} {advice}"
    );
    assert!(
        advice.contains("the pod is priced from its bill"),
        "{advice}"
    );
    let busy: f64 = utilisation.busy_hours_per_day.parse().unwrap();
    assert!(
        (1.0..=10.0).contains(&busy),
        "about 4.8 busy hours a day: {utilisation:?}"
    );
    assert_eq!(h.creates(), 2, "one pod, then one endpoint");
}

/// One workload `name` in namespace `ml` of an account resynced every second, a controller
/// started on it, and everything Ready: the controller, the workloads' API and the workload's
/// RunPod id.
async fn one_ready(
    h: &Harness,
    name: &str,
    spec: serde_json::Value,
) -> (support::Instance, Api<GpuWorkload>, String) {
    h.account(1).await;
    h.create(json!({
        "apiVersion": "runpod-operator.dev/v1alpha1", "kind": "GpuWorkload",
        "metadata": {"name": name, "namespace": "ml"},
        "spec": spec
    }))
    .await;
    let controller = h.start("a", Duration::from_secs(1));
    eventually(Duration::from_secs(30), "the workload is Ready", || {
        all_ready(h)
    })
    .await;
    let workloads: Api<GpuWorkload> = Api::namespaced(h.client.clone(), "ml");
    let id = workloads
        .get(name)
        .await
        .unwrap()
        .status
        .and_then(|s| s.runpod_id)
        .unwrap();
    (controller, workloads, id)
}

/// The workload once its status satisfies `check`, within 30 s.
async fn eventually_status(
    workloads: &Api<GpuWorkload>,
    name: &str,
    check: impl Fn(&runpod_operator::api::GpuWorkloadStatus) -> bool,
) -> GpuWorkload {
    let started = Instant::now();
    loop {
        if let Ok(w) = workloads.get(name).await
            && w.status.as_ref().is_some_and(&check)
        {
            return w;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name}: the status never got there: {:?}",
            workloads.get(name).await.ok().and_then(|w| w.status)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
