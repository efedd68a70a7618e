//! The store conformance suite, on PostgreSQL.

use super::Scratch;

async fn postgres() -> Scratch {
    Scratch::new("conf").await
}

reconcile_core::store_conformance_tests!(postgres);
