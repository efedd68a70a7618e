//! In-memory implementations of both ports: a broker and a store that keep their state in a
//! mutex, with the same guarantees as the real ones (atomic batches, complete paging, confirmed
//! not-found). They serve the test kit, the CLI's `snapshot:FILE` broker and embedding code that
//! wants a dry run with no I/O.

mod broker;
mod store;

pub use broker::InMemoryBroker;
pub use store::InMemoryStore;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
