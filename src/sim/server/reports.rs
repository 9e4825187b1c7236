//! Read-only reports: the GPU and data-centre catalogue (from the simulator's own price list)
//! and billing by hour, day or week.

use axum::http::Uri;
use rust_decimal::{Decimal, prelude::ToPrimitive};
use serde_json::{Value, json};

use super::{Answer, query_param};
use crate::sim::world::{Billed, DATA_CENTERS, MS_PER_HOUR, Millis, Refusal, World, timestamp};

pub(super) fn money(amount: Decimal) -> Value {
    json!(amount.round_dp(10).to_f64().unwrap_or(0.0))
}

pub(super) fn catalog_gpus(world: &World) -> Vec<Value> {
    let catalog = &world.prices;
    catalog
        .gpus
        .values()
        .map(|g| {
            let mut price = json!({
                "secure": money(g.secure_per_hour.unwrap_or_default()),
                "community": money(g.community_per_hour.unwrap_or_default()),
            });
            if let Some(rates) = g.pool.as_deref().and_then(|p| catalog.pool_rates(p)) {
                price["serverless"] = money(rates.flex_per_second * Decimal::from(3600));
            }
            let max = |offered: bool| if offered { g.max_count } else { 0 };
            json!({
                "id": g.id,
                "name": g.id.trim_start_matches("NVIDIA ").trim_start_matches("GeForce "),
                "pool": g.pool,
                "manufacturer": if g.id.starts_with("AMD") { "AMD" } else { "NVIDIA" },
                "memory": g.memory_gb,
                "secure": g.secure_per_hour.is_some(),
                "community": g.community_per_hour.is_some(),
                "price": price,
                "maxCount": {
                    "secure": max(g.secure_per_hour.is_some()),
                    "community": max(g.community_per_hour.is_some()),
                },
            })
        })
        .collect()
}

pub(super) fn catalog_dcs() -> Vec<Value> {
    DATA_CENTERS
        .iter()
        .map(|id| {
            let region = match &id[..2] {
                "EU" => "EUROPE",
                "US" | "CA" => "NORTH_AMERICA",
                "OC" => "OCEANIA",
                "AP" => "ASIA",
                _ => "UNKNOWN",
            };
            json!({"id": id, "name": id, "region": region, "globalNetwork": false,
                   "networkVolumeTypes": ["STANDARD"], "compliance": []})
        })
        .collect()
}

pub(super) fn parse_time(text: &str) -> Option<Millis> {
    let t: jiff::Timestamp = text.parse().ok()?;
    let seconds = t.as_second() - crate::sim::world::EPOCH_UNIX_SECONDS;
    Millis::try_from(seconds).ok()?.checked_mul(1000)
}

/// The bucket an hour of the ledger falls in, as a start instant.
pub(super) fn bucket_start(hour: u64, size: &str) -> Millis {
    let at = hour * MS_PER_HOUR;
    let day = 24 * MS_PER_HOUR;
    match size {
        "hour" => at,
        "week" => at / (7 * day) * (7 * day),
        "month" | "year" => {
            let seconds = crate::sim::world::EPOCH_UNIX_SECONDS + (at / 1000) as i64;
            let date = jiff::Timestamp::from_second(seconds)
                .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date())
                .unwrap_or_default();
            let first = if size == "month" {
                date.first_of_month()
            } else {
                date.first_of_year()
            };
            let start = first
                .to_zoned(jiff::tz::TimeZone::UTC)
                .map(|z| z.timestamp().as_second())
                .unwrap_or(crate::sim::world::EPOCH_UNIX_SECONDS);
            ((start - crate::sim::world::EPOCH_UNIX_SECONDS).max(0) as Millis) * 1000
        }
        _ => at / day * day,
    }
}

pub(super) fn bucket_end(start: Millis, size: &str) -> Millis {
    let day = 24 * MS_PER_HOUR;
    match size {
        "hour" => start + MS_PER_HOUR,
        "week" => start + 7 * day,
        "month" | "year" => {
            let mut hour = start / MS_PER_HOUR;
            loop {
                hour += 24;
                let b = bucket_start(hour, size);
                if b != start {
                    return b;
                }
            }
        }
        _ => start + day,
    }
}

pub(super) fn billing(world: &World, key: &str, uri: &Uri, kind: Billed) -> Answer {
    let size = query_param(uri, "bucketSize").unwrap_or_else(|| "day".to_string());
    if !["hour", "day", "week", "month", "year"].contains(&size.as_str()) {
        let mut r = Refusal::new(422, "Request validation failed.");
        r.errors.push(format!(
            "bucketSize: {size:?} is not one of hour, day, week, month, year"
        ));
        return Answer::refusal(r);
    }
    let end = query_param(uri, "endTime")
        .and_then(|t| parse_time(&t))
        .unwrap_or(world.now);
    let start = query_param(uri, "startTime")
        .and_then(|t| parse_time(&t))
        .unwrap_or_else(|| end.saturating_sub(30 * 24 * MS_PER_HOUR));
    // `lastN`: the last N buckets, ending with the current (in-progress) one.
    let (start, end) = match query_param(uri, "lastN").map(|n| n.parse::<u64>()) {
        None => (start, end),
        Some(Ok(n)) if (1..=100_000).contains(&n) => {
            let current = bucket_start(world.now / MS_PER_HOUR, &size);
            let mut first = current;
            for _ in 1..n {
                if first == 0 {
                    break;
                }
                first = bucket_start((first - 1) / MS_PER_HOUR, &size);
            }
            (first, bucket_end(current, &size))
        }
        Some(_) => {
            let mut r = Refusal::new(422, "Request validation failed.");
            r.errors
                .push("lastN: must be a whole number from 1 to 100000".to_string());
            return Answer::refusal(r);
        }
    };
    let (id_field, id_filter) = match kind {
        Billed::Pod => ("podId", query_param(uri, "podId")),
        Billed::Serverless => ("serverlessId", query_param(uri, "serverlessId")),
        Billed::NetworkVolume => ("networkVolumeId", query_param(uri, "networkVolumeId")),
    };
    let account = world.account(key).expect("authenticated");
    let mut buckets: std::collections::BTreeMap<(Millis, String), crate::sim::world::Amounts> =
        Default::default();
    for ((hour, billed, id), amounts) in &account.ledger {
        let at = hour * MS_PER_HOUR;
        if *billed != kind || at < start || at >= end || id_filter.as_ref().is_some_and(|f| f != id)
        {
            continue;
        }
        let line = buckets
            .entry((bucket_start(*hour, &size), id.clone()))
            .or_default();
        line.gpu += amounts.gpu;
        line.disk += amounts.disk;
        line.storage += amounts.storage;
    }
    let mut totals = crate::sim::world::Amounts::default();
    let mut ids = std::collections::BTreeSet::new();
    let records: Vec<Value> = buckets
        .iter()
        .map(|((at, id), a)| {
            totals.gpu += a.gpu;
            totals.disk += a.disk;
            totals.storage += a.storage;
            ids.insert(id.clone());
            let mut record = amounts_json(kind, a);
            record["startTime"] = json!(timestamp(*at));
            record["endTime"] = json!(timestamp(bucket_end(*at, &size)));
            record[id_field] = json!(id);
            record
        })
        .collect();
    let unique = match kind {
        Billed::Pod => "uniquePodCount",
        Billed::Serverless => "uniqueServerlessCount",
        Billed::NetworkVolume => "uniqueNetworkVolumeCount",
    };
    let mut query =
        json!({"startTime": timestamp(start), "endTime": timestamp(end), "bucketSize": size});
    query[id_field] = json!(id_filter);
    let metadata = json!({
        "query": query,
        "recordCount": records.len(),
        unique: ids.len(),
        "totals": amounts_json(kind, &totals),
    });
    Answer::json(200, json!({"records": records, "metadata": metadata}))
}

pub(super) fn amounts_json(kind: Billed, a: &crate::sim::world::Amounts) -> Value {
    match kind {
        Billed::Pod => {
            json!({"totalAmount": money(a.total()), "gpuAmount": money(a.gpu), "cpuAmount": 0.0, "diskAmount": money(a.disk)})
        }
        Billed::Serverless => {
            json!({"totalAmount": money(a.total()), "gpuAmount": money(a.gpu), "cpuAmount": 0.0, "diskAmount": money(a.disk), "feeAmount": 0.0})
        }
        Billed::NetworkVolume => {
            json!({"totalAmount": money(a.total()), "standardAmount": money(a.storage), "highPerformanceAmount": 0.0})
        }
    }
}
