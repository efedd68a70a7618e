//! Everything the rules look things up in, built once per diff: orders by id with how many
//! targets reference them, the scoped positions and their targets in key order, intents by
//! target and orders by client order id, and the broker's holdings.

use super::{DiffError, DiffOptions};
use crate::fasthash::FxMap;
use crate::ids::AccountId;
use crate::model::{Intent, Order, Position, PositionState, ProfitTarget, Side, TargetStatus};
use crate::report::{Holding, OrderSpec, Scanned};
use crate::scope::Scope;
use crate::snapshot::{BrokerSnapshot, LocalSnapshot};
use crate::symbol::Symbol;
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use std::cell::OnceCell;

/// An (account, symbol) pair of holdings.
pub(super) type HoldKey<'a> = (&'a AccountId, &'a Symbol);

/// Where a target sits: its position's place in [`Index::positions`], and its own place in that
/// position's `targets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Slot {
    pub position: u32,
    pub target: u32,
}

/// An order id seen on either side: the broker's order (its latest copy), and how many active
/// scoped targets reference it.
#[derive(Clone, Copy)]
struct Seen<'a> {
    order: Option<&'a Order>,
    refs: u32,
}

/// A scoped position and its targets' places in key order.
pub(super) struct ScopedPosition<'a> {
    pub position: &'a Position,
    /// `None` when the targets already are in key order (the common case: no allocation).
    by_key: Option<Vec<u32>>,
}

impl<'a> ScopedPosition<'a> {
    fn new(position: &'a Position) -> Self {
        let by_key = if position.targets.is_sorted_by(|a, b| a.key <= b.key) {
            None
        } else {
            let mut idx: Vec<u32> = (0..position.targets.len() as u32).collect();
            idx.sort_by(|&a, &b| {
                position.targets[a as usize]
                    .key
                    .cmp(&position.targets[b as usize].key)
            });
            Some(idx)
        };
        Self { position, by_key }
    }

    /// The position's targets in key order, with their places.
    pub fn targets(&self) -> impl Iterator<Item = (u32, &'a ProfitTarget)> + '_ {
        let p = self.position;
        let n = p.targets.len() as u32;
        let places = match &self.by_key {
            None => Places::InOrder(0..n),
            Some(idx) => Places::ByKey(idx.iter()),
        };
        places.map(move |i| (i, &p.targets[i as usize]))
    }
}

/// Target places, either as stored or through a key-order index.
enum Places<'i> {
    InOrder(std::ops::Range<u32>),
    ByKey(std::slice::Iter<'i, u32>),
}

impl Iterator for Places<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        match self {
            Self::InOrder(r) => r.next(),
            Self::ByKey(i) => i.next().copied(),
        }
    }
}

pub(super) struct Index<'a> {
    pub local: &'a LocalSnapshot,
    pub broker: &'a BrokerSnapshot,
    pub now: DateTime<Utc>,
    pub grace: TimeDelta,
    orders: FxMap<&'a str, Seen<'a>>,
    /// Scoped positions in state pending, open or closing, by id.
    pub positions: Vec<ScopedPosition<'a>>,
    /// Targets that reference no order (unplaced, or active without an id), in report order.
    pub unplaced: Vec<Slot>,
    /// Unreferenced working orders in scope, by id.
    pub loose: Vec<&'a Order>,
    /// Working orders in scope.
    pub working_in_scope: usize,
    /// Scoped intents by client order id, one per id.
    pub intents: Vec<&'a Intent>,
    intents_by_target: FxMap<(&'a str, &'a str), Vec<&'a Intent>>,
    orders_by_cid: FxMap<&'a str, Vec<&'a Order>>,
    /// Scoped holdings per (account, symbol); `None` when the broker's are unknown.
    pub held: Option<FxMap<HoldKey<'a>, Decimal>>,
    scope: &'a Scope,
    /// What working orders commit to closing, built on first use (only a spec needs it).
    commitments: OnceCell<FxMap<HoldKey<'a>, Vec<Commit<'a>>>>,
}

/// What one exclusion group of working orders (an OCO group, else one order) would still buy
/// and sell of one symbol: the most any of its orders would, since at most one of them fills.
#[derive(Clone, Copy)]
struct Commit<'a> {
    group: &'a str,
    sells: Decimal,
    buys: Decimal,
}

/// Adds what one leg would still close to its exclusion group's commitment (the most any of the
/// group's orders would close).
fn commit<'a>(
    by_key: &mut FxMap<HoldKey<'a>, Vec<Commit<'a>>>,
    key: HoldKey<'a>,
    group: &'a str,
    side: Side,
    left: Decimal,
) {
    if !left.is_sign_positive() || left.is_zero() {
        return;
    }
    let (sells, buys) = match side {
        Side::Sell | Side::SellToClose => (left, Decimal::ZERO),
        Side::Buy | Side::BuyToClose => (Decimal::ZERO, left),
        Side::BuyToOpen | Side::SellToOpen => return,
    };
    let commits = by_key.entry(key).or_default();
    match commits.iter_mut().find(|c| c.group == group) {
        Some(c) => {
            c.sells = c.sells.max(sells);
            c.buys = c.buys.max(buys);
        }
        None => commits.push(Commit { group, sells, buys }),
    }
}

/// The exclusion group of a working order: its OCO group's parent id, else its own id.
pub(super) fn group_of(o: &Order) -> &str {
    o.oco_group.as_ref().unwrap_or(&o.id).as_str()
}

impl<'a> Index<'a> {
    pub fn build(
        local: &'a LocalSnapshot,
        broker: &'a BrokerSnapshot,
        options: &'a DiffOptions,
    ) -> Result<Self, DiffError> {
        let scope = &options.scope;
        let now = options.now.unwrap_or(broker.as_of);
        let held = held_quantities(broker, scope)?;

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

        let mut scoped: Vec<&Position> = local
            .positions
            .iter()
            .filter(|p| p.state != PositionState::Closed && scope.includes_position(p))
            .collect();
        scoped.sort_by(|a, b| a.id.cmp(&b.id));
        let positions: Vec<ScopedPosition<'_>> =
            scoped.into_iter().map(ScopedPosition::new).collect();

        // References: every active target with an order id counts once for that id.
        let mut unplaced = Vec::new();
        for (pi, sp) in positions.iter().enumerate() {
            for (ti, t) in sp.targets() {
                if t.status.is_settled() {
                    continue;
                }
                match referenced_id(t) {
                    Some(id) => {
                        orders
                            .entry(id)
                            .or_insert(Seen {
                                order: None,
                                refs: 0,
                            })
                            .refs += 1;
                    }
                    None => unplaced.push(Slot {
                        position: pi as u32,
                        target: ti,
                    }),
                }
            }
        }

        let mut orders_by_cid: FxMap<&str, Vec<&Order>> = FxMap::default();
        let mut loose = Vec::new();
        let mut working_in_scope = 0usize;
        for seen in orders.values() {
            let Some(o) = seen.order else { continue };
            if let Some(c) = &o.client_order_id {
                orders_by_cid.entry(c.as_str()).or_default().push(o);
            }
            if o.status.is_working() && scope.includes(&o.account, &o.underlying) {
                working_in_scope += 1;
                if seen.refs == 0 {
                    loose.push(o);
                }
            }
        }
        loose.sort_by(|a, b| a.id.cmp(&b.id));

        let intents = scoped_intents(local, scope);
        let mut intents_by_target: FxMap<(&str, &str), Vec<&Intent>> = FxMap::default();
        for i in &intents {
            // An OCO intent is the journal of both exits: it covers its sibling too, else the
            // sibling looks missing while the pair is on its way, and is placed on its own.
            for key in std::iter::once(&i.target_key).chain(&i.oco_with) {
                intents_by_target
                    .entry((i.position_id.as_str(), key.as_str()))
                    .or_default()
                    .push(i);
            }
        }

        Ok(Self {
            local,
            broker,
            now,
            grace: options.grace,
            orders,
            positions,
            unplaced,
            loose,
            working_in_scope,
            intents,
            intents_by_target,
            orders_by_cid,
            held,
            scope,
            commitments: OnceCell::new(),
        })
    }

    /// Per (account, symbol), what each exclusion group of working orders in scope would still
    /// buy and sell (leg quantity less what has filled), and what our orders on their way may
    /// (not listed yet, but perhaps live at the broker): a target whose order is in flight,
    /// and an intent within grace whose order is not listed, each with its target's legs, in a
    /// group of its own.
    /// Buying to open and selling to open are left out: they close nothing.
    fn commitments(&self) -> &FxMap<HoldKey<'a>, Vec<Commit<'a>>> {
        self.commitments.get_or_init(|| {
            let mut by_key: FxMap<HoldKey<'a>, Vec<Commit<'a>>> = FxMap::default();
            for seen in self.orders.values() {
                let Some(o) = seen.order else { continue };
                if !o.status.is_working() || !self.scope.includes(&o.account, &o.underlying) {
                    continue;
                }
                let group = group_of(o);
                for l in &o.legs {
                    let left = l.quantity.saturating_sub(l.filled_quantity);
                    commit(&mut by_key, (&o.account, &l.symbol), group, l.side, left);
                }
            }
            let mut on_the_way = |p: &'a Position, t: &'a ProfitTarget, group: &'a str| {
                for l in &t.legs {
                    commit(
                        &mut by_key,
                        (&p.account, &l.symbol),
                        group,
                        l.side,
                        l.quantity,
                    );
                }
            };
            // A referenced order the listing lacks may be live all the same (uncertain is not
            // absent), however long ago it was placed; an unplaced target placed within grace
            // may have an order on its way.
            for sp in &self.positions {
                let p = sp.position;
                for t in &p.targets {
                    if t.status.is_settled() {
                        continue;
                    }
                    match referenced_id(t) {
                        Some(id) if self.order(id).is_none() => on_the_way(p, t, id),
                        None if t.placed_at.is_some_and(|at| self.within_grace(at)) => {
                            // Its own client order id, else its position's: the exits of one
                            // position on the same shares go out together or not at all.
                            let group = t
                                .client_order_id
                                .as_ref()
                                .map_or(p.id.as_str(), |c| c.as_str());
                            on_the_way(p, t, group);
                        }
                        _ => {}
                    }
                }
            }
            for i in &self.intents {
                if !self.intent_on_its_way(i) {
                    continue;
                }
                let Ok(pi) = self
                    .positions
                    .binary_search_by(|sp| sp.position.id.cmp(&i.position_id))
                else {
                    continue;
                };
                let p = self.positions[pi].position;
                for key in std::iter::once(&i.target_key).chain(&i.oco_with) {
                    if let Some(t) = p.targets.iter().find(|t| &t.key == key) {
                        on_the_way(p, t, i.client_order_id.as_str());
                    }
                }
            }
            by_key
        })
    }

    /// What working orders outside the `own` groups would still close of a holding of `held`
    /// of `symbol` in `account`: their sells of a long holding, their buys of a short one.
    /// Saturates rather than overflowing: it only ever bounds what may be placed.
    pub fn working_closing(
        &self,
        account: &AccountId,
        symbol: &Symbol,
        held: Decimal,
        own: &[&str],
    ) -> Decimal {
        let Some(commits) = self.commitments().get(&(account, symbol)) else {
            return Decimal::ZERO;
        };
        commits
            .iter()
            .filter(|c| !own.contains(&c.group))
            .map(|c| {
                if held.is_sign_positive() {
                    c.sells
                } else {
                    c.buys
                }
            })
            .fold(Decimal::ZERO, Decimal::saturating_add)
    }

    /// The broker's order with this id (its latest copy), if the broker listed it.
    pub fn order(&self, id: &str) -> Option<&'a Order> {
        self.orders.get(id).and_then(|s| s.order)
    }

    /// The broker's order with this id and how many active scoped targets reference it, in
    /// one lookup.
    pub fn order_and_references(&self, id: &str) -> (Option<&'a Order>, u32) {
        self.orders.get(id).map_or((None, 0), |s| (s.order, s.refs))
    }

    /// How many active scoped targets reference this order id.
    pub fn references(&self, id: &str) -> u32 {
        self.orders.get(id).map_or(0, |s| s.refs)
    }

    /// Whether `t` is no longer ago than the grace period.
    pub fn within_grace(&self, t: DateTime<Utc>) -> bool {
        self.now.signed_duration_since(t) <= self.grace
    }

    /// The position and target at a slot.
    pub fn at(&self, slot: Slot) -> (&'a Position, &'a ProfitTarget) {
        let p = self.positions[slot.position as usize].position;
        (p, &p.targets[slot.target as usize])
    }

    /// Scoped intents for one target, by client order id.
    pub fn intents_for(&self, position_id: &'a str, key: &'a str) -> &[&'a Intent] {
        self.intents_by_target
            .get(&(position_id, key))
            .map_or(&[], Vec::as_slice)
    }

    /// Whether an intent's order may still be on its way: written within grace, and no working
    /// order carries its client order id.
    pub fn intent_on_its_way(&self, i: &Intent) -> bool {
        self.within_grace(i.created_at)
            && !self
                .orders_with_cid(i.client_order_id.as_str())
                .iter()
                .any(|o| o.status.is_working())
    }

    /// The broker's orders carrying a client order id.
    pub fn orders_with_cid(&self, cid: &str) -> &[&'a Order] {
        self.orders_by_cid.get(cid).map_or(&[], Vec::as_slice)
    }

    /// What a target expects of its order, with the broker's holdings of its legs when known,
    /// and what other orders already close of them. `own` is the exclusion group of the
    /// order the target references ([`group_of`] a listed one, else its id): it and its OCO
    /// siblings are not counted against it, nor are its own intents (an order of its on the
    /// way is not another order).
    pub fn spec(&self, p: &'a Position, t: &'a ProfitTarget, own: Option<&str>) -> OrderSpec {
        let mut spec = order_spec(p, t, self.held.as_ref());
        if let Some(held) = &spec.held {
            let own: Vec<&str> = own
                .into_iter()
                .chain(
                    self.intents_for(p.id.as_str(), t.key.as_str())
                        .iter()
                        .map(|i| i.client_order_id.as_str()),
                )
                .collect();
            let own = own.as_slice();
            let working: Vec<Holding> = held
                .iter()
                .filter(|h| !h.quantity.is_zero())
                .map(|h| Holding {
                    symbol: h.symbol.clone(),
                    quantity: self.working_closing(&p.account, &h.symbol, h.quantity, own),
                })
                .filter(|w| !w.quantity.is_zero())
                .collect();
            if !working.is_empty() {
                spec.working_closing = Some(working);
            }
        }
        spec
    }

    /// How much the diff looked at.
    pub fn scanned(&self) -> Scanned {
        Scanned {
            local_positions: self.local.positions.len(),
            scoped_positions: self.positions.len(),
            working_orders: self.working_in_scope,
        }
    }
}

/// The order id an active target references.
pub(super) fn referenced_id(t: &ProfitTarget) -> Option<&str> {
    match (t.status, &t.order_id) {
        (TargetStatus::Active, Some(id)) => Some(id.as_str()),
        _ => None,
    }
}

/// What a target expects of its order, with the broker's holdings of its legs when known.
pub(super) fn order_spec(
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
        working_closing: None,
    }
}

/// Scoped holdings, summed per (account, symbol); `None` when the broker's are unknown.
fn held_quantities<'a>(
    broker: &'a BrokerSnapshot,
    scope: &Scope,
) -> Result<Option<FxMap<HoldKey<'a>, Decimal>>, DiffError> {
    let Some(rows) = &broker.positions else {
        return Ok(None);
    };
    let mut held: FxMap<HoldKey<'a>, Decimal> = FxMap::default();
    for bp in rows {
        if !scope.includes(&bp.account, bp.underlying()) {
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

/// Scoped intents, one per client order id, by client order id (`Scope::includes_intent`).
fn scoped_intents<'a>(local: &'a LocalSnapshot, scope: &Scope) -> Vec<&'a Intent> {
    let by_id: FxMap<&str, &Position> =
        local.positions.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut out: Vec<&Intent> = local
        .intents
        .iter()
        .filter(|i| {
            scope.includes_intent(
                by_id
                    .get(i.position_id.as_str())
                    .map(|p| (&p.account, p.underlying.as_str(), p.state)),
            )
        })
        .collect();
    out.sort_by(|a, b| a.client_order_id.cmp(&b.client_order_id));
    out.dedup_by(|a, b| a.client_order_id == b.client_order_id);
    out
}

/// Of two copies of one order id, whether `a` should win over `b`: the later update, and on a
/// tie the terminal status (a final state does not go back). Two copies alike in both are told
/// apart by what they say (the more filled first, then status, prices and legs), so the order
/// the broker listed them in never decides.
fn newer(a: &Order, b: &Order) -> bool {
    match a.updated_at.cmp(&b.updated_at) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => match (a.status.is_working(), b.status.is_working()) {
            (false, true) => true,
            (true, false) => false,
            _ => tie_key(a) > tie_key(b),
        },
    }
}

type TieKey<'o> = (
    Decimal,
    &'o str,
    Option<Decimal>,
    Option<Decimal>,
    Vec<(&'o str, &'o str, Decimal, Decimal)>,
);

/// What a copy of an order says, for telling two copies of one instant apart.
fn tie_key(o: &Order) -> TieKey<'_> {
    let filled = o
        .legs
        .iter()
        .fold(Decimal::ZERO, |s, l| s.saturating_add(l.filled_quantity));
    let legs = o
        .legs
        .iter()
        .map(|l| {
            (
                l.symbol.as_str(),
                l.side.as_str(),
                l.quantity,
                l.filled_quantity,
            )
        })
        .collect();
    (filled, o.status.as_str(), o.limit_price, o.stop_price, legs)
}
