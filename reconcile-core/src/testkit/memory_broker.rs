//! A stateful in-memory broker: orders, fills, holdings, and scripted failures on any call.

use super::lock;
use crate::ids::{AccountId, ClientOrderId, OrderId};
use crate::model::{BrokerPosition, Order, OrderLeg, OrderStatus};
use crate::ports::{Broker, BrokerError, CancelOutcome, PlaceOrder, ReplaceOrder};
use crate::snapshot::BrokerSnapshot;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// A broker call, for scripting failures and reading the call log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Call {
    Accounts,
    WorkingOrders,
    OrderHistory,
    Positions,
    Order,
    FindByClientOrderId,
    Cancel,
    Place,
    Replace,
}

/// What a scripted failure does.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this error and do nothing.
    Fail(BrokerError),
    /// Do the work, then lose the answer (a timeout after the broker acted).
    LoseAnswer,
}

#[derive(Default)]
struct State {
    orders: BTreeMap<OrderId, Order>,
    positions: Vec<BrokerPosition>,
    accounts: Vec<AccountId>,
    next_id: u64,
    now: Option<DateTime<Utc>>,
    faults: VecDeque<(Call, Fault)>,
    calls: Vec<Call>,
    placed: Vec<PlaceOrder>,
}

/// An in-memory broker. Placed orders go live at once; cancels take effect at once.
#[derive(Default)]
pub struct InMemoryBroker {
    state: Mutex<State>,
}

impl std::fmt::Debug for InMemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryBroker").finish_non_exhaustive()
    }
}

impl InMemoryBroker {
    /// An empty broker whose clock reads `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        let b = Self::default();
        lock(&b.state).now = Some(now);
        b
    }

    /// A broker holding a snapshot's orders and positions.
    pub fn from_snapshot(snapshot: &BrokerSnapshot) -> Self {
        let b = Self::new(snapshot.as_of);
        {
            let mut s = lock(&b.state);
            for o in &snapshot.orders {
                s.orders.insert(o.id.clone(), o.clone());
            }
            s.positions = snapshot.positions.clone().unwrap_or_default();
        }
        b
    }

    /// The broker's state as a snapshot.
    pub fn snapshot(&self) -> BrokerSnapshot {
        let s = lock(&self.state);
        let mut snap = BrokerSnapshot::new(s.now.unwrap_or_default());
        snap.orders = s.orders.values().cloned().collect();
        snap.positions = Some(s.positions.clone());
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

    /// Adds a holding.
    pub fn add_position(&self, position: BrokerPosition) {
        lock(&self.state).positions.push(position);
    }

    /// Every order, by id.
    pub fn orders(&self) -> Vec<Order> {
        lock(&self.state).orders.values().cloned().collect()
    }

    /// Every placement request received, in order.
    pub fn placed(&self) -> Vec<PlaceOrder> {
        lock(&self.state).placed.clone()
    }

    /// The calls made so far.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.state).calls.clone()
    }

    /// Makes the next call of kind `call` fail as `fault` says.
    pub fn fail_next(&self, call: Call, fault: Fault) {
        lock(&self.state).faults.push_back((call, fault));
    }

    /// Fills an order completely, as the market would.
    pub fn fill(&self, id: &OrderId) {
        let mut s = lock(&self.state);
        let now = s.now;
        if let Some(o) = s.orders.get_mut(id) {
            o.status = OrderStatus::Filled;
            o.raw_status = Some("filled".to_owned());
            o.updated_at = now;
            for l in &mut o.legs {
                l.filled_quantity = l.quantity;
            }
        }
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

    /// Logs the call and takes its scripted fault, if any.
    fn enter(&self, call: Call) -> Option<Fault> {
        let mut s = lock(&self.state);
        s.calls.push(call);
        let i = s.faults.iter().position(|(c, _)| *c == call)?;
        s.faults.remove(i).map(|(_, f)| f)
    }

    fn lost(endpoint: &str) -> BrokerError {
        BrokerError::Transport {
            broker: "in-memory".to_owned(),
            endpoint: endpoint.to_owned(),
            message: "timed out".to_owned(),
        }
    }
}

#[async_trait]
impl Broker for InMemoryBroker {
    fn name(&self) -> String {
        "in-memory".to_owned()
    }

    async fn accounts(&self) -> Result<Vec<AccountId>, BrokerError> {
        if let Some(Fault::Fail(e)) = self.enter(Call::Accounts) {
            return Err(e);
        }
        let s = lock(&self.state);
        let mut a: Vec<AccountId> = s
            .accounts
            .iter()
            .cloned()
            .chain(s.orders.values().map(|o| o.account.clone()))
            .chain(s.positions.iter().map(|p| p.account.clone()))
            .collect();
        a.sort();
        a.dedup();
        Ok(a)
    }

    async fn working_orders(&self, account: &AccountId) -> Result<Vec<Order>, BrokerError> {
        if let Some(Fault::Fail(e)) = self.enter(Call::WorkingOrders) {
            return Err(e);
        }
        let s = lock(&self.state);
        Ok(s.orders
            .values()
            .filter(|o| &o.account == account && o.status.is_working())
            .cloned()
            .collect())
    }

    async fn order_history(
        &self,
        account: &AccountId,
        since: DateTime<Utc>,
    ) -> Result<Vec<Order>, BrokerError> {
        if let Some(Fault::Fail(e)) = self.enter(Call::OrderHistory) {
            return Err(e);
        }
        let s = lock(&self.state);
        Ok(s.orders
            .values()
            .filter(|o| &o.account == account && o.submitted_at.is_none_or(|t| t >= since))
            .cloned()
            .collect())
    }

    async fn positions(&self, account: &AccountId) -> Result<Vec<BrokerPosition>, BrokerError> {
        if let Some(Fault::Fail(e)) = self.enter(Call::Positions) {
            return Err(e);
        }
        let s = lock(&self.state);
        Ok(s.positions
            .iter()
            .filter(|p| &p.account == account)
            .cloned()
            .collect())
    }

    async fn order(&self, account: &AccountId, id: &OrderId) -> Result<Option<Order>, BrokerError> {
        if let Some(Fault::Fail(e)) = self.enter(Call::Order) {
            return Err(e);
        }
        let s = lock(&self.state);
        Ok(s.orders.get(id).filter(|o| &o.account == account).cloned())
    }

    async fn find_by_client_order_id(
        &self,
        account: &AccountId,
        client_order_id: &ClientOrderId,
    ) -> Result<Option<Order>, BrokerError> {
        if let Some(Fault::Fail(e)) = self.enter(Call::FindByClientOrderId) {
            return Err(e);
        }
        let s = lock(&self.state);
        Ok(s.orders
            .values()
            .filter(|o| {
                &o.account == account && o.client_order_id.as_ref() == Some(client_order_id)
            })
            .max_by(|a, b| a.submitted_at.cmp(&b.submitted_at))
            .cloned())
    }

    async fn cancel(
        &self,
        account: &AccountId,
        id: &OrderId,
    ) -> Result<CancelOutcome, BrokerError> {
        let fault = self.enter(Call::Cancel);
        if let Some(Fault::Fail(e)) = fault {
            return Err(e);
        }
        let mut s = lock(&self.state);
        let now = s.now;
        let Some(o) = s.orders.get_mut(id).filter(|o| &o.account == account) else {
            return Err(BrokerError::NotFound {
                broker: "in-memory".to_owned(),
                what: format!("order {id}"),
            });
        };
        if !o.status.is_working() {
            return Ok(CancelOutcome::AlreadyDone);
        }
        o.status = OrderStatus::Cancelled;
        o.raw_status = Some("cancelled".to_owned());
        o.updated_at = now;
        if matches!(fault, Some(Fault::LoseAnswer)) {
            return Err(Self::lost("cancel"));
        }
        Ok(CancelOutcome::Requested)
    }

    async fn place(&self, order: &PlaceOrder) -> Result<Order, BrokerError> {
        let fault = self.enter(Call::Place);
        if let Some(Fault::Fail(e)) = fault {
            return Err(e);
        }
        let mut s = lock(&self.state);
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
                    filled_quantity: rust_decimal::Decimal::ZERO,
                })
                .collect(),
            replaced_by: None,
            replaces: None,
        };
        s.placed.push(order.clone());
        s.orders.insert(placed.id.clone(), placed.clone());
        if matches!(fault, Some(Fault::LoseAnswer)) {
            return Err(Self::lost("place"));
        }
        Ok(placed)
    }

    async fn replace(
        &self,
        account: &AccountId,
        id: &OrderId,
        changes: &ReplaceOrder,
    ) -> Result<Order, BrokerError> {
        let fault = self.enter(Call::Replace);
        if let Some(Fault::Fail(e)) = fault {
            return Err(e);
        }
        let mut s = lock(&self.state);
        s.next_id += 1;
        let new_id = OrderId::new(format!("mem-{}", s.next_id));
        let now = s.now;
        let Some(old) = s.orders.get_mut(id).filter(|o| &o.account == account) else {
            return Err(BrokerError::NotFound {
                broker: "in-memory".to_owned(),
                what: format!("order {id}"),
            });
        };
        if !old.status.is_working() {
            return Err(BrokerError::Rejected {
                broker: "in-memory".to_owned(),
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
        new.status = OrderStatus::Live;
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
        if matches!(fault, Some(Fault::LoseAnswer)) {
            return Err(Self::lost("replace"));
        }
        Ok(new)
    }
}
