//! `RunPodAccount`: where the API key lives, the account-wide caps and the credit policy.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{StoppedVolumePolicy, Usd};

/// RunPod's REST v2 base URL.
pub const DEFAULT_API_URL: &str = "https://api.runpod.io";
/// RunPod's GraphQL URL (the only source of balance, spend per hour and spend limit).
pub const DEFAULT_GRAPHQL_URL: &str = "https://api.runpod.io/graphql";
/// The base of RunPod's serverless job and health routes.
pub const DEFAULT_SERVERLESS_URL: &str = "https://api.runpod.ai";
/// RunPod's default account spend limit, USD per hour.
pub const DEFAULT_ACCOUNT_CAP_USD_PER_HOUR: &str = "80";

/// A RunPod account: its API key, the URLs to reach it, and the rules that protect its money.
/// Cluster-scoped; workloads name it in `spec.accountRef` (default `default`).
// Each printcolumn(...) repeats `type_`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "runpod-operator.dev",
    version = "v1alpha1",
    kind = "RunPodAccount",
    doc = "A RunPod account: its API key, the URLs to reach it, and the account-wide spending cap and credit policy.",
    shortname = "rpa",
    category = "runpod",
    status = "RunPodAccountStatus",
    cel,
    printcolumn(name = "Balance", type_ = "string", json_path = ".status.balance"),
    printcolumn(name = "$/h", type_ = "string", json_path = ".status.spendPerHour"),
    printcolumn(
        name = "Runway(h)",
        type_ = "string",
        json_path = ".status.runwayHours"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RunPodAccountSpec {
    /// The Secret that holds the RunPod API key.
    pub api_key_secret_ref: SecretReference,

    /// RunPod's REST v2 base URL. Override it to point at the simulator.
    #[serde(default = "api_url")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("spec.apiUrl must be an http(s) URL such as https://api.runpod.io"))]
    pub api_url: String,

    /// RunPod's GraphQL URL, used only for balance, spend per hour and spend limit.
    #[serde(default = "graphql_url")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("spec.graphqlUrl must be an http(s) URL such as https://api.runpod.io/graphql"))]
    pub graphql_url: String,

    /// The base of RunPod's serverless job and health routes.
    #[serde(default = "serverless_url")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("spec.serverlessUrl must be an http(s) URL such as https://api.runpod.ai"))]
    pub serverless_url: String,

    /// The most every workload of the account together may cost per hour, in USD. Default
    /// `"80"`, RunPod's own default spend limit, so the operator refuses before RunPod does.
    #[serde(default = "account_cap")]
    pub spending_cap_usd_per_hour: Usd,

    /// What to do when credit runs low.
    #[serde(default)]
    pub credit_policy: CreditPolicy,

    /// The stopped-volume policy of pods that set none. Unset: alert after 24 hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_stopped_volume_policy: Option<StoppedVolumePolicy>,

    /// Seconds between full inventory refreshes from RunPod (RunPod sends no events).
    /// Default 60, at least 10.
    #[serde(default = "resync")]
    #[x_kube(validation = Rule::new("self >= 10 && self <= 86400").message("spec.resyncIntervalSeconds must be between 10 and 86400"))]
    pub resync_interval_seconds: u32,

    /// The most RunPod API requests per minute the operator makes for this account, shared by
    /// every caller: a ceiling RunPod's announced quota (`RateLimit-Policy`) may only lower.
    /// Unset: the operator follows what RunPod announces, up or down, starting at 60 a minute
    /// until RunPod's first answer says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("spec.requestsPerMinute must be at least 1"))]
    pub requests_per_minute: Option<u32>,

    /// Seconds between reads of RunPod's price catalogue (`GET /v2/catalog/gpus`); the money
    /// rules of the account's workloads use what it says. Until the first read succeeds, and
    /// for a GPU type the catalogue leaves out, the operator's built-in snapshot. The CLI keeps
    /// the catalogue it read for as long between commands (`--refresh-prices` reads it now).
    /// Default 3600, between 10 and 86400.
    #[serde(default = "price_refresh")]
    #[x_kube(validation = Rule::new("self >= 10 && self <= 86400").message("spec.priceRefreshIntervalSeconds must be between 10 and 86400"))]
    pub price_refresh_interval_seconds: u32,
}

fn api_url() -> String {
    DEFAULT_API_URL.to_string()
}
fn graphql_url() -> String {
    DEFAULT_GRAPHQL_URL.to_string()
}
fn serverless_url() -> String {
    DEFAULT_SERVERLESS_URL.to_string()
}
fn account_cap() -> Usd {
    DEFAULT_ACCOUNT_CAP_USD_PER_HOUR
        .parse()
        .expect("the default account cap is a valid amount")
}
fn resync() -> u32 {
    60
}
/// The default of `spec.priceRefreshIntervalSeconds`: RunPod's prices change rarely.
pub const DEFAULT_PRICE_REFRESH_SECONDS: u32 = 3600;
fn price_refresh() -> u32 {
    DEFAULT_PRICE_REFRESH_SECONDS
}

/// A key in a Secret in a named namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
    /// The key that holds the API key. Default `apiKey`.
    #[serde(default = "api_key")]
    pub key: String,
}

fn api_key() -> String {
    "apiKey".to_string()
}

/// What the operator does when the balance runs low.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CreditPolicy {
    /// Hours of current spend the balance must cover before the policy acts. Default 24.
    #[serde(default = "runway")]
    #[x_kube(validation = Rule::new("self >= 1").message("spec.creditPolicy.minimumRunwayHours must be at least 1"))]
    pub minimum_runway_hours: u32,
    /// `Alert` (default): set `InsufficientCredit` and create or scale up nothing new.
    /// `StopLowestPriority`: also stop pods and scale endpoints to zero, lowest
    /// `spec.priority` first, until the runway is back.
    #[serde(default)]
    pub action: CreditAction,
}

impl Default for CreditPolicy {
    fn default() -> Self {
        Self {
            minimum_runway_hours: runway(),
            action: CreditAction::default(),
        }
    }
}

fn runway() -> u32 {
    24
}

/// Actions on low credit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CreditAction {
    /// Report only.
    #[default]
    Alert,
    /// Stop or scale down the lowest-priority workloads first.
    StopLowestPriority,
}

/// What the operator last read of the account.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunPodAccountStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling`, `Stalled` and `InsufficientCredit`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The credit balance, in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<Usd>,
    /// What the account spends per hour right now, in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_per_hour: Option<Usd>,
    /// RunPod's spend limit for the account, USD per hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_limit: Option<Usd>,
    /// Hours the balance lasts at the current spend, as a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runway_hours: Option<String>,
    /// How many GpuWorkloads and NetworkVolumes use the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_count: Option<u32>,
    /// RunPod objects of the account that no Kubernetes object owns, with what they cost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orphans: Vec<Orphan>,
    /// Where the prices the money rules use come from, and how old they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prices: Option<PricesStatus>,
}

/// Where an account's prices come from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PricesStatus {
    /// `Catalogue` (RunPod's catalogue, read at `fetchedAt`, over the built-in snapshot) or
    /// `BuiltIn` (the snapshot the operator was built with: no read has succeeded yet).
    pub source: String,
    /// When RunPod's catalogue was last read successfully (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_at: Option<String>,
    /// How many GPU types the catalogue priced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_types: Option<u32>,
    /// Why the last read failed, when it did (the prices in use are then older).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A RunPod object that nobody declared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Orphan {
    /// `Pod`, `Endpoint` or `NetworkVolume`.
    pub kind: String,
    /// The RunPod id.
    pub id: String,
    /// The RunPod name.
    pub name: String,
    /// What it costs per hour, in USD.
    pub cost_per_hour: Usd,
}
