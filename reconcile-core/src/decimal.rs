//! Exact decimal parsing and the serde forms used by the snapshot formats: decimals are written as
//! JSON strings and read from strings or numbers, never through a float where it can be avoided.

use rust_decimal::Decimal;
use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};
use std::fmt;
use std::str::FromStr;

/// Parses decimal text exactly. Text with more significant digits than a `Decimal` holds (28) is
/// rounded at the last digit that fits, on purpose, and the rounding is logged.
///
/// # Errors
/// A message naming the text when it is not a decimal number.
pub fn parse_decimal(text: &str) -> Result<Decimal, String> {
    let t = crate::symbol::trimmed(text);
    let bad = || format!("not a decimal: {text:?}");
    if t.is_empty() {
        return Err(bad());
    }
    if t.contains(['e', 'E']) {
        return Decimal::from_scientific(t).map_err(|_| bad());
    }
    match Decimal::from_str_exact(t) {
        Ok(d) => Ok(d),
        Err(_) => {
            // Too many digits for 96 bits: round rather than fail, but only for well-formed text.
            let well_formed = t
                .strip_prefix(['-', '+'])
                .unwrap_or(t)
                .split_once('.')
                .map_or_else(
                    || {
                        t.trim_start_matches(['-', '+'])
                            .bytes()
                            .all(|b| b.is_ascii_digit())
                    },
                    |(i, f)| {
                        !(i.is_empty() && f.is_empty())
                            && i.bytes().all(|b| b.is_ascii_digit())
                            && f.bytes().all(|b| b.is_ascii_digit())
                    },
                );
            if !well_formed {
                return Err(bad());
            }
            let rounded = Decimal::from_str(t).map_err(|_| bad())?;
            tracing::warn!(text = t, rounded = %rounded, "decimal has more digits than fit; rounded");
            Ok(rounded)
        }
    }
}

struct DecimalVisitor;

impl<'de> Visitor<'de> for DecimalVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal as a string or a number")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
        parse_decimal(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
        // Only formats that know no better hand us a float (serde_json keeps a number's text:
        // see `visit_map`). The shortest text that reads back as the same float is the text the
        // number was written with whenever it had at most 15 significant digits.
        if !v.is_finite() {
            return Err(E::custom(format!("not a decimal: {v}")));
        }
        parse_decimal(&v.to_string()).map_err(E::custom)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Decimal, A::Error> {
        // serde_json (with `arbitrary_precision`) hands a number over as its own text, under
        // this one key: read the digits as written, never through a float.
        match map.next_key::<std::borrow::Cow<'de, str>>()? {
            Some(k) if k == NUMBER_TOKEN => {
                let text: std::borrow::Cow<'de, str> = map.next_value()?;
                parse_decimal(&text).map_err(de::Error::custom)
            }
            _ => Err(de::Error::custom(
                "a decimal as a string or a number, not an object",
            )),
        }
    }
}

/// The key under which serde_json passes a number's text with `arbitrary_precision`.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// `#[serde(with = "decimal::string")]` for `Decimal` fields.
pub mod string {
    use super::*;

    /// Writes the decimal as a JSON string, keeping its scale (`"0.60"` stays `"0.60"`).
    pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    /// Reads a decimal from a JSON string or number.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        deserializer.deserialize_any(DecimalVisitor)
    }
}

/// `#[serde(with = "decimal::option")]` for `Option<Decimal>` fields (`null` or absent is `None`).
pub mod option {
    use super::*;

    /// Writes `Some` as a JSON string and `None` as `null`.
    pub fn serialize<S: Serializer>(
        value: &Option<Decimal>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => serializer.collect_str(v),
            None => serializer.serialize_none(),
        }
    }

    /// Reads `null`, a JSON string or a number.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Decimal>, D::Error> {
        struct OptVisitor;
        impl<'de> Visitor<'de> for OptVisitor {
            type Value = Option<Decimal>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("null, or a decimal as a string or a number")
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(DecimalVisitor).map(Some)
            }
        }
        deserializer.deserialize_option(OptVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_text_keeps_scale_and_digits() {
        assert_eq!(parse_decimal("0.60").unwrap().to_string(), "0.60");
        assert_eq!(parse_decimal("-1").unwrap(), Decimal::NEGATIVE_ONE);
        assert_eq!(parse_decimal("1e2").unwrap(), Decimal::from(100));
    }

    #[test]
    fn too_many_digits_round_at_the_last_digit() {
        let d = parse_decimal("49.6499849505605227113711001112").unwrap();
        assert_eq!(d.to_string(), "49.649984950560522711371100111");
    }

    #[test]
    fn json_numbers_are_read_from_their_text() {
        #[derive(serde::Deserialize)]
        struct Q {
            #[serde(with = "super::string")]
            q: Decimal,
            #[serde(with = "super::option")]
            p: Option<Decimal>,
        }
        let v: Q = serde_json::from_str(r#"{"q": 12345678901234567.123456789, "p": 0.1}"#).unwrap();
        assert_eq!(v.q.to_string(), "12345678901234567.123456789");
        assert_eq!(v.p.unwrap().to_string(), "0.1");
        let v: Q =
            serde_json::from_str(r#"{"q": 49.6499849505605227113711001112, "p": null}"#).unwrap();
        assert_eq!(v.q.to_string(), "49.649984950560522711371100111");
        let v: Q = serde_json::from_str(r#"{"q": -1e2, "p": 7}"#).unwrap();
        assert_eq!(v.q, Decimal::from(-100));
        assert_eq!(v.p, Some(Decimal::from(7)));
    }

    #[test]
    fn garbage_is_an_error_naming_the_text() {
        assert_eq!(parse_decimal("abc").unwrap_err(), "not a decimal: \"abc\"");
        assert!(parse_decimal("").is_err());
        assert!(parse_decimal("1.2.3").is_err());
        assert!(parse_decimal("12345678901234567890123456789012345.5x").is_err());
    }
}
