//! Reconciling an existing database without migrating it: a `Store` over the 2025-11-06 Alpaca
//! bot's own tables (`store.rs`), and the incident run through it against the Alpaca simulator.
//!
//! `cargo run -p reconcile-examples --example seed003_store`

mod incident;
mod store;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("reconcile-seed003-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = incident::run(&dir).await?;
    println!(
        "before: {} untracked holdings, {} positions flat at Alpaca, {} pending positions filled",
        out.before.untracked_holdings.len(),
        out.before.stale_positions.len(),
        out.before.pending_filled.len()
    );
    if let Some(risk) = out.total_risk {
        println!("total risk across new positions: {risk}");
    }
    println!("\nportfolio_positions after the run:");
    println!(
        "{:<6} {:>7} {:<8} {:>9} {:>9} {:>10}",
        "ticker", "shares", "status", "stop", "target", "risk"
    );
    for [ticker, shares, status, stop, target, risk] in &out.rows {
        println!("{ticker:<6} {shares:>7} {status:<8} {stop:>9} {target:>9} {risk:>10}");
    }
    let agree = out.in_sync && out.open_in_table == out.at_alpaca;
    println!(
        "\n{} holdings at Alpaca, {} open rows in portfolio_positions: {}",
        out.at_alpaca.len(),
        out.open_in_table.len(),
        if agree {
            "in agreement"
        } else {
            "NOT in agreement"
        }
    );
    let _ = std::fs::remove_dir_all(&dir);
    if agree {
        Ok(())
    } else {
        Err("the two sides disagree".to_owned())
    }
}
