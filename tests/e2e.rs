//! End-to-end suite against a real kube-apiserver (see `hack/with-control-plane.sh`), with the
//! real `kubectl`, and `ivy-emulator`, the operator and a receiver as separate processes.
//! Each test has its own namespace, emulator and operator, so tests run in parallel.

// Test helpers outside `#[test]` functions may panic like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use kube::ResourceExt;
use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(60);

struct Env {
    client: kube::Client,
    ns: TestNamespace,
    dir: tempfile::TempDir,
    emulator: Emulator,
}

impl Env {
    /// An operator watching this test's namespace, with default options.
    async fn operator(&self) -> Operator {
        self.operator_with(&OperatorOptions::default(), "operator")
            .await
    }

    async fn operator_with(&self, options: &OperatorOptions, name: &str) -> Operator {
        self.operator_in(&self.ns.name, options, name).await
    }

    async fn operator_in(
        &self,
        namespace: &str,
        options: &OperatorOptions,
        name: &str,
    ) -> Operator {
        Operator::start(
            self.dir.path(),
            namespace,
            &self.emulator.base_url,
            options,
            name,
        )
        .await
    }
}

async fn setup(prefix: &str, emulator_args: &[&str]) -> Option<Env> {
    let client = cluster().await?;
    install_crd().await;
    let ns = TestNamespace::create(&client, prefix).await;
    let dir = scratch();
    let emulator = Emulator::start(dir.path(), emulator_args).await;
    Some(Env {
        client,
        ns,
        dir,
        emulator,
    })
}

/// Applies `name` pointing at `url`, waits for Ready, returns (uid, subscription id).
async fn create_ready(env: &Env, name: &str, url: &str) -> (String, String) {
    apply(
        &env.ns.name,
        &manifest(name, url, &["order_created", "refund_succeeded"], ""),
    )
    .await;
    wait_ready(&env.ns.name, name, "60s").await;
    let sub = get_sub(&env.client, &env.ns.name, name)
        .await
        .expect("resource");
    let id = sub
        .status
        .as_ref()
        .and_then(|s| s.subscription_id.clone())
        .expect("status.subscriptionId");
    (sub.uid().expect("uid"), id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_secret_matches_ivy_and_receiver_verifies_before_and_after_rotation() {
    main_scenario("e2e-main", &[]).await;
}

/// The same scenario against an Ivy that answers the way a real server may where the
/// documents are silent (bare 409s, short pages, JSON 404s, proxy 502s, no idempotency).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_scenario_holds_against_an_unfriendly_ivy() {
    main_scenario("e2e-main-quirks", &["--quirks", "unfriendly"]).await;
}

async fn main_scenario(prefix: &str, emulator_args: &[&str]) {
    let Some(env) = setup(prefix, emulator_args).await else {
        return;
    };
    let operator = env.operator().await;
    let mount = SecretMount::start(
        &env.client,
        &env.ns.name,
        "orders-ivy-webhook",
        env.dir.path().join("mount"),
    );
    let receiver = Receiver::start(env.dir.path(), &mount.dir).await;

    let (uid, id) = create_ready(&env, "orders", &receiver.url()).await;

    // The Secret holds exactly the emulator's secret for that subscription.
    let data = secret_data(&env.client, &env.ns.name, "orders-ivy-webhook")
        .await
        .expect("Secret");
    let remote = env
        .emulator
        .subscription(&id)
        .await
        .expect("remote subscription");
    assert_eq!(
        data["signing-secret"],
        remote["signing_secret"].as_str().unwrap()
    );
    assert_eq!(data["subscription-id"], id);
    assert_eq!(data["url"], receiver.url());
    assert_eq!(marked_for(&env.emulator, &uid).await.len(), 1);
    let (_, table, _) = kubectl(&["get", "ivywh", "-n", &env.ns.name]).await;
    assert!(
        table.contains("READY") && table.contains("True") && table.contains(&id),
        "{table}"
    );

    // A signed test event verifies with the mounted secret.
    eventually(WAIT, "mounted signing-secret", || async {
        std::fs::read_to_string(mount.dir.join("signing-secret")).ok()
    })
    .await;
    env.emulator.trigger_test_rest(&id).await;
    eventually(WAIT, "a verified test delivery", || async {
        receiver
            .results()
            .into_iter()
            .find(|r| r["verified"] == "current" && r["type"] == "test")
    })
    .await;

    // Rotation: a new subscription and secret; the old secret stays as previous.
    let (ok, out, err) = kubectl(&[
        "annotate",
        "-n",
        &env.ns.name,
        "ivywh/orders",
        "webhooks.ivy.dev/rotate-secret=r1",
    ])
    .await;
    assert!(ok, "{out}{err}");
    let rotated = eventually(WAIT, "rotated Secret", || async {
        let data = secret_data(&env.client, &env.ns.name, "orders-ivy-webhook").await?;
        (data.get("subscription-id") != Some(&id) && data.contains_key("previous-signing-secret"))
            .then_some(data)
    })
    .await;
    let new_id = rotated["subscription-id"].clone();
    assert_eq!(
        rotated["previous-signing-secret"],
        remote["signing_secret"].as_str().unwrap()
    );
    let new_remote = env
        .emulator
        .subscription(&new_id)
        .await
        .expect("new remote");
    assert_eq!(
        rotated["signing-secret"],
        new_remote["signing_secret"].as_str().unwrap()
    );

    // Events signed with the new secret verify once the mount has it.
    eventually(WAIT, "mount updated", || async {
        let current = std::fs::read_to_string(mount.dir.join("signing-secret")).ok()?;
        (current == rotated["signing-secret"]).then_some(())
    })
    .await;
    env.emulator.send_event(&new_id, "order_created").await;
    eventually(
        WAIT,
        "a verified order_created with the new secret",
        || async {
            receiver
                .results()
                .into_iter()
                .find(|r| r["verified"] == "current" && r["type"] == "order_created")
        },
    )
    .await;

    // After the grace period: the old subscription is gone, the URL restored, previous dropped.
    eventually(WAIT, "rotation completed", || async {
        let data = secret_data(&env.client, &env.ns.name, "orders-ivy-webhook").await?;
        let old_gone = env.emulator.subscription(&id).await.is_none();
        let remote = env.emulator.subscription(&new_id).await?;
        (old_gone
            && !data.contains_key("previous-signing-secret")
            && remote["url"] == receiver.url())
        .then_some(())
    })
    .await;
    assert_eq!(
        marked_for(&env.emulator, &uid).await.len(),
        1,
        "exactly one subscription after rotation"
    );
    let status_id = get_sub(&env.client, &env.ns.name, "orders")
        .await
        .unwrap()
        .status
        .unwrap()
        .subscription_id;
    assert_eq!(status_id.as_deref(), Some(new_id.as_str()));

    // Ready once caches synced; metrics are served and count Ivy calls.
    assert_eq!(operator.readyz().await, 200);
    let metrics = operator.metrics().await;
    assert!(
        metrics.contains("ivywh_ivy_api_calls_total{operation=\"create\",status=\"ok\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ivywh_resources{ready=\"True\"} 1"),
        "{metrics}"
    );
    drop(operator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_changes_propagate_and_changes_at_ivy_are_reverted() {
    let Some(env) = setup("e2e-drift", &[]).await else {
        return;
    };
    let _operator = env.operator().await;
    let (_, id) = create_ready(&env, "drift", "https://shop.example.com/hooks/drift").await;

    let (ok, out, err) = kubectl(&[
        "patch", "-n", &env.ns.name, "ivywh/drift", "--type=merge",
        "-p", r#"{"spec":{"events":["order_updated"],"url":"https://shop.example.com/hooks/v2","active":false}}"#,
    ])
    .await;
    assert!(ok, "{out}{err}");
    eventually(WAIT, "spec change at Ivy", || async {
        let remote = env.emulator.subscription(&id).await?;
        (remote["events"] == json!(["order_updated"])
            && remote["url"] == "https://shop.example.com/hooks/v2"
            && remote["active"] == false)
            .then_some(())
    })
    .await;
    let data = eventually(WAIT, "Secret url follows", || async {
        let data = secret_data(&env.client, &env.ns.name, "drift-ivy-webhook").await?;
        (data["url"] == "https://shop.example.com/hooks/v2").then_some(data)
    })
    .await;
    assert_eq!(
        data["subscription-id"], id,
        "an update keeps the subscription"
    );

    // Someone changes it at Ivy; the next drift check (resync 3s) restores the spec.
    env.emulator
        .rest_update(
            &id,
            json!({"url": "https://attacker.example/steal", "events": ["test"], "active": true}),
        )
        .await;
    eventually(WAIT, "drift reverted", || async {
        let remote = env.emulator.subscription(&id).await?;
        (remote["url"] == "https://shop.example.com/hooks/v2"
            && remote["events"] == json!(["order_updated"])
            && remote["active"] == false)
            .then_some(())
    })
    .await;
    let (_, events, _) = kubectl(&["get", "events", "-n", &env.ns.name, "-o", "json"]).await;
    assert!(events.contains("DriftReverted"), "{events}");
    assert!(!events.contains("whsec_"), "a secret leaked into an Event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_removes_remote_and_secret_and_orphan_keeps_them() {
    let Some(env) = setup("e2e-delete", &[]).await else {
        return;
    };
    let _operator = env.operator().await;
    let (uid, id) = create_ready(&env, "gone", "https://shop.example.com/hooks/gone").await;
    apply(
        &env.ns.name,
        &manifest(
            "kept",
            "https://shop.example.com/hooks/kept",
            &["test"],
            "  deletionPolicy: Orphan\n",
        ),
    )
    .await;
    wait_ready(&env.ns.name, "kept", "60s").await;
    let kept_id = get_sub(&env.client, &env.ns.name, "kept")
        .await
        .unwrap()
        .status
        .unwrap()
        .subscription_id
        .unwrap();

    let (ok, out, err) = kubectl(&[
        "delete",
        "-n",
        &env.ns.name,
        "ivywh/gone",
        "ivywh/kept",
        "--timeout=60s",
    ])
    .await;
    assert!(ok, "{out}{err}");
    assert!(
        env.emulator.subscription(&id).await.is_none(),
        "Delete policy removes the remote"
    );
    assert!(marked_for(&env.emulator, &uid).await.is_empty());
    eventually(WAIT, "garbage collection of the Secret", || async {
        secret_data(&env.client, &env.ns.name, "gone-ivy-webhook")
            .await
            .is_none()
            .then_some(())
    })
    .await;

    assert!(
        env.emulator.subscription(&kept_id).await.is_some(),
        "Orphan keeps the remote"
    );
    // The kept Secret survives garbage collection: its secret is the only copy.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kept = secret_data(&env.client, &env.ns.name, "kept-ivy-webhook")
        .await
        .expect("orphaned Secret kept");
    assert_eq!(kept["subscription-id"], kept_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_are_refused_by_kubectl_apply() {
    let Some(client) = cluster().await else {
        return;
    };
    install_crd().await;
    let ns = TestNamespace::create(&client, "e2e-invalid").await;
    let cases = [
        (
            "http-url",
            manifest("a", "http://shop.example.com/hook", &["test"], ""),
            "https://",
        ),
        (
            "no-events",
            manifest("b", "https://shop.example.com/hook", &[], ""),
            "spec.events",
        ),
        (
            "unknown-event",
            manifest("c", "https://shop.example.com/hook", &["order_deleted"], ""),
            "Unsupported value: \"order_deleted\"",
        ),
        (
            "duplicate-event",
            manifest("d", "https://shop.example.com/hook", &["test", "test"], ""),
            "Duplicate value",
        ),
        (
            "bad-secret-name",
            manifest(
                "e",
                "https://shop.example.com/hook",
                &["test"],
                "  secretName: Not_A_Name\n",
            ),
            "spec.secretName",
        ),
        (
            "no-host",
            manifest("f", "https:///only-a-path", &["test"], ""),
            "https://",
        ),
    ];
    for (case, yaml, expected) in cases {
        let (ok, out, err) =
            kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], Some(&yaml)).await;
        assert!(!ok, "{case}: kubectl accepted an invalid spec: {out}");
        assert!(
            err.contains(expected),
            "{case}: message {err:?} lacks {expected:?}"
        );
    }
    // secretName is immutable.
    apply(
        &ns.name,
        &manifest(
            "g",
            "https://shop.example.com/hook",
            &["test"],
            "  secretName: first\n",
        ),
    )
    .await;
    let (ok, _, err) = kubectl_stdin(
        &["apply", "-n", &ns.name, "-f", "-"],
        Some(&manifest(
            "g",
            "https://shop.example.com/hook",
            &["test"],
            "  secretName: second\n",
        )),
    )
    .await;
    assert!(!ok && err.contains("immutable"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_secret_is_never_overwritten() {
    let Some(env) = setup("e2e-conflict", &[]).await else {
        return;
    };
    let _operator = env.operator().await;
    let (ok, out, err) = kubectl(&[
        "create",
        "secret",
        "generic",
        "mine",
        "-n",
        &env.ns.name,
        "--from-literal=signing-secret=user-owned",
    ])
    .await;
    assert!(ok, "{out}{err}");
    apply(
        &env.ns.name,
        &manifest(
            "clash",
            "https://shop.example.com/hooks/clash",
            &["test"],
            "  secretName: mine\n",
        ),
    )
    .await;
    let reason = eventually(WAIT, "SecretConflict condition", || async {
        let sub = get_sub(&env.client, &env.ns.name, "clash").await?;
        let ready = sub.ready_condition()?.clone();
        (ready.reason == "SecretConflict").then_some(ready)
    })
    .await;
    assert_eq!(reason.status, "False");
    let data = secret_data(&env.client, &env.ns.name, "mine")
        .await
        .unwrap();
    assert_eq!(data["signing-secret"], "user-owned");
    assert!(
        env.emulator.subscriptions().await.is_empty(),
        "nothing created at Ivy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_and_service_dialects_reach_ready() {
    dialects_reach_ready("e2e-dialects", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_and_service_dialects_reach_ready_against_an_unfriendly_ivy() {
    dialects_reach_ready("e2e-dialects-quirks", &["--quirks", "unfriendly"]).await;
}

async fn dialects_reach_ready(prefix: &str, emulator_args: &[&str]) {
    let Some(env) = setup(prefix, emulator_args).await else {
        return;
    };
    let app_secret = env.emulator.app_signing_secret().await;
    let internal_ns = TestNamespace::create(&env.client, "e2e-internal").await;
    let options = OperatorOptions {
        dialect: "internal",
        ..OperatorOptions::default()
    };
    let _internal = env
        .operator_in(&internal_ns.name, &options, "operator-internal")
        .await;
    apply(
        &internal_ns.name,
        &manifest(
            "int",
            "https://shop.example.com/hooks/internal",
            &["payout.paid"],
            "",
        ),
    )
    .await;
    wait_ready(&internal_ns.name, "int", "60s").await;
    let data = secret_data(&env.client, &internal_ns.name, "int-ivy-webhook")
        .await
        .unwrap();
    assert!(
        data["subscription-id"].starts_with("wsub_"),
        "{:?}",
        data["subscription-id"]
    );
    let remote = env
        .emulator
        .subscription(&data["subscription-id"])
        .await
        .unwrap();
    assert_eq!(
        data["signing-secret"],
        remote["signing_secret"].as_str().unwrap()
    );

    let options = OperatorOptions {
        dialect: "service",
        app_secret: Some(app_secret.clone()),
        ..OperatorOptions::default()
    };
    let _service = env.operator_with(&options, "operator-service").await;
    apply(
        &env.ns.name,
        &manifest(
            "svc",
            "https://shop.example.com/hooks/service",
            &["order_created"],
            "",
        ),
    )
    .await;
    wait_ready(&env.ns.name, "svc", "60s").await;
    let data = secret_data(&env.client, &env.ns.name, "svc-ivy-webhook")
        .await
        .unwrap();
    assert_eq!(
        data["signing-secret"], app_secret,
        "service dialect stores the app secret"
    );
    let remote = env
        .emulator
        .subscription(&data["subscription-id"])
        .await
        .unwrap();
    assert_eq!(remote["url"], "https://shop.example.com/hooks/service");
    let (ok, out, err) =
        kubectl(&["delete", "-n", &env.ns.name, "ivywh/svc", "--timeout=60s"]).await;
    assert!(ok, "{out}{err}");
    assert!(
        env.emulator
            .subscription(&data["subscription-id"])
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adoption_takes_over_a_subscription_but_cannot_recover_its_secret() {
    let Some(env) = setup("e2e-adopt", &[]).await else {
        return;
    };
    // A subscription someone created by hand.
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/webhook", env.emulator.base_url))
        .header("X-Ivy-Api-Key", API_KEY)
        .json(&json!({"url": "https://shop.example.com/hooks/legacy", "events": ["test"], "description": "by hand"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let legacy_id = created["id"].as_str().expect("id").to_owned();
    let _operator = env.operator().await;
    let yaml = manifest("legacy", "https://shop.example.com/hooks/legacy", &["order_created"], "")
        .replace("metadata:\n  name: legacy\n", &format!("metadata:\n  name: legacy\n  annotations:\n    webhooks.ivy.dev/subscription-id: \"{legacy_id}\"\n"));
    apply(&env.ns.name, &yaml).await;
    let ready = eventually(WAIT, "SecretUnknown after adoption", || async {
        let sub = get_sub(&env.client, &env.ns.name, "legacy").await?;
        let ready = sub.ready_condition()?.clone();
        (ready.reason == "SecretUnknown").then_some(ready)
    })
    .await;
    assert!(ready.message.contains("rotate-secret"), "{}", ready.message);
    let remote = env.emulator.subscription(&legacy_id).await.unwrap();
    assert_eq!(
        remote["events"],
        json!(["order_created"]),
        "the adopted subscription follows the spec"
    );
    assert_eq!(
        env.emulator.subscriptions().await.len(),
        1,
        "adoption creates nothing"
    );

    // Rotating replaces it with a subscription whose secret the operator holds.
    let (ok, out, err) = kubectl(&[
        "annotate",
        "-n",
        &env.ns.name,
        "ivywh/legacy",
        "webhooks.ivy.dev/rotate-secret=now",
    ])
    .await;
    assert!(ok, "{out}{err}");
    wait_ready(&env.ns.name, "legacy", "60s").await;
    let data = secret_data(&env.client, &env.ns.name, "legacy-ivy-webhook")
        .await
        .unwrap();
    let new_remote = env
        .emulator
        .subscription(&data["subscription-id"])
        .await
        .unwrap();
    assert_eq!(
        data["signing-secret"],
        new_remote["signing_secret"].as_str().unwrap()
    );
    eventually(
        WAIT,
        "adopted subscription deleted after the grace period",
        || async {
            env.emulator
                .subscription(&legacy_id)
                .await
                .is_none()
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_lets_one_replica_reconcile_and_fails_over() {
    let Some(env) = setup("e2e-leader", &[]).await else {
        return;
    };
    let options = OperatorOptions {
        leader_election: true,
        lease_name: Some("ivywh-e2e".into()),
        ..OperatorOptions::default()
    };
    let mut first = env.operator_with(&options, "replica-a").await;
    // Give the first replica the lease before the second one starts.
    let client = env.client.clone();
    let ns = env.ns.name.clone();
    let holder = move || {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            let api: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
                kube::Api::namespaced(client, &ns);
            api.get_opt("ivywh-e2e").await.ok()??.spec?.holder_identity
        }
    };
    eventually(WAIT, "replica-a holds the lease", || {
        let holder = holder.clone();
        async move { (holder().await.as_deref() == Some("replica-a")).then_some(()) }
    })
    .await;
    let mut second = env.operator_with(&options, "replica-b").await;
    let (_, id) = create_ready(&env, "led", "https://shop.example.com/hooks/led").await;
    assert!(
        second
            .process
            .log_text()
            .contains("waiting to become the leader")
    );
    assert!(
        !second.process.log_text().contains("created subscription"),
        "the standby reconciled"
    );

    first.process.kill().await;
    let killed_at = std::time::Instant::now();
    eventually(Duration::from_secs(30), "replica-b takes over", || {
        let holder = holder.clone();
        async move { (holder().await.as_deref() == Some("replica-b")).then_some(()) }
    })
    .await;
    assert!(
        killed_at.elapsed() < Duration::from_secs(20),
        "takeover took {:?}",
        killed_at.elapsed()
    );
    // The new leader reconciles: a spec change reaches Ivy.
    let (ok, out, err) = kubectl(&[
        "patch",
        "-n",
        &env.ns.name,
        "ivywh/led",
        "--type=merge",
        "-p",
        r#"{"spec":{"events":["order_updated"]}}"#,
    ])
    .await;
    assert!(ok, "{out}{err}");
    eventually(WAIT, "replica-b applies the change", || async {
        let remote = env.emulator.subscription(&id).await?;
        (remote["events"] == json!(["order_updated"])).then_some(())
    })
    .await;

    // A leader stopped with SIGTERM exits cleanly and gives the lease up at once.
    let stopping = std::time::Instant::now();
    assert_eq!(
        second.process.terminate().await,
        Some(0),
        "log:\n{}",
        second.process.log_text()
    );
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        stopping.elapsed()
    );
    assert!(
        second
            .process
            .log_text()
            .contains("released the leader lease")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_operator_cleanly() {
    let Some(env) = setup("e2e-sigterm", &[]).await else {
        return;
    };
    let mut operator = env.operator().await;
    create_ready(&env, "term", "https://shop.example.com/hooks/term").await;
    let code = operator.process.terminate().await;
    assert_eq!(code, Some(0), "log:\n{}", operator.process.log_text());
    let log = operator.process.log_text();
    assert!(log.contains("controller stopped"), "{log}");
    assert!(
        !log.contains("whsec_") && !log.contains(API_KEY),
        "a secret or the API key reached the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_writes_nothing_and_reads_ivy_once_per_resync() {
    let Some(env) = setup("e2e-steady", &[]).await else {
        return;
    };
    let _operator = env.operator().await;
    create_ready(&env, "steady", "https://shop.example.com/hooks/steady").await;
    // Let the first status write's echo settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let version = |client: kube::Client, ns: String| async move {
        let sub = get_sub(&client, &ns, "steady").await.unwrap();
        let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
            kube::Api::namespaced(client, &ns);
        let secret = secrets.get("steady-ivy-webhook").await.unwrap();
        (sub.resource_version(), secret.resource_version())
    };
    let before = version(env.client.clone(), env.ns.name.clone()).await;
    let gets_before = env.emulator.request_count("GET", "/webhook/{id}").await;
    let window = Duration::from_secs(10);
    tokio::time::sleep(window).await;
    let after = version(env.client.clone(), env.ns.name.clone()).await;
    let gets = env.emulator.request_count("GET", "/webhook/{id}").await - gets_before;
    assert_eq!(
        before, after,
        "nothing changed, yet the operator wrote to the apiserver"
    );
    // Resync is 3 s: at most one read per interval (plus one for a boundary).
    assert!(gets <= 10 / 3 + 1, "{gets} reads at Ivy in {window:?}");
    assert!(gets >= 1, "the drift check never ran");
    for method in ["POST", "PUT", "DELETE"] {
        let writes = env.emulator.request_count(method, "/webhook/{id}").await;
        assert_eq!(writes, 0, "{method} at Ivy in steady state");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_json_and_carry_no_secret() {
    let Some(env) = setup("e2e-json", &[]).await else {
        return;
    };
    let options = OperatorOptions {
        extra_args: vec!["--log-format".into(), "json".into()],
        ..OperatorOptions::default()
    };
    let mut operator = env.operator_with(&options, "operator").await;
    let (_, id) = create_ready(&env, "json", "https://shop.example.com/hooks/json").await;
    let secret = env.emulator.subscription(&id).await.unwrap()["signing_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(operator.process.terminate().await, Some(0));
    let log = operator.process.log_text();
    let mut lines = 0;
    for line in log.lines() {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(parsed.get("level").is_some(), "{line}");
        lines += 1;
    }
    assert!(lines > 3, "{log}");
    assert!(!log.contains(&secret) && !log.contains(API_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_dialect_never_shares_one_subscription_between_two_resources() {
    let Some(env) = setup("e2e-svc-dup", &[]).await else {
        return;
    };
    let app_secret = env.emulator.app_signing_secret().await;
    let options = OperatorOptions {
        dialect: "service",
        app_secret: Some(app_secret),
        ..OperatorOptions::default()
    };
    let _operator = env.operator_with(&options, "operator").await;
    let url = "https://shop.example.com/hooks/shared";
    apply(
        &env.ns.name,
        &manifest("first", url, &["order_created"], ""),
    )
    .await;
    wait_ready(&env.ns.name, "first", "60s").await;
    apply(
        &env.ns.name,
        &manifest("second", url, &["order_created"], ""),
    )
    .await;
    // The take-over of the URL's holder follows the ownership rule: refused, naming the owner
    // (it is in the same namespace).
    let ready = eventually(WAIT, "AdoptionRefused on the second resource", || async {
        let sub = get_sub(&env.client, &env.ns.name, "second").await?;
        let ready = sub.ready_condition()?.clone();
        (ready.reason == "AdoptionRefused").then_some(ready)
    })
    .await;
    assert!(
        ready.message.contains("WebhookSubscription first"),
        "{}",
        ready.message
    );
    let (ok, out, err) = kubectl(&[
        "delete",
        "-n",
        &env.ns.name,
        "ivywh/second",
        "--timeout=60s",
    ])
    .await;
    assert!(ok, "{out}{err}");
    let first_id = get_sub(&env.client, &env.ns.name, "first")
        .await
        .unwrap()
        .status
        .unwrap()
        .subscription_id
        .unwrap();
    assert!(
        env.emulator.subscription(&first_id).await.is_some(),
        "deleting the second resource removed the first one's subscription"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_api_key_file_is_used_without_a_restart() {
    let Some(env) = setup("e2e-apikey", &[]).await else {
        return;
    };
    let _operator = env.operator().await;
    let key_file = env.dir.path().join("api-key");
    let replace = |content: &str| {
        let tmp = env.dir.path().join(".api-key.tmp");
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &key_file).unwrap();
    };
    replace("a-revoked-key");
    apply(
        &env.ns.name,
        &manifest(
            "keyed",
            "https://shop.example.com/hooks/keyed",
            &["test"],
            "",
        ),
    )
    .await;
    eventually(WAIT, "AuthFailed with the wrong key", || async {
        let sub = get_sub(&env.client, &env.ns.name, "keyed").await?;
        (sub.ready_condition()?.reason == "AuthFailed").then_some(())
    })
    .await;
    replace(API_KEY);
    // The AuthFailed recheck is a minute; a change to the resource triggers a reconcile now.
    let (ok, out, err) =
        kubectl(&["annotate", "-n", &env.ns.name, "ivywh/keyed", "touched=1"]).await;
    assert!(ok, "{out}{err}");
    wait_ready(&env.ns.name, "keyed", "60s").await;
}
