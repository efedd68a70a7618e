//! New expected prices for every target of one key, by a profit percent: seed 000's bulk change
//! of every call-spread profit target "from 50 % to 40 %", done as one journaled change instead
//! of a script that fails half-way. This module only computes; writing the prices
//! ([`crate::LocalChange::SetTargetPrices`]) and replacing the working orders (the plan's
//! replace-drifted fix) are the caller's.
//!
//! The rule, for a profit percent `p`:
//! - a **credit** position (its target buys back what was sold) closes at `basis × (1 − p)`;
//! - a **debit** position (its target sells what was bought) closes at `basis × (1 + p)`;
//! - the result is rounded to the instrument's tick, half away from zero: options $0.01 below
//!   $3.00 and $0.05 from $3.00; shares $0.01 from $1.00 and $0.0001 below.
//!
//! The basis is the position's entry price when the target closes every leg of the position;
//! otherwise (one spread of a condor, say) it is derived from the target's present price and
//! the percent it was set at (`from`): `present / (1 − from)` for a credit, `present / (1 +
//! from)` for a debit. A target's effect is its first leg's side: buying it back is a credit
//! position, selling it a debit one (the caller can say otherwise).

use crate::ids::{PositionId, TargetKey};
use crate::model::{Position, PositionState, ProfitTarget, Side};
use crate::snapshot::LocalSnapshot;
use rust_decimal::{Decimal, RoundingStrategy};
use std::collections::BTreeSet;

crate::spelling::spelled! {
    /// What the position's opening did to cash, so which way its target closes.
    pub enum Effect("effect") {
        /// Premium taken in: the target buys back, cheaper.
        Credit = "credit",
        /// Premium paid: the target sells, dearer.
        Debit = "debit",
    }
}

/// What to retarget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The target key (`call_spread`).
    pub key: TargetKey,
    /// The new profit percent (40 for 40 %).
    pub profit_pct: Decimal,
    /// The percent the targets were set at, for targets whose basis must be derived.
    pub from_pct: Option<Decimal>,
    /// Every target's effect, when the caller knows better than the first leg.
    pub effect: Option<Effect>,
}

/// Where a basis came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// The position's entry price.
    Entry,
    /// The target's present price and the percent it was set at.
    Derived,
}

/// One target's new price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retarget {
    /// The position.
    pub position_id: PositionId,
    /// The target.
    pub target_key: TargetKey,
    /// Credit or debit.
    pub effect: Effect,
    /// The price the percent is taken of.
    pub basis: Decimal,
    /// Where the basis came from.
    pub basis_from: Basis,
    /// The present limit price.
    pub old: Option<Decimal>,
    /// The new limit price, on the tick.
    pub new: Decimal,
    /// The tick it was rounded to.
    pub tick: Decimal,
}

/// A target left as it is, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The position.
    pub position_id: PositionId,
    /// The target.
    pub target_key: TargetKey,
    /// Why.
    pub reason: String,
}

/// The tick a price of this instrument trades in.
pub fn tick(option: bool, price: Decimal) -> Decimal {
    match (
        option,
        price.abs() >= Decimal::from(3),
        price.abs() >= Decimal::ONE,
    ) {
        (true, true, _) => Decimal::new(5, 2),
        (true, false, _) | (false, _, true) => Decimal::new(1, 2),
        (false, _, false) => Decimal::new(1, 4),
    }
}

/// `price` on the nearest multiple of `tick`, half away from zero.
pub fn on_tick(price: Decimal, tick: Decimal) -> Option<Decimal> {
    let steps = price
        .checked_div(tick)?
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    // Written with the tick's places: 3.00, not 3.
    let mut on = steps.checked_mul(tick)?;
    on.rescale(tick.scale());
    Some(on)
}

fn effect_of(t: &ProfitTarget) -> Option<Effect> {
    t.legs.first().map(|l| {
        if matches!(l.side, Side::Buy | Side::BuyToClose | Side::BuyToOpen) {
            Effect::Credit
        } else {
            Effect::Debit
        }
    })
}

/// Whether the target closes every leg of its position (so the position's entry price is its).
fn closes_all(p: &Position, t: &ProfitTarget) -> bool {
    let mine: BTreeSet<_> = t.legs.iter().map(|l| &l.symbol).collect();
    !p.legs.is_empty() && p.legs.iter().all(|l| mine.contains(&l.symbol))
}

/// The new price of every target `req.key` names in the snapshot's open (and pending)
/// positions, and the
/// targets left alone with the reason. Targets in `done` (already retargeted to this percent by
/// an earlier run of the same change) are left alone, so a re-run after a crash converges
/// instead of compounding.
pub fn compute(
    snapshot: &LocalSnapshot,
    req: &Request,
    done: &BTreeSet<(PositionId, TargetKey)>,
) -> (Vec<Retarget>, Vec<Skip>) {
    let hundred = Decimal::ONE_HUNDRED;
    let (mut out, mut skipped) = (Vec::new(), Vec::new());
    let live = |p: &&Position| matches!(p.state, PositionState::Open | PositionState::Pending);
    for p in snapshot.positions.iter().filter(live) {
        for t in p.targets.iter().filter(|t| t.key == req.key) {
            let skip = |reason: String| Skip {
                position_id: p.id.clone(),
                target_key: t.key.clone(),
                reason,
            };
            if done.contains(&(p.id.clone(), t.key.clone())) {
                skipped.push(skip(format!("already retargeted to {}%", req.profit_pct)));
                continue;
            }
            if t.status.is_settled() {
                skipped.push(skip(format!("the target is {}", t.status)));
                continue;
            }
            if t.limit_price.is_none() && t.stop_price.is_some() {
                skipped.push(skip("a stop, not a profit target".to_owned()));
                continue;
            }
            let Some(effect) = req.effect.or_else(|| effect_of(t)) else {
                skipped.push(skip(
                    "the target has no legs to tell credit from debit".to_owned(),
                ));
                continue;
            };
            let sign = |pct: Decimal| -> Option<Decimal> {
                let f = pct.checked_div(hundred)?;
                match effect {
                    Effect::Credit => Decimal::ONE.checked_sub(f),
                    Effect::Debit => Decimal::ONE.checked_add(f),
                }
            };
            let basis = match (p.entry_price, closes_all(p, t), req.from_pct, t.limit_price) {
                (Some(e), true, _, _) => Some((e, Basis::Entry)),
                (_, _, Some(from), Some(old)) => sign(from)
                    .filter(|f| !f.is_zero())
                    .and_then(|f| old.checked_div(f))
                    .map(|b| (b, Basis::Derived)),
                (_, _, None, _) => {
                    skipped.push(skip(
                        "no entry price for this target's legs: give the percent it was set at (--from-percent)".to_owned(),
                    ));
                    continue;
                }
                (_, _, Some(_), None) => {
                    skipped.push(skip(
                        "the target has no price to derive its basis from".to_owned(),
                    ));
                    continue;
                }
            };
            let option = t.legs.iter().any(|l| l.symbol.is_option());
            let computed = basis.and_then(|(b, from)| {
                let raw = b.checked_mul(sign(req.profit_pct)?)?;
                let tick = tick(option, raw);
                Some((b, from, on_tick(raw, tick)?, tick))
            });
            match computed {
                Some((basis, basis_from, new, tick)) if new > Decimal::ZERO => out.push(Retarget {
                    position_id: p.id.clone(),
                    target_key: t.key.clone(),
                    effect,
                    basis,
                    basis_from,
                    old: t.limit_price,
                    new,
                    tick,
                }),
                Some((_, _, new, _)) => skipped.push(skip(format!("the new price would be {new}"))),
                None => skipped.push(skip("the arithmetic overflows".to_owned())),
            }
        }
    }
    (out, skipped)
}

/// The audit key a retarget is journaled under: a re-run finds it and leaves the target alone.
pub fn audit_key(position: &PositionId, key: &TargetKey) -> String {
    format!("retarget:{position}:{key}")
}

/// The audit detail of a retarget to `pct`; [`audit_key`] and this mark it done.
pub fn audit_detail(r: &Retarget, pct: Decimal) -> String {
    let old = r.old.map_or_else(|| "none".to_owned(), |d| d.to_string());
    format!(
        "limit {old} -> {} ({} basis {} {}, tick {}); to {pct}%",
        r.new,
        r.effect,
        r.basis.round_dp(4).normalize(),
        match r.basis_from {
            Basis::Entry => "from the entry price",
            Basis::Derived => "derived from the present price",
        },
        r.tick
    )
}

/// Whether an audit record's detail says the retarget was to `pct`.
pub fn done_to(detail: &str, pct: Decimal) -> bool {
    detail.ends_with(&format!("; to {pct}%"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::build::{PositionExt, TargetExt, dec, local, position, target};

    fn condor_call(limit: &str) -> crate::Position {
        position("39", "A", "QQQ")
            .leg("QQQ   251219C00640000", "-1")
            .leg("QQQ   251219C00645000", "1")
            .leg("QQQ   251219P00460000", "-1")
            .leg("QQQ   251219P00455000", "1")
            .target(
                target("call_spread")
                    .active("412345601")
                    .limit(limit)
                    .qty("1")
                    .leg("QQQ   251219C00640000", Side::BuyToClose, "1")
                    .leg("QQQ   251219C00645000", Side::SellToClose, "1"),
            )
    }

    fn req(pct: &str, from: Option<&str>) -> Request {
        Request {
            key: "call_spread".into(),
            profit_pct: dec(pct),
            from_pct: from.map(dec),
            effect: None,
        }
    }

    #[test]
    fn a_credit_spread_set_at_50_percent_goes_to_40() {
        let l = local("2025-11-07T15:00:00Z", vec![condor_call("0.60")], vec![]);
        let (out, skipped) = compute(&l, &req("40", Some("50")), &BTreeSet::new());
        assert!(skipped.is_empty(), "{skipped:?}");
        let r = &out[0];
        assert_eq!((r.effect, r.basis_from), (Effect::Credit, Basis::Derived));
        assert_eq!(r.basis, dec("1.2"));
        assert_eq!(r.new.to_string(), "0.72");
        assert_eq!(r.tick, dec("0.01"));
    }

    #[test]
    fn without_a_from_percent_a_spread_of_a_condor_is_left_alone_with_the_reason() {
        let mut p = condor_call("0.60");
        p.entry_price = Some(dec("2.40"));
        let l = local("2025-11-07T15:00:00Z", vec![p], vec![]);
        let (out, skipped) = compute(&l, &req("40", None), &BTreeSet::new());
        assert!(out.is_empty());
        assert!(skipped[0].reason.contains("--from-percent"), "{skipped:?}");
    }

    #[test]
    fn a_target_closing_the_whole_position_uses_its_entry_price() {
        let p = position("7", "A", "AAPL").leg("AAPL", "100").target(
            target("take_profit")
                .limit("116.00")
                .qty("100")
                .leg("AAPL", Side::Sell, "100"),
        );
        let mut p = p;
        p.entry_price = Some(dec("100.00"));
        let l = local("2025-11-07T15:00:00Z", vec![p], vec![]);
        let mut r = req("25", Some("99"));
        r.key = "take_profit".into();
        let (out, _) = compute(&l, &r, &BTreeSet::new());
        assert_eq!(
            (out[0].effect, out[0].basis_from),
            (Effect::Debit, Basis::Entry)
        );
        assert_eq!(out[0].new.to_string(), "125.00");
    }

    #[test]
    fn prices_land_on_the_instruments_tick() {
        assert_eq!(
            on_tick(dec("3.33"), tick(true, dec("3.33")))
                .unwrap()
                .to_string(),
            "3.35"
        );
        assert_eq!(
            on_tick(dec("3.325"), tick(true, dec("3.325")))
                .unwrap()
                .to_string(),
            "3.35"
        );
        assert_eq!(
            on_tick(dec("2.999"), tick(true, dec("2.999")))
                .unwrap()
                .to_string(),
            "3.00"
        );
        assert_eq!(
            on_tick(dec("0.715"), tick(true, dec("0.715")))
                .unwrap()
                .to_string(),
            "0.72"
        );
        assert_eq!(
            on_tick(dec("0.43215"), tick(false, dec("0.43215")))
                .unwrap()
                .to_string(),
            "0.4322"
        );
        assert_eq!(
            on_tick(dec("199.8680"), tick(false, dec("199.868")))
                .unwrap()
                .to_string(),
            "199.87"
        );
    }

    #[test]
    fn a_target_done_by_an_earlier_run_is_not_compounded() {
        let l = local("2025-11-07T15:00:00Z", vec![condor_call("0.72")], vec![]);
        let done = BTreeSet::from([(PositionId::new("39"), TargetKey::new("call_spread"))]);
        let (out, skipped) = compute(&l, &req("40", Some("50")), &done);
        assert!(
            out.is_empty(),
            "0.72 would become 0.86 if it were retargeted again"
        );
        assert!(skipped[0].reason.contains("already retargeted"));
        let r = Retarget {
            position_id: "39".into(),
            target_key: "call_spread".into(),
            effect: Effect::Credit,
            basis: dec("1.2"),
            basis_from: Basis::Derived,
            old: Some(dec("0.60")),
            new: dec("0.72"),
            tick: dec("0.01"),
        };
        let detail = audit_detail(&r, dec("40"));
        assert!(done_to(&detail, dec("40")), "{detail}");
        assert!(!done_to(&detail, dec("45")), "{detail}");
    }
}
