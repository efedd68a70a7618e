//! Where the two sides come from: `--store sqlite:PATH` and `--broker snapshot:FILE`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reconcile_core::{
    AccountId, Broker, BrokerError, BrokerPosition, BrokerSnapshot, CancelOutcome, ClientOrderId,
    Order, OrderId, PlaceOrder, ReplaceOrder, Store,
};
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
}

impl std::str::FromStr for BrokerUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tastytrade" => return Ok(Self::Tastytrade),
            "tastytrade-sim" => return Ok(Self::TastytradeSim(None)),
            _ => {}
        }
        match s.split_once(':') {
            Some(("snapshot", path)) if !path.is_empty() => Ok(Self::Snapshot(PathBuf::from(path))),
            Some(("tastytrade-sim", path)) if !path.is_empty() => {
                Ok(Self::TastytradeSim(Some(PathBuf::from(path))))
            }
            _ => Err(format!(
                "not a broker: {s:?} (try tastytrade, tastytrade-sim[:FILE] or snapshot:FILE)"
            )),
        }
    }
}

/// A broker that answers reads from a snapshot file and refuses every change.
pub struct SnapshotBroker {
    snapshot: BrokerSnapshot,
    source: String,
}

impl SnapshotBroker {
    pub fn new(snapshot: BrokerSnapshot, source: String) -> Self {
        Self { snapshot, source }
    }

    fn read_only(&self, what: &str) -> BrokerError {
        BrokerError::Unsupported {
            broker: self.source.clone(),
            what: format!("{what} (a snapshot file is read-only)"),
        }
    }
}

#[async_trait]
impl Broker for SnapshotBroker {
    fn name(&self) -> String {
        self.source.clone()
    }

    async fn accounts(&self) -> Result<Vec<AccountId>, BrokerError> {
        let mut a: Vec<AccountId> = self
            .snapshot
            .orders
            .iter()
            .map(|o| o.account.clone())
            .chain(
                self.snapshot
                    .positions
                    .iter()
                    .flatten()
                    .map(|p| p.account.clone()),
            )
            .collect();
        a.sort();
        a.dedup();
        Ok(a)
    }

    async fn working_orders(&self, account: &AccountId) -> Result<Vec<Order>, BrokerError> {
        Ok(self
            .snapshot
            .orders
            .iter()
            .filter(|o| &o.account == account && o.status.is_working())
            .cloned()
            .collect())
    }

    async fn order_history(
        &self,
        account: &AccountId,
        _since: DateTime<Utc>,
    ) -> Result<Vec<Order>, BrokerError> {
        // The file holds the history it was exported with; all of it is given.
        Ok(self
            .snapshot
            .orders
            .iter()
            .filter(|o| &o.account == account)
            .cloned()
            .collect())
    }

    async fn positions(&self, account: &AccountId) -> Result<Vec<BrokerPosition>, BrokerError> {
        match &self.snapshot.positions {
            Some(ps) => Ok(ps
                .iter()
                .filter(|p| &p.account == account)
                .cloned()
                .collect()),
            None => Err(BrokerError::Unsupported {
                broker: self.source.clone(),
                what: "holdings (the snapshot has no positions)".to_owned(),
            }),
        }
    }

    async fn order(&self, account: &AccountId, id: &OrderId) -> Result<Option<Order>, BrokerError> {
        Ok(self
            .snapshot
            .orders
            .iter()
            .find(|o| &o.account == account && &o.id == id)
            .cloned())
    }

    async fn find_by_client_order_id(
        &self,
        account: &AccountId,
        cid: &ClientOrderId,
    ) -> Result<Option<Order>, BrokerError> {
        Ok(self
            .snapshot
            .orders
            .iter()
            .find(|o| &o.account == account && o.client_order_id.as_ref() == Some(cid))
            .cloned())
    }

    async fn cancel(&self, _: &AccountId, _: &OrderId) -> Result<CancelOutcome, BrokerError> {
        Err(self.read_only("cancel"))
    }

    async fn place(&self, _: &PlaceOrder) -> Result<Order, BrokerError> {
        Err(self.read_only("place"))
    }

    async fn replace(
        &self,
        _: &AccountId,
        _: &OrderId,
        _: &ReplaceOrder,
    ) -> Result<Order, BrokerError> {
        Err(self.read_only("replace"))
    }
}
