//! The simulator's own price list: what RunPod publishes (pricing pages and the v2 catalogue,
//! a 2026 snapshot), served at `GET /v2/catalog/gpus` and used to bill.
//!
//! Kept apart from the operator's table on purpose: a stand-in that read the code under test
//! could never catch a price bug in it. The data is written in RunPod's own units (cents per
//! GPU-hour for pods, millionths of a dollar per GPU-second for serverless), and the admin route
//! `POST /_sim/prices` changes it while the simulator runs.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

/// Hours in the month RunPod bills storage by (its per-5-minute container-disk rate is
/// $0.10 per GB over 30 days).
pub const HOURS_PER_MONTH: u32 = 720;

/// One GPU type as the catalogue offers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuOffer {
    /// RunPod's id, e.g. `NVIDIA A100-SXM4-80GB`.
    pub id: String,
    /// Memory, GB.
    pub memory_gb: u32,
    /// The serverless pool it serves in, if any.
    pub pool: Option<String>,
    /// USD per GPU-hour on Secure Cloud; `None`: not offered there.
    pub secure_per_hour: Option<Decimal>,
    /// USD per GPU-hour on Community Cloud; `None`: not offered there.
    pub community_per_hour: Option<Decimal>,
    /// The most GPUs of this type one pod may have.
    pub max_count: u32,
}

/// What a serverless worker of one pool costs, USD per GPU-second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolRates {
    /// A flex worker, while it runs.
    pub flex_per_second: Decimal,
    /// An active worker, all the time; `None` when RunPod publishes none (billed at flex).
    pub active_per_second: Option<Decimal>,
}

/// Storage, USD per GB per month.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageRates {
    /// Container disk of a running pod or worker.
    pub container_disk: Decimal,
    /// A pod volume while its pod runs.
    pub pod_volume_running: Decimal,
    /// A pod volume while its pod is stopped.
    pub pod_volume_stopped: Decimal,
    /// A network volume, for the GB up to `network_volume_tier_gb`.
    pub network_volume: Decimal,
    /// A network volume, for the GB above `network_volume_tier_gb`.
    pub network_volume_large: Decimal,
    /// Where the large-volume rate starts (RunPod: "over 1 TB", read as 1,024 GB).
    pub network_volume_tier_gb: u32,
}

/// The catalogue: GPU offers, serverless pool rates, storage rates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    /// GPU offers by id.
    pub gpus: BTreeMap<String, GpuOffer>,
    /// Serverless rates by pool id.
    pub pools: BTreeMap<String, PoolRates>,
    /// Storage rates.
    pub storage: StorageRates,
}

/// (id, memory GB, pool, Secure Cloud cents per GPU-hour).
const GPUS: &[(&str, u32, Option<&str>, Option<i64>)] = &[
    ("NVIDIA RTX A4000", 16, Some("AMPERE_16"), None),
    (
        "NVIDIA RTX 4000 Ada Generation",
        20,
        Some("AMPERE_16"),
        Some(32),
    ),
    (
        "NVIDIA RTX 2000 Ada Generation",
        16,
        Some("AMPERE_16"),
        None,
    ),
    ("NVIDIA RTX A4500", 20, Some("AMPERE_24"), None),
    ("NVIDIA RTX A5000", 24, Some("AMPERE_24"), Some(29)),
    ("NVIDIA GeForce RTX 3090", 24, Some("AMPERE_24"), Some(43)),
    ("NVIDIA L4", 24, Some("ADA_24"), None),
    ("NVIDIA GeForce RTX 4090", 24, Some("ADA_24"), Some(69)),
    ("NVIDIA GeForce RTX 5090", 32, Some("ADA_32_PRO"), None),
    ("NVIDIA A40", 48, Some("AMPERE_48"), None),
    ("NVIDIA RTX A6000", 48, Some("AMPERE_48"), Some(49)),
    ("NVIDIA L40S", 48, Some("ADA_48_PRO"), None),
    ("NVIDIA L40", 48, Some("ADA_48_PRO"), None),
    (
        "NVIDIA RTX 6000 Ada Generation",
        48,
        Some("ADA_48_PRO"),
        None,
    ),
    ("NVIDIA A100 80GB PCIe", 80, Some("AMPERE_80"), Some(164)),
    ("NVIDIA A100-SXM4-80GB", 80, Some("AMPERE_80"), Some(189)),
    ("NVIDIA H100 PCIe", 80, None, Some(239)),
    ("NVIDIA H100 NVL", 94, None, Some(279)),
    ("NVIDIA H100 80GB HBM3", 80, Some("ADA_80_PRO"), Some(299)),
    (
        "NVIDIA RTX PRO 6000 Blackwell Server Edition",
        96,
        Some("BLACKWELL_96"),
        None,
    ),
    (
        "NVIDIA RTX PRO 6000 Blackwell Workstation Edition",
        96,
        Some("BLACKWELL_96"),
        None,
    ),
    (
        "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition",
        96,
        Some("BLACKWELL_96"),
        None,
    ),
    ("NVIDIA H200", 141, Some("HOPPER_141"), Some(399)),
    ("NVIDIA B200", 180, Some("BLACKWELL_180"), Some(799)),
];

/// (pool, flex, active), millionths of a dollar per GPU-second. RunPod publishes no rate for
/// ADA_32_PRO and no active rate for BLACKWELL_96.
const POOLS: &[(&str, i64, Option<i64>)] = &[
    ("AMPERE_16", 160, Some(110)),
    ("AMPERE_24", 190, Some(130)),
    ("ADA_24", 310, Some(210)),
    ("AMPERE_48", 340, Some(240)),
    ("ADA_48_PRO", 530, Some(370)),
    ("AMPERE_80", 760, Some(600)),
    ("ADA_80_PRO", 1160, Some(930)),
    ("BLACKWELL_96", 1110, None),
    ("HOPPER_141", 1550, Some(1240)),
    ("BLACKWELL_180", 2400, Some(1900)),
];

/// The most GPUs of one type on one pod, as the catalogue's `maxCount` reports it.
const MAX_GPUS_PER_POD: u32 = 8;

impl Catalog {
    /// RunPod's published prices.
    pub fn published() -> Self {
        let gpus = GPUS
            .iter()
            .map(|(id, memory_gb, pool, secure_cents)| {
                let offer = GpuOffer {
                    id: id.to_string(),
                    memory_gb: *memory_gb,
                    pool: pool.map(String::from),
                    secure_per_hour: secure_cents.map(|c| Decimal::new(c, 2)),
                    community_per_hour: None,
                    max_count: MAX_GPUS_PER_POD,
                };
                (id.to_string(), offer)
            })
            .collect();
        let pools = POOLS
            .iter()
            .map(|(pool, flex, active)| {
                let rates = PoolRates {
                    flex_per_second: Decimal::new(*flex, 6),
                    active_per_second: active.map(|a| Decimal::new(a, 6)),
                };
                (pool.to_string(), rates)
            })
            .collect();
        let cents = |c: i64| Decimal::new(c, 2);
        Self {
            gpus,
            pools,
            storage: StorageRates {
                container_disk: cents(10),
                pod_volume_running: cents(10),
                pod_volume_stopped: cents(20),
                network_volume: cents(7),
                network_volume_large: cents(5),
                network_volume_tier_gb: 1024,
            },
        }
    }

    /// USD per GPU-hour of a pod of this type on that cloud, if offered there.
    pub fn pod_per_hour(&self, gpu: &str, community: bool) -> Option<Decimal> {
        let offer = self.gpus.get(gpu)?;
        if community {
            offer.community_per_hour
        } else {
            offer.secure_per_hour
        }
    }

    /// The GPU types of a pool, in id order.
    pub fn pool_members<'a>(&'a self, pool: &'a str) -> impl Iterator<Item = &'a GpuOffer> + 'a {
        self.gpus
            .values()
            .filter(move |g| g.pool.as_deref() == Some(pool))
    }

    /// The rates of a pool, if it has published ones.
    pub fn pool_rates(&self, pool: &str) -> Option<PoolRates> {
        self.pools.get(pool).copied()
    }

    /// USD per month of a network volume of `gb`.
    pub fn network_volume_per_month(&self, gb: u32) -> Decimal {
        let rates = &self.storage;
        let small = gb.min(rates.network_volume_tier_gb);
        Decimal::from(small) * rates.network_volume
            + Decimal::from(gb - small) * rates.network_volume_large
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pool_a_gpu_names_has_members_and_prices_are_never_zero() {
        let catalog = Catalog::published();
        for gpu in catalog.gpus.values() {
            assert!(gpu.memory_gb > 0, "{}", gpu.id);
            assert_ne!(gpu.secure_per_hour, Some(Decimal::ZERO), "{}", gpu.id);
        }
        for (pool, rates) in &catalog.pools {
            assert!(catalog.pool_members(pool).next().is_some(), "{pool}");
            assert!(rates.flex_per_second > Decimal::ZERO, "{pool}");
        }
        // 100 GB at 0.07, 2,048 GB: 1,024 at 0.07 + 1,024 at 0.05.
        assert_eq!(catalog.network_volume_per_month(100), Decimal::new(700, 2));
        assert_eq!(
            catalog.network_volume_per_month(2048),
            Decimal::new(12288, 2)
        );
    }
}
