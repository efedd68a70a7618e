//! Alpaca's JSON (trading API v2), in its own snake_case spelling. Decimals arrive as strings
//! (sometimes numbers) and are read from their text; enums stay strings here, so that a value
//! Alpaca adds later never fails a whole page, and are interpreted in `mapping`.

use reconcile_core::decimal;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

/// A time in RFC 3339 with 0 to 9 fractional digits and any offset.
pub fn time<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, D::Error> {
    let v = Option::<String>::deserialize(d)?;
    match v.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&chrono::Utc)))
            .map_err(|e| serde::de::Error::custom(format!("not a time: {s:?}: {e}"))),
    }
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// `GET /v2/account`.
#[derive(Debug, Deserialize)]
pub struct Account {
    /// A UUID.
    pub id: String,
    /// Such as `PA3ALPACA01`: it stamps every order and position.
    pub account_number: String,
    /// `ACTIVE`, …
    #[serde(default)]
    pub status: Option<String>,
    /// Whether trading is blocked.
    #[serde(default)]
    pub trading_blocked: Option<bool>,
}

/// An order; under `nested=true`, the legs of bracket, OCO, OTO and mleg orders are inside.
#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    /// A UUID.
    pub id: String,
    /// The client's id (Alpaca makes one up when none is sent).
    #[serde(default)]
    pub client_order_id: Option<String>,
    /// When it was created.
    #[serde(default, deserialize_with = "time")]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it last changed.
    #[serde(default, deserialize_with = "time")]
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it was submitted.
    #[serde(default, deserialize_with = "time")]
    pub submitted_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it filled.
    #[serde(default, deserialize_with = "time")]
    pub filled_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The order that replaced it.
    #[serde(default)]
    pub replaced_by: Option<String>,
    /// The order it replaced.
    #[serde(default)]
    pub replaces: Option<String>,
    /// The instrument (`""` on an mleg parent).
    #[serde(default)]
    pub symbol: Option<String>,
    /// `us_equity`, `us_option`, `crypto` (`""` on an mleg parent).
    #[serde(default)]
    pub asset_class: Option<String>,
    /// Quantity (exactly one of `qty` and `notional`).
    #[serde(with = "decimal::option", default)]
    pub qty: Option<Decimal>,
    /// Notional amount.
    #[serde(with = "decimal::option", default)]
    pub notional: Option<Decimal>,
    /// How much filled (`"0"` when nothing did).
    #[serde(with = "decimal::option", default)]
    pub filled_qty: Option<Decimal>,
    /// Average fill price.
    #[serde(with = "decimal::option", default)]
    pub filled_avg_price: Option<Decimal>,
    /// `simple` (or `""`), `bracket`, `oco`, `oto`, `mleg`.
    #[serde(default)]
    pub order_class: Option<String>,
    /// `market`, `limit`, `stop`, `stop_limit`, `trailing_stop` (`""` on mleg legs).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The deprecated copy of `type`.
    #[serde(default)]
    pub order_type: Option<String>,
    /// `buy`, `sell` (`""` on an mleg parent).
    #[serde(default)]
    pub side: Option<String>,
    /// `buy_to_open`, `buy_to_close`, `sell_to_open`, `sell_to_close`.
    #[serde(default)]
    pub position_intent: Option<String>,
    /// `day`, `gtc`, …
    #[serde(default)]
    pub time_in_force: Option<String>,
    /// Limit price (an mleg's is net: positive a debit, negative a credit).
    #[serde(with = "decimal::option", default)]
    pub limit_price: Option<Decimal>,
    /// Stop price.
    #[serde(with = "decimal::option", default)]
    pub stop_price: Option<Decimal>,
    /// `new`, `held`, `filled`, …
    pub status: String,
    /// Legs: child orders (bracket, OCO, OTO) or instrument legs (mleg); `null` unless nested.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub legs: Vec<Order>,
    /// An mleg leg's share of the strategy's quantity.
    #[serde(with = "decimal::option", default)]
    pub ratio_qty: Option<Decimal>,
}

/// A position.
#[derive(Debug, Clone, Deserialize)]
pub struct Position {
    /// The instrument (options: OCC, no padding).
    pub symbol: String,
    /// `us_equity`, `us_option`, `crypto`.
    #[serde(default)]
    pub asset_class: Option<String>,
    /// Signed: shorts are negative.
    #[serde(with = "decimal::string")]
    pub qty: Decimal,
    /// `long` or `short`.
    #[serde(default)]
    pub side: Option<String>,
    /// Average entry price.
    #[serde(with = "decimal::option", default)]
    pub avg_entry_price: Option<Decimal>,
    /// What open orders do not hold.
    #[serde(with = "decimal::option", default)]
    pub qty_available: Option<Decimal>,
}

/// `{"code": 40410000, "message": "order not found"}` (the code can be missing).
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    /// An eight-digit code, a number or a string.
    #[serde(default)]
    pub code: Option<serde_json::Value>,
    /// The message.
    #[serde(default)]
    pub message: Option<String>,
}

impl ErrorBody {
    /// The code as text (empty when absent).
    pub fn code(&self) -> String {
        match &self.code {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        }
    }

    /// The message (empty when absent).
    pub fn message(&self) -> String {
        self.message.clone().unwrap_or_default()
    }
}

/// `take_profit` of an OCO or bracket request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TakeProfit {
    /// The limit price.
    pub limit_price: String,
}

/// `stop_loss` of an OCO or bracket request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StopLoss {
    /// The stop price.
    pub stop_price: String,
    /// With a limit price, the stop is a stop-limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<String>,
}

/// One leg of an mleg request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewLeg {
    /// OCC symbol, no padding.
    pub symbol: String,
    /// Its share of the quantity.
    pub ratio_qty: String,
    /// `buy` or `sell`.
    pub side: String,
    /// `buy_to_close`, …
    pub position_intent: String,
}

/// `POST /v2/orders`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewOrder {
    /// The instrument (left out for mleg).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// Quantity, as a string.
    pub qty: String,
    /// `buy` or `sell` (left out for mleg).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<String>,
    /// `limit`, `stop`, `stop_limit`, `market`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `gtc`, `day`.
    pub time_in_force: String,
    /// Limit price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<String>,
    /// Stop price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_price: Option<String>,
    /// Our id for the order (at most 48 characters).
    pub client_order_id: String,
    /// `simple`, `oco`, `mleg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_class: Option<String>,
    /// Options: the position effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_intent: Option<String>,
    /// OCO: the take profit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub take_profit: Option<TakeProfit>,
    /// OCO: the stop loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_loss: Option<StopLoss>,
    /// mleg: the legs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legs: Option<Vec<NewLeg>>,
}

/// `PATCH /v2/orders/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Replace {
    /// New quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qty: Option<String>,
    /// New limit price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<String>,
    /// New stop price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_price: Option<String>,
    /// The replacement's client order id (sent, or Alpaca makes a new one up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<String>,
}
