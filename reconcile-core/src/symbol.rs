//! Instrument symbols. OCC option symbols are kept in one canonical form, the padded
//! 21-character one (`QQQ   251219C00640000`), so that TastyTrade's padded and Alpaca's compact
//! spellings compare equal.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// An instrument symbol: an equity (`QCOM`), an OCC option symbol, or anything else a broker uses.
///
/// Construction trims surrounding white space and pads OCC option roots to six characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Symbol(Arc<str>);

impl Symbol {
    /// Makes a symbol, canonicalizing OCC option symbols to the padded form.
    pub fn new(raw: &str) -> Self {
        let trimmed = trimmed(raw);
        match occ_parts(trimmed) {
            // Already padded: the root and its spaces fill the first six characters.
            Some(_) if trimmed.len() == 21 => Self(Arc::from(trimmed)),
            Some((root, rest)) => Self(Arc::from(format!("{root:<6}{rest}"))),
            None => Self(Arc::from(trimmed)),
        }
    }

    /// The canonical spelling.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is an OCC option symbol.
    pub fn is_option(&self) -> bool {
        occ_parts(&self.0).is_some()
    }

    /// The compact OCC spelling with no padding (`QQQ251219C00640000`), as Alpaca writes it;
    /// other symbols are returned unchanged.
    pub fn compact(&self) -> String {
        match occ_parts(&self.0) {
            Some((root, rest)) => format!("{root}{rest}"),
            None => self.0.to_string(),
        }
    }

    /// The underlying: an option's root, or the symbol itself.
    pub fn underlying(&self) -> &str {
        match occ_parts(&self.0) {
            Some((root, _)) => root,
            None => &self.0,
        }
    }
}

/// `text.trim()`, without the search when the text starts and ends with a character that is
/// not white space (an ASCII letter, digit or sign), as nearly all do.
pub(crate) fn trimmed(text: &str) -> &str {
    let solid = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_graphic());
    let bytes = text.as_bytes();
    if solid(bytes.first()) && solid(bytes.last()) {
        text
    } else {
        text.trim()
    }
}

/// Splits an OCC symbol into its root and its 15-character tail (`YYMMDD`, `C`/`P`, 8 digits).
fn occ_parts(s: &str) -> Option<(&str, &str)> {
    if s.len() < 16 || !s.is_ascii() {
        return None;
    }
    let (head, tail) = s.split_at(s.len() - 15);
    let bytes = tail.as_bytes();
    let date_ok = bytes[..6].iter().all(u8::is_ascii_digit);
    let kind_ok = matches!(bytes[6], b'C' | b'P');
    let strike_ok = bytes[7..].iter().all(u8::is_ascii_digit);
    let root = head.trim_end();
    let root_ok = !root.is_empty()
        && root.len() <= 6
        && root
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    (date_ok && kind_ok && strike_ok && root_ok).then_some((root, tail))
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Symbol({:?})", self.0)
    }
}

impl From<&str> for Symbol {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl Serialize for Symbol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl crate::text::FromText for Symbol {
    fn from_text<E: serde::de::Error>(raw: &str) -> Result<Self, E> {
        if raw.trim().is_empty() {
            return Err(E::custom("empty symbol"));
        }
        Ok(Self::new(raw))
    }
}

impl<'de> Deserialize<'de> for Symbol {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::text::deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn trimmed_is_trim(s in "[ \t\u{a0}\u{3000}a-z0-9.-]{0,6}") {
            proptest::prop_assert_eq!(trimmed(&s), s.trim());
        }
    }

    #[test]
    fn padded_and_compact_option_symbols_are_equal() {
        let padded = Symbol::new("QQQ   251219C00640000");
        let compact = Symbol::new("QQQ251219C00640000");
        assert_eq!(padded, compact);
        assert_eq!(padded.as_str().len(), 21);
        assert_eq!(compact.compact(), "QQQ251219C00640000");
        assert_eq!(compact.underlying(), "QQQ");
        assert!(padded.is_option());
    }

    #[test]
    fn single_space_scraped_form_is_canonicalized() {
        assert_eq!(
            Symbol::new("SPY 260804C00500000").as_str(),
            "SPY   260804C00500000"
        );
        assert_eq!(Symbol::new("SPXW  220520C04025000").underlying(), "SPXW");
    }

    #[test]
    fn equities_and_others_are_kept_as_written() {
        assert_eq!(Symbol::new(" QCOM ").as_str(), "QCOM");
        assert!(!Symbol::new("QCOM").is_option());
        assert_eq!(Symbol::new("BRK/A").as_str(), "BRK/A");
        assert_eq!(Symbol::new("/ESZ2").as_str(), "/ESZ2");
        // Too long a root is not OCC.
        assert_eq!(
            Symbol::new("ABCDEFG251219C00640000").as_str(),
            "ABCDEFG251219C00640000"
        );
    }
}
