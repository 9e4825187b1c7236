//! How fast the simulator lists a big account: 10,000 pods, `GET /v2/pods` over real HTTP on
//! loopback, as the operator's inventory refresh calls it, with the simulator's own check of
//! every response against the spec on and off. Prints its figures; asserts nothing about
//! time. Run with `cargo bench --bench sim_list`.

use std::time::{Duration, Instant};

use runpod_operator::{
    sim::{self, SimConfig},
    tls,
};
use rust_decimal::Decimal;
use serde_json::json;

const PODS: usize = 10_000;
const CALLS: usize = 30;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    for check_responses in [true, false] {
        run(check_responses).await;
    }
}

async fn run(check_responses: bool) {
    println!("-- responses checked against the spec: {check_responses}");
    let config = SimConfig {
        balance: Decimal::from(10_000_000),
        requests_per_minute: 1_000_000,
        check_responses,
        ..SimConfig::default()
    };
    let handle = sim::start(config).await.expect("the simulator starts");
    let key = handle.api_key.clone();

    let started = Instant::now();
    handle.sim.with_world(|world| {
        world.accounts.get_mut(&key).unwrap().spend_limit = Decimal::from(1_000_000);
        let body = json!({"name": "bench", "image": "img", "gpu": {"id": "NVIDIA GeForce RTX 4090", "count": 1},
                          "ports": ["8888/http"], "mounts": {"persistent": {"size": 20, "path": "/workspace"}}});
        let first = world.create_pod(&key, &body).expect("the first pod is created through the rules");
        let template = world.accounts[&key].pods[&first].clone();
        // The rest are copies: creating 10,000 through the credit rule would measure that rule.
        for i in 1..PODS {
            let mut pod = template.clone();
            pod.id = world.ids.id(14);
            pod.name = format!("bench-{i}");
            world.accounts.get_mut(&key).unwrap().pods.insert(pod.id.clone(), pod);
        }
    });
    println!("populated {PODS} pods in {:?}", started.elapsed());
    let http = tls::http_client_builder().build().unwrap();
    let url = format!("{}/v2/pods", handle.api_url);
    let mut times = Vec::with_capacity(CALLS);
    let mut bytes = 0;
    for _ in 0..CALLS {
        let t = Instant::now();
        let body = http
            .get(&url)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        times.push(t.elapsed());
        bytes = body.len();
    }
    let check: serde_json::Value = serde_json::from_slice(
        &http
            .get(&url)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        check["pods"].as_array().map(Vec::len),
        Some(PODS),
        "the list holds every pod"
    );
    times.sort();
    println!(
        "GET /v2/pods with {PODS} pods ({:.1} MB): p50 {:?}, p95 {:?}, max {:?} over {CALLS} calls",
        bytes as f64 / 1e6,
        percentile(&times, 0.5),
        percentile(&times, 0.95),
        times[times.len() - 1],
    );
    println!("spec violations seen: {}", handle.sim.violations().len());
}
