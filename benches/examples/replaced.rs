//! Replaced orders that only their replacements name (`replaces`, no `replaced_by`), each
//! referenced by a target: the diff follows every chain to its working end.
//! `cargo run --release -p reconcile-benches --example replaced [-- ORDERS]` (default 20,000).

use reconcile_core::testkit::build::{
    OrderExt, PositionExt, TargetExt, at, order, position, target,
};
use reconcile_core::{BrokerSnapshot, DiffOptions, LocalSnapshot, OrderId, OrderStatus, diff};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let now = at("2025-11-07T15:00:00Z");
    let mut l = LocalSnapshot::new(now);
    let mut b = BrokerSnapshot::new(now);
    for i in 0..n {
        l.positions.push(
            position(&format!("P{i:07}"), "A", "QQQ").target(target("t").active(&format!("r{i}"))),
        );
        b.orders
            .push(order(&format!("r{i}"), "A", "QQQ").status(OrderStatus::Replaced));
        let mut o = order(&format!("n{i}"), "A", "QQQ");
        o.replaces = Some(OrderId::new(format!("r{i}")));
        b.orders.push(o);
    }
    let t = std::time::Instant::now();
    match diff(&l, &b, &DiffOptions::default()) {
        Ok(r) => println!(
            "{n} replaced orders named only by their replacements: {:?}; {} adoptable",
            t.elapsed(),
            r.adoptable.len()
        ),
        Err(e) => eprintln!("diff failed: {e}"),
    }
}
