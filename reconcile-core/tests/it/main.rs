//! Integration tests of reconcile-core, one binary for build time.

mod conformance;
mod diff_rules;
mod executor;
mod properties;
mod seeds;
