//! The diff (DESIGN §4): a pure, deterministic comparison of a local and a broker snapshot. It
//! never reads the wall clock: "now" is the broker snapshot's `as_of` unless the caller gives one.
//!
//! [`Index`] is built once from both snapshots; then each family of rules is one function that
//! reads the index and returns its findings, in the order the rules depend on each other:
//!
//! | rules | where |
//! |---|---|
//! | referenced orders: matched, drifted, invalid, in flight, conflicts | [`referenced`] |
//! | drift: which field differs first | [`drift`] |
//! | adoption: by replacement, by client order id, by legs | [`adoption`] |
//! | unreferenced working orders: in flight within grace, else orphaned | [`unreferenced`] |
//! | unplaced targets: in flight, missing, not due | [`unplaced`] |
//! | intents: waiting, spent, stale | [`intents`] |
//! | holdings: stale positions, pending filled, untracked, mismatches | [`holdings`] |

mod adoption;
mod drift;
mod holdings;
mod index;
mod intents;
mod referenced;
mod unplaced;
mod unreferenced;

use crate::fasthash::FxSet;
use crate::ids::AccountId;
use crate::report::Report;
use crate::scope::Scope;
use crate::snapshot::{BrokerSnapshot, LocalSnapshot};
use crate::symbol::Symbol;
use chrono::{DateTime, TimeDelta, Utc};
use index::Index;
pub(crate) use index::Split;

/// Options of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffOptions {
    /// What to look at.
    pub scope: Scope,
    /// How long a just-sent order may be invisible before it counts as missing. Default 60 s:
    /// long enough for a broker to list a new order, short enough to catch a lost one the same
    /// minute.
    pub grace: TimeDelta,
    /// The instant to judge by; the broker snapshot's `as_of` when `None`.
    pub now: Option<DateTime<Utc>>,
}

impl Default for DiffOptions {
    fn default() -> Self {
        Self {
            scope: Scope::all(),
            grace: TimeDelta::seconds(60),
            now: None,
        }
    }
}

/// A diff that could not be completed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiffError {
    /// Quantities of one symbol add up beyond what a decimal holds.
    #[error("quantities of {symbol} in account {account} overflow when added up")]
    Overflow {
        /// The account.
        account: AccountId,
        /// The symbol.
        symbol: Symbol,
    },
}

/// Compares what the records say with what the broker says.
///
/// # Errors
/// [`DiffError::Overflow`] if quantities of one symbol cannot be added up.
pub fn diff(
    local: &LocalSnapshot,
    broker: &BrokerSnapshot,
    options: &DiffOptions,
) -> Result<Report, DiffError> {
    diff_split(local, broker, options, Split::Auto)
}

/// [`diff`], with one thread or two as `split` says: the same report either way.
pub(crate) fn diff_split(
    local: &LocalSnapshot,
    broker: &BrokerSnapshot,
    options: &DiffOptions,
    split: Split,
) -> Result<Report, DiffError> {
    let ix = Index::build(local, broker, options, split)?;
    let mut r = Report::empty(ix.now);

    let referenced = referenced::judge(&ix);
    r.matched = referenced.matched;
    r.drifted = referenced.drifted;
    r.invalid = referenced.invalid;
    r.conflicts = referenced::into_conflicts(referenced.conflicts);
    r.in_flight = referenced.in_flight;

    let adoption = adoption::adopt(&ix, &referenced.replacements);
    r.adoptable = adoption.adoptable;

    let loose = unreferenced::judge(&ix, &adoption.unclaimed);
    r.in_flight.extend(loose.in_flight);
    r.orphaned = loose.orphaned;

    let unplaced = unplaced::judge(&ix, &adoption.adopted);
    r.in_flight.extend(unplaced.in_flight);
    r.missing = unplaced.missing;

    let adopted_targets: FxSet<(&str, &str)> = adoption
        .adopted
        .iter()
        .map(|&slot| {
            let (p, t) = ix.at(slot);
            (p.id.as_str(), t.key.as_str())
        })
        .collect();
    let intents = intents::judge(&ix, &unplaced.covering, &adopted_targets);
    r.in_flight.extend(intents.in_flight);
    r.stale_intents = intents.stale;
    r.spent_intents = intents.spent;

    if let Some(h) = holdings::judge(&ix, &adoption.adopted)? {
        r.stale_positions = h.stale_positions;
        r.pending_filled = h.pending_filled;
        r.untracked_holdings = h.untracked;
        r.quantity_mismatches = h.mismatches;
    }

    r.scanned = ix.scanned();
    sort(&mut r);
    r.finish();
    r.narrow_to_positions(&options.scope.positions);
    Ok(r)
}

/// Puts every list in its report order: position id, target key, order id, symbol (ids compared
/// as strings), so the same inputs give the same bytes.
fn sort(r: &mut Report) {
    // matched, drifted, invalid and missing are built walking positions by id and targets by
    // key, so they are sorted already; re-sorting a million entries only chases pointers.
    debug_assert!(
        r.matched
            .is_sorted_by(|a, b| (&a.position_id, &a.target_key) <= (&b.position_id, &b.target_key))
    );
    debug_assert!(
        r.drifted
            .is_sorted_by(|a, b| (&a.position_id, &a.target_key) <= (&b.position_id, &b.target_key))
    );
    debug_assert!(
        r.invalid
            .is_sorted_by(|a, b| (&a.position_id, &a.target_key) <= (&b.position_id, &b.target_key))
    );
    debug_assert!(
        r.missing
            .is_sorted_by(|a, b| (&a.position_id, &a.target_key) <= (&b.position_id, &b.target_key))
    );
    r.adoptable.sort_by(|a, b| {
        (&a.position_id, &a.target_key, &a.order_id).cmp(&(
            &b.position_id,
            &b.target_key,
            &b.order_id,
        ))
    });
    r.in_flight.sort();
    r.in_flight.dedup();
    r.orphaned.sort_by(|a, b| a.order_id.cmp(&b.order_id));
    r.conflicts.sort_by(|a, b| a.order_id.cmp(&b.order_id));
    for c in &mut r.conflicts {
        c.targets.sort();
    }
    r.stale_intents.sort_by(|a, b| {
        (&a.position_id, &a.target_key, &a.client_order_id).cmp(&(
            &b.position_id,
            &b.target_key,
            &b.client_order_id,
        ))
    });
    r.spent_intents
        .sort_by(|a, b| a.client_order_id.cmp(&b.client_order_id));
    r.stale_positions
        .sort_by(|a, b| a.position_id.cmp(&b.position_id));
    r.pending_filled
        .sort_by(|a, b| a.position_id.cmp(&b.position_id));
    r.untracked_holdings
        .sort_by(|a, b| (&a.symbol, &a.account).cmp(&(&b.symbol, &b.account)));
    r.quantity_mismatches
        .sort_by(|a, b| (&a.symbol, &a.account).cmp(&(&b.symbol, &b.account)));
}
