//! The 2025-11-07 incident on the desk's own table: `trading_position` rows as the desk's Django
//! code left them (profit-target ids pointing at orders cancelled by hand, a position with no
//! targets at all), then one reconcile run against the TastyTrade simulator, written straight
//! back into `profit_target_details`.

use super::store::DjangoStore;
use reconcile_core::{BrokerSnapshot, LocalSnapshot, Policy, Reconciler, Store, TargetStatus};
use serde_json::{Map, Value, json};

const LOCAL: &str = include_str!("../data/2025-11-07-tastytrade-local.json");
const BROKER: &str = include_str!("../data/2025-11-07-tastytrade-broker.json");

/// What the run left.
pub struct Outcome {
    /// Matched targets before the run.
    pub matched_before: usize,
    /// Whether the verification read found both sides in agreement.
    pub in_sync: bool,
    /// Working orders at the broker.
    pub at_broker: std::collections::BTreeSet<String>,
    /// Order ids in `profit_target_details` with status `working`.
    pub in_table: std::collections::BTreeSet<String>,
}

/// Writes the desk's rows as its own code writes them (plain SQL and JSON, none of reconcile's).
async fn write_the_desks_rows(url: &str, schema: &str) -> Result<(), String> {
    let local = LocalSnapshot::from_json(LOCAL).map_err(|e| e.to_string())?;
    let settings = store_postgres::Settings::parse(url, &store_postgres::ProcessEnv)?;
    let client = store_postgres::session(&settings)
        .await
        .map_err(|e| e.to_string())?;
    let s = format!("\"{schema}\"");
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s}; {}",
            super::store::DJANGO_SCHEMA.replace("{s}", &s)
        ))
        .await
        .map_err(|e| e.to_string())?;
    for p in &local.positions {
        let mut details = Map::new();
        for t in &p.targets {
            let mut d = Map::new();
            d.insert(
                "order_id".into(),
                json!(t.order_id.as_ref().map(|o| o.as_str())),
            );
            if t.order_id.is_some() {
                d.insert("status".into(), json!("working"));
            }
            d.insert(
                "target_price".into(),
                json!(t.limit_price.map(|x| x.to_string())),
            );
            d.insert("quantity".into(), json!(t.quantity.map(|x| x.to_string())));
            d.insert(
                "legs".into(),
                serde_json::to_value(&t.legs).map_err(|e| e.to_string())?,
            );
            details.insert(t.key.to_string(), Value::Object(d));
        }
        let metadata = json!({"legs": p.legs});
        let id: i64 =
            p.id.as_str()
                .parse()
                .map_err(|e| format!("{}: {e}", p.id))?;
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.trading_position (id, account_number, symbol, lifecycle_state, opened_at,
                         profit_targets_created, profit_target_details, metadata)
                     VALUES ($1, $2, $3, 'open_full', $4, $5, $6::text::jsonb, $7::text::jsonb)"
                ),
                &[
                    &id,
                    &p.account.as_str(),
                    &p.underlying,
                    &p.opened_at,
                    &!details.is_empty(),
                    &(!details.is_empty()).then(|| Value::Object(details).to_string()),
                    &metadata.to_string(),
                ],
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The incident, end to end, in `schema` of the database `url` names.
pub async fn run(url: &str, schema: &str) -> Result<Outcome, String> {
    write_the_desks_rows(url, schema).await?;
    let seed = BrokerSnapshot::from_json(BROKER).map_err(|e| e.to_string())?;
    let now = seed.as_of;
    let sim = adapter_tastytrade::sim::Sim::start(now, "example-secret", "example-refresh")
        .await
        .map_err(|e| e.to_string())?;
    sim.seed(&seed);
    let broker = adapter_tastytrade::TastytradeBroker::new(
        sim.base_url(),
        secrecy::SecretString::from("example-secret"),
        secrecy::SecretString::from("example-refresh"),
    )
    .map_err(|e| e.to_string())?
    .with_rate(200)
    .decorated();
    let store = DjangoStore::connect(url).await.map_err(|e| e.to_string())?;
    let rec = Reconciler::new(&broker, &store).with_policy(Policy {
        clear_invalid: true,
        cancel_orphaned: true,
        create_missing: true,
        ..Policy::report_only()
    });
    let (before, plan) = rec.plan(now).await.map_err(|e| e.to_string())?;
    let applied = rec
        .apply(&plan, &reconcile_core::ApplyOptions::new("seed000-1", now))
        .await
        .map_err(|e| e.to_string())?;
    let at_broker = reconcile_core::Broker::working_orders(&broker, &"5WT00001".into())
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|o| o.id.to_string())
        .collect();
    let in_table = store
        .load(&reconcile_core::Scope::all(), now)
        .await
        .map_err(|e| e.to_string())?
        .positions
        .iter()
        .flat_map(|p| &p.targets)
        .filter(|t| t.status == TargetStatus::Active)
        .filter_map(|t| t.order_id.as_ref().map(ToString::to_string))
        .collect();
    Ok(Outcome {
        matched_before: before.summary.matched,
        in_sync: applied.verify.is_some_and(|v| v.in_sync),
        at_broker,
        in_table,
    })
}
