//! Text forms of the domain's values in SQLite, and their parsing back with errors that say where.

use chrono::{DateTime, SecondsFormat, Utc};
use reconcile_core::{PositionState, Side, StoreError, TargetStatus};
use rust_decimal::Decimal;

pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub(crate) fn corrupt(location: String, message: String) -> StoreError {
    StoreError::Corrupt {
        store: "sqlite".to_owned(),
        location,
        message,
    }
}

pub(crate) fn parse_time(s: &str, at: impl Fn() -> String) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt(at(), format!("not an RFC 3339 time {s:?}: {e}")))
}

pub(crate) fn parse_opt_time(
    s: Option<String>,
    at: impl Fn() -> String,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    s.map(|s| parse_time(&s, at)).transpose()
}

pub(crate) fn parse_dec(s: &str, at: impl Fn() -> String) -> Result<Decimal, StoreError> {
    reconcile_core::decimal::parse_decimal(s).map_err(|m| corrupt(at(), m))
}

pub(crate) fn parse_opt_dec(
    s: Option<String>,
    at: impl Fn() -> String,
) -> Result<Option<Decimal>, StoreError> {
    s.map(|s| parse_dec(&s, at)).transpose()
}

pub(crate) fn state(s: PositionState) -> &'static str {
    s.as_str()
}

/// Reads a column holding one of an enum's spellings (`reconcile_core::spelling`).
pub(crate) fn parse_spelled<T>(s: &str, at: impl Fn() -> String) -> Result<T, StoreError>
where
    T: std::str::FromStr<Err = reconcile_core::spelling::UnknownSpelling>,
{
    s.parse()
        .map_err(|e: reconcile_core::spelling::UnknownSpelling| corrupt(at(), e.to_string()))
}

pub(crate) fn parse_state(s: &str, at: impl Fn() -> String) -> Result<PositionState, StoreError> {
    parse_spelled(s, at)
}

pub(crate) fn parse_status(s: &str, at: impl Fn() -> String) -> Result<TargetStatus, StoreError> {
    parse_spelled(s, at)
}

pub(crate) fn parse_side(s: &str, at: impl Fn() -> String) -> Result<Side, StoreError> {
    parse_spelled(s, at)
}

pub(crate) fn parse_outcome(
    s: &str,
    at: impl Fn() -> String,
) -> Result<reconcile_core::Outcome, StoreError> {
    parse_spelled(s, at)
}
