//! The API key never shows: not in logs at TRACE level (ours, reqwest's, hyper's), not in
//! errors, not in `Debug`. Its own test binary, so a global subscriber sees every thread.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use runpod_operator::{
    runpod::{Client, ClientConfig, types::CreateRegistry},
    sim::{self, SimConfig},
};
use secrecy::SecretString;

const KEY: &str = "rpa_SECRET_0123456789abcdefKEYKEYKEY";

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

#[tokio::test]
async fn the_api_key_is_in_no_log_error_or_debug_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();

    let handle = sim::start(SimConfig {
        api_key: KEY.to_string(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let config = ClientConfig {
        api_url: handle.api_url.clone(),
        graphql_url: handle.graphql_url.clone(),
        serverless_url: handle.serverless_url.clone(),
        ..ClientConfig::new(SecretString::from(KEY.to_string()))
    };
    let client = Client::new(config.clone()).unwrap();

    client.list_pods().await.unwrap();
    client.account().await.unwrap();
    let registry = CreateRegistry {
        name: "private".into(),
        username: "bot".into(),
        password: "hunter2-registry-password".into(),
    };
    client.create_registry(&registry).await.unwrap();
    let not_found = client.get_pod("missing0000000").await.unwrap_err();
    let mut outputs = vec![
        format!("{not_found}"),
        format!("{not_found:?}"),
        format!("{client:?}"),
        format!("{config:?}"),
        format!("{registry:?}"),
    ];
    // An error from a refused connection carries no URL query or header either.
    let dead = Client::new(ClientConfig {
        api_url: "http://127.0.0.1:9".into(),
        max_retries: 0,
        ..config
    })
    .unwrap();
    let refused = dead.list_pods().await.unwrap_err();
    outputs.push(format!("{refused} {refused:?}"));

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("RunPod call"), "the capture works: {logs}");
    assert!(!logs.contains(KEY), "the key leaked into the logs");
    assert!(
        !logs.contains("hunter2"),
        "the registry password leaked into the logs"
    );
    for output in outputs {
        assert!(!output.contains(KEY), "the key leaked: {output}");
        assert!(!output.contains("hunter2"), "the password leaked: {output}");
    }
}
