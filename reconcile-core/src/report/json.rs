//! A report as pretty JSON, byte for byte as serde_json's pretty printer writes it, but faster
//! where a large report is large: its matched entries, three short strings each and nine in ten
//! of a big report's entries, are written here directly; every other value goes through
//! serde_json, indented for the place it sits at.

use super::{Matched, Report};
use serde::Serialize;
use serde_json::ser::Formatter;
use std::io::{self, Write};

/// The pretty printer's indentation step.
const STEP: &[u8] = b"  ";

/// serde_json's `PrettyFormatter` with its two-space step, starting `depth` levels in: the same
/// bytes for a value as the pretty printer writes for it at that depth inside a document.
struct Indented {
    depth: usize,
    has_value: bool,
}

impl Indented {
    fn at(depth: usize) -> Self {
        Self {
            depth,
            has_value: false,
        }
    }

    /// An array or an object begins: one level in, nothing in it yet.
    fn open<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(bracket)
    }

    /// It ends: on a line of its own at its own depth, unless it is empty.
    fn close<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            w.write_all(b"\n")?;
            indent(w, self.depth)?;
        }
        w.write_all(bracket)
    }
}

/// An element or a member begins on a line of its own, after a comma unless it is the first.
fn next_line<W: ?Sized + Write>(w: &mut W, first: bool, depth: usize) -> io::Result<()> {
    w.write_all(if first { b"\n" } else { b",\n" })?;
    indent(w, depth)
}

fn indent<W: ?Sized + Write>(w: &mut W, depth: usize) -> io::Result<()> {
    for _ in 0..depth {
        w.write_all(STEP)?;
    }
    Ok(())
}

impl Formatter for Indented {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        next_line(w, first, self.depth)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        next_line(w, first, self.depth)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// The report's top-level object, a member at a time.
struct Members<'w, W: Write> {
    out: &'w mut W,
    first: bool,
}

impl<W: Write> Members<'_, W> {
    /// `"key": ` on a line of its own, after a comma unless it is the first.
    fn key(&mut self, key: &str) -> io::Result<()> {
        next_line(self.out, self.first, 1)?;
        self.first = false;
        string(self.out, key)?;
        self.out.write_all(b": ")
    }

    /// A member whose value serde_json writes.
    fn member(&mut self, key: &str, value: &impl Serialize) -> Result<(), serde_json::Error> {
        self.key(key).map_err(serde_json::Error::io)?;
        value.serialize(&mut serde_json::Serializer::with_formatter(
            &mut *self.out,
            Indented::at(1),
        ))
    }

    /// The `matched` member, written here.
    fn matched(&mut self, matched: &[Matched]) -> io::Result<()> {
        self.key("matched")?;
        if matched.is_empty() {
            return self.out.write_all(b"[]");
        }
        // A buffer of its own, handed on in large pieces: the writer's cost per call would
        // otherwise be paid a dozen times an entry.
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 1024);
        buf.push(b'[');
        for (i, m) in matched.iter().enumerate() {
            buf.extend_from_slice(if i == 0 { b"\n    {" } else { b",\n    {" });
            buf.extend_from_slice(b"\n      \"position_id\": ");
            string(&mut buf, m.position_id.as_str())?;
            buf.extend_from_slice(b",\n      \"target_key\": ");
            string(&mut buf, m.target_key.as_str())?;
            buf.extend_from_slice(b",\n      \"order_id\": ");
            string(&mut buf, m.order_id.as_str())?;
            buf.extend_from_slice(b"\n    }");
            if buf.len() >= CHUNK {
                self.out.write_all(&buf)?;
                buf.clear();
            }
        }
        buf.extend_from_slice(b"\n  ]");
        self.out.write_all(&buf)
    }
}

/// How much of the matched list is gathered before it is handed to the writer.
const CHUNK: usize = 1 << 16;

/// A JSON string as serde_json writes it: as it is when nothing in it needs escaping (no quote,
/// backslash or control character), else escaped by serde_json itself.
fn string<W: ?Sized + Write>(w: &mut W, s: &str) -> io::Result<()> {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        w.write_all(b"\"")?;
        w.write_all(s.as_bytes())?;
        w.write_all(b"\"")
    } else {
        serde_json::to_writer(w, s).map_err(io::Error::from)
    }
}

/// Writes `r` as [`Report::to_json`] does: the members in the order the type declares them,
/// `spent_intents` only when there are some.
pub(super) fn write(r: &Report, out: &mut impl Write) -> Result<(), serde_json::Error> {
    out.write_all(b"{").map_err(serde_json::Error::io)?;
    let mut m = Members { out, first: true };
    m.member("format", &r.format)?;
    m.member("as_of", &r.as_of)?;
    m.member("in_sync", &r.in_sync)?;
    m.member("summary", &r.summary)?;
    m.member("scanned", &r.scanned)?;
    m.matched(&r.matched).map_err(serde_json::Error::io)?;
    m.member("drifted", &r.drifted)?;
    m.member("invalid", &r.invalid)?;
    m.member("adoptable", &r.adoptable)?;
    m.member("in_flight", &r.in_flight)?;
    m.member("orphaned", &r.orphaned)?;
    m.member("missing", &r.missing)?;
    m.member("conflicts", &r.conflicts)?;
    m.member("stale_intents", &r.stale_intents)?;
    if !r.spent_intents.is_empty() {
        m.member("spent_intents", &r.spent_intents)?;
    }
    m.member("untracked_holdings", &r.untracked_holdings)?;
    m.member("stale_positions", &r.stale_positions)?;
    m.member("quantity_mismatches", &r.quantity_mismatches)?;
    m.member("pending_filled", &r.pending_filled)?;
    out.write_all(b"\n}\n").map_err(serde_json::Error::io)
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use proptest::prelude::*;

    /// What serde_json's pretty printer writes, and what [`Report::write_json`] writes.
    fn both(r: &Report) -> (String, String) {
        let mut written = Vec::new();
        r.write_json(&mut written).unwrap();
        (r.to_json().unwrap(), String::from_utf8(written).unwrap())
    }

    fn matched(p: &str, k: &str, o: &str) -> Matched {
        Matched {
            position_id: PositionId::new(p),
            target_key: TargetKey::new(k),
            order_id: OrderId::new(o),
        }
    }

    fn report() -> Report {
        Report::empty(chrono::DateTime::UNIX_EPOCH)
    }

    /// Every control character, the two characters JSON escapes by name, DEL (not escaped),
    /// characters beyond ASCII, and nothing at all.
    fn awkward() -> Vec<String> {
        let mut out: Vec<String> = (0u8..0x20).map(|b| format!("a{}b", b as char)).collect();
        out.extend(
            [
                "quo\"te",
                "back\\slash",
                "\\\"",
                "del\u{7f}",
                "ünïcödé",
                "\u{2028}",
                "🦀",
                "",
            ]
            .map(String::from),
        );
        out
    }

    #[test]
    fn an_empty_report_is_written_as_serde_writes_it() {
        let (want, got) = both(&report());
        assert_eq!(got, want);
    }

    #[test]
    fn awkward_ids_in_matched_entries_are_escaped_as_serde_escapes_them() {
        let mut r = report();
        for s in awkward() {
            r.matched.push(matched(&s, "call_spread", "1"));
            r.matched.push(matched("45", &s, "2"));
            r.matched.push(matched("46", "put_spread_1", &s));
        }
        let (want, got) = both(&r);
        assert_eq!(got, want);
    }

    #[test]
    fn every_member_is_written_in_its_place_and_spent_intents_only_when_some() {
        let mut r = report();
        r.matched.push(matched("12", "call_spread", "412345678"));
        r.orphaned.push(Orphaned {
            order_id: OrderId::new("9"),
            underlying: "QQQ".to_owned(),
            status: OrderStatus::Live,
            account: AccountId::new("5WT00001"),
            client_order_id: None,
        });
        r.stale_positions.push(StalePosition {
            position_id: PositionId::new("7"),
            account: AccountId::new("5WT00001"),
            working_orders: vec![OrderId::new("8")],
            closing: None,
        });
        r.finish();
        let (want, got) = both(&r);
        assert_eq!(got, want);
        assert!(!got.contains("spent_intents"));

        r.spent_intents.push(StaleIntent {
            client_order_id: ClientOrderId::new("rc-45-put_spread_2-1"),
            position_id: PositionId::new("45"),
            target_key: TargetKey::new("put_spread_2"),
        });
        let (want, got) = both(&r);
        assert_eq!(got, want);
        assert!(got.contains("\"spent_intents\": [\n    {"));
    }

    proptest! {
        #[test]
        fn any_matched_ids_are_written_as_serde_writes_them(
            ids in prop::collection::vec((any::<String>(), any::<String>(), any::<String>()), 0..6),
        ) {
            let mut r = report();
            r.matched = ids.iter().map(|(p, k, o)| matched(p, k, o)).collect();
            let (want, got) = both(&r);
            prop_assert_eq!(got, want);
        }
    }
}
