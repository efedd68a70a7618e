//! Active targets and the orders they reference.
//!
//! DESIGN §4: a referenced order found among the broker's orders with a working status is
//! **matched**, or **drifted** when it differs from what the target expects ([`super::drift`]);
//! with a terminal status it is **invalid** with that status as the reason, and a `replaced`
//! order is followed along its replacement chain to the working order at its end, which the
//! adoption rules then claim for the target. Not found at all: **in flight** when the target's
//! `placed_at` is within grace, else invalid `not_found`. One order id referenced by several
//! targets is a **conflict**, reported for a human and judged no further.

use super::drift::drift;
use super::index::{Index, Referencing, Seen, Slot, group_of, join};
use crate::fasthash::FxMap;
use crate::ids::OrderId;
use crate::model::{Order, OrderStatus, PositionState};
use crate::report::{Conflict, Drifted, InFlight, Invalid, InvalidReason, Matched, TargetRef};
use std::collections::BTreeMap;

/// What the referenced targets came to.
pub(super) struct Referenced<'a> {
    pub matched: Vec<Matched>,
    pub drifted: Vec<Drifted>,
    pub invalid: Vec<Invalid>,
    pub in_flight: Vec<InFlight>,
    /// The targets of each order id referenced more than once ([`into_conflicts`] makes the
    /// report's entries of them).
    pub conflicts: BTreeMap<&'a str, Vec<TargetRef>>,
    /// The working order at the end of a referenced order's replacement chain, by its id, and
    /// the target it belongs to.
    pub replacements: FxMap<&'a str, Slot>,
}

/// The report's conflicts, in order id order.
pub(super) fn into_conflicts(by_id: BTreeMap<&str, Vec<TargetRef>>) -> Vec<Conflict> {
    by_id
        .into_iter()
        .map(|(order_id, targets)| Conflict {
            order_id: OrderId::new(order_id),
            targets,
        })
        .collect()
}

pub(super) fn judge<'a>(ix: &Index<'a>) -> Referenced<'a> {
    // Most referenced orders match: room for all of them at once, not a doubling at a time.
    let all = ix.referenced_len();
    match ix.halves() {
        None => judge_part(ix.referenced(), ix, all),
        Some([first, second]) => std::thread::scope(|s| {
            let n = second.len();
            let later = s.spawn(move || judge_part(ix.referenced_in(second), ix, n));
            let mut out = judge_part(ix.referenced_in(first), ix, all);
            let later = join(later);
            // In report order: the first half's positions come before the second's.
            out.matched.extend(later.matched);
            out.drifted.extend(later.drifted);
            out.invalid.extend(later.invalid);
            out.in_flight.extend(later.in_flight);
            for (id, targets) in later.conflicts {
                out.conflicts.entry(id).or_default().extend(targets);
            }
            // As one thread would have it: of two claims on one replacement, the later.
            out.replacements.extend(later.replacements);
            out
        }),
    }
}

/// Judges one run of referencing targets; `room` is how many matches to make room for.
fn judge_part<'a>(
    targets: impl Iterator<Item = Referencing<'a>>,
    ix: &Index<'a>,
    room: usize,
) -> Referenced<'a> {
    let mut out = Referenced {
        matched: Vec::with_capacity(room),
        drifted: Vec::new(),
        invalid: Vec::new(),
        in_flight: Vec::new(),
        conflicts: BTreeMap::new(),
        replacements: FxMap::default(),
    };
    for Referencing {
        slot,
        position: p,
        target: t,
        order_id: id,
        seen: Seen {
            order,
            refs: references,
        },
    } in targets
    {
        if references > 1 {
            out.conflicts
                .entry(id.as_str())
                .or_default()
                .push(TargetRef {
                    position_id: p.id.clone(),
                    target_key: t.key.clone(),
                });
            continue;
        }
        let due = p.state == PositionState::Open;
        match order {
            Some(o) if o.status.is_working() => match drift(t, o) {
                None => out.matched.push(Matched {
                    position_id: p.id.clone(),
                    target_key: t.key.clone(),
                    order_id: id.clone(),
                }),
                Some(d) => out.drifted.push(Drifted {
                    position_id: p.id.clone(),
                    target_key: t.key.clone(),
                    order_id: id.clone(),
                    field: d.field,
                    expected: d.expected,
                    actual: d.actual,
                    account: p.account.clone(),
                    spec: ix.spec(p, t, Some(group_of(o))),
                }),
            },
            Some(o) => {
                let reason = InvalidReason::from_status(o.status);
                let replaced_by = if reason == InvalidReason::Replaced {
                    replacement(ix, o)
                } else {
                    None
                };
                if let Some(n) = replaced_by {
                    out.replacements.insert(n.id.as_str(), slot);
                }
                let spec = (reason != InvalidReason::Filled && replaced_by.is_none())
                    .then(|| ix.spec(p, t, Some(group_of(o))));
                out.invalid.push(Invalid {
                    position_id: p.id.clone(),
                    target_key: t.key.clone(),
                    order_id: id.clone(),
                    reason,
                    account: p.account.clone(),
                    replaced_by: replaced_by.map(|n| n.id.clone()),
                    spec,
                    due,
                });
            }
            None if t.placed_at.is_some_and(|at| ix.within_grace(at)) => {
                out.in_flight.push(InFlight::target(
                    &p.id,
                    &t.key,
                    Some(id),
                    t.client_order_id.as_ref(),
                ));
            }
            None => out.invalid.push(Invalid {
                position_id: p.id.clone(),
                target_key: t.key.clone(),
                order_id: id.clone(),
                reason: InvalidReason::NotFound,
                account: p.account.clone(),
                replaced_by: None,
                spec: Some(ix.spec(p, t, Some(id.as_str()))),
                due,
            }),
        }
    }
    out
}

/// Follows a replaced order's chain (`replaced_by`, or an order that `replaces` it) to the
/// working order at its end, if any; at most 32 links, so a cycle ends.
fn replacement<'a>(ix: &Index<'a>, start: &'a Order) -> Option<&'a Order> {
    let mut cur = start;
    for _ in 0..32 {
        let next = match &cur.replaced_by {
            Some(n) => ix.order(n.as_str()),
            None => ix.replacing(cur.id.as_str()),
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
