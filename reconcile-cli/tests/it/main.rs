//! The real `reconcile` binary, run on the shipped incident snapshots and on bad input.

mod alpaca;
mod crash;
mod postgres;
mod retarget;
mod store;
mod tastytrade;
mod watch;

use std::path::PathBuf;
use std::process::{Command, Output};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/data")
        .join(name)
}

/// The `reconcile` binary under test.
fn reconcile_bin() -> &'static str {
    env!("CARGO_BIN_EXE_reconcile")
}

fn reconcile(args: &[&str]) -> Output {
    Command::new(reconcile_bin())
        .args(args)
        .output()
        .expect("the binary runs")
}

/// A fresh directory for one test, removed when the test is done with it.
fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("reconcile-cli-{name}-"))
        .tempdir()
        .unwrap()
}

fn seed_args(prefix: &str) -> Vec<String> {
    vec![
        "--local".into(),
        data(&format!("{prefix}-local.json")).display().to_string(),
        "--broker".into(),
        data(&format!("{prefix}-broker.json")).display().to_string(),
    ]
}

fn args<'a>(head: &[&'a str], rest: &'a [String]) -> Vec<&'a str> {
    head.iter()
        .copied()
        .chain(rest.iter().map(String::as_str))
        .collect()
}

#[test]
fn diff_json_on_the_2025_11_07_incident_reports_it_and_exits_1() {
    let rest = seed_args("2025-11-07-tastytrade");
    let out = reconcile(&args(&["diff", "--json"], &rest));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], "reconcile.report/v1");
    assert_eq!(v["summary"]["invalid"], 3);
    assert_eq!(v["summary"]["orphaned"], 2);
    assert_eq!(v["summary"]["missing"], 3);
    assert_eq!(v["summary"]["matched"], 14);
}

#[test]
fn human_output_groups_by_category() {
    let rest = seed_args("2025-11-07-tastytrade");
    let out = reconcile(&args(&["diff"], &rest));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("out of sync"));
    assert!(
        text.contains("invalid: the target's order is not working (3)"),
        "{text}"
    );
    assert!(text.contains("orphaned: working at the broker, tracked by nothing (2)"));
    assert!(
        !text.contains("drifted: working"),
        "empty categories get no table"
    );
}

#[test]
fn in_sync_exits_0_and_scope_filters() {
    let rest = seed_args("2025-11-07-tastytrade");
    let out = reconcile(&args(&["diff", "--json", "--underlying", "SPY"], &rest));
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["in_sync"], true);
}

#[test]
fn now_and_grace_change_the_verdict() {
    // The orphans were submitted at 13:10; judged at 13:10:30 with a 60 s grace they are in flight.
    let rest = seed_args("2025-11-07-tastytrade");
    let out = reconcile(&args(
        &[
            "diff",
            "--json",
            "--now",
            "2025-11-07T13:10:30Z",
            "--grace",
            "1m",
        ],
        &rest,
    ));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["orphaned"], 0);
    assert_eq!(v["summary"]["in_flight"], 2);
}

#[test]
fn plan_out_writes_the_backfill_with_the_seed_risk_total() {
    let dir = scratch("plan");
    let plan = dir.path().join("plan.json");
    let rest = seed_args("2025-11-06-alpaca");
    let out = reconcile(&args(
        &[
            "plan",
            "--backfill",
            "--create-missing",
            "--sync-positions",
            "--out",
            plan.to_str().unwrap(),
        ],
        &rest,
    ));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("total risk across new positions: 3479.52"),
        "{text}"
    );
    assert!(text.contains("1019.72"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    assert_eq!(v["format"], "reconcile.plan/v1");
    assert_eq!(v["backfill_total_risk"], "3479.52");
    assert!(v["fingerprint"].as_str().unwrap().starts_with("fnv1a64:"));
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let out = reconcile(&[
        "diff",
        "--local",
        "/nonexistent/l.json",
        "--broker",
        "/nonexistent/b.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("cannot read /nonexistent/l.json"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_bad_value_is_an_error_naming_its_json_path() {
    let dir = scratch("bad");
    let broker = dir.path().join("broker.json");
    std::fs::write(
        &broker,
        r#"{"format": "reconcile.broker/v1", "as_of": "2025-11-07T15:00:00Z",
            "orders": [{"id": "1", "account": "A", "underlying": "QQQ", "status": "live",
                        "legs": [{"symbol": "QQQ", "side": "buy", "quantity": "abc"}]}]}"#,
    )
    .unwrap();
    let local = data("2025-11-07-tastytrade-local.json");
    let out = reconcile(&[
        "diff",
        "--local",
        local.to_str().unwrap(),
        "--broker",
        broker.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("orders[0].legs[0].quantity: not a decimal: \"abc\""),
        "{err}"
    );
    assert!(err.contains("broker.json"), "{err}");
}

#[test]
fn bad_flags_exit_2() {
    let rest = seed_args("2025-11-07-tastytrade");
    let out = reconcile(&args(&["diff", "--grace", "soon"], &rest));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("not a duration")
    );
    let out = reconcile(&args(&["diff", "--now", "yesterday"], &rest));
    assert_eq!(out.status.code(), Some(2));
}

/// `sqlite:` followed by a database file in `dir`.
fn sqlite(dir: &std::path::Path) -> String {
    format!("sqlite:{}", dir.join("db.sqlite").display())
}

/// Imports an incident's local snapshot (`{prefix}-local.json`) into `store`.
fn import(store: &str, prefix: &str) {
    let file = data(&format!("{prefix}-local.json"));
    let out = reconcile(&["import", "local", file.to_str().unwrap(), "--store", store]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
