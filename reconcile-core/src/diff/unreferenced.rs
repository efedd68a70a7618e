//! Unreferenced working orders that no target claimed.
//!
//! DESIGN §4: submitted within the grace period (or `pending` with no submit time) they are
//! **in flight**: wait. Otherwise they are **orphaned**: nothing explains them.

use super::index::Index;
use crate::model::{Order, OrderStatus};
use crate::report::{InFlight, Orphaned};

pub(super) struct Loose {
    pub in_flight: Vec<InFlight>,
    pub orphaned: Vec<Orphaned>,
}

pub(super) fn judge(ix: &Index<'_>, unclaimed: &[&Order]) -> Loose {
    let mut out = Loose {
        in_flight: Vec::new(),
        orphaned: Vec::new(),
    };
    for o in unclaimed {
        let recent = match o.submitted_at {
            Some(t) => ix.within_grace(t),
            None => o.status == OrderStatus::Pending,
        };
        if recent {
            out.in_flight.push(InFlight::order(o));
        } else {
            out.orphaned.push(Orphaned {
                order_id: o.id.clone(),
                underlying: o.underlying.clone(),
                status: o.status,
                account: o.account.clone(),
                client_order_id: o.client_order_id.clone(),
            });
        }
    }
    out
}
