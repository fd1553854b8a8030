//! The apiserver's floor: a plain client (the same kube client library, the operator's
//! concurrency) doing only the writes a subscription cannot do without: create the resource,
//! write its Secret, write its status. No operator watches this namespace and no Ivy is called,
//! so this is the least time any operator could take for the same N on this control plane.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use ivy_webhook_operator::crd::WebhookSubscription;

use crate::apiserver::{self, Writes};
use crate::cpu::{CpuUse, CpuWatch};
use crate::workload;

/// The field manager the operator uses, so that the floor's applies cost what its own do.
const FIELD_MANAGER: &str = "ivy-webhook-operator";

/// Subscriptions written, untimed, before the floor is measured: the first requests to a
/// fresh apiserver (connections, the CRD's handlers) are slower than the rest, and the
/// operator's run, which comes later, never sees them.
const WARM_UP: usize = 20;

/// Runs the floor for `n` subscriptions (after an untimed warm-up); returns the wall time,
/// the apiserver's count of the writes meanwhile and where the CPU went.
pub async fn run(
    client: &Client,
    namespace: &str,
    n: usize,
    concurrency: u16,
    cpu: &CpuWatch,
) -> anyhow::Result<(Duration, Writes, CpuUse)> {
    let warm_up = (0..WARM_UP).map(|i| format!("warm-up-{i:02}"));
    write_all(client, namespace, warm_up, concurrency).await?;
    let before = apiserver::snapshot(client).await?;
    let cpu_before = cpu.sample();
    let started = Instant::now();
    write_all(client, namespace, (0..n).map(workload::name), concurrency).await?;
    let elapsed = started.elapsed();
    let used = cpu.sample().since(&cpu_before);
    let writes = apiserver::snapshot(client).await?.since(&before);
    Ok((elapsed, writes, used))
}

async fn write_all(
    client: &Client,
    namespace: &str,
    names: impl Iterator<Item = String>,
    concurrency: u16,
) -> anyhow::Result<()> {
    let subs: Api<WebhookSubscription> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    futures::stream::iter(names)
        .map(|name| {
            let (subs, secrets) = (subs.clone(), secrets.clone());
            async move { one(&subs, &secrets, &name).await }
        })
        .buffer_unordered(usize::from(concurrency))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// The three writes of one subscription, in the order the operator must make them.
async fn one(
    subs: &Api<WebhookSubscription>,
    secrets: &Api<Secret>,
    name: &str,
) -> anyhow::Result<()> {
    let sub = workload::create(subs, name).await?;
    let name = sub.name_any();
    let uid = sub.uid().context("the apiserver returned no uid")?;
    let secret_name = sub.secret_name();
    // Same shape and sizes as the operator's Secret (docs/secret-contract.md).
    let subscription_id = uuid::Uuid::new_v4().to_string();
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name,
            "labels": {
                "app.kubernetes.io/managed-by": "ivy-webhook-operator",
                "webhooks.ivy.dev/subscription": name,
            },
            "ownerReferences": [{
                "apiVersion": WebhookSubscription::api_version(&()),
                "kind": WebhookSubscription::kind(&()),
                "name": name,
                "uid": uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "type": "Opaque",
        "stringData": {
            "signing-secret": format!("whsec_{}", uuid::Uuid::new_v4().simple()),
            "subscription-id": subscription_id,
            "url": sub.spec.url,
        },
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    secrets
        .patch(&secret_name, &params, &Patch::Apply(&secret))
        .await
        .with_context(|| format!("floor: cannot apply Secret {secret_name}"))?;
    let status = json!({
        "apiVersion": WebhookSubscription::api_version(&()),
        "kind": WebhookSubscription::kind(&()),
        "status": {
            "subscriptionId": subscription_id,
            "secretName": secret_name,
            "observedGeneration": sub.metadata.generation,
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "Subscribed",
                "message": "the subscription at Ivy matches the spec and the Secret holds its signing secret",
                "observedGeneration": sub.metadata.generation,
                "lastTransitionTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            }],
        },
    });
    subs.patch_status(&name, &params, &Patch::Apply(&status))
        .await
        .with_context(|| format!("floor: cannot apply the status of {name}"))?;
    Ok(())
}
