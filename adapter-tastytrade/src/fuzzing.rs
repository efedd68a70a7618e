//! Entry point for the fuzz target and for the regression test that replays its corpus: bytes
//! as TastyTrade might answer them, read as every answer the client reads, then mapped. None
//! may panic; anything is either understood or an error.

use crate::{mapping, wire};

/// Reads `bytes` as each kind of answer, and maps what parses.
pub fn answer(bytes: &[u8]) {
    if let Ok(page) = serde_json::from_slice::<wire::Envelope<wire::Items<wire::Order>>>(bytes) {
        for o in &page.data.items {
            let _ = mapping::order(o);
        }
    }
    if let Ok(one) = serde_json::from_slice::<wire::Envelope<wire::Order>>(bytes) {
        let _ = mapping::order(&one.data);
    }
    if let Ok(placed) = serde_json::from_slice::<wire::Envelope<wire::Placed>>(bytes) {
        let _ = mapping::order(&placed.data.order);
    }
    if let Ok(page) = serde_json::from_slice::<wire::Envelope<wire::Items<wire::Position>>>(bytes) {
        for p in &page.data.items {
            let _ = mapping::position(p);
        }
    }
    if let Ok(page) =
        serde_json::from_slice::<wire::Envelope<wire::Items<wire::AccountItem>>>(bytes)
    {
        let _ = page.data.items.len();
    }
    if let Ok(e) = serde_json::from_slice::<wire::ErrorBody>(bytes) {
        let _ = (e.code(), e.message());
    }
    let _ = serde_json::from_slice::<wire::TokenResponse>(bytes);
}
