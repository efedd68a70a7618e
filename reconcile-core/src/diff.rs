//! The diff (DESIGN §4): a pure, deterministic comparison of a local and a broker snapshot. It
//! never reads the wall clock: "now" is the broker snapshot's `as_of` unless the caller gives one.

use crate::fxhash::{FxMap, FxSet};
use crate::ids::{AccountId, ClientOrderId, OrderId};
use crate::model::{Intent, Order, OrderStatus, Position, PositionState, ProfitTarget, TargetLeg};
use crate::report::{
    AdoptVia, Adoptable, Conflict, DriftField, Drifted, Holding, InFlight, Invalid, InvalidReason,
    Matched, Missing, OrderSpec, Orphaned, PendingFilled, QuantityMismatch, Report, StaleIntent,
    StalePosition, TargetRef, UntrackedHolding,
};
use crate::snapshot::{BrokerSnapshot, LocalSnapshot};
use crate::symbol::Symbol;
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};

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

    /// Adds a position state to the scope.
    #[must_use]
    pub fn with_state(mut self, state: PositionState) -> Self {
        self.states.insert(state);
        self
    }

    /// Whether a local position is in scope: its account, underlying and state.
    pub fn includes_position(&self, p: &Position) -> bool {
        self.includes(&p.account, &p.underlying)
            && (self.states.is_empty() || self.states.contains(&p.state))
    }

    /// Whether the scope names no account, underlying or state.
    pub fn is_everything(&self) -> bool {
        self.accounts.is_empty() && self.underlyings.is_empty() && self.states.is_empty()
    }

    /// Whether an (account, underlying) pair is in scope.
    pub fn includes(&self, account: &AccountId, underlying: &str) -> bool {
        (self.accounts.is_empty() || self.accounts.contains(account))
            && (self.underlyings.is_empty() || self.underlyings.contains(underlying))
    }
}

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

type HoldKey<'a> = (&'a AccountId, &'a Symbol);

/// Compares what the records say with what the broker says.
///
/// # Errors
/// [`DiffError::Overflow`] if quantities of one symbol cannot be added up.
pub fn diff(
    local: &LocalSnapshot,
    broker: &BrokerSnapshot,
    options: &DiffOptions,
) -> Result<Report, DiffError> {
    Differ::new(local, broker, options).run()
}

struct Differ<'a> {
    local: &'a LocalSnapshot,
    broker: &'a BrokerSnapshot,
    scope: &'a Scope,
    now: DateTime<Utc>,
    grace: TimeDelta,
    /// Every order id seen on either side: the broker's order (if any) and how many scoped
    /// active targets reference it.
    orders: FxMap<&'a str, Seen<'a>>,
    /// Scoped positions in state pending/open/closing, sorted by id.
    positions: Vec<&'a Position>,
    held: Option<FxMap<HoldKey<'a>, Decimal>>,
    report: Report,
}

/// Where a target sits: index into `positions`, index into that position's targets.
type Slot = (u32, u32);

#[derive(Clone, Copy)]
struct Seen<'a> {
    order: Option<&'a Order>,
    refs: u32,
}

impl<'a> Differ<'a> {
    fn new(local: &'a LocalSnapshot, broker: &'a BrokerSnapshot, options: &'a DiffOptions) -> Self {
        let now = options.now.unwrap_or(broker.as_of);
        let mut orders: FxMap<&str, Seen<'_>> = FxMap::default();
        orders.reserve(broker.orders.len() + broker.orders.len() / 16);
        for o in &broker.orders {
            orders
                .entry(o.id.as_str())
                .and_modify(|cur| {
                    if cur.order.is_none_or(|c| newer(o, c)) {
                        cur.order = Some(o);
                    }
                })
                .or_insert(Seen {
                    order: Some(o),
                    refs: 0,
                });
        }
        let mut positions: Vec<&Position> = local
            .positions
            .iter()
            .filter(|p| p.state != PositionState::Closed && options.scope.includes_position(p))
            .collect();
        positions.sort_by(|a, b| a.id.cmp(&b.id));
        Self {
            local,
            broker,
            scope: &options.scope,
            now,
            grace: options.grace,
            orders,
            positions,
            held: None,
            report: Report::empty(now),
        }
    }

    fn order(&self, id: &str) -> Option<&'a Order> {
        self.orders.get(id).and_then(|s| s.order)
    }

    fn referenced(&self, id: &str) -> bool {
        self.orders.get(id).is_some_and(|s| s.refs > 0)
    }

    fn within_grace(&self, t: DateTime<Utc>) -> bool {
        self.now.signed_duration_since(t) <= self.grace
    }

    fn run(mut self) -> Result<Report, DiffError> {
        self.held = self.held_quantities()?;

        // References: every active target with an order id, by order id.
        let mut unplaced: Vec<Slot> = Vec::new();
        let mut target_order: Vec<Option<Vec<u32>>> = Vec::with_capacity(self.positions.len());
        for (pi, p) in self.positions.iter().enumerate() {
            let idx = key_order(p);
            for ti in target_indices(p, idx.as_deref()) {
                let t = &p.targets[ti as usize];
                if t.status.is_settled() {
                    continue;
                }
                match (&t.status, &t.order_id) {
                    (crate::model::TargetStatus::Active, Some(id)) => {
                        self.orders
                            .entry(id.as_str())
                            .or_insert(Seen {
                                order: None,
                                refs: 0,
                            })
                            .refs += 1;
                    }
                    _ => unplaced.push((pi as u32, ti)),
                }
            }
            target_order.push(idx);
        }

        // Referenced targets, in (position, key) order.
        let mut conflicts: BTreeMap<&'a str, Vec<TargetRef>> = BTreeMap::new();
        let mut replaced_targets: FxMap<&'a str, Slot> = FxMap::default();
        for (pi, idx) in target_order.iter().enumerate() {
            let p = self.positions[pi];
            for ti in target_indices(p, idx.as_deref()) {
                let t = &p.targets[ti as usize];
                let Some(id) = t
                    .order_id
                    .as_ref()
                    .filter(|_| t.status == crate::model::TargetStatus::Active)
                else {
                    continue;
                };
                let count = self.orders.get(id.as_str()).map_or(1, |e| e.refs);
                if count > 1 {
                    conflicts.entry(id.as_str()).or_default().push(TargetRef {
                        position_id: p.id.clone(),
                        target_key: t.key.clone(),
                    });
                    continue;
                }
                self.classify_referenced(p, t, id, &mut replaced_targets, (pi as u32, ti));
            }
        }
        for (order_id, targets) in conflicts {
            self.report.conflicts.push(Conflict {
                order_id: OrderId::new(order_id),
                targets,
            });
        }

        // Intents in scope.
        let intents: Vec<&'a Intent> = self.scoped_intents();
        let mut cid_orders: FxMap<&'a str, Vec<&'a Order>> = FxMap::default();
        // Unreferenced working orders in scope, sorted by id; orders by client order id.
        let mut loose: Vec<&'a Order> = Vec::new();
        let mut working_in_scope = 0usize;
        for seen in self.orders.values() {
            let Some(o) = seen.order else { continue };
            if let Some(c) = &o.client_order_id {
                cid_orders.entry(c.as_str()).or_default().push(o);
            }
            if o.status.is_working() && self.scope.includes(&o.account, &o.underlying) {
                working_in_scope += 1;
                if seen.refs == 0 {
                    loose.push(o);
                }
            }
        }
        loose.sort_by(|a, b| a.id.cmp(&b.id));

        let adopted = self.adopt(&mut loose, &unplaced, &intents, &replaced_targets);

        for o in loose {
            let recent = match o.submitted_at {
                Some(t) => self.within_grace(t),
                None => o.status == OrderStatus::Pending,
            };
            if recent {
                self.report.in_flight.push(InFlight {
                    position_id: None,
                    target_key: None,
                    order_id: Some(o.id.clone()),
                    client_order_id: o.client_order_id.clone(),
                });
            } else {
                self.report.orphaned.push(Orphaned {
                    order_id: o.id.clone(),
                    underlying: o.underlying.clone(),
                    status: o.status,
                    account: o.account.clone(),
                    client_order_id: o.client_order_id.clone(),
                });
            }
        }

        // Unplaced targets: in flight, missing, or not due.
        let mut intents_by_target: FxMap<(&str, &str), Vec<&'a Intent>> = FxMap::default();
        for i in &intents {
            intents_by_target
                .entry((i.position_id.as_str(), i.target_key.as_str()))
                .or_default()
                .push(i);
        }
        let has_working = |cid: &str| {
            cid_orders
                .get(cid)
                .is_some_and(|os| os.iter().any(|o| o.status.is_working()))
        };
        let mut consumed: FxSet<&'a str> = FxSet::default();
        for &(pi, ti) in &unplaced {
            if adopted.contains(&(pi, ti)) {
                continue;
            }
            let p = self.positions[pi as usize];
            if p.state != PositionState::Open {
                continue;
            }
            let t = &p.targets[ti as usize];
            let covering = intents_by_target
                .get(&(p.id.as_str(), t.key.as_str()))
                .and_then(|is| {
                    is.iter()
                        .filter(|i| {
                            self.within_grace(i.created_at)
                                && !has_working(i.client_order_id.as_str())
                        })
                        .min_by(|a, b| a.client_order_id.cmp(&b.client_order_id))
                });
            if let Some(i) = covering {
                consumed.insert(i.client_order_id.as_str());
                self.report.in_flight.push(InFlight {
                    position_id: Some(p.id.clone()),
                    target_key: Some(t.key.clone()),
                    order_id: None,
                    client_order_id: Some(i.client_order_id.clone()),
                });
            } else if t.placed_at.is_some_and(|at| self.within_grace(at)) {
                self.report.in_flight.push(InFlight {
                    position_id: Some(p.id.clone()),
                    target_key: Some(t.key.clone()),
                    order_id: None,
                    client_order_id: t.client_order_id.clone(),
                });
            } else {
                let spec = self.spec(p, t);
                self.report.missing.push(Missing {
                    position_id: p.id.clone(),
                    target_key: t.key.clone(),
                    spec,
                });
            }
        }

        // Intents on their own: waiting, or stale.
        for i in &intents {
            let cid = i.client_order_id.as_str();
            if consumed.contains(cid) {
                continue;
            }
            let working: Vec<&Order> = cid_orders
                .get(cid)
                .map(|os| {
                    os.iter()
                        .copied()
                        .filter(|o| o.status.is_working())
                        .collect()
                })
                .unwrap_or_default();
            let recent = self.within_grace(i.created_at);
            if working.iter().any(|o| !self.referenced(o.id.as_str())) {
                // Adoption, grace or the orphan rule deals with its order.
                continue;
            }
            if !working.is_empty() {
                // Its order is already referenced: the intent is spent; let it go after grace.
                if !recent {
                    self.report.stale_intents.push(StaleIntent {
                        client_order_id: i.client_order_id.clone(),
                        position_id: i.position_id.clone(),
                        target_key: i.target_key.clone(),
                    });
                }
                continue;
            }
            if recent {
                consumed.insert(cid);
                self.report.in_flight.push(InFlight {
                    position_id: Some(i.position_id.clone()),
                    target_key: Some(i.target_key.clone()),
                    order_id: None,
                    client_order_id: Some(i.client_order_id.clone()),
                });
            } else {
                self.report.stale_intents.push(StaleIntent {
                    client_order_id: i.client_order_id.clone(),
                    position_id: i.position_id.clone(),
                    target_key: i.target_key.clone(),
                });
            }
        }

        self.holdings(&target_order, &unplaced, &adopted)?;
        self.report.scanned = crate::report::Scanned {
            local_positions: self.local.positions.len(),
            scoped_positions: self.positions.len(),
            working_orders: working_in_scope,
        };
        self.sort();
        self.report.finish();
        Ok(self.report)
    }

    fn classify_referenced(
        &mut self,
        p: &'a Position,
        t: &'a ProfitTarget,
        id: &'a OrderId,
        replaced_targets: &mut FxMap<&'a str, Slot>,
        slot: Slot,
    ) {
        match self.order(id.as_str()) {
            Some(o) if o.status.is_working() => match drift(t, o) {
                None => self.report.matched.push(Matched {
                    position_id: p.id.clone(),
                    target_key: t.key.clone(),
                    order_id: id.clone(),
                }),
                Some((field, expected, actual)) => {
                    let spec = self.spec(p, t);
                    self.report.drifted.push(Drifted {
                        position_id: p.id.clone(),
                        target_key: t.key.clone(),
                        order_id: id.clone(),
                        field,
                        expected,
                        actual,
                        account: p.account.clone(),
                        spec,
                    });
                }
            },
            Some(o) => {
                let reason = InvalidReason::from_status(o.status);
                let replaced_by = if reason == InvalidReason::Replaced {
                    self.follow_replacement(o).map(|n| n.id.clone())
                } else {
                    None
                };
                if let Some(n) = &replaced_by {
                    if let Some(o) = self.order(n.as_str()) {
                        replaced_targets.insert(o.id.as_str(), slot);
                    }
                }
                let spec = (reason != InvalidReason::Filled && replaced_by.is_none())
                    .then(|| self.spec(p, t));
                self.report.invalid.push(Invalid {
                    position_id: p.id.clone(),
                    target_key: t.key.clone(),
                    order_id: id.clone(),
                    reason,
                    account: p.account.clone(),
                    replaced_by,
                    spec,
                    due: p.state == PositionState::Open,
                });
            }
            None if t.placed_at.is_some_and(|at| self.within_grace(at)) => {
                self.report.in_flight.push(InFlight {
                    position_id: Some(p.id.clone()),
                    target_key: Some(t.key.clone()),
                    order_id: Some(id.clone()),
                    client_order_id: t.client_order_id.clone(),
                });
            }
            None => {
                let spec = Some(self.spec(p, t));
                self.report.invalid.push(Invalid {
                    position_id: p.id.clone(),
                    target_key: t.key.clone(),
                    order_id: id.clone(),
                    reason: InvalidReason::NotFound,
                    account: p.account.clone(),
                    replaced_by: None,
                    spec,
                    due: p.state == PositionState::Open,
                });
            }
        }
    }

    /// Follows a replaced order's chain to the working order at its end, if any.
    fn follow_replacement(&self, start: &'a Order) -> Option<&'a Order> {
        let mut cur = start;
        for _ in 0..32 {
            let next = match &cur.replaced_by {
                Some(n) => self.order(n.as_str()),
                None => self
                    .broker
                    .orders
                    .iter()
                    .find(|o| o.replaces.as_ref() == Some(&cur.id)),
            }?;
            if next.status.is_working() {
                return Some(next);
            }
            if next.status != OrderStatus::Replaced {
                return None;
            }
            cur = next;
        }
        None
    }

    fn scoped_intents(&self) -> Vec<&'a Intent> {
        let by_id: FxMap<&str, &Position> = self
            .local
            .positions
            .iter()
            .map(|p| (p.id.as_str(), p))
            .collect();
        let unscoped = self.scope.is_everything();
        let mut out: Vec<&Intent> = self
            .local
            .intents
            .iter()
            .filter(|i| match by_id.get(i.position_id.as_str()) {
                Some(p) => self.scope.includes_position(p),
                None => unscoped,
            })
            .collect();
        out.sort_by(|a, b| a.client_order_id.cmp(&b.client_order_id));
        out.dedup_by(|a, b| a.client_order_id == b.client_order_id);
        out
    }

    /// Moves adoptable orders out of `loose` into the report; returns the adopted target slots.
    fn adopt(
        &mut self,
        loose: &mut Vec<&'a Order>,
        unplaced: &[Slot],
        intents: &[&'a Intent],
        replaced_targets: &FxMap<&'a str, Slot>,
    ) -> FxSet<Slot> {
        let mut adopted: FxSet<Slot> = FxSet::default();
        if loose.is_empty() {
            return adopted;
        }
        let pos_index: FxMap<&str, u32> = self
            .positions
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.as_str(), i as u32))
            .collect();
        let slot_of = |pid: &str, key: &str| -> Option<Slot> {
            let pi = *pos_index.get(pid)?;
            let p = self.positions[pi as usize];
            let ti = p.targets.iter().position(|t| t.key.as_str() == key)?;
            (!p.targets[ti].status.is_settled()).then_some((pi, ti as u32))
        };
        let unplaced_set: FxSet<Slot> = unplaced.iter().copied().collect();
        let mut by_cid: FxMap<&str, (Slot, Option<&'a ClientOrderId>)> = FxMap::default();
        for i in intents {
            if let Some(slot) = slot_of(i.position_id.as_str(), i.target_key.as_str()) {
                by_cid
                    .entry(i.client_order_id.as_str())
                    .or_insert((slot, Some(&i.client_order_id)));
            }
        }
        for &(pi, ti) in unplaced {
            if let Some(c) = &self.positions[pi as usize].targets[ti as usize].client_order_id {
                by_cid.entry(c.as_str()).or_insert(((pi, ti), None));
            }
        }

        // Oldest first, so that of two orders claiming one target the earlier one wins.
        let mut claim_order: Vec<usize> = (0..loose.len()).collect();
        claim_order.sort_by(|&a, &b| {
            (loose[a].submitted_at, &loose[a].id).cmp(&(loose[b].submitted_at, &loose[b].id))
        });
        let mut taken: Vec<Option<(Slot, AdoptVia, Option<&'a ClientOrderId>)>> =
            vec![None; loose.len()];

        // 1. Replacements of a referenced order.
        for &k in &claim_order {
            if let Some(&slot) = replaced_targets.get(loose[k].id.as_str()) {
                if adopted.insert(slot) {
                    taken[k] = Some((slot, AdoptVia::ReplacedBy, None));
                }
            }
        }
        // 2. Client order ids.
        for &k in &claim_order {
            if taken[k].is_some() {
                continue;
            }
            let Some(cid) = &loose[k].client_order_id else {
                continue;
            };
            if let Some(&(slot, intent)) = by_cid.get(cid.as_str()) {
                if adopted.insert(slot) {
                    taken[k] = Some((slot, AdoptVia::ClientOrderId, intent));
                }
            }
        }
        // 3. Legs: exactly one unplaced target of an open position fits, and it fits no other.
        let mut sig_targets: FxMap<(AccountId, Vec<LegKey>), Vec<Slot>> = FxMap::default();
        for &(pi, ti) in unplaced {
            let p = self.positions[pi as usize];
            let t = &p.targets[ti as usize];
            if p.state != PositionState::Open || t.legs.is_empty() || adopted.contains(&(pi, ti)) {
                continue;
            }
            sig_targets
                .entry((
                    p.account.clone(),
                    leg_keys(t.legs.iter().map(target_leg_key)),
                ))
                .or_default()
                .push((pi, ti));
        }
        if !sig_targets.is_empty() {
            let mut fits: Vec<Option<Slot>> = vec![None; loose.len()];
            let mut fit_count: FxMap<Slot, u32> = FxMap::default();
            for (k, o) in loose.iter().enumerate() {
                if taken[k].is_some() || o.legs.is_empty() {
                    continue;
                }
                let key = (
                    o.account.clone(),
                    leg_keys(
                        o.legs
                            .iter()
                            .map(|l| (&l.symbol, l.side, l.quantity.normalize())),
                    ),
                );
                if let Some(cands) = sig_targets.get(&key) {
                    for s in cands {
                        *fit_count.entry(*s).or_default() += 1;
                    }
                    if cands.len() == 1 {
                        fits[k] = Some(cands[0]);
                    }
                }
            }
            for (k, fit) in fits.into_iter().enumerate() {
                if let Some(slot) = fit {
                    if fit_count.get(&slot) == Some(&1) && unplaced_set.contains(&slot) {
                        adopted.insert(slot);
                        taken[k] = Some((slot, AdoptVia::Legs, None));
                    }
                }
            }
        }

        let mut rest = Vec::with_capacity(loose.len());
        for (k, o) in loose.drain(..).enumerate() {
            match taken[k] {
                Some(((pi, ti), via, intent)) => {
                    let p = self.positions[pi as usize];
                    self.report.adoptable.push(Adoptable {
                        order_id: o.id.clone(),
                        position_id: p.id.clone(),
                        target_key: p.targets[ti as usize].key.clone(),
                        via,
                        account: o.account.clone(),
                        client_order_id: o.client_order_id.clone(),
                        intent: intent.cloned(),
                    });
                }
                None => rest.push(o),
            }
        }
        *loose = rest;
        // Only unplaced targets count as adopted for the missing check; an active target that
        // gains a replacement keeps its own category.
        adopted.retain(|s| unplaced_set.contains(s));
        adopted
    }

    fn held_quantities(&self) -> Result<Option<FxMap<HoldKey<'a>, Decimal>>, DiffError> {
        let Some(rows) = &self.broker.positions else {
            return Ok(None);
        };
        let mut held: FxMap<HoldKey<'a>, Decimal> = FxMap::default();
        for bp in rows {
            if !self.scope.includes(&bp.account, bp.underlying()) {
                continue;
            }
            let e = held.entry((&bp.account, &bp.symbol)).or_default();
            *e = e
                .checked_add(bp.quantity)
                .ok_or_else(|| DiffError::Overflow {
                    account: bp.account.clone(),
                    symbol: bp.symbol.clone(),
                })?;
        }
        Ok(Some(held))
    }

    fn spec(&self, p: &Position, t: &ProfitTarget) -> OrderSpec {
        order_spec(p, t, self.held.as_ref())
    }

    fn holdings(
        &mut self,
        target_order: &[Option<Vec<u32>>],
        unplaced: &[Slot],
        adopted: &FxSet<Slot>,
    ) -> Result<(), DiffError> {
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        let overflow = |a: &AccountId, s: &Symbol| DiffError::Overflow {
            account: a.clone(),
            symbol: s.clone(),
        };
        let mut expected: FxMap<HoldKey<'a>, Decimal> = FxMap::default();
        for p in &self.positions {
            if matches!(p.state, PositionState::Open | PositionState::Closing) {
                for l in &p.legs {
                    let e = expected.entry((&p.account, &l.symbol)).or_default();
                    *e = e
                        .checked_add(l.quantity)
                        .ok_or_else(|| overflow(&p.account, &l.symbol))?;
                }
            }
        }
        let held_of =
            |a: &'a AccountId, s: &'a Symbol| held.get(&(a, s)).copied().unwrap_or_default();

        // Stale positions leave `expected`.
        for (pi, p) in self.positions.iter().enumerate() {
            if p.state != PositionState::Open || p.legs.is_empty() {
                continue;
            }
            if p.legs
                .iter()
                .all(|l| held_of(&p.account, &l.symbol).is_zero())
            {
                for l in &p.legs {
                    if let Some(e) = expected.get_mut(&(&p.account, &l.symbol)) {
                        *e = e
                            .checked_sub(l.quantity)
                            .ok_or_else(|| overflow(&p.account, &l.symbol))?;
                    }
                }
                let mut working_orders: Vec<OrderId> =
                    target_indices(p, target_order[pi].as_deref())
                        .filter_map(|ti| {
                            let t = &p.targets[ti as usize];
                            let id = t.order_id.as_ref()?;
                            (t.status == crate::model::TargetStatus::Active
                                && self
                                    .order(id.as_str())
                                    .is_some_and(|o| o.status.is_working()))
                            .then(|| id.clone())
                        })
                        .collect();
                working_orders.sort();
                working_orders.dedup();
                self.report.stale_positions.push(StalePosition {
                    position_id: p.id.clone(),
                    account: p.account.clone(),
                    working_orders,
                });
            }
        }

        // Pending positions held in full join `expected`.
        let unplaced_set: FxSet<Slot> = unplaced.iter().copied().collect();
        for (pi, p) in self.positions.iter().enumerate() {
            if p.state != PositionState::Pending || p.legs.is_empty() {
                continue;
            }
            let filled = p.legs.iter().all(|l| {
                let e = expected
                    .get(&(&p.account, &l.symbol))
                    .copied()
                    .unwrap_or_default();
                match held_of(&p.account, &l.symbol).checked_sub(e) {
                    Some(excess) => {
                        !l.quantity.is_zero()
                            && excess.is_sign_negative() == l.quantity.is_sign_negative()
                            && !excess.is_zero()
                            && excess.abs() >= l.quantity.abs()
                    }
                    None => false,
                }
            });
            if !filled {
                continue;
            }
            for l in &p.legs {
                let e = expected.entry((&p.account, &l.symbol)).or_default();
                *e = e
                    .checked_add(l.quantity)
                    .ok_or_else(|| overflow(&p.account, &l.symbol))?;
            }
            let mut due = Vec::new();
            for ti in target_indices(p, target_order[pi].as_deref()) {
                let slot = (pi as u32, ti);
                if unplaced_set.contains(&slot) && !adopted.contains(&slot) {
                    let t = &p.targets[ti as usize];
                    due.push(Missing {
                        position_id: p.id.clone(),
                        target_key: t.key.clone(),
                        spec: order_spec(p, t, Some(&held)),
                    });
                }
            }
            self.report.pending_filled.push(PendingFilled {
                position_id: p.id.clone(),
                due,
            });
        }

        // Whatever is left over.
        let mut keys: Vec<HoldKey<'a>> = expected.keys().chain(held.keys()).copied().collect();
        keys.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
        keys.dedup();
        let avg: FxMap<HoldKey<'a>, (Option<Decimal>, &'a str)> = self
            .broker
            .positions
            .iter()
            .flatten()
            .map(|bp| {
                (
                    (&bp.account, &bp.symbol),
                    (bp.average_price, bp.underlying()),
                )
            })
            .collect();
        for k in keys {
            let e = expected.get(&k).copied().unwrap_or_default();
            let h = held.get(&k).copied().unwrap_or_default();
            if e.is_zero() && !h.is_zero() {
                let (average_price, underlying) =
                    avg.get(&k).copied().unwrap_or((None, k.1.underlying()));
                self.report.untracked_holdings.push(UntrackedHolding {
                    account: k.0.clone(),
                    symbol: k.1.clone(),
                    quantity: h,
                    underlying: underlying.to_owned(),
                    average_price,
                });
            } else if e != h {
                self.report.quantity_mismatches.push(QuantityMismatch {
                    account: k.0.clone(),
                    symbol: k.1.clone(),
                    expected: e,
                    actual: h,
                });
            }
        }
        self.held = Some(held);
        Ok(())
    }

    fn sort(&mut self) {
        let r = &mut self.report;
        let tk = |p: &crate::ids::PositionId, k: &crate::ids::TargetKey| (p.clone(), k.clone());
        // matched, drifted, invalid and missing are built walking positions by id and targets by
        // key, so they are sorted already; re-sorting a million entries only chases pointers.
        debug_assert!(r.matched.is_sorted_by(
            |a, b| (&a.position_id, &a.target_key) <= (&b.position_id, &b.target_key)
        ));
        debug_assert!(r.drifted.is_sorted_by(
            |a, b| (&a.position_id, &a.target_key) <= (&b.position_id, &b.target_key)
        ));
        debug_assert!(r.invalid.is_sorted_by(
            |a, b| (&a.position_id, &a.target_key) <= (&b.position_id, &b.target_key)
        ));
        debug_assert!(r.missing.is_sorted_by(
            |a, b| (&a.position_id, &a.target_key) <= (&b.position_id, &b.target_key)
        ));
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
            (tk(&a.position_id, &a.target_key), &a.client_order_id)
                .cmp(&(tk(&b.position_id, &b.target_key), &b.client_order_id))
        });
        r.stale_positions
            .sort_by(|a, b| a.position_id.cmp(&b.position_id));
        r.pending_filled
            .sort_by(|a, b| a.position_id.cmp(&b.position_id));
        r.untracked_holdings
            .sort_by(|a, b| (&a.symbol, &a.account).cmp(&(&b.symbol, &b.account)));
        r.quantity_mismatches
            .sort_by(|a, b| (&a.symbol, &a.account).cmp(&(&b.symbol, &b.account)));
    }
}

/// What a target expects of its order, with the broker's holdings of its legs when known.
fn order_spec(
    p: &Position,
    t: &ProfitTarget,
    held: Option<&FxMap<HoldKey<'_>, Decimal>>,
) -> OrderSpec {
    let mut legs = t.legs.clone();
    legs.sort();
    let held = held.map(|h| {
        let mut syms: Vec<&Symbol> = legs.iter().map(|l| &l.symbol).collect();
        syms.dedup();
        syms.into_iter()
            .map(|s| Holding {
                symbol: s.clone(),
                quantity: h.get(&(&p.account, s)).copied().unwrap_or_default(),
            })
            .collect()
    });
    OrderSpec {
        account: p.account.clone(),
        underlying: p.underlying.clone(),
        legs,
        limit_price: t.limit_price,
        stop_price: t.stop_price,
        quantity: t.quantity,
        held,
    }
}

/// The position's target indices in key order, or `None` when they already are.
fn key_order(p: &Position) -> Option<Vec<u32>> {
    if p.targets.is_sorted_by(|a, b| a.key <= b.key) {
        return None;
    }
    let mut idx: Vec<u32> = (0..p.targets.len() as u32).collect();
    idx.sort_by(|&a, &b| p.targets[a as usize].key.cmp(&p.targets[b as usize].key));
    Some(idx)
}

fn target_indices<'i>(p: &Position, order: Option<&'i [u32]>) -> impl Iterator<Item = u32> + 'i {
    let n = p.targets.len() as u32;
    order.map_or_else(
        || either_range(0..n, None),
        |o| either_range(0..0, Some(o.iter())),
    )
}

fn either_range<'i>(
    range: std::ops::Range<u32>,
    list: Option<std::slice::Iter<'i, u32>>,
) -> impl Iterator<Item = u32> + 'i {
    range.chain(list.into_iter().flatten().copied())
}

/// Of two copies of one order id, whether `a` should win over `b`: the later update, and on a
/// tie the terminal status (a final state does not go back).
fn newer(a: &Order, b: &Order) -> bool {
    match a.updated_at.cmp(&b.updated_at) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => !a.status.is_working() && b.status.is_working(),
    }
}

type LegKey = (Symbol, crate::model::Side, Decimal);

fn target_leg_key(l: &TargetLeg) -> (&Symbol, crate::model::Side, Decimal) {
    (&l.symbol, l.side, l.quantity.normalize())
}

fn leg_keys<'l>(
    legs: impl Iterator<Item = (&'l Symbol, crate::model::Side, Decimal)>,
) -> Vec<LegKey> {
    let mut v: Vec<LegKey> = legs.map(|(s, side, q)| (s.clone(), side, q)).collect();
    v.sort();
    v
}

/// The first field in which `o` differs from what `t` expects: limit price, stop price, each
/// leg's quantity, then the legs. Allocates only when it finds a difference.
fn drift(t: &ProfitTarget, o: &Order) -> Option<(DriftField, Option<String>, Option<String>)> {
    let show = |d: Option<Decimal>| d.map(|d| d.to_string());
    if let Some(lp) = t.limit_price {
        if o.limit_price != Some(lp) {
            return Some((
                DriftField::LimitPrice,
                Some(lp.to_string()),
                show(o.limit_price),
            ));
        }
    }
    if let Some(sp) = t.stop_price {
        if o.stop_price != Some(sp) {
            return Some((
                DriftField::StopPrice,
                Some(sp.to_string()),
                show(o.stop_price),
            ));
        }
    }
    if let Some(q) = t.quantity {
        // The first differing leg in (symbol, side) order, so the report does not depend on the
        // order the broker listed the legs in.
        let first = o
            .legs
            .iter()
            .filter(|l| l.quantity != q)
            .min_by(|a, b| (&a.symbol, a.side).cmp(&(&b.symbol, b.side)));
        if let Some(l) = first {
            return Some((
                DriftField::Quantity,
                Some(q.to_string()),
                Some(l.quantity.to_string()),
            ));
        }
    }
    if !t.legs.is_empty() && !same_legs(&t.legs, &o.legs) {
        let want = leg_keys(t.legs.iter().map(target_leg_key));
        let have = leg_keys(
            o.legs
                .iter()
                .map(|l| (&l.symbol, l.side, l.quantity.normalize())),
        );
        return Some((
            DriftField::Legs,
            Some(show_legs(&want)),
            Some(show_legs(&have)),
        ));
    }
    None
}

/// Multiset equality of (symbol, side, quantity) without allocating; legs are few (at most four
/// for options), so counting is cheaper than sorting.
fn same_legs(want: &[TargetLeg], have: &[crate::model::OrderLeg]) -> bool {
    if want.len() != have.len() {
        return false;
    }
    want.iter().all(|w| {
        let eq = |s: &Symbol, side: crate::model::Side, q: Decimal| {
            s == &w.symbol && side == w.side && q == w.quantity
        };
        let in_want = want
            .iter()
            .filter(|x| eq(&x.symbol, x.side, x.quantity))
            .count();
        let in_have = have
            .iter()
            .filter(|x| eq(&x.symbol, x.side, x.quantity))
            .count();
        in_want == in_have
    })
}

fn show_legs(legs: &[LegKey]) -> String {
    legs.iter()
        .map(|(s, side, q)| format!("{} {} {}", side.as_str(), q, s))
        .collect::<Vec<_>>()
        .join(", ")
}
