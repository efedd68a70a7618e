//! The one place where Alpaca's words become reconcile's, and back.
//!
//! The trap this module exists for: the legs of `bracket`, `oco` and `oto` orders are child
//! orders with their own ids and statuses (often `held`), visible only under `nested=true`; they
//! become orders of their own here, the exits of one group sharing its parent's id as their
//! `oco_group`. The legs of an `mleg` order are instead one order's instrument legs.

use crate::wire;
use reconcile_core::{
    AccountId, BrokerPosition, Order, OrderLeg, OrderStatus, OrderType, PlaceOrder, Side, Symbol,
    TimeInForce,
};
use rust_decimal::Decimal;

/// Status per DESIGN §2. `done_for_day` and `stopped` may trade again (the docs call neither
/// final), `suspended` is not final either: all stay working. Unknown statuses are never
/// terminal.
pub fn status(raw: &str) -> OrderStatus {
    match raw {
        "pending_new" | "accepted" | "accepted_for_bidding" | "calculated" | "pending_review" => {
            OrderStatus::Pending
        }
        "held" | "suspended" => OrderStatus::Held,
        "new" | "done_for_day" | "stopped" => OrderStatus::Live,
        "partially_filled" => OrderStatus::PartiallyFilled,
        "pending_cancel" => OrderStatus::PendingCancel,
        "pending_replace" => OrderStatus::PendingReplace,
        "filled" => OrderStatus::Filled,
        "canceled" | "cancelled" => OrderStatus::Cancelled,
        "expired" => OrderStatus::Expired,
        "rejected" => OrderStatus::Rejected,
        "replaced" => OrderStatus::Replaced,
        other => {
            tracing::warn!(
                status = other,
                "unknown Alpaca order status; treated as pending"
            );
            OrderStatus::Pending
        }
    }
}

fn order_type(raw: Option<&str>) -> Option<OrderType> {
    raw.filter(|t| !t.is_empty()).map(|t| match t {
        "market" => OrderType::Market,
        "limit" => OrderType::Limit,
        "stop" => OrderType::Stop,
        "stop_limit" => OrderType::StopLimit,
        "trailing_stop" => OrderType::TrailingStop,
        _ => OrderType::Other,
    })
}

fn time_in_force(raw: Option<&str>) -> Option<TimeInForce> {
    raw.map(|t| match t {
        "day" => TimeInForce::Day,
        "gtc" => TimeInForce::Gtc,
        "opg" => TimeInForce::Opg,
        "cls" => TimeInForce::Cls,
        "ioc" => TimeInForce::Ioc,
        "fok" => TimeInForce::Fok,
        _ => TimeInForce::Other,
    })
}

/// A leg's side: the position intent when given, else the plain side.
fn side(w: &wire::Order) -> Result<Side, String> {
    match w.position_intent.as_deref().filter(|p| !p.is_empty()) {
        Some("buy_to_open") => return Ok(Side::BuyToOpen),
        Some("buy_to_close") => return Ok(Side::BuyToClose),
        Some("sell_to_open") => return Ok(Side::SellToOpen),
        Some("sell_to_close") => return Ok(Side::SellToClose),
        _ => {}
    }
    match w.side.as_deref() {
        Some("buy") => Ok(Side::Buy),
        Some("sell") => Ok(Side::Sell),
        other => Err(format!("order {}: unknown side {other:?}", w.id)),
    }
}

fn symbol(raw: &str) -> Symbol {
    Symbol::new(raw)
}

/// An order of one instrument (a simple order, or a child of a group).
fn single(w: &wire::Order, account: &AccountId, group: Option<&str>) -> Result<Order, String> {
    let raw = w
        .symbol
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("order {}: no symbol", w.id))?;
    let quantity = w
        .qty
        .ok_or_else(|| format!("order {}: no qty (notional orders are not tracked)", w.id))?;
    let sym = symbol(raw);
    Ok(Order {
        id: w.id.as_str().into(),
        client_order_id: w.client_order_id.as_deref().map(Into::into),
        account: account.clone(),
        underlying: sym.underlying().to_owned(),
        status: status(&w.status),
        raw_status: Some(w.status.clone()),
        order_type: order_type(w.kind.as_deref().or(w.order_type.as_deref())),
        time_in_force: time_in_force(w.time_in_force.as_deref()),
        limit_price: w.limit_price,
        stop_price: w.stop_price,
        submitted_at: w.submitted_at,
        updated_at: w.updated_at,
        legs: vec![OrderLeg {
            symbol: sym,
            side: side(w)?,
            quantity,
            filled_quantity: w.filled_qty.unwrap_or_default(),
        }],
        replaced_by: w.replaced_by.as_deref().map(Into::into),
        replaces: w.replaces.as_deref().map(Into::into),
        oco_group: group.map(Into::into),
        filled_at: w.filled_at,
        filled_average_price: w.filled_avg_price,
    })
}

/// An mleg order: one order whose legs are instrument legs. Its net limit price is kept
/// unsigned (the sign only says debit or credit).
fn multi_leg(w: &wire::Order, account: &AccountId) -> Result<Order, String> {
    let legs = w
        .legs
        .iter()
        .map(|l| {
            let raw = l
                .symbol
                .as_deref()
                .ok_or_else(|| format!("order {}: a leg has no symbol", w.id))?;
            let quantity = l
                .qty
                .or_else(|| Some(l.ratio_qty? * w.qty?))
                .ok_or_else(|| format!("order {}: a leg has no qty", w.id))?;
            Ok(OrderLeg {
                symbol: symbol(raw),
                side: side(l)?,
                quantity,
                filled_quantity: l.filled_qty.unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let underlying = legs
        .first()
        .map(|l| l.symbol.underlying().to_owned())
        .unwrap_or_default();
    Ok(Order {
        id: w.id.as_str().into(),
        client_order_id: w.client_order_id.as_deref().map(Into::into),
        account: account.clone(),
        underlying,
        status: status(&w.status),
        raw_status: Some(w.status.clone()),
        order_type: order_type(w.kind.as_deref().or(w.order_type.as_deref())),
        time_in_force: time_in_force(w.time_in_force.as_deref()),
        limit_price: w.limit_price.map(|p| p.abs()),
        stop_price: w.stop_price,
        submitted_at: w.submitted_at,
        updated_at: w.updated_at,
        legs,
        replaced_by: w.replaced_by.as_deref().map(Into::into),
        replaces: w.replaces.as_deref().map(Into::into),
        oco_group: None,
        filled_at: w.filled_at,
        filled_average_price: w.filled_avg_price,
    })
}

/// An order as Alpaca lists it (nested or not) as the orders reconcile tracks: a simple or
/// mleg order as one; a bracket, OCO or OTO parent as itself and one order per child. The
/// exits of an OCO (parent and child) and a bracket's two exits share the parent's id as their
/// group.
pub fn orders(w: &wire::Order, account: &AccountId) -> Result<Vec<Order>, String> {
    match w.order_class.as_deref().unwrap_or("") {
        "mleg" => Ok(vec![multi_leg(w, account)?]),
        "oco" => {
            let mut out = vec![single(w, account, Some(&w.id))?];
            for l in &w.legs {
                out.push(single(l, account, Some(&w.id))?);
            }
            Ok(out)
        }
        "bracket" | "oto" => {
            let mut out = vec![single(w, account, None)?];
            let exits = (w.legs.len() > 1).then_some(w.id.as_str());
            for l in &w.legs {
                out.push(single(l, account, exits)?);
            }
            Ok(out)
        }
        _ => Ok(vec![single(w, account, None)?]),
    }
}

/// A position as a signed holding.
pub fn position(p: &wire::Position, account: &AccountId) -> BrokerPosition {
    let sym = symbol(&p.symbol);
    // `qty` is signed; a short with an unsigned qty is made negative all the same.
    let quantity = if p.side.as_deref() == Some("short") && p.qty > Decimal::ZERO {
        -p.qty
    } else {
        p.qty
    };
    BrokerPosition {
        account: account.clone(),
        underlying: Some(sym.underlying().to_owned()),
        symbol: sym,
        quantity,
        average_price: p.avg_entry_price,
    }
}

fn kind(t: OrderType) -> &'static str {
    match t {
        OrderType::Market => "market",
        OrderType::Stop => "stop",
        OrderType::StopLimit => "stop_limit",
        _ => "limit",
    }
}

fn side_words(s: Side) -> (&'static str, Option<&'static str>) {
    match s {
        Side::Buy => ("buy", None),
        Side::Sell => ("sell", None),
        Side::BuyToOpen => ("buy", Some("buy_to_open")),
        Side::BuyToClose => ("buy", Some("buy_to_close")),
        Side::SellToOpen => ("sell", Some("sell_to_open")),
        Side::SellToClose => ("sell", Some("sell_to_close")),
    }
}

fn money(d: Decimal) -> String {
    d.normalize().to_string()
}

/// A placement request as an Alpaca order body: a simple order for one leg (options day-only,
/// equities good till cancelled), an mleg order for several (a net limit price: positive a
/// debit when any leg buys, negative a credit).
pub fn new_order(o: &PlaceOrder) -> Result<wire::NewOrder, String> {
    let option = o.legs.iter().any(|l| l.symbol.is_option());
    let tif = if option { "day" } else { "gtc" };
    match o.legs.as_slice() {
        [] => Err("an order needs a leg".to_owned()),
        [l] => {
            let (side, intent) = side_words(l.side);
            Ok(wire::NewOrder {
                symbol: Some(l.symbol.compact()),
                qty: money(l.quantity),
                side: Some(side.to_owned()),
                kind: kind(o.order_type).to_owned(),
                time_in_force: tif.to_owned(),
                limit_price: o.limit_price.map(money),
                stop_price: o.stop_price.map(money),
                client_order_id: o.client_order_id.to_string(),
                order_class: None,
                position_intent: intent.filter(|_| option).map(ToOwned::to_owned),
                ..wire::NewOrder::default()
            })
        }
        legs => {
            let first = legs[0].quantity;
            let same = legs.iter().all(|l| l.quantity == first);
            let debit = legs.iter().any(|l| l.side.is_buy());
            Ok(wire::NewOrder {
                symbol: None,
                qty: if same { money(first) } else { "1".to_owned() },
                side: None,
                kind: kind(o.order_type).to_owned(),
                time_in_force: "day".to_owned(),
                limit_price: o.limit_price.map(|p| money(if debit { p } else { -p })),
                stop_price: None,
                client_order_id: o.client_order_id.to_string(),
                order_class: Some("mleg".to_owned()),
                legs: Some(
                    legs.iter()
                        .map(|l| {
                            let (side, intent) = side_words(l.side);
                            wire::NewLeg {
                                symbol: l.symbol.compact(),
                                ratio_qty: if same {
                                    "1".to_owned()
                                } else {
                                    money(l.quantity)
                                },
                                side: side.to_owned(),
                                position_intent: intent
                                    .unwrap_or(if side == "buy" {
                                        "buy_to_close"
                                    } else {
                                        "sell_to_close"
                                    })
                                    .to_owned(),
                            }
                        })
                        .collect(),
                ),
                ..wire::NewOrder::default()
            })
        }
    }
}

/// A take profit and a stop loss on the same shares as one `oco` order: the take profit is the
/// parent (a limit order carrying the client order id), the stop its child.
pub fn new_oco(take_profit: &PlaceOrder, stop_loss: &PlaceOrder) -> Result<wire::NewOrder, String> {
    let [l] = take_profit.legs.as_slice() else {
        return Err("an OCO order closes one instrument".to_owned());
    };
    if stop_loss.legs.as_slice() != take_profit.legs.as_slice() {
        return Err("the exits of an OCO order must close the same shares".to_owned());
    }
    let limit = take_profit
        .limit_price
        .ok_or_else(|| "the take profit needs a limit price".to_owned())?;
    let stop = stop_loss
        .stop_price
        .ok_or_else(|| "the stop loss needs a stop price".to_owned())?;
    let (side, _) = side_words(l.side);
    Ok(wire::NewOrder {
        symbol: Some(l.symbol.compact()),
        qty: money(l.quantity),
        side: Some(side.to_owned()),
        kind: "limit".to_owned(),
        time_in_force: if l.symbol.is_option() { "day" } else { "gtc" }.to_owned(),
        limit_price: Some(money(limit)),
        stop_price: None,
        client_order_id: take_profit.client_order_id.to_string(),
        order_class: Some("oco".to_owned()),
        position_intent: None,
        take_profit: Some(wire::TakeProfit {
            limit_price: money(limit),
        }),
        stop_loss: Some(wire::StopLoss {
            stop_price: money(stop),
            limit_price: stop_loss.limit_price.map(money),
        }),
        legs: None,
    })
}
