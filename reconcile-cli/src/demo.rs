//! `reconcile demo`: the 2025-11-07 incident end to end, against the TastyTrade simulator and an
//! SQLite file in a temporary folder: report, fix, verify.

use crate::CliError;
use adapter_tastytrade::TastytradeBroker;
use adapter_tastytrade::sim::Sim;
use reconcile_core::{
    ApplyOptions, Broker, BrokerSnapshot, ChangeBatch, LocalChange, LocalSnapshot, Policy,
    Reconciler, Store, TargetStatus,
};
use secrecy::SecretString;
use std::collections::BTreeSet;
use std::process::ExitCode;
use store_sqlite::SqliteStore;

const LOCAL: &str = include_str!("../../examples/data/2025-11-07-tastytrade-local.json");
pub(crate) const BROKER: &str =
    include_str!("../../examples/data/2025-11-07-tastytrade-broker.json");
// The simulator's own credentials: not secrets, but treated as such all the same.
const SIM_SECRET: &str = "demo-client-secret";
const SIM_REFRESH: &str = "demo-refresh-token";

fn other(e: impl std::fmt::Display) -> CliError {
    CliError::Other(e.to_string())
}

pub fn run() -> Result<ExitCode, CliError> {
    let local = LocalSnapshot::from_json(LOCAL).map_err(other)?;
    let seed = BrokerSnapshot::from_json(BROKER).map_err(other)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("reconcile-demo-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| CliError::Write {
        path: dir.clone(),
        source,
    })?;
    let db = dir.join("reconcile.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| other(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async {
        let now = seed.as_of;
        let sim = Sim::start(now, SIM_SECRET, SIM_REFRESH).await.map_err(other)?;
        sim.seed(&seed);
        let broker = TastytradeBroker::new(sim.base_url(), SecretString::from(SIM_SECRET), SecretString::from(SIM_REFRESH))
            .map_err(other)?
            .with_rate(200)
            .decorated();
        let store = SqliteStore::open(&db).map_err(other)?;
        let changes = local
            .positions
            .iter()
            .map(|p| LocalChange::InsertPosition { position: p.clone() })
            .collect();
        store.apply(&ChangeBatch { changes, audit: Vec::new() }).await.map_err(other)?;
        let mut out = format!(
            "The 2025-11-07 incident: QQQ iron condors at the TastyTrade simulator ({}), records in {}\n\n",
            sim.base_url(),
            db.display()
        );

        let policy = Policy { clear_invalid: true, cancel_orphaned: true, create_missing: true, ..Policy::report_only() };
        let rec = Reconciler::new(&broker, &store).with_policy(policy);
        let (before, plan) = rec.plan(now).await.map_err(other)?;
        out.push_str("1. Dry run: what disagrees\n");
        out.push_str(&crate::output::plan_table(&before, &plan));
        out.push_str("\n2. Apply: --clear-invalid --cancel-orphaned --create-missing --yes\n");
        let applied = rec.apply(&plan, &ApplyOptions::new("demo-1", now)).await.map_err(other)?;
        out.push_str(&crate::output::apply_table(&applied));

        out.push_str("\n3. Run again\n");
        let after = rec.diff(now).await.map_err(other)?;
        out.push_str(&crate::output::report_table(&after));

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
            if agree { "in agreement" } else { "NOT in agreement" }
        ));
        crate::emit(&out)?;
        Ok(if agree { ExitCode::SUCCESS } else { ExitCode::from(1) })
    })
}
