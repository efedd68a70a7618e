//! Report v1 (DESIGN §4): every disagreement found by the diff, by category, sorted so the same
//! inputs give the same bytes. Entries carry a few more fields than the contract's minimum, so the
//! planner can work from the report alone.

mod json;

use crate::decimal;
use crate::ids::{AccountId, ClientOrderId, OrderId, PositionId, TargetKey};
use crate::model::{Fill, OrderStatus, TargetLeg};
use crate::symbol::Symbol;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The `format` tag of a report.
pub const REPORT_FORMAT: &str = "reconcile.report/v1";

crate::format_tag!(
    /// The tag `"reconcile.report/v1"`.
    ReportFormat,
    REPORT_FORMAT
);

/// A (position, target) pair.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TargetRef {
    /// The position.
    pub position_id: PositionId,
    /// The target's key.
    pub target_key: TargetKey,
}

/// An active target whose order is working as expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matched {
    /// The position.
    pub position_id: PositionId,
    /// The target.
    pub target_key: TargetKey,
    /// The working order.
    pub order_id: OrderId,
}

crate::spelling::spelled! {
    /// The field in which a working order differs from its target's expectations.
    pub enum DriftField("drift field") {
        /// The limit price.
        LimitPrice = "limit_price",
        /// The stop price.
        StopPrice = "stop_price",
        /// A leg's quantity.
        Quantity = "quantity",
        /// The legs themselves (symbol, side, quantity).
        Legs = "legs",
    }
}

/// What a target expects of its order, carried so a fix can be planned from the report alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSpec {
    /// The account to place in.
    pub account: AccountId,
    /// The underlying.
    pub underlying: String,
    /// Expected closing legs.
    pub legs: Vec<TargetLeg>,
    /// Expected limit price.
    #[serde(with = "decimal::option", default)]
    pub limit_price: Option<Decimal>,
    /// Expected stop price.
    #[serde(with = "decimal::option", default)]
    pub stop_price: Option<Decimal>,
    /// Expected quantity per leg.
    #[serde(with = "decimal::option", default)]
    pub quantity: Option<Decimal>,
    /// What the broker holds of each leg's symbol (signed), or `None` when holdings are unknown.
    #[serde(default)]
    pub held: Option<Vec<Holding>>,
    /// An extension of report v1: what working orders at the broker, ours and theirs, already
    /// close of each held leg symbol (a positive quantity: sells of a long holding, buys of a
    /// short one, less what has filled). The exits of one OCO group count once, and the
    /// target's own order and its group are not counted. Absent when holdings are unknown or
    /// nothing else closes them. A placement may close only what is held beyond this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_closing: Option<Vec<Holding>>,
}

/// A signed quantity of one symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    /// The instrument.
    pub symbol: Symbol,
    /// Signed quantity held.
    #[serde(with = "decimal::string")]
    pub quantity: Decimal,
}

/// A working order that differs from its target's expectations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drifted {
    /// The position.
    pub position_id: PositionId,
    /// The target.
    pub target_key: TargetKey,
    /// The working order.
    pub order_id: OrderId,
    /// The first field that differs.
    pub field: DriftField,
    /// What the target expects (`null` when it expects nothing there).
    pub expected: Option<String>,
    /// What the order has (`null` when it has nothing there).
    pub actual: Option<String>,
    /// The account.
    pub account: AccountId,
    /// The target's expected limit price, stop price and quantity, for a replacement.
    pub spec: OrderSpec,
}

crate::spelling::spelled! {
    /// Why an active target's order is not working.
    pub enum InvalidReason("invalid reason") {
        /// It filled.
        Filled = "filled",
        /// It was cancelled.
        Cancelled = "cancelled",
        /// It expired.
        Expired = "expired",
        /// It was rejected.
        Rejected = "rejected",
        /// It was replaced by another order.
        Replaced = "replaced",
        /// The broker has no such order.
        NotFound = "not_found",
    }
}

impl InvalidReason {
    /// The reason a terminal status gives.
    pub fn from_status(status: OrderStatus) -> Self {
        match status {
            OrderStatus::Filled => Self::Filled,
            OrderStatus::Cancelled => Self::Cancelled,
            OrderStatus::Expired => Self::Expired,
            OrderStatus::Rejected => Self::Rejected,
            OrderStatus::Replaced => Self::Replaced,
            // Working statuses never reach here; an unexpected one is treated as missing evidence.
            _ => Self::NotFound,
        }
    }
}

/// An active target whose order is not working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invalid {
    /// The position.
    pub position_id: PositionId,
    /// The target.
    pub target_key: TargetKey,
    /// The order it references.
    pub order_id: OrderId,
    /// Why it is not working.
    pub reason: InvalidReason,
    /// The account.
    pub account: AccountId,
    /// For `replaced`, the working order at the end of the replacement chain, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<OrderId>,
    /// What a new order must look like once the id is cleared (absent for `filled`, and for
    /// `replaced` with a working replacement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<OrderSpec>,
    /// Whether the target is due once cleared (its position is open).
    #[serde(default)]
    pub due: bool,
}

crate::spelling::spelled! {
    /// How an unreferenced order was tied to a target.
    pub enum AdoptVia("adoption route") {
        /// Its client order id equals an intent's or the target's.
        ClientOrderId = "client_order_id",
        /// Its legs equal the target's expected legs, and nothing else fits.
        Legs = "legs",
        /// It replaced the order the target references.
        ReplacedBy = "replaced_by",
    }
}

/// An unreferenced working order that belongs to a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adoptable {
    /// The order.
    pub order_id: OrderId,
    /// The position.
    pub position_id: PositionId,
    /// The target.
    pub target_key: TargetKey,
    /// How it was tied.
    pub via: AdoptVia,
    /// The order's account.
    pub account: AccountId,
    /// The order's client order id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
    /// The intent the link resolves, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<ClientOrderId>,
}

/// Something that may still be on its way: wait.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InFlight {
    /// The position, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_id: Option<PositionId>,
    /// The target, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_key: Option<TargetKey>,
    /// The order, when keyed by order id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<OrderId>,
    /// The client order id, when keyed by intent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
}

impl InFlight {
    /// An unreferenced order that may still be on its way to its target.
    pub fn order(order: &crate::model::Order) -> Self {
        Self {
            position_id: None,
            target_key: None,
            order_id: Some(order.id.clone()),
            client_order_id: order.client_order_id.clone(),
        }
    }

    /// A target whose order may still be on its way: by its order id when it has one, else by
    /// the client order id it (or its intent) was sent with.
    pub fn target(
        position_id: &PositionId,
        target_key: &TargetKey,
        order_id: Option<&OrderId>,
        client_order_id: Option<&ClientOrderId>,
    ) -> Self {
        Self {
            position_id: Some(position_id.clone()),
            target_key: Some(target_key.clone()),
            order_id: order_id.cloned(),
            client_order_id: client_order_id.cloned(),
        }
    }
}

/// An unreferenced working order that nothing explains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphaned {
    /// The order.
    pub order_id: OrderId,
    /// Its underlying.
    pub underlying: String,
    /// Its normalized status.
    pub status: OrderStatus,
    /// Its account.
    pub account: AccountId,
    /// Its client order id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
}

/// A due target with no order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    /// The position.
    pub position_id: PositionId,
    /// The target.
    pub target_key: TargetKey,
    /// What its order must look like.
    pub spec: OrderSpec,
}

/// One order id referenced by several targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The order.
    pub order_id: OrderId,
    /// The targets that reference it.
    pub targets: Vec<TargetRef>,
}

/// An intent older than the grace period with no working broker order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleIntent {
    /// The intent's client order id.
    pub client_order_id: ClientOrderId,
    /// The position.
    pub position_id: PositionId,
    /// The target.
    pub target_key: TargetKey,
}

/// A symbol the broker holds that no scoped local position expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UntrackedHolding {
    /// The account.
    pub account: AccountId,
    /// The instrument.
    pub symbol: Symbol,
    /// Signed quantity held.
    #[serde(with = "decimal::string")]
    pub quantity: Decimal,
    /// The underlying.
    pub underlying: String,
    /// The broker's average open price, if given.
    #[serde(with = "decimal::option", default)]
    pub average_price: Option<Decimal>,
    /// The filled order that opened it, if history shows one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<Fill>,
    /// An extension of report v1: what working orders at the broker already close of it (as
    /// in [`OrderSpec::working_closing`]), when any do.
    #[serde(
        with = "decimal::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_closing: Option<Decimal>,
}

/// An open local position whose legs are all flat at the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StalePosition {
    /// The position.
    pub position_id: PositionId,
    /// The account.
    pub account: AccountId,
    /// Working orders its targets reference; they protect nothing now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub working_orders: Vec<OrderId>,
    /// The filled order that closed it, if history shows one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closing: Option<Fill>,
}

/// Expected and held quantities that differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuantityMismatch {
    /// The account.
    pub account: AccountId,
    /// The instrument.
    pub symbol: Symbol,
    /// What local open/closing positions add up to.
    #[serde(with = "decimal::string")]
    pub expected: Decimal,
    /// What the broker holds.
    #[serde(with = "decimal::string")]
    pub actual: Decimal,
}

/// A pending local position whose legs the broker holds in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingFilled {
    /// The position.
    pub position_id: PositionId,
    /// Its unplaced targets, due once it is promoted to open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub due: Vec<Missing>,
}

/// The count of each category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Summary {
    pub matched: usize,
    pub drifted: usize,
    pub invalid: usize,
    pub adoptable: usize,
    pub in_flight: usize,
    pub orphaned: usize,
    pub missing: usize,
    pub conflicts: usize,
    pub stale_intents: usize,
    pub untracked_holdings: usize,
    pub stale_positions: usize,
    pub quantity_mismatches: usize,
    pub pending_filled: usize,
}

/// How much the diff looked at, so a plan can tell a broken read from a quiet day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scanned {
    /// Local positions in the snapshot, in any state.
    pub local_positions: usize,
    /// Scoped local positions in state pending, open or closing.
    pub scoped_positions: usize,
    /// Working broker orders in scope.
    pub working_orders: usize,
}

/// The result of a diff: report v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Report {
    pub format: ReportFormat,
    /// The instant the diff judged "now" by.
    pub as_of: DateTime<Utc>,
    /// True when every category but matched is empty.
    pub in_sync: bool,
    pub summary: Summary,
    /// How much was looked at.
    #[serde(default)]
    pub scanned: Scanned,
    pub matched: Vec<Matched>,
    pub drifted: Vec<Drifted>,
    pub invalid: Vec<Invalid>,
    pub adoptable: Vec<Adoptable>,
    pub in_flight: Vec<InFlight>,
    pub orphaned: Vec<Orphaned>,
    pub missing: Vec<Missing>,
    pub conflicts: Vec<Conflict>,
    pub stale_intents: Vec<StaleIntent>,
    /// An extension of report v1, not a discrepancy: intents whose order exists and is already
    /// referenced by a target. They are spent: a plan drops them silently. Absent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spent_intents: Vec<StaleIntent>,
    pub untracked_holdings: Vec<UntrackedHolding>,
    pub stale_positions: Vec<StalePosition>,
    pub quantity_mismatches: Vec<QuantityMismatch>,
    pub pending_filled: Vec<PendingFilled>,
}

impl Report {
    /// An empty, in-sync report.
    pub fn empty(as_of: DateTime<Utc>) -> Self {
        Self {
            format: ReportFormat,
            as_of,
            in_sync: true,
            summary: Summary::default(),
            scanned: Scanned::default(),
            matched: Vec::new(),
            drifted: Vec::new(),
            invalid: Vec::new(),
            adoptable: Vec::new(),
            in_flight: Vec::new(),
            orphaned: Vec::new(),
            missing: Vec::new(),
            conflicts: Vec::new(),
            stale_intents: Vec::new(),
            spent_intents: Vec::new(),
            untracked_holdings: Vec::new(),
            stale_positions: Vec::new(),
            quantity_mismatches: Vec::new(),
            pending_filled: Vec::new(),
        }
    }

    /// Keeps only the entries about `positions` (every entry when it is empty): the report of
    /// `--position`. Entries about no position are dropped; a conflict stays when one of its
    /// targets is of a kept position.
    pub fn narrow_to_positions(&mut self, positions: &std::collections::BTreeSet<PositionId>) {
        if positions.is_empty() {
            return;
        }
        let keep = |p: &PositionId| positions.contains(p);
        self.matched.retain(|x| keep(&x.position_id));
        self.drifted.retain(|x| keep(&x.position_id));
        self.invalid.retain(|x| keep(&x.position_id));
        self.adoptable.retain(|x| keep(&x.position_id));
        self.in_flight
            .retain(|x| x.position_id.as_ref().is_some_and(keep));
        self.orphaned.clear();
        self.missing.retain(|x| keep(&x.position_id));
        self.conflicts
            .retain(|x| x.targets.iter().any(|t| keep(&t.position_id)));
        self.stale_intents.retain(|x| keep(&x.position_id));
        self.spent_intents.retain(|x| keep(&x.position_id));
        self.untracked_holdings.clear();
        self.stale_positions.retain(|x| keep(&x.position_id));
        self.quantity_mismatches.clear();
        self.pending_filled.retain(|x| keep(&x.position_id));
        self.finish();
    }

    /// Recomputes `summary` and `in_sync` from the lists.
    pub fn finish(&mut self) {
        self.summary = Summary {
            matched: self.matched.len(),
            drifted: self.drifted.len(),
            invalid: self.invalid.len(),
            adoptable: self.adoptable.len(),
            in_flight: self.in_flight.len(),
            orphaned: self.orphaned.len(),
            missing: self.missing.len(),
            conflicts: self.conflicts.len(),
            stale_intents: self.stale_intents.len(),
            untracked_holdings: self.untracked_holdings.len(),
            stale_positions: self.stale_positions.len(),
            quantity_mismatches: self.quantity_mismatches.len(),
            pending_filled: self.pending_filled.len(),
        };
        let s = &self.summary;
        self.in_sync = s.drifted
            + s.invalid
            + s.adoptable
            + s.in_flight
            + s.orphaned
            + s.missing
            + s.conflicts
            + s.stale_intents
            + s.untracked_holdings
            + s.stale_positions
            + s.quantity_mismatches
            + s.pending_filled
            == 0;
    }

    /// The report as pretty JSON with a trailing newline (byte-stable).
    ///
    /// # Errors
    /// A serialization error (none is known to be possible for a report).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        crate::snapshot::to_json(self)
    }

    /// Writes the same bytes as [`Self::to_json`] to `out`, without building them in memory
    /// first (a report of 150,000 targets is 22 MB), and faster: the matched entries, most of a
    /// large report, are written without serde's machinery.
    ///
    /// # Errors
    /// The writer's error, as a serde_json I/O error.
    pub fn write_json(&self, mut out: impl std::io::Write) -> Result<(), serde_json::Error> {
        json::write(self, &mut out)
    }

    /// The categories in report order with their counts, for human output.
    pub fn counts(&self) -> [(&'static str, usize); 13] {
        let s = &self.summary;
        [
            ("matched", s.matched),
            ("drifted", s.drifted),
            ("invalid", s.invalid),
            ("adoptable", s.adoptable),
            ("in_flight", s.in_flight),
            ("orphaned", s.orphaned),
            ("missing", s.missing),
            ("conflicts", s.conflicts),
            ("stale_intents", s.stale_intents),
            ("untracked_holdings", s.untracked_holdings),
            ("stale_positions", s.stale_positions),
            ("quantity_mismatches", s.quantity_mismatches),
            ("pending_filled", s.pending_filled),
        ]
    }
}
