//! The store conformance suite, on PostgreSQL.

use super::Scratch;

async fn postgres() -> Scratch {
    Scratch::new("conf").await
}

reconcile_core::store_conformance_tests!(postgres);

/// Links go out in bulk: a run of them that names one absent target writes none of them, and
/// the error names it; a target linked twice in a batch ends on the later order.
#[tokio::test]
async fn bulk_links_are_all_or_nothing_and_the_last_link_wins() {
    use reconcile_core::testkit::build::{PositionExt, at, position, target};
    use reconcile_core::{ChangeBatch, LocalChange, Scope, Store, StoreError};
    let s = postgres().await;
    let p = position("45", "A", "QQQ")
        .target(target("call_spread"))
        .target(target("put_spread_1"));
    s.apply(&ChangeBatch {
        changes: vec![LocalChange::InsertPosition { position: p }],
        audit: Vec::new(),
    })
    .await
    .unwrap();
    let link = |key: &str, order: &str| LocalChange::LinkTarget {
        position_id: "45".into(),
        target_key: key.into(),
        order_id: order.into(),
        client_order_id: None,
        placed_at: None,
    };
    let err = s
        .apply(&ChangeBatch {
            changes: vec![link("call_spread", "1"), link("no_such_spread", "2")],
            audit: Vec::new(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { what, .. } if what == "target 45/no_such_spread"),
        "{err}"
    );
    let snap = s
        .load(&Scope::all(), at("2025-11-07T15:00:00Z"))
        .await
        .unwrap();
    assert!(
        snap.positions[0]
            .targets
            .iter()
            .all(|t| t.order_id.is_none()),
        "nothing linked"
    );
    s.apply(&ChangeBatch {
        changes: vec![
            link("call_spread", "1"),
            link("put_spread_1", "2"),
            link("call_spread", "3"),
        ],
        audit: Vec::new(),
    })
    .await
    .unwrap();
    let snap = s
        .load(&Scope::all(), at("2025-11-07T15:00:00Z"))
        .await
        .unwrap();
    let order = |k: &str| {
        snap.positions[0]
            .targets
            .iter()
            .find(|t| t.key.as_str() == k)
            .unwrap()
            .order_id
            .clone()
            .unwrap()
    };
    assert_eq!(
        (
            order("call_spread").as_str(),
            order("put_spread_1").as_str()
        ),
        ("3", "2")
    );
}
