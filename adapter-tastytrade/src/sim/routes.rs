//! The endpoints, as axum routes. Every request but the token exchange needs a bearer token
//! (refused with 401 once the simulator's clock passes its expiry), a `User-Agent` of the form
//! `product/version` (401 without), and an `Accept-Version` no older than the oldest version
//! served (406). Confirmations earlier requests asked for are applied first.

// A refusal is an axum `Response` all the way to the handler's answer; boxing it would only add
// an allocation to a test server.
#![allow(clippy::result_large_err)]

use super::render;
use super::state::{self, Refusal, State, VERSIONS};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State as Shared};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

type World = Arc<Mutex<State>>;

pub(super) fn lock(w: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    w.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(super) fn router(world: World) -> Router {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/customers/me/accounts", get(accounts))
        .route("/customers/me/accounts/{account}", get(one_account))
        .route("/accounts/{account}/orders/live", get(live))
        .route("/accounts/{account}/orders", get(search).post(place))
        .route("/accounts/{account}/orders/dry-run", post(dry_run))
        .route(
            "/accounts/{account}/orders/{id}",
            get(one_order).put(replace).patch(replace).delete(cancel),
        )
        .route("/accounts/{account}/positions", get(positions))
        .fallback(not_found)
        .with_state(world)
}

fn respond(status: u16, body: &Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("Content-Type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

fn refused(r: &Refusal) -> Response {
    respond(r.status, &render::refusal(r))
}

fn data(value: Value, context: &str) -> Response {
    respond(200, &json!({"data": value, "context": context}))
}

/// The API version a request is served by.
fn version(headers: &HeaderMap) -> Result<&'static str, Response> {
    let Some(asked) = headers.get("Accept-Version").and_then(|v| v.to_str().ok()) else {
        return Ok(VERSIONS[0]);
    };
    let asked = asked.trim();
    let valid = asked.len() == 8 && asked.bytes().all(|b| b.is_ascii_digit());
    match VERSIONS.iter().rev().find(|v| valid && **v <= asked) {
        Some(v) => Ok(v),
        None => Err(respond(
            406,
            &json!({"error": {"code": 406, "message": format!("no API version serves Accept-Version {asked:?}; the oldest is {}", VERSIONS[0])}}),
        )),
    }
}

fn user_agent_ok(headers: &HeaderMap) -> Result<(), Response> {
    let ok = headers
        .get("User-Agent")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.contains('/'));
    if ok {
        Ok(())
    } else {
        Err(refused(&Refusal::new(
            401,
            "invalid_user_agent",
            "a User-Agent of the form product/version is required",
        )))
    }
}

/// Checks the request's headers; returns the world, confirmations applied, and the version.
fn enter<'w>(
    world: &'w World,
    headers: &HeaderMap,
) -> Result<(std::sync::MutexGuard<'w, State>, &'static str), Response> {
    user_agent_ok(headers)?;
    let mut s = lock(world);
    s.confirm();
    let now = s.now;
    let token_ok = headers
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.strip_prefix("Bearer "))
        .and_then(|t| s.tokens.get(t))
        .is_some_and(|exp| *exp > now);
    if !token_ok {
        return Err(refused(&Refusal::new(
            401,
            "token_invalid",
            "This token is invalid or has expired",
        )));
    }
    let v = version(headers)?;
    Ok((s, v))
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

/// Query pairs, with `key[]` lists kept in order.
fn query(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn one<'q>(q: &'q [(String, String)], key: &str) -> Option<&'q str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn all<'q>(q: &'q [(String, String)], key: &str) -> Vec<&'q str> {
    q.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// One page of `items`: `per-page` (default 100, at most 200) from `page-offset` (0-based).
/// One page of `items`, of which only the page's own are rendered: rendering every order for
/// every page made a dry run over 20,000 orders quadratic.
fn page<T>(
    items: Vec<T>,
    q: &[(String, String)],
    context: &str,
    render: impl Fn(T) -> Value,
) -> Response {
    let per_page = match one(q, "per-page").map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) if (1..=200).contains(&n) => n,
        Some(_) => {
            return refused(&Refusal::new(
                400,
                "validation_error",
                "per-page must be between 1 and 200",
            ));
        }
    };
    let offset = match one(q, "page-offset").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return refused(&Refusal::new(
                400,
                "validation_error",
                "page-offset must be a number",
            ));
        }
    };
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    let chunk: Vec<Value> = items
        .into_iter()
        .skip(offset.saturating_mul(per_page))
        .take(per_page)
        .map(render)
        .collect();
    respond(
        200,
        &json!({
            "data": {"items": chunk},
            "context": context,
            "pagination": {"per-page": per_page, "page-offset": offset, "item-offset": offset * per_page,
                           "total-items": total, "total-pages": pages, "current-item-count": chunk.len(),
                           "previous-link": null, "next-link": null, "paging-link-template": null}
        }),
    )
}

async fn token(Shared(world): Shared<World>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = user_agent_ok(&headers) {
        return r;
    }
    let mut s = lock(&world);
    s.confirm();
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |k: &str| req.get(k).and_then(Value::as_str).unwrap_or("");
    if field("grant_type") != "refresh_token"
        || field("refresh_token") != s.refresh_token
        || field("client_secret") != s.client_secret
    {
        return respond(
            401,
            &json!({"error_code": "invalid_grant", "error_description": "Invalid JWT"}),
        );
    }
    s.issued += 1;
    let token = format!("sim-access-{}", s.issued);
    let expiry = s.now + TimeDelta::seconds(900);
    s.tokens.insert(token.clone(), expiry);
    respond(
        200,
        &json!({"access_token": token, "token_type": "Bearer", "expires_in": 900}),
    )
}

async fn accounts(Shared(world): Shared<World>, headers: HeaderMap) -> Response {
    let (s, _) = enter!(world, headers);
    let items: Vec<Value> = s
        .accounts
        .iter()
        .map(|a| json!({"account": render::account(a), "authority-level": "owner"}))
        .collect();
    data(json!({"items": items}), "/customers/me/accounts")
}

async fn one_account(
    Shared(world): Shared<World>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (s, _) = enter!(world, headers);
    let a = attempt!(s.account(&account));
    data(
        render::account(a),
        &format!("/customers/me/accounts/{account}"),
    )
}

fn parse_date(v: &str, what: &str) -> Result<NaiveDate, Refusal> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
        Refusal::new(
            400,
            "validation_error",
            format!("{what} must be YYYY-MM-DD"),
        )
    })
}

fn parse_time(v: &str, what: &str) -> Result<DateTime<Utc>, Refusal> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S").map(|t| t.and_utc())
        })
        .map_err(|_| {
            Refusal::new(
                400,
                "validation_error",
                format!("{what} must be a date-time"),
            )
        })
}

fn filtered<'o>(orders: Vec<&'o state::Order>, q: &[(String, String)]) -> Vec<&'o state::Order> {
    let statuses = all(q, "status[]");
    let underlying = one(q, "underlying-symbol");
    orders
        .into_iter()
        .filter(|o| statuses.is_empty() || statuses.contains(&o.status.as_str()))
        .filter(|o| underlying.is_none_or(|u| o.underlying == u))
        .collect()
}

async fn live(
    Shared(world): Shared<World>,
    Path(account): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (s, version) = enter!(world, headers);
    attempt!(s.account(&account));
    let q = query(raw.as_deref());
    let mut orders = s.live(&account);
    if version >= state::SEARCH_NEEDS_START {
        orders = filtered(orders, &q);
    }
    page(
        orders,
        &q,
        &format!("/accounts/{account}/orders/live"),
        |o| render::order(o, false),
    )
}

async fn search(
    Shared(world): Shared<World>,
    Path(account): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (s, version) = enter!(world, headers);
    attempt!(s.account(&account));
    let q = query(raw.as_deref());
    let start_date = attempt!(
        one(&q, "start-date")
            .map(|d| parse_date(d, "start-date"))
            .transpose()
    );
    let end_date = attempt!(
        one(&q, "end-date")
            .map(|d| parse_date(d, "end-date"))
            .transpose()
    );
    let start_at = attempt!(
        one(&q, "start-at")
            .map(|d| parse_time(d, "start-at"))
            .transpose()
    );
    let end_at = attempt!(
        one(&q, "end-at")
            .map(|d| parse_time(d, "end-at"))
            .transpose()
    );
    if version >= state::SEARCH_NEEDS_START && start_date.is_none() && start_at.is_none() {
        return refused(&Refusal::new(
            400,
            "validation_error",
            "start-date or start-at is required",
        ));
    }
    let ascending = match one(&q, "sort") {
        None | Some("Desc") => false,
        Some("Asc") => true,
        Some(other) => {
            return refused(&Refusal::new(
                400,
                "validation_error",
                format!("sort must be Asc or Desc, not {other:?}"),
            ));
        }
    };
    let orders: Vec<&state::Order> = s
        .orders
        .values()
        .filter(|o| o.account == account)
        .filter(|o| {
            let day = o.received_at.date_naive();
            start_date.is_none_or(|d| day >= d)
                && end_date.is_none_or(|d| day <= d)
                && start_at.is_none_or(|t| o.received_at >= t)
                && end_at.is_none_or(|t| o.received_at <= t)
        })
        .collect();
    let mut orders = filtered(orders, &q);
    orders.sort_by_key(|a| (a.received_at, a.id));
    if !ascending {
        orders.reverse();
    }
    page(orders, &q, &format!("/accounts/{account}/orders"), |o| {
        render::order(o, false)
    })
}

async fn one_order(
    Shared(world): Shared<World>,
    Path((account, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (s, _) = enter!(world, headers);
    attempt!(s.account(&account));
    let o = attempt!(s.order(&account, &id));
    data(
        render::order(o, false),
        &format!("/accounts/{account}/orders/{id}"),
    )
}

async fn place(
    Shared(world): Shared<World>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut s, _) = enter!(world, headers);
    let req = attempt!(render::request(&body));
    let o = attempt!(s.place(&account, &req));
    respond(
        201,
        &json!({"data": render::placement(&o, false, &[]), "context": format!("/accounts/{account}/orders")}),
    )
}

async fn dry_run(
    Shared(world): Shared<World>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (s, _) = enter!(world, headers);
    let req = attempt!(render::request(&body));
    let (o, warnings) = attempt!(s.dry_run(&account, &req));
    data(
        render::placement(&o, true, &warnings),
        &format!("/accounts/{account}/orders/dry-run"),
    )
}

async fn replace(
    Shared(world): Shared<World>,
    Path((account, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut s, _) = enter!(world, headers);
    attempt!(s.account(&account));
    let req = attempt!(render::request(&body));
    let new = attempt!(s.replace(&account, &id, &req));
    data(
        render::order(&new, false),
        &format!("/accounts/{account}/orders/{id}"),
    )
}

async fn cancel(
    Shared(world): Shared<World>,
    Path((account, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (mut s, _) = enter!(world, headers);
    attempt!(s.account(&account));
    let o = attempt!(s.cancel(&account, &id));
    data(
        render::order(&o, false),
        &format!("/accounts/{account}/orders/{id}"),
    )
}

async fn positions(
    Shared(world): Shared<World>,
    Path(account): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (s, _) = enter!(world, headers);
    attempt!(s.account(&account));
    let q = query(raw.as_deref());
    let underlyings = all(&q, "underlying-symbol[]");
    let symbol = one(&q, "symbol");
    let closed = one(&q, "include-closed-positions") == Some("true");
    let items: Vec<Value> = s
        .positions
        .iter()
        .filter(|p| p.account == account)
        .filter(|p| closed || !p.quantity.is_zero())
        .filter(|p| underlyings.is_empty() || underlyings.contains(&p.underlying.as_str()))
        .filter(|p| symbol.is_none_or(|x| p.symbol == x))
        .map(render::position)
        .collect();
    data(
        json!({"items": items}),
        &format!("/accounts/{account}/positions"),
    )
}

async fn not_found() -> Response {
    refused(&Refusal::new(404, "not_found", "no such endpoint"))
}
