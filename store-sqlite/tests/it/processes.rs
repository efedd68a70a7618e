//! Two processes on one file. The second process is the `sqlite_writer` example, which a plain
//! `cargo test` builds; a run filtered with `--test it` does not rebuild it.

use super::scratch;
use reconcile_core::testkit::build::{PositionExt, at, position, target};
use reconcile_core::{AuditRecord, ChangeBatch, LocalChange, Outcome, Scope, Store, TargetStatus};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use store_sqlite::SqliteStore;

fn writer() -> PathBuf {
    // Examples are built next to the test binary's deps directory.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join("examples").join("sqlite_writer");
    assert!(path.exists(), "{} is built by cargo test", path.display());
    path
}

#[tokio::test]
async fn a_second_process_writing_never_surfaces_a_lock_error() {
    let dir = scratch("contention");
    let db = dir.path().join("db.sqlite");
    let store = SqliteStore::open(&db).unwrap();
    let rounds = 500;
    let child = Command::new(writer())
        .args(["hammer", db.to_str().unwrap(), &rounds.to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Hundreds of changes while the other process writes in a tight loop.
    for i in 0..rounds {
        let id = format!("mine-{i}");
        let batch = ChangeBatch {
            changes: vec![
                LocalChange::InsertPosition {
                    position: position(&id, "A", "QQQ").target(target("call_spread")),
                },
                LocalChange::SetTargetStatus {
                    position_id: id.as_str().into(),
                    target_key: "call_spread".into(),
                    status: TargetStatus::Cancelled,
                },
            ],
            audit: vec![AuditRecord {
                run_id: "mine".into(),
                at: at("2025-11-07T15:00:00Z"),
                action_key: id.clone(),
                outcome: Outcome::Applied,
                detail: String::new(),
            }],
        };
        store
            .apply(&batch)
            .await
            .unwrap_or_else(|e| panic!("write {i}: {e}"));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the other process saw errors: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snap = store
        .load(&Scope::all(), at("2025-11-07T15:00:00Z"))
        .await
        .unwrap();
    let mine = snap
        .positions
        .iter()
        .filter(|p| p.id.as_str().starts_with("mine-"))
        .count();
    let theirs = snap
        .positions
        .iter()
        .filter(|p| p.id.as_str().starts_with("hammer-"))
        .count();
    assert_eq!((mine, theirs), (rounds, rounds));
    assert!(
        snap.positions
            .iter()
            .filter(|p| p.id.as_str().starts_with("mine-"))
            .all(|p| p.targets[0].status == TargetStatus::Cancelled)
    );
    let audit = store.audit_log(None).await.unwrap();
    assert_eq!(audit.len(), 2 * rounds);
}

#[tokio::test]
async fn a_process_killed_mid_batch_leaves_all_or_nothing() {
    let mut seen_between = 0;
    for attempt in 0..3 {
        let dir = scratch(&format!("crash-{attempt}"));
        let db = dir.path().join("db.sqlite");
        SqliteStore::open(&db).unwrap();
        let n = 20_000;
        let mut child = Command::new(writer())
            .args(["big-batch", db.to_str().unwrap(), &n.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "begin");
        std::thread::sleep(std::time::Duration::from_millis(40 + 30 * attempt));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        let store = SqliteStore::open(&db).unwrap();
        let snap = store
            .load(&Scope::all(), at("2025-11-07T15:00:00Z"))
            .await
            .unwrap();
        let audit = store.audit_log(None).await.unwrap();
        match snap.positions.len() {
            0 => assert!(audit.is_empty(), "rows rolled back, the audit record too"),
            x if x == n => assert_eq!(audit.len(), 1, "rows and their audit record together"),
            x => panic!("{x} of {n} positions: a half-written batch"),
        }
        if snap.positions.is_empty() && status.code().is_none() {
            seen_between += 1;
        }
    }
    assert!(
        seen_between > 0,
        "no kill landed inside the batch; the test proved nothing"
    );
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn a_read_only_database_is_an_error_and_left_untouched() {
    let dir = scratch("read-only");
    let db = dir.path().join("db.sqlite");
    drop(SqliteStore::open(&db).unwrap());
    // A clean shutdown folds the WAL back in; what is left must not change.
    let before = std::fs::read(&db).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    // Permissions bind everyone but root: as root, open it as `nobody`.
    let mut cmd = if running_as_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(writer());
        c
    } else {
        Command::new(writer())
    };
    let out = cmd
        .args(["hammer", db.to_str().unwrap(), "1"])
        .output()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("db.sqlite"), "{err}");
    assert!(err.contains("db.sqlite: read-only"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[tokio::test]
async fn a_killed_lock_holder_frees_the_account_at_once() {
    let dir = scratch("lock-holder");
    let db = dir.path().join("db.sqlite");
    drop(SqliteStore::open(&db).unwrap());
    let mut child = Command::new(writer())
        .args(["hold-lock", db.to_str().unwrap(), "600"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    let store = SqliteStore::open(&db).unwrap();
    let account = reconcile_core::AccountId::new("5WT00001");
    let me = reconcile_core::LockHolder::new("parent".into(), "here", at("2025-11-07T15:00:00Z"));
    match store.acquire_lock(&account, &me).await.unwrap() {
        reconcile_core::LockAttempt::Held(l) => {
            assert_eq!(
                l.holder.pid,
                child.id(),
                "the refusal names the live holder"
            );
            assert_eq!(l.holder.run_id.as_str(), format!("child-{}", child.id()));
            assert_eq!(l.holder.host, "writer-host");
        }
        other => panic!("taken from a live holder: {other:?}"),
    }
    assert!(matches!(
        store.unlock(&account).await.unwrap(),
        reconcile_core::Unlock::HeldByLiveHolder(_)
    ));
    child.kill().unwrap(); // SIGKILL: no chance to release anything
    child.wait().unwrap();
    let got = store.acquire_lock(&account, &me).await.unwrap();
    assert!(
        matches!(&got, reconcile_core::LockAttempt::Acquired(l) if l.holder == me),
        "the very next attempt takes it: {got:?}"
    );
    store.release_lock(&account, &me).await.unwrap();
    assert_eq!(
        store.unlock(&account).await.unwrap(),
        reconcile_core::Unlock::NotLocked
    );
}

#[tokio::test]
async fn unlock_clears_the_record_of_a_holder_that_died() {
    let dir = scratch("unlock-dead");
    let db = dir.path().join("db.sqlite");
    drop(SqliteStore::open(&db).unwrap());
    let mut child = Command::new(writer())
        .args(["hold-lock", db.to_str().unwrap(), "600"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    let store = SqliteStore::open(&db).unwrap();
    match store.unlock(&"5WT00001".into()).await.unwrap() {
        reconcile_core::Unlock::Cleared(l) => assert_eq!(l.holder.pid, pid),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.unlock(&"5WT00001".into()).await.unwrap(),
        reconcile_core::Unlock::NotLocked
    );
}
