//! Test kit (feature `testkit`): stateful in-memory fakes of both ports, snapshot builders,
//! proptest strategies and the store conformance suite.

pub mod build;
pub mod conformance;
mod memory_broker;
mod memory_store;
pub mod strategies;

pub use memory_broker::{Call, Fault, InMemoryBroker};
pub use memory_store::InMemoryStore;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
