//! Ivy accounts end to end: `IvyAccount` and `ClusterIvyAccount` on a real control plane
//! (`hack/with-control-plane.sh cargo test --test accounts`), the account controller and the
//! registry running in this process, and `ivy-emulator` in-process as Ivy (each API key is its
//! own merchant). The first tests need no cluster: they check the budget and the key check
//! against the emulator's real answers.

// Test helpers outside `#[test]` functions may panic like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::json;
use tokio::task::JoinHandle;

use ivy_webhook_operator::accounts::source::{AccountSource, SecretKeyRef};
use ivy_webhook_operator::accounts::status::{AccountReason, verdict_of_check};
use ivy_webhook_operator::accounts::{
    AccountError, AccountMetrics, AccountRef as AccountId, AccountRegistry, AccountsConfig, Budget,
    BudgetConfig, Budgeted, DefaultAccount, run_accounts,
};
use ivy_webhook_operator::crd::account::{
    AccountDialect, ApiKeySecretRef, ClusterAccountCondition, ClusterApiKeySecretRef,
    ClusterIvyAccountSpec, IvyAccountSpec,
};
use ivy_webhook_operator::crd::{AccountKind, AccountRef, ClusterIvyAccount, IvyAccount};
use ivy_webhook_operator::emulator::{Emulator, EmulatorConfig, FaultSpec, RunningEmulator};
use ivy_webhook_operator::ivy::{
    ApiKey, ClientConfig, Dialect, IdempotencyKey, IvyApi, IvyError, SharedIvyApi,
    SubscriptionRequest, build_ivy_client, http_client,
};
use support::{TestNamespace, cluster, eventually, install_crd, kubectl, kubectl_stdin};

/// Merchant 0 of every emulator here.
const KEY_A: &str = "merchant-a-key";
/// Merchant 1.
const KEY_B: &str = "merchant-b-key";

async fn emulator() -> RunningEmulator {
    let config = EmulatorConfig::default()
        .with_api_key(KEY_A)
        .add_api_key(KEY_B);
    Emulator::spawn(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn http() -> reqwest::Client {
    http_client(Duration::from_secs(2), Duration::from_secs(5)).unwrap()
}

fn ivy(emulator: &RunningEmulator, key: &str) -> SharedIvyApi {
    build_ivy_client(
        ClientConfig::new(emulator.base_url(), ApiKey::new(key), Dialect::Rest),
        http(),
    )
}

fn source_for(emulator: &RunningEmulator) -> AccountSource {
    AccountSource {
        id: AccountId::Namespaced {
            namespace: "shop".into(),
            name: "main".into(),
        },
        uid: None,
        generation: Some(1),
        base_url: emulator.base_url(),
        dialect: Dialect::Rest,
        api_key: SecretKeyRef {
            namespace: "shop".into(),
            name: "ivy-key".into(),
            key: "api-key".into(),
        },
        app_signing_secret: None,
        budget: BudgetConfig::default(),
    }
}

// ---- without a cluster ----

#[tokio::test]
async fn the_key_check_verifies_a_good_key_and_refuses_a_bad_one_at_the_emulator() {
    let emulator = emulator().await;
    let probe = uuid::Uuid::new_v4().to_string();
    let good = verdict_of_check(
        &ivy(&emulator, KEY_A).get(&probe).await,
        &source_for(&emulator),
    );
    assert_eq!(good.reason, AccountReason::Verified, "{}", good.message);
    let bad = verdict_of_check(
        &ivy(&emulator, "wrong").get(&probe).await,
        &source_for(&emulator),
    );
    assert_eq!(bad.reason, AccountReason::AuthFailed, "{}", bad.message);
}

#[tokio::test]
async fn a_429_storm_at_one_account_pauses_it_and_not_the_other() {
    let storm = emulator().await;
    let calm = emulator().await;
    let metrics = AccountMetrics::unregistered();
    let budgeted = |emulator: &RunningEmulator, label: &str| {
        Budgeted::new(
            ivy(emulator, KEY_A),
            Arc::new(Budget::new(BudgetConfig::default())),
            metrics.counters(label),
        )
    };
    let a = budgeted(&storm, "shop/a");
    let b = budgeted(&calm, "shop/b");
    storm.state().add_fault(FaultSpec::rate_limit(Some(30)));
    assert!(matches!(a.list().await, Err(IvyError::RateLimited { .. })));
    let sent = storm
        .state()
        .request_counts()
        .iter()
        .map(|c| c.count)
        .sum::<u64>();
    // Every later call of account A waits out the Retry-After without reaching Ivy...
    for _ in 0..5 {
        match a.list().await {
            Err(IvyError::RateLimited {
                retry_after: Some(wait),
            }) => assert!(wait > Duration::from_secs(25), "{wait:?}"),
            other => panic!("expected a deferral, got {other:?}"),
        }
    }
    let after = storm
        .state()
        .request_counts()
        .iter()
        .map(|c| c.count)
        .sum::<u64>();
    assert_eq!(after, sent, "a paused account sent requests");
    // ...while account B goes on at once.
    let started = Instant::now();
    for _ in 0..5 {
        b.list().await.unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(metrics.counters("shop/a").rate_limited_total(), 1);
    assert_eq!(metrics.counters("shop/a").throttled_waits_total(), 5);
    assert_eq!(metrics.counters("shop/b").rate_limited_total(), 0);
    assert_eq!(metrics.counters("shop/b").calls_total(), 5);
}

// ---- on the control plane ----

/// Applies the CRDs (crds/ holds all three) and waits until the account kinds are served.
async fn install_crds() {
    install_crd().await;
    for crd in [
        "crd/ivyaccounts.webhooks.ivy.dev",
        "crd/clusterivyaccounts.webhooks.ivy.dev",
    ] {
        let (ok, out, err) =
            kubectl(&["wait", "--for=condition=Established", "--timeout=60s", crd]).await;
        assert!(ok, "{crd} not established: {out}{err}");
    }
}

/// The account controller and the registry, running in this process until dropped.
struct Accounts {
    registry: Arc<AccountRegistry>,
    metrics: Arc<AccountMetrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Accounts {
    /// Watches the `IvyAccount`s of `namespace` (and, with `cluster_accounts`, every
    /// `ClusterIvyAccount`); the default account is merchant A of `default_ivy`.
    fn start(
        client: &Client,
        default_ivy: &RunningEmulator,
        namespace: &str,
        cluster_accounts: bool,
    ) -> Self {
        let metrics = Arc::new(AccountMetrics::unregistered());
        let config = AccountsConfig {
            watch_namespace: Some(namespace.to_owned()),
            cluster_accounts,
            recheck_interval: Duration::from_secs(1),
            ..AccountsConfig::default()
        };
        let registry = Arc::new(AccountRegistry::new(
            client.clone(),
            http(),
            DefaultAccount {
                ivy: ivy(default_ivy, KEY_A),
                app_signing_secret: None,
            },
            config,
            metrics.clone(),
        ));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run_accounts(client.clone(), registry.clone(), async {
            let _ = stopped.await;
        }));
        Self {
            registry,
            metrics,
            stop: Some(stop),
            task,
        }
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// Deletes a cluster-scoped account when the test ends, pass or fail.
struct ClusterAccountGuard(String);

impl Drop for ClusterAccountGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kubectl")
            .args([
                "delete",
                "clusterivyaccounts.webhooks.ivy.dev",
                &self.0,
                "--wait=false",
            ])
            .output();
    }
}

async fn create_secret(client: &Client, namespace: &str, name: &str, key: &str) {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name},
        "stringData": {"api-key": key},
    }))
    .unwrap();
    api.create(&PostParams::default(), &secret).await.unwrap();
}

async fn replace_secret(client: &Client, namespace: &str, name: &str, key: &str) {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let patch = json!({"stringData": {"api-key": key}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

fn account_spec(emulator: &RunningEmulator, secret: &str) -> IvyAccountSpec {
    IvyAccountSpec {
        base_url: emulator.base_url().to_string(),
        dialect: AccountDialect::Rest,
        api_key_secret_ref: ApiKeySecretRef {
            name: secret.into(),
            key: "api-key".into(),
        },
        app_signing_secret_ref: None,
        rate: None,
        burst: None,
    }
}

async fn create_account(client: &Client, namespace: &str, name: &str, spec: IvyAccountSpec) {
    let api: Api<IvyAccount> = Api::namespaced(client.clone(), namespace);
    api.create(&PostParams::default(), &IvyAccount::new(name, spec))
        .await
        .unwrap();
}

/// The account's `Ready` reason once it is `reason` for its current generation.
async fn wait_for_reason<K>(api: &Api<K>, name: &str, reason: &str)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + serde::Serialize,
{
    let what = format!("{name} to be {reason}");
    eventually(Duration::from_secs(30), &what, || async {
        let object = api.get(name).await.ok()?;
        let value = serde_json::to_value(&object).ok()?;
        let generation = value["metadata"]["generation"].clone();
        let ready = value["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready")?
            .clone();
        (ready["reason"] == reason && ready["observedGeneration"] == generation).then_some(())
    })
    .await;
}

fn namespaced_ref(name: &str) -> AccountRef {
    AccountRef {
        kind: AccountKind::IvyAccount,
        name: name.into(),
    }
}

fn cluster_ref(name: &str) -> AccountRef {
    AccountRef {
        kind: AccountKind::ClusterIvyAccount,
        name: name.into(),
    }
}

/// Creates a subscription through `ivy` and returns which merchant the emulator filed it under.
async fn merchant_of_a_create(emulator: &RunningEmulator, ivy: &SharedIvyApi) -> usize {
    let request = SubscriptionRequest {
        url: format!("https://shop.example.com/{}", uuid::Uuid::new_v4()),
        events: vec!["order_created".into()],
        description: Some("accounts e2e".into()),
        active: true,
    };
    let key = IdempotencyKey::new(uuid::Uuid::new_v4().to_string()).unwrap();
    let created = ivy.create(&request, &key).await.unwrap();
    emulator
        .state()
        .subscription(&created.subscription.id)
        .unwrap()
        .merchant
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_is_ready_with_a_good_key_auth_failed_with_a_bad_one_and_a_fixed_key_needs_no_restart()
 {
    let Some(client) = cluster().await else {
        return;
    };
    install_crds().await;
    let ns = TestNamespace::create(&client, "acct-ready").await;
    let emulator = emulator().await;
    create_secret(&client, &ns.name, "good-key", KEY_A).await;
    create_secret(&client, &ns.name, "bad-key", "not-a-key").await;
    create_account(
        &client,
        &ns.name,
        "good",
        account_spec(&emulator, "good-key"),
    )
    .await;
    create_account(&client, &ns.name, "bad", account_spec(&emulator, "bad-key")).await;
    let accounts = Accounts::start(&client, &emulator, &ns.name, false);
    let api: Api<IvyAccount> = Api::namespaced(client.clone(), &ns.name);

    wait_for_reason(&api, "good", "Verified").await;
    wait_for_reason(&api, "bad", "AuthFailed").await;
    let (ok, out, err) = kubectl(&[
        "wait",
        "-n",
        &ns.name,
        "--for=condition=Ready",
        "--timeout=10s",
        "ivyaccounts.webhooks.ivy.dev/good",
    ])
    .await;
    assert!(ok, "{out}{err}");
    let bad = api.get("bad").await.unwrap();
    let status = bad.status.unwrap();
    let message = &status.ready_condition().unwrap().message;
    assert!(message.contains("bad-key"), "{message}");
    assert!(!message.contains("not-a-key"), "the key leaked: {message}");

    // A resource may not use the failing account, and is told why.
    let error = accounts
        .registry
        .client_for(&ns.name, Some(&namespaced_ref("bad")))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "AccountNotReady");
    assert!(error.to_string().contains("AuthFailed"), "{error}");

    // Fixing the key in the Secret is picked up without a restart, by the controller and by
    // the registry: the next client sends the new key (merchant B).
    replace_secret(&client, &ns.name, "bad-key", KEY_B).await;
    wait_for_reason(&api, "bad", "Verified").await;
    let fixed = accounts
        .registry
        .client_for(&ns.name, Some(&namespaced_ref("bad")))
        .await
        .unwrap();
    assert_eq!(fixed.account, format!("{}/bad", ns.name));
    assert_eq!(merchant_of_a_create(&emulator, &fixed.ivy).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ivy_account_reference_resolves_only_in_the_resources_own_namespace() {
    let Some(client) = cluster().await else {
        return;
    };
    install_crds().await;
    let team_a = TestNamespace::create(&client, "acct-team-a").await;
    let team_b = TestNamespace::create(&client, "acct-team-b").await;
    let emulator = emulator().await;
    create_secret(&client, &team_a.name, "ivy-key", KEY_A).await;
    create_account(
        &client,
        &team_a.name,
        "main",
        account_spec(&emulator, "ivy-key"),
    )
    .await;
    let accounts_a = Accounts::start(&client, &emulator, &team_a.name, false);
    let accounts_b = Accounts::start(&client, &emulator, &team_b.name, false);
    let api_a: Api<IvyAccount> = Api::namespaced(client.clone(), &team_a.name);
    wait_for_reason(&api_a, "main", "Verified").await;

    // team-b names "main": there is none in team-b, and team-a's is never used.
    let error = accounts_b
        .registry
        .client_for(&team_b.name, Some(&namespaced_ref("main")))
        .await
        .unwrap_err();
    assert!(matches!(error, AccountError::Missing { .. }), "{error:?}");
    assert!(!error.to_string().contains(&team_a.name), "{error}");

    // With its own "main" (merchant B), team-b's resources work in merchant B only.
    create_secret(&client, &team_b.name, "ivy-key", KEY_B).await;
    create_account(
        &client,
        &team_b.name,
        "main",
        account_spec(&emulator, "ivy-key"),
    )
    .await;
    let api_b: Api<IvyAccount> = Api::namespaced(client.clone(), &team_b.name);
    wait_for_reason(&api_b, "main", "Verified").await;
    let a = accounts_a
        .registry
        .client_for(&team_a.name, Some(&namespaced_ref("main")))
        .await
        .unwrap();
    let b = accounts_b
        .registry
        .client_for(&team_b.name, Some(&namespaced_ref("main")))
        .await
        .unwrap();
    assert_eq!(merchant_of_a_create(&emulator, &a.ivy).await, 0);
    assert_eq!(merchant_of_a_create(&emulator, &b.ivy).await, 1);
    // Each merchant sees only its own subscriptions.
    assert_eq!(a.ivy.list().await.unwrap().len(), 1);
    assert_eq!(b.ivy.list().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_account_serves_the_namespaces_its_conditions_admit_and_refuses_others() {
    let Some(client) = cluster().await else {
        return;
    };
    install_crds().await;
    let keys = TestNamespace::create(&client, "acct-keys").await;
    let listed = TestNamespace::create(&client, "acct-listed").await;
    let labelled = TestNamespace::create(&client, "acct-labelled").await;
    let other = TestNamespace::create(&client, "acct-other").await;
    let emulator = emulator().await;
    let label = format!("e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            &labelled.name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"ivy.dev/merchant": label}}})),
        )
        .await
        .unwrap();
    create_secret(&client, &keys.name, "platform-key", KEY_A).await;
    let name = format!("platform-{label}");
    let _guard = ClusterAccountGuard(name.clone());
    let spec = ClusterIvyAccountSpec {
        base_url: emulator.base_url().to_string(),
        dialect: AccountDialect::Rest,
        api_key_secret_ref: ClusterApiKeySecretRef {
            namespace: keys.name.clone(),
            name: "platform-key".into(),
            key: "api-key".into(),
        },
        app_signing_secret_ref: None,
        rate: None,
        burst: None,
        conditions: vec![
            ClusterAccountCondition {
                namespace_selector: None,
                namespaces: vec![listed.name.clone()],
            },
            ClusterAccountCondition {
                namespace_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        "ivy.dev/merchant".to_owned(),
                        label.clone(),
                    )])),
                    match_expressions: None,
                }),
                namespaces: vec![],
            },
        ],
    };
    let api: Api<ClusterIvyAccount> = Api::all(client.clone());
    api.create(&PostParams::default(), &ClusterIvyAccount::new(&name, spec))
        .await
        .unwrap();
    let accounts = Accounts::start(&client, &emulator, &keys.name, true);
    wait_for_reason(&api, &name, "Verified").await;

    let reference = cluster_ref(&name);
    for admitted in [&listed.name, &labelled.name] {
        let resolved = accounts
            .registry
            .client_for(admitted, Some(&reference))
            .await
            .unwrap_or_else(|e| panic!("{admitted}: {e}"));
        assert_eq!(resolved.account, format!("cluster/{name}"));
    }
    let error = accounts
        .registry
        .client_for(&other.name, Some(&reference))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "AccountForbidden");
    let text = error.to_string();
    assert!(text.contains(&other.name), "{text}");
    for hidden in [&keys.name, &listed.name, &labelled.name] {
        assert!(!text.contains(hidden.as_str()), "{text} names {hidden}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_on_one_account_pauses_that_account_and_not_the_other() {
    let Some(client) = cluster().await else {
        return;
    };
    install_crds().await;
    let ns = TestNamespace::create(&client, "acct-storm").await;
    let storm = emulator().await;
    let calm = emulator().await;
    create_secret(&client, &ns.name, "ivy-key", KEY_A).await;
    create_account(&client, &ns.name, "storm", account_spec(&storm, "ivy-key")).await;
    create_account(&client, &ns.name, "calm", account_spec(&calm, "ivy-key")).await;
    let accounts = Accounts::start(&client, &storm, &ns.name, false);
    let api: Api<IvyAccount> = Api::namespaced(client.clone(), &ns.name);
    wait_for_reason(&api, "storm", "Verified").await;
    wait_for_reason(&api, "calm", "Verified").await;

    let storm_client = accounts
        .registry
        .client_for(&ns.name, Some(&namespaced_ref("storm")))
        .await
        .unwrap();
    let calm_client = accounts
        .registry
        .client_for(&ns.name, Some(&namespaced_ref("calm")))
        .await
        .unwrap();
    storm.state().add_fault(FaultSpec::rate_limit(Some(30)));
    assert!(matches!(
        storm_client.ivy.list().await,
        Err(IvyError::RateLimited { .. })
    ));
    // Another resource of the storm account is held back by the client, not by Ivy...
    let sent = storm
        .state()
        .request_counts()
        .iter()
        .map(|c| c.count)
        .sum::<u64>();
    let again = accounts
        .registry
        .client_for(&ns.name, Some(&namespaced_ref("storm")))
        .await
        .unwrap();
    assert!(matches!(
        again.ivy.list().await,
        Err(IvyError::RateLimited { retry_after: Some(wait) }) if wait > Duration::from_secs(25)
    ));
    assert_eq!(
        storm
            .state()
            .request_counts()
            .iter()
            .map(|c| c.count)
            .sum::<u64>(),
        sent
    );
    // ...while the calm account goes on at once.
    let started = Instant::now();
    for _ in 0..10 {
        calm_client.ivy.list().await.unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    let storm_label = format!("{}/storm", ns.name);
    let calm_label = format!("{}/calm", ns.name);
    assert_eq!(
        accounts.metrics.counters(&storm_label).rate_limited_total(),
        1
    );
    assert_eq!(
        accounts.metrics.counters(&calm_label).rate_limited_total(),
        0
    );
}

#[tokio::test]
async fn the_apiserver_refuses_invalid_accounts() {
    let Some(client) = cluster().await else {
        return;
    };
    install_crds().await;
    let ns = TestNamespace::create(&client, "acct-invalid").await;
    let cases = [
        (
            "baseUrl: http://ivy.example.com\n  dialect: rest",
            "baseUrl must be",
        ),
        (
            "baseUrl: https://ivy.example.com\n  dialect: service",
            "needs appSigningSecretRef",
        ),
        (
            "baseUrl: https://ivy.example.com\n  dialect: soap",
            "Unsupported value",
        ),
    ];
    for (spec, expected) in cases {
        let manifest = format!(
            "apiVersion: webhooks.ivy.dev/v1alpha1\nkind: IvyAccount\nmetadata:\n  name: invalid\nspec:\n  {spec}\n  apiKeySecretRef: {{name: ivy-key}}\n"
        );
        let (ok, out, err) =
            kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], Some(&manifest)).await;
        assert!(!ok, "accepted: {manifest}\n{out}");
        assert!(err.contains(expected), "{expected} not in {err}");
    }
    // The apiserver publishes a new CRD's schema for `kubectl explain` a moment after it is
    // established.
    eventually(
        Duration::from_secs(30),
        "kubectl explain ivyaccount",
        || async {
            let (ok, out, _) = kubectl(&["explain", "ivyaccount.spec.apiKeySecretRef.key"]).await;
            (ok && out.contains("Defaults to api-key")).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_subscriptions_account_reference_cannot_change() {
    let Some(client) = cluster().await else {
        return;
    };
    install_crds().await;
    let ns = TestNamespace::create(&client, "acct-immutable").await;
    let manifest = |account: &str| {
        format!(
            "apiVersion: webhooks.ivy.dev/v1alpha1\nkind: WebhookSubscription\nmetadata:\n  name: orders\n  annotations: {{webhooks.ivy.dev/paused: \"true\"}}\nspec:\n  url: https://shop.example.com/hook\n  events: [order_created]\n  accountRef: {{name: {account}}}\n"
        )
    };
    let (ok, out, err) = kubectl_stdin(
        &["apply", "-n", &ns.name, "-f", "-"],
        Some(&manifest("first")),
    )
    .await;
    assert!(ok, "{out}{err}");
    let (ok, _, err) = kubectl_stdin(
        &["apply", "-n", &ns.name, "-f", "-"],
        Some(&manifest("second")),
    )
    .await;
    assert!(!ok && err.contains("accountRef is immutable"), "{err}");
    let subs: Api<ivy_webhook_operator::crd::WebhookSubscription> =
        Api::namespaced(client.clone(), &ns.name);
    let _ = subs.delete("orders", &DeleteParams::default()).await;
}
