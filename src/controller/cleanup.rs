//! The cleanup path, run by the finalizer when a resource is deleted: remove every remote
//! subscription the resource has (unless `deletionPolicy: Orphan`), then let go. Ivy is listed
//! only when an interrupted create may have left something behind; a resource that never
//! reached Ivy is let go at once. Idempotent: 404 from Ivy or Kubernetes counts as done.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::runtime::controller::Action;
use tracing::info;

use crate::controller::context::Context;
use crate::controller::error::{Error, Result};
use crate::controller::events::{self, EventReason};
use crate::controller::marker::{Marking, marking};
use crate::controller::outcome::{Interrupt, crash_point};
use crate::controller::remote::{Claim, claimed_by_another, delete_remote};
use crate::controller::secret::{SecretOwnership, StoredSecret, classify};
use crate::controller::status::{Outcome, Reason};
use crate::controller::target::Target;
use crate::crd::{DeletionPolicy, WebhookSubscription};
use crate::ivy::{Capabilities, IvyError, error_chain};

/// How to let a stuck deletion go, for every `CleanupBlocked` message.
const ESCAPE_HATCH: &str =
    "to remove the resource and keep the subscription at Ivy, set spec.deletionPolicy: Orphan";

/// Where to look for subscriptions an interrupted create may have left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Search {
    /// No interrupted create: the known ids are all there is.
    None,
    /// Subscriptions whose description carries this resource's marker.
    Marked,
    /// The subscription holding the resource's URL (dialects without a description), unless
    /// another resource claims it.
    UrlHolder,
}

/// What deleting a resource means at Ivy.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Deletion {
    ids: BTreeSet<String>,
    search: Search,
}

/// The known ids (Secret and status) and, after an interrupted create, where to search.
fn plan_deletion(
    sub: &WebhookSubscription,
    stored: Option<&StoredSecret>,
    capabilities: Capabilities,
) -> Deletion {
    let mut ids = BTreeSet::new();
    if let Some(stored) = stored {
        ids.extend(stored.subscription_id.clone());
        ids.extend(stored.previous_subscription_id.clone());
    }
    ids.extend(sub.status.as_ref().and_then(|s| s.subscription_id.clone()));
    let interrupted = stored.is_some_and(|s| s.attempt.is_some());
    let search = match (interrupted, capabilities.list, capabilities.description) {
        (false, _, _) | (true, false, _) => Search::None,
        (true, true, true) => Search::Marked,
        (true, true, false) => Search::UrlHolder,
    };
    Deletion { ids, search }
}

/// Runs when the resource is being deleted; an `Err` keeps the finalizer and retries.
pub async fn cleanup(sub: Arc<WebhookSubscription>, ctx: Arc<Context>) -> Result<Action> {
    let mut target = Target::new(sub, &ctx)?;
    ctx.verified.forget(&target.key);
    let sub = Arc::clone(&target.sub);
    let sub = sub.as_ref();

    let existing = target.read_secret().await?;
    let stored = match classify(existing.as_ref(), sub) {
        SecretOwnership::Ours(stored) => Some(stored),
        SecretOwnership::Absent | SecretOwnership::Foreign { .. } => None,
    };

    if sub.spec.deletion_policy == DeletionPolicy::Orphan {
        return orphan(&target, &ctx, stored.as_ref()).await;
    }
    if sub.is_paused() {
        // Paused means no calls to Ivy, deletion included: the finalizer waits.
        let reason = format!(
            "the resource is paused: remove the webhooks.ivy.dev/paused annotation to let deletion proceed, or {ESCAPE_HATCH}"
        );
        return Err(blocked(&target, &ctx, reason).await);
    }

    // A resource that never reached Ivy needs neither Ivy nor its account.
    let reached_ivy = !plan_deletion(sub, stored.as_ref(), target.ivy.capabilities())
        .ids
        .is_empty()
        || stored.as_ref().is_some_and(|s| s.attempt.is_some());
    if reached_ivy && let Err(problem) = target.bind_account(&ctx).await {
        let reason = format!(
            "cannot reach Ivy to delete: {}; retrying (or {ESCAPE_HATCH})",
            error_chain(&problem)
        );
        return Err(blocked(&target, &ctx, reason).await);
    }
    let capabilities = target.ivy.capabilities();
    let mut deletion = plan_deletion(sub, stored.as_ref(), capabilities);
    if !deletion.ids.is_empty() && !capabilities.delete {
        events::warning(
            &ctx,
            sub,
            EventReason::DeleteUnsupported,
            format!(
                "this Ivy dialect cannot delete subscriptions: remove {} at Ivy by hand",
                deletion.ids.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
        .await;
        ctx.metrics.set_readiness(&target.key, None);
        return Ok(Action::await_change());
    }

    if let Err(interrupt) = delete_all(&target, &ctx, &mut deletion).await {
        return Err(match interrupt {
            Interrupt::Ivy { action, error } => {
                let reason = format!(
                    "cannot finish deleting at Ivy: failed to {action}: {error}; retrying (or {ESCAPE_HATCH})"
                );
                // The status says why deletion hangs; the error keeps the finalizer and backs off.
                report_blocked(&target, &ctx, &reason).await;
                Error::Ivy {
                    action,
                    source: error,
                }
            }
            Interrupt::Kube(error) => error,
            Interrupt::Stop { outcome, .. } => blocked(&target, &ctx, outcome.message).await,
            Interrupt::RetrySoon => Error::CleanupBlocked {
                reason: "retrying".into(),
            },
        });
    }
    let deleted: Vec<_> = deletion.ids.into_iter().collect();
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

/// `deletionPolicy: Orphan`: keep the subscription and the Secret, let go of the resource.
async fn orphan(target: &Target, ctx: &Context, stored: Option<&StoredSecret>) -> Result<Action> {
    if let Some(stored) = stored {
        // Keep the Secret: the remote subscription still signs with its secret.
        target.write_secret(stored, false).await?;
    }
    let id = stored
        .and_then(|s| s.subscription_id.clone())
        .or_else(|| {
            target
                .sub
                .status
                .as_ref()
                .and_then(|s| s.subscription_id.clone())
        })
        .unwrap_or_else(|| "(none)".into());
    events::normal(
        ctx,
        &target.sub,
        EventReason::Orphaned,
        format!(
            "kept subscription {id} at Ivy and Secret {} (deletionPolicy: Orphan)",
            target.secret_name
        ),
    )
    .await;
    ctx.metrics.set_readiness(&target.key, None);
    Ok(Action::await_change())
}

/// Shows `CleanupBlocked` in the status (best effort: the error is what keeps the finalizer).
async fn report_blocked(target: &Target, ctx: &Context, reason: &str) {
    let outcome = Outcome::new(Reason::CleanupBlocked, reason, None);
    if let Err(status_error) = target.write_status(ctx, &outcome).await {
        tracing::warn!(error = %status_error, "failed to report a blocked deletion");
    }
}

async fn blocked(target: &Target, ctx: &Context, reason: String) -> Error {
    report_blocked(target, ctx, &reason).await;
    Error::CleanupBlocked { reason }
}

/// Deletes the known ids and, after an interrupted create, what it may have left. An id only
/// the Secret names (which namespace editors can write) is deleted only once it is known to be
/// this resource's: never another resource's subscription.
async fn delete_all(
    target: &Target,
    ctx: &Context,
    deletion: &mut Deletion,
) -> std::result::Result<(), Interrupt> {
    let list_error = |error| Interrupt::Ivy {
        action: "list subscriptions",
        error,
    };
    let mut trusted: BTreeSet<String> = target
        .sub
        .status
        .as_ref()
        .and_then(|s| s.subscription_id.clone())
        .into_iter()
        .collect();
    match deletion.search {
        Search::None => {}
        Search::Marked => {
            let remotes = target.ivy.list().await.map_err(list_error)?;
            for remote in remotes.into_iter() {
                match marking(&remote, &target.uid) {
                    Marking::Ours => {
                        trusted.insert(remote.id.clone());
                        deletion.ids.insert(remote.id);
                    }
                    // The Secret names a subscription that is not ours: leave it alone.
                    Marking::Another => {
                        deletion.ids.remove(&remote.id);
                    }
                    Marking::Unmarked => {}
                }
            }
        }
        Search::UrlHolder => {
            // No description to carry a marker: Ivy keeps one subscription per URL, so the one
            // at this resource's URL is the one an interrupted create may have left.
            let url = &target.sub.spec.url;
            let remotes = target.ivy.list().await.map_err(list_error)?;
            for remote in remotes.into_iter().filter(|r| &r.url == url) {
                // Unless another resource with the same URL manages it.
                let claim = Claim {
                    id: &remote.id,
                    marker_uid: None,
                };
                let owner = claimed_by_another(ctx, &target.uid, &target.namespace, claim).await?;
                if owner.is_none() {
                    trusted.insert(remote.id.clone());
                    deletion.ids.insert(remote.id);
                }
            }
        }
    }
    let ids: Vec<String> = deletion.ids.iter().cloned().collect();
    for id in ids {
        if !trusted.contains(&id) && !is_ours(target, ctx, &id).await? {
            info!(key = %target.key, subscription = %id, "not deleting a subscription that is not this resource's");
            deletion.ids.remove(&id);
            continue;
        }
        delete_remote(target.ivy.as_ref(), &target.uid, &id).await?;
        crash_point!("cleanup-after-remote-delete");
    }
    Ok(())
}

/// Whether a subscription only the Secret names is this resource's: it carries our marker,
/// or no marker and no other resource records it. Gone counts as not ours (nothing to delete).
async fn is_ours(target: &Target, ctx: &Context, id: &str) -> std::result::Result<bool, Interrupt> {
    let remote = match target.ivy.get(id).await {
        Ok(remote) => remote,
        Err(IvyError::NotFound { .. }) => return Ok(false),
        Err(error) => {
            return Err(Interrupt::Ivy {
                action: "read a subscription before deleting it",
                error,
            });
        }
    };
    Ok(match marking(&remote, &target.uid) {
        Marking::Ours => true,
        Marking::Another => false,
        Marking::Unmarked => {
            let claim = Claim {
                id,
                marker_uid: None,
            };
            claimed_by_another(ctx, &target.uid, &target.namespace, claim)
                .await?
                .is_none()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::secret::CreateAttempt;
    use crate::controller::test_support::{ALL_CAPABILITIES, sub};
    use crate::crd::WebhookSubscriptionStatus;

    fn stored(id: Option<&str>, attempt: bool) -> StoredSecret {
        StoredSecret {
            subscription_id: id.map(str::to_owned),
            attempt: attempt.then(|| CreateAttempt {
                key: "ivywh-create-1".into(),
                at: "2026-01-01T00:00:00Z".parse().unwrap(),
            }),
            ..StoredSecret::default()
        }
    }

    fn ids(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn what_deletion_means_at_ivy() {
        let no_description = Capabilities {
            description: false,
            ..ALL_CAPABILITIES
        };
        let mut with_status = sub();
        with_status.status = Some(WebhookSubscriptionStatus {
            subscription_id: Some("sub-status".into()),
            ..WebhookSubscriptionStatus::default()
        });
        let plain = sub();
        let rotating = StoredSecret {
            previous_subscription_id: Some("sub-0".into()),
            ..stored(Some("sub-1"), false)
        };
        let cases: Vec<(
            &str,
            &WebhookSubscription,
            Option<StoredSecret>,
            Capabilities,
            Deletion,
        )> = vec![
            (
                "never reached Ivy (no Secret, no status id): nothing, no call",
                &plain,
                None,
                ALL_CAPABILITIES,
                Deletion {
                    ids: ids(&[]),
                    search: Search::None,
                },
            ),
            (
                "Secret lost (e.g. namespace deletion): the status id",
                &with_status,
                None,
                ALL_CAPABILITIES,
                Deletion {
                    ids: ids(&["sub-status"]),
                    search: Search::None,
                },
            ),
            (
                "Ready: the stored id, no list",
                &plain,
                Some(stored(Some("sub-1"), false)),
                ALL_CAPABILITIES,
                Deletion {
                    ids: ids(&["sub-1"]),
                    search: Search::None,
                },
            ),
            (
                "during a rotation: both subscriptions",
                &plain,
                Some(rotating),
                ALL_CAPABILITIES,
                Deletion {
                    ids: ids(&["sub-0", "sub-1"]),
                    search: Search::None,
                },
            ),
            (
                "interrupted create: search by marker",
                &plain,
                Some(stored(None, true)),
                ALL_CAPABILITIES,
                Deletion {
                    ids: ids(&[]),
                    search: Search::Marked,
                },
            ),
            (
                "interrupted create without descriptions: search by URL",
                &plain,
                Some(stored(None, true)),
                no_description,
                Deletion {
                    ids: ids(&[]),
                    search: Search::UrlHolder,
                },
            ),
        ];
        for (name, sub, stored, capabilities, expected) in cases {
            assert_eq!(
                plan_deletion(sub, stored.as_ref(), capabilities),
                expected,
                "{name}"
            );
        }
    }
}
