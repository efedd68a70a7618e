//! Files the store must refuse, leaving them as they were.

use super::scratch;
use reconcile_core::testkit::build::PositionExt;
use store_sqlite::{SCHEMA_VERSION, SqliteStore};

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_untouched() {
    let dir = scratch("corrupt");
    let path = dir.path().join("notes.txt");
    let bytes = b"these are not the pages of a SQLite database\n".repeat(200);
    std::fs::write(&path, &bytes).unwrap();
    let err = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(err.contains("not a SQLite database"), "{err}");
    assert!(err.contains("notes.txt"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn a_database_from_a_newer_schema_is_refused_and_untouched() {
    let dir = scratch("newer");
    let path = dir.path().join("db.sqlite");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE future (x TEXT); PRAGMA user_version = 99;")
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(err.contains("schema version 99 is newer"), "{err}");
    assert!(err.contains(&format!("({SCHEMA_VERSION})")), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(
        !path.with_extension("sqlite-wal").exists(),
        "not switched to WAL"
    );
}

#[test]
fn a_path_that_cannot_be_created_is_an_error_naming_it() {
    let dir = scratch("readonly");
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let path = blocker.join("db.sqlite");
    let err = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(err.contains("cannot open"), "{err}");
    assert!(err.contains("a-file/db.sqlite"), "{err}");
    assert_eq!(std::fs::read(&blocker).unwrap(), b"x");
}

#[test]
fn opening_twice_migrates_once_and_sets_wal() {
    let dir = scratch("reopen");
    let path = dir.path().join("db.sqlite");
    let first = SqliteStore::open(&path).unwrap();
    let kept = reconcile_core::testkit::build::position("p1", "A", "QQQ")
        .leg("QQQ   251219C00640000", "-1");
    first
        .apply_blocking(&reconcile_core::ChangeBatch {
            changes: vec![reconcile_core::LocalChange::InsertPosition {
                position: kept.clone(),
            }],
            audit: Vec::new(),
        })
        .unwrap();
    drop(first);
    // The second open finds the schema current: it migrates nothing, and loses nothing.
    let second = SqliteStore::open(&path).unwrap();
    let loaded = second
        .load_blocking(
            &reconcile_core::Scope::all(),
            reconcile_core::testkit::build::at("2025-11-07T15:00:00Z"),
        )
        .unwrap();
    assert_eq!(loaded.positions, vec![kept]);
    let c = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let mode: String = c
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}
