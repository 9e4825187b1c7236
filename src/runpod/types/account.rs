//! What RunPod reports about the account as a whole: the GPU catalogue and data centres,
//! billing, the GraphQL `myself` figures (read only when plausible) and endpoint health.

use serde::{Deserialize, Serialize};

/// A GPU type in the catalogue.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogGpu {
    /// GPU type id.
    pub id: String,
    /// Serverless pool id.
    #[serde(default)]
    pub pool: Option<String>,
    /// Prices, USD per GPU per hour.
    pub price: CatalogPrice,
}

/// Catalogue prices.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
pub struct CatalogPrice {
    /// Secure Cloud pod.
    pub secure: f64,
    /// Community Cloud pod.
    pub community: f64,
    /// A flex serverless worker of the pool.
    #[serde(default)]
    pub serverless: Option<f64>,
}

/// A data centre.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataCenter {
    /// Id, e.g. `EU-RO-1`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Network volume types offered.
    #[serde(default)]
    pub network_volume_types: Vec<String>,
}

/// What a billing route reports.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Billing {
    /// One record per object and bucket.
    pub records: Vec<serde_json::Value>,
    /// The totals.
    pub metadata: BillingMetadata,
}

impl Billing {
    /// The window RunPod says the answer covers, on its clock: `(start, end)`, when both
    /// times are there and readable.
    pub fn window(&self) -> Option<(jiff::Timestamp, jiff::Timestamp)> {
        let query = self.metadata.query.as_ref()?;
        let start = query.start_time.as_deref()?.parse().ok()?;
        let end = query.end_time.as_deref()?.parse().ok()?;
        Some((start, end))
    }
}

/// Billing totals.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingMetadata {
    /// The window RunPod resolved (`lastN` is answered with it).
    #[serde(default)]
    pub query: Option<BillingWindow>,
    /// Records.
    pub record_count: u64,
    /// Sums, `totalAmount` first.
    pub totals: BillingTotals,
}

/// The window a billing answer covers, on RunPod's clock (RFC 3339).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingWindow {
    /// Start, inclusive.
    #[serde(default)]
    pub start_time: Option<String>,
    /// End, exclusive.
    #[serde(default)]
    pub end_time: Option<String>,
}

/// Billing sums.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingTotals {
    /// USD.
    pub total_amount: f64,
}

/// A billing window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BillingQuery {
    /// RFC 3339 start.
    pub start_time: Option<String>,
    /// RFC 3339 end.
    pub end_time: Option<String>,
    /// `hour`, `day`, `week`, `month` or `year`.
    pub bucket_size: Option<String>,
    /// One object only: its pod, endpoint or volume id.
    pub id: Option<String>,
    /// The last N buckets, ending with the current one, on RunPod's clock.
    pub last_n: Option<u32>,
}

/// The account, from GraphQL `myself`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// Credit, USD.
    pub client_balance: f64,
    /// Spend now, USD per hour.
    pub current_spend_per_hr: f64,
    /// The account's hourly spend limit, USD.
    pub spend_limit: f64,
}

/// The most money, USD, the operator believes an account figure can be: anything larger (or
/// not finite) is a figure it could not read, and spends nothing on.
const PLAUSIBLE_USD: f64 = 1e12;

fn plausible(value: f64, min: f64) -> Option<rust_decimal::Decimal> {
    use rust_decimal::prelude::FromPrimitive;
    (value.is_finite() && (min..=PLAUSIBLE_USD).contains(&value))
        .then(|| rust_decimal::Decimal::from_f64(value))
        .flatten()
}

impl Account {
    /// The balance, when RunPod's figure is plausible (finite, within ±10^12 USD); `None`
    /// otherwise, and the money rules then start nothing.
    pub fn balance(&self) -> Option<rust_decimal::Decimal> {
        plausible(self.client_balance, -PLAUSIBLE_USD)
    }

    /// The spend per hour, when RunPod's figure is plausible (finite, 0 to 10^12 USD).
    pub fn spend_per_hour(&self) -> Option<rust_decimal::Decimal> {
        plausible(self.current_spend_per_hr, 0.0)
    }

    /// Hours the balance lasts at the spend: `None` when nothing is spent or a figure could
    /// not be read.
    pub fn runway_hours(&self) -> Option<rust_decimal::Decimal> {
        let spend = self.spend_per_hour().filter(|s| !s.is_zero())?;
        self.balance()?.checked_div(spend)
    }
}

/// `GET /v2/{endpointId}/health`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Health {
    /// Job counters.
    pub jobs: HealthJobs,
    /// Worker counters.
    pub workers: HealthWorkers,
}

/// Job counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthJobs {
    /// Completed (recent window).
    pub completed: u64,
    /// Failed.
    #[serde(default)]
    pub failed: u64,
    /// Running.
    pub in_progress: u64,
    /// Waiting.
    pub in_queue: u64,
    /// Retried.
    #[serde(default)]
    pub retried: u64,
}

/// Worker counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct HealthWorkers {
    /// Idle.
    pub idle: u64,
    /// Starting.
    #[serde(default)]
    pub initializing: u64,
    /// Warm and routable.
    #[serde(default)]
    pub ready: u64,
    /// Running.
    pub running: u64,
    /// Waiting for capacity.
    #[serde(default)]
    pub throttled: u64,
    /// Crashed.
    #[serde(default)]
    pub unhealthy: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_figures_that_cannot_be_money_are_not_read() {
        let account = |balance: f64, spend: f64| Account {
            client_balance: balance,
            current_spend_per_hr: spend,
            spend_limit: 80.0,
        };
        let fine = account(120.5, 2.5);
        assert_eq!(fine.balance(), Some(rust_decimal::Decimal::new(1205, 1)));
        assert_eq!(
            fine.runway_hours(),
            Some(rust_decimal::Decimal::new(482, 1))
        );
        for (balance, spend) in [
            (f64::NAN, 1.0),
            (f64::INFINITY, 1.0),
            (1e300, 1.0),
            (-1e300, 1.0),
        ] {
            assert_eq!(account(balance, spend).balance(), None, "{balance}");
            assert_eq!(account(balance, spend).runway_hours(), None);
        }
        for spend in [f64::NAN, -1.0, 1e300] {
            assert_eq!(account(10.0, spend).spend_per_hour(), None, "{spend}");
        }
        // Nothing spent: no runway to speak of.
        assert_eq!(account(10.0, 0.0).runway_hours(), None);
        // The largest plausible balance over the smallest spend does not overflow into a panic.
        assert_eq!(account(1e12, 1e-300).runway_hours(), None);
    }
}
