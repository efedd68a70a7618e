//! A snapshot read a piece at a time (`from_reader`) is the snapshot read whole (`from_json`):
//! the same value when the whole read succeeds, and no value when it fails, however the text
//! was damaged. And a report written to a writer is the bytes of `to_json`.

use proptest::prelude::*;
use reconcile_core::testkit::strategies::snapshot_pair;
use reconcile_core::{BrokerSnapshot, DiffOptions, LocalSnapshot, diff};

/// One way to damage a document: at a position (a fraction, in 2^32ths, of its length, or of its list of
/// brackets, quotes, commas and colons), put a byte, take one away, or cut the rest; or add a
/// byte at the end.
#[derive(Debug, Clone)]
enum Damage {
    Put(u32, u8),
    PutStructural(u32, u8),
    Remove(u32),
    RemoveStructural(u32),
    Cut(u32),
    Append(u8),
}

fn damage() -> impl Strategy<Value = Damage> {
    let byte = prop::sample::select(b"\"\\{}[],: 0-1.xn\n".to_vec());
    prop_oneof![
        (any::<u32>(), byte.clone()).prop_map(|(at, b)| Damage::Put(at, b)),
        (any::<u32>(), byte.clone()).prop_map(|(at, b)| Damage::PutStructural(at, b)),
        (any::<u32>()).prop_map(Damage::Remove),
        (any::<u32>()).prop_map(Damage::RemoveStructural),
        (any::<u32>()).prop_map(Damage::Cut),
        byte.prop_map(Damage::Append),
    ]
}

/// `f / 2^32` of the way along `0..n`.
fn fraction(n: usize, f: u32) -> usize {
    ((n as u64 * u64::from(f)) >> 32) as usize
}

fn damaged(text: &str, d: &Damage) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    if bytes.is_empty() {
        return bytes;
    }
    let at = |f: u32| fraction(bytes.len(), f);
    let structural: Vec<usize> = (0..bytes.len())
        .filter(|&i| b"\"\\{}[],:".contains(&bytes[i]))
        .collect();
    let pick = |f: u32| match structural.len() {
        0 => 0,
        n => structural[fraction(n, f)],
    };
    match *d {
        Damage::PutStructural(f, b) => {
            let i = pick(f);
            bytes[i] = b;
        }
        Damage::RemoveStructural(f) => {
            let i = pick(f);
            bytes.remove(i);
        }
        Damage::Append(b) => bytes.push(b),
        Damage::Put(f, b) => {
            let i = at(f);
            bytes[i] = b;
        }
        Damage::Remove(f) => {
            let i = at(f);
            bytes.remove(i);
        }
        Damage::Cut(f) => {
            let i = at(f);
            bytes.truncate(i);
        }
    }
    bytes
}

/// Both readings of `bytes` as `T`: whole (when it is text at all) and a piece at a time.
fn both<T>(
    bytes: &[u8],
    whole: impl Fn(&str) -> Result<T, reconcile_core::SnapshotError>,
    streamed: impl Fn(&[u8]) -> Option<T>,
) -> (Option<T>, Option<T>) {
    let whole = std::str::from_utf8(bytes).ok().and_then(|t| whole(t).ok());
    (whole, streamed(bytes))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_snapshot_read_a_piece_at_a_time_is_the_snapshot_read_whole(
        (l, b) in snapshot_pair(),
        dl in prop::collection::vec(damage(), 0..3),
        db in prop::collection::vec(damage(), 0..3),
        compact in any::<bool>(),
    ) {
        let (lt, bt) = if compact {
            (serde_json::to_string(&l).unwrap(), serde_json::to_string(&b).unwrap())
        } else {
            (l.to_json().unwrap(), b.to_json().unwrap())
        };
        let mut lbytes = lt.clone().into_bytes();
        for d in &dl {
            lbytes = damaged(&String::from_utf8_lossy(&lbytes), d);
        }
        let mut bbytes = bt.clone().into_bytes();
        for d in &db {
            bbytes = damaged(&String::from_utf8_lossy(&bbytes), d);
        }
        let (whole, streamed) = both(&lbytes, LocalSnapshot::from_json, |b| LocalSnapshot::from_reader(b));
        prop_assert_eq!(&whole, &streamed, "local {}", String::from_utf8_lossy(&lbytes));
        if dl.is_empty() {
            prop_assert_eq!(streamed.as_ref(), Some(&l));
        }
        let (whole, streamed) = both(&bbytes, BrokerSnapshot::from_json, |b| BrokerSnapshot::from_reader(b));
        prop_assert_eq!(&whole, &streamed, "broker {}", String::from_utf8_lossy(&bbytes));
        if db.is_empty() {
            prop_assert_eq!(streamed.as_ref(), Some(&b));
        }
    }

    #[test]
    fn a_report_written_to_a_writer_is_the_bytes_of_to_json((l, b) in snapshot_pair()) {
        let r = diff(&l, &b, &DiffOptions::default()).unwrap();
        let mut written = Vec::new();
        r.write_json(&mut written).unwrap();
        prop_assert_eq!(String::from_utf8(written).unwrap(), r.to_json().unwrap());
    }
}

#[test]
fn the_shipped_snapshots_read_the_same_both_ways() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/data");
    let mut read = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        let file = || std::fs::File::open(&path).unwrap();
        if name.ends_with("-local.json") {
            assert_eq!(
                LocalSnapshot::from_reader(file()),
                Some(LocalSnapshot::from_json(&text).unwrap()),
                "{name}"
            );
            read += 1;
        } else if name.ends_with("-broker.json") {
            assert_eq!(
                BrokerSnapshot::from_reader(file()),
                Some(BrokerSnapshot::from_json(&text).unwrap()),
                "{name}"
            );
            read += 1;
        }
    }
    assert!(read >= 4, "read {read} snapshots");
}

#[test]
fn members_in_any_order_with_unknown_ones_and_null_lists_read_alike() {
    let local = r#"{"intents": null, "extra": [1, {"a": []}], "positions": [], "as_of": "2025-11-07T15:00:00Z", "format": "reconcile.local/v1"}"#;
    let broker = r#"{"positions": null, "orders": [], "as_of": "2025-11-07T15:00:00Z", "format": "reconcile.broker/v1", "x": "y"}"#;
    assert_eq!(
        LocalSnapshot::from_reader(local.as_bytes()),
        Some(LocalSnapshot::from_json(local).unwrap())
    );
    assert_eq!(
        BrokerSnapshot::from_reader(broker.as_bytes()),
        Some(BrokerSnapshot::from_json(broker).unwrap())
    );
    // Invalid where the whole read is invalid: a bad value under an unknown key, a missing
    // member, a second `orders`.
    for bad in [
        r#"{"orders": [], "as_of": "2025-11-07T15:00:00Z", "format": "reconcile.broker/v1", "x": [tru]}"#,
        r#"{"orders": [], "format": "reconcile.broker/v1"}"#,
        r#"{"orders": [], "orders": [], "as_of": "2025-11-07T15:00:00Z", "format": "reconcile.broker/v1"}"#,
        r#"{"orders": null, "as_of": "2025-11-07T15:00:00Z", "format": "reconcile.broker/v1"}"#,
    ] {
        assert!(BrokerSnapshot::from_json(bad).is_err(), "{bad}");
        assert_eq!(BrokerSnapshot::from_reader(bad.as_bytes()), None, "{bad}");
    }
}
