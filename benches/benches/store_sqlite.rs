//! SqliteStore: loading 10k positions × 3 targets, applying 10k changes in one batch, and the
//! seed-003 case — seven placements with their journal writes while a second process writes to
//! the same file continuously.
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{Criterion, criterion_group};
use reconcile_benches::{condor, link_batch, sqlite_store_with};
use reconcile_core::testkit::InMemoryBroker;
use reconcile_core::testkit::build::{PositionExt, TargetExt, at, holding, position, target};
use reconcile_core::{
    ApplyOptions, AuditRecord, ChangeBatch, DiffOptions, LocalChange, Outcome, Policy, Reconciler,
    Scope, Side, Store,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use store_sqlite::SqliteStore;

const WRITER_ENV: &str = "RECONCILE_BENCH_WRITER";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reconcile-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir.join("db.sqlite")
}

fn seeded(path: &Path, n: usize) -> SqliteStore {
    sqlite_store_with(
        path,
        (0..n).map(|i| condor(&format!("P{i:06}"), "5WT00001")),
    )
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sqlite");
    g.sample_size(20);
    let now = at("2025-11-07T15:00:00Z");

    let store = seeded(&scratch("load"), 10_000);
    g.bench_function("load_10k_positions_x3_targets", |b| {
        b.iter(|| store.load_blocking(&Scope::all(), now).expect("load"))
    });

    let batch = link_batch(10_000, now);
    g.bench_function("apply_10k_changes_one_batch", |b| {
        b.iter(|| store.apply_blocking(&batch).expect("apply"))
    });

    // Seed 003: seven placements, each intent → send → link, while another process writes.
    let path = scratch("seven");
    let store = SqliteStore::open(&path).expect("open");
    let mut writer = std::process::Command::new(std::env::current_exe().expect("own path"))
        .env(WRITER_ENV, &path)
        .spawn()
        .expect("the writer process");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut round = 0usize;
    g.bench_function("seven_placements_while_another_process_writes", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let account = format!("SEVEN-{round}");
                let broker = InMemoryBroker::new(now);
                let mut changes = Vec::new();
                for k in 0..7 {
                    let sym = format!("SYM{k}");
                    let id = format!("{account}-{k}");
                    changes.push(LocalChange::InsertPosition {
                        position: position(&id, &account, &sym).leg(&sym, "100").target(
                            target("take_profit").limit("10.00").qty("100").leg(
                                &sym,
                                Side::Sell,
                                "100",
                            ),
                        ),
                    });
                    broker.add_position(holding(&account, &sym, "100"));
                }
                store
                    .apply_blocking(&ChangeBatch {
                        changes,
                        audit: Vec::new(),
                    })
                    .expect("seed");
                let rec = Reconciler::new(&broker, &store)
                    .with_options(DiffOptions {
                        scope: Scope::all().with_account(account.as_str()),
                        ..DiffOptions::default()
                    })
                    .with_policy(Policy {
                        create_missing: true,
                        ..Policy::report_only()
                    });
                let start = Instant::now();
                let (_, plan) = rt.block_on(rec.plan(now)).expect("plan");
                let out = rt
                    .block_on(rec.apply(&plan, &ApplyOptions::new(format!("r{round}"), now)))
                    .expect("apply");
                total += start.elapsed();
                assert_eq!(out.count(Outcome::Applied), 7, "{:?}", out.results);
                assert_eq!(broker.placed().len(), 7);
            }
            total
        })
    });
    std::fs::write(path.with_extension("stop"), b"stop").expect("stop file");
    let status = writer.wait().expect("the writer ends");
    assert!(status.success(), "the writer process saw errors");
    let audit = rt
        .block_on(store.audit_log(Some("writer".into())))
        .expect("audit");
    println!(
        "the other process wrote {} batches meanwhile, none failed",
        audit.len()
    );
    g.finish();
}

/// The second process: writes small batches until told to stop (or two minutes pass).
fn writer(path: &Path) -> ! {
    let store = SqliteStore::open(path).expect("open");
    let started = Instant::now();
    let mut failures = 0;
    let mut i = 0u64;
    while !path.with_extension("stop").exists() && started.elapsed() < Duration::from_secs(120) {
        i += 1;
        let batch = ChangeBatch {
            changes: vec![LocalChange::InsertPosition {
                position: position(&format!("w-{i}"), "WRITER", "QQQ"),
            }],
            audit: vec![AuditRecord {
                run_id: "writer".into(),
                at: at("2025-11-07T15:00:00Z"),
                action_key: format!("w:{i}"),
                outcome: Outcome::Applied,
                detail: String::new(),
            }],
        };
        if let Err(e) = store.apply_blocking(&batch) {
            eprintln!("writer: {e}");
            failures += 1;
        }
    }
    std::process::exit(i32::from(failures > 0))
}

criterion_group!(benches, bench);

fn main() {
    if let Some(path) = std::env::var_os(WRITER_ENV) {
        writer(Path::new(&path));
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
