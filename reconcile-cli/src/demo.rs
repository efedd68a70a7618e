//! `reconcile demo [tastytrade|alpaca]`: an incident end to end, against a broker simulator and
//! an SQLite file in a temporary folder: report, fix, verify. `tastytrade` is the 2025-11-07 one
//! (QQQ iron condors whose profit-target ids went stale), `alpaca` the 2025-11-06 one (seven
//! orders executed while the database was locked).

use crate::CliError;
use crate::args::SimBroker;
use reconcile_core::{
    AccountId, ApplyOptions, Broker, BrokerSnapshot, ChangeBatch, LocalChange, LocalSnapshot,
    Policy, PositionState, Reconciler, Store, TargetStatus,
};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use store_sqlite::SqliteStore;

const LOCAL: &str = include_str!("../../examples/data/2025-11-07-tastytrade-local.json");
pub(crate) const BROKER: &str =
    include_str!("../../examples/data/2025-11-07-tastytrade-broker.json");
const ALPACA_LOCAL: &str = include_str!("../../examples/data/2025-11-06-alpaca-local.json");
pub(crate) const ALPACA_BROKER: &str =
    include_str!("../../examples/data/2025-11-06-alpaca-broker.json");
// The simulators' own credentials: not secrets, but treated as such all the same.
const SIM_SECRET: &str = "demo-client-secret";
const SIM_REFRESH: &str = "demo-refresh-token";
const SIM_KEY_ID: &str = "demo-key-id";
const SIM_SECRET_KEY: &str = "demo-secret-key";

fn other(e: impl std::fmt::Display) -> CliError {
    CliError::Other(e.to_string())
}

pub fn run(which: SimBroker) -> Result<ExitCode, CliError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| other(format!("cannot start the runtime: {e}")))?;
    let db = scratch_db()?;
    match which {
        SimBroker::Tastytrade => rt.block_on(tastytrade(&db)),
        SimBroker::Alpaca => rt.block_on(alpaca(&db)),
    }
}

/// A fresh SQLite path in a temporary folder of its own.
fn scratch_db() -> Result<PathBuf, CliError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("reconcile-demo-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| CliError::Write {
        path: dir.clone(),
        source,
    })?;
    Ok(dir.join("reconcile.db"))
}

/// The store with the incident's records in it.
async fn records(db: &std::path::Path, local: &LocalSnapshot) -> Result<SqliteStore, CliError> {
    let store = SqliteStore::open(db).map_err(other)?;
    let changes = local
        .positions
        .iter()
        .map(|p| LocalChange::InsertPosition {
            position: p.clone(),
        })
        .collect();
    store
        .apply(&ChangeBatch {
            changes,
            audit: Vec::new(),
        })
        .await
        .map_err(other)?;
    Ok(store)
}

/// Dry run, apply, run again: the three tables every demo prints.
async fn report_fix_verify(
    rec: &Reconciler<'_>,
    now: chrono::DateTime<chrono::Utc>,
    flags: &str,
    out: &mut String,
) -> Result<reconcile_core::Report, CliError> {
    let (before, plan) = rec.plan(now).await.map_err(other)?;
    out.push_str("1. Dry run: what disagrees\n");
    out.push_str(&crate::output::plan_table(&before, &plan, true));
    out.push_str(&format!("\n2. Apply: {flags} --yes\n"));
    let applied = rec
        .apply(&plan, &ApplyOptions::new("demo-1", now))
        .await
        .map_err(other)?;
    out.push_str(&crate::output::apply_table(&applied));
    out.push_str("\n3. Run again\n");
    let after = rec.diff(now).await.map_err(other)?;
    out.push_str(&crate::output::report_table(&after, true));
    Ok(after)
}

async fn tastytrade(db: &std::path::Path) -> Result<ExitCode, CliError> {
    use adapter_tastytrade::TastytradeBroker;
    use adapter_tastytrade::sim::Sim;
    let local = LocalSnapshot::from_json(LOCAL).map_err(other)?;
    let seed = BrokerSnapshot::from_json(BROKER).map_err(other)?;
    let now = seed.as_of;
    let sim = Sim::start(now, SIM_SECRET, SIM_REFRESH)
        .await
        .map_err(other)?;
    sim.seed(&seed);
    let broker = TastytradeBroker::new(
        sim.base_url(),
        SecretString::from(SIM_SECRET),
        SecretString::from(SIM_REFRESH),
    )
    .map_err(other)?
    .with_rate(200)
    .decorated();
    let store = records(db, &local).await?;
    let mut out = format!(
        "The 2025-11-07 incident: QQQ iron condors at the TastyTrade simulator ({}), records in {}\n\n",
        sim.base_url(),
        db.display()
    );
    let policy = Policy {
        clear_invalid: true,
        cancel_orphaned: true,
        create_missing: true,
        ..Policy::report_only()
    };
    let rec = Reconciler::new(&broker, &store).with_policy(policy);
    let after = report_fix_verify(
        &rec,
        now,
        "--clear-invalid --cancel-orphaned --create-missing",
        &mut out,
    )
    .await?;

    let account = "5WT00001".into();
    let at_broker: BTreeSet<String> = broker
        .working_orders(&account)
        .await
        .map_err(other)?
        .into_iter()
        .map(|o| o.id.to_string())
        .collect();
    let in_records: BTreeSet<String> = store
        .load(&reconcile_core::Scope::all(), now)
        .await
        .map_err(other)?
        .positions
        .iter()
        .flat_map(|p| &p.targets)
        .filter(|t| t.status == TargetStatus::Active)
        .filter_map(|t| t.order_id.as_ref().map(ToString::to_string))
        .collect();
    let agree = at_broker == in_records && after.in_sync;
    out.push_str(&format!(
        "\n{} orders at TastyTrade, {} in the database, order for order: {}\n",
        at_broker.len(),
        in_records.len(),
        if agree {
            "in agreement"
        } else {
            "NOT in agreement"
        }
    ));
    crate::emit(&out)?;
    Ok(if agree {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn alpaca(db: &std::path::Path) -> Result<ExitCode, CliError> {
    use adapter_alpaca::AlpacaBroker;
    use adapter_alpaca::sim::Sim;
    let local = LocalSnapshot::from_json(ALPACA_LOCAL).map_err(other)?;
    let seed = BrokerSnapshot::from_json(ALPACA_BROKER).map_err(other)?;
    let now = seed.as_of;
    let sim = Sim::start(now, SIM_KEY_ID, SIM_SECRET_KEY)
        .await
        .map_err(other)?;
    sim.seed(&seed);
    // The simulator keeps Alpaca's 200 requests a minute; on loopback the client need not
    // spread its few dozen requests over a minute.
    let broker = AlpacaBroker::new(
        sim.base_url(),
        SecretString::from(SIM_KEY_ID),
        SecretString::from(SIM_SECRET_KEY),
    )
    .map_err(other)?
    .with_rate(6_000)
    .decorated();
    let store = records(db, &local).await?;
    let mut out = format!(
        "The 2025-11-06 incident: seven orders executed at the Alpaca simulator ({}) while the database was locked, records in {}\n\n",
        sim.base_url(),
        db.display()
    );
    let policy = Policy {
        backfill: true,
        sync_positions: true,
        create_missing: true,
        ..Policy::report_only()
    };
    let rec = Reconciler::new(&broker, &store).with_policy(policy);
    let after = report_fix_verify(
        &rec,
        now,
        "--backfill --sync-positions --create-missing",
        &mut out,
    )
    .await?;

    let account: AccountId = sim.account_number().as_str().into();
    let at_broker: BTreeMap<String, String> = broker
        .positions(&account)
        .await
        .map_err(other)?
        .into_iter()
        .map(|p| (p.symbol.to_string(), p.quantity.normalize().to_string()))
        .collect();
    let in_records: BTreeMap<String, String> = store
        .load(&reconcile_core::Scope::all(), now)
        .await
        .map_err(other)?
        .positions
        .iter()
        .filter(|p| p.state == PositionState::Open)
        .flat_map(|p| &p.legs)
        .map(|l| (l.symbol.to_string(), l.quantity.normalize().to_string()))
        .collect();
    let agree = at_broker == in_records && after.in_sync;
    out.push_str(&format!(
        "\n{} positions at Alpaca, {} open in the database, position for position: {}\n",
        at_broker.len(),
        in_records.len(),
        if agree {
            "in agreement"
        } else {
            "NOT in agreement"
        }
    ));
    crate::emit(&out)?;
    Ok(if agree {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
