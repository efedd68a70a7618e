//! TastyTrade's JSON, in its own kebab-case spelling. Numbers arrive as strings or numbers;
//! enums stay strings here (a value the broker adds later must never fail a whole page) and are
//! interpreted in `mapping`.

use reconcile_core::decimal;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

/// `{"data": …, "context": …, "pagination": …}`.
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    /// The payload.
    pub data: T,
    /// Paging, on paginated lists.
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

/// `data.items[]`.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct Items<T> {
    /// The items.
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
}

/// A page's position in a list.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Pagination {
    /// Items per page.
    #[serde(default, deserialize_with = "int")]
    pub per_page: i64,
    /// 0-based page.
    #[serde(default, deserialize_with = "int")]
    pub page_offset: i64,
    /// How many pages there are.
    #[serde(default, deserialize_with = "int")]
    pub total_pages: i64,
    /// How many items there are.
    #[serde(default, deserialize_with = "int")]
    pub total_items: i64,
}

/// An integer written as a number or a string (`null` is 0).
pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    match &v {
        serde_json::Value::Null => Ok(0),
        serde_json::Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| serde::de::Error::custom(format!("not an integer: {n}"))),
        serde_json::Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("not an integer: {s:?}"))),
        other => Err(serde::de::Error::custom(format!("not an integer: {other}"))),
    }
}

/// An id written as a number or a string, kept as text.
pub fn id_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(other) => return Err(serde::de::Error::custom(format!("not an id: {other}"))),
    })
}

/// `updated-at`: epoch milliseconds (an integer, sometimes a string), or an ISO string.
pub fn epoch_or_iso<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    let ms = |n: i64| {
        // 0 is a dry run's "no time".
        if n == 0 {
            Ok(None)
        } else {
            chrono::DateTime::from_timestamp_millis(n)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("not a time: {n}")))
        }
    };
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => match n.as_i64() {
            Some(n) => ms(n),
            None => Err(serde::de::Error::custom(format!("not a time: {n}"))),
        },
        Some(serde_json::Value::String(s)) => match s.parse::<i64>() {
            Ok(n) => ms(n),
            Err(_) => chrono::DateTime::parse_from_rfc3339(&s)
                .map(|t| Some(t.with_timezone(&chrono::Utc)))
                .map_err(|e| serde::de::Error::custom(format!("not a time: {s:?}: {e}"))),
        },
        Some(other) => Err(serde::de::Error::custom(format!("not a time: {other}"))),
    }
}

/// An ISO time with an offset.
pub fn iso<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, D::Error> {
    let v = Option::<String>::deserialize(d)?;
    v.map(|s| {
        chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| serde::de::Error::custom(format!("not a time: {s:?}: {e}")))
    })
    .transpose()
}

/// `customers/me/accounts` item.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AccountItem {
    /// The account.
    pub account: Account,
    /// owner, trade-only, read-only.
    #[serde(default)]
    pub authority_level: Option<String>,
}

/// An account.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Account {
    /// Such as `5WT00001`.
    pub account_number: String,
    /// Closed accounts are listed too.
    #[serde(default)]
    pub is_closed: Option<bool>,
    /// Nickname.
    #[serde(default)]
    pub nickname: Option<String>,
}

/// An order leg.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Leg {
    /// `Equity`, `Equity Option`, …
    #[serde(default)]
    pub instrument_type: Option<String>,
    /// The symbol (OCC padded for options).
    pub symbol: String,
    /// `Buy to Close`, …
    pub action: String,
    /// Quantity.
    #[serde(with = "decimal::string")]
    pub quantity: Decimal,
    /// What is left to fill.
    #[serde(
        with = "decimal::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub remaining_quantity: Option<Decimal>,
    /// Its fills.
    #[serde(default, skip_serializing, deserialize_with = "null_as_empty")]
    pub fills: Vec<Fill>,
}

/// One fill of a leg.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Fill {
    /// How much filled.
    #[serde(with = "decimal::string")]
    pub quantity: Decimal,
    /// At what price.
    #[serde(with = "decimal::string")]
    pub fill_price: Decimal,
    /// When.
    #[serde(default, deserialize_with = "iso")]
    pub filled_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// An order.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Order {
    /// A number on the wire; absent on a dry run.
    #[serde(default, deserialize_with = "id_text")]
    pub id: Option<String>,
    /// The account.
    pub account_number: String,
    /// Status, such as `Live`.
    pub status: String,
    /// `Limit`, `Stop`, …
    #[serde(default)]
    pub order_type: Option<String>,
    /// `GTC`, `Day`, …
    #[serde(default)]
    pub time_in_force: Option<String>,
    /// Unsigned limit price.
    #[serde(with = "decimal::option", default)]
    pub price: Option<Decimal>,
    /// `Debit`, `Credit`, `None`.
    #[serde(default)]
    pub price_effect: Option<String>,
    /// Stop trigger.
    #[serde(with = "decimal::option", default)]
    pub stop_trigger: Option<Decimal>,
    /// The underlying.
    #[serde(default)]
    pub underlying_symbol: Option<String>,
    /// The client's id, echoed back.
    #[serde(default)]
    pub external_identifier: Option<String>,
    /// When it was received.
    #[serde(default, deserialize_with = "iso")]
    pub received_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it finished.
    #[serde(default, deserialize_with = "iso", skip_serializing)]
    pub terminal_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Epoch ms.
    #[serde(default, deserialize_with = "epoch_or_iso")]
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The order this one replaced.
    #[serde(default, deserialize_with = "id_text")]
    pub replaces_order_id: Option<String>,
    /// The order that replaced this one.
    #[serde(default, deserialize_with = "id_text")]
    pub replacing_order_id: Option<String>,
    /// Legs.
    #[serde(default)]
    pub legs: Vec<Leg>,
}

/// A position.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Position {
    /// The account.
    pub account_number: String,
    /// The symbol.
    pub symbol: String,
    /// The underlying.
    #[serde(default)]
    pub underlying_symbol: Option<String>,
    /// `Equity`, `Equity Option`, …
    #[serde(default)]
    pub instrument_type: Option<String>,
    /// Always positive; the direction says the sign.
    #[serde(with = "decimal::string")]
    pub quantity: Decimal,
    /// `Long`, `Short`, `Zero`.
    pub quantity_direction: String,
    /// Average open price.
    #[serde(with = "decimal::option", default)]
    pub average_open_price: Option<Decimal>,
}

/// An order request body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct NewOrder {
    /// `GTC`.
    pub time_in_force: String,
    /// `Limit`, `Stop`, `Stop Limit`.
    pub order_type: String,
    /// Unsigned price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    /// `Debit` or `Credit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_effect: Option<String>,
    /// Stop trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_trigger: Option<String>,
    /// Our id for the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_identifier: Option<String>,
    /// Legs.
    #[serde(default)]
    pub legs: Vec<Leg>,
    /// `strict-position-effect-validation` on every closing order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced_instructions: Option<AdvancedInstructions>,
}

/// Order options.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AdvancedInstructions {
    /// Reject a closing order with no position to close instead of opening one.
    #[serde(default)]
    pub strict_position_effect_validation: bool,
}

/// `POST /orders` answer.
#[derive(Debug, Deserialize)]
pub struct Placed {
    /// The new order.
    pub order: Order,
}

/// An error body: `{"error": {"code", "message"}}`, or OAuth's `{"error_code", "error_description"}`.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    /// The standard envelope.
    #[serde(default)]
    pub error: Option<ErrorDetail>,
    /// OAuth's code.
    #[serde(default)]
    pub error_code: Option<String>,
    /// OAuth's text.
    #[serde(default)]
    pub error_description: Option<String>,
}

/// The standard error.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorDetail {
    /// A snake_case code (or a number).
    #[serde(default)]
    pub code: Option<serde_json::Value>,
    /// Text.
    #[serde(default)]
    pub message: Option<String>,
}

impl ErrorBody {
    /// The code, whatever its shape.
    pub fn code(&self) -> String {
        match (&self.error, &self.error_code) {
            (
                Some(ErrorDetail {
                    code: Some(serde_json::Value::String(s)),
                    ..
                }),
                _,
            ) => s.clone(),
            (Some(ErrorDetail { code: Some(v), .. }), _) => v.to_string(),
            (_, Some(c)) => c.clone(),
            _ => String::new(),
        }
    }

    /// The message, whatever its shape.
    pub fn message(&self) -> String {
        self.error
            .as_ref()
            .and_then(|e| e.message.clone())
            .or_else(|| self.error_description.clone())
            .unwrap_or_default()
    }
}

/// `POST /oauth/token` body.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenRequest {
    /// `refresh_token`.
    pub grant_type: String,
    /// The refresh token.
    pub refresh_token: String,
    /// The client secret.
    pub client_secret: String,
}

/// `POST /oauth/token` answer.
#[derive(Debug, Deserialize, Serialize)]
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: String,
    /// Seconds it lasts (about 900).
    #[serde(default)]
    pub expires_in: Option<i64>,
    /// `Bearer`.
    #[serde(default)]
    pub token_type: Option<String>,
}
