//! The cleanup path, run by the finalizer when a resource is deleted: remove every remote
//! subscription the resource ever had (unless `deletionPolicy: Orphan`), then let go.
//! Idempotent: 404 from Ivy or Kubernetes counts as done.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::runtime::controller::Action;
use tracing::info;

use crate::controller::context::Context;
use crate::controller::error::{Error, Result};
use crate::controller::events::{self, EventReason};
use crate::controller::marker::is_marked_for;
use crate::controller::outcome::{Interrupt, crash_point};
use crate::controller::remote::{claimed_by_another, delete_remote};
use crate::controller::secret::{SecretOwnership, classify};
use crate::controller::status::{Outcome, Reason};
use crate::controller::target::Target;
use crate::crd::{DeletionPolicy, WebhookSubscription};

/// Runs when the resource is being deleted; an `Err` keeps the finalizer and retries.
pub async fn cleanup(sub: Arc<WebhookSubscription>, ctx: Arc<Context>) -> Result<Action> {
    let target = Target::new(sub, &ctx)?;
    let sub = target.sub.as_ref();
    ctx.verified.forget(&target.key);

    if sub.is_paused() {
        // Paused means no calls to Ivy, deletion included: the finalizer waits.
        return Err(Error::CleanupBlocked {
            reason: "the resource is paused; remove the webhooks.ivy.dev/paused annotation to let deletion proceed".into(),
        });
    }

    let existing = target.read_secret().await?;
    let stored = match classify(existing.as_ref(), sub) {
        SecretOwnership::Ours(stored) => Some(stored),
        SecretOwnership::Absent | SecretOwnership::Foreign { .. } => None,
    };

    if sub.spec.deletion_policy == DeletionPolicy::Orphan {
        if let Some(stored) = &stored {
            // Keep the Secret: the remote subscription still signs with its secret.
            target.write_secret(stored, false).await?;
        }
        let id = stored
            .as_ref()
            .and_then(|s| s.subscription_id.clone())
            .or_else(|| sub.status.as_ref().and_then(|s| s.subscription_id.clone()))
            .unwrap_or_else(|| "(none)".into());
        events::normal(
            &ctx,
            sub,
            EventReason::Orphaned,
            format!(
                "kept subscription {id} at Ivy and Secret {} (deletionPolicy: Orphan)",
                target.secret_name
            ),
        )
        .await;
        ctx.metrics.set_readiness(&target.key, None);
        return Ok(Action::await_change());
    }

    let mut ids = BTreeSet::new();
    if let Some(stored) = &stored {
        ids.extend(stored.subscription_id.clone());
        ids.extend(stored.previous_subscription_id.clone());
    }
    ids.extend(sub.status.as_ref().and_then(|s| s.subscription_id.clone()));

    let capabilities = ctx.ivy.capabilities();
    if !capabilities.delete {
        events::warning(
            &ctx,
            sub,
            EventReason::DeleteUnsupported,
            format!(
                "this Ivy dialect cannot delete subscriptions: remove {} at Ivy by hand",
                ids.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
        .await;
        ctx.metrics.set_readiness(&target.key, None);
        return Ok(Action::await_change());
    }

    let result = delete_all(&target, &ctx, &mut ids).await;
    if let Err(interrupt) = result {
        let error = match interrupt {
            Interrupt::Ivy { action, error } => {
                let message = format!("failed to {action} while deleting: {error}; retrying");
                // Best effort: the status tells the user why deletion hangs.
                let outcome = Outcome::new(Reason::Deleting, message, None);
                if let Err(status_error) = target.write_status(&ctx, &outcome).await {
                    tracing::warn!(error = %status_error, "failed to report a blocked deletion");
                }
                Error::Ivy {
                    action,
                    source: error,
                }
            }
            Interrupt::Kube(error) => error,
            Interrupt::Stop { outcome, .. } => Error::CleanupBlocked {
                reason: outcome.message,
            },
            Interrupt::RetrySoon => Error::CleanupBlocked {
                reason: "retrying".into(),
            },
        };
        return Err(error);
    }
    let deleted: Vec<_> = ids.into_iter().collect();
    info!(key = %target.key, subscriptions = ?deleted, "deleted remote subscriptions");
    events::normal(
        &ctx,
        sub,
        EventReason::Deleted,
        if deleted.is_empty() {
            "no subscription at Ivy to delete".into()
        } else {
            format!("deleted subscription {} at Ivy", deleted.join(", "))
        },
    )
    .await;
    ctx.backoff.reset(&target.key);
    ctx.metrics.set_readiness(&target.key, None);
    Ok(Action::await_change())
}

/// Deletes the known ids and every subscription marked for this resource.
async fn delete_all(
    target: &Target,
    ctx: &Context,
    ids: &mut BTreeSet<String>,
) -> std::result::Result<(), Interrupt> {
    let capabilities = ctx.ivy.capabilities();
    if capabilities.list && capabilities.description {
        let remotes = ctx.ivy.list().await.map_err(|error| Interrupt::Ivy {
            action: "list subscriptions",
            error,
        })?;
        ids.extend(
            remotes
                .into_iter()
                .filter(|r| is_marked_for(r, &target.uid))
                .map(|r| r.id),
        );
    } else if capabilities.list {
        // No description to carry a marker: Ivy keeps one subscription per URL, so the one at
        // this resource's URL is the one an interrupted create may have left.
        let url = &target.sub.spec.url;
        let remotes = ctx.ivy.list().await.map_err(|error| Interrupt::Ivy {
            action: "list subscriptions",
            error,
        })?;
        for remote in remotes.into_iter().filter(|r| &r.url == url) {
            // Unless another resource with the same URL manages it.
            if claimed_by_another(ctx, &target.uid, &remote.id)
                .await?
                .is_none()
            {
                ids.insert(remote.id);
            }
        }
    }
    for id in ids.iter() {
        delete_remote(ctx, &target.uid, id).await?;
        crash_point!("cleanup-after-remote-delete");
    }
    Ok(())
}
