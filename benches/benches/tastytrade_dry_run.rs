//! A dry run against the TastyTrade simulator over loopback HTTP: 2,000 open positions × 3
//! targets and 6,000 working orders (paged at 200), SQLite store, default client pacing.
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use adapter_tastytrade::TastytradeBroker;
use adapter_tastytrade::sim::Sim;
use criterion::{Criterion, criterion_group, criterion_main};
use reconcile_benches::{sqlite_store_with, workload};
use reconcile_core::{DiffOptions, Reconciler, Scope};
use secrecy::SecretString;
use std::time::{Duration, Instant};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // 6,000 targets: 2,000 positions × 3, about as many working orders, all in one account.
    let (mut local, mut broker_side) = workload(6_000);
    for p in &mut local.positions {
        p.account = "5WT00001".into();
    }
    for o in &mut broker_side.orders {
        o.account = "5WT00001".into();
    }
    let dir = std::env::temp_dir().join(format!("reconcile-bench-tt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    let store = sqlite_store_with(&dir.join("db.sqlite"), local.positions.iter().cloned());
    let sim = rt
        .block_on(Sim::start(broker_side.as_of, "s", "r"))
        .expect("sim");
    sim.seed(&broker_side);
    let working = broker_side
        .orders
        .iter()
        .filter(|o| o.status.is_working())
        .count();
    println!(
        "{} positions, {} orders at the simulator ({working} working)",
        local.positions.len(),
        broker_side.orders.len()
    );

    let mut g = c.benchmark_group("tastytrade");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    let mut requests = Vec::new();
    g.bench_function("dry_run_2000_positions_6000_orders", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // A fresh client each time: the run includes its token exchange.
                let client = TastytradeBroker::new(
                    sim.base_url(),
                    SecretString::from("s"),
                    SecretString::from("r"),
                )
                .expect("client");
                let rec = Reconciler::new(&client, &store).with_options(DiffOptions {
                    scope: Scope::all().with_account("5WT00001"),
                    ..DiffOptions::default()
                });
                let start = Instant::now();
                let report = rt.block_on(rec.diff(broker_side.as_of)).expect("dry run");
                total += start.elapsed();
                assert_eq!(report.summary.matched + report.summary.drifted, 5_700);
                requests.push(client.request_count());
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
