//! Reading RFC 3339 times quickly: the shape every broker and store writes
//! (`2025-11-07T15:00:00Z`, with or without a fraction, `Z` or `+00:00`) is read by hand; any
//! other text goes to chrono's own parser, so what is accepted, and what it means, does not
//! change. Writing is chrono's, unchanged.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Deserializer};

/// Parses `text` as chrono's `Deserialize` for `DateTime<Utc>` does.
pub(crate) fn parse(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    match fast(text.as_bytes()) {
        Some(t) => Ok(t),
        None => text
            .parse::<DateTime<FixedOffset>>()
            .map(|t| t.with_timezone(&Utc)),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction of 1 to 9 digits](Z|+00:00)`, or `None`.
fn fast(b: &[u8]) -> Option<DateTime<Utc>> {
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r)?.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let punct = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if !punct.iter().all(|&(i, c)| b.get(i) == Some(&c)) {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if second > 59 {
        return None; // a leap second: chrono's own reading
    }
    let mut end = 19;
    let mut nanos = 0u32;
    if b.get(19) == Some(&b'.') {
        let n = b[20..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = digits(20..20 + n)? * 10u32.pow(9 - n as u32);
        end = 20 + n;
    }
    match &b[end..] {
        b"Z" | b"+00:00" => {}
        _ => return None,
    }
    NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?
        .and_hms_nano_opt(hour, minute, second, nanos)
        .map(|t| t.and_utc())
}

/// A time read from its text.
struct Time(DateTime<Utc>);

impl crate::text::FromText for Time {
    fn from_text<E: serde::de::Error>(text: &str) -> Result<Self, E> {
        parse(text).map(Time).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::text::deserialize(d)
    }
}

/// For `#[serde(deserialize_with)]` on a `DateTime<Utc>`.
pub(crate) fn required<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    Time::deserialize(d).map(|t| t.0)
}

/// For `#[serde(deserialize_with)]` on an `Option<DateTime<Utc>>` (`null` is `None`).
pub(crate) fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Ok(Option::<Time>::deserialize(d)?.map(|t| t.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chrono(text: &str) -> Option<DateTime<Utc>> {
        text.parse::<DateTime<FixedOffset>>()
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    #[test]
    fn the_common_shapes_read_as_chrono_reads_them() {
        for text in [
            "2025-11-07T15:00:00Z",
            "2025-11-07T15:00:00+00:00",
            "2025-11-07T15:00:00.5Z",
            "2025-11-07T15:00:00.123456789Z",
            "2024-02-29T23:59:59.000001+00:00",
            "2025-11-07T15:00:00-05:00",
            "2025-11-07 15:00:00Z",
            "2016-12-31T23:59:60Z",
            "2025-11-07T15:00:00.1234567891Z",
            "2025-1-07T15:00:00Z",
        ] {
            assert_eq!(parse(text).ok(), chrono(text), "{text}");
            assert!(parse(text).is_ok(), "{text}");
        }
        assert!(fast(b"2025-11-07T15:00:00Z").is_some());
        assert!(fast(b"2025-11-07T15:00:00.25+00:00").is_some());
        for bad in [
            "2025-02-30T15:00:00Z",
            "2025-13-07T15:00:00Z",
            "2025-11-07T24:00:00Z",
            "2025-11-07T15:60:00Z",
            "2025-11-07T15:00:00",
            "2025-11-07T15:00:00.Z",
            "2025-11-07T15:00:00Zjunk",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
            assert_eq!(parse(bad).ok(), chrono(bad), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn any_text_of_the_shape_reads_as_chrono_reads_it(
            y in 0u32..10000, mo in 0u32..14, d in 0u32..33, h in 0u32..26, mi in 0u32..62,
            s in 0u32..62, frac in proptest::option::of("[0-9]{0,11}"),
            zone in prop::sample::select(vec!["Z", "+00:00", "z", "-00:00", "+01:30", ""]),
        ) {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{zone}");
            prop_assert_eq!(parse(&text).ok(), chrono(&text), "{}", text);
        }
    }
}
