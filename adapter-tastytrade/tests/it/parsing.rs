//! Documented payload shapes, written from the documented field lists.

use adapter_tastytrade::{mapping, wire};
use reconcile_core::OrderStatus;

const ORDER: &str = r#"{
  "id": 412345678, "account-number": "5WT00001", "time-in-force": "GTC", "order-type": "Limit",
  "size": 1, "underlying-symbol": "QQQ", "underlying-instrument-type": "Equity",
  "price": "0.6", "price-effect": "Debit", "status": "Live", "cancellable": true, "editable": true,
  "edited": false, "received-at": "2025-11-07T14:00:01.123+00:00", "updated-at": 1762524002000,
  "external-identifier": "rc-45-1", "a-field-added-later": {"x": 1},
  "legs": [
    {"instrument-type": "Equity Option", "symbol": "QQQ   251219C00640000", "quantity": 1,
     "remaining-quantity": 1, "action": "Buy to Close", "fills": []},
    {"instrument-type": "Equity Option", "symbol": "QQQ   251219C00645000", "quantity": "1",
     "remaining-quantity": "1", "action": "Sell to Close", "fills": []}
  ]
}"#;

#[test]
fn an_order_with_numbers_as_numbers_and_strings() {
    let w: wire::Order = serde_json::from_str(ORDER).unwrap();
    let o = mapping::order(&w).unwrap();
    assert_eq!(o.id.as_str(), "412345678");
    assert_eq!(o.status, OrderStatus::Live);
    assert_eq!(o.client_order_id.as_ref().unwrap().as_str(), "rc-45-1");
    assert_eq!(o.updated_at.unwrap().timestamp_millis(), 1_762_524_002_000);
    assert_eq!(
        o.submitted_at.unwrap().to_rfc3339(),
        "2025-11-07T14:00:01.123+00:00"
    );
    assert_eq!(o.legs[1].quantity, 1.into());
}

#[test]
fn statuses_map_as_designed_and_unknown_is_never_terminal() {
    let cases = [
        ("Received", OrderStatus::Pending),
        ("Routed", OrderStatus::Pending),
        ("In Flight", OrderStatus::Pending),
        ("Contingent", OrderStatus::Held),
        ("Live", OrderStatus::Live),
        ("Cancel Requested", OrderStatus::PendingCancel),
        ("Replace Requested", OrderStatus::PendingReplace),
        ("Filled", OrderStatus::Filled),
        ("Cancelled", OrderStatus::Cancelled),
        ("Removed", OrderStatus::Cancelled),
        ("Partially Removed", OrderStatus::Cancelled),
        ("Expired", OrderStatus::Expired),
        ("Rejected", OrderStatus::Rejected),
        ("Some Status Added In 2027", OrderStatus::Pending),
    ];
    for (raw, want) in cases {
        assert_eq!(mapping::status(raw, &[]), want, "{raw}");
    }
}

#[test]
fn live_with_fills_is_partially_filled() {
    let text = ORDER.replace(
        r#""quantity": 1,
     "remaining-quantity": 1"#,
        r#""quantity": 2,
     "remaining-quantity": 1"#,
    );
    let o = mapping::order(&serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(o.status, OrderStatus::PartiallyFilled);
    assert_eq!(o.legs[0].filled_quantity, 1.into());
}

#[test]
fn positions_are_signed_by_direction_with_tolerant_numbers() {
    let short: wire::Position = serde_json::from_str(r#"{"account-number": "5WT00001", "symbol": "QQQ   251219C00640000",
        "instrument-type": "Equity Option", "underlying-symbol": "QQQ", "quantity": 1, "quantity-direction": "Short",
        "average-open-price": "2.1", "multiplier": "1.0", "restricted-quantity": 0}"#).unwrap();
    assert_eq!(mapping::position(&short).quantity, (-1).into());
    let long: wire::Position = serde_json::from_str(
        r#"{"account-number": "5WT00001", "symbol": "QCOM",
        "quantity": "742", "quantity-direction": "Long", "multiplier": 1}"#,
    )
    .unwrap();
    assert_eq!(mapping::position(&long).quantity, 742.into());
}

#[test]
fn an_envelope_with_pagination_and_error_bodies() {
    let page: wire::Envelope<wire::Items<serde_json::Value>> = serde_json::from_str(
        r#"{"data": {"items": []}, "context": "/accounts/5WT00001/orders",
            "pagination": {"per-page": 200, "page-offset": "1", "item-offset": 200, "total-items": 250,
                           "total-pages": 2, "current-item-count": 50, "previous-link": null, "next-link": null}}"#,
    )
    .unwrap();
    assert_eq!(page.pagination.unwrap().total_pages, 2);
    let e: wire::ErrorBody = serde_json::from_str(r#"{"error": {"code": "cannot_update_order", "message": "the order could not be cancelled"}}"#).unwrap();
    assert_eq!(e.code(), "cannot_update_order");
    let e: wire::ErrorBody =
        serde_json::from_str(r#"{"error": {"code": 406, "message": "bad version"}}"#).unwrap();
    assert_eq!(e.code(), "406");
    let e: wire::ErrorBody = serde_json::from_str(
        r#"{"error_code": "invalid_grant", "error_description": "Invalid JWT"}"#,
    )
    .unwrap();
    assert_eq!(
        (e.code().as_str(), e.message().as_str()),
        ("invalid_grant", "Invalid JWT")
    );
}

#[test]
fn a_dry_run_answer_without_an_id_is_an_error_not_a_panic() {
    let text = ORDER
        .replace(r#""id": 412345678, "#, "")
        .replace("1762524002000", "0");
    let w: wire::Order = serde_json::from_str(&text).unwrap();
    assert!(w.updated_at.is_none(), "0 is a dry run's missing time");
    assert!(mapping::order(&w).is_err());
}
