//! A one-off fix script with the blocking facade: no `async`, no event loop to manage. It
//! replays the 2025-11-07 incident on the in-memory broker and store, previews the plan, applies
//! it and verifies. Swap the fakes for a real broker and store to use it for real.
//!
//! `cargo run -p reconcile-examples --example blocking_script`

use reconcile_core::blocking::BlockingReconciler;
use reconcile_core::testkit::{InMemoryBroker, InMemoryStore};
use reconcile_core::{ApplyOptions, BrokerSnapshot, LocalSnapshot, Policy};
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data");
    let local = LocalSnapshot::from_json(&std::fs::read_to_string(format!(
        "{dir}/2025-11-07-tastytrade-local.json"
    ))?)?;
    let broker = BrokerSnapshot::from_json(&std::fs::read_to_string(format!(
        "{dir}/2025-11-07-tastytrade-broker.json"
    ))?)?;
    let now = broker.as_of;

    let mut rec = BlockingReconciler::new(
        Arc::new(InMemoryBroker::from_snapshot(&broker)),
        Arc::new(InMemoryStore::from_snapshot(&local)),
    )?;
    rec.policy = Policy {
        clear_invalid: true,
        cancel_orphaned: true,
        create_missing: true,
        ..Policy::report_only()
    };

    let (report, plan) = rec.plan(now)?;
    println!("before: {:?}", report.summary);
    for a in &plan.actions {
        println!("  {}", a.key);
    }
    let applied = rec.apply(&plan, &ApplyOptions::new("script-1", now))?;
    for r in &applied.results {
        println!("  {:<40} {:<12} {}", r.key, r.outcome.as_str(), r.detail);
    }
    let after = applied.verify.ok_or("no verification")?;
    println!(
        "after: in sync = {}, matched = {}",
        after.in_sync, after.summary.matched
    );
    Ok(())
}
