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

pub(crate) fn parse_state(s: &str, at: impl Fn() -> String) -> Result<PositionState, StoreError> {
    Ok(match s {
        "pending" => PositionState::Pending,
        "open" => PositionState::Open,
        "closing" => PositionState::Closing,
        "closed" => PositionState::Closed,
        _ => return Err(corrupt(at(), format!("unknown position state {s:?}"))),
    })
}

pub(crate) fn parse_status(s: &str, at: impl Fn() -> String) -> Result<TargetStatus, StoreError> {
    Ok(match s {
        "unplaced" => TargetStatus::Unplaced,
        "active" => TargetStatus::Active,
        "filled" => TargetStatus::Filled,
        "cancelled" => TargetStatus::Cancelled,
        "failed" => TargetStatus::Failed,
        _ => return Err(corrupt(at(), format!("unknown target status {s:?}"))),
    })
}

pub(crate) fn parse_side(s: &str, at: impl Fn() -> String) -> Result<Side, StoreError> {
    Ok(match s {
        "buy" => Side::Buy,
        "sell" => Side::Sell,
        "buy_to_open" => Side::BuyToOpen,
        "buy_to_close" => Side::BuyToClose,
        "sell_to_open" => Side::SellToOpen,
        "sell_to_close" => Side::SellToClose,
        _ => return Err(corrupt(at(), format!("unknown side {s:?}"))),
    })
}

pub(crate) fn parse_outcome(
    s: &str,
    at: impl Fn() -> String,
) -> Result<reconcile_core::Outcome, StoreError> {
    use reconcile_core::Outcome as O;
    Ok(match s {
        "applied" => O::Applied,
        "already_done" => O::AlreadyDone,
        "would_apply" => O::WouldApply,
        "skipped" => O::Skipped,
        "uncertain" => O::Uncertain,
        "failed" => O::Failed,
        _ => return Err(corrupt(at(), format!("unknown outcome {s:?}"))),
    })
}
