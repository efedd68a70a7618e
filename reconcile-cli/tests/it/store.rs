//! `import`, `run`, `apply` and `export` on a real SQLite file with a broker snapshot file.

use super::{data, import, reconcile, scratch, sqlite};
use std::process::{Command, Stdio};

fn broker(prefix: &str) -> String {
    format!(
        "snapshot:{}",
        data(&format!("{prefix}-broker.json")).display()
    )
}

fn export(store: &str) -> serde_json::Value {
    let out = reconcile(&["export", "local", "--store", store]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn seed_003_backfill_through_sqlite_end_to_end() {
    let dir = scratch("run-003");
    let store = sqlite(dir.path());
    import(&store, "2025-11-06-alpaca");
    let before = export(&store);
    assert_eq!(before["positions"].as_array().unwrap().len(), 17);

    let b = broker("2025-11-06-alpaca");
    let dry = reconcile(&["run", "--broker", &b, "--store", &store, "--json"]);
    assert_eq!(
        dry.status.code(),
        Some(1),
        "a dry run with discrepancies exits 1"
    );
    let report: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(report["summary"]["untracked_holdings"], 5);
    assert_eq!(
        export(&store)["positions"],
        before["positions"],
        "a dry run changes nothing"
    );

    let fix = reconcile(&[
        "run",
        "--broker",
        &b,
        "--store",
        &store,
        "--backfill",
        "--sync-positions",
        "--yes",
    ]);
    let text = String::from_utf8_lossy(&fix.stdout);
    assert_eq!(
        fix.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&fix.stderr)
    );
    assert!(
        text.contains("total risk across new positions: 3479.52"),
        "{text}"
    );

    let after = export(&store);
    let positions = after["positions"].as_array().unwrap();
    assert_eq!(positions.len(), 22);
    let qcom = positions
        .iter()
        .find(|p| p["underlying"] == "QCOM")
        .unwrap();
    assert_eq!(qcom["entry_price"], "172.30");
    let stop = qcom["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == "stop_loss")
        .unwrap();
    assert_eq!(stop["stop_price"], "158.52");
    let closed: Vec<_> = positions
        .iter()
        .filter(|p| p["state"] == "closed")
        .map(|p| p["underlying"].as_str().unwrap())
        .collect();
    assert_eq!(closed, ["FTNT", "IBKR"]);

    let again = reconcile(&["run", "--broker", &b, "--store", &store, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["summary"]["untracked_holdings"], 0);
    assert_eq!(report["summary"]["stale_positions"], 0);
}

#[test]
fn fixes_that_touch_the_broker_are_refused_against_a_snapshot_file() {
    let dir = scratch("readonly-broker");
    let store = sqlite(dir.path());
    import(&store, "2025-11-07-tastytrade");
    let out = reconcile(&[
        "run",
        "--broker",
        &broker("2025-11-07-tastytrade"),
        "--store",
        &store,
        "--cancel-orphaned",
        "--create-missing",
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("--cancel-orphaned, --create-missing change orders at the broker"),
        "{err}"
    );
    assert!(err.contains("read-only"), "{err}");
}

#[test]
fn destructive_steps_wait_for_yes_away_from_a_terminal() {
    let dir = scratch("no-yes");
    let store = sqlite(dir.path());
    import(&store, "2025-11-07-tastytrade");
    let before = export(&store);
    let out = Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .args([
            "run",
            "--broker",
            &broker("2025-11-07-tastytrade"),
            "--store",
            &store,
            "--clear-invalid",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("need --yes"));
    assert_eq!(export(&store)["positions"], before["positions"]);
}

#[test]
fn a_plan_file_is_applied_later_with_only_what_is_still_justified() {
    let dir = scratch("plan-apply");
    let store = sqlite(dir.path());
    import(&store, "2025-11-07-tastytrade");
    let plan = dir.path().join("plan.json");
    let b = broker("2025-11-07-tastytrade");
    let out = reconcile(&[
        "run",
        "--broker",
        &b,
        "--store",
        &store,
        "--clear-invalid",
        "--out",
        plan.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "not applied without --yes");
    let out = reconcile(&[
        "apply",
        plan.to_str().unwrap(),
        "--broker",
        &b,
        "--store",
        &store,
        "--yes",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches("┆ applied ┆").count(), 3, "{text}");
    let cleared = export(&store)["positions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .filter(|t| t["status"] == "unplaced" && t["last_error"].is_string())
        .count();
    assert_eq!(cleared, 3);
    // Applying the same plan again finds nothing left to do.
    let out = reconcile(&[
        "apply",
        plan.to_str().unwrap(),
        "--broker",
        &b,
        "--store",
        &store,
        "--yes",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .matches("dropped as stale")
            .count()
            == 3
    );
}

#[test]
fn bad_store_values_and_files_are_errors() {
    let out = reconcile(&["export", "local", "--store", "mysql://x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a store"));
    let dir = scratch("bad-store");
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a database ".repeat(100)).unwrap();
    let out = reconcile(&[
        "export",
        "local",
        "--store",
        &format!("sqlite:{}", notes.display()),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a SQLite database"));
}
