//! The [`Reconciler`]: reads both sides, diffs, plans, and applies an approved plan under the
//! accounts' run locks: it first heals the intents a dead run left behind, then carries out only
//! the actions a fresh read still justifies.

use crate::diff::{DiffError, DiffOptions, diff};
use crate::executor::{ApplyOptions, ApplyReport, execute};
use crate::ids::{AccountId, ClientOrderId, PositionId, TargetKey};
use crate::model::{Intent, PositionState, TargetStatus};
use crate::plan::{Action, Plan, Policy, plan};
use crate::ports::{
    AuditRecord, Broker, BrokerError, ChangeBatch, LocalChange, LockAttempt, LockHolder, Outcome,
    Store, StoreError,
};
use crate::report::Report;
use crate::snapshot::{BrokerSnapshot, LocalSnapshot};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::{BTreeMap, BTreeSet};

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
    #[error("account {account} is locked by another run: {holder}")]
    Locked {
        /// The account.
        account: AccountId,
        /// Who holds it, and since when.
        holder: LockHolder,
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
    /// How long after an intent was written its order may still be on its way to the broker
    /// (sent by a process killed a moment later: the request can sit in the kernel's socket
    /// buffer). Healing judges an intent's order absent only once this has passed since the
    /// intent; it waits for the rest, at most this long. Default 5 s.
    pub settle: TimeDelta,
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
            settle: TimeDelta::seconds(5),
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

    /// The policy as this broker can carry it out: OCO exits only where the broker takes them.
    fn effective(&self, policy: &Policy) -> Policy {
        let mut p = policy.clone();
        p.oco &= self.broker.supports_oco();
        p
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
        let mut p = plan(&report, &self.effective(&self.policy));
        p.fingerprint =
            Some(crate::fingerprint(&local, &broker).map_err(|e| RunError::Json(e.to_string()))?);
        Ok((report, p))
    }

    /// Applies an approved plan: takes the accounts' run locks, heals the intents a dead run
    /// left ([`Reconciler::heal`]), re-reads both sides, re-diffs and carries out the approved
    /// actions a fresh plan still justifies, then verifies. Placements for targets whose
    /// intents healing found absent run too: they finish the dead run's own work.
    ///
    /// # Errors
    /// [`RunError`] if a lock is held elsewhere or a read fails; action failures are results.
    pub async fn apply(
        &self,
        approved: &Plan,
        options: &ApplyOptions,
    ) -> Result<ApplyReport, RunError> {
        let accounts = self.accounts().await?;
        let holder = &options.holder;
        let mut held = Vec::new();
        if !options.dry_run {
            for a in &accounts {
                match self.store.acquire_lock(a, holder).await {
                    Ok(LockAttempt::Acquired(_)) => held.push(a.clone()),
                    Ok(LockAttempt::Held(lock)) => {
                        self.release(&held, holder).await;
                        return Err(RunError::Locked {
                            account: a.clone(),
                            holder: lock.holder,
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

    async fn release(&self, accounts: &[AccountId], holder: &LockHolder) {
        for a in accounts {
            if let Err(e) = self.store.release_lock(a, holder).await {
                tracing::warn!(account = %a, error = %e, "releasing the run lock failed; it ends with this process");
            }
        }
    }

    async fn apply_locked(
        &self,
        approved: &Plan,
        options: &ApplyOptions,
    ) -> Result<ApplyReport, RunError> {
        let healing = if options.dry_run {
            Healing::default()
        } else {
            self.heal(options).await?
        };
        let (_, _, report) = self.read_and_diff(options.now).await?;
        let fresh = plan(&report, &self.effective(&approved.policy));
        let mut stale = Vec::new();
        let mut to_run = Vec::new();
        for a in &approved.actions {
            match fresh.get(&a.key) {
                Some(f) if f.action.same_as(&a.action) => to_run.push(f.clone()),
                _ if healing.achieved(&a.action) => {}
                _ => stale.push(a.key.clone()),
            }
        }
        for f in &fresh.actions {
            let absent = |k: &TargetKey| healing.absent.contains(&(f.position(), k.clone()));
            let dead_runs_own = match &f.action {
                Action::PlaceTarget { target_key, .. } => absent(target_key),
                Action::PlaceOco {
                    take_profit,
                    stop_loss,
                    ..
                } => absent(take_profit) && absent(stop_loss),
                _ => false,
            };
            if dead_runs_own && !to_run.iter().any(|r| r.key == f.key) {
                to_run.push(f.clone());
            }
        }
        let run = Plan {
            actions: to_run,
            ..fresh
        };
        let mut out = execute(&run, self.broker, self.store, options).await;
        out.results.splice(0..0, healing.results);
        out.stale = stale;
        if !options.dry_run {
            out.verify = Some(self.diff(options.now).await?);
        }
        Ok(out)
    }

    /// Heals the intents a dead run left: every intent in scope, once the lock is ours, belongs
    /// to a run that is no longer running. After the settle time, each is looked up at the
    /// broker by its client order id:
    /// - found, no target references it, and its target has no order of its own: the target is
    ///   linked to it (whatever its status: a filled or rejected order is then judged as the
    ///   target's order);
    /// - found otherwise: the intent is spent and dropped (the order is left to the diff's
    ///   rules: matched, a conflict, or an orphan);
    /// - confirmed absent: the intent is dropped, and its target is placed again in this run;
    /// - the lookup failed: nothing is done on uncertain evidence.
    ///
    /// Each outcome is recorded in the audit log with the key `heal:<client order id>`.
    ///
    /// # Errors
    /// [`RunError::Store`] if the records cannot be read.
    pub async fn heal(&self, options: &ApplyOptions) -> Result<Healing, RunError> {
        let mut healing = Healing::default();
        if !self.broker.supports_client_order_id() {
            return Ok(healing);
        }
        let local = self.store.load(&self.options.scope, options.now).await?;
        if local.intents.is_empty() {
            return Ok(healing);
        }
        if let Some(newest) = local.intents.iter().map(|i| i.created_at).max() {
            let wait = (newest + self.settle) - options.now;
            if wait > TimeDelta::zero() {
                let wait = wait.min(self.settle).to_std().unwrap_or_default();
                tracing::debug!(
                    ?wait,
                    "letting the last intents' orders settle before looking them up"
                );
                futures_timer::Delay::new(wait).await;
            }
        }
        let positions: BTreeMap<&PositionId, &crate::model::Position> =
            local.positions.iter().map(|p| (&p.id, p)).collect();
        // As in the diff: a closed position's targets reference nothing (DESIGN §4).
        let referenced: BTreeSet<&crate::ids::OrderId> = local
            .positions
            .iter()
            .filter(|p| p.state != crate::model::PositionState::Closed)
            .flat_map(|p| &p.targets)
            .filter(|t| t.status == TargetStatus::Active)
            .filter_map(|t| t.order_id.as_ref())
            .collect();
        for intent in &local.intents {
            let key = format!("heal:{}", intent.client_order_id);
            let (outcome, detail, changes) = match positions.get(&intent.position_id) {
                None => (
                    Outcome::Skipped,
                    format!("position {} is not in the records", intent.position_id),
                    Vec::new(),
                ),
                Some(p) => self.heal_one(p, intent, &referenced, &mut healing).await,
            };
            let audit = AuditRecord {
                run_id: options.run_id.clone(),
                at: options.now,
                action_key: key.clone(),
                outcome,
                detail: detail.clone(),
            };
            let batch = ChangeBatch {
                changes,
                audit: vec![audit],
            };
            let (outcome, detail) = match self.store.apply(&batch).await {
                Ok(()) => (outcome, detail),
                Err(e) => {
                    healing.resolved.remove(&intent.client_order_id);
                    healing
                        .absent
                        .remove(&(intent.position_id.clone(), intent.target_key.clone()));
                    (
                        Outcome::Failed,
                        format!("{detail}; recording it failed: {e}"),
                    )
                }
            };
            healing.results.push(crate::executor::ActionResult {
                key,
                outcome,
                detail,
            });
        }
        Ok(healing)
    }

    async fn heal_one(
        &self,
        p: &crate::model::Position,
        intent: &Intent,
        referenced: &BTreeSet<&crate::ids::OrderId>,
        healing: &mut Healing,
    ) -> (Outcome, String, Vec<LocalChange>) {
        let cid = &intent.client_order_id;
        let drop = LocalChange::DropIntent {
            client_order_id: cid.clone(),
        };
        let target = p.targets.iter().find(|t| t.key == intent.target_key);
        match self.broker.find_by_client_order_id(&p.account, cid).await {
            Err(e) => (
                Outcome::Uncertain,
                format!("looking {cid} up failed: {e}; the intent is kept"),
                Vec::new(),
            ),
            Ok(None) => {
                healing.resolved.insert(cid.clone());
                for key in std::iter::once(&intent.target_key).chain(&intent.oco_with) {
                    healing
                        .absent
                        .insert((intent.position_id.clone(), key.clone()));
                }
                (
                    Outcome::Applied,
                    format!("no order carries {cid}: the intent is dropped"),
                    vec![drop],
                )
            }
            Ok(Some(o)) if intent.oco_with.is_some() => {
                healing.resolved.insert(cid.clone());
                self.heal_oco(p, intent, o, referenced).await
            }
            Ok(Some(o)) => {
                healing.resolved.insert(cid.clone());
                // The order is the target's unless a target references it already (then the
                // intent is spent, as the diff says). A replacement is the target's too while
                // the target still references the order it replaced (killed before the link).
                let free = !referenced.contains(&o.id)
                    && target.is_some_and(|t| {
                        t.status == TargetStatus::Unplaced
                            || (t.status == TargetStatus::Active
                                && (t.order_id.is_none()
                                    || (o.replaces.is_some() && o.replaces == t.order_id)))
                    });
                if free {
                    (
                        Outcome::Applied,
                        format!("order {} carries {cid}: linked", o.id),
                        vec![
                            LocalChange::LinkTarget {
                                position_id: intent.position_id.clone(),
                                target_key: intent.target_key.clone(),
                                order_id: o.id.clone(),
                                client_order_id: Some(cid.clone()),
                                placed_at: Some(intent.created_at),
                            },
                            drop,
                        ],
                    )
                } else {
                    (
                        Outcome::Applied,
                        format!(
                            "order {} carries {cid} and is referenced already: the intent is spent",
                            o.id
                        ),
                        vec![drop],
                    )
                }
            }
        }
    }
}

impl Reconciler<'_> {
    /// Heals an OCO intent whose order was found: both targets are linked to their exits when
    /// both are found and free; a group the lookup cannot see whole is left uncertain.
    async fn heal_oco(
        &self,
        p: &crate::model::Position,
        intent: &Intent,
        found: crate::model::Order,
        referenced: &BTreeSet<&crate::ids::OrderId>,
    ) -> (Outcome, String, Vec<LocalChange>) {
        let cid = &intent.client_order_id;
        let drop = LocalChange::DropIntent {
            client_order_id: cid.clone(),
        };
        if referenced.contains(&found.id) {
            return (
                Outcome::Applied,
                format!(
                    "order {} carries {cid} and is referenced already: the intent is spent",
                    found.id
                ),
                vec![drop],
            );
        }
        let group = match self
            .broker
            .find_group_by_client_order_id(&p.account, cid)
            .await
        {
            Ok(g) => g,
            Err(e) => {
                return (
                    Outcome::Uncertain,
                    format!("looking {cid}'s group up failed: {e}; the intent is kept"),
                    Vec::new(),
                );
            }
        };
        let (Some(tp), Some(sl), Some(sl_key)) = (group.first(), group.get(1), &intent.oco_with)
        else {
            return (
                Outcome::Uncertain,
                format!(
                    "order {} carries {cid} but its stop is not to be seen; the intent is kept",
                    found.id
                ),
                Vec::new(),
            );
        };
        let link = |key: &TargetKey, o: &crate::model::Order| LocalChange::LinkTarget {
            position_id: intent.position_id.clone(),
            target_key: key.clone(),
            order_id: o.id.clone(),
            client_order_id: o.client_order_id.clone(),
            placed_at: Some(intent.created_at),
        };
        (
            Outcome::Applied,
            format!("OCO order {} / {} carries {cid}: linked", tp.id, sl.id),
            vec![link(&intent.target_key, tp), link(sl_key, sl), drop],
        )
    }
}

/// What healing did: one result per intent, and the targets whose intents' orders were
/// confirmed absent (placed again in the same run).
#[derive(Debug, Default)]
pub struct Healing {
    /// One result per intent.
    pub results: Vec<crate::executor::ActionResult>,
    /// Targets whose intent's order never reached the broker.
    pub absent: BTreeSet<(PositionId, TargetKey)>,
    /// Intents healing resolved (linked or dropped).
    pub resolved: BTreeSet<ClientOrderId>,
}

impl Healing {
    /// Whether healing already did what a planned action would do: drop or link an intent it
    /// resolved. Such an action is not stale; it is done.
    fn achieved(&self, action: &Action) -> bool {
        match action {
            Action::DropIntent { client_order_id }
            | Action::Link {
                resolves_intent: Some(client_order_id),
                ..
            } => self.resolved.contains(client_order_id),
            _ => false,
        }
    }
}
