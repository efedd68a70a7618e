//! Snapshot format v1 (DESIGN §3): `reconcile.local/v1` and `reconcile.broker/v1`. Parsing names
//! the JSON path of whatever is wrong; writing gives the same bytes for the same snapshot.

use crate::model::{BrokerPosition, Intent, Order, Position, null_as_empty};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The `format` tag of a local snapshot.
pub const LOCAL_FORMAT: &str = "reconcile.local/v1";
/// The `format` tag of a broker snapshot.
pub const BROKER_FORMAT: &str = "reconcile.broker/v1";

format_tag!(
    /// The tag `"reconcile.local/v1"`.
    LocalFormat,
    LOCAL_FORMAT
);
format_tag!(
    /// The tag `"reconcile.broker/v1"`.
    BrokerFormat,
    BROKER_FORMAT
);

/// What our own records say: positions with their targets, and open intents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalSnapshot {
    /// Always `reconcile.local/v1`.
    pub format: LocalFormat,
    /// When the records were read.
    #[serde(deserialize_with = "crate::time::required")]
    pub as_of: DateTime<Utc>,
    /// Local positions.
    pub positions: Vec<Position>,
    /// Intents written before orders were sent and not yet resolved.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub intents: Vec<Intent>,
}

/// What the broker says: working orders and recent history, and holdings if known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerSnapshot {
    /// Always `reconcile.broker/v1`.
    pub format: BrokerFormat,
    /// When the broker was read.
    #[serde(deserialize_with = "crate::time::required")]
    pub as_of: DateTime<Utc>,
    /// Working orders and recent history.
    pub orders: Vec<Order>,
    /// Holdings; `None` means unknown (holdings checks are skipped), never flat.
    #[serde(default)]
    pub positions: Option<Vec<BrokerPosition>>,
}

impl LocalSnapshot {
    /// An empty snapshot as of `as_of`.
    pub fn new(as_of: DateTime<Utc>) -> Self {
        Self {
            format: LocalFormat,
            as_of,
            positions: Vec::new(),
            intents: Vec::new(),
        }
    }

    /// Parses and validates a `reconcile.local/v1` document.
    ///
    /// # Errors
    /// [`SnapshotError`] naming the JSON path and the problem.
    pub fn from_json(text: &str) -> Result<Self, SnapshotError> {
        let snapshot: Self = parse_json(text)?;
        snapshot.validate()?;
        Ok(snapshot)
    }

    /// Reads and validates a `reconcile.local/v1` document from `reader` a position at a time,
    /// never holding the whole text. `None` when it cannot (the document is not well-formed,
    /// not valid, or the reader failed): read the whole text and call [`Self::from_json`], which
    /// names the problem.
    pub fn from_reader(reader: impl std::io::Read) -> Option<Self> {
        let _sharing = crate::ids::Sharing::start();
        let (mut format, mut as_of, mut positions, mut intents) = (None, None, None, None);
        crate::stream::members(reader, |key, r| {
            match key {
                "format" => format = Some(r.value::<LocalFormat>()?),
                "as_of" => as_of = Some(r.value()?),
                "positions" if r.array()? => positions = Some(r.list()?),
                "intents" if r.array()? => intents = Some(r.list()?),
                "intents" => intents = r.value::<Option<Vec<Intent>>>()?,
                "positions" => return Err(crate::stream::Unread),
                _ => drop(r.value::<serde::de::IgnoredAny>()?),
            }
            Ok(())
        })
        .ok()?;
        let snapshot = Self {
            format: format?,
            as_of: as_of?,
            positions: positions?,
            intents: intents.unwrap_or_default(),
        };
        snapshot.validate().ok()?;
        Some(snapshot)
    }

    /// Writes the document as pretty JSON with a trailing newline.
    ///
    /// # Errors
    /// A serialization error (none is known to be possible for a snapshot).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        to_json(self)
    }

    /// Checks what the types cannot: unique position ids, unique target keys within a
    /// position, positive target quantities.
    ///
    /// # Errors
    /// [`SnapshotError`] naming the first offending path.
    pub fn validate(&self) -> Result<(), SnapshotError> {
        let mut ids = crate::fasthash::FxSet::default();
        ids.reserve(self.positions.len());
        for (i, p) in self.positions.iter().enumerate() {
            if !ids.insert(p.id.as_str()) {
                return Err(SnapshotError::at(
                    format!("positions[{i}].id"),
                    format!("duplicate position id {:?}", p.id.as_str()),
                ));
            }
            for (j, t) in p.targets.iter().enumerate() {
                // A position has a handful of targets: looking back costs less than a set.
                if p.targets[..j].iter().any(|u| u.key == t.key) {
                    return Err(SnapshotError::at(
                        format!("positions[{i}].targets[{j}].key"),
                        format!("duplicate target key {:?}", t.key.as_str()),
                    ));
                }
                if let Some(q) = t.quantity
                    && q <= rust_decimal::Decimal::ZERO
                {
                    return Err(SnapshotError::at(
                        format!("positions[{i}].targets[{j}].quantity"),
                        format!("must be positive, found {q}"),
                    ));
                }
                for (k, leg) in t.legs.iter().enumerate() {
                    if leg.quantity <= rust_decimal::Decimal::ZERO {
                        return Err(SnapshotError::at(
                            format!("positions[{i}].targets[{j}].legs[{k}].quantity"),
                            format!("must be positive, found {}", leg.quantity),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl BrokerSnapshot {
    /// An empty snapshot as of `as_of` with holdings unknown.
    pub fn new(as_of: DateTime<Utc>) -> Self {
        Self {
            format: BrokerFormat,
            as_of,
            orders: Vec::new(),
            positions: None,
        }
    }

    /// Parses and validates a `reconcile.broker/v1` document.
    ///
    /// # Errors
    /// [`SnapshotError`] naming the JSON path and the problem.
    pub fn from_json(text: &str) -> Result<Self, SnapshotError> {
        let snapshot: Self = parse_json(text)?;
        snapshot.validate()?;
        Ok(snapshot)
    }

    /// Reads and validates a `reconcile.broker/v1` document from `reader` an order at a time,
    /// never holding the whole text. `None` when it cannot (the document is not well-formed,
    /// not valid, or the reader failed): read the whole text and call [`Self::from_json`], which
    /// names the problem.
    pub fn from_reader(reader: impl std::io::Read) -> Option<Self> {
        let _sharing = crate::ids::Sharing::start();
        let (mut format, mut as_of, mut orders, mut positions) = (None, None, None, None);
        crate::stream::members(reader, |key, r| {
            match key {
                "format" => format = Some(r.value::<BrokerFormat>()?),
                "as_of" => as_of = Some(r.value()?),
                "orders" if r.array()? => orders = Some(r.list()?),
                "positions" if r.array()? => positions = Some(Some(r.list()?)),
                "positions" => positions = Some(r.value::<Option<Vec<BrokerPosition>>>()?),
                "orders" => return Err(crate::stream::Unread),
                _ => drop(r.value::<serde::de::IgnoredAny>()?),
            }
            Ok(())
        })
        .ok()?;
        let snapshot = Self {
            format: format?,
            as_of: as_of?,
            orders: orders?,
            positions: positions.flatten(),
        };
        snapshot.validate().ok()?;
        Some(snapshot)
    }

    /// Writes the document as pretty JSON with a trailing newline.
    ///
    /// # Errors
    /// A serialization error (none is known to be possible for a snapshot).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        to_json(self)
    }

    /// Checks that order leg quantities are positive and fills do not exceed them.
    ///
    /// # Errors
    /// [`SnapshotError`] naming the first offending path.
    pub fn validate(&self) -> Result<(), SnapshotError> {
        for (i, o) in self.orders.iter().enumerate() {
            for (j, leg) in o.legs.iter().enumerate() {
                if leg.quantity <= rust_decimal::Decimal::ZERO {
                    return Err(SnapshotError::at(
                        format!("orders[{i}].legs[{j}].quantity"),
                        format!("must be positive, found {}", leg.quantity),
                    ));
                }
                if leg.filled_quantity < rust_decimal::Decimal::ZERO
                    || leg.filled_quantity > leg.quantity
                {
                    return Err(SnapshotError::at(
                        format!("orders[{i}].legs[{j}].filled_quantity"),
                        format!(
                            "must be between 0 and the leg's quantity {}, found {}",
                            leg.quantity, leg.filled_quantity
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A snapshot that could not be read: where (a JSON path such as `orders[3].legs[0].quantity`)
/// and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SnapshotError {
    /// The JSON path, or `.` for the document itself.
    pub path: String,
    /// What is wrong there.
    pub message: String,
    /// 1-based line of the problem, when known.
    pub line: Option<usize>,
    /// 1-based column of the problem, when known.
    pub column: Option<usize>,
}

impl SnapshotError {
    fn at(path: String, message: String) -> Self {
        Self {
            path,
            message,
            line: None,
            column: None,
        }
    }
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path == "." {
            write!(f, "{}", self.message)?;
        } else {
            write!(f, "{}: {}", self.path, self.message)?;
        }
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, " (line {l}, column {c})")?;
        }
        Ok(())
    }
}

pub(crate) fn parse_json<T: DeserializeOwned>(text: &str) -> Result<T, SnapshotError> {
    let _sharing = crate::ids::Sharing::start();
    // The fast path tracks no path: nearly half the cost of a large parse. Only a document
    // that fails is read again, with its path tracked, to name where it failed.
    if let Ok(value) = serde_json::from_str::<T>(text) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        json_error(path, &e.into_inner())
    })?;
    de.end().map_err(|e| json_error(".".to_owned(), &e))?;
    Ok(value)
}

fn json_error(path: String, inner: &serde_json::Error) -> SnapshotError {
    let full = inner.to_string();
    // serde_json appends " at line L column C"; keep the message and report the place apart.
    let message = match full.rfind(" at line ") {
        Some(i) if inner.line() > 0 => full[..i].to_owned(),
        _ => full,
    };
    SnapshotError {
        path,
        message,
        line: (inner.line() > 0).then_some(inner.line()),
        column: (inner.line() > 0).then_some(inner.column()),
    }
}

/// Pretty JSON with a trailing newline: the one writer of every document of ours.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let mut out = serde_json::to_string_pretty(value)?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: &str = r#"{
      "format": "reconcile.local/v1", "as_of": "2025-11-07T15:00:00Z",
      "positions": [{"id": "45", "account": "5WT00001", "underlying": "QQQ", "state": "open",
        "legs": [{"symbol": "QQQ251219C00640000", "quantity": -1}],
        "targets": [{"key": "call_spread", "status": "active", "order_id": "412345678",
          "limit_price": 0.6, "legs": [{"symbol": "QQQ   251219C00640000", "side": "buy_to_close", "quantity": "1"}]}]}],
      "unknown_field": true
    }"#;

    #[test]
    fn local_snapshot_round_trips_with_numbers_as_strings() {
        let s = LocalSnapshot::from_json(LOCAL).unwrap();
        let t = &s.positions[0].targets[0];
        assert_eq!(t.limit_price.unwrap().to_string(), "0.6");
        assert_eq!(
            s.positions[0].legs[0].symbol.as_str(),
            "QQQ   251219C00640000"
        );
        let written = s.to_json().unwrap();
        assert!(written.contains("\"limit_price\": \"0.6\""), "{written}");
        assert_eq!(LocalSnapshot::from_json(&written).unwrap(), s);
        assert!(s.intents.is_empty());
    }

    #[test]
    fn bad_decimal_names_its_path() {
        let text = r#"{"format": "reconcile.broker/v1", "as_of": "2025-11-07T15:00:00Z",
          "orders": [{"id": "1", "account": "A", "underlying": "QQQ", "status": "live",
             "legs": [{"symbol": "QQQ", "side": "buy", "quantity": "abc"}]}]}"#;
        let e = BrokerSnapshot::from_json(text).unwrap_err();
        assert_eq!(e.path, "orders[0].legs[0].quantity");
        assert_eq!(e.message, "not a decimal: \"abc\"");
        assert!(
            e.to_string()
                .starts_with("orders[0].legs[0].quantity: not a decimal: \"abc\"")
        );
    }

    #[test]
    fn missing_required_field_names_the_item() {
        let text = r#"{"format": "reconcile.broker/v1", "as_of": "2025-11-07T15:00:00Z",
          "orders": [{"id": "1", "account": "A", "status": "live"}]}"#;
        let e = BrokerSnapshot::from_json(text).unwrap_err();
        assert_eq!(e.path, "orders[0]");
        assert!(e.message.contains("missing field `underlying`"), "{e}");
    }

    #[test]
    fn wrong_format_tag_and_missing_arrays_are_errors() {
        let e = LocalSnapshot::from_json(
            r#"{"format": "reconcile.local/v2", "as_of": "2025-11-07T15:00:00Z", "positions": []}"#,
        )
        .unwrap_err();
        assert_eq!(e.path, "format");
        assert!(e.message.contains("expected \"reconcile.local/v1\""));
        let e = BrokerSnapshot::from_json(
            r#"{"format": "reconcile.broker/v1", "as_of": "2025-11-07T15:00:00Z"}"#,
        )
        .unwrap_err();
        assert!(e.message.contains("missing field `orders`"), "{e}");
        let e = LocalSnapshot::from_json("{\"format\": ").unwrap_err();
        assert!(e.line.is_some());
    }

    #[test]
    fn absent_or_null_positions_mean_unknown_not_flat() {
        let absent = BrokerSnapshot::from_json(
            r#"{"format": "reconcile.broker/v1", "as_of": "2025-11-07T15:00:00Z", "orders": []}"#,
        )
        .unwrap();
        assert_eq!(absent.positions, None);
        let null = BrokerSnapshot::from_json(r#"{"format": "reconcile.broker/v1", "as_of": "2025-11-07T15:00:00Z", "orders": [], "positions": null}"#).unwrap();
        assert_eq!(null.positions, None);
        let empty = BrokerSnapshot::from_json(r#"{"format": "reconcile.broker/v1", "as_of": "2025-11-07T15:00:00Z", "orders": [], "positions": []}"#).unwrap();
        assert_eq!(empty.positions, Some(vec![]));
    }

    #[test]
    fn semantic_errors_name_their_path() {
        let text = r#"{"format": "reconcile.local/v1", "as_of": "2025-11-07T15:00:00Z",
          "positions": [{"id": "1", "account": "A", "underlying": "Q", "state": "open"},
                        {"id": "1", "account": "A", "underlying": "Q", "state": "open"}]}"#;
        let e = LocalSnapshot::from_json(text).unwrap_err();
        assert_eq!(
            e.to_string(),
            "positions[1].id: duplicate position id \"1\""
        );
        let text = r#"{"format": "reconcile.local/v1", "as_of": "2025-11-07T15:00:00Z",
          "positions": [{"id": "1", "account": "A", "underlying": "Q", "state": "sideways"}]}"#;
        let e = LocalSnapshot::from_json(text).unwrap_err();
        assert_eq!(e.path, "positions[0].state");
    }
}
