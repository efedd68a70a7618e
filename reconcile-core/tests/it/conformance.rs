//! Both conformance suites on the in-memory fakes: the store, and the broker behind the same
//! retry decorator production code uses.

use async_trait::async_trait;
use reconcile_core::broker::Retrying;
use reconcile_core::testkit::broker_conformance::BrokerHarness;
use reconcile_core::testkit::{Call, Fault, Faulty, InMemoryBroker};
use reconcile_core::{AccountId, Broker, BrokerSnapshot, ClientOrderId};
use std::time::Duration;

async fn fresh() -> reconcile_core::testkit::InMemoryStore {
    reconcile_core::testkit::InMemoryStore::new()
}

reconcile_core::store_conformance_tests!(fresh);

/// The in-memory broker, small pages so that paging is exercised, faults injected beneath the
/// retry layer as a network would inject them.
struct Memory {
    broker: Retrying<Faulty<InMemoryBroker>>,
}

async fn memory() -> Memory {
    let inner = InMemoryBroker::new(reconcile_core::testkit::build::at(
        reconcile_core::testkit::broker_conformance::NOW,
    ))
    .with_page_size(7);
    Memory {
        broker: Retrying::new(Faulty::new(inner))
            .with_delays(Duration::from_millis(1), Duration::from_millis(5)),
    }
}

#[async_trait]
impl BrokerHarness for Memory {
    fn broker(&self) -> &dyn Broker {
        &self.broker
    }
    fn account(&self) -> AccountId {
        "5WT00001".into()
    }
    fn page_size(&self) -> usize {
        self.broker.page_size()
    }
    async fn seed(&self, snapshot: &BrokerSnapshot) {
        for o in &snapshot.orders {
            self.broker.add_order(o.clone());
        }
        for p in snapshot.positions.iter().flatten() {
            self.broker.add_position(p.clone());
        }
    }
    async fn lose_next_answer(&self, call: Call) {
        self.broker.fail_next(call, Fault::LoseAnswer);
    }
    async fn break_transport(&self, call: Call, attempts: usize) {
        self.broker.break_transport(call, attempts);
    }
    async fn orders_carrying(&self, cid: &ClientOrderId) -> usize {
        self.broker
            .orders()
            .iter()
            .filter(|o| o.client_order_id.as_ref() == Some(cid))
            .count()
    }
}

mod in_memory_broker {
    use super::memory;
    reconcile_core::broker_conformance_tests!(memory);
}
