//! TastyTrade's JSON, written and read by the simulator: kebab-case keys, unsigned prices as
//! strings with a `-effect`, order ids and leg quantities as numbers, `updated-at` in epoch
//! milliseconds, other times ISO-8601 with milliseconds and an offset.

use super::state::{Account, Fill, Leg, Order, Position, Refusal, Request, expires_at};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

fn iso(t: DateTime<Utc>) -> Value {
    json!(t.to_rfc3339_opts(SecondsFormat::Millis, false))
}

fn opt_iso(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, iso)
}

fn money(d: Decimal) -> Value {
    json!(d.normalize().to_string())
}

/// A quantity as the order captures show it: a number (a string only when fractional, so that
/// nothing goes through a float).
fn quantity(d: Decimal) -> Value {
    let n = d.normalize();
    if n.scale() == 0
        && let Ok(i) = i64::try_from(n.mantissa())
    {
        return json!(i);
    }
    json!(n.to_string())
}

fn fill(f: &Fill) -> Value {
    json!({
        "fill-id": f.id,
        "quantity": quantity(f.quantity),
        "fill-price": money(f.price),
        "filled-at": iso(f.at),
        "destination-venue": "MARKET_SIMULATOR_A",
        "ext-exec-id": format!("sim-exec-{}", f.id),
        "ext-group-fill-id": format!("sim-group-{}", f.id),
    })
}

fn leg(l: &Leg) -> Value {
    json!({
        "instrument-type": l.instrument_type,
        "symbol": l.symbol,
        "quantity": quantity(l.quantity),
        "remaining-quantity": quantity(l.remaining),
        "action": l.action,
        "fills": l.fills.iter().map(fill).collect::<Vec<_>>(),
    })
}

/// An order, with every field the API documents (those that do not apply are `null`). A dry
/// run's order has no id and an `updated-at` of 0.
pub fn order(o: &Order, dry_run: bool) -> Value {
    let working =
        o.is_working() && !matches!(o.status.as_str(), "Cancel Requested" | "Replace Requested");
    let mut m = Map::new();
    if !dry_run {
        m.insert("id".into(), json!(o.id));
    }
    let fields = json!({
        "account-number": o.account,
        "time-in-force": o.time_in_force,
        "gtc-date": o.gtc_date.map(|d| d.to_string()),
        "order-type": o.order_type,
        "size": quantity(o.size()),
        "underlying-symbol": o.underlying,
        "underlying-instrument-type": o.underlying_instrument_type,
        "price": o.price.map(money),
        "price-effect": o.price_effect,
        "stop-trigger": o.stop_trigger.map(money),
        "status": o.status,
        "contingent-status": o.contingent_status,
        "confirmation-status": null,
        "cancellable": working,
        "editable": working,
        "edited": o.edited,
        "ext-exchange-order-number": if dry_run { Value::Null } else { json!(format!("SIM{}", o.id)) },
        "ext-client-order-id": if dry_run { Value::Null } else { json!(format!("sim-{:x}", o.id)) },
        "ext-global-order-number": if dry_run { Value::Null } else { json!(o.id + 1_000_000) },
        "external-identifier": o.external_identifier,
        "source": o.source,
        "received-at": if dry_run { Value::Null } else { iso(o.received_at) },
        "live-at": opt_iso(o.live_at),
        "in-flight-at": Value::Null,
        "cancelled-at": opt_iso(o.cancelled_at),
        "terminal-at": opt_iso(o.terminal_at),
        "updated-at": if dry_run { 0 } else { o.updated_at.timestamp_millis() },
        "cancel-user-id": if o.cancelled_by_user && o.cancelled_at.is_some() { json!("1") } else { Value::Null },
        "cancel-username": if o.cancelled_by_user && o.cancelled_at.is_some() { json!("sim-user") } else { Value::Null },
        "replaces-order-id": o.replaces,
        "replacing-order-id": o.replacing,
        "reject-reason": o.reject_reason,
        "global-request-id": format!("sim-request-{}", o.id),
        "preflight-id": if dry_run { json!(0) } else { Value::Null },
        "legs": o.legs.iter().map(leg).collect::<Vec<_>>(),
    });
    if let Value::Object(f) = fields {
        // The API leaves out what does not apply rather than sending null.
        m.extend(f.into_iter().filter(|(_, v)| !v.is_null()));
    }
    Value::Object(m)
}

/// A position: unsigned quantity with a direction, prices as strings.
pub fn position(p: &Position) -> Value {
    let direction = if p.quantity.is_zero() {
        "Zero"
    } else if p.quantity < Decimal::ZERO {
        "Short"
    } else {
        "Long"
    };
    let option = p.instrument_type == "Equity Option";
    json!({
        "account-number": p.account,
        "symbol": p.symbol,
        "instrument-type": p.instrument_type,
        "underlying-symbol": p.underlying,
        "quantity": p.quantity.abs().normalize().to_string(),
        "quantity-direction": direction,
        "close-price": money(p.close_price),
        "average-open-price": money(p.average_open_price),
        "average-yearly-market-close-price": money(p.close_price),
        "average-daily-market-close-price": money(p.close_price),
        "multiplier": if option { 100 } else { 1 },
        "cost-effect": if p.quantity < Decimal::ZERO { "Credit" } else { "Debit" },
        "is-suppressed": false,
        "is-frozen": false,
        "restricted-quantity": "0",
        "expires-at": opt_iso(expires_at(&p.symbol)),
        "realized-day-gain": "0",
        "realized-day-gain-effect": "None",
        "realized-day-gain-date": p.updated_at.date_naive().to_string(),
        "realized-today": "0",
        "realized-today-effect": "None",
        "realized-today-date": p.updated_at.date_naive().to_string(),
        "created-at": iso(p.created_at),
        "updated-at": iso(p.updated_at),
    })
}

/// An account object.
pub fn account(a: &Account) -> Value {
    json!({
        "account-number": a.number,
        "external-id": format!("A{}", a.number),
        "opened-at": iso(a.opened_at),
        "nickname": a.nickname,
        "account-type-name": "Individual",
        "day-trader-status": false,
        "is-closed": a.closed,
        "is-firm-error": false,
        "is-firm-proprietary": false,
        "is-futures-approved": false,
        "is-test-drive": false,
        "margin-or-cash": "Margin",
        "is-foreign": false,
        "funding-date": a.opened_at.date_naive().to_string(),
        "investment-objective": "SPECULATION",
        "suitable-options-level": "No Restrictions",
        "created-at": iso(a.opened_at),
    })
}

fn fee(name: &str, value: &str, effect: &str) -> Value {
    json!({"name": name, "value": value, "effect": effect})
}

/// The buying-power effect and fees of a placement (flat, made-up amounts), with its warnings.
pub fn placement(o: &Order, dry_run: bool, warnings: &[(String, String)]) -> Value {
    json!({
        "order": order(o, dry_run),
        "warnings": warnings
            .iter()
            .map(|(code, message)| json!({"code": code, "message": message}))
            .collect::<Vec<_>>(),
        "notes": [],
        "buying-power-effect": {
            "change-in-margin-requirement": "0.0",
            "change-in-margin-requirement-effect": "None",
            "change-in-buying-power": "1.0",
            "change-in-buying-power-effect": "Debit",
            "current-buying-power": "100000.0",
            "current-buying-power-effect": "Credit",
            "new-buying-power": "99999.0",
            "new-buying-power-effect": "Credit",
            "isolated-order-margin-requirement": "0.0",
            "isolated-order-margin-requirement-effect": "None",
            "is-spread": o.legs.len() > 1,
            "impact": "1.0",
            "effect": "Debit",
        },
        "fee-calculation": {
            "regulatory-fees": "0.02",
            "regulatory-fees-effect": "Debit",
            "regulatory-fees-breakdown": [fee("exchange", "0.0", "None"), fee("orf", "0.02", "Debit")],
            "clearing-fees": "0.1",
            "clearing-fees-effect": "Debit",
            "clearing-fees-breakdown": [fee("clearing", "0.1", "Debit")],
            "commission": "1.0",
            "commission-effect": "Debit",
            "commission-breakdown": [fee("brokerage", "1.0", "Debit")],
            "proprietary-index-option-fees": "0.0",
            "proprietary-index-option-fees-effect": "None",
            "proprietary-fees-breakdown": [fee("proprietary", "0.0", "None")],
            "total-fees": "1.12",
            "total-fees-effect": "Debit",
            "rebates": "0.0",
            "rebates-effect": "None",
            "rebates-breakdown": [fee("rebate", "0.0", "None")],
            "per-quantity": false,
        },
    })
}

/// The error envelope.
pub fn refusal(r: &Refusal) -> Value {
    let mut e = json!({"code": r.code, "message": r.message});
    if !r.errors.is_empty() {
        e["errors"] = Value::Array(
            r.errors
                .iter()
                .map(|(code, message)| json!({"code": code, "message": message}))
                .collect(),
        );
    }
    json!({ "error": e })
}

fn decimal(v: &Value, path: &str) -> Result<Option<Decimal>, Refusal> {
    let bad = || Refusal::new(400, "validation_error", format!("{path} is not a number"));
    match v {
        Value::Null => Ok(None),
        Value::String(s) => s.trim().parse().map(Some).map_err(|_| bad()),
        // Read from the number's own text, never through a float.
        Value::Number(n) => n.to_string().parse().map(Some).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

fn text(v: &Value, path: &str) -> Result<Option<String>, Refusal> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(Refusal::new(
            400,
            "validation_error",
            format!("{path} is not a string"),
        )),
    }
}

/// Reads an order request body (placement, dry run or replacement).
pub fn request(body: &[u8]) -> Result<Request, Refusal> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Refusal::new(400, "invalid_json", format!("the body is not JSON: {e}")))?;
    let Value::Object(m) = &v else {
        return Err(Refusal::new(
            400,
            "invalid_json",
            "the body is not an object",
        ));
    };
    let get = |k: &str| m.get(k).unwrap_or(&Value::Null);
    let legs = match get("legs") {
        Value::Null => None,
        Value::Array(items) => {
            let mut out = Vec::new();
            for (i, l) in items.iter().enumerate() {
                let at = |k: &str| format!("legs[{i}].{k}");
                let field = |k: &str| l.get(k).unwrap_or(&Value::Null);
                let symbol = text(field("symbol"), &at("symbol"))?.ok_or_else(|| {
                    Refusal::new(
                        400,
                        "validation_error",
                        format!("{} is required", at("symbol")),
                    )
                })?;
                let action = text(field("action"), &at("action"))?.ok_or_else(|| {
                    Refusal::new(
                        400,
                        "validation_error",
                        format!("{} is required", at("action")),
                    )
                })?;
                let quantity = decimal(field("quantity"), &at("quantity"))?.ok_or_else(|| {
                    Refusal::new(
                        400,
                        "validation_error",
                        format!("{} is required", at("quantity")),
                    )
                })?;
                let instrument_type = text(field("instrument-type"), &at("instrument-type"))?
                    .unwrap_or_else(|| super::state::instrument_type(&symbol).to_owned());
                out.push(Leg {
                    instrument_type,
                    symbol,
                    action,
                    quantity,
                    remaining: quantity,
                    fills: Vec::new(),
                });
            }
            Some(out)
        }
        _ => {
            return Err(Refusal::new(
                400,
                "validation_error",
                "legs is not an array",
            ));
        }
    };
    let strict = get("advanced-instructions")
        .get("strict-position-effect-validation")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let gtc_date = text(get("gtc-date"), "gtc-date")?
        .map(|d| {
            NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                .map_err(|_| Refusal::new(400, "validation_error", "gtc-date is not a date"))
        })
        .transpose()?;
    Ok(Request {
        order_type: text(get("order-type"), "order-type")?,
        time_in_force: text(get("time-in-force"), "time-in-force")?,
        gtc_date,
        price: decimal(get("price"), "price")?.map(|p| p.abs()),
        price_effect: text(get("price-effect"), "price-effect")?,
        stop_trigger: decimal(get("stop-trigger"), "stop-trigger")?,
        legs,
        external_identifier: text(get("external-identifier"), "external-identifier")?,
        source: text(get("source"), "source")?,
        strict,
    })
}
