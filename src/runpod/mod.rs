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
mod routes;
pub mod types;

use std::{sync::Arc, time::Duration};

use backon::{ExponentialBuilder, Retryable};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

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
    /// Deadline of one call, every retry included: an answer that never comes fails in this
    /// time, not in (timeout x attempts).
    pub call_deadline: Duration,
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
            call_deadline: Duration::from_secs(45),
            max_retries: 4,
            min_retry_delay: Duration::from_millis(200),
            max_retry_delay: Duration::from_secs(10),
        }
    }
}

/// The largest answer read: a list of 10,000 pods is about 20 MB. A bigger body (a hostile or
/// broken proxy) is refused before it fills memory.
pub const MAX_ANSWER_BYTES: usize = 64 << 20;

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

    /// Sends once: waits for the budget, sends, reads the rate-limit headers, decodes. The
    /// call's deadline starts at its first send (time spent waiting for the account's rate
    /// budget is not RunPod failing to answer) and bounds the answer of every attempt.
    async fn send<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        deadline: &std::sync::OnceLock<std::time::Instant>,
    ) -> Result<T, Error> {
        let route = format!("{} {}", call.method, call.route);
        self.budget.acquire(call.priority).await;
        let deadline =
            *deadline.get_or_init(|| std::time::Instant::now() + self.config.call_deadline);
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match tokio::time::timeout(left, self.send_once(call, &route)).await {
            Ok(result) => result,
            Err(_) => {
                self.budget.count(&route, None);
                Err(Error::Transport {
                    route,
                    message: format!(
                        "no answer within {} s (every attempt included)",
                        self.config.call_deadline.as_secs()
                    ),
                })
            }
        }
    }

    async fn send_once<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        route: &str,
    ) -> Result<T, Error> {
        let route = route.to_string();
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
        let text = read_bounded(response, &route).await?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.budget
                .pause_for(retry_after.unwrap_or(Duration::from_secs(1)));
        }
        if !status.is_success() {
            let problem = serde_json::from_str::<Problem>(&text).unwrap_or_else(|_| Problem {
                title: status.canonical_reason().unwrap_or_default().to_string(),
                detail: plain_detail(&text),
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
        let deadline = std::sync::OnceLock::new();
        let before_deadline = || {
            deadline
                .get()
                .is_none_or(|d| std::time::Instant::now() < *d)
        };
        let result = (|| self.send::<T>(&call, &deadline))
            .retry(backoff)
            .when(|e| retryable(e) && before_deadline())
            .adjust(|e: &Error, delay| e.retry_after().or(delay))
            .notify(|e: &Error, delay: Duration| {
                tracing::debug!(route = e.route(), error = %e, ?delay, "retrying RunPod call");
            })
            .await;
        match result {
            // A create that was sent and then failed in transit, or whose success answer could
            // not be read (cut short, not JSON), may have made the object: look before creating.
            Err(e) if !idempotent && (e.is_transient() || matches!(e, Error::Decode { .. })) => {
                Err(Error::OutcomeUnknown {
                    route: e.route().to_string(),
                    cause: Box::new(e),
                })
            }
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

/// Reads an answer's body, at most [`MAX_ANSWER_BYTES`]; more is a decode error (the status
/// is known, the body cannot be trusted).
async fn read_bounded(mut response: reqwest::Response, route: &str) -> Result<String, Error> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(Error::Decode {
                        route: route.to_string(),
                        message: format!(
                            "the answer is larger than {} MiB; it was not read",
                            MAX_ANSWER_BYTES >> 20
                        ),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(Error::Transport {
                    message: transport_message(&e),
                    route: route.to_string(),
                });
            }
        }
    }
    String::from_utf8(body).map_err(|e| Error::Decode {
        route: route.to_string(),
        message: format!(
            "the answer is not UTF-8 text (an invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    })
}

/// An error body that is not RunPod's JSON, in a line: an HTML page (a proxy's or a load
/// balancer's) is named by its title, anything else is cut to 300 characters.
fn plain_detail(text: &str) -> String {
    let trimmed = text.trim_start();
    let lower: String = trimmed
        .chars()
        .take(15)
        .collect::<String>()
        .to_ascii_lowercase();
    if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
        let title = trimmed
            .find("<title>")
            .and_then(|start| {
                let rest = &trimmed[start + 7..];
                rest.find("</title>").map(|end| rest[..end].trim())
            })
            .filter(|t| !t.is_empty())
            .map(|t| format!(": {}", t.chars().take(120).collect::<String>()))
            .unwrap_or_default();
        return format!("an HTML page instead of RunPod's JSON answer{title}");
    }
    let mut detail: String = text.chars().take(300).collect();
    if detail.len() < text.len() {
        detail.push('…');
    }
    detail
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
