//! The simulator, checked by a client someone else wrote against the real API: Alpaca's
//! official Python SDK, pinned (`simkit::sdk`), unchanged.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_uses_the_simulator_unchanged() {
    let python = simkit::sdk::python(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")))
        .unwrap_or_else(|e| panic!("the SDK environment: {e}"));
    let (sim, _broker) = world().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/alpaca_sdk.py");
    let out = tokio::process::Command::new(python)
        .args([
            script,
            &sim.base_url(),
            KEY_ID,
            SECRET_KEY,
            ACCOUNT,
            TARGET,
            STOP,
            FILLED,
            CANCELLED,
        ])
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
        16,
        "{stdout}"
    );
    // What the SDK did is in the simulator's own state.
    let orders = sim.orders();
    let by_cid = |c: &str| orders.iter().find(|o| o.client_order_id == c).cloned();
    let replaced = by_cid("sdk-1").expect("the SDK's order");
    assert_eq!(replaced.status, "replaced");
    assert!(by_cid("sdk-1b").is_some_and(|o| o.replaces.as_deref() == Some(replaced.id.as_str())));
    assert!(by_cid("sdk-oco").is_some_and(|o| o.order_class == "oco"));
    assert!(by_cid("sdk-2").is_none(), "a refused order is not kept");
}
