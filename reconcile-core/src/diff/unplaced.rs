//! Unplaced targets: due, waiting, or not due.
//!
//! DESIGN §4: unplaced targets are due only on `open` positions; those of `pending` and
//! `closing` positions are not reported. A due target that an order was adopted for is not
//! missing. One covered by an intent within grace (whose order is not yet working) is **in
//! flight**, as one entry keyed by the client order id (an OCO intent covers both of its exits); so is one whose own `placed_at` is within
//! grace. Any other due target is **missing**.

use super::index::{Index, Slot};
use crate::fasthash::FxSet;
use crate::model::PositionState;
use crate::report::{InFlight, Missing};

pub(super) struct Unplaced<'a> {
    pub in_flight: Vec<InFlight>,
    pub missing: Vec<Missing>,
    /// Client order ids of the intents that covered a target here.
    pub covering: FxSet<&'a str>,
}

pub(super) fn judge<'a>(ix: &Index<'a>, adopted: &FxSet<Slot>) -> Unplaced<'a> {
    let mut out = Unplaced {
        in_flight: Vec::new(),
        missing: Vec::new(),
        covering: FxSet::default(),
    };
    for &slot in &ix.unplaced {
        if adopted.contains(&slot) {
            continue;
        }
        let (p, t) = ix.at(slot);
        if p.state != PositionState::Open {
            continue;
        }
        // Intents come sorted by client order id: the first that fits is the smallest.
        let covering = ix
            .intents_for(p.id.as_str(), t.key.as_str())
            .iter()
            .find(|i| ix.intent_on_its_way(i));
        if let Some(i) = covering {
            out.covering.insert(i.client_order_id.as_str());
            out.in_flight.push(InFlight::target(
                &p.id,
                &t.key,
                None,
                Some(&i.client_order_id),
            ));
        } else if t.placed_at.is_some_and(|at| ix.within_grace(at)) {
            out.in_flight.push(InFlight::target(
                &p.id,
                &t.key,
                None,
                t.client_order_id.as_ref(),
            ));
        } else {
            out.missing.push(Missing {
                position_id: p.id.clone(),
                target_key: t.key.clone(),
                spec: ix.spec(p, t, None),
            });
        }
    }
    out
}
