//! The planner (DESIGN §5): turns a report into an ordered list of actions under a policy that
//! switches each fix on or off and holds the safety rails. Pure: no I/O.

use crate::decimal;
use crate::ids::{AccountId, ClientOrderId, OrderId, PositionId, TargetKey};
use crate::model::{Position, PositionLeg, PositionState, ProfitTarget, Side, TargetLeg};
use crate::report::{InvalidReason, OrderSpec, Report};
use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The `format` tag of a plan.
pub const PLAN_FORMAT: &str = "reconcile.plan/v1";

crate::format_tag!(
    /// The tag `"reconcile.plan/v1"`.
    PlanFormat,
    PLAN_FORMAT
);

/// Percentages for the protective targets given to a backfilled position (seed 003).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BracketPolicy {
    /// Stop loss distance from entry, in percent. Default 8.
    #[serde(with = "decimal::string")]
    pub stop_loss_pct: Decimal,
    /// Take profit distance from entry, in percent. Default 16.
    #[serde(with = "decimal::string")]
    pub take_profit_pct: Decimal,
}

impl Default for BracketPolicy {
    fn default() -> Self {
        Self {
            stop_loss_pct: Decimal::from(8),
            take_profit_pct: Decimal::from(16),
        }
    }
}

/// Which fixes a run may make, and the rails they run within.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Link adoptable orders to their targets.
    pub adopt: bool,
    /// Clear ids of orders that are not working, mark filled targets, drop stale intents.
    pub clear_invalid: bool,
    /// Cancel orphaned orders (and working orders of positions closed at the broker).
    pub cancel_orphaned: bool,
    /// Place orders for missing targets.
    pub create_missing: bool,
    /// Replace drifted orders with ones at the expected price and quantity.
    pub replace_drifted: bool,
    /// Create local positions for untracked holdings.
    pub backfill: bool,
    /// Promote pending positions held in full; close open positions flat at the broker.
    pub sync_positions: bool,
    /// At most this many cancels per run (default 10); above it nothing destructive runs.
    pub max_cancels: usize,
    /// At most this many placements per run (default 20); above it nothing is placed.
    pub max_placements: usize,
    /// Run even when the read looks broken (empty local records, mostly orphaned orders).
    pub force: bool,
    /// Targets for backfilled positions.
    pub bracket: BracketPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Self::report_only()
    }
}

impl Policy {
    /// No fix switched on: the plan lists nothing to do.
    pub fn report_only() -> Self {
        Self {
            adopt: false,
            clear_invalid: false,
            cancel_orphaned: false,
            create_missing: false,
            replace_drifted: false,
            backfill: false,
            sync_positions: false,
            max_cancels: 10,
            max_placements: 20,
            force: false,
            bracket: BracketPolicy::default(),
        }
    }

    /// Every fix switched on, default caps.
    pub fn all_fixes() -> Self {
        Self {
            adopt: true,
            clear_invalid: true,
            cancel_orphaned: true,
            create_missing: true,
            replace_drifted: true,
            backfill: true,
            sync_positions: true,
            ..Self::report_only()
        }
    }

    /// Whether any fix is switched on.
    pub fn any_fix(&self) -> bool {
        self.adopt
            || self.clear_invalid
            || self.cancel_orphaned
            || self.create_missing
            || self.replace_drifted
            || self.backfill
            || self.sync_positions
    }
}

/// Risk of one backfilled position: entry minus stop, per share and in total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Risk {
    /// Entry price.
    #[serde(with = "decimal::string")]
    pub entry_price: Decimal,
    /// Stop price.
    #[serde(with = "decimal::string")]
    pub stop_price: Decimal,
    /// Take-profit price.
    #[serde(with = "decimal::string")]
    pub target_price: Decimal,
    /// |entry − stop|.
    #[serde(with = "decimal::string")]
    pub per_share: Decimal,
    /// Per share × |quantity|.
    #[serde(with = "decimal::string")]
    pub total: Decimal,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Point a target at an order that belongs to it.
    Link {
        /// The position.
        position_id: PositionId,
        /// The target.
        target_key: TargetKey,
        /// The order.
        order_id: OrderId,
        /// The order's client order id.
        client_order_id: Option<ClientOrderId>,
        /// The intent this link resolves.
        resolves_intent: Option<ClientOrderId>,
    },
    /// Clear a target's id of an order that is not working (it becomes unplaced).
    Clear {
        /// The position.
        position_id: PositionId,
        /// The target.
        target_key: TargetKey,
        /// The order it referenced.
        order_id: OrderId,
        /// Why the order is not working.
        reason: InvalidReason,
        /// The account, to confirm a `not_found` with the broker.
        account: AccountId,
    },
    /// Mark a target filled.
    MarkFilled {
        /// The position.
        position_id: PositionId,
        /// The target.
        target_key: TargetKey,
        /// The filled order.
        order_id: OrderId,
    },
    /// Promote a pending position to open.
    Promote {
        /// The position.
        position_id: PositionId,
    },
    /// Close an open position locally.
    CloseLocal {
        /// The position.
        position_id: PositionId,
    },
    /// Drop an intent whose order never came.
    DropIntent {
        /// The intent.
        client_order_id: ClientOrderId,
    },
    /// Cancel a working order at the broker.
    Cancel {
        /// The account.
        account: AccountId,
        /// The order.
        order_id: OrderId,
    },
    /// Replace a drifted order with one at the expected price and quantity.
    Replace {
        /// The position.
        position_id: PositionId,
        /// The target.
        target_key: TargetKey,
        /// The order to replace.
        order_id: OrderId,
        /// What the new order must look like.
        spec: OrderSpec,
    },
    /// Place a target's order (journal-first).
    PlaceTarget {
        /// The position.
        position_id: PositionId,
        /// The target.
        target_key: TargetKey,
        /// The order.
        spec: OrderSpec,
    },
    /// Create a local position for an untracked holding.
    Backfill {
        /// The new position, with unplaced bracket targets.
        position: Position,
        /// Its risk, when an entry price was known.
        risk: Option<Risk>,
    },
}

impl Action {
    /// The stable idempotency key of this action.
    pub fn key(&self) -> String {
        match self {
            Self::Link {
                position_id,
                target_key,
                order_id,
                ..
            } => {
                format!("link:{position_id}:{target_key}:{order_id}")
            }
            Self::Clear {
                position_id,
                target_key,
                order_id,
                ..
            } => {
                format!("clear:{position_id}:{target_key}:{order_id}")
            }
            Self::MarkFilled {
                position_id,
                target_key,
                order_id,
            } => {
                format!("mark_filled:{position_id}:{target_key}:{order_id}")
            }
            Self::Promote { position_id } => format!("promote:{position_id}"),
            Self::CloseLocal { position_id } => format!("close_local:{position_id}"),
            Self::DropIntent { client_order_id } => format!("drop_intent:{client_order_id}"),
            Self::Cancel { account, order_id } => format!("cancel:{account}:{order_id}"),
            Self::Replace {
                position_id,
                target_key,
                order_id,
                ..
            } => {
                format!("replace:{position_id}:{target_key}:{order_id}")
            }
            Self::PlaceTarget {
                position_id,
                target_key,
                ..
            } => {
                format!("place:{position_id}:{target_key}")
            }
            Self::Backfill { position, .. } => format!("backfill:{}", position.id),
        }
    }

    /// The action's kind, as spelled in plan JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Link { .. } => "link",
            Self::Clear { .. } => "clear",
            Self::MarkFilled { .. } => "mark_filled",
            Self::Promote { .. } => "promote",
            Self::CloseLocal { .. } => "close_local",
            Self::DropIntent { .. } => "drop_intent",
            Self::Cancel { .. } => "cancel",
            Self::Replace { .. } => "replace",
            Self::PlaceTarget { .. } => "place_target",
            Self::Backfill { .. } => "backfill",
        }
    }

    /// Whether the action removes something that cannot be put back as it was.
    pub fn is_destructive(&self) -> bool {
        matches!(
            self,
            Self::Cancel { .. } | Self::Replace { .. } | Self::Clear { .. }
        )
    }

    /// Whether the action sends an order or a cancel to the broker.
    pub fn touches_broker(&self) -> bool {
        matches!(
            self,
            Self::Cancel { .. } | Self::Replace { .. } | Self::PlaceTarget { .. }
        )
    }
}

/// An action with its place in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedAction {
    /// Stable idempotency key.
    pub key: String,
    /// The key of an action that must succeed first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<String>,
    /// What to do.
    pub action: Action,
}

/// Something the planner chose not to do, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// What it concerns (an action key or a report entry).
    pub subject: String,
    /// Why.
    pub reason: String,
}

/// An ordered list of actions, and what was left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Always `reconcile.plan/v1`.
    pub format: PlanFormat,
    /// The report's `as_of`.
    pub as_of: DateTime<Utc>,
    /// A fingerprint of the two snapshots the plan came from, when known.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// The policy it was made under.
    pub policy: Policy,
    /// What to do, in order.
    pub actions: Vec<PlannedAction>,
    /// What was not planned, and why.
    pub skipped: Vec<Skipped>,
    /// Rails that stopped part of the plan.
    pub refusals: Vec<String>,
    /// Sum of the risk of backfilled positions.
    #[serde(with = "decimal::option", default)]
    pub backfill_total_risk: Option<Decimal>,
}

impl Plan {
    /// Parses a plan written by [`Plan::to_json`].
    ///
    /// # Errors
    /// A [`crate::SnapshotError`] naming the JSON path of the problem.
    pub fn from_json(text: &str) -> Result<Self, crate::SnapshotError> {
        crate::snapshot::parse_json(text)
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut out = serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_owned());
        out.push('\n');
        out
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Looks an action up by key.
    pub fn get(&self, key: &str) -> Option<&PlannedAction> {
        self.actions.iter().find(|a| a.key == key)
    }
}

/// Makes the plan for a report under a policy.
pub fn plan(report: &Report, policy: &Policy) -> Plan {
    Planner::new(report, policy).run()
}

struct Planner<'a> {
    report: &'a Report,
    policy: &'a Policy,
    local: Vec<PlannedAction>,
    destructive: Vec<PlannedAction>,
    placements: Vec<PlannedAction>,
    skipped: Vec<Skipped>,
    refusals: Vec<String>,
    total_risk: Option<Decimal>,
}

impl<'a> Planner<'a> {
    fn new(report: &'a Report, policy: &'a Policy) -> Self {
        Self {
            report,
            policy,
            local: Vec::new(),
            destructive: Vec::new(),
            placements: Vec::new(),
            skipped: Vec::new(),
            refusals: Vec::new(),
            total_risk: None,
        }
    }

    fn push(list: &mut Vec<PlannedAction>, action: Action, depends_on: Option<String>) -> String {
        let key = action.key();
        list.push(PlannedAction {
            key: key.clone(),
            depends_on,
            action,
        });
        key
    }

    fn skip(&mut self, subject: impl Into<String>, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            subject: subject.into(),
            reason: reason.into(),
        });
    }

    fn place(
        &mut self,
        position_id: &PositionId,
        target_key: &TargetKey,
        spec: &OrderSpec,
        after: Option<String>,
    ) {
        let subject = format!("place:{position_id}:{target_key}");
        if !self.policy.create_missing {
            return;
        }
        match placeable(spec) {
            Ok(()) => {
                Self::push(
                    &mut self.placements,
                    Action::PlaceTarget {
                        position_id: position_id.clone(),
                        target_key: target_key.clone(),
                        spec: spec.clone(),
                    },
                    after,
                );
            }
            Err(reason) => self.skip(subject, reason),
        }
    }

    fn run(mut self) -> Plan {
        let r = self.report;
        let p = self.policy;

        // Adoption first: a target that gains its order needs no clearing.
        // Positions closed in this plan (flat at the broker): nothing of theirs is linked or
        // replaced; their stray orders protect nothing and are cancelled after the close.
        let mut closing: BTreeMap<&PositionId, String> = BTreeMap::new();
        if p.sync_positions {
            for s in &r.stale_positions {
                let key = Self::push(
                    &mut self.local,
                    Action::CloseLocal {
                        position_id: s.position_id.clone(),
                    },
                    None,
                );
                if p.cancel_orphaned {
                    for o in &s.working_orders {
                        Self::push(
                            &mut self.destructive,
                            Action::Cancel {
                                account: s.account.clone(),
                                order_id: o.clone(),
                            },
                            Some(key.clone()),
                        );
                    }
                }
                closing.insert(&s.position_id, key);
            }
        }

        // Our own journaled orders are linked whenever we place or replace: finishing our own
        // action is not a fix of someone else's.
        let own = p.create_missing || p.replace_drifted;
        let mut linked: BTreeSet<(&PositionId, &TargetKey)> = BTreeSet::new();
        for a in &r.adoptable {
            if let Some(close) = closing.get(&a.position_id) {
                if p.cancel_orphaned {
                    let cancel = Self::push(
                        &mut self.destructive,
                        Action::Cancel {
                            account: a.account.clone(),
                            order_id: a.order_id.clone(),
                        },
                        Some(close.clone()),
                    );
                    if let Some(cid) = &a.intent {
                        // Kept with the cancel, so it runs after it.
                        Self::push(
                            &mut self.destructive,
                            Action::DropIntent {
                                client_order_id: cid.clone(),
                            },
                            Some(cancel),
                        );
                    }
                }
                continue;
            }
            if p.adopt || (own && a.intent.is_some()) {
                linked.insert((&a.position_id, &a.target_key));
                Self::push(
                    &mut self.local,
                    Action::Link {
                        position_id: a.position_id.clone(),
                        target_key: a.target_key.clone(),
                        order_id: a.order_id.clone(),
                        client_order_id: a.client_order_id.clone(),
                        resolves_intent: a.intent.clone(),
                    },
                    None,
                );
            }
        }

        // Positions promoted in this plan make their cleared targets due too.
        let promoted: BTreeSet<&PositionId> = if p.sync_positions {
            r.pending_filled.iter().map(|f| &f.position_id).collect()
        } else {
            BTreeSet::new()
        };
        for i in &r.invalid {
            if linked.contains(&(&i.position_id, &i.target_key)) {
                continue;
            }
            let due = i.due || promoted.contains(&i.position_id);
            if !p.clear_invalid {
                if due && i.spec.is_some() && p.create_missing {
                    self.skip(
                        format!("place:{}:{}", i.position_id, i.target_key),
                        "its target still references an order that is not working; clear it first (--clear-invalid)",
                    );
                }
                continue;
            }
            if i.reason == InvalidReason::Filled {
                Self::push(
                    &mut self.local,
                    Action::MarkFilled {
                        position_id: i.position_id.clone(),
                        target_key: i.target_key.clone(),
                        order_id: i.order_id.clone(),
                    },
                    None,
                );
                continue;
            }
            let key = Self::push(
                &mut self.destructive,
                Action::Clear {
                    position_id: i.position_id.clone(),
                    target_key: i.target_key.clone(),
                    order_id: i.order_id.clone(),
                    reason: i.reason,
                    account: i.account.clone(),
                },
                None,
            );
            if let (Some(spec), true) = (&i.spec, due) {
                self.place(&i.position_id, &i.target_key, spec, Some(key));
            }
        }

        if p.clear_invalid {
            for s in &r.stale_intents {
                Self::push(
                    &mut self.local,
                    Action::DropIntent {
                        client_order_id: s.client_order_id.clone(),
                    },
                    None,
                );
            }
        }

        for m in &r.missing {
            self.place(&m.position_id, &m.target_key, &m.spec, None);
        }

        for d in &r.drifted {
            if !p.replace_drifted || closing.contains_key(&d.position_id) {
                continue;
            }
            let subject = format!("replace:{}:{}:{}", d.position_id, d.target_key, d.order_id);
            if d.field == crate::report::DriftField::Legs {
                self.skip(
                    subject,
                    "legs differ, and a replace cannot change legs: needs a human",
                );
                continue;
            }
            Self::push(
                &mut self.destructive,
                Action::Replace {
                    position_id: d.position_id.clone(),
                    target_key: d.target_key.clone(),
                    order_id: d.order_id.clone(),
                    spec: d.spec.clone(),
                },
                None,
            );
        }

        if p.sync_positions {
            for f in &r.pending_filled {
                let key = Self::push(
                    &mut self.local,
                    Action::Promote {
                        position_id: f.position_id.clone(),
                    },
                    None,
                );
                for m in &f.due {
                    self.place(&m.position_id, &m.target_key, &m.spec, Some(key.clone()));
                }
            }
        }

        if p.cancel_orphaned {
            for o in &r.orphaned {
                Self::push(
                    &mut self.destructive,
                    Action::Cancel {
                        account: o.account.clone(),
                        order_id: o.order_id.clone(),
                    },
                    None,
                );
            }
        }

        if p.backfill {
            self.backfill();
        }

        for c in &r.conflicts {
            self.skip(
                format!("conflict:{}", c.order_id),
                format!(
                    "order referenced by {} targets: needs a human",
                    c.targets.len()
                ),
            );
        }
        for q in &r.quantity_mismatches {
            self.skip(
                format!("quantity:{}:{}", q.account, q.symbol),
                format!(
                    "expected {}, broker holds {}: report only",
                    q.expected, q.actual
                ),
            );
        }

        self.rails();

        let mut actions = self.local;
        actions.extend(self.destructive);
        actions.extend(self.placements);
        // Local bookkeeping first, then clears and cancels, then placements; a dependency always
        // comes before its dependant because of this order.
        let mut seen = BTreeSet::new();
        actions.retain(|a| seen.insert(a.key.clone()));
        Plan {
            format: PlanFormat,
            as_of: r.as_of,
            fingerprint: None,
            policy: p.clone(),
            actions,
            skipped: self.skipped,
            refusals: self.refusals,
            backfill_total_risk: self.total_risk,
        }
    }

    fn backfill(&mut self) {
        let r = self.report;
        let mut total = Decimal::ZERO;
        let mut any_risk = false;
        for u in &r.untracked_holdings {
            let id = PositionId::new(format!("bf-{}-{}", u.account, u.symbol.compact()));
            let long = u.quantity.is_sign_positive();
            let qty = u.quantity.abs();
            let close_side = match (u.symbol.is_option(), long) {
                (true, true) => Side::SellToClose,
                (true, false) => Side::BuyToClose,
                (false, true) => Side::Sell,
                (false, false) => Side::Buy,
            };
            let legs = vec![TargetLeg {
                symbol: u.symbol.clone(),
                side: close_side,
                quantity: qty,
            }];
            let mut targets = Vec::new();
            let mut risk = None;
            if let Some(entry) = u.average_price {
                match bracket(entry, qty, long, &self.policy.bracket) {
                    Some(rk) => {
                        let mut stop = ProfitTarget::unplaced("stop_loss");
                        stop.stop_price = Some(rk.stop_price);
                        stop.quantity = Some(qty);
                        stop.legs = legs.clone();
                        let mut take = ProfitTarget::unplaced("take_profit");
                        take.limit_price = Some(rk.target_price);
                        take.quantity = Some(qty);
                        take.legs = legs.clone();
                        targets.push(stop);
                        targets.push(take);
                        match total.checked_add(rk.total) {
                            Some(t) => total = t,
                            None => self.skip(format!("backfill:{id}"), "total risk overflows"),
                        }
                        any_risk = true;
                        risk = Some(rk);
                    }
                    None => self.skip(format!("backfill:{id}"), "bracket prices overflow"),
                }
            } else {
                self.skip(
                    format!("backfill:{id}"),
                    "the broker gave no average price: backfilled without targets",
                );
            }
            let position = Position {
                id: id.clone(),
                account: u.account.clone(),
                underlying: u.underlying.clone(),
                state: PositionState::Open,
                opened_at: None,
                entry_price: u.average_price,
                legs: vec![PositionLeg {
                    symbol: u.symbol.clone(),
                    quantity: u.quantity,
                }],
                targets: targets.clone(),
            };
            let key = Self::push(&mut self.local, Action::Backfill { position, risk }, None);
            for t in &targets {
                let spec = OrderSpec {
                    account: u.account.clone(),
                    underlying: u.underlying.clone(),
                    legs: t.legs.clone(),
                    limit_price: t.limit_price,
                    stop_price: t.stop_price,
                    quantity: t.quantity,
                    held: Some(vec![crate::report::Holding {
                        symbol: u.symbol.clone(),
                        quantity: u.quantity,
                    }]),
                };
                self.place(&id, &t.key, &spec, Some(key.clone()));
            }
        }
        if any_risk {
            self.total_risk = Some(total);
        }
    }

    /// Applies the caps and the broken-read refusals.
    fn rails(&mut self) {
        let scanned = self.report.scanned;
        let p = self.policy;
        let broken_read = if scanned.local_positions == 0 && scanned.working_orders > 0 {
            Some(format!(
                "the local records are empty while the broker has {} working orders in scope: probably a broken read; nothing destructive or new runs (override with force)",
                scanned.working_orders
            ))
        } else if scanned.working_orders > 0
            && self.report.orphaned.len() * 2 > scanned.working_orders
        {
            Some(format!(
                "{} of {} working orders in scope look orphaned: probably a broken read; nothing destructive or new runs (override with force)",
                self.report.orphaned.len(),
                scanned.working_orders
            ))
        } else {
            None
        };
        if let Some(reason) = broken_read {
            let nothing_to_refuse = self.destructive.is_empty() && self.placements.is_empty();
            if !p.force && !nothing_to_refuse {
                self.refuse_all(&reason);
                return;
            }
        }
        let cancels = self
            .destructive
            .iter()
            .filter(|a| matches!(a.action, Action::Cancel { .. }))
            .count();
        if cancels > p.max_cancels {
            let reason = format!(
                "{cancels} cancels exceed the cap of {}: nothing destructive runs (raise the cap to override)",
                p.max_cancels
            );
            let dropped: Vec<PlannedAction> = std::mem::take(&mut self.destructive);
            let dropped_keys: BTreeSet<String> = dropped.iter().map(|a| a.key.clone()).collect();
            for a in dropped {
                self.skip(a.key, reason.clone());
            }
            // Placements that waited on a dropped clear go too.
            let (keep, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.placements)
                .into_iter()
                .partition(|a| {
                    a.depends_on
                        .as_ref()
                        .is_none_or(|d| !dropped_keys.contains(d))
                });
            self.placements = keep;
            for a in gone {
                self.skip(a.key, "depends on a dropped destructive action");
            }
            self.refusals.push(reason);
        }
        if self.placements.len() > p.max_placements {
            let reason = format!(
                "{} placements exceed the cap of {}: nothing is placed (raise the cap to override)",
                self.placements.len(),
                p.max_placements
            );
            for a in std::mem::take(&mut self.placements) {
                self.skip(a.key, reason.clone());
            }
            self.refusals.push(reason);
        }
    }

    fn refuse_all(&mut self, reason: &str) {
        for a in std::mem::take(&mut self.destructive)
            .into_iter()
            .chain(std::mem::take(&mut self.placements))
        {
            self.skip(a.key, reason);
        }
        self.refusals.push(reason.to_owned());
    }
}

/// Stop and target prices and risk for a backfilled holding, rounded to the cent (half away from
/// zero). `None` on overflow.
pub fn bracket(
    entry: Decimal,
    quantity: Decimal,
    long: bool,
    policy: &BracketPolicy,
) -> Option<Risk> {
    let hundred = Decimal::ONE_HUNDRED;
    let pct = |p: Decimal| p.checked_div(hundred);
    let sl = pct(policy.stop_loss_pct)?;
    let tp = pct(policy.take_profit_pct)?;
    let (stop_factor, target_factor) = if long {
        (Decimal::ONE.checked_sub(sl)?, Decimal::ONE.checked_add(tp)?)
    } else {
        (Decimal::ONE.checked_add(sl)?, Decimal::ONE.checked_sub(tp)?)
    };
    let cents = |d: Decimal| d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    let stop_price = cents(entry.checked_mul(stop_factor)?);
    let target_price = cents(entry.checked_mul(target_factor)?);
    let per_share = entry.checked_sub(stop_price)?.abs();
    let total = per_share.checked_mul(quantity.abs())?;
    Some(Risk {
        entry_price: entry,
        stop_price,
        target_price,
        per_share,
        total,
    })
}

/// Whether a target's order may be placed: it has legs and a price, every leg closes, and no leg
/// closes more than the broker holds. Unknown holdings mean "do not place". A stop and a take
/// profit protecting the same shares are alternatives, so each order is checked on its own.
pub fn placeable(spec: &OrderSpec) -> Result<(), String> {
    if spec.legs.is_empty() {
        return Err("the target has no expected legs to place".to_owned());
    }
    if spec.limit_price.is_none() && spec.stop_price.is_none() {
        return Err("the target has no limit or stop price".to_owned());
    }
    let Some(held) = &spec.held else {
        return Err(
            "broker holdings are unknown: a closing order is never placed blind".to_owned(),
        );
    };
    for leg in &spec.legs {
        let h = held
            .iter()
            .find(|h| h.symbol == leg.symbol)
            .map_or(Decimal::ZERO, |h| h.quantity);
        let closes = match leg.side {
            Side::BuyToClose | Side::Buy => h.is_sign_negative() && h.abs() >= leg.quantity,
            Side::SellToClose | Side::Sell => h.is_sign_positive() && h >= leg.quantity,
            Side::BuyToOpen | Side::SellToOpen => {
                return Err(format!(
                    "leg {} opens a position; targets only close",
                    leg.symbol
                ));
            }
        };
        if !closes || h.is_zero() {
            return Err(format!(
                "closing {} {} {} would exceed the broker's holding of {}",
                leg.side.as_str(),
                leg.quantity,
                leg.symbol,
                h
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        crate::decimal::parse_decimal(s).unwrap()
    }

    #[test]
    fn seed_003_bracket_comes_out_to_the_cent() {
        let cases = [
            ("172.30", "74", "158.52", "199.87", "1019.72"),
            ("190.75", "37", "175.49", "221.27", "564.62"),
            ("88.62", "101", "81.53", "102.80", "716.09"),
            ("17.11", "432", "15.74", "19.85", "591.84"),
            ("32.61", "225", "30.00", "37.83", "587.25"),
        ];
        let mut total = Decimal::ZERO;
        for (entry, qty, stop, target, risk) in cases {
            let r = bracket(d(entry), d(qty), true, &BracketPolicy::default()).unwrap();
            assert_eq!(r.stop_price, d(stop), "{entry}");
            assert_eq!(r.target_price, d(target), "{entry}");
            assert_eq!(r.total, d(risk), "{entry}");
            total += r.total;
        }
        assert_eq!(total, d("3479.52"));
    }
}
