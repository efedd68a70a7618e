//! The 2025-11-06 demo, and runs against the Alpaca simulator through the real binary.

use super::{import, reconcile, reconcile_bin, scratch, sqlite};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn the_demo_ends_with_alpaca_and_the_database_agreeing_position_for_position() {
    let out = reconcile(&["demo", "alpaca"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = text.split("2. Apply").next().unwrap();
    for (category, n) in [
        ("untracked_holdings", 5),
        ("stale_positions", 2),
        ("pending_filled", 1),
    ] {
        assert!(
            before.contains(&format!("│ {category:<19} ┆ {n:<5} │")),
            "{category} {n} in\n{before}"
        );
    }
    // The seed's risk table, to the cent.
    for row in [
        "│ QCOM   ┆ 74     ┆ 172.30 ┆ 158.52 ┆ 199.87 ┆ 13.78      ┆ 1019.72    │",
        "│ DVN    ┆ 225    ┆ 32.61  ┆ 30.00  ┆ 37.83  ┆ 2.61       ┆ 587.25     │",
    ] {
        assert!(before.contains(row), "{row} in\n{before}");
    }
    assert!(
        before.contains("total risk across new positions: 3479.52"),
        "{before}"
    );
    assert_eq!(
        text.matches("sent OCO order").count(),
        6,
        "five backfills and WFC: {text}"
    );
    assert!(
        text.contains(
            "20 positions at Alpaca, 20 open in the database, position for position: in agreement"
        ),
        "{text}"
    );
}

#[test]
fn run_against_the_simulator_backfills_closes_and_promotes_with_the_fills_recorded() {
    let dir = scratch("alpaca-sim");
    let store = sqlite(dir.path());
    import(&store, "2025-11-06-alpaca");
    let out = reconcile(&[
        "run",
        "--broker",
        "alpaca-sim",
        "--store",
        &store,
        "--backfill",
        "--sync-positions",
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
    assert_eq!(v["summary"]["matched"], 12);

    let out = reconcile(&["export", "local", "--store", &store]);
    let local: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let positions = local["positions"].as_array().unwrap();
    let by_id = |id: &str| {
        positions
            .iter()
            .find(|p| p["id"] == id)
            .unwrap_or_else(|| panic!("{id}"))
    };
    let qcom = by_id("bf-PA3ALPACA01-QCOM");
    assert_eq!(qcom["state"], "open");
    assert_eq!(
        qcom["opened_at"], "2025-11-06T13:00:04Z",
        "opened when the buy filled"
    );
    assert_eq!(
        qcom["entry_order_id"],
        "7f1c2d3e-0000-4000-8000-000000000100"
    );
    assert_eq!(qcom["entry_price"], "172.30");
    let ftnt = by_id("200");
    assert_eq!(ftnt["state"], "closed");
    assert_eq!(
        ftnt["closing"]["order_id"],
        "7f1c2d3e-0000-4000-8000-000000000200"
    );
    assert_eq!(ftnt["closing"]["price"], "81.15");
    assert_eq!(
        by_id("114")["state"],
        "open",
        "WFC's pending position, promoted"
    );
    let open = positions.iter().filter(|p| p["state"] == "open").count();
    assert_eq!(open, 20);
}

#[test]
fn reconcile_sim_alpaca_serves_the_incident_and_makes_up_keys_it_prints() {
    let mut child = Command::new(reconcile_bin())
        .args(["sim", "alpaca"])
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines.next().unwrap().unwrap();
    let key = lines.next().unwrap().unwrap();
    let secret = lines.next().unwrap().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let key = key
        .strip_prefix("APCA_API_KEY_ID=")
        .unwrap_or_else(|| panic!("{key}"))
        .to_owned();
    let secret = secret
        .strip_prefix("APCA_API_SECRET_KEY=")
        .unwrap_or_else(|| panic!("{secret}"))
        .to_owned();

    // Our own client, configured only through the client's environment variables.
    let dir = scratch("alpaca-sim-process");
    let store = sqlite(dir.path());
    import(&store, "2025-11-06-alpaca");
    let out = Command::new(reconcile_bin())
        .args([
            "run",
            "--broker",
            "alpaca",
            "--base-url",
            &url,
            "--store",
            &store,
            "--json",
        ])
        .env("APCA_API_KEY_ID", &key)
        .env("APCA_API_SECRET_KEY", &secret)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["summary"]["untracked_holdings"], 5, "{v}");
    assert_eq!(out.status.code(), Some(1), "a dry run out of sync");
    // Wrong keys are refused by the simulator, as Alpaca refuses them.
    let out = Command::new(reconcile_bin())
        .args([
            "run",
            "--broker",
            "alpaca",
            "--base-url",
            &url,
            "--store",
            &store,
        ])
        .env("APCA_API_KEY_ID", &key)
        .env("APCA_API_SECRET_KEY", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("request is not authorized"), "{err}");
    assert!(!err.contains(&secret), "{err}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn the_live_api_needs_its_keys_and_a_base_url_is_not_for_alpaca_live() {
    let dir = scratch("alpaca-env");
    let store = sqlite(dir.path());
    let out = Command::new(reconcile_bin())
        .args(["run", "--broker", "alpaca", "--store", &store])
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("APCA_API_KEY_ID"));
    let out = reconcile(&[
        "run",
        "--broker",
        "alpaca-live",
        "--store",
        &store,
        "--base-url",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--base-url only applies"));
}
