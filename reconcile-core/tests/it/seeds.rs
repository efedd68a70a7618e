//! The two incidents this project was born from, end to end on the in-memory fakes.

use reconcile_core::report::InvalidReason;
use reconcile_core::testkit::build::dec;
use reconcile_core::testkit::{InMemoryBroker, InMemoryStore};
use reconcile_core::{
    Action, ApplyOptions, BrokerSnapshot, DiffOptions, LocalSnapshot, Policy, Reconciler,
    TargetStatus, diff, plan,
};

fn data(name: &str) -> String {
    let path = format!("{}/../examples/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn seed(prefix: &str) -> (LocalSnapshot, BrokerSnapshot) {
    (
        LocalSnapshot::from_json(&data(&format!("{prefix}-local.json"))).unwrap(),
        BrokerSnapshot::from_json(&data(&format!("{prefix}-broker.json"))).unwrap(),
    )
}

#[test]
fn tastytrade_2025_11_07_report_names_every_disagreement() {
    let (l, b) = seed("2025-11-07-tastytrade");
    let r = diff(&l, &b, &DiffOptions::default()).unwrap();
    let s = r.summary;
    assert_eq!((s.matched, s.invalid, s.orphaned, s.missing), (14, 3, 2, 3));
    assert_eq!(
        s.drifted + s.adoptable + s.in_flight + s.conflicts + s.quantity_mismatches,
        0
    );
    let reasons: Vec<_> = r
        .invalid
        .iter()
        .map(|i| (i.position_id.as_str(), i.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            ("39", InvalidReason::Cancelled),
            ("41", InvalidReason::Cancelled),
            ("43", InvalidReason::Expired)
        ]
    );
    assert!(r.missing.iter().all(|m| m.position_id.as_str() == "45"));
}

#[tokio::test]
async fn tastytrade_2025_11_07_fix_ends_twenty_for_twenty() {
    let (l, b) = seed("2025-11-07-tastytrade");
    let broker = InMemoryBroker::from_snapshot(&b);
    let store = InMemoryStore::from_snapshot(&l);
    let policy = Policy {
        clear_invalid: true,
        cancel_orphaned: true,
        create_missing: true,
        ..Policy::report_only()
    };
    let rec = Reconciler::new(&broker, &store).with_policy(policy);
    let now = b.as_of;
    let (_, p) = rec.plan(now).await.unwrap();
    let kinds = |k: &str| p.actions.iter().filter(|a| a.action.kind() == k).count();
    assert_eq!(
        (kinds("clear"), kinds("cancel"), kinds("place_target")),
        (3, 2, 6)
    );
    let out = rec
        .apply(&p, &ApplyOptions::new("run-1", now))
        .await
        .unwrap();
    assert!(out.all_done(), "{:?}", out.results);
    let verify = out.verify.unwrap();
    assert!(verify.in_sync, "{}", verify.to_json().unwrap());
    let working = broker
        .orders()
        .into_iter()
        .filter(|o| o.status.is_working())
        .count();
    let active = store
        .snapshot(now)
        .positions
        .iter()
        .flat_map(|p| &p.targets)
        .filter(|t| t.status == TargetStatus::Active)
        .count();
    assert_eq!((working, active), (20, 20));
    let audit = reconcile_core::Store::audit_log(&store, None)
        .await
        .unwrap();
    let (started, done): (Vec<_>, Vec<_>) = audit
        .iter()
        .partition(|a| a.outcome == reconcile_core::Outcome::Started);
    assert_eq!(done.len(), 11, "one record per action");
    assert_eq!(
        started.len(),
        8,
        "and one before each of the 2 cancels and 6 placements"
    );
}

#[test]
fn alpaca_2025_11_06_report_finds_the_unrecorded_fills() {
    let (l, b) = seed("2025-11-06-alpaca");
    let r = diff(&l, &b, &DiffOptions::default()).unwrap();
    let syms: Vec<_> = r
        .untracked_holdings
        .iter()
        .map(|u| u.symbol.as_str())
        .collect();
    assert_eq!(syms, ["ACGL", "DVN", "HST", "NVDA", "QCOM"]);
    let stale: Vec<_> = r
        .stale_positions
        .iter()
        .map(|s| s.position_id.as_str())
        .collect();
    assert_eq!(stale, ["200", "201"], "FTNT and IBKR were sold");
    assert_eq!(r.summary.quantity_mismatches, 0);
}

#[tokio::test]
async fn alpaca_2025_11_06_backfill_risk_comes_out_to_the_cent() {
    let (l, b) = seed("2025-11-06-alpaca");
    let r = diff(&l, &b, &DiffOptions::default()).unwrap();
    let policy = Policy {
        backfill: true,
        sync_positions: true,
        create_missing: true,
        ..Policy::report_only()
    };
    let p = plan(&r, &policy);
    assert_eq!(p.backfill_total_risk, Some(dec("3479.52")));
    let qcom = p
        .actions
        .iter()
        .find_map(|a| match &a.action {
            Action::Backfill { position, risk } if position.underlying == "QCOM" => risk.clone(),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (qcom.stop_price, qcom.target_price, qcom.total),
        (dec("158.52"), dec("199.87"), dec("1019.72"))
    );

    let broker = InMemoryBroker::from_snapshot(&b);
    let store = InMemoryStore::from_snapshot(&l);
    let rec = Reconciler::new(&broker, &store).with_policy(policy);
    let out = rec
        .apply(&p, &ApplyOptions::new("backfill-1", b.as_of))
        .await
        .unwrap();
    assert!(out.all_done(), "{:?}", out.results);
    assert!(out.stale.is_empty());
    let v = out.verify.unwrap();
    assert!(v.in_sync, "{}", v.to_json().unwrap());
    assert_eq!(
        v.summary.matched, 12,
        "a stop and a take-profit for each of the five backfilled and the promoted WFC"
    );
    assert!(
        out.results
            .iter()
            .any(|r| r.key == "promote:114" && r.outcome == reconcile_core::Outcome::Applied),
        "WFC's pending position, its entry filled, is open now: {:?}",
        out.results
    );
}
