//! A blocking facade for one-off scripts: the seed's lesson is that a script must be simple and
//! correct. It owns a small single-threaded runtime and drives the async core on it.

use crate::executor::{ApplyOptions, ApplyReport};
use crate::plan::{Plan, Policy};
use crate::ports::{Broker, Store};
use crate::reconciler::{Reconciler, RunError};
use crate::report::Report;
use crate::{BrokerSnapshot, DiffOptions, LocalSnapshot};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// [`Reconciler`] without `async`.
pub struct BlockingReconciler {
    runtime: tokio::runtime::Runtime,
    broker: Arc<dyn Broker>,
    store: Arc<dyn Store>,
    /// Scope and grace.
    pub options: DiffOptions,
    /// Which fixes, and the rails.
    pub policy: Policy,
}

impl BlockingReconciler {
    /// Builds the runtime.
    ///
    /// # Errors
    /// An I/O error if the runtime cannot be built.
    pub fn new(broker: Arc<dyn Broker>, store: Arc<dyn Store>) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        Ok(Self {
            runtime,
            broker,
            store,
            options: DiffOptions::default(),
            policy: Policy::report_only(),
        })
    }

    fn with<T>(&self, f: impl AsyncFnOnce(&Reconciler<'_>) -> T) -> T {
        let r = Reconciler::new(self.broker.as_ref(), self.store.as_ref())
            .with_options(self.options.clone())
            .with_policy(self.policy.clone());
        self.runtime.block_on(f(&r))
    }

    /// Reads both sides.
    ///
    /// # Errors
    /// See [`Reconciler::read`].
    pub fn read(&self, now: DateTime<Utc>) -> Result<(LocalSnapshot, BrokerSnapshot), RunError> {
        self.with(async |r| r.read(now).await)
    }

    /// Reads and diffs.
    ///
    /// # Errors
    /// See [`Reconciler::diff`].
    pub fn diff(&self, now: DateTime<Utc>) -> Result<Report, RunError> {
        self.with(async |r| r.diff(now).await)
    }

    /// Reads, diffs and plans.
    ///
    /// # Errors
    /// See [`Reconciler::plan`].
    pub fn plan(&self, now: DateTime<Utc>) -> Result<(Report, Plan), RunError> {
        self.with(async |r| r.plan(now).await)
    }

    /// Applies an approved plan.
    ///
    /// # Errors
    /// See [`Reconciler::apply`].
    pub fn apply(&self, plan: &Plan, options: &ApplyOptions) -> Result<ApplyReport, RunError> {
        self.with(async |r| r.apply(plan, options).await)
    }
}
