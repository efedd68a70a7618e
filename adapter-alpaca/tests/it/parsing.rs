//! Real payloads (Alpaca's API reference examples and alpaca-py's mocks, in `tests/fixtures`)
//! and documented variations of them, through the wire types and the mapping.

use adapter_alpaca::{mapping, wire};
use reconcile_core::testkit::build::dec;
use reconcile_core::{OrderStatus, OrderType, Side, TimeInForce};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn order(text: &str) -> Vec<reconcile_core::Order> {
    let w: wire::Order = serde_json::from_str(text).unwrap();
    mapping::orders(&w, &"PA3ALPACA01".into()).unwrap()
}

#[test]
fn the_documented_equity_order() {
    let o = order(&fixture("docs-order-equity.json"));
    assert_eq!(o.len(), 1);
    let o = &o[0];
    assert_eq!(o.id.as_str(), "7b08df51-c1ac-453c-99f9-323a5f075f0d");
    assert_eq!(
        o.client_order_id.as_ref().unwrap().as_str(),
        "5680c4bc-9ac1-4a12-a44c-df427ba53032"
    );
    assert_eq!(o.status, OrderStatus::Pending, "accepted is not yet routed");
    assert_eq!(o.raw_status.as_deref(), Some("accepted"));
    assert_eq!(o.order_type, Some(OrderType::Limit));
    assert_eq!(o.time_in_force, Some(TimeInForce::Gtc));
    assert_eq!(o.limit_price, Some(dec("150")));
    assert_eq!(o.legs[0].symbol.as_str(), "AAPL");
    assert_eq!(o.legs[0].side, Side::Buy);
    assert_eq!(o.legs[0].quantity, dec("2"));
    // Nine fractional digits kept to the nanosecond.
    assert_eq!(
        o.submitted_at.unwrap().timestamp_subsec_nanos(),
        577_215_743
    );
}

#[test]
fn the_documented_option_order_is_padded_to_the_canonical_symbol() {
    let o = order(&fixture("docs-order-option.json"));
    assert_eq!(o[0].legs[0].symbol.as_str(), "AAPL  250620C00100000");
    assert_eq!(o[0].underlying, "AAPL");
    assert_eq!(o[0].status, OrderStatus::Pending);
    assert_eq!(o[0].time_in_force, Some(TimeInForce::Day));
}

#[test]
fn the_documented_mleg_order_is_one_order_with_instrument_legs() {
    let o = order(&fixture("docs-order-mleg.json"));
    assert_eq!(o.len(), 1, "mleg legs are not orders of their own");
    let o = &o[0];
    assert_eq!(o.status, OrderStatus::Filled);
    assert_eq!(o.underlying, "AAPL");
    assert_eq!(o.filled_average_price, Some(dec("1.28")));
    let legs: Vec<_> = o
        .legs
        .iter()
        .map(|l| {
            (
                l.symbol.as_str().to_owned(),
                l.side,
                l.quantity,
                l.filled_quantity,
            )
        })
        .collect();
    assert_eq!(
        legs,
        [
            (
                "AAPL  241213C00250000".to_owned(),
                Side::BuyToOpen,
                dec("3"),
                dec("3")
            ),
            (
                "AAPL  241213C00260000".to_owned(),
                Side::SellToOpen,
                dec("1"),
                dec("1")
            ),
        ]
    );
}

#[test]
fn the_sdk_mock_with_numbers_as_numbers_and_an_extra_field() {
    let o = order(&fixture("sdk-order-numbers.json"));
    assert_eq!(o[0].legs[0].quantity, dec("1"));
    assert_eq!(o[0].limit_price, Some(dec("300")));
    assert_eq!(o[0].status, OrderStatus::Pending);
}

#[test]
fn the_sdk_positions_mock() {
    let rows: Vec<wire::Position> = serde_json::from_str(&fixture("sdk-positions.json")).unwrap();
    let p = mapping::position(&rows[0], &"PA3ALPACA01".into());
    assert_eq!(p.symbol.as_str(), "AAPL");
    assert_eq!(p.quantity, dec("5"));
    assert_eq!(p.average_price, Some(dec("100.0")));
}

#[test]
fn a_short_position_is_negative_and_long_decimals_are_read_from_their_text() {
    let text = fixture("sdk-positions.json")
        .replace(r#""qty": "5""#, r#""qty": "-24""#)
        .replace(r#""side": "long""#, r#""side": "short""#)
        .replace(
            r#""avg_entry_price": "100.0""#,
            r#""avg_entry_price": 49.6499849505605227113711001"#,
        );
    let rows: Vec<wire::Position> = serde_json::from_str(&text).unwrap();
    let p = mapping::position(&rows[0], &"PA3ALPACA01".into());
    assert_eq!(p.quantity, dec("-24"));
    // 27 significant digits as a JSON number: every one kept (a float keeps about 16).
    assert_eq!(
        p.average_price.unwrap().to_string(),
        "49.6499849505605227113711001"
    );
}

#[test]
fn a_30_digit_string_is_rounded_at_its_last_digit_not_through_a_float() {
    let text = fixture("sdk-positions.json").replace(
        r#""qty": "5""#,
        r#""qty": "49.6499849505605227113711001112""#,
    );
    let rows: Vec<wire::Position> = serde_json::from_str(&text).unwrap();
    let q = mapping::position(&rows[0], &"PA3ALPACA01".into()).quantity;
    assert!(
        q.to_string().starts_with("49.64998495056052271137110011"),
        "{q}"
    );
}

#[test]
fn a_trailing_space_in_a_symbol_is_dropped() {
    let text =
        fixture("docs-order-equity.json").replace(r#""symbol": "AAPL""#, r#""symbol": "AAPL ""#);
    assert_eq!(order(&text)[0].legs[0].symbol.as_str(), "AAPL");
}

#[test]
fn statuses_map_as_designed_and_unknown_is_never_terminal() {
    let cases = [
        ("pending_new", OrderStatus::Pending),
        ("accepted", OrderStatus::Pending),
        ("accepted_for_bidding", OrderStatus::Pending),
        ("calculated", OrderStatus::Pending),
        ("pending_review", OrderStatus::Pending),
        ("held", OrderStatus::Held),
        ("suspended", OrderStatus::Held),
        ("new", OrderStatus::Live),
        ("done_for_day", OrderStatus::Live),
        ("stopped", OrderStatus::Live),
        ("partially_filled", OrderStatus::PartiallyFilled),
        ("pending_cancel", OrderStatus::PendingCancel),
        ("pending_replace", OrderStatus::PendingReplace),
        ("filled", OrderStatus::Filled),
        ("canceled", OrderStatus::Cancelled),
        ("expired", OrderStatus::Expired),
        ("rejected", OrderStatus::Rejected),
        ("replaced", OrderStatus::Replaced),
        ("a_status_added_in_2027", OrderStatus::Pending),
    ];
    for (raw, want) in cases {
        assert_eq!(mapping::status(raw), want, "{raw}");
    }
}

#[test]
fn an_oco_parent_and_its_stop_share_one_group() {
    let tp = fixture("docs-order-equity.json")
        .replace(r#""order_class": """#, r#""order_class": "oco""#)
        .replace(r#""side": "buy""#, r#""side": "sell""#);
    let stop = tp
        .replace(
            "7b08df51-c1ac-453c-99f9-323a5f075f0d",
            "7b08df51-c1ac-453c-99f9-323a5f075f0e",
        )
        .replace(r#""type": "limit""#, r#""type": "stop""#)
        .replace(r#""status": "accepted""#, r#""status": "held""#)
        .replace(r#""stop_price": null"#, r#""stop_price": "120""#);
    let nested = tp.replace(r#""legs": null"#, &format!(r#""legs": [{stop}]"#));
    let o = order(&nested);
    assert_eq!(o.len(), 2);
    assert_eq!(o[1].status, OrderStatus::Held);
    assert_eq!(o[1].stop_price, Some(dec("120")));
    assert!(o.iter().all(|x| x.oco_group.as_ref().map(|g| g.as_str())
        == Some("7b08df51-c1ac-453c-99f9-323a5f075f0d")));
}

#[test]
fn a_missing_required_field_is_an_error_that_names_it() {
    let text = fixture("docs-order-equity.json").replace(r#""status": "accepted","#, "");
    let err = serde_json::from_str::<wire::Order>(&text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("status"), "{err}");
}

#[test]
fn a_bad_decimal_is_an_error_not_a_zero() {
    let text = fixture("docs-order-equity.json")
        .replace(r#""limit_price": "150""#, r#""limit_price": "1.5.0""#);
    let err = serde_json::from_str::<wire::Order>(&text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1.5.0"), "{err}");
}

#[test]
fn times_with_any_fraction_and_offset_are_the_same_instant() {
    for (text, want) in [
        ("2023-12-12T22:31:24Z", "2023-12-12T22:31:24+00:00"),
        ("2023-12-12T22:31:24.5Z", "2023-12-12T22:31:24.500+00:00"),
        (
            "2023-12-12T17:31:24.668464435-05:00",
            "2023-12-12T22:31:24.668464435+00:00",
        ),
    ] {
        let doc = fixture("docs-order-equity.json").replace("2023-12-12T22:31:24.577215743Z", text);
        let o = order(&doc);
        assert_eq!(o[0].submitted_at.unwrap().to_rfc3339(), want, "{text}");
    }
}
