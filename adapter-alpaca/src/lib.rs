//! `adapter-alpaca`: reconcile's [`reconcile_core::Broker`] for Alpaca's trading API v2, over
//! reqwest.
//!
//! Wire types in Alpaca's own spelling live in [`wire`]; [`mapping`] is the one place they
//! become domain types (bracket, OCO and OTO legs become orders of their own; mleg legs one
//! order's legs). With the `sim` feature, [`sim`] is a stateful simulator of the same API on
//! loopback, written apart from both.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use adapter_alpaca::{AlpacaBroker, PAPER};
//! use reconcile_core::Broker;
//! let broker = AlpacaBroker::from_env(PAPER)?.decorated(); // APCA_API_KEY_ID, APCA_API_SECRET_KEY
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
    AlpacaBroker, BuildError, DecoratedAlpaca, ENV_KEY_ID, ENV_SECRET_KEY, LIVE,
    MAX_CLIENT_ORDER_ID, PAGE_SIZE, PAPER,
};
