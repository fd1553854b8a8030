//! One tenant's resource never acts on another's: a WebhookSubscription in namespace B that
//! names namespace A's subscription (by the adoption annotation, or through a Secret written
//! by hand) is refused with `AdoptionRefused`, A's subscription stays exactly as it was, and it
//! survives the deletion of B's resource. Messages never name A's resources.

// Test helpers outside `#[test]` functions may panic like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use kube::ResourceExt;
use serde_json::Value;
use support::*;

const WAIT: Duration = Duration::from_secs(60);

/// Two namespaces, one emulator (one Ivy account), and an operator for each namespace: the
/// ownership rule looks at the whole cluster whatever a replica watches. (One operator watching
/// every namespace would also act on the namespaces of tests running beside this one.)
struct Env {
    client: kube::Client,
    a: TestNamespace,
    b: TestNamespace,
    emulator: Emulator,
    _operators: [Operator; 2],
    _dir: tempfile::TempDir,
}

async fn setup(prefix: &str) -> Option<Env> {
    let client = cluster().await?;
    install_crd().await;
    let a = TestNamespace::create(&client, &format!("{prefix}-a")).await;
    let b = TestNamespace::create(&client, &format!("{prefix}-b")).await;
    let dir = scratch();
    let emulator = Emulator::start(dir.path(), &[]).await;
    let options = OperatorOptions::default();
    let operator_a = Operator::start(
        dir.path(),
        &a.name,
        &emulator.base_url,
        &options,
        "operator-a",
    )
    .await;
    let operator_b = Operator::start(
        dir.path(),
        &b.name,
        &emulator.base_url,
        &options,
        "operator-b",
    )
    .await;
    Some(Env {
        client,
        a,
        b,
        emulator,
        _operators: [operator_a, operator_b],
        _dir: dir,
    })
}

/// A's Ready resource and its subscription as the emulator holds it.
async fn a_ready(env: &Env) -> (String, Value) {
    apply(
        &env.a.name,
        &manifest(
            "orders",
            "https://a.example.com/hooks/orders",
            &["order_created", "refund_succeeded"],
            "",
        ),
    )
    .await;
    wait_ready(&env.a.name, "orders", "60s").await;
    let data = secret_data(&env.client, &env.a.name, "orders-ivy-webhook")
        .await
        .unwrap();
    let id = data["subscription-id"].clone();
    let remote = env.emulator.subscription(&id).await.unwrap();
    (id, remote)
}

async fn refused(env: &Env, name: &str) -> String {
    eventually(WAIT, "AdoptionRefused", || async {
        let sub = get_sub(&env.client, &env.b.name, name).await?;
        let ready = sub.ready_condition()?;
        (ready.reason == "AdoptionRefused").then(|| ready.message.clone())
    })
    .await
}

/// A's subscription is exactly as it was: id, URL, events, description (marker), secret.
async fn untouched(env: &Env, id: &str, before: &Value) {
    let now = env
        .emulator
        .subscription(id)
        .await
        .expect("A's subscription still exists");
    for field in ["url", "events", "description", "signing_secret", "active"] {
        assert_eq!(now[field], before[field], "{field} of A's subscription");
    }
    wait_ready(&env.a.name, "orders", "10s").await;
}

async fn delete_b(env: &Env, name: &str) {
    let (ok, out, err) = kubectl(&[
        "delete",
        "-n",
        &env.b.name,
        &format!("ivywh/{name}"),
        "--timeout=30s",
    ])
    .await;
    assert!(ok, "{out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopting_another_namespaces_subscription_is_refused() {
    let Some(env) = setup("tenancy-adopt").await else {
        return;
    };
    let (id, before) = a_ready(&env).await;

    apply(
        &env.b.name,
        &manifest(
            "thief",
            "https://b.example.com/hooks/thief",
            &["order_created"],
            "",
        )
        .replacen(
            "metadata:\n",
            &format!("metadata:\n  annotations:\n    webhooks.ivy.dev/subscription-id: \"{id}\"\n"),
            1,
        ),
    )
    .await;
    let message = refused(&env, "thief").await;
    assert!(
        !message.contains(&env.a.name) && !message.contains("orders"),
        "the message names nothing of namespace A: {message}"
    );
    let thief = get_sub(&env.client, &env.b.name, "thief").await.unwrap();
    assert!(
        thief
            .status
            .as_ref()
            .and_then(|s| s.subscription_id.as_ref())
            .is_none(),
        "B never records A's id"
    );
    untouched(&env, &id, &before).await;

    // Two resyncs later nothing has moved (no fight), and deleting B's resource leaves A's.
    tokio::time::sleep(Duration::from_secs(7)).await;
    untouched(&env, &id, &before).await;
    delete_b(&env, "thief").await;
    untouched(&env, &id, &before).await;
    let (_, events, _) = kubectl(&["get", "events", "-n", &env.b.name, "-o", "json"]).await;
    assert!(
        !events.contains(&env.a.name),
        "no Event in B names namespace A"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_written_secret_naming_another_namespaces_subscription_is_refused() {
    let Some(env) = setup("tenancy-secret").await else {
        return;
    };
    let (id, before) = a_ready(&env).await;

    // A Secret in B, written by a namespace editor to look like one the operator manages.
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: thief-ivy-webhook\n  labels:\n    app.kubernetes.io/managed-by: ivy-webhook-operator\n    webhooks.ivy.dev/subscription: thief\nstringData:\n  subscription-id: \"{id}\"\n  signing-secret: whsec_forged\n"
    );
    let (ok, out, err) =
        kubectl_stdin(&["apply", "-n", &env.b.name, "-f", "-"], Some(&secret)).await;
    assert!(ok, "{out}{err}");
    apply(
        &env.b.name,
        &manifest(
            "thief",
            "https://b.example.com/hooks/thief",
            &["order_created"],
            "",
        ),
    )
    .await;
    let message = refused(&env, "thief").await;
    assert!(!message.contains(&env.a.name), "{message}");
    untouched(&env, &id, &before).await;
    delete_b(&env, "thief").await;
    untouched(&env, &id, &before).await;
    assert_eq!(env.emulator.subscriptions().await.len(), 1);
    let uid = get_sub(&env.client, &env.a.name, "orders")
        .await
        .unwrap()
        .uid()
        .unwrap();
    assert_eq!(marked_for(&env.emulator, &uid).await.len(), 1);
}
