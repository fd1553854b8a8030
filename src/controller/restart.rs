//! Restart on rotation: when a reconcile changes the stored signing secret, the workloads named
//! in `spec.restartOnRotation` get the pod-template annotation `webhooks.ivy.dev/secret-hash`
//! set to a hash of the new secret, which rolls their pods like `kubectl rollout restart`.
//!
//! Each workload is patched at most once per secret: one whose annotation already holds the
//! hash is left alone. A workload that is missing, or that the operator may not touch (the
//! chart grants this only with `restartOnRotation.enabled=true`), is a Warning Event on the
//! resource and never fails the reconcile: the secret is stored either way.

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::{debug, info};

use crate::controller::context::Context;
use crate::controller::secret::StoredSecret;
use crate::controller::target::FIELD_MANAGER;
use crate::crd::{ANNOTATION_SECRET_HASH, WebhookSubscription, WorkloadKind, WorkloadRef};
use crate::ivy::SigningSecret;

/// Event reason: a workload's pods are being restarted for a new secret.
pub const REASON_RESTARTED: &str = "WorkloadRestarted";
/// Event reason: a workload named in `spec.restartOnRotation` does not exist.
pub const REASON_MISSING: &str = "RestartTargetMissing";
/// Event reason: the operator may not read or patch the workload.
pub const REASON_FORBIDDEN: &str = "RestartForbidden";
/// Event reason: reading or patching the workload failed otherwise.
pub const REASON_FAILED: &str = "RestartFailed";

/// What became of one workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartResult {
    /// The pod template now carries the new hash.
    Restarted,
    /// It already carried it: nothing to do.
    AlreadyCurrent,
    /// The workload does not exist.
    Missing,
}

/// One failed call on a workload.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read {kind} {name}")]
    GetWorkload {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to patch the pod template of {kind} {name}")]
    PatchWorkload {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    fn source_status(&self) -> Option<u16> {
        match self {
            Error::GetWorkload { source, .. } | Error::PatchWorkload { source, .. } => match source
            {
                kube::Error::Api(status) => Some(status.code),
                _ => None,
            },
        }
    }
}

/// Whether this reconcile's Secret write gave receivers a secret they have not seen: the
/// signing secret changed, and not because the resource got its very first one (a resource
/// whose status already named a subscription, or whose Secret did, had one before).
pub fn restart_due(
    sub: &WebhookSubscription,
    original: &StoredSecret,
    stored: &StoredSecret,
) -> bool {
    let changed =
        stored.signing_secret.is_some() && stored.signing_secret != original.signing_secret;
    let had_one = original.signing_secret.is_some()
        || original.subscription_id.is_some()
        || sub
            .status
            .as_ref()
            .is_some_and(|s| s.subscription_id.is_some());
    changed && had_one && !sub.spec.restart_on_rotation.is_empty()
}

/// The annotation value for `secret`: a short SHA-256 digest (it names the secret's version,
/// never reveals it).
pub fn secret_hash(secret: &SigningSecret) -> String {
    let digest = Sha256::digest(secret.expose().as_bytes());
    hex::encode(&digest[..8])
}

/// The merge patch that sets only the hash annotation of a workload's pod template.
pub fn workload_patch(hash: &str) -> Value {
    json!({
        "spec": {"template": {"metadata": {"annotations": {ANNOTATION_SECRET_HASH: hash}}}}
    })
}

/// The hash annotation the workload's pod template carries, if any.
pub fn current_hash(workload: &DynamicObject) -> Option<&str> {
    workload.data["spec"]["template"]["metadata"]["annotations"][ANNOTATION_SECRET_HASH].as_str()
}

fn api_resource(kind: WorkloadKind) -> ApiResource {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
    match kind {
        WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
        WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        WorkloadKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
    }
}

/// Sets the hash of `secret` on one workload unless it is there already.
async fn restart_one(
    ctx: &Context,
    namespace: &str,
    workload: &WorkloadRef,
    hash: &str,
) -> Result<RestartResult, Error> {
    let kind = workload.kind.as_str();
    let name = workload.name.clone();
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), namespace, &api_resource(workload.kind));
    let found = api
        .get_opt(&name)
        .await
        .map_err(|source| Error::GetWorkload {
            kind,
            name: name.clone(),
            source,
        })?;
    let Some(found) = found else {
        return Ok(RestartResult::Missing);
    };
    if current_hash(&found) == Some(hash) {
        return Ok(RestartResult::AlreadyCurrent);
    }
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    match api
        .patch(&name, &params, &Patch::Merge(workload_patch(hash)))
        .await
    {
        Ok(_) => Ok(RestartResult::Restarted),
        // Deleted between the read and the patch.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(RestartResult::Missing),
        Err(source) => Err(Error::PatchWorkload { kind, name, source }),
    }
}

/// Restarts every workload of `spec.restartOnRotation` for the signing secret in `stored`, and
/// reports each result as an Event. Never fails: the secret is stored already.
pub async fn restart_workloads(ctx: &Context, sub: &WebhookSubscription, stored: &StoredSecret) {
    let Some(secret) = &stored.signing_secret else {
        return;
    };
    let Some(namespace) = sub.namespace() else {
        return;
    };
    let hash = secret_hash(secret);
    for workload in &sub.spec.restart_on_rotation {
        let kind = workload.kind.as_str();
        let name = &workload.name;
        let result = restart_one(ctx, &namespace, workload, &hash).await;
        let (type_, reason, note) = match result {
            Ok(RestartResult::Restarted) => {
                info!(%namespace, kind, %name, "restarting a workload for the new signing secret");
                (
                    EventType::Normal,
                    REASON_RESTARTED,
                    format!(
                        "the signing secret changed: restarting the pods of {kind} {name} (pod-template annotation {ANNOTATION_SECRET_HASH}={hash})"
                    ),
                )
            }
            Ok(RestartResult::AlreadyCurrent) => {
                debug!(%namespace, kind, %name, "workload already restarted for this secret");
                continue;
            }
            Ok(RestartResult::Missing) => (
                EventType::Warning,
                REASON_MISSING,
                format!(
                    "{kind} {name}, named in spec.restartOnRotation, does not exist in namespace {namespace}: nothing was restarted for the new signing secret"
                ),
            ),
            Err(error) if error.source_status() == Some(403) => (
                EventType::Warning,
                REASON_FORBIDDEN,
                format!(
                    "the operator may not read or patch {kind} {name}: install the chart with restartOnRotation.enabled=true (it grants get and patch on Deployments, StatefulSets and DaemonSets), or restart its pods yourself"
                ),
            ),
            Err(error) => (
                EventType::Warning,
                REASON_FAILED,
                format!(
                    "{}; restart the pods of {kind} {name} yourself",
                    crate::ivy::error_chain(&error)
                ),
            ),
        };
        publish(ctx, sub, type_, reason, note).await;
    }
}

/// Publishes one Event about the resource; a failure to publish is only logged.
async fn publish(
    ctx: &Context,
    sub: &WebhookSubscription,
    type_: EventType,
    reason: &str,
    note: String,
) {
    // One series per workload message (the recorder folds Events by reason and action).
    let digest = hex::encode(&Sha256::digest(note.as_bytes())[..4]);
    let event = Event {
        type_,
        reason: reason.to_owned(),
        action: format!("{reason}-{digest}"),
        note: Some(note),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &sub.object_ref(&())).await {
        tracing::warn!(%error, reason, "failed to publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::test_support::sub;
    use crate::crd::{WebhookSubscriptionStatus, WorkloadKind};

    fn with_target(mut sub: WebhookSubscription) -> WebhookSubscription {
        sub.spec.restart_on_rotation = vec![WorkloadRef {
            kind: WorkloadKind::Deployment,
            name: "receiver".into(),
        }];
        sub
    }

    fn holding(secret: &str) -> StoredSecret {
        StoredSecret {
            subscription_id: Some("sub-1".into()),
            signing_secret: Some(SigningSecret::new(secret)),
            ..StoredSecret::default()
        }
    }

    #[test]
    fn the_patch_sets_only_the_hash_annotation_of_the_pod_template() {
        assert_eq!(
            workload_patch("abc"),
            json!({"spec": {"template": {"metadata": {"annotations": {"webhooks.ivy.dev/secret-hash": "abc"}}}}})
        );
    }

    #[test]
    fn the_hash_names_the_secret_without_revealing_it() {
        let one = secret_hash(&SigningSecret::new("whsec_one"));
        assert_eq!(one.len(), 16);
        assert_eq!(one, secret_hash(&SigningSecret::new("whsec_one")));
        assert_ne!(one, secret_hash(&SigningSecret::new("whsec_two")));
        assert!(!one.contains("whsec"));
    }

    #[test]
    fn a_changed_secret_restarts_the_named_workloads() {
        let sub = with_target(sub());
        assert!(restart_due(
            &sub,
            &holding("whsec_old"),
            &holding("whsec_new")
        ));
    }

    #[test]
    fn an_unchanged_secret_restarts_nothing() {
        let sub = with_target(sub());
        assert!(!restart_due(
            &sub,
            &holding("whsec_old"),
            &holding("whsec_old")
        ));
    }

    #[test]
    fn nothing_is_restarted_without_targets() {
        assert!(!restart_due(
            &sub(),
            &holding("whsec_old"),
            &holding("whsec_new")
        ));
    }

    #[test]
    fn the_first_secret_of_a_new_resource_restarts_nothing() {
        let sub = with_target(sub());
        assert!(!restart_due(
            &sub,
            &StoredSecret::default(),
            &holding("whsec_new")
        ));
    }

    #[test]
    fn a_secret_recreated_after_the_secret_was_lost_restarts() {
        // The Secret is gone, but the status names the subscription it held.
        let mut sub = with_target(sub());
        sub.status = Some(WebhookSubscriptionStatus {
            subscription_id: Some("sub-0".into()),
            ..WebhookSubscriptionStatus::default()
        });
        assert!(restart_due(
            &sub,
            &StoredSecret::default(),
            &holding("whsec_new")
        ));
    }

    #[test]
    fn the_first_secret_of_an_adopted_subscription_restarts() {
        let sub = with_target(sub());
        let adopted = StoredSecret {
            subscription_id: Some("sub-0".into()),
            ..StoredSecret::default()
        };
        assert!(restart_due(&sub, &adopted, &holding("whsec_new")));
    }

    #[test]
    fn a_workload_without_the_annotation_has_no_hash() {
        let workload: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "receiver"},
            "spec": {"template": {"metadata": {"labels": {"app": "r"}}}},
        }))
        .unwrap();
        assert_eq!(current_hash(&workload), None);
        let annotated: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "receiver"},
            "spec": {"template": {"metadata": {"annotations": {ANNOTATION_SECRET_HASH: "abc"}}}},
        }))
        .unwrap();
        assert_eq!(current_hash(&annotated), Some("abc"));
    }

    mod against_the_api_server {
        //! `restart_workloads` against kube's mock client: every request is scripted.
        use std::sync::Arc;

        use http::{Method, Request, Response, StatusCode};
        use kube::client::Body;

        use super::*;
        use crate::controller::context::{Context, ControllerConfig};
        use crate::controller::metrics::Metrics;
        use crate::controller::test_support::FakeIvy;

        const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/shop/deployments/receiver";
        const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/shop/events";

        /// Serves `(method, path, status, body)` in order, fails on anything else, and returns
        /// the request bodies.
        async fn run(script: Vec<(Method, &'static str, StatusCode, Value)>) -> Vec<Value> {
            let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
            let server = tokio::spawn(async move {
                let mut seen = Vec::new();
                for (method, path, status, answer) in script {
                    let (request, send) = handle.next_request().await.expect("a request");
                    assert_eq!(request.method(), method, "{}", request.uri());
                    assert_eq!(request.uri().path(), path);
                    let bytes = request.into_body().collect_bytes().await.unwrap();
                    seen.push(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
                    send.send_response(
                        Response::builder()
                            .status(status)
                            .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                            .unwrap(),
                    );
                }
                if let Some((request, _)) = handle.next_request().await {
                    panic!("unexpected request {} {}", request.method(), request.uri());
                }
                seen
            });
            let client = kube::Client::new(service, "default");
            let ctx = Context::new(
                client,
                Arc::new(FakeIvy::default()),
                None,
                ControllerConfig::default(),
                Arc::new(Metrics::unregistered()),
            );
            restart_workloads(&ctx, &with_target(sub()), &holding("whsec_new")).await;
            drop(ctx);
            server.await.unwrap()
        }

        fn deployment(annotations: Value) -> Value {
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "receiver", "namespace": "shop"},
                "spec": {"template": {"metadata": {"annotations": annotations}}},
            })
        }

        fn status(code: u16, reason: &str) -> Value {
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code})
        }

        fn new_hash() -> String {
            secret_hash(&SigningSecret::new("whsec_new"))
        }

        #[tokio::test]
        async fn a_workload_with_an_older_hash_is_patched_once_and_reported() {
            let seen = run(vec![
                (
                    Method::GET,
                    DEPLOYMENT,
                    StatusCode::OK,
                    deployment(json!({ANNOTATION_SECRET_HASH: "old"})),
                ),
                (
                    Method::PATCH,
                    DEPLOYMENT,
                    StatusCode::OK,
                    deployment(json!({})),
                ),
                (Method::POST, EVENTS, StatusCode::CREATED, json!({})),
            ])
            .await;
            assert_eq!(seen[1], workload_patch(&new_hash()));
            assert_eq!(seen[2]["reason"], REASON_RESTARTED);
            assert_eq!(seen[2]["type"], "Normal");
        }

        #[tokio::test]
        async fn a_workload_that_has_the_hash_already_is_left_alone() {
            run(vec![(
                Method::GET,
                DEPLOYMENT,
                StatusCode::OK,
                deployment(json!({ANNOTATION_SECRET_HASH: new_hash()})),
            )])
            .await;
        }

        #[tokio::test]
        async fn a_missing_workload_is_a_warning_event() {
            let seen = run(vec![
                (
                    Method::GET,
                    DEPLOYMENT,
                    StatusCode::NOT_FOUND,
                    status(404, "NotFound"),
                ),
                (Method::POST, EVENTS, StatusCode::CREATED, json!({})),
            ])
            .await;
            assert_eq!(seen[1]["reason"], REASON_MISSING);
            assert_eq!(seen[1]["type"], "Warning");
        }

        #[tokio::test]
        async fn a_forbidden_workload_is_a_warning_event_naming_the_chart_option() {
            let seen = run(vec![
                (
                    Method::GET,
                    DEPLOYMENT,
                    StatusCode::FORBIDDEN,
                    status(403, "Forbidden"),
                ),
                (Method::POST, EVENTS, StatusCode::CREATED, json!({})),
            ])
            .await;
            assert_eq!(seen[1]["reason"], REASON_FORBIDDEN);
            let note = seen[1]["note"].as_str().unwrap();
            assert!(note.contains("restartOnRotation.enabled=true"), "{note}");
        }
    }
}
