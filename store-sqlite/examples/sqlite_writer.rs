//! A second process for the store's tests and benchmarks (and a small example of the blocking
//! API): `sqlite_writer hammer DB N` writes N small batches in a tight loop and exits 1 if any
//! failed; `sqlite_writer big-batch DB N` prints `begin`, then writes one batch of N positions;
//! `sqlite_writer hold-lock DB N` takes account `5WT00001`'s run lock, prints `locked`, and holds
//! it for N seconds.

use reconcile_core::{
    AuditRecord, ChangeBatch, LocalChange, Outcome, Position, PositionState, RunId,
};
use std::io::Write;
use store_sqlite::SqliteStore;

fn position(id: String) -> Position {
    Position {
        id: id.into(),
        account: "WRITER".into(),
        underlying: "QQQ".to_owned(),
        state: PositionState::Open,
        opened_at: None,
        entry_price: None,
        legs: Vec::new(),
        targets: vec![reconcile_core::ProfitTarget::unplaced("take_profit")],
        entry_order_id: None,
        closing: None,
    }
}

fn audit(run: &str, key: String) -> AuditRecord {
    AuditRecord {
        run_id: RunId::new(run),
        at: chrono::DateTime::UNIX_EPOCH,
        action_key: key,
        outcome: Outcome::Applied,
        detail: String::new(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(path), Some(n)) = (
        args.get(1),
        args.get(2),
        args.get(3).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: sqlite_writer hammer|big-batch|hold-lock DB N");
        std::process::exit(2);
    };
    let store = match SqliteStore::open(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let pid = std::process::id();
    match mode.as_str() {
        "hammer" => {
            let mut failures = 0;
            for i in 0..n {
                let batch = ChangeBatch {
                    changes: vec![LocalChange::InsertPosition {
                        position: position(format!("hammer-{pid}-{i}")),
                    }],
                    audit: vec![audit("hammer", format!("hammer:{i}"))],
                };
                if let Err(e) = store.apply_blocking(&batch) {
                    eprintln!("write {i}: {e}");
                    failures += 1;
                }
            }
            std::process::exit(i32::from(failures > 0));
        }
        "big-batch" => {
            let batch = ChangeBatch {
                changes: (0..n)
                    .map(|i| LocalChange::InsertPosition {
                        position: position(format!("big-{i}")),
                    })
                    .collect(),
                audit: vec![audit("big", "big-batch".to_owned())],
            };
            println!("begin");
            let _ = std::io::stdout().flush();
            if let Err(e) = store.apply_blocking(&batch) {
                eprintln!("{e}");
                std::process::exit(1);
            }
            println!("done");
        }
        "hold-lock" => {
            let holder = reconcile_core::LockHolder::new(
                RunId::new(format!("child-{pid}")),
                "writer-host",
                chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now()),
            );
            match store.acquire_lock_blocking(&"5WT00001".into(), &holder) {
                Ok(reconcile_core::LockAttempt::Acquired(_)) => {
                    println!("locked");
                    let _ = std::io::stdout().flush();
                    std::thread::sleep(std::time::Duration::from_secs(n as u64));
                }
                Ok(reconcile_core::LockAttempt::Held(l)) => {
                    eprintln!("held by {}", l.holder);
                    std::process::exit(1);
                }
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(2);
                }
            }
        }
        _ => std::process::exit(2),
    }
}
