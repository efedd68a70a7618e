//! What a run looks at: accounts, underlyings and local position states. Every reader of local
//! records and every rule of the diff asks these questions here, so the answer is the same
//! everywhere.

use crate::ids::{AccountId, PositionId};
use crate::model::{Position, PositionState};
use std::collections::BTreeSet;

/// Which accounts and underlyings a run looks at. Empty sets mean "all".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Accounts in scope; empty means every account.
    pub accounts: BTreeSet<AccountId>,
    /// Underlyings in scope; empty means every underlying.
    pub underlyings: BTreeSet<String>,
    /// Local position states to load; empty means every state. The diff itself only ever looks
    /// at pending, open and closing positions.
    pub states: BTreeSet<PositionState>,
    /// Positions to report on and fix; empty means every position. This narrows the report and
    /// so the plan, not what is read: the other positions' orders must still be seen, or they
    /// would look orphaned. Entries that belong to no position (orphaned orders, untracked
    /// holdings, quantity mismatches) are left out when it is set.
    pub positions: BTreeSet<PositionId>,
}

impl Scope {
    /// Everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// Adds an account to the scope.
    #[must_use]
    pub fn with_account(mut self, account: impl Into<AccountId>) -> Self {
        self.accounts.insert(account.into());
        self
    }

    /// Adds an underlying to the scope.
    #[must_use]
    pub fn with_underlying(mut self, underlying: impl Into<String>) -> Self {
        self.underlyings.insert(underlying.into());
        self
    }

    /// Adds a position to report on and fix (the others are still read).
    #[must_use]
    pub fn with_position(mut self, id: impl Into<PositionId>) -> Self {
        self.positions.insert(id.into());
        self
    }

    /// Adds a position state to the scope.
    #[must_use]
    pub fn with_state(mut self, state: PositionState) -> Self {
        self.states.insert(state);
        self
    }

    /// Whether the scope names no account, underlying or state.
    pub fn is_everything(&self) -> bool {
        self.accounts.is_empty() && self.underlyings.is_empty() && self.states.is_empty()
    }

    /// Whether an (account, underlying) pair is in scope: broker orders and holdings are judged
    /// by this alone.
    pub fn includes(&self, account: &AccountId, underlying: &str) -> bool {
        (self.accounts.is_empty() || self.accounts.contains(account))
            && (self.underlyings.is_empty() || self.underlyings.contains(underlying))
    }

    /// Whether a local position with this account, underlying and state is in scope.
    pub fn includes_position_parts(
        &self,
        account: &AccountId,
        underlying: &str,
        state: PositionState,
    ) -> bool {
        self.includes(account, underlying)
            && (self.states.is_empty() || self.states.contains(&state))
    }

    /// Whether a local position is in scope: its account, underlying and state.
    pub fn includes_position(&self, p: &Position) -> bool {
        self.includes_position_parts(&p.account, &p.underlying, p.state)
    }

    /// Whether an intent is in scope. An intent follows its position (given as account,
    /// underlying and state); an intent whose position is unknown belongs to no account, so only
    /// a run that looks at everything sees it.
    pub fn includes_intent(&self, position: Option<(&AccountId, &str, PositionState)>) -> bool {
        match position {
            Some((account, underlying, state)) => {
                self.includes_position_parts(account, underlying, state)
            }
            None => self.is_everything(),
        }
    }
}
