//! Other processes on one database: a lock held by a live process names it and dies with it; a
//! batch killed half-way is all there or not at all. The second process is the `pg_writer`
//! example, which a plain `cargo test` builds.

use super::*;
use reconcile_core::testkit::build::at;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn writer() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join("examples").join("pg_writer");
    assert!(path.exists(), "{} is built by cargo test", path.display());
    path
}

fn holder(run: &str) -> LockHolder {
    LockHolder::new(RunId::new(run), "test-host", at("2025-11-07T15:00:00Z"))
}

#[tokio::test]
async fn a_lock_held_by_a_live_process_names_it_and_dies_with_it() {
    let s = Scratch::new("lockproc").await;
    let mut child = Command::new(writer())
        .args(["hold-lock", &s.url(), "60"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    let account: AccountId = "5WT00001".into();
    match s
        .store
        .acquire_lock(&account, &holder("mine"))
        .await
        .unwrap()
    {
        LockAttempt::Held(l) => {
            assert_eq!(l.holder.pid, child.id());
            assert_eq!(l.holder.host, "writer-host");
            assert!(l.holder.run_id.as_str().starts_with("child-"));
        }
        LockAttempt::Acquired(_) => panic!("taken from a live holder"),
    }
    // Another account is free meanwhile.
    assert!(
        s.store
            .acquire_lock(&"OTHER".into(), &holder("mine"))
            .await
            .unwrap()
            .acquired()
            .is_some()
    );
    assert!(matches!(
        s.store.unlock(&account).await.unwrap(),
        Unlock::HeldByLiveHolder(_)
    ));
    child.kill().unwrap(); // SIGKILL: the session goes with the process
    child.wait().unwrap();
    let started = Instant::now();
    loop {
        if s.store
            .acquire_lock(&account, &holder("mine"))
            .await
            .unwrap()
            .acquired()
            .is_some()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the dead holder's lock is still held"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("taken {:?} after the kill", started.elapsed());
}

#[tokio::test]
async fn a_process_killed_mid_batch_leaves_all_or_nothing() {
    let mut seen_between = 0;
    for attempt in 0..3u64 {
        let s = Scratch::new("crash").await;
        let n = 20_000;
        let mut child = Command::new(writer())
            .args(["big-batch", &s.url(), &n.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "begin");
        std::thread::sleep(Duration::from_millis(30 + 60 * attempt));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        let snap = s
            .store
            .load(&Scope::all(), at("2025-11-07T15:00:00Z"))
            .await
            .unwrap();
        let audit = s.store.audit_log(None).await.unwrap();
        match snap.positions.len() {
            0 => assert!(audit.is_empty(), "rows rolled back, the audit record too"),
            x if x == n => assert_eq!(audit.len(), 1, "rows and their audit record together"),
            x => panic!("{x} of {n} positions: a half-written batch"),
        }
        if snap.positions.is_empty() && !status.success() {
            seen_between += 1;
        }
        // The next writer proceeds at once.
        let started = Instant::now();
        s.store
            .apply(&ChangeBatch {
                changes: Vec::new(),
                audit: Vec::new(),
            })
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    assert!(
        seen_between > 0,
        "at least one kill landed before the commit"
    );
}

#[tokio::test]
async fn different_accounts_lock_in_parallel_from_different_stores() {
    let s = Scratch::new("parallel").await;
    let other = PostgresStore::connect(&s.url()).await.unwrap();
    let (a1, b1): (AccountId, AccountId) = ("A1".into(), "B1".into());
    let (ha, hb) = (holder("run-a"), holder("run-b"));
    let (a, b) = tokio::join!(s.store.acquire_lock(&a1, &ha), other.acquire_lock(&b1, &hb));
    assert!(a.unwrap().acquired().is_some());
    assert!(b.unwrap().acquired().is_some());
    match other
        .acquire_lock(&"A1".into(), &holder("run-b"))
        .await
        .unwrap()
    {
        LockAttempt::Held(l) => assert_eq!(l.holder.run_id.as_str(), "run-a"),
        LockAttempt::Acquired(_) => panic!("one account, two holders"),
    }
}
