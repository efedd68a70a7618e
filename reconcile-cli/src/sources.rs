//! Where the two sides come from: the parsed `--store` and `--broker` values.

use reconcile_core::Store;
use std::path::PathBuf;
use std::sync::Arc;

/// A parsed `--store` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite:PATH`, created if absent.
    Sqlite(PathBuf),
}

impl std::str::FromStr for StoreUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("sqlite", path)) if !path.is_empty() => Ok(Self::Sqlite(PathBuf::from(path))),
            _ => Err(format!("not a store: {s:?} (try sqlite:PATH)")),
        }
    }
}

impl StoreUrl {
    pub fn open(&self) -> Result<Arc<dyn Store>, reconcile_core::StoreError> {
        match self {
            Self::Sqlite(path) => Ok(Arc::new(store_sqlite::SqliteStore::open(path)?)),
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
