//! The domain model: broker orders and positions, local positions with their profit targets, and
//! the intents written before an order is sent. These types are also the snapshot v1 documents'
//! items, spelled exactly as DESIGN §3 gives them.

use crate::decimal;
use crate::ids::{AccountId, ClientOrderId, OrderId, PositionId, TargetKey};
use crate::symbol::Symbol;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

/// Reads `null` as an empty list, so `"legs": null` means the same as no `legs` at all.
pub(crate) fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

crate::spelling::spelled! {
    /// A broker order's status, normalized across brokers (DESIGN §2).
    ///
    /// Adapters map raw statuses into these; a raw status they do not know maps to
    /// [`OrderStatus::Pending`], never to a terminal status, because an unknown order must never
    /// look dead.
    pub enum OrderStatus("order status") {
        /// Accepted but not yet working at a venue (TastyTrade Received/Routed/In Flight).
        Pending = "pending",
        /// Waiting on a condition (a contingent or held bracket leg).
        Held = "held",
        /// Working with no fills.
        Live = "live",
        /// Working with some fills.
        PartiallyFilled = "partially_filled",
        /// A cancel was requested and has not been confirmed.
        PendingCancel = "pending_cancel",
        /// A replace was requested and has not been confirmed.
        PendingReplace = "pending_replace",
        /// Completely filled.
        Filled = "filled",
        /// Cancelled (also removed by the broker).
        Cancelled = "cancelled",
        /// Expired at the end of its time in force.
        Expired = "expired",
        /// Rejected.
        Rejected = "rejected",
        /// The original of a cancel-replace; see [`Order::replaced_by`].
        Replaced = "replaced",
    }
}

impl OrderStatus {
    /// Whether the order can still trade (every status above `filled` in DESIGN §2's table).
    pub fn is_working(self) -> bool {
        matches!(
            self,
            Self::Pending
                | Self::Held
                | Self::Live
                | Self::PartiallyFilled
                | Self::PendingCancel
                | Self::PendingReplace
        )
    }
}

crate::spelling::spelled! {
    /// An order's type.
    pub enum OrderType("order type") {
        /// Market.
        Market = "market",
        /// Limit.
        Limit = "limit",
        /// Stop (market once triggered).
        Stop = "stop",
        /// Stop limit.
        StopLimit = "stop_limit",
        /// Trailing stop.
        TrailingStop = "trailing_stop",
        /// Any other type a broker offers.
        Other = "other",
    }
}

crate::spelling::spelled! {
    /// An order's time in force.
    pub enum TimeInForce("time in force") {
        /// Until the end of the trading day.
        Day = "day",
        /// Good till cancelled.
        Gtc = "gtc",
        /// Good till a date.
        Gtd = "gtd",
        /// Immediate or cancel.
        Ioc = "ioc",
        /// Fill or kill.
        Fok = "fok",
        /// At the open.
        Opg = "opg",
        /// At the close.
        Cls = "cls",
        /// Any other value a broker offers.
        Other = "other",
    }
}

crate::spelling::spelled! {
    /// The side of an order leg.
    pub enum Side("side") {
        /// Buy (equities, futures).
        Buy = "buy",
        /// Sell (equities, futures).
        Sell = "sell",
        /// Buy to open a long position.
        BuyToOpen = "buy_to_open",
        /// Buy to close a short position.
        BuyToClose = "buy_to_close",
        /// Sell to open a short position.
        SellToOpen = "sell_to_open",
        /// Sell to close a long position.
        SellToClose = "sell_to_close",
    }
}

impl Side {
    /// Whether the leg buys.
    pub fn is_buy(self) -> bool {
        matches!(self, Self::Buy | Self::BuyToOpen | Self::BuyToClose)
    }
}

/// One leg of a broker order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLeg {
    /// The instrument.
    pub symbol: Symbol,
    /// Buy or sell, and the position effect where the broker gives one.
    pub side: Side,
    /// The leg's quantity (positive).
    #[serde(with = "decimal::string")]
    pub quantity: Decimal,
    /// How much of it has filled.
    #[serde(with = "decimal::string", default)]
    pub filled_quantity: Decimal,
}

/// An order as the broker reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The broker's id.
    pub id: OrderId,
    /// The id the client set on the order, if any.
    #[serde(default)]
    pub client_order_id: Option<ClientOrderId>,
    /// The account it belongs to.
    pub account: AccountId,
    /// The underlying (`QQQ` for a QQQ option spread).
    pub underlying: String,
    /// The normalized status.
    pub status: OrderStatus,
    /// The broker's own status string.
    #[serde(default)]
    pub raw_status: Option<String>,
    /// Limit, stop, …
    #[serde(default)]
    pub order_type: Option<OrderType>,
    /// Day, GTC, …
    #[serde(default)]
    pub time_in_force: Option<TimeInForce>,
    /// The limit price (unsigned; net for multi-leg orders).
    #[serde(with = "decimal::option", default)]
    pub limit_price: Option<Decimal>,
    /// The stop trigger price.
    #[serde(with = "decimal::option", default)]
    pub stop_price: Option<Decimal>,
    /// When it was submitted.
    #[serde(deserialize_with = "crate::time::optional", default)]
    pub submitted_at: Option<DateTime<Utc>>,
    /// When the broker last changed it.
    #[serde(deserialize_with = "crate::time::optional", default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// Its legs.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub legs: Vec<OrderLeg>,
    /// For a replaced order, the id of the order that replaced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<OrderId>,
    /// For a replacement, the id of the order it replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<OrderId>,
    /// An extension of snapshot v1: the group (bracket, OCO, OTO) the order belongs to, as the
    /// id of the group's parent order. The exits of one OCO group exclude each other: when one
    /// fills, the broker cancels the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oco_group: Option<OrderId>,
    /// An extension of snapshot v1: when it filled, if it did.
    #[serde(
        deserialize_with = "crate::time::optional",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub filled_at: Option<DateTime<Utc>>,
    /// An extension of snapshot v1: its average fill price, if it filled.
    #[serde(
        with = "decimal::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub filled_average_price: Option<Decimal>,
}

/// A holding as the broker reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerPosition {
    /// The account.
    pub account: AccountId,
    /// The instrument.
    pub symbol: Symbol,
    /// The underlying; derived from the symbol when absent.
    #[serde(default)]
    pub underlying: Option<String>,
    /// Signed quantity: negative is short.
    #[serde(with = "decimal::string")]
    pub quantity: Decimal,
    /// Average open price per share or contract.
    #[serde(with = "decimal::option", default)]
    pub average_price: Option<Decimal>,
}

impl BrokerPosition {
    /// The underlying as given, or the one the symbol implies.
    pub fn underlying(&self) -> &str {
        self.underlying
            .as_deref()
            .unwrap_or_else(|| self.symbol.underlying())
    }
}

crate::spelling::spelled! {
    /// The lifecycle state of a local position.
    pub enum PositionState("position state") {
        /// Ordered, not yet known to be filled.
        Pending = "pending",
        /// Held.
        Open = "open",
        /// Being closed.
        Closing = "closing",
        /// Closed.
        Closed = "closed",
    }
}

/// One signed leg of a local position (negative = short).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionLeg {
    /// The instrument.
    pub symbol: Symbol,
    /// Signed quantity.
    #[serde(with = "decimal::string")]
    pub quantity: Decimal,
}

crate::spelling::spelled! {
    /// The local status of a profit target.
    pub enum TargetStatus("target status") {
        /// No order has been placed (or its id was cleared).
        Unplaced = "unplaced",
        /// An order was placed and is believed to be working.
        Active = "active",
        /// Its order filled.
        Filled = "filled",
        /// Deliberately cancelled.
        Cancelled = "cancelled",
        /// Placement failed and was given up.
        Failed = "failed",
    }
}

impl TargetStatus {
    /// Whether the target is finished with and takes no part in the diff.
    pub fn is_settled(self) -> bool {
        matches!(self, Self::Filled | Self::Cancelled | Self::Failed)
    }
}

/// One expected leg of a target's closing order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TargetLeg {
    /// The instrument.
    pub symbol: Symbol,
    /// The closing side.
    pub side: Side,
    /// Positive quantity.
    #[serde(with = "decimal::string")]
    pub quantity: Decimal,
}

/// A protective order a position should have working at the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfitTarget {
    /// The target's key within its position.
    pub key: TargetKey,
    /// Local status.
    pub status: TargetStatus,
    /// The broker order it references (`None` when unplaced).
    #[serde(default)]
    pub order_id: Option<OrderId>,
    /// The client order id it was (or will be) placed with.
    #[serde(default)]
    pub client_order_id: Option<ClientOrderId>,
    /// When its order was placed.
    #[serde(deserialize_with = "crate::time::optional", default)]
    pub placed_at: Option<DateTime<Utc>>,
    /// The expected limit price.
    #[serde(with = "decimal::option", default)]
    pub limit_price: Option<Decimal>,
    /// The expected stop price (stop-loss targets).
    #[serde(with = "decimal::option", default)]
    pub stop_price: Option<Decimal>,
    /// The expected quantity of each leg.
    #[serde(with = "decimal::option", default)]
    pub quantity: Option<Decimal>,
    /// The expected closing legs.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub legs: Vec<TargetLeg>,
    /// The last placement error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When placement was last attempted.
    #[serde(
        deserialize_with = "crate::time::optional",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub last_attempt: Option<DateTime<Utc>>,
}

impl ProfitTarget {
    /// An unplaced target with the given key and nothing else.
    pub fn unplaced(key: impl Into<TargetKey>) -> Self {
        Self {
            key: key.into(),
            status: TargetStatus::Unplaced,
            order_id: None,
            client_order_id: None,
            placed_at: None,
            limit_price: None,
            stop_price: None,
            quantity: None,
            legs: Vec::new(),
            last_error: None,
            last_attempt: None,
        }
    }
}

/// A local position: a stock or a multi-leg option strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Local id.
    pub id: PositionId,
    /// The broker account.
    pub account: AccountId,
    /// The underlying.
    pub underlying: String,
    /// Lifecycle state.
    pub state: PositionState,
    /// When it was opened.
    #[serde(deserialize_with = "crate::time::optional", default)]
    pub opened_at: Option<DateTime<Utc>>,
    /// Average entry price, per share or contract.
    #[serde(with = "decimal::option", default)]
    pub entry_price: Option<Decimal>,
    /// Signed legs.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub legs: Vec<PositionLeg>,
    /// Protective orders it should have.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub targets: Vec<ProfitTarget>,
    /// An extension of snapshot v1: the broker order that opened it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_order_id: Option<OrderId>,
    /// An extension of snapshot v1: how it closed, when it closed and the broker's closing fill
    /// is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closing: Option<Fill>,
}

/// A broker fill, as local records keep it: the order, when, at what average price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    /// The broker order.
    pub order_id: OrderId,
    /// When it filled.
    #[serde(deserialize_with = "crate::time::optional", default)]
    pub filled_at: Option<DateTime<Utc>>,
    /// Its average fill price.
    #[serde(with = "decimal::option", default)]
    pub price: Option<Decimal>,
}

/// A record written before an order is sent, keyed by the client order id the order carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The client order id the order is sent with.
    pub client_order_id: ClientOrderId,
    /// The position the order protects.
    pub position_id: PositionId,
    /// The target the order is for.
    pub target_key: TargetKey,
    /// When the intent was written.
    #[serde(deserialize_with = "crate::time::required")]
    pub created_at: DateTime<Utc>,
    /// An extension of snapshot v1: for an OCO placement, the target whose order is the other
    /// exit of the group (the order carrying this client order id is the group's parent; the
    /// other exit is its sibling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oco_with: Option<TargetKey>,
}
