//! The Ivy account resources, `IvyAccount` (namespaced) and `ClusterIvyAccount` (cluster-wide),
//! and the `accountRef` a `WebhookSubscription` names one with: types, schema and validation
//! rules only. Every `///` on a field becomes `kubectl explain` text.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The Secret key an account reads its API key from when `apiKeySecretRef.key` is not given.
pub const DEFAULT_API_KEY_KEY: &str = "api-key";

/// `baseUrl`: an absolute https:// URL, or http:// to an IPv4 loopback address (an emulator or
/// a proxy on the same host), so that an API key never crosses a network in clear text. The name
/// `localhost` is not accepted for http: what it resolves to is the resolver's choice. (A regular
/// expression rather than CEL's ip() functions: the apiserver's cost estimate refuses those.)
const BASE_URL_RULE: &str = "(url(self).getScheme() == 'https' && isURL(self) && url(self).getHostname() != '') || self.matches('^http://127[.][0-9]{1,3}[.][0-9]{1,3}[.][0-9]{1,3}(:[0-9]{1,5})?(/[^ ]*)?$')";
const BASE_URL_MESSAGE: &str = "baseUrl must be an absolute https:// URL with a host (http:// only to an IPv4 loopback address such as 127.0.0.1)";
const SERVICE_NEEDS_APP_SECRET: &str = "self.dialect != 'service' || has(self.appSigningSecretRef)";
const SERVICE_NEEDS_APP_SECRET_MESSAGE: &str = "the service dialect needs appSigningSecretRef: its subscriptions have no signing secret of their own";
const APP_SECRET_ONLY_FOR_SERVICE: &str =
    "self.dialect == 'service' || !has(self.appSigningSecretRef)";
const APP_SECRET_ONLY_FOR_SERVICE_MESSAGE: &str =
    "appSigningSecretRef is used only by the service dialect: remove it or set dialect: service";

/// Which account a `WebhookSubscription` is managed with.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountRef {
    /// IvyAccount (the default: an account in the subscription's own namespace) or
    /// ClusterIvyAccount (a cluster-wide account that admits the subscription's namespace).
    #[serde(default)]
    pub kind: AccountKind,

    /// Name of the account.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

/// The two kinds of account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AccountKind {
    /// An `IvyAccount` in the subscription's own namespace.
    #[default]
    IvyAccount,
    /// A `ClusterIvyAccount` whose conditions admit the subscription's namespace.
    ClusterIvyAccount,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::IvyAccount => "IvyAccount",
            AccountKind::ClusterIvyAccount => "ClusterIvyAccount",
        }
    }
}

/// Which shape of Ivy's API an account speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccountDialect {
    /// REST resources under `/webhook`; each subscription has its own signing secret.
    Rest,
    /// `POST /api/service/internal/webhook-subscription/*`.
    Internal,
    /// `POST /api/service/webhook-subscription/*`, the API Ivy's current SDKs call; deliveries
    /// are signed with the merchant app's secret (appSigningSecretRef).
    Service,
}

impl AccountDialect {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountDialect::Rest => "rest",
            AccountDialect::Internal => "internal",
            AccountDialect::Service => "service",
        }
    }
}

fn default_api_key_key() -> String {
    DEFAULT_API_KEY_KEY.to_owned()
}

/// The Secret (in the account's own namespace) holding the Ivy API key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeySecretRef {
    /// Name of the Secret, in the IvyAccount's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,

    /// Key in the Secret's data whose value is the API key. Defaults to api-key.
    #[serde(default = "default_api_key_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// One key of a Secret in the account's own namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// Name of the Secret, in the IvyAccount's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,

    /// Key in the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// The Secret holding a ClusterIvyAccount's API key, in a namespace the cluster admin names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterApiKeySecretRef {
    /// Namespace of the Secret (e.g. the operator's own; namespace editors should not be able
    /// to read it).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: String,

    /// Name of the Secret.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,

    /// Key in the Secret's data whose value is the API key. Defaults to api-key.
    #[serde(default = "default_api_key_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// One key of a Secret in a namespace the cluster admin names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSecretKeySelector {
    /// Namespace of the Secret.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: String,

    /// Name of the Secret.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,

    /// Key in the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// An Ivy account (one merchant's API key) that WebhookSubscriptions in this namespace use
/// through `spec.accountRef`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// Every printer column repeats `type_ = "string"`, which clippy takes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "webhooks.ivy.dev",
    version = "v1alpha1",
    kind = "IvyAccount",
    plural = "ivyaccounts",
    singular = "ivyaccount",
    shortname = "ivyacct",
    category = "ivy",
    namespaced,
    cel,
    status = "IvyAccountStatus",
    derive = "PartialEq",
    doc = "An Ivy account: base URL, API dialect and the Secret holding its API key, for the WebhookSubscriptions of this namespace.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = "1"
    ),
    printcolumn(name = "Dialect", type_ = "string", json_path = ".spec.dialect"),
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.baseUrl"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(SERVICE_NEEDS_APP_SECRET).message(SERVICE_NEEDS_APP_SECRET_MESSAGE))]
#[x_kube(validation = Rule::new(APP_SECRET_ONLY_FOR_SERVICE).message(APP_SECRET_ONLY_FOR_SERVICE_MESSAGE))]
#[serde(rename_all = "camelCase")]
pub struct IvyAccountSpec {
    /// Base URL of Ivy's API, e.g. https://api.getivy.de (production) or
    /// https://api.sand.getivy.de (sandbox). http:// only to a loopback IP address.
    #[x_kube(validation = Rule::new(BASE_URL_RULE).message(BASE_URL_MESSAGE))]
    #[schemars(length(min = 8, max = 256))]
    pub base_url: String,

    /// Which shape of Ivy's API to speak: rest, internal or service.
    pub dialect: AccountDialect,

    /// The Secret in this namespace holding the account's API key.
    pub api_key_secret_ref: ApiKeySecretRef,

    /// The Secret in this namespace holding the merchant app's signing secret. Required for
    /// the service dialect (its subscriptions have no secret of their own), refused otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_signing_secret_ref: Option<SecretKeySelector>,

    /// Requests per second this account may send to Ivy, shared by every WebhookSubscription
    /// using it. Defaults to the operator's --ivy-rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.01, max = 10000.0))]
    pub rate: Option<f64>,

    /// Requests this account may send at once after a quiet period, before the rate applies.
    /// Defaults to the operator's --ivy-burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub burst: Option<u32>,
}

/// Which namespaces may use a ClusterIvyAccount. A namespace matches a condition when it is
/// listed in `namespaces` or its labels match `namespaceSelector`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.namespaceSelector) || (has(self.namespaces) && size(self.namespaces) > 0)").message("a condition needs namespaceSelector or at least one entry in namespaces"))]
#[serde(rename_all = "camelCase")]
pub struct ClusterAccountCondition {
    /// Namespaces whose labels match this selector may use the account. An empty selector
    /// ({}) matches every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Namespaces, by name, that may use the account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 256),
        inner(
            length(min = 1, max = 63),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub namespaces: Vec<String>,
}

/// A cluster-wide Ivy account, managed by a cluster admin, that WebhookSubscriptions in the
/// namespaces its conditions admit may use through `spec.accountRef`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// Every printer column repeats `type_ = "string"`, which clippy takes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "webhooks.ivy.dev",
    version = "v1alpha1",
    kind = "ClusterIvyAccount",
    plural = "clusterivyaccounts",
    singular = "clusterivyaccount",
    shortname = "civyacct",
    category = "ivy",
    cel,
    status = "IvyAccountStatus",
    derive = "PartialEq",
    doc = "A cluster-wide Ivy account: base URL, API dialect, the Secret holding its API key, and which namespaces may use it.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = "1"
    ),
    printcolumn(name = "Dialect", type_ = "string", json_path = ".spec.dialect"),
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.baseUrl"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(SERVICE_NEEDS_APP_SECRET).message(SERVICE_NEEDS_APP_SECRET_MESSAGE))]
#[x_kube(validation = Rule::new(APP_SECRET_ONLY_FOR_SERVICE).message(APP_SECRET_ONLY_FOR_SERVICE_MESSAGE))]
#[serde(rename_all = "camelCase")]
pub struct ClusterIvyAccountSpec {
    /// Base URL of Ivy's API, e.g. https://api.getivy.de (production) or
    /// https://api.sand.getivy.de (sandbox). http:// only to a loopback IP address.
    #[x_kube(validation = Rule::new(BASE_URL_RULE).message(BASE_URL_MESSAGE))]
    #[schemars(length(min = 8, max = 256))]
    pub base_url: String,

    /// Which shape of Ivy's API to speak: rest, internal or service.
    pub dialect: AccountDialect,

    /// The Secret (namespace, name, key) holding the account's API key.
    pub api_key_secret_ref: ClusterApiKeySecretRef,

    /// The Secret (namespace, name, key) holding the merchant app's signing secret. Required
    /// for the service dialect (its subscriptions have no secret of their own), refused
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_signing_secret_ref: Option<ClusterSecretKeySelector>,

    /// Requests per second this account may send to Ivy, shared by every WebhookSubscription
    /// using it. Defaults to the operator's --ivy-rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.01, max = 10000.0))]
    pub rate: Option<f64>,

    /// Requests this account may send at once after a quiet period, before the rate applies.
    /// Defaults to the operator's --ivy-burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub burst: Option<u32>,

    /// Which namespaces may use this account: a namespace may when any condition matches it.
    /// Without conditions no namespace may use it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub conditions: Vec<ClusterAccountCondition>,
}

/// Observed state of an account, written by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IvyAccountStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions; `Ready` tells whether Ivy accepted the account's API key
    /// (reasons Verified, Unverifiable, AuthFailed, SecretMissing, InvalidAccount,
    /// IvyUnavailable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

impl IvyAccountStatus {
    /// The `Ready` condition, if any.
    pub fn ready_condition(&self) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == "Ready")
    }
}

/// The IvyAccount CRD as YAML, as `ivy-webhook-operator crd` writes it.
pub fn ivy_account_crd_yaml() -> Result<String, serde_norway::Error> {
    serde_norway::to_string(&IvyAccount::crd())
}

/// The ClusterIvyAccount CRD as YAML, as `ivy-webhook-operator crd` writes it.
pub fn cluster_ivy_account_crd_yaml() -> Result<String, serde_norway::Error> {
    serde_norway::to_string(&ClusterIvyAccount::crd())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::ObjectMeta;

    fn spec() -> IvyAccountSpec {
        IvyAccountSpec {
            base_url: "https://api.getivy.de".into(),
            dialect: AccountDialect::Rest,
            api_key_secret_ref: ApiKeySecretRef {
                name: "ivy-key".into(),
                key: DEFAULT_API_KEY_KEY.into(),
            },
            app_signing_secret_ref: None,
            rate: None,
            burst: None,
        }
    }

    fn account(spec: IvyAccountSpec) -> IvyAccount {
        let mut account = IvyAccount::new("shop-account", spec);
        account.metadata = ObjectMeta {
            name: Some("shop-account".into()),
            namespace: Some("shop".into()),
            ..ObjectMeta::default()
        };
        account
    }

    fn cluster_spec() -> ClusterIvyAccountSpec {
        ClusterIvyAccountSpec {
            base_url: "https://api.getivy.de".into(),
            dialect: AccountDialect::Rest,
            api_key_secret_ref: ClusterApiKeySecretRef {
                namespace: "ivy-system".into(),
                name: "ivy-key".into(),
                key: DEFAULT_API_KEY_KEY.into(),
            },
            app_signing_secret_ref: None,
            rate: None,
            burst: None,
            conditions: vec![ClusterAccountCondition {
                namespace_selector: None,
                namespaces: vec!["shop".into()],
            }],
        }
    }

    fn errors_of(result: Result<(), impl std::fmt::Debug>) -> String {
        match result {
            Ok(()) => String::new(),
            Err(errors) => format!("{errors:?}"),
        }
    }

    fn cel_errors(spec: IvyAccountSpec) -> String {
        errors_of(account(spec).validate_cel())
    }

    fn cluster_cel_errors(spec: ClusterIvyAccountSpec) -> String {
        errors_of(ClusterIvyAccount::new("platform", spec).validate_cel())
    }

    #[test]
    fn a_valid_account_passes_every_rule() {
        assert_eq!(cel_errors(spec()), "");
        assert_eq!(cluster_cel_errors(cluster_spec()), "");
    }

    #[test]
    fn a_plain_http_url_to_another_host_is_refused() {
        let errors = cel_errors(IvyAccountSpec {
            base_url: "http://api.getivy.de".into(),
            ..spec()
        });
        assert!(errors.contains("baseUrl must be"), "{errors}");
    }

    #[test]
    fn plain_http_to_an_ipv4_loopback_address_is_accepted() {
        for url in ["http://127.0.0.1:8080", "http://127.0.0.2:1/prefix"] {
            let errors = cel_errors(IvyAccountSpec {
                base_url: url.into(),
                ..spec()
            });
            assert_eq!(errors, "", "{url}");
        }
    }

    #[test]
    fn a_host_name_that_only_looks_like_loopback_is_refused() {
        for url in ["http://127.0.0.1.example.com", "http://localhost:3000"] {
            let errors = cel_errors(IvyAccountSpec {
                base_url: url.into(),
                ..spec()
            });
            assert!(errors.contains("baseUrl must be"), "{url}: {errors}");
        }
    }

    #[test]
    fn text_that_is_not_a_url_is_refused() {
        let errors = cel_errors(IvyAccountSpec {
            base_url: "api.getivy.de".into(),
            ..spec()
        });
        assert!(errors.contains("baseUrl must be"), "{errors}");
    }

    #[test]
    fn the_service_dialect_needs_the_app_signing_secret() {
        let errors = cel_errors(IvyAccountSpec {
            dialect: AccountDialect::Service,
            ..spec()
        });
        assert!(errors.contains("needs appSigningSecretRef"), "{errors}");
        let with_secret = IvyAccountSpec {
            dialect: AccountDialect::Service,
            app_signing_secret_ref: Some(SecretKeySelector {
                name: "ivy-app".into(),
                key: "signing-secret".into(),
            }),
            ..spec()
        };
        assert_eq!(cel_errors(with_secret), "");
    }

    #[test]
    fn an_app_signing_secret_is_refused_outside_the_service_dialect() {
        let errors = cluster_cel_errors(ClusterIvyAccountSpec {
            app_signing_secret_ref: Some(ClusterSecretKeySelector {
                namespace: "ivy-system".into(),
                name: "ivy-app".into(),
                key: "signing-secret".into(),
            }),
            ..cluster_spec()
        });
        assert!(errors.contains("only by the service dialect"), "{errors}");
    }

    #[test]
    fn a_cluster_condition_must_select_something() {
        let errors = cluster_cel_errors(ClusterIvyAccountSpec {
            conditions: vec![ClusterAccountCondition {
                namespace_selector: None,
                namespaces: vec![],
            }],
            ..cluster_spec()
        });
        assert!(errors.contains("needs namespaceSelector"), "{errors}");
    }

    #[test]
    fn omitted_secret_key_and_account_kind_take_their_defaults() {
        let parsed: IvyAccountSpec = serde_json::from_value(serde_json::json!({
            "baseUrl": "https://api.getivy.de",
            "dialect": "internal",
            "apiKeySecretRef": {"name": "ivy-key"},
        }))
        .unwrap();
        assert_eq!(parsed.api_key_secret_ref.key, "api-key");
        assert_eq!(parsed.dialect, AccountDialect::Internal);
        let reference: AccountRef =
            serde_json::from_value(serde_json::json!({"name": "a"})).unwrap();
        assert_eq!(reference.kind, AccountKind::IvyAccount);
    }

    #[test]
    fn unknown_dialects_and_kinds_are_refused() {
        assert!(serde_json::from_str::<AccountDialect>("\"soap\"").is_err());
        assert!(
            serde_json::from_value::<AccountRef>(
                serde_json::json!({"kind": "Secret", "name": "a"})
            )
            .is_err()
        );
    }

    fn subscription(account_ref: Option<AccountRef>) -> crate::crd::WebhookSubscription {
        let mut sub = crate::crd::WebhookSubscription::new(
            "orders",
            serde_json::from_value(serde_json::json!({
                "url": "https://shop.example.com/hook",
                "events": ["order_created"],
            }))
            .unwrap(),
        );
        sub.metadata.namespace = Some("shop".into());
        sub.spec.account_ref = account_ref;
        sub
    }

    fn account_ref(kind: AccountKind, name: &str) -> Option<AccountRef> {
        Some(AccountRef {
            kind,
            name: name.into(),
        })
    }

    #[test]
    fn a_subscriptions_account_cannot_change() {
        let old = subscription(account_ref(AccountKind::IvyAccount, "a"));
        for new in [
            account_ref(AccountKind::IvyAccount, "b"),
            account_ref(AccountKind::ClusterIvyAccount, "a"),
            None,
        ] {
            let errors = errors_of(subscription(new.clone()).validate_cel_update(&old));
            assert!(
                errors.contains("accountRef is immutable"),
                "{new:?}: {errors}"
            );
        }
        let errors = errors_of(
            subscription(account_ref(AccountKind::IvyAccount, "a"))
                .validate_cel_update(&subscription(None)),
        );
        assert!(errors.contains("accountRef is immutable"), "{errors}");
    }

    #[test]
    fn an_unchanged_account_is_accepted_on_update() {
        let old = subscription(account_ref(AccountKind::ClusterIvyAccount, "platform"));
        let mut new = old.clone();
        new.spec.description = Some("changed".into());
        assert_eq!(errors_of(new.validate_cel_update(&old)), "");
        assert_eq!(
            errors_of(subscription(None).validate_cel_update(&subscription(None))),
            ""
        );
    }

    fn printer_columns(
        crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    ) -> Vec<String> {
        crd.spec.versions[0]
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    #[test]
    fn both_crds_are_in_the_ivy_category_with_status_and_columns() {
        let namespaced = IvyAccount::crd();
        let cluster = ClusterIvyAccount::crd();
        assert_eq!(namespaced.spec.scope, "Namespaced");
        assert_eq!(cluster.spec.scope, "Cluster");
        for crd in [&namespaced, &cluster] {
            assert_eq!(crd.spec.names.categories, Some(vec!["ivy".to_string()]));
            assert!(
                crd.spec.versions[0]
                    .subresources
                    .as_ref()
                    .unwrap()
                    .status
                    .is_some()
            );
            assert_eq!(
                printer_columns(crd),
                ["Ready", "Reason", "Dialect", "URL", "Age"]
            );
        }
    }

    #[test]
    fn every_field_has_kubectl_explain_text() {
        fn walk(path: &str, schema: &serde_json::Value, missing: &mut Vec<String>) {
            if let Some(properties) = schema["properties"].as_object() {
                for (name, property) in properties {
                    let here = format!("{path}.{name}");
                    // The Kubernetes types (LabelSelector, Condition) bring their own docs.
                    if property["description"].as_str().is_none_or(str::is_empty) {
                        missing.push(here.clone());
                    }
                    walk(&here, property, missing);
                    walk(&here, &property["items"], missing);
                }
            }
        }
        for crd in [IvyAccount::crd(), ClusterIvyAccount::crd()] {
            let crd = serde_json::to_value(crd).unwrap();
            let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
            let mut missing = Vec::new();
            walk("", &schema["properties"]["spec"], &mut missing);
            walk("", &schema["properties"]["status"], &mut missing);
            assert!(missing.is_empty(), "no description: {missing:?}");
        }
    }

    #[test]
    fn committed_account_crd_files_are_up_to_date() {
        assert_eq!(
            include_str!("../../crds/ivyaccounts.webhooks.ivy.dev.yaml"),
            ivy_account_crd_yaml().unwrap(),
            "crds/ is stale: run `make crd`"
        );
        assert_eq!(
            include_str!("../../crds/clusterivyaccounts.webhooks.ivy.dev.yaml"),
            cluster_ivy_account_crd_yaml().unwrap(),
            "crds/ is stale: run `make crd`"
        );
    }
}
