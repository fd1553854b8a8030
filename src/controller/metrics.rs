//! Prometheus metrics of the operator: reconciles, their duration, Ivy calls, and resources by
//! readiness. Labels are `&'static str` values, never `Debug` output.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::ivy::{
    Capabilities, CreatedSubscription, Dialect, IdempotencyKey, IvyApi, IvyError,
    RemoteSubscription, SharedIvyApi, SubscriptionPatch, SubscriptionRequest,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IvyCallLabels {
    operation: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadyLabels {
    ready: &'static str,
}

/// All metrics, registered once in `main`.
#[derive(Debug)]
pub struct Metrics {
    reconciles: Family<ResultLabels, Counter>,
    reconcile_duration: Histogram,
    ivy_calls: Family<IvyCallLabels, Counter>,
    resources: Family<ReadyLabels, Gauge>,
    readiness: Mutex<HashMap<String, &'static str>>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` under the `ivywh` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            ivy_calls: Family::default(),
            resources: Family::default(),
            readiness: Mutex::new(HashMap::new()),
        };
        let registry = registry.sub_registry_with_prefix("ivywh");
        registry.register(
            "reconciles",
            "Reconciles by result (success, or the failure kind)",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            metrics.reconcile_duration.clone(),
        );
        registry.register(
            "ivy_api_calls",
            "Calls to Ivy's API by operation and outcome",
            metrics.ivy_calls.clone(),
        );
        registry.register(
            "resources",
            "WebhookSubscriptions by Ready condition status",
            metrics.resources.clone(),
        );
        metrics
    }

    /// Metrics that are not exported anywhere (tests).
    pub fn unregistered() -> Self {
        Self::register(&mut Registry::default())
    }

    /// Counts one reconcile and its duration.
    pub fn observe_reconcile(&self, result: &'static str, started: Instant) {
        self.reconciles
            .get_or_create(&ResultLabels { result })
            .inc();
        self.reconcile_duration
            .observe(started.elapsed().as_secs_f64());
    }

    fn observe_ivy_call(&self, operation: &'static str, status: &'static str) {
        self.ivy_calls
            .get_or_create(&IvyCallLabels { operation, status })
            .inc();
    }

    /// Records the readiness of one resource (`None` when it is gone).
    pub fn set_readiness(&self, key: &str, ready: Option<&'static str>) {
        let mut readiness = self
            .readiness
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match ready {
            Some(state) => readiness.insert(key.to_owned(), state),
            None => readiness.remove(key),
        };
        for state in ["True", "False"] {
            let count = readiness.values().filter(|s| **s == state).count();
            self.resources
                .get_or_create(&ReadyLabels { ready: state })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }
}

/// An [`IvyApi`] that counts every call by operation and outcome.
pub struct InstrumentedIvy {
    inner: SharedIvyApi,
    metrics: std::sync::Arc<Metrics>,
}

impl InstrumentedIvy {
    pub fn new(inner: SharedIvyApi, metrics: std::sync::Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    fn record<T>(&self, operation: &'static str, result: &Result<T, IvyError>) {
        let status = match result {
            Ok(_) => "ok",
            Err(e) => e.metric_label(),
        };
        self.metrics.observe_ivy_call(operation, status);
    }
}

#[async_trait]
impl IvyApi for InstrumentedIvy {
    fn dialect(&self) -> Dialect {
        self.inner.dialect()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn create(
        &self,
        request: &SubscriptionRequest,
        key: &IdempotencyKey,
    ) -> Result<CreatedSubscription, IvyError> {
        let result = self.inner.create(request, key).await;
        self.record("create", &result);
        result
    }

    async fn get(&self, id: &str) -> Result<RemoteSubscription, IvyError> {
        let result = self.inner.get(id).await;
        self.record("get", &result);
        result
    }

    async fn update(
        &self,
        id: &str,
        patch: &SubscriptionPatch,
        key: &IdempotencyKey,
    ) -> Result<RemoteSubscription, IvyError> {
        let result = self.inner.update(id, patch, key).await;
        self.record("update", &result);
        result
    }

    async fn delete(&self, id: &str, key: &IdempotencyKey) -> Result<(), IvyError> {
        let result = self.inner.delete(id, key).await;
        self.record("delete", &result);
        result
    }

    async fn list(&self) -> Result<Vec<RemoteSubscription>, IvyError> {
        let result = self.inner.list().await;
        self.record("list", &result);
        result
    }

    async fn trigger_test(&self, id: &str) -> Result<(), IvyError> {
        let result = self.inner.trigger_test(id).await;
        self.record("trigger_test", &result);
        result
    }
}
