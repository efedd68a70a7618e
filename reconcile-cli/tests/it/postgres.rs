//! The binary on the PostgreSQL store: many reconcilers, one database, one account.

use super::crash::{ACCOUNT, SimProcess, check_agreement, command, orders_at, run_args, world};
use super::{import, reconcile, scratch};
use std::process::Stdio;
use std::time::{Duration, Instant};

const DATABASE: &str = "reconcile_test";

async fn admin(sql: &str) {
    let (client, conn) = tokio_postgres::connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        tokio_postgres::NoTls,
    )
    .await
    .expect("PostgreSQL on 127.0.0.1:5432");
    tokio::spawn(conn);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DATABASE])
        .await
        .unwrap()
        .is_some();
    if !exists {
        let _ = client
            .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
            .await;
    }
    if !sql.is_empty() {
        let (c, conn) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port=5432 user=postgres dbname={DATABASE}"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        c.batch_execute(sql).await.unwrap();
    }
}

/// A schema of its own for one test, dropped at the end.
struct Schema(String);

impl Schema {
    async fn new(tag: &str) -> Self {
        admin("").await;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Self(format!("cli_{tag}_{}_{nanos}", std::process::id()))
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:5432/{DATABASE}?schema={}&sslmode=disable",
            self.0
        )
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let sql = format!(
            "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE",
            self.0
        );
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(admin(&sql));
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incident_is_fixed_on_postgres() {
    let schema = Schema::new("incident").await;
    import(&schema.url(), "2025-11-07-tastytrade");
    let out = reconcile(&[
        "run",
        "--broker",
        "tastytrade-sim",
        "--store",
        &schema.url(),
        "--clear-invalid",
        "--cancel-orphaned",
        "--create-missing",
        "--yes",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["in_sync"], true, "{v}");
    assert_eq!(v["summary"]["matched"], 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_processes_on_one_account_one_acts_the_others_name_the_holder() {
    let schema = Schema::new("six").await;
    let dir = scratch("pg-six");
    let (l, b) = world();
    let local_file = dir.path().join("local.json");
    let broker_file = dir.path().join("broker.json");
    std::fs::write(&local_file, l.to_json().unwrap()).unwrap();
    std::fs::write(&broker_file, b.to_json().unwrap()).unwrap();
    let out = command(&[
        "import",
        "local",
        local_file.to_str().unwrap(),
        "--store",
        &schema.url(),
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sim = SimProcess::start(&broker_file);
    // The first placement's answer takes two seconds: the run that acts holds its lock that long.
    sim.fail_next(&serde_json::json!({"method": "POST", "path_contains": "/orders", "fault": "delay", "seconds": 2}));
    let url = schema.url();
    let started = Instant::now();
    // Each child is waited for on a thread of its own, so each one's end is timed as it happens.
    let waiting: Vec<_> = (0..6)
        .map(|_| {
            let child = command(&run_args(&sim.url, &url))
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::spawn(move || {
                let out = child.wait_with_output().unwrap();
                (
                    out.status.code(),
                    started.elapsed(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                )
            })
        })
        .collect();
    let outcomes: Vec<_> = waiting.into_iter().map(|t| t.join().unwrap()).collect();
    let winners: Vec<_> = outcomes.iter().filter(|o| o.0 == Some(0)).collect();
    let losers: Vec<_> = outcomes.iter().filter(|o| o.0 == Some(2)).collect();
    assert_eq!((winners.len(), losers.len()), (1, 5), "{outcomes:#?}");
    for (_, took, err) in &losers {
        assert!(
            err.contains(&format!(
                "account {ACCOUNT} is locked by another run: run run-"
            )),
            "{err}"
        );
        assert!(err.contains("(pid "), "the holder is named: {err}");
        assert!(
            *took < Duration::from_secs(1),
            "a refused run ends within a second: {took:?}"
        );
    }
    println!(
        "losers ended after {:?}",
        losers.iter().map(|o| o.1).collect::<Vec<_>>()
    );
    let store = store_postgres::PostgresStore::connect(&url).await.unwrap();
    check_agreement(&sim.url, &store, 40).await;
    assert_eq!(orders_at(&sim.url).await.len(), 40, "no order placed twice");
}

#[test]
fn bad_stores_exit_2_with_a_clear_message_and_nothing_written() {
    let dir = scratch("pg-bad");
    let file = super::data("2025-11-07-tastytrade-local.json");
    for (url, words) in [
        (
            "postgres://postgres:pw-9931@127.0.0.1:5432/reconcile_test?sslmode=never",
            "sslmode",
        ),
        (
            "postgres://postgres:pw-9931@127.0.0.1:1/trading",
            "postgres://postgres@127.0.0.1:1/trading (schema reconcile): cannot connect",
        ),
        (
            "postgres://postgres:pw-9931@127.0.0.1:5432/no_such_db_4471",
            "no_such_db_4471",
        ),
        ("mongodb://x", "not a store"),
    ] {
        let out = reconcile(&["import", "local", file.to_str().unwrap(), "--store", url]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {err}");
        assert!(err.contains(words), "{url}: {err}");
        assert!(!err.contains("pw-9931"), "the password leaked: {err}");
    }
    let _ = dir;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_is_not_ours_is_refused_untouched() {
    let schema = Schema::new("foreign").await;
    admin(&format!(
        "CREATE SCHEMA {0}; CREATE TABLE {0}.trading_position (id int)",
        schema.0
    ))
    .await;
    let file = super::data("2025-11-07-tastytrade-local.json");
    let out = reconcile(&[
        "import",
        "local",
        file.to_str().unwrap(),
        "--store",
        &schema.url(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not reconcile's (trading_position)"), "{err}");
}
