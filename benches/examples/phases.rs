//! Where the end-to-end time and memory of `reconcile diff --json` go, phase by phase, on two
//! files: `cargo run --release -p reconcile-benches --example phases -- LOCAL BROKER`.
//!
//! Each line gives the phase's time, then the resident memory after it (`VmRSS`) and the peak so
//! far (`VmHWM`), read from `/proc/self/status`. It runs the phases one after another on the
//! system allocator, so its figures say what each part holds, not how fast the binary is.

use reconcile_core::{BrokerSnapshot, DiffOptions, LocalSnapshot, diff};
use std::time::{Duration, Instant};

fn memory() -> String {
    let field = |name: &str| {
        reconcile_benches::process_memory_kb(name)
            .map_or_else(|| "?".to_owned(), |kb| format!("{} MB", kb / 1024))
    };
    format!("rss {:>7}  peak {:>7}", field("VmRSS"), field("VmHWM"))
}

fn line(name: &str, took: Duration) {
    println!("{name:<22} {:>9.1?}   {}", took, memory());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, l, b] = &args[..] else {
        eprintln!("usage: phases LOCAL BROKER");
        std::process::exit(2);
    };
    let t = Instant::now();
    let lt = std::fs::read_to_string(l).expect("the local file reads");
    let bt = std::fs::read_to_string(b).expect("the broker file reads");
    line("read both files", t.elapsed());
    let t = Instant::now();
    let local = LocalSnapshot::from_json(&lt).expect("the local file parses");
    line("parse local", t.elapsed());
    let t = Instant::now();
    let broker = BrokerSnapshot::from_json(&bt).expect("the broker file parses");
    line("parse broker", t.elapsed());
    let t = Instant::now();
    drop(lt);
    drop(bt);
    line("drop both texts", t.elapsed());
    let t = Instant::now();
    let r = diff(&local, &broker, &DiffOptions::default()).expect("the diff runs");
    line("diff", t.elapsed());
    let t = Instant::now();
    // As `reconcile diff --json` writes it (`write_json`), here into memory.
    let mut json = Vec::new();
    r.write_json(&mut json).expect("the report serializes");
    line("report to JSON", t.elapsed());
    println!("({} bytes of report)", json.len());
    let t = Instant::now();
    drop(json);
    drop(r);
    drop(local);
    drop(broker);
    line("free everything", t.elapsed());
}
