//! SqliteStore on real files: the conformance suite, a second process writing at the same time,
//! a process killed in the middle of a batch, and files it must refuse to touch.

mod files;
mod processes;

use store_sqlite::SqliteStore;

/// A fresh directory for one test, removed when the test is done with it.
pub fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("store-sqlite-{name}-"))
        .tempdir()
        .unwrap()
}

async fn fresh() -> SqliteStore {
    // The suite owns the store, not its folder: the folder is kept (the system's temporary
    // space clears it).
    let dir = scratch("conformance").keep();
    SqliteStore::open(dir.join("db.sqlite")).unwrap()
}

mod conformance {
    use super::fresh;
    reconcile_core::store_conformance_tests!(fresh);
}
