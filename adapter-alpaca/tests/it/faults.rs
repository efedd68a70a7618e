//! Rate limits, retries and lost answers.

use super::*;
use adapter_alpaca::sim::{Fault, FaultRule};
use reconcile_core::testkit::InMemoryStore;
use reconcile_core::testkit::build::{PositionExt, TargetExt, dec, local, position, target};
use reconcile_core::{
    ApplyOptions, Broker, BrokerError, OrderType, Outcome, PlaceOrder, Policy, Reconciler, Store,
    TargetLeg, TimeInForce,
};
use std::time::{Duration, Instant};

fn fast(sim: &Sim) -> adapter_alpaca::DecoratedAlpaca {
    client(sim).with_rate(60_000).decorated()
}

fn gets(sim: &Sim, path: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == path)
        .count()
}

/// A store whose one target sells the 100 AAPL held at 260, with no order yet: a plan places it.
fn one_profit_target_to_place() -> InMemoryStore {
    InMemoryStore::from_snapshot(&local(
        NOW,
        vec![
            position("7", ACCOUNT, "AAPL").leg("AAPL", "100").target(
                target("profit")
                    .limit("260")
                    .qty("100")
                    .leg("AAPL", Side::Sell, "100"),
            ),
        ],
        vec![],
    ))
}

#[tokio::test]
async fn every_answer_carries_the_rate_limit_headers() {
    let (sim, broker) = world().await;
    broker.positions(&acct()).await.unwrap();
    // The headers are the simulator's answer; read them straight off the wire.
    let resp = reqwest_get(&sim, "/v2/positions").await;
    assert_eq!(resp.0, 200);
    assert_eq!(
        resp.1.get("x-ratelimit-limit").map(String::as_str),
        Some("200")
    );
    let remaining: u32 = resp.1["x-ratelimit-remaining"].parse().unwrap();
    assert!(remaining < 200, "{remaining}");
    let reset: i64 = resp.1["x-ratelimit-reset"].parse().unwrap();
    assert!(reset > chrono::Utc::now().timestamp() - 1, "{reset}");
}

/// A plain GET with the simulator's keys: status and lower-cased headers.
async fn reqwest_get(sim: &Sim, path: &str) -> (u16, std::collections::HashMap<String, String>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = reqwest::Client::new()
        .get(format!("{}{path}", sim.base_url()))
        .header("APCA-API-KEY-ID", KEY_ID)
        .header("APCA-API-SECRET-KEY", SECRET_KEY)
        .send()
        .await
        .unwrap();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    (r.status().as_u16(), headers)
}

#[tokio::test]
async fn over_200_a_minute_is_a_429_that_says_when_to_come_back() {
    let (sim, broker) = world().await;
    sim.set_rate_limit(Some(3));
    broker.accounts().await.unwrap();
    broker.positions(&acct()).await.unwrap();
    broker.positions(&acct()).await.unwrap();
    let err = broker.positions(&acct()).await.unwrap_err();
    match err {
        BrokerError::RateLimited {
            retry_after: Some(wait),
            ..
        } => {
            assert!(
                wait > Duration::ZERO && wait <= Duration::from_secs(61),
                "{wait:?}"
            );
        }
        other => panic!("expected a rate limit, got {other}"),
    }
}

#[tokio::test]
async fn a_429_on_a_read_is_retried_after_the_time_it_asks_for() {
    let (sim, _) = world().await;
    let broker = fast(&sim);
    broker.accounts().await.unwrap();
    sim.fail_next(FaultRule::on(
        "GET",
        "/v2/positions",
        Fault::TooManyRequests { retry_after: 1 },
    ));
    let started = Instant::now();
    broker.positions(&acct()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(gets(&sim, "/v2/positions"), 2);
}

#[tokio::test]
async fn a_500_and_a_dropped_connection_on_reads_are_retried() {
    let (sim, _) = world().await;
    let broker = fast(&sim);
    sim.fail_next(FaultRule::on("GET", "/v2/orders", Fault::ServerError));
    sim.fail_next(FaultRule::on("GET", "/v2/orders", Fault::DropConnection));
    assert_eq!(broker.working_orders(&acct()).await.unwrap().len(), 2);
    assert_eq!(gets(&sim, "/v2/orders"), 3);
}

fn sell_wfc(cid: &str) -> PlaceOrder {
    PlaceOrder {
        account: acct(),
        underlying: "WFC".to_owned(),
        client_order_id: cid.into(),
        order_type: OrderType::Limit,
        time_in_force: TimeInForce::Gtc,
        limit_price: Some(dec("61")),
        stop_price: None,
        legs: vec![TargetLeg {
            symbol: "WFC".into(),
            side: Side::Buy,
            quantity: dec("40"),
        }],
    }
}

#[tokio::test]
async fn a_placement_whose_answer_is_lost_is_not_resent_and_is_found_by_its_id() {
    let (sim, _) = world().await;
    let broker = fast(&sim);
    sim.fail_next(FaultRule::on("POST", "/v2/orders", Fault::DropConnection));
    let err = broker.place(&sell_wfc("rc-lost-1")).await.unwrap_err();
    assert!(err.is_uncertain(), "{err}");
    let posts = || sim.requests().iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts(), 1, "a placement is never retried blindly");
    let found = broker
        .find_by_client_order_id(&acct(), &"rc-lost-1".into())
        .await
        .unwrap();
    assert!(found.is_some_and(|o| o.status.is_working()));
    // Sending it again anyway is harmless: Alpaca refuses the id, and the order is looked up.
    let again = broker.place(&sell_wfc("rc-lost-1")).await.unwrap();
    assert_eq!(
        again.client_order_id.as_ref().map(|c| c.as_str()),
        Some("rc-lost-1")
    );
    assert_eq!(
        sim.orders()
            .iter()
            .filter(|o| o.client_order_id == "rc-lost-1")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_500_on_a_placement_is_uncertain_and_not_retried() {
    let (sim, _) = world().await;
    let broker = fast(&sim);
    sim.fail_next(FaultRule::on("POST", "/v2/orders", Fault::ServerError));
    let err = broker.place(&sell_wfc("rc-500-1")).await.unwrap_err();
    assert!(err.is_uncertain(), "{err}");
    assert_eq!(
        sim.requests().iter().filter(|r| r.method == "POST").count(),
        1
    );
}

#[tokio::test]
async fn a_malformed_body_is_a_protocol_error_that_names_the_endpoint() {
    let (sim, broker) = world().await;
    sim.fail_next(FaultRule::on("GET", "/v2/positions", Fault::Malformed));
    let err = broker.positions(&acct()).await.unwrap_err();
    assert!(matches!(err, BrokerError::Protocol { .. }), "{err}");
    assert!(err.to_string().contains("/v2/positions"), "{err}");
}

#[tokio::test]
async fn a_timeout_on_a_placement_does_not_produce_a_second_order() {
    let sim = Sim::start(at(NOW), KEY_ID, SECRET_KEY).await.unwrap();
    let mut snap = BrokerSnapshot::new(at(NOW));
    snap.positions = Some(vec![holding(ACCOUNT, "AAPL", "100")]);
    sim.seed(&snap);
    let broker = client(&sim)
        .with_rate(60_000)
        .with_timeout(Duration::from_millis(300))
        .unwrap()
        .decorated();
    let store = one_profit_target_to_place();
    sim.fail_next(FaultRule::on(
        "POST",
        "/v2/orders",
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
    assert_eq!(r.outcome, Outcome::Applied, "{:?}", out.results);
    assert!(
        r.detail.contains("found after a lost answer"),
        "{}",
        r.detail
    );
    assert!(out.verify.unwrap().in_sync);
    let posts = || sim.requests().iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts(), 1, "never sent twice");
    let (_, plan) = rec.plan(at(NOW)).await.unwrap();
    assert!(plan.is_empty(), "{:?}", plan.actions);
    assert!(
        store
            .audit_log(None)
            .await
            .unwrap()
            .iter()
            .any(|e| e.outcome == Outcome::Applied)
    );
}

#[tokio::test]
async fn a_read_that_fails_after_retries_aborts_the_run_with_nothing_changed() {
    let sim = Sim::start(at(NOW), KEY_ID, SECRET_KEY).await.unwrap();
    let mut snap = BrokerSnapshot::new(at(NOW));
    snap.positions = Some(vec![holding(ACCOUNT, "AAPL", "100")]);
    sim.seed(&snap);
    let broker = client(&sim).with_rate(60_000).decorated();
    let store = one_profit_target_to_place();
    let rec = Reconciler::new(&broker, &store).with_policy(Policy {
        create_missing: true,
        ..Policy::report_only()
    });
    // A plan with a placement to make, then an apply whose own reads fail past the retries.
    let (_, plan) = rec.plan(at(NOW)).await.unwrap();
    assert_eq!(plan.actions.len(), 1, "{:?}", plan.actions);
    let before = store.snapshot(at(NOW));
    for _ in 0..10 {
        sim.fail_next(FaultRule::on("GET", "/v2/positions", Fault::ServerError));
    }
    let err = rec
        .apply(&plan, &ApplyOptions::new("t1", at(NOW)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("500"), "{err}");
    assert!(store.audit_log(None).await.unwrap().is_empty());
    assert_eq!(store.snapshot(at(NOW)), before);
    assert!(sim.requests().iter().all(|r| r.method == "GET"));
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
        Outcome::Applied,
        "{:?}",
        out.results
    );
    assert_eq!(
        sim.requests().iter().filter(|r| r.method == "POST").count(),
        1
    );
}
