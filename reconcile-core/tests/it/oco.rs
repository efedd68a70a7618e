//! Exits of the same shares as one OCO order, and the fills that explain a backfill or a close.

use reconcile_core::report::AdoptVia;
use reconcile_core::testkit::build::*;
use reconcile_core::testkit::{Call, Fault, Faulty, InMemoryBroker, InMemoryStore};
use reconcile_core::{
    Action, ApplyOptions, DiffOptions, OrderStatus, Policy, Reconciler, Side, TargetStatus, diff,
    plan,
};

const NOW: &str = "2025-11-06T16:00:00Z";

fn backfilling() -> Policy {
    Policy {
        backfill: true,
        create_missing: true,
        sync_positions: true,
        ..Policy::report_only()
    }
}

fn qcom_world() -> (
    reconcile_core::LocalSnapshot,
    reconcile_core::BrokerSnapshot,
) {
    let mut bought = order("buy-qcom", "PA3", "QCOM")
        .status(OrderStatus::Filled)
        .leg("QCOM", Side::Buy, "74")
        .submitted("2025-11-06T13:00:01Z");
    bought.filled_at = Some(at("2025-11-06T13:00:03Z"));
    bought.filled_average_price = Some(dec("172.30"));
    let mut sold = order("sell-ftnt", "PA3", "FTNT")
        .status(OrderStatus::Filled)
        .leg("FTNT", Side::Sell, "58")
        .submitted("2025-11-06T13:00:02Z");
    sold.filled_at = Some(at("2025-11-06T13:00:04Z"));
    sold.filled_average_price = Some(dec("81.15"));
    let mut q = holding("PA3", "QCOM", "74");
    q.average_price = Some(dec("172.30"));
    (
        local(
            NOW,
            vec![position("200", "PA3", "FTNT").leg("FTNT", "58")],
            vec![],
        ),
        broker(NOW, vec![bought, sold], Some(vec![q])),
    )
}

#[test]
fn a_stop_and_a_take_profit_on_the_same_shares_are_one_oco_order() {
    let (l, b) = qcom_world();
    let r = diff(&l, &b, &DiffOptions::default()).unwrap();
    let p = plan(&r, &backfilling());
    let ocos: Vec<_> = p
        .actions
        .iter()
        .filter(|a| matches!(a.action, Action::PlaceOco { .. }))
        .collect();
    assert_eq!(ocos.len(), 1, "{:?}", p.actions);
    assert_eq!(ocos[0].key, "place_oco:bf-PA3-QCOM:take_profit+stop_loss");
    assert_eq!(ocos[0].depends_on.as_deref(), Some("backfill:bf-PA3-QCOM"));
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a.action, Action::PlaceTarget { .. })),
        "no exit goes out on its own"
    );
    // Without OCO, only the stop: two independent sells could close the shares twice.
    let p = plan(
        &r,
        &Policy {
            oco: false,
            ..backfilling()
        },
    );
    let singles: Vec<_> = p.actions.iter().map(|a| a.key.as_str()).collect();
    assert!(
        singles.contains(&"place:bf-PA3-QCOM:stop_loss"),
        "{singles:?}"
    );
    assert!(
        !singles.contains(&"place:bf-PA3-QCOM:take_profit"),
        "{singles:?}"
    );
    assert!(
        p.skipped
            .iter()
            .any(|s| s.subject == "place:bf-PA3-QCOM:take_profit")
    );
}

#[test]
fn a_backfill_opens_at_the_fill_and_a_close_records_its_fill() {
    let (l, b) = qcom_world();
    let r = diff(&l, &b, &DiffOptions::default()).unwrap();
    let entry = r.untracked_holdings[0]
        .entry
        .clone()
        .expect("the buy in history");
    assert_eq!(entry.order_id.as_str(), "buy-qcom");
    let closing = r.stale_positions[0]
        .closing
        .clone()
        .expect("the sell in history");
    assert_eq!(closing.order_id.as_str(), "sell-ftnt");
    assert_eq!(closing.price, Some(dec("81.15")));
    let p = plan(&r, &backfilling());
    let bf = p
        .actions
        .iter()
        .find_map(|a| match &a.action {
            Action::Backfill { position, .. } => Some(position.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(bf.opened_at, Some(at("2025-11-06T13:00:03Z")));
    assert_eq!(
        bf.entry_order_id.as_ref().map(|o| o.as_str()),
        Some("buy-qcom")
    );
}

#[tokio::test]
async fn each_target_links_to_its_own_leg_and_a_fill_cancels_the_other() {
    let (l, b) = qcom_world();
    let broker = InMemoryBroker::from_snapshot(&b);
    let store = InMemoryStore::from_snapshot(&l);
    let rec = Reconciler::new(&broker, &store).with_policy(backfilling());
    let (_, p) = rec.plan(at(NOW)).await.unwrap();
    let out = rec
        .apply(&p, &ApplyOptions::new("oco-1", at(NOW)))
        .await
        .unwrap();
    assert!(out.all_done(), "{:?}", out.results);
    let snap = store.snapshot(at(NOW));
    let qcom = snap
        .positions
        .iter()
        .find(|p| p.underlying == "QCOM")
        .unwrap();
    assert_eq!(qcom.opened_at, Some(at("2025-11-06T13:00:03Z")));
    let ftnt = snap
        .positions
        .iter()
        .find(|p| p.id.as_str() == "200")
        .unwrap();
    assert_eq!(
        ftnt.closing.as_ref().map(|c| c.order_id.as_str()),
        Some("sell-ftnt")
    );
    let ids: Vec<_> = qcom
        .targets
        .iter()
        .map(|t| (t.status, t.order_id.clone().unwrap()))
        .collect();
    assert!(ids.iter().all(|(s, _)| *s == TargetStatus::Active));
    assert_ne!(ids[0].1, ids[1].1, "each target has its own leg");
    let orders = broker.orders();
    let group = |id: &reconcile_core::OrderId| {
        orders
            .iter()
            .find(|o| &o.id == id)
            .and_then(|o| o.oco_group.clone())
    };
    assert!(group(&ids[0].1).is_some());
    assert_eq!(group(&ids[0].1), group(&ids[1].1), "one OCO group");
    assert!(out.verify.unwrap().in_sync);
    broker.fill(&ids[0].1);
    let other = broker
        .orders()
        .into_iter()
        .find(|o| o.id == ids[1].1)
        .unwrap();
    assert_eq!(
        other.status,
        OrderStatus::Cancelled,
        "one fills, the other is cancelled"
    );
}

type Logged = reconcile_core::testkit::Recording<Faulty<InMemoryBroker>>;

/// The QCOM backfill applied once with `fault` on its OCO placement: the broker, the store, the
/// apply's report and the OCO placement's result.
async fn apply_with_oco_fault(
    fault: Fault,
) -> (
    Logged,
    InMemoryStore,
    reconcile_core::ApplyReport,
    reconcile_core::ActionResult,
) {
    let (l, b) = qcom_world();
    let broker = Logged::new(Faulty::new(InMemoryBroker::from_snapshot(&b)));
    broker.fail_next(Call::PlaceOco, fault);
    let store = InMemoryStore::from_snapshot(&l);
    let rec = Reconciler::new(&broker, &store).with_policy(backfilling());
    let (_, p) = rec.plan(at(NOW)).await.unwrap();
    let out = rec
        .apply(&p, &ApplyOptions::new("oco-2", at(NOW)))
        .await
        .unwrap();
    let r = out
        .results
        .iter()
        .find(|r| r.key.starts_with("place_oco:"))
        .unwrap()
        .clone();
    (broker, store, out, r)
}

#[tokio::test]
async fn a_lost_oco_answer_is_found_with_its_group_and_not_resent() {
    let (broker, _, out, r) = apply_with_oco_fault(Fault::LoseAnswer).await;
    assert!(
        r.detail.contains("found after a lost answer"),
        "{}",
        r.detail
    );
    assert_eq!(
        broker.placed().len(),
        2,
        "one OCO order: its two exits, sent once"
    );
    assert!(out.verify.unwrap().in_sync);
}

#[tokio::test]
async fn a_crash_between_an_oco_send_and_its_links_is_healed_by_the_next_run() {
    let (l, b) = qcom_world();
    let broker = InMemoryBroker::from_snapshot(&b);
    let store = InMemoryStore::from_snapshot(&l);
    let mut rec = Reconciler::new(&broker, &store).with_policy(backfilling());
    rec.settle = chrono::TimeDelta::zero();
    let (_, p) = rec.plan(at(NOW)).await.unwrap();
    // The links after the OCO send are the fourth write: backfill, close, intent, links.
    store.fail_write(4);
    rec.apply(&p, &ApplyOptions::new("oco-3", at(NOW)))
        .await
        .unwrap();
    let left = store.snapshot(at(NOW));
    assert_eq!(left.intents.len(), 1, "killed between send and link");
    assert!(left.intents[0].oco_with.is_some());
    // The diff alone already sees both exits as the targets' own.
    let r = rec.diff(at(NOW)).await.unwrap();
    let vias: Vec<_> = r
        .adoptable
        .iter()
        .map(|a| (a.target_key.to_string(), a.via))
        .collect();
    assert_eq!(
        vias,
        [
            ("stop_loss".to_owned(), AdoptVia::ClientOrderId),
            ("take_profit".to_owned(), AdoptVia::ClientOrderId)
        ]
    );
    let (_, p2) = rec.plan(at(NOW)).await.unwrap();
    let out = rec
        .apply(&p2, &ApplyOptions::new("oco-4", at(NOW)))
        .await
        .unwrap();
    assert!(out.verify.unwrap().in_sync);
    assert_eq!(broker.placed().len(), 2, "nothing sent again");
    assert!(store.snapshot(at(NOW)).intents.is_empty());
}

#[test]
fn an_option_holding_gets_no_equity_bracket_unless_options_have_a_policy() {
    let (l, mut b) = qcom_world();
    let call = "QQQ   251219C00640000";
    let mut held = holding("PA3", call, "2");
    held.average_price = Some(dec("4.00"));
    b.positions.as_mut().unwrap().push(held);
    let r = diff(&l, &b, &DiffOptions::default()).unwrap();
    assert_eq!(r.untracked_holdings.len(), 2);
    let p = plan(&r, &backfilling());
    let backfilled: Vec<_> = p
        .actions
        .iter()
        .filter_map(|a| match &a.action {
            Action::Backfill { position, .. } => Some(position.underlying.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        backfilled,
        ["QCOM"],
        "the option is not bracketed like shares"
    );
    let why = p
        .skipped
        .iter()
        .find(|s| s.subject == "backfill:bf-PA3-QQQ251219C00640000")
        .expect("the option is listed for a person");
    assert!(why.reason.contains("left for a person"), "{}", why.reason);
    assert_eq!(
        p.backfill_total_risk,
        Some(dec("1019.72")),
        "QCOM's risk alone"
    );

    let with_options = Policy {
        options_bracket: Some(reconcile_core::BracketPolicy {
            stop_loss_pct: dec("50"),
            take_profit_pct: dec("50"),
        }),
        ..backfilling()
    };
    let p = plan(&r, &with_options);
    let risk = p
        .actions
        .iter()
        .find_map(|a| match &a.action {
            Action::Backfill { position, risk } if position.underlying == "QQQ" => risk.clone(),
            _ => None,
        })
        .expect("backfilled under the options policy");
    assert_eq!(
        (risk.stop_price, risk.target_price),
        (dec("2.00"), dec("6.00"))
    );
}

#[tokio::test]
async fn a_refused_oco_order_fails_records_the_error_on_both_exits_and_is_not_looked_for() {
    let refused = Fault::Fail(reconcile_core::BrokerError::Rejected {
        broker: "x".into(),
        message: "insufficient buying power".into(),
    });
    let (broker, store, _, r) = apply_with_oco_fault(refused).await;
    assert_eq!(r.outcome, reconcile_core::Outcome::Failed, "{}", r.detail);
    assert_eq!(
        broker.count(Call::FindByClientOrderId),
        0,
        "a refusal is not a lost answer"
    );
    let now = store.snapshot(at(NOW));
    assert!(
        now.intents.is_empty(),
        "the refused order's intent is dropped"
    );
    let backfilled = now
        .positions
        .iter()
        .find(|p| p.underlying == "QCOM")
        .unwrap();
    for t in &backfilled.targets {
        let e = t.last_error.as_deref().unwrap_or_default();
        assert!(e.contains("insufficient buying power"), "{}: {e:?}", t.key);
    }
}
