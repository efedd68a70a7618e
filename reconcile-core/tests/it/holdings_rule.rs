//! The holdings rule across orders: what working orders already close of a holding, ours and
//! theirs, plus what a plan places never exceeds it (the exits of one OCO group count once).

use reconcile_core::testkit::build::*;
use reconcile_core::testkit::{InMemoryBroker, InMemoryStore};
use reconcile_core::{
    Action, ApplyOptions, DiffOptions, OrderStatus, Plan, Policy, Reconciler, Side, diff, plan,
};

const NOW: &str = "2025-11-06T16:00:00Z";
const LONG_AGO: &str = "2025-11-06T13:00:00Z";

fn placing() -> Policy {
    Policy {
        create_missing: true,
        backfill: true,
        // Their orders here are orphans: not a broken read.
        force: true,
        ..Policy::report_only()
    }
}

fn placements(p: &Plan) -> Vec<&str> {
    p.actions
        .iter()
        .filter(|a| {
            matches!(
                a.action,
                Action::PlaceTarget { .. } | Action::PlaceOco { .. }
            )
        })
        .map(|a| a.key.as_str())
        .collect()
}

/// A working OCO pair selling 60 QCOM, placed long ago: a take profit at 199.87 (the group's
/// parent) and a stop at 150.00.
fn qcom_oco_exits(take: &str, stop: &str) -> [reconcile_core::Order; 2] {
    let exit = |id: &str| {
        order(id, "PA3", "QCOM")
            .leg("QCOM", Side::Sell, "60")
            .oco(take)
            .submitted(LONG_AGO)
    };
    [exit(take).limit("199.87"), exit(stop).stop("150.00")]
}

/// `subject` was left out of the plan, for a reason that says `why`.
fn assert_skipped(p: &Plan, subject: &str, why: &str) {
    let reason = crate::skipped(p, subject).unwrap_or_else(|| panic!("{subject} not skipped"));
    assert!(reason.contains(why), "{reason}");
}

/// An open position of `qty` QCOM with one missing stop for `stop_qty` of it.
fn qcom(id: &str, qty: &str, stop_qty: &str) -> reconcile_core::Position {
    position(id, "PA3", "QCOM").leg("QCOM", qty).target(
        target("stop_loss")
            .stop("158.52")
            .qty(stop_qty)
            .leg("QCOM", Side::Sell, stop_qty),
    )
}

#[test]
fn a_working_sell_of_theirs_leaves_no_room_for_a_stop() {
    // (Of another size than the stop: else it would be the stop's to adopt.)
    let theirs = order("their-sell", "PA3", "QCOM")
        .limit("199.87")
        .leg("QCOM", Side::Sell, "70")
        .submitted(LONG_AGO);
    let l = local(NOW, vec![qcom("1", "74", "74")], vec![]);
    let b = broker(NOW, vec![theirs], Some(vec![holding("PA3", "QCOM", "74")]));
    let r = diff(&l, &b, &DiffOptions::default()).unwrap();
    let spec = &r.missing[0].spec;
    let working = spec.working_closing.as_ref().expect("working_closing");
    assert_eq!(working[0].quantity, dec("70"));
    let p = plan(&r, &placing());
    assert!(placements(&p).is_empty(), "{:?}", p.actions);
    assert_skipped(&p, "place:1:stop_loss", "working orders already close 70");
}

#[test]
fn the_exits_of_one_oco_group_count_once() {
    // 100 held; their OCO pair closes 60 (either exit, not both): 40 are free for our stop.
    let [take, stop] = qcom_oco_exits("their-take", "their-stop");
    let l = local(NOW, vec![qcom("1", "100", "40")], vec![]);
    let b = broker(
        NOW,
        vec![take.clone(), stop.clone()],
        Some(vec![holding("PA3", "QCOM", "100")]),
    );
    let r = diff(&l, &b, &DiffOptions::default()).unwrap();
    assert_eq!(
        r.missing[0].spec.working_closing.as_ref().unwrap()[0].quantity,
        dec("60")
    );
    let p = plan(&r, &placing());
    assert_eq!(placements(&p), ["place:1:stop_loss"], "{:?}", p.skipped);

    // Apart, the same two orders could both fill: 120 spoken for, nothing free.
    let (mut take, mut stop) = (take, stop);
    take.oco_group = None;
    stop.oco_group = None;
    let b = broker(
        NOW,
        vec![take, stop],
        Some(vec![holding("PA3", "QCOM", "100")]),
    );
    let r = diff(&l, &b, &DiffOptions::default()).unwrap();
    let p = plan(&r, &placing());
    assert!(placements(&p).is_empty(), "{:?}", p.actions);
}

#[test]
fn two_positions_share_what_is_held_in_plan_order() {
    // Two positions of 50 each, 50 held: the first position's stop takes the shares.
    let l = local(
        NOW,
        vec![qcom("1", "50", "50"), qcom("2", "50", "50")],
        vec![],
    );
    let b = broker(NOW, vec![], Some(vec![holding("PA3", "QCOM", "50")]));
    let r = diff(&l, &b, &DiffOptions::default()).unwrap();
    assert_eq!(r.quantity_mismatches.len(), 1);
    let p = plan(&r, &placing());
    assert_eq!(placements(&p), ["place:1:stop_loss"]);
    assert_skipped(
        &p,
        "place:2:stop_loss",
        "other placements of this plan already close 50",
    );
}

#[test]
fn a_filled_part_of_a_working_order_no_longer_counts() {
    let mut theirs = order("their-sell", "PA3", "QCOM")
        .status(OrderStatus::PartiallyFilled)
        .limit("199.87")
        .leg("QCOM", Side::Sell, "74")
        .submitted(LONG_AGO);
    theirs.legs[0].filled_quantity = dec("34");
    // 34 sold already: 40 held, 40 still to sell, nothing free.
    let l = local(NOW, vec![qcom("1", "40", "40")], vec![]);
    let b = broker(NOW, vec![theirs], Some(vec![holding("PA3", "QCOM", "40")]));
    let r = diff(&l, &b, &DiffOptions::default()).unwrap();
    assert_eq!(
        r.missing[0].spec.working_closing.as_ref().unwrap()[0].quantity,
        dec("40")
    );
    assert!(placements(&plan(&r, &placing())).is_empty());
}

#[tokio::test]
async fn a_backfill_waits_for_the_cancel_of_an_orphan_then_brackets_the_holding() {
    let theirs = order("their-sell", "PA3", "QCOM")
        .limit("199.87")
        .leg("QCOM", Side::Sell, "74")
        .submitted(LONG_AGO);
    let mut q = holding("PA3", "QCOM", "74");
    q.average_price = Some(dec("172.30"));
    let l = local(NOW, vec![], vec![]);
    let b = broker(NOW, vec![theirs], Some(vec![q]));
    let r = diff(&l, &b, &DiffOptions::default()).unwrap();
    assert_eq!(r.untracked_holdings[0].working_closing, Some(dec("74")));

    let broker = InMemoryBroker::from_snapshot(&b);
    let store = InMemoryStore::from_snapshot(&l);
    let policy = Policy {
        cancel_orphaned: true,
        ..placing()
    };
    let rec = Reconciler::new(&broker, &store).with_policy(policy);
    let now = at(NOW);
    let (_, first) = rec.plan(now).await.unwrap();
    let kinds: Vec<&str> = first.actions.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(
        kinds,
        ["backfill:bf-PA3-QCOM", "cancel:PA3:their-sell"],
        "no bracket while their sell still works: {:?}",
        first.skipped
    );
    let out = rec
        .apply(&first, &ApplyOptions::new("one", now))
        .await
        .unwrap();
    assert!(out.all_done(), "{:?}", out.results);

    let (_, second) = rec.plan(now).await.unwrap();
    assert_eq!(placements(&second).len(), 1, "{:?}", second.actions);
    assert!(matches!(second.actions[0].action, Action::PlaceOco { .. }));
    rec.apply(&second, &ApplyOptions::new("two", now))
        .await
        .unwrap();
    let (r, third) = rec.plan(now).await.unwrap();
    assert!(third.is_empty(), "{}", r.to_json().unwrap());
    let working: Vec<_> = broker
        .orders()
        .into_iter()
        .filter(|o| o.status.is_working())
        .collect();
    assert_eq!(working.len(), 2, "one OCO pair: {working:?}");
    assert!(working.iter().all(|o| o.oco_group.is_some()));
}

#[test]
fn a_promoted_position_does_not_place_again_what_is_on_its_way() {
    // Pending, held in full, its stop journaled ten seconds ago and not listed yet.
    let mut p = qcom("1", "74", "74");
    p.state = reconcile_core::PositionState::Pending;
    let l = local(
        NOW,
        vec![p],
        vec![intent("rc-1", "1", "stop_loss", "2025-11-06T15:59:50Z")],
    );
    let b = broker(NOW, vec![], Some(vec![holding("PA3", "QCOM", "74")]));
    let r = diff(&l, &b, &DiffOptions::default()).unwrap();
    assert_eq!(r.pending_filled.len(), 1);
    assert!(r.pending_filled[0].due.is_empty(), "{:?}", r.pending_filled);
    assert_eq!(r.in_flight.len(), 1, "{:?}", r.in_flight);
    let p = plan(
        &r,
        &Policy {
            sync_positions: true,
            ..placing()
        },
    );
    assert!(placements(&p).is_empty(), "{:?}", p.actions);
}

/// Working orders that already close more than is held free their shares one run at a time:
/// a replacement that would add to the excess waits (saying why) until the replacement that
/// shrinks another order has gone out, and the runs end with nothing left to do.
#[tokio::test]
async fn an_excess_of_working_orders_is_worked_off_one_replacement_a_run() {
    const C100: &str = "QQQ   251201C00100000";
    const C101: &str = "QQQ   251201C00101000";
    let t = |k: &str, price: &str, sym: &str| {
        target(k)
            .limit(price)
            .qty("1")
            .leg(sym, Side::BuyToClose, "1")
    };
    let l = local(
        NOW,
        vec![
            position("p0", "A1", "QQQ")
                .leg(C100, "-1")
                .target(t("call_spread", "0.60", C100).active("1000")),
            position("p1", "A1", "QQQ")
                .leg(C100, "-1")
                .leg(C101, "-1")
                .target(t("call_spread", "0.60", C100).active("1001"))
                .target(t("put_spread_1", "0.55", C101).active("1003")),
        ],
        vec![],
    );
    let o = |id: &str, price: &str, sym: &str, q: &str| {
        order(id, "A1", "QQQ")
            .limit(price)
            .leg(sym, Side::BuyToClose, q)
            .submitted(LONG_AGO)
    };
    // 1000 has drifted in price; 1001 closes 2 where its target wants 1: 3 of the 2 held.
    let b = broker(
        NOW,
        vec![
            o("1000", "9.99", C100, "1"),
            o("1001", "0.60", C100, "2"),
            o("1003", "0.55", C101, "1"),
        ],
        Some(vec![holding("A1", C100, "-2"), holding("A1", C101, "-1")]),
    );
    let policy = Policy {
        replace_drifted: true,
        ..Policy::report_only()
    };
    let broker = InMemoryBroker::from_snapshot(&b);
    let store = InMemoryStore::from_snapshot(&l);
    let rec = Reconciler::new(&broker, &store).with_policy(policy);
    let now = at(NOW);
    let keys = |p: &Plan| p.actions.iter().map(|a| a.key.clone()).collect::<Vec<_>>();
    let (_, p1) = rec.plan(now).await.unwrap();
    assert_eq!(keys(&p1), ["replace:p1:call_spread:1001"]);
    let waits = crate::skipped(&p1, "replace:p0:call_spread:1000").unwrap();
    assert!(waits.contains("working orders already close 2"), "{waits}");
    rec.apply(&p1, &ApplyOptions::new("r1", now)).await.unwrap();
    let (_, p2) = rec.plan(now).await.unwrap();
    assert_eq!(keys(&p2), ["replace:p0:call_spread:1000"]);
    rec.apply(&p2, &ApplyOptions::new("r2", now)).await.unwrap();
    let (r3, p3) = rec.plan(now).await.unwrap();
    assert!(p3.is_empty(), "{:?}", keys(&p3));
    assert_eq!(r3.summary.matched, 3, "{}", r3.to_json().unwrap());
}

/// An order that reports more filled than its size closes nothing more, and frees nothing that
/// another order holds.
#[test]
fn an_order_filled_past_its_size_frees_no_shares() {
    let sell = |id: &str, qty: &str| {
        order(id, "PA3", "QCOM")
            .limit("199.87")
            .leg("QCOM", Side::Sell, qty)
            .submitted(LONG_AGO)
    };
    let mut over = sell("over", "10");
    over.legs[0].filled_quantity = dec("30");
    let l = local(NOW, vec![qcom("1", "74", "74")], vec![]);
    let b = broker(
        NOW,
        vec![over, sell("their-sell", "70")],
        Some(vec![holding("PA3", "QCOM", "74")]),
    );
    let r = diff(&l, &b, &DiffOptions::default()).unwrap();
    let working = r.missing[0].spec.working_closing.as_ref().unwrap();
    assert_eq!(working[0].quantity, dec("70"));
    let p = plan(&r, &placing());
    assert!(placements(&p).is_empty(), "{:?}", p.actions);
}

/// What may be on its way counts against what is free, each once: another position's stop
/// placed moments ago and not listed yet, or journaled moments ago and not listed yet; and our
/// own OCO pair, both exits referenced and listed, once for the pair.
#[test]
fn orders_on_their_way_and_our_own_oco_pair_are_counted_once() {
    // 74 held; position 1's stop of 74 is on its way: nothing is free for position 2's.
    let on_its_way = |l: reconcile_core::LocalSnapshot| {
        let b = broker(NOW, vec![], Some(vec![holding("PA3", "QCOM", "74")]));
        let r = diff(&l, &b, &DiffOptions::default()).unwrap();
        let m = r.missing.iter().find(|m| m.position_id.as_str() == "2");
        let m = m.expect("position 2's stop is missing");
        assert_eq!(
            m.spec.working_closing.as_ref().map(|w| w[0].quantity),
            Some(dec("74")),
            "{}",
            r.to_json().unwrap()
        );
        assert!(placements(&plan(&r, &placing())).is_empty());
    };
    let mut placed = qcom("1", "74", "74");
    placed.targets[0] = placed.targets[0]
        .clone()
        .cid("rc-9")
        .placed("2025-11-06T15:59:50Z");
    on_its_way(local(NOW, vec![placed, qcom("2", "74", "74")], vec![]));
    on_its_way(local(
        NOW,
        vec![qcom("1", "74", "74"), qcom("2", "74", "74")],
        vec![intent("rc-1", "1", "stop_loss", "2025-11-06T15:59:50Z")],
    ));

    // 100 held; our OCO pair on 60 (either exit, not both) leaves 40 for position 2's stop.
    let pair = position("1", "PA3", "QCOM")
        .leg("QCOM", "60")
        .target(
            target("take_profit")
                .limit("199.87")
                .qty("60")
                .leg("QCOM", Side::Sell, "60")
                .active("tp"),
        )
        .target(
            target("stop_loss")
                .stop("150.00")
                .qty("60")
                .leg("QCOM", Side::Sell, "60")
                .active("sl"),
        );
    let [tp, sl] = qcom_oco_exits("tp", "sl");
    let l = local(NOW, vec![pair, qcom("2", "40", "40")], vec![]);
    let b = broker(NOW, vec![tp, sl], Some(vec![holding("PA3", "QCOM", "100")]));
    let r = diff(&l, &b, &DiffOptions::default()).unwrap();
    assert_eq!(
        r.missing[0].spec.working_closing.as_ref().unwrap()[0].quantity,
        dec("60"),
        "{}",
        r.to_json().unwrap()
    );
    assert_eq!(placements(&plan(&r, &placing())), ["place:2:stop_loss"]);
}

/// An OCO order placed by the plan takes its shares (once, for both exits) from what the plan's
/// later placements may close.
#[test]
fn an_oco_placement_of_this_plan_leaves_no_room_for_a_later_one() {
    let bracketed = qcom("1", "74", "74").target(
        target("take_profit")
            .limit("199.87")
            .qty("74")
            .leg("QCOM", Side::Sell, "74"),
    );
    let l = local(NOW, vec![bracketed, qcom("2", "74", "74")], vec![]);
    let b = broker(NOW, vec![], Some(vec![holding("PA3", "QCOM", "74")]));
    let r = diff(&l, &b, &DiffOptions::default()).unwrap();
    let p = plan(&r, &placing());
    assert_eq!(
        placements(&p),
        ["place_oco:1:take_profit+stop_loss"],
        "{:?}",
        p.skipped
    );
    assert_skipped(
        &p,
        "place:2:stop_loss",
        "other placements of this plan already close 74",
    );
}

/// A spread placed by the plan takes its shares of each of its symbols: a later placement on
/// its second leg finds nothing free.
#[test]
fn a_spread_placement_takes_each_of_its_legs_from_what_is_free() {
    const C640: &str = "QQQ   251219C00640000";
    const C645: &str = "QQQ   251219C00645000";
    let spread = position("1", "A", "QQQ")
        .leg(C640, "-1")
        .leg(C645, "1")
        .target(
            target("call_spread")
                .limit("0.60")
                .qty("1")
                .leg(C640, Side::BuyToClose, "1")
                .leg(C645, Side::SellToClose, "1"),
        );
    let wing =
        position("2", "A", "QQQ")
            .leg(C645, "1")
            .target(
                target("wing")
                    .limit("0.20")
                    .qty("1")
                    .leg(C645, Side::SellToClose, "1"),
            );
    let l = local(NOW, vec![spread, wing], vec![]);
    let b = broker(
        NOW,
        vec![],
        Some(vec![holding("A", C640, "-1"), holding("A", C645, "1")]),
    );
    let p = plan(&diff(&l, &b, &DiffOptions::default()).unwrap(), &placing());
    assert_eq!(placements(&p), ["place:1:call_spread"], "{:?}", p.skipped);
    assert_skipped(
        &p,
        "place:2:wing",
        "other placements of this plan already close 1",
    );
}
