//! Run locks bound to their holder's life: a session-level advisory lock per account, taken and
//! held by a session of its own. The server drops it when that session ends — a release, the
//! process exiting, a kill, a cut connection — so a dead reconciler never blocks the next one.
//! The holder's record is a row of `lock_holders`, for whoever is refused.

use crate::connect::{backend, describe, session};
use crate::settings::Settings;
use chrono::{DateTime, Utc};
use reconcile_core::{AccountId, LockAttempt, LockHolder, RunId, RunLock, StoreError, Unlock};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio_postgres::Client;

/// A lock this process holds: the session it lives in, and its record.
struct Held {
    session: Client,
    lock: RunLock,
}

/// Run locks of one database and schema: for [`crate::PostgresStore`], and for any other store
/// over PostgreSQL (an example store over an application's own tables uses them). The holders'
/// records go to a `lock_holders` table in the settings' schema, which [`Locks::create_table`]
/// makes when absent.
pub struct Locks {
    settings: Arc<Settings>,
    s: Arc<str>,
    held: Mutex<HashMap<AccountId, Held>>,
}

/// The advisory lock's key: the schema and the account, hashed by the server to 64 bits.
const KEY: &str = "hashtextextended('reconcile-run:' || $1 || ':' || $2, 0)";

impl Locks {
    pub(crate) fn new(settings: Arc<Settings>, s: Arc<str>) -> Self {
        Self {
            settings,
            s,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Locks for the database and schema of `settings`.
    pub fn for_schema(settings: Settings) -> Self {
        let s: Arc<str> = format!("\"{}\"", settings.schema()).into();
        Self::new(Arc::new(settings), s)
    }

    /// Makes the holders' table in the schema when absent.
    ///
    /// # Errors
    /// [`StoreError::Backend`] naming the database.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let c = session(&self.settings).await?;
        let s = &self.s;
        c.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {s}.lock_holders (
                 account TEXT PRIMARY KEY, run_id TEXT NOT NULL, host TEXT NOT NULL,
                 pid BIGINT NOT NULL, since TIMESTAMPTZ NOT NULL)"
        ))
        .await
        .map_err(self.fail("making the lock holders' table"))
    }

    fn fail(
        &self,
        what: &'static str,
    ) -> impl Fn(tokio_postgres::Error) -> StoreError + Send + Sync + '_ {
        move |e| backend(&self.settings, what, &describe(&e))
    }

    /// The holder's record, if there is one.
    async fn record(&self, c: &Client, account: &AccountId) -> Result<Option<RunLock>, StoreError> {
        let s = &self.s;
        let row = c
            .query_opt(
                &format!(
                    "SELECT run_id, host, pid, since FROM {s}.lock_holders WHERE account = $1"
                ),
                &[&account.as_str()],
            )
            .await
            .map_err(self.fail("reading the lock holder"))?;
        Ok(row.map(|r| RunLock {
            account: account.clone(),
            holder: LockHolder {
                run_id: RunId::new(r.get::<_, String>(0)),
                host: r.get(1),
                pid: u32::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                since: r.get::<_, DateTime<Utc>>(3),
            },
        }))
    }

    async fn try_lock(&self, c: &Client, account: &AccountId) -> Result<bool, StoreError> {
        let row = c
            .query_one(
                &format!("SELECT pg_try_advisory_lock({KEY})"),
                &[&self.settings.schema(), &account.as_str()],
            )
            .await
            .map_err(self.fail("taking the run lock"))?;
        Ok(row.get(0))
    }

    /// Takes `account`'s lock for `holder` (or confirms it for the holder's run), or names the
    /// live holder that has it.
    ///
    /// # Errors
    /// [`StoreError::Backend`] naming the database.
    pub async fn acquire(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<LockAttempt, StoreError> {
        let mut held = self.held.lock().await;
        if let Some(h) = held.get(account) {
            return Ok(if h.lock.holder.run_id == holder.run_id {
                LockAttempt::Acquired(h.lock.clone())
            } else {
                LockAttempt::Held(h.lock.clone())
            });
        }
        let c = session(&self.settings).await?;
        if self.try_lock(&c, account).await? {
            let s = &self.s;
            c.execute(
                &format!(
                    "INSERT INTO {s}.lock_holders (account, run_id, host, pid, since) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (account) DO UPDATE SET run_id = $2, host = $3, pid = $4, since = $5"
                ),
                &[&account.as_str(), &holder.run_id.as_str(), &holder.host, &i64::from(holder.pid), &holder.since],
            )
            .await
            .map_err(self.fail("recording the lock holder"))?;
            let lock = RunLock {
                account: account.clone(),
                holder: holder.clone(),
            };
            held.insert(
                account.clone(),
                Held {
                    session: c,
                    lock: lock.clone(),
                },
            );
            return Ok(LockAttempt::Acquired(lock));
        }
        // Held by a live session: the record names it (it may be a moment from being written).
        for _ in 0..20 {
            if let Some(l) = self.record(&c, account).await? {
                return Ok(LockAttempt::Held(l));
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        Ok(LockAttempt::Held(RunLock {
            account: account.clone(),
            holder: LockHolder {
                run_id: RunId::new("unknown (it has not written its record)"),
                host: "unknown".to_owned(),
                pid: 0,
                since: DateTime::UNIX_EPOCH,
            },
        }))
    }

    /// Releases `account`'s lock if `holder`'s run holds it.
    ///
    /// # Errors
    /// [`StoreError::Backend`] naming the database.
    pub async fn release(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<(), StoreError> {
        let mut held = self.held.lock().await;
        if held
            .get(account)
            .is_none_or(|h| h.lock.holder.run_id != holder.run_id)
        {
            return Ok(());
        }
        if let Some(h) = held.remove(account) {
            let s = &self.s;
            // The record goes first, while the lock still guards it; then the lock, with the
            // session that held it.
            h.session
                .execute(
                    &format!("DELETE FROM {s}.lock_holders WHERE account = $1 AND run_id = $2"),
                    &[&account.as_str(), &holder.run_id.as_str()],
                )
                .await
                .map_err(self.fail("clearing the lock holder"))?;
            h.session
                .execute(
                    &format!("SELECT pg_advisory_unlock({KEY})"),
                    &[&self.settings.schema(), &account.as_str()],
                )
                .await
                .map_err(self.fail("releasing the run lock"))?;
        }
        Ok(())
    }

    /// Clears a dead holder's record; refuses while the holder is alive.
    ///
    /// # Errors
    /// [`StoreError::Backend`] naming the database.
    pub async fn unlock(&self, account: &AccountId) -> Result<Unlock, StoreError> {
        if let Some(h) = self.held.lock().await.get(account) {
            return Ok(Unlock::HeldByLiveHolder(h.lock.clone()));
        }
        let c = session(&self.settings).await?;
        if !self.try_lock(&c, account).await? {
            return Ok(self
                .record(&c, account)
                .await?
                .map_or(Unlock::NotLocked, Unlock::HeldByLiveHolder));
        }
        let record = self.record(&c, account).await?;
        if record.is_some() {
            let s = &self.s;
            c.execute(
                &format!("DELETE FROM {s}.lock_holders WHERE account = $1"),
                &[&account.as_str()],
            )
            .await
            .map_err(self.fail("clearing the lock holder"))?;
        }
        // The session ends here, and the lock with it.
        drop(c);
        Ok(record.map_or(Unlock::NotLocked, Unlock::Cleared))
    }
}
