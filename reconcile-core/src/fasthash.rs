//! The diff's internal maps use foldhash's fast, fixed-seed hasher: keys are ids from our own
//! inputs, so flooding resistance buys nothing, and SipHash costs a third of the diff.

use std::collections::{HashMap, HashSet};

pub(crate) type FxMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;
pub(crate) type FxSet<K> = HashSet<K, foldhash::fast::FixedState>;
