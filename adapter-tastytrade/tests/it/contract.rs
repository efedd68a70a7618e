//! Every adapter call, through the simulator.

use super::*;
use reconcile_core::{
    Broker, CancelOutcome, OrderId, OrderType, PlaceOrder, ReplaceOrder, TargetLeg, TimeInForce,
};

fn acct() -> reconcile_core::AccountId {
    "5WT00001".into()
}

#[tokio::test]
async fn accounts_and_headers() {
    let (sim, broker) = world().await;
    assert_eq!(broker.accounts().await.unwrap(), vec![acct()]);
    let reqs = sim.requests();
    assert_eq!(reqs[0].path, "/oauth/token");
    assert!(!reqs[0].bearer(), "the token request carries no bearer");
    assert!(reqs[1].bearer());
    assert!(reqs.iter().all(|r| {
        r.user_agent()
            .is_some_and(|ua| ua.starts_with("reconcile/"))
    }));
}

#[tokio::test]
async fn working_orders_keep_working_statuses_only() {
    let (_sim, broker) = world().await;
    let mut orders = broker.working_orders(&acct()).await.unwrap();
    orders.sort_by(|a, b| a.id.cmp(&b.id));
    let ids: Vec<_> = orders
        .iter()
        .map(|o| (o.id.to_string(), o.status))
        .collect();
    assert_eq!(
        ids,
        [
            ("412345601".to_owned(), OrderStatus::Live),
            ("412345602".to_owned(), OrderStatus::Pending)
        ]
    );
    let o = &orders[0];
    assert_eq!(o.legs[0].symbol.as_str(), C640);
    assert_eq!(
        o.limit_price,
        Some(reconcile_core::testkit::build::dec("0.60"))
    );
    assert_eq!(o.raw_status.as_deref(), Some("Live"));
    assert!(o.updated_at.is_some(), "epoch-ms updated-at parsed");
}

#[tokio::test]
async fn history_sends_a_start_date_and_pages_to_the_end() {
    let (sim, broker) = world().await;
    let mut snap = BrokerSnapshot::new(at(NOW));
    snap.orders = (0..450)
        .map(|i| {
            order(&format!("{}", 600_000_000 + i), "5WT00001", "SPY")
                .status(OrderStatus::Filled)
                .submitted("2025-11-06T15:00:00Z")
        })
        .collect();
    sim.seed(&snap);
    let all = broker
        .order_history(&acct(), at("2025-11-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(all.len(), 453);
    let pages: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/accounts/5WT00001/orders")
        .collect();
    assert_eq!(pages.len(), 3, "450 + 3 orders at 200 a page");
    assert!(
        pages
            .iter()
            .all(|r| r.query.contains("start-date=2025-11-01") && r.query.contains("per-page=200"))
    );
    assert!(pages[2].query.contains("page-offset=2"));
}

#[tokio::test]
async fn positions_are_signed() {
    let (_sim, broker) = world().await;
    let mut ps = broker.positions(&acct()).await.unwrap();
    ps.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    assert_eq!(ps[0].quantity, reconcile_core::testkit::build::dec("-1"));
    assert_eq!(ps[1].quantity, reconcile_core::testkit::build::dec("1"));
}

#[tokio::test]
async fn one_order_and_not_found() {
    let (_sim, broker) = world().await;
    let o = broker
        .order(&acct(), &OrderId::new("412345603"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(o.status, OrderStatus::Cancelled);
    assert_eq!(
        broker.order(&acct(), &OrderId::new("999")).await.unwrap(),
        None
    );
}

fn closing(cid: &str) -> PlaceOrder {
    PlaceOrder {
        account: acct(),
        underlying: "QQQ".to_owned(),
        client_order_id: cid.into(),
        order_type: OrderType::Limit,
        time_in_force: TimeInForce::Gtc,
        limit_price: Some(reconcile_core::testkit::build::dec("0.45")),
        stop_price: None,
        legs: vec![
            TargetLeg {
                symbol: C640.into(),
                side: Side::BuyToClose,
                quantity: 1.into(),
            },
            TargetLeg {
                symbol: C645.into(),
                side: Side::SellToClose,
                quantity: 1.into(),
            },
        ],
    }
}

#[tokio::test]
async fn place_sends_external_identifier_and_strict_validation_then_finds_it() {
    let (sim, broker) = world().await;
    let placed = broker.place(&closing("rc-run-1-0")).await.unwrap();
    assert_eq!(
        placed.client_order_id.as_ref().map(|c| c.as_str()),
        Some("rc-run-1-0")
    );
    assert!(placed.status.is_working(), "{:?}", placed.status);
    let body = sim
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/orders"))
        .unwrap()
        .body;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["external-identifier"], "rc-run-1-0");
    assert_eq!(
        v["advanced-instructions"]["strict-position-effect-validation"],
        true
    );
    assert_eq!(v["time-in-force"], "GTC");
    assert_eq!(v["price-effect"], "Debit");
    assert_eq!(v["legs"][0]["action"], "Buy to Close");
    assert_eq!(v["legs"][0]["instrument-type"], "Equity Option");
    let found = broker
        .find_by_client_order_id(&acct(), &"rc-run-1-0".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, placed.id);
    assert!(
        broker
            .find_by_client_order_id(&acct(), &"nope".into())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_close_with_no_position_is_rejected_not_opened() {
    let (_sim, broker) = world().await;
    let mut o = closing("rc-x");
    o.legs[0].symbol = "QQQ   251219C00700000".into();
    let err = broker.place(&o).await.unwrap_err();
    assert!(
        matches!(err, reconcile_core::BrokerError::Rejected { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("preflight_check_failure"), "{err}");
}

#[tokio::test]
async fn cancel_requests_and_a_finished_order_is_already_done() {
    let (_sim, broker) = world().await;
    assert_eq!(
        broker.cancel(&acct(), &"412345601".into()).await.unwrap(),
        CancelOutcome::Requested
    );
    assert_eq!(
        broker.cancel(&acct(), &"412345603".into()).await.unwrap(),
        CancelOutcome::AlreadyDone
    );
    let gone = broker.cancel(&acct(), &"999".into()).await.unwrap_err();
    assert!(matches!(gone, reconcile_core::BrokerError::NotFound { .. }));
}

#[tokio::test]
async fn replace_gives_a_new_id_and_keeps_the_legs() {
    let (_sim, broker) = world().await;
    let changes = ReplaceOrder {
        client_order_id: "rc-run-2-0".into(),
        limit_price: Some(reconcile_core::testkit::build::dec("0.40")),
        stop_price: None,
        quantity: None,
    };
    let original = broker
        .order(&acct(), &"412345601".into())
        .await
        .unwrap()
        .unwrap();
    let new = broker.replace(&original, &changes).await.unwrap();
    assert_ne!(new.id.as_str(), "412345601");
    assert_eq!(new.replaces.as_ref().map(|r| r.as_str()), Some("412345601"));
    assert_eq!(new.legs.len(), 2);
    let old = broker
        .order(&acct(), &"412345601".into())
        .await
        .unwrap()
        .unwrap();
    assert!(!old.status.is_working());
    assert_eq!(old.replaced_by, Some(new.id.clone()));
}
