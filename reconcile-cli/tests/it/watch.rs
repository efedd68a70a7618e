//! `reconcile watch` against the TastyTrade simulator in its own process and an SQLite file.

use super::crash::{
    ACCOUNT, REFRESH, SECRET, SimProcess, check_agreement, client, orders_at, world,
};
use super::scratch;
use reconcile_core::{Broker, Scope, Store};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Setup {
    _dir: tempfile::TempDir,
    store_url: String,
    db: std::path::PathBuf,
    sim: SimProcess,
}

fn setup(tag: &str) -> Setup {
    let dir = scratch(tag);
    let (l, b) = world();
    let local_file = dir.path().join("local.json");
    let broker_file = dir.path().join("broker.json");
    std::fs::write(&local_file, l.to_json().unwrap()).unwrap();
    std::fs::write(&broker_file, b.to_json().unwrap()).unwrap();
    let db = dir.path().join("db.sqlite");
    let store_url = format!("sqlite:{}", db.display());
    let out = super::crash::command(&[
        "import",
        "local",
        local_file.to_str().unwrap(),
        "--store",
        &store_url,
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sim = SimProcess::start(&broker_file);
    Setup {
        _dir: dir,
        store_url,
        db,
        sim,
    }
}

fn watch(s: &Setup, extra: &[&str]) -> Child {
    let mut args = vec![
        "watch",
        "--broker",
        "tastytrade",
        "--base-url",
        &s.sim.url,
        "--store",
        &s.store_url,
        "--account",
        ACCOUNT,
        "--create-missing",
        "--clear-invalid",
        "--max-placements",
        "100",
        "--settle",
        "1s",
        "--json",
    ];
    args.extend_from_slice(extra);
    Command::new(super::reconcile_bin())
        .args(&args)
        .env("TASTYTRADE_CLIENT_SECRET", SECRET)
        .env("TASTYTRADE_REFRESH_TOKEN", REFRESH)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The next JSON line of a watch (a report, or a skipped cycle's error).
fn next_line(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> serde_json::Value {
    let line = lines.next().expect("a cycle line").unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_cancelled_by_hand_is_healed_within_two_cycles() {
    let s = setup("watch-heal");
    let mut child = watch(&s, &["--interval", "1s", "--max-cycles", "3"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = next_line(&mut lines);
    assert_eq!(
        first["in_sync"], true,
        "cycle 1 placed every target: {first}"
    );
    // By hand, at the broker: one of our orders goes.
    let victim = orders_at(&s.sim.url)
        .await
        .into_iter()
        .find(|o| o.status.is_working())
        .unwrap();
    client(&s.sim.url)
        .cancel(&ACCOUNT.into(), &victim.id)
        .await
        .unwrap();
    let second = next_line(&mut lines);
    let third = next_line(&mut lines);
    assert!(
        second["in_sync"] == true || third["in_sync"] == true,
        "healed within two cycles:\n{second}\n{third}"
    );
    assert_eq!(third["in_sync"], true);
    let status = child.wait().unwrap();
    assert!(status.success());
    let store = store_sqlite::SqliteStore::open(&s.db).unwrap();
    // 40 placed, one cancelled by hand and placed again.
    check_agreement(&s.sim.url, &store, 41).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_changes_nothing_locally_and_is_recovered_from() {
    let s = setup("watch-outage");
    // Place everything first, so that the outage meets a book in agreement.
    let mut child = watch(&s, &["--interval", "500ms", "--max-cycles", "1"]);
    assert!(child.wait().unwrap().success());
    let store = store_sqlite::SqliteStore::open(&s.db).unwrap();
    let before = store
        .load(
            &Scope::all(),
            reconcile_core::testkit::build::at("2025-11-07T15:00:00Z"),
        )
        .await
        .unwrap();
    // Every read of the live orders fails, five tries a cycle, for three cycles.
    for _ in 0..15 {
        s.sim.fail_next(&serde_json::json!({"method": "GET", "path_contains": "/orders/live", "fault": "server_error"}));
    }
    let started = Instant::now();
    let mut child = watch(
        &s,
        &[
            "--interval",
            "500ms",
            "--max-cycles",
            "20",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let metrics_line = err.next().unwrap().unwrap();
    let metrics_url = metrics_line.rsplit(' ').next().unwrap().to_owned();
    // The rest of stderr (the back-off notes) is drained, and kept for a failure's message.
    let notes = std::thread::spawn(move || err.map_while(Result::ok).collect::<Vec<_>>());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut skipped = 0;
    let mut last = serde_json::Value::Null;
    for _ in 0..5 {
        let l = next_line(&mut lines);
        if l.get("error").is_some() {
            skipped += 1;
            assert!(l["error"].as_str().unwrap().contains("500"), "{l}");
            let now = store
                .load(
                    &Scope::all(),
                    reconcile_core::testkit::build::at("2025-11-07T15:00:00Z"),
                )
                .await
                .unwrap();
            assert_eq!(now, before, "a failed read changes nothing locally");
            if skipped == 2 {
                let text = http_get(&metrics_url);
                assert!(text.contains("reconcile_last_cycle_success 0"), "{text}");
                assert!(text.contains("reconcile_consecutive_failures 2"), "{text}");
            }
        } else {
            last = l;
            break;
        }
    }
    assert_eq!(skipped, 3, "three cycles skipped: {last}");
    assert_eq!(last["in_sync"], true, "recovered by itself: {last}");
    let text = http_get(&metrics_url);
    assert!(text.contains("reconcile_last_cycle_success 1"), "{text}");
    assert!(
        text.contains("reconcile_cycles_total{outcome=\"failed\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("reconcile_category{category=\"matched\"} 40"),
        "{text}"
    );
    println!("outage of 3 cycles recovered after {:?}", started.elapsed());
    child.kill().unwrap();
    let _ = child.wait();
    let notes = notes.join().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("3 failed cycle(s) in a row")),
        "{notes:?}"
    );
    check_agreement(&s.sim.url, &store, 40).await;
}

fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://").split('/').next().unwrap();
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    sock.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    sock.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_a_cycle_between_actions_within_a_second_and_the_next_run_finishes() {
    let s = setup("watch-term");
    let mut child = watch(&s, &["--interval", "30m"]);
    // 40 placements at 20 requests a second take about two seconds: stop it half-way.
    std::thread::sleep(Duration::from_millis(1_200));
    let sent = Instant::now();
    let pid = child.id();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean exit");
    assert!(
        took < Duration::from_secs(1),
        "ended {took:?} after SIGTERM"
    );
    let placed = orders_at(&s.sim.url).await.len();
    assert!(
        placed > 0 && placed < 40,
        "stopped between actions: {placed} of 40 placed"
    );
    // The lock was released: the next run proceeds at once and finishes the work.
    let out = super::crash::command(&super::crash::run_args(&s.sim.url, &s.store_url))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = store_sqlite::SqliteStore::open(&s.db).unwrap();
    check_agreement(&s.sim.url, &store, 40).await;
    println!("SIGTERM to exit: {took:?}, {placed} placed before it");
}
