//! Ivy accounts through the whole operator: WebhookSubscriptions in two namespaces, each with
//! its own IvyAccount (its own merchant at the emulator), and a ClusterIvyAccount admitted for
//! one namespace only. Each merchant sees only its own subscriptions, a resource can never use
//! another namespace's IvyAccount, and a refused ClusterIvyAccount says so.
//!
//! One test in its own binary: its operator watches every namespace (cluster accounts are
//! served only then), which would disturb tests running beside it.

// Test helpers outside `#[test]` functions may panic like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use support::*;

const WAIT: Duration = Duration::from_secs(90);
const KEY_A: &str = "merchant-of-namespace-a";
const KEY_B: &str = "merchant-of-namespace-b";
const KEY_SHARED: &str = "merchant-of-the-cluster-account";

fn key_secret(name: &str, key: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  api-key: {key}\n"
    )
}

fn account(name: &str, base_url: &str, secret: &str) -> String {
    format!(
        "apiVersion: webhooks.ivy.dev/v1alpha1\nkind: IvyAccount\nmetadata:\n  name: {name}\nspec:\n  baseUrl: {base_url}\n  dialect: rest\n  apiKeySecretRef:\n    name: {secret}\n"
    )
}

fn with_account(name: &str, url: &str, kind: &str, account: &str) -> String {
    manifest(
        name,
        url,
        &["order_created"],
        &format!("  accountRef:\n    kind: {kind}\n    name: {account}\n"),
    )
}

async fn reason_of(client: &kube::Client, namespace: &str, name: &str) -> Option<(String, String)> {
    let sub = get_sub(client, namespace, name).await?;
    let ready = sub.ready_condition()?;
    Some((ready.reason.clone(), ready.message.clone()))
}

/// The emulator's subscriptions for this test's URLs.
async fn ours(emulator: &Emulator) -> Vec<serde_json::Value> {
    emulator
        .subscriptions()
        .await
        .into_iter()
        .filter(|s| {
            s["url"].as_str().is_some_and(|u| {
                u.starts_with("https://a.example.com/") || u.starts_with("https://b.example.com/")
            })
        })
        .collect()
}

/// The emulator's merchant (by its index: the order of the --api-key flags) of a subscription.
async fn merchant_of(emulator: &Emulator, id: &str) -> u64 {
    emulator.subscription(id).await.expect("subscription")["merchant"]
        .as_u64()
        .expect("merchant")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_namespace_reaches_ivy_only_with_the_accounts_it_may_use() {
    let Some(client) = cluster().await else {
        return;
    };
    install_crd().await;
    let a = TestNamespace::create(&client, "acct-a").await;
    let b = TestNamespace::create(&client, "acct-b").await;
    let platform = TestNamespace::create(&client, "acct-platform").await;
    let dir = scratch();
    // Merchant 0 is the operator's own key (support::API_KEY), 1 is A's, 2 B's, 3 the cluster's.
    let emulator = Emulator::start(
        dir.path(),
        &[
            "--api-key",
            KEY_A,
            "--api-key",
            KEY_B,
            "--api-key",
            KEY_SHARED,
        ],
    )
    .await;
    let options = OperatorOptions {
        watch_namespace: false,
        ..OperatorOptions::default()
    };
    let _operator = Operator::start(
        dir.path(),
        &a.name,
        &emulator.base_url,
        &options,
        "operator",
    )
    .await;

    // Each namespace brings its own account; the platform team one for namespace A only.
    for (ns, key) in [(&a, KEY_A), (&b, KEY_B)] {
        apply(&ns.name, &key_secret("ivy-key", key)).await;
        apply(&ns.name, &account("main", &emulator.base_url, "ivy-key")).await;
    }
    apply(&platform.name, &key_secret("shared-key", KEY_SHARED)).await;
    let cluster_account = format!(
        "apiVersion: webhooks.ivy.dev/v1alpha1\nkind: ClusterIvyAccount\nmetadata:\n  name: shared-{suffix}\nspec:\n  baseUrl: {url}\n  dialect: rest\n  apiKeySecretRef:\n    namespace: {ns}\n    name: shared-key\n  conditions:\n    - namespaces: [{admitted}]\n",
        suffix = &a.name,
        url = emulator.base_url,
        ns = platform.name,
        admitted = a.name,
    );
    let (ok, out, err) = kubectl_stdin(&["apply", "-f", "-"], Some(&cluster_account)).await;
    assert!(ok, "{out}{err}");
    let shared = format!("shared-{}", a.name);

    apply(
        &a.name,
        &with_account(
            "orders",
            "https://a.example.com/orders",
            "IvyAccount",
            "main",
        ),
    )
    .await;
    apply(
        &b.name,
        &with_account(
            "orders",
            "https://b.example.com/orders",
            "IvyAccount",
            "main",
        ),
    )
    .await;
    apply(
        &a.name,
        &with_account(
            "payouts",
            "https://a.example.com/payouts",
            "ClusterIvyAccount",
            &shared,
        ),
    )
    .await;
    apply(
        &b.name,
        &with_account(
            "payouts",
            "https://b.example.com/payouts",
            "ClusterIvyAccount",
            &shared,
        ),
    )
    .await;
    // B names an IvyAccount that exists only in A: never A's.
    apply(
        &b.name,
        &with_account(
            "borrowed",
            "https://b.example.com/borrowed",
            "IvyAccount",
            "only-in-a",
        ),
    )
    .await;
    apply(
        &a.name,
        &account("only-in-a", &emulator.base_url, "ivy-key"),
    )
    .await;

    for (ns, name) in [(&a, "orders"), (&b, "orders"), (&a, "payouts")] {
        eventually(WAIT, &format!("{}/{name} Ready", ns.name), || async {
            let (reason, _) = reason_of(&client, &ns.name, name).await?;
            (reason == "Subscribed").then_some(())
        })
        .await;
    }
    let (reason, message) = eventually(WAIT, "B's payouts refused", || async {
        let found = reason_of(&client, &b.name, "payouts").await?;
        (found.0 == "AccountForbidden").then_some(found)
    })
    .await;
    assert_eq!(reason, "AccountForbidden");
    assert!(
        !message.contains(&platform.name),
        "never names the cluster account's Secret namespace: {message}"
    );
    let (reason, _) = eventually(WAIT, "B's borrowed not ready", || async {
        let found = reason_of(&client, &b.name, "borrowed").await?;
        (found.0 == "AccountNotReady").then_some(found)
    })
    .await;
    assert_eq!(reason, "AccountNotReady");

    // Each merchant holds exactly its own subscriptions.
    let id_of = |ns: String, name: &'static str| {
        let client = client.clone();
        async move {
            secret_data(&client, &ns, &format!("{name}-ivy-webhook"))
                .await
                .unwrap()["subscription-id"]
                .clone()
        }
    };
    let a_orders = id_of(a.name.clone(), "orders").await;
    let b_orders = id_of(b.name.clone(), "orders").await;
    let a_payouts = id_of(a.name.clone(), "payouts").await;
    assert_eq!(merchant_of(&emulator, &a_orders).await, 1, "A's key");
    assert_eq!(merchant_of(&emulator, &b_orders).await, 2, "B's key");
    assert_eq!(
        merchant_of(&emulator, &a_payouts).await,
        3,
        "the cluster account's key"
    );
    // (Resources left by other suites' namespaces, still being deleted, may reach this
    // all-namespace operator too: only this test's URLs count.)
    let all = ours(&emulator).await;
    assert_eq!(all.len(), 3, "nothing for the refused ones: {all:#?}");
    assert!(
        all.iter().all(|s| s["merchant"] != 0),
        "nothing through the operator's own key"
    );

    // Deleting everything leaves nothing at any merchant.
    for ns in [&a, &b] {
        let (ok, out, err) = kubectl(&[
            "delete",
            "-n",
            &ns.name,
            "webhooksubscriptions.webhooks.ivy.dev",
            "--all",
            "--timeout=60s",
        ])
        .await;
        assert!(ok, "{out}{err}");
    }
    assert!(ours(&emulator).await.is_empty());
    let _ = kubectl(&[
        "delete",
        "clusterivyaccounts.webhooks.ivy.dev",
        &shared,
        "--wait=false",
    ])
    .await;
}
