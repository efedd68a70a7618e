//! The example store over seed 000's Django table, on the local PostgreSQL server: the store
//! conformance suite (each test in a schema of its own, dropped after), and the incident run
//! through it.

#[path = "../seed000/store.rs"]
#[allow(dead_code)]
mod store;

#[path = "../seed000/incident.rs"]
mod incident;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reconcile_core::{
    AccountId, AuditRecord, ChangeBatch, LocalSnapshot, LockAttempt, LockHolder, RunId, Scope,
    Store, StoreError, Unlock,
};
use std::sync::atomic::{AtomicU32, Ordering};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn schema(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "django_{tag}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn url(schema: &str) -> String {
    format!("{SERVER}?schema={schema}&sslmode=disable")
}

fn drop_schema(schema: String) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let settings =
                    store_postgres::Settings::parse(&url(&schema), &store_postgres::ProcessEnv)
                        .unwrap();
                let c = store_postgres::session(&settings).await.unwrap();
                c.batch_execute(&format!(
                    "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                ))
                .await
                .unwrap();
            });
    })
    .join();
}

/// The store in a fresh schema, dropped with it.
struct Scratch(store::DjangoStore, String);

impl Drop for Scratch {
    fn drop(&mut self) {
        drop_schema(self.1.clone());
    }
}

#[async_trait]
impl Store for Scratch {
    fn name(&self) -> String {
        self.0.name()
    }
    async fn load(&self, scope: &Scope, as_of: DateTime<Utc>) -> Result<LocalSnapshot, StoreError> {
        self.0.load(scope, as_of).await
    }
    async fn apply(&self, batch: &ChangeBatch) -> Result<(), StoreError> {
        self.0.apply(batch).await
    }
    async fn audit_log(&self, run: Option<RunId>) -> Result<Vec<AuditRecord>, StoreError> {
        self.0.audit_log(run).await
    }
    async fn acquire_lock(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<LockAttempt, StoreError> {
        self.0.acquire_lock(account, holder).await
    }
    async fn release_lock(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<(), StoreError> {
        self.0.release_lock(account, holder).await
    }
    async fn unlock(&self, account: &AccountId) -> Result<Unlock, StoreError> {
        self.0.unlock(account).await
    }
}

async fn fresh() -> Scratch {
    let name = schema("conf");
    Scratch(
        store::DjangoStore::connect(&url(&name)).await.unwrap(),
        name,
    )
}

reconcile_core::store_conformance_tests!(fresh);

#[tokio::test]
async fn the_incident_ends_with_the_desks_table_and_tastytrade_agreeing() {
    let name = schema("incident");
    let out = incident::run(&url(&name), &name).await;
    drop_schema(name);
    let out = out.unwrap();
    assert_eq!(out.matched_before, 14);
    assert!(out.in_sync);
    assert_eq!(out.at_broker.len(), 20);
    assert_eq!(out.at_broker, out.in_table, "order for order");
}
