//! Everything a reconcile needs, built once in `main` and shared by all reconciles.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::accounts::AccountRegistry;
use crate::controller::backoff::Backoff;
use crate::controller::clock::{Clock, SystemClock, elapsed_between};
use crate::controller::metrics::Metrics;
use crate::ivy::{SharedIvyApi, SigningSecret};

/// The controller's typed configuration (see `docs/configuration.md`).
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Namespace to watch; `None` watches all namespaces.
    pub watch_namespace: Option<String>,
    /// How often an unchanged resource is checked against Ivy for drift.
    pub resync_interval: Duration,
    /// How long both secrets stay valid during a rotation before the old subscription goes.
    pub rotation_grace_period: Duration,
    /// First delay after a transient failure.
    pub backoff_base: Duration,
    /// Longest delay between retries.
    pub backoff_max: Duration,
    /// How often a Secret conflict or a bad API key is looked at again.
    pub recheck_interval: Duration,
    /// Reconciles that may run at once.
    pub concurrency: u16,
    /// This replica's name (the pod name), shown as the reporting instance of Events.
    pub instance_name: Option<String>,
    /// Whether existing subscriptions may be taken over (the adoption annotation, and the
    /// `service` dialect's take-over of a subscription holding the URL).
    pub allow_adoption: bool,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            watch_namespace: None,
            resync_interval: Duration::from_secs(600),
            rotation_grace_period: Duration::from_secs(300),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            recheck_interval: Duration::from_secs(60),
            concurrency: 4,
            instance_name: None,
            allow_adoption: true,
        }
    }
}

/// When a resource was last found in step with Ivy, and for which inputs.
#[derive(Clone, Copy, Debug)]
struct Verified {
    at: Timestamp,
    fingerprint: u64,
}

/// Remembers recent successful checks against Ivy so that reconciles triggered by the
/// operator's own writes cost no Ivy call: at most one read per resync interval.
#[derive(Debug, Default)]
pub struct VerifiedCache {
    entries: Mutex<HashMap<String, Verified>>,
}

impl VerifiedCache {
    /// The fingerprint `key` was verified with, if that was less than `max_age` before `now`.
    pub fn fresh_fingerprint(&self, key: &str, max_age: Duration, now: Timestamp) -> Option<u64> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .filter(|v| elapsed_between(v.at, now) < max_age)
            .map(|v| v.fingerprint)
    }

    pub fn record(&self, key: &str, fingerprint: u64, now: Timestamp) {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                key.to_owned(),
                Verified {
                    at: now,
                    fingerprint,
                },
            );
    }

    pub fn forget(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

/// Shared state of the controller.
pub struct Context {
    pub client: Client,
    pub ivy: SharedIvyApi,
    /// The merchant app's signing secret, for the `service` dialect.
    pub app_signing_secret: Option<SigningSecret>,
    pub config: ControllerConfig,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub backoff: Backoff,
    pub verified: VerifiedCache,
    /// Where every reconcile reads the time (grace periods, cache ages, condition times).
    pub clock: Arc<dyn Clock>,
    /// The Ivy accounts resources may name (`spec.accountRef`); without it every resource uses
    /// `ivy` (tests, and resources without an accountRef).
    pub accounts: Option<Arc<AccountRegistry>>,
}

impl Context {
    pub fn new(
        client: Client,
        ivy: SharedIvyApi,
        app_signing_secret: Option<SigningSecret>,
        config: ControllerConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: "ivy-webhook-operator".into(),
            instance: config.instance_name.clone(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            backoff: Backoff::new(config.backoff_base, config.backoff_max),
            client,
            ivy,
            app_signing_secret,
            config,
            metrics,
            verified: VerifiedCache::default(),
            clock: Arc::new(SystemClock),
            accounts: None,
        }
    }

    /// The same context resolving `spec.accountRef` through `accounts`.
    pub fn with_accounts(mut self, accounts: Arc<AccountRegistry>) -> Self {
        self.accounts = Some(accounts);
        self
    }

    /// The same context reading time from `clock` (tests move it by hand).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The current time by the context's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}
