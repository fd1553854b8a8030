//! End-to-end suite of what platforms add around receivers (see `hack/with-control-plane.sh`):
//! labels and annotations on the Secret, restarting workloads when the secret changes,
//! scheduled rotation, the monitoring metrics, and a private CA for Ivy's API. Each test has
//! its own namespace, emulator and operator, so tests run in parallel.

// Test helpers outside `#[test]` functions may panic like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use support::*;

use ivy_webhook_operator::controller::restart::secret_hash;
use ivy_webhook_operator::ivy::SigningSecret;

const WAIT: Duration = Duration::from_secs(60);

struct Env {
    client: kube::Client,
    ns: TestNamespace,
    dir: tempfile::TempDir,
    emulator: Emulator,
}

async fn setup(prefix: &str) -> Option<Env> {
    let client = cluster().await?;
    install_crd().await;
    let ns = TestNamespace::create(&client, prefix).await;
    let dir = scratch();
    let emulator = Emulator::start(dir.path(), &[]).await;
    Some(Env {
        client,
        ns,
        dir,
        emulator,
    })
}

impl Env {
    async fn operator(&self, options: &OperatorOptions) -> Operator {
        Operator::start(
            self.dir.path(),
            &self.ns.name,
            &self.emulator.base_url,
            options,
            "operator",
        )
        .await
    }

    async fn secret(&self, name: &str) -> Secret {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns.name);
        api.get(name).await.expect("get Secret")
    }

    async fn annotate(&self, resource: &str, annotation: &str) {
        let (ok, out, err) = kubectl(&[
            "annotate",
            "--overwrite",
            "-n",
            &self.ns.name,
            resource,
            annotation,
        ])
        .await;
        assert!(ok, "{out}{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_template_is_applied_and_its_removals_follow() {
    let Some(env) = setup("e2e-template").await else {
        return;
    };
    let _operator = env.operator(&OperatorOptions::default()).await;
    let template = "  secretTemplate:\n    labels: {team: shop, app.kubernetes.io/managed-by: helm}\n    annotations: {reloader.stakater.com/match: \"true\", webhooks.ivy.dev/rotation: forged}\n";
    apply(
        &env.ns.name,
        &manifest(
            "orders",
            "https://shop.example.com/tpl/orders",
            &["order_created"],
            template,
        ),
    )
    .await;
    wait_ready(&env.ns.name, "orders", "60s").await;
    let secret = env.secret("orders-ivy-webhook").await;
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(labels["team"], "shop");
    assert_eq!(
        labels["app.kubernetes.io/managed-by"], "ivy-webhook-operator",
        "the operator's label wins"
    );
    assert_eq!(annotations["reloader.stakater.com/match"], "true");
    assert_ne!(
        annotations
            .get("webhooks.ivy.dev/rotation")
            .map(String::as_str),
        Some("forged"),
        "the operator's annotations are its own"
    );

    // Dropping a label from the template drops it from the Secret (server-side apply).
    apply(
        &env.ns.name,
        &manifest(
            "orders",
            "https://shop.example.com/tpl/orders",
            &["order_created"],
            "  secretTemplate:\n    annotations: {reloader.stakater.com/match: \"true\"}\n",
        ),
    )
    .await;
    eventually(WAIT, "the label removed from the Secret", || async {
        let secret = env.secret("orders-ivy-webhook").await;
        (!secret
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("team"))
        .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_restart_after_a_rotation_and_only_then() {
    let Some(env) = setup("e2e-restart").await else {
        return;
    };
    let _operator = env.operator(&OperatorOptions::default()).await;
    apply_receiver_deployment(&env.ns.name, "receiver").await;
    apply(
        &env.ns.name,
        &manifest(
            "orders",
            "https://shop.example.com/restart/orders",
            &["order_created"],
            "  restartOnRotation:\n    - {kind: Deployment, name: receiver}\n    - {kind: StatefulSet, name: ghost}\n",
        ),
    )
    .await;
    wait_ready(&env.ns.name, "orders", "60s").await;
    // The first secret of a new resource restarts nothing; resyncs (every 3s) neither.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        deployment_secret_hash(&env.client, &env.ns.name, "receiver").await,
        None
    );
    let before = secret_data(&env.client, &env.ns.name, "orders-ivy-webhook")
        .await
        .unwrap();

    env.annotate("ivywh/orders", "webhooks.ivy.dev/rotate-secret=1")
        .await;
    let rotated = eventually(WAIT, "the new secret stored", || async {
        let data = secret_data(&env.client, &env.ns.name, "orders-ivy-webhook").await?;
        (data["signing-secret"] != before["signing-secret"]).then_some(data)
    })
    .await;
    let expected = secret_hash(&SigningSecret::new(rotated["signing-secret"].clone()));
    let hash = eventually(WAIT, "the receiver's pod template annotated", || async {
        deployment_secret_hash(&env.client, &env.ns.name, "receiver").await
    })
    .await;
    assert_eq!(hash, expected);
    eventually(
        WAIT,
        "a RestartTargetMissing Warning for the ghost",
        || async {
            event_reasons(&env.ns.name, "orders")
                .await
                .contains(&"RestartTargetMissing".to_owned())
                .then_some(())
        },
    )
    .await;

    // Once per change: the end of the grace period and later resyncs leave it alone.
    let generation = |client: kube::Client, ns: String| async move {
        let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client, &ns);
        api.get("receiver").await.unwrap().metadata.generation
    };
    let first = generation(env.client.clone(), env.ns.name.clone()).await;
    eventually(WAIT, "the rotation completed", || async {
        let data = secret_data(&env.client, &env.ns.name, "orders-ivy-webhook").await?;
        (!data.contains_key("previous-signing-secret")).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        generation(env.client.clone(), env.ns.name.clone()).await,
        first
    );
    let restarts = event_reasons(&env.ns.name, "orders")
        .await
        .iter()
        .filter(|r| *r == "WorkloadRestarted")
        .count();
    assert_eq!(restarts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_rotation_fires_after_its_interval() {
    let Some(env) = setup("e2e-scheduled").await else {
        return;
    };
    let _operator = env.operator(&OperatorOptions::default()).await;
    apply(
        &env.ns.name,
        &manifest(
            "orders",
            "https://shop.example.com/scheduled/orders",
            &["order_created"],
            "  rotation: {every: 1m}\n",
        ),
    )
    .await;
    wait_ready(&env.ns.name, "orders", "60s").await;
    let first = get_sub(&env.client, &env.ns.name, "orders").await.unwrap();
    let first_status = first.status.unwrap();
    let first_id = first_status.subscription_id.clone().unwrap();
    let first_rotation = first_status
        .last_rotation_time
        .clone()
        .expect("lastRotationTime after the create")
        .0;

    let rotated = eventually(Duration::from_secs(120), "a scheduled rotation", || async {
        let sub = get_sub(&env.client, &env.ns.name, "orders").await?;
        let status = sub.status?;
        (status.subscription_id.as_deref() != Some(first_id.as_str())).then_some(status)
    })
    .await;
    let second_rotation = rotated.last_rotation_time.expect("lastRotationTime").0;
    let elapsed = second_rotation.duration_since(first_rotation);
    assert!(
        elapsed >= jiff::SignedDuration::from_secs(59),
        "rotated {elapsed:?} after the create"
    );
    // The old subscription goes after the grace period, as with a requested rotation.
    eventually(WAIT, "the old subscription deleted", || async {
        env.emulator
            .subscription(&first_id)
            .await
            .is_none()
            .then_some(())
    })
    .await;
    let (ok, table, err) = kubectl(&["get", "ivywh", "-n", &env.ns.name]).await;
    assert!(ok, "{err}");
    assert!(table.contains("ROTATED"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitoring_metrics_are_served() {
    let Some(env) = setup("e2e-metrics").await else {
        return;
    };
    let operator = env.operator(&OperatorOptions::default()).await;
    apply(
        &env.ns.name,
        &manifest(
            "orders",
            "https://shop.example.com/metrics/orders",
            &["order_created"],
            "",
        ),
    )
    .await;
    wait_ready(&env.ns.name, "orders", "60s").await;
    let rotation_series = format!(
        "ivywh_signing_secret_rotation_timestamp_seconds{{namespace=\"{}\",name=\"orders\"}}",
        env.ns.name
    );
    let text = eventually(WAIT, "the per-resource series", || async {
        let text = operator.metrics().await;
        text.contains(&rotation_series).then_some(text)
    })
    .await;
    for expected in [
        "ivywh_build_info{version=\"",
        "ivywh_leader 1",
        "ivywh_ivy_api_call_duration_seconds_bucket{",
        "operation=\"create\",outcome=\"ok\"",
        "ivywh_ivy_api_calls_total{",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }

    delete_sub(&env.client, &env.ns.name, "orders").await;
    eventually(WAIT, "the series gone with the resource", || async {
        (!operator.metrics().await.contains(&rotation_series)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_is_trusted_only_through_the_ca_file() {
    let Some(client) = cluster().await else {
        return;
    };
    install_crd().await;
    let ns = TestNamespace::create(&client, "e2e-ca").await;
    let dir = scratch();
    let ca = TestCa::new();
    let emulator = Emulator::start_tls(dir.path(), &ca, &[]).await;
    apply(
        &ns.name,
        &manifest(
            "orders",
            "https://shop.example.com/ca/orders",
            &["order_created"],
            "",
        ),
    )
    .await;

    // Without the CA the certificate is refused: the resource cannot reach Ivy.
    let mut untrusting = Operator::start(
        dir.path(),
        &ns.name,
        &emulator.base_url,
        &OperatorOptions::default(),
        "operator-without-ca",
    )
    .await;
    eventually(WAIT, "IvyUnavailable without the CA", || async {
        let sub = get_sub(&client, &ns.name, "orders").await?;
        let ready = sub.ready_condition()?;
        (ready.status == "False" && ready.reason == "IvyUnavailable").then_some(())
    })
    .await;
    assert!(emulator.subscriptions().await.is_empty());
    untrusting.process.terminate().await;

    let ca_file = dir.path().join("ivy-ca.crt");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let options = OperatorOptions {
        extra_args: vec![format!("--ivy-ca-file={}", ca_file.display())],
        ..OperatorOptions::default()
    };
    let _trusting = Operator::start(
        dir.path(),
        &ns.name,
        &emulator.base_url,
        &options,
        "operator-with-ca",
    )
    .await;
    wait_ready(&ns.name, "orders", "60s").await;
    assert_eq!(emulator.subscriptions().await.len(), 1);
}
