//! The diff at 1M targets beside its baselines, in one process:
//! `cargo run --release -p reconcile-benches --example peak_1m [-- TARGETS [ROUNDS]]`.
//!
//! First the std `HashSet` baseline, once. Then `ROUNDS` rounds (default 5), each of them the
//! foldhash baseline, the diff (two threads at this size) and the same diff kept to one thread,
//! back to back, so that a slow spell of the machine falls on all three alike. Last, the medians,
//! their ratios, and the process's peak resident memory (VmHWM); then the median of each round's
//! own ratio (diff ÷ that round's baseline).

use reconcile_benches::{baseline, fast_baseline, workload};
use reconcile_core::{DiffOptions, diff};
use std::time::{Duration, Instant};

fn vm_hwm() -> String {
    reconcile_benches::process_memory_kb("VmHWM")
        .map_or_else(|| "unknown".to_owned(), |kb| format!("{kb} kB"))
}

fn median<T: Ord + Copy>(mut values: Vec<T>) -> T {
    values.sort_unstable();
    values[values.len() / 2]
}

/// `a ÷ b` in hundredths (no float arithmetic).
fn hundredths(a: Duration, b: Duration) -> u128 {
    a.as_micros() * 100 / b.as_micros().max(1)
}

/// Hundredths as a ratio, to two decimals.
fn show(hundredths: u128) -> String {
    format!("{}.{:02}×", hundredths / 100, hundredths % 100)
}

/// `a ÷ b` to two decimals, as text.
fn ratio(a: Duration, b: Duration) -> String {
    show(hundredths(a, b))
}

fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let out = f();
    (t.elapsed(), out)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000usize);
    let rounds = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5usize)
        .max(1);
    let (local, broker) = workload(n);
    println!(
        "inputs built: {} positions, {} orders; peak so far {}",
        local.positions.len(),
        broker.orders.len(),
        vm_hwm()
    );
    let (took, b) = timed(|| baseline(&local, &broker));
    println!("std HashSet baseline (SipHash, two sets): {took:?} {b:?}");

    let options = DiffOptions::default();
    let (mut fast, mut two, mut one) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (f, found) = timed(|| fast_baseline(&local, &broker));
        // Each report is dropped outside its timing, as the baseline's counts are.
        // One report alive at a time, so the peak is one diff's.
        let (d, report) = timed(|| diff(&local, &broker, &options));
        let report = report.map(|r| r.summary);
        let (s, single) =
            timed(|| reconcile_core::testkit::diff_on_one_thread(&local, &broker, &options));
        let single = single.map(|r| r.summary);
        match (&report, &single) {
            (Ok(r), Ok(s)) if r == s => {
                if round == 1 {
                    println!("baseline {found:?}; diff {r:?}");
                }
            }
            (Ok(_), Ok(_)) => eprintln!("round {round}: one thread and two disagree"),
            (Err(e), _) | (_, Err(e)) => eprintln!("round {round}: diff failed: {e}"),
        }
        println!(
            "round {round}: foldhash baseline {f:?}, diff {d:?} ({}), one thread {s:?} ({})",
            ratio(d, f),
            ratio(s, f),
        );
        fast.push(f);
        two.push(d);
        one.push(s);
    }
    // Each round's own ratios, then their medians: a slow spell that spans one round moves its
    // baseline and its diffs alike, so these move less than the ratio of the medians.
    let paired = |times: &[Duration]| {
        show(median(
            times
                .iter()
                .zip(&fast)
                .map(|(&t, &f)| hundredths(t, f))
                .collect(),
        ))
    };
    let (paired_two, paired_one) = (paired(&two), paired(&one));
    let (f, d, s) = (median(fast), median(two), median(one));
    println!(
        "median of {rounds}: foldhash baseline {f:?}, diff of {n} targets {d:?} ({}), on one thread {s:?} ({}); peak {}",
        ratio(d, f),
        ratio(s, f),
        vm_hwm()
    );
    println!(
        "median of the {rounds} rounds' own ratios: diff {paired_two}, on one thread {paired_one}"
    );
}
