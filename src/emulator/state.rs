//! [`EmulatorState`], the handle in-process tests and the admin API use to look inside a
//! running emulator and to steer it: subscriptions with their secrets, deliveries, events,
//! request counts and the mutation log, faults, idempotency, reset.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::counters::{Mutation, Operation, OperationCount, RequestCount};
use super::deliveries;
use super::delivery_log::Delivery;
use super::faults::{Fault, FaultSpec};
use super::model::{Subscription, parse_any_id};
use super::payloads;
use super::quirks::Quirks;
use super::shared::Shared;
use crate::ivy::Dialect;

/// A subscription as the admin API shows it: every id form, the secret, who created it.
#[derive(Clone, Debug, Serialize)]
pub struct SubscriptionView {
    /// The UUID (= the `rest` id).
    pub id: String,
    pub rest_id: String,
    pub internal_id: String,
    pub service_id: String,
    /// Index of the API key (merchant) that owns it, in configuration order; never the key.
    pub merchant: usize,
    /// The merchant's name as the `service` dialect shows it (`merchant_1` for index 0).
    pub merchant_name: String,
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

impl SubscriptionView {
    fn of(shared: &Shared, s: &Subscription) -> Self {
        Self {
            id: s.rest_id(),
            rest_id: s.rest_id(),
            internal_id: s.internal_id(),
            service_id: s.service_id(),
            merchant: s.merchant.0,
            merchant_name: s.merchant.name(),
            created_via: s.created_via.as_str(),
            url: s.url.clone(),
            events: s.events.clone(),
            description: s.description.clone(),
            active: s.active,
            signing_secret: deliveries::secret_for(shared, s),
            secret_source: if s.signing_secret.is_some() {
                "subscription"
            } else {
                "app"
            },
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
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
    /// Every subscription of every merchant, with its secret, in creation order.
    pub fn subscriptions(&self) -> Vec<SubscriptionView> {
        let inner = self.shared.lock();
        inner
            .store
            .all()
            .map(|s| SubscriptionView::of(&self.shared, s))
            .collect()
    }

    /// The subscriptions of merchant number `merchant` (its API key's index), in creation
    /// order.
    pub fn subscriptions_of(&self, merchant: usize) -> Vec<SubscriptionView> {
        let inner = self.shared.lock();
        inner
            .store
            .all()
            .filter(|s| s.merchant.0 == merchant)
            .map(|s| SubscriptionView::of(&self.shared, s))
            .collect()
    }

    /// The subscription with this id (in any dialect's format).
    pub fn subscription(&self, id: &str) -> Option<SubscriptionView> {
        let uuid = parse_any_id(id)?;
        let inner = self.shared.lock();
        let found = inner.store.find_any(uuid)?;
        Some(SubscriptionView::of(&self.shared, found))
    }

    /// How many subscriptions all merchants hold.
    pub fn subscription_count(&self) -> usize {
        self.shared.lock().store.total()
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
        self.shared.lock().deliveries.all().to_vec()
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
        let targets: Vec<Subscription> = {
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

    /// Requests served so far (dialect, admin and unmatched), per method, route template and
    /// status.
    pub fn request_counts(&self) -> Vec<RequestCount> {
        self.shared.lock().counters.route_counts()
    }

    /// How many `method` requests `route` (a template) has served, whatever their status.
    pub fn request_count(&self, method: &str, route: &str) -> u64 {
        self.request_counts()
            .iter()
            .filter(|c| c.method.eq_ignore_ascii_case(method) && c.route == route)
            .map(|c| c.count)
            .sum()
    }

    /// Dialect requests served so far, per dialect, operation and status.
    pub fn operation_counts(&self) -> Vec<OperationCount> {
        self.shared.lock().counters.operation_counts()
    }

    /// How many `operation` requests `dialect` has served, whatever their status.
    pub fn operation_count(&self, dialect: Dialect, operation: Operation) -> u64 {
        self.operation_counts()
            .iter()
            .filter(|c| c.dialect == dialect.as_str() && c.operation == operation)
            .map(|c| c.count)
            .sum()
    }

    /// Sets every request count (both kinds) back to zero; subscriptions and the mutation log
    /// stay.
    pub fn reset_request_counts(&self) {
        self.shared.lock().counters.reset_counts();
    }

    /// The logged mutating requests, oldest first (bounded: the oldest are dropped first).
    pub fn mutations(&self) -> Vec<Mutation> {
        self.mutations_after(0)
    }

    /// The logged mutating requests with a `seq` greater than `after`.
    pub fn mutations_after(&self, after: u64) -> Vec<Mutation> {
        self.shared.lock().counters.mutations_after(after)
    }

    /// Empties the mutation log.
    pub fn clear_mutations(&self) {
        self.shared.lock().counters.clear_mutations();
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

    /// The quirks the emulator was started with.
    pub fn quirks(&self) -> Quirks {
        self.shared.config.quirks.clone()
    }

    /// The merchant app's signing secret (`service` dialect deliveries).
    pub fn app_signing_secret(&self) -> String {
        self.shared.app_secret.clone()
    }

    /// Forgets everything: subscriptions, deliveries (pending ones are cancelled), idempotency
    /// records, faults, counts and the mutation log; idempotency goes back to its configured
    /// setting.
    pub fn reset(&self) {
        self.shared.reset();
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
