//! The 2025-11-06 incident on the bot's own tables: the bot's database as it stood at 11:00 ET
//! (the seven orders of 08:00 executed at Alpaca, none recorded; WFC's position from the day
//! before still PENDING though its buy filled), then one reconcile run against the Alpaca
//! simulator, written straight into `portfolio_positions` and `trading_orders`.

use super::store::Seed003Store;
use reconcile_core::{BrokerSnapshot, LocalSnapshot, Policy, PositionState, Reconciler, Store};
use rusqlite::params;
use std::collections::BTreeMap;
use std::path::Path;

const LOCAL: &str = include_str!("../data/2025-11-06-alpaca-local.json");
const BROKER: &str = include_str!("../data/2025-11-06-alpaca-broker.json");

/// What the run left: the bot's table, and the two sides side by side.
pub struct Outcome {
    /// The report of the run's dry run, as a person reads it.
    pub before: reconcile_core::Report,
    /// The plan's total risk of the backfilled positions.
    pub total_risk: Option<rust_decimal::Decimal>,
    /// Whether the verification read found both sides in agreement.
    pub in_sync: bool,
    /// Open positions in the bot's table, ticker to shares.
    pub open_in_table: BTreeMap<String, String>,
    /// Holdings at Alpaca, ticker to shares.
    pub at_alpaca: BTreeMap<String, String>,
    /// The bot's rows after the run: ticker, shares, status, stop, target, total risk.
    pub rows: Vec<[String; 6]>,
}

/// Writes the bot's rows as the bot itself wrote them (plain SQL, none of reconcile's code).
fn write_the_bots_rows(db: &Path) -> Result<(), String> {
    let local = LocalSnapshot::from_json(LOCAL).map_err(|e| e.to_string())?;
    let conn = rusqlite::Connection::open(db).map_err(|e| e.to_string())?;
    conn.execute_batch(super::store::BOT_SCHEMA)
        .map_err(|e| e.to_string())?;
    for p in &local.positions {
        let stop = p
            .targets
            .iter()
            .find(|t| t.key.as_str() == "stop_loss")
            .and_then(|t| t.stop_price);
        let target = p
            .targets
            .iter()
            .find(|t| t.key.as_str() == "take_profit")
            .and_then(|t| t.limit_price);
        let status = match p.state {
            PositionState::Pending => "PENDING",
            _ => "OPEN",
        };
        conn.execute(
            "INSERT INTO portfolio_positions (id, account, ticker, shares, entry_price, stop_loss, target, status, entry_date)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                p.id.as_str().parse::<i64>().map_err(|e| e.to_string())?,
                p.account.as_str(),
                p.underlying,
                p.legs[0].quantity.to_string(),
                p.entry_price.map(|d| d.to_string()),
                stop.map(|d| d.to_string()),
                target.map(|d| d.to_string()),
                status,
                p.opened_at.map(|t| t.to_rfc3339()),
            ],
        )
        .map_err(|e| e.to_string())?;
        if let Some(entry) = &p.entry_order_id {
            conn.execute(
                "INSERT INTO trading_orders (position_id, alpaca_order_id, ticker, side, quantity, order_type, purpose, status, submitted_at)
                 VALUES (?1, ?2, ?3, 'buy', ?4, 'market', 'entry', 'SUBMITTED', ?5)",
                params![
                    p.id.as_str().parse::<i64>().map_err(|e| e.to_string())?,
                    entry.as_str(),
                    p.underlying,
                    p.legs[0].quantity.to_string(),
                    p.opened_at.map(|t| t.to_rfc3339()),
                ],
            )
            .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// The incident, end to end, in a database under `dir`.
pub async fn run(dir: &Path) -> Result<Outcome, String> {
    let db = dir.join("trading.db");
    write_the_bots_rows(&db)?;
    let seed = BrokerSnapshot::from_json(BROKER).map_err(|e| e.to_string())?;
    let now = seed.as_of;
    let sim = adapter_alpaca::sim::Sim::start(now, "example-key", "example-secret")
        .await
        .map_err(|e| e.to_string())?;
    sim.seed(&seed);
    let broker = adapter_alpaca::AlpacaBroker::new(
        sim.base_url(),
        secrecy::SecretString::from("example-key"),
        secrecy::SecretString::from("example-secret"),
    )
    .map_err(|e| e.to_string())?
    .with_rate(6_000)
    .decorated();
    let store = Seed003Store::open(&db).map_err(|e| e.to_string())?;
    let rec = Reconciler::new(&broker, &store).with_policy(Policy {
        backfill: true,
        sync_positions: true,
        create_missing: true,
        ..Policy::report_only()
    });
    let (before, plan) = rec.plan(now).await.map_err(|e| e.to_string())?;
    let applied = rec
        .apply(&plan, &reconcile_core::ApplyOptions::new("seed003-1", now))
        .await
        .map_err(|e| e.to_string())?;
    let in_sync = applied.verify.as_ref().is_some_and(|v| v.in_sync);

    let at_alpaca =
        reconcile_core::Broker::positions(&broker, &sim.account_number().as_str().into())
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|p| (p.symbol.to_string(), p.quantity.normalize().to_string()))
            .collect();
    let snapshot = store
        .load(&reconcile_core::Scope::all(), now)
        .await
        .map_err(|e| e.to_string())?;
    let open_in_table = snapshot
        .positions
        .iter()
        .filter(|p| p.state == PositionState::Open)
        .map(|p| {
            (
                p.underlying.clone(),
                p.legs[0].quantity.normalize().to_string(),
            )
        })
        .collect();
    let conn = rusqlite::Connection::open(&db).map_err(|e| e.to_string())?;
    let mut q = conn
        .prepare("SELECT ticker, shares, status, COALESCE(stop_loss, ''), COALESCE(target, ''), COALESCE(total_risk, '') FROM portfolio_positions ORDER BY ticker")
        .map_err(|e| e.to_string())?;
    let rows = q
        .query_map([], |r| {
            Ok([
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ])
        })
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<[String; 6]>, _>>()
        .map_err(|e| e.to_string())?;
    Ok(Outcome {
        before,
        total_risk: plan.backfill_total_risk,
        in_sync,
        open_in_table,
        at_alpaca,
        rows,
    })
}
