//! A stateful TastyTrade simulator on loopback (feature `sim`), for tests, the demo and
//! `reconcile sim tastytrade`. It speaks the API as its documentation describes it — envelopes,
//! spellings, paging, error bodies, OAuth, `Accept-Version` — and applies its rules: closing
//! orders without a position turn into opening ones unless the strict flag refuses them,
//! cancels and replacements are confirmed after the request that asked for them, replacements
//! keep the original's legs. Its JSON is its own (nothing is shared with the adapter's `wire`
//! or `mapping`), so the adapter's tests compare two readings of the API. A fault queue and a
//! request log come from `simkit`.

mod render;
mod routes;
mod state;

pub use simkit::{Fault, FaultRule, LoggedRequest};
pub use state::{Fill, Leg, Order, Position, Refusal};

use chrono::{DateTime, TimeDelta, Utc};
use reconcile_core::{BrokerSnapshot, OrderStatus, OrderType, Side, TimeInForce};
use routes::lock;
use rust_decimal::Decimal;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

struct Bodies;

impl simkit::ErrorBodies for Bodies {
    fn too_many_requests(&self) -> String {
        json!({"error": {"code": "too_many_requests", "message": "Too many requests; slow down"}})
            .to_string()
    }
    fn server_error(&self) -> String {
        json!({"error": {"code": "internal_error", "message": "Something went wrong. Support id: sim-1"}})
            .to_string()
    }
}

/// The running simulator. Dropping it stops the server.
pub struct Sim {
    server: simkit::Server,
    kit: Arc<simkit::Kit>,
    world: Arc<Mutex<state::State>>,
}

/// TastyTrade's spelling of a normalized status (for seeding).
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

fn action(side: Side) -> &'static str {
    match side {
        Side::BuyToOpen => "Buy to Open",
        Side::BuyToClose => "Buy to Close",
        Side::SellToOpen => "Sell to Open",
        Side::SellToClose => "Sell to Close",
        Side::Buy => "Buy",
        Side::Sell => "Sell",
    }
}

fn order_type(t: Option<OrderType>) -> &'static str {
    match t {
        Some(OrderType::Market) => "Market",
        Some(OrderType::Stop) => "Stop",
        Some(OrderType::StopLimit) => "Stop Limit",
        _ => "Limit",
    }
}

fn time_in_force(t: Option<TimeInForce>) -> &'static str {
    match t {
        Some(TimeInForce::Day | TimeInForce::Opg | TimeInForce::Cls) => "Day",
        Some(TimeInForce::Gtd) => "GTD",
        Some(TimeInForce::Ioc | TimeInForce::Fok) => "IOC",
        _ => "GTC",
    }
}

impl Sim {
    /// Starts an empty simulator on a free loopback port whose clock reads `now`, accepting
    /// these OAuth credentials.
    ///
    /// # Errors
    /// An I/O error if no loopback port can be bound.
    pub async fn start(
        now: DateTime<Utc>,
        client_secret: &str,
        refresh_token: &str,
    ) -> std::io::Result<Self> {
        Self::start_on(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            now,
            client_secret,
            refresh_token,
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
        client_secret: &str,
        refresh_token: &str,
    ) -> std::io::Result<Self> {
        let world = Arc::new(Mutex::new(state::State::new(
            now,
            client_secret,
            refresh_token,
        )));
        let kit = simkit::Kit::new(Bodies);
        let server = simkit::serve(routes::router(world.clone()), kit.clone(), listen).await?;
        Ok(Self { server, kit, world })
    }

    /// The base URL to give a client.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Serves until the server stops.
    pub async fn wait(self) {
        self.server.wait().await;
    }

    /// Adds an account.
    pub fn add_account(&self, account: &str) {
        lock(&self.world).add_account(account);
    }

    /// Seeds orders and positions from a broker snapshot: numeric ids are kept (others get
    /// fresh ones), statuses are spelled as TastyTrade spells them (the raw status when given),
    /// prices carry their effect (a debit when any leg buys), time in force and fills are kept.
    pub fn seed(&self, snapshot: &BrokerSnapshot) {
        let mut s = lock(&self.world);
        for o in &snapshot.orders {
            s.add_account(o.account.as_str());
            let id = match o.id.as_str().parse::<u64>() {
                Ok(id) if id.to_string() == o.id.as_str() => id,
                _ => {
                    s.next_id += 1;
                    s.next_id
                }
            };
            let received = o.submitted_at.unwrap_or(snapshot.as_of);
            let updated = o.updated_at.or(o.submitted_at).unwrap_or(snapshot.as_of);
            let status = o
                .raw_status
                .clone()
                .unwrap_or_else(|| raw_status(o.status).to_owned());
            let fill_price = o.limit_price.or(o.stop_price).unwrap_or_default();
            let legs: Vec<Leg> = o
                .legs
                .iter()
                .enumerate()
                .map(|(n, l)| Leg {
                    instrument_type: state::instrument_type(l.symbol.as_str()).to_owned(),
                    symbol: l.symbol.as_str().to_owned(),
                    action: action(l.side).to_owned(),
                    quantity: l.quantity,
                    remaining: l.quantity - l.filled_quantity,
                    fills: (l.filled_quantity > Decimal::ZERO)
                        .then(|| Fill {
                            id: format!("{id}-{n}"),
                            quantity: l.filled_quantity,
                            price: fill_price,
                            at: updated,
                        })
                        .into_iter()
                        .collect(),
                })
                .collect();
            let debit = legs.iter().any(Leg::buys);
            let terminal = state::is_terminal(&status);
            let order = Order {
                id,
                account: o.account.to_string(),
                order_type: order_type(o.order_type).to_owned(),
                time_in_force: time_in_force(o.time_in_force).to_owned(),
                gtc_date: None,
                price: o.limit_price,
                price_effect: o
                    .limit_price
                    .map(|_| if debit { "Debit" } else { "Credit" }.to_owned()),
                stop_trigger: o.stop_price,
                underlying: o.underlying.clone(),
                underlying_instrument_type: "Equity".to_owned(),
                legs,
                external_identifier: o.client_order_id.as_ref().map(ToString::to_string),
                source: None,
                received_at: received,
                live_at: (status == "Live").then_some(received),
                cancelled_at: (status == "Cancelled").then_some(updated),
                terminal_at: terminal.then_some(updated),
                updated_at: updated,
                replaces: o.replaces.as_ref().and_then(|r| r.as_str().parse().ok()),
                replacing: o.replaced_by.as_ref().and_then(|r| r.as_str().parse().ok()),
                edited: o.replaced_by.is_some(),
                reject_reason: (status == "Rejected").then(|| "Session offline".to_owned()),
                contingent_status: (status == "Contingent").then(|| "Pending Order".to_owned()),
                cancelled_by_user: status == "Cancelled",
                status,
            };
            s.orders.insert(id, order);
        }
        let as_of = snapshot.as_of;
        for p in snapshot.positions.iter().flatten() {
            s.add_account(p.account.as_str());
            let price = p.average_price.unwrap_or_default();
            s.positions.push(Position {
                account: p.account.to_string(),
                symbol: p.symbol.as_str().to_owned(),
                instrument_type: state::instrument_type(p.symbol.as_str()).to_owned(),
                underlying: p.underlying().to_owned(),
                quantity: p.quantity,
                average_open_price: price,
                close_price: price,
                created_at: as_of - TimeDelta::days(3),
                updated_at: as_of,
            });
        }
    }

    /// Fills an order completely and moves the positions its legs close or open.
    pub fn fill(&self, id: &str) {
        if let Ok(id) = id.parse() {
            lock(&self.world).fill(id);
        }
    }

    /// Cancels an order "by hand", outside any client.
    pub fn cancel_by_hand(&self, id: &str) {
        if let Ok(id) = id.parse() {
            lock(&self.world).cancel_by_hand(id);
        }
    }

    /// Keeps cancels and replacements unconfirmed (`Cancel Requested`, `Replace Requested`,
    /// `Contingent`) until released.
    pub fn hold_confirmations(&self, hold: bool) {
        lock(&self.world).hold_confirmations = hold;
    }

    /// Moves the simulator's clock (access tokens expire by it).
    pub fn advance(&self, by: TimeDelta) {
        let mut s = lock(&self.world);
        match &mut s.wall_clock {
            Some(shift) => *shift += by,
            None => s.now += by,
        }
        s.tick();
    }

    /// Makes the clock follow the wall clock from now on (a simulator other processes use for
    /// real runs); by default it stands still where `start` set it.
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

    /// How many access tokens were issued.
    pub fn tokens_issued(&self) -> u64 {
        lock(&self.world).issued
    }

    /// The simulator's orders, by id.
    pub fn orders(&self) -> Vec<Order> {
        lock(&self.world).orders.values().cloned().collect()
    }

    /// The simulator's positions.
    pub fn positions(&self) -> Vec<Position> {
        lock(&self.world).positions.clone()
    }
}
