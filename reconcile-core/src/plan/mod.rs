//! The planner (DESIGN §5): turns a report into an ordered list of actions under a policy that
//! switches each fix on or off and holds the safety rails. Pure: no I/O.
//!
//! Each fix is one function of the report and the policy in [`fixes`]; [`rails`] then applies
//! the caps and the broken-read refusals to what they propose; [`placing`] holds the rules for
//! what may be placed (never more than the broker holds) and the backfill bracket.

mod fixes;
pub mod placing;
mod rails;

pub use placing::{bracket, placeable};

use crate::decimal;
use crate::ids::{AccountId, ClientOrderId, OrderId, PositionId, TargetKey};
use crate::model::{Fill, Position};
use crate::report::{InvalidReason, OrderSpec, Report};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

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
    /// At most this many cancels per run (default 10; a replacement counts as one, since it
    /// cancels its original); above it nothing destructive runs.
    pub max_cancels: usize,
    /// At most this many placements per run (default 20); above it nothing is placed.
    pub max_placements: usize,
    /// Run even when the read looks broken (empty local records, mostly orphaned orders).
    pub force: bool,
    /// Targets for backfilled positions.
    pub bracket: BracketPolicy,
    /// An extension of plan v1: targets for backfilled option holdings. Without one (the
    /// default), an option holding is not backfilled with an equity bracket: it is listed for a
    /// person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options_bracket: Option<BracketPolicy>,
    /// Place a take profit and a stop loss on the same shares as one OCO order (default on;
    /// [`crate::Reconciler`] turns it off for a broker that takes none). Without it only the
    /// stop is placed: two independent exits of the same shares could close them twice.
    #[serde(default = "yes")]
    pub oco: bool,
}

fn yes() -> bool {
    true
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
            options_bracket: None,
            oco: true,
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

crate::spelling::spelled! {
    /// The kind of an [`Action`]: the `kind` tag of its JSON.
    pub enum ActionKind("action kind") {
        /// [`Action::Link`].
        Link = "link",
        /// [`Action::Clear`].
        Clear = "clear",
        /// [`Action::MarkFilled`].
        MarkFilled = "mark_filled",
        /// [`Action::Promote`].
        Promote = "promote",
        /// [`Action::CloseLocal`].
        CloseLocal = "close_local",
        /// [`Action::DropIntent`].
        DropIntent = "drop_intent",
        /// [`Action::Cancel`].
        Cancel = "cancel",
        /// [`Action::Replace`].
        Replace = "replace",
        /// [`Action::PlaceTarget`].
        PlaceTarget = "place_target",
        /// [`Action::PlaceOco`].
        PlaceOco = "place_oco",
        /// [`Action::Backfill`].
        Backfill = "backfill",
    }
}

/// One step of a plan. Its JSON is tagged by `kind`, spelled as [`ActionKind`] spells it (serde's
/// snake_case of the variant; a test holds the two together).
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
        /// The broker's fill that closed it, when history shows one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        closing: Option<Fill>,
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
    /// Place a take profit and a stop loss on the same shares as one OCO order (journal-first).
    PlaceOco {
        /// The position.
        position_id: PositionId,
        /// The take-profit target.
        take_profit: TargetKey,
        /// Its order.
        take_profit_spec: OrderSpec,
        /// The stop-loss target.
        stop_loss: TargetKey,
        /// Its order.
        stop_loss_spec: OrderSpec,
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
            Self::CloseLocal { position_id, .. } => format!("close_local:{position_id}"),
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
            Self::PlaceOco {
                position_id,
                take_profit,
                stop_loss,
                ..
            } => format!("place_oco:{position_id}:{take_profit}+{stop_loss}"),
            Self::Backfill { position, .. } => format!("backfill:{}", position.id),
        }
    }

    /// The action's kind, as spelled in plan JSON.
    pub fn kind(&self) -> ActionKind {
        match self {
            Self::Link { .. } => ActionKind::Link,
            Self::Clear { .. } => ActionKind::Clear,
            Self::MarkFilled { .. } => ActionKind::MarkFilled,
            Self::Promote { .. } => ActionKind::Promote,
            Self::CloseLocal { .. } => ActionKind::CloseLocal,
            Self::DropIntent { .. } => ActionKind::DropIntent,
            Self::Cancel { .. } => ActionKind::Cancel,
            Self::Replace { .. } => ActionKind::Replace,
            Self::PlaceTarget { .. } => ActionKind::PlaceTarget,
            Self::PlaceOco { .. } => ActionKind::PlaceOco,
            Self::Backfill { .. } => ActionKind::Backfill,
        }
    }

    /// Whether two actions do the same thing: equal but for what other orders already close
    /// of the holdings (`working_closing`), which is evidence the planner weighed, not part
    /// of the order. A re-planned action still justified is the approved one even when an
    /// unrelated order came or went.
    pub fn same_as(&self, other: &Action) -> bool {
        fn bare(a: &Action) -> Action {
            let mut a = a.clone();
            match &mut a {
                Action::Replace { spec, .. } | Action::PlaceTarget { spec, .. } => {
                    spec.working_closing = None;
                }
                Action::PlaceOco {
                    take_profit_spec,
                    stop_loss_spec,
                    ..
                } => {
                    take_profit_spec.working_closing = None;
                    stop_loss_spec.working_closing = None;
                }
                _ => {}
            }
            a
        }
        self == other || bare(self) == bare(other)
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
            Self::Cancel { .. }
                | Self::Replace { .. }
                | Self::PlaceTarget { .. }
                | Self::PlaceOco { .. }
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

impl PlannedAction {
    /// The position the action concerns (empty for a cancel or a dropped intent, which concern
    /// an order or a journal entry).
    pub fn position(&self) -> PositionId {
        match &self.action {
            Action::Link { position_id, .. }
            | Action::Clear { position_id, .. }
            | Action::MarkFilled { position_id, .. }
            | Action::Promote { position_id }
            | Action::CloseLocal { position_id, .. }
            | Action::Replace { position_id, .. }
            | Action::PlaceTarget { position_id, .. }
            | Action::PlaceOco { position_id, .. } => position_id.clone(),
            Action::Backfill { position, .. } => position.id.clone(),
            Action::Cancel { .. } | Action::DropIntent { .. } => PositionId::new(""),
        }
    }
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
    ///
    /// # Errors
    /// A serialization error (none is known to be possible for a plan).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        crate::snapshot::to_json(self)
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

/// Makes the plan for a report under a policy: each fix in turn, then the rails. Local
/// bookkeeping comes first, then clears and cancels, then placements, so a dependency always
/// comes before its dependant.
pub fn plan(report: &Report, policy: &Policy) -> Plan {
    let mut draft = Draft::default();
    for fix in fixes::ALL {
        draft.extend(fix(report, policy));
    }
    fixes::pair_exits(policy, &mut draft);
    fixes::share_holdings(&mut draft);
    rails::apply(report, policy, &mut draft);
    let total_risk = draft.total_risk;
    let mut actions = draft.local;
    actions.extend(draft.destructive);
    actions.extend(draft.placements);
    let mut seen = BTreeSet::new();
    actions.retain(|a| seen.insert(a.key.clone()));
    Plan {
        format: PlanFormat,
        as_of: report.as_of,
        fingerprint: None,
        policy: policy.clone(),
        actions,
        skipped: draft.skipped,
        refusals: draft.refusals,
        backfill_total_risk: total_risk,
    }
}

/// What the fixes propose, in three lists run in this order, and what they left out.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    /// Local bookkeeping: links, marks, promotions, closes, dropped intents, backfills.
    pub local: Vec<PlannedAction>,
    /// Clears, cancels and replacements.
    pub destructive: Vec<PlannedAction>,
    /// Placements.
    pub placements: Vec<PlannedAction>,
    pub skipped: Vec<Skipped>,
    pub refusals: Vec<String>,
    pub total_risk: Option<Decimal>,
}

impl Draft {
    fn extend(&mut self, other: Draft) {
        self.local.extend(other.local);
        self.destructive.extend(other.destructive);
        self.placements.extend(other.placements);
        self.skipped.extend(other.skipped);
        self.refusals.extend(other.refusals);
        if other.total_risk.is_some() {
            self.total_risk = other.total_risk;
        }
    }

    fn skip(&mut self, subject: impl Into<String>, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            subject: subject.into(),
            reason: reason.into(),
        });
    }
}

/// Adds an action to a list; returns its key, for dependants.
pub(crate) fn push(
    list: &mut Vec<PlannedAction>,
    action: Action,
    depends_on: Option<String>,
) -> String {
    let key = action.key();
    list.push(PlannedAction {
        key: key.clone(),
        depends_on,
        action,
    });
    key
}
