//! The emulator's state (model, deliveries, idempotency records, faults, request counts) and
//! [`EmulatorState`], the handle tests and the admin API use to look at and steer it.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use jiff::Timestamp;
use serde::Serialize;
use tokio::task::JoinSet;

use super::EmulatorConfig;
use super::deliveries::{self, Delivery};
use super::faults::{Fault, FaultSpec, Faults};
use super::model::{Merchant, Store, parse_any_id};
use super::payloads;
use crate::ivy::Dialect;

/// A stored answer for an `Idempotency-Key`.
#[derive(Clone, Debug)]
pub(crate) enum IdempotencyEntry {
    /// The first request with this key is still being handled.
    InFlight { fingerprint: Fingerprint },
    Done {
        fingerprint: Fingerprint,
        status: u16,
        content_type: Option<String>,
        body: Bytes,
    },
}

/// What makes two requests "the same" for idempotency: method, path and body (compared as
/// JSON when it parses, so key order and whitespace do not matter).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Fingerprint {
    pub method: String,
    pub path: String,
    pub body: FingerprintBody,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum FingerprintBody {
    Json(serde_json::Value),
    Raw(Bytes),
}

impl Fingerprint {
    pub fn new(method: &str, path: &str, body: &Bytes) -> Self {
        let body = match serde_json::from_slice(body) {
            Ok(value) => FingerprintBody::Json(value),
            Err(_) => FingerprintBody::Raw(body.clone()),
        };
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            body,
        }
    }
}

pub(crate) struct Inner {
    pub store: Store,
    pub deliveries: Vec<Delivery>,
    pub idempotency: HashMap<(Merchant, String), IdempotencyEntry>,
    pub idempotency_enabled: bool,
    pub faults: Faults,
    pub requests: BTreeMap<(String, String, u16), u64>,
}

impl Inner {
    fn new(idempotency_enabled: bool) -> Self {
        Self {
            store: Store::default(),
            deliveries: Vec::new(),
            idempotency: HashMap::new(),
            idempotency_enabled,
            faults: Faults::default(),
            requests: BTreeMap::new(),
        }
    }
}

/// Everything the server, the delivery workers and [`EmulatorState`] share.
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
        let idempotency = config.idempotency;
        Self {
            config,
            app_secret,
            delivery_http,
            inner: Mutex::new(Inner::new(idempotency)),
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

    /// The merchant an API key belongs to.
    pub fn merchant_for(&self, api_key: &str) -> Option<Merchant> {
        self.config
            .api_keys
            .iter()
            .position(|k| !k.is_empty() && k == api_key)
            .map(Merchant)
    }

    pub fn count_request(&self, method: &str, route: &str, status: u16) {
        *self
            .lock()
            .requests
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
    }
}

/// A subscription as the admin API shows it: every id form, the secret, who created it.
#[derive(Clone, Debug, Serialize)]
pub struct SubscriptionView {
    /// The UUID (= the `rest` id).
    pub id: String,
    pub rest_id: String,
    pub internal_id: String,
    pub service_id: String,
    /// Index of the API key (merchant) that owns it; never the key itself.
    pub merchant: usize,
    /// The dialect that created it.
    pub created_via: &'static str,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub active: bool,
    /// The secret its deliveries are signed with.
    pub signing_secret: String,
    /// `subscription` (its own) or `app` (the merchant app's, for `service`-created ones).
    pub secret_source: &'static str,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// How often one route answered one status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestCount {
    pub method: String,
    /// The route template (`/webhook/{id}`), or `<unmatched>`.
    pub route: String,
    pub status: u16,
    pub count: u64,
}

/// The admin event request could not be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendEventError {
    #[error("{0:?} is not in the event catalogue")]
    UnknownEvent(String),
    #[error("no subscription {0}")]
    NoSuchSubscription(String),
}

/// A handle on a running emulator's state, for assertions and for steering it.
#[derive(Clone)]
pub struct EmulatorState {
    pub(crate) shared: Arc<Shared>,
}

impl EmulatorState {
    /// Every subscription of every merchant, with its secret.
    pub fn subscriptions(&self) -> Vec<SubscriptionView> {
        let inner = self.shared.lock();
        inner
            .store
            .all()
            .iter()
            .map(|s| SubscriptionView {
                id: s.rest_id(),
                rest_id: s.rest_id(),
                internal_id: s.internal_id(),
                service_id: s.service_id(),
                merchant: s.merchant.0,
                created_via: s.created_via.as_str(),
                url: s.url.clone(),
                events: s.events.clone(),
                description: s.description.clone(),
                active: s.active,
                signing_secret: deliveries::secret_for(&self.shared, s),
                secret_source: if s.signing_secret.is_some() {
                    "subscription"
                } else {
                    "app"
                },
                created_at: s.created_at,
                updated_at: s.updated_at,
            })
            .collect()
    }

    /// The subscription with this id (in any dialect's format).
    pub fn subscription(&self, id: &str) -> Option<SubscriptionView> {
        let uuid = parse_any_id(id)?.hyphenated().to_string();
        self.subscriptions().into_iter().find(|s| s.id == uuid)
    }

    /// Deletes a subscription whatever its merchant; false if there was none.
    pub fn delete_subscription(&self, id: &str) -> bool {
        let Some(uuid) = parse_any_id(id) else {
            return false;
        };
        self.shared.lock().store.delete_any(uuid).is_some()
    }

    /// Every delivery so far, oldest first.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
    }

    /// Waits until `done` holds for the deliveries, or `timeout` passes; returns the last
    /// deliveries seen either way.
    pub async fn wait_for_deliveries(
        &self,
        timeout: Duration,
        done: impl Fn(&[Delivery]) -> bool,
    ) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let deliveries = self.deliveries();
            if done(&deliveries) || tokio::time::Instant::now() >= deadline {
                return deliveries;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a catalogue event with a realistic payload: to the one subscription `to` (any id
    /// form, active or not) or else to every active subscription that subscribed to it.
    pub fn send_event(
        &self,
        event_type: &str,
        to: Option<&str>,
        payload: Option<serde_json::Value>,
    ) -> Result<Vec<Delivery>, SendEventError> {
        if !super::catalogue::is_known(event_type) {
            return Err(SendEventError::UnknownEvent(event_type.to_owned()));
        }
        let targets = {
            let inner = self.shared.lock();
            match to {
                Some(id) => {
                    let found = parse_any_id(id).and_then(|uuid| inner.store.find_any(uuid));
                    match found {
                        Some(s) => vec![s.clone()],
                        None => return Err(SendEventError::NoSuchSubscription(id.to_owned())),
                    }
                }
                None => inner
                    .store
                    .all()
                    .iter()
                    .filter(|s| s.active && s.events.iter().any(|e| e == event_type))
                    .cloned()
                    .collect(),
            }
        };
        Ok(targets
            .iter()
            .map(|s| {
                let payload = payload
                    .clone()
                    .unwrap_or_else(|| payloads::payload(event_type, s.merchant.0));
                deliveries::send_event(&self.shared, s, event_type, &payload)
            })
            .collect())
    }

    /// Requests served so far, per method, route template and status.
    pub fn request_counts(&self) -> Vec<RequestCount> {
        self.shared
            .lock()
            .requests
            .iter()
            .map(|((method, route, status), count)| RequestCount {
                method: method.clone(),
                route: route.clone(),
                status: *status,
                count: *count,
            })
            .collect()
    }

    /// How many `method` requests `route` (a template) has served, whatever their status.
    pub fn request_count(&self, method: &str, route: &str) -> u64 {
        self.request_counts()
            .iter()
            .filter(|c| c.method.eq_ignore_ascii_case(method) && c.route == route)
            .map(|c| c.count)
            .sum()
    }

    /// Installs a fault; returns its id.
    pub fn add_fault(&self, spec: FaultSpec) -> u64 {
        self.shared.lock().faults.add(spec)
    }

    pub fn remove_fault(&self, id: u64) -> bool {
        self.shared.lock().faults.remove(id)
    }

    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    pub fn faults(&self) -> Vec<Fault> {
        self.shared.lock().faults.list()
    }

    /// Turns `Idempotency-Key` support on or off (off: the header is ignored).
    pub fn set_idempotency(&self, enabled: bool) {
        self.shared.lock().idempotency_enabled = enabled;
    }

    pub fn idempotency(&self) -> bool {
        self.shared.lock().idempotency_enabled
    }

    /// The merchant app's signing secret (`service` dialect deliveries).
    pub fn app_signing_secret(&self) -> String {
        self.shared.app_secret.clone()
    }

    /// Forgets everything: subscriptions, deliveries (pending ones are cancelled), idempotency
    /// records, faults and counts; idempotency goes back to its configured setting.
    pub fn reset(&self) {
        self.shared.abort_jobs();
        *self.shared.lock() = Inner::new(self.shared.config.idempotency);
    }

    /// Which dialect created the subscription `id`, if it exists.
    pub fn created_via(&self, id: &str) -> Option<Dialect> {
        let uuid = parse_any_id(id)?;
        self.shared
            .lock()
            .store
            .find_any(uuid)
            .map(|s| s.created_via)
    }
}
