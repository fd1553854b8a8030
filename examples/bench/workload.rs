//! What the benchmark's client does to WebhookSubscriptions: create many at a given
//! concurrency, change a spec, delete them all. The same code creates the floor's resources
//! and the operator's, so both runs pay the same for their creates.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use ivy_webhook_operator::crd::WebhookSubscription;

/// Name of the `i`th resource of a run.
pub fn name(i: usize) -> String {
    format!("sub-{i:05}")
}

/// A WebhookSubscription with a URL of its own (Ivy refuses a second subscription to the same
/// URL of one merchant).
pub fn manifest(namespace: &str, name: &str) -> anyhow::Result<WebhookSubscription> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "webhooks.ivy.dev/v1alpha1",
        "kind": "WebhookSubscription",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "url": format!("https://bench.example/{namespace}/{name}"),
            "events": ["order_created", "refund_succeeded"],
            "description": format!("ivy bench {name}"),
        },
    }))?)
}

/// Creates one resource; returns it as the apiserver stored it.
pub async fn create(
    api: &Api<WebhookSubscription>,
    name: &str,
) -> anyhow::Result<WebhookSubscription> {
    let namespace = api
        .namespace()
        .context("the benchmark's Api has no namespace")?;
    let sub = manifest(namespace, name)?;
    api.create(&PostParams::default(), &sub)
        .await
        .with_context(|| format!("cannot create {namespace}/{name}"))
}

/// Creates resources `0..n`, `concurrency` at a time; returns how long it took.
pub async fn create_all(
    client: &Client,
    namespace: &str,
    n: usize,
    concurrency: u16,
) -> anyhow::Result<Duration> {
    let api: Api<WebhookSubscription> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move { create(&api, &name(i)).await.map(drop) }
        })
        .buffer_unordered(usize::from(concurrency))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(started.elapsed())
}

/// Changes the description of one resource (a spec change the operator must send to Ivy).
pub async fn change_description(
    client: &Client,
    namespace: &str,
    name: &str,
    description: &str,
) -> anyhow::Result<()> {
    let api: Api<WebhookSubscription> = Api::namespaced(client.clone(), namespace);
    let patch = json!({"spec": {"description": description}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("cannot change the spec of {namespace}/{name}"))?;
    Ok(())
}

/// Deletes the given resources one by one, `concurrency` at a time, as `kubectl delete ivywh
/// --all` does (a single delete-collection of 10,000 resources with finalizers outlasts the
/// apiserver's 60 s request timeout on a small machine); returns how long the requests took.
pub async fn delete_all(
    client: &Client,
    namespace: &str,
    names: Vec<String>,
    concurrency: u16,
) -> anyhow::Result<Duration> {
    let api: Api<WebhookSubscription> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    futures::stream::iter(names)
        .map(|name| {
            let api = api.clone();
            async move {
                api.delete(&name, &DeleteParams::background())
                    .await
                    .map(drop)
                    .with_context(|| format!("cannot delete {namespace}/{name}"))
            }
        })
        .buffer_unordered(usize::from(concurrency))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(started.elapsed())
}
