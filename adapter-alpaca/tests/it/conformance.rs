//! The broker conformance suite against the Alpaca client and its simulator, over real HTTP on
//! loopback, with the client decorated as production code decorates it.

use super::*;
use adapter_alpaca::sim::{Fault, FaultRule};
use async_trait::async_trait;
use reconcile_core::broker::{Paced, Retrying};
use reconcile_core::testkit::broker_conformance::BrokerHarness;
use reconcile_core::{Broker, Call, ClientOrderId, OrderId};
use std::num::NonZeroU32;
use std::time::Duration;

struct Alpaca {
    sim: Sim,
    broker: Retrying<Paced<AlpacaBroker>>,
}

async fn alpaca() -> Alpaca {
    let sim = Sim::start(at(NOW), KEY_ID, SECRET_KEY).await.unwrap();
    let broker = Retrying::new(Paced::per_second(
        client(&sim),
        NonZeroU32::new(1000).unwrap(),
    ))
    .with_delays(Duration::from_millis(1), Duration::from_millis(5));
    Alpaca { sim, broker }
}

/// The request a call sends, as a fault rule's method and path fragment.
fn request(call: Call) -> (&'static str, &'static str) {
    match call {
        Call::Accounts => ("GET", "/v2/account"),
        Call::WorkingOrders | Call::OrderHistory => ("GET", "/v2/orders"),
        Call::FindByClientOrderId => ("GET", "/v2/orders:by_client_order_id"),
        Call::Positions => ("GET", "/v2/positions"),
        Call::Order => ("GET", "/v2/orders/"),
        Call::Cancel => ("DELETE", "/v2/orders/"),
        Call::Place | Call::PlaceOco => ("POST", "/v2/orders"),
        Call::Replace => ("PATCH", "/v2/orders/"),
    }
}

#[async_trait]
impl BrokerHarness for Alpaca {
    fn broker(&self) -> &dyn Broker {
        &self.broker
    }
    fn account(&self) -> reconcile_core::AccountId {
        acct()
    }
    fn page_size(&self) -> usize {
        adapter_alpaca::PAGE_SIZE
    }
    async fn seed(&self, snapshot: &BrokerSnapshot) {
        self.sim.seed(snapshot);
    }
    async fn lose_next_answer(&self, call: Call) {
        let (method, path) = request(call);
        self.sim
            .fail_next(FaultRule::on(method, path, Fault::DropConnection));
    }
    async fn break_transport(&self, call: Call, attempts: usize) {
        let (method, path) = request(call);
        for _ in 0..attempts {
            self.sim
                .fail_next(FaultRule::on(method, path, Fault::ServerError));
        }
    }
    async fn orders_carrying(&self, cid: &ClientOrderId) -> usize {
        self.sim
            .orders()
            .iter()
            .filter(|o| o.client_order_id == cid.as_str())
            .count()
    }
    fn id(&self, n: u64) -> OrderId {
        OrderId::new(format!("00000000-0000-4000-8000-{n:012}"))
    }
}

reconcile_core::broker_conformance_tests!(alpaca);
