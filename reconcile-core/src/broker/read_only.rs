//! [`ReadOnly`]: a broker that answers reads and refuses every change (a snapshot file, an
//! audit, a dry run nobody may turn into a real one).

use super::decorate_broker;
use crate::ports::{BrokerError, Call};
use std::future::Future;

/// Reads pass through; cancel, place and replace answer `Unsupported` and never reach `inner`.
pub struct ReadOnly<B> {
    inner: B,
    source: String,
}

impl<B: crate::ports::Broker> ReadOnly<B> {
    /// Wraps `inner`; `source` names it in errors (`snapshot:broker.json`).
    pub fn new(inner: B, source: impl Into<String>) -> Self {
        Self {
            inner,
            source: source.into(),
        }
    }

    async fn before(&self, _call: Call) {}

    async fn around<T, F, Fut>(&self, call: Call, op: F) -> Result<T, BrokerError>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, BrokerError>> + Send,
        T: Send,
    {
        if !matches!(
            call,
            Call::Accounts
                | Call::WorkingOrders
                | Call::OrderHistory
                | Call::Positions
                | Call::Order
                | Call::FindByClientOrderId
        ) {
            return Err(BrokerError::Unsupported {
                broker: self.source.clone(),
                what: format!("{call} (read-only)"),
            });
        }
        op().await
    }
}

decorate_broker!(ReadOnly);
