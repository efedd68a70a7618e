//! Every adapter call through the simulator, over HTTP: what is sent, and what comes back.

use super::*;
use reconcile_core::testkit::build::dec;
use reconcile_core::{
    Broker, BrokerError, CancelOutcome, OrderId, OrderType, PlaceOrder, ReplaceOrder, TargetLeg,
    TimeInForce, read_broker,
};
use serde_json::Value;

fn sell(symbol: &str, qty: &str, cid: &str, kind: OrderType, price: &str) -> PlaceOrder {
    PlaceOrder {
        account: acct(),
        underlying: symbol.to_owned(),
        client_order_id: cid.into(),
        order_type: kind,
        time_in_force: TimeInForce::Gtc,
        limit_price: (kind == OrderType::Limit).then(|| dec(price)),
        stop_price: (kind == OrderType::Stop).then(|| dec(price)),
        legs: vec![TargetLeg {
            symbol: symbol.into(),
            side: Side::Sell,
            quantity: dec(qty),
        }],
    }
}

fn body(r: &adapter_alpaca::sim::LoggedRequest) -> Value {
    serde_json::from_str(&r.body).unwrap()
}

#[tokio::test]
async fn every_request_carries_the_key_headers_and_the_account_is_read_once() {
    let (sim, broker) = world().await;
    assert_eq!(broker.accounts().await.unwrap(), vec![acct()]);
    broker.positions(&acct()).await.unwrap();
    broker.working_orders(&acct()).await.unwrap();
    let reqs = sim.requests();
    assert_eq!(reqs.iter().filter(|r| r.path == "/v2/account").count(), 1);
    for r in &reqs {
        assert_eq!(r.header("APCA-API-KEY-ID"), Some(KEY_ID));
        assert_eq!(r.header("APCA-API-SECRET-KEY"), Some(SECRET_KEY));
        assert!(!r.bearer());
        assert!(
            r.user_agent()
                .is_some_and(|ua| ua.starts_with("reconcile/"))
        );
    }
}

#[tokio::test]
async fn oauth_sends_a_bearer_token_and_a_wrong_one_is_unauthenticated() {
    let (sim, _) = world().await;
    sim.accept_oauth_token("oauth-token-9d3e");
    let good =
        AlpacaBroker::with_oauth(sim.base_url(), SecretString::from("oauth-token-9d3e")).unwrap();
    assert_eq!(good.accounts().await.unwrap(), vec![acct()]);
    assert!(sim.requests().last().unwrap().bearer());
    let bad = AlpacaBroker::with_oauth(sim.base_url(), SecretString::from("expired")).unwrap();
    let err = bad.accounts().await.unwrap_err();
    assert!(matches!(err, BrokerError::Unauthenticated { .. }), "{err}");
    assert!(err.to_string().contains("40110000"), "{err}");
}

#[tokio::test]
async fn working_orders_are_read_nested_and_the_oco_pair_shares_its_group() {
    let (sim, broker) = world().await;
    let mut orders = broker.working_orders(&acct()).await.unwrap();
    orders.sort_by(|a, b| a.id.cmp(&b.id));
    let got: Vec<_> = orders
        .iter()
        .map(|o| {
            (
                o.id.as_str(),
                o.status,
                o.oco_group.as_ref().map(OrderId::as_str),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (TARGET, OrderStatus::Live, Some(TARGET)),
            (STOP, OrderStatus::Held, Some(TARGET))
        ]
    );
    let q = sim.requests().last().unwrap().query.clone();
    for part in ["status=open", "nested=true", "limit=500", "direction=desc"] {
        assert!(q.contains(part), "{q}");
    }
}

#[tokio::test]
async fn history_asks_for_every_status_after_a_bound() {
    let (sim, broker) = world().await;
    let all = broker
        .order_history(&acct(), at("2025-11-06T00:00:00Z"))
        .await
        .unwrap();
    let find = |id: &str| all.iter().find(|o| o.id.as_str() == id).map(|o| o.status);
    assert_eq!(find(FILLED), Some(OrderStatus::Filled));
    assert_eq!(find(CANCELLED), Some(OrderStatus::Cancelled));
    let q = sim.requests().last().unwrap().query.clone();
    assert!(q.contains("status=all"), "{q}");
    assert!(q.contains("after=2025-11-05T23%3A59%3A59.999999Z"), "{q}");
    let filled = all.iter().find(|o| o.id.as_str() == FILLED).unwrap();
    assert_eq!(filled.legs[0].filled_quantity, dec("100"));
    assert!(filled.filled_at.is_some());
}

#[tokio::test]
async fn pages_overlap_at_their_edge_so_a_group_split_by_it_is_read_whole() {
    let (sim, broker) = world().await;
    // 501 orders of one second each, then the edge of the first page falls inside a pair that
    // shares a submit time.
    let mut snap = BrokerSnapshot::new(at(NOW));
    snap.orders = (0..1_001u32)
        .map(|i| {
            let t = format!(
                "2025-11-05T{:02}:{:02}:{:02}Z",
                10 + (i / 2) / 3600,
                (i / 2) / 60 % 60,
                (i / 2) % 60
            );
            order(&format!("00000000-0000-4000-8000-{i:012}"), ACCOUNT, "SPY")
                .filled()
                .leg("SPY", Side::Buy, "1")
                .filled()
                .submitted(&t)
        })
        .collect();
    sim.seed(&snap);
    let all = broker
        .order_history(&acct(), at("2025-11-05T00:00:00Z"))
        .await
        .unwrap();
    let seeded = all
        .iter()
        .filter(|o| o.id.as_str().starts_with("00000000-"))
        .count();
    assert_eq!(seeded, 1_001, "every order once");
    let pages: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v2/orders")
        .collect();
    assert_eq!(
        pages.len(),
        3,
        "1,005 orders in pages of 500 that overlap by 3"
    );
    assert!(pages[1].query.contains("until="), "{}", pages[1].query);
}

#[tokio::test]
async fn a_bracket_whose_entry_filled_keeps_its_exits_in_the_read_though_open_lists_miss_them() {
    let (sim, broker) = world().await;
    let entry = "5a1c0000-0000-4000-8000-0000000000b0";
    let mut snap = BrokerSnapshot::new(at(NOW));
    snap.orders = vec![
        order(entry, ACCOUNT, "MSFT")
            .leg("MSFT", Side::Buy, "10")
            .filled()
            .submitted("2025-11-06T10:00:00Z"),
        order("5a1c0000-0000-4000-8000-0000000000b1", ACCOUNT, "MSFT")
            .limit("520")
            .leg("MSFT", Side::Sell, "10")
            .oco(entry)
            .submitted("2025-11-06T10:00:00Z"),
        order("5a1c0000-0000-4000-8000-0000000000b2", ACCOUNT, "MSFT")
            .status(OrderStatus::Held)
            .stop("480")
            .leg("MSFT", Side::Sell, "10")
            .oco(entry)
            .submitted("2025-11-06T10:00:00Z"),
    ];
    sim.seed(&snap);
    // Alpaca lists a filled parent's exits under neither `open` reading.
    let working = broker.working_orders(&acct()).await.unwrap();
    assert!(
        working.iter().all(|o| o.underlying != "MSFT"),
        "{working:?}"
    );
    // The reconciler's read (working orders and history since the lookback) still has them.
    let read = read_broker(&broker, &[acct()], at("2025-11-05T00:00:00Z"), at(NOW))
        .await
        .unwrap();
    let exits: Vec<_> = read
        .orders
        .iter()
        .filter(|o| o.underlying == "MSFT" && o.status.is_working())
        .map(|o| o.oco_group.as_ref().map(OrderId::as_str))
        .collect();
    assert_eq!(exits, [Some(entry), Some(entry)]);
}

#[tokio::test]
async fn positions_are_signed_with_their_average_price() {
    let (_sim, broker) = world().await;
    let mut ps = broker.positions(&acct()).await.unwrap();
    ps.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    let got: Vec<_> = ps.iter().map(|p| (p.symbol.as_str(), p.quantity)).collect();
    assert_eq!(got, [("AAPL", dec("100")), ("WFC", dec("-40"))]);
}

#[tokio::test]
async fn a_placement_sends_strings_and_its_client_order_id_and_answers_pending() {
    let (sim, broker) = world().await;
    let o = broker
        .place(&sell("WFC", "40", "rc-a-1", OrderType::Limit, "60"))
        .await;
    // Selling a short position's shares is not a close: the simulator lets it open more short.
    let o = o.unwrap();
    assert_eq!(
        o.status,
        OrderStatus::Pending,
        "new orders are pending_new until routed"
    );
    let sent = body(
        sim.requests()
            .iter()
            .rev()
            .find(|r| r.method == "POST")
            .unwrap(),
    );
    assert_eq!(sent["qty"], "40");
    assert_eq!(sent["limit_price"], "60");
    assert_eq!(sent["client_order_id"], "rc-a-1");
    assert_eq!(sent["time_in_force"], "gtc");
    assert_eq!(sent["type"], "limit");
    let again = broker.order(&acct(), &o.id).await.unwrap().unwrap();
    assert_eq!(
        again.status,
        OrderStatus::Live,
        "routed by the next request"
    );
}

#[tokio::test]
async fn exits_of_the_same_shares_go_out_as_one_oco_order_and_hold_them_once() {
    let (sim, broker) = world().await;
    sim.cancel_by_hand(TARGET);
    let tp = sell("AAPL", "100", "rc-oco-1", OrderType::Limit, "260");
    let mut sl = sell("AAPL", "100", "rc-oco-1-sl", OrderType::Stop, "175");
    sl.limit_price = None;
    let pair = broker.place_oco(&tp, &sl).await.unwrap();
    assert_eq!(
        pair.take_profit.oco_group,
        Some(pair.take_profit.id.clone())
    );
    assert_eq!(pair.stop_loss.oco_group, Some(pair.take_profit.id.clone()));
    assert_eq!(pair.stop_loss.stop_price, Some(dec("175")));
    let sent = body(
        sim.requests()
            .iter()
            .rev()
            .find(|r| r.method == "POST")
            .unwrap(),
    );
    assert_eq!(sent["order_class"], "oco");
    assert_eq!(sent["take_profit"]["limit_price"], "260");
    assert_eq!(sent["stop_loss"]["stop_price"], "175");
    // The pair holds the 100 shares once; one more sell of them is refused, with Alpaca's
    // held-quantity details.
    let err = broker
        .place(&sell("AAPL", "100", "rc-oco-2", OrderType::Limit, "270"))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Rejected { .. }), "{err}");
    assert!(
        err.to_string().contains("insufficient qty available"),
        "{err}"
    );
}

#[tokio::test]
async fn two_independent_sells_of_held_shares_are_refused() {
    let (sim, broker) = world().await;
    sim.cancel_by_hand(TARGET);
    broker
        .place(&sell("AAPL", "100", "rc-ind-1", OrderType::Limit, "260"))
        .await
        .unwrap();
    let err = broker
        .place(&sell("AAPL", "100", "rc-ind-2", OrderType::Stop, "175"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    assert!(err.to_string().contains("available: 0"), "{err}");
}

#[tokio::test]
async fn a_duplicate_client_order_id_finds_the_existing_order_and_sends_nothing_new() {
    let (sim, broker) = world().await;
    let first = broker
        .place(&sell("WFC", "1", "rc-dup-1", OrderType::Limit, "61"))
        .await
        .unwrap();
    let second = broker
        .place(&sell("WFC", "1", "rc-dup-1", OrderType::Limit, "61"))
        .await
        .unwrap();
    assert_eq!(first.id, second.id);
    assert_eq!(
        sim.orders()
            .iter()
            .filter(|o| o.client_order_id == "rc-dup-1")
            .count(),
        1
    );
    // Unique for ever: even once the first is cancelled, the id is refused, and found.
    sim.cancel_by_hand(first.id.as_str());
    let third = broker
        .place(&sell("WFC", "1", "rc-dup-1", OrderType::Limit, "61"))
        .await
        .unwrap();
    assert_eq!(third.id, first.id);
    assert_eq!(third.status, OrderStatus::Cancelled);
}

#[tokio::test]
async fn cancel_requests_confirms_and_tells_finished_from_unknown() {
    let (sim, broker) = world().await;
    assert_eq!(
        broker.cancel(&acct(), &TARGET.into()).await.unwrap(),
        CancelOutcome::Requested
    );
    let del = sim
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == "DELETE")
        .unwrap();
    assert_eq!(del.path, format!("/v2/orders/{TARGET}"));
    // Cancelling one exit of the OCO cancels its group.
    let stop = broker.order(&acct(), &STOP.into()).await.unwrap().unwrap();
    assert!(!stop.status.is_working(), "{:?}", stop.status);
    assert_eq!(
        broker.cancel(&acct(), &FILLED.into()).await.unwrap(),
        CancelOutcome::AlreadyDone
    );
    let unknown = broker
        .cancel(&acct(), &"5a1c0000-0000-4000-8000-00000000ffff".into())
        .await
        .unwrap_err();
    assert!(matches!(unknown, BrokerError::NotFound { .. }), "{unknown}");
    let before = sim.requests().len();
    let not_alpaca = broker
        .cancel(&acct(), &"412345601".into())
        .await
        .unwrap_err();
    assert!(
        matches!(not_alpaca, BrokerError::NotFound { .. }),
        "{not_alpaca}"
    );
    assert_eq!(
        sim.requests().len(),
        before,
        "an id that is no UUID is not sent"
    );
}

#[tokio::test]
async fn replace_sends_its_client_order_id_and_gets_a_new_order() {
    let (sim, broker) = world().await;
    let original = broker
        .order(&acct(), &TARGET.into())
        .await
        .unwrap()
        .unwrap();
    let changes = ReplaceOrder {
        client_order_id: "rc-rep-1".into(),
        limit_price: Some(dec("255.5")),
        stop_price: None,
        quantity: None,
    };
    let new = broker.replace(&original, &changes).await.unwrap();
    assert_ne!(new.id, original.id);
    assert_eq!(new.replaces.as_ref(), Some(&original.id));
    assert_eq!(
        new.client_order_id.as_ref().map(|c| c.as_str()),
        Some("rc-rep-1")
    );
    let patch = sim
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == "PATCH")
        .unwrap();
    let sent = body(&patch);
    assert_eq!(sent["client_order_id"], "rc-rep-1");
    assert_eq!(sent["limit_price"], "255.5");
    let old = broker.order(&acct(), &original.id).await.unwrap().unwrap();
    assert_eq!(old.status, OrderStatus::Replaced);
    assert_eq!(old.replaced_by.as_ref(), Some(&new.id));
}

#[tokio::test]
async fn a_replace_before_the_order_is_routed_is_refused() {
    let (sim, broker) = world().await;
    sim.hold_confirmations(true);
    let o = broker
        .place(&sell("WFC", "1", "rc-early-1", OrderType::Limit, "61"))
        .await
        .unwrap();
    let changes = ReplaceOrder {
        client_order_id: "rc-early-2".into(),
        limit_price: Some(dec("62")),
        stop_price: None,
        quantity: None,
    };
    let err = broker.replace(&o, &changes).await.unwrap_err();
    assert!(matches!(err, BrokerError::Rejected { .. }), "{err}");
    assert!(
        err.to_string().contains("isn't sent to exchange yet"),
        "{err}"
    );
}

#[tokio::test]
async fn option_orders_are_day_orders_with_a_position_intent_and_spreads_are_mleg() {
    let (sim, broker) = world().await;
    let short = "QQQ   251219C00640000";
    let long = "QQQ   251219C00645000";
    let mut snap = BrokerSnapshot::new(at(NOW));
    snap.positions = Some(vec![
        holding(ACCOUNT, short, "-1"),
        holding(ACCOUNT, long, "1"),
    ]);
    sim.seed(&snap);
    let spread = PlaceOrder {
        account: acct(),
        underlying: "QQQ".to_owned(),
        client_order_id: "rc-mleg-1".into(),
        order_type: OrderType::Limit,
        time_in_force: TimeInForce::Gtc,
        limit_price: Some(dec("0.45")),
        stop_price: None,
        legs: vec![
            TargetLeg {
                symbol: short.into(),
                side: Side::BuyToClose,
                quantity: dec("1"),
            },
            TargetLeg {
                symbol: long.into(),
                side: Side::SellToClose,
                quantity: dec("1"),
            },
        ],
    };
    let placed = broker.place(&spread).await.unwrap();
    assert_eq!(placed.legs.len(), 2);
    assert_eq!(placed.limit_price, Some(dec("0.45")));
    let sent = body(
        sim.requests()
            .iter()
            .rev()
            .find(|r| r.method == "POST")
            .unwrap(),
    );
    assert_eq!(sent["order_class"], "mleg");
    assert_eq!(
        sent["time_in_force"], "day",
        "options are day orders at Alpaca"
    );
    assert_eq!(sent["limit_price"], "0.45", "a debit is positive");
    assert_eq!(
        sent["legs"][0]["symbol"], "QQQ251219C00640000",
        "compact OCC"
    );
    assert_eq!(sent["legs"][0]["position_intent"], "buy_to_close");
    // A close of a contract not held is refused.
    let mut none = spread.clone();
    none.client_order_id = "rc-mleg-2".into();
    none.legs[0].symbol = "QQQ   251219C00700000".into();
    let err = broker.place(&none).await.unwrap_err();
    assert!(matches!(err, BrokerError::Rejected { .. }), "{err}");
}

#[tokio::test]
async fn another_account_is_not_found_and_sends_no_order_request() {
    let (sim, broker) = world().await;
    let other: reconcile_core::AccountId = "PA9OTHER".into();
    let err = broker.working_orders(&other).await.unwrap_err();
    assert!(matches!(err, BrokerError::NotFound { .. }), "{err}");
    assert!(sim.requests().iter().all(|r| r.path != "/v2/orders"));
}

#[tokio::test]
async fn a_sub_penny_price_is_rejected_with_alpacas_words() {
    let (_sim, broker) = world().await;
    let err = broker
        .place(&sell("WFC", "1", "rc-sub-1", OrderType::Limit, "61.005"))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("sub-penny"), "{err}");
}
