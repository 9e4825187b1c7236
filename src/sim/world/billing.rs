//! What things cost in the simulator and how the clock bills them: per-object rates, the
//! hour-bucket ledger, the one-hour credit rule and the spend limit.

use rust_decimal::Decimal;

use super::{
    Account, Endpoint, MS_PER_HOUR, Millis, Mount, Outcome, Pod, Refusal, Volume, World, per_ms,
};

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

/// One object's running meter: what it bills now and since when its ledger is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meter {
    /// USD per hour, by kind of charge.
    pub per_hour: Amounts,
    /// The same per millisecond, as the ledger accrues it.
    pub per_ms: Amounts,
    /// The ledger holds what the object billed up to this instant.
    pub since: Millis,
}

impl Account {
    /// Writes what one object billed from its meter's `since` to `at` into the ledger, split
    /// by hour bucket.
    fn settle_meter(&mut self, kind: Billed, id: &str, at: Millis) {
        let Some(meter) = self.meters.get_mut(&(kind, id.to_string())) else {
            return;
        };
        let rate = meter.per_ms;
        let mut from = meter.since;
        meter.since = at.max(from);
        while from < at {
            let bucket = from / MS_PER_HOUR;
            let end = ((bucket + 1) * MS_PER_HOUR).min(at);
            let ms = Decimal::from(end - from);
            let line = self
                .ledger
                .entry((bucket, kind, id.to_string()))
                .or_default();
            line.gpu += rate.gpu * ms;
            line.disk += rate.disk * ms;
            line.storage += rate.storage * ms;
            from = end;
        }
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

    /// What an account spends per hour now (`currentSpendPerHr`): the sum of its meters.
    pub fn spend_per_hour(&self, key: &str) -> Decimal {
        self.accounts
            .get(key)
            .map_or(Decimal::ZERO, |a| a.metered_per_hour)
    }

    /// What one object bills per hour in its current state; `None` when it is gone.
    fn object_rate(&self, key: &str, kind: Billed, id: &str) -> Option<Amounts> {
        let account = self.accounts.get(key)?;
        match kind {
            Billed::Pod => account.pods.get(id).map(|pod| Amounts {
                gpu: self.pod_compute_per_hour(pod),
                disk: self.pod_disk_per_hour(pod),
                storage: Decimal::ZERO,
            }),
            Billed::Serverless => account.endpoints.get(id).map(|e| Amounts {
                gpu: self.endpoint_per_hour(e),
                ..Amounts::default()
            }),
            Billed::NetworkVolume => account.volumes.get(id).map(|v| Amounts {
                storage: self.volume_per_hour(v),
                ..Amounts::default()
            }),
        }
    }

    /// Takes what an account spent since it was last settled off its balance, at the rates
    /// of its meters (constant since then: every change of a rate settles first).
    pub(super) fn settle_balance(&mut self, key: &str, at: Millis) {
        let Some(account) = self.accounts.get_mut(key) else {
            return;
        };
        if at > account.settled_at {
            account.balance -= account.metered_per_ms * Decimal::from(at - account.settled_at);
            account.settled_at = at;
        }
    }

    /// Reads one object's rate again after it changed (or went), settling what it billed at
    /// the old rate first. Only what changed is billed anew: a request costs the same with
    /// ten objects in the account as with ten thousand.
    pub(super) fn remeter(&mut self, key: &str, kind: Billed, id: &str) {
        let now = self.now;
        let rate = self
            .object_rate(key, kind, id)
            .filter(|r| !r.total().is_zero());
        self.settle_balance(key, now);
        let Some(account) = self.accounts.get_mut(key) else {
            return;
        };
        let meter_key = (kind, id.to_string());
        let old = account.meters.get(&meter_key).copied();
        if old.map(|m| m.per_hour) == rate {
            return;
        }
        if let Some(old) = old {
            account.settle_meter(kind, id, now);
            account.metered_per_hour -= old.per_hour.total();
            account.metered_per_ms -= old.per_ms.total();
            account.meters.remove(&meter_key);
        }
        if let Some(rate) = rate {
            let meter = Meter {
                per_hour: rate,
                per_ms: Amounts {
                    gpu: per_ms(rate.gpu),
                    disk: per_ms(rate.disk),
                    storage: per_ms(rate.storage),
                },
                since: now,
            };
            account.metered_per_hour += meter.per_hour.total();
            account.metered_per_ms += meter.per_ms.total();
            account.meters.insert(meter_key, meter);
        }
        if account.meters.is_empty() {
            // Nothing bills: exactly zero, whatever the sums of sums left behind.
            account.metered_per_hour = Decimal::ZERO;
            account.metered_per_ms = Decimal::ZERO;
        }
    }

    /// [`World::remeter`] for every object of an account, and the meters of objects that are
    /// gone: after a change that touches many (a price, the zero-balance rule, a test that
    /// edits the world directly).
    pub(super) fn remeter_all(&mut self, key: &str) {
        let Some(account) = self.accounts.get(key) else {
            return;
        };
        let mut objects: Vec<(Billed, String)> = account.meters.keys().cloned().collect();
        objects.extend(account.pods.keys().map(|id| (Billed::Pod, id.clone())));
        objects.extend(
            account
                .endpoints
                .keys()
                .map(|id| (Billed::Serverless, id.clone())),
        );
        objects.extend(
            account
                .volumes
                .keys()
                .map(|id| (Billed::NetworkVolume, id.clone())),
        );
        objects.sort();
        objects.dedup();
        for (kind, id) in objects {
            self.remeter(key, kind, &id);
        }
    }

    /// Writes every meter of an account into the ledger up to now, before the ledger is read.
    pub fn settle_ledger(&mut self, key: &str) {
        let now = self.now;
        self.settle_balance(key, now);
        if let Some(account) = self.accounts.get_mut(key) {
            let metered: Vec<(Billed, String)> = account.meters.keys().cloned().collect();
            for (kind, id) in metered {
                account.settle_meter(kind, &id, now);
            }
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
