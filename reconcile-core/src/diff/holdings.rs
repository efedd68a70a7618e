//! Holdings, per (account, symbol), when the broker's are known.
//!
//! DESIGN §4: expected = the sum of leg quantities of scoped `open` and `closing` positions.
//! 1. [`stale_positions`]: an open position with at least one leg, every leg flat at the broker
//!    (0 or absent), is a **stale position**, and its legs leave `expected`.
//! 2. [`pending_filled`]: a pending position whose every leg the broker holds beyond
//!    `expected`, by at least the leg's quantity with the same sign, is **pending filled**, and
//!    its legs join `expected`.
//! 3. [`leftovers`]: then each symbol with expected 0 and held ≠ 0 is an **untracked holding**
//!    (quantity = held); any other symbol with expected ≠ held is a **quantity mismatch**.
//!
//! An extension: a stale position and an untracked holding carry the fill that explains them,
//! when the broker's history shows it ([`Fills`]): the last filled order that closed every leg of
//! the position, or that opened the holding.

use super::DiffError;
use super::index::{HoldKey, Index, ScopedPosition, Slot, referenced_id};
use crate::fasthash::{FxMap, FxSet};
use crate::ids::{AccountId, OrderId};
use crate::model::{Fill, Order, OrderStatus, Position, PositionState, Side};
use crate::report::{Missing, PendingFilled, QuantityMismatch, StalePosition, UntrackedHolding};
use crate::symbol::Symbol;
use rust_decimal::Decimal;

pub(super) struct Holdings {
    pub stale_positions: Vec<StalePosition>,
    pub pending_filled: Vec<PendingFilled>,
    pub untracked: Vec<UntrackedHolding>,
    pub mismatches: Vec<QuantityMismatch>,
}

type Quantities<'a> = FxMap<HoldKey<'a>, Decimal>;

fn overflow(account: &AccountId, symbol: &Symbol) -> DiffError {
    DiffError::Overflow {
        account: account.clone(),
        symbol: symbol.clone(),
    }
}

/// The holdings rules, or `None` when the broker's holdings are unknown (never taken as flat).
pub(super) fn judge(ix: &Index<'_>, adopted: &FxSet<Slot>) -> Result<Option<Holdings>, DiffError> {
    let Some(held) = &ix.held else {
        return Ok(None);
    };
    let mut expected: Quantities<'_> = FxMap::default();
    for sp in &ix.positions {
        let p = sp.position;
        if matches!(p.state, PositionState::Open | PositionState::Closing) {
            for l in &p.legs {
                let e = expected.entry((&p.account, &l.symbol)).or_default();
                *e = e
                    .checked_add(l.quantity)
                    .ok_or_else(|| overflow(&p.account, &l.symbol))?;
            }
        }
    }
    let fills = Fills::of(ix);
    let stale_positions = stale_positions(ix, held, &fills, &mut expected)?;
    let pending_filled = pending_filled(ix, held, adopted, &mut expected)?;
    let (untracked, mismatches) = leftovers(ix, held, &fills, &expected);
    Ok(Some(Holdings {
        stale_positions,
        pending_filled,
        untracked,
        mismatches,
    }))
}

fn held_of(held: &Quantities<'_>, account: &AccountId, symbol: &Symbol) -> Decimal {
    held.get(&(account, symbol)).copied().unwrap_or_default()
}

/// Filled orders of the broker's history, by (account, symbol) of each leg, latest fill first.
struct Fills<'a> {
    by_symbol: FxMap<HoldKey<'a>, Vec<&'a Order>>,
}

impl<'a> Fills<'a> {
    fn of(ix: &Index<'a>) -> Self {
        let mut by_symbol: FxMap<HoldKey<'a>, Vec<&'a Order>> = FxMap::default();
        for o in &ix.broker.orders {
            if o.status != OrderStatus::Filled {
                continue;
            }
            for l in &o.legs {
                by_symbol
                    .entry((&o.account, &l.symbol))
                    .or_default()
                    .push(o);
            }
        }
        for orders in by_symbol.values_mut() {
            orders.sort_by(|a, b| {
                (b.filled_at.or(b.updated_at), &b.id).cmp(&(a.filled_at.or(a.updated_at), &a.id))
            });
        }
        Self { by_symbol }
    }

    fn fill(o: &Order) -> Fill {
        Fill {
            order_id: o.id.clone(),
            filled_at: o.filled_at.or(o.updated_at),
            price: o.filled_average_price,
        }
    }

    /// The last filled order that opened `quantity` (signed) of `symbol`.
    fn opening(
        &self,
        account: &'a AccountId,
        symbol: &'a Symbol,
        quantity: Decimal,
    ) -> Option<Fill> {
        let long = quantity > Decimal::ZERO;
        self.by_symbol
            .get(&(account, symbol))?
            .iter()
            .find_map(|o| {
                let opens = o.legs.iter().any(|l| {
                    &l.symbol == symbol
                        && match l.side {
                            Side::Buy | Side::BuyToOpen => long,
                            Side::Sell | Side::SellToOpen => !long,
                            _ => false,
                        }
                });
                opens.then(|| Self::fill(o))
            })
    }

    /// The last filled order that reduced every leg of `p`.
    fn closing(&self, p: &'a Position) -> Option<Fill> {
        let first = p.legs.first()?;
        self.by_symbol
            .get(&(&p.account, &first.symbol))?
            .iter()
            .find(|o| {
                p.legs.iter().all(|pl| {
                    o.legs.iter().any(|ol| {
                        ol.symbol == pl.symbol && ol.side.is_buy() == pl.quantity.is_sign_negative()
                    })
                })
            })
            .map(|o| Self::fill(o))
    }
}

/// Rule 1: open positions flat at the broker, with the working orders their targets still
/// reference and only targets of positions stale alike do (they protect nothing now). Their legs leave `expected`.
fn stale_positions<'a>(
    ix: &Index<'a>,
    held: &Quantities<'a>,
    fills: &Fills<'a>,
    expected: &mut Quantities<'a>,
) -> Result<Vec<StalePosition>, DiffError> {
    let stale: Vec<&ScopedPosition<'a>> = ix
        .positions
        .iter()
        .filter(|sp| {
            let p = sp.position;
            p.state == PositionState::Open
                && !p.legs.is_empty()
                && p.legs
                    .iter()
                    .all(|l| held_of(held, &p.account, &l.symbol).is_zero())
        })
        .collect();
    // How many targets of stale positions reference each order: an order referenced by any
    // other position's target stays (a conflict, for a person), never cancelled with these.
    let mut stale_refs: FxMap<&str, u32> = FxMap::default();
    for sp in &stale {
        for (_, t) in sp.targets() {
            if let Some(id) = referenced_id(t) {
                *stale_refs.entry(id.as_str()).or_default() += 1;
            }
        }
    }
    let mut out = Vec::new();
    for sp in stale {
        let p = sp.position;
        for l in &p.legs {
            if let Some(e) = expected.get_mut(&(&p.account, &l.symbol)) {
                *e = e
                    .checked_sub(l.quantity)
                    .ok_or_else(|| overflow(&p.account, &l.symbol))?;
            }
        }
        let mut working_orders: Vec<OrderId> = sp
            .targets()
            .filter_map(|(_, t)| {
                let id = referenced_id(t)?.as_str();
                ix.order(id)
                    .filter(|o| o.status.is_working())
                    .filter(|_| stale_refs.get(id) == Some(&ix.references(id)))
                    .map(|o| o.id.clone())
            })
            .collect();
        working_orders.sort();
        working_orders.dedup();
        out.push(StalePosition {
            position_id: p.id.clone(),
            account: p.account.clone(),
            working_orders,
            closing: fills.closing(p),
        });
    }
    Ok(out)
}

/// Rule 2: pending positions the broker holds in full, beyond what is expected already, with
/// their unplaced targets (due once promoted). Their legs join `expected`.
fn pending_filled<'a>(
    ix: &Index<'a>,
    held: &Quantities<'a>,
    adopted: &FxSet<Slot>,
    expected: &mut Quantities<'a>,
) -> Result<Vec<PendingFilled>, DiffError> {
    let unplaced: FxSet<Slot> = ix.unplaced.iter().copied().collect();
    let mut out = Vec::new();
    for (pi, sp) in ix.positions.iter().enumerate() {
        let p = sp.position;
        if p.state != PositionState::Pending || p.legs.is_empty() {
            continue;
        }
        let filled = p.legs.iter().all(|l| {
            let e = expected
                .get(&(&p.account, &l.symbol))
                .copied()
                .unwrap_or_default();
            match held_of(held, &p.account, &l.symbol).checked_sub(e) {
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
        let due = sp
            .targets()
            .filter(|&(ti, _)| {
                let slot = Slot {
                    position: pi as u32,
                    target: ti,
                };
                unplaced.contains(&slot) && !adopted.contains(&slot)
            })
            // An order on its way (an intent within grace whose order is not listed, or a
            // placement within grace) is not due again.
            .filter(|&(_, t)| {
                let on_its_way = ix
                    .intents_for(p.id.as_str(), t.key.as_str())
                    .iter()
                    .any(|i| ix.intent_on_its_way(i));
                !on_its_way && !t.placed_at.is_some_and(|at| ix.within_grace(at))
            })
            .map(|(_, t)| Missing {
                position_id: p.id.clone(),
                target_key: t.key.clone(),
                spec: ix.spec(p, t, None),
            })
            .collect();
        out.push(PendingFilled {
            position_id: p.id.clone(),
            due,
        });
    }
    Ok(out)
}

/// Rule 3: what is left over, by (symbol, account).
fn leftovers<'a>(
    ix: &Index<'a>,
    held: &Quantities<'a>,
    fills: &Fills<'a>,
    expected: &Quantities<'a>,
) -> (Vec<UntrackedHolding>, Vec<QuantityMismatch>) {
    let mut keys: Vec<HoldKey<'a>> = expected.keys().chain(held.keys()).copied().collect();
    keys.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
    keys.dedup();
    let avg: FxMap<HoldKey<'a>, (Option<Decimal>, &'a str)> = ix
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
    let (mut untracked, mut mismatches) = (Vec::new(), Vec::new());
    for k in keys {
        let e = expected.get(&k).copied().unwrap_or_default();
        let h = held.get(&k).copied().unwrap_or_default();
        if e.is_zero() && !h.is_zero() {
            let (average_price, underlying) =
                avg.get(&k).copied().unwrap_or((None, k.1.underlying()));
            untracked.push(UntrackedHolding {
                account: k.0.clone(),
                symbol: k.1.clone(),
                quantity: h,
                underlying: underlying.to_owned(),
                average_price,
                entry: fills.opening(k.0, k.1, h),
                working_closing: Some(ix.working_closing(k.0, k.1, h, &[]))
                    .filter(|w| !w.is_zero()),
            });
        } else if e != h {
            mismatches.push(QuantityMismatch {
                account: k.0.clone(),
                symbol: k.1.clone(),
                expected: e,
                actual: h,
            });
        }
    }
    (untracked, mismatches)
}
