//! The broker port: what reconciliation needs of a broker, and the errors it can answer with.

use crate::ids::{AccountId, ClientOrderId, OrderId};
use crate::model::{BrokerPosition, Order, OrderType, TargetLeg, TimeInForce};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A broker call that failed, by what the caller can do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The thing asked about does not exist.
    #[error("{broker}: {what} not found")]
    NotFound {
        /// Which broker.
        broker: String,
        /// What was looked for.
        what: String,
    },
    /// Credentials were refused.
    #[error("{broker}: not authenticated: {message}")]
    Unauthenticated {
        /// Which broker.
        broker: String,
        /// The broker's reason (never a secret).
        message: String,
    },
    /// The broker understood the request and refused it (a business rule).
    #[error("{broker}: rejected: {message}")]
    Rejected {
        /// Which broker.
        broker: String,
        /// The broker's reason.
        message: String,
    },
    /// Too many requests, still after retries.
    #[error("{broker}: rate limited")]
    RateLimited {
        /// Which broker.
        broker: String,
        /// How long the broker asked us to wait.
        retry_after: Option<Duration>,
    },
    /// No usable answer: network error, timeout or server error. The request may or may not have
    /// taken effect.
    #[error("{broker}: no usable answer from {endpoint}: {message}")]
    Transport {
        /// Which broker.
        broker: String,
        /// The endpoint called.
        endpoint: String,
        /// What happened.
        message: String,
    },
    /// An answer that could not be understood.
    #[error("{broker}: unexpected response from {endpoint}: {message}")]
    Protocol {
        /// Which broker.
        broker: String,
        /// The endpoint called.
        endpoint: String,
        /// What was wrong with it.
        message: String,
    },
    /// The broker cannot do this at all.
    #[error("{broker}: {what} is not supported")]
    Unsupported {
        /// Which broker.
        broker: String,
        /// What was asked.
        what: String,
    },
}

impl BrokerError {
    /// Whether the outcome of the call is unknown (it may have taken effect).
    pub fn is_uncertain(&self) -> bool {
        matches!(
            self,
            Self::Transport { .. } | Self::RateLimited { .. } | Self::Protocol { .. }
        )
    }
}

crate::spelling::spelled! {
    /// What a cancel request achieved.
    pub enum CancelOutcome("cancel outcome") {
        /// The broker accepted the cancel (it may confirm it later).
        Requested = "requested",
        /// The order had already finished; nothing to do.
        AlreadyDone = "already_done",
    }
}

/// A new order to place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOrder {
    /// The account.
    pub account: AccountId,
    /// The underlying.
    pub underlying: String,
    /// The client order id it carries (brokers that support one).
    pub client_order_id: ClientOrderId,
    /// Limit, stop, stop limit.
    pub order_type: OrderType,
    /// Time in force (protective orders are GTC).
    pub time_in_force: TimeInForce,
    /// Limit price (unsigned).
    #[serde(with = "crate::decimal::option", default)]
    pub limit_price: Option<Decimal>,
    /// Stop price.
    #[serde(with = "crate::decimal::option", default)]
    pub stop_price: Option<Decimal>,
    /// Legs; closing legs must only close.
    pub legs: Vec<TargetLeg>,
}

/// The changes of a cancel-replace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplaceOrder {
    /// The new client order id (where supported).
    pub client_order_id: ClientOrderId,
    /// New limit price.
    #[serde(with = "crate::decimal::option", default)]
    pub limit_price: Option<Decimal>,
    /// New stop price.
    #[serde(with = "crate::decimal::option", default)]
    pub stop_price: Option<Decimal>,
    /// New quantity per leg.
    #[serde(with = "crate::decimal::option", default)]
    pub quantity: Option<Decimal>,
}

crate::spelling::spelled! {
    /// One kind of broker call: for decorators that pace, retry, fail or record calls, and for
    /// the idempotency rule every retry obeys.
    pub enum Call("broker call") {
        /// [`Broker::accounts`].
        Accounts = "accounts",
        /// [`Broker::working_orders_page`].
        WorkingOrders = "working_orders",
        /// [`Broker::order_history_page`].
        OrderHistory = "order_history",
        /// [`Broker::positions`].
        Positions = "positions",
        /// [`Broker::order`].
        Order = "order",
        /// [`Broker::find_by_client_order_id_page`].
        FindByClientOrderId = "find_by_client_order_id",
        /// [`Broker::cancel`].
        Cancel = "cancel",
        /// [`Broker::place`].
        Place = "place",
        /// [`Broker::replace`].
        Replace = "replace",
        /// [`Broker::place_oco`].
        PlaceOco = "place_oco",
    }
}

impl Call {
    /// Whether sending the call again after an uncertain failure cannot change the outcome.
    /// Reads are; a cancel is (a second cancel of a cancelled order is "already done"); a
    /// placement and a replacement are not: sent twice, they may make two orders.
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Self::Place | Self::Replace | Self::PlaceOco)
    }
}

/// The two orders of an OCO placement, each with its own id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcoOrders {
    /// The take profit (at Alpaca, the group's parent; it carries the client order id).
    pub take_profit: Order,
    /// The stop loss.
    pub stop_loss: Order,
}

/// Where the next page of a list starts: opaque to everyone but the broker that issued it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PageToken(pub String);

/// One page of a list, and where the next one starts (`None`: this was the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The next page, if any.
    pub next: Option<PageToken>,
}

impl<T> Page<T> {
    /// The last page.
    pub fn last(items: Vec<T>) -> Self {
        Self { items, next: None }
    }
}

/// The broker, seen through what reconciliation needs of it.
///
/// Every method is one request to the broker (a token refresh aside), so that decorators
/// ([`crate::broker::Paced`], [`crate::broker::Retrying`]) see each request: lists are read a
/// page at a time by the `*_page` methods, and the provided methods (`working_orders`,
/// `order_history`, `find_by_client_order_id`) page to the end on top of them. Implement the
/// page methods; leave the provided ones alone.
///
/// Reads are complete or fail: a failed page fails the whole list, which is never returned
/// partial. A transport failure is an error (an uncertain one), never "not found" or "empty".
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Broker: Send + Sync {
    /// A short name for messages (`tastytrade`, `in-memory`).
    fn name(&self) -> String;

    /// Whether orders can carry a client order id that the broker echoes back.
    fn supports_client_order_id(&self) -> bool {
        true
    }

    /// Whether [`Broker::place_oco`] is supported: two exits of the same shares as one group in
    /// which the fill of one cancels the other.
    fn supports_oco(&self) -> bool {
        false
    }

    /// Waits until a request of this kind may be sent at once, and keeps that chance for the
    /// next such request (a pacing decorator waits here; everything else returns at once). The
    /// executor calls it before it writes an intent, so that no wait falls between journal and
    /// send.
    async fn ready(&self, _call: Call) {}

    /// The accounts the credentials can see (closed accounts left out). Idempotent.
    ///
    /// # Errors
    /// Any [`BrokerError`].
    async fn accounts(&self) -> Result<Vec<AccountId>, BrokerError>;

    /// One page of the account's working orders (every working status, held bracket legs
    /// included). `page` is `None` for the first page. Idempotent.
    ///
    /// # Errors
    /// Any [`BrokerError`]; `NotFound` for an account the broker does not know.
    async fn working_orders_page(
        &self,
        account: &AccountId,
        page: Option<PageToken>,
    ) -> Result<Page<Order>, BrokerError>;

    /// One page of the account's orders submitted since `since`, in any status. Pages may
    /// overlap at their edges; [`Broker::order_history`] drops the repeats. Idempotent.
    ///
    /// # Errors
    /// Any [`BrokerError`].
    async fn order_history_page(
        &self,
        account: &AccountId,
        since: DateTime<Utc>,
        page: Option<PageToken>,
    ) -> Result<Page<Order>, BrokerError>;

    /// The account's holdings, signed (negative is short). Idempotent. A broker that cannot
    /// tell answers `Unsupported`, and holdings are then unknown, never flat.
    ///
    /// # Errors
    /// Any [`BrokerError`].
    async fn positions(&self, account: &AccountId) -> Result<Vec<BrokerPosition>, BrokerError>;

    /// One order. `Ok(None)` is a confirmed "no such order"; an error never means that.
    /// Idempotent.
    ///
    /// # Errors
    /// Any [`BrokerError`] but `NotFound`.
    async fn order(&self, account: &AccountId, id: &OrderId) -> Result<Option<Order>, BrokerError>;

    /// One page of the search for the order carrying a client order id, among live and recent
    /// orders. Brokers that can look the id up directly answer one page of zero or one order.
    /// Idempotent.
    ///
    /// # Errors
    /// Any [`BrokerError`]; not finding the id is an empty page, not an error.
    async fn find_by_client_order_id_page(
        &self,
        account: &AccountId,
        client_order_id: &ClientOrderId,
        page: Option<PageToken>,
    ) -> Result<Page<Order>, BrokerError>;

    /// Requests a cancel. Idempotent: cancelling a finished order is
    /// [`CancelOutcome::AlreadyDone`], not an error. `Requested` means asked for: the order may
    /// still fill until the broker confirms.
    ///
    /// # Errors
    /// Any [`BrokerError`]; `NotFound` when the broker has no such order.
    async fn cancel(&self, account: &AccountId, id: &OrderId)
    -> Result<CancelOutcome, BrokerError>;

    /// Places an order carrying `order.client_order_id` (where supported). Not idempotent:
    /// never sent twice by anyone. After an uncertain error, look the client order id up.
    ///
    /// # Errors
    /// Any [`BrokerError`]; `Rejected` when the broker refused it (then no order exists).
    async fn place(&self, order: &PlaceOrder) -> Result<Order, BrokerError>;

    /// Cancel-replaces `original` (as just read from the broker) with its prices and quantity
    /// changed. The answer is the new order, with a new id; the original ends `replaced` (or
    /// cancelled, pointing at the new one). Not idempotent: after an uncertain error, look the
    /// new client order id up.
    ///
    /// # Errors
    /// Any [`BrokerError`]; `Rejected` when the original can no longer be replaced.
    async fn replace(&self, original: &Order, changes: &ReplaceOrder)
    -> Result<Order, BrokerError>;

    /// Places a take profit and a stop loss on the same shares as one OCO group: when one
    /// fills, the broker cancels the other, so together they never close more than is held.
    /// The take profit carries `take_profit.client_order_id`; the stop loss may get one of the
    /// broker's making. Not idempotent: after an uncertain error, look the take profit's client
    /// order id up ([`Broker::find_group_by_client_order_id`]).
    ///
    /// # Errors
    /// Any [`BrokerError`]; `Unsupported` where [`Broker::supports_oco`] is false.
    async fn place_oco(
        &self,
        take_profit: &PlaceOrder,
        stop_loss: &PlaceOrder,
    ) -> Result<OcoOrders, BrokerError> {
        let _ = (take_profit, stop_loss);
        Err(BrokerError::Unsupported {
            broker: self.name(),
            what: "OCO orders".to_owned(),
        })
    }

    /// Every working order of an account: every page of [`Broker::working_orders_page`], each
    /// order once.
    ///
    /// # Errors
    /// The first page's error; never a partial list.
    async fn working_orders(&self, account: &AccountId) -> Result<Vec<Order>, BrokerError> {
        let mut out: Vec<Order> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut page = None;
        loop {
            let p = self.working_orders_page(account, page.clone()).await?;
            // Offset pages of a list that grows at the front can repeat an order.
            for o in p.items {
                if seen.insert(o.id.clone()) {
                    out.push(o);
                }
            }
            match next_page(&self.name(), "working orders", page, p.next)? {
                Some(n) => page = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// Orders of an account submitted since `since`, any status: every page of
    /// [`Broker::order_history_page`], each order once.
    ///
    /// # Errors
    /// The first page's error; never a partial list.
    async fn order_history(
        &self,
        account: &AccountId,
        since: DateTime<Utc>,
    ) -> Result<Vec<Order>, BrokerError> {
        let mut out: Vec<Order> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut page = None;
        loop {
            let p = self
                .order_history_page(account, since, page.clone())
                .await?;
            for o in p.items {
                if seen.insert(o.id.clone()) {
                    out.push(o);
                }
            }
            match next_page(&self.name(), "order history", page, p.next)? {
                Some(n) => page = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// The order carrying a client order id and the other orders of its OCO group, if any
    /// (the carrier first). Empty means none was found.
    ///
    /// # Errors
    /// The first page's error.
    async fn find_group_by_client_order_id(
        &self,
        account: &AccountId,
        client_order_id: &ClientOrderId,
    ) -> Result<Vec<Order>, BrokerError> {
        let mut items: Vec<Order> = Vec::new();
        let mut page = None;
        loop {
            let p = self
                .find_by_client_order_id_page(account, client_order_id, page.clone())
                .await?;
            items.extend(p.items);
            match next_page(&self.name(), "client order id search", page, p.next)? {
                Some(n) => page = Some(n),
                None => break,
            }
        }
        let Some(carrier) = items
            .iter()
            .filter(|o| o.client_order_id.as_ref() == Some(client_order_id))
            .max_by(|a, b| a.submitted_at.cmp(&b.submitted_at))
            .cloned()
        else {
            return Ok(Vec::new());
        };
        let mut group = vec![carrier.clone()];
        if let Some(g) = &carrier.oco_group {
            let mut seen = std::collections::HashSet::new();
            seen.insert(carrier.id.clone());
            group.extend(
                items
                    .into_iter()
                    .filter(|o| o.oco_group.as_ref() == Some(g) && seen.insert(o.id.clone())),
            );
        }
        Ok(group)
    }

    /// The order carrying a client order id, if any: the most recently submitted of those the
    /// search finds. `Ok(None)` means none was found.
    ///
    /// # Errors
    /// The first page's error.
    async fn find_by_client_order_id(
        &self,
        account: &AccountId,
        client_order_id: &ClientOrderId,
    ) -> Result<Option<Order>, BrokerError> {
        let mut found: Option<Order> = None;
        let mut page = None;
        loop {
            let p = self
                .find_by_client_order_id_page(account, client_order_id, page.clone())
                .await?;
            for o in p.items {
                if o.client_order_id.as_ref() == Some(client_order_id)
                    && found
                        .as_ref()
                        .is_none_or(|f| o.submitted_at > f.submitted_at)
                {
                    found = Some(o);
                }
            }
            match next_page(&self.name(), "client order id search", page, p.next)? {
                Some(n) => page = Some(n),
                None => return Ok(found),
            }
        }
    }
}

/// The next page to read, refusing a broker that hands the same page back forever.
fn next_page(
    broker: &str,
    list: &str,
    current: Option<PageToken>,
    next: Option<PageToken>,
) -> Result<Option<PageToken>, BrokerError> {
    match next {
        Some(n) if current.as_ref() == Some(&n) => Err(BrokerError::Protocol {
            broker: broker.to_owned(),
            endpoint: list.to_owned(),
            message: format!("the page after {:?} is {:?} again", n.0, n.0),
        }),
        other => Ok(other),
    }
}
