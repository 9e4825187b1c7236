//! The soak test of the wiring: random sequences of what users and clusters do (create, edit,
//! delete workloads, restart the operator, RunPod failing a create after making it, 429s and
//! 503s), each followed by convergence, against `run_until` on the fake API server with the
//! simulator as RunPod. After every sequence RunPod must hold exactly one object per declared
//! workload and nothing else, and the number of creates RunPod accepted must equal the number
//! of workloads created: a create made twice, even if later deleted as a duplicate, fails it.
//!
//! `SOAK_SEQUENCES` (default 200) and `SOAK_SEED` (default 1) change the run; a failure names
//! the seed and the sequence so it can be replayed.

mod common;
mod support;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use common::Rng;
use kube::{Api, ResourceExt, api::DeleteParams};
use runpod_operator::api::GpuWorkload;
use serde_json::{Value, json};
use support::{Harness, Instance, ready, runpod_name};

const NAMESPACE: &str = "soak";
const NAMES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Pod,
    Serverless,
}

fn spec(kind: Kind, version: u32) -> Value {
    match kind {
        Kind::Pod => json!({
            "type": "Pod", "image": format!("img:{version}"),
            "gpu": {"types": ["NVIDIA A100-SXM4-80GB"]}, "spendingCap": {"usdPerHour": "3"}
        }),
        Kind::Serverless => json!({
            "type": "Serverless", "image": "worker:1", "gpu": {"types": ["NVIDIA L40S"]},
            "serverless": {"workerClass": "Flex", "maxWorkers": 1 + version % 3},
            "spendingCap": {"usdPerHour": "10"}
        }),
    }
}

/// What the sequences declared.
#[derive(Default)]
struct Declared {
    workloads: BTreeMap<&'static str, (Kind, u32)>,
    created: usize,
}

#[derive(Default)]
struct Figures {
    sequences: usize,
    operations: usize,
    restarts: usize,
    faults: usize,
    creates: usize,
    slowest: Duration,
}

async fn converged(h: &Harness, declared: &Declared) -> Result<(), String> {
    let api: Api<GpuWorkload> = Api::namespaced(h.client.clone(), NAMESPACE);
    let live = api
        .list(&Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = live.items.iter().map(ResourceExt::name_any).collect();
    let wanted: Vec<String> = declared
        .workloads
        .keys()
        .map(|n| (*n).to_string())
        .collect();
    if names != wanted {
        return Err(format!("workloads {names:?}, declared {wanted:?}"));
    }
    for w in &live.items {
        if !ready(w) {
            return Err(format!("{} not Ready: {:?}", w.name_any(), w.status));
        }
    }
    let objects = h.runpod_objects();
    for w in &live.items {
        let n = objects.get(&runpod_name(w)).copied().unwrap_or(0);
        if n != 1 {
            return Err(format!("{}: {n} RunPod objects", w.name_any()));
        }
    }
    if objects.len() != live.items.len() {
        return Err(format!("RunPod holds {objects:?} for {names:?}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_sequences_leave_exactly_one_runpod_object_per_workload() {
    let sequences: usize = std::env::var("SOAK_SEQUENCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let h = Harness::new(50.0).await;
    h.account(10).await;
    let api: Api<GpuWorkload> = Api::namespaced(h.client.clone(), NAMESPACE);
    let progress = Duration::from_millis(200);
    let mut generation = 0;
    let mut instance: Instance = h.start("soak-0", progress);
    let mut declared = Declared::default();
    let mut figures = Figures::default();
    let started = Instant::now();

    for sequence in 0..sequences {
        let mut log = Vec::new();
        let operations = 1 + rng.below(3);
        for _ in 0..operations {
            let name = NAMES[rng.below(NAMES.len() as u64) as usize];
            match rng.below(10) {
                // Create (or, when it exists, edit).
                0..=3 => match declared.workloads.get(name).copied() {
                    // Deleted in this sequence and still being cleaned up: a create would be
                    // refused (AlreadyExists), as on a real cluster.
                    None if api.get_opt(name).await.unwrap().is_some() => {}
                    None => {
                        let kind = if rng.below(2) == 0 {
                            Kind::Pod
                        } else {
                            Kind::Serverless
                        };
                        h.create(json!({
                            "apiVersion": "runpod-operator.dev/v1alpha1", "kind": "GpuWorkload",
                            "metadata": {"name": name, "namespace": NAMESPACE},
                            "spec": spec(kind, 1)
                        }))
                        .await;
                        declared.workloads.insert(name, (kind, 1));
                        declared.created += 1;
                        log.push(format!("create {name} {kind:?}"));
                    }
                    Some((kind, version)) => {
                        h.edit(NAMESPACE, name, spec(kind, version + 1)).await;
                        declared.workloads.insert(name, (kind, version + 1));
                        log.push(format!("edit {name}"));
                    }
                },
                4..=5 => {
                    if declared.workloads.remove(name).is_some() {
                        api.delete(name, &DeleteParams::default()).await.unwrap();
                        log.push(format!("delete {name}"));
                    }
                }
                6 => {
                    instance.stop().await.unwrap();
                    generation += 1;
                    instance = h.start(&format!("soak-{generation}"), progress);
                    figures.restarts += 1;
                    log.push("restart".to_string());
                }
                _ => {
                    let rules = match rng.below(3) {
                        0 => {
                            json!([{"method": "POST", "path": "/v2/pods", "kind": "afterCreate", "count": 1}])
                        }
                        1 => {
                            json!([{"method": "POST", "path": "/v2/serverless", "kind": "afterCreate", "count": 1}])
                        }
                        _ => {
                            json!([{"method": "GET", "path": "/v2/", "kind": "rateLimit", "count": 2},
                                    {"method": "POST", "path": "/v2/", "kind": "status", "status": 503, "count": 1}])
                        }
                    };
                    log.push(format!("faults {rules}"));
                    h.faults(rules).await;
                    figures.faults += 1;
                }
            }
            figures.operations += 1;
        }
        let waited = Instant::now();
        let mut last = Err(String::new());
        while waited.elapsed() < Duration::from_secs(30) {
            last = converged(&h, &declared).await;
            if last.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Err(e) = last {
            panic!(
                "seed {seed}, sequence {sequence} ({}) did not converge in 30 s: {e}",
                log.join("; ")
            );
        }
        figures.slowest = figures.slowest.max(waited.elapsed());
        let creates = h.creates();
        assert_eq!(
            creates,
            declared.created,
            "seed {seed}, sequence {sequence} ({}): RunPod made {creates} objects for {} workloads created: {:?}",
            log.join("; "),
            declared.created,
            h.sim
                .sim
                .requests()
                .iter()
                .filter(|r| r.method == "POST" && r.path.starts_with("/v2/") && r.status != 429)
                .map(|r| format!("{} {}", r.path, r.status))
                .collect::<Vec<_>>()
        );
        figures.creates = creates;
        figures.sequences += 1;
    }
    instance.stop().await.unwrap();
    println!(
        "soak: seed {seed}, {} sequences, {} operations ({} restarts, {} fault sets), {} creates \
         for {} workloads created, 0 duplicates, 0 leaks, 0 lost; slowest convergence {:?}; {:?} in all",
        figures.sequences,
        figures.operations,
        figures.restarts,
        figures.faults,
        figures.creates,
        declared.created,
        figures.slowest,
        started.elapsed()
    );
}
