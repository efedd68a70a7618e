//! The safety rails (DESIGN §5), applied to what the fixes propose: a probable broken read
//! refuses everything destructive or new; more cancels than the cap drop every destructive
//! action (and the placements waiting on them); more placements than the cap drop them all.

use super::{Action, Draft, PlannedAction, Policy};
use crate::report::Report;
use std::collections::BTreeSet;

pub(super) fn apply(report: &Report, p: &Policy, d: &mut Draft) {
    if let Some(reason) = broken_read(report) {
        let nothing_to_refuse = d.destructive.is_empty() && d.placements.is_empty();
        if !p.force && !nothing_to_refuse {
            refuse_all(d, &reason);
            return;
        }
    }
    cap_cancels(p, d);
    cap_placements(p, d);
}

/// Why the read looks broken, if it does: empty local records facing working orders, or more
/// than half of the working orders in scope orphaned.
fn broken_read(report: &Report) -> Option<String> {
    let scanned = report.scanned;
    if scanned.local_positions == 0 && scanned.working_orders > 0 {
        Some(format!(
            "the local records are empty while the broker has {} working orders in scope: probably a broken read; nothing destructive or new runs (override with force)",
            scanned.working_orders
        ))
    } else if scanned.working_orders > 0 && report.orphaned.len() * 2 > scanned.working_orders {
        Some(format!(
            "{} of {} working orders in scope look orphaned: probably a broken read; nothing destructive or new runs (override with force)",
            report.orphaned.len(),
            scanned.working_orders
        ))
    } else {
        None
    }
}

fn refuse_all(d: &mut Draft, reason: &str) {
    for a in std::mem::take(&mut d.destructive)
        .into_iter()
        .chain(std::mem::take(&mut d.placements))
    {
        d.skip(a.key, reason);
    }
    d.refusals.push(reason.to_owned());
}

/// Cancels are capped, and a replacement counts as one: it cancels its original.
fn cap_cancels(p: &Policy, d: &mut Draft) {
    let cancels = d
        .destructive
        .iter()
        .filter(|a| matches!(a.action, Action::Cancel { .. } | Action::Replace { .. }))
        .count();
    if cancels <= p.max_cancels {
        return;
    }
    let reason = format!(
        "{cancels} cancels exceed the cap of {}: nothing destructive runs (raise the cap to override)",
        p.max_cancels
    );
    let dropped: Vec<PlannedAction> = std::mem::take(&mut d.destructive);
    let dropped_keys: BTreeSet<String> = dropped.iter().map(|a| a.key.clone()).collect();
    for a in dropped {
        d.skip(a.key, reason.clone());
    }
    // Placements that waited on a dropped clear go too.
    let (keep, gone): (Vec<_>, Vec<_>) =
        std::mem::take(&mut d.placements)
            .into_iter()
            .partition(|a| {
                a.depends_on
                    .as_ref()
                    .is_none_or(|dep| !dropped_keys.contains(dep))
            });
    d.placements = keep;
    for a in gone {
        d.skip(a.key, "depends on a dropped destructive action");
    }
    d.refusals.push(reason);
}

fn cap_placements(p: &Policy, d: &mut Draft) {
    if d.placements.len() <= p.max_placements {
        return;
    }
    let reason = format!(
        "{} placements exceed the cap of {}: nothing is placed (raise the cap to override)",
        d.placements.len(),
        p.max_placements
    );
    for a in std::mem::take(&mut d.placements) {
        d.skip(a.key, reason.clone());
    }
    d.refusals.push(reason);
}
