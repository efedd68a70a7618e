//! [`Faulty`] and [`Recording`]: decorators for tests. One fails any call as scripted (before it
//! reaches the broker, or after the broker acted and the answer was lost); the other keeps a
//! log of every call.

use super::lock;
use crate::broker::decorate_broker;
use crate::ports::{BrokerError, Call};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;

/// What a scripted failure does.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this error; the call never reaches the broker.
    Fail(BrokerError),
    /// The call reaches the broker and does its work; then the answer is lost (a timeout after
    /// the broker acted).
    LoseAnswer,
}

/// A broker whose calls fail as scripted, in order, each fault once.
pub struct Faulty<B> {
    inner: B,
    faults: Mutex<VecDeque<(Call, Fault)>>,
}

impl<B> Faulty<B> {
    /// Wraps `inner` with no faults scripted.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            faults: Mutex::new(VecDeque::new()),
        }
    }

    /// Makes the next call of kind `call` fail as `fault` says.
    pub fn fail_next(&self, call: Call, fault: Fault) {
        lock(&self.faults).push_back((call, fault));
    }

    /// Makes the next `n` calls of kind `call` fail in transport, never reaching the broker.
    pub fn break_transport(&self, call: Call, n: usize) {
        for _ in 0..n {
            self.fail_next(call, Fault::Fail(transport(call, "connection reset")));
        }
    }

    /// How many scripted faults have not fired yet.
    pub fn pending_faults(&self) -> usize {
        lock(&self.faults).len()
    }

    async fn before(&self, _call: Call) {}

    async fn around<T, F, Fut>(&self, call: Call, op: F) -> Result<T, BrokerError>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, BrokerError>> + Send,
        T: Send,
    {
        let fault = {
            let mut faults = lock(&self.faults);
            let i = faults.iter().position(|(c, _)| *c == call);
            i.and_then(|i| faults.remove(i)).map(|(_, f)| f)
        };
        match fault {
            None => op().await,
            Some(Fault::Fail(e)) => Err(e),
            Some(Fault::LoseAnswer) => {
                // The broker acts; what it answered never arrives.
                let _ = op().await;
                Err(transport(call, "timed out after the request was sent"))
            }
        }
    }
}

fn transport(call: Call, message: &str) -> BrokerError {
    BrokerError::Transport {
        broker: "faulty".to_owned(),
        endpoint: call.as_str().to_owned(),
        message: message.to_owned(),
    }
}

decorate_broker!(Faulty);

/// A broker that keeps a log of the calls made to it.
pub struct Recording<B> {
    inner: B,
    calls: Mutex<Vec<Call>>,
}

impl<B> Recording<B> {
    /// Wraps `inner` with an empty log.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            calls: Mutex::new(Vec::new()),
        }
    }

    /// The calls made so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    /// How many calls of one kind were made.
    pub fn count(&self, call: Call) -> usize {
        lock(&self.calls).iter().filter(|c| **c == call).count()
    }

    async fn before(&self, _call: Call) {}

    async fn around<T, F, Fut>(&self, call: Call, op: F) -> Result<T, BrokerError>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, BrokerError>> + Send,
        T: Send,
    {
        lock(&self.calls).push(call);
        op().await
    }
}

decorate_broker!(Recording);
