//! One resource being reconciled, and its two writes: the Secret receivers mount and the
//! resource's status. Both are server-side applies with the operator's field manager.

use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use tracing::debug;

use crate::accounts::AccountError;
use crate::controller::context::Context;
use crate::controller::error::{Error, Result};
use crate::controller::secret::{StoredSecret, desired_secret};
use crate::controller::status::{Outcome, compute_status};
use crate::crd::WebhookSubscription;
use crate::ivy::{SharedIvyApi, SigningSecret};

/// The one field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "ivy-webhook-operator";

/// One resource being reconciled, with the handles every step uses.
pub(crate) struct Target {
    pub sub: Arc<WebhookSubscription>,
    pub uid: String,
    pub name: String,
    pub namespace: String,
    /// `namespace/name`, the key for backoff, caches and metrics.
    pub key: String,
    pub secret_name: String,
    /// The Ivy client of the account this resource uses.
    pub ivy: SharedIvyApi,
    /// That account's app signing secret (`service` dialect).
    pub app_signing_secret: Option<SigningSecret>,
    secrets: Api<Secret>,
    subs: Api<WebhookSubscription>,
    /// What this reconcile last wrote to the Secret, so that unchanged content is not written
    /// twice.
    persisted: Mutex<Option<StoredSecret>>,
}

impl Target {
    pub fn new(sub: Arc<WebhookSubscription>, ctx: &Context) -> Result<Self> {
        let namespace = sub
            .namespace()
            .ok_or(Error::MissingObjectKey("namespace"))?;
        let uid = sub.uid().ok_or(Error::MissingObjectKey("uid"))?;
        let name = sub.name_any();
        Ok(Self {
            key: format!("{namespace}/{name}"),
            secret_name: sub.secret_name(),
            ivy: ctx.ivy.clone(),
            app_signing_secret: ctx.app_signing_secret.clone(),
            secrets: Api::namespaced(ctx.client.clone(), &namespace),
            subs: Api::namespaced(ctx.client.clone(), &namespace),
            sub,
            uid,
            name,
            namespace,
            persisted: Mutex::new(None),
        })
    }

    /// Uses the Ivy account the resource names (`spec.accountRef`) instead of the operator's
    /// own. An `IvyAccount` is always looked up in the resource's namespace, so a resource can
    /// never use another namespace's key.
    pub async fn bind_account(&mut self, ctx: &Context) -> std::result::Result<(), AccountError> {
        let (Some(accounts), Some(account_ref)) =
            (ctx.accounts.as_ref(), self.sub.spec.account_ref.as_ref())
        else {
            return Ok(());
        };
        let resolved = accounts
            .client_for(&self.namespace, Some(account_ref))
            .await?;
        self.ivy = resolved.ivy;
        self.app_signing_secret = resolved.app_signing_secret;
        Ok(())
    }

    /// What this reconcile last wrote to the Secret, if it wrote it.
    pub fn persisted(&self) -> Option<StoredSecret> {
        self.persisted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the resource's Secret.
    pub async fn read_secret(&self) -> Result<Option<Secret>> {
        self.secrets
            .get_opt(&self.secret_name)
            .await
            .map_err(|source| Error::GetSecret {
                name: self.secret_name.clone(),
                source,
            })
    }

    /// Writes the whole Secret in one server-side apply. With `owned == false` (orphaning) the
    /// owner reference is left out.
    pub async fn write_secret(&self, stored: &StoredSecret, owned: bool) -> Result<()> {
        let secret = desired_secret(&self.sub, stored, owned);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.secrets
            .patch(&self.secret_name, &params, &Patch::Apply(&secret))
            .await
            .map_err(|source| Error::ApplySecret {
                name: self.secret_name.clone(),
                source,
            })?;
        debug!(secret = %self.secret_name, "applied Secret");
        *self
            .persisted
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(stored.clone());
        Ok(())
    }

    /// Writes the status for `outcome` unless it would change nothing.
    pub async fn write_status(&self, ctx: &Context, outcome: &Outcome) -> Result<()> {
        let status = compute_status(&self.sub, outcome, ctx.now());
        let ready = if outcome.reason.is_ready() {
            "True"
        } else {
            "False"
        };
        ctx.metrics.set_readiness(&self.key, Some(ready));
        if self.sub.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let patch = serde_json::json!({
            "apiVersion": WebhookSubscription::api_version(&()),
            "kind": WebhookSubscription::kind(&()),
            "status": status,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.subs
            .patch_status(&self.name, &params, &Patch::Apply(&patch))
            .await
            .map_err(|source| Error::ApplyStatus {
                name: self.name.clone(),
                source,
            })?;
        Ok(())
    }
}

/// Whether `secret` names the resource with `uid` as its controller.
pub(crate) fn is_controlled_by(secret: &Secret, uid: &str) -> bool {
    secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}
