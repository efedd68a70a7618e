//! A stateful in-memory broker: orders, fills, holdings, paging. Placed orders go live at once;
//! cancels and replacements take effect at once. Faults are not its business: wrap it in
//! [`crate::testkit::Faulty`] for those.

use super::lock;
use crate::ids::{AccountId, ClientOrderId, OrderId};
use crate::model::{BrokerPosition, Order, OrderLeg, OrderStatus, Side};
use crate::ports::{
    Broker, BrokerError, CancelOutcome, OcoOrders, Page, PageToken, PlaceOrder, ReplaceOrder,
};
use crate::snapshot::BrokerSnapshot;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::sync::Mutex;

const NAME: &str = "in-memory";

struct State {
    orders: BTreeMap<OrderId, Order>,
    /// `None`: this broker cannot tell its holdings (they are unknown, never flat).
    positions: Option<Vec<BrokerPosition>>,
    accounts: Vec<AccountId>,
    next_id: u64,
    now: Option<DateTime<Utc>>,
    placed: Vec<PlaceOrder>,
    page_size: usize,
    full_history: bool,
    /// How long after its submission an order stays out of the listings.
    listing_delay: chrono::TimeDelta,
}

impl State {
    /// Whether an order is out of the listings yet (submitted at least the delay ago).
    fn listed(&self, o: &Order) -> bool {
        match (self.now, o.submitted_at) {
            (Some(now), Some(at)) if self.listing_delay > chrono::TimeDelta::zero() => {
                now.signed_duration_since(at) >= self.listing_delay
            }
            _ => true,
        }
    }
}

/// An in-memory broker.
pub struct InMemoryBroker {
    state: Mutex<State>,
}

impl Default for InMemoryBroker {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                orders: BTreeMap::new(),
                positions: Some(Vec::new()),
                accounts: Vec::new(),
                next_id: 0,
                now: None,
                placed: Vec::new(),
                page_size: 100,
                full_history: false,
                listing_delay: chrono::TimeDelta::zero(),
            }),
        }
    }
}

impl std::fmt::Debug for InMemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryBroker").finish_non_exhaustive()
    }
}

fn not_found(id: &OrderId) -> BrokerError {
    BrokerError::NotFound {
        broker: NAME.to_owned(),
        what: format!("order {id}"),
    }
}

/// A page of `items` starting at the offset `page` names.
fn page_of(
    items: Vec<Order>,
    page: Option<PageToken>,
    size: usize,
) -> Result<Page<Order>, BrokerError> {
    let start = match page {
        None => 0,
        Some(PageToken(t)) => t.parse::<usize>().map_err(|_| BrokerError::Protocol {
            broker: NAME.to_owned(),
            endpoint: "page".to_owned(),
            message: format!("not a page token of this broker: {t:?}"),
        })?,
    };
    let size = size.max(1);
    let end = start.saturating_add(size).min(items.len());
    let next = (end < items.len()).then(|| PageToken(end.to_string()));
    Ok(Page {
        items: items
            .get(start..end)
            .map(<[Order]>::to_vec)
            .unwrap_or_default(),
        next,
    })
}

impl InMemoryBroker {
    /// An empty broker whose clock reads `now`, holding nothing.
    pub fn new(now: DateTime<Utc>) -> Self {
        let b = Self::default();
        lock(&b.state).now = Some(now);
        b
    }

    /// A broker holding a snapshot's orders and positions. A snapshot whose holdings are unknown
    /// gives a broker that cannot tell its holdings.
    pub fn from_snapshot(snapshot: &BrokerSnapshot) -> Self {
        let b = Self::new(snapshot.as_of);
        {
            let mut s = lock(&b.state);
            for o in &snapshot.orders {
                s.orders.insert(o.id.clone(), o.clone());
            }
            s.positions.clone_from(&snapshot.positions);
        }
        b
    }

    /// Serves every order as history, whatever the `since` asked for: a snapshot file holds the
    /// history it was written with, and all of it is evidence.
    #[must_use]
    pub fn with_full_history(self) -> Self {
        lock(&self.state).full_history = true;
        self
    }

    /// Keeps an order out of the working-order and history listings until `delay` after its
    /// submission by this broker's clock, as a broker whose listings lag behind its order
    /// book does. Looking an order up by id or by client order id finds it at once.
    #[must_use]
    pub fn with_listing_delay(self, delay: chrono::TimeDelta) -> Self {
        lock(&self.state).listing_delay = delay;
        self
    }

    /// Sets how many orders a page holds (default 100).
    #[must_use]
    pub fn with_page_size(self, size: usize) -> Self {
        lock(&self.state).page_size = size.max(1);
        self
    }

    /// The largest page this broker serves.
    pub fn page_size(&self) -> usize {
        lock(&self.state).page_size
    }

    /// The broker's state as a snapshot.
    pub fn snapshot(&self) -> BrokerSnapshot {
        let s = lock(&self.state);
        let mut snap = BrokerSnapshot::new(s.now.unwrap_or_default());
        snap.orders = s.orders.values().cloned().collect();
        snap.positions.clone_from(&s.positions);
        snap
    }

    /// Sets the clock.
    pub fn set_now(&self, now: DateTime<Utc>) {
        lock(&self.state).now = Some(now);
    }

    /// Adds an account with no orders.
    pub fn add_account(&self, account: impl Into<AccountId>) {
        lock(&self.state).accounts.push(account.into());
    }

    /// Adds or overwrites an order.
    pub fn add_order(&self, order: Order) {
        lock(&self.state).orders.insert(order.id.clone(), order);
    }

    /// Adds a holding (the broker's holdings become known if they were not).
    pub fn add_position(&self, position: BrokerPosition) {
        lock(&self.state)
            .positions
            .get_or_insert_with(Vec::new)
            .push(position);
    }

    /// Every order, by id.
    pub fn orders(&self) -> Vec<Order> {
        lock(&self.state).orders.values().cloned().collect()
    }

    /// Every placement request received, in order.
    pub fn placed(&self) -> Vec<PlaceOrder> {
        lock(&self.state).placed.clone()
    }

    /// Fills an order completely, as the market would; the other orders of its OCO group are
    /// cancelled.
    pub fn fill(&self, id: &OrderId) {
        let mut s = lock(&self.state);
        let now = s.now;
        if let Some(o) = s.orders.get_mut(id) {
            o.status = OrderStatus::Filled;
            o.raw_status = Some("filled".to_owned());
            o.updated_at = now;
            o.filled_at = now;
            o.filled_average_price = o.limit_price.or(o.stop_price);
            for l in &mut o.legs {
                l.filled_quantity = l.quantity;
            }
        }
        cancel_group(&mut s, id);
    }

    /// Cancels an order "by hand", outside any reconcile run.
    pub fn cancel_by_hand(&self, id: &OrderId) {
        let mut s = lock(&self.state);
        let now = s.now;
        if let Some(o) = s.orders.get_mut(id) {
            o.status = OrderStatus::Cancelled;
            o.raw_status = Some("cancelled".to_owned());
            o.updated_at = now;
        }
    }
}

/// Cancels the still-working orders that share `id`'s OCO group.
fn cancel_group(s: &mut State, id: &OrderId) {
    let now = s.now;
    let Some(group) = s.orders.get(id).and_then(|o| o.oco_group.clone()) else {
        return;
    };
    for o in s.orders.values_mut() {
        if o.oco_group.as_ref() == Some(&group) && &o.id != id && o.status.is_working() {
            o.status = OrderStatus::Cancelled;
            o.raw_status = Some("cancelled".to_owned());
            o.updated_at = now;
        }
    }
}

/// Whether a closing leg has the position it closes, as a broker that validates position
/// effects checks (TastyTrade's strict flag; Alpaca refuses to sell shares not held for
/// orders). Unknown holdings are not checked.
fn closes_a_holding(
    positions: Option<&[BrokerPosition]>,
    account: &AccountId,
    leg: &crate::model::TargetLeg,
) -> bool {
    let Some(positions) = positions else {
        return true;
    };
    let held: Decimal = positions
        .iter()
        .filter(|p| &p.account == account && p.symbol == leg.symbol)
        .map(|p| p.quantity)
        .sum();
    match leg.side {
        Side::BuyToClose => {
            held.is_sign_negative() && !held.is_zero() && held.abs() >= leg.quantity
        }
        Side::SellToClose => held.is_sign_positive() && !held.is_zero() && held >= leg.quantity,
        _ => true,
    }
}

#[async_trait]
impl Broker for InMemoryBroker {
    fn name(&self) -> String {
        NAME.to_owned()
    }

    async fn accounts(&self) -> Result<Vec<AccountId>, BrokerError> {
        let s = lock(&self.state);
        let mut a: Vec<AccountId> = s
            .accounts
            .iter()
            .cloned()
            .chain(s.orders.values().map(|o| o.account.clone()))
            .chain(s.positions.iter().flatten().map(|p| p.account.clone()))
            .collect();
        a.sort();
        a.dedup();
        Ok(a)
    }

    async fn working_orders_page(
        &self,
        account: &AccountId,
        page: Option<PageToken>,
    ) -> Result<Page<Order>, BrokerError> {
        let s = lock(&self.state);
        let items = s
            .orders
            .values()
            .filter(|o| &o.account == account && o.status.is_working() && s.listed(o))
            .cloned()
            .collect();
        page_of(items, page, s.page_size)
    }

    async fn order_history_page(
        &self,
        account: &AccountId,
        since: DateTime<Utc>,
        page: Option<PageToken>,
    ) -> Result<Page<Order>, BrokerError> {
        let s = lock(&self.state);
        let items = s
            .orders
            .values()
            .filter(|o| {
                &o.account == account
                    && (s.full_history || o.submitted_at.is_none_or(|t| t >= since))
                    && s.listed(o)
            })
            .cloned()
            .collect();
        page_of(items, page, s.page_size)
    }

    async fn positions(&self, account: &AccountId) -> Result<Vec<BrokerPosition>, BrokerError> {
        let s = lock(&self.state);
        match &s.positions {
            Some(ps) => Ok(ps
                .iter()
                .filter(|p| &p.account == account)
                .cloned()
                .collect()),
            None => Err(BrokerError::Unsupported {
                broker: NAME.to_owned(),
                what: "holdings (none are known)".to_owned(),
            }),
        }
    }

    async fn order(&self, account: &AccountId, id: &OrderId) -> Result<Option<Order>, BrokerError> {
        let s = lock(&self.state);
        Ok(s.orders.get(id).filter(|o| &o.account == account).cloned())
    }

    async fn find_by_client_order_id_page(
        &self,
        account: &AccountId,
        client_order_id: &ClientOrderId,
        _page: Option<PageToken>,
    ) -> Result<Page<Order>, BrokerError> {
        // The order carrying the id, and the other orders of its group (as a nested answer
        // would show them).
        let s = lock(&self.state);
        let carrier = s
            .orders
            .values()
            .filter(|o| {
                &o.account == account && o.client_order_id.as_ref() == Some(client_order_id)
            })
            .max_by(|a, b| a.submitted_at.cmp(&b.submitted_at))
            .cloned();
        let mut items: Vec<Order> = carrier.iter().cloned().collect();
        if let Some(g) = carrier.as_ref().and_then(|c| c.oco_group.clone()) {
            items.extend(
                s.orders
                    .values()
                    .filter(|o| {
                        o.oco_group.as_ref() == Some(&g)
                            && carrier.as_ref().is_some_and(|c| c.id != o.id)
                    })
                    .cloned(),
            );
        }
        Ok(Page::last(items))
    }

    async fn cancel(
        &self,
        account: &AccountId,
        id: &OrderId,
    ) -> Result<CancelOutcome, BrokerError> {
        let mut s = lock(&self.state);
        let now = s.now;
        let Some(o) = s.orders.get_mut(id).filter(|o| &o.account == account) else {
            return Err(not_found(id));
        };
        if !o.status.is_working() {
            return Ok(CancelOutcome::AlreadyDone);
        }
        o.status = OrderStatus::Cancelled;
        o.raw_status = Some("cancelled".to_owned());
        o.updated_at = now;
        // Cancelling one order of a group cancels the group.
        cancel_group(&mut s, id);
        Ok(CancelOutcome::Requested)
    }

    async fn place(&self, order: &PlaceOrder) -> Result<Order, BrokerError> {
        let mut s = lock(&self.state);
        if let Some(leg) = order
            .legs
            .iter()
            .find(|l| !closes_a_holding(s.positions.as_deref(), &order.account, l))
        {
            return Err(BrokerError::Rejected {
                broker: NAME.to_owned(),
                message: format!(
                    "{} {} {}: no such position to close",
                    leg.side, leg.quantity, leg.symbol
                ),
            });
        }
        s.next_id += 1;
        let placed = Order {
            id: OrderId::new(format!("mem-{}", s.next_id)),
            client_order_id: Some(order.client_order_id.clone()),
            account: order.account.clone(),
            underlying: order.underlying.clone(),
            status: OrderStatus::Live,
            raw_status: Some("live".to_owned()),
            order_type: Some(order.order_type),
            time_in_force: Some(order.time_in_force),
            limit_price: order.limit_price,
            stop_price: order.stop_price,
            submitted_at: s.now,
            updated_at: s.now,
            legs: order
                .legs
                .iter()
                .map(|l| OrderLeg {
                    symbol: l.symbol.clone(),
                    side: l.side,
                    quantity: l.quantity,
                    filled_quantity: Decimal::ZERO,
                })
                .collect(),
            replaced_by: None,
            replaces: None,
            oco_group: None,
            filled_at: None,
            filled_average_price: None,
        };
        s.placed.push(order.clone());
        s.orders.insert(placed.id.clone(), placed.clone());
        Ok(placed)
    }

    fn supports_oco(&self) -> bool {
        true
    }

    async fn place_oco(
        &self,
        take_profit: &PlaceOrder,
        stop_loss: &PlaceOrder,
    ) -> Result<OcoOrders, BrokerError> {
        // One group: the take profit is the parent, both carry its id as their group.
        let tp = self.place(take_profit).await?;
        let mut stop = stop_loss.clone();
        stop.client_order_id = format!("{}-sl", take_profit.client_order_id).into();
        let sl = match self.place(&stop).await {
            Ok(o) => o,
            Err(e) => {
                lock(&self.state).orders.remove(&tp.id);
                return Err(e);
            }
        };
        let mut s = lock(&self.state);
        let mut grouped = |id: &OrderId| {
            s.orders.get_mut(id).map(|o| {
                o.oco_group = Some(tp.id.clone());
                o.clone()
            })
        };
        match (grouped(&tp.id), grouped(&sl.id)) {
            (Some(take_profit), Some(stop_loss)) => Ok(OcoOrders {
                take_profit,
                stop_loss,
            }),
            _ => Err(not_found(&tp.id)),
        }
    }

    async fn replace(
        &self,
        original: &Order,
        changes: &ReplaceOrder,
    ) -> Result<Order, BrokerError> {
        let mut s = lock(&self.state);
        s.next_id += 1;
        let new_id = OrderId::new(format!("mem-{}", s.next_id));
        let now = s.now;
        let id = &original.id;
        let Some(old) = s
            .orders
            .get_mut(id)
            .filter(|o| o.account == original.account)
        else {
            return Err(not_found(id));
        };
        if !old.status.is_working() {
            return Err(BrokerError::Rejected {
                broker: NAME.to_owned(),
                message: format!("order {id} is {}", old.status.as_str()),
            });
        }
        let mut new = old.clone();
        old.status = OrderStatus::Replaced;
        old.raw_status = Some("replaced".to_owned());
        old.replaced_by = Some(new_id.clone());
        old.updated_at = now;
        new.id = new_id;
        new.client_order_id = Some(changes.client_order_id.clone());
        new.replaces = Some(id.clone());
        new.replaced_by = None;
        new.status = OrderStatus::Live;
        new.raw_status = Some("live".to_owned());
        new.submitted_at = now;
        new.updated_at = now;
        if changes.limit_price.is_some() {
            new.limit_price = changes.limit_price;
        }
        if changes.stop_price.is_some() {
            new.stop_price = changes.stop_price;
        }
        if let Some(q) = changes.quantity {
            for l in &mut new.legs {
                l.quantity = q;
            }
        }
        s.orders.insert(new.id.clone(), new.clone());
        Ok(new)
    }
}
