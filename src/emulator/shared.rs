//! The state every part of a running emulator shares: the configuration, the one lock over
//! the mutable state (store, deliveries, idempotency records, faults, counters), and the
//! background delivery jobs that shutdown and reset abort.

use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::task::JoinSet;

use super::config::EmulatorConfig;
use super::counters::Counters;
use super::delivery_log::DeliveryLog;
use super::faults::Faults;
use super::idempotency::IdempotencyStore;
use super::model::Merchant;
use super::store::Store;

/// Everything behind the lock.
pub(crate) struct Inner {
    pub store: Store,
    pub deliveries: DeliveryLog,
    pub idempotency: IdempotencyStore,
    pub idempotency_enabled: bool,
    pub faults: Faults,
    pub counters: Counters,
    /// Dialect requests seen, for the `proxy-502` quirk's "every Nth".
    pub dialect_requests: u64,
    /// 409 answers sent, for the `mixed-409` quirk's rotation.
    pub conflicts: u64,
}

impl Inner {
    /// The state a fresh (or reset) emulator starts with.
    pub fn new(config: &EmulatorConfig) -> Self {
        Self {
            store: Store::default(),
            deliveries: DeliveryLog::default(),
            idempotency: IdempotencyStore::default(),
            idempotency_enabled: config.honours_idempotency(),
            faults: Faults::default(),
            counters: Counters::new(config.mutation_log_capacity),
            dialect_requests: 0,
            conflicts: 0,
        }
    }
}

/// Everything the server, the delivery workers and `EmulatorState` share.
pub(crate) struct Shared {
    pub config: EmulatorConfig,
    /// The merchant app's signing secret (signs deliveries of `service`-created subscriptions).
    pub app_secret: String,
    pub delivery_http: reqwest::Client,
    inner: Mutex<Inner>,
    tasks: Mutex<JoinSet<()>>,
}

impl Shared {
    pub fn new(config: EmulatorConfig, app_secret: String, delivery_http: reqwest::Client) -> Self {
        let inner = Inner::new(&config);
        Self {
            config,
            app_secret,
            delivery_http,
            inner: Mutex::new(inner),
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    /// The state lock. Never held across an `.await`; a panic while holding it cannot leave
    /// the plain data inconsistent enough to matter for an emulator, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn tasks(&self) -> MutexGuard<'_, JoinSet<()>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a background job (a delivery) that shutdown and reset abort.
    pub fn spawn(&self, job: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks();
        while tasks.try_join_next().is_some() {}
        tasks.spawn(job);
    }

    /// Aborts every background job.
    pub fn abort_jobs(&self) {
        self.tasks().abort_all();
    }

    /// Forgets everything and starts over as configured (pending deliveries are cancelled).
    pub fn reset(&self) {
        self.abort_jobs();
        *self.lock() = Inner::new(&self.config);
    }

    /// The merchant an API key belongs to.
    pub fn merchant_for(&self, api_key: &[u8]) -> Option<Merchant> {
        self.config
            .api_keys
            .iter()
            .position(|k| !k.is_empty() && k.as_bytes() == api_key)
            .map(Merchant)
    }
}
