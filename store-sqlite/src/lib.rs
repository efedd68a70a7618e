//! `store-sqlite`: the embedded default [`Store`] for reconcile, on a real SQLite file.
//!
//! Seed 003 is why this crate is careful: SQLite answered "database is locked" while orders were
//! being sent, and seven executed orders went unrecorded. Here every connection runs in WAL mode
//! (readers never block the writer), waits on a busy timeout, writes in `BEGIN IMMEDIATE`
//! transactions (a writer takes the lock up front instead of failing half-way), retries with
//! backoff and jitter when the file stays busy, and keeps `synchronous=FULL` so a recorded order
//! survives a power cut.
//!
//! Run locks are operating-system file locks on a file per account beside the database
//! (`reconcile.db.lock-5WT00001`), held while the run lives: a killed run frees its accounts at
//! once, and a refused run reads from the file who holds the lock, and since when.
//!
//! ```no_run
//! # async fn demo() -> Result<(), reconcile_core::StoreError> {
//! use reconcile_core::{Scope, Store};
//! let store = store_sqlite::SqliteStore::open("reconcile.db")?;
//! let now = "2025-11-07T15:00:00Z".parse().unwrap();
//! let snapshot = store.load(&Scope::all(), now).await?;
//! # Ok(()) }
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod codec;
mod locks;
mod schema;

pub use locks::RunLocks;

pub use schema::SCHEMA_VERSION;

use async_trait::async_trait;
use backon::{BlockingRetryable, ExponentialBuilder};
use chrono::{DateTime, Utc};
use codec::*;
use reconcile_core::{
    AccountId, AuditRecord, ChangeBatch, Intent, LocalChange, LocalSnapshot, LockAttempt,
    LockHolder, Position, PositionLeg, ProfitTarget, RunId, Scope, Store, StoreError, Symbol,
    TargetLeg, Unlock,
};
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a blocked statement looks at the lock again, and how many looks make it give up
/// (about five seconds, which outlasts any single write of ours; the retry loop adds more on top).
///
/// SQLite's own busy timeout sleeps up to 100 ms between looks. Against a writer in a tight loop
/// (seed 003's second process) that loses nearly every race for the lock, because the other side
/// takes it again within microseconds of releasing it: seven placements took seconds. Looking
/// every few hundred microseconds, with jitter, wins the lock within a few milliseconds.
const BUSY_POLL_MICROS: u64 = 250;
const BUSY_MAX_LOOKS: i32 = 20_000;

fn busy_handler(looks: i32) -> bool {
    if looks >= BUSY_MAX_LOOKS {
        return false;
    }
    // Cheap deterministic jitter so two blocked connections do not look in lockstep.
    let jitter = (looks as u64).wrapping_mul(7919) % BUSY_POLL_MICROS;
    std::thread::sleep(Duration::from_micros(BUSY_POLL_MICROS / 2 + jitter));
    true
}

/// A [`Store`] on one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    retries: usize,
    locks: Arc<locks::RunLocks>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn backend(path: &Path, what: &str, e: &rusqlite::Error) -> StoreError {
    if is_busy(e) {
        return StoreError::Busy {
            store: "sqlite".to_owned(),
            what: format!("{}: {what}: {e}", path.display()),
        };
    }
    StoreError::Backend {
        store: "sqlite".to_owned(),
        message: format!("{}: {what}: {e}", path.display()),
    }
}

fn read_only(path: &Path) -> StoreError {
    StoreError::Backend {
        store: "sqlite".to_owned(),
        message: format!(
            "{}: read-only: the database or its folder cannot be written",
            path.display()
        ),
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// What went wrong inside a transaction: SQLite, or a rule of ours (a missing row).
enum TxError {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for TxError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

impl SqliteStore {
    /// Opens (creating if absent) the database at `path` and brings its schema up to date.
    ///
    /// # Errors
    /// `Backend` if the file cannot be opened or is not a SQLite database, or if its schema is
    /// newer than this code; in those cases the file is left untouched.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        let fail = |what: &str, e: rusqlite::Error| backend(&path, what, &e);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| fail("cannot open", e))?;
        conn.busy_handler(Some(busy_handler))
            .map_err(|e| fail("setting the busy handler", e))?;
        // Read before writing anything: a foreign or newer file must stay as it is.
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| match e.sqlite_error_code() {
                Some(ErrorCode::NotADatabase) => StoreError::Backend {
                    store: "sqlite".to_owned(),
                    message: format!("{}: not a SQLite database", path.display()),
                },
                Some(ErrorCode::ReadOnly) => read_only(&path),
                _ => fail("reading the schema version", e),
            })?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Backend {
                store: "sqlite".to_owned(),
                message: format!(
                    "{}: schema version {version} is newer than this program supports ({SCHEMA_VERSION}); upgrade reconcile",
                    path.display()
                ),
            });
        }
        // SQLite quietly falls back to read-only when it cannot write; a store must write.
        if conn
            .is_readonly(rusqlite::MAIN_DB)
            .map_err(|e| fail("checking write access", e))?
        {
            return Err(read_only(&path));
        }
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(|e| fail("enabling WAL", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend {
                store: "sqlite".to_owned(),
                message: format!(
                    "{}: WAL mode refused (journal mode is {mode})",
                    path.display()
                ),
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| fail("setting synchronous", e))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| fail("enabling foreign keys", e))?;
        let store = Self {
            conn: Arc::new(Mutex::new(conn)),
            locks: Arc::new(locks::RunLocks::beside(&path)),
            path,
            retries: 10,
        };
        store.migrate()?;
        Ok(store)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&self) -> Result<(), StoreError> {
        self.write("migrating the schema", |tx| {
            let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            for (i, sql) in schema::MIGRATIONS.iter().enumerate() {
                let to = i as i64 + 1;
                if to > version {
                    tx.execute_batch(sql)?;
                    tx.pragma_update(None, "user_version", to)?;
                }
            }
            Ok(())
        })
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction, retrying the whole transaction with backoff
    /// and jitter while the database is busy. `what` names the write in the final error.
    fn write<T>(
        &self,
        what: &str,
        f: impl Fn(&rusqlite::Transaction<'_>) -> Result<T, TxError>,
    ) -> Result<T, StoreError> {
        let attempt = || -> Result<T, TxError> {
            let mut conn = self
                .conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        };
        let policy = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(5))
            .with_max_delay(Duration::from_millis(500))
            .with_max_times(self.retries)
            .with_jitter();
        let result = attempt
            .retry(policy)
            .sleep(std::thread::sleep)
            .when(|e| matches!(e, TxError::Sql(s) if is_busy(s)))
            .notify(|e, wait| {
                if let TxError::Sql(s) = e {
                    tracing::debug!(path = %self.path.display(), error = %s, ?wait, "database busy; retrying");
                }
            })
            .call();
        result.map_err(|e| match e {
            TxError::Store(s) => s,
            TxError::Sql(s) if is_busy(&s) => StoreError::Busy {
                store: "sqlite".to_owned(),
                what: format!(
                    "{}: {what}: the database stayed locked by another writer through {} attempts",
                    self.path.display(),
                    self.retries + 1
                ),
            },
            TxError::Sql(s) => backend(&self.path, what, &s),
        })
    }

    /// Runs blocking SQLite work off the async executor's threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .map_err(|e| StoreError::Backend {
                store: "sqlite".to_owned(),
                message: format!("{}: worker stopped: {e}", self.path.display()),
            })?
    }

    /// Loads a scoped snapshot in five queries inside one read transaction.
    pub fn load_blocking(
        &self,
        scope: &Scope,
        as_of: DateTime<Utc>,
    ) -> Result<LocalSnapshot, StoreError> {
        let accounts = serde_json::Value::from(
            scope
                .accounts
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>(),
        )
        .to_string();
        let underlyings = serde_json::Value::from(
            scope
                .underlyings
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .to_string();
        let states =
            serde_json::Value::from(scope.states.iter().map(|s| s.as_str()).collect::<Vec<_>>())
                .to_string();
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fail = |what: &str, e: rusqlite::Error| backend(&self.path, what, &e);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(|e| fail("starting a read", e))?;
        const SCOPE: &str = "(?1 = '[]' OR p.account IN (SELECT value FROM json_each(?1)))
             AND (?2 = '[]' OR p.underlying IN (SELECT value FROM json_each(?2)))
             AND (?3 = '[]' OR p.state IN (SELECT value FROM json_each(?3)))";
        let mut snapshot = LocalSnapshot::new(as_of);
        let mut index: HashMap<String, usize> = HashMap::new();
        {
            let mut q = tx
                .prepare_cached(&format!(
                    "SELECT p.id, p.account, p.underlying, p.state, p.opened_at, p.entry_price,
                            p.entry_order_id, p.closing_order_id, p.closing_filled_at, p.closing_price
                     FROM positions p WHERE {SCOPE} ORDER BY p.id"
                ))
                .map_err(|e| fail("reading positions", e))?;
            let mut rows = q
                .query(params![accounts, underlyings, states])
                .map_err(|e| fail("reading positions", e))?;
            while let Some(r) = rows.next().map_err(|e| fail("reading positions", e))? {
                let row = |e| fail("reading positions", e);
                let id: String = r.get(0).map_err(row)?;
                let at = |col: &str| format!("positions[id={id}].{col}");
                let p = Position {
                    id: id.as_str().into(),
                    account: AccountId::new(r.get::<_, String>(1).map_err(row)?),
                    underlying: r.get(2).map_err(row)?,
                    state: parse_state(&r.get::<_, String>(3).map_err(row)?, || at("state"))?,
                    opened_at: parse_opt_time(r.get(4).map_err(row)?, || at("opened_at"))?,
                    entry_price: parse_opt_dec(r.get(5).map_err(row)?, || at("entry_price"))?,
                    legs: Vec::new(),
                    targets: Vec::new(),
                    entry_order_id: r.get::<_, Option<String>>(6).map_err(row)?.map(Into::into),
                    closing: match r.get::<_, Option<String>>(7).map_err(row)? {
                        None => None,
                        Some(order_id) => Some(reconcile_core::Fill {
                            order_id: order_id.into(),
                            filled_at: parse_opt_time(r.get(8).map_err(row)?, || {
                                at("closing_filled_at")
                            })?,
                            price: parse_opt_dec(r.get(9).map_err(row)?, || at("closing_price"))?,
                        }),
                    },
                };
                index.insert(id, snapshot.positions.len());
                snapshot.positions.push(p);
            }
        }
        {
            let mut q = tx
                .prepare_cached(&format!(
                    "SELECT l.position_id, l.symbol, l.quantity FROM position_legs l
                     JOIN positions p ON p.id = l.position_id WHERE {SCOPE}
                     ORDER BY l.position_id, l.seq"
                ))
                .map_err(|e| fail("reading legs", e))?;
            let mut rows = q
                .query(params![accounts, underlyings, states])
                .map_err(|e| fail("reading legs", e))?;
            while let Some(r) = rows.next().map_err(|e| fail("reading legs", e))? {
                let row = |e| fail("reading legs", e);
                let pid: String = r.get(0).map_err(row)?;
                let q: String = r.get(2).map_err(row)?;
                let leg = PositionLeg {
                    symbol: Symbol::new(&r.get::<_, String>(1).map_err(row)?),
                    quantity: parse_dec(&q, || {
                        format!("position_legs[position_id={pid}].quantity")
                    })?,
                };
                if let Some(&i) = index.get(&pid) {
                    snapshot.positions[i].legs.push(leg);
                }
            }
        }
        let mut target_index: HashMap<(String, String), (usize, usize)> = HashMap::new();
        {
            let mut q = tx
                .prepare_cached(&format!(
                    "SELECT t.position_id, t.key, t.status, t.order_id, t.client_order_id, t.placed_at,
                            t.limit_price, t.stop_price, t.quantity, t.last_error, t.last_attempt
                     FROM targets t JOIN positions p ON p.id = t.position_id WHERE {SCOPE}
                     ORDER BY t.position_id, t.key"
                ))
                .map_err(|e| fail("reading targets", e))?;
            let mut rows = q
                .query(params![accounts, underlyings, states])
                .map_err(|e| fail("reading targets", e))?;
            while let Some(r) = rows.next().map_err(|e| fail("reading targets", e))? {
                let row = |e| fail("reading targets", e);
                let pid: String = r.get(0).map_err(row)?;
                let key: String = r.get(1).map_err(row)?;
                let at = |col: &str| format!("targets[position_id={pid}, key={key}].{col}");
                let t = ProfitTarget {
                    key: key.as_str().into(),
                    status: parse_status(&r.get::<_, String>(2).map_err(row)?, || at("status"))?,
                    order_id: r.get::<_, Option<String>>(3).map_err(row)?.map(Into::into),
                    client_order_id: r.get::<_, Option<String>>(4).map_err(row)?.map(Into::into),
                    placed_at: parse_opt_time(r.get(5).map_err(row)?, || at("placed_at"))?,
                    limit_price: parse_opt_dec(r.get(6).map_err(row)?, || at("limit_price"))?,
                    stop_price: parse_opt_dec(r.get(7).map_err(row)?, || at("stop_price"))?,
                    quantity: parse_opt_dec(r.get(8).map_err(row)?, || at("quantity"))?,
                    legs: Vec::new(),
                    last_error: r.get(9).map_err(row)?,
                    last_attempt: parse_opt_time(r.get(10).map_err(row)?, || at("last_attempt"))?,
                };
                if let Some(&i) = index.get(&pid) {
                    target_index.insert((pid, key), (i, snapshot.positions[i].targets.len()));
                    snapshot.positions[i].targets.push(t);
                }
            }
        }
        {
            let mut q = tx
                .prepare_cached(&format!(
                    "SELECT l.position_id, l.key, l.symbol, l.side, l.quantity FROM target_legs l
                     JOIN positions p ON p.id = l.position_id WHERE {SCOPE}
                     ORDER BY l.position_id, l.key, l.seq"
                ))
                .map_err(|e| fail("reading target legs", e))?;
            let mut rows = q
                .query(params![accounts, underlyings, states])
                .map_err(|e| fail("reading target legs", e))?;
            while let Some(r) = rows.next().map_err(|e| fail("reading target legs", e))? {
                let row = |e| fail("reading target legs", e);
                let pid: String = r.get(0).map_err(row)?;
                let key: String = r.get(1).map_err(row)?;
                let at = |col: &str| format!("target_legs[position_id={pid}, key={key}].{col}");
                let leg = TargetLeg {
                    symbol: Symbol::new(&r.get::<_, String>(2).map_err(row)?),
                    side: parse_side(&r.get::<_, String>(3).map_err(row)?, || at("side"))?,
                    quantity: parse_dec(&r.get::<_, String>(4).map_err(row)?, || at("quantity"))?,
                };
                if let Some(&(i, j)) = target_index.get(&(pid, key)) {
                    snapshot.positions[i].targets[j].legs.push(leg);
                }
            }
        }
        {
            // Intents are few: read them all with their position's scope columns, and let
            // `Scope::includes_intent` decide, as every store does.
            let mut q = tx
                .prepare_cached(
                    "SELECT i.client_order_id, i.position_id, i.target_key, i.created_at,
                            p.account, p.underlying, p.state, i.oco_with
                     FROM intents i LEFT JOIN positions p ON p.id = i.position_id
                     ORDER BY i.client_order_id",
                )
                .map_err(|e| fail("reading intents", e))?;
            let mut rows = q.query([]).map_err(|e| fail("reading intents", e))?;
            while let Some(r) = rows.next().map_err(|e| fail("reading intents", e))? {
                let row = |e| fail("reading intents", e);
                let cid: String = r.get(0).map_err(row)?;
                let created: String = r.get(3).map_err(row)?;
                let account: Option<String> = r.get(4).map_err(row)?;
                let underlying: Option<String> = r.get(5).map_err(row)?;
                let state: Option<String> = r.get(6).map_err(row)?;
                let position = match (account, underlying, state) {
                    (Some(a), Some(u), Some(st)) => {
                        let pid: String = r.get(1).map_err(row)?;
                        let st = parse_state(&st, || format!("positions[id={pid}].state"))?;
                        Some((AccountId::new(a), u, st))
                    }
                    _ => None,
                };
                if !scope.includes_intent(position.as_ref().map(|(a, u, st)| (a, u.as_str(), *st)))
                {
                    continue;
                }
                snapshot.intents.push(Intent {
                    position_id: r.get::<_, String>(1).map_err(row)?.into(),
                    target_key: r.get::<_, String>(2).map_err(row)?.into(),
                    created_at: parse_time(&created, || {
                        format!("intents[client_order_id={cid}].created_at")
                    })?,
                    client_order_id: cid.into(),
                    oco_with: r.get::<_, Option<String>>(7).map_err(row)?.map(Into::into),
                });
            }
        }
        tx.finish().map_err(|e| fail("ending a read", e))?;
        Ok(snapshot)
    }

    /// [`Store::acquire_lock`] without a runtime.
    ///
    /// # Errors
    /// `Backend` if the lock file cannot be opened, locked or written.
    pub fn acquire_lock_blocking(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<LockAttempt, StoreError> {
        self.locks.acquire(account, holder)
    }

    /// Applies a batch in one transaction: all of it or none.
    pub fn apply_blocking(&self, batch: &ChangeBatch) -> Result<(), StoreError> {
        let what = format!("writing a batch of {} changes", batch.changes.len());
        self.write(&what, |tx| {
            for c in &batch.changes {
                apply_change(tx, c)?;
            }
            for a in &batch.audit {
                tx.prepare_cached("INSERT OR IGNORE INTO runs (id, started_at) VALUES (?1, ?2)")?
                    .execute(params![a.run_id.as_str(), time(a.at)])?;
                tx.prepare_cached(
                    "INSERT INTO audit (run_id, at, action_key, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![a.run_id.as_str(), time(a.at), a.action_key, a.outcome.as_str(), a.detail])?;
            }
            Ok(())
        })
    }
}

fn missing(what: String) -> TxError {
    TxError::Store(StoreError::NotFound {
        store: "sqlite".to_owned(),
        what,
    })
}

fn apply_change(tx: &rusqlite::Transaction<'_>, change: &LocalChange) -> Result<(), TxError> {
    let target_missing = |p: &reconcile_core::PositionId, k: &reconcile_core::TargetKey| {
        missing(format!("target {p}/{k}"))
    };
    match change {
        LocalChange::LinkTarget {
            position_id,
            target_key,
            order_id,
            client_order_id,
            placed_at,
        } => {
            let n = tx
                .prepare_cached(
                    "UPDATE targets SET status = 'active', order_id = ?3,
                        client_order_id = COALESCE(?4, client_order_id),
                        placed_at = COALESCE(?5, placed_at), last_attempt = COALESCE(?5, last_attempt),
                        last_error = NULL
                     WHERE position_id = ?1 AND key = ?2",
                )?
                .execute(params![
                    position_id.as_str(),
                    target_key.as_str(),
                    order_id.as_str(),
                    client_order_id.as_ref().map(|c| c.as_str()),
                    placed_at.map(time)
                ])?;
            if n == 0 {
                return Err(target_missing(position_id, target_key));
            }
        }
        LocalChange::ClearTarget {
            position_id,
            target_key,
            note,
        } => {
            let n = tx
                .prepare_cached(
                    "UPDATE targets SET status = 'unplaced', order_id = NULL, client_order_id = NULL,
                        placed_at = NULL, last_error = ?3
                     WHERE position_id = ?1 AND key = ?2",
                )?
                .execute(params![position_id.as_str(), target_key.as_str(), note])?;
            if n == 0 {
                return Err(target_missing(position_id, target_key));
            }
        }
        LocalChange::SetTargetStatus {
            position_id,
            target_key,
            status,
        } => {
            let n = tx
                .prepare_cached(
                    "UPDATE targets SET status = ?3 WHERE position_id = ?1 AND key = ?2",
                )?
                .execute(params![
                    position_id.as_str(),
                    target_key.as_str(),
                    status.as_str()
                ])?;
            if n == 0 {
                return Err(target_missing(position_id, target_key));
            }
        }
        LocalChange::RecordTargetError {
            position_id,
            target_key,
            error,
            at,
        } => {
            let n = tx
                .prepare_cached("UPDATE targets SET last_error = ?3, last_attempt = ?4 WHERE position_id = ?1 AND key = ?2")?
                .execute(params![position_id.as_str(), target_key.as_str(), error, time(*at)])?;
            if n == 0 {
                return Err(target_missing(position_id, target_key));
            }
        }
        LocalChange::SetTargetPrices {
            position_id,
            target_key,
            limit_price,
            stop_price,
        } => {
            let n = tx
                .prepare_cached("UPDATE targets SET limit_price = ?3, stop_price = ?4 WHERE position_id = ?1 AND key = ?2")?
                .execute(params![
                    position_id.as_str(),
                    target_key.as_str(),
                    limit_price.map(|d| d.to_string()),
                    stop_price.map(|d| d.to_string())
                ])?;
            if n == 0 {
                return Err(target_missing(position_id, target_key));
            }
        }
        LocalChange::SetPositionState {
            position_id,
            state: s,
        } => {
            let n = tx
                .prepare_cached("UPDATE positions SET state = ?2 WHERE id = ?1")?
                .execute(params![position_id.as_str(), state(*s)])?;
            if n == 0 {
                return Err(missing(format!("position {position_id}")));
            }
        }
        LocalChange::RecordClosing {
            position_id,
            closing: c,
        } => {
            let n = tx
                .prepare_cached(
                    "UPDATE positions SET closing_order_id = ?2, closing_filled_at = ?3, closing_price = ?4
                     WHERE id = ?1",
                )?
                .execute(params![
                    position_id.as_str(),
                    c.order_id.as_str(),
                    c.filled_at.map(time),
                    c.price.map(|d| d.to_string())
                ])?;
            if n == 0 {
                return Err(missing(format!("position {position_id}")));
            }
        }
        LocalChange::InsertPosition { position: p } => insert_position(tx, p)?,
        LocalChange::PutIntent { intent: i } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO intents (client_order_id, position_id, target_key, created_at, oco_with) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![i.client_order_id.as_str(), i.position_id.as_str(), i.target_key.as_str(), time(i.created_at), i.oco_with.as_ref().map(|k| k.as_str())])?;
        }
        LocalChange::DropIntent { client_order_id } => {
            tx.prepare_cached("DELETE FROM intents WHERE client_order_id = ?1")?
                .execute(params![client_order_id.as_str()])?;
        }
    }
    Ok(())
}

fn insert_position(tx: &rusqlite::Transaction<'_>, p: &Position) -> Result<(), TxError> {
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO positions (id, account, underlying, state, opened_at, entry_price,
                 entry_order_id, closing_order_id, closing_filled_at, closing_price)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            p.id.as_str(),
            p.account.as_str(),
            p.underlying,
            state(p.state),
            p.opened_at.map(time),
            p.entry_price.map(|d| d.to_string()),
            p.entry_order_id.as_ref().map(|o| o.as_str()),
            p.closing.as_ref().map(|c| c.order_id.as_str()),
            p.closing.as_ref().and_then(|c| c.filled_at).map(time),
            p.closing.as_ref().and_then(|c| c.price).map(|d| d.to_string())
        ])?;
    if inserted == 0 {
        return Ok(());
    }
    for (seq, l) in p.legs.iter().enumerate() {
        tx.prepare_cached("INSERT INTO position_legs (position_id, seq, symbol, quantity) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![p.id.as_str(), seq as i64, l.symbol.as_str(), l.quantity.to_string()])?;
    }
    for t in &p.targets {
        tx.prepare_cached(
            "INSERT INTO targets (position_id, key, status, order_id, client_order_id, placed_at,
                                  limit_price, stop_price, quantity, last_error, last_attempt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            p.id.as_str(),
            t.key.as_str(),
            t.status.as_str(),
            t.order_id.as_ref().map(|o| o.as_str()),
            t.client_order_id.as_ref().map(|c| c.as_str()),
            t.placed_at.map(time),
            t.limit_price.map(|d| d.to_string()),
            t.stop_price.map(|d| d.to_string()),
            t.quantity.map(|d| d.to_string()),
            t.last_error,
            t.last_attempt.map(time)
        ])?;
        for (seq, l) in t.legs.iter().enumerate() {
            tx.prepare_cached(
                "INSERT INTO target_legs (position_id, key, seq, symbol, side, quantity) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![p.id.as_str(), t.key.as_str(), seq as i64, l.symbol.as_str(), l.side.as_str(), l.quantity.to_string()])?;
        }
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn name(&self) -> String {
        "sqlite".to_owned()
    }

    async fn load(&self, scope: &Scope, as_of: DateTime<Utc>) -> Result<LocalSnapshot, StoreError> {
        let scope = scope.clone();
        self.blocking(move |s| s.load_blocking(&scope, as_of)).await
    }

    async fn apply(&self, batch: &ChangeBatch) -> Result<(), StoreError> {
        let batch = batch.clone();
        self.blocking(move |s| s.apply_blocking(&batch)).await
    }

    async fn audit_log(&self, run: Option<RunId>) -> Result<Vec<AuditRecord>, StoreError> {
        self.blocking(move |s| {
            let conn = s
                .conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let fail = |e: rusqlite::Error| backend(&s.path, "reading the audit log", &e);
            let mut q = conn
                .prepare_cached(
                    "SELECT run_id, at, action_key, outcome, detail FROM audit
                     WHERE ?1 IS NULL OR run_id = ?1 ORDER BY seq",
                )
                .map_err(fail)?;
            let mut rows = q
                .query(params![run.as_ref().map(|r| r.as_str())])
                .map_err(fail)?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(fail)? {
                let at: String = r.get(1).map_err(fail)?;
                let outcome: String = r.get(3).map_err(fail)?;
                out.push(AuditRecord {
                    run_id: RunId::new(r.get::<_, String>(0).map_err(fail)?),
                    at: parse_time(&at, || "audit.at".to_owned())?,
                    action_key: r.get(2).map_err(fail)?,
                    outcome: parse_outcome(&outcome, || "audit.outcome".to_owned())?,
                    detail: r.get(4).map_err(fail)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn acquire_lock(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<LockAttempt, StoreError> {
        let (account, holder) = (account.clone(), holder.clone());
        self.blocking(move |s| s.locks.acquire(&account, &holder))
            .await
    }

    async fn release_lock(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<(), StoreError> {
        let (account, holder) = (account.clone(), holder.clone());
        self.blocking(move |s| s.locks.release(&account, &holder))
            .await
    }

    async fn unlock(&self, account: &AccountId) -> Result<Unlock, StoreError> {
        let account = account.clone();
        self.blocking(move |s| s.locks.unlock(&account)).await
    }
}
