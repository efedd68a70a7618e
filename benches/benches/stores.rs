//! The two stores side by side in one run: loading 10k positions × 3 targets and applying a
//! 10k-change batch, on SQLite (a file in /tmp) and on PostgreSQL (127.0.0.1:5432, a schema of
//! the bench's own in `reconcile_test`, dropped at the end).
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{Criterion, criterion_group, criterion_main};
use reconcile_benches::{condor, link_batch};
use reconcile_core::testkit::build::at;
use reconcile_core::{ChangeBatch, LocalChange, Scope, Store};
use store_postgres::PostgresStore;
use store_sqlite::SqliteStore;

const N: usize = 10_000;

fn seed_batch() -> ChangeBatch {
    ChangeBatch {
        changes: (0..N)
            .map(|i| LocalChange::InsertPosition {
                position: condor(&format!("P{i:06}"), "5WT00001"),
            })
            .collect(),
        audit: Vec::new(),
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let now = at("2025-11-07T15:00:00Z");
    let dir = std::env::temp_dir().join(format!("reconcile-bench-stores-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    let sqlite = SqliteStore::open(dir.join("db.sqlite")).expect("sqlite");
    let schema = format!("bench_{}", std::process::id());
    let pg = rt.block_on(async {
        let admin = PostgresStore::connect(
            "postgres://postgres@127.0.0.1:5432/postgres?schema=bench_admin&sslmode=disable",
        )
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
        drop(admin);
        let settings = store_postgres::Settings::parse(
            "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
            &store_postgres::ProcessEnv,
        )
        .expect("url");
        let c = store_postgres::session(&settings).await.expect("session");
        let _ = c
            .batch_execute("DROP SCHEMA IF EXISTS bench_admin CASCADE")
            .await;
        if c.query_opt(
            "SELECT 1 FROM pg_database WHERE datname = 'reconcile_test'",
            &[],
        )
        .await
        .expect("query")
        .is_none()
        {
            let _ = c.batch_execute("CREATE DATABASE reconcile_test").await;
        }
        PostgresStore::connect(&format!(
            "postgres://postgres@127.0.0.1:5432/reconcile_test?schema={schema}&sslmode=disable"
        ))
        .await
        .expect("postgres")
    });
    let seed = seed_batch();
    let t = std::time::Instant::now();
    rt.block_on(sqlite.apply(&seed)).expect("seed sqlite");
    println!("seeding {N} positions: sqlite {:?}", t.elapsed());
    let t = std::time::Instant::now();
    rt.block_on(pg.apply(&seed)).expect("seed postgres");
    println!("seeding {N} positions: postgres {:?}", t.elapsed());
    let batch = link_batch(N, now);

    let mut g = c.benchmark_group("stores");
    g.sample_size(20);
    for (name, store) in [
        ("sqlite", &sqlite as &dyn Store),
        ("postgres", &pg as &dyn Store),
    ] {
        g.bench_function(format!("{name}/load_10k_positions_x3_targets"), |b| {
            b.iter(|| {
                let snap = rt.block_on(store.load(&Scope::all(), now)).expect("load");
                assert_eq!(snap.positions.len(), N);
            })
        });
        g.bench_function(format!("{name}/apply_10k_changes_one_batch"), |b| {
            b.iter(|| rt.block_on(store.apply(&batch)).expect("apply"))
        });
    }
    g.finish();
    rt.block_on(async {
        let settings = store_postgres::Settings::parse(
            "postgres://postgres@127.0.0.1:5432/reconcile_test?sslmode=disable",
            &store_postgres::ProcessEnv,
        )
        .expect("url");
        let c = store_postgres::session(&settings).await.expect("session");
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .expect("drop");
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
