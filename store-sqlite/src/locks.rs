//! Run locks that die with their holder: an exclusive `flock` on a file per account beside the
//! database, held open for as long as the run holds the lock. The kernel drops the lock when
//! the process exits, however it exits, so a killed run never blocks the next one. The file
//! holds the holder's record (run, host, pid, since) for whoever is refused.

use reconcile_core::{AccountId, LockAttempt, LockHolder, RunId, RunLock, StoreError, Unlock};
use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Everything but RFC 3986's unreserved characters is escaped in an account's lock file name.
const FILE_NAME: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

/// A lock this process holds: the open file (the lock lives with it) and its record.
struct Held {
    file: File,
    lock: RunLock,
}

/// The run locks of one database: also for any other store over an SQLite file (the examples'
/// store over an application's own tables uses them).
pub struct RunLocks {
    db: PathBuf,
    held: Mutex<HashMap<AccountId, Held>>,
}

fn failed(path: &Path, what: &str, e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Backend {
        store: "sqlite".to_owned(),
        message: format!("{}: {what}: {e}", path.display()),
    }
}

impl RunLocks {
    /// The locks of the database at `db`.
    pub fn beside(db: &Path) -> Self {
        Self {
            db: db.to_owned(),
            held: Mutex::new(HashMap::new()),
        }
    }

    fn path(&self, account: &AccountId) -> PathBuf {
        let name = self
            .db
            .file_name()
            .map_or_else(|| "reconcile".into(), |n| n.to_string_lossy().into_owned());
        let account = percent_encoding::utf8_percent_encode(account.as_str(), FILE_NAME);
        self.db.with_file_name(format!("{name}.lock-{account}"))
    }

    fn open(path: &Path) -> Result<File, StoreError> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| failed(path, "opening the run lock", &e))
    }

    /// The record in a lock file, waiting briefly for a holder that has just taken the lock and
    /// is writing it.
    fn record(
        file: &mut File,
        path: &Path,
        account: &AccountId,
    ) -> Result<Option<RunLock>, StoreError> {
        for attempt in 0..20 {
            let mut text = String::new();
            file.seek(SeekFrom::Start(0))
                .and_then(|_| file.read_to_string(&mut text))
                .map_err(|e| failed(path, "reading the run lock", &e))?;
            if text.trim().is_empty() {
                return Ok(None);
            }
            if let Ok(lock) = serde_json::from_str::<RunLock>(&text) {
                return Ok(Some(lock));
            }
            if attempt < 19 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // Not a record of ours: say so rather than invent a holder.
        Ok(Some(RunLock {
            account: account.clone(),
            holder: LockHolder {
                run_id: RunId::new(format!("unknown (unreadable record in {})", path.display())),
                host: "unknown".to_owned(),
                pid: 0,
                since: chrono::DateTime::UNIX_EPOCH,
            },
        }))
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, Held>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes `account`'s lock for `holder` (or confirms it for the holder's run), or names
    /// the live holder that has it.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the lock file cannot be opened, locked or written.
    pub fn acquire(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<LockAttempt, StoreError> {
        let mut held = self.held();
        if let Some(h) = held.get(account) {
            return Ok(if h.lock.holder.run_id == holder.run_id {
                LockAttempt::Acquired(h.lock.clone())
            } else {
                LockAttempt::Held(h.lock.clone())
            });
        }
        let path = self.path(account);
        let mut file = Self::open(&path)?;
        match file.try_lock() {
            Ok(()) => {
                let lock = RunLock {
                    account: account.clone(),
                    holder: holder.clone(),
                };
                let text = serde_json::to_string(&lock)
                    .map_err(|e| failed(&path, "writing the run lock", &e))?;
                file.set_len(0)
                    .and_then(|()| file.seek(SeekFrom::Start(0)))
                    .and_then(|_| file.write_all(text.as_bytes()))
                    .and_then(|()| file.sync_data())
                    .map_err(|e| failed(&path, "writing the run lock", &e))?;
                held.insert(
                    account.clone(),
                    Held {
                        file,
                        lock: lock.clone(),
                    },
                );
                Ok(LockAttempt::Acquired(lock))
            }
            Err(TryLockError::WouldBlock) => {
                let lock = Self::record(&mut file, &path, account)?.unwrap_or_else(|| RunLock {
                    account: account.clone(),
                    holder: LockHolder {
                        run_id: RunId::new("unknown (it is writing its record)"),
                        host: "unknown".to_owned(),
                        pid: 0,
                        since: chrono::DateTime::UNIX_EPOCH,
                    },
                });
                Ok(LockAttempt::Held(lock))
            }
            Err(TryLockError::Error(e)) => Err(failed(&path, "taking the run lock", &e)),
        }
    }

    /// Releases `account`'s lock if `holder`'s run holds it.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the lock file cannot be cleared.
    pub fn release(&self, account: &AccountId, holder: &LockHolder) -> Result<(), StoreError> {
        let mut held = self.held();
        if held
            .get(account)
            .is_some_and(|h| h.lock.holder.run_id == holder.run_id)
            && let Some(h) = held.remove(account)
        {
            // Clear the record before the lock goes with the file.
            let path = self.path(account);
            h.file
                .set_len(0)
                .map_err(|e| failed(&path, "clearing the run lock", &e))?;
        }
        Ok(())
    }

    /// Clears a dead holder's record; refuses while the holder is alive.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the lock file cannot be read or removed.
    pub fn unlock(&self, account: &AccountId) -> Result<Unlock, StoreError> {
        if let Some(h) = self.held().get(account) {
            return Ok(Unlock::HeldByLiveHolder(h.lock.clone()));
        }
        let path = self.path(account);
        if !path.exists() {
            return Ok(Unlock::NotLocked);
        }
        let mut file = Self::open(&path)?;
        match file.try_lock() {
            Ok(()) => {
                let record = Self::record(&mut file, &path, account)?;
                drop(file);
                std::fs::remove_file(&path)
                    .map_err(|e| failed(&path, "removing the run lock", &e))?;
                Ok(record.map_or(Unlock::NotLocked, Unlock::Cleared))
            }
            Err(TryLockError::WouldBlock) => {
                let record = Self::record(&mut file, &path, account)?;
                Ok(record.map_or(Unlock::NotLocked, Unlock::HeldByLiveHolder))
            }
            Err(TryLockError::Error(e)) => Err(failed(&path, "testing the run lock", &e)),
        }
    }
}
