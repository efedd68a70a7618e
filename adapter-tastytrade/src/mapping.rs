//! The one place where TastyTrade's words become reconcile's.

use crate::wire;
use reconcile_core::{
    BrokerPosition, Order, OrderLeg, OrderStatus, OrderType, PlaceOrder, Side, Symbol, TimeInForce,
};
use rust_decimal::Decimal;

/// Status per DESIGN §2. There is no partially-filled status at TastyTrade: a `Live` order with
/// less remaining than its quantity is partially filled. Unknown statuses are never terminal.
pub fn status(raw: &str, legs: &[wire::Leg]) -> OrderStatus {
    match raw {
        "Received" | "Routed" | "In Flight" => OrderStatus::Pending,
        "Contingent" => OrderStatus::Held,
        "Live" => {
            let partly = legs
                .iter()
                .any(|l| l.remaining_quantity.is_some_and(|r| r < l.quantity));
            if partly {
                OrderStatus::PartiallyFilled
            } else {
                OrderStatus::Live
            }
        }
        "Cancel Requested" => OrderStatus::PendingCancel,
        "Replace Requested" => OrderStatus::PendingReplace,
        "Filled" => OrderStatus::Filled,
        "Cancelled" | "Canceled" | "Removed" | "Partially Removed" => OrderStatus::Cancelled,
        "Expired" => OrderStatus::Expired,
        "Rejected" => OrderStatus::Rejected,
        other => {
            tracing::warn!(
                status = other,
                "unknown TastyTrade order status; treated as pending"
            );
            OrderStatus::Pending
        }
    }
}

/// A leg action as a side.
pub fn side(action: &str) -> Option<Side> {
    Some(match action {
        "Buy to Open" => Side::BuyToOpen,
        "Buy to Close" => Side::BuyToClose,
        "Sell to Open" => Side::SellToOpen,
        "Sell to Close" => Side::SellToClose,
        "Buy" => Side::Buy,
        "Sell" => Side::Sell,
        _ => return None,
    })
}

/// A side as a leg action. Equities are sent with a position effect too, so a closing order can
/// never open a position.
pub fn action(side: Side) -> &'static str {
    match side {
        Side::BuyToOpen => "Buy to Open",
        Side::BuyToClose | Side::Buy => "Buy to Close",
        Side::SellToOpen => "Sell to Open",
        Side::SellToClose | Side::Sell => "Sell to Close",
    }
}

fn order_type(raw: Option<&str>) -> Option<OrderType> {
    raw.map(|t| match t {
        "Limit" => OrderType::Limit,
        "Market" => OrderType::Market,
        "Stop" => OrderType::Stop,
        "Stop Limit" => OrderType::StopLimit,
        _ => OrderType::Other,
    })
}

fn tif(raw: Option<&str>) -> Option<TimeInForce> {
    raw.map(|t| match t {
        "Day" => TimeInForce::Day,
        "GTC" => TimeInForce::Gtc,
        "GTD" => TimeInForce::Gtd,
        "IOC" => TimeInForce::Ioc,
        _ => TimeInForce::Other,
    })
}

/// A wire order as a domain order. `None` for an order with no id (a dry run's answer).
pub fn order(o: &wire::Order) -> Result<Order, String> {
    let id =
        o.id.clone()
            .ok_or_else(|| "order without an id".to_owned())?;
    let legs = o
        .legs
        .iter()
        .map(|l| {
            let side = side(&l.action)
                .ok_or_else(|| format!("order {id}: unknown leg action {:?}", l.action))?;
            let filled = l
                .remaining_quantity
                .map_or(Decimal::ZERO, |r| (l.quantity - r).max(Decimal::ZERO));
            Ok(OrderLeg {
                symbol: Symbol::new(&l.symbol),
                side,
                quantity: l.quantity,
                filled_quantity: filled,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let underlying = o
        .underlying_symbol
        .clone()
        .or_else(|| legs.first().map(|l| l.symbol.underlying().to_owned()))
        .unwrap_or_default();
    Ok(Order {
        id: id.as_str().into(),
        client_order_id: o.external_identifier.as_deref().map(Into::into),
        account: o.account_number.as_str().into(),
        underlying,
        // The original of a cancel-replace ends `Cancelled`, pointing at its replacement: that
        // is DESIGN's `replaced`, whose replacement the diff follows.
        status: match status(&o.status, &o.legs) {
            OrderStatus::Cancelled if o.replacing_order_id.is_some() => OrderStatus::Replaced,
            s => s,
        },
        raw_status: Some(o.status.clone()),
        order_type: order_type(o.order_type.as_deref()),
        time_in_force: tif(o.time_in_force.as_deref()),
        limit_price: o.price,
        stop_price: o.stop_trigger,
        submitted_at: o.received_at,
        updated_at: o.updated_at,
        legs,
        replaced_by: o.replacing_order_id.as_deref().map(Into::into),
        replaces: o.replaces_order_id.as_deref().map(Into::into),
        oco_group: None,
        filled_at: o.terminal_at.filter(|_| o.status == "Filled"),
        filled_average_price: average_fill_price(o),
    })
}

/// The average price of an order's fills, per unit of its size (`None` with no fills).
fn average_fill_price(o: &wire::Order) -> Option<Decimal> {
    let fills: Vec<&wire::Fill> = o.legs.iter().flat_map(|l| &l.fills).collect();
    let quantity: Decimal = fills.iter().map(|f| f.quantity).sum();
    if quantity.is_zero() {
        return None;
    }
    let value = fills.iter().try_fold(Decimal::ZERO, |acc, f| {
        acc.checked_add(f.fill_price.checked_mul(f.quantity)?)
    })?;
    value.checked_div(quantity)
}

/// A wire position as a signed holding.
pub fn position(p: &wire::Position) -> BrokerPosition {
    let sign = if p.quantity_direction == "Short" {
        Decimal::NEGATIVE_ONE
    } else {
        Decimal::ONE
    };
    let quantity = if p.quantity_direction == "Zero" {
        Decimal::ZERO
    } else {
        p.quantity * sign
    };
    BrokerPosition {
        account: p.account_number.as_str().into(),
        symbol: Symbol::new(&p.symbol),
        underlying: p.underlying_symbol.clone(),
        quantity,
        average_price: p.average_open_price,
    }
}

fn instrument(symbol: &Symbol) -> &'static str {
    if symbol.is_option() {
        "Equity Option"
    } else {
        "Equity"
    }
}

/// A placement request as a TastyTrade order body: GTC, the client order id as
/// `external-identifier`, and strict position-effect validation (a closing order must never open
/// a position). The price effect is a debit when any leg buys (closing a short spread costs
/// money), a credit when every leg sells.
pub fn new_order(o: &PlaceOrder) -> wire::NewOrder {
    let debit = o.legs.iter().any(|l| l.side.is_buy());
    let order_type = match o.order_type {
        OrderType::Stop => "Stop",
        OrderType::StopLimit => "Stop Limit",
        OrderType::Market => "Market",
        _ => "Limit",
    };
    wire::NewOrder {
        time_in_force: "GTC".to_owned(),
        order_type: order_type.to_owned(),
        price: o.limit_price.map(|p| p.to_string()),
        price_effect: o
            .limit_price
            .map(|_| if debit { "Debit" } else { "Credit" }.to_owned()),
        stop_trigger: o.stop_price.map(|p| p.to_string()),
        external_identifier: Some(o.client_order_id.to_string()),
        legs: o
            .legs
            .iter()
            .map(|l| wire::Leg {
                instrument_type: Some(instrument(&l.symbol).to_owned()),
                symbol: l.symbol.as_str().to_owned(),
                action: action(l.side).to_owned(),
                quantity: l.quantity,
                remaining_quantity: None,
                fills: Vec::new(),
            })
            .collect(),
        advanced_instructions: Some(wire::AdvancedInstructions {
            strict_position_effect_validation: true,
        }),
    }
}
