//! What things cost in the simulator and how the clock bills them: per-object rates, the
//! hour-bucket ledger, the one-hour credit rule and the spend limit.

use rust_decimal::Decimal;

use super::{Endpoint, MS_PER_HOUR, Millis, Mount, Outcome, Pod, Refusal, Volume, World, per_ms};

use crate::sim::catalog::HOURS_PER_MONTH;

/// Money billed to one object over one hour bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Amounts {
    /// GPU compute.
    pub gpu: Decimal,
    /// Container disk and pod volume.
    pub disk: Decimal,
    /// Network volume storage.
    pub storage: Decimal,
}

impl Amounts {
    /// The sum.
    pub fn total(&self) -> Decimal {
        self.gpu + self.disk + self.storage
    }
}

/// What kind of object a ledger line bills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Billed {
    /// A pod.
    Pod,
    /// A serverless endpoint.
    Serverless,
    /// A network volume.
    NetworkVolume,
}

impl World {
    pub(super) fn storage_per_hour(&self, gb: u32, per_gb_month: Decimal) -> Decimal {
        Decimal::from(gb) * per_gb_month / Decimal::from(HOURS_PER_MONTH)
    }

    /// USD/h of a pod's GPUs in its current status (0 when stopped, as v2 reports `cost`).
    pub fn pod_compute_per_hour(&self, pod: &Pod) -> Decimal {
        if !pod.status.holds_gpus() {
            return Decimal::ZERO;
        }
        let community = pod.cloud == "COMMUNITY";
        self.prices
            .pod_per_hour(&pod.gpu_type, community)
            .map(|p| p * Decimal::from(pod.gpu_count))
            .unwrap_or_default()
    }

    /// USD/h of a pod's disks in its current status: container disk and volume while it runs,
    /// the volume at the stopped rate while it is stopped.
    pub fn pod_disk_per_hour(&self, pod: &Pod) -> Decimal {
        let rates = &self.prices.storage;
        let volume = match &pod.mount {
            Some(Mount::Persistent { size, .. }) => *size,
            _ => 0,
        };
        if pod.status.holds_gpus() {
            self.storage_per_hour(pod.container.disk, rates.container_disk)
                + self.storage_per_hour(volume, rates.pod_volume_running)
        } else {
            self.storage_per_hour(volume, rates.pod_volume_stopped)
        }
    }

    /// Per-second rates of a worker of this endpoint, one GPU: (flex, active). Where the pool
    /// publishes no active rate, active workers bill at flex.
    pub(super) fn worker_rates(&self, endpoint: &Endpoint) -> (Decimal, Decimal) {
        let pool = endpoint.gpu["pools"][0].as_str().unwrap_or_default();
        self.prices
            .pool_rates(pool)
            .map(|p| {
                (
                    p.flex_per_second,
                    p.active_per_second.unwrap_or(p.flex_per_second),
                )
            })
            .unwrap_or_default()
    }

    pub(super) fn worker_per_hour(&self, endpoint: &Endpoint, active: bool) -> Decimal {
        let gpus = Decimal::from(endpoint.gpu["count"].as_u64().unwrap_or(1));
        let (flex, active_rate) = self.worker_rates(endpoint);
        let rate = if active { active_rate } else { flex };
        gpus * rate * Decimal::from(3600)
            + self.storage_per_hour(endpoint.container.disk, self.prices.storage.container_disk)
    }

    /// USD/h of an endpoint's always-on floor (`workers.min` active workers): what the credit
    /// and spend-limit rules weigh when an endpoint is created or changed.
    pub fn endpoint_floor_per_hour(&self, endpoint: &Endpoint) -> Decimal {
        Decimal::from(endpoint.workers.min) * self.worker_per_hour(endpoint, true)
    }

    /// USD/h an endpoint bills now: every worker that is not throttled, from its start
    /// (cold start included) to its stop (idle timeout included).
    pub fn endpoint_per_hour(&self, endpoint: &Endpoint) -> Decimal {
        endpoint
            .runtime
            .workers
            .iter()
            .filter(|w| w.billed())
            .map(|w| self.worker_per_hour(endpoint, w.active))
            .sum()
    }

    /// USD/h of a network volume.
    pub fn volume_per_hour(&self, volume: &Volume) -> Decimal {
        self.prices.network_volume_per_month(volume.size) / Decimal::from(HOURS_PER_MONTH)
    }

    /// What an account spends per hour now (`currentSpendPerHr`).
    pub fn spend_per_hour(&self, key: &str) -> Decimal {
        let Some(account) = self.accounts.get(key) else {
            return Decimal::ZERO;
        };
        let pods: Decimal = account
            .pods
            .values()
            .map(|p| self.pod_compute_per_hour(p) + self.pod_disk_per_hour(p))
            .sum();
        let endpoints: Decimal = account
            .endpoints
            .values()
            .map(|e| self.endpoint_per_hour(e))
            .sum();
        let volumes: Decimal = account
            .volumes
            .values()
            .map(|v| self.volume_per_hour(v))
            .sum();
        pods + endpoints + volumes
    }

    /// Bills one account from `from` to `to` at its current rates, split by hour bucket.
    pub(super) fn bill(&mut self, key: &str, from: Millis, to: Millis) {
        let account = &self.accounts[key];
        let mut rates: Vec<((Billed, String), Amounts)> = Vec::new();
        for pod in account.pods.values() {
            let amounts = Amounts {
                gpu: per_ms(self.pod_compute_per_hour(pod)),
                disk: per_ms(self.pod_disk_per_hour(pod)),
                storage: Decimal::ZERO,
            };
            rates.push(((Billed::Pod, pod.id.clone()), amounts));
        }
        for endpoint in account.endpoints.values() {
            let amounts = Amounts {
                gpu: per_ms(self.endpoint_per_hour(endpoint)),
                ..Amounts::default()
            };
            rates.push(((Billed::Serverless, endpoint.id.clone()), amounts));
        }
        for volume in account.volumes.values() {
            let amounts = Amounts {
                storage: per_ms(self.volume_per_hour(volume)),
                ..Amounts::default()
            };
            rates.push(((Billed::NetworkVolume, volume.id.clone()), amounts));
        }
        let account = self.accounts.get_mut(key).expect("the key exists");
        let mut at = from;
        while at < to {
            let bucket = at / MS_PER_HOUR;
            let end = ((bucket + 1) * MS_PER_HOUR).min(to);
            let ms = Decimal::from(end - at);
            for ((kind, id), rate) in &rates {
                if rate.total().is_zero() {
                    continue;
                }
                let line = account
                    .ledger
                    .entry((bucket, *kind, id.clone()))
                    .or_default();
                line.gpu += rate.gpu * ms;
                line.disk += rate.disk * ms;
                line.storage += rate.storage * ms;
                account.balance -= rate.total() * ms;
            }
            at = end;
        }
    }

    /// Refuses a create or start (or a raise) when the balance cannot cover one hour of
    /// everything running and provisioning plus the new cost, or when it would take the
    /// account past its spend limit. Both answer 402.
    pub(super) fn check_money(&self, key: &str, new_per_hour: Decimal) -> Outcome<()> {
        let account = &self.accounts[key];
        let spend = self.spend_per_hour(key);
        if account.balance < spend + new_per_hour {
            return Err(Refusal::new(
                402,
                format!(
                    "Insufficient balance: deploying needs one hour of credit for everything running ({} USD/h now + {} USD/h new), the balance is {} USD",
                    spend.round_dp(4),
                    new_per_hour.round_dp(4),
                    account.balance.round_dp(4)
                ),
            ));
        }
        if spend + new_per_hour > account.spend_limit {
            return Err(Refusal::new(
                402,
                format!(
                    "Spend limit exceeded: {} USD/h now plus {} USD/h would pass the account's limit of {} USD/h",
                    spend.round_dp(4),
                    new_per_hour.round_dp(4),
                    account.spend_limit
                ),
            ));
        }
        Ok(())
    }
}
