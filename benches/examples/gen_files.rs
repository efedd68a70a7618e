//! Writes a generated snapshot pair to files, for end-to-end runs of `reconcile diff` and of the
//! Python peer: `cargo run --release -p reconcile-benches --example gen_files -- TARGETS DIR`
//! writes `DIR/local.json` and `DIR/broker.json` (the mix of `reconcile_benches::workload`).

use reconcile_benches::workload;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let targets: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("usage: gen_files TARGETS DIR")?;
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: gen_files TARGETS DIR")?);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (local, broker) = workload(targets);
    // Compact: the format allows any white space, and a feed of this size is not read by eye.
    for (name, text) in [
        (
            "local.json",
            serde_json::to_string(&local).map_err(|e| e.to_string())?,
        ),
        (
            "broker.json",
            serde_json::to_string(&broker).map_err(|e| e.to_string())?,
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!(
        "{} positions, {} targets, {} orders in {}",
        local.positions.len(),
        targets,
        broker.orders.len(),
        dir.display()
    );
    Ok(())
}
