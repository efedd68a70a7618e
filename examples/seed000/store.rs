//! A [`Store`] over a Django-shaped PostgreSQL schema like the 2025-11-07 (seed 000) options
//! desk's: its `trading_position` table, read and written as the desk's code reads and writes
//! it. `lifecycle_state` says where a position is (`pending_entry`, `open_full`, `open_partial`,
//! `closing`, `closed`); `profit_target_details` is a JSONB object keyed by spread
//! (`call_spread`, `put_spread_1`, …) whose entries hold `order_id` and `status` (`working`,
//! `filled`, `cancelled`, `failed`, or none yet) with the target's price and legs; `metadata`
//! holds the position's legs. Nothing in the table is altered or migrated: what it has no place
//! for lives in tables of reconcile's own beside it (`reconcile_*`), and the run locks are
//! `store-postgres`'s session advisory locks.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reconcile_core::{
    AccountId, AuditRecord, ChangeBatch, ClientOrderId, Fill, Intent, LocalChange, LocalSnapshot,
    LockAttempt, LockHolder, OrderId, Position, PositionId, PositionLeg, PositionState,
    ProfitTarget, RunId, Scope, Store, StoreError, TargetKey, TargetLeg, TargetStatus, Unlock,
};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use store_postgres::{Locks, Settings};
use tokio::sync::Mutex;
use tokio_postgres::{Client, Transaction};

/// The desk's table, as its Django migration makes it (here only when absent, for the example).
pub const DJANGO_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS {s}.trading_position (
    id BIGSERIAL PRIMARY KEY,
    account_number VARCHAR(32) NOT NULL,
    symbol VARCHAR(16) NOT NULL,
    strategy_type VARCHAR(32) NOT NULL DEFAULT 'senex_trident',
    lifecycle_state VARCHAR(20) NOT NULL,
    quantity INTEGER NOT NULL DEFAULT 1,
    avg_price NUMERIC(12, 4),
    opened_at TIMESTAMPTZ,
    closed_at TIMESTAMPTZ,
    profit_targets_created BOOLEAN NOT NULL DEFAULT FALSE,
    profit_target_details JSONB,
    metadata JSONB NOT NULL DEFAULT '{}'::jsonb
);
";

/// reconcile's tables beside the desk's.
const SIDECAR: &str = "
CREATE TABLE IF NOT EXISTS {s}.reconcile_position_name (
    name TEXT PRIMARY KEY,
    position_id BIGINT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS {s}.reconcile_intent (
    client_order_id TEXT PRIMARY KEY,
    position TEXT NOT NULL,
    target_key TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    oco_with TEXT
);
CREATE TABLE IF NOT EXISTS {s}.reconcile_audit (
    seq BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    action_key TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
";

const NAME: &str = "django-postgres";

fn backend(what: &str, e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Backend {
        store: NAME.to_owned(),
        message: format!("{what}: {e}"),
    }
}

fn pg(what: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| {
        let msg = e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_owned());
        backend(what, &msg)
    }
}

fn corrupt(location: String, message: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        store: NAME.to_owned(),
        location,
        message: message.into(),
    }
}

/// The desk's spelling of a state. An open position written back keeps `open_partial` if it
/// was partial (the desk's distinction; reconcile's `open` covers both).
fn lifecycle_of(s: PositionState, was: Option<&str>) -> &'static str {
    match s {
        PositionState::Pending => "pending_entry",
        PositionState::Open if was == Some("open_partial") => "open_partial",
        PositionState::Open => "open_full",
        PositionState::Closing => "closing",
        PositionState::Closed => "closed",
    }
}

fn state_of(s: &str, at: impl Fn() -> String) -> Result<PositionState, StoreError> {
    match s {
        "pending_entry" | "pending" => Ok(PositionState::Pending),
        "open_full" | "open_partial" => Ok(PositionState::Open),
        "closing" => Ok(PositionState::Closing),
        "closed" => Ok(PositionState::Closed),
        other => Err(corrupt(at(), format!("not a lifecycle state: {other:?}"))),
    }
}

/// The desk's spelling of a target status in `profit_target_details`.
fn detail_status(s: TargetStatus) -> Option<&'static str> {
    match s {
        TargetStatus::Unplaced => None,
        TargetStatus::Active => Some("working"),
        TargetStatus::Filled => Some("filled"),
        TargetStatus::Cancelled => Some("cancelled"),
        TargetStatus::Failed => Some("failed"),
    }
}

fn target_status_of(
    detail: &Map<String, Value>,
    at: impl Fn() -> String,
) -> Result<TargetStatus, StoreError> {
    let has_order = detail.get("order_id").is_some_and(|o| !o.is_null());
    match detail.get("status").and_then(Value::as_str) {
        None | Some("pending" | "unplaced") if !has_order => Ok(TargetStatus::Unplaced),
        None | Some("working" | "live" | "active") => Ok(TargetStatus::Active),
        Some("filled") => Ok(TargetStatus::Filled),
        Some("cancelled" | "canceled") => Ok(TargetStatus::Cancelled),
        Some("failed") => Ok(TargetStatus::Failed),
        Some(other) => Err(corrupt(
            at(),
            format!("not a profit target status: {other:?}"),
        )),
    }
}

/// A target as one entry of `profit_target_details`.
fn detail_of(t: &ProfitTarget) -> Result<Value, StoreError> {
    let mut m = Map::new();
    m.insert(
        "order_id".into(),
        json!(t.order_id.as_ref().map(OrderId::as_str)),
    );
    if let Some(s) = detail_status(t.status) {
        m.insert("status".into(), json!(s));
    }
    let dec = |d: Option<rust_decimal::Decimal>| d.map(|d| Value::String(d.to_string()));
    for (k, v) in [
        ("target_price", dec(t.limit_price)),
        ("stop_price", dec(t.stop_price)),
        ("quantity", dec(t.quantity)),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    }
    m.insert(
        "legs".into(),
        serde_json::to_value(&t.legs).map_err(|e| backend("writing legs", &e))?,
    );
    if let Some(c) = &t.client_order_id {
        m.insert("client_order_id".into(), json!(c.as_str()));
    }
    if let Some(p) = t.placed_at {
        m.insert("placed_at".into(), json!(p));
    }
    if let Some(e) = &t.last_error {
        m.insert("last_error".into(), json!(e));
    }
    if let Some(a) = t.last_attempt {
        m.insert("last_attempt".into(), json!(a));
    }
    Ok(Value::Object(m))
}

fn parse<T: serde::de::DeserializeOwned>(
    v: Option<&Value>,
    at: impl Fn() -> String,
) -> Result<Option<T>, StoreError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| corrupt(at(), e.to_string())),
    }
}

fn target_of(
    key: &str,
    d: &Map<String, Value>,
    at: impl Fn() -> String,
) -> Result<ProfitTarget, StoreError> {
    let dec = |k: &str| -> Result<Option<rust_decimal::Decimal>, StoreError> {
        match d.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => reconcile_core::decimal::parse_decimal(s)
                .map(Some)
                .map_err(|m| corrupt(at(), m)),
            Some(Value::Number(n)) => reconcile_core::decimal::parse_decimal(&n.to_string())
                .map(Some)
                .map_err(|m| corrupt(at(), m)),
            Some(other) => Err(corrupt(at(), format!("{k}: not a decimal: {other}"))),
        }
    };
    let order_id = match d.get("order_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(OrderId::new(s.as_str())),
        Some(Value::Number(n)) => Some(OrderId::new(n.to_string())),
        Some(other) => return Err(corrupt(at(), format!("order_id: {other}"))),
    };
    Ok(ProfitTarget {
        key: TargetKey::new(key),
        status: target_status_of(d, &at)?,
        order_id,
        client_order_id: parse::<String>(d.get("client_order_id"), &at)?.map(ClientOrderId::new),
        placed_at: parse(d.get("placed_at"), &at)?,
        limit_price: dec("target_price")?,
        stop_price: dec("stop_price")?,
        quantity: dec("quantity")?,
        legs: parse::<Vec<TargetLeg>>(d.get("legs"), &at)?.unwrap_or_default(),
        last_error: parse(d.get("last_error"), &at)?,
        last_attempt: parse(d.get("last_attempt"), &at)?,
    })
}

/// The store.
#[derive(Clone)]
pub struct DjangoStore {
    client: Arc<Mutex<Client>>,
    locks: Arc<Locks>,
    s: Arc<str>,
}

impl DjangoStore {
    /// Connects to the desk's database (`schema=` names the schema its tables are in), making
    /// the desk's table only when absent (the example's stand-in for the Django migration) and
    /// reconcile's tables beside it.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database cannot be reached or the tables made.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let settings = Settings::parse(url, &store_postgres::ProcessEnv)
            .map_err(|m| backend("the URL", &m))?;
        let s: Arc<str> = format!("\"{}\"", settings.schema()).into();
        let locks = Locks::for_schema(settings.clone());
        // A session as store-postgres opens one: TLS as the URL asks, the password never shown.
        let client = store_postgres::session(&settings).await?;
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {s}; {}{}",
                DJANGO_SCHEMA.replace("{s}", &s),
                SIDECAR.replace("{s}", &s)
            ))
            .await
            .map_err(pg("making the tables"))?;
        locks.create_table().await?;
        Ok(Self {
            client: Arc::new(Mutex::new(client)),
            locks: Arc::new(locks),
            s,
        })
    }
}

/// The row of a position id: a name in `reconcile_position_name`, or the row's own id.
async fn row_of(tx: &Transaction<'_>, s: &str, id: &PositionId) -> Result<Option<i64>, StoreError> {
    if let Some(r) = tx
        .query_opt(
            &format!("SELECT position_id FROM {s}.reconcile_position_name WHERE name = $1"),
            &[&id.as_str()],
        )
        .await
        .map_err(pg("reading names"))?
    {
        return Ok(Some(r.get(0)));
    }
    match id.as_str().parse::<i64>() {
        Ok(n) if n.to_string() == id.as_str() => Ok(tx
            .query_opt(
                &format!(
                    "SELECT id FROM {s}.trading_position WHERE id = $1
                     AND id NOT IN (SELECT position_id FROM {s}.reconcile_position_name)"
                ),
                &[&n],
            )
            .await
            .map_err(pg("reading positions"))?
            .map(|r| r.get(0))),
        _ => Ok(None),
    }
}

/// One position row, locked for the batch, and its JSON to change.
struct Row {
    id: i64,
    lifecycle: String,
    details: Map<String, Value>,
    metadata: Map<String, Value>,
}

async fn lock_row(tx: &Transaction<'_>, s: &str, id: &PositionId) -> Result<Row, StoreError> {
    let missing = || StoreError::NotFound {
        store: NAME.to_owned(),
        what: format!("position {id}"),
    };
    let row = row_of(tx, s, id).await?.ok_or_else(missing)?;
    let r = tx
        .query_one(
            &format!(
                "SELECT lifecycle_state, COALESCE(profit_target_details, '{{}}'::jsonb)::text, metadata::text
                 FROM {s}.trading_position WHERE id = $1 FOR UPDATE"
            ),
            &[&row],
        )
        .await
        .map_err(pg("reading a position"))?;
    let obj = |text: String, col: &str| -> Result<Map<String, Value>, StoreError> {
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => Err(corrupt(
                format!("trading_position {row}.{col}"),
                format!("not an object: {other}"),
            )),
            Err(e) => Err(corrupt(
                format!("trading_position {row}.{col}"),
                e.to_string(),
            )),
        }
    };
    Ok(Row {
        id: row,
        lifecycle: r.get(0),
        details: obj(r.get(1), "profit_target_details")?,
        metadata: obj(r.get(2), "metadata")?,
    })
}

async fn save_row(
    tx: &Transaction<'_>,
    s: &str,
    r: &Row,
    state: Option<PositionState>,
) -> Result<(), StoreError> {
    let lifecycle = state.map_or(r.lifecycle.as_str(), |st| {
        lifecycle_of(st, Some(&r.lifecycle))
    });
    let closed = matches!(state, Some(PositionState::Closed));
    tx.execute(
        &format!(
            "UPDATE {s}.trading_position SET lifecycle_state = $2, profit_target_details = $3::text::jsonb,
                 metadata = $4::text::jsonb, closed_at = CASE WHEN $5 THEN COALESCE(closed_at, now()) ELSE closed_at END
             WHERE id = $1"
        ),
        &[
            &r.id,
            &lifecycle,
            &Value::Object(r.details.clone()).to_string(),
            &Value::Object(r.metadata.clone()).to_string(),
            &closed,
        ],
    )
    .await
    .map_err(pg("writing a position"))?;
    Ok(())
}

fn detail_mut<'r>(
    r: &'r mut Row,
    p: &PositionId,
    key: &TargetKey,
) -> Result<&'r mut Map<String, Value>, StoreError> {
    match r.details.get_mut(key.as_str()) {
        Some(Value::Object(m)) => Ok(m),
        _ => Err(StoreError::NotFound {
            store: NAME.to_owned(),
            what: format!("target {p}/{key}"),
        }),
    }
}

async fn insert(tx: &Transaction<'_>, s: &str, p: &Position) -> Result<(), StoreError> {
    if row_of(tx, s, &p.id).await?.is_some() {
        return Ok(());
    }
    let mut details = Map::new();
    for t in &p.targets {
        details.insert(t.key.to_string(), detail_of(t)?);
    }
    let mut metadata = Map::new();
    metadata.insert(
        "legs".into(),
        serde_json::to_value(&p.legs).map_err(|e| backend("writing legs", &e))?,
    );
    if let Some(e) = &p.entry_order_id {
        metadata.insert("entry_order_id".into(), json!(e.as_str()));
    }
    if let Some(c) = &p.closing {
        metadata.insert(
            "closing".into(),
            serde_json::to_value(c).map_err(|e| backend("writing a fill", &e))?,
        );
    }
    let numeric =
        p.id.as_str()
            .parse::<i64>()
            .ok()
            .filter(|n| n.to_string() == p.id.as_str());
    let row: i64 = tx
        .query_one(
            &format!(
                "INSERT INTO {s}.trading_position (id, account_number, symbol, lifecycle_state, avg_price, opened_at,
                     profit_targets_created, profit_target_details, metadata)
                 VALUES (COALESCE($1, nextval(pg_get_serial_sequence('{s}.trading_position', 'id'))), $2, $3, $4,
                     $5::text::numeric, $6, $7, $8::text::jsonb, $9::text::jsonb)
                 RETURNING id"
            ),
            &[
                &numeric,
                &p.account.as_str(),
                &p.underlying,
                &lifecycle_of(p.state, None),
                &p.entry_price.map(|d| d.to_string()),
                &p.opened_at,
                &p.targets.iter().any(|t| t.order_id.is_some()),
                &(!details.is_empty()).then(|| Value::Object(details).to_string()),
                &Value::Object(metadata).to_string(),
            ],
        )
        .await
        .map_err(pg("inserting a position"))?
        .get(0);
    if numeric.is_some() {
        // Keep the desk's own inserts clear of the ids we chose.
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{s}.trading_position', 'id'), GREATEST((SELECT max(id) FROM {s}.trading_position), 1))"
            ),
            &[],
        )
        .await
        .map_err(pg("advancing the id sequence"))?;
    } else {
        tx.execute(
            &format!("INSERT INTO {s}.reconcile_position_name (name, position_id) VALUES ($1, $2)"),
            &[&p.id.as_str(), &row],
        )
        .await
        .map_err(pg("naming a position"))?;
    }
    Ok(())
}

async fn apply_one(tx: &Transaction<'_>, s: &str, c: &LocalChange) -> Result<(), StoreError> {
    match c {
        LocalChange::InsertPosition { position } => return insert(tx, s, position).await,
        LocalChange::PutIntent { intent: i } => {
            tx.execute(
                &format!(
                    "INSERT INTO {s}.reconcile_intent (client_order_id, position, target_key, created_at, oco_with)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
                ),
                &[&i.client_order_id.as_str(), &i.position_id.as_str(), &i.target_key.as_str(), &i.created_at, &i.oco_with.as_ref().map(TargetKey::as_str)],
            )
            .await
            .map_err(pg("writing an intent"))?;
            return Ok(());
        }
        LocalChange::DropIntent { client_order_id } => {
            tx.execute(
                &format!("DELETE FROM {s}.reconcile_intent WHERE client_order_id = $1"),
                &[&client_order_id.as_str()],
            )
            .await
            .map_err(pg("dropping an intent"))?;
            return Ok(());
        }
        _ => {}
    }
    let (id, state) = match c {
        LocalChange::LinkTarget { position_id, .. }
        | LocalChange::ClearTarget { position_id, .. }
        | LocalChange::SetTargetStatus { position_id, .. }
        | LocalChange::RecordTargetError { position_id, .. }
        | LocalChange::SetTargetPrices { position_id, .. }
        | LocalChange::RecordClosing { position_id, .. } => (position_id, None),
        LocalChange::SetPositionState { position_id, state } => (position_id, Some(*state)),
        _ => return Ok(()),
    };
    let mut row = lock_row(tx, s, id).await?;
    match c {
        LocalChange::LinkTarget {
            target_key,
            order_id,
            client_order_id,
            placed_at,
            ..
        } => {
            let d = detail_mut(&mut row, id, target_key)?;
            d.insert("order_id".into(), json!(order_id.as_str()));
            d.insert("status".into(), json!("working"));
            if let Some(c) = client_order_id {
                d.insert("client_order_id".into(), json!(c.as_str()));
            }
            if let Some(p) = placed_at {
                d.insert("placed_at".into(), json!(p));
                d.insert("last_attempt".into(), json!(p));
            }
            d.remove("last_error");
        }
        LocalChange::ClearTarget {
            target_key, note, ..
        } => {
            let d = detail_mut(&mut row, id, target_key)?;
            d.insert("order_id".into(), Value::Null);
            for k in ["status", "client_order_id", "placed_at"] {
                d.remove(k);
            }
            match note {
                Some(n) => d.insert("last_error".into(), json!(n)),
                None => d.remove("last_error"),
            };
        }
        LocalChange::SetTargetStatus {
            target_key, status, ..
        } => {
            let d = detail_mut(&mut row, id, target_key)?;
            match detail_status(*status) {
                Some(st) => d.insert("status".into(), json!(st)),
                None => d.remove("status"),
            };
        }
        LocalChange::RecordTargetError {
            target_key,
            error,
            at,
            ..
        } => {
            let d = detail_mut(&mut row, id, target_key)?;
            d.insert("last_error".into(), json!(error));
            d.insert("last_attempt".into(), json!(at));
        }
        LocalChange::SetTargetPrices {
            target_key,
            limit_price,
            stop_price,
            ..
        } => {
            let d = detail_mut(&mut row, id, target_key)?;
            for (k, v) in [("target_price", limit_price), ("stop_price", stop_price)] {
                match v {
                    Some(p) => d.insert(k.into(), json!(p.to_string())),
                    None => d.remove(k),
                };
            }
        }
        LocalChange::RecordClosing { closing, .. } => {
            row.metadata.insert(
                "closing".into(),
                serde_json::to_value(closing).map_err(|e| backend("writing a fill", &e))?,
            );
        }
        _ => {}
    }
    save_row(tx, s, &row, state).await
}

#[async_trait]
impl Store for DjangoStore {
    fn name(&self) -> String {
        NAME.to_owned()
    }

    async fn load(&self, scope: &Scope, as_of: DateTime<Utc>) -> Result<LocalSnapshot, StoreError> {
        let s = &*self.s;
        let client = self.client.lock().await;
        let rows = client
            .query(
                &format!(
                    "SELECT p.id, n.name, p.account_number, p.symbol, p.lifecycle_state, p.avg_price::text, p.opened_at,
                            COALESCE(p.profit_target_details, '{{}}'::jsonb)::text, p.metadata::text
                     FROM {s}.trading_position p LEFT JOIN {s}.reconcile_position_name n ON n.position_id = p.id
                     ORDER BY p.id"
                ),
                &[],
            )
            .await
            .map_err(pg("reading positions"))?;
        let mut snapshot = LocalSnapshot::new(as_of);
        let mut known = std::collections::BTreeSet::new();
        let mut ids = std::collections::BTreeSet::new();
        for r in &rows {
            let row: i64 = r.get(0);
            let at = |col: &str| format!("trading_position {row}.{col}");
            let id = PositionId::new(
                r.get::<_, Option<String>>(1)
                    .unwrap_or_else(|| row.to_string()),
            );
            let account = AccountId::new(r.get::<_, String>(2));
            let underlying: String = r.get(3);
            let state = state_of(r.get::<_, &str>(4), || at("lifecycle_state"))?;
            known.insert(id.clone());
            if !scope.includes_position_parts(&account, &underlying, state) {
                continue;
            }
            let details: Value = serde_json::from_str(r.get::<_, &str>(7))
                .map_err(|e| corrupt(at("profit_target_details"), e.to_string()))?;
            let metadata: Value = serde_json::from_str(r.get::<_, &str>(8))
                .map_err(|e| corrupt(at("metadata"), e.to_string()))?;
            let mut targets = Vec::new();
            if let Value::Object(m) = &details {
                for (key, d) in m {
                    let Value::Object(d) = d else {
                        return Err(corrupt(
                            at("profit_target_details"),
                            format!("{key}: not an object"),
                        ));
                    };
                    targets.push(target_of(key, d, || {
                        format!("trading_position {row}.profit_target_details.{key}")
                    })?);
                }
            }
            targets.sort_by(|a, b| a.key.cmp(&b.key));
            ids.insert(id.clone());
            snapshot.positions.push(Position {
                id,
                account,
                underlying,
                state,
                opened_at: r.get(6),
                entry_price: r
                    .get::<_, Option<String>>(5)
                    .map(|t| {
                        reconcile_core::decimal::parse_decimal(&t)
                            .map_err(|m| corrupt(at("avg_price"), m))
                    })
                    .transpose()?,
                legs: parse::<Vec<PositionLeg>>(metadata.get("legs"), || at("metadata.legs"))?
                    .unwrap_or_default(),
                targets,
                entry_order_id: parse::<String>(metadata.get("entry_order_id"), || {
                    at("metadata.entry_order_id")
                })?
                .map(OrderId::new),
                closing: parse::<Fill>(metadata.get("closing"), || at("metadata.closing"))?,
            });
        }
        let intents = client
            .query(
                &format!("SELECT client_order_id, position, target_key, created_at, oco_with FROM {s}.reconcile_intent ORDER BY created_at, client_order_id"),
                &[],
            )
            .await
            .map_err(pg("reading intents"))?;
        for r in &intents {
            let position = PositionId::new(r.get::<_, String>(1));
            if ids.contains(&position) || (!known.contains(&position) && scope.is_everything()) {
                snapshot.intents.push(Intent {
                    client_order_id: ClientOrderId::new(r.get::<_, String>(0)),
                    position_id: position,
                    target_key: TargetKey::new(r.get::<_, String>(2)),
                    created_at: r.get(3),
                    oco_with: r.get::<_, Option<String>>(4).map(TargetKey::new),
                });
            }
        }
        Ok(snapshot)
    }

    async fn apply(&self, batch: &ChangeBatch) -> Result<(), StoreError> {
        let s = &*self.s;
        let mut client = self.client.lock().await;
        let tx = client.transaction().await.map_err(pg("starting a batch"))?;
        let mut result = Ok(());
        for c in &batch.changes {
            result = apply_one(&tx, s, c).await;
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            for a in &batch.audit {
                if let Err(e) = tx
                    .execute(
                        &format!("INSERT INTO {s}.reconcile_audit (run_id, at, action_key, outcome, detail) VALUES ($1, $2, $3, $4, $5)"),
                        &[&a.run_id.as_str(), &a.at, &a.action_key, &a.outcome.as_str(), &a.detail],
                    )
                    .await
                {
                    result = Err(pg("writing the audit log")(e));
                    break;
                }
            }
        }
        match result {
            Ok(()) => tx.commit().await.map_err(pg("committing a batch")),
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn audit_log(&self, run: Option<RunId>) -> Result<Vec<AuditRecord>, StoreError> {
        let s = &*self.s;
        let client = self.client.lock().await;
        let run = run.map(|r| r.to_string());
        let rows = client
            .query(
                &format!("SELECT seq, run_id, at, action_key, outcome, detail FROM {s}.reconcile_audit WHERE $1::text IS NULL OR run_id = $1 ORDER BY seq"),
                &[&run],
            )
            .await
            .map_err(pg("reading the audit log"))?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.get(0);
                Ok(AuditRecord {
                    run_id: RunId::new(r.get::<_, String>(1)),
                    at: r.get(2),
                    action_key: r.get(3),
                    outcome: r.get::<_, &str>(4).parse().map_err(
                        |e: reconcile_core::spelling::UnknownSpelling| {
                            corrupt(format!("reconcile_audit {seq}.outcome"), e.to_string())
                        },
                    )?,
                    detail: r.get(5),
                })
            })
            .collect()
    }

    async fn acquire_lock(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<LockAttempt, StoreError> {
        self.locks.acquire(account, holder).await
    }

    async fn release_lock(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<(), StoreError> {
        self.locks.release(account, holder).await
    }

    async fn unlock(&self, account: &AccountId) -> Result<Unlock, StoreError> {
        self.locks.unlock(account).await
    }
}
