//! The crash suite: passes of `apply` (and of a workload's deletion) interrupted at random
//! points, as a kill or a cancelled future would, with edits, new workloads and deletions
//! between them. After each round the operator runs once more without interruption and the
//! census of the simulator must show, for every declared workload, exactly one RunPod object
//! with its marker, one network volume with the declared volume's name, and nothing for the
//! deleted ones: 0 duplicates, 0 leaks, 0 missing.
//!
//! An interruption either kills the process (the next pass starts with an empty inventory,
//! nothing remembered) or drops the pass's future in a process that goes on (the inventory,
//! with its create journal, is kept). `CRASH_ROUNDS` (default 150, 3 to 5 interruptions a
//! round) and `CRASH_SEED` (default 7) change the run; a failure names the seed and the round.

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::Rng;
use k8s_openapi::jiff::Timestamp;
use runpod_operator::{
    api::GpuWorkload,
    cli::manifests_from_texts,
    engine::{
        identity::{OWNER_ENV, Owner},
        plan::plan_delete,
        prices::PriceCatalogue,
    },
    reconcile::{Workspace, apply_pass, executor::execute, inventory::Inventory},
    runpod::{Client, ClientConfig},
    sim::{self, SimConfig, SimHandle},
};
use rust_decimal::Decimal;
use secrecy::SecretString;

fn client(sim: &SimHandle) -> Client {
    Client::new(ClientConfig {
        api_url: sim.api_url.clone(),
        graphql_url: sim.graphql_url.clone(),
        serverless_url: sim.serverless_url.clone(),
        requests_per_minute: 1_000_000,
        min_retry_delay: Duration::from_millis(1),
        max_retry_delay: Duration::from_millis(5),
        ..ClientConfig::new(SecretString::from(sim.api_key.clone()))
    })
    .unwrap()
}

fn manifest(name: &str, serverless: bool, version: u32) -> String {
    let spec = if serverless {
        format!(
            "type: Serverless\n  image: worker:{version}\n  gpu: {{types: [\"NVIDIA L40S\"]}}\n  serverless: {{workerClass: Flex, maxWorkers: {}}}\n  spendingCap: {{usdPerHour: \"10\"}}",
            1 + version % 3
        )
    } else {
        format!(
            "type: Pod\n  image: img:{version}\n  gpu: {{types: [\"NVIDIA A100-SXM4-80GB\"]}}\n  spendingCap: {{usdPerHour: \"3\"}}"
        )
    };
    format!(
        "apiVersion: runpod-operator.dev/v1alpha1\nkind: GpuWorkload\nmetadata: {{name: {name}, namespace: crash}}\nspec:\n  {spec}\n"
    )
}

const VOLUME: &str = "apiVersion: runpod-operator.dev/v1alpha1\nkind: NetworkVolume\nmetadata: {name: data, namespace: crash}\nspec: {sizeGb: 20, dataCenter: EU-RO-1}\n";

/// The declared world: name -> (serverless, version).
type Declared = BTreeMap<String, (bool, u32)>;

fn workspace(declared: &Declared) -> Workspace {
    let mut text = String::from(VOLUME);
    for (name, (serverless, version)) in declared {
        text.push_str("---\n");
        text.push_str(&manifest(name, *serverless, *version));
    }
    manifests_from_texts([("crash.yaml", text.as_str())]).unwrap()
}

fn owner(w: &GpuWorkload) -> Owner {
    use kube::ResourceExt;
    Owner::of(w.namespace().as_deref(), &w.name_any(), w.uid().as_deref())
}

/// One pass of the operator: apply every declared workload, delete what was removed.
async fn pass(ws: &Workspace, removed: &[GpuWorkload], inventory: &Inventory) {
    let now = Timestamp::from_second(1_767_225_600).unwrap();
    // Errors are part of the game (an interrupted call of a previous process, a refusal):
    // the census after the round is what counts.
    let _ = apply_pass(ws, inventory, &PriceCatalogue::builtin(), now).await;
    for w in removed {
        if inventory.refresh().await.is_err() {
            return;
        }
        let snapshot = inventory.snapshot();
        for step in plan_delete(&owner(w), None, snapshot.observed(), false) {
            let _ = execute(&step, inventory).await;
        }
    }
}

/// What the simulator holds, by owner marker (pods and endpoints) and volume name.
async fn census(sim: &SimHandle) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let state: serde_json::Value = runpod_operator::tls::http_client_builder()
        .build()
        .unwrap()
        .get(format!("{}/_sim/state", sim.api_url))
        .bearer_auth(&sim.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut objects: BTreeMap<String, usize> = BTreeMap::new();
    for list in ["pods", "endpoints"] {
        for item in state[list].as_array().into_iter().flatten() {
            let marker = item["env"][OWNER_ENV].as_str().unwrap_or("(no marker)");
            *objects.entry(marker.to_string()).or_default() += 1;
        }
    }
    let mut volumes: BTreeMap<String, usize> = BTreeMap::new();
    for item in state["networkVolumes"].as_array().into_iter().flatten() {
        *volumes
            .entry(item["name"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    (objects, volumes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_interruptions_leave_exactly_one_object_per_workload() {
    let rounds: u64 = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let sim = sim::start(SimConfig {
        balance: Decimal::from(100_000),
        requests_per_minute: 1_000_000,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let names = ["a", "b", "c", "d", "e", "f"];
    let mut declared: Declared = BTreeMap::new();
    let mut removed: Vec<GpuWorkload> = Vec::new();
    let mut inventory = Inventory::new(client(&sim), Duration::ZERO);
    let (mut interruptions, mut kills, mut drops) = (0u64, 0u64, 0u64);

    for round in 0..rounds {
        // An edit: add, change or delete a workload.
        let name = names[rng.below(names.len() as u64) as usize].to_string();
        match (declared.get(&name).copied(), rng.below(3)) {
            (None, _) => {
                declared.insert(name, (rng.below(2) == 0, 1));
            }
            (Some((serverless, version)), 0 | 1) => {
                declared.insert(name, (serverless, version + 1));
            }
            (Some(_), _) => {
                let ws = workspace(&declared);
                let w = ws
                    .workloads
                    .iter()
                    .find(|w| w.metadata.name.as_deref() == Some(name.as_str()))
                    .unwrap()
                    .clone();
                declared.remove(&name);
                removed.push(w);
            }
        }
        let ws = workspace(&declared);
        // Interrupted passes: each is cut at a random point of its calls. A pass that finishes
        // before its cut is not counted; the round goes on until it has its interruptions.
        let wanted = 3 + rng.below(3);
        let mut cut_here = 0;
        for _ in 0..40 {
            if cut_here == wanted {
                break;
            }
            let cut = Duration::from_micros(rng.below(8_000));
            let finished = tokio::time::timeout(cut, pass(&ws, &removed, &inventory))
                .await
                .is_ok();
            if finished {
                continue;
            }
            cut_here += 1;
            interruptions += 1;
            if rng.below(2) == 0 {
                kills += 1;
                inventory = Inventory::new(client(&sim), Duration::ZERO);
            } else {
                drops += 1;
            }
        }
        // The operator runs on, uninterrupted, until it writes nothing.
        for _ in 0..8 {
            let before = sim.sim.calls("POST", "/v2/")
                + sim.sim.calls("PATCH", "/v2/")
                + sim.sim.calls("DELETE", "/v2/");
            pass(&ws, &removed, &inventory).await;
            let after = sim.sim.calls("POST", "/v2/")
                + sim.sim.calls("PATCH", "/v2/")
                + sim.sim.calls("DELETE", "/v2/");
            if after == before {
                break;
            }
            sim.sim.advance(30);
        }

        // The census.
        let (objects, volumes) = census(&sim).await;
        let mut wanted: BTreeMap<String, usize> = BTreeMap::new();
        for w in &ws.workloads {
            wanted.insert(owner(w).uid, 1);
        }
        let context = format!("seed {seed}, round {round}");
        for (marker, count) in &objects {
            match wanted.get(marker) {
                Some(_) if *count > 1 => {
                    panic!("{context}: {count} objects for {marker} (a duplicate)")
                }
                Some(_) => {}
                None => {
                    panic!("{context}: {count} object(s) for {marker}, declared by nobody (a leak)")
                }
            }
        }
        for marker in wanted.keys() {
            assert!(
                objects.contains_key(marker),
                "{context}: nothing for {marker} (missing)"
            );
        }
        let volume_name = ws.volumes[0].metadata.name.clone().unwrap();
        let volume_owner = Owner::of(Some("crash"), &volume_name, None);
        assert_eq!(
            volumes.get(&volume_owner.runpod_name()),
            Some(&1),
            "{context}: volumes {volumes:?}"
        );
        assert_eq!(volumes.len(), 1, "{context}: volumes {volumes:?}");
        // Their objects are gone (the census says so): nothing more to delete.
        removed.clear();
    }
    let creates = sim.sim.calls("POST", "/v2/pods") + sim.sim.calls("POST", "/v2/serverless");
    eprintln!(
        "crash suite: seed {seed}, {rounds} rounds, {interruptions} interruptions ({kills} kills, {drops} dropped futures), {creates} creates; census after every round: 0 duplicates, 0 leaks, 0 missing"
    );
    assert!(
        interruptions >= 500 || rounds < 150,
        "only {interruptions} interruptions in {rounds} rounds"
    );
}
