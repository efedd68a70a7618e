//! The planner's public helpers that the CLI and the reconciler lean on: which policies fix
//! anything, which actions are the same, destructive or sent to the broker, what an order of a
//! spec is, and a plan's JSON.

use reconcile_core::testkit::build::*;
use reconcile_core::{
    Action, DiffOptions, OrderType, Plan, Policy, Side, diff, executor::place_order, plan,
};

const NOW: &str = "2025-11-07T15:00:00Z";
const C640: &str = "QQQ   251219C00640000";

/// Position 45, short `held` of C640 with these targets, and the broker holding just that.
fn one_position(
    held: &str,
    targets: Vec<reconcile_core::ProfitTarget>,
) -> (
    reconcile_core::LocalSnapshot,
    reconcile_core::BrokerSnapshot,
) {
    let p = targets
        .into_iter()
        .fold(position("45", "A", "QQQ").leg(C640, held), |p, t| {
            p.target(t)
        });
    let b = broker(NOW, vec![], Some(vec![holding("A", C640, held)]));
    (local(NOW, vec![p], vec![]), b)
}

/// A plan with one placement (missing target, holding known) and one clear.
fn a_plan() -> Plan {
    let gone = closing_target("put_spread_1")
        .limit("0.50")
        .active("77")
        .placed("2025-11-07T10:00:00Z");
    let (l, b) = one_position(
        "-2",
        vec![closing_target("call_spread").limit("0.60"), gone],
    );
    planned(
        &l,
        &b,
        Policy {
            create_missing: true,
            clear_invalid: true,
            ..Policy::report_only()
        },
    )
}

/// The plan's first action of the kind `is` picks.
fn first(p: &Plan, is: fn(&Action) -> bool) -> &Action {
    &p.actions.iter().find(|a| is(&a.action)).unwrap().action
}

fn placement(p: &Plan) -> &Action {
    first(p, |a| matches!(a, Action::PlaceTarget { .. }))
}

fn clearing(p: &Plan) -> &Action {
    first(p, |a| matches!(a, Action::Clear { .. }))
}

#[test]
fn a_policy_fixes_anything_when_any_one_fix_is_on() {
    assert!(!Policy::report_only().any_fix());
    assert!(Policy::all_fixes().any_fix());
    let one: [fn(&mut Policy); 7] = [
        |p| p.adopt = true,
        |p| p.clear_invalid = true,
        |p| p.cancel_orphaned = true,
        |p| p.create_missing = true,
        |p| p.replace_drifted = true,
        |p| p.backfill = true,
        |p| p.sync_positions = true,
    ];
    for (i, switch_on) in one.iter().enumerate() {
        let mut p = Policy::report_only();
        switch_on(&mut p);
        assert!(p.any_fix(), "fix {i} alone");
    }
}

#[test]
fn a_policy_read_without_the_oco_switch_places_oco_orders() {
    let mut v = serde_json::to_value(Policy::report_only()).unwrap();
    v.as_object_mut().unwrap().remove("oco");
    let p: Policy = serde_json::from_value(v).unwrap();
    assert!(p.oco);
}

#[test]
fn actions_that_differ_only_in_what_other_orders_close_are_the_same() {
    let p = a_plan();
    let a = placement(&p).clone();
    let mut b = a.clone();
    let Action::PlaceTarget { spec, .. } = &mut b else {
        unreachable!()
    };
    spec.working_closing = Some(vec![]);
    assert_ne!(a, b);
    assert!(a.same_as(&b) && b.same_as(&a));
    assert!(a.same_as(&a));
    let mut c = a.clone();
    let Action::PlaceTarget { spec, .. } = &mut c else {
        unreachable!()
    };
    spec.limit_price = Some(dec("0.65"));
    assert!(!a.same_as(&c), "another price is another order");
    let clear = clearing(&p);
    assert!(!a.same_as(clear) && !clear.same_as(&a));

    // The same for a replacement and for the two exits of an OCO order.
    let Action::PlaceTarget {
        position_id,
        target_key,
        spec,
    } = &a
    else {
        unreachable!()
    };
    let replace = Action::Replace {
        position_id: position_id.clone(),
        target_key: target_key.clone(),
        order_id: "77".into(),
        spec: spec.clone(),
    };
    let mut moved = replace.clone();
    if let Action::Replace { spec, .. } = &mut moved {
        spec.working_closing = Some(vec![]);
    }
    assert!(replace.same_as(&moved) && replace != moved);
    let oco = Action::PlaceOco {
        position_id: position_id.clone(),
        take_profit: target_key.clone(),
        take_profit_spec: spec.clone(),
        stop_loss: "stop_loss".into(),
        stop_loss_spec: spec.clone(),
    };
    for side in 0..2 {
        let mut moved = oco.clone();
        if let Action::PlaceOco {
            take_profit_spec,
            stop_loss_spec,
            ..
        } = &mut moved
        {
            [take_profit_spec, stop_loss_spec][side].working_closing = Some(vec![]);
        }
        assert!(oco.same_as(&moved) && oco != moved, "exit {side}");
    }
}

#[test]
fn which_actions_destroy_and_which_reach_the_broker() {
    let p = a_plan();
    let place = placement(&p);
    let clear = clearing(&p);
    let cancel = Action::Cancel {
        account: "A".into(),
        order_id: "8".into(),
    };
    assert_eq!(
        [place, clear, &cancel].map(Action::is_destructive),
        [false, true, true]
    );
    assert_eq!(
        [place, clear, &cancel].map(Action::touches_broker),
        [true, false, true]
    );
}

#[test]
fn an_order_of_a_spec_is_a_limit_a_stop_or_a_stop_limit() {
    let p = a_plan();
    let Action::PlaceTarget { spec, .. } = placement(&p) else {
        unreachable!()
    };
    for (limit, stop, want) in [
        (Some("0.60"), None, OrderType::Limit),
        (None, Some("1.50"), OrderType::Stop),
        (Some("1.45"), Some("1.50"), OrderType::StopLimit),
    ] {
        let mut spec = spec.clone();
        spec.limit_price = limit.map(dec);
        spec.stop_price = stop.map(dec);
        let o = place_order(&spec, "rc-1".into());
        assert_eq!(o.order_type, want, "{limit:?} {stop:?}");
        assert_eq!(
            (o.limit_price, o.stop_price),
            (spec.limit_price, spec.stop_price)
        );
    }
}

#[test]
fn a_plan_reads_back_from_its_json() {
    let p = a_plan();
    let json = p.to_json().unwrap();
    assert!(json.ends_with('\n'));
    let back: Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
}

/// What a policy plans for a pair.
fn planned(
    l: &reconcile_core::LocalSnapshot,
    b: &reconcile_core::BrokerSnapshot,
    policy: Policy,
) -> Plan {
    plan(&diff(l, b, &DiffOptions::default()).unwrap(), &policy)
}

fn kinds(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .map(|a| a.key.split(':').next().unwrap_or_default().to_owned())
        .collect()
}

fn closing_target(key: &str) -> reconcile_core::ProfitTarget {
    target(key).qty("1").leg(C640, Side::BuyToClose, "1")
}

#[test]
fn an_order_adopted_by_its_legs_is_linked_only_with_adopt() {
    let (l, mut b) = one_position("-1", vec![closing_target("call_spread").limit("0.60")]);
    b.orders.push(
        order("9", "A", "QQQ")
            .limit("0.60")
            .leg(C640, Side::BuyToClose, "1")
            .submitted("2025-11-07T10:00:00Z"),
    );
    let placing = Policy {
        create_missing: true,
        ..Policy::report_only()
    };
    assert!(kinds(&planned(&l, &b, placing)).is_empty());
    let adopting = Policy {
        adopt: true,
        ..Policy::report_only()
    };
    assert_eq!(kinds(&planned(&l, &b, adopting)), ["link"]);
}

#[test]
fn a_due_target_whose_order_is_gone_is_placed_only_after_a_clear() {
    let (open, mut b) = one_position(
        "-1",
        vec![closing_target("call_spread").limit("0.60").active("77")],
    );
    b.orders.push(
        order("77", "A", "QQQ")
            .status(reconcile_core::OrderStatus::Cancelled)
            .limit("0.60")
            .leg(C640, Side::BuyToClose, "1")
            .submitted("2025-11-07T10:00:00Z"),
    );
    let said = |p: &Plan| {
        p.skipped
            .iter()
            .any(|s| s.subject == "place:45:call_spread" && s.reason.contains("--clear-invalid"))
    };
    let only = |create_missing| Policy {
        create_missing,
        ..Policy::report_only()
    };
    let p = planned(&open, &b, only(true));
    assert!(p.actions.is_empty() && said(&p), "{:?}", p.skipped);
    assert!(!said(&planned(&open, &b, only(false))));
    // A closing position's target is not due: nothing to say about placing it.
    let mut closing = open.clone();
    closing.positions[0].state = reconcile_core::PositionState::Closing;
    assert!(!said(&planned(&closing, &b, only(true))));
    let both = Policy {
        clear_invalid: true,
        ..only(true)
    };
    assert_eq!(kinds(&planned(&open, &b, both)), ["clear", "place"]);
}

#[test]
fn an_intent_whose_order_never_came_is_dropped_by_clearing_or_by_placing() {
    let (mut l, b) = one_position("-1", vec![closing_target("call_spread").limit("0.60")]);
    l.intents
        .push(intent("rc-1", "45", "call_spread", "2025-11-07T10:00:00Z"));
    let drops =
        |policy: Policy| kinds(&planned(&l, &b, policy)).contains(&"drop_intent".to_owned());
    assert!(!drops(Policy::report_only()));
    assert!(drops(Policy {
        clear_invalid: true,
        ..Policy::report_only()
    }));
    assert!(drops(Policy {
        create_missing: true,
        ..Policy::report_only()
    }));
}

#[test]
fn conflicts_and_quantity_mismatches_are_left_for_a_person_with_the_reason() {
    let l = local(
        NOW,
        vec![
            position("1", "A", "QQQ")
                .leg(C640, "-1")
                .target(closing_target("call_spread").limit("0.60").active("7")),
            position("2", "A", "QQQ")
                .leg(C640, "-1")
                .target(closing_target("call_spread").limit("0.60").active("7")),
        ],
        vec![],
    );
    let seven = order("7", "A", "QQQ")
        .limit("0.60")
        .leg(C640, Side::BuyToClose, "1")
        .submitted("2025-11-07T10:00:00Z");
    let b = broker(NOW, vec![seven], Some(vec![holding("A", C640, "-3")]));
    let p = planned(&l, &b, Policy::all_fixes());
    let reason = |subject: &str| crate::skipped(&p, subject);
    assert_eq!(
        reason("conflict:7"),
        Some("order referenced by 2 targets: needs a human")
    );
    let q = format!("quantity:A:{C640}");
    assert_eq!(
        reason(&q),
        Some("expected -2, broker holds -3: report only"),
        "{:?}",
        p.skipped
    );
}

#[test]
fn only_a_take_profit_and_a_stop_on_the_same_legs_pair_into_an_oco_order() {
    let two = |a: reconcile_core::ProfitTarget, b: reconcile_core::ProfitTarget| {
        let (l, b) = one_position("-2", vec![a, b]);
        kinds(&planned(
            &l,
            &b,
            Policy {
                create_missing: true,
                ..Policy::report_only()
            },
        ))
    };
    let take = |k: &str, price: &str| closing_target(k).limit(price);
    let stop = |k: &str| closing_target(k).stop("1.50");
    let stop_limit = |k: &str| closing_target(k).stop("1.50").limit("1.45");
    assert_eq!(two(take("a", "0.60"), stop("b")), ["place_oco"]);
    assert_eq!(two(stop("a"), take("b", "0.60")), ["place_oco"]);
    assert_eq!(
        two(take("a", "0.60"), take("b", "0.70")),
        ["place", "place"]
    );
    assert_eq!(two(stop_limit("a"), stop("b")), ["place", "place"]);
    assert_eq!(two(stop("a"), stop_limit("b")), ["place", "place"]);
}

/// A world for the rails: `positions` open positions (one missing target each, held), `orphans`
/// orders nobody references (long ago) and `recent` unreferenced orders in flight, and an
/// untracked equity holding to backfill.
fn rails_world(
    positions: usize,
    orphans: usize,
    recent: usize,
) -> (
    reconcile_core::LocalSnapshot,
    reconcile_core::BrokerSnapshot,
) {
    let sym = |i: usize| format!("QQQ   251219C00{}000", 600 + i);
    let l = local(
        NOW,
        (0..positions)
            .map(|i| {
                position(&format!("p{i}"), "A", "QQQ")
                    .leg(&sym(i), "-1")
                    .target(target("call_spread").limit("0.60").qty("1").leg(
                        &sym(i),
                        Side::BuyToClose,
                        "1",
                    ))
            })
            .collect(),
        vec![],
    );
    let loose = |id: String, when: &str| {
        order(&id, "A", "QQQ")
            .limit("0.10")
            .leg("QQQ   251219P00400000", Side::BuyToClose, "1")
            .submitted(when)
    };
    let mut orders: Vec<_> = (0..orphans)
        .map(|i| loose(format!("o{i}"), "2025-11-07T10:00:00Z"))
        .collect();
    orders.extend((0..recent).map(|i| loose(format!("r{i}"), "2025-11-07T14:59:50Z")));
    let mut held: Vec<_> = (0..positions)
        .map(|i| holding("A", &sym(i), "-1"))
        .collect();
    let mut spy = holding("A", "SPY", "10");
    spy.average_price = Some(dec("600.00"));
    held.push(spy);
    (l, broker(NOW, orders, Some(held)))
}

fn refused(p: &Plan) -> bool {
    p.refusals
        .iter()
        .any(|r| r.contains("probably a broken read"))
}

#[test]
fn a_read_looks_broken_when_local_records_are_empty_or_most_orders_orphaned() {
    let all = || Policy {
        cancel_orphaned: true,
        ..Policy::all_fixes()
    };
    let check = |positions, orphans, recent, want: bool| {
        let (l, b) = rails_world(positions, orphans, recent);
        let p = planned(&l, &b, all());
        assert_eq!(
            refused(&p),
            want,
            "{positions} {orphans} {recent}: {:?}",
            p.refusals
        );
        if want {
            assert!(
                p.actions
                    .iter()
                    .all(|a| !a.action.is_destructive() && !a.action.touches_broker())
            );
        }
    };
    // No local records, nothing working: a backfill is no sign of a broken read.
    check(0, 0, 0, false);
    // No local records facing working orders (in flight, not orphaned): refused.
    check(0, 0, 2, true);
    // Half the working orders orphaned is not more than half; three of four is.
    check(2, 1, 1, false);
    check(2, 3, 1, true);
    check(2, 2, 2, false);
    let (l, b) = rails_world(2, 3, 1);
    let forced = Policy {
        force: true,
        ..all()
    };
    assert!(!refused(&planned(&l, &b, forced)));
}

#[test]
fn over_the_cancel_cap_nothing_destructive_runs_nor_what_waits_on_it() {
    // One clear (its placement waits on it) and two orphan cancels, cap one: the clear and the
    // cancels are dropped, and the placement after the clear; an independent placement stays.
    let gone = position("g", "A", "QQQ").leg(C640, "-1").target(
        closing_target("call_spread")
            .limit("0.60")
            .active("77")
            .placed("2025-11-07T10:00:00Z"),
    );
    let (mut l, mut b) = rails_world(1, 2, 2);
    l.positions.push(gone);
    b.positions.as_mut().unwrap().push(holding("A", C640, "-1"));
    let p = planned(
        &l,
        &b,
        Policy {
            clear_invalid: true,
            create_missing: true,
            cancel_orphaned: true,
            force: true,
            max_cancels: 1,
            ..Policy::report_only()
        },
    );
    assert_eq!(kinds(&p), ["place"], "{:?}", p.skipped);
    assert_eq!(p.actions[0].key, "place:p0:call_spread");
    let reason = |s: &str| crate::skipped(&p, s);
    assert_eq!(
        reason("place:g:call_spread"),
        Some("depends on a dropped destructive action")
    );
    assert!(
        reason("clear:g:call_spread:77")
            .unwrap()
            .contains("exceed the cap of 1")
    );
}

#[test]
fn over_the_placement_cap_nothing_is_placed() {
    let (l, b) = rails_world(3, 0, 0);
    let cap = |max_placements| Policy {
        create_missing: true,
        max_placements,
        ..Policy::report_only()
    };
    assert_eq!(kinds(&planned(&l, &b, cap(3))), ["place", "place", "place"]);
    let p = planned(&l, &b, cap(2));
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert!(
        p.refusals
            .iter()
            .any(|r| r.contains("3 placements exceed the cap of 2"))
    );
}
