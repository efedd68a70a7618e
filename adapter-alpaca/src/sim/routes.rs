//! The endpoints, as axum routes. Every request needs the key headers (`APCA-API-KEY-ID`,
//! `APCA-API-SECRET-KEY`) or an OAuth bearer token (401 `40110000` without), and counts
//! against a rolling-minute limit (429 over it); every answer carries the `X-Ratelimit-*`
//! headers. Confirmations earlier requests asked for are applied first. Unknown query
//! parameters are ignored, as Alpaca ignores them.

// A refusal is an axum `Response` all the way to the handler's answer; boxing it would only add
// an allocation to a test server.
#![allow(clippy::result_large_err)]

use super::render;
use super::state::{Exits, LegRequest, Order, Patch, Refusal, Request, State, underlying_of};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State as Shared};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Utc};
use reconcile_core::decimal::parse_decimal;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

type World = Arc<Mutex<State>>;

pub(super) fn lock(w: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    w.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(super) fn router(world: World) -> Router {
    Router::new()
        .route("/v2/account", get(account))
        .route("/v2/orders", get(list).post(place).delete(cancel_all))
        .route("/v2/orders:by_client_order_id", get(by_client_order_id))
        .route("/v2/orders/{id}", get(one).patch(replace).delete(cancel))
        .route("/v2/positions", get(positions))
        .route(
            "/v2/positions/{symbol}",
            get(one_position).delete(close_position),
        )
        .fallback(not_found)
        .with_state(world)
}

/// The rate-limit headers of an answer.
struct Limits {
    limit: u32,
    remaining: u32,
    reset: i64,
}

fn limits(s: &State) -> Option<Limits> {
    let limit = s.rate_limit?;
    let used = u32::try_from(s.recent.len()).unwrap_or(u32::MAX);
    let oldest = s
        .recent
        .front()
        .map_or(std::time::Duration::ZERO, std::time::Instant::elapsed);
    let reset = Utc::now().timestamp()
        + i64::try_from(60u64.saturating_sub(oldest.as_secs())).unwrap_or(60);
    Some(Limits {
        limit,
        remaining: limit.saturating_sub(used),
        reset,
    })
}

fn respond_with(status: u16, body: Option<&Value>, l: Option<&Limits>) -> Response {
    let mut r = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    if let Some(l) = l {
        r = r
            .header("X-Ratelimit-Limit", l.limit)
            .header("X-Ratelimit-Remaining", l.remaining)
            .header("X-Ratelimit-Reset", l.reset);
    }
    match body {
        Some(b) => r
            .header("Content-Type", "application/json; charset=UTF-8")
            .body(Body::from(b.to_string())),
        None => r.body(Body::empty()),
    }
    .unwrap_or_default()
}

fn refused(r: &Refusal) -> Response {
    respond_with(r.status, Some(&render::refusal(r)), None)
}

/// The world for an authenticated, admitted request, confirmations applied.
fn enter<'w>(
    world: &'w World,
    headers: &HeaderMap,
) -> Result<std::sync::MutexGuard<'w, State>, Response> {
    let mut s = lock(world);
    s.tick();
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let keys_ok = header("APCA-API-KEY-ID") == Some(s.key_id.as_str())
        && header("APCA-API-SECRET-KEY") == Some(s.secret_key.as_str());
    let bearer_ok = s.oauth_token.as_deref().is_some_and(|t| {
        header("Authorization").and_then(|a| a.strip_prefix("Bearer ")) == Some(t)
    });
    if !(keys_ok || bearer_ok) {
        return Err(refused(&Refusal::new(
            401,
            40_110_000,
            "request is not authorized",
        )));
    }
    if !s.admit() {
        let l = limits(&s);
        return Err(respond_with(
            429,
            Some(&json!({"code": 42_910_000, "message": "rate limit exceeded"})),
            l.as_ref(),
        ));
    }
    Ok(s)
}

macro_rules! enter {
    ($world:expr, $headers:expr) => {
        match enter(&$world, &$headers) {
            Ok(ok) => ok,
            Err(response) => return response,
        }
    };
}

macro_rules! attempt {
    ($e:expr) => {
        match $e {
            Ok(ok) => ok,
            Err(r) => return refused(&r),
        }
    };
}

fn ok(s: &State, body: &Value) -> Response {
    respond_with(200, Some(body), limits(s).as_ref())
}

fn query(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'q>(q: &'q [(String, String)], key: &str) -> Option<&'q str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal::new(422, 40_010_001, message)
}

/// A boolean parameter, spelled as Go's `strconv.ParseBool` reads it (`true`, `True`, `1`, …):
/// alpaca-py sends Python's `True`.
fn flag(q: &[(String, String)], key: &str) -> Result<bool, Refusal> {
    match param(q, key) {
        None => Ok(false),
        Some("1" | "t" | "T" | "true" | "True" | "TRUE") => Ok(true),
        Some("0" | "f" | "F" | "false" | "False" | "FALSE") => Ok(false),
        Some(v) => Err(invalid(format!("invalid {key}: {v:?}"))),
    }
}

fn bound(q: &[(String, String)], key: &str) -> Result<Option<DateTime<Utc>>, Refusal> {
    param(q, key)
        .map(|v| {
            let t = DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .or_else(|_| {
                    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
                });
            t.map_err(|_| {
                invalid(format!(
                    "invalid format for {key}; format: '2006-01-02T15:04:05Z'"
                ))
            })
        })
        .transpose()
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

async fn not_found() -> Response {
    respond_with(
        404,
        Some(&json!({"code": 40_410_000, "message": "endpoint not found"})),
        None,
    )
}

async fn account(Shared(world): Shared<World>, headers: HeaderMap) -> Response {
    let s = enter!(world, headers);
    ok(&s, &render::account(&s))
}

/// `GET /v2/orders`: `status` (default `open`), `limit` (default 50, at most 500), `after` and
/// `until` (exclusive, on `submitted_at`), `direction` (default `desc`), `nested`, `symbols`,
/// `side`. Nested, only parents are rows and a parent's own status decides whether it is open;
/// flat, every order is a row, and `held` legs are missing from `open` lists (as reported of
/// Alpaca).
async fn list(
    Shared(world): Shared<World>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let s = enter!(world, headers);
    let q = query(raw.as_deref());
    let status = param(&q, "status").unwrap_or("open");
    if !matches!(status, "open" | "closed" | "all") {
        return refused(&invalid(format!("invalid status: {status:?}")));
    }
    let limit = match param(&q, "limit").map(str::parse::<usize>) {
        None => 50,
        Some(Ok(n)) if n > 0 => n.min(500),
        Some(_) => return refused(&invalid("invalid limit")),
    };
    let nested = attempt!(flag(&q, "nested"));
    let after = attempt!(bound(&q, "after"));
    let until = attempt!(bound(&q, "until"));
    let asc = match param(&q, "direction").unwrap_or("desc") {
        "asc" => true,
        "desc" => false,
        d => return refused(&invalid(format!("invalid direction: {d:?}"))),
    };
    let symbols: Vec<&str> = param(&q, "symbols")
        .map(|v| v.split(',').filter(|x| !x.is_empty()).collect())
        .unwrap_or_default();
    let side = param(&q, "side");
    let mut rows: Vec<&Order> = s
        .orders
        .values()
        .filter(|o| !nested || o.parent.is_none())
        .filter(|o| match status {
            "open" => o.is_open() && (nested || o.status != "held"),
            "closed" => !o.is_open(),
            _ => true,
        })
        .filter(|o| after.is_none_or(|a| o.submitted_at > a))
        .filter(|o| until.is_none_or(|u| o.submitted_at < u))
        .filter(|o| {
            symbols.is_empty()
                || symbols
                    .iter()
                    .any(|x| *x == o.symbol || *x == underlying_of(&o.symbol))
                || (o.symbol.is_empty()
                    && s.children(&o.id)
                        .iter()
                        .any(|c| symbols.contains(&underlying_of(&c.symbol).as_str())))
        })
        .filter(|o| side.is_none_or(|x| o.side == x))
        .collect();
    rows.sort_by(|a, b| (a.submitted_at, &a.id).cmp(&(b.submitted_at, &b.id)));
    if !asc {
        rows.reverse();
    }
    let kids = render::kids(&s);
    let body: Vec<Value> = rows
        .iter()
        .take(limit)
        .map(|o| render::order_in(&kids, o, nested))
        .collect();
    ok(&s, &Value::Array(body))
}

/// A decimal field, as a string (documented) or a number (accepted, read from its text).
fn decimal(v: &Value, key: &str) -> Result<Option<Decimal>, Refusal> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => parse_decimal(t)
            .map(Some)
            .map_err(|_| invalid(format!("invalid {key}: {t:?}"))),
        Some(Value::Number(n)) => parse_decimal(&n.to_string())
            .map(Some)
            .map_err(|_| invalid(format!("invalid {key}: {n}"))),
        Some(other) => Err(invalid(format!("invalid {key}: {other}"))),
    }
}

fn text(v: &Value, key: &str) -> Result<Option<String>, Refusal> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => Ok(Some(t.clone())),
        Some(other) => Err(invalid(format!("invalid {key}: {other}"))),
    }
}

fn body_json(body: &Bytes) -> Result<Value, Refusal> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| Refusal::new(400, 40_010_000, "request body format is invalid"))
}

fn request(v: &Value) -> Result<Request, Refusal> {
    let empty = json!({});
    let tp = v.get("take_profit").unwrap_or(&empty);
    let sl = v.get("stop_loss").unwrap_or(&empty);
    let legs = match v.get("legs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ls)) => ls
            .iter()
            .map(|l| {
                Ok(LegRequest {
                    symbol: text(l, "symbol")?.ok_or_else(|| invalid("legs.symbol is required"))?,
                    ratio_qty: decimal(l, "ratio_qty")?
                        .ok_or_else(|| invalid("legs.ratio_qty is required"))?,
                    side: text(l, "side")?,
                    position_intent: text(l, "position_intent")?,
                })
            })
            .collect::<Result<_, Refusal>>()?,
        Some(other) => return Err(invalid(format!("invalid legs: {other}"))),
    };
    Ok(Request {
        symbol: text(v, "symbol")?,
        qty: decimal(v, "qty")?,
        notional: decimal(v, "notional")?,
        side: text(v, "side")?,
        kind: text(v, "type")?,
        time_in_force: text(v, "time_in_force")?,
        limit_price: decimal(v, "limit_price")?,
        stop_price: decimal(v, "stop_price")?,
        client_order_id: text(v, "client_order_id")?,
        order_class: text(v, "order_class")?,
        position_intent: text(v, "position_intent")?,
        exits: Exits {
            take_profit: decimal(tp, "limit_price")?,
            stop_price: decimal(sl, "stop_price")?,
            stop_limit: decimal(sl, "limit_price")?,
        },
        legs,
        extended_hours: v
            .get("extended_hours")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

async fn place(Shared(world): Shared<World>, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = enter!(world, headers);
    let v = attempt!(body_json(&body));
    let req = attempt!(request(&v));
    let id = attempt!(s.place(&req));
    let body = s
        .orders
        .get(&id)
        .map(|o| render::order(&s, o, true))
        .unwrap_or(Value::Null);
    ok(&s, &body)
}

fn find<'s>(s: &'s State, id: &str) -> Result<&'s Order, Refusal> {
    if !is_uuid(id) {
        return Err(invalid("order_id is missing"));
    }
    s.orders
        .get(id)
        .ok_or_else(|| Refusal::new(404, 40_410_000, "order not found"))
}

async fn one(
    Shared(world): Shared<World>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let s = enter!(world, headers);
    let q = query(raw.as_deref());
    let nested = attempt!(flag(&q, "nested"));
    let o = attempt!(find(&s, &id));
    ok(&s, &render::order(&s, o, nested))
}

async fn by_client_order_id(
    Shared(world): Shared<World>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let s = enter!(world, headers);
    let q = query(raw.as_deref());
    let nested = attempt!(flag(&q, "nested"));
    let Some(cid) = param(&q, "client_order_id") else {
        return refused(&invalid("client_order_id is missing"));
    };
    match s.orders.values().find(|o| o.client_order_id == cid) {
        Some(o) => ok(&s, &render::order(&s, o, nested)),
        None => refused(&Refusal::new(404, 40_410_000, "order not found")),
    }
}

async fn replace(
    Shared(world): Shared<World>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = enter!(world, headers);
    attempt!(find(&s, &id));
    let v = attempt!(body_json(&body));
    let patch = Patch {
        qty: attempt!(decimal(&v, "qty")),
        time_in_force: attempt!(text(&v, "time_in_force")),
        limit_price: attempt!(decimal(&v, "limit_price")),
        stop_price: attempt!(decimal(&v, "stop_price")),
        client_order_id: attempt!(text(&v, "client_order_id")),
    };
    let nid = attempt!(s.replace(&id, &patch));
    let body = s
        .orders
        .get(&nid)
        .map(|o| render::order(&s, o, true))
        .unwrap_or(Value::Null);
    ok(&s, &body)
}

async fn cancel(
    Shared(world): Shared<World>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut s = enter!(world, headers);
    attempt!(find(&s, &id));
    attempt!(s.cancel(&id));
    respond_with(204, None, limits(&s).as_ref())
}

/// `DELETE /v2/orders`: 207 with one `{id, status, body}` per open order.
async fn cancel_all(Shared(world): Shared<World>, headers: HeaderMap) -> Response {
    let mut s = enter!(world, headers);
    let open: Vec<String> = s
        .orders
        .values()
        .filter(|o| o.parent.is_none() && o.is_open())
        .map(|o| o.id.clone())
        .collect();
    let mut items = Vec::new();
    for id in open {
        match s.cancel(&id) {
            Ok(()) => {
                let body = s
                    .orders
                    .get(&id)
                    .map(|o| render::order(&s, o, false))
                    .unwrap_or(Value::Null);
                items.push(json!({"id": id, "status": 200, "body": body}));
            }
            Err(r) => {
                items.push(json!({"id": id, "status": r.status, "body": render::refusal(&r)}))
            }
        }
    }
    respond_with(207, Some(&Value::Array(items)), limits(&s).as_ref())
}

async fn positions(Shared(world): Shared<World>, headers: HeaderMap) -> Response {
    let s = enter!(world, headers);
    let rows: Vec<Value> = s
        .positions
        .iter()
        .map(|p| render::position(&s, p))
        .collect();
    ok(&s, &Value::Array(rows))
}

fn position_index(s: &State, key: &str) -> Result<usize, Refusal> {
    s.positions
        .iter()
        .position(|p| p.symbol == key || render::asset_id(&p.symbol) == key)
        .ok_or_else(|| Refusal::new(404, 40_410_000, "position does not exist"))
}

async fn one_position(
    Shared(world): Shared<World>,
    Path(symbol): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = enter!(world, headers);
    let i = attempt!(position_index(&s, &symbol));
    ok(&s, &render::position(&s, &s.positions[i]))
}

/// `DELETE /v2/positions/{symbol}`: a market order closing it (all, `qty`, or `percentage`).
async fn close_position(
    Shared(world): Shared<World>,
    Path(symbol): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut s = enter!(world, headers);
    let q = query(raw.as_deref());
    let i = attempt!(position_index(&s, &symbol));
    let p = s.positions[i].clone();
    let qty = match (param(&q, "qty"), param(&q, "percentage")) {
        (Some(_), Some(_)) => return refused(&invalid("qty and percentage are exclusive")),
        (Some(v), None) => {
            attempt!(parse_decimal(v).map_err(|_| invalid(format!("invalid qty: {v:?}"))))
        }
        (None, Some(v)) => {
            let pct = attempt!(
                parse_decimal(v).map_err(|_| invalid(format!("invalid percentage: {v:?}")))
            );
            (p.qty.abs() * pct / Decimal::ONE_HUNDRED).round_dp(9)
        }
        (None, None) => p.qty.abs(),
    };
    let req = Request {
        symbol: Some(p.symbol.clone()),
        qty: Some(qty),
        side: Some(if p.qty > Decimal::ZERO { "sell" } else { "buy" }.to_owned()),
        kind: Some("market".to_owned()),
        time_in_force: Some("day".to_owned()),
        ..Request::default()
    };
    let id = attempt!(s.place(&req));
    let body = s
        .orders
        .get(&id)
        .map(|o| render::order(&s, o, false))
        .unwrap_or(Value::Null);
    ok(&s, &body)
}
