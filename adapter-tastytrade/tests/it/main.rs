//! TastytradeBroker against the simulator over real HTTP on loopback, and the wire format
//! against documented payload shapes.

mod conformance;
mod contract;
mod faults;
mod fuzz_corpus;
mod parsing;
mod sdk;
mod secrets;

use adapter_tastytrade::sim::Sim;
use adapter_tastytrade::{DecoratedTastytrade, TastytradeBroker};
use reconcile_core::testkit::build::{OrderExt, at, holding, order};
use reconcile_core::{BrokerSnapshot, OrderStatus, Side};
use secrecy::SecretString;

/// The simulator's client secret.
pub const SECRET: &str = "client-secret-7f3a9";
/// The simulator's refresh token.
pub const REFRESH: &str = "refresh-token-c41d2";
/// The simulator's clock at start.
pub const NOW: &str = "2025-11-07T15:00:00Z";
/// The short call.
pub const C640: &str = "QQQ   251219C00640000";
/// The long call.
pub const C645: &str = "QQQ   251219C00645000";

/// A simulator holding one short call spread, its profit target order, and a few others.
pub async fn world() -> (Sim, DecoratedTastytrade) {
    let (sim, broker) = undecorated_world().await;
    (sim, broker.decorated())
}

/// The same world, with the bare client (to change it before decorating it).
pub async fn undecorated_world() -> (Sim, TastytradeBroker) {
    let sim = Sim::start(at(NOW), SECRET, REFRESH).await.unwrap();
    let mut snap = BrokerSnapshot::new(at(NOW));
    snap.orders = vec![
        order("412345601", "5WT00001", "QQQ")
            .limit("0.60")
            .leg(C640, Side::BuyToClose, "1")
            .leg(C645, Side::SellToClose, "1")
            .submitted("2025-11-07T14:00:00Z"),
        order("412345602", "5WT00001", "QQQ")
            .status(OrderStatus::Pending)
            .limit("0.55")
            .leg(C640, Side::BuyToClose, "1")
            .submitted("2025-11-07T14:10:00Z"),
        order("412345603", "5WT00001", "QQQ")
            .status(OrderStatus::Cancelled)
            .limit("0.50")
            .leg(C640, Side::BuyToClose, "1")
            .submitted("2025-11-07T09:00:00Z"),
    ];
    snap.positions = Some(vec![
        holding("5WT00001", C640, "-1"),
        holding("5WT00001", C645, "1"),
    ]);
    sim.seed(&snap);
    let broker = TastytradeBroker::new(
        sim.base_url(),
        SecretString::from(SECRET),
        SecretString::from(REFRESH),
    )
    .unwrap()
    .with_rate(1000);
    (sim, broker)
}
