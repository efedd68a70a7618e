//! A stateful TastyTrade simulator on 127.0.0.1:0 (feature `sim`). It answers the endpoints the
//! adapter uses with TastyTrade's envelopes, spellings, paging and error bodies, including the
//! OAuth token exchange; a fault queue is consumed before the normal handler, and every request
//! is logged so tests can assert headers, paging and retries.

use crate::wire;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, TimeDelta, Utc};
use reconcile_core::{BrokerSnapshot, OrderStatus, Side};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a scripted fault does to the next matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// 429 with a `Retry-After` of this many seconds.
    TooManyRequests {
        /// Seconds.
        retry_after: u64,
    },
    /// 500 with a support identifier.
    ServerError,
    /// Do the work, then wait this long before answering (longer than the client's timeout: the
    /// broker acted, the answer is lost).
    Delay(Duration),
    /// 200 with a body that is not JSON.
    Malformed,
    /// Headers, then the connection drops before the body (after the work is done).
    DropConnection,
}

/// A body that fails on its first frame: hyper then closes the connection mid-answer.
struct Dropped;

impl http_body::Body for Dropped {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::other("connection dropped"))))
    }
}

/// A fault and the requests it applies to.
#[derive(Debug, Clone)]
pub struct FaultRule {
    /// Only this method (`GET`, `POST`, …), if set.
    pub method: Option<String>,
    /// Only paths containing this, if set.
    pub path_contains: Option<String>,
    /// What happens.
    pub fault: Fault,
}

impl FaultRule {
    /// A fault on the next request whose method and path match.
    pub fn on(method: &str, path_contains: &str, fault: Fault) -> Self {
        Self {
            method: Some(method.to_owned()),
            path_contains: Some(path_contains.to_owned()),
            fault,
        }
    }
}

/// One request as the simulator saw it.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Query string.
    pub query: String,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// Whether it carried a bearer token.
    pub bearer: bool,
    /// The body.
    pub body: String,
}

struct State {
    client_secret: String,
    refresh_token: String,
    tokens: HashMap<String, DateTime<Utc>>,
    issued: u64,
    now: DateTime<Utc>,
    accounts: Vec<String>,
    orders: BTreeMap<u64, wire::Order>,
    next_id: u64,
    positions: Vec<wire::Position>,
    faults: VecDeque<FaultRule>,
    log: Vec<LoggedRequest>,
}

/// The running simulator. Dropping it stops the server.
pub struct Sim {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock(s: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The simulator's raw spelling of a normalized status.
fn raw_status(s: OrderStatus) -> &'static str {
    match s {
        OrderStatus::Pending => "Received",
        OrderStatus::Held => "Contingent",
        OrderStatus::Live | OrderStatus::PartiallyFilled => "Live",
        OrderStatus::PendingCancel => "Cancel Requested",
        OrderStatus::PendingReplace => "Replace Requested",
        OrderStatus::Filled => "Filled",
        OrderStatus::Cancelled | OrderStatus::Replaced => "Cancelled",
        OrderStatus::Expired => "Expired",
        OrderStatus::Rejected => "Rejected",
    }
}

fn terminal(raw: &str) -> bool {
    matches!(
        raw,
        "Filled" | "Cancelled" | "Expired" | "Rejected" | "Removed" | "Partially Removed"
    )
}

impl Sim {
    /// Starts an empty simulator whose clock reads `now`, accepting these OAuth credentials.
    ///
    /// # Errors
    /// An I/O error if no loopback port can be bound.
    pub async fn start(
        now: DateTime<Utc>,
        client_secret: &str,
        refresh_token: &str,
    ) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(State {
            client_secret: client_secret.to_owned(),
            refresh_token: refresh_token.to_owned(),
            tokens: HashMap::new(),
            issued: 0,
            now,
            accounts: Vec::new(),
            orders: BTreeMap::new(),
            next_id: 500_000_000,
            positions: Vec::new(),
            faults: VecDeque::new(),
            log: Vec::new(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let shared = shared.clone();
                async move { handle(&shared, method, uri, headers, body).await }
            },
        );
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "simulator stopped");
            }
        });
        Ok(Self {
            addr,
            state,
            server,
        })
    }

    /// The base URL to give the client.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds an account.
    pub fn add_account(&self, account: &str) {
        let mut s = lock(&self.state);
        if !s.accounts.iter().any(|a| a == account) {
            s.accounts.push(account.to_owned());
        }
    }

    /// Seeds orders and positions from a broker snapshot (ids kept where numeric).
    pub fn seed(&self, snapshot: &BrokerSnapshot) {
        for o in &snapshot.orders {
            self.add_account(o.account.as_str());
            let mut s = lock(&self.state);
            // TastyTrade ids are plain numbers; anything else gets a fresh one.
            let id = match o.id.as_str().parse::<u64>() {
                Ok(id) if id.to_string() == o.id.as_str() => id,
                _ => {
                    s.next_id += 1;
                    s.next_id
                }
            };
            let w = wire::Order {
                id: Some(id.to_string()),
                account_number: o.account.to_string(),
                status: o
                    .raw_status
                    .clone()
                    .unwrap_or_else(|| raw_status(o.status).to_owned()),
                order_type: Some(
                    match o.order_type {
                        Some(reconcile_core::OrderType::Stop) => "Stop",
                        Some(reconcile_core::OrderType::StopLimit) => "Stop Limit",
                        Some(reconcile_core::OrderType::Market) => "Market",
                        _ => "Limit",
                    }
                    .to_owned(),
                ),
                time_in_force: Some("GTC".to_owned()),
                price: o.limit_price,
                price_effect: o.limit_price.map(|_| "Debit".to_owned()),
                stop_trigger: o.stop_price,
                underlying_symbol: Some(o.underlying.clone()),
                external_identifier: o.client_order_id.as_ref().map(ToString::to_string),
                received_at: o.submitted_at,
                updated_at: o.updated_at.or(o.submitted_at),
                replaces_order_id: o.replaces.as_ref().map(ToString::to_string),
                replacing_order_id: o.replaced_by.as_ref().map(ToString::to_string),
                legs: o
                    .legs
                    .iter()
                    .map(|l| wire::Leg {
                        instrument_type: Some(
                            if l.symbol.is_option() {
                                "Equity Option"
                            } else {
                                "Equity"
                            }
                            .to_owned(),
                        ),
                        symbol: l.symbol.as_str().to_owned(),
                        action: crate::mapping::action(l.side).to_owned(),
                        quantity: l.quantity,
                        remaining_quantity: Some(l.quantity - l.filled_quantity),
                    })
                    .collect(),
            };
            s.orders.insert(id, w);
        }
        let mut s = lock(&self.state);
        for p in snapshot.positions.iter().flatten() {
            if !s.accounts.iter().any(|a| a == p.account.as_str()) {
                s.accounts.push(p.account.to_string());
            }
            s.positions.push(wire::Position {
                account_number: p.account.to_string(),
                symbol: p.symbol.as_str().to_owned(),
                underlying_symbol: Some(p.underlying().to_owned()),
                instrument_type: Some(
                    if p.symbol.is_option() {
                        "Equity Option"
                    } else {
                        "Equity"
                    }
                    .to_owned(),
                ),
                quantity: p.quantity.abs(),
                quantity_direction: if p.quantity.is_sign_negative() {
                    "Short"
                } else if p.quantity.is_zero() {
                    "Zero"
                } else {
                    "Long"
                }
                .to_owned(),
                average_open_price: p.average_price,
            });
        }
    }

    /// Fills an order completely and moves the positions its legs close or open.
    pub fn fill(&self, id: &str) {
        let mut s = lock(&self.state);
        let now = s.now;
        let Some(o) = id.parse::<u64>().ok().and_then(|id| s.orders.get_mut(&id)) else {
            return;
        };
        o.status = "Filled".to_owned();
        o.updated_at = Some(now);
        for l in &mut o.legs {
            l.remaining_quantity = Some(Decimal::ZERO);
        }
        let (account, legs) = (o.account_number.clone(), o.legs.clone());
        for l in legs {
            let delta = match crate::mapping::side(&l.action) {
                Some(side) if side.is_buy() => l.quantity,
                _ => -l.quantity,
            };
            match s
                .positions
                .iter_mut()
                .find(|p| p.account_number == account && p.symbol == l.symbol)
            {
                Some(p) => {
                    let signed = if p.quantity_direction == "Short" {
                        -p.quantity
                    } else {
                        p.quantity
                    } + delta;
                    p.quantity = signed.abs();
                    p.quantity_direction = if signed.is_zero() {
                        "Zero"
                    } else if signed.is_sign_negative() {
                        "Short"
                    } else {
                        "Long"
                    }
                    .to_owned();
                }
                None => s.positions.push(wire::Position {
                    account_number: account.clone(),
                    symbol: l.symbol.clone(),
                    underlying_symbol: None,
                    instrument_type: l.instrument_type.clone(),
                    quantity: delta.abs(),
                    quantity_direction: if delta.is_sign_negative() {
                        "Short"
                    } else {
                        "Long"
                    }
                    .to_owned(),
                    average_open_price: None,
                }),
            }
        }
        s.positions.retain(|p| p.quantity_direction != "Zero");
    }

    /// Cancels an order "by hand", outside any reconcile run.
    pub fn cancel_by_hand(&self, id: &str) {
        let mut s = lock(&self.state);
        let now = s.now;
        if let Some(o) = id.parse::<u64>().ok().and_then(|id| s.orders.get_mut(&id)) {
            o.status = "Cancelled".to_owned();
            o.updated_at = Some(now);
        }
    }

    /// Moves the simulator's clock (access tokens expire by it).
    pub fn advance(&self, by: TimeDelta) {
        let mut s = lock(&self.state);
        s.now += by;
    }

    /// Queues a fault for the next matching request.
    pub fn fail_next(&self, rule: FaultRule) {
        lock(&self.state).faults.push_back(rule);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.state).log.clone()
    }

    /// How many access tokens were issued.
    pub fn tokens_issued(&self) -> u64 {
        lock(&self.state).issued
    }

    /// The orders in the simulator's own format, for assertions.
    pub fn orders(&self) -> Vec<wire::Order> {
        lock(&self.state).orders.values().cloned().collect()
    }
}

fn respond(status: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    respond(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

/// An order as TastyTrade writes it: numeric ids, `updated-at` in epoch milliseconds.
fn order_json(o: &wire::Order) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        for k in ["id", "replaces-order-id", "replacing-order-id"] {
            if let Some(n) = m
                .get(k)
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<u64>().ok())
            {
                m.insert(k.to_owned(), json!(n));
            }
        }
        m.insert(
            "updated-at".to_owned(),
            json!(o.updated_at.map_or(0, |t| t.timestamp_millis())),
        );
        m.insert(
            "received-at".to_owned(),
            json!(
                o.received_at
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false))
            ),
        );
    }
    v
}

fn query_map(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%20", " ")))
        .collect()
}

fn page(items: Vec<Value>, q: &HashMap<String, String>, context: &str) -> Response {
    let per_page: usize = q
        .get("per-page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    if per_page == 0 || per_page > 200 {
        return error(
            StatusCode::BAD_REQUEST,
            "validation_error",
            "per-page must be between 1 and 200",
        );
    }
    let offset: usize = q
        .get("page-offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    let chunk: Vec<Value> = items
        .into_iter()
        .skip(offset * per_page)
        .take(per_page)
        .collect();
    respond(
        StatusCode::OK,
        &json!({
            "data": {"items": chunk},
            "context": context,
            "pagination": {"per-page": per_page, "page-offset": offset, "item-offset": offset * per_page,
                           "total-items": total, "total-pages": pages, "current-item-count": chunk.len(),
                           "previous-link": null, "next-link": null, "paging-link-template": null}
        }),
    )
}

async fn handle(
    shared: &Arc<Mutex<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (response, delay) = answer(shared, method, uri, headers, body);
    if let Some(d) = delay {
        // The state has changed already; only the answer is late (and may never arrive).
        tokio::time::sleep(d).await;
    }
    response
}

fn answer(
    shared: &Arc<Mutex<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (Response, Option<Duration>) {
    let (mut delay, mut dropped) = (None, false);
    let response = serve(shared, method, uri, headers, body, &mut delay, &mut dropped);
    if dropped {
        // The work is done; the answer dies after its headers.
        let broken = Response::builder()
            .status(StatusCode::OK)
            .header("Content-Length", "4096")
            .body(Body::new(Dropped))
            .unwrap_or_default();
        return (broken, delay);
    }
    (response, delay)
}

fn serve(
    shared: &Arc<Mutex<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    delay: &mut Option<Duration>,
    dropped: &mut bool,
) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or("").to_owned();
    let auth = headers
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .map(ToOwned::to_owned);
    let user_agent = headers
        .get("User-Agent")
        .and_then(|v| v.to_str().ok())
        .map(ToOwned::to_owned);
    let fault = {
        let mut s = lock(shared);
        s.log.push(LoggedRequest {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            user_agent: user_agent.clone(),
            bearer: auth.as_deref().is_some_and(|a| a.starts_with("Bearer ")),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let i = s.faults.iter().position(|r| {
            r.method.as_deref().is_none_or(|m| m == method.as_str())
                && r.path_contains.as_deref().is_none_or(|p| path.contains(p))
        });
        i.and_then(|i| s.faults.remove(i))
    };
    if user_agent.as_deref().is_none_or(|ua| !ua.contains('/')) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_user_agent",
            "a User-Agent of the form product/version is required",
        );
    }
    if let Some(rule) = fault {
        match rule.fault {
            Fault::TooManyRequests { retry_after } => {
                return Response::builder()
                    .status(StatusCode::TOO_MANY_REQUESTS)
                    .header("Retry-After", retry_after.to_string())
                    .body(Body::from(
                        "{\"error\":{\"code\":\"too_many_requests\",\"message\":\"slow down\"}}",
                    ))
                    .unwrap_or_default();
            }
            Fault::ServerError => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "something went wrong; support id sim-1",
                );
            }
            Fault::Malformed => {
                return Response::builder()
                    .status(StatusCode::OK)
                    .body(Body::from("{\"data\": {\"items\": ["))
                    .unwrap_or_default();
            }
            Fault::Delay(d) => *delay = Some(d),
            Fault::DropConnection => *dropped = true,
        }
    }
    let mut s = lock(shared);
    if path == "/oauth/token" && method == Method::POST {
        let req: Result<wire::TokenRequest, _> = serde_json::from_slice(&body);
        return match req {
            Ok(r)
                if r.grant_type == "refresh_token"
                    && r.refresh_token == s.refresh_token
                    && r.client_secret == s.client_secret =>
            {
                s.issued += 1;
                let token = format!("sim-access-{}", s.issued);
                let expiry = s.now + TimeDelta::seconds(900);
                s.tokens.insert(token.clone(), expiry);
                respond(
                    StatusCode::OK,
                    &json!({"access_token": token, "token_type": "Bearer", "expires_in": 900}),
                )
            }
            _ => respond(
                StatusCode::UNAUTHORIZED,
                &json!({"error_code": "invalid_grant", "error_description": "Invalid JWT"}),
            ),
        };
    }
    let now = s.now;
    let token_ok = auth
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .and_then(|t| s.tokens.get(t))
        .is_some_and(|exp| *exp > now);
    if !token_ok {
        return error(
            StatusCode::UNAUTHORIZED,
            "token_invalid",
            "This token is invalid or has expired",
        );
    }
    let q = query_map(&query);
    let seg: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), seg.as_slice()) {
        ("GET", ["customers", "me", "accounts"]) => {
            let items: Vec<Value> = s
                .accounts
                .iter()
                .map(|a| json!({"account": {"account-number": a, "nickname": "sim", "is-closed": false, "account-type-name": "Individual", "margin-or-cash": "Margin"}, "authority-level": "owner"}))
                .collect();
            respond(
                StatusCode::OK,
                &json!({"data": {"items": items}, "context": path}),
            )
        }
        ("GET", ["accounts", acct, "orders", "live"]) => {
            let day = now - TimeDelta::hours(24);
            let items = s
                .orders
                .values()
                .filter(|o| {
                    o.account_number == *acct
                        && (!terminal(&o.status) || o.updated_at.is_some_and(|u| u >= day))
                })
                .map(order_json)
                .collect();
            page(items, &q, &path)
        }
        ("GET", ["accounts", acct, "orders"]) => {
            let Some(start) = q
                .get("start-date")
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "validation_error",
                    "start-date or start-at is required",
                );
            };
            let items = s
                .orders
                .values()
                .filter(|o| {
                    o.account_number == *acct
                        && o.received_at.is_none_or(|r| r.date_naive() >= start)
                })
                .map(order_json)
                .collect();
            page(items, &q, &path)
        }
        ("GET", ["accounts", acct, "orders", id]) => {
            match id.parse::<u64>().ok().and_then(|id| s.orders.get(&id)) {
                Some(o) if o.account_number == *acct => respond(
                    StatusCode::OK,
                    &json!({"data": order_json(o), "context": path}),
                ),
                _ => error(StatusCode::NOT_FOUND, "record_not_found", "order not found"),
            }
        }
        ("DELETE", ["accounts", acct, "orders", id]) => {
            let Some(o) = id
                .parse::<u64>()
                .ok()
                .and_then(|id| s.orders.get_mut(&id))
                .filter(|o| o.account_number == *acct)
            else {
                return error(StatusCode::NOT_FOUND, "record_not_found", "order not found");
            };
            if terminal(&o.status) {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "cannot_update_order",
                    "the order could not be cancelled",
                );
            }
            o.status = "Cancel Requested".to_owned();
            o.updated_at = Some(now);
            let answer = order_json(o);
            // The exchange confirms at once.
            o.status = "Cancelled".to_owned();
            respond(StatusCode::OK, &json!({"data": answer, "context": path}))
        }
        ("POST", ["accounts", acct, "orders"]) => {
            let acct = (*acct).to_owned();
            place(&mut s, &acct, &body, None, &path)
        }
        ("PUT", ["accounts", acct, "orders", id]) => {
            let acct = (*acct).to_owned();
            let Some(old) = id
                .parse::<u64>()
                .ok()
                .filter(|id| s.orders.get(id).is_some_and(|o| o.account_number == acct))
            else {
                return error(StatusCode::NOT_FOUND, "record_not_found", "order not found");
            };
            if s.orders.get(&old).is_some_and(|o| terminal(&o.status)) {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "cannot_update_order",
                    "the order could not be replaced",
                );
            }
            place(&mut s, &acct, &body, Some(old), &path)
        }
        ("GET", ["accounts", acct, "positions"]) => {
            let items: Vec<Value> = s
                .positions
                .iter()
                .filter(|p| p.account_number == *acct)
                .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
                .collect();
            respond(
                StatusCode::OK,
                &json!({"data": {"items": items}, "context": path}),
            )
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
    }
}

fn place(s: &mut State, acct: &str, body: &[u8], replaces: Option<u64>, path: &str) -> Response {
    let req: wire::NewOrder = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_json", &e.to_string()),
    };
    let strict = req
        .advanced_instructions
        .as_ref()
        .is_some_and(|a| a.strict_position_effect_validation);
    for l in &req.legs {
        let Some(side) = crate::mapping::side(&l.action) else {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
                "unknown action",
            );
        };
        let closes = matches!(side, Side::BuyToClose | Side::SellToClose);
        if strict && closes && replaces.is_none() {
            let held = s
                .positions
                .iter()
                .find(|p| p.account_number == acct && p.symbol == l.symbol);
            let ok = held.is_some_and(|p| {
                let short = p.quantity_direction == "Short";
                (side == Side::BuyToClose) == short && p.quantity >= l.quantity
            });
            if !ok {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "preflight_check_failure",
                    "closing order with no position to close",
                );
            }
        }
    }
    s.next_id += 1;
    let id = s.next_id;
    let now = s.now;
    let underlying = req.legs.first().map(|l| {
        reconcile_core::Symbol::new(&l.symbol)
            .underlying()
            .to_owned()
    });
    let order = wire::Order {
        id: Some(id.to_string()),
        account_number: acct.to_owned(),
        status: "Live".to_owned(),
        order_type: Some(req.order_type.clone()),
        time_in_force: Some(req.time_in_force.clone()),
        price: req.price.as_deref().and_then(|p| p.parse().ok()),
        price_effect: req.price_effect.clone(),
        stop_trigger: req.stop_trigger.as_deref().and_then(|p| p.parse().ok()),
        underlying_symbol: underlying,
        external_identifier: req.external_identifier.clone(),
        received_at: Some(now),
        updated_at: Some(now),
        replaces_order_id: replaces.map(|r| r.to_string()),
        replacing_order_id: None,
        legs: req
            .legs
            .iter()
            .map(|l| wire::Leg {
                remaining_quantity: Some(l.quantity),
                ..l.clone()
            })
            .collect(),
    };
    if let Some(old) = replaces.and_then(|r| s.orders.get_mut(&r)) {
        old.status = "Cancelled".to_owned();
        old.replacing_order_id = Some(id.to_string());
        old.updated_at = Some(now);
    }
    let answer = order_json(&order);
    s.orders.insert(id, order);
    if replaces.is_some() {
        respond(StatusCode::OK, &json!({"data": answer, "context": path}))
    } else {
        respond(
            StatusCode::CREATED,
            &json!({"data": {"order": answer, "warnings": [], "buying-power-effect": {}, "fee-calculation": {}}, "context": path}),
        )
    }
}
