//! The controller: watches `WebhookSubscription`s (and the Secrets it manages) and reconciles
//! each through the finalizer into [`apply`] or [`cleanup`].
//!
//! `apply` validates, reads the Secret and hands over to `converge`, a loop of pure planning
//! decisions acted on by one driver; `outcome` maps what stopped it to the `Ready` condition;
//! `target` owns the two writes (Secret and status); `remote` acts on subscriptions that may
//! not be the current one and is shared with `cleanup`.

pub mod apply;
pub mod backoff;
pub mod cleanup;
pub mod clock;
pub mod context;
mod converge;
pub mod desired;
pub mod error;
pub mod events;
pub mod marker;
pub mod metrics;
mod outcome;
mod remote;
pub mod restart;
pub mod secret;
pub mod status;
mod target;
pub mod validate;

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::{Action, Config as RuntimeConfig, Controller};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::{Predicate, PredicateConfig, WatchStreamExt, predicates, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

pub use context::{Context, ControllerConfig};
pub use error::Error;
pub use target::FIELD_MANAGER;

use crate::crd::{FINALIZER, WebhookSubscription};
use crate::ivy::error_chain;

/// Label selector of the Secrets the controller watches (and only these).
pub fn managed_secret_selector() -> String {
    format!("{}={}", secret::LABEL_MANAGED_BY, secret::MANAGED_BY)
}

/// Reconciles one resource: dispatches to apply or cleanup through the finalizer.
pub async fn reconcile(sub: Arc<WebhookSubscription>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = sub
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let api: Api<WebhookSubscription> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, sub, |event| async {
        match event {
            FinalizerEvent::Apply(sub) => apply::apply(sub, ctx.clone()).await,
            FinalizerEvent::Cleanup(sub) => cleanup::cleanup(sub, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    let label = match &result {
        Ok(_) => "success",
        Err(e) => e.inner().metric_label(),
    };
    ctx.metrics.observe_reconcile(label, started);
    result
}

/// Decides when to retry after a failed reconcile: per-object exponential backoff with jitter,
/// never sooner than a `Retry-After` Ivy sent.
pub fn error_policy(sub: Arc<WebhookSubscription>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = format!("{}/{}", sub.namespace().unwrap_or_default(), sub.name_any());
    let delay = ctx.backoff.next_delay(&key, error.retry_after());
    warn!(%key, error = %error_chain(error), retry_in_ms = delay.as_millis() as u64, "reconcile failed");
    Action::requeue(delay)
}

/// Annotation `kubectl apply` (client-side) keeps a full copy of the object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops from a cached resource what no reconcile reads: the managed fields (every writer's
/// field sets) and `kubectl apply`'s copy of the object, together most of its size.
fn trim_for_cache(sub: &mut WebhookSubscription) {
    sub.managed_fields_mut().clear();
    sub.annotations_mut().remove(LAST_APPLIED);
}

/// Runs the controller until `shutdown` resolves. `on_ready` is called once the watches have
/// listed everything (caches synced), for `/readyz`.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    on_ready: impl FnOnce() + Send + 'static,
) {
    let client: Client = ctx.client.clone();
    let (subs, secrets): (Api<WebhookSubscription>, Api<Secret>) = match &ctx.config.watch_namespace
    {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let secret_watch = watcher::Config::default().labels(&managed_secret_selector());
    // Our own reflector, so that readiness is the moment the first list is complete.
    let (reader, writer) = reflector::store::<WebhookSubscription>();
    let mut on_ready = Some(on_ready);
    let trigger = watcher(subs, watcher::Config::default().any_semantic())
        .default_backoff()
        .inspect(move |event| {
            if let Ok(watcher::Event::InitDone) = event
                && let Some(ready) = on_ready.take()
            {
                info!("caches synced");
                ready();
            }
        })
        .modify(trim_for_cache)
        .reflect(writer)
        .applied_objects()
        // The operator's own status writes change nothing a reconcile decides on; a spec
        // change or a deletion moves the generation, the rest is annotations and finalizers.
        .predicate_filter(
            predicates::generation
                .combine(predicates::annotations)
                .combine(predicates::finalizers),
            PredicateConfig::default(),
        );
    let controller = Controller::for_stream(trigger, reader)
        .owns(secrets, secret_watch)
        .with_config(RuntimeConfig::default().concurrency(ctx.config.concurrency))
        .graceful_shutdown_on(shutdown);
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(object = %object, "reconciled"),
                Err(error) => tracing::debug!(error = %error_chain(&error), "reconcile error"),
            }
        })
        .await;
    info!("controller stopped");
}
