//! `reconcile retarget` on the 2025-11-07 data, against the TastyTrade simulator in its own
//! process: the dry-run table, an apply, and kills at random points, each followed by a re-run
//! that converges — every call-spread target at its new price, each with one working order.

use super::crash::{ACCOUNT, SimProcess, client, command};
use super::{data, scratch};
use reconcile_core::testkit::build::{at, dec};
use reconcile_core::{Broker, Scope, Store, TargetStatus};
use std::collections::BTreeMap;
use std::time::Duration;

fn retarget_args<'a>(url: &'a str, store: &'a str, apply: bool) -> Vec<&'a str> {
    let mut a = vec![
        "retarget",
        "--broker",
        "tastytrade",
        "--base-url",
        url,
        "--store",
        store,
        "--account",
        ACCOUNT,
        "--key",
        "call_spread",
        "--profit-percent",
        "40",
        "--from-percent",
        "50",
        "--settle",
        "1s",
    ];
    if apply {
        a.extend(["--apply", "--yes"]);
    }
    a
}

/// A simulator of the incident, its records imported and fixed first (20 and 20).
fn fixed_world(tag: &str) -> (tempfile::TempDir, SimProcess, String) {
    let dir = scratch(tag);
    let store = format!("sqlite:{}", dir.path().join("db.sqlite").display());
    let local = data("2025-11-07-tastytrade-local.json");
    let out = command(&[
        "import",
        "local",
        local.to_str().unwrap(),
        "--store",
        &store,
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sim = SimProcess::start(&data("2025-11-07-tastytrade-broker.json"));
    let out = command(&[
        "run",
        "--broker",
        "tastytrade",
        "--base-url",
        &sim.url,
        "--store",
        &store,
        "--account",
        ACCOUNT,
        "--clear-invalid",
        "--cancel-orphaned",
        "--create-missing",
        "--yes",
    ])
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, sim, store)
}

/// Every call-spread target at 0.72, linked to a working order at 0.72; every other target as
/// it was; every working order some target's, once.
async fn converged(url: &str, db: &std::path::Path) {
    let store = store_sqlite::SqliteStore::open(db).unwrap();
    let snap = store
        .load(&Scope::all(), at("2025-11-07T15:00:00Z"))
        .await
        .unwrap();
    let working: BTreeMap<String, reconcile_core::Order> = client(url)
        .working_orders(&ACCOUNT.into())
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.id.to_string(), o))
        .collect();
    let mut referenced = BTreeMap::new();
    for p in &snap.positions {
        for t in &p.targets {
            assert_eq!(t.status, TargetStatus::Active, "{} {}", p.id, t.key);
            let id = t.order_id.as_ref().unwrap().to_string();
            let o = working
                .get(&id)
                .unwrap_or_else(|| panic!("{} {} → {id}, not working", p.id, t.key));
            if t.key.as_str() == "call_spread" {
                assert_eq!(t.limit_price, Some(dec("0.72")), "{} call_spread", p.id);
                assert_eq!(o.limit_price, Some(dec("0.72")), "order {id} of {}", p.id);
            } else {
                assert_ne!(
                    t.limit_price,
                    Some(dec("0.72")),
                    "{} {} was not to change",
                    p.id,
                    t.key
                );
            }
            *referenced.entry(id).or_insert(0) += 1;
        }
    }
    assert!(
        referenced.values().all(|&n| n == 1),
        "an order referenced twice"
    );
    assert_eq!(
        referenced.len(),
        working.len(),
        "a working order nothing references (a duplicate)"
    );
    assert_eq!(
        working.len(),
        20,
        "the incident's 20 targets, one order each"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_shows_old_and_new_and_touches_nothing_then_apply_converges() {
    let (dir, sim, store) = fixed_world("retarget-dry");
    let db = dir.path().join("db.sqlite");
    let before = std::fs::read(&db).unwrap();
    let out = command(&retarget_args(&sim.url, &store, false))
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("retarget call_spread to 40%: 8 to change"),
        "{text}"
    );
    assert!(
        text.contains("│ 38       ┆ call_spread ┆ 0.60 ┆ 0.72 ┆ credit ┆ 1.2 (derived) ┆ 0.01 │"),
        "{text}"
    );
    assert!(text.contains("dry run: nothing was changed"), "{text}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the dry run wrote nothing"
    );
    let out = command(&retarget_args(&sim.url, &store, true))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    converged(&sim.url, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retarget_killed_anywhere_converges_on_the_next_run() {
    let trials: u64 = std::env::var("RETARGET_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let mut midway = 0;
    for trial in 0..trials {
        let (dir, sim, store) = fixed_world(&format!("retarget-kill-{trial}"));
        let db = dir.path().join("db.sqlite");
        let mut victim = command(&retarget_args(&sim.url, &store, true))
            .spawn()
            .unwrap();
        // The whole run takes about a quarter of a second: kill it before, in and after it.
        std::thread::sleep(Duration::from_millis(30 + 25 * trial));
        victim.kill().unwrap();
        victim.wait().unwrap();
        let at_new = client(&sim.url)
            .working_orders(&ACCOUNT.into())
            .await
            .unwrap()
            .iter()
            .filter(|o| o.limit_price == Some(dec("0.72")))
            .count();
        println!("trial {trial}: {at_new} of 8 call spreads at 0.72 when the kill landed");
        if at_new > 0 && at_new < 8 {
            midway += 1;
        }
        let out = command(&retarget_args(&sim.url, &store, true))
            .stdout(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "trial {trial}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if std::env::var("RETARGET_DEBUG").is_ok() {
            println!("{}", String::from_utf8_lossy(&out.stdout));
        }
        converged(&sim.url, &db).await;
    }
    assert!(
        midway > 0,
        "no kill landed between the first replacement and the last"
    );
}
