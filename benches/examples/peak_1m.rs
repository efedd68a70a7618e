//! One diff at 1M targets, then the process's peak resident memory (VmHWM) and the time taken,
//! then the same diff kept to one thread:
//! `cargo run --release -p reconcile-benches --example peak_1m`.

use reconcile_benches::{baseline, fast_baseline, workload};
use reconcile_core::{DiffOptions, diff};
use std::time::Instant;

fn vm_hwm() -> String {
    reconcile_benches::process_memory_kb("VmHWM")
        .map_or_else(|| "unknown".to_owned(), |kb| format!("{kb} kB"))
}

fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000usize);
    let (local, broker) = workload(n);
    println!(
        "inputs built: {} positions, {} orders; peak so far {}",
        local.positions.len(),
        broker.orders.len(),
        vm_hwm()
    );
    let t = Instant::now();
    let b = baseline(&local, &broker);
    println!(
        "std HashSet baseline (SipHash, two sets): {:?} {b:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let f = fast_baseline(&local, &broker);
    let fast = t.elapsed();
    println!("fast baseline (foldhash, every id hashed once): {fast:?} {f:?}");
    let t = Instant::now();
    let r = diff(&local, &broker, &DiffOptions::default());
    let took = t.elapsed();
    match r {
        Ok(r) => println!(
            "diff of {n} targets: {took:?}, {}% of the fast baseline's time; {:?}; peak {}",
            took.as_micros() * 100 / fast.as_micros().max(1),
            r.summary,
            vm_hwm()
        ),
        Err(e) => eprintln!("diff failed: {e}"),
    }
    let t = Instant::now();
    let r = reconcile_core::testkit::diff_on_one_thread(&local, &broker, &DiffOptions::default());
    let took = t.elapsed();
    if let Err(e) = r {
        eprintln!("diff on one thread failed: {e}");
    }
    println!(
        "diff of {n} targets on one thread: {took:?}, {}% of the fast baseline's time",
        took.as_micros() * 100 / fast.as_micros().max(1),
    );
}
