//! The store port: our own records, written in atomic batches with their audit records, and the
//! per-account run lock.

use crate::ids::{AccountId, ClientOrderId, OrderId, PositionId, RunId, TargetKey};
use crate::model::{Fill, Intent, Position, PositionState, TargetStatus};
use crate::scope::Scope;
use crate::snapshot::LocalSnapshot;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
    /// An extension of the change set: a target's new expected prices (a retarget). Both are
    /// set as given (`None` clears one).
    SetTargetPrices {
        /// The position.
        position_id: PositionId,
        /// The target.
        target_key: TargetKey,
        /// The new limit price.
        #[serde(with = "crate::decimal::option", default)]
        limit_price: Option<rust_decimal::Decimal>,
        /// The new stop price.
        #[serde(with = "crate::decimal::option", default)]
        stop_price: Option<rust_decimal::Decimal>,
    },
    /// Move a position to another lifecycle state.
    SetPositionState {
        /// The position.
        position_id: PositionId,
        /// The new state.
        state: PositionState,
    },
    /// Record the broker fill that closed a position.
    RecordClosing {
        /// The position.
        position_id: PositionId,
        /// The closing fill.
        closing: Fill,
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

crate::spelling::spelled! {
    /// What became of an action.
    pub enum Outcome("outcome") {
        /// Done now.
        Applied = "applied",
        /// Found already done.
        AlreadyDone = "already_done",
        /// Would be done (dry run).
        WouldApply = "would_apply",
        /// Not done, by a rule (a dependency failed, the fix no longer applies).
        Skipped = "skipped",
        /// Not done, because the evidence could not be confirmed.
        Uncertain = "uncertain",
        /// Tried and failed.
        Failed = "failed",
        /// About to be sent to the broker: written before the call, so the audit log names
        /// every order the tool touched, even when the process dies mid-call.
        Started = "started",
    }
}

impl Outcome {
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

/// Who holds (or asks for) a run lock: enough for a refused run to say who and since when, and
/// for an operator to see which process it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// The run.
    pub run_id: RunId,
    /// The machine it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: u32,
    /// When it took the lock.
    pub since: DateTime<Utc>,
}

impl LockHolder {
    /// A holder for `run_id` in this process on `host`, from `since`.
    pub fn new(run_id: RunId, host: impl Into<String>, since: DateTime<Utc>) -> Self {
        Self {
            run_id,
            host: host.into(),
            pid: std::process::id(),
            since,
        }
    }
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run {} (pid {} on {}, since {})",
            self.run_id,
            self.pid,
            self.host,
            self.since.to_rfc3339()
        )
    }
}

/// An account's run lock and its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLock {
    /// The account.
    pub account: AccountId,
    /// Who holds it.
    pub holder: LockHolder,
}

/// The answer to a request for a run lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockAttempt {
    /// The lock is ours.
    Acquired(RunLock),
    /// Another run holds it, alive: who, and since when.
    Held(RunLock),
}

impl LockAttempt {
    /// The lock, if it is ours.
    pub fn acquired(self) -> Option<RunLock> {
        match self {
            Self::Acquired(l) => Some(l),
            Self::Held(_) => None,
        }
    }
}

/// What an operator's unlock found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unlock {
    /// Nobody held the account.
    NotLocked,
    /// A record of a holder that is gone was cleared.
    Cleared(RunLock),
    /// The holder is alive: nothing was done.
    HeldByLiveHolder(RunLock),
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

    /// Takes the account's run lock for `holder`, or confirms it when `holder`'s run holds it
    /// already. [`LockAttempt::Held`], naming the holder, when another run holds it. The lock
    /// lives as long as its holder: a holder that dies (killed, crashed, its connection gone)
    /// frees it at once, with no lease to wait out.
    ///
    /// # Errors
    /// Any [`StoreError`].
    async fn acquire_lock(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<LockAttempt, StoreError>;

    /// Releases the lock if `holder`'s run holds it; otherwise does nothing.
    ///
    /// # Errors
    /// Any [`StoreError`].
    async fn release_lock(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<(), StoreError>;

    /// For operators: clears what is left of a lock whose holder is gone, and refuses
    /// ([`Unlock::HeldByLiveHolder`]) while the holder is alive.
    ///
    /// # Errors
    /// Any [`StoreError`].
    async fn unlock(&self, account: &AccountId) -> Result<Unlock, StoreError>;
}
