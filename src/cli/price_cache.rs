//! The CLI's copy of RunPod's price catalogue, kept between commands for the account's
//! `priceRefreshIntervalSeconds` (default an hour), as the controller keeps it in memory: a
//! steady `plan` or `apply` then reads three lists and the account, not the catalogue too.
//!
//! One small JSON file per API URL and key (the file name holds a hash of both, never the key)
//! in `RUNPOD_OPERATOR_CACHE_DIR`, else `$XDG_CACHE_HOME/runpod-operator`, else
//! `~/.cache/runpod-operator`. The file is read as untrusted input: larger than
//! [`MAX_BYTES`], not parseable, dated in the future, or holding a price that is not a positive
//! amount, it is ignored and the catalogue is read from RunPod. `--refresh-prices` reads
//! RunPod whatever the file says. Nothing is lost when the file cannot be written: the next
//! command reads the catalogue again.

use std::{
    hash::{Hash, Hasher},
    io::Read,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::engine::prices::LiveGpuPrice;

/// The most bytes a cache file may hold (RunPod's catalogue is a few KiB).
pub const MAX_BYTES: u64 = 1 << 20;

/// The most GPU types a cache file may hold.
const MAX_GPUS: usize = 2_000;

/// Where the cache files live, from the environment; `None` when there is no home.
pub fn default_dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("RUNPOD_OPERATOR_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("runpod-operator")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("runpod-operator")))
}

/// The cache of one account at one URL.
#[derive(Clone, Debug)]
pub struct PriceCache {
    path: PathBuf,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    /// The API URL the catalogue came from (a hash collision must not mix two).
    api_url: String,
    /// When RunPod answered, in seconds since 1970.
    fetched_at: u64,
    gpus: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Entry {
    gpu_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secure_per_hour: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    community_per_hour: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    serverless_per_hour: Option<Decimal>,
}

/// What the cache holds: the catalogue and when RunPod gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cached {
    /// The catalogue's entries.
    pub gpus: Vec<LiveGpuPrice>,
    /// When RunPod answered.
    pub fetched_at: SystemTime,
}

impl PriceCache {
    /// The cache in `dir` for this API URL and key.
    pub fn new(dir: &Path, api_url: &str, api_key: &str) -> Self {
        // A hash, not the key: the file name must not disclose it.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        api_url.hash(&mut hasher);
        api_key.hash(&mut hasher);
        Self {
            path: dir.join(format!("prices-{:016x}.json", hasher.finish())),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cached catalogue for `api_url`, whatever its age; `None` when there is none or it
    /// cannot be trusted.
    pub fn read(&self, api_url: &str, now: SystemTime) -> Option<Cached> {
        let file = std::fs::File::open(&self.path).ok()?;
        let mut text = Vec::new();
        file.take(MAX_BYTES + 1).read_to_end(&mut text).ok()?;
        if text.len() as u64 > MAX_BYTES {
            return None;
        }
        let file: File = serde_json::from_slice(&text).ok()?;
        let fetched_at = UNIX_EPOCH.checked_add(Duration::from_secs(file.fetched_at))?;
        if file.api_url != api_url || fetched_at > now || file.gpus.len() > MAX_GPUS {
            return None;
        }
        let positive = |p: &Option<Decimal>| p.is_none_or(|p| p > Decimal::ZERO);
        let mut gpus = Vec::with_capacity(file.gpus.len());
        for e in file.gpus {
            if e.gpu_type.is_empty()
                || !positive(&e.secure_per_hour)
                || !positive(&e.community_per_hour)
                || !positive(&e.serverless_per_hour)
            {
                return None;
            }
            gpus.push(LiveGpuPrice {
                gpu_type: e.gpu_type,
                pool: e.pool,
                secure_per_hour: e.secure_per_hour,
                community_per_hour: e.community_per_hour,
                serverless_per_hour: e.serverless_per_hour,
            });
        }
        Some(Cached { gpus, fetched_at })
    }

    /// The cached catalogue when it is younger than `max_age`.
    pub fn fresh(&self, api_url: &str, now: SystemTime, max_age: Duration) -> Option<Cached> {
        self.read(api_url, now).filter(|c| {
            now.duration_since(c.fetched_at)
                .is_ok_and(|age| age < max_age)
        })
    }

    /// Keeps `gpus`, read from RunPod at `fetched_at`. Written to a temporary file and renamed,
    /// so a reader never sees half a file.
    pub fn write(
        &self,
        api_url: &str,
        gpus: &[LiveGpuPrice],
        fetched_at: SystemTime,
    ) -> std::io::Result<()> {
        let file = File {
            api_url: api_url.to_string(),
            fetched_at: fetched_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            gpus: gpus
                .iter()
                .map(|g| Entry {
                    gpu_type: g.gpu_type.clone(),
                    pool: g.pool.clone(),
                    secure_per_hour: g.secure_per_hour,
                    community_per_hour: g.community_per_hour,
                    serverless_per_hour: g.serverless_per_hour,
                })
                .collect(),
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self
            .path
            .with_extension(format!("json.{}.tmp", std::process::id()));
        std::fs::write(
            &tmp,
            serde_json::to_vec(&file).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, &self.path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a100(price: &str) -> LiveGpuPrice {
        LiveGpuPrice {
            gpu_type: "NVIDIA A100-SXM4-80GB".into(),
            pool: Some("AMPERE_80".into()),
            secure_per_hour: Some(price.parse().unwrap()),
            community_per_hour: None,
            serverless_per_hour: Some("2.72".parse().unwrap()),
        }
    }

    const URL: &str = "https://rest.runpod.io/v1";

    /// A fresh directory of this test's own.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "runpod-operator-price-cache-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_catalogue_written_is_read_back_while_fresh_and_not_after() {
        let dir = scratch("fresh");
        let cache = PriceCache::new(&dir, URL, "key");
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(cache.fresh(URL, t0, Duration::from_secs(3600)), None);
        cache.write(URL, &[a100("1.89")], t0).unwrap();
        let hour = Duration::from_secs(3600);
        let read = cache
            .fresh(URL, t0 + Duration::from_secs(3599), hour)
            .unwrap();
        assert_eq!(read.gpus, vec![a100("1.89")]);
        assert_eq!(read.fetched_at, t0);
        assert_eq!(
            cache.fresh(URL, t0 + hour, hour),
            None,
            "an hour old is stale"
        );
        assert!(
            cache.read(URL, t0 + hour).is_some(),
            "stale, but still there"
        );
        // Dated after now (a clock set back): not trusted.
        assert_eq!(cache.read(URL, t0 - Duration::from_secs(1)), None);
        // The key or the URL changes the file; a file of another URL is not used.
        assert_ne!(PriceCache::new(&dir, URL, "other").path(), cache.path());
        assert_ne!(
            PriceCache::new(&dir, "http://x", "key").path(),
            cache.path()
        );
        assert_eq!(cache.read("http://x", t0), None);
        assert!(!cache.path().to_string_lossy().contains("key"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_or_hostile_file_is_ignored() {
        let dir = scratch("hostile");
        std::fs::create_dir_all(&dir).unwrap();
        let cache = PriceCache::new(&dir, URL, "key");
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_100);
        let entry = |price: &str| {
            format!(
                r#"{{"apiUrl":"{URL}","fetchedAt":1800000000,"gpus":[{{"gpuType":"A","securePerHour":"{price}"}}]}}"#
            )
        };
        std::fs::write(cache.path(), entry("1.5")).unwrap();
        assert!(
            cache.read(URL, now).is_some(),
            "the well-formed file is read"
        );
        for bad in [
            entry("0"),
            entry("-1"),
            entry("x"),
            "{".to_string(),
            "null".to_string(),
            entry("1.5").replace("gpuType", "gpuTyp"),
            format!(r#"{{"apiUrl":"{URL}","fetchedAt":99999999999999999999,"gpus":[]}}"#),
            " ".repeat(MAX_BYTES as usize + 1),
        ] {
            std::fs::write(cache.path(), &bad).unwrap();
            assert_eq!(cache.read(URL, now), None, "{}", &bad[..bad.len().min(80)]);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
