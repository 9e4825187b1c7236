//! The RunPod client: the only code that talks to RunPod (REST v2, GraphQL `myself`, and the
//! serverless health route).
//!
//! - One [`Client`] per account, cheap to clone; all clones share one [`Budget`].
//! - Reads, PATCH, DELETE and actions are retried with `backon` (exponential, jittered,
//!   bounded), honouring `Retry-After`. A create is never retried after it may have reached
//!   RunPod: a 5xx or a lost answer becomes [`ErrorClass::OutcomeUnknown`], and the caller
//!   must look the object up (by its deterministic name) before creating again. Only a 429 or
//!   a refused connection, which prove nothing was done, are retried for a create.
//! - The API key is a [`SecretString`], sent only in a sensitive `Authorization` header;
//!   it is in no log, error or `Debug` output.

pub mod budget;
pub mod error;
pub mod types;

use std::{sync::Arc, time::Duration};

use backon::{ExponentialBuilder, Retryable};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

pub use budget::{Budget, BudgetSnapshot, Priority, RouteStats};
pub use error::{Error, ErrorClass, Problem};
use types::*;

/// Where RunPod is and how to talk to it.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// REST v2 base (paths start with `/v2`), e.g. `https://api.runpod.io`.
    pub api_url: String,
    /// GraphQL URL.
    pub graphql_url: String,
    /// Serverless host base.
    pub serverless_url: String,
    /// The API key.
    pub api_key: SecretString,
    /// The account's request budget per minute: a ceiling RunPod's `RateLimit-Policy` may only
    /// lower, or with `follow_runpod` the quota to start from until RunPod announces one.
    pub requests_per_minute: u32,
    /// Whether RunPod's announced quota replaces `requests_per_minute`, up or down (the
    /// account set no budget of its own).
    pub follow_runpod: bool,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries of a safe call after the first attempt.
    pub max_retries: usize,
    /// First retry delay.
    pub min_retry_delay: Duration,
    /// Longest retry delay.
    pub max_retry_delay: Duration,
}

impl ClientConfig {
    /// RunPod's public URLs with this key.
    pub fn new(api_key: SecretString) -> Self {
        Self {
            api_url: crate::api::DEFAULT_API_URL.to_string(),
            graphql_url: crate::api::DEFAULT_GRAPHQL_URL.to_string(),
            serverless_url: crate::api::DEFAULT_SERVERLESS_URL.to_string(),
            api_key,
            requests_per_minute: DEFAULT_REQUESTS_PER_MINUTE,
            follow_runpod: false,
            timeout: Duration::from_secs(30),
            max_retries: 4,
            min_retry_delay: Duration::from_millis(200),
            max_retry_delay: Duration::from_secs(10),
        }
    }
}

/// The request budget an account starts from when it sets none: RunPod's documented default
/// quota, until RunPod announces the account's own.
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 60;

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("failed to build the HTTP client: {0}")]
pub struct BuildError(String);

/// A RunPod client for one account.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
    budget: Arc<Budget>,
    priority: Priority,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("api_url", &self.config.api_url)
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Base {
    Api,
    Serverless,
}

/// One call: what to send and how safe it is to repeat.
struct Call<'a> {
    method: Method,
    base: Base,
    path: String,
    /// The route for errors and metrics, e.g. `GET /v2/pods/{id}`.
    route: &'static str,
    body: Option<Value>,
    query: &'a [(&'a str, String)],
    /// Safe to repeat: reads, PATCH, DELETE, actions.
    idempotent: bool,
    priority: Priority,
}

impl Client {
    /// A client for one account; clones share its budget.
    pub fn new(config: ClientConfig) -> Result<Self, BuildError> {
        let http = crate::tls::http_client_builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| BuildError(e.to_string()))?;
        let budget = if config.follow_runpod {
            Budget::following(config.requests_per_minute)
        } else {
            Budget::new(config.requests_per_minute)
        };
        Ok(Self {
            http,
            config: Arc::new(config),
            budget,
            priority: Priority::Normal,
        })
    }

    /// The same client for money-saving calls (stop, scale down, delete), which may spend the
    /// budget's reserve.
    pub fn saving(&self) -> Self {
        Self {
            priority: Priority::Saving,
            ..self.clone()
        }
    }

    /// The shared budget: quota, what is left, per-route counts.
    pub fn budget(&self) -> BudgetSnapshot {
        self.budget.snapshot()
    }

    fn url(&self, base: Base, path: &str) -> String {
        let root = match base {
            Base::Api => &self.config.api_url,
            Base::Serverless => &self.config.serverless_url,
        };
        format!("{}{path}", root.trim_end_matches('/'))
    }

    /// Sends once: waits for the budget, sends, reads the rate-limit headers, decodes.
    async fn send<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<T, Error> {
        let route = format!("{} {}", call.method, call.route);
        self.budget.acquire(call.priority).await;
        let mut request = self
            .http
            .request(call.method.clone(), self.url(call.base, &call.path))
            .bearer_auth(self.config.api_key.expose_secret());
        if !call.query.is_empty() {
            request = request.query(call.query);
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                self.budget.count(&route, None);
                let message = transport_message(&e);
                tracing::debug!(%route, error = %message, "RunPod call got no answer");
                return Err(Error::Transport { message, route });
            }
        };
        let status = response.status();
        self.budget.observe(response.headers());
        self.budget.count(&route, Some(status.as_u16()));
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        tracing::debug!(%route, status = status.as_u16(), "RunPod call");
        let text = response.text().await.map_err(|e| Error::Transport {
            message: transport_message(&e),
            route: route.clone(),
        })?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.budget
                .pause_for(retry_after.unwrap_or(Duration::from_secs(1)));
        }
        if !status.is_success() {
            let problem = serde_json::from_str::<Problem>(&text).unwrap_or_else(|_| Problem {
                title: status.canonical_reason().unwrap_or_default().to_string(),
                detail: text.chars().take(500).collect(),
                errors: Vec::new(),
            });
            return Err(Error::Api {
                route,
                status: status.as_u16(),
                problem,
                retry_after,
            });
        }
        let text = if text.is_empty() { "null" } else { &text };
        serde_json::from_str(text).map_err(|e| Error::Decode {
            route,
            message: e.to_string(),
        })
    }

    /// Runs a call with the retry rule: safe calls retry transient failures; a create retries
    /// only failures that prove nothing was done, and otherwise reports the outcome unknown.
    async fn call<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, Error> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.min_retry_delay)
            .with_max_delay(self.config.max_retry_delay)
            .with_max_times(self.config.max_retries)
            .with_jitter();
        let idempotent = call.idempotent;
        let retryable = move |e: &Error| {
            if idempotent {
                e.is_transient()
            } else {
                e.status() == Some(429)
                    || matches!(e, Error::Transport { message, .. } if message.starts_with("connection refused"))
            }
        };
        let result = (|| self.send::<T>(&call))
            .retry(backoff)
            .when(retryable)
            .adjust(|e: &Error, delay| e.retry_after().or(delay))
            .notify(|e: &Error, delay: Duration| {
                tracing::debug!(route = e.route(), error = %e, ?delay, "retrying RunPod call");
            })
            .await;
        match result {
            Err(e) if !idempotent && (e.is_transient()) => Err(Error::OutcomeUnknown {
                route: e.route().to_string(),
                cause: Box::new(e),
            }),
            other => other,
        }
    }

    fn get<'a>(
        &self,
        path: String,
        route: &'static str,
        query: &'a [(&'a str, String)],
    ) -> Call<'a> {
        Call {
            method: Method::GET,
            base: Base::Api,
            path,
            route,
            body: None,
            query,
            idempotent: true,
            priority: self.priority,
        }
    }

    fn with_body(
        &self,
        method: Method,
        path: String,
        route: &'static str,
        body: impl Serialize,
    ) -> Call<'static> {
        let idempotent = method != Method::POST;
        Call {
            method,
            base: Base::Api,
            path,
            route,
            body: Some(serde_json::to_value(body).unwrap_or(Value::Null)),
            query: &[],
            idempotent,
            priority: self.priority,
        }
    }

    fn delete(&self, path: String, route: &'static str) -> Call<'static> {
        Call {
            method: Method::DELETE,
            base: Base::Api,
            path,
            route,
            body: None,
            query: &[],
            idempotent: true,
            // Deleting always saves money.
            priority: Priority::Saving,
        }
    }

    // ---- pods ----------------------------------------------------------------------------

    /// Every pod of the account (one call: the inventory refresh).
    pub async fn list_pods(&self) -> Result<Vec<Pod>, Error> {
        #[derive(serde::Deserialize)]
        struct List {
            pods: Vec<Pod>,
        }
        let list: List = self
            .call(self.get("/v2/pods".into(), "/v2/pods", &[]))
            .await?;
        Ok(list.pods)
    }

    /// One pod.
    pub async fn get_pod(&self, id: &str) -> Result<Pod, Error> {
        self.call(self.get(format!("/v2/pods/{id}"), "/v2/pods/{id}", &[]))
            .await
    }

    /// Creates a pod. Never retried once it may have reached RunPod.
    pub async fn create_pod(&self, request: &CreatePod) -> Result<Pod, Error> {
        self.call(self.with_body(Method::POST, "/v2/pods".into(), "/v2/pods", request))
            .await
    }

    /// Changes a pod (a container change resets it).
    pub async fn update_pod(&self, id: &str, request: &UpdatePod) -> Result<Pod, Error> {
        self.call(self.with_body(
            Method::PATCH,
            format!("/v2/pods/{id}"),
            "/v2/pods/{id}",
            request,
        ))
        .await
    }

    /// Deletes a pod and its pod volume.
    pub async fn delete_pod(&self, id: &str) -> Result<(), Error> {
        self.call(self.delete(format!("/v2/pods/{id}"), "/v2/pods/{id}"))
            .await
    }

    /// Starts, stops, restarts or terminates a pod. Returns the pod, or `None` once it is
    /// terminated.
    pub async fn pod_action(&self, id: &str, action: PodAction) -> Result<Option<Pod>, Error> {
        let mut call = self.with_body(
            Method::POST,
            format!("/v2/pods/{id}/action"),
            "/v2/pods/{id}/action",
            json!({ "action": action }),
        );
        // An action names its target: repeating it is safe (a repeat gets 409 at worst).
        call.idempotent = true;
        if matches!(action, PodAction::Stop | PodAction::Terminate) {
            call.priority = Priority::Saving;
        }
        self.call(call).await
    }

    // ---- serverless endpoints ------------------------------------------------------------

    /// Every endpoint of the account.
    pub async fn list_endpoints(&self) -> Result<Vec<Endpoint>, Error> {
        #[derive(serde::Deserialize)]
        struct List {
            endpoints: Vec<Endpoint>,
        }
        let list: List = self
            .call(self.get("/v2/serverless".into(), "/v2/serverless", &[]))
            .await?;
        Ok(list.endpoints)
    }

    /// One endpoint.
    pub async fn get_endpoint(&self, id: &str) -> Result<Endpoint, Error> {
        self.call(self.get(format!("/v2/serverless/{id}"), "/v2/serverless/{id}", &[]))
            .await
    }

    /// Creates an endpoint. Never retried once it may have reached RunPod.
    pub async fn create_endpoint(&self, request: &CreateEndpoint) -> Result<Endpoint, Error> {
        self.call(self.with_body(
            Method::POST,
            "/v2/serverless".into(),
            "/v2/serverless",
            request,
        ))
        .await
    }

    /// Changes an endpoint. Zeros are sent (`workers.min: 0` reaches RunPod).
    pub async fn update_endpoint(
        &self,
        id: &str,
        request: &UpdateEndpoint,
    ) -> Result<Endpoint, Error> {
        self.call(self.with_body(
            Method::PATCH,
            format!("/v2/serverless/{id}"),
            "/v2/serverless/{id}",
            request,
        ))
        .await
    }

    /// Deletes an endpoint: its workers stop and queued jobs are cancelled.
    pub async fn delete_endpoint(&self, id: &str) -> Result<(), Error> {
        self.call(self.delete(format!("/v2/serverless/{id}"), "/v2/serverless/{id}"))
            .await
    }

    /// An endpoint's workers.
    pub async fn endpoint_workers(&self, id: &str) -> Result<EndpointWorkers, Error> {
        self.call(self.get(
            format!("/v2/serverless/{id}/workers"),
            "/v2/serverless/{id}/workers",
            &[],
        ))
        .await
    }

    /// The live counters of an endpoint (`/v2/{id}/health` on the serverless host).
    pub async fn endpoint_health(&self, id: &str) -> Result<Health, Error> {
        let mut call = self.get(format!("/v2/{id}/health"), "/v2/{endpointId}/health", &[]);
        call.base = Base::Serverless;
        self.call(call).await
    }

    // ---- network volumes -------------------------------------------------------------------

    /// Every network volume of the account.
    pub async fn list_network_volumes(&self) -> Result<Vec<NetworkVolume>, Error> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct List {
            network_volumes: Vec<NetworkVolume>,
        }
        let list: List = self
            .call(self.get("/v2/network-volumes".into(), "/v2/network-volumes", &[]))
            .await?;
        Ok(list.network_volumes)
    }

    /// One network volume.
    pub async fn get_network_volume(&self, id: &str) -> Result<NetworkVolume, Error> {
        self.call(self.get(
            format!("/v2/network-volumes/{id}"),
            "/v2/network-volumes/{id}",
            &[],
        ))
        .await
    }

    /// Creates a network volume. Never retried once it may have reached RunPod.
    pub async fn create_network_volume(
        &self,
        request: &CreateNetworkVolume,
    ) -> Result<NetworkVolume, Error> {
        self.call(self.with_body(
            Method::POST,
            "/v2/network-volumes".into(),
            "/v2/network-volumes",
            request,
        ))
        .await
    }

    /// Renames or grows a network volume.
    pub async fn update_network_volume(
        &self,
        id: &str,
        request: &UpdateNetworkVolume,
    ) -> Result<NetworkVolume, Error> {
        self.call(self.with_body(
            Method::PATCH,
            format!("/v2/network-volumes/{id}"),
            "/v2/network-volumes/{id}",
            request,
        ))
        .await
    }

    /// Deletes a network volume (refused while attached).
    pub async fn delete_network_volume(&self, id: &str) -> Result<(), Error> {
        self.call(self.delete(
            format!("/v2/network-volumes/{id}"),
            "/v2/network-volumes/{id}",
        ))
        .await
    }

    // ---- registries ----------------------------------------------------------------------------

    /// Every registry credential (names only).
    pub async fn list_registries(&self) -> Result<Vec<Registry>, Error> {
        #[derive(serde::Deserialize)]
        struct List {
            registries: Vec<Registry>,
        }
        let list: List = self
            .call(self.get("/v2/registries".into(), "/v2/registries", &[]))
            .await?;
        Ok(list.registries)
    }

    /// One registry credential.
    pub async fn get_registry(&self, id: &str) -> Result<Registry, Error> {
        self.call(self.get(format!("/v2/registries/{id}"), "/v2/registries/{id}", &[]))
            .await
    }

    /// Creates a registry credential. Never retried once it may have reached RunPod.
    pub async fn create_registry(&self, request: &CreateRegistry) -> Result<Registry, Error> {
        self.call(self.with_body(
            Method::POST,
            "/v2/registries".into(),
            "/v2/registries",
            request,
        ))
        .await
    }

    /// Deletes a registry credential.
    pub async fn delete_registry(&self, id: &str) -> Result<(), Error> {
        self.call(self.delete(format!("/v2/registries/{id}"), "/v2/registries/{id}"))
            .await
    }

    // ---- catalogue, billing, account -------------------------------------------------------------

    /// GPU types with prices and pools.
    pub async fn catalog_gpus(&self) -> Result<Vec<CatalogGpu>, Error> {
        #[derive(serde::Deserialize)]
        struct List {
            gpus: Vec<CatalogGpu>,
        }
        let list: List = self
            .call(self.get("/v2/catalog/gpus".into(), "/v2/catalog/gpus", &[]))
            .await?;
        Ok(list.gpus)
    }

    /// Data centres.
    pub async fn catalog_datacenters(&self) -> Result<Vec<DataCenter>, Error> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct List {
            data_centers: Vec<DataCenter>,
        }
        let list: List = self
            .call(self.get(
                "/v2/catalog/datacenters".into(),
                "/v2/catalog/datacenters",
                &[],
            ))
            .await?;
        Ok(list.data_centers)
    }

    /// Billing records of pods, serverless endpoints or network volumes (`kind` is `pods`,
    /// `serverless` or `network-volumes`).
    pub async fn billing(&self, kind: BillingKind, query: &BillingQuery) -> Result<Billing, Error> {
        let mut params = Vec::new();
        if let Some(v) = &query.start_time {
            params.push(("startTime", v.clone()));
        }
        if let Some(v) = &query.end_time {
            params.push(("endTime", v.clone()));
        }
        if let Some(v) = &query.bucket_size {
            params.push(("bucketSize", v.clone()));
        }
        let (path, route, id_param) = match kind {
            BillingKind::Pods => ("/v2/billing/pods", "/v2/billing/pods", "podId"),
            BillingKind::Serverless => (
                "/v2/billing/serverless",
                "/v2/billing/serverless",
                "serverlessId",
            ),
            BillingKind::NetworkVolumes => (
                "/v2/billing/network-volumes",
                "/v2/billing/network-volumes",
                "networkVolumeId",
            ),
        };
        if let Some(id) = &query.id {
            params.push((id_param, id.clone()));
        }
        self.call(self.get(path.into(), route, &params)).await
    }

    /// Balance, spend per hour and spend limit (GraphQL `myself`, the only source of them).
    pub async fn account(&self) -> Result<Account, Error> {
        #[derive(serde::Deserialize)]
        struct Reply {
            data: Option<Data>,
            #[serde(default)]
            errors: Vec<GraphQlError>,
        }
        #[derive(serde::Deserialize)]
        struct Data {
            myself: Account,
        }
        #[derive(serde::Deserialize)]
        struct GraphQlError {
            message: String,
        }
        let call = Call {
            method: Method::POST,
            base: Base::Api,
            path: String::new(),
            route: "/graphql myself",
            body: Some(
                json!({"query": "query { myself { clientBalance currentSpendPerHr spendLimit } }"}),
            ),
            query: &[],
            // A query: safe to repeat.
            idempotent: true,
            priority: self.priority,
        };
        let reply: Reply = self.call_graphql(call).await?;
        match (reply.data, reply.errors.first()) {
            (_, Some(e)) => Err(Error::GraphQl {
                route: "POST /graphql myself".into(),
                message: e.message.clone(),
            }),
            (Some(data), None) => Ok(data.myself),
            (None, None) => Err(Error::Decode {
                route: "POST /graphql myself".into(),
                message: "neither data nor errors".into(),
            }),
        }
    }

    async fn call_graphql<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, Error> {
        // GraphQL has its own URL; reuse the pipeline with the API base swapped for it.
        let client = Self {
            config: Arc::new(ClientConfig {
                api_url: self.config.graphql_url.clone(),
                ..(*self.config).clone()
            }),
            ..self.clone()
        };
        client.call(call).await
    }
}

/// Which billing route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillingKind {
    /// `/v2/billing/pods`.
    Pods,
    /// `/v2/billing/serverless`.
    Serverless,
    /// `/v2/billing/network-volumes`.
    NetworkVolumes,
}

/// A transport error in words, without the URL (whose query could carry secrets elsewhere).
fn transport_message(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection refused"
    } else if e.is_body() || e.is_decode() {
        "broken answer body"
    } else {
        "request failed"
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}
