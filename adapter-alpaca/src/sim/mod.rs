//! A stateful Alpaca simulator on loopback (feature `sim`), for tests, the demo and
//! `reconcile sim alpaca`. It speaks trading API v2 as its documentation describes it — key
//! headers or OAuth, decimals as strings, `nested` legs, exclusive `after`/`until` bounds,
//! eight-digit error codes, `X-Ratelimit-*` headers and 429 over 200 requests a minute — and
//! applies its rules: client order ids are unique forever, closing orders hold their shares
//! (403 with the held quantities), OCO orders are exit-only and count once, cancels and
//! replacements are confirmed after the request that asked for them, new orders are
//! `pending_new` until then. Its JSON is its own (nothing is shared with the adapter's `wire` or
//! `mapping`). A fault queue and a request log come from `simkit`.

mod render;
mod routes;
mod state;

pub use simkit::{Fault, FaultRule, LoggedRequest};
pub use state::{Order, Position, Refusal};

use chrono::{DateTime, TimeDelta, Utc};
use reconcile_core::{BrokerSnapshot, OrderStatus, OrderType, Side, TimeInForce};
use routes::lock;
use rust_decimal::Decimal;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

struct Bodies;

impl simkit::ErrorBodies for Bodies {
    fn too_many_requests(&self) -> String {
        json!({"code": 42_910_000, "message": "rate limit exceeded"}).to_string()
    }
    fn server_error(&self) -> String {
        json!({"code": 50_010_000, "message": "internal server error occurred"}).to_string()
    }
}

/// The running simulator. Dropping it stops the server.
pub struct Sim {
    server: simkit::Server,
    kit: Arc<simkit::Kit>,
    world: Arc<Mutex<state::State>>,
}

/// Alpaca's spelling of a normalized status (for seeding).
fn raw_status(s: OrderStatus) -> &'static str {
    match s {
        OrderStatus::Pending => "pending_new",
        OrderStatus::Held => "held",
        OrderStatus::Live => "new",
        OrderStatus::PartiallyFilled => "partially_filled",
        OrderStatus::PendingCancel => "pending_cancel",
        OrderStatus::PendingReplace => "pending_replace",
        OrderStatus::Filled => "filled",
        OrderStatus::Cancelled => "canceled",
        OrderStatus::Replaced => "replaced",
        OrderStatus::Expired => "expired",
        OrderStatus::Rejected => "rejected",
    }
}

fn side(s: Side) -> (&'static str, Option<&'static str>) {
    match s {
        Side::Buy => ("buy", None),
        Side::Sell => ("sell", None),
        Side::BuyToOpen => ("buy", Some("buy_to_open")),
        Side::BuyToClose => ("buy", Some("buy_to_close")),
        Side::SellToOpen => ("sell", Some("sell_to_open")),
        Side::SellToClose => ("sell", Some("sell_to_close")),
    }
}

fn kind(t: Option<OrderType>) -> &'static str {
    match t {
        Some(OrderType::Market) => "market",
        Some(OrderType::Stop) => "stop",
        Some(OrderType::StopLimit) => "stop_limit",
        Some(OrderType::TrailingStop) => "trailing_stop",
        _ => "limit",
    }
}

fn time_in_force(t: Option<TimeInForce>) -> &'static str {
    match t {
        Some(TimeInForce::Day) => "day",
        Some(TimeInForce::Ioc) => "ioc",
        Some(TimeInForce::Fok) => "fok",
        Some(TimeInForce::Opg) => "opg",
        Some(TimeInForce::Cls) => "cls",
        _ => "gtc",
    }
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl Sim {
    /// Starts an empty simulator on a free loopback port whose clock reads `now`, accepting
    /// this key pair.
    ///
    /// # Errors
    /// An I/O error if no loopback port can be bound.
    pub async fn start(
        now: DateTime<Utc>,
        key_id: &str,
        secret_key: &str,
    ) -> std::io::Result<Self> {
        Self::start_on(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            now,
            key_id,
            secret_key,
        )
        .await
    }

    /// Starts an empty simulator on `listen`.
    ///
    /// # Errors
    /// An I/O error if the address cannot be bound.
    pub async fn start_on(
        listen: SocketAddr,
        now: DateTime<Utc>,
        key_id: &str,
        secret_key: &str,
    ) -> std::io::Result<Self> {
        let world = Arc::new(Mutex::new(state::State::new(now, key_id, secret_key)));
        let kit = simkit::Kit::new(Bodies);
        let server = simkit::serve(routes::router(world.clone()), kit.clone(), listen).await?;
        Ok(Self { server, kit, world })
    }

    /// The base URL to give a client (it serves `/v2/…`).
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Serves until the server stops.
    pub async fn wait(self) {
        self.server.wait().await;
    }

    /// The account number the simulator trades.
    pub fn account_number(&self) -> String {
        lock(&self.world).account_number.clone()
    }

    /// Sets the account number (before any client reads it).
    pub fn set_account_number(&self, number: &str) {
        number.clone_into(&mut lock(&self.world).account_number);
    }

    /// Also accepts this OAuth token as `Authorization: Bearer`.
    pub fn accept_oauth_token(&self, token: &str) {
        lock(&self.world).oauth_token = Some(token.to_owned());
    }

    /// Requests allowed per rolling minute (`None`: no limit). Default 200.
    pub fn set_rate_limit(&self, per_minute: Option<u32>) {
        let mut s = lock(&self.world);
        s.rate_limit = per_minute;
        s.recent.clear();
    }

    /// Seeds orders and positions from a broker snapshot (of one account, which becomes the
    /// simulator's). UUID ids
    /// are kept (others get fresh ones); a multi-leg order becomes an `mleg` parent with one
    /// child per leg; members of an OCO group become the children of its parent (`oco` when
    /// they close the same way, `bracket` when the parent opens); statuses are spelled as
    /// Alpaca spells them (the raw status when given); fills are kept.
    pub fn seed(&self, snapshot: &BrokerSnapshot) {
        let mut s = lock(&self.world);
        // A snapshot of one account names the simulator's.
        let accounts: std::collections::BTreeSet<&str> = snapshot
            .orders
            .iter()
            .map(|o| o.account.as_str())
            .chain(
                snapshot
                    .positions
                    .iter()
                    .flatten()
                    .map(|p| p.account.as_str()),
            )
            .collect();
        if let [only] = accounts.iter().collect::<Vec<_>>().as_slice() {
            (**only).clone_into(&mut s.account_number);
        }
        let mut ids: BTreeMap<String, String> = BTreeMap::new();
        for o in &snapshot.orders {
            let id = if is_uuid(o.id.as_str()) && !s.orders.contains_key(o.id.as_str()) {
                o.id.as_str().to_owned()
            } else {
                s.uuid()
            };
            ids.insert(o.id.as_str().to_owned(), id);
        }
        let mapped = |k: &str, ids: &BTreeMap<String, String>| ids.get(k).cloned();
        for o in &snapshot.orders {
            let id = ids[o.id.as_str()].clone();
            let status = o
                .raw_status
                .clone()
                .unwrap_or_else(|| raw_status(o.status).to_owned());
            let submitted = o.submitted_at.unwrap_or(snapshot.as_of);
            let updated = o.updated_at.or(o.submitted_at).unwrap_or(snapshot.as_of);
            let parent = o
                .oco_group
                .as_ref()
                .filter(|g| *g != &o.id)
                .and_then(|g| mapped(g.as_str(), &ids));
            let filled =
                o.legs.iter().all(|l| l.filled_quantity == l.quantity) && status == "filled";
            let base = |symbol: &str, qty: Decimal, filled_qty: Decimal, sd: Side| {
                let (side, intent) = side(sd);
                Order {
                    id: String::new(),
                    client_order_id: String::new(),
                    created_at: submitted,
                    updated_at: updated,
                    submitted_at: submitted,
                    filled_at: o.filled_at.or_else(|| filled.then_some(updated)),
                    canceled_at: (status == "canceled").then_some(updated),
                    replaced_at: (status == "replaced").then_some(updated),
                    replaced_by: o
                        .replaced_by
                        .as_ref()
                        .and_then(|r| mapped(r.as_str(), &ids)),
                    replaces: o.replaces.as_ref().and_then(|r| mapped(r.as_str(), &ids)),
                    symbol: symbol.replace(' ', ""),
                    asset_class: if state::is_option(symbol) {
                        "us_option"
                    } else {
                        "us_equity"
                    }
                    .to_owned(),
                    qty,
                    filled_qty,
                    filled_avg_price: (filled_qty > Decimal::ZERO)
                        .then(|| o.filled_average_price.or(o.limit_price).or(o.stop_price))
                        .flatten(),
                    order_class: String::new(),
                    kind: kind(o.order_type).to_owned(),
                    side: side.to_owned(),
                    position_intent: intent.map(str::to_owned),
                    time_in_force: time_in_force(o.time_in_force).to_owned(),
                    limit_price: o.limit_price,
                    stop_price: o.stop_price,
                    status: status.clone(),
                    parent: parent.clone(),
                    ratio_qty: None,
                }
            };
            let cid = o
                .client_order_id
                .as_ref()
                .map_or_else(|| s.uuid(), ToString::to_string);
            if o.legs.len() > 1 {
                let units = o
                    .legs
                    .iter()
                    .map(|l| l.quantity)
                    .min()
                    .unwrap_or(Decimal::ONE);
                let mut p = base(
                    "",
                    units,
                    if filled { units } else { Decimal::ZERO },
                    Side::Buy,
                );
                p.id.clone_from(&id);
                p.client_order_id = cid;
                p.asset_class = String::new();
                p.side = String::new();
                p.position_intent = None;
                p.order_class = "mleg".to_owned();
                for l in &o.legs {
                    let mut c = base(l.symbol.as_str(), l.quantity, l.filled_quantity, l.side);
                    c.id = s.uuid();
                    c.client_order_id = s.uuid();
                    c.order_class = "mleg".to_owned();
                    c.kind = String::new();
                    c.parent = Some(id.clone());
                    c.ratio_qty = Some((l.quantity / units).normalize());
                    c.limit_price = None;
                    s.used_client_ids.insert(c.client_order_id.clone());
                    s.orders.insert(c.id.clone(), c);
                }
                s.used_client_ids.insert(p.client_order_id.clone());
                s.orders.insert(id, p);
            } else if let Some(l) = o.legs.first() {
                let mut x = base(l.symbol.as_str(), l.quantity, l.filled_quantity, l.side);
                x.id.clone_from(&id);
                x.client_order_id = cid;
                s.used_client_ids.insert(x.client_order_id.clone());
                s.orders.insert(id, x);
            }
        }
        // Name each group's class now that parents and children are in.
        let groups: Vec<(String, String)> = s
            .orders
            .values()
            .filter_map(|o| o.parent.clone().map(|p| (p, o.side.clone())))
            .collect();
        for (parent, child_side) in groups {
            let Some(p) = s.orders.get(&parent).filter(|p| p.order_class != "mleg") else {
                continue;
            };
            let class = if p.side == child_side {
                "oco"
            } else {
                "bracket"
            };
            let class = class.to_owned();
            for o in s.orders.values_mut() {
                if o.id == parent || o.parent.as_deref() == Some(parent.as_str()) {
                    o.order_class.clone_from(&class);
                }
            }
        }
        for p in snapshot.positions.iter().flatten() {
            let price = p.average_price.unwrap_or(Decimal::ONE);
            let symbol = p.symbol.as_str().replace(' ', "");
            s.positions.push(Position {
                asset_class: if state::is_option(&symbol) {
                    "us_option"
                } else {
                    "us_equity"
                }
                .to_owned(),
                symbol,
                qty: p.quantity,
                avg_entry_price: price,
                current_price: price,
            });
        }
    }

    /// Sets the price a position is marked (and market orders fill) at.
    pub fn set_price(&self, symbol: &str, price: Decimal) {
        let mut s = lock(&self.world);
        if let Some(p) = s.positions.iter_mut().find(|p| p.symbol == symbol) {
            p.current_price = price;
        }
    }

    /// Fills an order completely and moves the position; a filled exit cancels the rest of its
    /// group.
    pub fn fill(&self, id: &str) {
        lock(&self.world).fill(id);
    }

    /// Cancels an order (and its group) "by hand", outside any client.
    pub fn cancel_by_hand(&self, id: &str) {
        lock(&self.world).cancel_by_hand(id);
    }

    /// Keeps new orders `pending_new`, cancels `pending_cancel` and replaced orders
    /// `pending_replace` until released.
    pub fn hold_confirmations(&self, hold: bool) {
        lock(&self.world).hold_confirmations = hold;
    }

    /// Moves the simulator's clock.
    pub fn advance(&self, by: TimeDelta) {
        let mut s = lock(&self.world);
        match &mut s.wall_clock {
            Some(shift) => *shift += by,
            None => s.now += by,
        }
        s.tick();
    }

    /// Makes the clock follow the wall clock from now on; by default it stands still where
    /// `start` set it (orders placed in one run then all share one submit time).
    pub fn follow_wall_clock(&self) {
        let mut s = lock(&self.world);
        s.wall_clock = Some(TimeDelta::zero());
        s.tick();
    }

    /// Queues a fault for the next matching request.
    pub fn fail_next(&self, rule: FaultRule) {
        self.kit.fail_next(rule);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.kit.requests()
    }

    /// The simulator's orders (children included), by id.
    pub fn orders(&self) -> Vec<Order> {
        lock(&self.world).orders.values().cloned().collect()
    }

    /// The simulator's positions.
    pub fn positions(&self) -> Vec<Position> {
        lock(&self.world).positions.clone()
    }
}
