//! Entry points for the fuzz targets (`fuzz/`) and for the regression tests that replay their
//! corpora: each reads untrusted text as a user's file would be read, and then uses what it got,
//! so that a parser that accepts something the rest cannot handle is found too. None may panic.

use crate::{BrokerSnapshot, DiffOptions, LocalSnapshot, Plan, Policy, diff};

/// A local snapshot file: parsed, diffed against an empty broker, planned, written back.
pub fn local_snapshot(text: &str) {
    if let Ok(local) = LocalSnapshot::from_json(text) {
        let broker = BrokerSnapshot::new(local.as_of);
        if let Ok(r) = diff(&local, &broker, &DiffOptions::default()) {
            let _ = crate::plan(&r, &Policy::all_fixes()).to_json();
        }
        let _ = local.to_json();
    }
}

/// A broker snapshot file: parsed, diffed against empty records and planned, written back.
pub fn broker_snapshot(text: &str) {
    if let Ok(broker) = BrokerSnapshot::from_json(text) {
        let local = LocalSnapshot::new(broker.as_of);
        if let Ok(r) = diff(&local, &broker, &DiffOptions::default()) {
            let _ = crate::plan(&r, &Policy::all_fixes()).to_json();
            let _ = r.to_json();
        }
        let _ = broker.to_json();
    }
}

/// A plan file: parsed and written back.
pub fn plan(text: &str) {
    if let Ok(p) = Plan::from_json(text) {
        let _ = p.to_json();
        for a in &p.actions {
            let _ = (a.action.key(), a.action.kind(), a.action.is_destructive());
        }
    }
}
