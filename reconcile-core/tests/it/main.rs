//! Integration tests of reconcile-core, one binary for build time.

mod conformance;
mod diff_rules;
mod executor;
mod fuzz_corpus;
mod holdings_rule;
mod oco;
mod plan_api;
mod properties;
mod seeds;
mod streaming;

/// Why the plan left `subject` out, if it did.
fn skipped<'p>(p: &'p reconcile_core::Plan, subject: &str) -> Option<&'p str> {
    p.skipped
        .iter()
        .find(|s| s.subject == subject)
        .map(|s| s.reason.as_str())
}
