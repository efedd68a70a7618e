//! One focused test per category and per precise rule of DESIGN §4.

use reconcile_core::report::{AdoptVia, DriftField, InvalidReason};
use reconcile_core::testkit::build::*;
use reconcile_core::{
    BrokerSnapshot, DiffOptions, LocalSnapshot, OrderStatus, PositionState, Report, Scope, Side,
    TargetStatus, diff,
};

const NOW: &str = "2025-11-07T15:00:00Z";
const C640: &str = "QQQ   251219C00640000";
const C645: &str = "QQQ   251219C00645000";

fn run(local: &LocalSnapshot, broker: &BrokerSnapshot) -> Report {
    diff(local, broker, &DiffOptions::default()).unwrap()
}

fn spread_target(key: &str) -> reconcile_core::ProfitTarget {
    target(key)
        .limit("0.60")
        .qty("1")
        .leg(C640, Side::BuyToClose, "1")
        .leg(C645, Side::SellToClose, "1")
}

fn spread_order(id: &str) -> reconcile_core::Order {
    order(id, "A", "QQQ")
        .limit("0.60")
        .leg(C640, Side::BuyToClose, "1")
        .leg(C645, Side::SellToClose, "1")
        .submitted("2025-11-07T14:00:00Z")
}

fn condor(id: &str) -> reconcile_core::Position {
    position(id, "A", "QQQ").leg(C640, "-1").leg(C645, "1")
}

#[test]
fn working_referenced_order_is_matched() {
    let l = local(
        NOW,
        vec![condor("12").target(spread_target("call_spread").active("1"))],
        vec![],
    );
    let b = broker(NOW, vec![spread_order("1")], None);
    let r = run(&l, &b);
    assert_eq!(r.summary.matched, 1);
    assert_eq!(r.matched[0].order_id.as_str(), "1");
    assert!(r.in_sync);
}

#[test]
fn pending_order_is_working_not_missing() {
    // The seed's LIVE vs RECEIVED bug: a Received order is working.
    let l = local(
        NOW,
        vec![condor("12").target(spread_target("call_spread").active("1"))],
        vec![],
    );
    let b = broker(
        NOW,
        vec![spread_order("1").status(OrderStatus::Pending)],
        None,
    );
    let r = run(&l, &b);
    assert_eq!(r.summary.matched, 1);
    assert_eq!(r.summary.invalid, 0);
}

#[test]
fn price_drift_compares_numerically_and_reports_first_field() {
    let l = local(
        NOW,
        vec![condor("12").target(spread_target("call_spread").active("1"))],
        vec![],
    );
    let same = broker(NOW, vec![spread_order("1").limit("0.6")], None);
    assert_eq!(run(&l, &same).summary.matched, 1, "0.6 = 0.60");
    let mut o = spread_order("1").limit("0.75");
    o.legs[0].quantity = dec("2");
    let r = run(&l, &broker(NOW, vec![o], None));
    assert_eq!(r.summary.drifted, 1);
    let d = &r.drifted[0];
    assert_eq!(d.field, DriftField::LimitPrice);
    assert_eq!(d.expected.as_deref(), Some("0.60"));
    assert_eq!(d.actual.as_deref(), Some("0.75"));
}

#[test]
fn quantity_then_legs_drift() {
    let l = local(
        NOW,
        vec![condor("12").target(spread_target("call_spread").active("1"))],
        vec![],
    );
    let mut o = spread_order("1");
    o.legs[1].quantity = dec("2");
    let r = run(&l, &broker(NOW, vec![o], None));
    assert_eq!(r.drifted[0].field, DriftField::Quantity);
    assert_eq!(r.drifted[0].actual.as_deref(), Some("2"));

    let mut o = spread_order("1");
    o.legs[1].symbol = reconcile_core::Symbol::new("QQQ   251219C00650000");
    let r = run(&l, &broker(NOW, vec![o], None));
    assert_eq!(r.drifted[0].field, DriftField::Legs);
    // Both sides of a legs drift, as "side quantity symbol" in symbol order.
    assert_eq!(
        r.drifted[0].expected.as_deref(),
        Some(format!("buy_to_close 1 {C640}, sell_to_close 1 {C645}").as_str())
    );
    assert_eq!(
        r.drifted[0].actual.as_deref(),
        Some("buy_to_close 1 QQQ   251219C00640000, sell_to_close 1 QQQ   251219C00650000")
    );

    // Legs are a multiset of (symbol, side, quantity): the same count of each side is not
    // enough, nor one leg's symbol twice.
    let mut o = spread_order("1");
    o.legs[1] = o.legs[0].clone();
    let r = run(&l, &broker(NOW, vec![o], None));
    assert_eq!(r.summary.drifted, 1, "{}", r.to_json().unwrap());
    assert_eq!(r.drifted[0].field, DriftField::Legs);
    let mut o = spread_order("1");
    o.legs.swap(0, 1);
    assert_eq!(
        run(&l, &broker(NOW, vec![o], None)).summary.matched,
        1,
        "leg order does not matter"
    );
}

#[test]
fn cancelled_by_hand_is_invalid() {
    let l = local(
        NOW,
        vec![condor("12").target(spread_target("call_spread").active("1"))],
        vec![],
    );
    for (status, reason) in [
        (OrderStatus::Cancelled, InvalidReason::Cancelled),
        (OrderStatus::Filled, InvalidReason::Filled),
        (OrderStatus::Expired, InvalidReason::Expired),
        (OrderStatus::Rejected, InvalidReason::Rejected),
    ] {
        let r = run(
            &l,
            &broker(NOW, vec![spread_order("1").status(status)], None),
        );
        assert_eq!(r.invalid.len(), 1, "{status:?}");
        assert_eq!(r.invalid[0].reason, reason);
    }
}

#[test]
fn order_not_found_is_invalid_after_grace_and_in_flight_within() {
    let old = local(
        NOW,
        vec![
            condor("12").target(
                spread_target("call_spread")
                    .active("1")
                    .placed("2025-11-07T14:00:00Z"),
            ),
        ],
        vec![],
    );
    let r = run(&old, &broker(NOW, vec![], None));
    assert_eq!(r.invalid[0].reason, InvalidReason::NotFound);

    let fresh = local(
        NOW,
        vec![
            condor("12").target(
                spread_target("call_spread")
                    .active("1")
                    .placed("2025-11-07T14:59:30Z"),
            ),
        ],
        vec![],
    );
    let r = run(&fresh, &broker(NOW, vec![], None));
    assert_eq!(r.summary.invalid, 0);
    assert_eq!(r.in_flight.len(), 1);
    assert_eq!(
        r.in_flight[0].order_id.as_ref().map(|o| o.as_str()),
        Some("1")
    );
}

#[test]
fn grace_is_an_option_and_now_can_be_given() {
    let l = local(
        NOW,
        vec![
            condor("12").target(
                spread_target("call_spread")
                    .active("1")
                    .placed("2025-11-07T14:58:00Z"),
            ),
        ],
        vec![],
    );
    let b = broker(NOW, vec![], None);
    let wide = DiffOptions {
        grace: chrono::TimeDelta::seconds(300),
        ..DiffOptions::default()
    };
    assert_eq!(diff(&l, &b, &wide).unwrap().summary.in_flight, 1);
    assert_eq!(run(&l, &b).summary.invalid, 1);
    let earlier = DiffOptions {
        now: Some(at("2025-11-07T14:58:30Z")),
        ..DiffOptions::default()
    };
    let r = diff(&l, &b, &earlier).unwrap();
    assert_eq!(r.summary.in_flight, 1);
    assert_eq!(r.as_of, at("2025-11-07T14:58:30Z"));
}

#[test]
fn replaced_order_is_invalid_and_its_replacement_adoptable() {
    let l = local(
        NOW,
        vec![condor("12").target(spread_target("call_spread").active("1"))],
        vec![],
    );
    let b = broker(
        NOW,
        vec![spread_order("1").replaced_by("2"), spread_order("2")],
        None,
    );
    let r = run(&l, &b);
    assert_eq!(r.invalid[0].reason, InvalidReason::Replaced);
    assert_eq!(
        r.invalid[0].replaced_by.as_ref().map(|o| o.as_str()),
        Some("2")
    );
    assert_eq!(r.adoptable.len(), 1);
    assert_eq!(r.adoptable[0].via, AdoptVia::ReplacedBy);
    assert_eq!(
        r.summary.orphaned, 0,
        "a replacement is never taken for an orphan"
    );
}

/// An order that says it `replaces` the referenced one, the replaced order naming nothing.
fn replacing(id: &str, replaced: &str) -> reconcile_core::Order {
    let mut o = spread_order(id);
    o.replaces = Some(reconcile_core::OrderId::new(replaced));
    o
}

#[test]
fn a_replaced_order_is_followed_through_the_order_that_says_it_replaces_it() {
    let l = local(
        NOW,
        vec![condor("12").target(spread_target("call_spread").active("1"))],
        vec![],
    );
    let b = broker(
        NOW,
        vec![
            spread_order("1").status(OrderStatus::Replaced),
            replacing("2", "1"),
        ],
        None,
    );
    let r = run(&l, &b);
    assert_eq!(r.invalid[0].reason, InvalidReason::Replaced);
    assert_eq!(
        r.invalid[0].replaced_by.as_ref().map(|o| o.as_str()),
        Some("2")
    );
    assert_eq!(r.adoptable.len(), 1);
    assert_eq!(r.adoptable[0].order_id.as_str(), "2");
    assert_eq!(r.adoptable[0].via, AdoptVia::ReplacedBy);
    assert_eq!(r.summary.orphaned, 0);
}

/// A replacement listed twice, working and then (by its update time) cancelled: its latest copy
/// decides, whichever copy is listed first, so there is no working replacement to claim.
#[test]
fn of_a_replacement_listed_twice_the_latest_copy_decides_whether_it_is_working() {
    let copy = |status: OrderStatus, updated: &str| {
        let mut o = replacing("2", "1").status(status);
        o.updated_at = Some(at(updated));
        o
    };
    let (early, late) = ("2025-11-07T14:10:00Z", "2025-11-07T14:20:00Z");
    let l = local(
        NOW,
        vec![condor("12").target(spread_target("call_spread").active("1"))],
        vec![],
    );
    for cancelled_first in [false, true] {
        let mut copies = vec![
            copy(OrderStatus::Live, early),
            copy(OrderStatus::Cancelled, late),
        ];
        if cancelled_first {
            copies.reverse();
        }
        let mut orders = vec![spread_order("1").status(OrderStatus::Replaced)];
        orders.extend(copies);
        let r = run(&l, &broker(NOW, orders, None));
        assert_eq!(r.invalid.len(), 1, "{cancelled_first}: {:?}", r.invalid);
        assert_eq!(r.invalid[0].reason, InvalidReason::Replaced);
        assert_eq!(r.invalid[0].replaced_by, None, "{cancelled_first}");
        assert!(
            r.adoptable.is_empty(),
            "{cancelled_first}: {:?}",
            r.adoptable
        );
        assert_eq!(r.summary.orphaned, 0, "{cancelled_first}");
    }
}

/// Two working orders both saying they replace the referenced one: the first listed is its
/// replacement, the other an orphan.
#[test]
fn of_two_orders_that_say_they_replace_one_the_first_listed_is_its_replacement() {
    let l = local(
        NOW,
        vec![condor("12").target(spread_target("call_spread").active("1"))],
        vec![],
    );
    for (first, second) in [("2", "3"), ("3", "2")] {
        let b = broker(
            NOW,
            vec![
                spread_order("1").status(OrderStatus::Replaced),
                replacing(first, "1"),
                replacing(second, "1"),
            ],
            None,
        );
        let r = run(&l, &b);
        assert_eq!(
            r.invalid[0].replaced_by.as_ref().map(|o| o.as_str()),
            Some(first)
        );
        assert_eq!(r.adoptable.len(), 1);
        assert_eq!(r.adoptable[0].order_id.as_str(), first);
        let orphans: Vec<&str> = r.orphaned.iter().map(|o| o.order_id.as_str()).collect();
        assert_eq!(orphans, [second]);
    }
}

#[test]
fn a_replaced_targets_replacement_is_linked_not_cleared_by_any_fix_that_would_touch_it() {
    // Seed from a kill between a replace at the broker and its link: the target still names the
    // order that was replaced.
    let l = local(
        NOW,
        vec![condor("12").target(spread_target("call_spread").active("1"))],
        vec![],
    );
    let b = broker(
        NOW,
        vec![spread_order("1").replaced_by("2"), spread_order("2")],
        None,
    );
    let r = run(&l, &b);
    for policy in [
        reconcile_core::Policy {
            clear_invalid: true,
            ..reconcile_core::Policy::report_only()
        },
        reconcile_core::Policy {
            create_missing: true,
            ..reconcile_core::Policy::report_only()
        },
        reconcile_core::Policy {
            replace_drifted: true,
            create_missing: true,
            clear_invalid: true,
            ..reconcile_core::Policy::report_only()
        },
    ] {
        let p = reconcile_core::plan(&r, &policy);
        let keys: Vec<_> = p.actions.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["link:12:call_spread:2"], "{policy:?}");
    }
    let p = reconcile_core::plan(&r, &reconcile_core::Policy::report_only());
    assert!(p.actions.is_empty(), "report-only links nothing");
}

#[test]
fn unreferenced_old_order_is_orphaned_and_recent_one_in_flight() {
    let l = local(NOW, vec![condor("12")], vec![]);
    let b = broker(
        NOW,
        vec![
            spread_order("1"),
            spread_order("2").submitted("2025-11-07T14:59:50Z"),
            order("3", "A", "QQQ").status(OrderStatus::Pending),
            spread_order("4").status(OrderStatus::Cancelled),
        ],
        None,
    );
    let r = run(&l, &b);
    assert_eq!(
        r.orphaned
            .iter()
            .map(|o| o.order_id.as_str())
            .collect::<Vec<_>>(),
        ["1"]
    );
    let ids: Vec<_> = r
        .in_flight
        .iter()
        .filter_map(|i| i.order_id.as_ref().map(|o| o.to_string()))
        .collect();
    assert_eq!(ids, ["2", "3"], "recent, and pending with no submit time");
    assert_eq!(r.orphaned[0].status, OrderStatus::Live);
}

#[test]
fn terminal_unreferenced_orders_are_history() {
    let l = local(NOW, vec![], vec![]);
    let b = broker(
        NOW,
        vec![spread_order("4").status(OrderStatus::Filled)],
        None,
    );
    assert!(run(&l, &b).in_sync);
}

#[test]
fn missing_only_on_open_positions() {
    let l = local(
        NOW,
        vec![
            condor("1").target(spread_target("call_spread")),
            condor("2")
                .state(PositionState::Pending)
                .target(spread_target("call_spread")),
            condor("3")
                .state(PositionState::Closing)
                .target(spread_target("call_spread")),
        ],
        vec![],
    );
    let r = run(&l, &broker(NOW, vec![], None));
    assert_eq!(r.missing.len(), 1);
    assert_eq!(r.missing[0].position_id.as_str(), "1");
}

#[test]
fn settled_targets_are_not_reported() {
    let l = local(
        NOW,
        vec![
            condor("1").target(
                spread_target("call_spread")
                    .active("9")
                    .status(TargetStatus::Filled),
            ),
        ],
        vec![],
    );
    assert!(run(&l, &broker(NOW, vec![], None)).in_sync);
}

#[test]
fn active_target_on_closed_position_leaves_an_orphan() {
    let l = local(
        NOW,
        vec![
            condor("1")
                .state(PositionState::Closed)
                .target(spread_target("call_spread").active("1")),
        ],
        vec![],
    );
    let r = run(&l, &broker(NOW, vec![spread_order("1")], None));
    assert_eq!(
        r.orphaned.len(),
        1,
        "a protective order left behind is a risk"
    );
}

#[test]
fn order_sent_but_not_recorded_is_adopted_by_client_order_id() {
    let l = local(
        NOW,
        vec![condor("45").target(spread_target("put_spread_2"))],
        vec![intent(
            "rc-45-1",
            "45",
            "put_spread_2",
            "2025-11-07T14:00:00Z",
        )],
    );
    let b = broker(NOW, vec![spread_order("7").cid("rc-45-1")], None);
    let r = run(&l, &b);
    assert_eq!(r.adoptable.len(), 1);
    assert_eq!(r.adoptable[0].via, AdoptVia::ClientOrderId);
    assert_eq!(r.adoptable[0].target_key.as_str(), "put_spread_2");
    assert_eq!(
        r.adoptable[0].intent.as_ref().map(|c| c.as_str()),
        Some("rc-45-1")
    );
    assert_eq!(
        r.summary.missing + r.summary.stale_intents + r.summary.orphaned,
        0
    );
}

#[test]
fn target_client_order_id_also_adopts() {
    let l = local(
        NOW,
        vec![condor("45").target(spread_target("put_spread_2").cid("mine-1"))],
        vec![],
    );
    let b = broker(
        NOW,
        vec![
            order("7", "A", "QQQ")
                .cid("mine-1")
                .submitted("2025-11-07T10:00:00Z"),
        ],
        None,
    );
    assert_eq!(run(&l, &b).adoptable[0].via, AdoptVia::ClientOrderId);
}

#[test]
fn unique_leg_fit_is_adopted_and_ambiguous_fits_stay_orphaned() {
    let l = local(
        NOW,
        vec![condor("45").target(spread_target("call_spread"))],
        vec![],
    );
    let r = run(&l, &broker(NOW, vec![spread_order("7")], None));
    assert_eq!(r.adoptable[0].via, AdoptVia::Legs);

    // Two orders fit the one target: neither is adopted.
    let r = run(
        &l,
        &broker(NOW, vec![spread_order("7"), spread_order("8")], None),
    );
    assert_eq!(r.summary.adoptable, 0);
    assert_eq!(r.summary.orphaned, 2);
    assert_eq!(r.summary.missing, 1);

    // One order fits two targets: not adopted.
    let two = local(
        NOW,
        vec![
            condor("45").target(spread_target("call_spread")),
            condor("46").target(spread_target("call_spread")),
        ],
        vec![],
    );
    let r = run(&two, &broker(NOW, vec![spread_order("7")], None));
    assert_eq!(r.summary.adoptable, 0);
    assert_eq!(r.summary.orphaned, 1);

    // Another account does not fit.
    let mut other = spread_order("7");
    other.account = "B".into();
    let r = run(&l, &broker(NOW, vec![other], None));
    assert_eq!(r.summary.adoptable, 0);
}

#[test]
fn adoption_is_checked_before_grace() {
    let l = local(
        NOW,
        vec![condor("45").target(spread_target("call_spread"))],
        vec![],
    );
    let r = run(
        &l,
        &broker(
            NOW,
            vec![spread_order("7").submitted("2025-11-07T14:59:59Z")],
            None,
        ),
    );
    assert_eq!(r.summary.adoptable, 1);
    assert_eq!(r.summary.in_flight, 0);
}

#[test]
fn one_order_referenced_twice_is_a_conflict() {
    let l = local(
        NOW,
        vec![
            condor("1").target(spread_target("call_spread").active("5")),
            condor("2").target(spread_target("put_spread_1").active("5")),
        ],
        vec![],
    );
    let r = run(&l, &broker(NOW, vec![spread_order("5")], None));
    assert_eq!(r.conflicts.len(), 1);
    assert_eq!(r.conflicts[0].targets.len(), 2);
    assert_eq!(r.summary.matched + r.summary.orphaned, 0);
}

#[test]
fn intents_within_grace_wait_and_old_ones_are_stale() {
    let l = local(
        NOW,
        vec![
            condor("45")
                .target(spread_target("put_spread_1"))
                .target(spread_target("put_spread_2")),
        ],
        vec![
            intent("rc-new", "45", "put_spread_1", "2025-11-07T14:59:30Z"),
            intent("rc-old", "45", "put_spread_2", "2025-11-07T14:00:00Z"),
        ],
    );
    let r = run(&l, &broker(NOW, vec![], None));
    assert_eq!(
        r.in_flight.len(),
        1,
        "one entry for the target and its intent"
    );
    assert_eq!(
        r.in_flight[0].client_order_id.as_ref().map(|c| c.as_str()),
        Some("rc-new")
    );
    assert_eq!(r.stale_intents.len(), 1);
    assert_eq!(r.stale_intents[0].client_order_id.as_str(), "rc-old");
    assert_eq!(r.missing.len(), 1);
    assert_eq!(r.missing[0].target_key.as_str(), "put_spread_2");
}

#[test]
fn holdings_rules() {
    let local_side = local(
        NOW,
        vec![
            position("1", "A", "QQQ").leg(C640, "-1"),
            position("2", "A", "QQQ").leg("QQQ   251219C00700000", "-2"),
            position("3", "A", "QQQ")
                .state(PositionState::Pending)
                .leg("QQQ   251219P00500000", "1"),
            position("4", "A", "QQQ").leg("QQQ   251219P00510000", "3"),
        ],
        vec![],
    );
    let b = broker(
        NOW,
        vec![],
        Some(vec![
            holding("A", C640, "-1"),
            holding("A", "QQQ   251219P00500000", "1"),
            holding("A", "QQQ   251219P00510000", "2"),
            holding("A", "QCOM", "74"),
        ]),
    );
    let r = run(&local_side, &b);
    assert_eq!(
        r.stale_positions
            .iter()
            .map(|s| s.position_id.as_str())
            .collect::<Vec<_>>(),
        ["2"]
    );
    assert_eq!(
        r.pending_filled
            .iter()
            .map(|s| s.position_id.as_str())
            .collect::<Vec<_>>(),
        ["3"]
    );
    assert_eq!(r.untracked_holdings.len(), 1);
    assert_eq!(r.untracked_holdings[0].symbol.as_str(), "QCOM");
    assert_eq!(r.untracked_holdings[0].quantity, dec("74"));
    assert_eq!(r.quantity_mismatches.len(), 1);
    let m = &r.quantity_mismatches[0];
    assert_eq!((m.expected, m.actual), (dec("3"), dec("2")));
}

#[test]
fn pending_position_needs_the_holding_beyond_what_is_expected() {
    let l = local(
        NOW,
        vec![
            position("1", "A", "QQQ").leg(C640, "-1"),
            position("2", "A", "QQQ")
                .state(PositionState::Pending)
                .leg(C640, "-1"),
        ],
        vec![],
    );
    let only_one = broker(NOW, vec![], Some(vec![holding("A", C640, "-1")]));
    assert_eq!(run(&l, &only_one).summary.pending_filled, 0);
    let both = broker(NOW, vec![], Some(vec![holding("A", C640, "-2")]));
    let r = run(&l, &both);
    assert_eq!(r.summary.pending_filled, 1);
    assert_eq!(r.summary.quantity_mismatches, 0, "its legs join expected");
    let wrong_sign = broker(NOW, vec![], Some(vec![holding("A", C640, "1")]));
    assert_eq!(run(&l, &wrong_sign).summary.pending_filled, 0);
}

#[test]
fn unknown_holdings_skip_holdings_checks() {
    let l = local(NOW, vec![position("1", "A", "QQQ").leg(C640, "-1")], vec![]);
    let r = run(&l, &broker(NOW, vec![], None));
    assert!(r.in_sync);
    let flat = run(&l, &broker(NOW, vec![], Some(vec![])));
    assert_eq!(flat.summary.stale_positions, 1);
}

#[test]
fn scope_limits_accounts_and_underlyings() {
    let l = local(
        NOW,
        vec![condor("1").target(spread_target("call_spread"))],
        vec![],
    );
    let mut spy = spread_order("9");
    spy.underlying = "SPY".to_owned();
    let b = broker(NOW, vec![spy], Some(vec![holding("B", "NVDA", "5")]));
    let scoped = DiffOptions {
        scope: Scope::all().with_underlying("QQQ").with_account("A"),
        ..DiffOptions::default()
    };
    let r = diff(&l, &b, &scoped).unwrap();
    assert_eq!(r.summary.orphaned + r.summary.untracked_holdings, 0);
    assert_eq!(r.summary.missing, 1);
    let other = DiffOptions {
        scope: Scope::all().with_underlying("SPY"),
        ..DiffOptions::default()
    };
    let r = diff(&l, &b, &other).unwrap();
    assert_eq!((r.summary.missing, r.summary.orphaned), (0, 1));
}

#[test]
fn output_is_sorted_with_ids_compared_as_strings() {
    let l = local(
        NOW,
        vec![
            condor("9").target(spread_target("b")),
            condor("10")
                .target(spread_target("a"))
                .target(spread_target("c")),
        ],
        vec![],
    );
    let r = run(&l, &broker(NOW, vec![], None));
    let got: Vec<_> = r
        .missing
        .iter()
        .map(|m| format!("{}/{}", m.position_id, m.target_key))
        .collect();
    assert_eq!(got, ["10/a", "10/c", "9/b"]);
}

#[test]
fn report_json_has_the_v1_shape() {
    let l = local(
        NOW,
        vec![condor("1").target(spread_target("call_spread").active("1"))],
        vec![],
    );
    let r = run(
        &l,
        &broker(
            NOW,
            vec![spread_order("1").status(OrderStatus::Cancelled)],
            None,
        ),
    );
    let v: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
    assert_eq!(v["format"], "reconcile.report/v1");
    assert_eq!(v["in_sync"], false);
    assert_eq!(v["summary"]["invalid"], 1);
    for k in [
        "matched",
        "drifted",
        "invalid",
        "adoptable",
        "in_flight",
        "orphaned",
        "missing",
        "conflicts",
        "stale_intents",
        "untracked_holdings",
        "stale_positions",
        "quantity_mismatches",
        "pending_filled",
    ] {
        assert!(v[k].is_array(), "{k}");
        assert!(v["summary"][k].is_u64(), "summary.{k}");
    }
    assert_eq!(v["invalid"][0]["reason"], "cancelled");
    assert_eq!(v["invalid"][0]["position_id"], "1");
}

/// Adoption's claims are exclusive: a target claimed by its client order id is no longer a fit
/// for another order's legs, and only open positions' targets are fits at all.
#[test]
fn a_target_claimed_by_its_client_order_id_or_not_open_is_no_fit_for_legs() {
    let claimed = spread_target("call_spread").cid("rc-1");
    let l = local(
        NOW,
        vec![
            condor("1").target(claimed),
            condor("2").target(spread_target("call_spread")),
            condor("3")
                .state(PositionState::Pending)
                .target(spread_target("call_spread")),
        ],
        vec![],
    );
    let b = broker(
        NOW,
        vec![spread_order("8").cid("rc-1"), spread_order("9")],
        None,
    );
    let r = run(&l, &b);
    let got: Vec<_> = r
        .adoptable
        .iter()
        .map(|a| (a.order_id.as_str(), a.position_id.as_str(), a.via))
        .collect();
    assert_eq!(
        got,
        [
            ("8", "1", AdoptVia::ClientOrderId),
            ("9", "2", AdoptVia::Legs)
        ],
        "{}",
        r.to_json().unwrap()
    );
}

/// The other exit of an OCO intent's group belongs to the intent's second target only when no
/// other claim took that order: here it carries another intent's client order id.
#[test]
fn an_oco_sibling_claimed_by_its_own_intent_is_not_taken_for_the_stop() {
    let stop = target("stop_loss")
        .stop("1.50")
        .qty("1")
        .leg(C640, Side::BuyToClose, "1");
    let other = target("put_spread_1")
        .stop("1.60")
        .qty("1")
        .leg(C640, Side::BuyToClose, "1");
    let l = local(
        NOW,
        vec![
            condor("1")
                .target(spread_target("call_spread"))
                .target(stop)
                .target(other),
        ],
        vec![
            reconcile_core::Intent {
                oco_with: Some("stop_loss".into()),
                ..intent("rc-x", "1", "call_spread", "2025-11-07T14:59:30Z")
            },
            intent("rc-y", "1", "put_spread_1", "2025-11-07T14:59:30Z"),
        ],
    );
    let b = broker(
        NOW,
        vec![
            spread_order("8").cid("rc-x").oco("8"),
            order("9", "A", "QQQ")
                .stop("1.60")
                .leg(C640, Side::BuyToClose, "1")
                .submitted("2025-11-07T14:59:31Z")
                .cid("rc-y")
                .oco("8"),
        ],
        None,
    );
    let r = run(&l, &b);
    let got: Vec<_> = r
        .adoptable
        .iter()
        .map(|a| (a.order_id.as_str(), a.target_key.as_str()))
        .collect();
    assert_eq!(
        got,
        [("8", "call_spread"), ("9", "put_spread_1")],
        "{}",
        r.to_json().unwrap()
    );
}

/// An untracked holding's entry is the latest filled order that opened it in its direction: a
/// short one by a sell, a long one by a buy, judged by the holding's own leg of the order.
#[test]
fn an_untracked_holding_is_entered_by_the_last_fill_that_opened_it_its_way() {
    const X: &str = "QQQ   251219P00600000";
    const Y: &str = "QQQ   251219P00590000";
    let fill = |id: &str, at_: &str, legs: &[(&str, Side)]| {
        let mut o = order(id, "A", "QQQ").status(OrderStatus::Filled);
        for (s, side) in legs {
            o = o.leg(s, *side, "1");
        }
        o.filled_at = Some(at(at_));
        o
    };
    let b = broker(
        NOW,
        vec![
            // The latest fill on X bought it back while selling Y to open: it opened Y, not X.
            fill(
                "roll",
                "2025-11-07T14:00:00Z",
                &[(X, Side::BuyToClose), (Y, Side::SellToOpen)],
            ),
            fill("sold-x", "2025-11-07T13:00:00Z", &[(X, Side::SellToOpen)]),
            fill("sold-y-early", "2025-11-07T12:00:00Z", &[(Y, Side::Sell)]),
            fill("bought-spy", "2025-11-07T12:30:00Z", &[("SPY", Side::Buy)]),
            fill("sold-spy", "2025-11-07T14:30:00Z", &[("SPY", Side::Sell)]),
        ],
        Some(vec![
            holding("A", X, "-1"),
            holding("A", Y, "-1"),
            holding("A", "SPY", "1"),
        ]),
    );
    let r = run(&local(NOW, vec![], vec![]), &b);
    let entries: Vec<_> = r
        .untracked_holdings
        .iter()
        .map(|u| {
            (
                u.symbol.to_string(),
                u.entry.as_ref().map(|e| e.order_id.to_string()),
            )
        })
        .collect();
    let want = |s: &str, id: &str| {
        (
            reconcile_core::Symbol::new(s).to_string(),
            Some(id.to_owned()),
        )
    };
    assert_eq!(
        entries,
        [
            want(Y, "roll"),
            want(X, "sold-x"),
            want("SPY", "bought-spy")
        ],
        "{}",
        r.to_json().unwrap()
    );
}

/// Two copies of one order id (a listing and a later history page, say): the later update
/// wins, and on a tie the terminal status (a final state does not go back).
#[test]
fn of_two_copies_of_an_order_the_later_or_the_final_one_counts() {
    let l = local(
        NOW,
        vec![condor("1").target(spread_target("call_spread").active("7"))],
        vec![],
    );
    let copy = |status: OrderStatus, updated: &str| {
        let mut o = spread_order("7").status(status);
        o.updated_at = Some(at(updated));
        o
    };
    let verdict = |orders: Vec<reconcile_core::Order>| {
        let r = run(&l, &broker(NOW, orders, None));
        match (r.matched.len(), r.invalid.first()) {
            (1, None) => "matched".to_owned(),
            (0, Some(i)) => format!("invalid:{}", i.reason.as_str()),
            _ => r.to_json().unwrap(),
        }
    };
    let early = "2025-11-07T14:00:00Z";
    let late = "2025-11-07T14:30:00Z";
    for orders in [
        vec![
            copy(OrderStatus::Live, early),
            copy(OrderStatus::Cancelled, late),
        ],
        vec![
            copy(OrderStatus::Cancelled, late),
            copy(OrderStatus::Live, early),
        ],
        vec![
            copy(OrderStatus::Live, late),
            copy(OrderStatus::Cancelled, late),
        ],
        vec![
            copy(OrderStatus::Cancelled, late),
            copy(OrderStatus::Live, late),
        ],
    ] {
        assert_eq!(verdict(orders), "invalid:cancelled");
    }
    for orders in [
        vec![
            copy(OrderStatus::Cancelled, early),
            copy(OrderStatus::Live, late),
        ],
        vec![
            copy(OrderStatus::Live, late),
            copy(OrderStatus::Cancelled, early),
        ],
    ] {
        assert_eq!(verdict(orders), "matched");
    }
}

/// Two working copies of one order id of one instant that disagree: the same verdict whichever
/// the broker listed first.
#[test]
fn of_two_copies_of_one_instant_the_listing_order_never_decides() {
    let l = local(
        NOW,
        vec![condor("1").target(spread_target("call_spread").active("7"))],
        vec![],
    );
    let copy = |price: &str, status: OrderStatus| {
        let mut o = spread_order("7").status(status).limit(price);
        o.updated_at = Some(at("2025-11-07T14:30:00Z"));
        o
    };
    for (x, y) in [
        (
            copy("0.60", OrderStatus::Live),
            copy("0.65", OrderStatus::Live),
        ),
        (
            copy("0.60", OrderStatus::Live),
            copy("0.60", OrderStatus::PendingReplace),
        ),
        (
            copy("0.60", OrderStatus::Filled),
            copy("0.60", OrderStatus::Cancelled),
        ),
    ] {
        let one = run(&l, &broker(NOW, vec![x.clone(), y.clone()], None));
        let other = run(&l, &broker(NOW, vec![y, x], None));
        assert_eq!(one.to_json().unwrap(), other.to_json().unwrap());
    }
    // The copy further along wins: the one that says it filled.
    let mut filled = copy("0.60", OrderStatus::Filled);
    for leg in &mut filled.legs {
        leg.filled_quantity = leg.quantity;
    }
    let cancelled = copy("0.60", OrderStatus::Cancelled);
    for orders in [
        vec![filled.clone(), cancelled.clone()],
        vec![cancelled, filled],
    ] {
        let r = run(&l, &broker(NOW, orders, None));
        assert_eq!(r.invalid[0].reason, InvalidReason::Filled);
    }
}

/// Ids listed twice, on one thread and on two: every id's latest copy decides, whichever was
/// listed first, and a later copy is no order of its own.
#[test]
fn on_one_thread_and_two_the_latest_copy_of_each_id_decides() {
    use reconcile_core::testkit::{diff_on_one_thread, diff_on_two_threads};
    let copy = |id: &str, status: OrderStatus, updated: &str| {
        let mut o = spread_order(id).status(status);
        o.updated_at = Some(at(updated));
        o
    };
    let (early, late) = ("2025-11-07T14:10:00Z", "2025-11-07T14:20:00Z");
    let positions = (0..40)
        .map(|i| {
            condor(&format!("p{i:02}"))
                .target(spread_target("call_spread").active(&format!("o{i:02}")))
        })
        .collect();
    let l = local(NOW, positions, vec![]);
    let mut orders = Vec::new();
    // Each listed twice, working and then cancelled: o00…o19 in that order, o20…o39 the other
    // way round (the later copy first).
    for i in 0..40 {
        let id = format!("o{i:02}");
        let working = copy(&id, OrderStatus::Live, early);
        if i < 20 {
            orders.push(working);
            orders.push(copy(&id, OrderStatus::Cancelled, late));
        } else {
            orders.push(copy(&id, OrderStatus::Cancelled, late));
            orders.push(working);
        }
    }
    // Ten orders nothing references, each listed twice: ten orphans, not twenty.
    for i in 0..10 {
        let id = format!("x{i:02}");
        orders.push(copy(&id, OrderStatus::Live, early));
        orders.push(copy(&id, OrderStatus::Live, late));
    }
    let b = broker(NOW, orders, None);
    let o = DiffOptions::default();
    let one = diff_on_one_thread(&l, &b, &o).unwrap();
    let two = diff_on_two_threads(&l, &b, &o).unwrap();
    assert_eq!(one.to_json().unwrap(), two.to_json().unwrap());
    for r in [&one, &two] {
        assert_eq!(r.summary.matched, 0, "{:?}", r.matched);
        assert_eq!(r.summary.invalid, 40);
        assert!(
            r.invalid
                .iter()
                .all(|i| i.reason == InvalidReason::Cancelled)
        );
        assert_eq!(r.summary.orphaned, 10, "{:?}", r.orphaned);
        assert_eq!(r.scanned.working_orders, 10);
    }
}

#[test]
fn what_spans_the_two_threads_halves_comes_out_as_on_one_thread() {
    use reconcile_core::testkit::{diff_on_one_thread, diff_on_two_threads};
    // Ten positions: two threads take five each. Across the halves: one listed order referenced
    // from both ends, one unlisted id referenced from both, and two replaced orders whose
    // replacements end at the same working order.
    let refs = [
        "shared", "u1", "r1", "o3", "o4", "o5", "o6", "r2", "u1", "shared",
    ];
    let positions = refs
        .iter()
        .enumerate()
        .map(|(i, id)| condor(&format!("p{i:02}")).target(spread_target("call_spread").active(id)))
        .collect();
    let l = local(NOW, positions, vec![]);
    let mut orders = vec![
        spread_order("shared"),
        spread_order("r1").replaced_by("n"),
        spread_order("r2").replaced_by("n"),
        spread_order("n"),
    ];
    orders.extend(["o3", "o4", "o5", "o6"].map(spread_order));
    let b = broker(NOW, orders, None);
    let o = DiffOptions::default();
    let one = diff_on_one_thread(&l, &b, &o).unwrap();
    let two = diff_on_two_threads(&l, &b, &o).unwrap();
    assert_eq!(one.to_json().unwrap(), two.to_json().unwrap());
    assert_eq!(one, two);
    assert_eq!(one, run(&l, &b));

    let conflicts: Vec<(&str, Vec<&str>)> = two
        .conflicts
        .iter()
        .map(|c| {
            let targets = c.targets.iter().map(|t| t.position_id.as_str()).collect();
            (c.order_id.as_str(), targets)
        })
        .collect();
    assert_eq!(
        conflicts,
        [("shared", vec!["p00", "p09"]), ("u1", vec!["p01", "p08"])]
    );
    assert_eq!(two.summary.matched, 4);
    assert_eq!(two.summary.invalid, 2, "{:?}", two.invalid);
    assert_eq!(two.adoptable.len(), 1);
    assert_eq!(
        two.adoptable[0].position_id.as_str(),
        "p07",
        "of two claims on one replacement the later position's, as on one thread"
    );
}
