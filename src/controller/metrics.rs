//! Prometheus metrics of the controller: reconciles, their duration, Ivy calls and their
//! latency, resources by readiness, and each resource's last signing-secret rotation. Labels
//! are `&'static str` values, never `Debug` output, except a resource's namespace and name.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use jiff::Timestamp;

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
struct IvyLatencyLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    namespace: String,
    name: String,
}

impl ResourceLabels {
    /// From a `namespace/name` key.
    fn of(key: &str) -> Self {
        let (namespace, name) = key.split_once('/').unwrap_or(("", key));
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// Buckets of the Ivy call latency histogram: 10ms to about 40s (past the request timeout).
fn ivy_latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 13))
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
    ivy_latency: Family<IvyLatencyLabels, Histogram, fn() -> Histogram>,
    resources: Family<ReadyLabels, Gauge>,
    readiness: Mutex<HashMap<String, &'static str>>,
    last_rotation: Family<ResourceLabels, Gauge>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` under the `ivywh` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            ivy_calls: Family::default(),
            ivy_latency: Family::new_with_constructor(ivy_latency_histogram),
            resources: Family::default(),
            readiness: Mutex::new(HashMap::new()),
            last_rotation: Family::default(),
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
            "ivy_api_call_duration_seconds",
            "Duration of calls to Ivy's API by operation and outcome",
            metrics.ivy_latency.clone(),
        );
        registry.register(
            "resources",
            "WebhookSubscriptions by Ready condition status",
            metrics.resources.clone(),
        );
        registry.register(
            "signing_secret_rotation_timestamp_seconds",
            "When each WebhookSubscription's signing secret was created or last rotated (unix seconds)",
            metrics.last_rotation.clone(),
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

    fn observe_ivy_call(&self, operation: &'static str, status: &'static str, started: Instant) {
        self.ivy_calls
            .get_or_create(&IvyCallLabels { operation, status })
            .inc();
        self.ivy_latency
            .get_or_create(&IvyLatencyLabels {
                operation,
                outcome: status,
            })
            .observe(started.elapsed().as_secs_f64());
    }

    /// Records when the signing secret of the resource `namespace/name` was created or last
    /// rotated (`None` forgets it).
    pub fn set_last_rotation(&self, key: &str, at: Option<Timestamp>) {
        let labels = ResourceLabels::of(key);
        match at {
            Some(at) => {
                self.last_rotation
                    .get_or_create(&labels)
                    .set(at.as_second());
            }
            None => {
                self.last_rotation.remove(&labels);
            }
        }
    }

    /// Records the readiness of one resource (`None` when it is gone).
    pub fn set_readiness(&self, key: &str, ready: Option<&'static str>) {
        let mut readiness = self
            .readiness
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match ready {
            Some(state) => readiness.insert(key.to_owned(), state),
            None => {
                // The resource is gone: so is its rotation series.
                self.set_last_rotation(key, None);
                readiness.remove(key)
            }
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

    fn record<T>(&self, operation: &'static str, started: Instant, result: &Result<T, IvyError>) {
        let status = match result {
            Ok(_) => "ok",
            Err(e) => e.metric_label(),
        };
        self.metrics.observe_ivy_call(operation, status, started);
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
        let started = Instant::now();
        let result = self.inner.create(request, key).await;
        self.record("create", started, &result);
        result
    }

    async fn get(&self, id: &str) -> Result<RemoteSubscription, IvyError> {
        let started = Instant::now();
        let result = self.inner.get(id).await;
        self.record("get", started, &result);
        result
    }

    async fn update(
        &self,
        id: &str,
        patch: &SubscriptionPatch,
        key: &IdempotencyKey,
    ) -> Result<RemoteSubscription, IvyError> {
        let started = Instant::now();
        let result = self.inner.update(id, patch, key).await;
        self.record("update", started, &result);
        result
    }

    async fn delete(&self, id: &str, key: &IdempotencyKey) -> Result<(), IvyError> {
        let started = Instant::now();
        let result = self.inner.delete(id, key).await;
        self.record("delete", started, &result);
        result
    }

    async fn list(&self) -> Result<Vec<RemoteSubscription>, IvyError> {
        let started = Instant::now();
        let result = self.inner.list().await;
        self.record("list", started, &result);
        result
    }

    async fn trigger_test(&self, id: &str) -> Result<(), IvyError> {
        let started = Instant::now();
        let result = self.inner.trigger_test(id).await;
        self.record("trigger_test", started, &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::test_support::FakeIvy;
    use crate::ivy::SubscriptionRequest;

    fn exported(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text
    }

    #[tokio::test]
    async fn ivy_calls_are_timed_by_operation_and_outcome() {
        let mut registry = Registry::default();
        let metrics = std::sync::Arc::new(Metrics::register(&mut registry));
        let ivy = InstrumentedIvy::new(std::sync::Arc::new(FakeIvy::default()), metrics);
        ivy.get("missing").await.unwrap_err();
        let request = SubscriptionRequest {
            url: "https://a.example/h".into(),
            events: vec!["test".into()],
            description: None,
            active: true,
        };
        ivy.create(&request, &IdempotencyKey::random())
            .await
            .unwrap();
        let text = exported(&registry);
        assert!(
            text.contains(
                r#"ivywh_ivy_api_call_duration_seconds_count{operation="create",outcome="ok"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"ivywh_ivy_api_call_duration_seconds_count{operation="get",outcome="not_found"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ivywh_ivy_api_calls_total{operation="create",status="ok"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn the_rotation_time_is_exported_per_resource_and_forgotten_with_it() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let at: Timestamp = "2026-06-01T12:00:00Z".parse().unwrap();
        metrics.set_last_rotation("shop/orders", Some(at));
        metrics.set_readiness("shop/orders", Some("True"));
        let series = format!(
            r#"ivywh_signing_secret_rotation_timestamp_seconds{{namespace="shop",name="orders"}} {}"#,
            at.as_second()
        );
        assert!(
            exported(&registry).contains(&series),
            "{}",
            exported(&registry)
        );
        metrics.set_readiness("shop/orders", None);
        let text = exported(&registry);
        assert!(!text.contains(r#"name="orders""#), "{text}");
    }
}
