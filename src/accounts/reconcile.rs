//! The account controller: checks each `IvyAccount`'s and `ClusterIvyAccount`'s API key with
//! one cheap call (a `get` of an id that does not exist), at start and whenever the account's
//! spec or Secrets change, and writes its `Ready` condition.
//!
//! Secrets are not watched (that would mean reading every Secret in scope): each account is
//! looked at again every `recheck_interval`, which costs a Secret read and, only when the key
//! changed or the last check could not reach Ivy, one call to Ivy.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{debug, info, warn};

use crate::accounts::identity::AccountRef;
use crate::accounts::registry::AccountRegistry;
use crate::accounts::source::{AccountSource, SourceError};
use crate::accounts::status::{
    Verdict, compute_status, verdict_of_check, verdict_of_credentials, verdict_of_source,
};
use crate::crd::account::IvyAccountStatus;
use crate::crd::{ClusterIvyAccount, IvyAccount};
use crate::ivy::{SharedIvyApi, error_chain};

/// The field manager of every write (the controller's too).
pub const FIELD_MANAGER: &str = "ivy-webhook-operator";

/// Delay after a failed status write.
const RETRY_WRITE: Duration = Duration::from_secs(5);

/// A status write failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("failed to apply the status of {account}")]
    ApplyStatus {
        account: String,
        #[source]
        source: kube::Error,
    },
}

/// The last check of one account: the client it checked (the registry builds a new one
/// exactly when the spec or the Secrets change) and what it found.
struct Checked {
    ivy: SharedIvyApi,
    verdict: Verdict,
}

/// Shared state of the account controller.
pub struct AccountsContext {
    client: Client,
    registry: Arc<AccountRegistry>,
    checked: Mutex<HashMap<AccountRef, Checked>>,
}

impl AccountsContext {
    pub fn new(client: Client, registry: Arc<AccountRegistry>) -> Self {
        Self {
            client,
            registry,
            checked: Mutex::new(HashMap::new()),
        }
    }

    fn checked(&self) -> std::sync::MutexGuard<'_, HashMap<AccountRef, Checked>> {
        self.checked.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs the account controllers (`IvyAccount` in the configured scope, and
/// `ClusterIvyAccount` unless turned off) until `shutdown` resolves.
pub async fn run_accounts(
    client: Client,
    registry: Arc<AccountRegistry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let shutdown = shutdown.boxed().shared();
    let config = registry.config().clone();
    let ctx = Arc::new(AccountsContext::new(client.clone(), registry));
    let namespaced: Api<IvyAccount> = match &config.watch_namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let namespaced = Controller::new(namespaced, watcher::Config::default().any_semantic())
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile_namespaced, error_policy, ctx.clone())
        .for_each(log_result);
    let cluster = async {
        if config.cluster_accounts {
            let api: Api<ClusterIvyAccount> = Api::all(client.clone());
            Controller::new(api, watcher::Config::default().any_semantic())
                .graceful_shutdown_on(shutdown.clone())
                .run(reconcile_cluster, error_policy, ctx.clone())
                .for_each(log_result)
                .await;
        }
    };
    info!(
        namespace = config.watch_namespace.as_deref().unwrap_or("*"),
        cluster_accounts = config.cluster_accounts,
        "account controller started"
    );
    futures::join!(namespaced, cluster);
    info!("account controller stopped");
}

async fn log_result<T: std::fmt::Debug, E: std::error::Error>(result: Result<T, E>) {
    match result {
        Ok(object) => debug!(?object, "account checked"),
        Err(error) => debug!(error = %error_chain(&error), "account reconcile error"),
    }
}

/// Checks one `IvyAccount` and writes its status.
pub async fn reconcile_namespaced(
    account: Arc<IvyAccount>,
    ctx: Arc<AccountsContext>,
) -> Result<Action, ReconcileError> {
    let namespace = account.namespace().unwrap_or_default();
    let id = AccountRef::Namespaced {
        namespace: namespace.clone(),
        name: account.name_any(),
    };
    let source = AccountSource::of_namespaced(&account, ctx.registry.config().default_budget);
    let verdict = check(&ctx, &id, source).await;
    let api: Api<IvyAccount> = Api::namespaced(ctx.client.clone(), &namespace);
    write_status(
        &api,
        account.as_ref(),
        account.status.as_ref(),
        &id,
        &verdict,
    )
    .await?;
    Ok(next_check(&ctx, &verdict))
}

/// Checks one `ClusterIvyAccount` and writes its status.
pub async fn reconcile_cluster(
    account: Arc<ClusterIvyAccount>,
    ctx: Arc<AccountsContext>,
) -> Result<Action, ReconcileError> {
    let id = AccountRef::Cluster {
        name: account.name_any(),
    };
    let source = AccountSource::of_cluster(&account, ctx.registry.config().default_budget);
    let verdict = check(&ctx, &id, source).await;
    let api: Api<ClusterIvyAccount> = Api::all(ctx.client.clone());
    write_status(
        &api,
        account.as_ref(),
        account.status.as_ref(),
        &id,
        &verdict,
    )
    .await?;
    Ok(next_check(&ctx, &verdict))
}

fn error_policy<K>(_account: Arc<K>, error: &ReconcileError, _ctx: Arc<AccountsContext>) -> Action {
    warn!(error = %error_chain(error), "account reconcile failed");
    Action::requeue(RETRY_WRITE)
}

/// What the account looks like now: read its Secrets (through the registry, which rebuilds
/// the client when they or the spec changed) and ask Ivy unless the same client was already
/// checked with a lasting answer.
async fn check(
    ctx: &AccountsContext,
    id: &AccountRef,
    source: Result<AccountSource, SourceError>,
) -> Verdict {
    let source = match source {
        Ok(source) => source,
        Err(error) => return verdict_of_source(&error),
    };
    let resolved = match ctx.registry.load(&source).await {
        Ok(resolved) => resolved,
        Err(error) => {
            ctx.checked().remove(id);
            return verdict_of_credentials(&error);
        }
    };
    if let Some(last) = ctx.checked().get(id)
        && Arc::ptr_eq(&last.ivy, &resolved.ivy)
        && !last.verdict.reason.is_transient()
    {
        return last.verdict.clone();
    }
    let probe = uuid::Uuid::new_v4().to_string();
    let verdict = verdict_of_check(&resolved.ivy.get(&probe).await, &source);
    info!(account = %id, reason = verdict.reason.as_str(), "checked the account's API key");
    ctx.checked().insert(
        id.clone(),
        Checked {
            ivy: resolved.ivy,
            verdict: verdict.clone(),
        },
    );
    verdict
}

/// When to look at the account again: after the recheck interval, or sooner when Ivy asked.
fn next_check(ctx: &AccountsContext, verdict: &Verdict) -> Action {
    let interval = ctx.registry.config().recheck_interval;
    let delay = verdict
        .retry_after
        .map_or(interval, |after| after.min(interval));
    Action::requeue(delay)
}

/// Applies the status for `verdict` unless it would change nothing.
async fn write_status<K>(
    api: &Api<K>,
    account: &K,
    current: Option<&IvyAccountStatus>,
    id: &AccountRef,
    verdict: &Verdict,
) -> Result<(), ReconcileError>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let generation = account.meta().generation;
    let status = compute_status(current, generation, verdict, Timestamp::now());
    if current == Some(&status) {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&account.name_any(), &params, &Patch::Apply(&patch))
        .await
        .map_err(|source| ReconcileError::ApplyStatus {
            account: id.to_string(),
            source,
        })?;
    Ok(())
}
