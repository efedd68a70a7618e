//! The store conformance suite on the in-memory store.

async fn fresh() -> reconcile_core::testkit::InMemoryStore {
    reconcile_core::testkit::InMemoryStore::new()
}

reconcile_core::store_conformance_tests!(fresh);
