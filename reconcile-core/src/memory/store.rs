//! An in-memory store with the same atomicity as the real ones, and scripted write failures.

use super::lock;
use crate::ids::{AccountId, ClientOrderId, PositionId, RunId};
use crate::model::{Intent, Position, ProfitTarget, TargetStatus};
use crate::ports::{
    AuditRecord, ChangeBatch, LocalChange, LockAttempt, LockHolder, RunLock, Store, StoreError,
    Unlock,
};
use crate::scope::Scope;
use crate::snapshot::LocalSnapshot;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default, Clone)]
struct Records {
    positions: BTreeMap<PositionId, Position>,
    intents: BTreeMap<ClientOrderId, Intent>,
}

#[derive(Default)]
struct State {
    records: Records,
    audit: Vec<AuditRecord>,
    locks: BTreeMap<AccountId, RunLock>,
    fail_writes: Vec<u32>,
    writes: u32,
}

/// An in-memory [`Store`].
#[derive(Default)]
pub struct InMemoryStore {
    state: Mutex<State>,
}

impl std::fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryStore").finish_non_exhaustive()
    }
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding a snapshot's positions and intents.
    pub fn from_snapshot(snapshot: &LocalSnapshot) -> Self {
        let s = Self::new();
        {
            let mut st = lock(&s.state);
            for p in &snapshot.positions {
                st.records.positions.insert(p.id.clone(), p.clone());
            }
            for i in &snapshot.intents {
                st.records
                    .intents
                    .insert(i.client_order_id.clone(), i.clone());
            }
        }
        s
    }

    /// Every position and intent, unscoped.
    pub fn snapshot(&self, as_of: DateTime<Utc>) -> LocalSnapshot {
        let st = lock(&self.state);
        let mut snap = LocalSnapshot::new(as_of);
        snap.positions = st.records.positions.values().cloned().collect();
        snap.intents = st.records.intents.values().cloned().collect();
        snap
    }

    /// Makes the `n`-th batch write from now (1 = the next) fail with a busy error, writing
    /// nothing.
    pub fn fail_write(&self, n: u32) {
        let mut st = lock(&self.state);
        let at = st.writes + n;
        st.fail_writes.push(at);
    }
}

fn not_found(what: String) -> StoreError {
    StoreError::NotFound {
        store: "in-memory".to_owned(),
        what,
    }
}

fn target<'a>(
    r: &'a mut Records,
    position_id: &PositionId,
    key: &crate::ids::TargetKey,
) -> Result<&'a mut ProfitTarget, StoreError> {
    let p = r
        .positions
        .get_mut(position_id)
        .ok_or_else(|| not_found(format!("position {position_id}")))?;
    p.targets
        .iter_mut()
        .find(|t| &t.key == key)
        .ok_or_else(|| not_found(format!("target {position_id}/{key}")))
}

fn apply_change(r: &mut Records, change: &LocalChange) -> Result<(), StoreError> {
    match change {
        LocalChange::LinkTarget {
            position_id,
            target_key,
            order_id,
            client_order_id,
            placed_at,
        } => {
            let t = target(r, position_id, target_key)?;
            t.status = TargetStatus::Active;
            t.order_id = Some(order_id.clone());
            if client_order_id.is_some() {
                t.client_order_id.clone_from(client_order_id);
            }
            if placed_at.is_some() {
                t.placed_at = *placed_at;
                t.last_attempt = *placed_at;
            }
            t.last_error = None;
        }
        LocalChange::ClearTarget {
            position_id,
            target_key,
            note,
        } => {
            let t = target(r, position_id, target_key)?;
            t.status = TargetStatus::Unplaced;
            t.order_id = None;
            t.client_order_id = None;
            t.placed_at = None;
            t.last_error.clone_from(note);
        }
        LocalChange::SetTargetStatus {
            position_id,
            target_key,
            status,
        } => target(r, position_id, target_key)?.status = *status,
        LocalChange::RecordTargetError {
            position_id,
            target_key,
            error,
            at,
        } => {
            let t = target(r, position_id, target_key)?;
            t.last_error = Some(error.clone());
            t.last_attempt = Some(*at);
        }
        LocalChange::SetTargetPrices {
            position_id,
            target_key,
            limit_price,
            stop_price,
        } => {
            let t = target(r, position_id, target_key)?;
            t.limit_price = *limit_price;
            t.stop_price = *stop_price;
        }
        LocalChange::SetPositionState { position_id, state } => {
            r.positions
                .get_mut(position_id)
                .ok_or_else(|| not_found(format!("position {position_id}")))?
                .state = *state;
        }
        LocalChange::RecordClosing {
            position_id,
            closing,
        } => {
            r.positions
                .get_mut(position_id)
                .ok_or_else(|| not_found(format!("position {position_id}")))?
                .closing = Some(closing.clone());
        }
        LocalChange::InsertPosition { position } => {
            r.positions
                .entry(position.id.clone())
                .or_insert_with(|| position.clone());
        }
        LocalChange::PutIntent { intent } => {
            r.intents
                .entry(intent.client_order_id.clone())
                .or_insert_with(|| intent.clone());
        }
        LocalChange::DropIntent { client_order_id } => {
            r.intents.remove(client_order_id);
        }
    }
    Ok(())
}

#[async_trait]
impl Store for InMemoryStore {
    fn name(&self) -> String {
        "in-memory".to_owned()
    }

    async fn load(&self, scope: &Scope, as_of: DateTime<Utc>) -> Result<LocalSnapshot, StoreError> {
        let st = lock(&self.state);
        let mut snap = LocalSnapshot::new(as_of);
        snap.positions = st
            .records
            .positions
            .values()
            .filter(|p| scope.includes_position(p))
            .cloned()
            .collect();
        snap.intents = st
            .records
            .intents
            .values()
            .filter(|i| {
                scope.includes_intent(
                    st.records
                        .positions
                        .get(&i.position_id)
                        .map(|p| (&p.account, p.underlying.as_str(), p.state)),
                )
            })
            .cloned()
            .collect();
        Ok(snap)
    }

    async fn apply(&self, batch: &ChangeBatch) -> Result<(), StoreError> {
        let mut st = lock(&self.state);
        st.writes += 1;
        let n = st.writes;
        if let Some(i) = st.fail_writes.iter().position(|&w| w == n) {
            st.fail_writes.remove(i);
            return Err(StoreError::Busy {
                store: "in-memory".to_owned(),
                what: "scripted write failure".to_owned(),
            });
        }
        let mut next = st.records.clone();
        for c in &batch.changes {
            apply_change(&mut next, c)?;
        }
        st.records = next;
        st.audit.extend(batch.audit.iter().cloned());
        Ok(())
    }

    async fn audit_log(&self, run: Option<RunId>) -> Result<Vec<AuditRecord>, StoreError> {
        let st = lock(&self.state);
        Ok(st
            .audit
            .iter()
            .filter(|a| run.as_ref().is_none_or(|r| &a.run_id == r))
            .cloned()
            .collect())
    }

    async fn acquire_lock(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<LockAttempt, StoreError> {
        // The holder of an in-memory lock lives in this process: it is alive until it releases.
        let mut st = lock(&self.state);
        if let Some(l) = st
            .locks
            .get(account)
            .filter(|l| l.holder.run_id != holder.run_id)
        {
            return Ok(LockAttempt::Held(l.clone()));
        }
        let l = st
            .locks
            .entry(account.clone())
            .or_insert_with(|| RunLock {
                account: account.clone(),
                holder: holder.clone(),
            })
            .clone();
        Ok(LockAttempt::Acquired(l))
    }

    async fn release_lock(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<(), StoreError> {
        let mut st = lock(&self.state);
        if st
            .locks
            .get(account)
            .is_some_and(|l| l.holder.run_id == holder.run_id)
        {
            st.locks.remove(account);
        }
        Ok(())
    }

    async fn unlock(&self, account: &AccountId) -> Result<Unlock, StoreError> {
        let st = lock(&self.state);
        Ok(match st.locks.get(account) {
            Some(l) => Unlock::HeldByLiveHolder(l.clone()),
            None => Unlock::NotLocked,
        })
    }
}
