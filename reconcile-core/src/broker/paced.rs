//! [`Paced`]: keeps a broker to a request rate, so that the adapter, not the caller, respects
//! the broker's limits.

use super::decorate_broker;
use crate::ports::{BrokerError, Call};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};

/// A broker whose every request first waits for a slot of a rate limit (GCRA, via `governor`).
///
/// [`Broker::ready`](crate::ports::Broker::ready) takes a slot ahead of time: the request that
/// follows then goes at once. The executor uses it to wait *before* it writes an intent, so the
/// window between journal and send stays as small as it can be.
pub struct Paced<B> {
    inner: B,
    limiter: DefaultDirectRateLimiter,
    /// Slots taken by `ready` and not yet used.
    prepaid: AtomicU32,
}

impl<B> Paced<B> {
    /// Paces `inner` to `quota`.
    pub fn new(inner: B, quota: Quota) -> Self {
        Self {
            inner,
            limiter: RateLimiter::direct(quota),
            prepaid: AtomicU32::new(0),
        }
    }

    /// At most `n` requests a second, in bursts of at most `n`.
    pub fn per_second(inner: B, n: NonZeroU32) -> Self {
        Self::new(inner, Quota::per_second(n))
    }

    async fn before(&self, _call: Call) {
        self.limiter.until_ready().await;
        self.prepaid.fetch_add(1, Ordering::AcqRel);
    }

    async fn around<T, F, Fut>(&self, _call: Call, op: F) -> Result<T, BrokerError>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, BrokerError>> + Send,
        T: Send,
    {
        let used_prepaid = self
            .prepaid
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if !used_prepaid {
            self.limiter.until_ready().await;
        }
        op().await
    }
}

decorate_broker!(Paced);
