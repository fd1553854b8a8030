//! Which account a resource uses, as a key: the operator's default account, an `IvyAccount`
//! (always in the resource's own namespace) or a `ClusterIvyAccount`.

use std::fmt;

use crate::crd::{self, AccountKind};

/// One account's identity: the registry's key and, through [`AccountRef::label`], its metric
/// label.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccountRef {
    /// The account the operator's flags configure; used when a resource names none.
    Default,
    /// An `IvyAccount`.
    Namespaced { namespace: String, name: String },
    /// A `ClusterIvyAccount`.
    Cluster { name: String },
}

impl AccountRef {
    /// The account a resource in `namespace_of_resource` means by its `spec.accountRef`. An
    /// `IvyAccount` is always looked up in the resource's own namespace: there is no way to
    /// name another namespace's account, so no resource can use another namespace's key.
    pub fn of_resource(namespace_of_resource: &str, account_ref: Option<&crd::AccountRef>) -> Self {
        match account_ref {
            None => AccountRef::Default,
            Some(reference) => match reference.kind {
                AccountKind::IvyAccount => AccountRef::Namespaced {
                    namespace: namespace_of_resource.to_owned(),
                    name: reference.name.clone(),
                },
                AccountKind::ClusterIvyAccount => AccountRef::Cluster {
                    name: reference.name.clone(),
                },
            },
        }
    }

    /// The metric label: `namespace/name`, `cluster/name`, or `default`.
    pub fn label(&self) -> String {
        match self {
            AccountRef::Default => "default".to_owned(),
            AccountRef::Namespaced { namespace, name } => format!("{namespace}/{name}"),
            AccountRef::Cluster { name } => format!("cluster/{name}"),
        }
    }
}

/// How messages name the account: `IvyAccount shop/main`, `ClusterIvyAccount platform`.
impl fmt::Display for AccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountRef::Default => f.write_str("the operator's default account"),
            AccountRef::Namespaced { namespace, name } => {
                write!(f, "IvyAccount {namespace}/{name}")
            }
            AccountRef::Cluster { name } => write!(f, "ClusterIvyAccount {name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(kind: AccountKind, name: &str) -> crd::AccountRef {
        crd::AccountRef {
            kind,
            name: name.into(),
        }
    }

    #[test]
    fn no_reference_is_the_default_account() {
        assert_eq!(AccountRef::of_resource("shop", None), AccountRef::Default);
        assert_eq!(AccountRef::Default.label(), "default");
    }

    #[test]
    fn an_ivy_account_is_always_in_the_resources_own_namespace() {
        let resolved =
            AccountRef::of_resource("team-b", Some(&reference(AccountKind::IvyAccount, "main")));
        assert_eq!(
            resolved,
            AccountRef::Namespaced {
                namespace: "team-b".into(),
                name: "main".into()
            }
        );
        assert_eq!(resolved.label(), "team-b/main");
    }

    #[test]
    fn a_cluster_account_has_no_namespace() {
        let resolved = AccountRef::of_resource(
            "team-b",
            Some(&reference(AccountKind::ClusterIvyAccount, "platform")),
        );
        assert_eq!(
            resolved,
            AccountRef::Cluster {
                name: "platform".into()
            }
        );
        assert_eq!(resolved.label(), "cluster/platform");
        assert_eq!(resolved.to_string(), "ClusterIvyAccount platform");
    }
}
