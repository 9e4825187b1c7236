//! The simulator over real HTTP on loopback: one test per RunPod rule, each readable as a
//! sentence. The simulator checks every answer it sends against the official spec, and the
//! harness fails any test whose answers broke it (on drop, so no test can skip it).

use reqwest::{Method, StatusCode, header::HeaderMap};
use runpod_operator::{
    sim::{self, SimConfig, SimHandle},
    tls,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};

const A100: &str = "NVIDIA A100-SXM4-80GB";

struct Harness {
    sim: SimHandle,
    http: reqwest::Client,
    key: String,
}

struct Reply {
    status: StatusCode,
    body: Value,
    headers: HeaderMap,
}

impl Harness {
    async fn start() -> Self {
        Self::with(SimConfig::default()).await
    }

    async fn with(config: SimConfig) -> Self {
        let sim = sim::start(config).await.expect("the simulator starts");
        let key = sim.api_key.clone();
        Self {
            sim,
            http: tls::http_client_builder().build().unwrap(),
            key,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        // The job and health routes live on RunPod's serverless host: /v2/{id}/run, ...
        let route = path.split('?').next().unwrap_or_default();
        let job_route = route
            .split('/')
            .nth(3)
            .is_some_and(|s| ["run", "runsync", "status", "health"].contains(&s));
        let base = if job_route {
            &self.sim.serverless_url
        } else {
            &self.sim.api_url
        };
        let mut request = self
            .http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the simulator answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        Reply {
            status,
            body,
            headers,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }
    async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(body)).await
    }
    async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }
    async fn admin(&self, path: &str, body: Value) -> Reply {
        self.post(&format!("/_sim/{path}"), body).await
    }
    async fn advance(&self, seconds: u64) {
        assert_eq!(
            self.admin("clock", json!({"advanceSeconds": seconds}))
                .await
                .status,
            200
        );
    }

    async fn create_pod(&self, extra: Value) -> Value {
        let mut body =
            json!({"name": "trainer", "image": "img:1", "gpu": {"id": A100, "count": 1}});
        merge(&mut body, extra);
        let reply = self.post("/v2/pods", body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    async fn create_volume(&self, size: u32, dc: &str) -> String {
        let reply = self
            .post(
                "/v2/network-volumes",
                json!({"name": "weights", "size": size, "dataCenter": dc}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"].as_str().unwrap().to_string()
    }

    async fn create_endpoint(&self, extra: Value) -> Reply {
        let mut body = json!({
            "name": "matting", "type": "QUEUE", "image": "img:1",
            "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
            "gpu": {"pools": ["AMPERE_80"], "count": 1},
        });
        merge(&mut body, extra);
        self.post("/v2/serverless", body).await
    }

    async fn balance(&self) -> Decimal {
        let reply = self
            .post(
                "/graphql",
                json!({"query": "query { myself { clientBalance } }"}),
            )
            .await;
        reply.body["data"]["myself"]["clientBalance"]
            .to_string()
            .parse()
            .unwrap()
    }

    /// Every response so far conformed to the spec.
    fn assert_conformant(&self) {
        let violations = self.sim.sim.violations();
        assert!(
            violations.is_empty(),
            "responses that break the spec: {violations:#?}"
        );
    }
}

/// Every response of every test is checked against the spec, even where a test does not ask.
impl Drop for Harness {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_conformant();
        }
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

// ---- transport, auth, validation ------------------------------------------------------------

#[tokio::test]
async fn a_request_without_a_bearer_key_gets_401_problem_json() {
    let h = Harness::start().await;
    let reply = h
        .http
        .get(format!("{}/v2/pods", h.sim.api_url))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(reply.headers()["content-type"], "application/problem+json");
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["detail"], "missing bearer token");
    assert_eq!(body["title"], "Unauthorized");
}

#[tokio::test]
async fn keys_are_isolated_accounts() {
    let h = Harness::start().await;
    h.create_pod(json!({})).await;
    assert_eq!(
        h.admin("accounts", json!({"apiKey": "other", "balance": "10"}))
            .await
            .status,
        204
    );
    let other = h
        .http
        .get(format!("{}/v2/pods", h.sim.api_url))
        .bearer_auth("other")
        .send()
        .await
        .unwrap();
    let body: Value = other.json().await.unwrap();
    assert_eq!(body["pods"], json!([]));
    assert_eq!(
        h.get("/v2/pods").await.body["pods"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    h.assert_conformant();
}

#[tokio::test]
async fn an_unknown_property_is_refused_with_422_naming_it() {
    let h = Harness::start().await;
    let reply = h
        .post(
            "/v2/pods",
            json!({"name": "p", "image": "i", "gpu": {"id": A100}, "interruptible": true}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body["detail"], "Request validation failed.");
    assert_eq!(
        reply.body["errors"],
        json!(["$: additional properties 'interruptible' not allowed"])
    );
    h.assert_conformant();
}

#[tokio::test]
async fn a_bad_value_is_refused_with_422_and_its_path() {
    let h = Harness::start().await;
    let reply = h
        .post(
            "/v2/network-volumes",
            json!({"name": "v", "size": 5000, "dataCenter": "EU-RO-1"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.body["errors"][0],
        "$.size: 5000 is greater than the maximum of 4096"
    );
    h.assert_conformant();
}

#[tokio::test]
async fn an_unknown_route_is_404_and_a_wrong_method_405_with_allow() {
    let h = Harness::start().await;
    assert_eq!(
        h.get("/v2/networkvolumes").await.status,
        StatusCode::NOT_FOUND
    );
    let reply = h.call(Method::PUT, "/v2/pods", Some(json!({}))).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.headers["allow"], "GET, POST");
}

#[tokio::test]
async fn lists_come_wrapped_as_the_spec_says() {
    let h = Harness::start().await;
    for (path, field) in [
        ("/v2/pods", "pods"),
        ("/v2/serverless", "endpoints"),
        ("/v2/network-volumes", "networkVolumes"),
        ("/v2/registries", "registries"),
        ("/v2/catalog/gpus", "gpus"),
        ("/v2/catalog/datacenters", "dataCenters"),
    ] {
        let reply = h.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(reply.body[field].is_array(), "{path}: {}", reply.body);
    }
    h.assert_conformant();
}

// ---- pods ------------------------------------------------------------------------------------

#[tokio::test]
async fn a_new_pod_provisions_then_runs_after_its_boot() {
    let h = Harness::start().await;
    let pod = h.create_pod(json!({})).await;
    assert_eq!(pod["status"], "PROVISIONING");
    assert_eq!(pod["actions"], json!(["stop", "terminate"]));
    h.advance(20).await;
    let pod = h.get(&format!("/v2/pods/{}", id(&pod))).await.body;
    assert_eq!(pod["status"], "RUNNING");
    assert_eq!(pod["actions"], json!(["stop", "restart", "terminate"]));
    h.assert_conformant();
}

#[tokio::test]
async fn an_illegal_action_is_409() {
    let h = Harness::start().await;
    let pod = h.create_pod(json!({})).await;
    let reply = h
        .post(
            &format!("/v2/pods/{}/action", id(&pod)),
            json!({"action": "start"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("allowed: stop, terminate")
    );
    h.assert_conformant();
}

#[tokio::test]
async fn a_stopped_pod_costs_nothing_for_compute_and_terminate_answers_204() {
    let h = Harness::start().await;
    let pod = h.create_pod(json!({})).await;
    let path = format!("/v2/pods/{}/action", id(&pod));
    let stopped = h.post(&path, json!({"action": "stop"})).await;
    assert_eq!(stopped.body["status"], "EXITED");
    assert_eq!(stopped.body["cost"], 0.0);
    assert_eq!(
        h.post(&path, json!({"action": "terminate"})).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.get(&format!("/v2/pods/{}", id(&pod))).await.status,
        StatusCode::NOT_FOUND
    );
    h.assert_conformant();
}

#[tokio::test]
async fn a_stopped_pod_starts_only_on_its_own_host() {
    let h = Harness::start().await;
    let pod = h.create_pod(json!({"dataCenterIds": ["EU-RO-1"]})).await;
    let path = format!("/v2/pods/{}/action", id(&pod));
    h.post(&path, json!({"action": "stop"})).await;
    // Someone else rents every A100 on the host meanwhile.
    h.admin(
        "capacity",
        json!({"gpuType": A100, "dataCenter": "EU-RO-1", "free": 0}),
    )
    .await;
    let reply = h.post(&path, json!({"action": "start"})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body["detail"],
        "There are not enough free GPUs on the host machine to start this pod."
    );
    h.admin(
        "capacity",
        json!({"gpuType": A100, "dataCenter": "EU-RO-1", "free": 1}),
    )
    .await;
    assert_eq!(
        h.post(&path, json!({"action": "start"})).await.body["status"],
        "STARTING"
    );
    h.assert_conformant();
}

#[tokio::test]
async fn create_walks_the_data_centres_in_order_and_answers_the_capacity_message_when_none_fit() {
    let h = Harness::start().await;
    h.admin(
        "capacity",
        json!({"gpuType": A100, "dataCenter": "US-TX-3", "free": 0}),
    )
    .await;
    let pod = h
        .create_pod(json!({"dataCenterIds": ["US-TX-3", "EU-SE-1"]}))
        .await;
    assert_eq!(pod["dataCenterId"], "EU-SE-1");
    h.admin(
        "capacity",
        json!({"gpuType": A100, "dataCenter": "EU-SE-1", "free": 0}),
    )
    .await;
    let reply = h
        .post("/v2/pods", json!({"name": "p", "image": "i", "gpu": {"id": A100}, "dataCenterIds": ["US-TX-3", "EU-SE-1"]}))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("There are no longer any instances available")
    );
    h.assert_conformant();
}

#[tokio::test]
async fn a_patch_to_a_running_pod_resets_it() {
    let h = Harness::start().await;
    let pod = h.create_pod(json!({})).await;
    h.advance(100).await;
    let path = format!("/v2/pods/{}", id(&pod));
    assert_eq!(h.get(&path).await.body["runtime"]["uptime"], 85);
    let patched = h.patch(&path, json!({"image": "img:2"})).await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.body["image"], "img:2");
    assert_eq!(
        patched.body["runtime"]["uptime"], 0,
        "the container was recreated"
    );
    // Renaming is in place: no reset.
    h.advance(10).await;
    assert_eq!(
        h.patch(&path, json!({"name": "renamed"})).await.body["runtime"]["uptime"],
        10
    );
    h.assert_conformant();
}

#[tokio::test]
async fn a_pod_volume_only_grows_and_container_disk_goes_either_way() {
    let h = Harness::start().await;
    let pod = h
        .create_pod(
            json!({"disk": 40, "mounts": {"persistent": {"size": 50, "path": "/workspace"}}}),
        )
        .await;
    let path = format!("/v2/pods/{}", id(&pod));
    let shrink = h
        .patch(
            &path,
            json!({"mounts": {"persistent": {"size": 20, "path": "/workspace"}}}),
        )
        .await;
    assert_eq!(shrink.status, StatusCode::BAD_REQUEST);
    assert!(
        shrink.body["detail"]
            .as_str()
            .unwrap()
            .contains("can only grow")
    );
    let grow = h
        .patch(
            &path,
            json!({"mounts": {"persistent": {"size": 80, "path": "/data"}}}),
        )
        .await;
    assert_eq!(
        grow.body["mounts"],
        json!({"persistent": {"size": 80, "path": "/data"}})
    );
    assert_eq!(h.patch(&path, json!({"disk": 10})).await.body["disk"], 10);
    h.assert_conformant();
}

#[tokio::test]
async fn the_mount_kind_and_network_volume_are_fixed_at_create() {
    let h = Harness::start().await;
    let volume = h.create_volume(50, "EU-RO-1").await;
    let other = h.create_volume(50, "EU-RO-1").await;
    let pod = h
        .create_pod(json!({"mounts": {"network": [{"volumeId": volume, "path": "/models"}]}}))
        .await;
    assert_eq!(
        pod["dataCenterId"], "EU-RO-1",
        "a network volume pins the pod to its data centre"
    );
    let path = format!("/v2/pods/{}", id(&pod));
    let swap = h
        .patch(
            &path,
            json!({"mounts": {"network": [{"volumeId": other, "path": "/models"}]}}),
        )
        .await;
    assert_eq!(swap.status, StatusCode::BAD_REQUEST);
    let kind = h
        .patch(
            &path,
            json!({"mounts": {"persistent": {"size": 20, "path": "/w"}}}),
        )
        .await;
    assert_eq!(kind.status, StatusCode::BAD_REQUEST);
    let clear = h.patch(&path, json!({"mounts": {"network": []}})).await;
    assert_eq!(clear.status, StatusCode::BAD_REQUEST);
    let partial = h
        .patch(
            &path,
            json!({"mounts": {"network": [{"volumeId": volume}]}}),
        )
        .await;
    assert_eq!(partial.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bare = h.create_pod(json!({})).await;
    let add = h
        .patch(
            &format!("/v2/pods/{}", id(&bare)),
            json!({"mounts": {"persistent": {"size": 20, "path": "/w"}}}),
        )
        .await;
    assert_eq!(
        add.status,
        StatusCode::BAD_REQUEST,
        "a mount kind absent at create cannot be added"
    );
    h.assert_conformant();
}

#[tokio::test]
async fn a_locked_pod_refuses_stop_and_create_cannot_lock() {
    let h = Harness::start().await;
    let reply = h
        .post(
            "/v2/pods",
            json!({"name": "p", "image": "i", "gpu": {"id": A100}, "locked": true}),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "v2 locks only through PATCH"
    );
    let pod = h.create_pod(json!({})).await;
    let locked = h
        .patch(&format!("/v2/pods/{}", id(&pod)), json!({"locked": true}))
        .await;
    assert_eq!(locked.body["locked"], true);
    let reply = h
        .post(
            &format!("/v2/pods/{}/action", id(&pod)),
            json!({"action": "stop"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    h.assert_conformant();
}

// ---- network volumes and registries ----------------------------------------------------------

#[tokio::test]
async fn a_network_volume_only_grows_and_refuses_an_empty_patch() {
    let h = Harness::start().await;
    let volume = h.create_volume(100, "EU-RO-1").await;
    let path = format!("/v2/network-volumes/{volume}");
    assert_eq!(
        h.patch(&path, json!({"size": 50})).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(h.patch(&path, json!({"size": 200})).await.body["size"], 200);
    assert_eq!(
        h.patch(&path, json!({})).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let dc = h.patch(&path, json!({"dataCenter": "US-TX-3"})).await;
    assert_eq!(
        dc.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the data centre cannot change"
    );
    h.assert_conformant();
}

#[tokio::test]
async fn a_network_volume_in_use_cannot_be_deleted() {
    let h = Harness::start().await;
    let volume = h.create_volume(100, "EU-RO-1").await;
    let pod = h
        .create_pod(json!({"mounts": {"network": [{"volumeId": volume, "path": "/v"}]}}))
        .await;
    let reply = h.delete(&format!("/v2/network-volumes/{volume}")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("remove this network volume from all pods")
    );
    h.delete(&format!("/v2/pods/{}", id(&pod))).await;
    assert_eq!(
        h.delete(&format!("/v2/network-volumes/{volume}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    h.assert_conformant();
}

#[tokio::test]
async fn a_network_volume_needs_a_data_centre_that_offers_them() {
    let h = Harness::start().await;
    let reply = h
        .post(
            "/v2/network-volumes",
            json!({"name": "v", "size": 10, "dataCenter": "MARS-1"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.body["detail"].as_str().unwrap().contains("EU-RO-1"));
    h.assert_conformant();
}

#[tokio::test]
async fn registry_names_are_unique_and_a_used_registry_stays() {
    let h = Harness::start().await;
    let creds = json!({"name": "ghcr", "username": "u", "password": "p"});
    let registry = h.post("/v2/registries", creds.clone()).await;
    assert_eq!(registry.status, StatusCode::CREATED);
    assert!(
        registry.body.get("password").is_none(),
        "credentials are write-only"
    );
    assert_eq!(
        h.post("/v2/registries", creds).await.status,
        StatusCode::BAD_REQUEST
    );
    h.create_pod(json!({"registry": id(&registry.body)})).await;
    assert_eq!(
        h.delete(&format!("/v2/registries/{}", id(&registry.body)))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    h.assert_conformant();
}

#[tokio::test]
async fn a_private_image_is_pulled_only_with_a_credential_holding_its_login() {
    let h = Harness::start().await;
    let refused = h
        .admin("images", json!({"image": "ghcr.io/acme/private"}))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let made = h
        .admin(
            "images",
            json!({"image": "ghcr.io/acme/private:any", "username": "bot", "password": "right"}),
        )
        .await;
    assert_eq!(made.status, StatusCode::NO_CONTENT);
    let right = h
        .post(
            "/v2/registries",
            json!({"name": "right", "username": "bot", "password": "right"}),
        )
        .await;
    let wrong = h
        .post(
            "/v2/registries",
            json!({"name": "wrong", "username": "bot", "password": "wrong"}),
        )
        .await;
    let image = json!("ghcr.io/acme/private:2.0");
    let without = h.create_pod(json!({"image": image})).await;
    let with_wrong = h
        .create_pod(json!({"image": image, "registry": id(&wrong.body)}))
        .await;
    let with_right = h
        .create_pod(json!({"image": image, "registry": id(&right.body)}))
        .await;
    let public = h
        .create_pod(json!({"image": "ghcr.io/acme/public:1"}))
        .await;
    h.advance(20).await;
    let mut statuses = Vec::new();
    for pod in [&without, &with_wrong, &with_right, &public] {
        statuses.push(h.get(&format!("/v2/pods/{}", id(pod))).await.body["status"].clone());
    }
    assert_eq!(statuses, vec!["ERROR", "ERROR", "RUNNING", "RUNNING"]);
    // RunPod's words, where the simulator shows them.
    let state = h.get("/_sim/state").await.body;
    let errors = &state["podErrors"];
    assert!(
        errors[id(&without)]
            .as_str()
            .unwrap()
            .contains("pull access denied"),
        "{state}"
    );
    assert!(
        errors[id(&with_wrong)]
            .as_str()
            .unwrap()
            .contains("incorrect username or password"),
        "{state}"
    );
    assert!(errors.get(id(&with_right)).is_none());
    // A failed pod bills no GPU.
    let cost = h.get(&format!("/v2/pods/{}", id(&without))).await.body["cost"].clone();
    assert_eq!(cost.as_f64(), Some(0.0), "{cost}");
    // The request log never keeps a registry password.
    let log = h.get("/_sim/requests").await.body;
    let bodies: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["body"].as_str())
        .collect();
    assert!(bodies.iter().any(|b| b.contains("[REDACTED]")), "{log}");
    assert!(
        !bodies.iter().any(|b| b.contains("\"password\":\"right\"")),
        "{log}"
    );
    h.assert_conformant();
}

#[tokio::test]
async fn a_registry_used_by_an_endpoint_stays_too() {
    let h = Harness::start().await;
    let registry = h
        .post(
            "/v2/registries",
            json!({"name": "ep", "username": "u", "password": "p"}),
        )
        .await;
    let endpoint = h
        .create_endpoint(json!({"registry": id(&registry.body)}))
        .await;
    assert_eq!(endpoint.status, StatusCode::CREATED, "{}", endpoint.body);
    let path = format!("/v2/registries/{}", id(&registry.body));
    assert_eq!(h.delete(&path).await.status, StatusCode::BAD_REQUEST);
    h.delete(&format!("/v2/serverless/{}", id(&endpoint.body)))
        .await;
    assert_eq!(h.delete(&path).await.status, StatusCode::NO_CONTENT);
    h.assert_conformant();
}

// ---- serverless ---------------------------------------------------------------------------------

#[tokio::test]
async fn idle_timeout_is_refused_with_request_count_scaling() {
    let h = Harness::start().await;
    let reply = h
        .create_endpoint(json!({"scaling": {"type": "REQUEST_COUNT", "requestCount": 2}, "workers": {"max": 2, "idleTimeout": 30}}))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.body["errors"][0]
            .as_str()
            .unwrap()
            .contains("idleTimeout")
    );
    h.assert_conformant();
}

#[tokio::test]
async fn explicit_zero_workers_are_honoured() {
    let h = Harness::start().await;
    let endpoint = h
        .create_endpoint(json!({"workers": {"min": 1, "max": 3}}))
        .await
        .body;
    let path = format!("/v2/serverless/{}", id(&endpoint));
    let scaled = h
        .patch(&path, json!({"workers": {"min": 0, "max": 0}}))
        .await;
    assert_eq!(scaled.body["workers"]["min"], 0);
    assert_eq!(scaled.body["workers"]["max"], 0);
    assert_eq!(h.get(&path).await.body["workers"]["max"], 0);
    h.assert_conformant();
}

#[tokio::test]
async fn endpoint_defaults_follow_v2_and_a_container_change_is_a_new_release() {
    let h = Harness::start().await;
    let endpoint = h.create_endpoint(json!({})).await.body;
    assert_eq!(
        endpoint["workers"],
        json!({"min": 0, "max": 3, "idleTimeout": 10})
    );
    assert_eq!(endpoint["flashboot"], "OFF");
    assert_eq!(endpoint["timeout"], 0, "observed 0 when omitted");
    let path = format!("/v2/serverless/{}", id(&endpoint));
    let workers = |v: &Value| v["endpointVersion"].as_u64().unwrap();
    assert_eq!(workers(&h.get(&format!("{path}/workers")).await.body), 1);
    h.patch(&path, json!({"workers": {"max": 5}})).await;
    assert_eq!(
        workers(&h.get(&format!("{path}/workers")).await.body),
        1,
        "scaling is no release"
    );
    h.patch(&path, json!({"image": "img:2"})).await;
    assert_eq!(workers(&h.get(&format!("{path}/workers")).await.body), 2);
    h.assert_conformant();
}

#[tokio::test]
async fn max_workers_across_endpoints_stay_within_the_balance_quota() {
    let h = Harness::with(SimConfig {
        balance: Decimal::from(150),
        ..SimConfig::default()
    })
    .await;
    // $100+ allows 10 workers.
    let six = h.create_endpoint(json!({"workers": {"max": 6}})).await;
    assert_eq!(six.status, StatusCode::CREATED);
    let reply = h.create_endpoint(json!({"workers": {"max": 5}})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("quota of 10")
    );
    // The balance falls to $50: the quota is 5 and the endpoint's 6 are past it, with nothing
    // written. An update that takes no more of the quota (a new image, a lower maximum) goes
    // through; one that raises the maximum does not.
    let first = id(&six.body);
    h.admin("account", json!({"balance": "50"})).await;
    let path = format!("/v2/serverless/{first}");
    let raise = h.patch(&path, json!({"workers": {"max": 8}})).await;
    assert_eq!(raise.status, StatusCode::BAD_REQUEST, "{}", raise.body);
    for body in [
        json!({"image": "img:2"}),
        json!({"workers": {"max": 6}}),
        json!({"workers": {"max": 4}}),
    ] {
        let reply = h.patch(&path, body.clone()).await;
        assert_eq!(reply.status, StatusCode::OK, "{body}: {}", reply.body);
    }
    assert_eq!(h.get(&path).await.body["workers"]["max"], 4);
    h.assert_conformant();
}

#[tokio::test]
async fn the_health_route_counts_the_always_on_workers() {
    let h = Harness::start().await;
    let endpoint = h
        .create_endpoint(json!({"workers": {"min": 2, "max": 3}}))
        .await
        .body;
    let path = format!("/v2/{}/health", id(&endpoint));
    assert_eq!(h.get(&path).await.body["workers"]["initializing"], 2);
    h.advance(60).await;
    let health = h.get(&path).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["workers"]["idle"], 2);
    assert_eq!(health.body["workers"]["ready"], 2);
    assert_eq!(health.body["jobs"]["inQueue"], 0);
}

// ---- money ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_create_needs_one_hour_of_credit() {
    let h = Harness::with(SimConfig {
        balance: "1.50".parse().unwrap(),
        ..SimConfig::default()
    })
    .await;
    let reply = h
        .post(
            "/v2/pods",
            json!({"name": "p", "image": "i", "gpu": {"id": A100}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYMENT_REQUIRED);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Insufficient balance")
    );
    assert!(
        h.get("/v2/pods").await.body["pods"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    h.assert_conformant();
}

#[tokio::test]
async fn one_hour_of_credit_covers_everything_running_and_provisioning_not_each_pod_alone() {
    // $5: one 2 x A100 pod (3.81 USD/h) fits an hour; a second would need 7.63.
    let h = Harness::with(SimConfig {
        balance: "5".parse().unwrap(),
        ..SimConfig::default()
    })
    .await;
    let pod = |name: &str| json!({"name": name, "image": "i", "gpu": {"id": A100, "count": 2}});
    assert_eq!(
        h.post("/v2/pods", pod("a")).await.status,
        StatusCode::CREATED
    );
    let second = h.post("/v2/pods", pod("b")).await;
    assert_eq!(second.status, StatusCode::PAYMENT_REQUIRED);
    let detail = second.body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "Insufficient balance: deploying needs one hour of credit for everything running"
        ),
        "{detail}"
    );
    assert_eq!(
        h.get("/v2/pods").await.body["pods"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    h.assert_conformant();
}

#[tokio::test]
async fn a_create_past_the_spend_limit_is_refused() {
    let h = Harness::start().await;
    h.admin("account", json!({"spendLimit": "5"})).await;
    h.create_pod(json!({"gpu": {"id": A100, "count": 2}})).await;
    let reply = h
        .post(
            "/v2/pods",
            json!({"name": "p", "image": "i", "gpu": {"id": A100, "count": 1}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYMENT_REQUIRED);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("limit of 5 USD/h")
    );
    h.assert_conformant();
}

#[tokio::test]
async fn at_zero_balance_pods_stop_and_those_without_a_network_volume_are_terminated() {
    let h = Harness::with(SimConfig {
        balance: Decimal::from(20),
        ..SimConfig::default()
    })
    .await;
    let volume = h.create_volume(100, "EU-RO-1").await;
    let kept = h
        .create_pod(json!({"mounts": {"network": [{"volumeId": volume, "path": "/v"}]}}))
        .await;
    let lost = h
        .create_pod(json!({"mounts": {"persistent": {"size": 20, "path": "/w"}}}))
        .await;
    h.admin("account", json!({"volumeGraceHours": 48})).await;
    // About $3.8/h: the $20 runs out after about 5 hours.
    h.advance(6 * 3600).await;
    assert_eq!(
        h.get(&format!("/v2/pods/{}", id(&kept))).await.body["status"],
        "EXITED"
    );
    assert_eq!(
        h.get(&format!("/v2/pods/{}", id(&lost))).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(h.balance().await <= Decimal::ZERO);
    assert_eq!(
        h.get(&format!("/v2/network-volumes/{volume}")).await.status,
        StatusCode::OK
    );
    h.advance(48 * 3600).await;
    assert_eq!(
        h.get(&format!("/v2/network-volumes/{volume}")).await.status,
        StatusCode::NOT_FOUND
    );
    h.assert_conformant();
}

#[tokio::test]
async fn graphql_myself_reports_balance_spend_and_limit() {
    let h = Harness::start().await;
    h.create_pod(json!({})).await;
    let reply = h
        .post(
            "/graphql",
            json!({"query": "query { myself { clientBalance currentSpendPerHr spendLimit } }"}),
        )
        .await;
    let myself = &reply.body["data"]["myself"];
    assert_eq!(myself["clientBalance"], 500.0);
    assert_eq!(myself["spendLimit"], 80.0);
    // 1.89 + 50 GB container disk at $0.10/GB/month.
    assert_eq!(myself["currentSpendPerHr"], 1.8969444444);
}

#[tokio::test]
async fn graphql_answers_what_it_does_not_serve_with_200_and_errors() {
    let h = Harness::start().await;
    let reply = h
        .post("/graphql", json!({"query": "query { gpuTypes { id } }"}))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body["errors"][0]["message"].is_string());
    let reply = h
        .post(
            "/graphql",
            json!({"query": "query { myself { pods { id } } }"}),
        )
        .await;
    assert!(
        reply.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("pods")
    );
}

#[tokio::test]
async fn a_mixed_account_over_30_days_bills_to_the_cent() {
    let h = Harness::with(SimConfig {
        balance: Decimal::from(5000),
        ..SimConfig::default()
    })
    .await;
    // A100 pod, 50 GB disk, 100 GB volume, running 30 days: 1.89 x 720 + 5 + 10 = 1375.80.
    h.create_pod(json!({"disk": 50, "mounts": {"persistent": {"size": 100, "path": "/w"}}}))
        .await;
    // Two 4090s, 20 GB disk, 50 GB volume: 10 days running (331.20 + 0.67 + 1.67), then
    // 20 days stopped (50 GB x $0.20 x 2/3 = 6.67): 340.20.
    let b = h
        .create_pod(
            json!({"gpu": {"id": "NVIDIA GeForce RTX 4090", "count": 2}, "disk": 20,
                           "mounts": {"persistent": {"size": 50, "path": "/w"}}}),
        )
        .await;
    // 2048 GB network volume: 1024 x 0.07 + 1024 x 0.05 = 122.88.
    h.create_volume(2048, "EU-RO-1").await;
    // One active L40S-class worker (ADA_48_PRO at $0.00037/s) with 20 GB disk: 959.04 + 2.00.
    let endpoint = h
        .create_endpoint(
            json!({"gpu": {"pools": ["ADA_48_PRO"]}, "workers": {"min": 1, "max": 2}, "disk": 20}),
        )
        .await;
    assert_eq!(endpoint.status, StatusCode::CREATED, "{}", endpoint.body);

    h.advance(10 * 24 * 3600).await;
    h.post(
        &format!("/v2/pods/{}/action", id(&b)),
        json!({"action": "stop"}),
    )
    .await;
    h.advance(20 * 24 * 3600).await;

    let total = |reply: Reply| -> Decimal {
        reply.body["metadata"]["totals"]["totalAmount"]
            .to_string()
            .parse::<Decimal>()
            .unwrap()
            .round_dp(2)
    };
    let window = "startTime=2026-01-01T00:00:00Z&endTime=2026-02-01T00:00:00Z&bucketSize=day";
    assert_eq!(
        total(h.get(&format!("/v2/billing/pods?{window}")).await),
        "1716.00".parse().unwrap()
    );
    assert_eq!(
        total(h.get(&format!("/v2/billing/serverless?{window}")).await),
        "961.04".parse().unwrap()
    );
    assert_eq!(
        total(
            h.get(&format!("/v2/billing/network-volumes?{window}"))
                .await
        ),
        "122.88".parse().unwrap()
    );
    assert_eq!(h.balance().await.round_dp(2), "2200.08".parse().unwrap());
    let daily = h
        .get(&format!("/v2/billing/pods?{window}&podId={}", id(&b)))
        .await;
    assert_eq!(
        daily.body["records"].as_array().unwrap().len(),
        30,
        "one record per day"
    );
    h.assert_conformant();
}

#[tokio::test]
async fn a_price_change_bills_what_runs_at_the_new_rate_from_that_instant() {
    let h = Harness::start().await;
    // An A100 pod with the default 50 GB container disk: 1.89 + 50 x 0.10 / 720 an hour.
    let pod = h.create_pod(json!({})).await;
    h.advance(3600).await;
    let raised = h
        .admin("prices", json!({"gpuType": A100, "secure": "3.00"}))
        .await;
    assert_eq!(raised.status, 204, "{}", raised.body);
    h.advance(3600).await;
    let catalogue = h.get(&format!("/v2/catalog/gpus/{A100}")).await;
    assert_eq!(
        catalogue.body["price"]["secure"],
        json!(3.0),
        "{}",
        catalogue.body
    );
    let window = "startTime=2026-01-01T00:00:00Z&endTime=2026-01-02T00:00:00Z&bucketSize=hour";
    let billed = h
        .get(&format!("/v2/billing/pods?{window}&podId={}", id(&pod)))
        .await;
    let amounts: Vec<Decimal> = billed.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["totalAmount"]
                .to_string()
                .parse::<Decimal>()
                .unwrap()
                .round_dp(4)
        })
        .collect();
    // Hour one at the old price, hour two at the new; the disk at the same rate throughout.
    assert_eq!(
        amounts,
        [
            "1.8969".parse().unwrap(),
            "3.0069".parse::<Decimal>().unwrap()
        ],
        "{}",
        billed.body
    );
    assert_eq!(
        (Decimal::from(500) - h.balance().await).round_dp(4),
        "4.9039".parse().unwrap()
    );
    // A price that is not positive is refused and changes nothing.
    let bad = h
        .admin("prices", json!({"gpuType": A100, "secure": "0"}))
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body["detail"].as_str().unwrap().contains("secure"));
    h.assert_conformant();
}

#[tokio::test]
async fn an_object_nobody_touches_bills_exactly_while_the_others_change() {
    let h = Harness::start().await;
    let busy = h.create_pod(json!({})).await;
    let quiet = h
        .create_pod(json!({"gpu": {"id": "NVIDIA GeForce RTX 4090", "count": 1}, "disk": 20}))
        .await;
    // Twelve five-minute steps; the busy pod stops and starts on every one of them.
    for step in 0..12 {
        h.advance(300).await;
        let action = if step % 2 == 0 { "stop" } else { "start" };
        let reply = h
            .post(
                &format!("/v2/pods/{}/action", id(&busy)),
                json!({"action": action}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let window = "startTime=2026-01-01T00:00:00Z&endTime=2026-01-02T00:00:00Z&bucketSize=day";
    let billed = h
        .get(&format!("/v2/billing/pods?{window}&podId={}", id(&quiet)))
        .await;
    let total: Decimal = billed.body["metadata"]["totals"]["totalAmount"]
        .to_string()
        .parse()
        .unwrap();
    // One hour of a 4090 (0.69) and 20 GB of container disk (20 x 0.10 / 720).
    let expected =
        Decimal::new(69, 2) + Decimal::from(20) * Decimal::new(10, 2) / Decimal::from(720);
    assert_eq!(total.round_dp(6), expected.round_dp(6), "{}", billed.body);
    h.assert_conformant();
}

#[tokio::test]
async fn the_catalogue_says_each_gpus_memory_and_how_many_fit_a_pod_where_it_is_offered() {
    let h = Harness::start().await;
    let gpus = h.get("/v2/catalog/gpus").await.body["gpus"].clone();
    let find = |id: &str| {
        gpus.as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == id)
            .cloned()
            .unwrap()
    };
    let a100 = find(A100);
    assert_eq!(a100["memory"], 80);
    assert_eq!(a100["maxCount"], json!({"secure": 8, "community": 0}));
    // The L40S serves in a serverless pool but has no Secure Cloud pod price here.
    let l40s = find("NVIDIA L40S");
    assert_eq!(l40s["memory"], 48);
    assert_eq!(l40s["secure"], false);
    assert_eq!(l40s["maxCount"]["secure"], 0);
    h.assert_conformant();
}

// ---- as strict as RunPod ---------------------------------------------------------------------

/// The 422 of a number that does not fit, naming the field.
fn assert_names(reply: &Reply, status: u16, field: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    let text = reply.body.to_string();
    assert!(text.contains(field), "{field} not named: {text}");
}

#[tokio::test]
async fn an_out_of_range_number_is_a_422_naming_the_field_never_a_cast() {
    let h = Harness::start().await;
    let pod = |extra: Value| {
        let mut body = json!({"name": "p", "image": "i", "gpu": {"id": A100, "count": 1}});
        merge(&mut body, extra);
        body
    };
    for (extra, field) in [
        (
            json!({"gpu": {"id": A100, "count": 4_294_967_296u64}}),
            "gpu.count",
        ),
        (json!({"gpu": {"id": A100, "count": 1e30}}), "gpu.count"),
        (json!({"disk": 4_294_967_301u64}), "disk"),
        (
            json!({"mounts": {"persistent": {"size": 4_294_967_316u64, "path": "/w"}}}),
            "mounts.persistent.size",
        ),
    ] {
        assert_names(&h.post("/v2/pods", pod(extra)).await, 422, field);
    }
    assert!(
        h.get("/v2/pods").await.body["pods"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let endpoint = h.create_endpoint(json!({"workers": {"max": 1e30}})).await;
    assert_names(&endpoint, 422, "workers.max");
    h.assert_conformant();
}

#[tokio::test]
async fn the_worker_quota_cannot_be_passed_by_overflow() {
    let h = Harness::start().await;
    let first = h.create_endpoint(json!({"workers": {"max": 3}})).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let second = h
        .create_endpoint(json!({"workers": {"max": 4_294_967_295u64}}))
        .await;
    assert_names(&second, 400, "quota");
    h.assert_conformant();
}

#[tokio::test]
async fn an_endpoint_needs_gpu_or_cpu() {
    let h = Harness::start().await;
    let reply = h
        .post(
            "/v2/serverless",
            json!({"name": "e", "type": "QUEUE", "image": "i",
                   "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4}}),
        )
        .await;
    assert_names(&reply, 400, "gpu");
    h.assert_conformant();
}

#[tokio::test]
async fn an_endpoints_cuda_is_a_list_or_a_minimum_not_both() {
    let h = Harness::start().await;
    let reply = h
        .create_endpoint(json!({"gpu": {"pools": ["AMPERE_80"], "allowedCudaVersions": ["12.4"], "minCudaVersion": "12.4"}}))
        .await;
    assert_names(&reply, 400, "minCudaVersion");
    h.assert_conformant();
}

#[tokio::test]
async fn an_endpoint_excludes_only_types_of_its_pools() {
    let h = Harness::start().await;
    let reply = h
        .create_endpoint(json!({"gpu": {"pools": ["AMPERE_80"], "excludedTypes": ["NVIDIA H200"]}}))
        .await;
    assert_names(&reply, 400, "excludedTypes");
    let fine = h
        .create_endpoint(
            json!({"gpu": {"pools": ["AMPERE_80"], "excludedTypes": ["NVIDIA A100 80GB PCIe"]}}),
        )
        .await;
    assert_eq!(fine.status, StatusCode::CREATED, "{}", fine.body);
    h.assert_conformant();
}

#[tokio::test]
async fn a_load_balancer_endpoint_may_set_its_idle_timeout() {
    let h = Harness::start().await;
    // The REQUEST_COUNT rule on idleTimeout is for queue endpoints.
    let reply = h
        .create_endpoint(json!({"type": "LOAD_BALANCER",
                               "scaling": {"type": "REQUEST_COUNT", "requestCount": 2},
                               "workers": {"idleTimeout": 30}}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    h.assert_conformant();
}

#[tokio::test]
async fn a_pod_goes_only_to_data_centres_that_exist() {
    let h = Harness::start().await;
    let reply = h
        .post(
            "/v2/pods",
            json!({"name": "p", "image": "i", "gpu": {"id": A100, "count": 1},
                   "dataCenterIds": ["XX-1"]}),
        )
        .await;
    assert_names(&reply, 400, "XX-1");
    assert!(
        h.get("/v2/pods").await.body["pods"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    h.assert_conformant();
}

#[tokio::test]
async fn a_pod_has_at_most_the_catalogues_max_count_of_gpus() {
    let h = Harness::start().await;
    let reply = h
        .post(
            "/v2/pods",
            json!({"name": "p", "image": "i",
                   "gpu": {"id": "NVIDIA GeForce RTX 4090", "count": 16}}),
        )
        .await;
    assert_names(&reply, 400, "8");
    assert!(
        h.get("/v2/pods").await.body["pods"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    h.assert_conformant();
}

#[tokio::test]
async fn a_pod_goes_only_to_hosts_whose_cuda_meets_its_constraint() {
    let h = Harness::start().await;
    let pod = |gpu: Value, dcs: Value| json!({"name": "p", "image": "i", "gpu": gpu, "dataCenterIds": dcs});
    for (gpu, dcs) in [
        (
            json!({"id": A100, "allowedCudaVersions": ["99.9"]}),
            json!([]),
        ),
        (json!({"id": A100, "minCudaVersion": "99.0"}), json!([])),
        // US-TX-1's hosts run 12.4.
        (
            json!({"id": A100, "minCudaVersion": "12.5"}),
            json!(["US-TX-1"]),
        ),
    ] {
        let reply = h.post("/v2/pods", pod(gpu, dcs)).await;
        assert_names(&reply, 400, "no longer any instances available");
    }
    let placed = h
        .post(
            "/v2/pods",
            pod(
                json!({"id": A100, "allowedCudaVersions": ["12.4"]}),
                json!([]),
            ),
        )
        .await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
    assert_eq!(placed.body["dataCenterId"], "US-TX-1");
    assert_eq!(placed.body["cudaVersion"], "12.4");
    h.assert_conformant();
}

#[tokio::test]
async fn a_new_pod_goes_through_starting_before_it_runs() {
    let h = Harness::start().await;
    let pod = h.create_pod(json!({})).await;
    assert_eq!(pod["status"], "PROVISIONING");
    // The default boot is 15 s: provisioning (placing, pulling), then starting.
    h.advance(10).await;
    let path = format!("/v2/pods/{}", id(&pod));
    assert_eq!(h.get(&path).await.body["status"], "STARTING");
    h.advance(10).await;
    assert_eq!(h.get(&path).await.body["status"], "RUNNING");
    h.assert_conformant();
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_in_problem_json_with_the_rate_headers() {
    let h = Harness::start().await;
    let big = "x".repeat(3 * 1024 * 1024);
    let reply = h
        .post(
            "/v2/pods",
            json!({"name": big, "image": "i", "gpu": {"id": A100}}),
        )
        .await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    assert!(
        reply.headers.contains_key("ratelimit"),
        "{:?}",
        reply.headers
    );
    assert!(reply.headers.contains_key("ratelimit-policy"));
    let reply = h.post("/graphql", json!({"query": big})).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    // The serverless host takes 10 MB on /run and 20 MB on /runsync.
    let eleven = "x".repeat(11 * 1024 * 1024);
    let reply = h
        .post("/v2/nosuchendpoint/run", json!({"input": {"blob": eleven}}))
        .await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    let reply = h
        .post(
            "/v2/nosuchendpoint/runsync",
            json!({"input": {"blob": eleven}}),
        )
        .await;
    assert_eq!(
        reply.status, 404,
        "read in full, then refused for the unknown endpoint"
    );
    assert!(
        h.get("/v2/pods").await.body["pods"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn query_parameters_are_checked_against_the_spec_like_bodies() {
    let h = Harness::start().await;
    for (path, status, named) in [
        ("/v2/billing/pods?startTime=yesterday", 422, "startTime"),
        ("/v2/billing/pods?lastN=zero", 422, "lastN"),
        ("/v2/billing/pods?lastN=0", 422, "lastN"),
        (
            "/v2/pods?includeClusterPods=maybe",
            422,
            "includeClusterPods",
        ),
        ("/v2/catalog/gpus?minCudaVersion=abc", 422, "minCudaVersion"),
        (
            "/v2/billing/pods?lastN=2&startTime=2026-01-01T00:00:00Z",
            400,
            "mutually exclusive",
        ),
        ("/v2/catalog/gpus?count=2", 400, "include=AVAILABILITY"),
        ("/v2/catalog/gpus?include=AVAILABILITY", 400, "product"),
    ] {
        let reply = h.get(path).await;
        assert_names(&reply, status, named);
        assert_eq!(
            reply.headers["content-type"], "application/problem+json",
            "{path}"
        );
    }
    for path in [
        "/v2/billing/pods?bucketSize=day&startTime=2026-01-01T00%3A00%3A00Z",
        "/v2/billing/pods?lastN=3&bucketSize=hour",
        "/v2/pods?includeClusterPods=false",
        "/v2/catalog/gpus?include=AVAILABILITY&product=POD&count=2",
        "/v2/pods?somethingRunPodIgnores=1",
    ] {
        assert_eq!(h.get(path).await.status, 200, "{path}");
    }
    h.assert_conformant();
}

#[tokio::test]
async fn routes_of_the_spec_it_does_not_simulate_say_so_in_problem_json() {
    let h = Harness::start().await;
    for (method, path) in [
        (Method::POST, "/v2/registries/delegations"),
        (Method::GET, "/v2/templates"),
        (Method::GET, "/v2/account/ssh-keys"),
        (Method::GET, "/v2/catalog/cpus"),
        (Method::GET, "/v2/serverless/abc/releases"),
    ] {
        let reply = h.call(method.clone(), path, None).await;
        assert_eq!(reply.status, 501, "{method} {path}: {}", reply.body);
        assert!(
            reply.body["detail"]
                .as_str()
                .unwrap()
                .contains("not simulated"),
            "{}",
            reply.body
        );
        assert_eq!(
            reply.headers["content-type"], "application/problem+json",
            "{method} {path}"
        );
    }
}

// ---- rate limits and faults ---------------------------------------------------------------------

#[tokio::test]
async fn every_authenticated_answer_carries_the_rate_limit_headers() {
    let h = Harness::start().await;
    let reply = h.get("/v2/pods").await;
    assert_eq!(reply.headers["ratelimit-policy"], "\"minute\";q=6000;w=60");
    assert!(
        reply.headers["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"minute\";r=5999;t=")
    );
}

#[tokio::test]
async fn over_quota_answers_429_with_retry_after() {
    let h = Harness::start().await;
    h.admin("account", json!({"requestsPerMinute": 3})).await;
    for _ in 0..3 {
        assert_eq!(h.get("/v2/pods").await.status, StatusCode::OK);
    }
    let reply = h.get("/v2/pods").await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert!(
        reply.headers["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"minute\";r=0;")
    );
    h.assert_conformant();
}

#[tokio::test]
async fn an_injected_5xx_hits_only_the_matching_requests() {
    let h = Harness::start().await;
    let rules = json!({"rules": [{"method": "GET", "path": "/v2/pods", "kind": "status", "status": 502, "count": 2}]});
    assert_eq!(
        h.call(Method::PUT, "/_sim/faults", Some(rules))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.get("/v2/pods").await.status, StatusCode::BAD_GATEWAY);
    assert_eq!(h.get("/v2/network-volumes").await.status, StatusCode::OK);
    assert_eq!(h.get("/v2/pods").await.status, StatusCode::BAD_GATEWAY);
    assert_eq!(h.get("/v2/pods").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_500_after_create_leaves_the_pod_running() {
    let h = Harness::start().await;
    let rules = json!({"rules": [{"method": "POST", "path": "/v2/pods", "kind": "afterCreate", "count": 1}]});
    h.call(Method::PUT, "/_sim/faults", Some(rules)).await;
    let reply = h
        .post(
            "/v2/pods",
            json!({"name": "p", "image": "i", "gpu": {"id": A100}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    let pods = h.get("/v2/pods").await.body["pods"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(pods.len(), 1, "the pod exists and bills");
    assert_eq!(pods[0]["name"], "p");
}

#[tokio::test]
async fn seeded_fault_draws_repeat() {
    async fn run() -> Vec<u16> {
        let h = Harness::start().await;
        let rules = json!({"rules": [{"path": "/v2/pods", "kind": "status", "probability": 0.5}]});
        h.call(Method::PUT, "/_sim/faults", Some(rules)).await;
        let mut statuses = Vec::new();
        for _ in 0..20 {
            statuses.push(h.get("/v2/pods").await.status.as_u16());
        }
        statuses
    }
    let first = run().await;
    assert_eq!(first, run().await);
    assert!(first.contains(&503) && first.contains(&200), "{first:?}");
}

#[tokio::test]
async fn the_console_edits_behind_the_operators_back_without_spending_its_budget() {
    let h = Harness::start().await;
    let endpoint = h.create_endpoint(json!({"workers": {"max": 3}})).await.body;
    h.admin("account", json!({"requestsPerMinute": 1})).await;
    let edit = h
        .patch(
            &format!("/_sim/console/v2/serverless/{}", id(&endpoint)),
            json!({"workers": {"max": 1}}),
        )
        .await;
    assert_eq!(edit.status, StatusCode::OK);
    assert_eq!(
        h.get(&format!("/v2/serverless/{}", id(&endpoint)))
            .await
            .body["workers"]["max"],
        1
    );
}

#[tokio::test]
async fn the_request_log_counts_calls_by_route() {
    let h = Harness::start().await;
    h.get("/v2/pods").await;
    h.get("/v2/serverless").await;
    let log = h.get("/_sim/requests").await.body;
    let calls: Vec<_> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(calls, ["/v2/pods", "/v2/serverless"]);
}

// ---- serverless workers and jobs ----------------------------------------------------------------

async fn health(h: &Harness, endpoint: &str) -> Value {
    h.get(&format!("/v2/{endpoint}/health")).await.body
}

async fn run_job(h: &Harness, endpoint: &str, input: Value) -> String {
    let reply = h
        .post(&format!("/v2/{endpoint}/run"), json!({"input": input}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["status"], "IN_QUEUE");
    id(&reply.body)
}

async fn spend(h: &Harness) -> f64 {
    let reply = h
        .post(
            "/graphql",
            json!({"query": "query { myself { currentSpendPerHr } }"}),
        )
        .await;
    reply.body["data"]["myself"]["currentSpendPerHr"]
        .as_f64()
        .unwrap()
}

#[tokio::test]
async fn active_workers_are_always_on_and_bill_at_the_active_rate() {
    let h = Harness::start().await;
    let endpoint = id(&h
        .create_endpoint(json!({"workers": {"min": 2, "max": 3}, "disk": 1}))
        .await
        .body);
    let workers = h
        .get(&format!("/v2/serverless/{endpoint}/workers"))
        .await
        .body;
    assert_eq!(workers["summary"]["initializing"], 2);
    h.advance(30).await;
    assert_eq!(health(&h, &endpoint).await["workers"]["idle"], 2);
    // 2 x ($0.00060/s x 3600 + 1 GB of disk at $0.10/GB/month), cold start included.
    let expected = 2.0 * (0.00060 * 3600.0 + 0.10 / 720.0);
    let spent = spend(&h).await;
    assert!((spent - expected).abs() < 1e-9, "{spent} vs {expected}");
    h.assert_conformant();
}

#[tokio::test]
async fn the_seed_burst_cold_starts_flex_workers_and_bills_start_to_stop() {
    let h = Harness::start().await;
    h.admin(
        "serverless",
        json!({"coldStartSeconds": 20, "jobSeconds": 3}),
    )
    .await;
    let endpoint = id(&h
        .create_endpoint(json!({"workers": {"max": 30, "idleTimeout": 5}, "disk": 20,
                                "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4}}))
        .await
        .body);
    for i in 0..30 {
        run_job(&h, &endpoint, json!({"image": i})).await;
    }
    assert_eq!(health(&h, &endpoint).await["jobs"]["inQueue"], 30);
    assert_eq!(
        health(&h, &endpoint).await["workers"]["initializing"],
        0,
        "flex: nothing until the delay"
    );
    h.advance(4).await;
    assert_eq!(
        health(&h, &endpoint).await["workers"]["initializing"],
        30,
        "every job waited 4 s"
    );
    h.advance(20).await;
    let at_24 = health(&h, &endpoint).await;
    assert_eq!(at_24["workers"]["running"], 30);
    assert_eq!(at_24["jobs"]["inProgress"], 30);
    h.advance(3).await;
    let at_27 = health(&h, &endpoint).await;
    assert_eq!(at_27["jobs"]["completed"], 30);
    assert_eq!(at_27["workers"]["idle"], 30);
    h.advance(5).await;
    assert_eq!(
        health(&h, &endpoint).await["workers"]["idle"],
        0,
        "the idle timeout stopped them"
    );

    // Each worker billed 4 s -> 32 s: 20 s cold start + 3 s work + 5 s idle = 28 s.
    let per_worker_second = 0.00076 + 20.0 * 0.10 / 720.0 / 3600.0;
    let expected = 30.0 * 28.0 * per_worker_second;
    let bill = h.get("/v2/billing/serverless?bucketSize=hour").await.body;
    let billed = bill["metadata"]["totals"]["totalAmount"].as_f64().unwrap();
    assert!(
        (billed - expected).abs() < 1e-6,
        "billed {billed}, expected {expected}"
    );
    h.assert_conformant();
}

/// Issue 12 item 7: a traffic pattern plays on the virtual clock in one request, and
/// `/health` and the bill follow the jobs played.
#[tokio::test]
async fn a_traffic_pattern_plays_a_day_in_one_request_and_the_bill_follows_it() {
    let h = Harness::start().await;
    h.admin("serverless", json!({"coldStartSeconds": 20})).await;
    let endpoint = id(&h
        .create_endpoint(json!({"workers": {"max": 3, "idleTimeout": 5}, "disk": 1,
                                "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4}}))
        .await
        .body);
    // One 600 s job an hour, none at noon (UTC).
    let mut pattern = vec![1; 24];
    pattern[12] = 0;
    let played = h
        .admin(
            "traffic",
            json!({"endpointId": endpoint, "hours": 24, "jobsPerHour": pattern, "jobSeconds": 600}),
        )
        .await;
    assert_eq!(played.status, StatusCode::OK, "{}", played.body);
    assert_eq!(played.body["jobs"], 23);
    let at_end = health(&h, &endpoint).await;
    assert_eq!(at_end["jobs"]["completed"], 23, "{at_end}");
    assert_eq!(at_end["workers"]["running"], 0, "{at_end}");
    // Each job waits the 4 s queue delay; its worker is billed 20 s cold start + 600 s + 5 s
    // idle = 625 s at the A100's 0.00076 USD/s, with its 1 GB of container disk.
    let bill = h.get("/v2/billing/serverless?bucketSize=hour").await.body;
    let gpu = bill["metadata"]["totals"]["gpuAmount"].as_f64().unwrap();
    let expected = 23.0 * 625.0 * (0.00076 + 0.10 / 720.0 / 3600.0);
    assert!(
        (gpu - expected).abs() < 1e-6,
        "billed {gpu}, expected {expected}"
    );
    // 23 hourly buckets billed, noon's empty.
    assert_eq!(bill["records"].as_array().unwrap().len(), 23, "{bill}");

    // Bad patterns are refused with the field.
    for (body, field) in [
        (
            json!({"endpointId": endpoint, "hours": 0, "jobsPerHour": 1, "jobSeconds": 1}),
            "hours",
        ),
        (
            json!({"endpointId": endpoint, "hours": 1, "jobsPerHour": [1, 2], "jobSeconds": 1}),
            "jobsPerHour",
        ),
        (
            json!({"endpointId": endpoint, "hours": 1, "jobsPerHour": 99999, "jobSeconds": 1}),
            "jobsPerHour",
        ),
        (
            json!({"endpointId": endpoint, "hours": 1, "jobsPerHour": 1, "jobSeconds": -1}),
            "jobSeconds",
        ),
    ] {
        let reply = h.admin("traffic", body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(reply.body.to_string().contains(field), "{}", reply.body);
    }
    let reply = h
        .admin(
            "traffic",
            json!({"endpointId": "nope", "hours": 1, "jobsPerHour": 1, "jobSeconds": 1}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    h.assert_conformant();
}

/// Bursts: jobs that arrive together at the start of every n-th hour; `/health` shows them
/// running at once, and the bill is theirs.
#[tokio::test]
async fn traffic_bursts_run_at_once_and_the_bill_follows_them() {
    let h = Harness::start().await;
    h.admin("serverless", json!({"coldStartSeconds": 20})).await;
    let endpoint = id(&h
        .create_endpoint(json!({"workers": {"max": 5, "idleTimeout": 5}, "disk": 1,
                                "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4}}))
        .await
        .body);
    // Four hours: a burst of 3 jobs of 300 s every second hour (hours 0 and 2), nothing else.
    let played = h
        .admin(
            "traffic",
            json!({"endpointId": endpoint, "hours": 4, "jobsPerHour": 0, "jobSeconds": 1,
                   "bursts": {"everyHours": 2, "jobs": 3, "jobSeconds": 300}}),
        )
        .await;
    assert_eq!(played.status, StatusCode::OK, "{}", played.body);
    assert_eq!(played.body["jobs"], 6);
    // Three workers each, one per job: 20 s cold start + 300 s + 5 s idle.
    let bill = h.get("/v2/billing/serverless?bucketSize=hour").await.body;
    let gpu = bill["metadata"]["totals"]["gpuAmount"].as_f64().unwrap();
    let expected = 6.0 * 325.0 * (0.00076 + 0.10 / 720.0 / 3600.0);
    assert!(
        (gpu - expected).abs() < 1e-6,
        "billed {gpu}, expected {expected}"
    );
    assert_eq!(bill["records"].as_array().unwrap().len(), 2, "{bill}");
    // A burst of jobs longer than the hour played: at its end all three still run at once.
    let played = h
        .admin(
            "traffic",
            json!({"endpointId": endpoint, "hours": 1, "jobsPerHour": 0, "jobSeconds": 1,
                   "bursts": {"everyHours": 1, "jobs": 3, "jobSeconds": 7200}}),
        )
        .await;
    assert_eq!(played.status, StatusCode::OK, "{}", played.body);
    let now = health(&h, &endpoint).await;
    assert_eq!(now["workers"]["running"], 3, "{now}");
    assert_eq!(now["jobs"]["inProgress"], 3, "{now}");
    // A burst that cannot be read is refused with the field.
    for bursts in [
        json!({"everyHours": 0, "jobs": 3}),
        json!({"everyHours": 1, "jobs": 0}),
        json!({"everyHours": 1, "jobs": 3, "jobSeconds": 0}),
        json!("often"),
    ] {
        let reply = h
            .admin(
                "traffic",
                json!({"endpointId": endpoint, "hours": 1, "jobsPerHour": 0, "jobSeconds": 1,
                       "bursts": bursts}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bursts}");
        assert!(reply.body.to_string().contains("bursts"), "{}", reply.body);
    }
    h.assert_conformant();
}

#[tokio::test]
async fn request_count_scaling_wants_one_worker_per_n_jobs() {
    let h = Harness::start().await;
    let endpoint = id(&h
        .create_endpoint(json!({"workers": {"max": 10}, "scaling": {"type": "REQUEST_COUNT", "requestCount": 2}}))
        .await
        .body);
    for _ in 0..6 {
        run_job(&h, &endpoint, json!({})).await;
    }
    assert_eq!(health(&h, &endpoint).await["workers"]["initializing"], 3);
    h.assert_conformant();
}

#[tokio::test]
async fn max_workers_caps_the_scaler() {
    let h = Harness::start().await;
    let endpoint = id(&h
        .create_endpoint(
            json!({"workers": {"max": 2}, "scaling": {"type": "REQUEST_COUNT", "requestCount": 1}}),
        )
        .await
        .body);
    for _ in 0..5 {
        run_job(&h, &endpoint, json!({})).await;
    }
    assert_eq!(health(&h, &endpoint).await["workers"]["initializing"], 2);
}

#[tokio::test]
async fn a_worker_without_a_free_gpu_is_throttled_and_not_billed() {
    let h = Harness::start().await;
    for gpu in [A100, "NVIDIA A100 80GB PCIe"] {
        h.admin(
            "capacity",
            json!({"gpuType": gpu, "dataCenter": "EU-RO-1", "free": 0}),
        )
        .await;
    }
    let endpoint = id(&h
        .create_endpoint(json!({"workers": {"min": 1, "max": 1}, "dataCenterIds": ["EU-RO-1"]}))
        .await
        .body);
    assert_eq!(health(&h, &endpoint).await["workers"]["throttled"], 1);
    assert_eq!(spend(&h).await, 0.0);
    h.admin(
        "capacity",
        json!({"gpuType": A100, "dataCenter": "EU-RO-1", "free": 1}),
    )
    .await;
    assert_eq!(health(&h, &endpoint).await["workers"]["initializing"], 1);
    assert!(spend(&h).await > 0.0);
    h.assert_conformant();
}

#[tokio::test]
async fn a_job_reports_its_delay_and_execution_time() {
    let h = Harness::start().await;
    h.admin("serverless", json!({"coldStartSeconds": 10})).await;
    let endpoint = id(&h
        .create_endpoint(json!({"workers": {"min": 1, "max": 1}}))
        .await
        .body);
    let job = run_job(&h, &endpoint, json!({"simulatedSeconds": 7})).await;
    h.advance(30).await;
    let status = h.get(&format!("/v2/{endpoint}/status/{job}")).await.body;
    assert_eq!(status["status"], "COMPLETED");
    assert_eq!(status["delayTime"], 10_000);
    assert_eq!(status["executionTime"], 7_000);
    assert_eq!(status["output"]["echo"]["simulatedSeconds"], 7);
}

#[tokio::test]
async fn runsync_answers_with_the_finished_job_when_the_clock_runs() {
    let h = Harness::with(SimConfig {
        speed: 100.0,
        ..SimConfig::default()
    })
    .await;
    h.admin(
        "serverless",
        json!({"coldStartSeconds": 10, "jobSeconds": 2}),
    )
    .await;
    let endpoint = id(&h
        .create_endpoint(
            json!({"workers": {"max": 1}, "scaling": {"type": "REQUEST_COUNT", "requestCount": 1}}),
        )
        .await
        .body);
    let reply = h
        .post(
            &format!("/v2/{endpoint}/runsync?wait=5000"),
            json!({"input": {"x": 1}}),
        )
        .await;
    assert_eq!(reply.body["status"], "COMPLETED", "{}", reply.body);
    assert_eq!(reply.body["executionTime"], 2000);
}

#[tokio::test]
async fn a_container_change_rolls_idle_workers_to_the_new_release() {
    let h = Harness::start().await;
    let endpoint = id(&h
        .create_endpoint(json!({"workers": {"min": 1, "max": 1}}))
        .await
        .body);
    h.advance(30).await;
    let before = h
        .get(&format!("/v2/serverless/{endpoint}/workers"))
        .await
        .body;
    assert_eq!(before["workers"][0]["status"], "IDLE");
    h.patch(
        &format!("/v2/serverless/{endpoint}"),
        json!({"env": {"MODEL": "v2"}}),
    )
    .await;
    let after = h
        .get(&format!("/v2/serverless/{endpoint}/workers"))
        .await
        .body;
    assert_eq!(after["endpointVersion"], 2);
    assert_eq!(after["workers"][0]["version"], 2);
    assert_eq!(after["workers"][0]["status"], "INITIALIZING");
    assert_ne!(after["workers"][0]["id"], before["workers"][0]["id"]);
    h.assert_conformant();
}

#[tokio::test]
async fn deleting_an_endpoint_stops_its_workers_and_billing() {
    let h = Harness::start().await;
    let endpoint = id(&h
        .create_endpoint(json!({"workers": {"min": 2, "max": 2}}))
        .await
        .body);
    assert!(spend(&h).await > 0.0);
    assert_eq!(
        h.delete(&format!("/v2/serverless/{endpoint}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(spend(&h).await, 0.0);
}

#[tokio::test]
async fn a_finished_job_can_be_read_for_30_minutes() {
    let h = Harness::start().await;
    let endpoint = id(&h
        .create_endpoint(json!({"workers": {"min": 1, "max": 1}}))
        .await
        .body);
    let job = run_job(&h, &endpoint, json!({})).await;
    h.advance(60).await;
    assert_eq!(
        h.get(&format!("/v2/{endpoint}/status/{job}")).await.body["status"],
        "COMPLETED"
    );
    h.advance(30 * 60).await;
    assert_eq!(
        h.get(&format!("/v2/{endpoint}/status/{job}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn flashboot_revives_a_worker_fast_only_after_one_has_run() {
    let h = Harness::start().await;
    h.admin(
        "serverless",
        json!({"coldStartSeconds": 20, "flashbootColdStartSeconds": 2, "jobSeconds": 1}),
    )
    .await;
    let endpoint = id(&h
        .create_endpoint(
            json!({"flashboot": "FLASHBOOT", "workers": {"max": 1, "idleTimeout": 1},
                                "scaling": {"type": "QUEUE_DELAY", "queueDelay": 0.5}}),
        )
        .await
        .body);
    run_job(&h, &endpoint, json!({})).await;
    h.advance(2).await;
    assert_eq!(
        health(&h, &endpoint).await["workers"]["initializing"],
        1,
        "the first start is a full cold start"
    );
    h.advance(30).await;
    assert_eq!(health(&h, &endpoint).await["jobs"]["completed"], 1);
    assert_eq!(
        health(&h, &endpoint).await["workers"]["idle"],
        0,
        "scaled back to zero"
    );
    run_job(&h, &endpoint, json!({})).await;
    h.advance(3).await;
    assert_eq!(
        health(&h, &endpoint).await["workers"]["running"],
        1,
        "revived from retained state in 2 s"
    );
}
