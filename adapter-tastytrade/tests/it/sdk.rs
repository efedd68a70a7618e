//! The simulator, checked by a client someone else wrote against the real API: the public
//! tastytrade Python SDK, pinned (`simkit::sdk`), unchanged.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_python_sdk_uses_the_simulator_unchanged() {
    let python = simkit::sdk::python(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")))
        .unwrap_or_else(|e| panic!("the SDK environment: {e}"));
    let (sim, _broker) = world().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/tastytrade_sdk.py");
    let out = tokio::process::Command::new(python)
        .args([script, &sim.base_url(), SECRET, REFRESH, "5WT00001"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok: ")).count(),
        15,
        "{stdout}"
    );
    // What the SDK did is in the simulator's own state.
    let orders = sim.orders();
    let placed = orders
        .iter()
        .find(|o| o.external_identifier.as_deref() == Some("sdk-1"))
        .expect("the SDK's order");
    assert_eq!(placed.status, "Cancelled");
    assert!(placed.replacing.is_some());
    let versions: Vec<_> = sim
        .requests()
        .iter()
        .filter_map(|r| r.header("accept-version").map(str::to_owned))
        .collect();
    assert!(versions.iter().all(|v| v == "20251101"), "{versions:?}");
}
