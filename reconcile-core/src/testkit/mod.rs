//! Test kit (feature `testkit`): the in-memory fakes of both ports, fault, crash and recording
//! decorators, snapshot builders, proptest strategies, and the conformance suites every store
//! and every broker runs.

pub mod broker_conformance;
pub mod build;
mod crash;
mod faulty;
pub mod store_conformance;
pub mod strategies;

pub use crate::memory::{InMemoryBroker, InMemoryStore};
pub use crate::ports::Call;
pub use crash::{Crash, CrashingBroker, CrashingStore};
pub use faulty::{Fault, Faulty, Recording};

/// The store conformance suite under its former name.
pub use store_conformance as conformance;

/// [`diff`](crate::diff) on two threads whatever the size (by itself it takes a second thread
/// only from 50,000 orders and positions), for tests that one thread and two agree.
///
/// # Errors
/// As [`diff`](crate::diff).
pub fn diff_on_two_threads(
    local: &crate::LocalSnapshot,
    broker: &crate::BrokerSnapshot,
    options: &crate::DiffOptions,
) -> Result<crate::Report, crate::DiffError> {
    crate::diff::diff_split(local, broker, options, crate::diff::Split::Always)
}

/// [`diff`](crate::diff) on one thread whatever the size.
///
/// # Errors
/// As [`diff`](crate::diff).
pub fn diff_on_one_thread(
    local: &crate::LocalSnapshot,
    broker: &crate::BrokerSnapshot,
    options: &crate::DiffOptions,
) -> Result<crate::Report, crate::DiffError> {
    crate::diff::diff_split(local, broker, options, crate::diff::Split::Never)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
