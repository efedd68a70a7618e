//! AlpacaBroker against the simulator over real HTTP on loopback, and the wire format against
//! documented payload shapes.

mod conformance;
mod contract;
mod faults;
mod fuzz_corpus;
mod parsing;
mod sdk;
mod secrets;

use adapter_alpaca::AlpacaBroker;
use adapter_alpaca::sim::Sim;
use reconcile_core::testkit::build::{OrderExt, at, holding, order};
use reconcile_core::{AccountId, BrokerSnapshot, OrderStatus, Side};
use secrecy::SecretString;

/// The simulator's key id.
pub const KEY_ID: &str = "PKSIM7Q2R4T6Y8U0I1O3";
/// The simulator's secret key.
pub const SECRET_KEY: &str = "sim-secret-5c9e1a7b3d";
/// The simulator's clock at start.
pub const NOW: &str = "2025-11-06T16:00:00Z";
/// The simulator's account number.
pub const ACCOUNT: &str = "PA3ALPACA01";

/// The world's take profit: the parent of an OCO pair.
pub const TARGET: &str = "5a1c0000-0000-4000-8000-000000000001";
/// The world's stop: the held child of the OCO pair.
pub const STOP: &str = "5a1c0000-0000-4000-8000-000000000002";
/// The world's filled entry.
pub const FILLED: &str = "5a1c0000-0000-4000-8000-000000000003";
/// The world's cancelled order.
pub const CANCELLED: &str = "5a1c0000-0000-4000-8000-000000000004";

/// The simulator's account.
pub fn acct() -> AccountId {
    ACCOUNT.into()
}

/// A simulator holding 100 AAPL guarded by an OCO pair (target 250, stop 180), 40 WFC short,
/// a filled entry and a cancelled order.
pub async fn world() -> (Sim, AlpacaBroker) {
    let sim = Sim::start(at(NOW), KEY_ID, SECRET_KEY).await.unwrap();
    let mut snap = BrokerSnapshot::new(at(NOW));
    snap.orders = vec![
        order(TARGET, ACCOUNT, "AAPL")
            .limit("250")
            .leg("AAPL", Side::Sell, "100")
            .oco(TARGET)
            .submitted("2025-11-06T14:00:00Z"),
        order(STOP, ACCOUNT, "AAPL")
            .status(OrderStatus::Held)
            .stop("180")
            .leg("AAPL", Side::Sell, "100")
            .oco(TARGET)
            .submitted("2025-11-06T14:00:00Z"),
        order(FILLED, ACCOUNT, "AAPL")
            .status(OrderStatus::Filled)
            .limit("200")
            .leg("AAPL", Side::Buy, "100")
            .filled()
            .submitted("2025-11-06T13:00:00Z"),
        order(CANCELLED, ACCOUNT, "WFC")
            .status(OrderStatus::Cancelled)
            .limit("70")
            .leg("WFC", Side::Buy, "40")
            .submitted("2025-11-06T09:00:00Z"),
    ];
    snap.positions = Some(vec![
        holding(ACCOUNT, "AAPL", "100"),
        holding(ACCOUNT, "WFC", "-40"),
    ]);
    sim.seed(&snap);
    let broker = client(&sim);
    (sim, broker)
}

/// A bare client of the simulator.
pub fn client(sim: &Sim) -> AlpacaBroker {
    AlpacaBroker::new(
        sim.base_url(),
        SecretString::from(KEY_ID),
        SecretString::from(SECRET_KEY),
    )
    .unwrap()
}
