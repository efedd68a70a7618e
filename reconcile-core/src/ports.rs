//! The two ports: [`Broker`] (what the broker holds, and the orders we send it) and [`Store`]
//! (our own records). Adapters implement them; nothing in the core knows a broker's or a
//! database's name.

use crate::diff::Scope;
use crate::ids::{AccountId, ClientOrderId, OrderId, PositionId, RunId, TargetKey};
use crate::model::{
    BrokerPosition, Intent, Order, OrderType, Position, PositionState, TargetLeg, TargetStatus,
    TimeInForce,
};
use crate::snapshot::LocalSnapshot;
use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
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

/// What a cancel request achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// The broker accepted the cancel (it may confirm it later).
    Requested,
    /// The order had already finished; nothing to do.
    AlreadyDone,
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

/// The broker, seen through what reconciliation needs of it.
///
/// Reads must be complete or fail: a partial read is never returned as if whole. Adapters do
/// their own retrying of idempotent calls and their own pacing.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Broker: Send + Sync {
    /// A short name for messages (`tastytrade`, `in-memory`).
    fn name(&self) -> String;

    /// Whether orders can carry a client order id that the broker echoes back.
    fn supports_client_order_id(&self) -> bool {
        true
    }

    /// The accounts the credentials can see.
    ///
    /// # Errors
    /// Any [`BrokerError`].
    async fn accounts(&self) -> Result<Vec<AccountId>, BrokerError>;

    /// Every working order of an account (all pages).
    ///
    /// # Errors
    /// Any [`BrokerError`]; never a partial list.
    async fn working_orders(&self, account: &AccountId) -> Result<Vec<Order>, BrokerError>;

    /// Orders of an account submitted since `since`, any status (all pages).
    ///
    /// # Errors
    /// Any [`BrokerError`]; never a partial list.
    async fn order_history(
        &self,
        account: &AccountId,
        since: DateTime<Utc>,
    ) -> Result<Vec<Order>, BrokerError>;

    /// The account's holdings.
    ///
    /// # Errors
    /// Any [`BrokerError`]; never a partial list.
    async fn positions(&self, account: &AccountId) -> Result<Vec<BrokerPosition>, BrokerError>;

    /// One order. `Ok(None)` is a confirmed "no such order"; an error is not.
    ///
    /// # Errors
    /// Any [`BrokerError`] but `NotFound`.
    async fn order(&self, account: &AccountId, id: &OrderId) -> Result<Option<Order>, BrokerError>;

    /// The order carrying a client order id, looked for among live and recent orders.
    /// `Ok(None)` means none was found.
    ///
    /// # Errors
    /// Any [`BrokerError`].
    async fn find_by_client_order_id(
        &self,
        account: &AccountId,
        client_order_id: &ClientOrderId,
    ) -> Result<Option<Order>, BrokerError>;

    /// Requests a cancel. Idempotent: cancelling a finished order is
    /// [`CancelOutcome::AlreadyDone`], not an error.
    ///
    /// # Errors
    /// Any [`BrokerError`]; `NotFound` when the broker has no such order.
    async fn cancel(&self, account: &AccountId, id: &OrderId)
    -> Result<CancelOutcome, BrokerError>;

    /// Places an order. Not idempotent and never retried blindly by adapters: after an
    /// uncertain error, look the client order id up.
    ///
    /// # Errors
    /// Any [`BrokerError`]; `Rejected` when the broker refused it.
    async fn place(&self, order: &PlaceOrder) -> Result<Order, BrokerError>;

    /// Cancel-replaces an order; the answer is the new order, with a new id.
    ///
    /// # Errors
    /// Any [`BrokerError`].
    async fn replace(
        &self,
        account: &AccountId,
        id: &OrderId,
        changes: &ReplaceOrder,
    ) -> Result<Order, BrokerError>;
}

/// A store call that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A change names a position or target the store does not have.
    #[error("{store}: {what} not found")]
    NotFound {
        /// Which store.
        store: String,
        /// What was missing.
        what: String,
    },
    /// The store stayed busy (locked by another writer) through every retry.
    #[error("{store}: busy: {what}")]
    Busy {
        /// Which store.
        store: String,
        /// What was contended.
        what: String,
    },
    /// The data in the store cannot be read as records.
    #[error("{store}: corrupt data at {location}: {message}")]
    Corrupt {
        /// Which store.
        store: String,
        /// Where.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// Anything else from the backend.
    #[error("{store}: {message}")]
    Backend {
        /// Which store.
        store: String,
        /// What failed.
        message: String,
    },
}

/// One change to local records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LocalChange {
    /// Point a target at an order and make it active.
    LinkTarget {
        /// The position.
        position_id: PositionId,
        /// The target.
        target_key: TargetKey,
        /// The order.
        order_id: OrderId,
        /// The order's client order id.
        client_order_id: Option<ClientOrderId>,
        /// When the order was placed, if we placed it.
        placed_at: Option<DateTime<Utc>>,
    },
    /// Clear a target's order reference; it becomes unplaced.
    ClearTarget {
        /// The position.
        position_id: PositionId,
        /// The target.
        target_key: TargetKey,
        /// Why, kept as the target's last error.
        note: Option<String>,
    },
    /// Set a target's status (filled, cancelled, failed).
    SetTargetStatus {
        /// The position.
        position_id: PositionId,
        /// The target.
        target_key: TargetKey,
        /// The new status.
        status: TargetStatus,
    },
    /// Record a failed placement on a target.
    RecordTargetError {
        /// The position.
        position_id: PositionId,
        /// The target.
        target_key: TargetKey,
        /// The error.
        error: String,
        /// When it was attempted.
        at: DateTime<Utc>,
    },
    /// Move a position to another lifecycle state.
    SetPositionState {
        /// The position.
        position_id: PositionId,
        /// The new state.
        state: PositionState,
    },
    /// Insert a position, or do nothing if one with its id exists.
    InsertPosition {
        /// The position.
        position: Position,
    },
    /// Write an intent (idempotent on its client order id).
    PutIntent {
        /// The intent.
        intent: Intent,
    },
    /// Delete an intent (deleting an absent one is not an error).
    DropIntent {
        /// Its client order id.
        client_order_id: ClientOrderId,
    },
}

/// What became of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done now.
    Applied,
    /// Found already done.
    AlreadyDone,
    /// Would be done (dry run).
    WouldApply,
    /// Not done, by a rule (a dependency failed, the fix no longer applies).
    Skipped,
    /// Not done, because the evidence could not be confirmed.
    Uncertain,
    /// Tried and failed.
    Failed,
}

impl Outcome {
    /// The snake_case spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::AlreadyDone => "already_done",
            Self::WouldApply => "would_apply",
            Self::Skipped => "skipped",
            Self::Uncertain => "uncertain",
            Self::Failed => "failed",
        }
    }

    /// Whether the action's effect is in place (so dependants may run).
    pub fn is_done(self) -> bool {
        matches!(self, Self::Applied | Self::AlreadyDone)
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The run.
    pub run_id: RunId,
    /// When.
    pub at: DateTime<Utc>,
    /// The action's idempotency key.
    pub action_key: String,
    /// What became of it.
    pub outcome: Outcome,
    /// Details: the order id placed, the error, the reason skipped.
    pub detail: String,
}

/// Local changes and their audit records, written together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeBatch {
    /// The changes, applied in order.
    pub changes: Vec<LocalChange>,
    /// Audit records written in the same transaction.
    pub audit: Vec<AuditRecord>,
}

/// A held per-account run lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLock {
    /// The account.
    pub account: AccountId,
    /// Who holds it.
    pub holder: String,
    /// When it lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

impl RunLock {
    /// Whether this lock keeps `holder` out at `now`: another holder's lease has not lapsed.
    pub fn excludes(&self, holder: &str, now: DateTime<Utc>) -> bool {
        self.holder != holder && self.expires_at > now
    }
}

/// Our own records.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Store: Send + Sync {
    /// A short name for messages (`sqlite`, `in-memory`).
    fn name(&self) -> String;

    /// Reads a local snapshot: positions of the scope (any state) and their intents, stamped
    /// `as_of`.
    ///
    /// # Errors
    /// Any [`StoreError`]; never a partial snapshot.
    async fn load(&self, scope: &Scope, as_of: DateTime<Utc>) -> Result<LocalSnapshot, StoreError>;

    /// Applies a batch atomically: every change and audit record, or none. A change that names
    /// an absent position or target fails the whole batch with `NotFound`.
    ///
    /// # Errors
    /// Any [`StoreError`]; after an error nothing of the batch is written.
    async fn apply(&self, batch: &ChangeBatch) -> Result<(), StoreError>;

    /// The audit log, oldest first; only one run's records when `run` is given.
    ///
    /// # Errors
    /// Any [`StoreError`].
    async fn audit_log(&self, run: Option<RunId>) -> Result<Vec<AuditRecord>, StoreError>;

    /// Takes the account's run lock for `lease`, or renews it for the same holder. `Ok(None)`
    /// when another holder has an unexpired lock.
    ///
    /// # Errors
    /// Any [`StoreError`].
    async fn acquire_lock(
        &self,
        account: &AccountId,
        holder: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> Result<Option<RunLock>, StoreError>;

    /// Releases the lock if `holder` holds it; otherwise does nothing.
    ///
    /// # Errors
    /// Any [`StoreError`].
    async fn release_lock(&self, account: &AccountId, holder: &str) -> Result<(), StoreError>;
}
