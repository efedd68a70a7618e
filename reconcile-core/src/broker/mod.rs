//! Decorators: brokers that wrap a [`Broker`] and implement it again, so that policy composes
//! around any adapter — [`Paced`] keeps to a request rate, [`Retrying`] retries what may be
//! retried, [`ReadOnly`] refuses every change. The test kit adds `Faulty` and `Recording`.
//!
//! ```
//! use reconcile_core::broker::{Paced, Retrying};
//! use reconcile_core::memory::InMemoryBroker;
//! use std::num::NonZeroU32;
//! let broker = Retrying::new(Paced::per_second(InMemoryBroker::default(), NonZeroU32::new(20).unwrap()));
//! ```

mod paced;
mod read_only;
mod retrying;

pub use paced::Paced;
pub use read_only::ReadOnly;
pub use retrying::Retrying;

/// Implements [`Broker`](crate::ports::Broker) for a decorator `$ty` over an inner broker in
/// field `inner`: every request goes through the decorator's own
/// `async fn around<T>(&self, call: Call, op: impl Fn() -> Fut) -> Result<T, BrokerError>`, which
/// may run `op` once, many times, or not at all. The provided list methods are not forwarded:
/// they page through the decorated page methods, so each page passes the decorator.
macro_rules! decorate_broker {
    ($ty:ident) => {
        impl<B> $ty<B> {
            /// The broker it decorates.
            pub fn inner(&self) -> &B {
                &self.inner
            }
        }

        #[::async_trait::async_trait]
        impl<B: $crate::ports::Broker> $crate::ports::Broker for $ty<B> {
            fn name(&self) -> String {
                self.inner.name()
            }

            fn supports_client_order_id(&self) -> bool {
                self.inner.supports_client_order_id()
            }

            fn supports_oco(&self) -> bool {
                self.inner.supports_oco()
            }

            async fn ready(&self, call: $crate::ports::Call) {
                self.before(call).await;
                self.inner.ready(call).await;
            }

            async fn accounts(
                &self,
            ) -> Result<Vec<$crate::ids::AccountId>, $crate::ports::BrokerError> {
                self.around($crate::ports::Call::Accounts, || self.inner.accounts())
                    .await
            }

            async fn working_orders_page(
                &self,
                account: &$crate::ids::AccountId,
                page: Option<$crate::ports::PageToken>,
            ) -> Result<$crate::ports::Page<$crate::model::Order>, $crate::ports::BrokerError> {
                self.around($crate::ports::Call::WorkingOrders, || {
                    self.inner.working_orders_page(account, page.clone())
                })
                .await
            }

            async fn order_history_page(
                &self,
                account: &$crate::ids::AccountId,
                since: ::chrono::DateTime<::chrono::Utc>,
                page: Option<$crate::ports::PageToken>,
            ) -> Result<$crate::ports::Page<$crate::model::Order>, $crate::ports::BrokerError> {
                self.around($crate::ports::Call::OrderHistory, || {
                    self.inner.order_history_page(account, since, page.clone())
                })
                .await
            }

            async fn positions(
                &self,
                account: &$crate::ids::AccountId,
            ) -> Result<Vec<$crate::model::BrokerPosition>, $crate::ports::BrokerError> {
                self.around($crate::ports::Call::Positions, || {
                    self.inner.positions(account)
                })
                .await
            }

            async fn order(
                &self,
                account: &$crate::ids::AccountId,
                id: &$crate::ids::OrderId,
            ) -> Result<Option<$crate::model::Order>, $crate::ports::BrokerError> {
                self.around($crate::ports::Call::Order, || self.inner.order(account, id))
                    .await
            }

            async fn find_by_client_order_id_page(
                &self,
                account: &$crate::ids::AccountId,
                client_order_id: &$crate::ids::ClientOrderId,
                page: Option<$crate::ports::PageToken>,
            ) -> Result<$crate::ports::Page<$crate::model::Order>, $crate::ports::BrokerError> {
                self.around($crate::ports::Call::FindByClientOrderId, || {
                    self.inner
                        .find_by_client_order_id_page(account, client_order_id, page.clone())
                })
                .await
            }

            async fn cancel(
                &self,
                account: &$crate::ids::AccountId,
                id: &$crate::ids::OrderId,
            ) -> Result<$crate::ports::CancelOutcome, $crate::ports::BrokerError> {
                self.around($crate::ports::Call::Cancel, || {
                    self.inner.cancel(account, id)
                })
                .await
            }

            async fn place(
                &self,
                order: &$crate::ports::PlaceOrder,
            ) -> Result<$crate::model::Order, $crate::ports::BrokerError> {
                self.around($crate::ports::Call::Place, || self.inner.place(order))
                    .await
            }

            async fn replace(
                &self,
                original: &$crate::model::Order,
                changes: &$crate::ports::ReplaceOrder,
            ) -> Result<$crate::model::Order, $crate::ports::BrokerError> {
                self.around($crate::ports::Call::Replace, || {
                    self.inner.replace(original, changes)
                })
                .await
            }

            async fn place_oco(
                &self,
                take_profit: &$crate::ports::PlaceOrder,
                stop_loss: &$crate::ports::PlaceOrder,
            ) -> Result<$crate::ports::OcoOrders, $crate::ports::BrokerError> {
                self.around($crate::ports::Call::PlaceOco, || {
                    self.inner.place_oco(take_profit, stop_loss)
                })
                .await
            }
        }

        impl<B: ::std::fmt::Debug> ::std::fmt::Debug for $ty<B> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_tuple(stringify!($ty)).field(&self.inner).finish()
            }
        }

        impl<B> ::std::ops::Deref for $ty<B> {
            type Target = B;
            fn deref(&self) -> &B {
                &self.inner
            }
        }
    };
}
pub(crate) use decorate_broker;
