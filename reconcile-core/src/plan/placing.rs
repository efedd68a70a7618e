//! What may be placed, and the bracket a backfilled holding gets (seed 003).

use super::{Action, BracketPolicy, Risk};
use crate::ids::AccountId;
use crate::model::Side;
use crate::report::{Holding, OrderSpec};
use crate::symbol::Symbol;
use rust_decimal::{Decimal, RoundingStrategy};

/// Stop and target prices and risk for a backfilled holding, rounded to the cent (half away from
/// zero). `None` on overflow.
pub fn bracket(
    entry: Decimal,
    quantity: Decimal,
    long: bool,
    policy: &BracketPolicy,
) -> Option<Risk> {
    let hundred = Decimal::ONE_HUNDRED;
    let pct = |p: Decimal| p.checked_div(hundred);
    let sl = pct(policy.stop_loss_pct)?;
    let tp = pct(policy.take_profit_pct)?;
    let (stop_factor, target_factor) = if long {
        (Decimal::ONE.checked_sub(sl)?, Decimal::ONE.checked_add(tp)?)
    } else {
        (Decimal::ONE.checked_add(sl)?, Decimal::ONE.checked_sub(tp)?)
    };
    let cents = |d: Decimal| d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    let stop_price = cents(entry.checked_mul(stop_factor)?);
    let target_price = cents(entry.checked_mul(target_factor)?);
    let per_share = entry.checked_sub(stop_price)?.abs();
    let total = per_share.checked_mul(quantity.abs())?;
    Some(Risk {
        entry_price: entry,
        stop_price,
        target_price,
        per_share,
        total,
    })
}

/// Whether a target's order may be placed: it has legs and a price, and it
/// [fits the holdings](fits_holdings). Unknown holdings mean "do not place".
pub fn placeable(spec: &OrderSpec) -> Result<(), String> {
    if spec.legs.is_empty() {
        return Err("the target has no expected legs to place".to_owned());
    }
    if spec.limit_price.is_none() && spec.stop_price.is_none() {
        return Err("the target has no limit or stop price".to_owned());
    }
    fits_holdings(spec)
}

/// Whether an order of this spec fits what the broker holds: every leg closes, and no leg closes
/// more than is held beyond what other working orders already close of it
/// ([`OrderSpec::working_closing`]). A stop and a take profit of one OCO group exclude each
/// other at the broker, so they count once. Unknown holdings never fit.
pub fn fits_holdings(spec: &OrderSpec) -> Result<(), String> {
    let Some(held) = &spec.held else {
        return Err(
            "broker holdings are unknown: a closing order is never placed blind".to_owned(),
        );
    };
    for leg in &spec.legs {
        let h = quantity_of(held, &leg.symbol);
        let working = spec
            .working_closing
            .as_deref()
            .map_or(Decimal::ZERO, |w| quantity_of(w, &leg.symbol));
        let direction = match leg.side {
            Side::BuyToClose | Side::Buy => h.is_sign_negative(),
            Side::SellToClose | Side::Sell => h.is_sign_positive(),
            Side::BuyToOpen | Side::SellToOpen => {
                return Err(format!(
                    "leg {} opens a position; targets only close",
                    leg.symbol
                ));
            }
        };
        let free = h.abs().checked_sub(working).unwrap_or(Decimal::MIN);
        if !direction || h.is_zero() || free < leg.quantity {
            let mut reason = format!(
                "closing {} {} {} would exceed the broker's holding of {}",
                leg.side.as_str(),
                leg.quantity,
                leg.symbol,
                h
            );
            if !working.is_zero() {
                reason.push_str(&format!(": working orders already close {working} of it"));
            }
            return Err(reason);
        }
    }
    Ok(())
}

fn quantity_of(list: &[Holding], symbol: &Symbol) -> Decimal {
    list.iter()
        .find(|h| &h.symbol == symbol)
        .map_or(Decimal::ZERO, |h| h.quantity)
}

/// What one placement closes per (account, symbol), and what each of those has free before the
/// plan: held beyond other working orders' closing. The exits of an OCO order count once.
pub(super) fn closes(action: &Action) -> Vec<Closing<'_>> {
    let specs: &[&OrderSpec] = match action {
        Action::PlaceTarget { spec, .. } => &[spec],
        Action::PlaceOco {
            take_profit_spec,
            stop_loss_spec,
            ..
        } => &[take_profit_spec, stop_loss_spec],
        _ => &[],
    };
    let mut out: Vec<Closing<'_>> = Vec::new();
    for spec in specs {
        for leg in &spec.legs {
            let free = spec.held.as_deref().map_or(Decimal::ZERO, |held| {
                let working = spec
                    .working_closing
                    .as_deref()
                    .map_or(Decimal::ZERO, |w| quantity_of(w, &leg.symbol));
                quantity_of(held, &leg.symbol)
                    .abs()
                    .checked_sub(working)
                    .unwrap_or(Decimal::ZERO)
            });
            match out
                .iter_mut()
                .find(|c| c.account == &spec.account && c.symbol == &leg.symbol)
            {
                Some(c) => c.quantity = c.quantity.max(leg.quantity),
                None => out.push(Closing {
                    account: &spec.account,
                    symbol: &leg.symbol,
                    quantity: leg.quantity,
                    free,
                }),
            }
        }
    }
    out
}

/// What a placement closes of one (account, symbol), and what was free of it before the plan.
pub(super) struct Closing<'a> {
    pub account: &'a AccountId,
    pub symbol: &'a Symbol,
    pub quantity: Decimal,
    pub free: Decimal,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        crate::decimal::parse_decimal(s).unwrap()
    }

    #[test]
    fn seed_003_bracket_comes_out_to_the_cent() {
        let cases = [
            ("172.30", "74", "158.52", "199.87", "1019.72"),
            ("190.75", "37", "175.49", "221.27", "564.62"),
            ("88.62", "101", "81.53", "102.80", "716.09"),
            ("17.11", "432", "15.74", "19.85", "591.84"),
            ("32.61", "225", "30.00", "37.83", "587.25"),
        ];
        let mut total = Decimal::ZERO;
        for (entry, qty, stop, target, risk) in cases {
            let r = bracket(d(entry), d(qty), true, &BracketPolicy::default()).unwrap();
            assert_eq!(r.stop_price, d(stop), "{entry}");
            assert_eq!(r.target_price, d(target), "{entry}");
            assert_eq!(r.total, d(risk), "{entry}");
            total += r.total;
        }
        assert_eq!(total, d("3479.52"));
    }
}
