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
