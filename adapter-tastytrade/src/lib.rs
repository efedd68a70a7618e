//! `adapter-tastytrade`: reconcile's [`reconcile_core::Broker`] for TastyTrade, over reqwest.
//!
//! Wire types in TastyTrade's own kebab-case spelling live in [`wire`]; [`mapping`] is the one
//! place they become domain types. With the `sim` feature, [`sim`] is a stateful simulator that
//! speaks the same wire format on loopback, for tests and the demo.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use adapter_tastytrade::{TastytradeBroker, PRODUCTION};
//! use reconcile_core::Broker;
//! let broker = TastytradeBroker::from_env(PRODUCTION)?; // TASTYTRADE_CLIENT_SECRET, TASTYTRADE_REFRESH_TOKEN
//! let accounts = broker.accounts().await?;
//! # Ok(()) }
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod client;
#[doc(hidden)]
pub mod fuzzing;
pub mod mapping;
#[cfg(feature = "sim")]
pub mod sim;
pub mod wire;

pub use client::{
    BuildError, DecoratedTastytrade, ENV_ACCOUNT, ENV_CLIENT_SECRET, ENV_REFRESH_TOKEN, PAGE_SIZE,
    PRODUCTION, SANDBOX, TastytradeBroker,
};
