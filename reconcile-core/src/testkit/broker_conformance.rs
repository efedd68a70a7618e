#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The broker conformance suite: one plain async function per documented behaviour of
//! [`Broker`], run unchanged against every broker through a [`BrokerHarness`]. Use
//! [`crate::broker_conformance_tests!`] to stamp one test per function.
//!
//! A harness gives the broker as production code composes it (with its retry and pacing
//! decorators), seeds the world it answers about, and breaks its transport the way the real
//! thing breaks: an answer lost after the broker acted, or requests that never get one.

use super::build::{OrderExt, at, dec, holding, order};
use crate::ids::{AccountId, ClientOrderId, OrderId};
use crate::model::{OrderStatus, OrderType, Side, TargetLeg, TimeInForce};
use crate::ports::{Broker, BrokerError, Call, CancelOutcome, PlaceOrder, ReplaceOrder};
use crate::snapshot::BrokerSnapshot;
use async_trait::async_trait;

/// The instant every conformance world is "as of".
pub const NOW: &str = "2025-11-07T15:00:00Z";
/// The short call of the conformance world's spread.
pub const SHORT: &str = "QQQ   251219C00640000";
/// The long call of the conformance world's spread.
pub const LONG: &str = "QQQ   251219C00645000";

/// A broker under test and the means to set up and break its world.
#[async_trait]
pub trait BrokerHarness: Send + Sync {
    /// The broker, decorated as production code uses it.
    fn broker(&self) -> &dyn Broker;
    /// The account the world lives in.
    fn account(&self) -> AccountId;
    /// The largest page the broker serves.
    fn page_size(&self) -> usize;
    /// Adds orders and holdings to the broker's own state. Order ids are kept.
    async fn seed(&self, snapshot: &BrokerSnapshot);
    /// The next request of kind `call` reaches the broker, which acts on it; the answer is lost.
    async fn lose_next_answer(&self, call: Call);
    /// The next `attempts` requests of kind `call` get no answer and do nothing.
    async fn break_transport(&self, call: Call, attempts: usize);
    /// How many orders in the broker's own state carry `cid` (read behind the client's back).
    async fn orders_carrying(&self, cid: &ClientOrderId) -> usize;
    /// The broker's spelling of the suite's order number `n` (brokers differ in id shapes:
    /// TastyTrade numbers, Alpaca UUIDs). Seeded orders keep it; an unseeded one is unknown.
    fn id(&self, n: u64) -> OrderId {
        OrderId::new(n.to_string())
    }
}

/// The conformance world: a short call spread held, one working order closing it, and one
/// cancelled order.
async fn world(h: &dyn BrokerHarness) {
    let a = h.account();
    let mut snap = BrokerSnapshot::new(at(NOW));
    snap.orders = vec![
        order(h.id(412_345_601).as_str(), a.as_str(), "QQQ")
            .limit("0.60")
            .leg(SHORT, Side::BuyToClose, "1")
            .leg(LONG, Side::SellToClose, "1")
            .submitted("2025-11-07T14:00:00Z"),
        order(h.id(412_345_603).as_str(), a.as_str(), "QQQ")
            .status(OrderStatus::Cancelled)
            .limit("0.50")
            .leg(SHORT, Side::BuyToClose, "1")
            .submitted("2025-11-07T09:00:00Z"),
    ];
    snap.positions = Some(vec![
        holding(a.as_str(), SHORT, "-1"),
        holding(a.as_str(), LONG, "1"),
    ]);
    h.seed(&snap).await;
}

fn closing_spread(account: &AccountId, cid: &str) -> PlaceOrder {
    PlaceOrder {
        account: account.clone(),
        underlying: "QQQ".to_owned(),
        client_order_id: cid.into(),
        order_type: OrderType::Limit,
        time_in_force: TimeInForce::Gtc,
        limit_price: Some(dec("0.45")),
        stop_price: None,
        legs: vec![
            TargetLeg {
                symbol: SHORT.into(),
                side: Side::BuyToClose,
                quantity: dec("1"),
            },
            TargetLeg {
                symbol: LONG.into(),
                side: Side::SellToClose,
                quantity: dec("1"),
            },
        ],
    }
}

/// The account the credentials see is listed.
pub async fn lists_its_accounts(h: &dyn BrokerHarness) {
    world(h).await;
    let accounts = h.broker().accounts().await.unwrap();
    assert!(accounts.contains(&h.account()), "{accounts:?}");
}

/// Working orders are read to the last page, each once, and only working ones.
pub async fn working_orders_are_complete_across_pages(h: &dyn BrokerHarness) {
    world(h).await;
    let n = h.page_size() * 2 + 3;
    let a = h.account();
    let mut snap = BrokerSnapshot::new(at(NOW));
    snap.orders = (0..n)
        .map(|i| {
            order(
                h.id(700_000_000 + u64::try_from(i).unwrap()).as_str(),
                a.as_str(),
                "SPY",
            )
            .limit("1.00")
            .leg("SPY", Side::Sell, "1")
            .submitted(&format!("2025-11-07T10:{:02}:{:02}Z", i / 60 % 60, i % 60))
        })
        .collect();
    h.seed(&snap).await;
    let got = h.broker().working_orders(&a).await.unwrap();
    let mut ids: Vec<String> = got.iter().map(|o| o.id.to_string()).collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "an order listed twice");
    assert_eq!(
        ids.len(),
        n + 1,
        "every page read: {n} seeded and the world's one"
    );
    assert!(got.iter().all(|o| o.status.is_working()));
    assert!(
        !ids.contains(&h.id(412_345_603).to_string()),
        "a cancelled order is not working"
    );
}

/// History since a time is read to the last page and holds finished orders too.
pub async fn history_is_complete_across_pages(h: &dyn BrokerHarness) {
    world(h).await;
    let n = h.page_size() * 2 + 1;
    let a = h.account();
    let mut snap = BrokerSnapshot::new(at(NOW));
    snap.orders = (0..n)
        .map(|i| {
            order(
                h.id(600_000_000 + u64::try_from(i).unwrap()).as_str(),
                a.as_str(),
                "SPY",
            )
            .status(OrderStatus::Filled)
            .limit("1.00")
            .leg("SPY", Side::Sell, "1")
            .submitted(&format!("2025-11-06T15:{:02}:{:02}Z", i / 60 % 60, i % 60))
        })
        .collect();
    let seeded: std::collections::HashSet<OrderId> =
        snap.orders.iter().map(|o| o.id.clone()).collect();
    h.seed(&snap).await;
    let got = h
        .broker()
        .order_history(&a, at("2025-11-01T00:00:00Z"))
        .await
        .unwrap();
    let filled = got
        .iter()
        .filter(|o| seeded.contains(&o.id) && o.status == OrderStatus::Filled)
        .count();
    assert_eq!(filled, n, "every page of history read");
    assert!(
        got.iter()
            .any(|o| o.id == h.id(412_345_603) && o.status == OrderStatus::Cancelled)
    );
}

/// Holdings are signed: short is negative.
pub async fn holdings_are_signed(h: &dyn BrokerHarness) {
    world(h).await;
    let mut ps = h.broker().positions(&h.account()).await.unwrap();
    ps.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    let q: Vec<_> = ps
        .iter()
        .map(|p| (p.symbol.to_string(), p.quantity))
        .collect();
    assert_eq!(
        q,
        [(SHORT.to_owned(), dec("-1")), (LONG.to_owned(), dec("1"))]
    );
}

/// An order the broker does not have is a confirmed `Ok(None)`; one it has comes back whole.
pub async fn an_unknown_order_is_a_confirmed_none(h: &dyn BrokerHarness) {
    world(h).await;
    let a = h.account();
    let o = h
        .broker()
        .order(&a, &h.id(412_345_603))
        .await
        .unwrap()
        .expect("the cancelled order");
    assert_eq!(o.status, OrderStatus::Cancelled);
    assert_eq!(o.legs.len(), 1);
    assert_eq!(h.broker().order(&a, &h.id(999_999)).await.unwrap(), None);
}

/// A transport failure that outlasts every retry is an uncertain error, never "not found",
/// never "empty".
pub async fn a_transport_failure_is_never_not_found(h: &dyn BrokerHarness) {
    world(h).await;
    let a = h.account();
    h.break_transport(Call::Order, 50).await;
    let got = h.broker().order(&a, &h.id(412_345_601)).await;
    match got {
        Err(e) => assert!(e.is_uncertain(), "{e}"),
        Ok(o) => panic!("a broken transport answered {o:?}"),
    }
    h.break_transport(Call::WorkingOrders, 50).await;
    let got = h.broker().working_orders(&a).await;
    assert!(
        got.as_ref().is_err_and(BrokerError::is_uncertain),
        "a broken list answered {got:?}"
    );
}

/// Cancel is idempotent: a working order's cancel is requested; cancelling it again or a
/// finished order is no error; an unknown order is `NotFound`.
pub async fn cancel_is_idempotent(h: &dyn BrokerHarness) {
    world(h).await;
    let a = h.account();
    let b = h.broker();
    assert_eq!(
        b.cancel(&a, &h.id(412_345_601)).await.unwrap(),
        CancelOutcome::Requested
    );
    b.cancel(&a, &h.id(412_345_601))
        .await
        .expect("a second cancel is no error");
    assert_eq!(
        b.cancel(&a, &h.id(412_345_603)).await.unwrap(),
        CancelOutcome::AlreadyDone
    );
    let gone = b.cancel(&a, &h.id(999_999)).await.unwrap_err();
    assert!(matches!(gone, BrokerError::NotFound { .. }), "{gone}");
    let o = b.order(&a, &h.id(412_345_601)).await.unwrap().unwrap();
    assert!(
        matches!(
            o.status,
            OrderStatus::PendingCancel | OrderStatus::Cancelled
        ),
        "{:?}",
        o.status
    );
}

/// A placement carries its client order id, and can be found by it.
pub async fn a_placement_carries_its_client_order_id(h: &dyn BrokerHarness) {
    world(h).await;
    let a = h.account();
    let b = h.broker();
    let placed = b.place(&closing_spread(&a, "rc-conf-1-0")).await.unwrap();
    assert_eq!(
        placed.client_order_id.as_ref().map(ClientOrderId::as_str),
        Some("rc-conf-1-0")
    );
    assert!(placed.status.is_working(), "{:?}", placed.status);
    assert_eq!(placed.legs.len(), 2);
    let found = b
        .find_by_client_order_id(&a, &"rc-conf-1-0".into())
        .await
        .unwrap()
        .expect("found by its client order id");
    assert_eq!(found.id, placed.id);
    assert!(
        b.find_by_client_order_id(&a, &"rc-nobody".into())
            .await
            .unwrap()
            .is_none()
    );
}

/// A placement whose answer is lost is an uncertain error; the order exists once, and is found
/// by its client order id. It is never sent again.
pub async fn a_lost_placement_is_found_not_resent(h: &dyn BrokerHarness) {
    world(h).await;
    let a = h.account();
    let cid = ClientOrderId::new("rc-conf-2-0");
    h.lose_next_answer(Call::Place).await;
    let err = h
        .broker()
        .place(&closing_spread(&a, cid.as_str()))
        .await
        .expect_err("the answer was lost");
    assert!(err.is_uncertain(), "{err}");
    assert_eq!(h.orders_carrying(&cid).await, 1, "sent exactly once");
    let found = h
        .broker()
        .find_by_client_order_id(&a, &cid)
        .await
        .unwrap()
        .expect("found after the lost answer");
    assert!(found.status.is_working());
}

/// A replacement has a new id; the original is no longer working and points at it.
pub async fn replace_gives_a_new_order(h: &dyn BrokerHarness) {
    world(h).await;
    let a = h.account();
    let b = h.broker();
    let original = b.order(&a, &h.id(412_345_601)).await.unwrap().unwrap();
    let changes = ReplaceOrder {
        client_order_id: "rc-conf-3-0".into(),
        limit_price: Some(dec("0.40")),
        stop_price: None,
        quantity: None,
    };
    let new = b.replace(&original, &changes).await.unwrap();
    assert_ne!(new.id, original.id);
    assert_eq!(new.replaces.as_ref(), Some(&original.id));
    assert_eq!(new.limit_price, Some(dec("0.40")));
    assert_eq!(new.legs.len(), 2, "the legs are kept");
    let old = b.order(&a, &original.id).await.unwrap().unwrap();
    assert!(!old.status.is_working(), "{:?}", old.status);
    assert_eq!(old.replaced_by.as_ref(), Some(&new.id));
}

/// A refused placement is `Rejected` (certain: nothing was placed), not uncertain.
pub async fn a_refused_placement_is_rejected(h: &dyn BrokerHarness) {
    world(h).await;
    let a = h.account();
    let mut o = closing_spread(&a, "rc-conf-4-0");
    o.legs[0].symbol = "QQQ   251219C00700000".into();
    let err = h.broker().place(&o).await.unwrap_err();
    assert!(matches!(err, BrokerError::Rejected { .. }), "{err}");
    assert!(!err.is_uncertain());
    assert_eq!(h.orders_carrying(&"rc-conf-4-0".into()).await, 0);
}

/// Stamps one `#[tokio::test]` per conformance function. `$make` is an async function that
/// returns a fresh harness.
#[macro_export]
macro_rules! broker_conformance_tests {
    ($make:path) => {
        $crate::broker_conformance_tests!(@ $make;
            lists_its_accounts,
            working_orders_are_complete_across_pages,
            history_is_complete_across_pages,
            holdings_are_signed,
            an_unknown_order_is_a_confirmed_none,
            a_transport_failure_is_never_not_found,
            cancel_is_idempotent,
            a_placement_carries_its_client_order_id,
            a_lost_placement_is_found_not_resent,
            replace_gives_a_new_order,
            a_refused_placement_is_rejected
        );
    };
    (@ $make:path; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let harness = $make().await;
                $crate::testkit::broker_conformance::$name(&harness).await;
            }
        )*
    };
}
