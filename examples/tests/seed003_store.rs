//! The example store over seed 003's own tables: the store conformance suite, and the incident
//! run through it.

#[path = "../seed003/store.rs"]
#[allow(dead_code)]
mod store;

#[path = "../seed003/incident.rs"]
mod incident;

use store::Seed003Store;

/// Each conformance test gets a database of its own, in a folder that outlives the store.
async fn fresh() -> Seed003Store {
    let dir = tempfile::tempdir().unwrap().keep();
    Seed003Store::open(dir.join("trading.db")).unwrap()
}

reconcile_core::store_conformance_tests!(fresh);

#[tokio::test]
async fn the_incident_ends_with_the_bots_table_and_alpaca_agreeing() {
    let dir = tempfile::tempdir().unwrap();
    let out = incident::run(dir.path()).await.unwrap();
    assert_eq!(out.before.untracked_holdings.len(), 5);
    assert_eq!(out.before.stale_positions.len(), 2);
    assert_eq!(
        out.before.pending_filled.len(),
        1,
        "WFC, read from the bot's PENDING row"
    );
    assert_eq!(
        out.total_risk.map(|r| r.to_string()).as_deref(),
        Some("3479.52")
    );
    assert!(out.in_sync);
    assert_eq!(out.at_alpaca.len(), 20);
    assert_eq!(out.open_in_table, out.at_alpaca);
    // The backfilled rows carry the bot's own stop, target and risk columns.
    let qcom = out.rows.iter().find(|r| r[0] == "QCOM").unwrap();
    assert_eq!(
        qcom[1..],
        ["74", "OPEN", "158.52", "199.87", "1019.72"].map(String::from)
    );
    let ftnt = out.rows.iter().find(|r| r[0] == "FTNT").unwrap();
    assert_eq!(ftnt[2], "CLOSED");
    let wfc = out.rows.iter().find(|r| r[0] == "WFC").unwrap();
    assert_eq!(wfc[2], "OPEN", "promoted");
}
