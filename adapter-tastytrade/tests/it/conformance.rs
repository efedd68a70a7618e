//! The broker conformance suite against the TastyTrade client and its simulator, over real HTTP
//! on loopback, with the client decorated as production code decorates it.

use super::*;
use adapter_tastytrade::sim::{Fault, FaultRule};
use async_trait::async_trait;
use reconcile_core::broker::{Paced, Retrying};
use reconcile_core::testkit::broker_conformance::BrokerHarness;
use reconcile_core::{AccountId, Broker, Call, ClientOrderId};
use std::num::NonZeroU32;
use std::time::Duration;

struct Tastytrade {
    sim: Sim,
    broker: Retrying<Paced<TastytradeBroker>>,
}

async fn tastytrade() -> Tastytrade {
    let sim = Sim::start(at(NOW), SECRET, REFRESH).await.unwrap();
    let client = TastytradeBroker::new(
        sim.base_url(),
        SecretString::from(SECRET),
        SecretString::from(REFRESH),
    )
    .unwrap();
    let broker = Retrying::new(Paced::per_second(client, NonZeroU32::new(1000).unwrap()))
        .with_delays(Duration::from_millis(1), Duration::from_millis(5));
    Tastytrade { sim, broker }
}

/// The request a call sends, as a fault rule's method and path fragment.
fn request(call: Call) -> (&'static str, &'static str) {
    match call {
        Call::Accounts => ("GET", "/customers/me/accounts"),
        Call::WorkingOrders | Call::FindByClientOrderId => ("GET", "/orders/live"),
        Call::OrderHistory => ("GET", "/orders"),
        Call::Positions => ("GET", "/positions"),
        Call::Order => ("GET", "/orders/"),
        Call::Cancel => ("DELETE", "/orders/"),
        Call::Place | Call::PlaceOco => ("POST", "/orders"),
        Call::Replace => ("PUT", "/orders/"),
    }
}

#[async_trait]
impl BrokerHarness for Tastytrade {
    fn broker(&self) -> &dyn Broker {
        &self.broker
    }
    fn account(&self) -> AccountId {
        "5WT00001".into()
    }
    fn page_size(&self) -> usize {
        adapter_tastytrade::PAGE_SIZE
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
            .filter(|o| o.external_identifier.as_deref() == Some(cid.as_str()))
            .count()
    }
}

reconcile_core::broker_conformance_tests!(tastytrade);
