//! The executor (DESIGN §5): carries out a plan against a broker and a store, journal-first,
//! recording every outcome in the audit log. It keeps going past independent failures, and it
//! never acts on evidence it could not confirm.

use crate::diff::{DiffError, DiffOptions, diff};
use crate::ids::{AccountId, ClientOrderId, OrderId, RunId};
use crate::model::{Intent, Order, OrderType, PositionState, TargetStatus, TimeInForce};
use crate::plan::{Action, Plan, PlannedAction, Policy, plan};
use crate::ports::{
    AuditRecord, Broker, BrokerError, CancelOutcome, ChangeBatch, LocalChange, Outcome, PlaceOrder,
    ReplaceOrder, Store, StoreError,
};
use crate::report::{OrderSpec, Report};
use crate::snapshot::{BrokerSnapshot, LocalSnapshot};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How to carry out a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    /// The run's id, written with every audit record and used in client order ids.
    pub run_id: RunId,
    /// The instant to stamp intents and audit records with.
    pub now: DateTime<Utc>,
    /// Touch nothing: report what would be done.
    pub dry_run: bool,
    /// Stop after this many actions, as a crash would (for tests of recovery).
    pub stop_after: Option<usize>,
}

impl ApplyOptions {
    /// Options for a real run.
    pub fn new(run_id: impl Into<RunId>, now: DateTime<Utc>) -> Self {
        Self {
            run_id: run_id.into(),
            now,
            dry_run: false,
            stop_after: None,
        }
    }

    /// The same options as a dry run.
    #[must_use]
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }
}

/// What became of one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    /// The action's key.
    pub key: String,
    /// What became of it.
    pub outcome: Outcome,
    /// Details.
    pub detail: String,
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// The run.
    pub run_id: RunId,
    /// One result per action carried out or tried, in order.
    pub results: Vec<ActionResult>,
    /// Keys of planned actions that a fresh read no longer justified.
    pub stale: Vec<String>,
    /// The report of a verifying re-read, if one was made.
    pub verify: Option<Report>,
}

impl ApplyReport {
    /// How many results had this outcome.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.results.iter().filter(|r| r.outcome == outcome).count()
    }

    /// Whether every action is done (applied or found done).
    pub fn all_done(&self) -> bool {
        self.results.iter().all(|r| r.outcome.is_done())
    }
}

/// Carries out `plan` as given (no re-read): the building block of [`Reconciler::apply`].
pub async fn execute(
    plan: &Plan,
    broker: &dyn Broker,
    store: &dyn Store,
    options: &ApplyOptions,
) -> ApplyReport {
    let mut ex = Executor {
        broker,
        store,
        options,
        done: BTreeMap::new(),
        results: Vec::new(),
    };
    for (n, pa) in plan.actions.iter().enumerate() {
        if options.stop_after == Some(n) {
            break;
        }
        ex.one(n, pa).await;
    }
    ApplyReport {
        run_id: options.run_id.clone(),
        results: ex.results,
        stale: Vec::new(),
        verify: None,
    }
}

struct Executor<'a> {
    broker: &'a dyn Broker,
    store: &'a dyn Store,
    options: &'a ApplyOptions,
    done: BTreeMap<String, Outcome>,
    results: Vec<ActionResult>,
}

/// The result of one action before it is recorded: outcome, detail, local changes.
type Step = (Outcome, String, Vec<LocalChange>);

impl Executor<'_> {
    async fn one(&mut self, n: usize, pa: &PlannedAction) {
        if let Some(dep) = &pa.depends_on {
            let ok = self
                .done
                .get(dep)
                .is_some_and(|o| o.is_done() || *o == Outcome::WouldApply);
            if !ok {
                let detail = format!("depends on {dep}, which is not done");
                self.finish(pa, Outcome::Skipped, detail, Vec::new()).await;
                return;
            }
        }
        if self.options.dry_run {
            self.done.insert(pa.key.clone(), Outcome::WouldApply);
            self.results.push(ActionResult {
                key: pa.key.clone(),
                outcome: Outcome::WouldApply,
                detail: String::new(),
            });
            return;
        }
        let (outcome, detail, changes) = self.step(n, &pa.action).await;
        self.finish(pa, outcome, detail, changes).await;
    }

    /// Writes the changes with the audit record in one batch.
    async fn finish(
        &mut self,
        pa: &PlannedAction,
        outcome: Outcome,
        detail: String,
        changes: Vec<LocalChange>,
    ) {
        let (outcome, detail) = if self.options.dry_run {
            (outcome, detail)
        } else {
            let batch = ChangeBatch {
                changes,
                audit: vec![self.audit(&pa.key, outcome, &detail)],
            };
            match self.store.apply(&batch).await {
                Ok(()) => (outcome, detail),
                Err(e) => (
                    Outcome::Failed,
                    format!("{detail}; recording it failed: {e}"),
                ),
            }
        };
        self.done.insert(pa.key.clone(), outcome);
        self.results.push(ActionResult {
            key: pa.key.clone(),
            outcome,
            detail,
        });
    }

    fn audit(&self, key: &str, outcome: Outcome, detail: &str) -> AuditRecord {
        AuditRecord {
            run_id: self.options.run_id.clone(),
            at: self.options.now,
            action_key: key.to_owned(),
            outcome,
            detail: detail.to_owned(),
        }
    }

    fn client_order_id(&self, n: usize) -> ClientOrderId {
        ClientOrderId::new(format!("rc-{}-{n}", self.options.run_id))
    }

    async fn step(&self, n: usize, action: &Action) -> Step {
        match action {
            Action::Link {
                position_id,
                target_key,
                order_id,
                client_order_id,
                resolves_intent,
            } => {
                let mut changes = vec![LocalChange::LinkTarget {
                    position_id: position_id.clone(),
                    target_key: target_key.clone(),
                    order_id: order_id.clone(),
                    client_order_id: client_order_id.clone(),
                    placed_at: None,
                }];
                if let Some(c) = resolves_intent {
                    changes.push(LocalChange::DropIntent {
                        client_order_id: c.clone(),
                    });
                }
                (
                    Outcome::Applied,
                    format!("linked to order {order_id}"),
                    changes,
                )
            }
            Action::Clear {
                position_id,
                target_key,
                order_id,
                reason,
                account,
            } => {
                let note = format!("order {order_id} {}", reason.as_str());
                let clear = vec![LocalChange::ClearTarget {
                    position_id: position_id.clone(),
                    target_key: target_key.clone(),
                    note: Some(note.clone()),
                }];
                if *reason != crate::report::InvalidReason::NotFound {
                    return (Outcome::Applied, note, clear);
                }
                // A not-found is confirmed with the broker before the id is let go.
                match self.broker.order(account, order_id).await {
                    Ok(None) => (Outcome::Applied, format!("{note} (confirmed)"), clear),
                    Ok(Some(o)) if o.status.is_working() => (
                        Outcome::Skipped,
                        format!("order {order_id} is {} after all", o.status.as_str()),
                        Vec::new(),
                    ),
                    Ok(Some(o)) if o.status == crate::model::OrderStatus::Filled => (
                        Outcome::Applied,
                        format!("order {order_id} filled"),
                        vec![LocalChange::SetTargetStatus {
                            position_id: position_id.clone(),
                            target_key: target_key.clone(),
                            status: TargetStatus::Filled,
                        }],
                    ),
                    Ok(Some(o)) => (
                        Outcome::Applied,
                        format!("order {order_id} {}", o.status.as_str()),
                        clear,
                    ),
                    Err(e) => (
                        Outcome::Uncertain,
                        format!("could not confirm: {e}"),
                        Vec::new(),
                    ),
                }
            }
            Action::MarkFilled {
                position_id,
                target_key,
                order_id,
            } => (
                Outcome::Applied,
                format!("order {order_id} filled"),
                vec![LocalChange::SetTargetStatus {
                    position_id: position_id.clone(),
                    target_key: target_key.clone(),
                    status: TargetStatus::Filled,
                }],
            ),
            Action::Promote { position_id } => (
                Outcome::Applied,
                "promoted to open".to_owned(),
                vec![LocalChange::SetPositionState {
                    position_id: position_id.clone(),
                    state: PositionState::Open,
                }],
            ),
            Action::CloseLocal { position_id } => (
                Outcome::Applied,
                "closed: flat at the broker".to_owned(),
                vec![LocalChange::SetPositionState {
                    position_id: position_id.clone(),
                    state: PositionState::Closed,
                }],
            ),
            Action::DropIntent { client_order_id } => (
                Outcome::Applied,
                "dropped: no order came".to_owned(),
                vec![LocalChange::DropIntent {
                    client_order_id: client_order_id.clone(),
                }],
            ),
            Action::Backfill { position, .. } => (
                Outcome::Applied,
                format!("backfilled position {}", position.id),
                vec![LocalChange::InsertPosition {
                    position: position.clone(),
                }],
            ),
            Action::Cancel { account, order_id } => self.cancel(account, order_id).await,
            Action::Replace {
                position_id,
                target_key,
                order_id,
                spec,
            } => {
                let cid = self.client_order_id(n);
                let changes = ReplaceOrder {
                    client_order_id: cid.clone(),
                    limit_price: spec.limit_price,
                    stop_price: spec.stop_price,
                    quantity: spec.quantity,
                };
                let intent = Intent {
                    client_order_id: cid.clone(),
                    position_id: position_id.clone(),
                    target_key: target_key.clone(),
                    created_at: self.options.now,
                };
                self.journaled(intent, &spec.account, async {
                    self.broker.replace(&spec.account, order_id, &changes).await
                })
                .await
            }
            Action::PlaceTarget {
                position_id,
                target_key,
                spec,
            } => {
                let cid = self.client_order_id(n);
                let order = place_order(spec, cid.clone());
                let intent = Intent {
                    client_order_id: cid,
                    position_id: position_id.clone(),
                    target_key: target_key.clone(),
                    created_at: self.options.now,
                };
                self.journaled(intent, &spec.account, async {
                    self.broker.place(&order).await
                })
                .await
            }
        }
    }

    async fn cancel(&self, account: &AccountId, order_id: &OrderId) -> Step {
        // Ask about the one order first: only a confirmed working order is cancelled.
        match self.broker.order(account, order_id).await {
            Ok(Some(o)) if o.status.is_working() => {}
            Ok(Some(o)) => {
                return (
                    Outcome::AlreadyDone,
                    format!("order {order_id} is already {}", o.status.as_str()),
                    Vec::new(),
                );
            }
            Ok(None) => {
                return (
                    Outcome::AlreadyDone,
                    format!("order {order_id} no longer exists"),
                    Vec::new(),
                );
            }
            Err(e) => {
                return (
                    Outcome::Uncertain,
                    format!("could not confirm: {e}"),
                    Vec::new(),
                );
            }
        }
        match self.broker.cancel(account, order_id).await {
            Ok(CancelOutcome::Requested) => (
                Outcome::Applied,
                format!("cancel of {order_id} requested"),
                Vec::new(),
            ),
            Ok(CancelOutcome::AlreadyDone) | Err(BrokerError::NotFound { .. }) => (
                Outcome::AlreadyDone,
                format!("order {order_id} had already finished"),
                Vec::new(),
            ),
            Err(e) if e.is_uncertain() => (Outcome::Uncertain, e.to_string(), Vec::new()),
            Err(e) => (Outcome::Failed, e.to_string(), Vec::new()),
        }
    }

    /// Intent first, then the broker call, then the link. A lost answer is resolved by looking
    /// the client order id up, never by sending again.
    async fn journaled(
        &self,
        intent: Intent,
        account: &AccountId,
        send: impl std::future::Future<Output = Result<Order, BrokerError>>,
    ) -> Step {
        let put = ChangeBatch {
            changes: vec![LocalChange::PutIntent {
                intent: intent.clone(),
            }],
            audit: Vec::new(),
        };
        if let Err(e) = self.store.apply(&put).await {
            return (
                Outcome::Failed,
                format!("writing the intent failed: {e}"),
                Vec::new(),
            );
        }
        let cid = &intent.client_order_id;
        let linked = |o: &Order, how: &str| -> Step {
            (
                Outcome::Applied,
                format!("{how} order {} ({cid})", o.id),
                vec![
                    LocalChange::LinkTarget {
                        position_id: intent.position_id.clone(),
                        target_key: intent.target_key.clone(),
                        order_id: o.id.clone(),
                        client_order_id: Some(cid.clone()),
                        placed_at: Some(self.options.now),
                    },
                    LocalChange::DropIntent {
                        client_order_id: cid.clone(),
                    },
                ],
            )
        };
        match send.await {
            Ok(o) => linked(&o, "sent"),
            Err(e) if e.is_uncertain() => {
                if !self.broker.supports_client_order_id() {
                    return (
                        Outcome::Uncertain,
                        format!("{e}; the broker cannot be asked by client order id"),
                        Vec::new(),
                    );
                }
                match self.broker.find_by_client_order_id(account, cid).await {
                    Ok(Some(o)) => linked(&o, "found after a lost answer:"),
                    Ok(None) => (
                        Outcome::Uncertain,
                        format!("{e}; no order carries {cid} yet; the intent is kept"),
                        Vec::new(),
                    ),
                    Err(e2) => (
                        Outcome::Uncertain,
                        format!("{e}; looking {cid} up failed too: {e2}"),
                        Vec::new(),
                    ),
                }
            }
            Err(e) => (
                Outcome::Failed,
                e.to_string(),
                vec![
                    LocalChange::DropIntent {
                        client_order_id: cid.clone(),
                    },
                    LocalChange::RecordTargetError {
                        position_id: intent.position_id.clone(),
                        target_key: intent.target_key.clone(),
                        error: e.to_string(),
                        at: self.options.now,
                    },
                ],
            ),
        }
    }
}

/// The order a target spec describes: limit, stop or stop-limit, good till cancelled.
pub fn place_order(spec: &OrderSpec, client_order_id: ClientOrderId) -> PlaceOrder {
    let order_type = match (spec.limit_price, spec.stop_price) {
        (Some(_), Some(_)) => OrderType::StopLimit,
        (None, Some(_)) => OrderType::Stop,
        _ => OrderType::Limit,
    };
    PlaceOrder {
        account: spec.account.clone(),
        underlying: spec.underlying.clone(),
        client_order_id,
        order_type,
        time_in_force: TimeInForce::Gtc,
        limit_price: spec.limit_price,
        stop_price: spec.stop_price,
        legs: spec.legs.clone(),
    }
}

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
        /// Until when.
        until: String,
    },
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
        p.fingerprint = Some(crate::fingerprint(&local, &broker));
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
                    Ok(Some(_)) => held.push(a.clone()),
                    Ok(None) => {
                        self.release(&held, holder).await;
                        return Err(RunError::Locked {
                            account: a.clone(),
                            holder: "another run".to_owned(),
                            until: "its lease ends".to_owned(),
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
