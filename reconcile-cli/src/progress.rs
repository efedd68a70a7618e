//! Progress on stderr while a run reads and applies, when stderr is a terminal: pages read, then
//! actions done of the plan's. Nothing at all when stderr is not a terminal (a pipe, a file, a
//! service's log).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reconcile_core::{
    AccountId, Broker, BrokerError, BrokerPosition, Call, CancelOutcome, ClientOrderId, OcoOrders,
    Order, OrderId, Page, PageToken, PlaceOrder, Progress, ReplaceOrder,
};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Whether progress is shown at all.
pub fn enabled() -> bool {
    std::io::stderr().is_terminal()
}

fn show(line: &str) {
    let mut err = std::io::stderr().lock();
    // Carriage return and clear-to-end: one line, rewritten in place.
    let _ = write!(err, "\r{line}\x1b[K");
    let _ = err.flush();
}

/// Ends the progress line.
pub fn done() {
    if enabled() {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
}

/// The executor's callback: actions done of the plan's.
pub fn actions() -> Option<Progress> {
    enabled()
        .then(|| Progress::new(|done, total| show(&format!("applying: {done}/{total} actions"))))
}

/// A broker that counts the pages it reads, on the progress line.
pub struct Counting {
    inner: Arc<dyn Broker>,
    pages: AtomicUsize,
}

impl Counting {
    /// The broker, counted when progress is shown.
    pub fn wrap(inner: Arc<dyn Broker>) -> Arc<dyn Broker> {
        if enabled() {
            Arc::new(Self {
                inner,
                pages: AtomicUsize::new(0),
            })
        } else {
            inner
        }
    }

    fn page(&self) {
        let n = self.pages.fetch_add(1, Ordering::Relaxed) + 1;
        show(&format!("reading {}: {n} pages", self.inner.name()));
    }
}

#[async_trait]
impl Broker for Counting {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn supports_client_order_id(&self) -> bool {
        self.inner.supports_client_order_id()
    }
    fn supports_oco(&self) -> bool {
        self.inner.supports_oco()
    }
    async fn ready(&self, call: Call) {
        self.inner.ready(call).await;
    }
    async fn accounts(&self) -> Result<Vec<AccountId>, BrokerError> {
        self.inner.accounts().await
    }
    async fn working_orders_page(
        &self,
        account: &AccountId,
        page: Option<PageToken>,
    ) -> Result<Page<Order>, BrokerError> {
        let p = self.inner.working_orders_page(account, page).await;
        self.page();
        p
    }
    async fn order_history_page(
        &self,
        account: &AccountId,
        since: DateTime<Utc>,
        page: Option<PageToken>,
    ) -> Result<Page<Order>, BrokerError> {
        let p = self.inner.order_history_page(account, since, page).await;
        self.page();
        p
    }
    async fn positions(&self, account: &AccountId) -> Result<Vec<BrokerPosition>, BrokerError> {
        let p = self.inner.positions(account).await;
        self.page();
        p
    }
    async fn order(&self, account: &AccountId, id: &OrderId) -> Result<Option<Order>, BrokerError> {
        self.inner.order(account, id).await
    }
    async fn find_by_client_order_id_page(
        &self,
        account: &AccountId,
        client_order_id: &ClientOrderId,
        page: Option<PageToken>,
    ) -> Result<Page<Order>, BrokerError> {
        self.inner
            .find_by_client_order_id_page(account, client_order_id, page)
            .await
    }
    async fn cancel(
        &self,
        account: &AccountId,
        id: &OrderId,
    ) -> Result<CancelOutcome, BrokerError> {
        self.inner.cancel(account, id).await
    }
    async fn place(&self, order: &PlaceOrder) -> Result<Order, BrokerError> {
        self.inner.place(order).await
    }
    async fn replace(
        &self,
        original: &Order,
        changes: &ReplaceOrder,
    ) -> Result<Order, BrokerError> {
        self.inner.replace(original, changes).await
    }
    async fn place_oco(
        &self,
        take_profit: &PlaceOrder,
        stop_loss: &PlaceOrder,
    ) -> Result<OcoOrders, BrokerError> {
        self.inner.place_oco(take_profit, stop_loss).await
    }
}
