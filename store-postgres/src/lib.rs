//! `store-postgres`: a [`Store`] for reconcile on PostgreSQL, for desks that run many
//! reconcilers against one database (seed 000's desk keeps its records in PostgreSQL).
//!
//! Decimals are NUMERIC, written and read as their text (never through a float; the scale is
//! kept), times TIMESTAMPTZ. The tables live in a schema of their own (`reconcile` unless the
//! URL's `schema=` names another), created and migrated on connect under an advisory lock; a
//! schema of a newer version, or one holding tables that are not reconcile's, is refused
//! untouched. A batch is one transaction with its audit records.
//!
//! The run lock of an account is a session-level advisory lock, held by a session of its own
//! for as long as the run holds it: a reconciler that dies (killed, crashed, its connection cut)
//! frees its accounts the moment the server notices the session gone. The holder's record (run,
//! host, pid, since) sits in `lock_holders` so a refused run can say who holds the account.
//!
//! ```no_run
//! # async fn demo() -> Result<(), reconcile_core::StoreError> {
//! use reconcile_core::{Scope, Store};
//! let store = store_postgres::PostgresStore::connect("postgres://postgres@127.0.0.1:5432/trading").await?;
//! let now = "2025-11-07T15:00:00Z".parse().unwrap();
//! let snapshot = store.load(&Scope::all(), now).await?;
//! # Ok(()) }
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod connect;
mod locks;
mod schema;
mod settings;

pub use connect::session;
pub use locks::Locks;
pub use schema::SCHEMA_VERSION;
pub use settings::{DEFAULT_SCHEMA, Env, ProcessEnv, Settings, Tls, redact};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connect::{backend, describe};
use futures_util::future::try_join_all;
use reconcile_core::decimal::parse_decimal;
use reconcile_core::{
    AccountId, AuditRecord, ChangeBatch, Fill, Intent, LocalChange, LocalSnapshot, LockAttempt,
    LockHolder, Position, PositionLeg, ProfitTarget, RunId, Scope, Store, StoreError, Symbol,
    TargetLeg, Unlock,
};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Transaction};

const NAME: &str = "postgres";

/// The PostgreSQL store. Cheap to clone: clones share the session and the locks.
#[derive(Clone)]
pub struct PostgresStore {
    settings: Arc<Settings>,
    client: Arc<Mutex<Client>>,
    locks: Arc<locks::Locks>,
    /// `"schema"`, quoted, for the statements.
    s: Arc<str>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn corrupt(location: String, message: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        store: NAME.to_owned(),
        location,
        message: message.into(),
    }
}

fn missing(what: String) -> StoreError {
    StoreError::NotFound {
        store: NAME.to_owned(),
        what,
    }
}

fn dec_text(d: Option<rust_decimal::Decimal>) -> Option<String> {
    d.map(|d| d.to_string())
}

fn parse_dec(
    text: Option<String>,
    at: impl Fn() -> String,
) -> Result<Option<rust_decimal::Decimal>, StoreError> {
    text.map(|t| parse_decimal(&t).map_err(|m| corrupt(at(), m)))
        .transpose()
}

fn spelled<T>(text: &str, at: impl Fn() -> String) -> Result<T, StoreError>
where
    T: std::str::FromStr<Err = reconcile_core::spelling::UnknownSpelling>,
{
    text.parse()
        .map_err(|e: reconcile_core::spelling::UnknownSpelling| corrupt(at(), e.to_string()))
}

impl PostgresStore {
    /// Connects to the database `url` names (completed from the `PG*` environment variables),
    /// and creates or migrates reconcile's schema in it.
    ///
    /// # Errors
    /// [`StoreError::Backend`] naming the database (never the password): a bad URL, a server
    /// that cannot be reached or refuses the login, a schema that is newer or not reconcile's.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let settings =
            Settings::parse(url, &ProcessEnv).map_err(|message| StoreError::Backend {
                store: NAME.to_owned(),
                message,
            })?;
        Self::connect_with(settings).await
    }

    /// Connects with parsed settings.
    ///
    /// # Errors
    /// As [`PostgresStore::connect`].
    pub async fn connect_with(settings: Settings) -> Result<Self, StoreError> {
        let settings = Arc::new(settings);
        let mut client = session(&settings).await?;
        let s: Arc<str> = format!("\"{}\"", settings.schema()).into();
        migrate(&mut client, &settings, &s).await?;
        Ok(Self {
            locks: Arc::new(locks::Locks::new(settings.clone(), s.clone())),
            settings,
            client: Arc::new(Mutex::new(client)),
            s,
        })
    }

    /// The database and schema, for messages.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether the store's session runs over TLS (as the server sees it).
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the server cannot be asked.
    pub async fn encrypted(&self) -> Result<bool, StoreError> {
        let client = self.client.lock().await;
        let row = client
            .query_one("SELECT COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)", &[])
            .await
            .map_err(self.fail("asking about TLS"))?;
        Ok(row.get(0))
    }

    fn fail<'a>(
        &'a self,
        what: &'a str,
    ) -> impl Fn(tokio_postgres::Error) -> StoreError + Send + Sync + 'a {
        move |e| backend(&self.settings, what, &describe(&e))
    }
}

async fn migrate(client: &mut Client, settings: &Settings, s: &str) -> Result<(), StoreError> {
    let fail =
        |what: &'static str| move |e: tokio_postgres::Error| backend(settings, what, &describe(&e));
    let schema = settings.schema();
    let tx = client
        .transaction()
        .await
        .map_err(fail("starting the migration"))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('reconcile-migrate:' || $1, 0))",
        &[&schema],
    )
    .await
    .map_err(fail("taking the migration lock"))?;
    let tables: Vec<String> = tx
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .await
        .map_err(fail("reading the schema"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let version = if tables.iter().any(|t| t == "meta") {
        let rows = tx
            .query(&format!("SELECT key, value FROM {s}.meta"), &[])
            .await
            .map_err(fail("reading the schema version"))?;
        let get = |k: &str| {
            rows.iter()
                .find(|r| r.get::<_, String>(0) == k)
                .map(|r| r.get::<_, String>(1))
        };
        if get("owner").as_deref() != Some(schema::OWNER) {
            return Err(backend(
                settings,
                "refused",
                &format!(
                    "schema {schema} holds a meta table that is not reconcile's; nothing was written"
                ),
            ));
        }
        get("schema_version")
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| corrupt(format!("{s}.meta"), "no schema_version"))?
    } else if tables.is_empty() {
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE {s}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO {s}.meta VALUES ('owner', '{}'), ('schema_version', '0');",
            schema::OWNER
        ))
        .await
        .map_err(fail("creating the schema"))?;
        0
    } else {
        return Err(backend(
            settings,
            "refused",
            &format!(
                "schema {schema} holds tables that are not reconcile's ({}); nothing was written (name another with ?schema=)",
                tables.join(", ")
            ),
        ));
    };
    if version > SCHEMA_VERSION {
        return Err(backend(
            settings,
            "refused",
            &format!(
                "schema {schema} is at version {version}, newer than this build's {SCHEMA_VERSION}; nothing was written"
            ),
        ));
    }
    for (i, sql) in schema::MIGRATIONS.iter().enumerate() {
        let to = i as i64 + 1;
        if to > version {
            tx.batch_execute(&sql.replace("{s}", s))
                .await
                .map_err(fail("migrating the schema"))?;
            tx.execute(
                &format!("UPDATE {s}.meta SET value = $1 WHERE key = 'schema_version'"),
                &[&to.to_string()],
            )
            .await
            .map_err(fail("migrating the schema"))?;
        }
    }
    tx.commit().await.map_err(fail("committing the migration"))
}

/// The scope as three text arrays (empty: any), for `= ANY` tests.
fn scope_params(scope: &Scope) -> (Vec<String>, Vec<String>, Vec<String>) {
    (
        scope
            .accounts
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect(),
        scope.underlyings.iter().cloned().collect(),
        scope.states.iter().map(|s| s.as_str().to_owned()).collect(),
    )
}

const SCOPE: &str = "(cardinality($1::text[]) = 0 OR p.account = ANY($1))
     AND (cardinality($2::text[]) = 0 OR p.underlying = ANY($2))
     AND (cardinality($3::text[]) = 0 OR p.state = ANY($3))";

impl PostgresStore {
    async fn load_in(
        &self,
        scope: &Scope,
        as_of: DateTime<Utc>,
    ) -> Result<LocalSnapshot, StoreError> {
        let mut client = self.client.lock().await;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(self.fail("starting a read"))?;
        match self.read(&tx, scope, as_of).await {
            Ok(snapshot) => {
                tx.commit().await.map_err(self.fail("ending a read"))?;
                Ok(snapshot)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    /// The five queries of a load, in one repeatable-read transaction.
    async fn read(
        &self,
        tx: &Transaction<'_>,
        scope: &Scope,
        as_of: DateTime<Utc>,
    ) -> Result<LocalSnapshot, StoreError> {
        let s = &self.s;
        let (a, u, st) = scope_params(scope);
        let params: [&(dyn ToSql + Sync); 3] = [&a, &u, &st];
        let positions = tx
            .query(
                &format!(
                    "SELECT p.id, p.account, p.underlying, p.state, p.opened_at, p.entry_price::text,
                            p.entry_order_id, p.closing_order_id, p.closing_filled_at, p.closing_price::text
                     FROM {s}.positions p WHERE {SCOPE} ORDER BY p.id"
                ),
                &params,
            )
            .await
            .map_err(self.fail("reading positions"))?;
        let mut snapshot = LocalSnapshot::new(as_of);
        let mut index: HashMap<String, usize> = HashMap::new();
        for r in &positions {
            let id: String = r.get(0);
            let at = |col: &str| format!("{s}.positions[id={id}].{col}");
            index.insert(id.clone(), snapshot.positions.len());
            snapshot.positions.push(Position {
                id: id.as_str().into(),
                account: AccountId::new(r.get::<_, String>(1)),
                underlying: r.get(2),
                state: spelled(r.get::<_, &str>(3), || at("state"))?,
                opened_at: r.get(4),
                entry_price: parse_dec(r.get(5), || at("entry_price"))?,
                legs: Vec::new(),
                targets: Vec::new(),
                entry_order_id: r.get::<_, Option<String>>(6).map(Into::into),
                closing: match r.get::<_, Option<String>>(7) {
                    None => None,
                    Some(order) => Some(Fill {
                        order_id: order.into(),
                        filled_at: r.get(8),
                        price: parse_dec(r.get(9), || at("closing_price"))?,
                    }),
                },
            });
        }
        let legs = tx
            .query(
                &format!(
                    "SELECT l.position_id, l.symbol, l.quantity::text FROM {s}.position_legs l
                     JOIN {s}.positions p ON p.id = l.position_id WHERE {SCOPE}
                     ORDER BY l.position_id, l.seq"
                ),
                &params,
            )
            .await
            .map_err(self.fail("reading legs"))?;
        for r in &legs {
            let pid: String = r.get(0);
            let q: String = r.get(2);
            let quantity = parse_decimal(&q).map_err(|m| {
                corrupt(format!("{s}.position_legs[position_id={pid}].quantity"), m)
            })?;
            if let Some(&i) = index.get(&pid) {
                snapshot.positions[i].legs.push(PositionLeg {
                    symbol: Symbol::new(r.get::<_, &str>(1)),
                    quantity,
                });
            }
        }
        let targets = tx
            .query(
                &format!(
                    "SELECT t.position_id, t.key, t.status, t.order_id, t.client_order_id, t.placed_at,
                            t.limit_price::text, t.stop_price::text, t.quantity::text, t.last_error, t.last_attempt
                     FROM {s}.targets t JOIN {s}.positions p ON p.id = t.position_id WHERE {SCOPE}
                     ORDER BY t.position_id, t.key"
                ),
                &params,
            )
            .await
            .map_err(self.fail("reading targets"))?;
        let mut tindex: HashMap<(String, String), (usize, usize)> = HashMap::new();
        for r in &targets {
            let pid: String = r.get(0);
            let key: String = r.get(1);
            let at = |col: &str| format!("{s}.targets[position_id={pid}, key={key}].{col}");
            let t = ProfitTarget {
                key: key.as_str().into(),
                status: spelled(r.get::<_, &str>(2), || at("status"))?,
                order_id: r.get::<_, Option<String>>(3).map(Into::into),
                client_order_id: r.get::<_, Option<String>>(4).map(Into::into),
                placed_at: r.get(5),
                limit_price: parse_dec(r.get(6), || at("limit_price"))?,
                stop_price: parse_dec(r.get(7), || at("stop_price"))?,
                quantity: parse_dec(r.get(8), || at("quantity"))?,
                legs: Vec::new(),
                last_error: r.get(9),
                last_attempt: r.get(10),
            };
            if let Some(&i) = index.get(&pid) {
                tindex.insert(
                    (pid.clone(), key.clone()),
                    (i, snapshot.positions[i].targets.len()),
                );
                snapshot.positions[i].targets.push(t);
            }
        }
        let tlegs = tx
            .query(
                &format!(
                    "SELECT l.position_id, l.key, l.symbol, l.side, l.quantity::text FROM {s}.target_legs l
                     JOIN {s}.positions p ON p.id = l.position_id WHERE {SCOPE}
                     ORDER BY l.position_id, l.key, l.seq"
                ),
                &params,
            )
            .await
            .map_err(self.fail("reading target legs"))?;
        for r in &tlegs {
            let pid: String = r.get(0);
            let key: String = r.get(1);
            let at = |col: &str| format!("{s}.target_legs[position_id={pid}, key={key}].{col}");
            let q: String = r.get(4);
            let leg = TargetLeg {
                symbol: Symbol::new(r.get::<_, &str>(2)),
                side: spelled(r.get::<_, &str>(3), || at("side"))?,
                quantity: parse_decimal(&q).map_err(|m| corrupt(at("quantity"), m))?,
            };
            if let Some(&(i, j)) = tindex.get(&(pid, key)) {
                snapshot.positions[i].targets[j].legs.push(leg);
            }
        }
        // Intents follow their position; one whose position is unknown only a whole load sees.
        let intents = tx
            .query(
                &format!(
                    "SELECT i.client_order_id, i.position_id, i.target_key, i.created_at, i.oco_with
                     FROM {s}.intents i LEFT JOIN {s}.positions p ON p.id = i.position_id
                     WHERE (p.id IS NULL AND $4) OR (p.id IS NOT NULL AND {SCOPE})
                     ORDER BY i.created_at, i.client_order_id"
                ),
                &[&a, &u, &st, &scope.is_everything()],
            )
            .await
            .map_err(self.fail("reading intents"))?;
        for r in &intents {
            snapshot.intents.push(Intent {
                client_order_id: r.get::<_, String>(0).into(),
                position_id: r.get::<_, String>(1).into(),
                target_key: r.get::<_, String>(2).into(),
                created_at: r.get(3),
                oco_with: r.get::<_, Option<String>>(4).map(Into::into),
            });
        }
        Ok(snapshot)
    }
}

/// One statement of a batch: its SQL, its parameters, and what a count of zero means.
struct Step {
    sql: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
    missing: Option<String>,
    /// For a bulk update: the targets (`position/key`) it must find, which its `RETURNING`
    /// names.
    finds: Option<Vec<String>>,
}

impl Step {
    fn new(sql: String, missing: Option<String>) -> Self {
        Self {
            sql,
            params: Vec::new(),
            missing,
            finds: None,
        }
    }

    fn p(mut self, v: impl ToSql + Sync + Send + 'static) -> Self {
        self.params.push(Box::new(v));
        self
    }
}

/// The statements of one run of consecutive insertions: every new position, leg, target and
/// target leg in one statement per table (`unnest` over arrays). Positions that exist already
/// (or repeat within the run) are left as they are, with all of their rows.
fn insert_positions(
    s: &str,
    ps: &[&Position],
    existing: &std::collections::HashSet<String>,
) -> Vec<Step> {
    let mut seen = std::collections::HashSet::new();
    let new: Vec<&Position> = ps
        .iter()
        .copied()
        .filter(|p| !existing.contains(p.id.as_str()) && seen.insert(p.id.as_str()))
        .collect();
    if new.is_empty() {
        return Vec::new();
    }
    let col = |f: &dyn Fn(&Position) -> Option<String>| {
        new.iter().map(|p| f(p)).collect::<Vec<Option<String>>>()
    };
    let times = |f: &dyn Fn(&Position) -> Option<DateTime<Utc>>| {
        new.iter().map(|p| f(p)).collect::<Vec<_>>()
    };
    let mut steps = vec![Step::new(
        format!(
            "INSERT INTO {s}.positions (id, account, underlying, state, opened_at, entry_price, entry_order_id,
                 closing_order_id, closing_filled_at, closing_price)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                 $6::text[]::numeric[], $7::text[], $8::text[], $9::timestamptz[], $10::text[]::numeric[])
             ON CONFLICT (id) DO NOTHING"
        ),
        None,
    )
    .p(col(&|p| Some(p.id.to_string())))
    .p(col(&|p| Some(p.account.to_string())))
    .p(col(&|p| Some(p.underlying.clone())))
    .p(col(&|p| Some(p.state.as_str().to_owned())))
    .p(times(&|p| p.opened_at))
    .p(col(&|p| dec_text(p.entry_price)))
    .p(col(&|p| p.entry_order_id.as_ref().map(ToString::to_string)))
    .p(col(&|p| p.closing.as_ref().map(|c| c.order_id.to_string())))
    .p(times(&|p| p.closing.as_ref().and_then(|c| c.filled_at)))
    .p(col(&|p| p.closing.as_ref().and_then(|c| dec_text(c.price))))];

    let (mut lp, mut ls, mut lsym, mut lq) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for p in &new {
        for (i, l) in p.legs.iter().enumerate() {
            lp.push(p.id.to_string());
            ls.push(i as i32);
            lsym.push(l.symbol.to_string());
            lq.push(l.quantity.to_string());
        }
    }
    if !lp.is_empty() {
        steps.push(
            Step::new(
                format!(
                    "INSERT INTO {s}.position_legs (position_id, seq, symbol, quantity)
                     SELECT * FROM unnest($1::text[], $2::int4[], $3::text[], $4::text[]::numeric[])"
                ),
                None,
            )
            .p(lp)
            .p(ls)
            .p(lsym)
            .p(lq),
        );
    }
    let mut t: [Vec<Option<String>>; 10] = Default::default();
    let (mut placed, mut attempt) = (Vec::new(), Vec::new());
    let (mut gp, mut gk, mut gs, mut gsym, mut gside, mut gq) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for p in &new {
        for x in &p.targets {
            let row = [
                Some(p.id.to_string()),
                Some(x.key.to_string()),
                Some(x.status.as_str().to_owned()),
                x.order_id.as_ref().map(ToString::to_string),
                x.client_order_id.as_ref().map(ToString::to_string),
                dec_text(x.limit_price),
                dec_text(x.stop_price),
                dec_text(x.quantity),
                x.last_error.clone(),
                None,
            ];
            for (c, v) in t.iter_mut().zip(row) {
                c.push(v);
            }
            placed.push(x.placed_at);
            attempt.push(x.last_attempt);
            for (i, l) in x.legs.iter().enumerate() {
                gp.push(p.id.to_string());
                gk.push(x.key.to_string());
                gs.push(i as i32);
                gsym.push(l.symbol.to_string());
                gside.push(l.side.as_str().to_owned());
                gq.push(l.quantity.to_string());
            }
        }
    }
    if !t[0].is_empty() {
        let [tp, tk, tst, tord, tcid, tlim, tstop, tqty, terr, _] = t;
        steps.push(
            Step::new(
                format!(
                    "INSERT INTO {s}.targets (position_id, key, status, order_id, client_order_id, placed_at,
                         limit_price, stop_price, quantity, last_error, last_attempt)
                     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                         $7::text[]::numeric[], $8::text[]::numeric[], $9::text[]::numeric[], $10::text[], $11::timestamptz[])"
                ),
                None,
            )
            .p(tp)
            .p(tk)
            .p(tst)
            .p(tord)
            .p(tcid)
            .p(placed)
            .p(tlim)
            .p(tstop)
            .p(tqty)
            .p(terr)
            .p(attempt),
        );
    }
    if !gp.is_empty() {
        steps.push(
            Step::new(
                format!(
                    "INSERT INTO {s}.target_legs (position_id, key, seq, symbol, side, quantity)
                     SELECT * FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::text[], $6::text[]::numeric[])"
                ),
                None,
            )
            .p(gp)
            .p(gk)
            .p(gs)
            .p(gsym)
            .p(gside)
            .p(gq),
        );
    }
    steps
}

/// One statement for a run of links to distinct targets: `UPDATE … FROM unnest(…)`, returning
/// the targets it found.
fn link_targets(s: &str, links: &[&LocalChange]) -> Step {
    let (mut pid, mut key, mut oid, mut cid, mut at) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for c in links {
        if let LocalChange::LinkTarget {
            position_id,
            target_key,
            order_id,
            client_order_id,
            placed_at,
        } = c
        {
            pid.push(position_id.to_string());
            key.push(target_key.to_string());
            oid.push(order_id.to_string());
            cid.push(client_order_id.as_ref().map(ToString::to_string));
            at.push(*placed_at);
        }
    }
    let finds = pid
        .iter()
        .zip(&key)
        .map(|(p, k)| format!("{p}/{k}"))
        .collect();
    let mut step = Step::new(
        format!(
            "UPDATE {s}.targets t SET status = 'active', order_id = u.oid,
                client_order_id = COALESCE(u.cid, t.client_order_id),
                placed_at = COALESCE(u.at, t.placed_at), last_attempt = COALESCE(u.at, t.last_attempt),
                last_error = NULL
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS u(pid, key, oid, cid, at)
             WHERE t.position_id = u.pid AND t.key = u.key
             RETURNING t.position_id || '/' || t.key"
        ),
        None,
    )
    .p(pid)
    .p(key)
    .p(oid)
    .p(cid)
    .p(at);
    step.finds = Some(finds);
    step
}

/// The statement of one change other than an insertion.
fn change_step(s: &str, c: &LocalChange) -> Option<Step> {
    let target = |p: &reconcile_core::PositionId, k: &reconcile_core::TargetKey| {
        Some(format!("target {p}/{k}"))
    };
    Some(match c {
        LocalChange::InsertPosition { .. } => return None,
        LocalChange::LinkTarget {
            position_id,
            target_key,
            order_id,
            client_order_id,
            placed_at,
        } => Step::new(
            format!(
                "UPDATE {s}.targets SET status = 'active', order_id = $3,
                    client_order_id = COALESCE($4, client_order_id),
                    placed_at = COALESCE($5, placed_at), last_attempt = COALESCE($5, last_attempt),
                    last_error = NULL
                 WHERE position_id = $1 AND key = $2"
            ),
            target(position_id, target_key),
        )
        .p(position_id.to_string())
        .p(target_key.to_string())
        .p(order_id.to_string())
        .p(client_order_id.as_ref().map(ToString::to_string))
        .p(*placed_at),
        LocalChange::ClearTarget {
            position_id,
            target_key,
            note,
        } => Step::new(
            format!(
                "UPDATE {s}.targets SET status = 'unplaced', order_id = NULL, client_order_id = NULL,
                    placed_at = NULL, last_error = $3
                 WHERE position_id = $1 AND key = $2"
            ),
            target(position_id, target_key),
        )
        .p(position_id.to_string())
        .p(target_key.to_string())
        .p(note.clone()),
        LocalChange::SetTargetStatus {
            position_id,
            target_key,
            status,
        } => Step::new(
            format!("UPDATE {s}.targets SET status = $3 WHERE position_id = $1 AND key = $2"),
            target(position_id, target_key),
        )
        .p(position_id.to_string())
        .p(target_key.to_string())
        .p(status.as_str().to_owned()),
        LocalChange::RecordTargetError {
            position_id,
            target_key,
            error,
            at,
        } => Step::new(
            format!("UPDATE {s}.targets SET last_error = $3, last_attempt = $4 WHERE position_id = $1 AND key = $2"),
            target(position_id, target_key),
        )
        .p(position_id.to_string())
        .p(target_key.to_string())
        .p(error.clone())
        .p(*at),
        LocalChange::SetTargetPrices {
            position_id,
            target_key,
            limit_price,
            stop_price,
        } => Step::new(
            format!(
                "UPDATE {s}.targets SET limit_price = $3::text::numeric, stop_price = $4::text::numeric
                 WHERE position_id = $1 AND key = $2"
            ),
            target(position_id, target_key),
        )
        .p(position_id.to_string())
        .p(target_key.to_string())
        .p(dec_text(*limit_price))
        .p(dec_text(*stop_price)),
        LocalChange::SetPositionState { position_id, state } => Step::new(
            format!("UPDATE {s}.positions SET state = $2 WHERE id = $1"),
            Some(format!("position {position_id}")),
        )
        .p(position_id.to_string())
        .p(state.as_str().to_owned()),
        LocalChange::RecordClosing {
            position_id,
            closing,
        } => Step::new(
            format!(
                "UPDATE {s}.positions SET closing_order_id = $2, closing_filled_at = $3, closing_price = $4::text::numeric
                 WHERE id = $1"
            ),
            Some(format!("position {position_id}")),
        )
        .p(position_id.to_string())
        .p(closing.order_id.to_string())
        .p(closing.filled_at)
        .p(dec_text(closing.price)),
        LocalChange::PutIntent { intent: i } => Step::new(
            format!(
                "INSERT INTO {s}.intents (client_order_id, position_id, target_key, created_at, oco_with)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (client_order_id) DO NOTHING"
            ),
            None,
        )
        .p(i.client_order_id.to_string())
        .p(i.position_id.to_string())
        .p(i.target_key.to_string())
        .p(i.created_at)
        .p(i.oco_with.as_ref().map(ToString::to_string)),
        LocalChange::DropIntent { client_order_id } => Step::new(
            format!("DELETE FROM {s}.intents WHERE client_order_id = $1"),
            None,
        )
        .p(client_order_id.to_string()),
    })
}

/// Runs `steps` pipelined, in order, and fails with `NotFound` on the first that changed
/// nothing when it had to change something.
async fn run_steps(
    tx: &Transaction<'_>,
    steps: &[Step],
    fail: &(dyn Fn(tokio_postgres::Error) -> StoreError + Send + Sync),
) -> Result<(), StoreError> {
    let counts = try_join_all(steps.iter().map(|st| {
        let params: Vec<&(dyn ToSql + Sync)> = st
            .params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        async move {
            if st.finds.is_some() {
                let rows = tx.query(st.sql.as_str(), &params).await?;
                Ok((0, rows.iter().map(|r| r.get::<_, String>(0)).collect()))
            } else {
                Ok::<_, tokio_postgres::Error>((
                    tx.execute(st.sql.as_str(), &params).await?,
                    Vec::new(),
                ))
            }
        }
    }))
    .await
    .map_err(fail)?;
    for (st, (n, found)) in steps.iter().zip(counts) {
        if let Some(wanted) = &st.finds {
            let found: std::collections::HashSet<String> = found.into_iter().collect();
            if let Some(w) = wanted.iter().find(|w| !found.contains(*w)) {
                return Err(missing(format!("target {w}")));
            }
        } else if n == 0
            && let Some(what) = &st.missing
        {
            return Err(missing(what.clone()));
        }
    }
    Ok(())
}

impl PostgresStore {
    async fn apply_in(&self, batch: &ChangeBatch) -> Result<(), StoreError> {
        let s = &*self.s;
        let mut client = self.client.lock().await;
        let fail = self.fail("applying a batch");
        let tx = client.transaction().await.map_err(&fail)?;
        // Insertions first look up which of their positions exist, all at once.
        let ids: Vec<String> = batch
            .changes
            .iter()
            .filter_map(|c| match c {
                LocalChange::InsertPosition { position } => Some(position.id.to_string()),
                _ => None,
            })
            .collect();
        let mut existing: std::collections::HashSet<String> = std::collections::HashSet::new();
        if !ids.is_empty() {
            for r in tx
                .query(
                    &format!("SELECT id FROM {s}.positions WHERE id = ANY($1)"),
                    &[&ids],
                )
                .await
                .map_err(&fail)?
            {
                existing.insert(r.get(0));
            }
        }
        // In order: runs of consecutive insertions in bulk, runs of links to distinct targets
        // in bulk, every other change one statement.
        let mut steps = Vec::new();
        let mut run: Vec<&Position> = Vec::new();
        let mut links: Vec<&LocalChange> = Vec::new();
        let mut linked: std::collections::HashSet<(String, String)> =
            std::collections::HashSet::new();
        for c in &batch.changes {
            let link_key = match c {
                LocalChange::LinkTarget {
                    position_id,
                    target_key,
                    ..
                } => Some((position_id.to_string(), target_key.to_string())),
                _ => None,
            };
            // A run ends where another kind of change starts, or where a link repeats a target
            // (the later one must win, as it would one statement at a time).
            if !links.is_empty() && link_key.as_ref().is_none_or(|k| linked.contains(k)) {
                steps.push(link_targets(s, &links));
                links.clear();
                linked.clear();
            }
            if !run.is_empty() && !matches!(c, LocalChange::InsertPosition { .. }) {
                steps.extend(insert_positions(s, &run, &existing));
                existing.extend(run.drain(..).map(|p| p.id.to_string()));
            }
            match (c, link_key) {
                (LocalChange::InsertPosition { position }, _) => run.push(position),
                (_, Some(k)) => {
                    linked.insert(k);
                    links.push(c);
                }
                _ => steps.extend(change_step(s, c)),
            }
        }
        if !run.is_empty() {
            steps.extend(insert_positions(s, &run, &existing));
        }
        if !links.is_empty() {
            steps.push(link_targets(s, &links));
        }
        if !batch.audit.is_empty() {
            let a = &batch.audit;
            steps.push(
                Step::new(
                    format!(
                        "INSERT INTO {s}.audit (run_id, at, action_key, outcome, detail)
                         SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[])"
                    ),
                    None,
                )
                .p(a.iter().map(|r| r.run_id.to_string()).collect::<Vec<_>>())
                .p(a.iter().map(|r| r.at).collect::<Vec<_>>())
                .p(a.iter().map(|r| r.action_key.clone()).collect::<Vec<_>>())
                .p(a.iter().map(|r| r.outcome.as_str().to_owned()).collect::<Vec<_>>())
                .p(a.iter().map(|r| r.detail.clone()).collect::<Vec<_>>()),
            );
        }
        match run_steps(&tx, &steps, &fail).await {
            Ok(()) => tx.commit().await.map_err(&fail),
            Err(e) => {
                // Rolled back now, not whenever the connection next runs: until then the
                // transaction would hold its row locks.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn name(&self) -> String {
        NAME.to_owned()
    }

    async fn load(&self, scope: &Scope, as_of: DateTime<Utc>) -> Result<LocalSnapshot, StoreError> {
        self.load_in(scope, as_of).await
    }

    async fn apply(&self, batch: &ChangeBatch) -> Result<(), StoreError> {
        self.apply_in(batch).await
    }

    async fn audit_log(&self, run: Option<RunId>) -> Result<Vec<AuditRecord>, StoreError> {
        let s = &self.s;
        let client = self.client.lock().await;
        let run = run.map(|r| r.to_string());
        let rows = client
            .query(
                &format!("SELECT seq, run_id, at, action_key, outcome, detail FROM {s}.audit WHERE $1::text IS NULL OR run_id = $1 ORDER BY seq"),
                &[&run],
            )
            .await
            .map_err(self.fail("reading the audit log"))?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.get(0);
                Ok(AuditRecord {
                    run_id: RunId::new(r.get::<_, String>(1)),
                    at: r.get(2),
                    action_key: r.get(3),
                    outcome: spelled(r.get::<_, &str>(4), || {
                        format!("{s}.audit[seq={seq}].outcome")
                    })?,
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
