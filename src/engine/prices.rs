//! The price catalogue: what RunPod charges per GPU type, per serverless pool and for storage.
//!
//! [`PriceCatalogue::builtin`] is a snapshot of RunPod's published prices (sources and dates in
//! `docs/prices.md`); [`PriceCatalogue::apply_live`] replaces entries with what RunPod's catalogue
//! (`GET /v2/catalog/gpus`) reports, so live prices win once the client can read them.
//! A price that is not known is `None`, never zero: the cost model refuses to guess.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

/// Hours in the month RunPod bills storage by. RunPod's serverless container-disk rate,
/// $0.000011574 per GB per 5 minutes, is $0.10 per GB over 30 days, so a month is 720 h.
pub const HOURS_PER_MONTH: u32 = 720;

/// Network volumes up to this many GB bill at the lower-volume rate. RunPod says "under
/// 1 TB" without saying whether 1 TB is 1000 or 1024 GB or whether the rate is tiered; we
/// read it as tiered at 1024 GB, the reading that never under-states the bill.
pub const NETWORK_VOLUME_TIER_GB: u32 = 1024;

/// What one GPU type costs as a Pod, and which serverless pool it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuPrice {
    /// RunPod's GPU type id, e.g. `NVIDIA A100-SXM4-80GB`.
    pub gpu_type: String,
    /// The serverless pool id, e.g. `AMPERE_80`, if the type serves in one.
    pub pool: Option<String>,
    /// USD per GPU per hour on Secure Cloud, if known.
    pub secure_per_hour: Option<Decimal>,
    /// USD per GPU per hour on Community Cloud, if known.
    pub community_per_hour: Option<Decimal>,
}

/// What a serverless worker of one pool costs, per GPU per second.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolPrice {
    /// The pool id, e.g. `AMPERE_80`.
    pub pool: String,
    /// Flex workers: USD per GPU per second while they run.
    pub flex_per_second: Decimal,
    /// Active workers: USD per GPU per second, all the time; `None` if RunPod publishes none.
    pub active_per_second: Option<Decimal>,
}

/// Storage rates, USD per GB per month.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageRates {
    /// Container disk of a running pod or worker (nothing while stopped: it is wiped).
    pub container_disk: Decimal,
    /// A pod volume while the pod runs.
    pub pod_volume_running: Decimal,
    /// A pod volume while the pod is stopped (twice the running rate).
    pub pod_volume_stopped: Decimal,
    /// A standard network volume, for the GB up to [`NETWORK_VOLUME_TIER_GB`].
    pub network_volume_first_tier: Decimal,
    /// A standard network volume, for the GB above [`NETWORK_VOLUME_TIER_GB`].
    pub network_volume_above_tier: Decimal,
}

impl Default for StorageRates {
    fn default() -> Self {
        Self {
            container_disk: dec(10, 2),
            pod_volume_running: dec(10, 2),
            pod_volume_stopped: dec(20, 2),
            network_volume_first_tier: dec(7, 2),
            network_volume_above_tier: dec(5, 2),
        }
    }
}

/// One GPU entry as RunPod's v2 catalogue (`GET /v2/catalog/gpus`) reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveGpuPrice {
    /// The GPU type id.
    pub gpu_type: String,
    /// The serverless pool id.
    pub pool: Option<String>,
    /// `price.secure`, USD per GPU per hour.
    pub secure_per_hour: Option<Decimal>,
    /// `price.community`, USD per GPU per hour.
    pub community_per_hour: Option<Decimal>,
    /// `price.serverless`, USD per GPU per hour for a flex worker of the GPU's pool.
    pub serverless_per_hour: Option<Decimal>,
}

impl LiveGpuPrice {
    /// One entry of RunPod's catalogue. A price that is not a positive finite number (RunPod
    /// reports `0` where a type is not offered) is `None`: never a price of zero.
    pub fn from_catalog(gpu: &crate::runpod::types::CatalogGpu) -> Self {
        let price = |p: f64| -> Option<Decimal> {
            if !p.is_finite() || p <= 0.0 {
                return None;
            }
            p.to_string().parse().ok()
        };
        Self {
            gpu_type: gpu.id.clone(),
            pool: gpu.pool.clone().filter(|p| !p.is_empty()),
            secure_per_hour: price(gpu.price.secure),
            community_per_hour: price(gpu.price.community),
            serverless_per_hour: gpu.price.serverless.and_then(price),
        }
    }
}

/// Why a price is missing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PriceError {
    /// The GPU type is not in the catalogue.
    #[error(
        "no price is known for GPU type {0:?}: check the id against RunPod's GPU list (ids are exact, e.g. \"NVIDIA A100-SXM4-80GB\")"
    )]
    UnknownGpu(String),
    /// The GPU type has no pod price on that cloud.
    #[error("GPU type {gpu:?} has no known {cloud} Cloud pod price")]
    NoPodPrice {
        /// The GPU type id.
        gpu: String,
        /// `Secure` or `Community`.
        cloud: &'static str,
    },
    /// The GPU type serves in no known serverless pool, or the pool has no price.
    #[error("GPU type {0:?} has no known serverless pool price")]
    NoServerlessPrice(String),
}

/// Prices for everything the operator creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceCatalogue {
    gpus: BTreeMap<String, GpuPrice>,
    pools: BTreeMap<String, PoolPrice>,
    /// Storage rates.
    pub storage: StorageRates,
}

fn dec(num: i64, scale: u32) -> Decimal {
    Decimal::new(num, scale)
}

/// Serverless pools and their member GPU types (docs/prices.md).
const POOLS: &[(&str, &[&str])] = &[
    (
        "AMPERE_16",
        &[
            "NVIDIA RTX A4000",
            "NVIDIA RTX 4000 Ada Generation",
            "NVIDIA RTX 2000 Ada Generation",
        ],
    ),
    (
        "AMPERE_24",
        &[
            "NVIDIA RTX A4500",
            "NVIDIA RTX A5000",
            "NVIDIA GeForce RTX 3090",
        ],
    ),
    ("ADA_24", &["NVIDIA L4", "NVIDIA GeForce RTX 4090"]),
    ("ADA_32_PRO", &["NVIDIA GeForce RTX 5090"]),
    ("AMPERE_48", &["NVIDIA A40", "NVIDIA RTX A6000"]),
    (
        "ADA_48_PRO",
        &[
            "NVIDIA L40S",
            "NVIDIA L40",
            "NVIDIA RTX 6000 Ada Generation",
        ],
    ),
    (
        "AMPERE_80",
        &["NVIDIA A100 80GB PCIe", "NVIDIA A100-SXM4-80GB"],
    ),
    ("ADA_80_PRO", &["NVIDIA H100 80GB HBM3"]),
    (
        "BLACKWELL_96",
        &[
            "NVIDIA RTX PRO 6000 Blackwell Server Edition",
            "NVIDIA RTX PRO 6000 Blackwell Workstation Edition",
            "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition",
        ],
    ),
    ("HOPPER_141", &["NVIDIA H200"]),
    ("BLACKWELL_180", &["NVIDIA B200"]),
];

/// Per-second pool rates, flex and active, in millionths of a dollar (docs/prices.md).
/// ADA_32_PRO (RTX 5090) has no published rate, so it has no entry.
const POOL_RATES: &[(&str, i64, Option<i64>)] = &[
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

/// Secure Cloud pod prices, USD per GPU per hour in cents (docs/prices.md, a 2026 snapshot).
const POD_PRICES: &[(&str, i64)] = &[
    ("NVIDIA GeForce RTX 4090", 69),
    ("NVIDIA RTX A6000", 49),
    ("NVIDIA RTX A5000", 29),
    ("NVIDIA GeForce RTX 3090", 43),
    ("NVIDIA RTX 4000 Ada Generation", 32),
    ("NVIDIA A100 80GB PCIe", 164),
    ("NVIDIA A100-SXM4-80GB", 189),
    ("NVIDIA H100 PCIe", 239),
    ("NVIDIA H100 NVL", 279),
    ("NVIDIA H100 80GB HBM3", 299),
    ("NVIDIA H200", 399),
    ("NVIDIA B200", 799),
];

impl PriceCatalogue {
    /// The built-in snapshot of RunPod's prices. A snapshot, not authoritative: live
    /// catalogue data replaces it through [`PriceCatalogue::apply_live`].
    pub fn builtin() -> Self {
        let mut gpus = BTreeMap::new();
        for (pool, members) in POOLS {
            for gpu in *members {
                gpus.insert(
                    gpu.to_string(),
                    GpuPrice {
                        gpu_type: gpu.to_string(),
                        pool: Some(pool.to_string()),
                        secure_per_hour: None,
                        community_per_hour: None,
                    },
                );
            }
        }
        for (gpu, cents) in POD_PRICES {
            let entry = gpus.entry(gpu.to_string()).or_insert_with(|| GpuPrice {
                gpu_type: gpu.to_string(),
                pool: None,
                secure_per_hour: None,
                community_per_hour: None,
            });
            entry.secure_per_hour = Some(dec(*cents, 2));
        }
        let pools = POOL_RATES
            .iter()
            .map(|(pool, flex, active)| {
                let price = PoolPrice {
                    pool: pool.to_string(),
                    flex_per_second: dec(*flex, 6),
                    active_per_second: active.map(|a| dec(a, 6)),
                };
                (pool.to_string(), price)
            })
            .collect();
        Self {
            gpus,
            pools,
            storage: StorageRates::default(),
        }
    }

    /// A catalogue from explicit entries, e.g. for tests or prices given on the command line.
    pub fn from_parts(gpus: Vec<GpuPrice>, pools: Vec<PoolPrice>, storage: StorageRates) -> Self {
        Self {
            gpus: gpus.into_iter().map(|g| (g.gpu_type.clone(), g)).collect(),
            pools: pools.into_iter().map(|p| (p.pool.clone(), p)).collect(),
            storage,
        }
    }

    /// Replaces entries with live catalogue data. A live field that is absent keeps the
    /// snapshot's value; a live serverless price sets the pool's flex rate (per hour / 3600)
    /// and keeps its active rate.
    pub fn apply_live(&mut self, live: impl IntoIterator<Item = LiveGpuPrice>) {
        for entry in live {
            let gpu = self
                .gpus
                .entry(entry.gpu_type.clone())
                .or_insert_with(|| GpuPrice {
                    gpu_type: entry.gpu_type.clone(),
                    pool: None,
                    secure_per_hour: None,
                    community_per_hour: None,
                });
            if entry.pool.is_some() {
                gpu.pool.clone_from(&entry.pool);
            }
            if entry.secure_per_hour.is_some() {
                gpu.secure_per_hour = entry.secure_per_hour;
            }
            if entry.community_per_hour.is_some() {
                gpu.community_per_hour = entry.community_per_hour;
            }
            if let (Some(pool), Some(per_hour)) = (gpu.pool.clone(), entry.serverless_per_hour) {
                let flex_per_second = per_hour / Decimal::from(3600);
                self.pools
                    .entry(pool.clone())
                    .and_modify(|p| p.flex_per_second = flex_per_second)
                    .or_insert(PoolPrice {
                        pool,
                        flex_per_second,
                        active_per_second: None,
                    });
            }
        }
    }

    /// The entry of one GPU type.
    pub fn gpu(&self, gpu_type: &str) -> Result<&GpuPrice, PriceError> {
        self.gpus
            .get(gpu_type)
            .ok_or_else(|| PriceError::UnknownGpu(gpu_type.to_string()))
    }

    /// USD per GPU per hour for a pod of this type on Secure (`community == false`) or
    /// Community Cloud.
    pub fn pod_per_hour(&self, gpu_type: &str, community: bool) -> Result<Decimal, PriceError> {
        let gpu = self.gpu(gpu_type)?;
        let (price, cloud) = if community {
            (gpu.community_per_hour, "Community")
        } else {
            (gpu.secure_per_hour, "Secure")
        };
        price.ok_or(PriceError::NoPodPrice {
            gpu: gpu_type.to_string(),
            cloud,
        })
    }

    /// The serverless pool price of the pool this GPU type serves in.
    pub fn pool_of(&self, gpu_type: &str) -> Result<&PoolPrice, PriceError> {
        self.gpu(gpu_type)?
            .pool
            .as_ref()
            .and_then(|pool| self.pools.get(pool))
            .ok_or_else(|| PriceError::NoServerlessPrice(gpu_type.to_string()))
    }

    /// Every GPU type the catalogue knows, in id order.
    pub fn gpu_types(&self) -> impl Iterator<Item = &GpuPrice> {
        self.gpus.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_the_seed_prices() {
        let prices = PriceCatalogue::builtin();
        assert_eq!(
            prices.pod_per_hour("NVIDIA A100-SXM4-80GB", false),
            Ok(dec(189, 2))
        );
        let pool = prices.pool_of("NVIDIA A100-SXM4-80GB").unwrap();
        assert_eq!(pool.pool, "AMPERE_80");
        assert_eq!(pool.flex_per_second, dec(76, 5));
        assert_eq!(pool.active_per_second, Some(dec(60, 5)));
    }

    #[test]
    fn unknown_prices_are_errors_not_zero() {
        let prices = PriceCatalogue::builtin();
        assert!(matches!(
            prices.gpu("NVIDIA A100"),
            Err(PriceError::UnknownGpu(_))
        ));
        assert!(matches!(
            prices.pod_per_hour("NVIDIA A100-SXM4-80GB", true),
            Err(PriceError::NoPodPrice {
                cloud: "Community",
                ..
            })
        ));
        assert!(matches!(
            prices.pool_of("NVIDIA GeForce RTX 5090"),
            Err(PriceError::NoServerlessPrice(_))
        ));
        assert!(matches!(
            prices.pool_of("NVIDIA H100 NVL"),
            Err(PriceError::NoServerlessPrice(_))
        ));
    }

    #[test]
    fn every_pool_member_pairs_with_the_snapshot_rates() {
        let prices = PriceCatalogue::builtin();
        let priced: Vec<_> = prices
            .gpu_types()
            .filter(|g| prices.pool_of(&g.gpu_type).is_ok())
            .collect();
        // 22 pool members, less the RTX 5090 whose pool has no published rate.
        assert_eq!(priced.len(), 21);
    }

    #[test]
    fn live_catalogue_data_replaces_the_snapshot() {
        let mut prices = PriceCatalogue::builtin();
        prices.apply_live([LiveGpuPrice {
            gpu_type: "NVIDIA GeForce RTX 4090".into(),
            pool: Some("ADA_24".into()),
            secure_per_hour: Some(dec(44, 2)),
            community_per_hour: Some(dec(31, 2)),
            serverless_per_hour: Some(dec(1116, 3)),
        }]);
        assert_eq!(
            prices.pod_per_hour("NVIDIA GeForce RTX 4090", false),
            Ok(dec(44, 2))
        );
        assert_eq!(
            prices.pod_per_hour("NVIDIA GeForce RTX 4090", true),
            Ok(dec(31, 2))
        );
        let pool = prices.pool_of("NVIDIA L4").unwrap();
        assert_eq!(pool.flex_per_second, dec(31, 5));
        assert_eq!(pool.active_per_second, Some(dec(21, 5)), "active rate kept");
    }
}
