//! The store conformance suite: one plain async function per behaviour, run unchanged against
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! every [`Store`]. Use [`crate::store_conformance_tests!`] to stamp one test per function.

use super::build::{PositionExt, TargetExt, at, dec, intent, position, target};
use crate::ids::{AccountId, RunId};
use crate::model::{PositionState, Side, TargetStatus};
use crate::ports::{
    AuditRecord, ChangeBatch, LocalChange, LockAttempt, LockHolder, Outcome, Store, StoreError,
    Unlock,
};
use crate::scope::Scope;

fn insert(p: crate::model::Position) -> LocalChange {
    LocalChange::InsertPosition { position: p }
}

fn batch(changes: Vec<LocalChange>) -> ChangeBatch {
    ChangeBatch {
        changes,
        audit: Vec::new(),
    }
}

fn condor(id: &str, account: &str, underlying: &str) -> crate::model::Position {
    position(id, account, underlying)
        .opened("2025-11-03T14:31:00Z")
        .leg("QQQ   251219C00640000", "-1")
        .leg("QQQ   251219C00645000", "1")
        .target(
            target("call_spread")
                .active("412345678")
                .limit("0.60")
                .qty("1")
                .placed("2025-11-07T14:00:00Z")
                .leg("QQQ   251219C00640000", Side::BuyToClose, "1")
                .leg("QQQ   251219C00645000", Side::SellToClose, "1"),
        )
        .target(target("put_spread_1").limit("0.55"))
}

/// Inserted positions load back exactly: decimals keep their scale, times their instant.
pub async fn positions_round_trip_exactly(store: &dyn Store) {
    let p = condor("45", "5WT00001", "QQQ");
    store.apply(&batch(vec![insert(p.clone())])).await.unwrap();
    let snap = store
        .load(&Scope::all(), at("2025-11-07T15:00:00Z"))
        .await
        .unwrap();
    assert_eq!(snap.as_of, at("2025-11-07T15:00:00Z"));
    let got = snap
        .positions
        .iter()
        .find(|x| x.id == p.id)
        .expect("the position");
    let mut want = p.clone();
    want.targets.sort_by(|a, b| a.key.cmp(&b.key));
    let mut got = got.clone();
    got.targets.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(got, want);
    assert_eq!(got.targets[0].limit_price.unwrap().to_string(), "0.60");
}

/// Loading honours the scope's accounts, underlyings and states; no states means all of them.
pub async fn load_honours_scope(store: &dyn Store) {
    store
        .apply(&batch(vec![
            insert(position("1", "A", "QQQ")),
            insert(position("2", "B", "QQQ")),
            insert(position("3", "A", "SPY").state(PositionState::Closed)),
        ]))
        .await
        .unwrap();
    let now = at("2025-11-07T15:00:00Z");
    let ids = |s: crate::LocalSnapshot| {
        s.positions
            .into_iter()
            .map(|p| p.id.to_string())
            .collect::<Vec<_>>()
    };
    let mut all = ids(store.load(&Scope::all(), now).await.unwrap());
    all.sort();
    assert_eq!(all, ["1", "2", "3"]);
    let a = ids(store
        .load(&Scope::all().with_account("A"), now)
        .await
        .unwrap());
    assert_eq!(a.len(), 2);
    let spy = ids(store
        .load(&Scope::all().with_underlying("SPY"), now)
        .await
        .unwrap());
    assert_eq!(spy, ["3"]);
    let open = ids(store
        .load(&Scope::all().with_state(PositionState::Open), now)
        .await
        .unwrap());
    assert_eq!(open, ["1", "2"]);
    let scope = Scope::all()
        .with_account("A")
        .with_state(PositionState::Closed)
        .with_state(PositionState::Pending);
    assert_eq!(ids(store.load(&scope, now).await.unwrap()), ["3"]);
}

/// Link, clear, status and error changes land on the right target.
pub async fn target_changes_apply(store: &dyn Store) {
    store
        .apply(&batch(vec![insert(condor("45", "A", "QQQ"))]))
        .await
        .unwrap();
    store
        .apply(&batch(vec![
            LocalChange::LinkTarget {
                position_id: "45".into(),
                target_key: "put_spread_1".into(),
                order_id: "900".into(),
                client_order_id: Some("rc-1".into()),
                placed_at: Some(at("2025-11-07T15:00:00Z")),
            },
            LocalChange::ClearTarget {
                position_id: "45".into(),
                target_key: "call_spread".into(),
                note: Some("order 412345678 cancelled".to_owned()),
            },
        ]))
        .await
        .unwrap();
    let snap = store
        .load(&Scope::all(), at("2025-11-07T15:01:00Z"))
        .await
        .unwrap();
    let p = &snap.positions[0];
    let put = p
        .targets
        .iter()
        .find(|t| t.key.as_str() == "put_spread_1")
        .unwrap();
    assert_eq!(put.status, TargetStatus::Active);
    assert_eq!(put.order_id.as_ref().map(|o| o.as_str()), Some("900"));
    assert_eq!(
        put.client_order_id.as_ref().map(|o| o.as_str()),
        Some("rc-1")
    );
    assert_eq!(put.placed_at, Some(at("2025-11-07T15:00:00Z")));
    let call = p
        .targets
        .iter()
        .find(|t| t.key.as_str() == "call_spread")
        .unwrap();
    assert_eq!(call.status, TargetStatus::Unplaced);
    assert_eq!(call.order_id, None);
    assert_eq!(
        call.last_error.as_deref(),
        Some("order 412345678 cancelled")
    );
    assert_eq!(
        call.limit_price,
        Some(dec("0.60")),
        "expectations survive a clear"
    );

    store
        .apply(&batch(vec![
            LocalChange::SetTargetStatus {
                position_id: "45".into(),
                target_key: "put_spread_1".into(),
                status: TargetStatus::Filled,
            },
            LocalChange::RecordTargetError {
                position_id: "45".into(),
                target_key: "call_spread".into(),
                error: "rejected: no position".to_owned(),
                at: at("2025-11-07T15:02:00Z"),
            },
            LocalChange::SetPositionState {
                position_id: "45".into(),
                state: PositionState::Closing,
            },
        ]))
        .await
        .unwrap();
    let snap = store
        .load(&Scope::all(), at("2025-11-07T15:03:00Z"))
        .await
        .unwrap();
    let p = &snap.positions[0];
    assert_eq!(p.state, PositionState::Closing);
    let call = p
        .targets
        .iter()
        .find(|t| t.key.as_str() == "call_spread")
        .unwrap();
    assert_eq!(call.last_attempt, Some(at("2025-11-07T15:02:00Z")));
    assert_eq!(call.last_error.as_deref(), Some("rejected: no position"));
    let put = p
        .targets
        .iter()
        .find(|t| t.key.as_str() == "put_spread_1")
        .unwrap();
    assert_eq!(put.status, TargetStatus::Filled);
}

/// A retarget's new prices land on their target, with their scale; an absent target is
/// `NotFound`.
pub async fn target_prices_change(store: &dyn Store) {
    store
        .apply(&batch(vec![insert(condor("45", "A", "QQQ"))]))
        .await
        .unwrap();
    store
        .apply(&batch(vec![LocalChange::SetTargetPrices {
            position_id: "45".into(),
            target_key: "call_spread".into(),
            limit_price: Some(dec("0.720")),
            stop_price: None,
        }]))
        .await
        .unwrap();
    let snap = store
        .load(&Scope::all(), at("2025-11-07T15:01:00Z"))
        .await
        .unwrap();
    let call = snap.positions[0]
        .targets
        .iter()
        .find(|t| t.key.as_str() == "call_spread")
        .unwrap();
    assert_eq!(call.limit_price.unwrap().to_string(), "0.720");
    assert_eq!(
        call.order_id.as_ref().map(|o| o.as_str()),
        Some("412345678"),
        "the link is kept"
    );
    let missing = batch(vec![LocalChange::SetTargetPrices {
        position_id: "45".into(),
        target_key: "no_such_key".into(),
        limit_price: Some(dec("1")),
        stop_price: None,
    }]);
    assert!(matches!(
        store.apply(&missing).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A batch whose last change fails writes nothing, not even its audit records.
pub async fn batch_is_all_or_nothing(store: &dyn Store) {
    store
        .apply(&batch(vec![insert(condor("45", "A", "QQQ"))]))
        .await
        .unwrap();
    let bad = ChangeBatch {
        changes: vec![
            LocalChange::SetPositionState {
                position_id: "45".into(),
                state: PositionState::Closed,
            },
            LocalChange::PutIntent {
                intent: intent("rc-x", "45", "put_spread_1", "2025-11-07T15:00:00Z"),
            },
            LocalChange::SetTargetStatus {
                position_id: "no-such-position".into(),
                target_key: "call_spread".into(),
                status: TargetStatus::Filled,
            },
        ],
        audit: vec![audit_record("run-1", "close_local:45")],
    };
    let err = store.apply(&bad).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let snap = store
        .load(&Scope::all(), at("2025-11-07T15:01:00Z"))
        .await
        .unwrap();
    assert_eq!(snap.positions[0].state, PositionState::Open);
    assert!(snap.intents.is_empty());
    assert!(store.audit_log(None).await.unwrap().is_empty());
    let missing_target = batch(vec![LocalChange::SetTargetStatus {
        position_id: "45".into(),
        target_key: "no_such_key".into(),
        status: TargetStatus::Filled,
    }]);
    assert!(matches!(
        store.apply(&missing_target).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Inserting a position twice and putting or dropping an intent twice are harmless.
pub async fn writes_are_idempotent(store: &dyn Store) {
    let p = condor("45", "A", "QQQ");
    let i = intent("rc-1", "45", "put_spread_1", "2025-11-07T15:00:00Z");
    for _ in 0..2 {
        store
            .apply(&batch(vec![
                insert(p.clone()),
                LocalChange::PutIntent { intent: i.clone() },
            ]))
            .await
            .unwrap();
    }
    let snap = store
        .load(&Scope::all(), at("2025-11-07T15:01:00Z"))
        .await
        .unwrap();
    assert_eq!(snap.positions.len(), 1);
    assert_eq!(snap.intents, vec![i.clone()]);
    for _ in 0..2 {
        store
            .apply(&batch(vec![LocalChange::DropIntent {
                client_order_id: "rc-1".into(),
            }]))
            .await
            .unwrap();
    }
    let snap = store
        .load(&Scope::all(), at("2025-11-07T15:01:00Z"))
        .await
        .unwrap();
    assert!(snap.intents.is_empty());
}

/// Intents load with the scope of their position.
pub async fn intents_follow_their_position_scope(store: &dyn Store) {
    store
        .apply(&batch(vec![
            insert(position("1", "A", "QQQ")),
            insert(position("2", "B", "QQQ")),
            LocalChange::PutIntent {
                intent: intent("rc-a", "1", "t", "2025-11-07T15:00:00Z"),
            },
            LocalChange::PutIntent {
                intent: intent("rc-b", "2", "t", "2025-11-07T15:00:00Z"),
            },
        ]))
        .await
        .unwrap();
    let snap = store
        .load(&Scope::all().with_account("A"), at("2025-11-07T15:01:00Z"))
        .await
        .unwrap();
    let cids: Vec<_> = snap
        .intents
        .iter()
        .map(|i| i.client_order_id.to_string())
        .collect();
    assert_eq!(cids, ["rc-a"]);
}

fn audit_record(run: &str, key: &str) -> AuditRecord {
    AuditRecord {
        run_id: RunId::new(run),
        at: at("2025-11-07T15:00:00Z"),
        action_key: key.to_owned(),
        outcome: Outcome::Applied,
        detail: "done".to_owned(),
    }
}

/// The audit log keeps records in order and filters by run.
pub async fn audit_log_keeps_order_and_filters_by_run(store: &dyn Store) {
    for (run, key) in [("r1", "a"), ("r2", "b"), ("r1", "c")] {
        store
            .apply(&ChangeBatch {
                changes: Vec::new(),
                audit: vec![audit_record(run, key)],
            })
            .await
            .unwrap();
    }
    let all: Vec<_> = store
        .audit_log(None)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action_key)
        .collect();
    assert_eq!(all, ["a", "b", "c"]);
    let r1 = store.audit_log(Some(RunId::new("r1"))).await.unwrap();
    assert_eq!(
        r1.iter().map(|a| a.action_key.as_str()).collect::<Vec<_>>(),
        ["a", "c"]
    );
    assert_eq!(r1[0], audit_record("r1", "a"));
}

fn holder(run: &str) -> LockHolder {
    LockHolder::new(
        RunId::new(run),
        "conformance-host",
        at("2025-11-07T15:00:00Z"),
    )
}

/// The run lock excludes another run while its holder holds it, names that holder, is taken
/// again by its own run, is per account, and is free again once released.
pub async fn run_lock_excludes_while_held(store: &dyn Store) {
    let a = AccountId::new("5WT00001");
    let (r1, r2, r3) = (holder("run-1"), holder("run-2"), holder("run-3"));
    let l = store
        .acquire_lock(&a, &r1)
        .await
        .unwrap()
        .acquired()
        .expect("free lock");
    assert_eq!(l.holder, r1);
    match store.acquire_lock(&a, &r2).await.unwrap() {
        LockAttempt::Held(held) => {
            assert_eq!(held.holder, r1, "a refusal names the holder and since when");
            assert_eq!(held.account, a);
        }
        LockAttempt::Acquired(l) => panic!("taken from its holder: {l:?}"),
    }
    assert!(
        store
            .acquire_lock(&a, &r1)
            .await
            .unwrap()
            .acquired()
            .is_some(),
        "its own run takes it again"
    );
    assert!(
        store
            .acquire_lock(&AccountId::new("other"), &r2)
            .await
            .unwrap()
            .acquired()
            .is_some(),
        "locks are per account"
    );
    // Releasing someone else's lock does nothing.
    store.release_lock(&a, &r2).await.unwrap();
    assert!(
        store
            .acquire_lock(&a, &r3)
            .await
            .unwrap()
            .acquired()
            .is_none()
    );
    assert!(matches!(
        store.unlock(&a).await.unwrap(),
        Unlock::HeldByLiveHolder(l) if l.holder == r1
    ));
    store.release_lock(&a, &r1).await.unwrap();
    assert_eq!(store.unlock(&a).await.unwrap(), Unlock::NotLocked);
    assert!(
        store
            .acquire_lock(&a, &r3)
            .await
            .unwrap()
            .acquired()
            .is_some(),
        "free once released"
    );
    store.release_lock(&a, &r3).await.unwrap();
    store
        .release_lock(&AccountId::new("other"), &r2)
        .await
        .unwrap();
}

/// A position's entry order and closing fill, and an OCO intent's sibling, round-trip; a
/// closing fill recorded later lands on its position.
pub async fn fills_and_oco_intents_round_trip(store: &dyn Store) {
    let mut p = condor("45", "A", "QQQ");
    p.entry_order_id = Some("entry-1".into());
    let mut closed = position("46", "A", "QCOM").leg("QCOM", "74");
    closed.state = PositionState::Closed;
    let mut i = intent("rc-oco-1", "45", "take_profit", "2025-11-07T15:00:00Z");
    i.oco_with = Some("stop_loss".into());
    store
        .apply(&batch(vec![
            insert(p.clone()),
            insert(closed),
            LocalChange::PutIntent { intent: i.clone() },
            LocalChange::RecordClosing {
                position_id: "46".into(),
                closing: crate::model::Fill {
                    order_id: "sell-1".into(),
                    filled_at: Some(at("2025-11-06T13:00:05Z")),
                    price: Some(dec("181.10")),
                },
            },
        ]))
        .await
        .unwrap();
    let snap = store
        .load(&Scope::all(), at("2025-11-07T15:01:00Z"))
        .await
        .unwrap();
    let got = |id: &str| snap.positions.iter().find(|x| x.id.as_str() == id).unwrap();
    assert_eq!(
        got("45").entry_order_id.as_ref().map(|o| o.as_str()),
        Some("entry-1")
    );
    let c = got("46").closing.clone().expect("the closing fill");
    assert_eq!(c.order_id.as_str(), "sell-1");
    assert_eq!(c.filled_at, Some(at("2025-11-06T13:00:05Z")));
    assert_eq!(c.price.unwrap().to_string(), "181.10");
    assert_eq!(snap.intents, vec![i]);
    let missing = batch(vec![LocalChange::RecordClosing {
        position_id: "nope".into(),
        closing: c,
    }]);
    assert!(matches!(
        store.apply(&missing).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Stamps one `#[tokio::test]` per conformance function. `$make` is an async function that
/// returns a fresh, empty store.
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:path) => {
        $crate::store_conformance_tests!(@ $make;
            positions_round_trip_exactly,
            load_honours_scope,
            target_changes_apply,
            batch_is_all_or_nothing,
            writes_are_idempotent,
            intents_follow_their_position_scope,
            audit_log_keeps_order_and_filters_by_run,
            run_lock_excludes_while_held,
            fills_and_oco_intents_round_trip,
            target_prices_change
        );
    };
    (@ $make:path; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let store = $make().await;
                $crate::testkit::store_conformance::$name(&store).await;
            }
        )*
    };
}
