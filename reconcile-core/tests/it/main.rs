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
