//! The executor's guarantees: journal-first placement, confirmation before clearing or
//! cancelling, continuing past independent failures, refusing broken reads, dry runs that touch
//! nothing.

use mockall::Sequence;
use reconcile_core::ports::{MockBroker, MockStore};
use reconcile_core::testkit::build::*;
use reconcile_core::testkit::{Call, Fault, Faulty, InMemoryBroker, InMemoryStore, Recording};

/// The in-memory broker with scripted faults and a call log.
type TestBroker = Recording<Faulty<InMemoryBroker>>;

fn faulty(b: InMemoryBroker) -> TestBroker {
    Recording::new(Faulty::new(b))
}
use reconcile_core::{
    ApplyOptions, BrokerError, ChangeBatch, LocalChange, Outcome, Policy, Reconciler, Scope, Side,
    Store, TargetStatus, execute, plan,
};

const NOW: &str = "2025-11-07T15:00:00Z";
const C640: &str = "QQQ   251219C00640000";

fn open_short_call(id: &str) -> reconcile_core::Position {
    position(id, "A", "QQQ").leg(C640, "-1").target(
        target("call_spread")
            .limit("0.60")
            .qty("1")
            .leg(C640, Side::BuyToClose, "1"),
    )
}

/// [`open_short_call`] with its target referencing `order_id`, placed at `placed`.
fn short_call_referencing(id: &str, order_id: &str, placed: &str) -> reconcile_core::Position {
    let mut p = open_short_call(id);
    p.targets[0] = p.targets[0].clone().active(order_id).placed(placed);
    p
}

fn fixture() -> (TestBroker, InMemoryStore) {
    let l = local(NOW, vec![open_short_call("45")], vec![]);
    let b = broker(NOW, vec![], Some(vec![holding("A", C640, "-1")]));
    (
        faulty(InMemoryBroker::from_snapshot(&b)),
        InMemoryStore::from_snapshot(&l),
    )
}

fn placing() -> Policy {
    Policy {
        create_missing: true,
        ..Policy::report_only()
    }
}

#[tokio::test]
async fn placement_writes_intent_then_sends_then_links() {
    let (b, s) = fixture();
    let rec = Reconciler::new(&b, &s).with_policy(placing());
    let (_, p) = rec.plan(at(NOW)).await.unwrap();
    let out = rec
        .apply(&p, &ApplyOptions::new("r1", at(NOW)))
        .await
        .unwrap();
    assert_eq!(out.count(Outcome::Applied), 1);
    let placed = b.placed();
    assert_eq!(placed.len(), 1);
    assert_eq!(placed[0].client_order_id.as_str(), "rc-r1-0");
    let t = &s.snapshot(at(NOW)).positions[0].targets[0];
    assert_eq!(t.status, TargetStatus::Active);
    assert_eq!(t.client_order_id.as_ref().unwrap().as_str(), "rc-r1-0");
    assert!(
        s.snapshot(at(NOW)).intents.is_empty(),
        "the intent is resolved by the link"
    );
    assert!(out.verify.unwrap().in_sync);
}

#[tokio::test]
async fn lost_placement_answer_is_found_by_client_order_id_not_resent() {
    let (b, s) = fixture();
    b.fail_next(Call::Place, Fault::LoseAnswer);
    let rec = Reconciler::new(&b, &s).with_policy(placing());
    let (_, p) = rec.plan(at(NOW)).await.unwrap();
    let out = rec
        .apply(&p, &ApplyOptions::new("r1", at(NOW)))
        .await
        .unwrap();
    assert_eq!(
        out.results[0].outcome,
        Outcome::Applied,
        "{:?}",
        out.results
    );
    assert_eq!(b.placed().len(), 1, "never sent twice");
    assert!(b.calls().contains(&Call::FindByClientOrderId));
    assert!(out.verify.unwrap().in_sync);
}

#[tokio::test]
async fn crash_between_send_and_link_is_adopted_on_the_next_run() {
    let (b, s) = fixture();
    let mut rec = Reconciler::new(&b, &s).with_policy(placing());
    // The next run comes at once; its healing waits out a (short, here) settle time.
    rec.settle = chrono::TimeDelta::milliseconds(100);
    let (_, p) = rec.plan(at(NOW)).await.unwrap();
    // Write 1 is the intent; write 2, the link after the send, fails.
    s.fail_write(2);
    let out = rec
        .apply(&p, &ApplyOptions::new("r1", at(NOW)))
        .await
        .unwrap();
    assert_eq!(out.results[0].outcome, Outcome::Failed);
    let r = out.verify.unwrap();
    assert_eq!(r.summary.adoptable, 1);
    assert_eq!(
        r.summary.missing, 0,
        "an intent's order is never placed again"
    );
    let (_, p2) = rec.plan(at(NOW)).await.unwrap();
    let out2 = rec
        .apply(&p2, &ApplyOptions::new("r2", at(NOW)))
        .await
        .unwrap();
    assert!(out2.verify.unwrap().in_sync);
    assert_eq!(b.placed().len(), 1);
}

#[tokio::test]
async fn crash_after_intent_waits_then_places_once() {
    let (b, s) = fixture();
    s.apply(&ChangeBatch {
        changes: vec![LocalChange::PutIntent {
            intent: intent("rc-old-0", "45", "call_spread", NOW),
        }],
        audit: vec![],
    })
    .await
    .unwrap();
    let rec = Reconciler::new(&b, &s).with_policy(Policy {
        clear_invalid: true,
        ..placing()
    });
    let (r, p) = rec.plan(at(NOW)).await.unwrap();
    assert_eq!(r.summary.in_flight, 1);
    assert!(p.is_empty(), "within grace: wait");
    let later = at("2025-11-07T15:05:00Z");
    b.set_now(later);
    let (r, p) = rec.plan(later).await.unwrap();
    assert_eq!((r.summary.stale_intents, r.summary.missing), (1, 1));
    let out = rec
        .apply(&p, &ApplyOptions::new("r2", later))
        .await
        .unwrap();
    assert!(out.verify.unwrap().in_sync);
    assert_eq!(b.placed().len(), 1);
}

#[tokio::test]
async fn rejected_placement_records_the_error_and_drops_the_intent() {
    let (b, s) = fixture();
    b.fail_next(
        Call::Place,
        Fault::Fail(BrokerError::Rejected {
            broker: "in-memory".into(),
            message: "no position".into(),
        }),
    );
    let rec = Reconciler::new(&b, &s).with_policy(placing());
    let (_, p) = rec.plan(at(NOW)).await.unwrap();
    let out = rec
        .apply(&p, &ApplyOptions::new("r1", at(NOW)))
        .await
        .unwrap();
    assert_eq!(out.results[0].outcome, Outcome::Failed);
    let snap = s.snapshot(at(NOW));
    assert!(snap.intents.is_empty());
    assert_eq!(
        snap.positions[0].targets[0].last_error.as_deref(),
        Some("in-memory: rejected: no position")
    );
    let audit = s.audit_log(Some("r1".into())).await.unwrap();
    let place = audit
        .iter()
        .position(|a| a.action_key == "place:45:call_spread")
        .unwrap();
    assert_eq!(audit[place].outcome, Outcome::Failed);
    assert!(
        audit[..place]
            .iter()
            .any(|a| a.outcome == Outcome::Started && a.detail.contains("rc-r1-0")),
        "journaled before the call: {audit:?}"
    );
}

#[tokio::test]
async fn not_found_is_confirmed_before_clearing_and_uncertain_on_transport_error() {
    let l = local(
        NOW,
        vec![open_short_call("45").target(target("put_spread_1").active("77").limit("0.5"))],
        vec![],
    );
    let b = faulty(InMemoryBroker::from_snapshot(&broker(
        NOW,
        vec![],
        Some(vec![holding("A", C640, "-1")]),
    )));
    let s = InMemoryStore::from_snapshot(&l);
    b.fail_next(
        Call::Order,
        Fault::Fail(BrokerError::Transport {
            broker: "x".into(),
            endpoint: "/orders/77".into(),
            message: "timeout".into(),
        }),
    );
    let rec = Reconciler::new(&b, &s).with_policy(Policy {
        clear_invalid: true,
        ..Policy::report_only()
    });
    let (_, p) = rec.plan(at(NOW)).await.unwrap();
    let out = rec
        .apply(&p, &ApplyOptions::new("r1", at(NOW)))
        .await
        .unwrap();
    assert_eq!(out.results[0].outcome, Outcome::Uncertain);
    assert_eq!(
        s.snapshot(at(NOW)).positions[0].targets[1]
            .order_id
            .as_ref()
            .unwrap()
            .as_str(),
        "77"
    );
    let out = rec
        .apply(&p, &ApplyOptions::new("r2", at(NOW)))
        .await
        .unwrap();
    assert_eq!(out.results[0].outcome, Outcome::Applied);
    assert_eq!(s.snapshot(at(NOW)).positions[0].targets[1].order_id, None);
}

#[tokio::test]
async fn a_failed_action_does_not_stop_independent_ones() {
    let l = local(NOW, vec![position("1", "A", "QQQ")], vec![]);
    let b = faulty(InMemoryBroker::from_snapshot(&broker(
        NOW,
        vec![
            order("8", "A", "QQQ").submitted("2025-11-07T10:00:00Z"),
            order("9", "A", "QQQ").submitted("2025-11-07T10:00:00Z"),
        ],
        None,
    )));
    let s = InMemoryStore::from_snapshot(&l);
    b.fail_next(
        Call::Cancel,
        Fault::Fail(BrokerError::Rejected {
            broker: "x".into(),
            message: "locked".into(),
        }),
    );
    let rec = Reconciler::new(&b, &s).with_policy(Policy {
        cancel_orphaned: true,
        force: true,
        ..Policy::report_only()
    });
    let (_, p) = rec.plan(at(NOW)).await.unwrap();
    let out = rec
        .apply(&p, &ApplyOptions::new("r1", at(NOW)))
        .await
        .unwrap();
    let outcomes: Vec<_> = out.results.iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, [Outcome::Failed, Outcome::Applied]);
    assert!(!out.all_done(), "a failed action is not done");
    assert_eq!(
        (out.count(Outcome::Failed), out.count(Outcome::Uncertain)),
        (1, 0)
    );
}

#[tokio::test]
async fn a_stop_asked_for_mid_run_ends_it_after_the_action_in_progress() {
    use reconcile_core::{Progress, StopFlag};
    use std::sync::{Arc, Mutex};
    let orphans = (1..=3)
        .map(|i| order(&format!("8{i}"), "A", "QQQ").submitted("2025-11-07T10:00:00Z"))
        .collect();
    let b = faulty(InMemoryBroker::from_snapshot(&broker(NOW, orphans, None)));
    let s = InMemoryStore::from_snapshot(&local(NOW, vec![position("1", "A", "QQQ")], vec![]));
    let rec = Reconciler::new(&b, &s).with_policy(Policy {
        cancel_orphaned: true,
        force: true,
        ..Policy::report_only()
    });
    let (_, p) = rec.plan(at(NOW)).await.unwrap();
    assert_eq!(p.actions.len(), 3);
    let stop = StopFlag::new();
    assert!(!stop.is_set());
    let told = Arc::new(Mutex::new(Vec::new()));
    let progress = {
        let (told, stop) = (told.clone(), stop.clone());
        // Asked to stop while the second action is being told about: the third never starts.
        Progress::new(move |done, of| {
            told.lock().unwrap().push((done, of));
            if done == 2 {
                stop.set();
            }
        })
    };
    assert_eq!(format!("{progress:?}"), "Progress");
    assert_eq!(progress, progress.clone());
    assert_ne!(progress, Progress::new(|_, _| {}));
    assert_eq!(stop, stop.clone());
    assert_ne!(stop, StopFlag::new());
    let options = ApplyOptions::new("r1", at(NOW))
        .with_progress(progress)
        .stopped_by(stop.clone());
    assert!(!options.stop_requested());
    let out = rec.apply(&p, &options).await.unwrap();
    assert!(stop.is_set() && options.stop_requested());
    assert_eq!(*told.lock().unwrap(), [(1, 3), (2, 3)]);
    assert_eq!(out.results.len(), 2, "{:?}", out.results);
    assert!(out.all_done());
    assert_eq!(out.count(Outcome::Applied), 2);
    assert_eq!(b.count(Call::Cancel), 2);
}

#[tokio::test]
async fn a_failed_read_aborts_with_nothing_changed() {
    let (b, s) = fixture();
    let reset = || {
        Fault::Fail(BrokerError::Transport {
            broker: "x".into(),
            endpoint: "/positions".into(),
            message: "reset".into(),
        })
    };
    b.fail_next(Call::Positions, reset());
    let rec = Reconciler::new(&b, &s).with_policy(placing());
    assert!(rec.plan(at(NOW)).await.is_err());
    // An apply whose own re-read fails: it must stop before its first write.
    let (_, p) = rec.plan(at(NOW)).await.unwrap();
    assert!(!p.is_empty(), "the plan has placements to (not) carry out");
    b.fail_next(Call::Positions, reset());
    let before = s.snapshot(at(NOW));
    assert!(
        rec.apply(&p, &ApplyOptions::new("r1", at(NOW)))
            .await
            .is_err()
    );
    assert!(b.placed().is_empty());
    assert!(s.audit_log(None).await.unwrap().is_empty());
    assert_eq!(s.snapshot(at(NOW)), before);
    // And its locks died with it: the next run proceeds at once.
    assert!(
        rec.apply(&p, &ApplyOptions::new("r2", at(NOW)))
            .await
            .is_ok()
    );
    assert!(!b.placed().is_empty());
}

#[tokio::test]
async fn empty_local_records_facing_working_orders_refuse() {
    let b = InMemoryBroker::from_snapshot(&broker(
        NOW,
        vec![order("1", "A", "QQQ").submitted("2025-11-07T10:00:00Z")],
        None,
    ));
    let s = InMemoryStore::new();
    let rec = Reconciler::new(&b, &s).with_policy(Policy::all_fixes());
    let (_, p) = rec.plan(at(NOW)).await.unwrap();
    assert!(p.is_empty());
    assert_eq!(p.refusals.len(), 1);
    assert!(p.refusals[0].contains("broken read"), "{}", p.refusals[0]);
}

#[tokio::test]
async fn cancel_cap_blocks_every_destructive_step() {
    let orders = (0..12)
        .map(|i| order(&format!("{i}"), "A", "QQQ").submitted("2025-11-07T10:00:00Z"))
        .collect();
    let l = local(
        NOW,
        (0..30)
            .map(|i| open_short_call(&format!("p{i}")).target(target("x").active(&format!("m{i}"))))
            .collect(),
        vec![],
    );
    let mut orders: Vec<_> = orders;
    orders.extend((0..30).map(|i| order(&format!("m{i}"), "A", "QQQ")));
    let r = reconcile_core::diff(&l, &broker(NOW, orders, None), &Default::default()).unwrap();
    assert_eq!(r.summary.orphaned, 12);
    let p = plan(
        &r,
        &Policy {
            cancel_orphaned: true,
            ..Policy::report_only()
        },
    );
    assert!(p.is_empty());
    assert!(p.refusals[0].contains("cap of 10"));
    let p = plan(
        &r,
        &Policy {
            cancel_orphaned: true,
            max_cancels: 12,
            ..Policy::report_only()
        },
    );
    assert_eq!(p.actions.len(), 12);
}

#[tokio::test]
async fn holdings_unknown_or_short_never_get_a_closing_order() {
    let l = local(NOW, vec![open_short_call("45")], vec![]);
    let unknown =
        reconcile_core::diff(&l, &broker(NOW, vec![], None), &Default::default()).unwrap();
    let p = plan(&unknown, &placing());
    assert!(p.is_empty());
    assert!(p.skipped[0].reason.contains("unknown"));
    let long_not_short = reconcile_core::diff(
        &l,
        &broker(NOW, vec![], Some(vec![holding("A", C640, "1")])),
        &Default::default(),
    )
    .unwrap();
    assert!(plan(&long_not_short, &placing()).is_empty());
}

#[tokio::test]
async fn apply_drops_actions_the_world_made_stale() {
    let (b, s) = fixture();
    let rec = Reconciler::new(&b, &s).with_policy(placing());
    let (_, p) = rec.plan(at(NOW)).await.unwrap();
    // Someone places the order by hand between plan and apply.
    b.add_order(
        order("hand", "A", "QQQ")
            .limit("0.60")
            .leg(C640, Side::BuyToClose, "1")
            .submitted("2025-11-07T14:00:00Z"),
    );
    let out = rec
        .apply(&p, &ApplyOptions::new("r1", at(NOW)))
        .await
        .unwrap();
    assert_eq!(out.stale, ["place:45:call_spread"]);
    assert!(b.placed().is_empty());
}

#[tokio::test]
async fn a_second_run_is_locked_out() {
    let (b, s) = fixture();
    s.acquire_lock(
        &"A".into(),
        &reconcile_core::LockHolder::new("other-run".into(), "elsewhere", at(NOW)),
    )
    .await
    .unwrap();
    let rec =
        Reconciler::new(&b, &s)
            .with_policy(placing())
            .with_options(reconcile_core::DiffOptions {
                scope: Scope::all().with_account("A"),
                ..Default::default()
            });
    let (_, p) = rec.plan(at(NOW)).await.unwrap();
    let err = rec
        .apply(&p, &ApplyOptions::new("r1", at(NOW)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("locked"), "{err}");
    assert!(
        err.to_string().contains("run other-run (pid"),
        "names the holder: {err}"
    );
    assert!(b.placed().is_empty());
    // A dry run takes no lock, so another run's lock does not stop it.
    let dry = rec
        .apply(&p, &ApplyOptions::new("r2", at(NOW)).dry_run())
        .await
        .expect("a dry run is not locked out");
    assert!(!dry.results.is_empty());
    assert!(dry.results.iter().all(|r| r.outcome == Outcome::WouldApply));
    assert!(b.placed().is_empty());
}

#[tokio::test]
async fn dry_run_calls_no_mutating_method() {
    let (b, s) = fixture();
    let (_, p) = Reconciler::new(&b, &s)
        .with_policy(Policy::all_fixes())
        .plan(at(NOW))
        .await
        .unwrap();
    assert!(!p.is_empty());
    let mut broker = MockBroker::new();
    broker.expect_cancel().never();
    broker.expect_place().never();
    broker.expect_replace().never();
    broker.expect_order().never();
    let mut store = MockStore::new();
    store.expect_apply().never();
    let out = execute(
        &p,
        &broker,
        &store,
        &ApplyOptions::new("dry", at(NOW)).dry_run(),
    )
    .await;
    assert!(out.results.iter().all(|r| r.outcome == Outcome::WouldApply));
}

#[tokio::test]
async fn placement_follows_intent_first_order() {
    let (b, s) = fixture();
    let (_, p) = Reconciler::new(&b, &s)
        .with_policy(placing())
        .plan(at(NOW))
        .await
        .unwrap();
    let mut seq = Sequence::new();
    let mut store = MockStore::new();
    let mut broker = MockBroker::new();
    // The pacing wait comes before the intent, never between journal and send.
    broker
        .expect_ready()
        .withf(|c| *c == reconcile_core::Call::Place)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| ());
    store
        .expect_apply()
        .withf(|batch| matches!(batch.changes.as_slice(), [LocalChange::PutIntent { .. }]))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    broker
        .expect_place()
        .withf(|o| o.client_order_id.as_str() == "rc-seq-0")
        .times(1)
        .in_sequence(&mut seq)
        .returning(|o| {
            let mut placed = order("new-1", o.account.as_str(), &o.underlying);
            placed.client_order_id = Some(o.client_order_id.clone());
            Ok(placed)
        });
    store
        .expect_apply()
        .withf(|batch| {
            matches!(batch.changes.as_slice(), [LocalChange::LinkTarget { order_id, .. }, LocalChange::DropIntent { .. }] if order_id.as_str() == "new-1")
                && batch.audit.len() == 1
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    let out = execute(&p, &broker, &store, &ApplyOptions::new("seq", at(NOW))).await;
    assert_eq!(out.results[0].outcome, Outcome::Applied);
}

/// A plan made from one read, carried out against a broker that has moved on since: each action
/// asks about its order first and acts on what it finds.
mod the_broker_moved_on {
    use super::*;
    use reconcile_core::{Action, DiffOptions, OrderStatus, diff};

    const LONG_AGO: &str = "2025-11-07T10:00:00Z";

    /// The one action a policy plans for a read.
    fn plan_one(
        l: &reconcile_core::LocalSnapshot,
        b: &reconcile_core::BrokerSnapshot,
        policy: &Policy,
    ) -> reconcile_core::Plan {
        let r = diff(l, b, &DiffOptions::default()).unwrap();
        let p = plan(&r, policy);
        assert_eq!(p.actions.len(), 1, "{:?}", p.actions);
        p
    }

    /// A target whose order `77` the read did not find, cleared against a broker that has
    /// `now` (nothing, or order 77 in a status).
    async fn clear_not_found(now: Option<OrderStatus>) -> (Outcome, reconcile_core::ProfitTarget) {
        let l = local(
            NOW,
            vec![short_call_referencing("1", "77", LONG_AGO)],
            vec![],
        );
        let read = broker(NOW, vec![], Some(vec![holding("A", C640, "-1")]));
        let p = plan_one(
            &l,
            &read,
            &Policy {
                clear_invalid: true,
                ..Policy::report_only()
            },
        );
        assert!(matches!(p.actions[0].action, Action::Clear { .. }));
        let orders = now
            .map(|st| {
                vec![
                    order("77", "A", "QQQ")
                        .status(st)
                        .limit("0.60")
                        .leg(C640, Side::BuyToClose, "1")
                        .submitted(LONG_AGO),
                ]
            })
            .unwrap_or_default();
        let b = faulty(InMemoryBroker::from_snapshot(&broker(NOW, orders, None)));
        let s = InMemoryStore::from_snapshot(&l);
        let out = execute(&p, &b, &s, &ApplyOptions::new("r1", at(NOW))).await;
        assert_eq!(b.count(Call::Order), 1, "the not-found is confirmed once");
        let t = s.snapshot(at(NOW)).positions[0].targets[0].clone();
        (out.results[0].outcome, t)
    }

    #[tokio::test]
    async fn a_not_found_clear_confirmed_absent_clears() {
        let (outcome, t) = clear_not_found(None).await;
        assert_eq!(outcome, Outcome::Applied);
        assert_eq!((t.status, t.order_id), (TargetStatus::Unplaced, None));
    }

    #[tokio::test]
    async fn a_not_found_clear_whose_order_is_working_after_all_is_skipped() {
        let (outcome, t) = clear_not_found(Some(OrderStatus::Live)).await;
        assert_eq!(outcome, Outcome::Skipped);
        assert_eq!(t.status, TargetStatus::Active);
        assert_eq!(t.order_id.unwrap().as_str(), "77");
    }

    #[tokio::test]
    async fn a_not_found_clear_whose_order_filled_marks_the_target_filled() {
        let (outcome, t) = clear_not_found(Some(OrderStatus::Filled)).await;
        assert_eq!(outcome, Outcome::Applied);
        assert_eq!(t.status, TargetStatus::Filled);
        assert_eq!(
            t.order_id.unwrap().as_str(),
            "77",
            "the fill keeps its order"
        );
    }

    #[tokio::test]
    async fn a_not_found_clear_whose_order_was_cancelled_clears() {
        let (outcome, t) = clear_not_found(Some(OrderStatus::Cancelled)).await;
        assert_eq!(outcome, Outcome::Applied);
        assert_eq!((t.status, t.order_id), (TargetStatus::Unplaced, None));
    }

    /// An orphan `8` the read found working, cancelled against a broker that now has it in
    /// `now` (or not at all), with a fault on the cancel itself.
    async fn cancel_orphan(
        now: Option<OrderStatus>,
        fault: Option<Fault>,
    ) -> (Outcome, TestBroker) {
        let l = local(NOW, vec![position("1", "A", "QQQ")], vec![]);
        let orphan = || order("8", "A", "QQQ").submitted(LONG_AGO);
        let read = broker(NOW, vec![orphan()], None);
        let p = plan_one(
            &l,
            &read,
            &Policy {
                cancel_orphaned: true,
                force: true,
                ..Policy::report_only()
            },
        );
        let orders = now.map(|st| vec![orphan().status(st)]).unwrap_or_default();
        let b = faulty(InMemoryBroker::from_snapshot(&broker(NOW, orders, None)));
        if let Some(f) = fault {
            b.fail_next(Call::Cancel, f);
        }
        let s = InMemoryStore::from_snapshot(&l);
        let out = execute(&p, &b, &s, &ApplyOptions::new("r1", at(NOW))).await;
        (out.results[0].outcome, b)
    }

    #[tokio::test]
    async fn a_cancel_of_an_order_that_has_finished_or_gone_is_already_done_and_not_sent() {
        for now in [
            Some(OrderStatus::Cancelled),
            Some(OrderStatus::Filled),
            None,
        ] {
            let (outcome, b) = cancel_orphan(now, None).await;
            assert_eq!(outcome, Outcome::AlreadyDone, "{now:?}");
            assert_eq!(b.count(Call::Cancel), 0, "{now:?}");
        }
        let (outcome, b) = cancel_orphan(Some(OrderStatus::Live), None).await;
        assert_eq!(outcome, Outcome::Applied);
        assert_eq!(b.count(Call::Cancel), 1);
    }

    #[tokio::test]
    async fn a_cancel_lost_in_transport_is_uncertain_and_a_refused_one_failed() {
        let transport = Fault::Fail(BrokerError::Transport {
            broker: "x".into(),
            endpoint: "cancel".into(),
            message: "reset".into(),
        });
        let (outcome, _) = cancel_orphan(Some(OrderStatus::Live), Some(transport)).await;
        assert_eq!(outcome, Outcome::Uncertain);
        let refused = Fault::Fail(BrokerError::Rejected {
            broker: "x".into(),
            message: "locked".into(),
        });
        let (outcome, _) = cancel_orphan(Some(OrderStatus::Live), Some(refused)).await;
        assert_eq!(outcome, Outcome::Failed);
    }

    #[tokio::test]
    async fn a_replace_of_an_order_that_is_no_longer_working_is_skipped_and_not_sent() {
        let l = local(
            NOW,
            vec![short_call_referencing("1", "77", LONG_AGO)],
            vec![],
        );
        let drifted = |st: OrderStatus| {
            order("77", "A", "QQQ")
                .status(st)
                .limit("0.95")
                .leg(C640, Side::BuyToClose, "1")
                .submitted(LONG_AGO)
        };
        let read = broker(
            NOW,
            vec![drifted(OrderStatus::Live)],
            Some(vec![holding("A", C640, "-1")]),
        );
        let p = plan_one(
            &l,
            &read,
            &Policy {
                replace_drifted: true,
                ..Policy::report_only()
            },
        );
        assert!(matches!(p.actions[0].action, Action::Replace { .. }));
        for (st, want) in [
            (OrderStatus::Cancelled, Outcome::Skipped),
            (OrderStatus::Filled, Outcome::Skipped),
            (OrderStatus::Live, Outcome::Applied),
        ] {
            let b = faulty(InMemoryBroker::from_snapshot(&broker(
                NOW,
                vec![drifted(st)],
                None,
            )));
            let s = InMemoryStore::from_snapshot(&l);
            let out = execute(&p, &b, &s, &ApplyOptions::new("r1", at(NOW))).await;
            assert_eq!(out.results[0].outcome, want, "{st:?}: {:?}", out.results);
            let sent = usize::from(want == Outcome::Applied);
            assert_eq!(b.count(Call::Replace), sent, "{st:?}");
        }
    }
}

/// A placement that depends on clearing the target's old order id runs only once the clear is
/// done (or, in a dry run, would be): an unconfirmed clear leaves it skipped, and nothing sent.
#[tokio::test]
async fn a_placement_waits_for_the_clear_it_depends_on() {
    let l = local(
        NOW,
        vec![short_call_referencing("45", "77", "2025-11-07T10:00:00Z")],
        vec![],
    );
    let b = broker(NOW, vec![], Some(vec![holding("A", C640, "-1")]));
    let policy = Policy {
        clear_invalid: true,
        create_missing: true,
        ..Policy::report_only()
    };
    let r = reconcile_core::diff(&l, &b, &reconcile_core::DiffOptions::default()).unwrap();
    let p = plan(&r, &policy);
    let keys: Vec<_> = p.actions.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(p.actions[1].depends_on.as_deref(), Some(keys[0]));

    let dry = faulty(InMemoryBroker::from_snapshot(&b));
    let s = InMemoryStore::from_snapshot(&l);
    let out = execute(&p, &dry, &s, &ApplyOptions::new("d", at(NOW)).dry_run()).await;
    let outcomes: Vec<_> = out.results.iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, [Outcome::WouldApply, Outcome::WouldApply]);

    let unsure = faulty(InMemoryBroker::from_snapshot(&b));
    unsure.break_transport(Call::Order, 1);
    let out = execute(&p, &unsure, &s, &ApplyOptions::new("r1", at(NOW))).await;
    let outcomes: Vec<_> = out.results.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Uncertain, Outcome::Skipped],
        "{:?}",
        out.results
    );
    assert_eq!(unsure.count(Call::Place), 0);

    let sure = faulty(InMemoryBroker::from_snapshot(&b));
    let out = execute(&p, &sure, &s, &ApplyOptions::new("r2", at(NOW))).await;
    let outcomes: Vec<_> = out.results.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Applied, Outcome::Applied],
        "{:?}",
        out.results
    );
    assert_eq!(sure.count(Call::Place), 1);
}
