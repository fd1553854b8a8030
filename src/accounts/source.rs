//! One account as the operator uses it, read alike from an `IvyAccount` and a
//! `ClusterIvyAccount`: where Ivy is, the dialect, which Secret keys hold the credentials and
//! the budget; and which namespaces a `ClusterIvyAccount` admits.

use std::collections::BTreeMap;
use std::net::IpAddr;

use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use url::{Host, Url};

use crate::accounts::budget::BudgetConfig;
use crate::accounts::identity::AccountRef;
use crate::crd::account::{AccountDialect, ClusterAccountCondition};
use crate::crd::{ClusterIvyAccount, IvyAccount};
use crate::ivy::Dialect;

/// One key of one Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretKeyRef {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

/// What the operator needs of one account to build its client.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountSource {
    pub id: AccountRef,
    /// The resource's uid: a deleted and recreated account is a new one.
    pub uid: Option<String>,
    pub generation: Option<i64>,
    pub base_url: Url,
    pub dialect: Dialect,
    pub api_key: SecretKeyRef,
    /// Only for the service dialect.
    pub app_signing_secret: Option<SecretKeyRef>,
    pub budget: BudgetConfig,
}

/// The account's spec cannot be used (the schema should have refused it).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("the IvyAccount has no namespace")]
    NoNamespace,
    #[error("baseUrl {url:?} is not a URL")]
    BadUrl {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("baseUrl {url} must be https:// (http:// only to a loopback IP address)")]
    InsecureUrl { url: String },
}

impl AccountSource {
    /// An `IvyAccount`: its Secrets are, by construction, in its own namespace.
    pub fn of_namespaced(
        account: &IvyAccount,
        defaults: BudgetConfig,
    ) -> Result<Self, SourceError> {
        let namespace = account.namespace().ok_or(SourceError::NoNamespace)?;
        let spec = &account.spec;
        Ok(Self {
            id: AccountRef::Namespaced {
                namespace: namespace.clone(),
                name: account.name_any(),
            },
            uid: account.uid(),
            generation: account.metadata.generation,
            base_url: checked_base_url(&spec.base_url)?,
            dialect: dialect_of(spec.dialect),
            api_key: SecretKeyRef {
                namespace: namespace.clone(),
                name: spec.api_key_secret_ref.name.clone(),
                key: spec.api_key_secret_ref.key.clone(),
            },
            app_signing_secret: spec.app_signing_secret_ref.as_ref().map(|r| SecretKeyRef {
                namespace: namespace.clone(),
                name: r.name.clone(),
                key: r.key.clone(),
            }),
            budget: defaults.overridden_by(spec.rate, spec.burst),
        })
    }

    /// A `ClusterIvyAccount`: its Secrets are where the cluster admin says.
    pub fn of_cluster(
        account: &ClusterIvyAccount,
        defaults: BudgetConfig,
    ) -> Result<Self, SourceError> {
        let spec = &account.spec;
        Ok(Self {
            id: AccountRef::Cluster {
                name: account.name_any(),
            },
            uid: account.uid(),
            generation: account.metadata.generation,
            base_url: checked_base_url(&spec.base_url)?,
            dialect: dialect_of(spec.dialect),
            api_key: SecretKeyRef {
                namespace: spec.api_key_secret_ref.namespace.clone(),
                name: spec.api_key_secret_ref.name.clone(),
                key: spec.api_key_secret_ref.key.clone(),
            },
            app_signing_secret: spec.app_signing_secret_ref.as_ref().map(|r| SecretKeyRef {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                key: r.key.clone(),
            }),
            budget: defaults.overridden_by(spec.rate, spec.burst),
        })
    }
}

pub fn dialect_of(dialect: AccountDialect) -> Dialect {
    match dialect {
        AccountDialect::Rest => Dialect::Rest,
        AccountDialect::Internal => Dialect::Internal,
        AccountDialect::Service => Dialect::Service,
    }
}

/// The CRD's rule again, so that an account the apiserver did not check (a CRD installed
/// without its rules) still never sends its key in clear text off the host.
fn checked_base_url(text: &str) -> Result<Url, SourceError> {
    let url = Url::parse(text).map_err(|source| SourceError::BadUrl {
        url: text.to_owned(),
        source,
    })?;
    let loopback = match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        _ => false,
    };
    let secure = match url.scheme() {
        "https" => url.host().is_some(),
        "http" => loopback,
        _ => false,
    };
    if secure {
        Ok(url)
    } else {
        Err(SourceError::InsecureUrl {
            url: text.to_owned(),
        })
    }
}

/// What a ClusterIvyAccount's conditions say about one namespace before its labels are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// A condition lists the namespace by name.
    Admitted,
    /// No list names it, but a selector might match its labels.
    DependsOnLabels,
    /// Nothing can admit it (no conditions at all: nobody may use the account).
    Refused,
}

/// Whether `conditions` admit `namespace` by name, or only its labels can tell.
pub fn admission_by_name(conditions: &[ClusterAccountCondition], namespace: &str) -> Admission {
    if conditions
        .iter()
        .any(|c| c.namespaces.iter().any(|n| n == namespace))
    {
        Admission::Admitted
    } else if conditions.iter().any(|c| c.namespace_selector.is_some()) {
        Admission::DependsOnLabels
    } else {
        Admission::Refused
    }
}

/// Whether a namespace with `labels` matches the selector of any condition. A selector that
/// does not parse (an unknown operator) matches nothing.
pub fn admitted_by_labels(
    conditions: &[ClusterAccountCondition],
    labels: &BTreeMap<String, String>,
) -> bool {
    conditions
        .iter()
        .filter_map(|c| c.namespace_selector.clone())
        .filter_map(|selector| Selector::try_from(selector).ok())
        .any(|selector| selector.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::account::{
        ApiKeySecretRef, ClusterApiKeySecretRef, ClusterIvyAccountSpec, IvyAccountSpec,
        SecretKeySelector,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    fn namespaced(base_url: &str) -> IvyAccount {
        let mut account = IvyAccount::new(
            "main",
            IvyAccountSpec {
                base_url: base_url.into(),
                dialect: AccountDialect::Service,
                api_key_secret_ref: ApiKeySecretRef {
                    name: "ivy-key".into(),
                    key: "api-key".into(),
                },
                app_signing_secret_ref: Some(SecretKeySelector {
                    name: "ivy-app".into(),
                    key: "secret".into(),
                }),
                rate: Some(2.0),
                burst: None,
            },
        );
        account.metadata.namespace = Some("team-a".into());
        account.metadata.generation = Some(4);
        account
    }

    #[test]
    fn an_ivy_account_reads_its_secrets_in_its_own_namespace_only() {
        let source = AccountSource::of_namespaced(
            &namespaced("https://api.getivy.de"),
            BudgetConfig::default(),
        )
        .unwrap();
        assert_eq!(source.api_key.namespace, "team-a");
        assert_eq!(source.app_signing_secret.unwrap().namespace, "team-a");
        assert_eq!(source.dialect, Dialect::Service);
        assert_eq!(source.generation, Some(4));
        assert_eq!(
            source.budget,
            BudgetConfig {
                rate: 2.0,
                burst: BudgetConfig::default().burst
            }
        );
    }

    #[test]
    fn a_cluster_account_reads_its_secret_where_the_admin_says() {
        let account = ClusterIvyAccount::new(
            "platform",
            ClusterIvyAccountSpec {
                base_url: "https://api.getivy.de".into(),
                dialect: AccountDialect::Rest,
                api_key_secret_ref: ClusterApiKeySecretRef {
                    namespace: "ivy-system".into(),
                    name: "platform-key".into(),
                    key: "api-key".into(),
                },
                app_signing_secret_ref: None,
                rate: None,
                burst: None,
                conditions: vec![],
            },
        );
        let source = AccountSource::of_cluster(&account, BudgetConfig::default()).unwrap();
        assert_eq!(
            source.api_key,
            SecretKeyRef {
                namespace: "ivy-system".into(),
                name: "platform-key".into(),
                key: "api-key".into()
            }
        );
        assert_eq!(source.id.label(), "cluster/platform");
    }

    #[test]
    fn plain_http_is_refused_unless_to_a_loopback_ip() {
        for bad in [
            "http://api.getivy.de",
            "http://localhost:1",
            "ftp://127.0.0.1",
            "nonsense",
        ] {
            assert!(
                AccountSource::of_namespaced(&namespaced(bad), BudgetConfig::default()).is_err(),
                "{bad}"
            );
        }
        for good in [
            "https://api.getivy.de",
            "http://127.0.0.1:8080/",
            "http://[::1]:1",
        ] {
            assert!(
                AccountSource::of_namespaced(&namespaced(good), BudgetConfig::default()).is_ok(),
                "{good}"
            );
        }
    }

    fn listing(namespaces: &[&str]) -> ClusterAccountCondition {
        ClusterAccountCondition {
            namespace_selector: None,
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        }
    }

    fn selecting(selector: LabelSelector) -> ClusterAccountCondition {
        ClusterAccountCondition {
            namespace_selector: Some(selector),
            namespaces: vec![],
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn no_conditions_admit_no_namespace() {
        assert_eq!(admission_by_name(&[], "shop"), Admission::Refused);
        assert!(!admitted_by_labels(&[], &labels(&[("team", "a")])));
    }

    #[test]
    fn a_listed_namespace_is_admitted_and_another_is_refused() {
        let conditions = [listing(&["shop", "billing"])];
        assert_eq!(
            admission_by_name(&conditions, "billing"),
            Admission::Admitted
        );
        assert_eq!(admission_by_name(&conditions, "other"), Admission::Refused);
    }

    #[test]
    fn a_selector_decides_by_the_namespaces_labels() {
        let conditions = [
            listing(&["shop"]),
            selecting(LabelSelector {
                match_labels: Some(labels(&[("ivy.dev/merchant", "main")])),
                match_expressions: None,
            }),
        ];
        assert_eq!(
            admission_by_name(&conditions, "team-b"),
            Admission::DependsOnLabels
        );
        assert!(admitted_by_labels(
            &conditions,
            &labels(&[("ivy.dev/merchant", "main"), ("x", "y")])
        ));
        assert!(!admitted_by_labels(
            &conditions,
            &labels(&[("ivy.dev/merchant", "other")])
        ));
    }

    #[test]
    fn match_expressions_are_honoured() {
        let conditions = [selecting(LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "In".into(),
                values: Some(vec!["prod".into(), "staging".into()]),
            }]),
        })];
        assert!(admitted_by_labels(&conditions, &labels(&[("env", "prod")])));
        assert!(!admitted_by_labels(&conditions, &labels(&[("env", "dev")])));
        assert!(!admitted_by_labels(&conditions, &labels(&[])));
    }

    #[test]
    fn an_empty_selector_admits_every_namespace() {
        let conditions = [selecting(LabelSelector::default())];
        assert!(admitted_by_labels(&conditions, &labels(&[])));
    }

    #[test]
    fn a_selector_that_does_not_parse_admits_nobody() {
        let conditions = [selecting(LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "Near".into(),
                values: None,
            }]),
        })];
        assert!(!admitted_by_labels(
            &conditions,
            &labels(&[("env", "prod")])
        ));
    }
}
