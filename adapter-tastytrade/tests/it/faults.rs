//! Retries, refreshes and lost answers.

use super::*;
use adapter_tastytrade::sim::{Fault, FaultRule};
use reconcile_core::testkit::InMemoryStore;
use reconcile_core::testkit::build::{PositionExt, TargetExt, local, position, target};
use reconcile_core::{ApplyOptions, Broker, Policy, Reconciler, Store};
use std::time::{Duration, Instant};

/// A store whose one target is a call spread at 0.45 with no order yet: a plan places it.
fn one_spread_to_place() -> InMemoryStore {
    InMemoryStore::from_snapshot(&local(
        NOW,
        vec![
            position("45", "5WT00001", "QQQ")
                .leg(C640, "-1")
                .leg(C645, "1")
                .target(
                    target("call_spread")
                        .limit("0.45")
                        .qty("1")
                        .leg(C640, Side::BuyToClose, "1")
                        .leg(C645, Side::SellToClose, "1"),
                ),
        ],
        vec![],
    ))
}

#[tokio::test]
async fn a_429_is_retried_after_the_time_it_asks_for() {
    let (sim, broker) = world().await;
    broker.accounts().await.unwrap();
    sim.fail_next(FaultRule::on(
        "GET",
        "/positions",
        Fault::TooManyRequests { retry_after: 1 },
    ));
    let started = Instant::now();
    broker.positions(&"5WT00001".into()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        started.elapsed()
    );
    let tries = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/positions"))
        .count();
    assert_eq!(tries, 2);
}

#[tokio::test]
async fn a_500_on_a_cancel_is_retried() {
    let (sim, broker) = world().await;
    sim.fail_next(FaultRule::on(
        "DELETE",
        "/orders/412345601",
        Fault::ServerError,
    ));
    assert_eq!(
        broker
            .cancel(&"5WT00001".into(), &"412345601".into())
            .await
            .unwrap(),
        reconcile_core::CancelOutcome::Requested
    );
    assert_eq!(
        sim.requests()
            .iter()
            .filter(|r| r.method == "DELETE")
            .count(),
        2
    );
}

#[tokio::test]
async fn a_dropped_connection_on_a_read_is_retried() {
    let (sim, broker) = world().await;
    sim.fail_next(FaultRule::on("GET", "/positions", Fault::DropConnection));
    assert_eq!(broker.positions(&"5WT00001".into()).await.unwrap().len(), 2);
    assert_eq!(
        sim.requests()
            .iter()
            .filter(|r| r.path.ends_with("/positions"))
            .count(),
        2
    );
}

#[tokio::test]
async fn a_dropped_connection_on_a_placement_is_not_resent_blindly() {
    let (sim, broker) = world().await;
    sim.fail_next(FaultRule::on("POST", "/orders", Fault::DropConnection));
    let order = reconcile_core::PlaceOrder {
        account: "5WT00001".into(),
        underlying: "QQQ".to_owned(),
        client_order_id: "rc-drop-0".into(),
        order_type: reconcile_core::OrderType::Limit,
        time_in_force: reconcile_core::TimeInForce::Gtc,
        limit_price: Some(reconcile_core::testkit::build::dec("0.45")),
        stop_price: None,
        legs: vec![reconcile_core::TargetLeg {
            symbol: C640.into(),
            side: Side::BuyToClose,
            quantity: 1.into(),
        }],
    };
    let err = broker.place(&order).await.unwrap_err();
    assert!(err.is_uncertain(), "{err}");
    assert_eq!(
        sim.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/orders"))
            .count(),
        1
    );
    // The order did reach the book: it is found by its external identifier.
    assert!(
        broker
            .find_by_client_order_id(&"5WT00001".into(), &"rc-drop-0".into())
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once() {
    let (sim, broker) = world().await;
    broker.accounts().await.unwrap();
    assert_eq!(sim.tokens_issued(), 1);
    // The server's clock passes the 15 minutes; our cached token is refused once.
    sim.advance(chrono::TimeDelta::minutes(16));
    broker.accounts().await.unwrap();
    assert_eq!(sim.tokens_issued(), 2);
    let bad = TastytradeBroker::new(
        sim.base_url(),
        SecretString::from(SECRET),
        SecretString::from("wrong"),
    )
    .unwrap();
    let err = bad.accounts().await.unwrap_err();
    assert!(
        matches!(err, reconcile_core::BrokerError::Unauthenticated { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("invalid_grant"), "{err}");
}

#[tokio::test]
async fn a_malformed_body_is_a_protocol_error_that_names_the_endpoint() {
    let (sim, broker) = world().await;
    sim.fail_next(FaultRule::on("GET", "/positions", Fault::Malformed));
    let err = broker.positions(&"5WT00001".into()).await.unwrap_err();
    assert!(
        err.to_string().contains("/accounts/5WT00001/positions"),
        "{err}"
    );
}

#[tokio::test]
async fn a_timeout_on_a_placement_does_not_produce_a_second_order() {
    let (sim, broker) = undecorated_world().await;
    let broker = broker
        .with_timeout(Duration::from_millis(300))
        .unwrap()
        .decorated();
    let store = one_spread_to_place();
    // Nothing at the broker fits the target, so it must be placed.
    sim.cancel_by_hand("412345601");
    sim.cancel_by_hand("412345602");
    // The order reaches the book, but the answer comes after the client gave up.
    sim.fail_next(FaultRule::on(
        "POST",
        "/orders",
        Fault::Delay(Duration::from_millis(800)),
    ));
    let rec = Reconciler::new(&broker, &store).with_policy(Policy {
        create_missing: true,
        ..Policy::report_only()
    });
    let (_, plan) = rec.plan(at(NOW)).await.unwrap();
    let out = rec
        .apply(&plan, &ApplyOptions::new("t1", at(NOW)))
        .await
        .unwrap();
    let r = &out.results[0];
    assert_eq!(
        r.outcome,
        reconcile_core::Outcome::Applied,
        "{:?}",
        out.results
    );
    assert!(
        r.detail.contains("found after a lost answer"),
        "{}",
        r.detail
    );
    assert!(out.verify.unwrap().in_sync);
    let posts = || {
        sim.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/orders"))
            .count()
    };
    assert_eq!(posts(), 1, "never sent twice");
    // A further run has nothing left to send.
    let (_, plan) = rec.plan(at(NOW)).await.unwrap();
    assert!(plan.is_empty(), "{:?}", plan.actions);
    assert_eq!(posts(), 1);
}

#[tokio::test]
async fn a_read_that_fails_after_retries_aborts_the_run_with_nothing_changed() {
    let (sim, broker) = world().await;
    let store = one_spread_to_place();
    sim.cancel_by_hand("412345601");
    sim.cancel_by_hand("412345602");
    let rec = Reconciler::new(&broker, &store).with_policy(Policy {
        create_missing: true,
        ..Policy::report_only()
    });
    // A plan with a placement to make, then an apply whose own reads fail past the retries.
    let (_, plan) = rec.plan(at(NOW)).await.unwrap();
    assert_eq!(plan.actions.len(), 1, "{:?}", plan.actions);
    let before = store.snapshot(at(NOW));
    for _ in 0..10 {
        sim.fail_next(FaultRule::on("GET", "/positions", Fault::ServerError));
    }
    let err = rec
        .apply(&plan, &ApplyOptions::new("t1", at(NOW)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("500"), "{err}");
    assert!(store.audit_log(None).await.unwrap().is_empty());
    assert_eq!(store.snapshot(at(NOW)), before);
    let posts = || {
        sim.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/orders"))
            .count()
    };
    assert_eq!(posts(), 0);
    // The next runs proceed at once (no lock to wait out): while the broker still fails they
    // abort the same way, then one does the work, once.
    let mut tries = 0;
    let out = loop {
        tries += 1;
        match rec
            .apply(&plan, &ApplyOptions::new(format!("t{tries}"), at(NOW)))
            .await
        {
            Ok(out) => break out,
            Err(e) if tries < 10 => assert!(e.to_string().contains("500"), "{e}"),
            Err(e) => panic!("still failing after {tries} runs: {e}"),
        }
    };
    assert_eq!(
        out.results[0].outcome,
        reconcile_core::Outcome::Applied,
        "{:?}",
        out.results
    );
    assert_eq!(posts(), 1);
}
