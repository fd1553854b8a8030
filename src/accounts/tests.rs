//! The registry's rules and the account controller against a fake apiserver and a scripted
//! Ivy: which objects are read for which resource (a Secret never for a resource that may not
//! use the account), what the errors say, and when the key is checked and the status written.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use super::reconcile::{AccountsContext, reconcile_cluster, reconcile_namespaced};
use super::registry::{AccountRegistry, AccountsConfig, DefaultAccount};
use super::status::{AccountReason, Verdict, compute_status};
use super::test_support::{FakeApiserver, ScriptedIvy, secret};
use super::{AccountError, AccountMetrics};
use crate::crd::account::{
    AccountDialect, ApiKeySecretRef, ClusterAccountCondition, ClusterApiKeySecretRef,
    ClusterIvyAccountSpec, IvyAccountSpec,
};
use crate::crd::{AccountKind, AccountRef, ClusterIvyAccount, IvyAccount};
use crate::ivy::{IvyError, SharedIvyApi};

const GROUP_PATH: &str = "/apis/webhooks.ivy.dev/v1alpha1";

fn account_path(namespace: &str, name: &str) -> String {
    format!("{GROUP_PATH}/namespaces/{namespace}/ivyaccounts/{name}")
}

fn cluster_account_path(name: &str) -> String {
    format!("{GROUP_PATH}/clusterivyaccounts/{name}")
}

fn secret_path(namespace: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/secrets/{name}")
}

fn ready(generation: i64) -> crate::crd::account::IvyAccountStatus {
    let verdict = Verdict {
        reason: AccountReason::Verified,
        message: "ok".into(),
        retry_after: None,
    };
    compute_status(
        None,
        Some(generation),
        &verdict,
        jiff::Timestamp::UNIX_EPOCH,
    )
}

fn refused(generation: i64, message: &str) -> crate::crd::account::IvyAccountStatus {
    let verdict = Verdict {
        reason: AccountReason::AuthFailed,
        message: message.into(),
        retry_after: None,
    };
    compute_status(
        None,
        Some(generation),
        &verdict,
        jiff::Timestamp::UNIX_EPOCH,
    )
}

/// `team-a/main`, generation 1, key in Secret `team-a/ivy-key`, checked and ready.
fn account() -> IvyAccount {
    let mut account = IvyAccount::new(
        "main",
        IvyAccountSpec {
            base_url: "https://ivy.example".into(),
            dialect: AccountDialect::Rest,
            api_key_secret_ref: ApiKeySecretRef {
                name: "ivy-key".into(),
                key: "api-key".into(),
            },
            app_signing_secret_ref: None,
            rate: None,
            burst: None,
        },
    );
    account.metadata.namespace = Some("team-a".into());
    account.metadata.uid = Some("uid-main".into());
    account.metadata.generation = Some(1);
    account.status = Some(ready(1));
    account
}

/// `platform`, key in Secret `ivy-system/platform-key`, admitting `conditions`, ready.
fn cluster_account(conditions: Vec<ClusterAccountCondition>) -> ClusterIvyAccount {
    let mut account = ClusterIvyAccount::new(
        "platform",
        ClusterIvyAccountSpec {
            base_url: "https://ivy.example".into(),
            dialect: AccountDialect::Rest,
            api_key_secret_ref: ClusterApiKeySecretRef {
                namespace: "ivy-system".into(),
                name: "platform-key".into(),
                key: "api-key".into(),
            },
            app_signing_secret_ref: None,
            rate: None,
            burst: None,
            conditions,
        },
    );
    account.metadata.uid = Some("uid-platform".into());
    account.metadata.generation = Some(1);
    account.status = Some(ready(1));
    account
}

fn listing(namespaces: &[&str]) -> ClusterAccountCondition {
    ClusterAccountCondition {
        namespace_selector: None,
        namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
    }
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

/// A registry whose every account client is `ivy` inside the account's budget.
fn registry(client: kube::Client, ivy: Arc<ScriptedIvy>) -> Arc<AccountRegistry> {
    let default = DefaultAccount {
        ivy: ivy.clone(),
        app_signing_secret: None,
    };
    let http = crate::ivy::http_client(Duration::from_secs(1), Duration::from_secs(1)).unwrap();
    Arc::new(
        AccountRegistry::new(
            client,
            http,
            default,
            AccountsConfig::default(),
            Arc::new(AccountMetrics::unregistered()),
        )
        .with_decorator(Arc::new(move |_| ivy.clone() as SharedIvyApi)),
    )
}

/// A fake apiserver holding `team-a/main` and its Secret, and a registry on it.
fn setup() -> (FakeApiserver, Arc<AccountRegistry>, Arc<ScriptedIvy>) {
    let (api, client) = FakeApiserver::start();
    api.put(&account_path("team-a", "main"), account());
    api.put(
        &secret_path("team-a", "ivy-key"),
        secret("team-a", "ivy-key", "api-key", "key-a"),
    );
    let ivy = Arc::new(ScriptedIvy::default());
    (api, registry(client, ivy.clone()), ivy)
}

fn secret_reads(api: &FakeApiserver) -> Vec<String> {
    api.requests()
        .into_iter()
        .filter(|r| r.contains("/secrets/"))
        .collect()
}

#[tokio::test]
async fn no_reference_is_the_default_account_without_any_request() {
    let (api, registry, _) = setup();
    let resolved = registry.client_for("team-b", None).await.unwrap();
    assert_eq!(resolved.account, "default");
    assert!(api.requests().is_empty());
}

#[tokio::test]
async fn a_ready_ivy_account_gives_its_client_under_its_label() {
    let (api, registry, _) = setup();
    let resolved = registry
        .client_for("team-a", Some(&namespaced_ref("main")))
        .await
        .unwrap();
    assert_eq!(resolved.account, "team-a/main");
    assert_eq!(
        secret_reads(&api),
        [format!("GET {}", secret_path("team-a", "ivy-key"))]
    );
}

#[tokio::test]
async fn an_ivy_account_reference_resolves_only_in_the_resources_own_namespace() {
    let (api, registry, _) = setup();
    let error = registry
        .client_for("team-b", Some(&namespaced_ref("main")))
        .await
        .unwrap_err();
    assert!(matches!(error, AccountError::Missing { .. }), "{error:?}");
    assert_eq!(error.reason(), "AccountNotReady");
    assert_eq!(
        api.requests(),
        [format!("GET {}", account_path("team-b", "main"))]
    );
    assert!(!error.to_string().contains("team-a"), "{error}");
}

#[tokio::test]
async fn an_account_not_checked_yet_is_not_ready_and_its_secret_is_not_read() {
    let (api, registry, _) = setup();
    let mut unchecked = account();
    unchecked.status = None;
    api.put(&account_path("team-a", "main"), unchecked);
    let error = registry
        .client_for("team-a", Some(&namespaced_ref("main")))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("has not been checked yet"),
        "{error}"
    );
    assert!(secret_reads(&api).is_empty());
}

#[tokio::test]
async fn an_account_checked_for_an_older_spec_is_not_ready() {
    let (api, registry, _) = setup();
    let mut changed = account();
    changed.metadata.generation = Some(2);
    api.put(&account_path("team-a", "main"), changed);
    let error = registry
        .client_for("team-a", Some(&namespaced_ref("main")))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "AccountNotReady");
    assert!(secret_reads(&api).is_empty());
}

#[tokio::test]
async fn a_refused_ivy_account_says_why() {
    let (api, registry, _) = setup();
    let mut failing = account();
    failing.status = Some(refused(
        1,
        "Ivy refused the API key in Secret team-a/ivy-key",
    ));
    api.put(&account_path("team-a", "main"), failing);
    let error = registry
        .client_for("team-a", Some(&namespaced_ref("main")))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("AuthFailed: Ivy refused the API key"),
        "{text}"
    );
}

#[tokio::test]
async fn a_missing_key_secret_of_an_ivy_account_is_named() {
    let (api, registry, _) = setup();
    api.remove(&secret_path("team-a", "ivy-key"));
    let error = registry
        .client_for("team-a", Some(&namespaced_ref("main")))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("Secret team-a/ivy-key does not exist"),
        "{error}"
    );
}

#[tokio::test]
async fn the_same_spec_and_key_give_the_same_client_and_a_new_key_a_new_one() {
    let (api, registry, _) = setup();
    let reference = namespaced_ref("main");
    let first = registry
        .client_for("team-a", Some(&reference))
        .await
        .unwrap();
    let again = registry
        .client_for("team-a", Some(&reference))
        .await
        .unwrap();
    assert!(Arc::ptr_eq(&first.ivy, &again.ivy));
    api.put(
        &secret_path("team-a", "ivy-key"),
        secret("team-a", "ivy-key", "api-key", "key-a-rotated"),
    );
    let rotated = registry
        .client_for("team-a", Some(&reference))
        .await
        .unwrap();
    assert!(!Arc::ptr_eq(&first.ivy, &rotated.ivy));
}

#[tokio::test]
async fn a_rebuilt_client_spends_the_same_budget() {
    let (api, registry, ivy) = setup();
    let reference = namespaced_ref("main");
    let first = registry
        .client_for("team-a", Some(&reference))
        .await
        .unwrap();
    ivy.fail_next(IvyError::RateLimited {
        retry_after: Some(Duration::from_secs(30)),
    });
    assert!(first.ivy.get("x").await.is_err());
    api.put(
        &secret_path("team-a", "ivy-key"),
        secret("team-a", "ivy-key", "api-key", "key-a-rotated"),
    );
    let rotated = registry
        .client_for("team-a", Some(&reference))
        .await
        .unwrap();
    assert!(matches!(
        rotated.ivy.get("x").await,
        Err(IvyError::RateLimited { retry_after: Some(wait) }) if wait > Duration::from_secs(25)
    ));
    assert_eq!(ivy.calls(), 1, "the paused account must not reach Ivy");
}

#[tokio::test]
async fn two_accounts_have_two_budgets() {
    let (api, registry, ivy) = setup();
    let mut other = account();
    other.metadata.name = Some("other".into());
    other.metadata.uid = Some("uid-other".into());
    api.put(&account_path("team-a", "other"), other);
    let main = registry
        .client_for("team-a", Some(&namespaced_ref("main")))
        .await
        .unwrap();
    let other = registry
        .client_for("team-a", Some(&namespaced_ref("other")))
        .await
        .unwrap();
    ivy.fail_next(IvyError::RateLimited {
        retry_after: Some(Duration::from_secs(30)),
    });
    assert!(main.ivy.get("x").await.is_err());
    assert!(other.ivy.get("y").await.is_ok());
    assert_eq!(ivy.calls(), 2);
}

#[tokio::test]
async fn a_cluster_account_refuses_a_namespace_it_does_not_admit_before_reading_anything_else() {
    let (api, registry, _) = setup();
    api.put(
        &cluster_account_path("platform"),
        cluster_account(vec![listing(&["team-a"])]),
    );
    let error = registry
        .client_for("team-b", Some(&cluster_ref("platform")))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "AccountForbidden");
    let text = error.to_string();
    assert!(
        text.contains("ClusterIvyAccount platform does not admit namespace team-b"),
        "{text}"
    );
    assert!(
        !text.contains("team-a") && !text.contains("ivy-system"),
        "{text}"
    );
    assert_eq!(
        api.requests(),
        [format!("GET {}", cluster_account_path("platform"))]
    );
}

#[tokio::test]
async fn a_cluster_account_admits_a_listed_namespace() {
    let (api, registry, _) = setup();
    api.put(
        &cluster_account_path("platform"),
        cluster_account(vec![listing(&["team-a", "team-b"])]),
    );
    api.put(
        &secret_path("ivy-system", "platform-key"),
        secret("ivy-system", "platform-key", "api-key", "key-platform"),
    );
    let resolved = registry
        .client_for("team-b", Some(&cluster_ref("platform")))
        .await
        .unwrap();
    assert_eq!(resolved.account, "cluster/platform");
}

fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(name.into());
    namespace.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    );
    namespace
}

#[tokio::test]
async fn a_cluster_account_admits_a_namespace_by_its_labels() {
    let (api, registry, _) = setup();
    let selector = LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "ivy.dev/merchant".into(),
            "platform".into(),
        )])),
        match_expressions: None,
    };
    api.put(
        &cluster_account_path("platform"),
        cluster_account(vec![ClusterAccountCondition {
            namespace_selector: Some(selector),
            namespaces: vec![],
        }]),
    );
    api.put(
        &secret_path("ivy-system", "platform-key"),
        secret("ivy-system", "platform-key", "api-key", "key-platform"),
    );
    api.put(
        "/api/v1/namespaces/team-c",
        namespace("team-c", &[("ivy.dev/merchant", "platform")]),
    );
    api.put("/api/v1/namespaces/team-d", namespace("team-d", &[]));
    let reference = cluster_ref("platform");
    assert!(
        registry
            .client_for("team-c", Some(&reference))
            .await
            .is_ok()
    );
    let error = registry
        .client_for("team-d", Some(&reference))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "AccountForbidden");
}

#[tokio::test]
async fn a_cluster_account_without_conditions_admits_nobody() {
    let (api, registry, _) = setup();
    api.put(&cluster_account_path("platform"), cluster_account(vec![]));
    let error = registry
        .client_for("team-a", Some(&cluster_ref("platform")))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "AccountForbidden");
    assert!(secret_reads(&api).is_empty());
}

#[tokio::test]
async fn a_single_namespace_operator_serves_no_cluster_account() {
    let (api, client) = FakeApiserver::start();
    api.put(
        &cluster_account_path("platform"),
        cluster_account(vec![listing(&["team-a"])]),
    );
    let registry = AccountRegistry::new(
        client,
        crate::ivy::http_client(Duration::from_secs(1), Duration::from_secs(1)).unwrap(),
        DefaultAccount {
            ivy: Arc::new(ScriptedIvy::default()),
            app_signing_secret: None,
        },
        AccountsConfig {
            watch_namespace: Some("team-a".into()),
            cluster_accounts: false,
            ..AccountsConfig::default()
        },
        Arc::new(AccountMetrics::unregistered()),
    );
    let error = registry
        .client_for("team-a", Some(&cluster_ref("platform")))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "AccountNotReady");
    assert!(error.to_string().contains("single namespace"), "{error}");
    assert!(api.requests().is_empty());
}

#[tokio::test]
async fn a_cluster_accounts_problems_do_not_reveal_where_its_secret_is() {
    let (api, registry, _) = setup();
    // Ready, but its Secret is missing.
    api.put(
        &cluster_account_path("platform"),
        cluster_account(vec![listing(&["team-a"])]),
    );
    let error = registry
        .client_for("team-a", Some(&cluster_ref("platform")))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "AccountNotReady");
    assert!(!error.to_string().contains("ivy-system"), "{error}");
    // Not ready, with a status message naming the Secret.
    let mut failing = cluster_account(vec![listing(&["team-a"])]);
    failing.status = Some(refused(
        1,
        "Ivy refused the key in Secret ivy-system/platform-key",
    ));
    api.put(&cluster_account_path("platform"), failing);
    let error = registry
        .client_for("team-a", Some(&cluster_ref("platform")))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("AuthFailed") && !text.contains("ivy-system"),
        "{text}"
    );
}

// ---- the account controller ----

fn context(api_client: kube::Client, registry: Arc<AccountRegistry>) -> Arc<AccountsContext> {
    Arc::new(AccountsContext::new(api_client, registry))
}

fn setup_controller() -> (FakeApiserver, Arc<AccountsContext>, Arc<ScriptedIvy>) {
    let (api, client) = FakeApiserver::start();
    api.put(&account_path("team-a", "main"), unchecked());
    api.put(&cluster_account_path("platform"), cluster_account(vec![]));
    api.put(
        &secret_path("team-a", "ivy-key"),
        secret("team-a", "ivy-key", "api-key", "key-a"),
    );
    let ivy = Arc::new(ScriptedIvy::default());
    let ctx = context(client.clone(), registry(client, ivy.clone()));
    (api, ctx, ivy)
}

fn unchecked() -> IvyAccount {
    let mut account = account();
    account.status = None;
    account
}

fn ready_of(patch: &Value) -> &Value {
    &patch["status"]["conditions"][0]
}

/// The account carrying the status the last patch wrote.
fn with_patched_status(mut account: IvyAccount, patch: &Value) -> IvyAccount {
    account.status = Some(serde_json::from_value(patch["status"].clone()).unwrap());
    account
}

#[tokio::test]
async fn a_good_key_makes_the_account_ready() {
    let (api, ctx, ivy) = setup_controller();
    reconcile_namespaced(Arc::new(unchecked()), ctx)
        .await
        .unwrap();
    assert_eq!(ivy.calls(), 1);
    let patches = api.patches();
    assert_eq!(patches.len(), 1);
    let ready = ready_of(&patches[0]);
    assert_eq!(ready["status"], "True");
    assert_eq!(ready["reason"], "Verified");
    assert_eq!(ready["observedGeneration"], 1);
    assert_eq!(patches[0]["kind"], "IvyAccount");
    assert!(
        api.requests()
            .contains(&format!("PATCH {}/status", account_path("team-a", "main")))
    );
}

#[tokio::test]
async fn a_refused_key_makes_the_account_auth_failed() {
    let (api, ctx, ivy) = setup_controller();
    ivy.fail_next(IvyError::Auth { status: 401 });
    reconcile_namespaced(Arc::new(unchecked()), ctx)
        .await
        .unwrap();
    let ready = ready_of(&api.patches()[0]).clone();
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "AuthFailed");
}

#[tokio::test]
async fn an_unchanged_account_is_neither_checked_again_nor_written() {
    let (api, ctx, ivy) = setup_controller();
    reconcile_namespaced(Arc::new(unchecked()), ctx.clone())
        .await
        .unwrap();
    let checked = with_patched_status(unchecked(), &api.patches()[0]);
    reconcile_namespaced(Arc::new(checked), ctx).await.unwrap();
    assert_eq!(ivy.calls(), 1);
    assert_eq!(api.patches().len(), 1);
}

#[tokio::test]
async fn a_replaced_key_is_checked_again() {
    let (api, ctx, ivy) = setup_controller();
    ivy.fail_next(IvyError::Auth { status: 401 });
    reconcile_namespaced(Arc::new(unchecked()), ctx.clone())
        .await
        .unwrap();
    let failed = with_patched_status(unchecked(), &api.patches()[0]);
    api.put(
        &secret_path("team-a", "ivy-key"),
        secret("team-a", "ivy-key", "api-key", "key-a-fixed"),
    );
    reconcile_namespaced(Arc::new(failed), ctx).await.unwrap();
    assert_eq!(ivy.calls(), 2);
    assert_eq!(ready_of(&api.patches()[1])["reason"], "Verified");
}

#[tokio::test]
async fn an_unreachable_ivy_is_asked_again_at_the_next_look() {
    let (_api, ctx, ivy) = setup_controller();
    ivy.fail_next(IvyError::Transient {
        message: "connection refused".into(),
    });
    reconcile_namespaced(Arc::new(unchecked()), ctx.clone())
        .await
        .unwrap();
    reconcile_namespaced(Arc::new(unchecked()), ctx)
        .await
        .unwrap();
    assert_eq!(ivy.calls(), 2);
}

#[tokio::test]
async fn a_missing_secret_is_reported_without_asking_ivy() {
    let (api, ctx, ivy) = setup_controller();
    api.remove(&secret_path("team-a", "ivy-key"));
    reconcile_namespaced(Arc::new(unchecked()), ctx)
        .await
        .unwrap();
    assert_eq!(ivy.calls(), 0);
    let ready = ready_of(&api.patches()[0]).clone();
    assert_eq!(ready["reason"], "SecretMissing");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("team-a/ivy-key does not exist")
    );
}

#[tokio::test]
async fn a_cluster_account_is_checked_and_its_status_written_at_cluster_scope() {
    let (api, ctx, ivy) = setup_controller();
    api.put(
        &secret_path("ivy-system", "platform-key"),
        secret("ivy-system", "platform-key", "api-key", "key-platform"),
    );
    let mut account = cluster_account(vec![]);
    account.status = None;
    reconcile_cluster(Arc::new(account), ctx).await.unwrap();
    assert_eq!(ivy.calls(), 1);
    assert!(api.requests().contains(&format!(
        "PATCH {}/status",
        cluster_account_path("platform")
    )));
    assert_eq!(api.patches()[0]["kind"], "ClusterIvyAccount");
    assert_eq!(ready_of(&api.patches()[0])["reason"], "Verified");
}
