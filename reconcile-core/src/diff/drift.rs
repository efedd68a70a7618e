//! Drift: how a matched order differs from what its target expects.
//!
//! DESIGN §4: compare, where the target gives them, `limit_price` (numerically: 0.6 = 0.60),
//! then (an extension) `stop_price`, then `quantity` (each leg's quantity), then `legs` (as a
//! multiset of symbol, side and quantity); report the first field that differs.

use crate::model::{Order, OrderLeg, ProfitTarget, Side, TargetLeg};
use crate::report::DriftField;
use crate::symbol::Symbol;
use rust_decimal::Decimal;

/// The first difference found, as the report shows it.
pub(super) struct Drift {
    pub field: DriftField,
    pub expected: Option<String>,
    pub actual: Option<String>,
}

/// The first field in which `o` differs from what `t` expects. Allocates only when it finds a
/// difference.
pub(super) fn drift(t: &ProfitTarget, o: &Order) -> Option<Drift> {
    let show = |d: Option<Decimal>| d.map(|d| d.to_string());
    let found = |field, expected: Option<String>, actual: Option<String>| {
        Some(Drift {
            field,
            expected,
            actual,
        })
    };
    if let Some(lp) = t.limit_price
        && o.limit_price != Some(lp)
    {
        return found(
            DriftField::LimitPrice,
            Some(lp.to_string()),
            show(o.limit_price),
        );
    }
    if let Some(sp) = t.stop_price
        && o.stop_price != Some(sp)
    {
        return found(
            DriftField::StopPrice,
            Some(sp.to_string()),
            show(o.stop_price),
        );
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
            return found(
                DriftField::Quantity,
                Some(q.to_string()),
                Some(l.quantity.to_string()),
            );
        }
    }
    if !t.legs.is_empty() && !same_legs(&t.legs, &o.legs) {
        let want = leg_keys(t.legs.iter().map(target_leg_key));
        let have = leg_keys(o.legs.iter().map(order_leg_key));
        return found(
            DriftField::Legs,
            Some(show_legs(&want)),
            Some(show_legs(&have)),
        );
    }
    None
}

/// A leg as the legs rules compare it: symbol, side, and quantity with its scale dropped.
pub(super) type LegKey = (Symbol, Side, Decimal);

pub(super) fn target_leg_key(l: &TargetLeg) -> (&Symbol, Side, Decimal) {
    (&l.symbol, l.side, l.quantity.normalize())
}

pub(super) fn order_leg_key(l: &OrderLeg) -> (&Symbol, Side, Decimal) {
    (&l.symbol, l.side, l.quantity.normalize())
}

/// Legs as a sorted list of keys: equal lists are equal multisets.
pub(super) fn leg_keys<'l>(legs: impl Iterator<Item = (&'l Symbol, Side, Decimal)>) -> Vec<LegKey> {
    let mut v: Vec<LegKey> = legs.map(|(s, side, q)| (s.clone(), side, q)).collect();
    v.sort();
    v
}

/// Multiset equality of (symbol, side, quantity) without allocating; legs are few (at most four
/// for options), so counting is cheaper than sorting.
fn same_legs(want: &[TargetLeg], have: &[OrderLeg]) -> bool {
    if want.len() != have.len() {
        return false;
    }
    want.iter().all(|w| {
        let eq = |s: &Symbol, side: Side, q: Decimal| {
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
