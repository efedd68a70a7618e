//! Reading a JSON string without allocating a copy of it: serde's `Cow<str>` always allocates,
//! and a snapshot is millions of short strings that become ids, symbols, statuses and times.

use serde::Deserializer;
use serde::de::{Error, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// A type read from the text of a JSON string.
pub(crate) trait FromText: Sized {
    fn from_text<E: Error>(text: &str) -> Result<Self, E>;
}

/// Deserializes a `T` from a string, borrowing the text where the input allows.
pub(crate) fn deserialize<'de, D: Deserializer<'de>, T: FromText>(d: D) -> Result<T, D::Error> {
    d.deserialize_str(Text(PhantomData))
}

struct Text<T>(PhantomData<T>);

impl<T: FromText> Visitor<'_> for Text<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<T, E> {
        T::from_text(v)
    }
}
