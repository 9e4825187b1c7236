//! The scale benchmark: 1,000 and 10,000 workloads in one RunPod account, as a user with that
//! many would run the operator. Every figure of the scale table, in one run:
//!
//! - the engine: planning one workload against a converged account;
//! - the manifest reader: parse + validation per workload;
//! - the controller: one GpuWorkload reconcile with nothing to write (CPU and bytes
//!   allocated), a whole resync of every workload (CPU, Kubernetes and RunPod writes), and the
//!   memory its stores, totals and inventory hold — with kube's real `Client` against the
//!   stateful fake API server of the tests, and the simulator as RunPod;
//! - the CLI, as a user runs it (the release binary in a child process): steady `plan` and
//!   `apply` wall time, RunPod requests per pass, max RSS;
//! - the simulator: one create with the account full, and a list of that many endpoints.
//!
//! It prints figures and asserts only that each set-up is what it claims (a converged account,
//! no write in a steady pass), never a time. `cargo bench --bench scale`; `SCALE_SIZES=1000`
//! runs one size (CI runs that); `SCALE_PARTS=sim` runs only the simulator's part (also
//! `engine`, `controller`, `cli`, comma-separated). `SCALE_SERVE=1` stops at the CLI's set-up and keeps the
//! simulator and the manifests up, for profiling the CLI by hand. Times include everything in this process; the simulator and
//! the fake API server answer from the same process on loopback, so the controller's CPU
//! figures are measured over spans in which neither is called.

#[path = "../tests/support/fake_kube.rs"]
mod fake_kube;

use std::{
    alloc::{GlobalAlloc, Layout, System},
    collections::BTreeMap,
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use k8s_openapi::{ByteString, api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api, ResourceExt,
    api::{ListParams, PostParams},
    runtime::{reflector, watcher},
};
use runpod_operator::{
    api::{GpuWorkload, NetworkVolume, RunPodAccount, validate::parse_manifests},
    controller::{Context, metrics::Metrics, totals::Totals, workload},
    engine::{
        identity::{OWNER_ENV, Owner},
        plan::Action,
        prices::PriceCatalogue,
    },
    reconcile::{AccountView, Workspace, inventory::Inventory, plan_workspace},
    runpod::{Client, ClientConfig},
    sim::{self, SimConfig, SimHandle},
};
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{Value, json};

// ---- measuring -----------------------------------------------------------------------------

struct Counting;

static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is passed to the system allocator unchanged; the counters only add.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as u64, Relaxed);
        LIVE.fetch_add(layout.size() as i64, Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as u64, Relaxed);
        LIVE.fetch_add(layout.size() as i64, Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size as u64, Relaxed);
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// CPU time of the whole process.
fn cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// A process's peak resident set (`VmHWM`), KiB; 0 once it has exited.
fn high_water_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn allocated() -> u64 {
    ALLOCATED.load(Relaxed)
}

fn live() -> i64 {
    LIVE.load(Relaxed)
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / 1024.0 / 1024.0)
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// One row of the final table: a figure at each size.
#[derive(Default)]
struct Table {
    rows: Vec<(String, String, BTreeMap<usize, String>)>,
}

impl Table {
    fn put(&mut self, figure: &str, goal: &str, size: usize, value: String) {
        println!("  {figure}: {value}");
        match self.rows.iter_mut().find(|(f, _, _)| f == figure) {
            Some((_, _, values)) => {
                values.insert(size, value);
            }
            None => self.rows.push((
                figure.to_string(),
                goal.to_string(),
                BTreeMap::from([(size, value)]),
            )),
        }
    }

    fn print(&self, sizes: &[usize]) {
        let mut header = "| figure |".to_string();
        for size in sizes {
            header.push_str(&format!(" {size} |"));
        }
        header.push_str(" goal at 10,000 |");
        println!("\n{header}");
        println!("|---|{}---|", "---|".repeat(sizes.len()));
        for (figure, goal, values) in &self.rows {
            let mut line = format!("| {figure} |");
            for size in sizes {
                line.push_str(&format!(
                    " {} |",
                    values.get(size).map_or("-", String::as_str)
                ));
            }
            line.push_str(&format!(" {goal} |"));
            println!("{line}");
        }
    }
}

// ---- the account ---------------------------------------------------------------------------

const NAMESPACE: &str = "ml";
const GPU: &str = "NVIDIA GeForce RTX 4090";

fn workload_json(i: usize, uid: Option<&str>) -> Value {
    let mut metadata = json!({"name": format!("w-{i:05}"), "namespace": NAMESPACE});
    if let Some(uid) = uid {
        metadata["uid"] = json!(uid);
        metadata["finalizers"] = json!(["runpod-operator.dev/cleanup"]);
        metadata["generation"] = json!(1);
    }
    json!({
        "apiVersion": "runpod-operator.dev/v1alpha1",
        "kind": "GpuWorkload",
        "metadata": metadata,
        "spec": {
            "type": "Pod",
            "image": "ghcr.io/acme/trainer:1",
            "gpu": {"types": [GPU], "count": 1},
            "spendingCap": {"usdPerHour": "2"},
        }
    })
}

fn account_spec(handle: &SimHandle) -> Value {
    json!({
        "apiKeySecretRef": {"namespace": "runpod-operator", "name": "runpod-api-key", "key": "apiKey"},
        "apiUrl": handle.api_url,
        "graphqlUrl": handle.graphql_url,
        "serverlessUrl": handle.serverless_url,
        "spendingCapUsdPerHour": "9999999",
        "requestsPerMinute": 1_000_000,
        "resyncIntervalSeconds": 86400,
    })
}

/// A simulator with room for everything; `speed` 0 freezes its clock (nothing changes between
/// two passes, as in a steady account), 1 runs it in real time as `runpod-operator sim` does.
async fn start_sim(speed: f64) -> SimHandle {
    let handle = sim::start(SimConfig {
        balance: Decimal::from(10_000_000),
        requests_per_minute: 1_000_000,
        check_responses: false,
        speed,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let key = handle.api_key.clone();
    handle.sim.with_world(|world| {
        world.accounts.get_mut(&key).unwrap().spend_limit = Decimal::from(1_000_000);
    });
    handle
}

/// RunPod holds a running pod for every workload, exactly as the operator would have made
/// it: the first through the simulator's own create, the rest copies of it with their own
/// id, name and owner marker (10,000 creates through the money rules would measure those).
async fn converge(handle: &SimHandle, workloads: &[GpuWorkload]) {
    let ws = Workspace {
        account: serde_json::from_value(json!({
            "apiKeySecretRef": {"namespace": "x", "name": "y"},
            "spendingCapUsdPerHour": "9999999",
        }))
        .unwrap(),
        workloads: vec![workloads[0].clone()],
        volumes: Vec::new(),
        secrets: BTreeMap::new(),
        auto: Default::default(),
    };
    let empty = Inventory::new(client(handle), Duration::ZERO);
    empty.refresh().await.unwrap();
    let items = plan_workspace(
        &ws,
        &empty.snapshot(),
        &PriceCatalogue::builtin(),
        Timestamp::now(),
    );
    let Some(Action::CreatePod { request, .. }) = items[0].actions.first() else {
        panic!(
            "a new workload is planned as a create: {:?}",
            items[0].verdicts
        );
    };
    let body = serde_json::to_value(request).unwrap();
    let key = handle.api_key.clone();
    let first = handle
        .sim
        .with_world(|world| world.create_pod(&key, &body))
        .expect("the simulator creates the first pod");
    handle.sim.advance(900);
    handle.sim.with_world(|world| {
        let account = world.accounts.get_mut(&key).unwrap();
        let template = account.pods.remove(&first).unwrap();
        let mut ids = Vec::with_capacity(workloads.len());
        for _ in workloads {
            ids.push(world.ids.id(14));
        }
        let account = world.accounts.get_mut(&key).unwrap();
        for (w, id) in workloads.iter().zip(ids) {
            let owner = Owner::of(w.namespace().as_deref(), &w.name_any(), w.uid().as_deref());
            let mut pod = template.clone();
            pod.id = id;
            pod.name = owner.runpod_name();
            pod.container
                .env
                .insert(OWNER_ENV.to_string(), owner.uid.clone());
            account.pods.insert(pod.id.clone(), pod);
        }
    });
}

fn client(handle: &SimHandle) -> Client {
    Client::new(ClientConfig {
        api_url: handle.api_url.clone(),
        graphql_url: handle.graphql_url.clone(),
        serverless_url: handle.serverless_url.clone(),
        requests_per_minute: 1_000_000,
        ..ClientConfig::new(SecretString::from(handle.api_key.clone()))
    })
    .unwrap()
}

fn runpod_writes(handle: &SimHandle) -> usize {
    ["POST", "PATCH", "DELETE"]
        .iter()
        .map(|m| handle.sim.calls(m, "/v2/"))
        .sum()
}

// ---- the sections --------------------------------------------------------------------------

/// The engine and the manifest reader.
async fn engine(n: usize, table: &mut Table) {
    let docs: Vec<Value> = (0..n).map(|i| workload_json(i, None)).collect();
    let text = docs
        .iter()
        .map(|d| serde_norway::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n");
    // The first document pays for compiling the CRDs' schemas and rules, once per process.
    let started = Instant::now();
    parse_manifests(&serde_norway::to_string(&docs[0]).unwrap(), "first.yaml").unwrap();
    table.put(
        "manifest reader: the schemas compiled, once per process",
        "-",
        n,
        ms(started.elapsed()),
    );
    // Five reads of the same text, the median reported: one read on this 2-core VM varies by
    // up to 30% with what else the machine does.
    let mut reads = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let parsed = parse_manifests(&text, "bench.yaml").expect("the manifests are valid");
        reads.push(started.elapsed());
        assert_eq!(parsed.len(), n);
        drop(parsed);
    }
    reads.sort();
    eprintln!(
        "  manifest parse at {n}: per workload {:?}",
        reads.iter().map(|r| us(*r / n as u32)).collect::<Vec<_>>()
    );
    let parse = reads[2];
    table.put(
        "manifest parse + validation, per workload",
        "≤ 30 µs",
        n,
        us(parse / n as u32),
    );

    let workloads: Vec<GpuWorkload> = docs
        .iter()
        .map(|d| serde_json::from_value(d.clone()).unwrap())
        .collect();
    let handle = start_sim(0.0).await;
    converge(&handle, &workloads).await;
    let inventory = Inventory::new(client(&handle), Duration::ZERO);
    inventory.refresh().await.unwrap();
    let snapshot = inventory.snapshot();
    let ws = Workspace {
        account: serde_json::from_value(json!({
            "apiKeySecretRef": {"namespace": "x", "name": "y"},
            "spendingCapUsdPerHour": "9999999",
        }))
        .unwrap(),
        workloads,
        volumes: Vec::new(),
        secrets: BTreeMap::new(),
        auto: Default::default(),
    };
    let prices = PriceCatalogue::builtin();
    let view = AccountView::new(&ws, &snapshot, &prices, Timestamp::now());
    let mut converged = 0;
    let started = Instant::now();
    for w in &ws.workloads {
        let item = view.plan_workload(w, None);
        if item.actions.is_empty() && item.ready() {
            converged += 1;
        }
    }
    let plan = started.elapsed();
    assert_eq!(converged, n, "every workload is converged");
    table.put(
        "planning one workload against a converged account",
        "≤ 20 µs, flat",
        n,
        us(plan / n as u32),
    );
}

/// The controller: one reconcile, a whole resync, the memory it holds.
async fn controller(n: usize, table: &mut Table) {
    let handle = start_sim(0.0).await;
    let kube = fake_kube::FakeKube::start().await;
    let client = kube.client();
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "runpod-api-key", "namespace": "runpod-operator"},
    }))
    .unwrap();
    let secret = Secret {
        data: Some(BTreeMap::from([(
            "apiKey".to_string(),
            ByteString(handle.api_key.clone().into_bytes()),
        )])),
        ..secret
    };
    Api::<Secret>::namespaced(client.clone(), "runpod-operator")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let account: RunPodAccount = serde_json::from_value(json!({
        "apiVersion": "runpod-operator.dev/v1alpha1", "kind": "RunPodAccount",
        "metadata": {"name": "default"},
        "spec": account_spec(&handle),
    }))
    .unwrap();
    let account = Api::<RunPodAccount>::all(client.clone())
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let api = Api::<GpuWorkload>::namespaced(client.clone(), NAMESPACE);
    let mut created = Vec::with_capacity(n);
    for i in 0..n {
        let mut w: GpuWorkload = serde_json::from_value(workload_json(i, Some("-"))).unwrap();
        w.metadata.uid = None;
        created.push(api.create(&PostParams::default(), &w).await.unwrap());
    }
    converge(&handle, &created).await;

    // The stores and totals as the watches fill them.
    let (store, mut writer) = reflector::store::<GpuWorkload>();
    let (volumes, _volume_writer) = reflector::store::<NetworkVolume>();
    let (accounts, mut account_writer) = reflector::store::<RunPodAccount>();
    account_writer.apply_watcher_event(&watcher::Event::Apply(account));
    let totals = Arc::new(Totals::default());
    totals.feed();
    let feed = |writer: &mut reflector::store::Writer<GpuWorkload>, list: Vec<GpuWorkload>| {
        for event in std::iter::once(watcher::Event::Init)
            .chain(list.into_iter().map(watcher::Event::InitApply))
            .chain(std::iter::once(watcher::Event::InitDone))
        {
            writer.apply_watcher_event(&event);
            totals.workload_event(&event);
        }
    };
    feed(&mut writer, created);
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            store.clone(),
            volumes,
            accounts,
            Arc::new(Metrics::default()),
        )
        .with_totals(totals.clone()),
    );

    // The first resync: the inventory's first refresh, and a status for every workload.
    for w in store.state() {
        workload::reconcile(w, ctx.clone()).await.unwrap();
    }
    let list = api.list(&ListParams::default()).await.unwrap().items;
    let ready = list
        .iter()
        .filter(|w| {
            w.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        })
        .count();
    assert_eq!(ready, n, "every workload is Ready after the first resync");
    feed(&mut writer, list);

    // The steady resync, measured.
    let kube_writes = || {
        ["POST", "PUT", "PATCH", "DELETE"]
            .iter()
            .map(|m| kube.requests(m))
            .sum::<u64>()
    };
    let (kube_before, runpod_before) = (kube_writes(), runpod_writes(&handle));
    let runpod_reads_before = handle.sim.calls("GET", "/v2/");
    let workloads = store.state();
    let (cpu0, alloc0, wall0) = (cpu(), allocated(), Instant::now());
    for w in workloads {
        workload::reconcile(w, ctx.clone()).await.unwrap();
    }
    let (resync_cpu, resync_alloc, resync_wall) =
        (cpu() - cpu0, allocated() - alloc0, wall0.elapsed());
    let kube_written = kube_writes() - kube_before;
    let runpod_written = runpod_writes(&handle) - runpod_before;
    let runpod_read = handle.sim.calls("GET", "/v2/") - runpod_reads_before;

    // One account refresh, apart: three lists and the account read of N objects.
    let runtime = ctx
        .runtimes
        .get(&ctx.client, &ctx.account("default").unwrap())
        .await
        .unwrap();
    let cpu1 = cpu();
    runtime.inventory.refresh().await.unwrap();
    let refresh_cpu = cpu() - cpu1;

    table.put(
        "controller: one GpuWorkload reconcile, no write (CPU)",
        "≤ 0.2 ms",
        n,
        ms(resync_cpu / n as u32),
    );
    table.put(
        "controller: one GpuWorkload reconcile, no write (allocated)",
        "≤ 100 KB",
        n,
        format!("{:.1} KB", resync_alloc as f64 / n as f64 / 1000.0),
    );
    table.put(
        "controller: resync of every workload (CPU, wall)",
        "≤ 2 CPU-s",
        n,
        format!(
            "{:.2} CPU-s, {:.2} s wall",
            resync_cpu.as_secs_f64(),
            resync_wall.as_secs_f64()
        ),
    );
    table.put(
        "controller: the account refresh of a resync (CPU, incl. the simulator answering)",
        "-",
        n,
        ms(refresh_cpu),
    );
    table.put(
        "controller: steady resync writes (Kubernetes / RunPod), RunPod reads",
        "0 / 0",
        n,
        format!("{kube_written} / {runpod_written}, {runpod_read} reads"),
    );
    assert_eq!(
        (kube_written, runpod_written),
        (0, 0),
        "a steady resync writes nothing to Kubernetes or RunPod"
    );

    // What the controller holds for the account: freed when its state is dropped.
    let before = live();
    drop((ctx, runtime, writer, store, totals));
    table.put(
        "controller: memory its state holds (stores, totals, inventory)",
        "-",
        n,
        mib((before - live()) as f64),
    );
}

/// The CLI as a user runs it: the release binary against the simulator.
async fn cli(n: usize, table: &mut Table, dir: &Path) {
    let handle = start_sim(0.0).await;
    let docs: Vec<Value> = (0..n).map(|i| workload_json(i, None)).collect();
    let workloads: Vec<GpuWorkload> = docs
        .iter()
        .map(|d| serde_json::from_value(d.clone()).unwrap())
        .collect();
    converge(&handle, &workloads).await;
    let folder = dir.join(format!("cli-{n}"));
    std::fs::create_dir_all(&folder).unwrap();
    let mut account = json!({
        "apiVersion": "runpod-operator.dev/v1alpha1", "kind": "RunPodAccount",
        "metadata": {"name": "default"},
        "spec": account_spec(&handle),
    });
    account["spec"]
        .as_object_mut()
        .unwrap()
        .retain(|k, _| !k.ends_with("Url"));
    let mut text = serde_norway::to_string(&account).unwrap();
    for d in &docs {
        text.push_str("---\n");
        text.push_str(&serde_norway::to_string(d).unwrap());
    }
    std::fs::write(folder.join("all.yaml"), &text).unwrap();
    // The manifests are valid, as a check of the set-up.
    assert_eq!(parse_manifests(&text, "all.yaml").unwrap().len(), n + 1);
    if std::env::var_os("SCALE_SERVE").is_some() {
        // For profiling the CLI by hand: the account stays up until interrupted.
        println!(
            "manifests in {}; the simulator:\n{}",
            folder.display(),
            handle.env_lines()
        );
        std::future::pending::<()>().await;
    }

    // The CLI keeps RunPod's price catalogue between commands for the account's refresh
    // interval: the first command of the hour reads it (not counted), steady ones do not.
    // Beside the manifests' folder, not in it (`-f` reads every file of the folder).
    let cache = folder.with_extension("price-cache");
    for (command, first) in [("plan", true), ("plan", false), ("apply", false)] {
        let (gets, writes) = (handle.sim.calls("GET", "/v2/"), runpod_writes(&handle));
        let catalogues = handle.sim.calls("GET", "/v2/catalog/");
        let graphql = handle.sim.calls("POST", "/graphql");
        let started = Instant::now();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_runpod-operator"));
        cmd.arg(command).arg("-f").arg(&folder);
        if command == "apply" {
            cmd.arg("--yes");
        }
        let child = cmd
            .env("RUNPOD_API_URL", &handle.api_url)
            .env("RUNPOD_GRAPHQL_URL", &handle.graphql_url)
            .env("RUNPOD_SERVERLESS_URL", &handle.serverless_url)
            .env("RUNPOD_API_KEY", &handle.api_key)
            .env("RUNPOD_OPERATOR_CACHE_DIR", &cache)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(folder.with_extension("stderr")).unwrap())
            .spawn()
            .unwrap();
        // The child's own high-water mark, read while it runs (its rusage would count the
        // parent it was spawned from).
        let mut child = child;
        let pid = child.id();
        let mut rss_kib = 0u64;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            rss_kib = rss_kib.max(high_water_kib(pid));
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let code = status.code().unwrap_or(-1);
        let wall = started.elapsed();
        // The catalogue counted apart from the lists.
        let catalogue = handle.sim.calls("GET", "/v2/catalog/");
        let lists = handle.sim.calls("GET", "/v2/") - gets - (catalogue - catalogues);
        let account_reads = handle.sim.calls("POST", "/graphql") - graphql;
        let written = runpod_writes(&handle) - writes;
        assert_eq!(
            code,
            0,
            "`{command}` over a converged account exits 0; it said:\n{}",
            std::fs::read_to_string(folder.with_extension("stderr")).unwrap_or_default()
        );
        if first {
            assert_eq!(
                catalogue - catalogues,
                1,
                "the first command reads the catalogue"
            );
            continue;
        }
        table.put(
            &format!("CLI steady `{command}`: wall, max RSS"),
            if command == "plan" {
                "≤ 1 s"
            } else {
                "≤ 64 MiB"
            },
            n,
            format!(
                "{:.2} s, {}",
                wall.as_secs_f64(),
                mib(rss_kib as f64 * 1024.0)
            ),
        );
        table.put(
            &format!(
                "CLI steady `{command}`: RunPod requests (lists + account reads, writes; price catalogue)"
            ),
            "3 + 1, 0; 0",
            n,
            format!(
                "{lists} + {account_reads}, {written}; {}",
                catalogue - catalogues
            ),
        );
        assert_eq!(
            (lists, account_reads, written, catalogue - catalogues),
            (3, 1, 0, 0),
            "a steady `{command}` reads three lists and the account, and writes nothing"
        );
    }
}

/// The simulator at this size, its clock running as `runpod-operator sim` runs it: one create,
/// and a list of as many endpoints.
async fn simulator(n: usize, table: &mut Table) {
    let handle = start_sim(1.0).await;
    let workloads: Vec<GpuWorkload> = (0..n)
        .map(|i| serde_json::from_value(workload_json(i, None)).unwrap())
        .collect();
    converge(&handle, &workloads).await;
    let http = runpod_operator::tls::http_client_builder().build().unwrap();
    let body = json!({"name": "bench-extra", "image": "img", "gpu": {"id": GPU, "count": 1}});
    let mut times = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let reply = http
            .post(format!("{}/v2/pods", handle.api_url))
            .bearer_auth(&handle.api_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        times.push(started.elapsed());
        assert!(
            reply.status().is_success(),
            "{}",
            reply.text().await.unwrap()
        );
    }
    table.put(
        "simulator: one POST /v2/pods with the account full (median)",
        "≤ 2 ms",
        n,
        ms(median(times)),
    );

    // As many endpoints: the first through the simulator's create, the rest copies.
    let key = handle.api_key.clone();
    let endpoint = json!({"name": "bench-ep", "image": "img", "gpu": {"pools": ["AMPERE_80"], "count": 1},
                          "workers": {"max": 1}});
    let first = handle
        .sim
        .with_world(|world| world.create_endpoint(&key, &endpoint))
        .expect("the simulator creates an endpoint");
    handle.sim.with_world(|world| {
        let template = world.accounts[&key].endpoints[&first].clone();
        for i in 1..n {
            let mut e = template.clone();
            e.id = world.ids.id(14);
            e.name = format!("bench-ep-{i}");
            world
                .accounts
                .get_mut(&key)
                .unwrap()
                .endpoints
                .insert(e.id.clone(), e);
        }
    });
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..10 {
        let started = Instant::now();
        let body = http
            .get(format!("{}/v2/serverless", handle.api_url))
            .bearer_auth(&handle.api_key)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        // The simulator's answer, up to its last byte; what the client makes of it is the
        // client's cost, measured apart from this.
        times.push(started.elapsed());
        let listed: Value = serde_json::from_slice(&body).unwrap();
        count = listed["endpoints"].as_array().map_or(0, Vec::len);
    }
    assert_eq!(count, n);
    table.put(
        "simulator: GET /v2/serverless listing that many endpoints, to the last byte (median)",
        "≤ 50 ms",
        n,
        ms(median(times)),
    );
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::var("SCALE_SIZES")
        .unwrap_or_else(|_| "1000,10000".to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let dir = std::env::temp_dir().join(format!("runpod-operator-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut table = Table::default();
    // `SCALE_PARTS=sim` (or `engine,controller,cli,sim`) runs only those parts.
    let parts = std::env::var("SCALE_PARTS").unwrap_or_else(|_| "engine,controller,cli,sim".into());
    let part = |name: &str| parts.split(',').any(|p| p.trim() == name);
    for &n in &sizes {
        println!("-- {n} workloads");
        if std::env::var_os("SCALE_SERVE").is_none() {
            if part("engine") {
                engine(n, &mut table).await;
            }
            if part("controller") {
                controller(n, &mut table).await;
            }
        }
        if part("cli") {
            cli(n, &mut table, &dir).await;
        }
        if part("sim") {
            simulator(n, &mut table).await;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    table.print(&sizes);
    println!(
        "\n{} cores; {} build; the simulator and the fake API server answer from this process",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
}
