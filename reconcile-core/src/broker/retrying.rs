//! [`Retrying`]: retries the calls that may be retried, with exponential backoff and jitter,
//! honouring a broker's `Retry-After`. A placement or a replacement is never sent again: after
//! a lost answer the executor looks its client order id up instead (tower's rule: a request
//! that must not be re-sent says so, here through [`Call::is_idempotent`]).

use super::decorate_broker;
use crate::ports::{BrokerError, Call};
use backon::{ExponentialBuilder, FuturesTimerSleeper, Retryable};
use std::future::Future;
use std::time::Duration;

/// A broker whose idempotent calls are retried on transport errors and rate limits.
pub struct Retrying<B> {
    inner: B,
    retries: usize,
    min_delay: Duration,
    max_delay: Duration,
}

impl<B> Retrying<B> {
    /// Four retries, from 200 ms up to 10 s apart, with jitter: a broker that is briefly down or
    /// throttling recovers within that; one that stays down fails the read, which is then
    /// never taken as empty.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            retries: 4,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }

    /// Sets how many times a call is retried.
    #[must_use]
    pub fn with_retries(mut self, retries: usize) -> Self {
        self.retries = retries;
        self
    }

    /// Sets the first and the longest delay between tries.
    #[must_use]
    pub fn with_delays(mut self, min: Duration, max: Duration) -> Self {
        self.min_delay = min;
        self.max_delay = max.max(min);
        self
    }

    async fn before(&self, _call: Call) {}

    async fn around<T, F, Fut>(&self, call: Call, op: F) -> Result<T, BrokerError>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, BrokerError>> + Send,
        T: Send,
    {
        if !call.is_idempotent() {
            return op().await;
        }
        let policy = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.retries)
            .with_jitter();
        op.retry(policy)
            .sleep(FuturesTimerSleeper)
            .when(|e| {
                matches!(
                    e,
                    BrokerError::RateLimited { .. } | BrokerError::Transport { .. }
                )
            })
            .adjust(|e, dur| match e {
                BrokerError::RateLimited {
                    retry_after: Some(ra),
                    ..
                } => Some(*ra),
                _ => dur,
            })
            .notify(|e, wait| tracing::debug!(%call, error = %e, ?wait, "retrying a broker call"))
            .await
    }
}

decorate_broker!(Retrying);
