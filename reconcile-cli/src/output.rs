//! Human output: a one-line verdict with the counts that are not zero (every count, as a table,
//! with `--all`), then one table per non-empty category, with ids an operator can copy.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use reconcile_core::{Plan, Report};
use std::fmt::Write;

fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header.to_vec());
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
}

fn opt(v: Option<&impl ToString>) -> String {
    v.map_or_else(|| "-".to_owned(), ToString::to_string)
}

pub fn report_table(r: &Report, all: bool) -> String {
    let mut out = String::new();
    let verdict = if r.in_sync { "in sync" } else { "out of sync" };
    let _ = write!(
        out,
        "as of {}: {verdict} ({} positions, {} working orders looked at)",
        r.as_of.to_rfc3339(),
        r.scanned.scoped_positions,
        r.scanned.working_orders
    );
    if all {
        out.push('\n');
        let counts: Vec<Vec<String>> = r
            .counts()
            .iter()
            .map(|(k, n)| vec![(*k).to_owned(), n.to_string()])
            .collect();
        out.push_str(&table(&["category", "count"], counts));
    } else {
        let nonzero: Vec<String> = r
            .counts()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if !nonzero.is_empty() {
            let _ = write!(out, ": {}", nonzero.join(", "));
        }
    }
    out.push('\n');
    let mut section = |title: &str, header: &[&str], rows: Vec<Vec<String>>| {
        if !rows.is_empty() {
            let _ = writeln!(out, "\n{title} ({})", rows.len());
            out.push_str(&table(header, rows));
            out.push('\n');
        }
    };
    section(
        "drifted: working, but not as expected",
        &["position", "target", "order", "field", "expected", "actual"],
        r.drifted
            .iter()
            .map(|e| {
                vec![
                    e.position_id.to_string(),
                    e.target_key.to_string(),
                    e.order_id.to_string(),
                    e.field.as_str().to_owned(),
                    opt(e.expected.as_ref()),
                    opt(e.actual.as_ref()),
                ]
            })
            .collect(),
    );
    section(
        "invalid: the target's order is not working",
        &["position", "target", "order", "reason"],
        r.invalid
            .iter()
            .map(|e| {
                vec![
                    e.position_id.to_string(),
                    e.target_key.to_string(),
                    e.order_id.to_string(),
                    e.reason.as_str().to_owned(),
                ]
            })
            .collect(),
    );
    section(
        "adoptable: an untracked order that belongs to a target",
        &["order", "position", "target", "via"],
        r.adoptable
            .iter()
            .map(|e| {
                vec![
                    e.order_id.to_string(),
                    e.position_id.to_string(),
                    e.target_key.to_string(),
                    e.via.as_str().to_owned(),
                ]
            })
            .collect(),
    );
    section(
        "in flight: wait",
        &["order", "client order id", "position", "target"],
        r.in_flight
            .iter()
            .map(|e| {
                vec![
                    opt(e.order_id.as_ref()),
                    opt(e.client_order_id.as_ref()),
                    opt(e.position_id.as_ref()),
                    opt(e.target_key.as_ref()),
                ]
            })
            .collect(),
    );
    section(
        "orphaned: working at the broker, tracked by nothing",
        &["order", "account", "underlying", "status"],
        r.orphaned
            .iter()
            .map(|e| {
                vec![
                    e.order_id.to_string(),
                    e.account.to_string(),
                    e.underlying.clone(),
                    e.status.as_str().to_owned(),
                ]
            })
            .collect(),
    );
    section(
        "missing: a due target with no order",
        &["position", "target"],
        r.missing
            .iter()
            .map(|e| vec![e.position_id.to_string(), e.target_key.to_string()])
            .collect(),
    );
    section(
        "conflicts: one order, several targets",
        &["order", "targets"],
        r.conflicts
            .iter()
            .map(|c| {
                let ts: Vec<String> = c
                    .targets
                    .iter()
                    .map(|t| format!("{}/{}", t.position_id, t.target_key))
                    .collect();
                vec![c.order_id.to_string(), ts.join(", ")]
            })
            .collect(),
    );
    section(
        "stale intents: no order came",
        &["client order id", "position", "target"],
        r.stale_intents
            .iter()
            .map(|e| {
                vec![
                    e.client_order_id.to_string(),
                    e.position_id.to_string(),
                    e.target_key.to_string(),
                ]
            })
            .collect(),
    );
    section(
        "untracked holdings",
        &["account", "symbol", "quantity", "average price"],
        r.untracked_holdings
            .iter()
            .map(|e| {
                vec![
                    e.account.to_string(),
                    e.symbol.to_string(),
                    e.quantity.to_string(),
                    opt(e.average_price.as_ref()),
                ]
            })
            .collect(),
    );
    section(
        "stale positions: flat at the broker",
        &["position", "account", "working orders"],
        r.stale_positions
            .iter()
            .map(|e| {
                let ids: Vec<String> = e.working_orders.iter().map(ToString::to_string).collect();
                vec![
                    e.position_id.to_string(),
                    e.account.to_string(),
                    ids.join(", "),
                ]
            })
            .collect(),
    );
    section(
        "quantity mismatches",
        &["account", "symbol", "expected", "held"],
        r.quantity_mismatches
            .iter()
            .map(|e| {
                vec![
                    e.account.to_string(),
                    e.symbol.to_string(),
                    e.expected.to_string(),
                    e.actual.to_string(),
                ]
            })
            .collect(),
    );
    section(
        "pending, held in full",
        &["position"],
        r.pending_filled
            .iter()
            .map(|e| vec![e.position_id.to_string()])
            .collect(),
    );
    out
}

pub fn plan_table(r: &Report, p: &Plan, all: bool) -> String {
    let mut out = report_table(r, all);
    let _ = writeln!(out, "\nplan ({} actions)", p.actions.len());
    if !p.actions.is_empty() {
        let rows = p
            .actions
            .iter()
            .enumerate()
            .map(|(i, a)| {
                vec![
                    (i + 1).to_string(),
                    a.action.kind().as_str().to_owned(),
                    a.key.clone(),
                    a.depends_on.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out.push_str(&table(&["#", "action", "key", "after"], rows));
        out.push('\n');
    }
    let risks: Vec<Vec<String>> = p
        .actions
        .iter()
        .filter_map(|a| match &a.action {
            reconcile_core::Action::Backfill {
                position,
                risk: Some(k),
            } => Some(vec![
                position.underlying.clone(),
                position
                    .legs
                    .first()
                    .map(|l| l.quantity.to_string())
                    .unwrap_or_default(),
                k.entry_price.to_string(),
                k.stop_price.to_string(),
                k.target_price.to_string(),
                k.per_share.to_string(),
                k.total.to_string(),
            ]),
            _ => None,
        })
        .collect();
    if !risks.is_empty() {
        let _ = writeln!(out, "\nbackfill risk");
        out.push_str(&table(
            &[
                "symbol",
                "shares",
                "entry",
                "stop",
                "target",
                "risk/share",
                "total risk",
            ],
            risks,
        ));
        out.push('\n');
        if let Some(t) = p.backfill_total_risk {
            let _ = writeln!(out, "total risk across new positions: {t}");
        }
    }
    for s in &p.skipped {
        let _ = writeln!(out, "skipped {}: {}", s.subject, s.reason);
    }
    for r in &p.refusals {
        let _ = writeln!(out, "refused: {r}");
    }
    out
}

pub fn apply_table(a: &reconcile_core::ApplyReport) -> String {
    let mut out = format!("\napplied (run {})\n", a.run_id);
    let rows = a
        .results
        .iter()
        .map(|r| {
            vec![
                r.key.clone(),
                r.outcome.as_str().to_owned(),
                r.detail.clone(),
            ]
        })
        .collect();
    out.push_str(&table(&["action", "outcome", "detail"], rows));
    out.push('\n');
    for s in &a.stale {
        let _ = writeln!(out, "dropped as stale: {s}");
    }
    if let Some(v) = &a.verify {
        let _ = writeln!(
            out,
            "\nverify: {}",
            if v.in_sync { "in sync" } else { "out of sync" }
        );
        let counts: Vec<String> = v
            .counts()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(out, "{}", counts.join(", "));
    }
    out
}

/// A retarget's dry-run table: old → new for every target, then the ones left alone and why.
pub fn retarget_table(
    changes: &[reconcile_core::retarget::Retarget],
    skipped: &[reconcile_core::retarget::Skip],
) -> String {
    let mut out = String::new();
    if !changes.is_empty() {
        let rows = changes
            .iter()
            .map(|c| {
                vec![
                    c.position_id.to_string(),
                    c.target_key.to_string(),
                    opt(c.old.as_ref()),
                    c.new.to_string(),
                    c.effect.as_str().to_owned(),
                    format!(
                        "{} ({})",
                        c.basis.round_dp(4).normalize(),
                        match c.basis_from {
                            reconcile_core::retarget::Basis::Entry => "entry",
                            reconcile_core::retarget::Basis::Derived => "derived",
                        }
                    ),
                    c.tick.to_string(),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "position", "target", "old", "new", "effect", "basis", "tick",
            ],
            rows,
        ));
        out.push('\n');
    }
    if !skipped.is_empty() {
        let _ = writeln!(out, "left alone ({})", skipped.len());
        let rows = skipped
            .iter()
            .map(|s| {
                vec![
                    s.position_id.to_string(),
                    s.target_key.to_string(),
                    s.reason.clone(),
                ]
            })
            .collect();
        out.push_str(&table(&["position", "target", "why"], rows));
        out.push('\n');
    }
    out
}
