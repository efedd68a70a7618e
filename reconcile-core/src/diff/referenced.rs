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
use super::index::{Index, Slot, group_of};
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
    pub conflicts: Vec<Conflict>,
    /// The working order at the end of a referenced order's replacement chain, by its id, and
    /// the target it belongs to.
    pub replacements: FxMap<&'a str, Slot>,
}

pub(super) fn judge<'a>(ix: &Index<'a>) -> Referenced<'a> {
    let mut out = Referenced {
        matched: Vec::new(),
        drifted: Vec::new(),
        invalid: Vec::new(),
        in_flight: Vec::new(),
        conflicts: Vec::new(),
        replacements: FxMap::default(),
    };
    let mut conflicts: BTreeMap<&str, Vec<TargetRef>> = BTreeMap::new();
    for (pi, sp) in ix.positions.iter().enumerate() {
        let p = sp.position;
        for (ti, t) in sp.targets() {
            let Some(id) = t
                .order_id
                .as_ref()
                .filter(|_| t.status == crate::model::TargetStatus::Active)
            else {
                continue;
            };
            let (order, references) = ix.order_and_references(id.as_str());
            if references > 1 {
                conflicts.entry(id.as_str()).or_default().push(TargetRef {
                    position_id: p.id.clone(),
                    target_key: t.key.clone(),
                });
                continue;
            }
            let slot = Slot {
                position: pi as u32,
                target: ti,
            };
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
    }
    out.conflicts = conflicts
        .into_iter()
        .map(|(order_id, targets)| Conflict {
            order_id: OrderId::new(order_id),
            targets,
        })
        .collect();
    out
}

/// Follows a replaced order's chain (`replaced_by`, or an order that `replaces` it) to the
/// working order at its end, if any; at most 32 links, so a cycle ends.
fn replacement<'a>(ix: &Index<'a>, start: &'a Order) -> Option<&'a Order> {
    let mut cur = start;
    for _ in 0..32 {
        let next = match &cur.replaced_by {
            Some(n) => ix.order(n.as_str()),
            None => ix
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
