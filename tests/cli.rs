//! The built binary, run as a user runs it.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runpod-operator"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn breakeven_prints_the_seed_table() {
    let out = stdout(&run(&["breakeven", "--gpu", "NVIDIA A100-SXM4-80GB"]));
    for expected in [
        "$1.89/h",
        "$45.36",
        "$0.00076/s",
        "$2.736",
        "16.6 busy hours/day",
        "18.9 busy hours/day",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
}

#[test]
fn breakeven_takes_prices_from_flags() {
    let out = stdout(&run(&[
        "breakeven",
        "--gpu",
        "custom",
        "--pod-price",
        "1.89",
        "--flex-price",
        "0.00076",
    ]));
    assert!(out.contains("16.6 busy hours/day"), "{out}");
    assert!(out.contains("no active price is known"), "{out}");
}

#[test]
fn breakeven_json_carries_the_same_figures() {
    let out = stdout(&run(&["breakeven", "-o", "json"]));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["gpu"], "NVIDIA A100-SXM4-80GB");
    assert_eq!(json["options"][0]["per24h"], "45.36");
    assert_eq!(json["options"][1]["perBusyHour"], "2.736");
    assert_eq!(json["podVsFlex"]["busyHoursPerDay"], "16.6");
    assert_eq!(json["podVsFlex"]["withinADay"], true);
}

#[test]
fn breakeven_names_an_unknown_gpu() {
    let output = run(&["breakeven", "--gpu", "NVIDIA A100"]);
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("no price is known for GPU type \"NVIDIA A100\""),
        "{err}"
    );
}

#[test]
fn breakeven_refuses_negative_prices() {
    let output = run(&["breakeven", "--pod-price=-1"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--pod-price must not be negative"));
}

#[test]
fn crd_prints_all_three_definitions() {
    let out = stdout(&run(&["crd"]));
    let docs: Vec<serde_json::Value> = serde_norway::Deserializer::from_str(&out)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let names: Vec<_> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "gpuworkloads.runpod-operator.dev",
            "networkvolumes.runpod-operator.dev",
            "runpodaccounts.runpod-operator.dev"
        ]
    );
}

#[test]
fn crd_out_dir_writes_what_crds_holds() {
    let dir = std::env::temp_dir().join(format!("runpod-operator-crd-{}", std::process::id()));
    stdout(&run(&["crd", "--out-dir", dir.to_str().unwrap()]));
    let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    for entry in std::fs::read_dir(&committed).unwrap() {
        let name = entry.unwrap().file_name();
        let written = std::fs::read_to_string(dir.join(&name)).unwrap();
        assert_eq!(
            written,
            std::fs::read_to_string(committed.join(&name)).unwrap(),
            "{name:?}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sim_prints_its_environment_and_answers_http() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = Command::new(env!("CARGO_BIN_EXE_runpod-operator"))
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--serverless-listen",
            "127.0.0.1:0",
            "--balance",
            "25",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut env = std::collections::HashMap::new();
    for _ in 0..4 {
        let line = lines.next().unwrap().unwrap();
        let (name, value) = line.trim_start_matches("export ").split_once('=').unwrap();
        env.insert(name.to_string(), value.to_string());
    }
    let api = env["RUNPOD_API_URL"]
        .trim_start_matches("http://")
        .to_string();
    let key = &env["RUNPOD_API_KEY"];
    assert!(env["RUNPOD_GRAPHQL_URL"].ends_with("/graphql"));
    assert!(env.contains_key("RUNPOD_SERVERLESS_URL"));

    // A plain HTTP/1.1 request, as curl sends it.
    let body = r#"{"query":"query { myself { clientBalance } }"}"#;
    let mut stream = std::net::TcpStream::connect(&api).unwrap();
    write!(
        stream,
        "POST /graphql HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply.contains(r#"{"data":{"myself":{"clientBalance":25.0}}}"#),
        "{reply}"
    );
}

// ---- plan / apply / audit end to end, against a spawned simulator --------------------------------

/// A `runpod-operator sim` child process; killed on drop.
struct SimProcess {
    child: std::process::Child,
    env: std::collections::HashMap<String, String>,
    /// The CLI's cache of RunPod's prices, this simulator's own.
    cache: std::path::PathBuf,
}

impl SimProcess {
    fn start() -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(env!("CARGO_BIN_EXE_runpod-operator"))
            .args([
                "sim",
                "--listen",
                "127.0.0.1:0",
                "--serverless-listen",
                "127.0.0.1:0",
            ])
            // The examples run 33 serverless workers, which RunPod allows from $500; pods boot
            // in 15 virtual seconds, a fraction of a real one at 100x.
            .args(["--balance", "1000", "--speed", "100"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut env = std::collections::HashMap::new();
        for _ in 0..4 {
            let line = lines.next().unwrap().unwrap();
            let (name, value) = line.trim_start_matches("export ").split_once('=').unwrap();
            env.insert(name.to_string(), value.to_string());
        }
        let cache = std::env::temp_dir().join(format!(
            "runpod-operator-cache-{}-{}",
            std::process::id(),
            child.id()
        ));
        Self { child, env, cache }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_runpod-operator"))
            .args(args)
            .envs(&self.env)
            .env("RUNPOD_OPERATOR_CACHE_DIR", &self.cache)
            // The simulator allows 600 a minute; the examples' account budgets 60.
            .env("RUNPOD_REQUESTS_PER_MINUTE", "600")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    fn admin(&self, method: &str, path: &str, body: &str) -> String {
        self.http("RUNPOD_API_URL", method, path, body)
    }

    /// A request to one of the simulator's hosts (`RUNPOD_API_URL` or
    /// `RUNPOD_SERVERLESS_URL`), with the key; the body of the answer.
    fn http(&self, host: &str, method: &str, path: &str, body: &str) -> String {
        use std::io::{Read, Write};
        let api = self.env[host].trim_start_matches("http://").to_string();
        let mut stream = std::net::TcpStream::connect(&api).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.env["RUNPOD_API_KEY"],
            body.len()
        )
        .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_string()
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.cache);
    }
}

/// The examples plus the two Secrets they read, in a fresh folder.
fn manifests(extra: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "runpod-operator-e2e-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        dir.join("secrets.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: wandb, namespace: research}\nstringData: {apiKey: k}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {name: huggingface, namespace: inference}\ndata: {token: aGZfdG9rZW4=}\n",
    )
    .unwrap();
    for (name, text) in extra {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

#[test]
fn plan_apply_audit_round_trip_with_terraform_exit_codes() {
    let sim = SimProcess::start();
    let dir = manifests(&[]);
    let dir = dir.to_str().unwrap();

    let plan = sim.run(&["plan", "-f", dir]);
    assert_eq!(
        code(&plan),
        2,
        "changes pending: {}",
        String::from_utf8_lossy(&plan.stdout)
    );
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("create endpoint rpo-vision-image-matting-"),
        "{text}"
    );
    // The LLM endpoint waits for the volume this apply creates first.
    assert!(
        text.contains("Plan: 3 object(s) to change, 0 refused."),
        "{text}"
    );
    assert!(
        text.contains("waiting for NetworkVolume \"model-weights\""),
        "{text}"
    );

    let apply = sim.run(&["apply", "-f", dir, "--yes", "--interval", "1"]);
    assert_eq!(
        code(&apply),
        0,
        "{}\n{}",
        String::from_utf8_lossy(&apply.stdout),
        String::from_utf8_lossy(&apply.stderr)
    );
    assert!(!String::from_utf8_lossy(&apply.stdout).contains("False"));

    assert_eq!(
        code(&sim.run(&["plan", "-f", dir])),
        0,
        "nothing left to do"
    );
    let audit = sim.run(&["audit", "-f", dir, "--exit-code"]);
    assert_eq!(
        code(&audit),
        0,
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
    assert!(String::from_utf8_lossy(&audit.stdout).contains("No drift"));

    // Someone scales the endpoint down in the console.
    let state: serde_json::Value =
        serde_json::from_str(&sim.admin("GET", "/_sim/state", "")).unwrap();
    let matting = state["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str().unwrap().contains("image-matting"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    sim.admin(
        "PATCH",
        &format!("/_sim/console/v2/serverless/{matting}"),
        r#"{"workers":{"max":2}}"#,
    );
    let audit = sim.run(&["audit", "-f", dir, "--exit-code", "-o", "json"]);
    assert_eq!(code(&audit), 2, "drift found");
    let report: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    assert_eq!(
        report["drift"][0]["drift"][0]["field"],
        "spec.serverless.maxWorkers"
    );
    assert_eq!(report["drift"][0]["drift"][0]["observed"], "2");

    assert_eq!(
        code(&sim.run(&["apply", "-f", dir, "--yes", "--interval", "1"])),
        0
    );
    assert_eq!(
        code(&sim.run(&["audit", "-f", dir, "--exit-code"])),
        0,
        "corrected"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_undeclared_pod_shows_in_audit_with_its_cost() {
    let sim = SimProcess::start();
    sim.admin(
        "POST",
        "/v2/pods",
        r#"{"name":"forgotten","image":"i","gpu":{"id":"NVIDIA A100-SXM4-80GB","count":1}}"#,
    );
    let dir = manifests(&[]);
    let audit = sim.run(&["audit", "-f", dir.to_str().unwrap(), "--exit-code"]);
    assert_eq!(code(&audit), 2);
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(
        text.contains("RunPod objects nobody declared (1.90 USD/h)"),
        "{text}"
    );
    assert!(text.contains("forgotten"), "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_manifest_with_a_bad_field_is_rejected_with_its_path() {
    let sim = SimProcess::start();
    let bad = "apiVersion: runpod-operator.dev/v1alpha1\nkind: GpuWorkload\nmetadata: {name: broken, namespace: ml}\n\
               spec:\n  type: Serverless\n  image: i\n  gpu: {types: [\"NVIDIA L4\"]}\n  serverless: {maxWorkers: 1, activeWorkers: 2, workerClass: Active}\n  spendingCap: {usdPerHour: \"1\"}\n";
    let dir = manifests(&[("broken.yaml", bad)]);
    let plan = sim.run(&["plan", "-f", dir.to_str().unwrap()]);
    assert_eq!(code(&plan), 1);
    let err = String::from_utf8_lossy(&plan.stderr);
    assert!(
        err.contains("broken.yaml: GpuWorkload \"broken\" is invalid"),
        "{err}"
    );
    assert!(err.contains("spec.serverless: spec.serverless.maxWorkers must be at least spec.serverless.activeWorkers"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn nothing_is_written_when_a_money_rule_refuses_the_plan() {
    let sim = SimProcess::start();
    let greedy = "apiVersion: runpod-operator.dev/v1alpha1\nkind: GpuWorkload\nmetadata: {name: greedy, namespace: ml}\n\
                  spec:\n  type: Pod\n  image: i\n  gpu: {types: [\"NVIDIA B200\"], count: 8}\n  spendingCap: {usdPerHour: \"10\"}\n";
    let dir = std::env::temp_dir().join(format!("runpod-operator-greedy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("greedy.yaml"), greedy).unwrap();
    let dir = dir.to_str().unwrap();
    let plan = sim.run(&["plan", "-f", dir]);
    assert_eq!(code(&plan), 1);
    assert!(
        String::from_utf8_lossy(&plan.stdout)
            .contains("worst case 63.93 USD/h exceeds the workload cap 10.00 USD/h")
    );
    let apply = sim.run(&["apply", "-f", dir, "--yes", "--timeout", "5"]);
    assert_eq!(code(&apply), 1);
    let log: serde_json::Value =
        serde_json::from_str(&sim.admin("GET", "/_sim/requests", "")).unwrap();
    let writes: Vec<_> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["method"] != "GET"
                && r["path"] != "/graphql"
                && !r["path"].as_str().unwrap().starts_with("/_sim")
        })
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn plan_prices_with_runpods_catalogue_so_a_price_change_moves_the_figures() {
    let sim = SimProcess::start();
    let pod = "apiVersion: runpod-operator.dev/v1alpha1\nkind: GpuWorkload\nmetadata: {name: b200, namespace: ml}\n\
               spec:\n  type: Pod\n  image: i\n  gpu: {types: [\"NVIDIA B200\"], count: 8}\n  spendingCap: {usdPerHour: \"10\"}\n";
    let dir = std::env::temp_dir().join(format!("runpod-operator-prices-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("b200.yaml"), pod).unwrap();
    let dir = dir.to_str().unwrap();
    let worst = |output: &Output| -> String {
        let items: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        items[0]["worstCasePerHour"].as_str().unwrap().to_string()
    };
    // At the published 7.99 USD/h a GPU, 8 GPUs pass the cap of 10: refused.
    let before = sim.run(&["plan", "-f", dir, "-o", "json"]);
    assert_eq!(
        code(&before),
        1,
        "{}",
        String::from_utf8_lossy(&before.stderr)
    );
    assert!(worst(&before).starts_with("63.9"), "{}", worst(&before));
    // RunPod drops the price to 1.00: the same manifest now fits, at the new figure.
    assert_eq!(
        sim.admin(
            "POST",
            "/_sim/prices",
            r#"{"gpuType":"NVIDIA B200","secure":"1.00"}"#
        ),
        ""
    );
    // The catalogue read a moment ago is kept for the account's priceRefreshIntervalSeconds
    // (an hour), as the controller keeps it: still refused at the old price.
    let kept = sim.run(&["plan", "-f", dir, "-o", "json"]);
    assert_eq!(code(&kept), 1);
    assert!(worst(&kept).starts_with("63.9"), "{}", worst(&kept));
    // --refresh-prices reads RunPod now, and what it read is kept for the next command.
    for args in [
        &["plan", "-f", dir, "-o", "json", "--refresh-prices"][..],
        &["plan", "-f", dir, "-o", "json"][..],
    ] {
        let after = sim.run(args);
        assert_eq!(
            code(&after),
            2,
            "{}",
            String::from_utf8_lossy(&after.stdout)
        );
        assert!(worst(&after).starts_with("8.00"), "{}", worst(&after));
    }
    // A damaged cache file is read from RunPod again, not trusted.
    for entry in std::fs::read_dir(&sim.cache).unwrap() {
        std::fs::write(entry.unwrap().path(), "{\"apiUrl\": 1").unwrap();
    }
    let after = sim.run(&["plan", "-f", dir, "-o", "json"]);
    assert!(worst(&after).starts_with("8.00"), "{}", worst(&after));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn apply_without_the_secrets_fails_at_once_naming_each_and_how_to_add_it() {
    // No simulator, no key: the check comes before anything is read or written.
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let started = std::time::Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_runpod-operator"))
        .args(["apply", "--yes", "-f", examples.to_str().unwrap()])
        .env("RUNPOD_API_KEY", "unused")
        .env("RUNPOD_API_URL", "http://127.0.0.1:9")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&output), 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.starts_with("error: 2 Secret(s)"), "{err}");
    for needed in [
        "Secret research/wandb is missing: key \"apiKey\" for GpuWorkload research/llama-finetune (spec.env[1])",
        "Secret inference/huggingface is missing: key \"token\"",
        "kubectl create secret generic wandb -n research --from-literal=apiKey=<value> --dry-run=client -o yaml",
    ] {
        assert!(err.contains(needed), "{needed}\n{err}");
    }
    // A Secret that is there but lacks the key is named as such.
    let dir = manifests(&[(
        "secrets.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: wandb, namespace: research}\nstringData: {other: k}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {name: huggingface, namespace: inference}\nstringData: {token: t}\n",
    )]);
    let output = Command::new(env!("CARGO_BIN_EXE_runpod-operator"))
        .args(["plan", "-f", dir.to_str().unwrap()])
        .env("RUNPOD_API_KEY", "unused")
        .output()
        .unwrap();
    assert_eq!(code(&output), 1);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("error: 1 Secret(s)"), "{err}");
    assert!(
        err.contains("Secret research/wandb has no such key: key \"apiKey\""),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn plan_without_a_key_says_how_to_get_one() {
    let dir = manifests(&[]);
    let output = Command::new(env!("CARGO_BIN_EXE_runpod-operator"))
        .args(["plan", "-f", dir.to_str().unwrap()])
        .env_remove("RUNPOD_API_KEY")
        .output()
        .unwrap();
    assert_eq!(code(&output), 1);
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("export RUNPOD_API_KEY (or try the built-in simulator with --sim)")
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn cost_prices_the_examples_with_break_even_advice() {
    let out = stdout(&run(&[
        "cost",
        "-f",
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples"),
    ]));
    assert!(out.contains("vision/image-matting"), "{out}");
    assert!(out.contains("82.16"), "{out}");
    assert!(
        out.contains("a Pod wins above 16.6 busy h/day; active workers above 18.9 busy h/day"),
        "{out}"
    );
    assert!(
        out.contains("flex workers are cheaper below 16.6 busy h/day"),
        "{out}"
    );
}

#[test]
fn demo_walks_through_the_product() {
    let out = stdout(&run(&["demo"]));
    for expected in [
        "runpod-operator apply -f examples/",
        "t=24 s  queued  0  running jobs 30",
        "The burst cost 0.6390 USD",
        "Spent so far:",
        "spec.serverless.maxWorkers",
        "No drift: RunPod matches every declared object.",
        // The advice after two busy days: two Pods instead of flex workers, with the saving.
        "│ vision/image-matting ┆ 48 h     ┆ 24         ┆ 2/2/2                    ┆ 3278.94     ┆ 2 Pods      ┆ 2721.60 ┆ 557.34",
        "Demo finished in",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
}

#[test]
fn a_manifest_error_prints_no_backtrace_and_rust_log_is_read() {
    let bad = std::env::temp_dir().join(format!("runpod-operator-tab-{}.yaml", std::process::id()));
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: x\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_runpod-operator"))
        .args(["plan", "--sim", "-f", bad.to_str().unwrap()])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(code(&output), 1);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("not valid YAML") && err.contains("line 4"),
        "{err}"
    );
    assert!(!err.contains("backtrace"), "{err}");
    // A file that is not UTF-8 is named as such, not as a failed write.
    std::fs::write(&bad, [0xff_u8, 0xfe, 0x00, 0x41]).unwrap();
    let binary = run(&["plan", "--sim", "-f", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&binary.stderr);
    assert!(err.contains("not UTF-8 text"), "{err}");
    assert!(!err.contains("write"), "{err}");
    std::fs::remove_file(&bad).unwrap();

    // RUST_LOG is read when neither --log nor RUNPOD_OPERATOR_LOG is set: at debug, the
    // client's calls show.
    let dir = manifests(&[]);
    let output = Command::new(env!("CARGO_BIN_EXE_runpod-operator"))
        .args(["plan", "--sim", "-f", dir.to_str().unwrap()])
        .env("RUST_LOG", "runpod_operator=debug")
        .env_remove("RUNPOD_OPERATOR_LOG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("RunPod call"), "RUST_LOG was not read:\n{err}");
    // --log wins over RUST_LOG.
    let quiet = Command::new(env!("CARGO_BIN_EXE_runpod-operator"))
        .args([
            "--log",
            "error",
            "plan",
            "--sim",
            "-f",
            dir.to_str().unwrap(),
        ])
        .env("RUST_LOG", "runpod_operator=debug")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("RunPod call"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn plan_and_audit_warn_when_runpods_lists_lack_names_and_apply_holds_its_writes() {
    let sim = SimProcess::start();
    sim.admin(
        "POST",
        "/v2/pods",
        r#"{"name":"someone","image":"i","gpu":{"id":"NVIDIA A100-SXM4-80GB","count":1}}"#,
    );
    sim.admin(
        "PUT",
        "/_sim/faults",
        r#"{"rules":[{"method":"GET","path":"/v2/pods","kind":"blankIdentity"}]}"#,
    );
    let dir = manifests(&[]);
    for command in ["plan", "audit"] {
        let output = sim.run(&[command, "-f", dir.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(
            err.contains("warning: RunPod listed 1 pod(s)")
                && err.contains("without an id or a name"),
            "{command}: {err}"
        );
    }
    let apply = sim.run(&[
        "apply",
        "-f",
        dir.to_str().unwrap(),
        "--yes",
        "--timeout",
        "5",
    ]);
    assert_eq!(code(&apply), 1);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&apply.stdout),
        String::from_utf8_lossy(&apply.stderr)
    );
    assert!(text.contains("held back"), "{text}");
    // Nothing was made: the one pod is the one made before.
    let state = sim.admin("GET", "/_sim/state", "");
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["pods"].as_array().unwrap().len(), 1, "{state}");
    assert_eq!(state["endpoints"].as_array().unwrap().len(), 0, "{state}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Issue 12 items 3 and 6: `advise` reads each endpoint's hourly billing. Two days of steady
/// traffic (one worker busy 50 minutes of every hour) make a Pod the cheapest way; one job a
/// few times a day stays flex. The cost it states for now is the simulator's own bill.
#[test]
fn advise_reads_the_bill_and_recommends_a_pod_for_steady_traffic_and_flex_for_bursts() {
    let sim = SimProcess::start();
    let dir = std::env::temp_dir().join(format!("runpod-operator-advise-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let endpoint = |name: &str| {
        format!(
            "apiVersion: runpod-operator.dev/v1alpha1\nkind: GpuWorkload\nmetadata: {{name: {name}, namespace: ml}}\n\
             spec:\n  type: Serverless\n  image: img\n  gpu: {{types: [\"NVIDIA A100-SXM4-80GB\"]}}\n  \
             serverless: {{maxWorkers: 3, idleTimeoutSeconds: 5}}\n  spendingCap: {{usdPerHour: \"9\"}}\n"
        )
    };
    std::fs::write(
        dir.join("endpoints.yaml"),
        format!("{}---\n{}", endpoint("steady"), endpoint("bursty")),
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    let applied = sim.run(&["apply", "--yes", "-f", d]);
    assert_eq!(
        code(&applied),
        0,
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    // The endpoints' ids, by name.
    let raw = sim.http("RUNPOD_API_URL", "GET", "/v2/serverless", "");
    let list: serde_json::Value =
        serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{e}: {raw:?}"));
    let id_of = |part: &str| -> String {
        list["endpoints"]
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {list}"))
            .iter()
            .find(|e| e["name"].as_str().unwrap().contains(part))
            .map(|e| e["id"].as_str().unwrap().to_string())
            .unwrap()
    };
    let (steady, bursty) = (id_of("steady"), id_of("bursty"));
    // A week: every hour a 3,000 s job at the steady endpoint; every 12 hours a burst of three
    // 120 s jobs at once at the bursty one.
    for hour in 0..168 {
        let job = |id: &str, seconds: u32| {
            let reply = sim.http(
                "RUNPOD_SERVERLESS_URL",
                "POST",
                &format!("/v2/{id}/run"),
                &format!(r#"{{"input": {{"simulatedSeconds": {seconds}}}}}"#),
            );
            assert!(reply.contains("IN_QUEUE"), "{reply}");
        };
        job(&steady, 3000);
        if hour % 12 == 0 {
            for _ in 0..3 {
                job(&bursty, 120);
            }
        }
        sim.admin("POST", "/_sim/clock", r#"{"advanceSeconds": 3600}"#);
    }

    let advised = sim.run(&["advise", "-f", d, "-o", "json"]);
    assert_eq!(
        code(&advised),
        0,
        "{}",
        String::from_utf8_lossy(&advised.stderr)
    );
    let reports: serde_json::Value = serde_json::from_slice(&advised.stdout).unwrap();
    let report = |name: &str| {
        reports
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["workload"] == format!("ml/{name}"))
            .unwrap_or_else(|| panic!("no report for {name}: {reports}"))
            .clone()
    };
    let steady_report = report("steady");
    let advice = &steady_report["advice"];
    let busy: f64 = advice["busyHoursPerDay"].as_str().unwrap().parse().unwrap();
    // 50 minutes of work, a 20 s cold start and a 5 s idle tail each hour: about 20.4 h a day.
    assert!(
        (19.5..=21.5).contains(&busy),
        "{busy} busy hours a day: {advice}"
    );
    assert_eq!(advice["best"]["config"]["type"], "pod", "{advice}");
    assert!(
        advice["savingPerMonth"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 0.0
    );

    // What `advise` says it costs now is what the simulator billed, within 2%.
    let bill: serde_json::Value = serde_json::from_str(&sim.http(
        "RUNPOD_API_URL",
        "GET",
        &format!("/v2/billing/serverless?bucketSize=hour&serverlessId={steady}"),
        "",
    ))
    .unwrap();
    let billed = bill["metadata"]["totals"]["gpuAmount"].as_f64().unwrap();
    let stated: f64 = advice["current"]["windowCost"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (stated - billed).abs() <= 0.02 * billed,
        "advise says {stated}, the simulator billed {billed}"
    );

    let bursty_report = report("bursty");
    let advice = &bursty_report["advice"];
    assert_eq!(
        advice["best"]["config"],
        serde_json::json!({"type": "serverless", "active": 0}),
        "{advice}"
    );
    assert_eq!(
        advice["savingPerMonth"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap(),
        0.0
    );

    // The table names both, with the picture.
    let table = sim.run(&["advise", "-f", d]);
    let text = String::from_utf8_lossy(&table.stdout);
    if std::env::var_os("ADVISE_SHOW").is_some() {
        eprintln!("{text}");
    }
    assert!(
        text.contains("ml/steady") && text.contains("1 Pod"),
        "{text}"
    );
    assert!(text.contains("keep as is"), "{text}");
    assert!(
        text.contains("mean busy workers by hour of the day"),
        "{text}"
    );

    // Then the alternative is run for as long as was measured: the simulator's own bill for
    // the Pod is what `advise` said it would cost, within 2%.
    let steady_advice = &steady_report["advice"];
    let hours: f64 = steady_advice["windowHours"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let stated_pod: f64 = steady_advice["best"]["windowCost"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    std::fs::write(
        dir.join("endpoints.yaml"),
        format!(
            "{}---\n{}",
            endpoint("steady")
                .replace("type: Serverless", "type: Pod")
                .replace("  serverless: {maxWorkers: 3, idleTimeoutSeconds: 5}\n", ""),
            endpoint("bursty")
        ),
    )
    .unwrap();
    let switched = sim.run(&["apply", "--yes", "--interval", "1", "-f", d]);
    assert_eq!(
        code(&switched),
        0,
        "{}",
        String::from_utf8_lossy(&switched.stderr)
    );
    let pods: serde_json::Value =
        serde_json::from_str(&sim.http("RUNPOD_API_URL", "GET", "/v2/pods", "")).unwrap();
    let pod = pods["pods"][0]["id"].as_str().unwrap().to_string();
    let pod_gpu_billed = || {
        let bill: serde_json::Value = serde_json::from_str(&sim.http(
            "RUNPOD_API_URL",
            "GET",
            &format!("/v2/billing/pods?bucketSize=hour&podId={pod}"),
            "",
        ))
        .unwrap();
        bill["metadata"]["totals"]["gpuAmount"]
            .as_f64()
            .unwrap_or_else(|| panic!("no gpuAmount: {bill}"))
    };
    let before = pod_gpu_billed();
    sim.admin(
        "POST",
        "/_sim/clock",
        &format!(r#"{{"advanceSeconds": {}}}"#, (hours * 3600.0).round()),
    );
    let ran = pod_gpu_billed() - before;
    if std::env::var_os("ADVISE_SHOW").is_some() {
        eprintln!("one Pod over {hours} h: advise said {stated_pod}, the simulator billed {ran}");
    }
    assert!(
        (stated_pod - ran).abs() <= 0.02 * ran,
        "advise said one Pod would cost {stated_pod} over {hours} h; the simulator billed {ran}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `type: Auto` in the CLI, as in the controller: after a whole window (here one day) of one
/// worker busy most of every hour, `apply` moves the endpoint to one Pod, make-before-break,
/// and a second `apply` changes nothing.
#[test]
fn apply_moves_a_busy_type_auto_endpoint_to_a_pod_after_a_whole_window() {
    let sim = SimProcess::start();
    let dir = std::env::temp_dir().join(format!("runpod-operator-auto-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("auto.yaml"),
        "apiVersion: runpod-operator.dev/v1alpha1\nkind: GpuWorkload\nmetadata: {name: busy, namespace: ml}\n\
         spec:\n  type: Auto\n  image: img\n  gpu: {types: [\"NVIDIA A100-SXM4-80GB\"]}\n  \
         serverless: {maxWorkers: 1}\n  measurement: {windowDays: 1}\n  spendingCap: {usdPerHour: \"6\"}\n",
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    let apply = || {
        sim.run(&[
            "apply",
            "--yes",
            "--interval",
            "1",
            "--timeout",
            "120",
            "-f",
            d,
        ])
    };
    let applied = apply();
    assert_eq!(
        code(&applied),
        0,
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let count = |path: &str, list: &str| -> Vec<serde_json::Value> {
        let raw = sim.http("RUNPOD_API_URL", "GET", path, "");
        let body: serde_json::Value =
            serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{e}: {raw:?}"));
        body[list].as_array().cloned().unwrap_or_default()
    };
    let endpoints = count("/v2/serverless", "endpoints");
    assert_eq!(
        (endpoints.len(), count("/v2/pods", "pods").len()),
        (1, 0),
        "Serverless first"
    );
    let id = endpoints[0]["id"].as_str().unwrap().to_string();
    // 26 hours of 24 jobs of 100 s an hour: about 17 busy hours a day, the Pod cheaper.
    sim.admin(
        "POST",
        "/_sim/traffic",
        &format!(r#"{{"endpointId": "{id}", "hours": 26, "jobsPerHour": 24, "jobSeconds": 100}}"#),
    );
    let planned = sim.run(&["plan", "-f", d]);
    let said = String::from_utf8_lossy(&planned.stdout);
    assert!(said.contains("create pod"), "{said}");
    assert!(
        !said.contains("delete endpoint"),
        "the endpoint stays until the pod serves: {said}"
    );
    let applied = apply();
    assert_eq!(
        code(&applied),
        0,
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let pods = count("/v2/pods", "pods");
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0]["status"], "RUNNING");
    assert!(
        count("/v2/serverless", "endpoints").is_empty(),
        "the endpoint went once the pod served"
    );
    // Again: a Pod it stays, nothing is made.
    let again = apply();
    assert_eq!(
        code(&again),
        0,
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(count("/v2/pods", "pods").len(), 1);
    assert!(count("/v2/serverless", "endpoints").is_empty());
}
