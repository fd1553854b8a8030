//! The create protocol survives a kill at every step (design.md, "Creating without losing the
//! one-time secret"): for each named crash point the reconcile is stopped there as if the
//! process died, a fresh controller context (a restarted process) reconciles again, and the
//! result must be exactly one remote subscription, its secret in the Secret, its id in the
//! status, and nothing orphaned — with Ivy honouring `Idempotency-Key` and with Ivy ignoring it.
//!
//! Runs against `ivy-emulator` in process and a real kube-apiserver (`make test`).

// Test helpers outside `#[test]` functions may panic like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};

use ivy_webhook_operator::controller::clock::ManualClock;
use ivy_webhook_operator::controller::metrics::Metrics;
use ivy_webhook_operator::controller::{Context, ControllerConfig, reconcile};
use ivy_webhook_operator::crd::{
    ANNOTATION_ROTATE, DeletionPolicy, EventName, WebhookSubscription, WebhookSubscriptionSpec,
};
use ivy_webhook_operator::emulator::{
    AfterCommit, Emulator, EmulatorConfig, FaultSpec, Operation, RunningEmulator, SubscriptionView,
};
use ivy_webhook_operator::ivy::{ApiKey, ClientConfig, Dialect, build_ivy_client};
use support::{TestNamespace, cluster, install_crd, secret_data};

const KEY: &str = "protocol-key";

struct Fixture {
    client: Client,
    ns: TestNamespace,
    emulator: RunningEmulator,
    api: Api<WebhookSubscription>,
    /// The time every restarted operator reads: moved by hand, so grace periods need no sleep.
    clock: Arc<ManualClock>,
}

/// The rotation grace period of every operator in these tests; [`Fixture::clock`] jumps it.
const GRACE: Duration = Duration::from_secs(300);

impl Fixture {
    async fn new(prefix: &str, idempotency: bool) -> Option<Self> {
        let client = cluster().await?;
        install_crd().await;
        let ns = TestNamespace::create(&client, prefix).await;
        let config = EmulatorConfig::default()
            .with_api_key(KEY)
            .idempotency(idempotency);
        let emulator = Emulator::spawn(config, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("emulator");
        let api = Api::namespaced(client.clone(), &ns.name);
        Some(Self {
            client,
            ns,
            emulator,
            api,
            clock: Arc::new(ManualClock::at(jiff::Timestamp::now())),
        })
    }

    /// A new controller context: what a restarted operator process starts with.
    fn restarted_operator(&self) -> Arc<Context> {
        let http = reqwest::Client::new();
        let ivy = build_ivy_client(
            ClientConfig::new(self.emulator.base_url(), ApiKey::new(KEY), Dialect::Rest),
            http,
        );
        let config = ControllerConfig {
            rotation_grace_period: GRACE,
            backoff_base: Duration::from_millis(50),
            ..ControllerConfig::default()
        };
        Arc::new(
            Context::new(
                self.client.clone(),
                ivy,
                None,
                config,
                Arc::new(Metrics::unregistered()),
            )
            .with_clock(self.clock.clone()),
        )
    }

    async fn create(&self, name: &str) -> WebhookSubscription {
        let mut sub = WebhookSubscription::new(
            name,
            WebhookSubscriptionSpec {
                account_ref: None,
                url: format!("https://shop.example.com/hooks/{name}"),
                events: vec![EventName::OrderCreated],
                description: Some("protocol test".into()),
                active: true,
                secret_name: None,
                deletion_policy: DeletionPolicy::Delete,
                secret_template: None,
                restart_on_rotation: Vec::new(),
                rotation: None,
            },
        );
        sub.metadata.namespace = Some(self.ns.name.clone());
        self.api
            .create(&PostParams::default(), &sub)
            .await
            .expect("create")
    }

    /// Reconciles `name` with `ctx` until `done` holds (or panics after a bound).
    async fn reconcile_until(
        &self,
        name: &str,
        ctx: &Arc<Context>,
        done: impl Fn(Option<&WebhookSubscription>) -> bool,
    ) {
        for _ in 0..40 {
            let current = self.api.get_opt(name).await.expect("get");
            if done(current.as_ref()) {
                return;
            }
            let Some(current) = current else {
                panic!("{name} disappeared before the condition held");
            };
            let _ = reconcile(Arc::new(current), ctx.clone()).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{name} did not converge within 40 reconciles");
    }

    /// Reconciles once per call until the configured crash point has fired once.
    async fn reconcile_until_crash(&self, name: &str, ctx: &Arc<Context>, point: &str) {
        for _ in 0..20 {
            let current = self.api.get(name).await.expect("get");
            if let Err(error) = reconcile(Arc::new(current), ctx.clone()).await
                && format!("{error:?}").contains(point)
            {
                return;
            }
            // Points after a grace period (the end of a rotation) are reached without waiting.
            self.clock.advance(GRACE + Duration::from_secs(1));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("crash point {point} never fired");
    }

    fn marked(&self, uid: &str) -> Vec<SubscriptionView> {
        let marker = format!("[ivywh:{uid}]");
        self.emulator
            .state()
            .subscriptions()
            .into_iter()
            .filter(|s| {
                s.description
                    .as_deref()
                    .is_some_and(|d| d.ends_with(&marker))
            })
            .collect()
    }

    /// One remote subscription for the resource, whose secret is in the Secret and whose id is
    /// in the status; nothing else at Ivy.
    async fn assert_converged(&self, name: &str) {
        let sub = self.api.get(name).await.expect("get");
        let uid = sub.uid().unwrap();
        let marked = self.marked(&uid);
        assert_eq!(
            marked.len(),
            1,
            "exactly one remote subscription: {marked:#?}"
        );
        let all = self.emulator.state().subscriptions();
        assert_eq!(all.len(), 1, "nothing else at Ivy: {all:#?}");
        let remote = &marked[0];
        let data = secret_data(&self.client, &self.ns.name, &format!("{name}-ivy-webhook"))
            .await
            .expect("Secret");
        assert_eq!(data["subscription-id"], remote.rest_id);
        assert_eq!(
            data["signing-secret"], remote.signing_secret,
            "the Secret holds the live secret"
        );
        let status = sub.status.clone().expect("status");
        assert_eq!(
            status.subscription_id.as_deref(),
            Some(remote.rest_id.as_str())
        );
        assert_eq!(sub.ready_condition().unwrap().status, "True");
    }
}

fn is_ready(sub: Option<&WebhookSubscription>) -> bool {
    sub.and_then(|s| s.ready_condition())
        .is_some_and(|c| c.status == "True")
}

/// Crash at `point` during the first create, restart, converge.
async fn crash_during_create(point: &'static str, idempotency: bool) {
    let Some(fx) = Fixture::new("proto-create", idempotency).await else {
        return;
    };
    let scenario = fail::FailScenario::setup();
    fx.create("orders").await;
    fail::cfg(point, "1*return").unwrap();
    fx.reconcile_until_crash("orders", &fx.restarted_operator(), point)
        .await;
    fail::remove(point);
    fx.reconcile_until("orders", &fx.restarted_operator(), is_ready)
        .await;
    fx.assert_converged("orders").await;
    scenario.teardown();
}

/// No create is sent to Ivy unless its attempt record is durable: while an admission policy
/// refuses the resource's Secret, nothing is created; once it is lifted, exactly one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_create_without_a_durable_attempt_record() {
    let Some(fx) = Fixture::new("proto-writeahead", false).await else {
        return;
    };
    let policy = RefusedSecret::install(&fx.ns.name, "orders-ivy-webhook").await;
    fx.create("orders").await;
    let ctx = fx.restarted_operator();
    // The first reconcile only adds the finalizer.
    let current = fx.api.get("orders").await.unwrap();
    reconcile(Arc::new(current), ctx.clone()).await.unwrap();
    for _ in 0..5 {
        let current = fx.api.get("orders").await.unwrap();
        let result = reconcile(Arc::new(current), ctx.clone()).await;
        assert!(
            result.is_err(),
            "the refused Secret write fails the reconcile"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let creates = fx
        .emulator
        .state()
        .operation_count(Dialect::Rest, Operation::Create);
    assert_eq!(creates, 0, "no create without its record");
    assert!(fx.emulator.state().subscriptions().is_empty());

    policy.remove().await;
    fx.reconcile_until("orders", &ctx, is_ready).await;
    fx.assert_converged("orders").await;
    let creates = fx
        .emulator
        .state()
        .operation_count(Dialect::Rest, Operation::Create);
    assert_eq!(
        creates, 1,
        "one create, no list: the first attempt was never sent"
    );
}

/// A ValidatingAdmissionPolicy (and its binding) that refuses one Secret name in one namespace,
/// as a forbidden or failing Secret write would.
struct RefusedSecret {
    name: String,
}

impl RefusedSecret {
    async fn install(namespace: &str, secret: &str) -> Self {
        let name = format!("refuse-{namespace}");
        let yaml = format!(
            r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: [""]
        apiVersions: [v1]
        operations: [CREATE, UPDATE]
        resources: [secrets]
  validations:
    - expression: "object.metadata.name != '{secret}'"
      message: refused by the test
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {namespace}}}
"#
        );
        let (ok, out, err) = support::kubectl_stdin(&["apply", "-f", "-"], Some(&yaml)).await;
        assert!(ok, "{out}{err}");
        // Policies take effect asynchronously: wait until a probe Secret is refused.
        let probe = format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {secret}, namespace: {namespace}}}\n"
        );
        for _ in 0..100 {
            let (created, _, _) =
                support::kubectl_stdin(&["create", "--dry-run=server", "-f", "-"], Some(&probe))
                    .await;
            if !created {
                return Self { name };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the admission policy never took effect");
    }

    async fn remove(self) {
        for kind in [
            "validatingadmissionpolicybinding",
            "validatingadmissionpolicy",
        ] {
            let (ok, out, err) = support::kubectl(&["delete", kind, &self.name]).await;
            assert!(ok, "{out}{err}");
        }
    }
}

/// Ivy applies the create but the answer never arrives (500 or dropped connection).
async fn lost_create_response(then: AfterCommit, idempotency: bool) {
    let Some(fx) = Fixture::new("proto-lost", idempotency).await else {
        return;
    };
    let scenario = fail::FailScenario::setup();
    fx.create("orders").await;
    fx.emulator.state().add_fault(
        FaultSpec::fail_after_commit(then)
            .on_method("POST")
            .on_route("/webhook")
            .times(1),
    );
    let ctx = fx.restarted_operator();
    fx.reconcile_until("orders", &ctx, is_ready).await;
    assert_eq!(fx.emulator.state().faults().len(), 0, "the fault fired");
    fx.assert_converged("orders").await;
    scenario.teardown();
}

/// Crash at `point` during a rotation, restart, converge to the new subscription only.
async fn crash_during_rotation(point: &'static str, idempotency: bool) {
    let Some(fx) = Fixture::new("proto-rotate", idempotency).await else {
        return;
    };
    let scenario = fail::FailScenario::setup();
    fx.create("orders").await;
    fx.reconcile_until("orders", &fx.restarted_operator(), is_ready)
        .await;
    let before = secret_data(&fx.client, &fx.ns.name, "orders-ivy-webhook")
        .await
        .unwrap();

    let patch = serde_json::json!({"metadata": {"annotations": {ANNOTATION_ROTATE: "r1"}}});
    fx.api
        .patch("orders", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    fail::cfg(point, "1*return").unwrap();
    fx.reconcile_until_crash("orders", &fx.restarted_operator(), point)
        .await;
    fail::remove(point);

    let ctx = fx.restarted_operator();
    let client = fx.client.clone();
    let ns = fx.ns.name.clone();
    let old_id = before["subscription-id"].clone();
    // Converged: rotated (new id), grace over (no previous key), Ready.
    for _ in 0..40 {
        let data = secret_data(&client, &ns, "orders-ivy-webhook")
            .await
            .unwrap();
        let current = fx.api.get("orders").await.unwrap();
        if data["subscription-id"] != old_id
            && !data.contains_key("previous-signing-secret")
            && is_ready(Some(&current))
            && current
                .status
                .as_ref()
                .and_then(|s| s.subscription_id.clone())
                == Some(data["subscription-id"].clone())
        {
            break;
        }
        let _ = reconcile(Arc::new(current), ctx.clone()).await;
        // The grace period passes at once: the rotation's old subscription may go now.
        fx.clock.advance(GRACE + Duration::from_secs(1));
    }
    fx.assert_converged("orders").await;
    let after = secret_data(&client, &ns, "orders-ivy-webhook")
        .await
        .unwrap();
    assert_ne!(
        after["signing-secret"], before["signing-secret"],
        "the secret rotated"
    );
    let remote = &fx.emulator.state().subscriptions()[0];
    assert_eq!(
        remote.url, "https://shop.example.com/hooks/orders",
        "URL restored"
    );
    scenario.teardown();
}

/// Crash between deleting at Ivy and releasing the finalizer; the restart finishes cleanly.
async fn crash_during_deletion(idempotency: bool) {
    let Some(fx) = Fixture::new("proto-delete", idempotency).await else {
        return;
    };
    let scenario = fail::FailScenario::setup();
    let created = fx.create("orders").await;
    let uid = created.uid().unwrap();
    fx.reconcile_until("orders", &fx.restarted_operator(), is_ready)
        .await;
    fx.api
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    fail::cfg("cleanup-after-remote-delete", "1*return").unwrap();
    fx.reconcile_until_crash(
        "orders",
        &fx.restarted_operator(),
        "cleanup-after-remote-delete",
    )
    .await;
    fail::remove("cleanup-after-remote-delete");
    assert!(
        fx.api.get_opt("orders").await.unwrap().is_some(),
        "the finalizer held"
    );
    fx.reconcile_until("orders", &fx.restarted_operator(), |s| s.is_none())
        .await;
    assert!(fx.marked(&uid).is_empty(), "no orphan at Ivy");
    assert!(fx.emulator.state().subscriptions().is_empty());
    scenario.teardown();
}

/// Someone deletes the Secret: its secret is gone, so the subscription is replaced (rule 4:
/// a marked subscription whose secret is not held is deleted, never silently adopted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_secret_is_replaced_not_adopted() {
    let Some(fx) = Fixture::new("proto-lostsecret", false).await else {
        return;
    };
    fx.create("orders").await;
    fx.reconcile_until("orders", &fx.restarted_operator(), is_ready)
        .await;
    let before = secret_data(&fx.client, &fx.ns.name, "orders-ivy-webhook")
        .await
        .unwrap();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(fx.client.clone(), &fx.ns.name);
    secrets
        .delete("orders-ivy-webhook", &DeleteParams::default())
        .await
        .unwrap();
    let ctx = fx.restarted_operator();
    for _ in 0..20 {
        if let Some(data) = secret_data(&fx.client, &fx.ns.name, "orders-ivy-webhook").await
            && data.get("subscription-id") != before.get("subscription-id")
        {
            break;
        }
        let current = fx.api.get("orders").await.unwrap();
        let _ = reconcile(Arc::new(current), ctx.clone()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fx.reconcile_until("orders", &ctx, is_ready).await;
    fx.assert_converged("orders").await;
    let after = secret_data(&fx.client, &fx.ns.name, "orders-ivy-webhook")
        .await
        .unwrap();
    assert_ne!(after["subscription-id"], before["subscription-id"]);
}

/// Crash after the create, then the user changes the URL before the operator comes back: the
/// first subscription (marked, secret never stored) must not be left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_then_spec_change_leaves_no_orphan() {
    let Some(fx) = Fixture::new("proto-orphan", false).await else {
        return;
    };
    let scenario = fail::FailScenario::setup();
    fx.create("orders").await;
    fail::cfg("create-after-ivy-create", "1*return").unwrap();
    fx.reconcile_until_crash(
        "orders",
        &fx.restarted_operator(),
        "create-after-ivy-create",
    )
    .await;
    fail::remove("create-after-ivy-create");
    let patch = serde_json::json!({"spec": {"url": "https://shop.example.com/hooks/moved"}});
    fx.api
        .patch("orders", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    fx.reconcile_until("orders", &fx.restarted_operator(), is_ready)
        .await;
    let all = fx.emulator.state().subscriptions();
    assert_eq!(
        all.len(),
        1,
        "the interrupted attempt's subscription is gone: {all:#?}"
    );
    assert_eq!(all[0].url, "https://shop.example.com/hooks/moved");
    scenario.teardown();
}

/// One test per crash point and Ivy behaviour (`name => scenario;`).
macro_rules! scenarios {
    ($($name:ident => $scenario:expr;)+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $scenario.await;
            }
        )+
    };
}

scenarios! {
    crash_after_attempt_record_with_idempotency => crash_during_create("create-after-attempt-record", true);
    crash_after_attempt_record_without_idempotency => crash_during_create("create-after-attempt-record", false);
    crash_after_rotation_attempt_record_without_idempotency => crash_during_rotation("create-after-attempt-record", false);
    crash_after_ivy_create_with_idempotency => crash_during_create("create-after-ivy-create", true);
    crash_after_ivy_create_without_idempotency => crash_during_create("create-after-ivy-create", false);
    crash_after_secret_write_with_idempotency => crash_during_create("create-after-secret-write", true);
    crash_after_secret_write_without_idempotency => crash_during_create("create-after-secret-write", false);
    crash_before_status_with_idempotency => crash_during_create("converge-before-status", true);
    crash_before_status_without_idempotency => crash_during_create("converge-before-status", false);
    lost_create_answer_with_idempotency => lost_create_response(AfterCommit::Status, true);
    lost_create_answer_without_idempotency => lost_create_response(AfterCommit::Status, false);
    dropped_create_connection_without_idempotency => lost_create_response(AfterCommit::Drop, false);
    crash_after_rotation_create_with_idempotency => crash_during_rotation("create-after-ivy-create", true);
    crash_after_rotation_create_without_idempotency => crash_during_rotation("create-after-ivy-create", false);
    crash_after_rotation_secret_write_without_idempotency => crash_during_rotation("create-after-secret-write", false);
    crash_after_old_subscription_deleted => crash_during_rotation("rotation-after-old-delete", false);
    crash_during_deletion_with_idempotency => crash_during_deletion(true);
    crash_during_deletion_without_idempotency => crash_during_deletion(false);
}
