//! `reconcile-core` keeps a trading system's records — positions and the protective orders that
//! guard them — in step with what the broker really holds. It finds every disagreement, explains
//! it, proposes a plan, and applies it safely.
//!
//! The core is pure: no HTTP, no SQL, no runtime. Brokers and stores plug in through the
//! [`Broker`] and [`Store`] ports.
//!
//! ```
//! use reconcile_core::{diff, plan, BrokerSnapshot, DiffOptions, LocalSnapshot, Policy};
//!
//! let local = LocalSnapshot::from_json(r#"{
//!   "format": "reconcile.local/v1", "as_of": "2025-11-07T15:00:00Z",
//!   "positions": [{"id": "45", "account": "5WT00001", "underlying": "QQQ", "state": "open",
//!     "targets": [{"key": "call_spread", "status": "active", "order_id": "412345678"}]}]
//! }"#).unwrap();
//! let broker = BrokerSnapshot::from_json(r#"{
//!   "format": "reconcile.broker/v1", "as_of": "2025-11-07T15:00:00Z",
//!   "orders": [{"id": "412345678", "account": "5WT00001", "underlying": "QQQ",
//!               "status": "cancelled"}]
//! }"#).unwrap();
//!
//! let report = diff(&local, &broker, &DiffOptions::default()).unwrap();
//! assert_eq!(report.summary.invalid, 1); // cancelled by hand
//! let plan = plan(&report, &Policy { clear_invalid: true, ..Policy::report_only() });
//! assert_eq!(plan.actions[0].key, "clear:45:call_spread:412345678");
//! ```
//!
//! Where things live:
//!
//! | module | what |
//! |---|---|
//! | [`model`], [`ids`], [`symbol`], [`decimal`] | the domain types, exact decimals, canonical OCC symbols |
//! | [`snapshot`], [`report`] | the snapshot v1 and report v1 formats |
//! | [`scope`] | what a run looks at (accounts, underlyings, states, intents) |
//! | [`diff`] | the diff: an index, then one function per rule family (see its table) |
//! | [`plan`] | the planner: one function per fix, then the rails |
//! | [`executor`] | carrying a plan out, journal-first |
//! | [`reconciler`] | read, diff, plan and apply under the run locks |
//! | [`ports`] | the `Broker` and `Store` traits |
//! | [`broker`] | decorators: `Paced`, `Retrying`, `ReadOnly` |
//! | [`memory`] | the in-memory broker and store |
//! | `testkit` | builders, strategies, `Faulty`/`Recording`, the conformance suites |
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

/// Declares a unit type that serializes as one fixed `format` string and refuses any other.
macro_rules! format_tag {
    ($(#[$doc:meta])* $name:ident, $value:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name;

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($value)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let tag = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                if tag == $value {
                    Ok(Self)
                } else {
                    Err(serde::de::Error::custom(format!("expected {:?}, found {:?}", $value, tag)))
                }
            }
        }
    };
}
pub(crate) use format_tag;

pub mod broker;
pub mod decimal;
pub mod diff;
pub mod executor;
mod fasthash;
#[doc(hidden)]
pub mod fuzzing;
pub mod ids;
pub mod memory;
pub mod model;
pub mod plan;
pub mod ports;
pub mod reconciler;
pub mod report;
pub mod retarget;
pub mod scope;
pub mod snapshot;
pub mod spelling;
mod stream;
pub mod symbol;
mod text;
mod time;

#[cfg(feature = "blocking")]
pub mod blocking;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use diff::{DiffError, DiffOptions, diff};
pub use executor::{ActionResult, ApplyOptions, ApplyReport, Progress, StopFlag, execute};
pub use ids::{AccountId, ClientOrderId, OrderId, PositionId, RunId, TargetKey};
pub use model::{
    BrokerPosition, Fill, Intent, Order, OrderLeg, OrderStatus, OrderType, Position, PositionLeg,
    PositionState, ProfitTarget, Side, TargetLeg, TargetStatus, TimeInForce,
};
pub use plan::{Action, ActionKind, BracketPolicy, Plan, PlannedAction, Policy, plan};
pub use ports::{
    AuditRecord, Broker, BrokerError, Call, CancelOutcome, ChangeBatch, LocalChange, LockAttempt,
    LockHolder, OcoOrders, Outcome, Page, PageToken, PlaceOrder, ReplaceOrder, RunLock, Store,
    StoreError, Unlock,
};
pub use reconciler::{Reconciler, RunError, read_broker};
pub use report::Report;
pub use scope::Scope;
pub use snapshot::{BrokerSnapshot, LocalSnapshot, SnapshotError};
pub use symbol::Symbol;

/// A fingerprint of two snapshots (FNV-1a over their canonical JSON), written into a plan so an
/// apply can tell whether the world moved since the plan was made.
///
/// # Errors
/// A serialization error (none is known to be possible for a snapshot).
pub fn fingerprint(
    local: &LocalSnapshot,
    broker: &BrokerSnapshot,
) -> Result<String, serde_json::Error> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for doc in [local.to_json()?, broker.to_json()?] {
        for b in doc.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    Ok(format!("fnv1a64:{h:016x}"))
}
