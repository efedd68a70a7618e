//! The [`Reconciler`]: reads both sides, diffs, plans, and applies an approved plan under the
//! accounts' run locks, carrying out only the actions a fresh read still justifies.

use crate::diff::{DiffError, DiffOptions, diff};
use crate::executor::{ApplyOptions, ApplyReport, execute};
use crate::ids::AccountId;
use crate::model::PositionState;
use crate::plan::{Plan, Policy, plan};
use crate::ports::{Broker, BrokerError, LockAttempt, Store, StoreError};
use crate::report::Report;
use crate::snapshot::{BrokerSnapshot, LocalSnapshot};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::BTreeSet;

/// A run that could not go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// Reading or writing the broker failed.
    #[error("broker read failed: {0}")]
    Broker(#[from] BrokerError),
    /// Reading or writing the store failed.
    #[error("store failed: {0}")]
    Store(#[from] StoreError),
    /// The diff failed.
    #[error(transparent)]
    Diff(#[from] DiffError),
    /// Another run holds an account's lock.
    #[error("account {account} is locked by another run ({holder}) until {until}")]
    Locked {
        /// The account.
        account: AccountId,
        /// Who holds it.
        holder: String,
        /// Until when, unless renewed.
        until: DateTime<Utc>,
    },
    /// A plan or a snapshot could not be written as JSON.
    #[error("writing JSON failed: {0}")]
    Json(String),
}

/// Reads a broker snapshot: working orders, history since `since` and holdings of each account.
/// Holdings are unknown (`None`) when the broker answers `Unsupported` for them.
///
/// # Errors
/// The first [`BrokerError`]; a failed read is never taken as empty.
pub async fn read_broker(
    broker: &dyn Broker,
    accounts: &[AccountId],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<BrokerSnapshot, BrokerError> {
    let mut snapshot = BrokerSnapshot::new(now);
    // A broker that cannot report holdings at all leaves them unknown (never flat); any other
    // failure aborts the read.
    let mut positions = Some(Vec::new());
    for a in accounts {
        let mut seen = BTreeSet::new();
        for o in broker.working_orders(a).await? {
            seen.insert(o.id.clone());
            snapshot.orders.push(o);
        }
        for o in broker.order_history(a, since).await? {
            if !seen.contains(&o.id) {
                snapshot.orders.push(o);
            }
        }
        match broker.positions(a).await {
            Ok(ps) => {
                if let Some(all) = &mut positions {
                    all.extend(ps);
                }
            }
            Err(BrokerError::Unsupported { .. }) => positions = None,
            Err(e) => return Err(e),
        }
    }
    snapshot.positions = positions;
    Ok(snapshot)
}

/// Reads both sides, diffs, plans and applies, with the safety of DESIGN §5.
pub struct Reconciler<'a> {
    broker: &'a dyn Broker,
    store: &'a dyn Store,
    /// Scope and grace.
    pub options: DiffOptions,
    /// Which fixes, and the rails.
    pub policy: Policy,
    /// How far before the oldest open position order history is read. Default one day.
    pub lookback: TimeDelta,
    /// How long a run lock lasts. Default ten minutes: longer than any run, short enough that a
    /// crashed run does not block the next scheduled one.
    pub lease: TimeDelta,
}

impl<'a> Reconciler<'a> {
    /// A reconciler with default options and a report-only policy.
    pub fn new(broker: &'a dyn Broker, store: &'a dyn Store) -> Self {
        Self {
            broker,
            store,
            options: DiffOptions::default(),
            policy: Policy::report_only(),
            lookback: TimeDelta::days(1),
            lease: TimeDelta::minutes(10),
        }
    }

    /// Sets the diff options.
    #[must_use]
    pub fn with_options(mut self, options: DiffOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the policy.
    #[must_use]
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    async fn accounts(&self) -> Result<Vec<AccountId>, RunError> {
        if self.options.scope.accounts.is_empty() {
            Ok(self.broker.accounts().await?)
        } else {
            Ok(self.options.scope.accounts.iter().cloned().collect())
        }
    }

    /// Reads both sides as of `now`.
    ///
    /// # Errors
    /// [`RunError`] if either read fails; nothing is taken as empty.
    pub async fn read(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(LocalSnapshot, BrokerSnapshot), RunError> {
        let local = self.store.load(&self.options.scope, now).await?;
        let oldest = local
            .positions
            .iter()
            .filter(|p| p.state != PositionState::Closed)
            .flat_map(|p| {
                p.opened_at
                    .into_iter()
                    .chain(p.targets.iter().filter_map(|t| t.placed_at))
            })
            .min()
            .unwrap_or(now);
        let since = oldest - self.lookback;
        let accounts = self.accounts().await?;
        let broker = read_broker(self.broker, &accounts, since, now).await?;
        Ok((local, broker))
    }

    /// Reads both sides and diffs them.
    ///
    /// # Errors
    /// [`RunError`] if a read or the diff fails.
    pub async fn diff(&self, now: DateTime<Utc>) -> Result<Report, RunError> {
        Ok(self.read_and_diff(now).await?.2)
    }

    /// Reads both sides and diffs them as of `now`, keeping the snapshots.
    async fn read_and_diff(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(LocalSnapshot, BrokerSnapshot, Report), RunError> {
        let (local, broker) = self.read(now).await?;
        let mut options = self.options.clone();
        options.now = Some(now);
        let report = diff(&local, &broker, &options)?;
        Ok((local, broker, report))
    }

    /// Reads, diffs and plans.
    ///
    /// # Errors
    /// [`RunError`] if a read or the diff fails.
    pub async fn plan(&self, now: DateTime<Utc>) -> Result<(Report, Plan), RunError> {
        let (local, broker, report) = self.read_and_diff(now).await?;
        let mut p = plan(&report, &self.policy);
        p.fingerprint =
            Some(crate::fingerprint(&local, &broker).map_err(|e| RunError::Json(e.to_string()))?);
        Ok((report, p))
    }

    /// Applies an approved plan: takes the accounts' run locks, re-reads both sides, re-diffs
    /// and carries out only the approved actions a fresh plan still justifies, then verifies.
    ///
    /// # Errors
    /// [`RunError`] if a lock is held elsewhere or a read fails; action failures are results.
    pub async fn apply(
        &self,
        approved: &Plan,
        options: &ApplyOptions,
    ) -> Result<ApplyReport, RunError> {
        let accounts = self.accounts().await?;
        let holder = options.run_id.as_str();
        let mut held = Vec::new();
        if !options.dry_run {
            for a in &accounts {
                match self
                    .store
                    .acquire_lock(a, holder, options.now, self.lease)
                    .await
                {
                    Ok(LockAttempt::Acquired(_)) => held.push(a.clone()),
                    Ok(LockAttempt::Held(lock)) => {
                        self.release(&held, holder).await;
                        return Err(RunError::Locked {
                            account: a.clone(),
                            holder: lock.holder,
                            until: lock.expires_at,
                        });
                    }
                    Err(e) => {
                        self.release(&held, holder).await;
                        return Err(e.into());
                    }
                }
            }
        }
        let result = self.apply_locked(approved, options).await;
        self.release(&held, holder).await;
        result
    }

    async fn release(&self, accounts: &[AccountId], holder: &str) {
        for a in accounts {
            if let Err(e) = self.store.release_lock(a, holder).await {
                tracing::warn!(account = %a, error = %e, "releasing the run lock failed; it lapses with its lease");
            }
        }
    }

    async fn apply_locked(
        &self,
        approved: &Plan,
        options: &ApplyOptions,
    ) -> Result<ApplyReport, RunError> {
        let (_, _, report) = self.read_and_diff(options.now).await?;
        let fresh = plan(&report, &approved.policy);
        let mut stale = Vec::new();
        let mut to_run = Vec::new();
        for a in &approved.actions {
            match fresh.get(&a.key) {
                Some(f) if f.action == a.action => to_run.push(f.clone()),
                _ => stale.push(a.key.clone()),
            }
        }
        let run = Plan {
            actions: to_run,
            ..fresh
        };
        let mut out = execute(&run, self.broker, self.store, options).await;
        out.stale = stale;
        if !options.dry_run {
            out.verify = Some(self.diff(options.now).await?);
        }
        Ok(out)
    }
}
