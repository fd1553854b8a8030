//! The [`AccountRegistry`]: one budgeted Ivy client per account, keyed by [`AccountRef`],
//! built from the account's spec and Secrets and rebuilt when either changes; and
//! [`AccountRegistry::client_for`], which decides whether a resource may use the account it
//! names at all.
//!
//! The rules `client_for` keeps: an `IvyAccount` is looked up in the resource's own namespace
//! only; a `ClusterIvyAccount` is used only by namespaces its conditions admit, and that is
//! decided before any of its Secrets is read; an account is used only once its `Ready` is
//! `True` for its current spec. Its error messages name the account the user named and
//! nothing else of another namespace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client};
use tracing::warn;

use crate::accounts::budget::{Budget, BudgetConfig, Budgeted};
use crate::accounts::credentials::{Credentials, CredentialsError, read_credentials};
use crate::accounts::identity::AccountRef;
use crate::accounts::metrics::AccountMetrics;
use crate::accounts::source::{AccountSource, Admission, admission_by_name, admitted_by_labels};
use crate::accounts::status::{Usable, usable};
use crate::crd::{self, ClusterIvyAccount, IvyAccount};
use crate::ivy::{
    ClientConfig, DEFAULT_REQUEST_TIMEOUT, SharedIvyApi, SigningSecret, build_ivy_client,
    error_chain,
};

/// How often the account controller looks at each account's Secrets again by default.
pub const DEFAULT_RECHECK_INTERVAL: Duration = Duration::from_secs(60);

/// What the operator tells the registry and the account controller.
#[derive(Clone, Debug)]
pub struct AccountsConfig {
    /// Rate and burst of an account that sets none (`--ivy-rate`, `--ivy-burst`); also the
    /// default account's.
    pub default_budget: BudgetConfig,
    /// Timeout of each request to Ivy (`--ivy-request-timeout`).
    pub request_timeout: Duration,
    /// Namespace whose `IvyAccount`s the account controller watches; `None` watches all.
    pub watch_namespace: Option<String>,
    /// Whether `ClusterIvyAccount`s are served: watched by the account controller and usable
    /// through `client_for` (both need cluster-wide RBAC on them).
    pub cluster_accounts: bool,
    /// How often the account controller reads each account's Secrets again, to notice a
    /// replaced key.
    pub recheck_interval: Duration,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            default_budget: BudgetConfig::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            watch_namespace: None,
            cluster_accounts: true,
            recheck_interval: DEFAULT_RECHECK_INTERVAL,
        }
    }
}

/// The account the operator's flags configure: its client (already instrumented as the
/// caller wants) and, for the service dialect, the app signing secret.
pub struct DefaultAccount {
    pub ivy: SharedIvyApi,
    pub app_signing_secret: Option<SigningSecret>,
}

/// Wraps every account client the registry builds (e.g. the controller's call metrics).
pub type Decorator = Arc<dyn Fn(SharedIvyApi) -> SharedIvyApi + Send + Sync>;

/// What a resource gets for its account.
#[derive(Clone)]
pub struct Resolved {
    /// The account's client, spending the account's budget.
    pub ivy: SharedIvyApi,
    /// The merchant app's signing secret, for the service dialect.
    pub app_signing_secret: Option<SigningSecret>,
    /// The account's metric label: `namespace/name`, `cluster/name` or `default`.
    pub account: String,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("account", &self.account)
            .field("dialect", &self.ivy.dialect())
            .field("app_signing_secret", &self.app_signing_secret)
            .finish()
    }
}

/// Why a resource cannot use the account it names. [`AccountError::reason`] is the resource's
/// `Ready` reason.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The named account does not exist.
    #[error("{account} does not exist")]
    Missing { account: AccountRef },
    /// A ClusterIvyAccount whose conditions do not admit the resource's namespace.
    #[error(
        "ClusterIvyAccount {name} does not admit namespace {namespace}: a cluster admin can add \
         the namespace to the account's spec.conditions"
    )]
    Forbidden { name: String, namespace: String },
    /// The account exists but cannot be used yet.
    #[error("{account} is not ready: {detail}")]
    NotReady { account: AccountRef, detail: String },
    /// The apiserver could not be asked about the account or the namespace.
    #[error("failed to read {what}")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
}

impl AccountError {
    /// The `Ready` reason of a resource this error stops.
    pub fn reason(&self) -> &'static str {
        match self {
            AccountError::Forbidden { .. } => "AccountForbidden",
            _ => "AccountNotReady",
        }
    }

    /// Whether retrying soon can help (the apiserver failed), rather than waiting for someone
    /// to change the account.
    pub fn is_transient(&self) -> bool {
        matches!(self, AccountError::Read { .. })
    }
}

/// One account's client, and what it was built from.
struct Entry {
    uid: Option<String>,
    generation: Option<i64>,
    credentials: Credentials,
    budget: Arc<Budget>,
    resolved: Resolved,
}

/// One client per account, shared by the controller and the account controller.
pub struct AccountRegistry {
    client: Client,
    http: reqwest::Client,
    config: AccountsConfig,
    metrics: Arc<AccountMetrics>,
    decorator: Option<Decorator>,
    default: Resolved,
    entries: Mutex<HashMap<AccountRef, Entry>>,
}

impl AccountRegistry {
    /// A registry whose default account is `default`, spending the default budget.
    pub fn new(
        client: Client,
        http: reqwest::Client,
        default: DefaultAccount,
        config: AccountsConfig,
        metrics: Arc<AccountMetrics>,
    ) -> Self {
        let label = AccountRef::Default.label();
        let budget = Arc::new(Budget::new(config.default_budget));
        let ivy: SharedIvyApi =
            Arc::new(Budgeted::new(default.ivy, budget, metrics.counters(&label)));
        Self {
            client,
            http,
            config,
            metrics,
            decorator: None,
            default: Resolved {
                ivy,
                app_signing_secret: default.app_signing_secret,
                account: label,
            },
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The same registry wrapping every account client it builds in `decorator` (inside the
    /// budget, so that a call the budget defers is not counted as sent).
    pub fn with_decorator(mut self, decorator: Decorator) -> Self {
        self.decorator = Some(decorator);
        self
    }

    pub fn config(&self) -> &AccountsConfig {
        &self.config
    }

    /// The default account (the operator's flags), budgeted.
    pub fn default_account(&self) -> Resolved {
        self.default.clone()
    }

    /// The client a resource in `namespace_of_resource` with `spec.accountRef` =
    /// `account_ref` uses, or why it may not use that account.
    pub async fn client_for(
        &self,
        namespace_of_resource: &str,
        account_ref: Option<&crd::AccountRef>,
    ) -> Result<Resolved, AccountError> {
        let id = AccountRef::of_resource(namespace_of_resource, account_ref);
        match &id {
            AccountRef::Default => Ok(self.default_account()),
            AccountRef::Namespaced { namespace, name } => {
                let api: Api<IvyAccount> = Api::namespaced(self.client.clone(), namespace);
                let account = self.get_account(&api, &id, name).await?;
                self.usable(
                    &id,
                    account.metadata.generation,
                    account.status.as_ref(),
                    true,
                )?;
                let source = AccountSource::of_namespaced(&account, self.config.default_budget)
                    .map_err(|e| AccountError::NotReady {
                        account: id.clone(),
                        detail: error_chain(&e),
                    })?;
                self.load(&source)
                    .await
                    .map_err(|e| AccountError::NotReady {
                        account: id.clone(),
                        detail: error_chain(&e),
                    })
            }
            AccountRef::Cluster { .. } if !self.config.cluster_accounts => {
                Err(AccountError::NotReady {
                    account: id.clone(),
                    detail: "this operator watches a single namespace and does not serve \
                             ClusterIvyAccounts; use an IvyAccount in this namespace"
                        .into(),
                })
            }
            AccountRef::Cluster { name } => {
                let api: Api<ClusterIvyAccount> = Api::all(self.client.clone());
                let account = self.get_account(&api, &id, name).await?;
                // Before anything of the account is read or used.
                self.admit(&account, namespace_of_resource).await?;
                self.usable(
                    &id,
                    account.metadata.generation,
                    account.status.as_ref(),
                    false,
                )?;
                let source = AccountSource::of_cluster(&account, self.config.default_budget)
                    .map_err(|_| AccountError::NotReady {
                        account: id.clone(),
                        detail: "its spec is invalid (its status says why)".into(),
                    })?;
                self.load(&source).await.map_err(|e| {
                    // The details name the Secret's namespace: for the operator's log only.
                    warn!(account = %id, error = %error_chain(&e), "cannot read the key of a cluster account");
                    AccountError::NotReady {
                        account: id.clone(),
                        detail: "its key Secret cannot be read (its status says why)".into(),
                    }
                })
            }
        }
    }

    /// The account's client, built from `source` and its Secrets, or the one already built
    /// from the same spec and Secrets. The budget outlives rebuilds.
    pub(crate) async fn load(&self, source: &AccountSource) -> Result<Resolved, CredentialsError> {
        let credentials = read_credentials(&self.client, source).await?;
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = entries.get(&source.id)
            && entry.uid == source.uid
            && entry.generation == source.generation
            && entry.credentials == credentials
        {
            return Ok(entry.resolved.clone());
        }
        let budget = match entries.get(&source.id) {
            Some(entry) if entry.uid == source.uid => {
                entry.budget.reconfigure(source.budget);
                entry.budget.clone()
            }
            _ => Arc::new(Budget::new(source.budget)),
        };
        let resolved = self.build(source, &credentials, budget.clone());
        entries.insert(
            source.id.clone(),
            Entry {
                uid: source.uid.clone(),
                generation: source.generation,
                credentials,
                budget,
                resolved: resolved.clone(),
            },
        );
        Ok(resolved)
    }

    fn build(
        &self,
        source: &AccountSource,
        credentials: &Credentials,
        budget: Arc<Budget>,
    ) -> Resolved {
        let mut config = ClientConfig::new(
            source.base_url.clone(),
            credentials.api_key.clone(),
            source.dialect,
        );
        config.request_timeout = self.config.request_timeout;
        let mut ivy = build_ivy_client(config, self.http.clone());
        if let Some(decorate) = &self.decorator {
            ivy = decorate(ivy);
        }
        let label = source.id.label();
        Resolved {
            ivy: Arc::new(Budgeted::new(ivy, budget, self.metrics.counters(&label))),
            app_signing_secret: credentials.app_signing_secret.clone(),
            account: label,
        }
    }

    /// Forgets an account that no longer exists.
    pub(crate) fn forget(&self, id: &AccountRef) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    async fn get_account<K>(
        &self,
        api: &Api<K>,
        id: &AccountRef,
        name: &str,
    ) -> Result<K, AccountError>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        match api.get_opt(name).await {
            Ok(Some(account)) => Ok(account),
            Ok(None) => {
                self.forget(id);
                Err(AccountError::Missing {
                    account: id.clone(),
                })
            }
            Err(source) => Err(AccountError::Read {
                what: id.to_string(),
                source,
            }),
        }
    }

    /// Whether the cluster account's conditions admit `namespace` (by name, else by labels).
    async fn admit(
        &self,
        account: &ClusterIvyAccount,
        namespace: &str,
    ) -> Result<(), AccountError> {
        let conditions = &account.spec.conditions;
        let admitted = match admission_by_name(conditions, namespace) {
            Admission::Admitted => true,
            Admission::Refused => false,
            Admission::DependsOnLabels => {
                let api: Api<Namespace> = Api::all(self.client.clone());
                let found = api
                    .get_opt(namespace)
                    .await
                    .map_err(|source| AccountError::Read {
                        what: format!("namespace {namespace}"),
                        source,
                    })?;
                found
                    .and_then(|ns| ns.metadata.labels)
                    .is_some_and(|labels| admitted_by_labels(conditions, &labels))
            }
        };
        if admitted {
            Ok(())
        } else {
            Err(AccountError::Forbidden {
                name: kube::ResourceExt::name_any(account),
                namespace: namespace.to_owned(),
            })
        }
    }

    /// Whether the account's status allows using it; `reveal` says whether its `Ready`
    /// message may be shown (not a cluster account's: it may name other namespaces).
    fn usable(
        &self,
        id: &AccountRef,
        generation: Option<i64>,
        status: Option<&crd::account::IvyAccountStatus>,
        reveal: bool,
    ) -> Result<(), AccountError> {
        let detail = match usable(status, generation) {
            Usable::Yes => return Ok(()),
            Usable::NotCheckedYet => "its API key has not been checked yet".to_owned(),
            Usable::No { reason, message } if reveal => format!("{reason}: {message}"),
            Usable::No { reason, .. } => {
                format!("{reason} (a cluster admin can see why in its status)")
            }
        };
        Err(AccountError::NotReady {
            account: id.clone(),
            detail,
        })
    }
}
