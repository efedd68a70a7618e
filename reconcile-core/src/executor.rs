//! The executor (DESIGN §5): carries out a plan against a broker and a store, journal-first,
//! recording every outcome in the audit log. It keeps going past independent failures, and it
//! never acts on evidence it could not confirm. [`crate::Reconciler`] decides what to run; this
//! module only runs it.

use crate::ids::{AccountId, ClientOrderId, OrderId, RunId};
use crate::model::{
    Intent, Order, OrderStatus, OrderType, PositionState, TargetStatus, TimeInForce,
};
use crate::plan::{Action, Plan, PlannedAction};
use crate::ports::{
    AuditRecord, Broker, BrokerError, Call, CancelOutcome, ChangeBatch, LocalChange, LockHolder,
    Outcome, PlaceOrder, ReplaceOrder, Store,
};
use crate::report::{InvalidReason, OrderSpec, Report};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How to carry out a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    /// The run's id, written with every audit record and used in client order ids.
    pub run_id: RunId,
    /// Who takes the run locks: this run, in this process.
    pub holder: LockHolder,
    /// The instant to stamp intents and audit records with.
    pub now: DateTime<Utc>,
    /// Touch nothing: report what would be done.
    pub dry_run: bool,
    /// Stop after this many actions, as a crash would (for tests of recovery).
    pub stop_after: Option<usize>,
    /// Once set (by a signal handler, say), the run ends between two actions: the action in
    /// progress finishes and is recorded, the rest are not started.
    pub stop: Option<StopFlag>,
    /// Told after each action: how many are done, of how many.
    pub progress: Option<Progress>,
}

/// A callback told after each action of a plan: actions done, actions in the plan.
#[derive(Clone)]
pub struct Progress(std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>);

impl Progress {
    /// A progress callback.
    pub fn new(f: impl Fn(usize, usize) + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(f))
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

impl PartialEq for Progress {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Progress {}

/// A flag that asks a run to end between two actions; clones share it.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl StopFlag {
    /// A flag not yet set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run to end.
    pub fn set(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the run was asked to end.
    pub fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl PartialEq for StopFlag {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for StopFlag {}

impl ApplyOptions {
    /// Options for a real run.
    pub fn new(run_id: impl Into<RunId>, now: DateTime<Utc>) -> Self {
        let run_id = run_id.into();
        Self {
            holder: LockHolder::new(run_id.clone(), "localhost", now),
            run_id,
            now,
            dry_run: false,
            stop_after: None,
            stop: None,
            progress: None,
        }
    }

    /// Tells `progress` after each action.
    #[must_use]
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Ends the run between two actions once `flag` is set.
    #[must_use]
    pub fn stopped_by(mut self, flag: StopFlag) -> Self {
        self.stop = Some(flag);
        self
    }

    /// Whether the run was asked to end.
    pub fn stop_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(StopFlag::is_set)
    }

    /// Names the machine the run's locks are held from (default `localhost`).
    #[must_use]
    pub fn on_host(mut self, host: impl Into<String>) -> Self {
        self.holder.host = host.into();
        self
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
    /// What the plan that ran left out, and why (a fresh plan's, for [`crate::Reconciler`]).
    #[serde(default)]
    pub skipped: Vec<crate::plan::Skipped>,
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
        if options.stop_after == Some(n) || options.stop_requested() {
            break;
        }
        ex.one(n, pa).await;
        if let Some(p) = &options.progress {
            (p.0)(n + 1, plan.actions.len());
        }
    }
    ApplyReport {
        run_id: options.run_id.clone(),
        results: ex.results,
        stale: Vec::new(),
        skipped: plan.skipped.clone(),
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

/// What one action came to, before it is recorded: its outcome, a line for the audit log, and
/// the local changes to write with that record.
struct Step {
    outcome: Outcome,
    detail: String,
    changes: Vec<LocalChange>,
}

impl Step {
    fn new(outcome: Outcome, detail: impl Into<String>, changes: Vec<LocalChange>) -> Self {
        Self {
            outcome,
            detail: detail.into(),
            changes,
        }
    }

    /// Done now, writing `changes`.
    fn applied(detail: impl Into<String>, changes: Vec<LocalChange>) -> Self {
        Self::new(Outcome::Applied, detail, changes)
    }

    /// Nothing to write.
    fn only(outcome: Outcome, detail: impl Into<String>) -> Self {
        Self::new(outcome, detail, Vec::new())
    }
}

impl Executor<'_> {
    async fn one(&mut self, n: usize, pa: &PlannedAction) {
        if let Some(dep) = &pa.depends_on {
            let ok = self
                .done
                .get(dep)
                .is_some_and(|o| o.is_done() || *o == Outcome::WouldApply);
            if !ok {
                let step = Step::only(
                    Outcome::Skipped,
                    format!("depends on {dep}, which is not done"),
                );
                self.finish(pa, step).await;
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
        let step = self.step(n, &pa.action).await;
        self.finish(pa, step).await;
    }

    /// Writes the step's changes with its audit record in one batch.
    async fn finish(&mut self, pa: &PlannedAction, step: Step) {
        let Step {
            outcome,
            detail,
            changes,
        } = step;
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

    fn intent(
        &self,
        n: usize,
        position_id: &crate::PositionId,
        target_key: &crate::TargetKey,
    ) -> Intent {
        Intent {
            client_order_id: self.client_order_id(n),
            position_id: position_id.clone(),
            target_key: target_key.clone(),
            created_at: self.options.now,
            oco_with: None,
        }
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
                Step::applied(format!("linked to order {order_id}"), changes)
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
                if *reason != InvalidReason::NotFound {
                    return Step::applied(note, clear);
                }
                // A not-found is confirmed with the broker before the id is let go.
                match self.broker.order(account, order_id).await {
                    Ok(None) => Step::applied(format!("{note} (confirmed)"), clear),
                    Ok(Some(o)) if o.status.is_working() => Step::only(
                        Outcome::Skipped,
                        format!("order {order_id} is {} after all", o.status.as_str()),
                    ),
                    Ok(Some(o)) if o.status == OrderStatus::Filled => Step::applied(
                        format!("order {order_id} filled"),
                        vec![LocalChange::SetTargetStatus {
                            position_id: position_id.clone(),
                            target_key: target_key.clone(),
                            status: TargetStatus::Filled,
                        }],
                    ),
                    Ok(Some(o)) => {
                        Step::applied(format!("order {order_id} {}", o.status.as_str()), clear)
                    }
                    Err(e) => Step::only(Outcome::Uncertain, format!("could not confirm: {e}")),
                }
            }
            Action::MarkFilled {
                position_id,
                target_key,
                order_id,
            } => Step::applied(
                format!("order {order_id} filled"),
                vec![LocalChange::SetTargetStatus {
                    position_id: position_id.clone(),
                    target_key: target_key.clone(),
                    status: TargetStatus::Filled,
                }],
            ),
            Action::Promote { position_id } => Step::applied(
                "promoted to open",
                vec![LocalChange::SetPositionState {
                    position_id: position_id.clone(),
                    state: PositionState::Open,
                }],
            ),
            Action::CloseLocal {
                position_id,
                closing,
            } => {
                let mut changes = vec![LocalChange::SetPositionState {
                    position_id: position_id.clone(),
                    state: PositionState::Closed,
                }];
                let detail = match closing {
                    Some(c) => {
                        changes.push(LocalChange::RecordClosing {
                            position_id: position_id.clone(),
                            closing: c.clone(),
                        });
                        format!("closed: flat at the broker, by order {}", c.order_id)
                    }
                    None => "closed: flat at the broker".to_owned(),
                };
                Step::applied(detail, changes)
            }
            Action::DropIntent { client_order_id } => Step::applied(
                "dropped: no order came",
                vec![LocalChange::DropIntent {
                    client_order_id: client_order_id.clone(),
                }],
            ),
            Action::Backfill { position, .. } => Step::applied(
                format!("backfilled position {}", position.id),
                vec![LocalChange::InsertPosition {
                    position: position.clone(),
                }],
            ),
            Action::Cancel { account, order_id } => self.cancel(n, account, order_id).await,
            Action::Replace {
                position_id,
                target_key,
                order_id,
                spec,
            } => {
                // Ask about the one order first: only a confirmed working order is replaced, and
                // the broker needs the original as it stands.
                let original = match self.broker.order(&spec.account, order_id).await {
                    Ok(Some(o)) if o.status.is_working() => o,
                    Ok(Some(o)) => {
                        return Step::only(
                            Outcome::Skipped,
                            format!(
                                "order {order_id} is {} now: nothing to replace",
                                o.status.as_str()
                            ),
                        );
                    }
                    Ok(None) => {
                        return Step::only(
                            Outcome::Skipped,
                            format!("order {order_id} no longer exists: nothing to replace"),
                        );
                    }
                    Err(e) => {
                        return Step::only(Outcome::Uncertain, format!("could not confirm: {e}"));
                    }
                };
                let intent = self.intent(n, position_id, target_key);
                let changes = ReplaceOrder {
                    client_order_id: intent.client_order_id.clone(),
                    limit_price: spec.limit_price,
                    stop_price: spec.stop_price,
                    quantity: spec.quantity,
                };
                let started = format!("replacing order {order_id} ({})", intent.client_order_id);
                self.journaled(n, Call::Replace, intent, &spec.account, started, async {
                    self.broker.replace(&original, &changes).await
                })
                .await
            }
            Action::PlaceOco {
                position_id,
                take_profit,
                take_profit_spec,
                stop_loss,
                stop_loss_spec,
            } => {
                let mut intent = self.intent(n, position_id, take_profit);
                intent.oco_with = Some(stop_loss.clone());
                self.place_oco(n, intent, take_profit_spec, stop_loss_spec)
                    .await
            }
            Action::PlaceTarget {
                position_id,
                target_key,
                spec,
            } => {
                let intent = self.intent(n, position_id, target_key);
                let order = place_order(spec, intent.client_order_id.clone());
                let started = format!("placing {}", intent.client_order_id);
                self.journaled(n, Call::Place, intent, &spec.account, started, async {
                    self.broker.place(&order).await
                })
                .await
            }
        }
    }

    async fn cancel(&self, n: usize, account: &AccountId, order_id: &OrderId) -> Step {
        // Ask about the one order first: only a confirmed working order is cancelled.
        match self.broker.order(account, order_id).await {
            Ok(Some(o)) if o.status.is_working() => {}
            Ok(Some(o)) => {
                return Step::only(
                    Outcome::AlreadyDone,
                    format!("order {order_id} is already {}", o.status.as_str()),
                );
            }
            Ok(None) => {
                return Step::only(
                    Outcome::AlreadyDone,
                    format!("order {order_id} no longer exists"),
                );
            }
            Err(e) => return Step::only(Outcome::Uncertain, format!("could not confirm: {e}")),
        }
        self.broker.ready(Call::Cancel).await;
        let started = ChangeBatch {
            changes: Vec::new(),
            audit: vec![self.started(n, format!("cancelling order {order_id}"))],
        };
        if let Err(e) = self.store.apply(&started).await {
            return Step::only(
                Outcome::Failed,
                format!("recording the cancel before sending it failed: {e}"),
            );
        }
        match self.broker.cancel(account, order_id).await {
            Ok(CancelOutcome::Requested) => {
                Step::only(Outcome::Applied, format!("cancel of {order_id} requested"))
            }
            Ok(CancelOutcome::AlreadyDone) | Err(BrokerError::NotFound { .. }) => Step::only(
                Outcome::AlreadyDone,
                format!("order {order_id} had already finished"),
            ),
            Err(e) if e.is_uncertain() => Step::only(Outcome::Uncertain, e.to_string()),
            Err(e) => Step::only(Outcome::Failed, e.to_string()),
        }
    }

    /// Records that an action is about to reach the broker, so the audit log names the order
    /// even if the process dies during the call.
    fn started(&self, n: usize, detail: String) -> AuditRecord {
        AuditRecord {
            run_id: self.options.run_id.clone(),
            at: self.options.now,
            action_key: format!("started:{n}"),
            outcome: Outcome::Started,
            detail,
        }
    }

    /// Intent first (with its `started` audit record), then the broker call, then the link. The
    /// broker's pacing wait comes before the intent, so the window between journal and send is
    /// as small as it can be. A lost answer is resolved by looking the client order id up,
    /// never by sending again.
    async fn journaled(
        &self,
        n: usize,
        call: Call,
        intent: Intent,
        account: &AccountId,
        started: String,
        send: impl std::future::Future<Output = Result<Order, BrokerError>>,
    ) -> Step {
        self.broker.ready(call).await;
        let put = ChangeBatch {
            changes: vec![LocalChange::PutIntent {
                intent: intent.clone(),
            }],
            audit: vec![self.started(n, started)],
        };
        if let Err(e) = self.store.apply(&put).await {
            return Step::only(Outcome::Failed, format!("writing the intent failed: {e}"));
        }
        let cid = &intent.client_order_id;
        let linked = |o: &Order, how: &str| -> Step {
            Step::applied(
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
                    return Step::only(
                        Outcome::Uncertain,
                        format!("{e}; the broker cannot be asked by client order id"),
                    );
                }
                match self.broker.find_by_client_order_id(account, cid).await {
                    Ok(Some(o)) => linked(&o, "found after a lost answer:"),
                    Ok(None) => Step::only(
                        Outcome::Uncertain,
                        format!("{e}; no order carries {cid} yet; the intent is kept"),
                    ),
                    Err(e2) => Step::only(
                        Outcome::Uncertain,
                        format!("{e}; looking {cid} up failed too: {e2}"),
                    ),
                }
            }
            Err(e) => Step::new(
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

impl Executor<'_> {
    /// An OCO placement, journaled as one intent for the take profit that names its sibling
    /// target: then the broker call, then both links. A lost answer is resolved by looking up
    /// the take profit's client order id and its group.
    async fn place_oco(
        &self,
        n: usize,
        intent: Intent,
        take_profit: &OrderSpec,
        stop_loss: &OrderSpec,
    ) -> Step {
        let Some(stop_key) = intent.oco_with.clone() else {
            return Step::only(Outcome::Failed, "an OCO intent without its stop");
        };
        self.broker.ready(Call::PlaceOco).await;
        let cid = intent.client_order_id.clone();
        let put = ChangeBatch {
            changes: vec![LocalChange::PutIntent {
                intent: intent.clone(),
            }],
            audit: vec![self.started(n, format!("placing an OCO order {cid}"))],
        };
        if let Err(e) = self.store.apply(&put).await {
            return Step::only(Outcome::Failed, format!("writing the intent failed: {e}"));
        }
        let account = &take_profit.account;
        let link = |key: &crate::TargetKey, o: &Order| LocalChange::LinkTarget {
            position_id: intent.position_id.clone(),
            target_key: key.clone(),
            order_id: o.id.clone(),
            client_order_id: o.client_order_id.clone(),
            placed_at: Some(self.options.now),
        };
        let linked = |tp: &Order, sl: &Order, how: &str| {
            Step::applied(
                format!("{how} OCO order {} / {} ({cid})", tp.id, sl.id),
                vec![
                    link(&intent.target_key, tp),
                    link(&stop_key, sl),
                    LocalChange::DropIntent {
                        client_order_id: cid.clone(),
                    },
                ],
            )
        };
        let tp_order = place_order(take_profit, cid.clone());
        let sl_order = place_order(stop_loss, cid.clone());
        match self.broker.place_oco(&tp_order, &sl_order).await {
            Ok(o) => linked(&o.take_profit, &o.stop_loss, "sent"),
            Err(e) if e.is_uncertain() => {
                match self
                    .broker
                    .find_group_by_client_order_id(account, &cid)
                    .await
                {
                    Ok(group) => match group.as_slice() {
                        [tp, sl, ..] => linked(tp, sl, "found after a lost answer:"),
                        [] => Step::only(
                            Outcome::Uncertain,
                            format!("{e}; no order carries {cid} yet; the intent is kept"),
                        ),
                        [tp] => Step::new(
                            Outcome::Uncertain,
                            format!(
                                "{e}; found {} for {cid} but not its stop; the intent is kept",
                                tp.id
                            ),
                            vec![link(&intent.target_key, tp)],
                        ),
                    },
                    Err(e2) => Step::only(
                        Outcome::Uncertain,
                        format!("{e}; looking {cid} up failed too: {e2}"),
                    ),
                }
            }
            Err(e) => {
                let error = |key: &crate::TargetKey| LocalChange::RecordTargetError {
                    position_id: intent.position_id.clone(),
                    target_key: key.clone(),
                    error: e.to_string(),
                    at: self.options.now,
                };
                Step::new(
                    Outcome::Failed,
                    e.to_string(),
                    vec![
                        LocalChange::DropIntent {
                            client_order_id: cid.clone(),
                        },
                        error(&intent.target_key),
                        error(&stop_key),
                    ],
                )
            }
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
