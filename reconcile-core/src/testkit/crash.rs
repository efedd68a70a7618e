//! [`Crash`]: a process that dies at a chosen step, as kill -9 would, seen through its broker
//! ([`CrashingBroker`]) and its store ([`CrashingStore`]). Every broker call and every store
//! call is one step; at the fatal step the process dies — a broker request either never leaves
//! or reaches the broker and acts, as chosen — and from then on nothing it does reaches either
//! side. Its run locks die with it, as a killed holder's do.
//!
//! Between the store call that writes a placement's intent and the broker call that sends it
//! there is no other step, so some fatal step lands exactly between journal and send.

use super::lock;
use crate::broker::decorate_broker;
use crate::ids::{AccountId, RunId};
use crate::ports::{
    AuditRecord, BrokerError, Call, ChangeBatch, LockAttempt, LockHolder, Store, StoreError, Unlock,
};
use crate::scope::Scope;
use crate::snapshot::LocalSnapshot;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Where a process is on its way to its fatal step.
#[derive(Debug)]
pub struct Crash {
    state: Mutex<Life>,
    /// At the fatal step, a broker request reaches the broker and acts before the process dies
    /// (its answer is never read).
    acts_first: bool,
}

#[derive(Debug)]
enum Life {
    Alive { steps_left: usize },
    Dead,
}

enum Fate {
    Lives,
    DiesNow,
    Dead,
}

impl Crash {
    /// A process that dies at step `step` (0: its first call). At that step a broker request
    /// acts at the broker first if `acts_first`.
    pub fn at(step: usize, acts_first: bool) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(Life::Alive { steps_left: step }),
            acts_first,
        })
    }

    /// Whether it has died.
    pub fn is_dead(&self) -> bool {
        matches!(*lock(&self.state), Life::Dead)
    }

    fn step(&self) -> Fate {
        let mut state = lock(&self.state);
        match &mut *state {
            Life::Dead => Fate::Dead,
            Life::Alive { steps_left: 0 } => {
                *state = Life::Dead;
                Fate::DiesNow
            }
            Life::Alive { steps_left } => {
                *steps_left -= 1;
                Fate::Lives
            }
        }
    }
}

/// A broker seen by a process that dies at its [`Crash`]'s fatal step.
pub struct CrashingBroker<B> {
    inner: B,
    crash: Arc<Crash>,
}

impl<B> CrashingBroker<B> {
    /// `inner`, as the process of `crash` sees it.
    pub fn new(inner: B, crash: Arc<Crash>) -> Self {
        Self { inner, crash }
    }

    async fn before(&self, _call: Call) {}

    async fn around<T, F, Fut>(&self, call: Call, op: F) -> Result<T, BrokerError>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, BrokerError>> + Send,
        T: Send,
    {
        match self.crash.step() {
            Fate::Lives => op().await,
            Fate::DiesNow => {
                if self.crash.acts_first {
                    let _ = op().await;
                }
                Err(gone(call))
            }
            Fate::Dead => Err(gone(call)),
        }
    }
}

fn gone(call: Call) -> BrokerError {
    BrokerError::Transport {
        broker: "crashing".to_owned(),
        endpoint: call.as_str().to_owned(),
        message: "the process was killed".to_owned(),
    }
}

decorate_broker!(CrashingBroker);

/// A store seen by a process that dies at its [`Crash`]'s fatal step: after it, nothing is read
/// or written, and the locks the process took are gone.
pub struct CrashingStore<S> {
    inner: S,
    crash: Arc<Crash>,
}

impl<S> CrashingStore<S> {
    /// `inner`, as the process of `crash` sees it.
    pub fn new(inner: S, crash: Arc<Crash>) -> Self {
        Self { inner, crash }
    }

    /// The store it wraps.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn alive(&self, what: &str) -> Result<(), StoreError> {
        match self.crash.step() {
            Fate::Lives => Ok(()),
            Fate::DiesNow | Fate::Dead => Err(StoreError::Backend {
                store: "crashing".to_owned(),
                message: format!("{what}: the process was killed"),
            }),
        }
    }
}

#[async_trait]
impl<S: Store> Store for CrashingStore<S> {
    fn name(&self) -> String {
        self.inner.name()
    }

    async fn load(&self, scope: &Scope, as_of: DateTime<Utc>) -> Result<LocalSnapshot, StoreError> {
        self.alive("load")?;
        self.inner.load(scope, as_of).await
    }

    async fn apply(&self, batch: &ChangeBatch) -> Result<(), StoreError> {
        self.alive("apply")?;
        self.inner.apply(batch).await
    }

    async fn audit_log(&self, run: Option<RunId>) -> Result<Vec<AuditRecord>, StoreError> {
        self.alive("audit_log")?;
        self.inner.audit_log(run).await
    }

    async fn acquire_lock(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<LockAttempt, StoreError> {
        self.alive("acquire_lock")?;
        self.inner.acquire_lock(account, holder).await
    }

    /// A live process releases its lock; a dead one's lock dies with it. Either way it is gone.
    async fn release_lock(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<(), StoreError> {
        self.inner.release_lock(account, holder).await
    }

    async fn unlock(&self, account: &AccountId) -> Result<Unlock, StoreError> {
        self.alive("unlock")?;
        self.inner.unlock(account).await
    }
}
