//! Builders for snapshots in tests, so scenarios read like the incidents they come from.

use crate::ids::{AccountId, ClientOrderId, OrderId};
use crate::model::{
    BrokerPosition, Intent, Order, OrderLeg, OrderStatus, OrderType, Position, PositionLeg,
    PositionState, ProfitTarget, Side, TargetLeg, TargetStatus, TimeInForce,
};
use crate::snapshot::{BrokerSnapshot, LocalSnapshot};
use crate::symbol::Symbol;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// Parses an RFC 3339 time; panics on a bad literal (test input only).
#[allow(clippy::expect_used)]
pub fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("a valid RFC 3339 time in a test")
}

/// Parses a decimal literal; panics on a bad literal (test input only).
#[allow(clippy::expect_used)]
pub fn dec(s: &str) -> Decimal {
    crate::decimal::parse_decimal(s).expect("a valid decimal in a test")
}

/// An open position with no legs or targets.
pub fn position(id: &str, account: &str, underlying: &str) -> Position {
    Position {
        id: id.into(),
        account: account.into(),
        underlying: underlying.to_owned(),
        state: PositionState::Open,
        opened_at: None,
        entry_price: None,
        legs: Vec::new(),
        targets: Vec::new(),
        entry_order_id: None,
        closing: None,
    }
}

/// Chained changes to a position.
pub trait PositionExt: Sized {
    /// Sets the state.
    fn state(self, state: PositionState) -> Self;
    /// Adds a signed leg.
    fn leg(self, symbol: &str, quantity: &str) -> Self;
    /// Adds a target.
    fn target(self, target: ProfitTarget) -> Self;
    /// Sets the open time.
    fn opened(self, t: &str) -> Self;
}

impl PositionExt for Position {
    fn state(mut self, state: PositionState) -> Self {
        self.state = state;
        self
    }
    fn leg(mut self, symbol: &str, quantity: &str) -> Self {
        self.legs.push(PositionLeg {
            symbol: Symbol::new(symbol),
            quantity: dec(quantity),
        });
        self
    }
    fn target(mut self, target: ProfitTarget) -> Self {
        self.targets.push(target);
        self
    }
    fn opened(mut self, t: &str) -> Self {
        self.opened_at = Some(at(t));
        self
    }
}

/// An unplaced target.
pub fn target(key: &str) -> ProfitTarget {
    ProfitTarget::unplaced(key)
}

/// Chained changes to a target.
pub trait TargetExt: Sized {
    /// Active, referencing `order_id`.
    fn active(self, order_id: &str) -> Self;
    /// Sets the status.
    fn status(self, status: TargetStatus) -> Self;
    /// Sets the expected limit price.
    fn limit(self, price: &str) -> Self;
    /// Sets the expected stop price.
    fn stop(self, price: &str) -> Self;
    /// Sets the expected quantity.
    fn qty(self, quantity: &str) -> Self;
    /// Adds an expected leg.
    fn leg(self, symbol: &str, side: Side, quantity: &str) -> Self;
    /// Sets when it was placed.
    fn placed(self, t: &str) -> Self;
    /// Sets its client order id.
    fn cid(self, cid: &str) -> Self;
}

impl TargetExt for ProfitTarget {
    fn active(mut self, order_id: &str) -> Self {
        self.status = TargetStatus::Active;
        self.order_id = Some(OrderId::new(order_id));
        self
    }
    fn status(mut self, status: TargetStatus) -> Self {
        self.status = status;
        self
    }
    fn limit(mut self, price: &str) -> Self {
        self.limit_price = Some(dec(price));
        self
    }
    fn stop(mut self, price: &str) -> Self {
        self.stop_price = Some(dec(price));
        self
    }
    fn qty(mut self, quantity: &str) -> Self {
        self.quantity = Some(dec(quantity));
        self
    }
    fn leg(mut self, symbol: &str, side: Side, quantity: &str) -> Self {
        self.legs.push(TargetLeg {
            symbol: Symbol::new(symbol),
            side,
            quantity: dec(quantity),
        });
        self
    }
    fn placed(mut self, t: &str) -> Self {
        self.placed_at = Some(at(t));
        self
    }
    fn cid(mut self, cid: &str) -> Self {
        self.client_order_id = Some(ClientOrderId::new(cid));
        self
    }
}

/// A live limit GTC order with no legs.
pub fn order(id: &str, account: &str, underlying: &str) -> Order {
    Order {
        id: id.into(),
        client_order_id: None,
        account: account.into(),
        underlying: underlying.to_owned(),
        status: OrderStatus::Live,
        raw_status: None,
        order_type: Some(OrderType::Limit),
        time_in_force: Some(TimeInForce::Gtc),
        limit_price: None,
        stop_price: None,
        submitted_at: None,
        updated_at: None,
        legs: Vec::new(),
        replaced_by: None,
        replaces: None,
        oco_group: None,
        filled_at: None,
        filled_average_price: None,
    }
}

/// Chained changes to an order.
pub trait OrderExt: Sized {
    /// Sets the status.
    fn status(self, status: OrderStatus) -> Self;
    /// Sets the limit price.
    fn limit(self, price: &str) -> Self;
    /// Adds a leg.
    fn leg(self, symbol: &str, side: Side, quantity: &str) -> Self;
    /// Sets the submit time.
    fn submitted(self, t: &str) -> Self;
    /// Sets the client order id.
    fn cid(self, cid: &str) -> Self;
    /// Marks it replaced by another order.
    fn replaced_by(self, id: &str) -> Self;
    /// Sets the stop price (and, without a limit, the type to a stop).
    fn stop(self, price: &str) -> Self;
    /// Puts it in the OCO group whose parent is `parent`.
    fn oco(self, parent: &str) -> Self;
    /// Marks it filled: every leg added so far filled completely.
    fn filled(self) -> Self;
}

impl OrderExt for Order {
    fn status(mut self, status: OrderStatus) -> Self {
        self.status = status;
        self
    }
    fn limit(mut self, price: &str) -> Self {
        self.limit_price = Some(dec(price));
        self
    }
    fn leg(mut self, symbol: &str, side: Side, quantity: &str) -> Self {
        self.legs.push(OrderLeg {
            symbol: Symbol::new(symbol),
            side,
            quantity: dec(quantity),
            filled_quantity: Decimal::ZERO,
        });
        self
    }
    fn submitted(mut self, t: &str) -> Self {
        self.submitted_at = Some(at(t));
        self
    }
    fn cid(mut self, cid: &str) -> Self {
        self.client_order_id = Some(ClientOrderId::new(cid));
        self
    }
    fn replaced_by(mut self, id: &str) -> Self {
        self.status = OrderStatus::Replaced;
        self.replaced_by = Some(OrderId::new(id));
        self
    }
    fn stop(mut self, price: &str) -> Self {
        self.stop_price = Some(dec(price));
        if self.limit_price.is_none() {
            self.order_type = Some(crate::model::OrderType::Stop);
        }
        self
    }
    fn oco(mut self, parent: &str) -> Self {
        self.oco_group = Some(OrderId::new(parent));
        self
    }
    fn filled(mut self) -> Self {
        self.status = OrderStatus::Filled;
        for l in &mut self.legs {
            l.filled_quantity = l.quantity;
        }
        self
    }
}

/// A holding.
pub fn holding(account: &str, symbol: &str, quantity: &str) -> BrokerPosition {
    BrokerPosition {
        account: AccountId::new(account),
        symbol: Symbol::new(symbol),
        underlying: None,
        quantity: dec(quantity),
        average_price: None,
    }
}

/// An intent.
pub fn intent(cid: &str, position_id: &str, key: &str, created: &str) -> Intent {
    Intent {
        client_order_id: cid.into(),
        position_id: position_id.into(),
        target_key: key.into(),
        created_at: at(created),
        oco_with: None,
    }
}

/// A local snapshot.
pub fn local(as_of: &str, positions: Vec<Position>, intents: Vec<Intent>) -> LocalSnapshot {
    let mut s = LocalSnapshot::new(at(as_of));
    s.positions = positions;
    s.intents = intents;
    s
}

/// A broker snapshot; `positions: None` means holdings unknown.
pub fn broker(
    as_of: &str,
    orders: Vec<Order>,
    positions: Option<Vec<BrokerPosition>>,
) -> BrokerSnapshot {
    let mut s = BrokerSnapshot::new(at(as_of));
    s.orders = orders;
    s.positions = positions;
    s
}
