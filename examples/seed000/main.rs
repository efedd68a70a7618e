//! Reconciling an existing Django database without migrating it: a `Store` over the 2025-11-07
//! desk's `trading_position` table (`store.rs`), and the incident run through it against the
//! TastyTrade simulator. It needs the PostgreSQL server the URL names (default the local one).
//!
//! `cargo run -p reconcile-examples --example seed000_store [-- postgres://USER@HOST:PORT/DB]`

mod incident;
mod store;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = format!("seed000_example_{}", std::process::id());
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}schema={schema}");
    let out = incident::run(&url, &schema).await;
    // The example's schema goes, whatever happened.
    if let Ok(settings) = store_postgres::Settings::parse(&url, &store_postgres::ProcessEnv)
        && let Ok(c) = store_postgres::session(&settings).await
    {
        let _ = c
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await;
    }
    let out = out?;
    println!("matched before the run: {}", out.matched_before);
    let agree = out.in_sync && out.at_broker == out.in_table;
    println!(
        "{} working orders at TastyTrade, {} working in profit_target_details: {}",
        out.at_broker.len(),
        out.in_table.len(),
        if agree {
            "in agreement"
        } else {
            "NOT in agreement"
        }
    );
    if agree {
        Ok(())
    } else {
        Err("the two sides disagree".to_owned())
    }
}
