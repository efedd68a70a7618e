//! A dry run against the Alpaca simulator over loopback HTTP: 2,000 open positions, each
//! protected by an OCO exit (a take profit and a held stop: 4,000 working legs), paged at 500,
//! SQLite store, the production client (190 requests a minute in bursts of 10).
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use adapter_alpaca::AlpacaBroker;
use adapter_alpaca::sim::Sim;
use chrono::{DateTime, TimeDelta, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use reconcile_benches::sqlite_store_with;
use reconcile_core::testkit::build::{
    OrderExt, PositionExt, TargetExt, at, holding, order, position, target,
};
use reconcile_core::{BrokerSnapshot, LocalSnapshot, OrderStatus, Reconciler, Side};
use secrecy::SecretString;
use std::time::{Duration, Instant};

const ACCOUNT: &str = "PA3ALPACA01";
const POSITIONS: usize = 2_000;

fn uuid(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn world(now: DateTime<Utc>) -> (LocalSnapshot, BrokerSnapshot) {
    let mut local = LocalSnapshot::new(now);
    let mut broker = BrokerSnapshot::new(now);
    let mut held = Vec::new();
    for i in 0..POSITIONS {
        let symbol = format!("S{i:04}");
        let (tp, sl) = (uuid(2 * i), uuid(2 * i + 1));
        // Each group placed a second apart: Alpaca pages by submit time.
        let submitted = (now - TimeDelta::hours(2) + TimeDelta::seconds(i as i64)).to_rfc3339();
        broker.orders.push(
            order(&tp, ACCOUNT, &symbol)
                .limit("120")
                .leg(&symbol, Side::Sell, "100")
                .oco(&tp)
                .submitted(&submitted),
        );
        broker.orders.push(
            order(&sl, ACCOUNT, &symbol)
                .status(OrderStatus::Held)
                .stop("90")
                .leg(&symbol, Side::Sell, "100")
                .oco(&tp)
                .submitted(&submitted),
        );
        let mut h = holding(ACCOUNT, &symbol, "100");
        h.average_price = Some(reconcile_core::testkit::build::dec("100"));
        held.push(h);
        local.positions.push(
            position(&format!("{i}"), ACCOUNT, &symbol)
                .opened("2025-11-06T09:00:00Z")
                .leg(&symbol, "100")
                .target(
                    target("take_profit")
                        .active(&tp)
                        .limit("120")
                        .qty("100")
                        .leg(&symbol, Side::Sell, "100"),
                )
                .target(target("stop_loss").active(&sl).stop("90").qty("100").leg(
                    &symbol,
                    Side::Sell,
                    "100",
                )),
        );
    }
    broker.positions = Some(held);
    (local, broker)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let now = at("2025-11-06T16:00:00Z");
    let (local, broker_side) = world(now);
    let dir = std::env::temp_dir().join(format!("reconcile-bench-alpaca-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    let store = sqlite_store_with(&dir.join("db.sqlite"), local.positions.iter().cloned());
    let sim = rt.block_on(Sim::start(now, "k", "s")).expect("sim");
    sim.seed(&broker_side);
    // The simulator's 200-a-minute limit would refuse the benchmark's own repetitions: the
    // client's pacing is what is measured.
    sim.set_rate_limit(None);
    println!(
        "{POSITIONS} positions, {} working legs at the simulator",
        broker_side.orders.len()
    );

    let mut g = c.benchmark_group("alpaca");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    let mut requests = Vec::new();
    g.bench_function("dry_run_2000_positions_4000_oco_legs", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // A fresh production client each time: its account lookup and a full burst.
                let client = AlpacaBroker::new(
                    sim.base_url(),
                    SecretString::from("k"),
                    SecretString::from("s"),
                )
                .expect("client")
                .decorated();
                let rec = Reconciler::new(&client, &store);
                let start = Instant::now();
                let report = rt.block_on(rec.diff(now)).expect("dry run");
                total += start.elapsed();
                assert_eq!(
                    report.summary.matched,
                    2 * POSITIONS,
                    "{:?}",
                    report.summary
                );
                assert!(report.in_sync);
                requests.push(client.inner().inner().request_count());
            }
            total
        })
    });
    // The same read with pacing out of the way: what the work itself costs.
    g.bench_function("dry_run_unpaced", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let client = AlpacaBroker::new(
                    sim.base_url(),
                    SecretString::from("k"),
                    SecretString::from("s"),
                )
                .expect("client")
                .with_rate(1_000_000)
                .decorated();
                let rec = Reconciler::new(&client, &store);
                let start = Instant::now();
                let report = rt.block_on(rec.diff(now)).expect("dry run");
                total += start.elapsed();
                assert!(report.in_sync);
            }
            total
        })
    });
    g.finish();
    requests.sort_unstable();
    requests.dedup();
    println!("HTTP requests per dry run: {requests:?}");
}

criterion_group!(benches, bench);
criterion_main!(benches);
