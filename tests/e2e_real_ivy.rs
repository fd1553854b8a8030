//! The operator against an Ivy that is less friendly than the emulator's defaults (its
//! `--quirks`: bare or reworded 409s, short pages in any order, JSON 404s, proxy 502s,
//! idempotency ignored), on a real control plane: deletions never hang and leave nothing behind,
//! a deleted Secret comes back working, and a resource that never reached Ivy goes at once.

// Test helpers outside `#[test]` functions may panic like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use support::*;

const WAIT: Duration = Duration::from_secs(60);
const UNFRIENDLY: &[&str] = &["--quirks", "unfriendly"];

/// A namespace, an emulator with `quirks`, and an operator of `dialect` watching the namespace.
struct Env {
    client: kube::Client,
    ns: TestNamespace,
    dir: tempfile::TempDir,
    emulator: Emulator,
    operator: Option<Operator>,
}

async fn setup(prefix: &str, dialect: &'static str, quirks: &[&str]) -> Option<Env> {
    let client = cluster().await?;
    install_crd().await;
    let ns = TestNamespace::create(&client, prefix).await;
    let dir = scratch();
    let emulator = Emulator::start(dir.path(), quirks).await;
    let app_secret = match dialect {
        "service" => Some(emulator.app_signing_secret().await),
        _ => None,
    };
    let options = OperatorOptions {
        dialect,
        app_secret,
        ..OperatorOptions::default()
    };
    let operator = Operator::start(
        dir.path(),
        &ns.name,
        &emulator.base_url,
        &options,
        "operator",
    )
    .await;
    Some(Env {
        client,
        ns,
        dir,
        emulator,
        operator: Some(operator),
    })
}

/// `count` resources applied at once, each with a URL of its own.
fn many(count: usize, prefix: &str) -> String {
    (0..count)
        .map(|i| {
            manifest(
                &format!("{prefix}-{i}"),
                &format!("https://shop.example.com/hooks/{prefix}/{i}"),
                &["order_created"],
                "",
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

async fn all_ready(namespace: &str, count: usize) {
    let (ok, out, err) = kubectl(&[
        "wait",
        "-n",
        namespace,
        "--for=condition=Ready",
        "--timeout=120s",
        "webhooksubscription",
        "--all",
    ])
    .await;
    assert!(ok, "{out}{err}");
    let ready = out.lines().filter(|l| l.contains("condition met")).count();
    assert_eq!(ready, count, "{out}");
}

/// Deleting a namespace that holds 20 Ready resources: the namespace controller removes the
/// Secrets while the resources wait for their finalizer; the operator must not take that for a
/// lost Secret and create anything, and must delete every subscription.
async fn namespace_deletion_leaves_nothing(dialect: &'static str) {
    let Some(env) = setup(&format!("nsdel-{dialect}"), dialect, UNFRIENDLY).await else {
        return;
    };
    apply(&env.ns.name, &many(20, "nsdel")).await;
    all_ready(&env.ns.name, 20).await;
    assert_eq!(env.emulator.subscriptions().await.len(), 20);
    let creates_before = env.emulator.operation_count("create").await;

    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    namespaces
        .delete(&env.ns.name, &DeleteParams::default())
        .await
        .expect("delete namespace");
    eventually(WAIT, "namespace gone", || async {
        namespaces
            .get_opt(&env.ns.name)
            .await
            .expect("get namespace")
            .is_none()
            .then_some(())
    })
    .await;
    let left = env.emulator.subscriptions().await;
    assert!(left.is_empty(), "left at Ivy: {left:#?}");
    assert_eq!(
        env.emulator.operation_count("create").await,
        creates_before,
        "nothing was created while the namespace went away"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_leaves_nothing_at_ivy_rest() {
    namespace_deletion_leaves_nothing("rest").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_leaves_nothing_at_ivy_internal() {
    namespace_deletion_leaves_nothing("internal").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_leaves_nothing_at_ivy_service() {
    namespace_deletion_leaves_nothing("service").await;
}

/// A user deletes the Secret: within one resync a working Secret is back (the old subscription,
/// whose secret is lost, replaced), and exactly one subscription is left at Ivy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_secret_comes_back_working() {
    let Some(env) = setup("lostsecret", "rest", UNFRIENDLY).await else {
        return;
    };
    apply(
        &env.ns.name,
        &manifest(
            "orders",
            "https://shop.example.com/hooks/orders",
            &["order_created"],
            "",
        ),
    )
    .await;
    wait_ready(&env.ns.name, "orders", "60s").await;
    let uid = get_sub(&env.client, &env.ns.name, "orders")
        .await
        .unwrap()
        .uid()
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns.name);
    secrets
        .delete("orders-ivy-webhook", &DeleteParams::default())
        .await
        .expect("delete Secret");

    // The resync interval of the test operator is 3 s; the Secret watch usually wins.
    eventually(
        Duration::from_secs(30),
        "a working Secret again",
        || async {
            let data = secret_data(&env.client, &env.ns.name, "orders-ivy-webhook").await?;
            let id = data.get("subscription-id")?;
            let remote = env.emulator.subscription(id).await?;
            let marked = marked_for(&env.emulator, &uid).await;
            (data.get("signing-secret")? == remote["signing_secret"].as_str()? && marked.len() == 1)
                .then_some(())
        },
    )
    .await;
    wait_ready(&env.ns.name, "orders", "30s").await;
    assert_eq!(env.emulator.subscriptions().await.len(), 1);
}

/// A resource whose Secret name is taken never reaches Ivy, so deleting it needs no Ivy call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_that_never_reached_ivy_is_deleted_at_once() {
    let Some(env) = setup("taken", "rest", UNFRIENDLY).await else {
        return;
    };
    let (ok, out, err) = kubectl(&[
        "create",
        "secret",
        "generic",
        "-n",
        &env.ns.name,
        "someone-elses",
        "--from-literal=token=x",
    ])
    .await;
    assert!(ok, "{out}{err}");
    apply(
        &env.ns.name,
        &manifest(
            "orders",
            "https://shop.example.com/hooks/taken",
            &["order_created"],
            "  secretName: someone-elses\n",
        ),
    )
    .await;
    eventually(WAIT, "SecretConflict", || async {
        let sub = get_sub(&env.client, &env.ns.name, "orders").await?;
        (sub.ready_condition()?.reason == "SecretConflict").then_some(())
    })
    .await;
    let (ok, out, err) = kubectl(&[
        "delete",
        "-n",
        &env.ns.name,
        "ivywh/orders",
        "--timeout=20s",
    ])
    .await;
    assert!(ok, "deleted at once: {out}{err}");
    let calls = ["create", "get", "update", "delete", "list", "list-page"];
    for operation in calls {
        assert_eq!(
            env.emulator.operation_count(operation).await,
            0,
            "no {operation} at Ivy"
        );
    }
}

/// Ivy unreachable during deletion: the resource says `CleanupBlocked`, what fails and how to
/// let go; setting `deletionPolicy: Orphan` lets it go without Ivy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_cleanup_says_why_and_orphan_lets_go() {
    let Some(mut env) = setup("blocked", "rest", &[]).await else {
        return;
    };
    apply(
        &env.ns.name,
        &manifest(
            "orders",
            "https://shop.example.com/hooks/blocked",
            &["order_created"],
            "",
        ),
    )
    .await;
    wait_ready(&env.ns.name, "orders", "60s").await;
    env.emulator.process.kill().await;

    let (ok, out, err) =
        kubectl(&["delete", "-n", &env.ns.name, "ivywh/orders", "--wait=false"]).await;
    assert!(ok, "{out}{err}");
    let message = eventually(WAIT, "CleanupBlocked", || async {
        let sub = get_sub(&env.client, &env.ns.name, "orders").await?;
        let ready = sub.ready_condition()?;
        (ready.reason == "CleanupBlocked").then(|| ready.message.clone())
    })
    .await;
    assert!(message.contains("deletionPolicy: Orphan"), "{message}");
    assert!(message.contains("delete a subscription"), "{message}");

    let (ok, out, err) = kubectl(&[
        "patch",
        "-n",
        &env.ns.name,
        "ivywh/orders",
        "--type=merge",
        "-p",
        r#"{"spec":{"deletionPolicy":"Orphan"}}"#,
    ])
    .await;
    assert!(ok, "{out}{err}");
    eventually(WAIT, "resource gone", || async {
        get_sub(&env.client, &env.ns.name, "orders")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    drop(env.operator.take());
    drop(env.dir);
}
