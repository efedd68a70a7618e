//! The simulator's JSON, field for field as Alpaca documents it: every decimal a string, times
//! in RFC 3339 with microseconds, `null` for what is unset, legs `null` unless nested.

use super::state::{Order, Position, Refusal, State, is_option};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

/// A time as Alpaca writes it: `2023-12-12T22:31:24.668464435Z`.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

fn opt_time(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(time(t)))
}

/// A decimal as a string, with the digits it was given (`"172.30"` stays `"172.30"`).
fn dec(d: Decimal) -> Value {
    Value::String(d.to_string())
}

fn opt_dec(d: Option<Decimal>) -> Value {
    d.map_or(Value::Null, dec)
}

/// A stable asset id for a symbol (a UUID in shape), so that the same symbol always has one.
pub fn asset_id(symbol: &str) -> String {
    // FNV-1a, twice with different offsets, for 128 bits of a name-based id.
    let hash = |offset: u64| {
        symbol.bytes().fold(offset, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    let (a, b) = (hash(0xcbf2_9ce4_8422_2325), hash(0x8422_2325_cbf2_9ce4));
    format!(
        "{:08x}-{:04x}-5{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// When an option order (or an mleg leg) placed at `t` expires: the end of that trading day.
fn expires(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(t.year(), t.month(), t.day(), 21, 0, 0)
        .single()
        .unwrap_or(t)
}

/// Child orders by parent id, each list in the order the children were made.
pub type Kids<'s> = std::collections::HashMap<&'s str, Vec<&'s Order>>;

/// Every group's children, gathered once for a list of orders.
pub fn kids(s: &State) -> Kids<'_> {
    let mut out: Kids<'_> = std::collections::HashMap::new();
    for o in s.orders.values() {
        if let Some(p) = &o.parent {
            out.entry(p.as_str()).or_default().push(o);
        }
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| a.id.cmp(&b.id));
    }
    out
}

/// One order; `nested` folds its children into `legs`.
pub fn order(s: &State, o: &Order, nested: bool) -> Value {
    let mut k: Kids<'_> = std::collections::HashMap::new();
    if nested {
        k.insert(o.id.as_str(), s.children(&o.id));
    }
    order_in(&k, o, nested)
}

/// One order of a list, its children looked up in `kids`.
pub fn order_in(kids: &Kids<'_>, o: &Order, nested: bool) -> Value {
    let mleg_parent = o.order_class == "mleg" && o.parent.is_none();
    let options = o.asset_class == "us_option";
    let children = kids.get(o.id.as_str()).filter(|c| !c.is_empty());
    let legs = match children {
        Some(c) if nested && o.parent.is_none() => {
            Value::Array(c.iter().map(|c| order_in(kids, c, false)).collect())
        }
        _ => Value::Null,
    };
    let mut v = json!({
        "id": o.id,
        "client_order_id": o.client_order_id,
        "created_at": time(o.created_at),
        "updated_at": time(o.updated_at),
        "submitted_at": time(o.submitted_at),
        "filled_at": opt_time(o.filled_at),
        "expired_at": if o.status == "expired" { Value::String(time(o.updated_at)) } else { Value::Null },
        "canceled_at": opt_time(o.canceled_at),
        "failed_at": if o.status == "rejected" { Value::String(time(o.updated_at)) } else { Value::Null },
        "replaced_at": opt_time(o.replaced_at),
        "replaced_by": o.replaced_by,
        "replaces": o.replaces,
        "asset_id": if mleg_parent { String::new() } else { asset_id(&o.symbol) },
        "symbol": o.symbol,
        "asset_class": o.asset_class,
        "notional": Value::Null,
        "qty": dec(o.qty),
        "filled_qty": dec(o.filled_qty),
        "filled_avg_price": opt_dec(o.filled_avg_price),
        "order_class": o.order_class,
        "order_type": o.kind,
        "type": o.kind,
        "side": o.side,
        "position_intent": o.position_intent,
        "time_in_force": o.time_in_force,
        "limit_price": opt_dec(o.limit_price),
        "stop_price": opt_dec(o.stop_price),
        "status": o.status,
        "extended_hours": false,
        "legs": legs,
        "trail_percent": Value::Null,
        "trail_price": Value::Null,
        "hwm": Value::Null,
        "subtag": Value::Null,
        "source": Value::Null,
    });
    if let Some(m) = v.as_object_mut() {
        if options {
            m.insert(
                "expires_at".to_owned(),
                Value::String(time(expires(o.created_at))),
            );
        }
        if let Some(r) = o.ratio_qty {
            m.insert("ratio_qty".to_owned(), dec(r));
        }
    }
    v
}

/// One position, with every documented field; options count 100 shares a contract.
pub fn position(s: &State, p: &Position) -> Value {
    let option = is_option(&p.symbol);
    let multiplier = if option {
        Decimal::ONE_HUNDRED
    } else {
        Decimal::ONE
    };
    let side = if p.qty < Decimal::ZERO {
        "short"
    } else {
        "long"
    };
    let cost_basis = p.qty * p.avg_entry_price * multiplier;
    let market_value = p.qty * p.current_price * multiplier;
    let pl = market_value - cost_basis;
    let plpc = if cost_basis.is_zero() {
        Decimal::ZERO
    } else {
        (pl / cost_basis.abs()).round_dp(10)
    };
    let available = if p.qty < Decimal::ZERO {
        -s.available(&p.symbol)
    } else {
        s.available(&p.symbol)
    };
    let exchange = if option { "" } else { "NASDAQ" };
    json!({
        "asset_id": asset_id(&p.symbol),
        "symbol": p.symbol,
        "exchange": exchange,
        "asset_class": p.asset_class,
        "asset_marginable": !option,
        "avg_entry_price": dec(p.avg_entry_price),
        "qty": dec(p.qty),
        "side": side,
        "market_value": dec(market_value),
        "cost_basis": dec(cost_basis),
        "unrealized_pl": dec(pl),
        "unrealized_plpc": dec(plpc),
        "unrealized_intraday_pl": dec(pl),
        "unrealized_intraday_plpc": dec(plpc),
        "current_price": dec(p.current_price),
        "lastday_price": dec(p.current_price),
        "change_today": "0",
        "qty_available": dec(available),
    })
}

/// The account, with the documented fields (balances made up but consistent).
pub fn account(s: &State) -> Value {
    let long: Decimal = s
        .positions
        .iter()
        .filter(|p| p.qty > Decimal::ZERO)
        .map(|p| {
            p.qty
                * p.current_price
                * if is_option(&p.symbol) {
                    Decimal::ONE_HUNDRED
                } else {
                    Decimal::ONE
                }
        })
        .sum();
    let short: Decimal = s
        .positions
        .iter()
        .filter(|p| p.qty < Decimal::ZERO)
        .map(|p| {
            p.qty
                * p.current_price
                * if is_option(&p.symbol) {
                    Decimal::ONE_HUNDRED
                } else {
                    Decimal::ONE
                }
        })
        .sum();
    let cash = Decimal::new(100_000, 0);
    let equity = cash + long + short;
    json!({
        "id": s.account_id,
        "account_number": s.account_number,
        "status": "ACTIVE",
        "crypto_status": "ACTIVE",
        "currency": "USD",
        "buying_power": dec(equity * Decimal::TWO),
        "regt_buying_power": dec(equity * Decimal::TWO),
        "daytrading_buying_power": dec(equity * Decimal::new(4, 0)),
        "effective_buying_power": dec(equity * Decimal::TWO),
        "non_marginable_buying_power": dec(cash),
        "options_buying_power": dec(cash),
        "bod_dtbp": "0",
        "cash": dec(cash),
        "accrued_fees": "0",
        "pending_transfer_in": "0",
        "pending_transfer_out": "0",
        "portfolio_value": dec(equity),
        "pattern_day_trader": false,
        "trading_blocked": false,
        "transfers_blocked": false,
        "account_blocked": false,
        "created_at": time(s.now - chrono::TimeDelta::days(400)),
        "trade_suspended_by_user": false,
        "multiplier": "2",
        "shorting_enabled": true,
        "equity": dec(equity),
        "last_equity": dec(equity),
        "long_market_value": dec(long),
        "short_market_value": dec(short),
        "position_market_value": dec(long - short),
        "initial_margin": "0",
        "maintenance_margin": "0",
        "last_maintenance_margin": "0",
        "sma": "0",
        "daytrade_count": 0,
        "balance_asof": s.now.format("%Y-%m-%d").to_string(),
        "crypto_tier": 1,
        "options_approved_level": 3,
        "options_trading_level": 3,
        "intraday_adjustments": "0",
        "pending_reg_taf_fees": "0",
    })
}

/// An error body: `{"code": …, "message": …}` plus any extra fields.
pub fn refusal(r: &Refusal) -> Value {
    let mut m = Map::new();
    if let Some(c) = r.code {
        m.insert("code".to_owned(), json!(c));
    }
    m.insert("message".to_owned(), json!(r.message));
    for (k, v) in &r.extra {
        m.insert(k.clone(), json!(v));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_ids_are_stable_uuids_per_symbol() {
        let a = asset_id("AAPL");
        assert_eq!(a, asset_id("AAPL"));
        assert_ne!(a, asset_id("MSFT"));
        let parts: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12], "{a}");
    }

    #[test]
    fn times_carry_nanoseconds_and_z() {
        let t = Utc.with_ymd_and_hms(2025, 11, 6, 14, 31, 7).unwrap();
        assert_eq!(time(t), "2025-11-06T14:31:07.000000000Z");
    }
}
