//! The two ports: [`Broker`] (what the broker holds, and the orders we send it) and [`Store`]
//! (our own records). Adapters implement them; nothing in the core knows a broker's or a
//! database's name.

mod broker;
mod store;

pub use broker::*;
pub use store::*;
