//! Everything the rules look things up in, built once per diff: orders by id with how many
//! targets reference them, the scoped positions and their targets in key order, intents by
//! target and orders by client order id, and the broker's holdings.

use super::{DiffError, DiffOptions};
use crate::fasthash::FxMap;
use crate::ids::{AccountId, OrderId};
use crate::model::{Intent, Order, Position, PositionState, ProfitTarget, Side, TargetStatus};
use crate::report::{Holding, OrderSpec, Scanned};
use crate::scope::Scope;
use crate::snapshot::{BrokerSnapshot, LocalSnapshot};
use crate::symbol::Symbol;
use chrono::{DateTime, TimeDelta, Utc};
use hashbrown::HashTable;
use rust_decimal::Decimal;
use std::ops::Range;
use std::sync::OnceLock;

/// An (account, symbol) pair of holdings.
pub(super) type HoldKey<'a> = (&'a AccountId, &'a Symbol);

/// From how many orders and positions in all a diff indexes and judges on two threads.
/// Below it a thread costs more than it saves.
const TWO_THREADS_FROM: usize = 50_000;

/// Whether the diff may use a second thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    not(feature = "testkit"),
    expect(dead_code, reason = "only the test kit asks for one thread or two")
)]
pub(crate) enum Split {
    /// From [`TWO_THREADS_FROM`] orders and positions.
    Auto,
    /// One thread, whatever the size.
    Never,
    /// Two threads, whatever the size (for tests that the two agree).
    Always,
}

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
pub(super) struct Seen<'a> {
    pub order: Option<&'a Order>,
    pub refs: u32,
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

/// A run of positions, and the places in [`Index::referenced`] of their referencing targets.
pub(super) struct Half {
    positions: Range<usize>,
    places: Range<usize>,
}

impl Half {
    /// How many referencing targets it holds.
    pub fn len(&self) -> usize {
        self.places.len()
    }
}

/// An active target that references an order ([`Index::referenced`]).
pub(super) struct Referencing<'a> {
    pub slot: Slot,
    pub position: &'a Position,
    pub target: &'a ProfitTarget,
    pub order_id: &'a OrderId,
    pub seen: Seen<'a>,
}

pub(super) struct Index<'a> {
    pub local: &'a LocalSnapshot,
    pub broker: &'a BrokerSnapshot,
    pub now: DateTime<Utc>,
    pub grace: TimeDelta,
    /// Every order id seen on either side, by its place in `seen`.
    ids: Ids<'a>,
    /// What is known of each id: broker orders in listing order (at the place of an id's first
    /// copy, its latest; at a later copy's, nothing), then ids only targets name.
    seen: Vec<Seen<'a>>,
    /// For each active target that references an order, in report order, its id's place in
    /// `seen`: the rules read them ([`Index::referenced`]) without looking the id up again.
    referenced: Vec<u32>,
    /// With two threads, where the second half of `positions` begins, and its first place in
    /// `referenced`.
    halves: Option<(usize, usize)>,
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
    commitments: OnceLock<FxMap<HoldKey<'a>, Vec<Commit<'a>>>>,
    /// Orders by the id they say they replaced (`replaces`), the first listed of each; built on
    /// first use (only a replaced order that does not name its replacement needs it).
    replacing: OnceLock<FxMap<&'a str, &'a Order>>,
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
        split: Split,
    ) -> Result<Self, DiffError> {
        let scope = &options.scope;
        let now = options.now.unwrap_or(broker.as_of);
        let held = held_quantities(broker, scope)?;

        let two_threads = match split {
            Split::Auto => broker.orders.len() + local.positions.len() >= TWO_THREADS_FROM,
            Split::Never => false,
            Split::Always => true,
        };
        // The orders and the positions are indexed apart from each other. At scale, on two
        // cores: the orders' ids are hashed on two threads, then go into two tables, each filled
        // by a thread of its own, while a third sorts the positions and lists the orders by
        // place.
        let (mut ids, mut seen, positions) = if two_threads {
            std::thread::scope(|s| {
                let positions = s.spawn(|| (scoped_positions(local, scope), listed(broker)));
                let hashes = hashes(&broker.orders, true);
                let ((first, mut copies), (second, more)) = std::thread::scope(|s| {
                    let second = s.spawn(|| orders_by_id(&broker.orders, &hashes, Some(1)));
                    let first = orders_by_id(&broker.orders, &hashes, Some(0));
                    (first, join(second))
                });
                let (positions, mut seen) = join(positions);
                copies.extend(more);
                latest_copies(broker, &mut seen, &copies);
                let ids = Ids {
                    orders: &broker.orders,
                    unlisted: Vec::new(),
                    tables: vec![first, second],
                };
                (ids, seen, positions)
            })
        } else {
            let (all, copies) = orders_by_id(&broker.orders, &hashes(&broker.orders, false), None);
            let mut seen = listed(broker);
            latest_copies(broker, &mut seen, &copies);
            let ids = Ids {
                orders: &broker.orders,
                unlisted: Vec::new(),
                tables: vec![all],
            };
            (ids, seen, scoped_positions(local, scope))
        };

        // References: every active target with an order id counts once for that id. The ids
        // are looked up on one thread or two (each over half of the targets); ids no order has
        // are added after, in report order.
        let targets: usize = positions.iter().map(|sp| sp.position.targets.len()).sum();
        let mut middle = positions.len();
        if two_threads {
            let mut visited = 0usize;
            middle = positions
                .iter()
                .position(|sp| {
                    visited += sp.position.targets.len();
                    visited > targets / 2
                })
                .map_or(positions.len(), |pi| pi + 1);
        }
        let (mut part, halves) = if middle < positions.len() {
            std::thread::scope(|s| {
                let (ids, positions) = (&ids, &positions);
                let later = s.spawn(move || references(ids, positions, middle..positions.len(), 0));
                let mut part = references(ids, positions, 0..middle, targets);
                let first_places = part.places.len();
                let later = join(later);
                part.unlisted.extend(
                    later
                        .unlisted
                        .into_iter()
                        .map(|(at, id)| (at + first_places, id)),
                );
                part.places.extend(later.places);
                part.unplaced.extend(later.unplaced);
                (part, Some((middle, first_places)))
            })
        } else {
            (
                references(&ids, &positions, 0..positions.len(), targets),
                None,
            )
        };
        for &(at, id) in &part.unlisted {
            let k = ids.get_or_add(id, seen.len() as u32);
            if k as usize == seen.len() {
                seen.push(Seen {
                    order: None,
                    refs: 0,
                });
            }
            part.places[at] = k;
        }
        for &k in &part.places {
            seen[k as usize].refs += 1;
        }
        let References {
            places: referenced,
            unplaced,
            ..
        } = part;

        let mut orders_by_cid: FxMap<&str, Vec<&Order>> = FxMap::default();
        let mut loose = Vec::new();
        let mut working_in_scope = 0usize;
        for s in &seen {
            let Some(o) = s.order else { continue };
            if let Some(c) = &o.client_order_id {
                orders_by_cid.entry(c.as_str()).or_default().push(o);
            }
            if o.status.is_working() && scope.includes(&o.account, &o.underlying) {
                working_in_scope += 1;
                if s.refs == 0 {
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
            ids,
            seen,
            referenced,
            halves,
            positions,
            unplaced,
            loose,
            working_in_scope,
            intents,
            intents_by_target,
            orders_by_cid,
            held,
            scope,
            commitments: OnceLock::new(),
            replacing: OnceLock::new(),
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
            for s in &self.seen {
                let Some(o) = s.order else { continue };
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
            for r in self.referenced() {
                if r.seen.order.is_none() {
                    on_the_way(r.position, r.target, r.order_id.as_str());
                }
            }
            for &slot in &self.unplaced {
                let (p, t) = self.at(slot);
                if t.placed_at.is_some_and(|at| self.within_grace(at)) {
                    // Its own client order id, else its position's: the exits of one position
                    // on the same shares go out together or not at all.
                    let group = t
                        .client_order_id
                        .as_ref()
                        .map_or(p.id.as_str(), |c| c.as_str());
                    on_the_way(p, t, group);
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
        self.seen_id(id).and_then(|s| s.order)
    }

    /// The first order the broker listed that says it replaced the order `id`, as its latest
    /// copy has it (an earlier copy of an order is none of its own, as everywhere else).
    pub fn replacing(&self, id: &str) -> Option<&'a Order> {
        self.replacing
            .get_or_init(|| {
                let mut by_replaced: FxMap<&'a str, &'a Order> = FxMap::default();
                for o in &self.broker.orders {
                    let Some(r) = &o.replaces else { continue };
                    if self
                        .order(o.id.as_str())
                        .is_some_and(|latest| std::ptr::eq(latest, o))
                    {
                        by_replaced.entry(r.as_str()).or_insert(o);
                    }
                }
                by_replaced
            })
            .get(id)
            .copied()
    }

    /// How many active scoped targets reference this order id.
    pub fn references(&self, id: &str) -> u32 {
        self.seen_id(id).map_or(0, |s| s.refs)
    }

    fn seen_id(&self, id: &str) -> Option<&Seen<'a>> {
        self.ids.get(id).map(|k| &self.seen[k as usize])
    }

    /// How many targets [`Index::referenced`] yields.
    pub fn referenced_len(&self) -> usize {
        self.referenced.len()
    }

    /// Every active target that references an order, in report order: its slot, position,
    /// target and order id, and what is known of that id (the broker's order, its latest copy,
    /// and how many active scoped targets reference it).
    pub fn referenced(&self) -> impl Iterator<Item = Referencing<'a>> + '_ {
        self.referenced_in(Half {
            positions: 0..self.positions.len(),
            places: 0..self.referenced.len(),
        })
    }

    /// The two halves of [`Index::referenced`] that two threads judge, when the index was built
    /// for two.
    pub fn halves(&self) -> Option<[Half; 2]> {
        let (p, r) = self.halves?;
        Some([
            Half {
                positions: 0..p,
                places: 0..r,
            },
            Half {
                positions: p..self.positions.len(),
                places: r..self.referenced.len(),
            },
        ])
    }

    /// [`Index::referenced`] of one half.
    pub fn referenced_in(&self, half: Half) -> impl Iterator<Item = Referencing<'a>> + '_ {
        let first = half.positions.start;
        self.positions[half.positions]
            .iter()
            .zip(first..)
            .flat_map(move |(sp, pi)| {
                let p = sp.position;
                sp.targets().filter_map(move |(ti, t)| {
                    let id = referenced_id(t)?;
                    Some((
                        Slot {
                            position: pi as u32,
                            target: ti,
                        },
                        p,
                        t,
                        id,
                    ))
                })
            })
            .zip(&self.referenced[half.places])
            .map(|((slot, position, target, order_id), &k)| Referencing {
                slot,
                position,
                target,
                order_id,
                seen: self.seen[k as usize],
            })
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
pub(super) fn referenced_id(t: &ProfitTarget) -> Option<&OrderId> {
    match (t.status, &t.order_id) {
        (TargetStatus::Active, Some(id)) => Some(id),
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

/// Order ids by their place in `seen`: in one table, or in two that [`pick`] chooses between (so
/// that two threads can fill them at once). A table holds places alone, four bytes each, and
/// reads an id where its place says: the listed order, or `unlisted` for an id only targets name.
/// Small enough to stay in cache at a million ids, where a map of `&str` keys is not.
struct Ids<'a> {
    orders: &'a [Order],
    /// Ids no listed order has, at places from `orders.len()` on.
    unlisted: Vec<&'a str>,
    tables: Vec<HashTable<u32>>,
}

/// The hash of an order id, the one each id is hashed with everywhere in [`Ids`].
fn hash(id: &str) -> u64 {
    std::hash::BuildHasher::hash_one(&foldhash::fast::FixedState::default(), id)
}

/// Which of two tables an id of this hash goes in: bit 56, which a table uses neither for its
/// buckets (below 2^56 of them) nor for its tags (the top seven bits).
fn pick(hash: u64) -> usize {
    usize::from(hash >> 56 & 1 == 1)
}

/// The id at `place`: a listed order's, or one of `unlisted`.
fn id_at<'a>(orders: &'a [Order], unlisted: &[&'a str], place: u32) -> &'a str {
    let place = place as usize;
    match orders.get(place) {
        Some(o) => o.id.as_str(),
        None => unlisted[place - orders.len()],
    }
}

impl<'a> Ids<'a> {
    fn table_of(&self, hash: u64) -> usize {
        if self.tables.len() == 1 {
            0
        } else {
            pick(hash)
        }
    }

    fn get(&self, id: &str) -> Option<u32> {
        self.find(hash(id), id)
    }

    /// The place of `id`, whose hash is `h`.
    fn find(&self, h: u64, id: &str) -> Option<u32> {
        self.tables[self.table_of(h)]
            .find(h, |&k| id_at(self.orders, &self.unlisted, k) == id)
            .copied()
    }

    /// The place of `id`, given the next place (`next`) if it has none yet.
    fn get_or_add(&mut self, id: &'a str, next: u32) -> u32 {
        let h = hash(id);
        if let Some(k) = self.find(h, id) {
            return k;
        }
        let m = self.table_of(h);
        let Self {
            orders,
            unlisted,
            tables,
        } = self;
        debug_assert_eq!(next as usize, orders.len() + unlisted.len());
        unlisted.push(id);
        tables[m].insert_unique(h, next, |&k| hash(id_at(orders, unlisted, k)));
        next
    }
}

/// The hash of each listed order's id, in listing order: on two threads at scale, each over
/// half of the orders.
fn hashes(orders: &[Order], two_threads: bool) -> Vec<u64> {
    let all = |os: &[Order], room: usize| {
        let mut out = Vec::with_capacity(room);
        out.extend(os.iter().map(|o| hash(o.id.as_str())));
        out
    };
    if !two_threads {
        return all(orders, orders.len());
    }
    let (first, second) = orders.split_at(orders.len() / 2);
    std::thread::scope(|s| {
        let later = s.spawn(|| all(second, second.len()));
        let mut out = all(first, orders.len());
        out.extend(join(later));
        out
    })
}

/// The ids the broker listed (all, or with `part` those [`pick`] gives that table), each by its
/// place: where its first copy is listed. Also every later copy of an id, as (the first copy's
/// place, its own). Each id is hashed once here ([`hashes`]) and once per reference; everything
/// after reads `seen` by place, in listing order, rather than by a lookup that lands anywhere in
/// memory.
fn orders_by_id(
    orders: &[Order],
    hashes: &[u64],
    part: Option<usize>,
) -> (HashTable<u32>, Vec<(u32, u32)>) {
    let n = orders.len();
    let share = if part.is_some() { n / 2 } else { n };
    let mut table: HashTable<u32> = HashTable::with_capacity(share + share / 16);
    let mut copies = Vec::new();
    for (place, (o, &h)) in orders.iter().zip(hashes).enumerate() {
        if part.is_some_and(|p| pick(h) != p) {
            continue;
        }
        let id = o.id.as_str();
        match table.entry(
            h,
            |&k| orders[k as usize].id.as_str() == id,
            |&k| hashes[k as usize],
        ) {
            hashbrown::hash_table::Entry::Occupied(e) => copies.push((*e.get(), place as u32)),
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(place as u32);
            }
        }
    }
    (table, copies)
}

/// Every listed order at its own place, as far as is known yet.
fn listed(broker: &BrokerSnapshot) -> Vec<Seen<'_>> {
    broker
        .orders
        .iter()
        .map(|o| Seen {
            order: Some(o),
            refs: 0,
        })
        .collect()
}

/// Folds each later copy of an id into its first copy's place, where the latest copy wins
/// ([`newer`]), and leaves the later copy's own place empty. `copies` holds each id's copies in
/// listing order.
fn latest_copies<'a>(broker: &'a BrokerSnapshot, seen: &mut [Seen<'a>], copies: &[(u32, u32)]) {
    for &(first, place) in copies {
        let o = &broker.orders[place as usize];
        seen[place as usize].order = None;
        let cur = &mut seen[first as usize];
        if cur.order.is_none_or(|c| newer(o, c)) {
            cur.order = Some(o);
        }
    }
}

/// The references of one run of positions: for each active target with an order id, the id's
/// place in `seen` (`u32::MAX` where no order has it yet); those ids, by their place in
/// `places`; and the targets that reference no order.
struct References<'a> {
    places: Vec<u32>,
    unlisted: Vec<(usize, &'a str)>,
    unplaced: Vec<Slot>,
}

/// The [`References`] of the targets of `positions[run]`; `room` is how many to make room for.
fn references<'a>(
    ids: &Ids<'a>,
    positions: &[ScopedPosition<'a>],
    run: Range<usize>,
    room: usize,
) -> References<'a> {
    let mut out = References {
        places: Vec::with_capacity(room),
        unlisted: Vec::new(),
        unplaced: Vec::new(),
    };
    let first = run.start;
    for (sp, pi) in positions[run].iter().zip(first..) {
        for (ti, t) in sp.targets() {
            if t.status.is_settled() {
                continue;
            }
            match referenced_id(t).map(OrderId::as_str) {
                Some(id) => {
                    let k = ids.get(id).unwrap_or_else(|| {
                        out.unlisted.push((out.places.len(), id));
                        u32::MAX
                    });
                    out.places.push(k);
                }
                None => out.unplaced.push(Slot {
                    position: pi as u32,
                    target: ti,
                }),
            }
        }
    }
    out
}

/// Positions in scope in state pending, open or closing, by id.
fn scoped_positions<'a>(local: &'a LocalSnapshot, scope: &Scope) -> Vec<ScopedPosition<'a>> {
    let mut scoped: Vec<&Position> = local
        .positions
        .iter()
        .filter(|p| p.state != PositionState::Closed && scope.includes_position(p))
        .collect();
    scoped.sort_by(|a, b| a.id.cmp(&b.id));
    scoped.into_iter().map(ScopedPosition::new).collect()
}

/// What a scoped thread returned; its panic, should it have one, goes on in the caller.
pub(super) fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
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
    if local.intents.is_empty() {
        // Not even the positions by id: at a million targets that map alone costs tens of ms.
        return Vec::new();
    }
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
