//! Entry point for the fuzz target and for the regression test that replays its corpus: bytes
//! as Alpaca might answer them, read as every answer the client reads, then mapped. None may
//! panic; anything is either understood or an error.

use crate::{mapping, wire};

/// Reads `bytes` as each kind of answer, and maps what parses.
pub fn answer(bytes: &[u8]) {
    let account = reconcile_core::AccountId::new("FUZZ");
    if let Ok(list) = serde_json::from_slice::<Vec<wire::Order>>(bytes) {
        for o in &list {
            let _ = mapping::orders(o, &account);
        }
    }
    if let Ok(o) = serde_json::from_slice::<wire::Order>(bytes) {
        let _ = mapping::orders(&o, &account);
    }
    if let Ok(list) = serde_json::from_slice::<Vec<wire::Position>>(bytes) {
        for p in &list {
            let _ = mapping::position(p, &account);
        }
    }
    let _ = serde_json::from_slice::<wire::Account>(bytes);
    if let Ok(e) = serde_json::from_slice::<wire::ErrorBody>(bytes) {
        let _ = (e.code(), e.message());
    }
}
