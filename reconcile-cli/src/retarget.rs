//! `reconcile retarget`: new expected prices for every target of one key by a profit percent
//! (`reconcile_core::retarget` has the rule), written as one journaled change — the prices and
//! an audit record per target, in one batch — then the working orders replaced through the
//! plan's replace-drifted fix. A dry run (the default) shows old → new for every target and
//! touches nothing. A re-run after a crash finds the targets already retargeted in the audit log
//! and leaves their prices alone, then finishes the replacements: it converges, it never
//! compounds.

use crate::CliError;
use crate::config::Sides;
use chrono::Utc;
use reconcile_core::retarget::{self, Request};
use reconcile_core::{AuditRecord, ChangeBatch, LocalChange, Outcome, Policy, Reconciler};
use std::collections::BTreeSet;
use std::process::ExitCode;

/// What `retarget` was asked to do.
#[derive(Debug)]
pub struct Retarget {
    pub sides: Sides,
    pub request: Request,
    pub apply: bool,
    pub max_cancels: usize,
    pub max_placements: usize,
}

fn other(e: impl std::fmt::Display) -> CliError {
    CliError::Other(e.to_string())
}

pub fn run(r: &Retarget) -> Result<ExitCode, CliError> {
    let rt = crate::live::runtime()?;
    let store = crate::live::store(&r.sides.store, &rt)?;
    let now = Utc::now();
    let scope = &r.sides.options.scope;
    let mut snapshot = rt.block_on(store.load(scope, now)).map_err(other)?;
    if !scope.positions.is_empty() {
        snapshot
            .positions
            .retain(|p| scope.positions.contains(&p.id));
    }
    let pct = r.request.profit_pct;
    let done: BTreeSet<_> = rt
        .block_on(store.audit_log(None))
        .map_err(other)?
        .iter()
        .filter(|a| retarget::done_to(&a.detail, pct))
        .filter_map(|a| {
            let rest = a.action_key.strip_prefix("retarget:")?;
            let (p, k) = rest.split_once(':')?;
            Some((p.into(), k.into()))
        })
        .collect();
    let (changes, skipped) = retarget::compute(&snapshot, &r.request, &done);
    let mut out = format!(
        "retarget {} to {pct}%: {} to change, {} left alone\n",
        r.request.key,
        changes.len(),
        skipped.len()
    );
    out.push_str(&crate::output::retarget_table(&changes, &skipped));
    if !r.apply {
        out.push_str(
            "dry run: nothing was changed (--apply writes these prices and replaces the orders)\n",
        );
        crate::emit(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::emit(&out)?;
    if !crate::live::ask(
        &format!(
            "write {} new prices and replace their working orders?",
            changes.len()
        ),
        "replacements",
        changes.len(),
        r.sides.yes,
    )? {
        return Ok(ExitCode::from(1));
    }
    let options = crate::live::apply_options();
    if !changes.is_empty() {
        let batch = ChangeBatch {
            changes: changes
                .iter()
                .map(|c| LocalChange::SetTargetPrices {
                    position_id: c.position_id.clone(),
                    target_key: c.target_key.clone(),
                    limit_price: Some(c.new),
                    stop_price: snapshot
                        .positions
                        .iter()
                        .find(|p| p.id == c.position_id)
                        .and_then(|p| p.targets.iter().find(|t| t.key == c.target_key))
                        .and_then(|t| t.stop_price),
                })
                .collect(),
            audit: changes
                .iter()
                .map(|c| AuditRecord {
                    run_id: options.run_id.clone(),
                    at: now,
                    action_key: retarget::audit_key(&c.position_id, &c.target_key),
                    outcome: Outcome::Applied,
                    detail: retarget::audit_detail(c, pct),
                })
                .collect(),
        };
        rt.block_on(store.apply(&batch)).map_err(other)?;
    }
    // The orders follow the prices: replaced where they drifted, placed where none works.
    let opened = crate::live::open_broker(&r.sides.broker, r.sides.base_url.as_deref(), &rt)?;
    let policy = Policy {
        replace_drifted: true,
        create_missing: true,
        clear_invalid: true,
        max_cancels: r.max_cancels,
        max_placements: r.max_placements,
        ..Policy::report_only()
    };
    let mut rec = Reconciler::new(opened.broker.as_ref(), store.as_ref())
        .with_options(r.sides.options.clone())
        .with_policy(policy);
    rec.settle = r.sides.settle;
    let (report, plan) = rt.block_on(rec.plan(Utc::now())).map_err(other)?;
    let applied = rt.block_on(rec.apply(&plan, &options)).map_err(other)?;
    crate::live::show(&r.sides, &report, &plan, Some(&applied))
}
