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

/// A broker order's status, normalized across brokers (DESIGN §2).
///
/// Adapters map raw statuses into these; a raw status they do not know maps to
/// [`OrderStatus::Pending`], never to a terminal status, because an unknown order must never look
/// dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Accepted but not yet working at a venue (TastyTrade Received/Routed/In Flight).
    Pending,
    /// Waiting on a condition (a contingent or held bracket leg).
    Held,
    /// Working with no fills.
    Live,
    /// Working with some fills.
    PartiallyFilled,
    /// A cancel was requested and has not been confirmed.
    PendingCancel,
    /// A replace was requested and has not been confirmed.
    PendingReplace,
    /// Completely filled.
    Filled,
    /// Cancelled (also removed by the broker).
    Cancelled,
    /// Expired at the end of its time in force.
    Expired,
    /// Rejected.
    Rejected,
    /// The original of a cancel-replace; see [`Order::replaced_by`].
    Replaced,
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

    /// The snake_case spelling used in snapshots and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Held => "held",
            Self::Live => "live",
            Self::PartiallyFilled => "partially_filled",
            Self::PendingCancel => "pending_cancel",
            Self::PendingReplace => "pending_replace",
            Self::Filled => "filled",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::Rejected => "rejected",
            Self::Replaced => "replaced",
        }
    }
}

/// An order's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    /// Market.
    Market,
    /// Limit.
    Limit,
    /// Stop (market once triggered).
    Stop,
    /// Stop limit.
    StopLimit,
    /// Trailing stop.
    TrailingStop,
    /// Any other type a broker offers.
    Other,
}

/// An order's time in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeInForce {
    /// Until the end of the trading day.
    Day,
    /// Good till cancelled.
    Gtc,
    /// Good till a date.
    Gtd,
    /// Immediate or cancel.
    Ioc,
    /// Fill or kill.
    Fok,
    /// At the open.
    Opg,
    /// At the close.
    Cls,
    /// Any other value a broker offers.
    Other,
}

/// The side of an order leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Buy (equities, futures).
    Buy,
    /// Sell (equities, futures).
    Sell,
    /// Buy to open a long position.
    BuyToOpen,
    /// Buy to close a short position.
    BuyToClose,
    /// Sell to open a short position.
    SellToOpen,
    /// Sell to close a long position.
    SellToClose,
}

impl Side {
    /// Whether the leg buys.
    pub fn is_buy(self) -> bool {
        matches!(self, Self::Buy | Self::BuyToOpen | Self::BuyToClose)
    }

    /// The snake_case spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "buy",
            Self::Sell => "sell",
            Self::BuyToOpen => "buy_to_open",
            Self::BuyToClose => "buy_to_close",
            Self::SellToOpen => "sell_to_open",
            Self::SellToClose => "sell_to_close",
        }
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
    #[serde(default)]
    pub submitted_at: Option<DateTime<Utc>>,
    /// When the broker last changed it.
    #[serde(default)]
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

/// The lifecycle state of a local position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionState {
    /// Ordered, not yet known to be filled.
    Pending,
    /// Held.
    Open,
    /// Being closed.
    Closing,
    /// Closed.
    Closed,
}

impl PositionState {
    /// The snake_case spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Open => "open",
            Self::Closing => "closing",
            Self::Closed => "closed",
        }
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

/// The local status of a profit target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    /// No order has been placed (or its id was cleared).
    Unplaced,
    /// An order was placed and is believed to be working.
    Active,
    /// Its order filled.
    Filled,
    /// Deliberately cancelled.
    Cancelled,
    /// Placement failed and was given up.
    Failed,
}

impl TargetStatus {
    /// Whether the target is finished with and takes no part in the diff.
    pub fn is_settled(self) -> bool {
        matches!(self, Self::Filled | Self::Cancelled | Self::Failed)
    }

    /// The snake_case spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unplaced => "unplaced",
            Self::Active => "active",
            Self::Filled => "filled",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
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
    #[serde(default)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(default)]
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
    pub created_at: DateTime<Utc>,
}
