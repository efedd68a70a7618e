//! Migrations, shipped in the crate and applied on open. The version lives in SQLite's
//! `user_version`; a database newer than the code is refused before anything is written.

/// Migrations in order; migration `i` brings the schema to version `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: positions, legs, targets, intents, runs, the audit log and run locks. Decimals are
    // canonical text (scale kept, "0.60" stays "0.60"); times are RFC 3339 in UTC.
    r"
    CREATE TABLE positions (
        id          TEXT PRIMARY KEY,
        account     TEXT NOT NULL,
        underlying  TEXT NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('pending', 'open', 'closing', 'closed')),
        opened_at   TEXT,
        entry_price TEXT
    ) STRICT;
    CREATE INDEX positions_scope ON positions (account, underlying);

    CREATE TABLE position_legs (
        position_id TEXT NOT NULL REFERENCES positions (id) ON DELETE CASCADE,
        seq         INTEGER NOT NULL,
        symbol      TEXT NOT NULL,
        quantity    TEXT NOT NULL,
        PRIMARY KEY (position_id, seq)
    ) STRICT;

    CREATE TABLE targets (
        position_id     TEXT NOT NULL REFERENCES positions (id) ON DELETE CASCADE,
        key             TEXT NOT NULL,
        status          TEXT NOT NULL
                        CHECK (status IN ('unplaced', 'active', 'filled', 'cancelled', 'failed')),
        order_id        TEXT,
        client_order_id TEXT,
        placed_at       TEXT,
        limit_price     TEXT,
        stop_price      TEXT,
        quantity        TEXT,
        last_error      TEXT,
        last_attempt    TEXT,
        PRIMARY KEY (position_id, key)
    ) STRICT;

    CREATE TABLE target_legs (
        position_id TEXT NOT NULL,
        key         TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        symbol      TEXT NOT NULL,
        side        TEXT NOT NULL,
        quantity    TEXT NOT NULL,
        PRIMARY KEY (position_id, key, seq),
        FOREIGN KEY (position_id, key) REFERENCES targets (position_id, key) ON DELETE CASCADE
    ) STRICT;

    CREATE TABLE intents (
        client_order_id TEXT PRIMARY KEY,
        position_id     TEXT NOT NULL,
        target_key      TEXT NOT NULL,
        created_at      TEXT NOT NULL
    ) STRICT;

    CREATE TABLE runs (
        id         TEXT PRIMARY KEY,
        started_at TEXT NOT NULL
    ) STRICT;

    CREATE TABLE audit (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id     TEXT NOT NULL REFERENCES runs (id),
        at         TEXT NOT NULL,
        action_key TEXT NOT NULL,
        outcome    TEXT NOT NULL,
        detail     TEXT NOT NULL
    ) STRICT;
    CREATE INDEX audit_run ON audit (run_id, seq);

    CREATE TABLE run_locks (
        account    TEXT PRIMARY KEY,
        holder     TEXT NOT NULL,
        expires_at TEXT NOT NULL
    ) STRICT;
    ",
    // 2: run locks are file locks beside the database, held by the running process (they die
    // with it); the table of leases goes.
    r"
    DROP TABLE run_locks;
    ",
    // 3: the fills that opened and closed a position, and the sibling target of an OCO intent.
    r"
    ALTER TABLE positions ADD COLUMN entry_order_id TEXT;
    ALTER TABLE positions ADD COLUMN closing_order_id TEXT;
    ALTER TABLE positions ADD COLUMN closing_filled_at TEXT;
    ALTER TABLE positions ADD COLUMN closing_price TEXT;
    ALTER TABLE intents ADD COLUMN oco_with TEXT;
    ",
];

/// The schema version this code writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
