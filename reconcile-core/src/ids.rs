//! Identifier newtypes. They are plain strings on the wire; the types keep an order id from being
//! passed where a position id belongs.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

thread_local! {
    static SHARED: RefCell<Option<crate::fasthash::FxSet<Arc<str>>>> = const { RefCell::new(None) };
}

/// While one is alive, the ids that repeat across a document (accounts, target keys) are
/// deserialized on this thread into one shared allocation per distinct value: a snapshot of
/// 150,000 orders names two accounts, not 150,000. (Symbols are not shared: most of a broker's
/// are distinct, and looking each up cost more than the memory it saved.)
pub(crate) struct Sharing(());

impl Sharing {
    pub(crate) fn start() -> Self {
        SHARED.with(|s| *s.borrow_mut() = Some(crate::fasthash::FxSet::default()));
        Self(())
    }
}

impl Drop for Sharing {
    fn drop(&mut self) {
        SHARED.with(|s| *s.borrow_mut() = None);
    }
}

/// The shared allocation of `value` while a [`Sharing`] is alive, a fresh one otherwise.
pub(crate) fn shared(value: &str) -> Arc<str> {
    SHARED.with(|s| match s.borrow_mut().as_mut() {
        Some(set) => match set.get(value) {
            Some(found) => Arc::clone(found),
            None => {
                let fresh: Arc<str> = Arc::from(value);
                set.insert(Arc::clone(&fresh));
                fresh
            }
        },
        None => Arc::from(value),
    })
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        string_id!($(#[$doc])* $name, |s: &str| Arc::from(s));
    };
    ($(#[$doc:meta])* shared $name:ident) => {
        string_id!($(#[$doc])* $name, shared);
    };
    ($(#[$doc:meta])* $name:ident, $make:expr) => {
        $(#[$doc])*
        // Shared, so that a report entry costs a reference count, not an allocation.
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps a string.
            pub fn new(value: impl Into<String>) -> Self {
                Self(Arc::from(value.into()))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(Arc::from(value))
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(Arc::from(value))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl crate::text::FromText for $name {
            fn from_text<E: serde::de::Error>(text: &str) -> Result<Self, E> {
                Ok(Self($make(text)))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                crate::text::deserialize(d)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A broker account number, such as `5WT00001`.
    shared AccountId
);
string_id!(
    /// The broker's id of an order.
    OrderId
);
string_id!(
    /// An id the client sets on an order so that it can be found again after a lost answer
    /// (TastyTrade's `external-identifier`, Alpaca's `client_order_id`).
    ClientOrderId
);
string_id!(
    /// The local id of a position.
    PositionId
);
string_id!(
    /// The key of a profit target within its position (`call_spread`, `stop_loss`, …).
    shared TargetKey
);
string_id!(
    /// The id of one reconcile run, written with every audit record of that run.
    RunId
);
