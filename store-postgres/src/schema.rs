//! Migrations, shipped in the crate and applied on connect under a transaction-level advisory
//! lock (two processes starting at once migrate once). The version lives in the schema's `meta`
//! table beside an owner mark; a schema newer than this code, or one holding tables that are not
//! reconcile's, is refused before anything is written. `{s}` stands for the quoted schema.

/// Migrations in order; migration `i` brings the schema to version `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: positions, legs, targets, intents, the audit log and the lock holders' records.
    // Decimals are NUMERIC, which keeps the scale it is given ("0.60" stays "0.60").
    r"
    CREATE TABLE {s}.positions (
        id                TEXT PRIMARY KEY,
        account           TEXT NOT NULL,
        underlying        TEXT NOT NULL,
        state             TEXT NOT NULL CHECK (state IN ('pending', 'open', 'closing', 'closed')),
        opened_at         TIMESTAMPTZ,
        entry_price       NUMERIC,
        entry_order_id    TEXT,
        closing_order_id  TEXT,
        closing_filled_at TIMESTAMPTZ,
        closing_price     NUMERIC
    );
    CREATE INDEX positions_scope ON {s}.positions (account, underlying);

    CREATE TABLE {s}.position_legs (
        position_id TEXT NOT NULL REFERENCES {s}.positions (id) ON DELETE CASCADE,
        seq         INTEGER NOT NULL,
        symbol      TEXT NOT NULL,
        quantity    NUMERIC NOT NULL,
        PRIMARY KEY (position_id, seq)
    );

    CREATE TABLE {s}.targets (
        position_id     TEXT NOT NULL REFERENCES {s}.positions (id) ON DELETE CASCADE,
        key             TEXT NOT NULL,
        status          TEXT NOT NULL
                        CHECK (status IN ('unplaced', 'active', 'filled', 'cancelled', 'failed')),
        order_id        TEXT,
        client_order_id TEXT,
        placed_at       TIMESTAMPTZ,
        limit_price     NUMERIC,
        stop_price      NUMERIC,
        quantity        NUMERIC,
        last_error      TEXT,
        last_attempt    TIMESTAMPTZ,
        PRIMARY KEY (position_id, key)
    );

    CREATE TABLE {s}.target_legs (
        position_id TEXT NOT NULL,
        key         TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        symbol      TEXT NOT NULL,
        side        TEXT NOT NULL,
        quantity    NUMERIC NOT NULL,
        PRIMARY KEY (position_id, key, seq),
        FOREIGN KEY (position_id, key) REFERENCES {s}.targets (position_id, key) ON DELETE CASCADE
    );

    CREATE TABLE {s}.intents (
        client_order_id TEXT PRIMARY KEY,
        position_id     TEXT NOT NULL,
        target_key      TEXT NOT NULL,
        created_at      TIMESTAMPTZ NOT NULL,
        oco_with        TEXT
    );

    CREATE TABLE {s}.audit (
        seq        BIGSERIAL PRIMARY KEY,
        run_id     TEXT NOT NULL,
        at         TIMESTAMPTZ NOT NULL,
        action_key TEXT NOT NULL,
        outcome    TEXT NOT NULL,
        detail     TEXT NOT NULL
    );
    CREATE INDEX audit_run ON {s}.audit (run_id, seq);

    CREATE TABLE {s}.lock_holders (
        account TEXT PRIMARY KEY,
        run_id  TEXT NOT NULL,
        host    TEXT NOT NULL,
        pid     BIGINT NOT NULL,
        since   TIMESTAMPTZ NOT NULL
    );
    ",
];

/// The schema version this code writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The owner mark in `meta`: a schema without it is not reconcile's.
pub(crate) const OWNER: &str = "reconcile";
