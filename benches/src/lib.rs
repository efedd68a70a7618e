//! Workloads shared by the benchmarks: snapshot pairs of a given size with a realistic mix of
//! categories (most targets matched, a few drifted, invalid, missing; a few orphans).

use reconcile_core::testkit::build::{PositionExt, TargetExt, dec, order, position, target};
use reconcile_core::{
    BrokerSnapshot, LocalSnapshot, OrderId, OrderStatus, PositionLeg, Side, Symbol, TargetLeg,
    TargetStatus,
};

/// The instant every workload is "as of".
pub const AS_OF: &str = "2025-11-07T15:00:00Z";

/// `targets` targets (three per position) and about as many broker orders.
pub fn workload(targets: usize) -> (LocalSnapshot, BrokerSnapshot) {
    let as_of = reconcile_core::testkit::build::at(AS_OF);
    let submitted = reconcile_core::testkit::build::at("2025-11-05T14:00:00Z");
    let mut local = LocalSnapshot::new(as_of);
    let mut broker = BrokerSnapshot::new(as_of);
    local.positions.reserve(targets / 3 + 1);
    broker.orders.reserve(targets + targets / 50);
    let price = dec("0.60");
    let one = dec("1");
    let mut n = 0usize;
    let mut pi = 0usize;
    while n < targets {
        let mut p = position(
            &format!("P{pi:07}"),
            ["5WT00001", "5WT00002"][pi % 2],
            "QQQ",
        );
        for (k, key) in ["call_spread", "put_spread_1", "put_spread_2"]
            .into_iter()
            .enumerate()
        {
            if n >= targets {
                break;
            }
            let sym = Symbol::new(&format!("QQQ   2{:05}C{:08}", pi % 100_000, k * 1000));
            p.legs.push(PositionLeg {
                symbol: sym.clone(),
                quantity: dec("-1"),
            });
            let mut t = target(key);
            t.limit_price = Some(price);
            t.quantity = Some(one);
            t.legs.push(TargetLeg {
                symbol: sym.clone(),
                side: Side::BuyToClose,
                quantity: one,
            });
            let id = OrderId::new(format!("{}", 400_000_000 + n));
            let mut o = order(id.as_str(), p.account.as_str(), "QQQ");
            o.submitted_at = Some(submitted);
            o.limit_price = Some(price);
            o.legs.push(reconcile_core::OrderLeg {
                symbol: sym,
                side: Side::BuyToClose,
                quantity: one,
                filled_quantity: rust_decimal::Decimal::ZERO,
            });
            match n % 100 {
                // 2 %: never placed (missing).
                0 | 1 => {}
                // 3 %: cancelled by hand (invalid).
                2..=4 => {
                    t.status = TargetStatus::Active;
                    t.order_id = Some(id);
                    o.status = OrderStatus::Cancelled;
                    broker.orders.push(o);
                }
                // 3 %: working at another price (drifted).
                5..=7 => {
                    t.status = TargetStatus::Active;
                    t.order_id = Some(id);
                    o.limit_price = Some(dec("0.75"));
                    broker.orders.push(o);
                }
                // The rest: matched.
                _ => {
                    t.status = TargetStatus::Active;
                    t.order_id = Some(id);
                    broker.orders.push(o);
                }
            }
            p.targets.push(t);
            n += 1;
        }
        local.positions.push(p);
        pi += 1;
    }
    // 2 %: orphans nothing references.
    for k in 0..targets / 50 {
        let mut o = order(&format!("9{k:09}"), "5WT00001", "QQQ");
        o.submitted_at = Some(submitted);
        broker.orders.push(o);
    }
    (local, broker)
}

/// The baseline: the bare set differences of referenced and working order ids.
pub fn baseline(local: &LocalSnapshot, broker: &BrokerSnapshot) -> (usize, usize) {
    use std::collections::HashSet;
    let referenced: HashSet<&str> = local
        .positions
        .iter()
        .flat_map(|p| {
            p.targets
                .iter()
                .filter_map(|t| t.order_id.as_ref().map(OrderId::as_str))
        })
        .collect();
    let working: HashSet<&str> = broker.orders.iter().map(|o| o.id.as_str()).collect();
    (
        referenced.difference(&working).count(),
        working.difference(&referenced).count(),
    )
}

/// The fair baseline of the 1M goal: one pass that hashes every id once into a fast-hashed set
/// (foldhash, as the diff's own maps). The working orders' ids go into the set; each referenced
/// id is looked up once. Returns (referenced but not working, working but not referenced).
pub fn fast_baseline(local: &LocalSnapshot, broker: &BrokerSnapshot) -> (usize, usize) {
    let mut working: std::collections::HashSet<&str, foldhash::fast::FixedState> =
        std::collections::HashSet::with_capacity_and_hasher(
            broker.orders.len(),
            foldhash::fast::FixedState::default(),
        );
    working.extend(broker.orders.iter().map(|o| o.id.as_str()));
    let (mut found, mut missing) = (0usize, 0usize);
    for id in local
        .positions
        .iter()
        .flat_map(|p| p.targets.iter().filter_map(|t| t.order_id.as_ref()))
    {
        if working.contains(id.as_str()) {
            found += 1;
        } else {
            missing += 1;
        }
    }
    (missing, working.len() - found)
}

/// An iron condor's worth of records: two legs held, three targets (two active, one not).
pub fn condor(id: &str, account: &str) -> reconcile_core::Position {
    let s = |k: &str| format!("QQQ   251219{k}");
    position(id, account, "QQQ")
        .leg(&s("C00640000"), "-1")
        .leg(&s("C00645000"), "1")
        .target(
            target("call_spread")
                .active(&format!("{id}-c"))
                .limit("0.60")
                .qty("1")
                .leg(&s("C00640000"), Side::BuyToClose, "1"),
        )
        .target(
            target("put_spread_1")
                .active(&format!("{id}-p1"))
                .limit("0.55")
                .qty("1")
                .leg(&s("P00500000"), Side::BuyToClose, "1"),
        )
        .target(target("put_spread_2").limit("0.50").qty("1").leg(
            &s("P00490000"),
            Side::BuyToClose,
            "1",
        ))
}

/// One batch linking the third target of positions `P000000`… to new orders, with its audit
/// record: the stores' "apply 10k changes" case.
pub fn link_batch(n: usize, now: chrono::DateTime<chrono::Utc>) -> reconcile_core::ChangeBatch {
    use reconcile_core::{AuditRecord, ChangeBatch, LocalChange, Outcome};
    ChangeBatch {
        changes: (0..n)
            .map(|i| LocalChange::LinkTarget {
                position_id: format!("P{i:06}").into(),
                target_key: "put_spread_2".into(),
                order_id: format!("new-{i}").into(),
                client_order_id: Some(format!("rc-bench-{i}").into()),
                placed_at: Some(now),
            })
            .collect(),
        audit: vec![AuditRecord {
            run_id: "bench".into(),
            at: now,
            action_key: "batch".to_owned(),
            outcome: Outcome::Applied,
            detail: String::new(),
        }],
    }
}

/// A SQLite store at `path` holding `positions`, written in one batch.
pub fn sqlite_store_with(
    path: &std::path::Path,
    positions: impl IntoIterator<Item = reconcile_core::Position>,
) -> store_sqlite::SqliteStore {
    let store = store_sqlite::SqliteStore::open(path).expect("store");
    let changes = positions
        .into_iter()
        .map(|position| reconcile_core::LocalChange::InsertPosition { position })
        .collect();
    store
        .apply_blocking(&reconcile_core::ChangeBatch {
            changes,
            audit: Vec::new(),
        })
        .expect("seed");
    store
}

/// A memory figure of this process from `/proc/self/status`, in kB (`"VmRSS"`, `"VmHWM"`, …);
/// `None` where there is no such file or field.
pub fn process_memory_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
