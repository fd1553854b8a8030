//! Reconcile paths against kube's mock client (tower-test) and an in-memory Ivy: every request
//! the operator makes to the apiserver is scripted, so an unexpected write fails the test.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::apply::apply;
use super::cleanup::cleanup;
use super::context::{Context, ControllerConfig};
use super::metrics::Metrics;
use super::secret::{
    ANNOTATION_CREATE_ATTEMPT, KEY_SIGNING_SECRET, KEY_SUBSCRIPTION_ID, StoredSecret,
    desired_secret,
};
use super::status::{Outcome, Reason, compute_status};
use super::test_support::{FakeIvy, secret_of, sub};
use crate::controller::marker::marked_description;
use crate::crd::{ANNOTATION_PAUSED, DeletionPolicy, WebhookSubscription};
use crate::ivy::{IvyError, RemoteSubscription, SigningSecret};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One expected apiserver request and the answer to give.
struct Expect {
    method: Method,
    path: &'static str,
    status: StatusCode,
    /// Builds the response body from the request body (which it may also assert on).
    respond: Box<dyn Fn(&Value) -> Value + Send>,
}

fn expect(
    method: Method,
    path: &'static str,
    status: StatusCode,
    respond: impl Fn(&Value) -> Value + Send + 'static,
) -> Expect {
    Expect {
        method,
        path,
        status,
        respond: Box::new(respond),
    }
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})
}

const SECRET_PATH: &str = "/api/v1/namespaces/shop/secrets/orders-ivy-webhook";
const STATUS_PATH: &str =
    "/apis/webhooks.ivy.dev/v1alpha1/namespaces/shop/webhooksubscriptions/orders/status";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/shop/events";

/// The apiserver's answer to a status patch: the resource carrying the patched status.
fn as_resource(patch: &Value) -> Value {
    let mut object = serde_json::to_value(sub()).unwrap();
    object["status"] = patch["status"].clone();
    object
}

/// The write-ahead record of a create: the attempt, and no secret yet.
fn attempt_recorded() -> Expect {
    expect(Method::PATCH, SECRET_PATH, StatusCode::OK, |body| {
        let attempt = &body["metadata"]["annotations"][ANNOTATION_CREATE_ATTEMPT];
        assert!(
            attempt.as_str().unwrap().starts_with("ivywh-create-"),
            "{body}"
        );
        assert!(body["data"].get(KEY_SIGNING_SECRET).is_none(), "{body}");
        body.clone()
    })
}

fn event_posted() -> Expect {
    expect(Method::POST, EVENTS_PATH, StatusCode::CREATED, |body| {
        body.clone()
    })
}

/// Serves `script` in order and fails on any other request; returns the request bodies seen.
fn serve(mut handle: Handle, script: Vec<Expect>) -> tokio::task::JoinHandle<Vec<Value>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        for step in script {
            let (request, send) = handle.next_request().await.unwrap_or_else(|| {
                panic!("expected {} {} but got no request", step.method, step.path)
            });
            assert_eq!(request.method(), step.method, "for {}", request.uri());
            assert_eq!(request.uri().path(), step.path);
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            let answer = (step.respond)(&body);
            seen.push(body);
            send.send_response(
                Response::builder()
                    .status(step.status)
                    .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                    .unwrap(),
            );
        }
        if let Some((request, _)) = handle.next_request().await {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
        seen
    })
}

fn context(ivy: Arc<FakeIvy>) -> (Arc<Context>, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let config = ControllerConfig {
        backoff_base: Duration::from_millis(100),
        ..ControllerConfig::default()
    };
    let ctx = Context::new(client, ivy, None, config, Arc::new(Metrics::unregistered()));
    (Arc::new(ctx), handle)
}

/// Runs `f(ctx)`, then drops the context so the script sees the end of the requests.
async fn run_with<F, Fut>(ivy: Arc<FakeIvy>, script: Vec<Expect>, f: F) -> (Action, Vec<Value>)
where
    F: FnOnce(Arc<Context>) -> Fut,
    Fut: std::future::Future<Output = Result<Action, super::Error>>,
{
    let (ctx, handle) = context(ivy);
    let server = serve(handle, script);
    let action = tokio::time::timeout(Duration::from_secs(10), f(ctx))
        .await
        .expect("reconcile hung")
        .expect("reconcile failed");
    (action, server.await.unwrap())
}

fn b64(text: &str) -> Value {
    use k8s_openapi::ByteString;
    serde_json::to_value(ByteString(text.as_bytes().to_vec())).unwrap()
}

fn ready_of(status_patch: &Value) -> &Value {
    status_patch["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
}

fn remote_for(sub: &WebhookSubscription, id: &str) -> RemoteSubscription {
    RemoteSubscription {
        id: id.into(),
        url: sub.spec.url.clone(),
        events: sub
            .spec
            .events
            .iter()
            .map(|e| e.as_str().to_owned())
            .collect(),
        description: Some(marked_description(sub.spec.description.as_deref(), "uid-1")),
        active: Some(true),
    }
}

fn our_secret(sub: &WebhookSubscription, id: &str) -> Secret {
    let stored = StoredSecret {
        subscription_id: Some(id.into()),
        signing_secret: Some(SigningSecret::new("whsec_held")),
        url: Some(sub.spec.url.clone()),
        ..StoredSecret::default()
    };
    desired_secret(sub, &stored, true)
}

#[tokio::test]
async fn new_resource_records_the_attempt_creates_at_ivy_then_writes_secret_then_status() {
    let ivy = Arc::new(FakeIvy::default());
    let script = vec![
        expect(Method::GET, SECRET_PATH, StatusCode::NOT_FOUND, |_| {
            not_found()
        }),
        attempt_recorded(),
        expect(Method::PATCH, SECRET_PATH, StatusCode::OK, |body| {
            assert_eq!(body["data"][KEY_SIGNING_SECRET], b64("whsec_1"));
            assert_eq!(body["data"][KEY_SUBSCRIPTION_ID], b64("sub-1"));
            assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "uid-1");
            let annotations = &body["metadata"]["annotations"];
            assert!(
                annotations.get(ANNOTATION_CREATE_ATTEMPT).is_none(),
                "{body}"
            );
            body.clone()
        }),
        event_posted(),
        expect(Method::PATCH, STATUS_PATH, StatusCode::OK, |body| {
            assert_eq!(body["status"]["subscriptionId"], "sub-1");
            let ready = ready_of(body);
            assert_eq!(ready["status"], "True");
            assert_eq!(ready["reason"], "Subscribed");
            as_resource(body)
        }),
    ];
    let (action, seen) = run_with(ivy.clone(), script, |ctx| apply(Arc::new(sub()), ctx)).await;
    // One Ivy call: no list after a first create in the happy path.
    assert_eq!(ivy.calls(), ["create"]);
    assert_eq!(action, Action::requeue(Duration::from_secs(600)));
    let event = &seen[3];
    assert_eq!(event["reason"], "Created");
    assert!(
        !event.to_string().contains("whsec_"),
        "secret leaked into an Event"
    );
    assert!(
        !seen[4].to_string().contains("whsec_"),
        "secret leaked into status"
    );
}

#[tokio::test]
async fn steady_state_makes_no_write_and_reads_ivy_once_per_resync() {
    let mut resource = sub();
    let ivy = Arc::new(FakeIvy::with(remote_for(&resource, "sub-9")));
    let outcome = Outcome::new(
        Reason::Subscribed,
        "subscription sub-9 matches the spec; its signing secret is in Secret orders-ivy-webhook",
        Some("sub-9".into()),
    );
    resource.status = Some(compute_status(&resource, &outcome, Timestamp::UNIX_EPOCH));
    let secret = serde_json::to_value(our_secret(&resource, "sub-9")).unwrap();
    let resource = Arc::new(resource);

    let (ctx, handle) = context(ivy.clone());
    let reads = vec![
        expect(Method::GET, SECRET_PATH, StatusCode::OK, {
            let secret = secret.clone();
            move |_| secret.clone()
        }),
        expect(Method::GET, SECRET_PATH, StatusCode::OK, move |_| {
            secret.clone()
        }),
    ];
    let server = serve(handle, reads);
    for _ in 0..2 {
        let action = apply(resource.clone(), ctx.clone()).await.unwrap();
        assert_eq!(action, Action::requeue(Duration::from_secs(600)));
    }
    drop(ctx);
    server.await.unwrap();
    // The second reconcile (as triggered by any watch event) costs no Ivy call.
    assert_eq!(ivy.calls(), ["get"]);
}

#[tokio::test]
async fn drift_at_ivy_is_reverted_with_an_event() {
    let resource = sub();
    let mut changed = remote_for(&resource, "sub-9");
    changed.url = "https://elsewhere.example/hook".into();
    changed.events = vec!["test".into()];
    let ivy = Arc::new(FakeIvy::with(changed));
    let secret = serde_json::to_value(our_secret(&resource, "sub-9")).unwrap();
    let script = vec![
        expect(Method::GET, SECRET_PATH, StatusCode::OK, move |_| {
            secret.clone()
        }),
        event_posted(),
        expect(Method::PATCH, STATUS_PATH, StatusCode::OK, as_resource),
    ];
    let (_, seen) = run_with(ivy.clone(), script, |ctx| apply(Arc::new(resource), ctx)).await;
    assert_eq!(ivy.calls(), ["get", "update"]);
    let remote = ivy.subscriptions.lock().unwrap()["sub-9"].clone();
    assert_eq!(remote.url, "https://shop.example.com/webhooks/ivy");
    assert_eq!(remote.events, ["order_created", "refund_succeeded"]);
    assert_eq!(seen[1]["reason"], "Updated");
    assert!(seen[1]["note"].as_str().unwrap().contains("url, events"));
}

#[tokio::test]
async fn foreign_secret_is_never_touched_and_reported() {
    let ivy = Arc::new(FakeIvy::default());
    let foreign =
        serde_json::to_value(secret_of("orders-ivy-webhook", BTreeMap::new(), None)).unwrap();
    let script = vec![
        expect(Method::GET, SECRET_PATH, StatusCode::OK, move |_| {
            foreign.clone()
        }),
        event_posted(),
        expect(Method::PATCH, STATUS_PATH, StatusCode::OK, |body| {
            let ready = ready_of(body);
            assert_eq!(ready["status"], "False");
            assert_eq!(ready["reason"], "SecretConflict");
            as_resource(body)
        }),
    ];
    let (action, _) = run_with(ivy.clone(), script, |ctx| apply(Arc::new(sub()), ctx)).await;
    assert!(
        ivy.calls().is_empty(),
        "no Ivy call with a conflicting Secret"
    );
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
}

#[tokio::test]
async fn paused_resource_makes_no_ivy_call() {
    let ivy = Arc::new(FakeIvy::default());
    let mut resource = sub();
    resource.metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_PAUSED.to_owned(),
        "true".to_owned(),
    )]));
    let script = vec![expect(Method::PATCH, STATUS_PATH, StatusCode::OK, |body| {
        assert_eq!(ready_of(body)["reason"], "Paused");
        as_resource(body)
    })];
    let (action, _) = run_with(ivy.clone(), script, |ctx| apply(Arc::new(resource), ctx)).await;
    assert!(ivy.calls().is_empty());
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn ivy_validation_error_becomes_a_condition_with_ivys_message() {
    let ivy = Arc::new(FakeIvy::default());
    *ivy.fail_next.lock().unwrap() = Some(IvyError::Validation {
        message: "Must be a valid HTTPS URL.".into(),
        code: Some("invalid_endpoint_url".into()),
    });
    let script = vec![
        expect(Method::GET, SECRET_PATH, StatusCode::NOT_FOUND, |_| {
            not_found()
        }),
        attempt_recorded(),
        event_posted(),
        expect(Method::PATCH, STATUS_PATH, StatusCode::OK, |body| {
            let ready = ready_of(body);
            assert_eq!(ready["reason"], "IvyRejected");
            assert!(
                ready["message"]
                    .as_str()
                    .unwrap()
                    .contains("Must be a valid HTTPS URL.")
            );
            as_resource(body)
        }),
    ];
    let (action, _) = run_with(ivy.clone(), script, |ctx| apply(Arc::new(sub()), ctx)).await;
    assert_eq!(ivy.calls(), ["create"]);
    // Permanent: no fast retry, only the periodic recheck.
    assert_eq!(action, Action::requeue(Duration::from_secs(600)));
}

#[tokio::test]
async fn transient_failure_backs_off_and_says_it_retries() {
    let ivy = Arc::new(FakeIvy::default());
    *ivy.fail_next.lock().unwrap() = Some(IvyError::Transient {
        message: "HTTP 503".into(),
    });
    let script = vec![
        expect(Method::GET, SECRET_PATH, StatusCode::NOT_FOUND, |_| {
            not_found()
        }),
        attempt_recorded(),
        expect(Method::PATCH, STATUS_PATH, StatusCode::OK, |body| {
            let ready = ready_of(body);
            assert_eq!(ready["reason"], "IvyUnavailable");
            assert!(ready["message"].as_str().unwrap().contains("retrying"));
            as_resource(body)
        }),
    ];
    let (action, _) = run_with(ivy, script, |ctx| apply(Arc::new(sub()), ctx)).await;
    let Some(delay) = action_delay(&action) else {
        panic!("expected a requeue, got {action:?}");
    };
    assert!(delay <= Duration::from_millis(100), "{delay:?}");
}

#[tokio::test]
async fn rate_limit_waits_at_least_retry_after() {
    let ivy = Arc::new(FakeIvy::default());
    *ivy.fail_next.lock().unwrap() = Some(IvyError::RateLimited {
        retry_after: Some(Duration::from_secs(42)),
    });
    let script = vec![
        expect(Method::GET, SECRET_PATH, StatusCode::NOT_FOUND, |_| {
            not_found()
        }),
        attempt_recorded(),
        expect(Method::PATCH, STATUS_PATH, StatusCode::OK, |body| {
            assert_eq!(ready_of(body)["reason"], "RateLimited");
            as_resource(body)
        }),
    ];
    let (action, _) = run_with(ivy, script, |ctx| apply(Arc::new(sub()), ctx)).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(42)));
}

/// Ivy holding the stored `sub-9`, a leftover marked for the resource and someone else's.
fn ivy_with_leftover(resource: &WebhookSubscription) -> Arc<FakeIvy> {
    let ivy = Arc::new(FakeIvy::with(remote_for(resource, "sub-9")));
    ivy.subscriptions
        .lock()
        .unwrap()
        .insert("leftover".into(), remote_for(resource, "leftover"));
    let mut foreign = remote_for(resource, "someone-else");
    foreign.description = Some("not ours".into());
    ivy.subscriptions
        .lock()
        .unwrap()
        .insert("someone-else".into(), foreign);
    ivy
}

#[tokio::test]
async fn cleanup_deletes_the_stored_subscription_with_one_call() {
    // Ready: the status records the subscription the Secret names.
    let mut resource = sub();
    resource.status = Some(crate::crd::WebhookSubscriptionStatus {
        subscription_id: Some("sub-9".into()),
        ..Default::default()
    });
    let ivy = ivy_with_leftover(&resource);
    let secret = serde_json::to_value(our_secret(&resource, "sub-9")).unwrap();
    let script = vec![
        expect(Method::GET, SECRET_PATH, StatusCode::OK, move |_| {
            secret.clone()
        }),
        event_posted(),
    ];
    run_with(ivy.clone(), script, |ctx| cleanup(Arc::new(resource), ctx)).await;
    assert_eq!(ivy.calls(), ["delete"]);
}

#[tokio::test]
async fn cleanup_never_deletes_another_resources_subscription_a_secret_names() {
    let resource = sub();
    let ivy = Arc::new(FakeIvy::default());
    let mut theirs = remote_for(&resource, "theirs");
    theirs.description = Some(marked_description(None, "uid-of-another"));
    ivy.subscriptions
        .lock()
        .unwrap()
        .insert("theirs".into(), theirs);
    // A Secret written by hand in this namespace, naming another resource's subscription.
    let secret = serde_json::to_value(our_secret(&resource, "theirs")).unwrap();
    let script = vec![
        expect(Method::GET, SECRET_PATH, StatusCode::OK, move |_| {
            secret.clone()
        }),
        event_posted(),
    ];
    run_with(ivy.clone(), script, |ctx| cleanup(Arc::new(resource), ctx)).await;
    assert_eq!(ivy.calls(), ["get"]);
    assert!(ivy.subscriptions.lock().unwrap().contains_key("theirs"));
}

#[tokio::test]
async fn cleanup_after_an_interrupted_create_deletes_every_marked_subscription() {
    let resource = sub();
    let ivy = ivy_with_leftover(&resource);
    let mut secret = our_secret(&resource, "sub-9");
    secret.metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_CREATE_ATTEMPT.to_owned(),
        "ivywh-create-1 2026-01-01T00:00:00Z".to_owned(),
    )]));
    let secret = serde_json::to_value(secret).unwrap();
    let script = vec![
        expect(Method::GET, SECRET_PATH, StatusCode::OK, move |_| {
            secret.clone()
        }),
        event_posted(),
    ];
    run_with(ivy.clone(), script, |ctx| cleanup(Arc::new(resource), ctx)).await;
    let left: Vec<String> = ivy.subscriptions.lock().unwrap().keys().cloned().collect();
    assert_eq!(left, ["someone-else"]);
}

#[tokio::test]
async fn cleanup_of_a_resource_that_never_reached_ivy_makes_no_call() {
    let ivy = Arc::new(FakeIvy::default());
    let script = vec![
        expect(Method::GET, SECRET_PATH, StatusCode::NOT_FOUND, |_| {
            not_found()
        }),
        event_posted(),
    ];
    let (action, _) = run_with(ivy.clone(), script, |ctx| cleanup(Arc::new(sub()), ctx)).await;
    assert!(ivy.calls().is_empty(), "{:?}", ivy.calls());
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn orphan_policy_keeps_the_remote_and_detaches_the_secret() {
    let mut resource = sub();
    resource.spec.deletion_policy = DeletionPolicy::Orphan;
    let ivy = Arc::new(FakeIvy::with(remote_for(&resource, "sub-9")));
    let secret = serde_json::to_value(our_secret(&resource, "sub-9")).unwrap();
    let script = vec![
        expect(Method::GET, SECRET_PATH, StatusCode::OK, move |_| {
            secret.clone()
        }),
        expect(Method::PATCH, SECRET_PATH, StatusCode::OK, |body| {
            assert!(body["metadata"].get("ownerReferences").is_none());
            assert_eq!(body["data"][KEY_SIGNING_SECRET], b64("whsec_held"));
            body.clone()
        }),
        event_posted(),
    ];
    run_with(ivy.clone(), script, |ctx| cleanup(Arc::new(resource), ctx)).await;
    assert!(ivy.calls().is_empty());
    assert!(ivy.subscriptions.lock().unwrap().contains_key("sub-9"));
}

#[tokio::test]
async fn cleanup_failure_at_ivy_keeps_the_finalizer_and_says_how_to_let_go() {
    let mut resource = sub();
    resource.status = Some(crate::crd::WebhookSubscriptionStatus {
        subscription_id: Some("sub-9".into()),
        ..Default::default()
    });
    let ivy = Arc::new(FakeIvy::default());
    *ivy.fail_next.lock().unwrap() = Some(IvyError::Transient {
        message: "connection refused".into(),
    });
    let (ctx, handle) = context(ivy);
    let server = serve(
        handle,
        vec![
            expect(Method::GET, SECRET_PATH, StatusCode::NOT_FOUND, |_| {
                not_found()
            }),
            expect(Method::PATCH, STATUS_PATH, StatusCode::OK, |body| {
                let ready = ready_of(body);
                assert_eq!(ready["reason"], "CleanupBlocked");
                let message = ready["message"].as_str().unwrap();
                assert!(message.contains("connection refused"), "{message}");
                assert!(message.contains("deletionPolicy: Orphan"), "{message}");
                as_resource(body)
            }),
        ],
    );
    let result = cleanup(Arc::new(resource), ctx.clone()).await;
    drop(ctx);
    server.await.unwrap();
    assert!(result.is_err(), "cleanup must fail so the finalizer stays");
}

fn action_delay(action: &Action) -> Option<Duration> {
    // Action hides its fields; its Debug output is stable enough for a test.
    let text = format!("{action:?}");
    let millis: String = text
        .split("requeue_after: Some(")
        .nth(1)?
        .chars()
        .take_while(|c| *c != ')')
        .collect();
    if let Some(ms) = millis.strip_suffix("ms") {
        return ms
            .parse::<f64>()
            .ok()
            .map(|v| Duration::from_secs_f64(v / 1000.0));
    }
    if let Some(s) = millis.strip_suffix('s') {
        return s.parse::<f64>().ok().map(Duration::from_secs_f64);
    }
    if let Some(us) = millis.strip_suffix("µs") {
        return us
            .parse::<f64>()
            .ok()
            .map(|v| Duration::from_secs_f64(v / 1e6));
    }
    None
}
