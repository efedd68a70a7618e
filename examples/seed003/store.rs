//! A [`Store`] over an existing trading database: the tables of the 2025-11-06 (seed 003)
//! Alpaca bot, `portfolio_positions` (one row per holding, with its stop-loss, target and risk
//! columns) and `trading_orders` (the orders the bot sent, and the ones it means to), read and
//! written as the bot reads and writes them. Nothing in them is altered or migrated; what they
//! have no column for lives in tables of reconcile's own beside them (`reconcile_*`): names of
//! positions whose ids are not row numbers, legs that are not one line of shares, intents, the
//! audit log. Run locks are file locks beside the database, as `store-sqlite` takes them.
//!
//! How the columns are read:
//! - A position is a `portfolio_positions` row: `ticker` its underlying, `shares` (signed) its
//!   one leg, `status` `PENDING`/`OPEN`/`CLOSING`/`CLOSED`, `entry_date` when it opened,
//!   `exit_date`/`exit_price` its close.
//! - Its targets are its `trading_orders` rows other than `entry` and `exit`: `purpose` the
//!   target's key, `status` `PENDING` (unplaced), `SUBMITTED` (active), `FILLED`, `CANCELLED`,
//!   `FAILED`. A `stop_loss` or `target` column with no order row is an unplaced target
//!   (`stop_loss`, `take_profit`) on the whole holding: that is how the bot records the
//!   protection it expects.
//! - Its entry order is the `entry` row's `alpaca_order_id`; its closing fill the `exit` row's.
//! - `risk_per_share` and `total_risk` are written as the bot computes them: entry minus stop.
//!
//! Decimals are TEXT columns, read from their text; a bot whose columns are REAL would cast
//! them (`CAST(x AS TEXT)`) and accept the float's digits.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reconcile_core::{
    AccountId, AuditRecord, ChangeBatch, ClientOrderId, Fill, Intent, LocalChange, LocalSnapshot,
    LockAttempt, LockHolder, OrderId, Position, PositionId, PositionLeg, PositionState,
    ProfitTarget, RunId, Scope, Side, Store, StoreError, Symbol, TargetKey, TargetLeg,
    TargetStatus, Unlock,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use rust_decimal::Decimal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use store_sqlite::RunLocks;
use store_sqlite::codec::{corrupt, parse_dec, parse_opt_dec, parse_opt_time, parse_time, time};

/// The bot's own tables, as it creates them (created here only when absent, for the example).
pub const BOT_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS portfolio_positions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    ticker TEXT NOT NULL,
    shares TEXT NOT NULL,
    entry_price TEXT,
    stop_loss TEXT,
    target TEXT,
    risk_per_share TEXT,
    total_risk TEXT,
    status TEXT NOT NULL,
    entry_date TEXT,
    exit_date TEXT,
    exit_price TEXT
);
CREATE TABLE IF NOT EXISTS trading_orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    position_id INTEGER NOT NULL REFERENCES portfolio_positions(id),
    alpaca_order_id TEXT,
    client_order_id TEXT,
    ticker TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity TEXT,
    order_type TEXT,
    limit_price TEXT,
    stop_price TEXT,
    purpose TEXT NOT NULL,
    status TEXT NOT NULL,
    submitted_at TEXT,
    filled_at TEXT,
    filled_price TEXT,
    error_message TEXT,
    error_at TEXT
);
";

/// reconcile's tables beside the bot's: only what the bot's have no column for.
const SIDECAR: &str = "
CREATE TABLE IF NOT EXISTS reconcile_position_names (
    name TEXT PRIMARY KEY,
    row_id INTEGER NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS reconcile_position_legs (
    row_id INTEGER PRIMARY KEY,
    legs TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reconcile_target_legs (
    order_row INTEGER PRIMARY KEY,
    legs TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reconcile_intents (
    client_order_id TEXT PRIMARY KEY,
    position TEXT NOT NULL,
    target_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    oco_with TEXT
);
CREATE TABLE IF NOT EXISTS reconcile_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    at TEXT NOT NULL,
    action_key TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
";

const NAME: &str = "seed003-sqlite";

fn backend(e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Backend {
        store: NAME.to_owned(),
        message: e.to_string(),
    }
}

fn not_found(what: String) -> StoreError {
    StoreError::NotFound {
        store: NAME.to_owned(),
        what,
    }
}

fn sql(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Busy {
                store: NAME.to_owned(),
                what: f.to_string(),
            }
        }
        other => backend(&other),
    }
}

/// The bot's spelling of a position state.
fn status_of(s: PositionState) -> &'static str {
    match s {
        PositionState::Pending => "PENDING",
        PositionState::Open => "OPEN",
        PositionState::Closing => "CLOSING",
        PositionState::Closed => "CLOSED",
    }
}

fn state_of(s: &str, at: impl Fn() -> String) -> Result<PositionState, StoreError> {
    match s {
        "PENDING" => Ok(PositionState::Pending),
        "OPEN" => Ok(PositionState::Open),
        "CLOSING" => Ok(PositionState::Closing),
        "CLOSED" => Ok(PositionState::Closed),
        other => Err(corrupt(at(), format!("not a position status: {other:?}"))),
    }
}

/// The bot's spelling of a target status.
fn order_status_of(s: TargetStatus) -> &'static str {
    match s {
        TargetStatus::Unplaced => "PENDING",
        TargetStatus::Active => "SUBMITTED",
        TargetStatus::Filled => "FILLED",
        TargetStatus::Cancelled => "CANCELLED",
        TargetStatus::Failed => "FAILED",
    }
}

fn target_status_of(s: &str, at: impl Fn() -> String) -> Result<TargetStatus, StoreError> {
    match s {
        "PENDING" => Ok(TargetStatus::Unplaced),
        "SUBMITTED" => Ok(TargetStatus::Active),
        "FILLED" => Ok(TargetStatus::Filled),
        "CANCELLED" => Ok(TargetStatus::Cancelled),
        "FAILED" => Ok(TargetStatus::Failed),
        other => Err(corrupt(at(), format!("not an order status: {other:?}"))),
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| backend(&e))
}

fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    at: impl Fn() -> String,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(at(), e.to_string()))
}

/// The store. Cheap to clone: clones share the connection and the locks.
#[derive(Clone)]
pub struct Seed003Store {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
    locks: Arc<RunLocks>,
}

impl Seed003Store {
    /// Opens the bot's database at `path` (creating the bot's tables only when absent, as the
    /// example's stand-in for the bot), and reconcile's own tables beside them.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the file cannot be opened or the tables made.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        let conn = Connection::open(&path).map_err(sql)?;
        // The bot writes while we read: wait for it rather than fail (seed 003's lesson).
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(sql)?;
        conn.execute_batch(BOT_SCHEMA).map_err(sql)?;
        conn.execute_batch(SIDECAR).map_err(sql)?;
        Ok(Self {
            locks: Arc::new(RunLocks::beside(&path)),
            path,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut c)
        })
        .await
        .map_err(|e| backend(&format!("{}: worker stopped: {e}", self.path.display())))?
    }
}

/// The row of a position id: its name in `reconcile_position_names`, or the row number itself.
fn row_of(tx: &Transaction<'_>, id: &PositionId) -> Result<Option<i64>, StoreError> {
    if let Some(row) = tx
        .query_row(
            "SELECT row_id FROM reconcile_position_names WHERE name = ?1",
            [id.as_str()],
            |r| r.get::<_, i64>(0),
        )
        .optional()
        .map_err(sql)?
    {
        return Ok(Some(row));
    }
    match id.as_str().parse::<i64>() {
        Ok(n) if n.to_string() == id.as_str() => tx
            .query_row(
                "SELECT id FROM portfolio_positions WHERE id = ?1 AND id NOT IN (SELECT row_id FROM reconcile_position_names)",
                [n],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql),
        _ => Ok(None),
    }
}

fn existing_row(tx: &Transaction<'_>, id: &PositionId) -> Result<i64, StoreError> {
    row_of(tx, id)?.ok_or_else(|| not_found(format!("position {id}")))
}

fn target_row(tx: &Transaction<'_>, row: i64, key: &TargetKey) -> Result<i64, StoreError> {
    let found = tx
        .query_row(
            "SELECT id FROM trading_orders WHERE position_id = ?1 AND purpose = ?2",
            params![row, key.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql)?;
    if let Some(id) = found {
        return Ok(id);
    }
    // A stop or target the bot keeps only in its columns becomes an order row on first change.
    let column = match key.as_str() {
        "stop_loss" => "stop_loss",
        "take_profit" => "target",
        _ => return Err(not_found(format!("target {key} of position row {row}"))),
    };
    let (ticker, shares, price): (String, String, Option<String>) = tx
        .query_row(
            &format!("SELECT ticker, shares, {column} FROM portfolio_positions WHERE id = ?1"),
            [row],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(sql)?;
    let Some(price) = price else {
        return Err(not_found(format!("target {key} of position row {row}")));
    };
    let shares = parse_dec(&shares, || format!("portfolio_positions {row}.shares"))?;
    let (limit, stop) = if column == "target" {
        (Some(price), None)
    } else {
        (None, Some(price))
    };
    let side = if shares.is_sign_negative() {
        Side::Buy
    } else {
        Side::Sell
    };
    tx.execute(
        "INSERT INTO trading_orders (position_id, ticker, side, quantity, order_type, limit_price, stop_price, purpose, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'PENDING')",
        params![
            row,
            ticker,
            side.as_str(),
            shares.abs().to_string(),
            if column == "target" { "limit" } else { "stop" },
            limit,
            stop,
            key.as_str()
        ],
    )
    .map_err(sql)?;
    Ok(tx.last_insert_rowid())
}

/// A target's one leg as the bot's columns hold it, when it has that shape.
fn single_leg<'t>(t: &'t ProfitTarget, ticker: &str) -> Option<&'t TargetLeg> {
    match t.legs.as_slice() {
        [l] if l.symbol.as_str() == ticker && Some(l.quantity) == t.quantity => Some(l),
        _ => None,
    }
}

fn insert_target(
    tx: &Transaction<'_>,
    row: i64,
    ticker: &str,
    t: &ProfitTarget,
) -> Result<(), StoreError> {
    let leg = single_leg(t, ticker);
    let kind = match (t.limit_price, t.stop_price) {
        (Some(_), Some(_)) => "stop_limit",
        (None, Some(_)) => "stop",
        _ => "limit",
    };
    tx.execute(
        "INSERT INTO trading_orders (position_id, alpaca_order_id, client_order_id, ticker, side, quantity,
             order_type, limit_price, stop_price, purpose, status, submitted_at, error_message, error_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            row,
            t.order_id.as_ref().map(OrderId::as_str),
            t.client_order_id.as_ref().map(ClientOrderId::as_str),
            ticker,
            leg.map_or("", |l| l.side.as_str()),
            t.quantity.map(|q| q.to_string()),
            kind,
            t.limit_price.map(|p| p.to_string()),
            t.stop_price.map(|p| p.to_string()),
            t.key.as_str(),
            order_status_of(t.status),
            t.placed_at.map(time),
            t.last_error,
            t.last_attempt.map(time),
        ],
    )
    .map_err(sql)?;
    if leg.is_none() {
        tx.execute(
            "INSERT INTO reconcile_target_legs (order_row, legs) VALUES (?1, ?2)",
            params![tx.last_insert_rowid(), json(&t.legs)?],
        )
        .map_err(sql)?;
    }
    Ok(())
}

/// The bot's stop/target columns and its risk arithmetic, from the position's targets.
fn protection_columns(
    p: &Position,
) -> (
    Option<Decimal>,
    Option<Decimal>,
    Option<Decimal>,
    Option<Decimal>,
) {
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
    let shares: Decimal = p.legs.iter().map(|l| l.quantity).sum();
    let per_share = p.entry_price.zip(stop).map(|(e, s)| (e - s).abs());
    let total = per_share.and_then(|r| r.checked_mul(shares.abs()));
    (stop, target, per_share, total)
}

fn insert_position(tx: &Transaction<'_>, p: &Position) -> Result<(), StoreError> {
    if row_of(tx, &p.id)?.is_some() {
        return Ok(());
    }
    let one_leg = match p.legs.as_slice() {
        [l] if l.symbol.as_str() == p.underlying => Some(l.quantity),
        _ => None,
    };
    let (stop, target, per_share, total) = protection_columns(p);
    let numeric =
        p.id.as_str()
            .parse::<i64>()
            .ok()
            .filter(|n| n.to_string() == p.id.as_str());
    tx.execute(
        "INSERT INTO portfolio_positions (id, account, ticker, shares, entry_price, stop_loss, target,
             risk_per_share, total_risk, status, entry_date, exit_date, exit_price)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            numeric,
            p.account.as_str(),
            p.underlying,
            one_leg.unwrap_or_default().to_string(),
            p.entry_price.map(|d| d.to_string()),
            stop.map(|d| d.to_string()),
            target.map(|d| d.to_string()),
            per_share.map(|d| d.to_string()),
            total.map(|d| d.to_string()),
            status_of(p.state),
            p.opened_at.map(time),
            p.closing.as_ref().and_then(|c| c.filled_at).map(time),
            p.closing.as_ref().and_then(|c| c.price).map(|d| d.to_string()),
        ],
    )
    .map_err(sql)?;
    let row = tx.last_insert_rowid();
    if numeric.is_none() {
        tx.execute(
            "INSERT INTO reconcile_position_names (name, row_id) VALUES (?1, ?2)",
            params![p.id.as_str(), row],
        )
        .map_err(sql)?;
    }
    if one_leg.is_none() {
        tx.execute(
            "INSERT INTO reconcile_position_legs (row_id, legs) VALUES (?1, ?2)",
            params![row, json(&p.legs)?],
        )
        .map_err(sql)?;
    }
    for t in &p.targets {
        insert_target(tx, row, &p.underlying, t)?;
    }
    let long = p.legs.iter().map(|l| l.quantity).sum::<Decimal>() >= Decimal::ZERO;
    if let Some(entry) = &p.entry_order_id {
        put_fill_row(
            tx,
            row,
            &p.underlying,
            "entry",
            if long { "buy" } else { "sell" },
            entry,
            None,
            None,
        )?;
    }
    if let Some(c) = &p.closing {
        put_fill_row(
            tx,
            row,
            &p.underlying,
            "exit",
            if long { "sell" } else { "buy" },
            &c.order_id,
            c.filled_at,
            c.price,
        )?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn put_fill_row(
    tx: &Transaction<'_>,
    row: i64,
    ticker: &str,
    purpose: &str,
    side: &str,
    order: &OrderId,
    at: Option<DateTime<Utc>>,
    price: Option<Decimal>,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM trading_orders WHERE position_id = ?1 AND purpose = ?2",
        params![row, purpose],
    )
    .map_err(sql)?;
    tx.execute(
        "INSERT INTO trading_orders (position_id, alpaca_order_id, ticker, side, order_type, purpose, status, filled_at, filled_price)
         VALUES (?1, ?2, ?3, ?4, 'market', ?5, 'FILLED', ?6, ?7)",
        params![row, order.as_str(), ticker, side, purpose, at.map(time), price.map(|d| d.to_string())],
    )
    .map_err(sql)?;
    Ok(())
}

fn apply_change(tx: &Transaction<'_>, c: &LocalChange) -> Result<(), StoreError> {
    match c {
        LocalChange::InsertPosition { position } => insert_position(tx, position)?,
        LocalChange::LinkTarget {
            position_id,
            target_key,
            order_id,
            client_order_id,
            placed_at,
        } => {
            let t = target_row(tx, existing_row(tx, position_id)?, target_key)?;
            tx.execute(
                "UPDATE trading_orders SET alpaca_order_id = ?2, client_order_id = ?3, submitted_at = ?4, status = 'SUBMITTED' WHERE id = ?1",
                params![t, order_id.as_str(), client_order_id.as_ref().map(ClientOrderId::as_str), placed_at.map(time)],
            )
            .map_err(sql)?;
        }
        LocalChange::ClearTarget {
            position_id,
            target_key,
            note,
        } => {
            let t = target_row(tx, existing_row(tx, position_id)?, target_key)?;
            tx.execute(
                "UPDATE trading_orders SET alpaca_order_id = NULL, client_order_id = NULL, submitted_at = NULL,
                     status = 'PENDING', error_message = COALESCE(?2, error_message) WHERE id = ?1",
                params![t, note],
            )
            .map_err(sql)?;
        }
        LocalChange::SetTargetStatus {
            position_id,
            target_key,
            status,
        } => {
            let t = target_row(tx, existing_row(tx, position_id)?, target_key)?;
            tx.execute(
                "UPDATE trading_orders SET status = ?2 WHERE id = ?1",
                params![t, order_status_of(*status)],
            )
            .map_err(sql)?;
        }
        LocalChange::RecordTargetError {
            position_id,
            target_key,
            error,
            at,
        } => {
            let t = target_row(tx, existing_row(tx, position_id)?, target_key)?;
            tx.execute(
                "UPDATE trading_orders SET error_message = ?2, error_at = ?3 WHERE id = ?1",
                params![t, error, time(*at)],
            )
            .map_err(sql)?;
        }
        LocalChange::SetTargetPrices {
            position_id,
            target_key,
            limit_price,
            stop_price,
        } => {
            let row = existing_row(tx, position_id)?;
            let t = target_row(tx, row, target_key)?;
            tx.execute(
                "UPDATE trading_orders SET limit_price = ?2, stop_price = ?3 WHERE id = ?1",
                params![
                    t,
                    limit_price.map(|d| d.to_string()),
                    stop_price.map(|d| d.to_string())
                ],
            )
            .map_err(sql)?;
            // The bot's own columns follow its stop and its target.
            let column = match target_key.as_str() {
                "stop_loss" => Some(("stop_loss", *stop_price)),
                "take_profit" => Some(("target", *limit_price)),
                _ => None,
            };
            if let Some((column, price)) = column {
                tx.execute(
                    &format!("UPDATE portfolio_positions SET {column} = ?2 WHERE id = ?1"),
                    params![row, price.map(|d| d.to_string())],
                )
                .map_err(sql)?;
            }
        }
        LocalChange::SetPositionState { position_id, state } => {
            let row = existing_row(tx, position_id)?;
            tx.execute(
                "UPDATE portfolio_positions SET status = ?2 WHERE id = ?1",
                params![row, status_of(*state)],
            )
            .map_err(sql)?;
        }
        LocalChange::RecordClosing {
            position_id,
            closing,
        } => {
            let row = existing_row(tx, position_id)?;
            let (ticker, shares): (String, String) = tx
                .query_row(
                    "SELECT ticker, shares FROM portfolio_positions WHERE id = ?1",
                    [row],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(sql)?;
            let short = shares.trim_start().starts_with('-');
            put_fill_row(
                tx,
                row,
                &ticker,
                "exit",
                if short { "buy" } else { "sell" },
                &closing.order_id,
                closing.filled_at,
                closing.price,
            )?;
            tx.execute(
                "UPDATE portfolio_positions SET exit_date = ?2, exit_price = ?3 WHERE id = ?1",
                params![
                    row,
                    closing.filled_at.map(time),
                    closing.price.map(|d| d.to_string())
                ],
            )
            .map_err(sql)?;
        }
        LocalChange::PutIntent { intent } => {
            tx.execute(
                "INSERT OR IGNORE INTO reconcile_intents (client_order_id, position, target_key, created_at, oco_with)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    intent.client_order_id.as_str(),
                    intent.position_id.as_str(),
                    intent.target_key.as_str(),
                    time(intent.created_at),
                    intent.oco_with.as_ref().map(TargetKey::as_str)
                ],
            )
            .map_err(sql)?;
        }
        LocalChange::DropIntent { client_order_id } => {
            tx.execute(
                "DELETE FROM reconcile_intents WHERE client_order_id = ?1",
                [client_order_id.as_str()],
            )
            .map_err(sql)?;
        }
    }
    Ok(())
}

/// One `portfolio_positions` row as the domain's position.
struct Row {
    row: i64,
    name: Option<String>,
    account: String,
    ticker: String,
    shares: String,
    entry_price: Option<String>,
    stop_loss: Option<String>,
    target: Option<String>,
    status: String,
    entry_date: Option<String>,
    legs: Option<String>,
}

fn load_all(
    conn: &mut Connection,
    scope: &Scope,
    as_of: DateTime<Utc>,
) -> Result<LocalSnapshot, StoreError> {
    let tx = conn.transaction().map_err(sql)?;
    let rows: Vec<Row> = {
        let mut q = tx
            .prepare(
                "SELECT p.id, n.name, p.account, p.ticker, p.shares, p.entry_price, p.stop_loss, p.target,
                        p.status, p.entry_date, l.legs
                 FROM portfolio_positions p
                 LEFT JOIN reconcile_position_names n ON n.row_id = p.id
                 LEFT JOIN reconcile_position_legs l ON l.row_id = p.id
                 ORDER BY p.id",
            )
            .map_err(sql)?;
        q.query_map([], |r| {
            Ok(Row {
                row: r.get(0)?,
                name: r.get(1)?,
                account: r.get(2)?,
                ticker: r.get(3)?,
                shares: r.get(4)?,
                entry_price: r.get(5)?,
                stop_loss: r.get(6)?,
                target: r.get(7)?,
                status: r.get(8)?,
                entry_date: r.get(9)?,
                legs: r.get(10)?,
            })
        })
        .map_err(sql)?
        .collect::<Result<_, _>>()
        .map_err(sql)?
    };
    let mut snapshot = LocalSnapshot::new(as_of);
    let mut ids = std::collections::BTreeSet::new();
    let mut known = std::collections::BTreeSet::new();
    for r in rows {
        let at = |col: &str| format!("portfolio_positions {}.{col}", r.row);
        let state = state_of(&r.status, || at("status"))?;
        let id = PositionId::new(r.name.clone().unwrap_or_else(|| r.row.to_string()));
        known.insert(id.clone());
        if !scope.includes_position_parts(&AccountId::new(r.account.as_str()), &r.ticker, state) {
            continue;
        }
        let shares = parse_dec(&r.shares, || at("shares"))?;
        let legs = match &r.legs {
            Some(j) => from_json(j, || format!("reconcile_position_legs {}", r.row))?,
            None => vec![PositionLeg {
                symbol: Symbol::new(r.ticker.as_str()),
                quantity: shares,
            }],
        };
        let mut p = Position {
            id,
            account: AccountId::new(r.account.as_str()),
            underlying: r.ticker.clone(),
            state,
            opened_at: parse_opt_time(r.entry_date.clone(), || at("entry_date"))?,
            entry_price: parse_opt_dec(r.entry_price.clone(), || at("entry_price"))?,
            legs,
            targets: Vec::new(),
            entry_order_id: None,
            closing: None,
        };
        load_orders(&tx, &r, shares, &mut p)?;
        ids.insert(p.id.clone());
        snapshot.positions.push(p);
    }
    let mut q = tx
        .prepare("SELECT client_order_id, position, target_key, created_at, oco_with FROM reconcile_intents ORDER BY created_at, client_order_id")
        .map_err(sql)?;
    let intents = q
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })
        .map_err(sql)?;
    for i in intents {
        let (cid, position, key, created, oco) = i.map_err(sql)?;
        let position = PositionId::new(position);
        // An intent follows its position; one whose position is unknown only a whole load sees.
        let visible =
            ids.contains(&position) || (!known.contains(&position) && scope.is_everything());
        if !visible {
            continue;
        }
        snapshot.intents.push(Intent {
            created_at: parse_time(&created, || format!("reconcile_intents {cid}.created_at"))?,
            client_order_id: ClientOrderId::new(cid),
            position_id: position,
            target_key: TargetKey::new(key),
            oco_with: oco.map(TargetKey::new),
        });
    }
    Ok(snapshot)
}

/// A position's order rows: its targets, its entry order and its closing fill. The bot's stop
/// and target columns stand for unplaced targets when no order row carries them.
fn load_orders(
    tx: &Transaction<'_>,
    r: &Row,
    shares: Decimal,
    p: &mut Position,
) -> Result<(), StoreError> {
    let mut q = tx
        .prepare(
            "SELECT o.id, o.alpaca_order_id, o.client_order_id, o.ticker, o.side, o.quantity, o.limit_price,
                    o.stop_price, o.purpose, o.status, o.submitted_at, o.filled_at, o.filled_price,
                    o.error_message, o.error_at, l.legs
             FROM trading_orders o LEFT JOIN reconcile_target_legs l ON l.order_row = o.id
             WHERE o.position_id = ?1 ORDER BY o.id",
        )
        .map_err(sql)?;
    let mut rows = q.query([r.row]).map_err(sql)?;
    while let Some(o) = rows.next().map_err(sql)? {
        let id: i64 = o.get(0).map_err(sql)?;
        let at = |col: &str| format!("trading_orders {id}.{col}");
        let text = |i: usize| o.get::<_, Option<String>>(i).map_err(sql);
        let purpose: String = o.get(8).map_err(sql)?;
        match purpose.as_str() {
            "entry" => p.entry_order_id = text(1)?.map(OrderId::new),
            "exit" => {
                if let Some(order) = text(1)? {
                    p.closing = Some(Fill {
                        order_id: OrderId::new(order),
                        filled_at: parse_opt_time(text(11)?, || at("filled_at"))?,
                        price: parse_opt_dec(text(12)?, || at("filled_price"))?,
                    });
                }
            }
            key => {
                let quantity = parse_opt_dec(text(5)?, || at("quantity"))?;
                let legs = match text(15)? {
                    Some(j) => from_json(&j, || format!("reconcile_target_legs {id}"))?,
                    None => {
                        let side: String = o.get(4).map_err(sql)?;
                        vec![TargetLeg {
                            symbol: Symbol::new(text(3)?.unwrap_or_default().as_str()),
                            side: store_sqlite::codec::parse_side(&side, || at("side"))?,
                            quantity: quantity.unwrap_or_default(),
                        }]
                    }
                };
                let status: String = o.get(9).map_err(sql)?;
                p.targets.push(ProfitTarget {
                    key: TargetKey::new(key),
                    status: target_status_of(&status, || at("status"))?,
                    order_id: text(1)?.map(OrderId::new),
                    client_order_id: text(2)?.map(ClientOrderId::new),
                    placed_at: parse_opt_time(text(10)?, || at("submitted_at"))?,
                    limit_price: parse_opt_dec(text(6)?, || at("limit_price"))?,
                    stop_price: parse_opt_dec(text(7)?, || at("stop_price"))?,
                    quantity,
                    legs,
                    last_error: text(13)?,
                    last_attempt: parse_opt_time(text(14)?, || at("error_at"))?,
                });
            }
        }
    }
    // Protection the bot keeps in its own columns, not yet an order.
    let close = if shares.is_sign_negative() {
        Side::Buy
    } else {
        Side::Sell
    };
    let whole = vec![TargetLeg {
        symbol: Symbol::new(r.ticker.as_str()),
        side: close,
        quantity: shares.abs(),
    }];
    for (key, column, is_stop) in [
        ("stop_loss", &r.stop_loss, true),
        ("take_profit", &r.target, false),
    ] {
        let Some(text) = column else { continue };
        if p.targets.iter().any(|t| t.key.as_str() == key) {
            continue;
        }
        let price = parse_dec(text, || {
            format!(
                "portfolio_positions {}.{}",
                r.row,
                if is_stop { "stop_loss" } else { "target" }
            )
        })?;
        let mut t = ProfitTarget::unplaced(key);
        if is_stop {
            t.stop_price = Some(price);
        } else {
            t.limit_price = Some(price);
        }
        t.quantity = Some(shares.abs());
        t.legs.clone_from(&whole);
        p.targets.push(t);
    }
    Ok(())
}

#[async_trait]
impl Store for Seed003Store {
    fn name(&self) -> String {
        NAME.to_owned()
    }

    async fn load(&self, scope: &Scope, as_of: DateTime<Utc>) -> Result<LocalSnapshot, StoreError> {
        let scope = scope.clone();
        self.blocking(move |c| load_all(c, &scope, as_of)).await
    }

    async fn apply(&self, batch: &ChangeBatch) -> Result<(), StoreError> {
        let batch = batch.clone();
        self.blocking(move |c| {
            // Take the write lock up front: a writer that waits is better than one that fails
            // half-way (seed 003).
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(sql)?;
            for change in &batch.changes {
                apply_change(&tx, change)?;
            }
            for a in &batch.audit {
                tx.execute(
                    "INSERT INTO reconcile_audit (run_id, at, action_key, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![a.run_id.as_str(), time(a.at), a.action_key, a.outcome.as_str(), a.detail],
                )
                .map_err(sql)?;
            }
            tx.commit().map_err(sql)
        })
        .await
    }

    async fn audit_log(&self, run: Option<RunId>) -> Result<Vec<AuditRecord>, StoreError> {
        self.blocking(move |c| {
            let mut q = c
                .prepare("SELECT seq, run_id, at, action_key, outcome, detail FROM reconcile_audit WHERE ?1 IS NULL OR run_id = ?1 ORDER BY seq")
                .map_err(sql)?;
            let rows = q
                .query_map([run.as_ref().map(RunId::as_str)], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?, r.get::<_, String>(4)?, r.get::<_, String>(5)?))
                })
                .map_err(sql)?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, run_id, at, action_key, outcome, detail) = row.map_err(sql)?;
                out.push(AuditRecord {
                    run_id: RunId::new(run_id),
                    at: parse_time(&at, || format!("reconcile_audit {seq}.at"))?,
                    action_key,
                    outcome: store_sqlite::codec::parse_outcome(&outcome, || format!("reconcile_audit {seq}.outcome"))?,
                    detail,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn acquire_lock(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<LockAttempt, StoreError> {
        self.locks.acquire(account, holder)
    }

    async fn release_lock(
        &self,
        account: &AccountId,
        holder: &LockHolder,
    ) -> Result<(), StoreError> {
        self.locks.release(account, holder)
    }

    async fn unlock(&self, account: &AccountId) -> Result<Unlock, StoreError> {
        self.locks.unlock(account)
    }
}
