//! One function per fix: each reads the report and the policy and proposes its actions (or
//! says why it left something out). They run in [`ALL`]'s order, which is the order their
//! actions appear in within each of the plan's three lists.

use super::placing::{bracket, fits_holdings, placeable};
use super::{Action, Draft, Policy, push};
use crate::ids::{AccountId, PositionId, TargetKey};
use crate::model::{Position, PositionLeg, PositionState, ProfitTarget, Side, TargetLeg};
use crate::report::{AdoptVia, Adoptable, DriftField, Holding, InvalidReason, OrderSpec, Report};
use crate::symbol::Symbol;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};

/// A fix: what it proposes for a report under a policy.
pub(super) type Fix = fn(&Report, &Policy) -> Draft;

/// Every fix, in plan order.
pub(super) const ALL: &[Fix] = &[
    close_stale_positions,
    link_adoptable,
    clear_invalid,
    drop_stale_intents,
    place_missing,
    replace_drifted,
    promote_pending,
    cancel_orphaned,
    backfill,
    leave_for_a_human,
];

/// Positions this plan closes locally (flat at the broker, with `sync_positions`), and the key
/// of each close. Nothing of theirs is linked or replaced; their stray orders are cancelled
/// after the close.
fn closing<'r>(r: &'r Report, p: &Policy) -> BTreeMap<&'r PositionId, String> {
    if !p.sync_positions {
        return BTreeMap::new();
    }
    r.stale_positions
        .iter()
        .map(|s| {
            let key = Action::CloseLocal {
                position_id: s.position_id.clone(),
                closing: None,
            }
            .key();
            (&s.position_id, key)
        })
        .collect()
}

/// Whether an adoptable order is linked to its target: with `adopt`, or when it is our own
/// journaled order and we place or replace (finishing our own action is not a fix of someone
/// else's). Never for a position this plan closes.
/// Whether an adoptable order is linked by this policy: any with `adopt`; our own (an intent
/// names it) with a fix that places or replaces; and the replacement of a target's own order
/// with any fix that would otherwise clear or re-place that target — the working order *is*
/// the target's order now (DESIGN: follow `replaced_by`), and clearing the target instead would
/// leave it unprotected beside an order nothing tracks.
fn is_linked(a: &Adoptable, p: &Policy, closing: &BTreeMap<&PositionId, String>) -> bool {
    let own = p.create_missing || p.replace_drifted;
    let follows_chain = a.via == AdoptVia::ReplacedBy && (own || p.clear_invalid);
    !closing.contains_key(&a.position_id)
        && (p.adopt || (own && a.intent.is_some()) || follows_chain)
}

/// Proposes placing a target's order, after `after` if given, or says why not. Placement is
/// only ever proposed with `create_missing`.
fn place(
    draft: &mut Draft,
    p: &Policy,
    position_id: &PositionId,
    target_key: &TargetKey,
    spec: &OrderSpec,
    after: Option<String>,
) {
    if !p.create_missing {
        return;
    }
    match placeable(spec) {
        Ok(()) => {
            push(
                &mut draft.placements,
                Action::PlaceTarget {
                    position_id: position_id.clone(),
                    target_key: target_key.clone(),
                    spec: spec.clone(),
                },
                after,
            );
        }
        Err(reason) => draft.skip(format!("place:{position_id}:{target_key}"), reason),
    }
}

/// `sync_positions`: close open positions flat at the broker; with `cancel_orphaned`, cancel
/// the working orders their targets still reference, after the close.
fn close_stale_positions(r: &Report, p: &Policy) -> Draft {
    let mut d = Draft::default();
    if !p.sync_positions {
        return d;
    }
    for s in &r.stale_positions {
        let close = push(
            &mut d.local,
            Action::CloseLocal {
                position_id: s.position_id.clone(),
                closing: s.closing.clone(),
            },
            None,
        );
        if p.cancel_orphaned {
            for o in &s.working_orders {
                push(
                    &mut d.destructive,
                    Action::Cancel {
                        account: s.account.clone(),
                        order_id: o.clone(),
                    },
                    Some(close.clone()),
                );
            }
        }
    }
    d
}

/// Link adoptable orders to their targets ([`is_linked`]). An adoptable order of a position
/// this plan closes protects nothing: with `cancel_orphaned` it is cancelled after the close,
/// and its intent dropped after the cancel.
fn link_adoptable(r: &Report, p: &Policy) -> Draft {
    let mut d = Draft::default();
    let closing = closing(r, p);
    for a in &r.adoptable {
        if let Some(close) = closing.get(&a.position_id) {
            if p.cancel_orphaned {
                let cancel = push(
                    &mut d.destructive,
                    Action::Cancel {
                        account: a.account.clone(),
                        order_id: a.order_id.clone(),
                    },
                    Some(close.clone()),
                );
                if let Some(cid) = &a.intent {
                    push(
                        &mut d.destructive,
                        Action::DropIntent {
                            client_order_id: cid.clone(),
                        },
                        Some(cancel),
                    );
                }
            }
            continue;
        }
        if is_linked(a, p, &closing) {
            push(
                &mut d.local,
                Action::Link {
                    position_id: a.position_id.clone(),
                    target_key: a.target_key.clone(),
                    order_id: a.order_id.clone(),
                    client_order_id: a.client_order_id.clone(),
                    resolves_intent: a.intent.clone(),
                },
                None,
            );
        }
    }
    d
}

/// `clear_invalid`: mark targets whose order filled; clear the others' ids, and (with
/// `create_missing`) place them again after the clear when they are due — on an open position,
/// or one this plan promotes. A target that gains its order by a link needs no clearing.
fn clear_invalid(r: &Report, p: &Policy) -> Draft {
    let mut d = Draft::default();
    let closing = closing(r, p);
    let linked: BTreeSet<(&PositionId, &TargetKey)> = r
        .adoptable
        .iter()
        .filter(|a| is_linked(a, p, &closing))
        .map(|a| (&a.position_id, &a.target_key))
        .collect();
    let promoted: BTreeSet<&PositionId> = if p.sync_positions {
        r.pending_filled.iter().map(|f| &f.position_id).collect()
    } else {
        BTreeSet::new()
    };
    for i in &r.invalid {
        if linked.contains(&(&i.position_id, &i.target_key)) {
            continue;
        }
        let due = i.due || promoted.contains(&i.position_id);
        if !p.clear_invalid {
            if due && i.spec.is_some() && p.create_missing {
                d.skip(
                    format!("place:{}:{}", i.position_id, i.target_key),
                    "its target still references an order that is not working; clear it first (--clear-invalid)",
                );
            }
            continue;
        }
        if i.reason == InvalidReason::Filled {
            push(
                &mut d.local,
                Action::MarkFilled {
                    position_id: i.position_id.clone(),
                    target_key: i.target_key.clone(),
                    order_id: i.order_id.clone(),
                },
                None,
            );
            continue;
        }
        let clear = push(
            &mut d.destructive,
            Action::Clear {
                position_id: i.position_id.clone(),
                target_key: i.target_key.clone(),
                order_id: i.order_id.clone(),
                reason: i.reason,
                account: i.account.clone(),
            },
            None,
        );
        if let (Some(spec), true) = (&i.spec, due) {
            place(&mut d, p, &i.position_id, &i.target_key, spec, Some(clear));
        }
    }
    d
}

/// Drop intents whose order never came, with `clear_invalid`, and with `create_missing`:
/// placement owns its journal, so it drops its own dead intents (and places their targets
/// again, as missing). With any fix on, drop spent intents, whose orders are linked already.
fn drop_stale_intents(r: &Report, p: &Policy) -> Draft {
    let mut d = Draft::default();
    let stale = if p.clear_invalid || p.create_missing {
        r.stale_intents.as_slice()
    } else {
        &[]
    };
    let spent = if p.any_fix() {
        r.spent_intents.as_slice()
    } else {
        &[]
    };
    for s in stale.iter().chain(spent) {
        push(
            &mut d.local,
            Action::DropIntent {
                client_order_id: s.client_order_id.clone(),
            },
            None,
        );
    }
    d
}

/// `create_missing`: place every missing target that may be placed.
fn place_missing(r: &Report, p: &Policy) -> Draft {
    let mut d = Draft::default();
    for m in &r.missing {
        place(&mut d, p, &m.position_id, &m.target_key, &m.spec, None);
    }
    d
}

/// `replace_drifted`: replace drifted orders at the expected price and quantity. Legs cannot
/// be changed by a replace, so drifted legs are left for a human; nothing of a position this
/// plan closes is replaced.
fn replace_drifted(r: &Report, p: &Policy) -> Draft {
    let mut d = Draft::default();
    if !p.replace_drifted {
        return d;
    }
    let closing = closing(r, p);
    for x in &r.drifted {
        if closing.contains_key(&x.position_id) {
            continue;
        }
        let subject = || format!("replace:{}:{}:{}", x.position_id, x.target_key, x.order_id);
        if x.field == DriftField::Legs {
            d.skip(
                subject(),
                "legs differ, and a replace cannot change legs: needs a human",
            );
            continue;
        }
        if x.spec.held.is_some()
            && let Err(reason) = fits_holdings(&x.spec)
        {
            d.skip(subject(), reason);
            continue;
        }
        push(
            &mut d.destructive,
            Action::Replace {
                position_id: x.position_id.clone(),
                target_key: x.target_key.clone(),
                order_id: x.order_id.clone(),
                spec: x.spec.clone(),
            },
            None,
        );
    }
    d
}

/// `sync_positions`: promote pending positions the broker holds in full, then (with
/// `create_missing`) place their due targets after the promotion.
fn promote_pending(r: &Report, p: &Policy) -> Draft {
    let mut d = Draft::default();
    if !p.sync_positions {
        return d;
    }
    for f in &r.pending_filled {
        let promote = push(
            &mut d.local,
            Action::Promote {
                position_id: f.position_id.clone(),
            },
            None,
        );
        for m in &f.due {
            place(
                &mut d,
                p,
                &m.position_id,
                &m.target_key,
                &m.spec,
                Some(promote.clone()),
            );
        }
    }
    d
}

/// `cancel_orphaned`: cancel working orders nothing references.
fn cancel_orphaned(r: &Report, p: &Policy) -> Draft {
    let mut d = Draft::default();
    if p.cancel_orphaned {
        for o in &r.orphaned {
            push(
                &mut d.destructive,
                Action::Cancel {
                    account: o.account.clone(),
                    order_id: o.order_id.clone(),
                },
                None,
            );
        }
    }
    d
}

/// `backfill` (seed 003): each untracked holding becomes an open position at the broker's
/// average price, with a stop loss and a take profit from the bracket policy, placed after the
/// backfill when `create_missing` is on; the risk of each and their sum.
fn backfill(r: &Report, p: &Policy) -> Draft {
    let mut d = Draft::default();
    if !p.backfill {
        return d;
    }
    let mut total = Decimal::ZERO;
    let mut any_risk = false;
    for u in &r.untracked_holdings {
        let id = PositionId::new(format!("bf-{}-{}", u.account, u.symbol.compact()));
        let bracket_policy = match (u.symbol.is_option(), &p.options_bracket) {
            (false, _) => &p.bracket,
            (true, Some(b)) => b,
            (true, None) => {
                d.skip(
                    format!("backfill:{id}"),
                    "an option holding: no bracket policy for options is configured, so it is left for a person",
                );
                continue;
            }
        };
        let long = u.quantity.is_sign_positive();
        let qty = u.quantity.abs();
        let close_side = match (u.symbol.is_option(), long) {
            (true, true) => Side::SellToClose,
            (true, false) => Side::BuyToClose,
            (false, true) => Side::Sell,
            (false, false) => Side::Buy,
        };
        let legs = vec![TargetLeg {
            symbol: u.symbol.clone(),
            side: close_side,
            quantity: qty,
        }];
        let mut targets = Vec::new();
        let mut risk = None;
        if let Some(entry) = u.average_price {
            match bracket(entry, qty, long, bracket_policy) {
                Some(rk) => {
                    let mut stop = ProfitTarget::unplaced("stop_loss");
                    stop.stop_price = Some(rk.stop_price);
                    stop.quantity = Some(qty);
                    stop.legs = legs.clone();
                    let mut take = ProfitTarget::unplaced("take_profit");
                    take.limit_price = Some(rk.target_price);
                    take.quantity = Some(qty);
                    take.legs = legs.clone();
                    targets.push(stop);
                    targets.push(take);
                    match total.checked_add(rk.total) {
                        Some(t) => total = t,
                        None => d.skip(format!("backfill:{id}"), "total risk overflows"),
                    }
                    any_risk = true;
                    risk = Some(rk);
                }
                None => d.skip(format!("backfill:{id}"), "bracket prices overflow"),
            }
        } else {
            d.skip(
                format!("backfill:{id}"),
                "the broker gave no average price: backfilled without targets",
            );
        }
        let position = Position {
            id: id.clone(),
            account: u.account.clone(),
            underlying: u.underlying.clone(),
            state: PositionState::Open,
            // Opened when the entry filled, if history shows the fill.
            opened_at: u.entry.as_ref().and_then(|e| e.filled_at),
            entry_price: u.average_price,
            legs: vec![PositionLeg {
                symbol: u.symbol.clone(),
                quantity: u.quantity,
            }],
            targets: targets.clone(),
            entry_order_id: u.entry.as_ref().map(|e| e.order_id.clone()),
            closing: None,
        };
        let created = push(&mut d.local, Action::Backfill { position, risk }, None);
        for t in &targets {
            let spec = OrderSpec {
                account: u.account.clone(),
                underlying: u.underlying.clone(),
                legs: t.legs.clone(),
                limit_price: t.limit_price,
                stop_price: t.stop_price,
                quantity: t.quantity,
                held: Some(vec![Holding {
                    symbol: u.symbol.clone(),
                    quantity: u.quantity,
                }]),
                working_closing: u.working_closing.map(|w| {
                    vec![Holding {
                        symbol: u.symbol.clone(),
                        quantity: w,
                    }]
                }),
            };
            place(&mut d, p, &id, &t.key, &spec, Some(created.clone()));
        }
    }
    if any_risk {
        d.total_risk = Some(total);
    }
    d
}

/// Conflicts and quantity mismatches have no fix: they are listed for a person.
fn leave_for_a_human(r: &Report, _: &Policy) -> Draft {
    let mut d = Draft::default();
    for c in &r.conflicts {
        d.skip(
            format!("conflict:{}", c.order_id),
            format!(
                "order referenced by {} targets: needs a human",
                c.targets.len()
            ),
        );
    }
    for q in &r.quantity_mismatches {
        d.skip(
            format!("quantity:{}:{}", q.account, q.symbol),
            format!(
                "expected {}, broker holds {}: report only",
                q.expected, q.actual
            ),
        );
    }
    d
}

/// A take profit and a stop loss of one position closing the same legs are alternatives: with
/// `oco` they go out as one OCO order, where the fill of one cancels the other; without, only
/// the stop is placed (protection first), since two independent exits could close the shares
/// twice.
pub(super) fn pair_exits(p: &Policy, d: &mut Draft) {
    let exits = |a: &super::PlannedAction| match &a.action {
        Action::PlaceTarget {
            position_id, spec, ..
        } => Some((position_id.clone(), spec.legs.clone())),
        _ => None,
    };
    let mut groups: BTreeMap<(PositionId, Vec<TargetLeg>), Vec<usize>> = BTreeMap::new();
    for (i, a) in d.placements.iter().enumerate() {
        if let Some(k) = exits(a) {
            groups.entry(k).or_default().push(i);
        }
    }
    let mut paired: BTreeMap<usize, Option<super::PlannedAction>> = BTreeMap::new();
    for members in groups.values() {
        let [a, b] = members.as_slice() else {
            continue;
        };
        let spec = |i: usize| match &d.placements[i].action {
            Action::PlaceTarget {
                target_key, spec, ..
            } => Some((target_key.clone(), spec.clone())),
            _ => None,
        };
        let (Some((ka, sa)), Some((kb, sb))) = (spec(*a), spec(*b)) else {
            continue;
        };
        let is_take = |s: &OrderSpec| s.limit_price.is_some() && s.stop_price.is_none();
        let is_stop = |s: &OrderSpec| s.stop_price.is_some();
        let ((tk, ts, ti), (sk, ss, si)) = if is_take(&sa) && is_stop(&sb) {
            ((ka, sa, *a), (kb, sb, *b))
        } else if is_take(&sb) && is_stop(&sa) {
            ((kb, sb, *b), (ka, sa, *a))
        } else {
            continue;
        };
        let position_id = match &d.placements[ti].action {
            Action::PlaceTarget { position_id, .. } => position_id.clone(),
            _ => continue,
        };
        let depends_on = d.placements[ti]
            .depends_on
            .clone()
            .or_else(|| d.placements[si].depends_on.clone());
        if p.oco {
            let action = Action::PlaceOco {
                position_id,
                take_profit: tk,
                take_profit_spec: ts,
                stop_loss: sk,
                stop_loss_spec: ss,
            };
            paired.insert(
                ti,
                Some(super::PlannedAction {
                    key: action.key(),
                    depends_on,
                    action,
                }),
            );
            paired.insert(si, None);
        } else {
            paired.insert(ti, None);
            d.skip(
                format!("place:{position_id}:{tk}"),
                "a take profit on the same shares as the stop needs one OCO order, which this broker does not take: only the stop is placed",
            );
        }
    }
    if paired.is_empty() {
        return;
    }
    let placements = std::mem::take(&mut d.placements);
    for (i, a) in placements.into_iter().enumerate() {
        match paired.remove(&i) {
            Some(Some(oco)) => d.placements.push(oco),
            Some(None) => {}
            None => d.placements.push(a),
        }
    }
}

/// The holdings rule across orders: the working closing quantity per (account, symbol), ours
/// and theirs, never exceeds what the broker holds. Each placement was checked against the
/// holding less the working orders already closing it; here the placements of this plan share
/// what is left, in plan order, and one that does not fit is left out with the reason.
pub(super) fn share_holdings(d: &mut Draft) {
    let mut used: BTreeMap<(AccountId, Symbol), Decimal> = BTreeMap::new();
    let placements = std::mem::take(&mut d.placements);
    for a in placements {
        let closes = super::placing::closes(&a.action);
        let over = closes
            .iter()
            .map(|c| {
                let key = (c.account.clone(), c.symbol.clone());
                (c, used.get(&key).copied().unwrap_or_default())
            })
            .find(|(c, before)| before.saturating_add(c.quantity) > c.free);
        if let Some((c, before)) = over {
            let reason = format!(
                "closing {} {} would exceed what is free of the broker's holding ({}): \
                 other placements of this plan already close {} of it",
                c.quantity, c.symbol, c.free, before
            );
            d.skip(a.key.clone(), reason);
            continue;
        }
        for c in &closes {
            let u = used
                .entry((c.account.clone(), c.symbol.clone()))
                .or_default();
            *u = u.saturating_add(c.quantity);
        }
        d.placements.push(a);
    }
}
