//! Text forms of the domain's values in SQLite, and their parsing back with errors that say where.

use chrono::{DateTime, SecondsFormat, Utc};
use reconcile_core::{PositionState, Side, StoreError, TargetStatus};
use rust_decimal::Decimal;

/// A time as stored: RFC 3339 in UTC with as many fractional digits as it has.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A [`StoreError::Corrupt`] naming where a bad value sits.
pub fn corrupt(location: String, message: String) -> StoreError {
    StoreError::Corrupt {
        store: "sqlite".to_owned(),
        location,
        message,
    }
}

/// An RFC 3339 time from a column; `at` names the column for the error.
pub fn parse_time(s: &str, at: impl Fn() -> String) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt(at(), format!("not an RFC 3339 time {s:?}: {e}")))
}

/// An optional RFC 3339 time from a nullable column.
pub fn parse_opt_time(
    s: Option<String>,
    at: impl Fn() -> String,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    s.map(|s| parse_time(&s, at)).transpose()
}

/// A decimal from its text (never through a float).
pub fn parse_dec(s: &str, at: impl Fn() -> String) -> Result<Decimal, StoreError> {
    reconcile_core::decimal::parse_decimal(s).map_err(|m| corrupt(at(), m))
}

/// An optional decimal from a nullable column.
pub fn parse_opt_dec(
    s: Option<String>,
    at: impl Fn() -> String,
) -> Result<Option<Decimal>, StoreError> {
    s.map(|s| parse_dec(&s, at)).transpose()
}

/// A position state as stored.
pub fn state(s: PositionState) -> &'static str {
    s.as_str()
}

/// Reads a column holding one of an enum's spellings (`reconcile_core::spelling`).
pub fn parse_spelled<T>(s: &str, at: impl Fn() -> String) -> Result<T, StoreError>
where
    T: std::str::FromStr<Err = reconcile_core::spelling::UnknownSpelling>,
{
    s.parse()
        .map_err(|e: reconcile_core::spelling::UnknownSpelling| corrupt(at(), e.to_string()))
}

/// A position state from a column.
pub fn parse_state(s: &str, at: impl Fn() -> String) -> Result<PositionState, StoreError> {
    parse_spelled(s, at)
}

/// A target status from a column.
pub fn parse_status(s: &str, at: impl Fn() -> String) -> Result<TargetStatus, StoreError> {
    parse_spelled(s, at)
}

/// A side from a column.
pub fn parse_side(s: &str, at: impl Fn() -> String) -> Result<Side, StoreError> {
    parse_spelled(s, at)
}

/// An outcome from a column.
pub fn parse_outcome(
    s: &str,
    at: impl Fn() -> String,
) -> Result<reconcile_core::Outcome, StoreError> {
    parse_spelled(s, at)
}
