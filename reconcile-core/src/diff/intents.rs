//! Intents on their own: those that covered no unplaced target.
//!
//! DESIGN §4: an intent whose order is working and unreferenced is left to the adoption, grace
//! and orphan rules. One whose order is working and already referenced is **spent**: resolved
//! silently, never reported as a discrepancy (it is listed apart, for the plan to drop). An
//! intent with no working order is **in flight** within grace, and a **stale intent** after it.
//! When another order was adopted for the intent's target, the in-flight entry names only the
//! client order id: the target itself lands in `adoptable`, once.

use super::index::Index;
use crate::fasthash::FxSet;
use crate::report::{InFlight, StaleIntent};

pub(super) struct Intents {
    pub in_flight: Vec<InFlight>,
    pub stale: Vec<StaleIntent>,
    pub spent: Vec<StaleIntent>,
}

pub(super) fn judge(
    ix: &Index<'_>,
    covering: &FxSet<&str>,
    adopted: &FxSet<(&str, &str)>,
) -> Intents {
    let mut out = Intents {
        in_flight: Vec::new(),
        stale: Vec::new(),
        spent: Vec::new(),
    };
    for i in &ix.intents {
        let cid = i.client_order_id.as_str();
        if covering.contains(cid) {
            continue;
        }
        let mut working = ix
            .orders_with_cid(cid)
            .iter()
            .filter(|o| o.status.is_working())
            .peekable();
        let recent = ix.within_grace(i.created_at);
        let stale = || StaleIntent {
            client_order_id: i.client_order_id.clone(),
            position_id: i.position_id.clone(),
            target_key: i.target_key.clone(),
        };
        if working.peek().is_some() {
            if working.any(|o| ix.references(o.id.as_str()) == 0) {
                // Adoption, grace or the orphan rule deals with its order.
                continue;
            }
            // Its order is already referenced: the intent is spent.
            out.spent.push(stale());
            continue;
        }
        if recent {
            let mut entry = InFlight::target(
                &i.position_id,
                &i.target_key,
                None,
                Some(&i.client_order_id),
            );
            if adopted.contains(&(i.position_id.as_str(), i.target_key.as_str())) {
                entry.position_id = None;
                entry.target_key = None;
            }
            out.in_flight.push(entry);
        } else {
            out.stale.push(stale());
        }
    }
    out
}
