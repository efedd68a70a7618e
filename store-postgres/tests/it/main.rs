//! PostgresStore against the real server on 127.0.0.1:5432 (user `postgres`, trust auth). Each
//! test works in a schema of its own in the database `reconcile_test`, dropped when it ends.

mod conformance;
mod connecting;
mod processes;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reconcile_core::{
    AccountId, AuditRecord, ChangeBatch, LocalSnapshot, LockAttempt, LockHolder, RunId, Scope,
    Store, StoreError, Unlock,
};
use std::sync::atomic::{AtomicU32, Ordering};
use store_postgres::PostgresStore;

/// The server every test uses.
pub const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
/// The database the tests' schemas live in.
pub const DATABASE: &str = "reconcile_test";

/// A statement as the administrator, on its own connection.
pub async fn admin(db: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port=5432 user=postgres dbname={db}"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("PostgreSQL on 127.0.0.1:5432 ({db}): {e}"));
    tokio::spawn(conn);
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Makes the tests' database, once per process (another process may race us: both are fine).
async fn database() {
    static MADE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    MADE.get_or_init(|| async {
        let (client, conn) = tokio_postgres::connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
            tokio_postgres::NoTls,
        )
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
        tokio::spawn(conn);
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DATABASE])
            .await
            .unwrap()
            .is_some();
        if !exists {
            // A concurrent creator wins with "already exists": that is as good.
            let _ = client
                .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
                .await;
        }
    })
    .await;
}

/// A fresh schema name.
pub fn schema_name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "t_{tag}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store in a schema of its own, dropped with it.
pub struct Scratch {
    /// The store.
    pub store: PostgresStore,
    /// Its schema.
    pub schema: String,
}

impl Scratch {
    /// A store in a new schema.
    pub async fn new(tag: &str) -> Self {
        database().await;
        let schema = schema_name(tag);
        let store = PostgresStore::connect(&Self::url_of(&schema))
            .await
            .unwrap();
        Self { store, schema }
    }

    /// The URL of a schema of the tests' database.
    pub fn url_of(schema: &str) -> String {
        format!("{SERVER}/{DATABASE}?schema={schema}&sslmode=disable")
    }

    /// This store's URL.
    pub fn url(&self) -> String {
        Self::url_of(&self.schema)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        // Dropped from inside a runtime: the cleanup gets a thread and a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            // Bounded: a test that failed half-way must not hang the suite on a lock.
            rt.block_on(admin(
                DATABASE,
                &format!("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {schema} CASCADE"),
            ));
        })
        .join();
    }
}

#[async_trait]
impl Store for Scratch {
    fn name(&self) -> String {
        self.store.name()
    }
    async fn load(&self, scope: &Scope, as_of: DateTime<Utc>) -> Result<LocalSnapshot, StoreError> {
        self.store.load(scope, as_of).await
    }
    async fn apply(&self, batch: &ChangeBatch) -> Result<(), StoreError> {
        self.store.apply(batch).await
    }
    async fn audit_log(&self, run: Option<RunId>) -> Result<Vec<AuditRecord>, StoreError> {
        self.store.audit_log(run).await
    }
    async fn acquire_lock(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<LockAttempt, StoreError> {
        self.store.acquire_lock(account, holder).await
    }
    async fn release_lock(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<(), StoreError> {
        self.store.release_lock(account, holder).await
    }
    async fn unlock(&self, account: &AccountId) -> Result<Unlock, StoreError> {
        self.store.unlock(account).await
    }
}
