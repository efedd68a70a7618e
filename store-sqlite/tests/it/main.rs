//! SqliteStore on real files: the conformance suite, a second process writing at the same time,
//! a process killed in the middle of a batch, and files it must refuse to touch.

mod files;
mod processes;

use store_sqlite::SqliteStore;

/// A fresh directory for one test.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "store-sqlite-{}-{name}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn fresh() -> SqliteStore {
    SqliteStore::open(scratch("conformance").join("db.sqlite")).unwrap()
}

mod conformance {
    use super::fresh;
    reconcile_core::store_conformance_tests!(fresh);
}
