//! Adoption: unreferenced working orders that belong to a target.
//!
//! DESIGN §4, checked before the grace rule, in this order, each target claimed at most once and
//! the oldest order first (so of two orders claiming one target the earlier wins):
//! 1. [`by_replacement`] (an extension): the working end of a referenced order's replacement
//!    chain belongs to that order's target.
//! 2. [`by_client_order_id`]: an order whose client order id equals an intent's (or an unplaced
//!    target's own `client_order_id`) belongs to that intent's target, `via: client_order_id`;
//!    for an OCO intent (an extension), the other exit of that order's group belongs to the
//!    intent's `oco_with` target the same way.
//! 3. [`by_legs`]: an order whose legs equal, as a multiset of (symbol, side, quantity) in the
//!    same account, the expected legs of exactly one unplaced target of an open position — a
//!    target that no other order fits — belongs to it, `via: legs`. Ambiguous fits stay
//!    unclaimed (and so orphaned, or in flight).

use super::drift::{LegKey, leg_keys, order_leg_key, target_leg_key};
use super::index::{Index, Slot};
use crate::fasthash::{FxMap, FxSet};
use crate::ids::{AccountId, ClientOrderId};
use crate::model::{Order, PositionState};
use crate::report::{AdoptVia, Adoptable};

/// One order's claim on a target.
#[derive(Clone, Copy)]
pub(super) struct Claim<'a> {
    slot: Slot,
    via: AdoptVia,
    /// The intent the link resolves, for claims by an intent's client order id.
    intent: Option<&'a ClientOrderId>,
}

/// Claims so far, by the order's place among the unreferenced orders.
struct Claims<'a> {
    by_order: Vec<Option<Claim<'a>>>,
    slots: FxSet<Slot>,
}

impl<'a> Claims<'a> {
    fn add(&mut self, new: Vec<(usize, Claim<'a>)>) {
        for (k, c) in new {
            self.slots.insert(c.slot);
            self.by_order[k] = Some(c);
        }
    }
}

/// What adoption came to.
pub(super) struct Adoption<'a> {
    pub adoptable: Vec<Adoptable>,
    /// Unreferenced working orders no target claimed, by id.
    pub unclaimed: Vec<&'a Order>,
    /// Unplaced targets that an order was claimed for: they are not missing.
    pub adopted: FxSet<Slot>,
}

pub(super) fn adopt<'a>(ix: &Index<'a>, replacements: &FxMap<&'a str, Slot>) -> Adoption<'a> {
    let loose = &ix.loose;
    if loose.is_empty() {
        return Adoption {
            adoptable: Vec::new(),
            unclaimed: Vec::new(),
            adopted: FxSet::default(),
        };
    }
    // Oldest first, so that of two orders claiming one target the earlier one wins.
    let mut oldest_first: Vec<usize> = (0..loose.len()).collect();
    oldest_first.sort_by(|&a, &b| {
        (loose[a].submitted_at, &loose[a].id).cmp(&(loose[b].submitted_at, &loose[b].id))
    });
    let mut claims = Claims {
        by_order: vec![None; loose.len()],
        slots: FxSet::default(),
    };
    claims.add(by_replacement(loose, &oldest_first, replacements, &claims));
    claims.add(by_client_order_id(ix, &oldest_first, &claims));
    claims.add(by_legs(ix, &claims));

    let mut out = Adoption {
        adoptable: Vec::new(),
        unclaimed: Vec::with_capacity(loose.len()),
        adopted: FxSet::default(),
    };
    for (o, claim) in loose.iter().zip(claims.by_order) {
        let Some(c) = claim else {
            out.unclaimed.push(o);
            continue;
        };
        let (p, t) = ix.at(c.slot);
        out.adoptable.push(Adoptable {
            order_id: o.id.clone(),
            position_id: p.id.clone(),
            target_key: t.key.clone(),
            via: c.via,
            account: o.account.clone(),
            client_order_id: o.client_order_id.clone(),
            intent: c.intent.cloned(),
        });
    }
    // Only unplaced targets count as adopted for the missing check; an active target that gains
    // a replacement keeps its own category.
    let unplaced: FxSet<Slot> = ix.unplaced.iter().copied().collect();
    out.adopted = claims
        .slots
        .into_iter()
        .filter(|s| unplaced.contains(s))
        .collect();
    out
}

/// Rule 1: the working replacement of a referenced order belongs to that order's target.
fn by_replacement<'a>(
    loose: &[&'a Order],
    oldest_first: &[usize],
    replacements: &FxMap<&'a str, Slot>,
    claims: &Claims<'a>,
) -> Vec<(usize, Claim<'a>)> {
    let mut taken: FxSet<Slot> = FxSet::default();
    let mut out = Vec::new();
    for &k in oldest_first {
        if let Some(&slot) = replacements.get(loose[k].id.as_str())
            && !claims.slots.contains(&slot)
            && taken.insert(slot)
        {
            out.push((
                k,
                Claim {
                    slot,
                    via: AdoptVia::ReplacedBy,
                    intent: None,
                },
            ));
        }
    }
    out
}

/// Rule 2: an order carrying an intent's client order id (or an unplaced target's own) belongs
/// to that target. An intent wins over a target's own id when both name the same one.
fn by_client_order_id<'a>(
    ix: &Index<'a>,
    oldest_first: &[usize],
    claims: &Claims<'a>,
) -> Vec<(usize, Claim<'a>)> {
    // The target an intent names, if it is scoped and not settled. Positions are sorted by
    // id: a search, not a map of them all (intents are few; positions may be a million).
    let slot_of = |pid: &str, key: &str| -> Option<Slot> {
        let pi = ix
            .positions
            .binary_search_by(|sp| sp.position.id.as_str().cmp(pid))
            .ok()?;
        let p = ix.positions[pi].position;
        let ti = p.targets.iter().position(|t| t.key.as_str() == key)?;
        (!p.targets[ti].status.is_settled()).then_some(Slot {
            position: pi as u32,
            target: ti as u32,
        })
    };
    type ByCid<'a> = FxMap<&'a str, (Slot, Option<&'a ClientOrderId>, Option<Slot>)>;
    let mut by_cid: ByCid<'a> = FxMap::default();
    for i in &ix.intents {
        if let Some(slot) = slot_of(i.position_id.as_str(), i.target_key.as_str()) {
            let sibling = i
                .oco_with
                .as_ref()
                .and_then(|k| slot_of(i.position_id.as_str(), k.as_str()));
            by_cid.entry(i.client_order_id.as_str()).or_insert((
                slot,
                Some(&i.client_order_id),
                sibling,
            ));
        }
    }
    for &slot in &ix.unplaced {
        if let Some(c) = &ix.at(slot).1.client_order_id {
            by_cid.entry(c.as_str()).or_insert((slot, None, None));
        }
    }
    let mut taken: FxSet<Slot> = FxSet::default();
    let mut claimed_orders: FxSet<usize> = FxSet::default();
    let mut out = Vec::new();
    let mut siblings = Vec::new();
    for &k in oldest_first {
        if claims.by_order[k].is_some() {
            continue;
        }
        let Some(cid) = &ix.loose[k].client_order_id else {
            continue;
        };
        if let Some(&(slot, intent, sibling)) = by_cid.get(cid.as_str())
            && !claims.slots.contains(&slot)
            && taken.insert(slot)
        {
            claimed_orders.insert(k);
            out.push((
                k,
                Claim {
                    slot,
                    via: AdoptVia::ClientOrderId,
                    intent,
                },
            ));
            if let (Some(s), Some(group)) = (sibling, &ix.loose[k].oco_group) {
                siblings.push((k, group, s, intent));
            }
        }
    }
    // The other exit of an OCO intent's group belongs to the intent's `oco_with` target.
    for (parent, group, slot, intent) in siblings {
        let other = ix.loose.iter().enumerate().position(|(j, o)| {
            j != parent
                && o.oco_group.as_ref() == Some(group)
                && claims.by_order[j].is_none()
                && !claimed_orders.contains(&j)
        });
        if let Some(j) = other
            && !claims.slots.contains(&slot)
            && taken.insert(slot)
        {
            claimed_orders.insert(j);
            out.push((
                j,
                Claim {
                    slot,
                    via: AdoptVia::ClientOrderId,
                    intent,
                },
            ));
        }
    }
    out
}

/// Rule 3: an order whose legs fit exactly one unplaced target of an open position, a target no
/// other order fits, belongs to it.
fn by_legs<'a>(ix: &Index<'a>, claims: &Claims<'a>) -> Vec<(usize, Claim<'a>)> {
    let mut targets_by_legs: FxMap<(AccountId, Vec<LegKey>), Vec<Slot>> = FxMap::default();
    for &slot in &ix.unplaced {
        let (p, t) = ix.at(slot);
        if p.state != PositionState::Open || t.legs.is_empty() || claims.slots.contains(&slot) {
            continue;
        }
        targets_by_legs
            .entry((
                p.account.clone(),
                leg_keys(t.legs.iter().map(target_leg_key)),
            ))
            .or_default()
            .push(slot);
    }
    if targets_by_legs.is_empty() {
        return Vec::new();
    }
    let mut fits: Vec<(usize, Slot)> = Vec::new();
    let mut orders_fitting: FxMap<Slot, u32> = FxMap::default();
    for (k, o) in ix.loose.iter().enumerate() {
        if claims.by_order[k].is_some() || o.legs.is_empty() {
            continue;
        }
        let key = (
            o.account.clone(),
            leg_keys(o.legs.iter().map(order_leg_key)),
        );
        if let Some(candidates) = targets_by_legs.get(&key) {
            for s in candidates {
                *orders_fitting.entry(*s).or_default() += 1;
            }
            if let [only] = candidates.as_slice() {
                fits.push((k, *only));
            }
        }
    }
    fits.into_iter()
        .filter(|(_, slot)| orders_fitting.get(slot) == Some(&1))
        .map(|(k, slot)| {
            (
                k,
                Claim {
                    slot,
                    via: AdoptVia::Legs,
                    intent: None,
                },
            )
        })
        .collect()
}
