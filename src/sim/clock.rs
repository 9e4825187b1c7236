//! The simulator's virtual clock: milliseconds since a fixed epoch.

use rust_decimal::Decimal;

/// Milliseconds on the virtual clock since [`EPOCH_UNIX_SECONDS`].
pub type Millis = u64;

/// The instant the virtual clock starts at: 2026-01-01T00:00:00Z, in Unix seconds.
pub const EPOCH_UNIX_SECONDS: i64 = 1_767_225_600;

/// Milliseconds in an hour: the ledger's bucket.
pub const MS_PER_HOUR: u64 = 3_600_000;

/// A rate per hour as a rate per millisecond.
pub fn per_ms(per_hour: Decimal) -> Decimal {
    per_hour / Decimal::from(MS_PER_HOUR)
}

/// Seconds a request gives (a job's length, a cold start, a queue delay) as milliseconds:
/// `None` unless finite, not negative and at most a year. The one place a client's float
/// becomes a duration; checked first, so the conversion below cannot wrap or saturate.
pub fn millis_from_seconds(seconds: f64) -> Option<Millis> {
    const YEAR_SECONDS: f64 = 365.0 * 24.0 * 3600.0;
    (seconds.is_finite() && (0.0..=YEAR_SECONDS).contains(&seconds))
        .then(|| (seconds * 1000.0).round() as Millis)
}

/// Renders a virtual instant as RFC 3339 UTC.
pub fn timestamp(at: Millis) -> String {
    let seconds = EPOCH_UNIX_SECONDS + (at / 1000) as i64;
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.to_string())
        .unwrap_or_default()
}
