//! Where the two sides come from: the parsed `--store` and `--broker` values.

use reconcile_core::Store;
use std::path::PathBuf;
use std::sync::Arc;

/// A parsed `--store` value.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite:PATH`, created if absent.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…` (the password, if any, is in the URL or `PGPASSWORD`).
    Postgres(String),
    /// A value that is no store, with the reason (the value redacted). Parsing never fails, so
    /// that the argument parser never repeats a URL, password and all, in its own message;
    /// [`StoreUrl::checked`] turns this into the usage error.
    Invalid(String),
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            Self::Postgres(url) => write!(f, "Postgres({})", store_postgres::redact(url)),
            Self::Invalid(why) => write!(f, "Invalid({why})"),
        }
    }
}

impl std::str::FromStr for StoreUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            // Checked whole here, so that a bad URL is a usage error before anything runs.
            return Ok(
                match store_postgres::Settings::parse(s, &store_postgres::ProcessEnv) {
                    Ok(_) => Self::Postgres(s.to_owned()),
                    Err(why) => Self::Invalid(why),
                },
            );
        }
        Ok(match s.split_once(':') {
            Some(("sqlite", path)) if !path.is_empty() => Self::Sqlite(PathBuf::from(path)),
            _ => Self::Invalid(format!(
                "not a store: {:?} (try sqlite:PATH or postgres://USER@HOST:PORT/DB)",
                store_postgres::redact(s)
            )),
        })
    }
}

impl StoreUrl {
    /// The store, or the usage error naming why it is none.
    pub fn checked(self) -> Result<Self, String> {
        match self {
            Self::Invalid(why) => Err(format!("--store: {why}")),
            ok => Ok(ok),
        }
    }

    pub async fn open(&self) -> Result<Arc<dyn Store>, reconcile_core::StoreError> {
        match self {
            Self::Sqlite(path) => Ok(Arc::new(store_sqlite::SqliteStore::open(path)?)),
            Self::Postgres(url) => Ok(Arc::new(store_postgres::PostgresStore::connect(url).await?)),
            Self::Invalid(why) => Err(reconcile_core::StoreError::Backend {
                store: "none".to_owned(),
                message: why.clone(),
            }),
        }
    }
}

/// A parsed `--broker` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerUrl {
    /// `snapshot:FILE`: a broker snapshot v1 file, read-only.
    Snapshot(PathBuf),
    /// `tastytrade`: the live API (or `--base-url`), credentials from the environment.
    Tastytrade,
    /// `tastytrade-sim[:FILE]`: the TastyTrade simulator on loopback, seeded from a broker
    /// snapshot (by default the bundled 2025-11-07 incident).
    TastytradeSim(Option<PathBuf>),
    /// `alpaca`: Alpaca's paper-trading API (or `--base-url`), keys from the environment.
    Alpaca,
    /// `alpaca-live`: Alpaca's live API (real money), keys from the environment.
    AlpacaLive,
    /// `alpaca-sim[:FILE]`: the Alpaca simulator on loopback, seeded from a broker snapshot (by
    /// default the bundled 2025-11-06 incident).
    AlpacaSim(Option<PathBuf>),
}

impl std::str::FromStr for BrokerUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tastytrade" => return Ok(Self::Tastytrade),
            "tastytrade-sim" => return Ok(Self::TastytradeSim(None)),
            "alpaca" => return Ok(Self::Alpaca),
            "alpaca-live" => return Ok(Self::AlpacaLive),
            "alpaca-sim" => return Ok(Self::AlpacaSim(None)),
            _ => {}
        }
        match s.split_once(':') {
            Some(("snapshot", path)) if !path.is_empty() => Ok(Self::Snapshot(PathBuf::from(path))),
            Some(("tastytrade-sim", path)) if !path.is_empty() => {
                Ok(Self::TastytradeSim(Some(PathBuf::from(path))))
            }
            Some(("alpaca-sim", path)) if !path.is_empty() => {
                Ok(Self::AlpacaSim(Some(PathBuf::from(path))))
            }
            _ => Err(format!(
                "not a broker: {s:?} (try tastytrade, alpaca, alpaca-live, tastytrade-sim[:FILE], alpaca-sim[:FILE] or snapshot:FILE)"
            )),
        }
    }
}
