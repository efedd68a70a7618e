//! The demo, and runs against the TastyTrade simulator through the real binary.

use super::{data, import, reconcile, scratch, sqlite};

#[test]
fn the_demo_ends_with_broker_and_database_agreeing_order_for_order() {
    let out = reconcile(&["demo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Before: the seed's disagreements, the Received order taken for working.
    let before = text.split("2. Apply").next().unwrap();
    for (category, n) in [
        ("matched", 14),
        ("invalid", 3),
        ("orphaned", 2),
        ("missing", 3),
    ] {
        assert!(
            before.contains(&format!("│ {category:<19} ┆ {n:<5} │")),
            "{category} {n} in\n{before}"
        );
    }
    assert!(
        text.contains("20 orders at TastyTrade, 20 in the database, order for order: in agreement"),
        "{text}"
    );
}

#[test]
fn run_against_the_simulator_fixes_the_incident() {
    let dir = scratch("tt-sim");
    let store = sqlite(dir.path());
    import(&store, "2025-11-07-tastytrade");
    // With no file, the simulator is seeded with the bundled 2025-11-07 incident.
    let broker = "tastytrade-sim";
    let out = reconcile(&[
        "run",
        "--broker",
        broker,
        "--store",
        &store,
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

#[test]
fn the_live_broker_needs_its_credentials_from_the_environment() {
    let dir = scratch("tt-env");
    let store = sqlite(dir.path());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .args([
            "run",
            "--broker",
            "tastytrade",
            "--store",
            &store,
            "--base-url",
            "http://127.0.0.1:9",
        ])
        .env_remove("TASTYTRADE_CLIENT_SECRET")
        .env_remove("TASTYTRADE_REFRESH_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TASTYTRADE_CLIENT_SECRET"));
}

#[test]
fn export_broker_writes_a_snapshot_of_the_simulator() {
    let broker = format!(
        "tastytrade-sim:{}",
        data("2025-11-07-tastytrade-broker.json").display()
    );
    let out = reconcile(&[
        "export",
        "broker",
        "--broker",
        &broker,
        "--account",
        "5WT00001",
        "--underlying",
        "QQQ",
        "--since",
        "2025-11-01T00:00:00Z",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], "reconcile.broker/v1");
    let orders = v["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 19, "16 working and 3 finished since the 1st");
    let received = orders
        .iter()
        .find(|o| o["raw_status"] == "Received")
        .unwrap();
    assert_eq!(received["status"], "pending");
    assert_eq!(
        v["positions"].as_array().unwrap().len(),
        40,
        "four condors of six legs, four of four"
    );
    let out = reconcile(&[
        "export",
        "broker",
        "--broker",
        &broker,
        "--underlying",
        "SPY",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["orders"].as_array().unwrap().is_empty());
}

#[test]
fn progress_shows_on_a_terminal_and_nowhere_else() {
    let fixes = "--clear-invalid --cancel-orphaned --create-missing --yes";
    // Piped: not a word of progress.
    let dir = scratch("tt-progress");
    let store = sqlite(dir.path());
    import(&store, "2025-11-07-tastytrade");
    let mut args = vec!["run", "--broker", "tastytrade-sim", "--store", &store];
    args.extend(fixes.split(' '));
    let out = reconcile(&args);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("applying") && !err.contains("pages"), "{err}");
    // On a terminal (`script` gives the run one): pages read, then actions done of the plan's.
    let dir = scratch("tt-progress-tty");
    let store = sqlite(dir.path());
    import(&store, "2025-11-07-tastytrade");
    let line = format!(
        "{} run --broker tastytrade-sim --store {store} {fixes}",
        super::reconcile_bin()
    );
    let tty = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .expect("script(1) from util-linux");
    let text = String::from_utf8_lossy(&tty.stdout);
    assert!(
        text.contains("reading tastytrade:") && text.contains("pages"),
        "{text}"
    );
    assert!(text.contains("applying: 11/11 actions"), "{text}");
}
