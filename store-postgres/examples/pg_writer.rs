//! A second process for the store's tests: `pg_writer big-batch URL N` prints `begin`, then
//! writes one batch of N positions and its audit record; `pg_writer hold-lock URL N` takes
//! account `5WT00001`'s run lock, prints `locked`, and holds it for N seconds.

use reconcile_core::{
    AuditRecord, ChangeBatch, LocalChange, LockAttempt, LockHolder, Outcome, Position,
    PositionState, ProfitTarget, RunId, Store,
};
use std::io::Write;
use store_postgres::PostgresStore;

fn position(id: String) -> Position {
    Position {
        id: id.into(),
        account: "WRITER".into(),
        underlying: "QQQ".to_owned(),
        state: PositionState::Open,
        opened_at: None,
        entry_price: None,
        legs: Vec::new(),
        targets: vec![ProfitTarget::unplaced("take_profit")],
        entry_order_id: None,
        closing: None,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(url), Some(n)) = (
        args.get(1),
        args.get(2),
        args.get(3).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: pg_writer big-batch|hold-lock URL N");
        std::process::exit(2);
    };
    let store = match PostgresStore::connect(url).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let pid = std::process::id();
    match mode.as_str() {
        "big-batch" => {
            let batch = ChangeBatch {
                changes: (0..n)
                    .map(|i| LocalChange::InsertPosition {
                        position: position(format!("big-{i}")),
                    })
                    .collect(),
                audit: vec![AuditRecord {
                    run_id: RunId::new("big"),
                    at: chrono::DateTime::UNIX_EPOCH,
                    action_key: "big-batch".to_owned(),
                    outcome: Outcome::Applied,
                    detail: String::new(),
                }],
            };
            println!("begin");
            let _ = std::io::stdout().flush();
            if let Err(e) = store.apply(&batch).await {
                eprintln!("{e}");
                std::process::exit(1);
            }
            println!("done");
        }
        "hold-lock" => {
            let holder = LockHolder::new(
                RunId::new(format!("child-{pid}")),
                "writer-host",
                chrono::Utc::now(),
            );
            match store.acquire_lock(&"5WT00001".into(), &holder).await {
                Ok(LockAttempt::Acquired(_)) => {
                    println!("locked");
                    let _ = std::io::stdout().flush();
                    tokio::time::sleep(std::time::Duration::from_secs(n as u64)).await;
                }
                Ok(LockAttempt::Held(l)) => {
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
