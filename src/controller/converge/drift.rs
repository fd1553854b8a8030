//! Drift: read the stored subscription (at most once per resync interval unless something
//! changed), notice that Ivy lost it, and restore the spec where someone changed it.

use std::hash::{Hash, Hasher};

use tracing::info;

use super::decision::{Decision, Facts, Inputs, Remote};
use super::ownership;
use crate::controller::context::Context;
use crate::controller::desired::{changed_fields, current_url, desired_request, drift_patch};
use crate::controller::events::{self, EventReason};
use crate::controller::marker::{Marking, marking};
use crate::controller::outcome::{Interrupt, Step, crash_point, ivy};
use crate::controller::secret::StoredSecret;
use crate::controller::target::Target;
use crate::crd::{ANNOTATION_ADOPT, ANNOTATION_ROTATE, WebhookSubscription};
use crate::ivy::{IdempotencyKey, IvyError, SubscriptionPatch};

/// With a stored subscription: read it unless recently verified, then revert what differs.
pub(crate) fn plan(inputs: &Inputs, facts: &Facts) -> Option<Decision> {
    let id = facts.stored.subscription_id.as_ref()?;
    match &facts.remote {
        Remote::InStep => None,
        Remote::Unread => {
            let recently_verified = inputs.verified == Some(fingerprint(inputs.sub, &facts.stored));
            let skip = recently_verified
                && facts.rotation_requested(inputs.sub).is_none()
                && !inputs.needs_owner;
            (!skip).then(|| Decision::Read { id: id.clone() })
        }
        Remote::Present(remote) => {
            let url = current_url(inputs.sub, &facts.stored);
            let desired = desired_request(inputs.sub, inputs.uid, &url);
            // A subscription the status never recorded (just adopted, or named only by the
            // Secret, which namespace editors can write) is checked before anything changes,
            // and marked as ours first.
            if inputs.recorded_id != Some(remote.id.as_str()) {
                if let Some(decision) = ownership::check_takeover(inputs, facts, remote) {
                    return Some(decision);
                }
                let marked = marking(remote, inputs.uid) == Marking::Ours;
                if inputs.capabilities.description && !marked {
                    return Some(Decision::MarkOwned {
                        id: remote.id.clone(),
                        description: desired.description.unwrap_or_default(),
                    });
                }
            }
            let patch = drift_patch(&desired, remote, inputs.capabilities);
            (!patch.is_empty()).then(|| Decision::Revert {
                id: remote.id.clone(),
                patch,
            })
        }
    }
}

/// What inputs a successful check against Ivy depended on.
pub(crate) fn fingerprint(sub: &WebhookSubscription, stored: &StoredSecret) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    sub.metadata.generation.hash(&mut hasher);
    stored.subscription_id.hash(&mut hasher);
    stored.previous_subscription_id.hash(&mut hasher);
    stored.rotation.hash(&mut hasher);
    sub.annotation(ANNOTATION_ADOPT).hash(&mut hasher);
    sub.annotation(ANNOTATION_ROTATE).hash(&mut hasher);
    hasher.finish()
}

/// Reads the stored subscription; when Ivy no longer has it, forgets it so that a new one is
/// created.
pub(crate) async fn read(
    target: &Target,
    ctx: &Context,
    facts: &mut Facts,
    id: String,
) -> Step<()> {
    match target.ivy.get(&id).await {
        Ok(remote) => facts.remote = Remote::Present(remote),
        Err(IvyError::NotFound { .. }) => {
            events::warning(
                ctx,
                &target.sub,
                EventReason::RemoteMissing,
                format!("subscription {id} no longer exists at Ivy; creating a new one"),
            )
            .await;
            facts.stored.subscription_id = None;
            facts.stored.signing_secret = None;
            facts.stored.adopted = None;
            facts.vanished = Some(id);
        }
        Err(error) => {
            return Err(Interrupt::Ivy {
                action: "read the subscription",
                error,
            });
        }
    }
    Ok(())
}

/// Writes this resource's marker into a subscription it takes over, and nothing else, so that
/// every other resource's take-over is refused from now on.
pub(crate) async fn mark_owned(
    target: &Target,
    facts: &mut Facts,
    id: String,
    description: String,
) -> Step<()> {
    let patch = SubscriptionPatch {
        description: Some(description),
        ..SubscriptionPatch::default()
    };
    let marked = target
        .ivy
        .update(&id, &patch, &IdempotencyKey::random())
        .await
        .map_err(ivy("mark the subscription as this resource's"))?;
    facts.remote = Remote::Present(marked);
    Ok(())
}

/// Sends the fields that differ from the spec.
pub(crate) async fn revert(
    target: &Target,
    ctx: &Context,
    facts: &mut Facts,
    id: String,
    patch: SubscriptionPatch,
) -> Step<()> {
    let sub = target.sub.as_ref();
    // A fresh key per update: an update is idempotent by itself, and a derived key would make
    // Ivy replay the first revert instead of applying a later one that restores the same spec.
    let key = IdempotencyKey::random();
    target
        .ivy
        .update(&id, &patch, &key)
        .await
        .map_err(ivy("update the subscription"))?;
    crash_point!("drift-after-update");
    facts.remote = Remote::InStep;
    let fields = changed_fields(&patch);
    let spec_changed =
        sub.status.as_ref().and_then(|s| s.observed_generation) != sub.metadata.generation;
    let (reason, note) = if spec_changed {
        (
            EventReason::Updated,
            format!("updated {fields} of subscription {id} at Ivy"),
        )
    } else {
        (
            EventReason::DriftReverted,
            format!("subscription {id} was changed at Ivy ({fields}); restored the spec"),
        )
    };
    info!(key = %target.key, subscription = %id, fields = %fields, reason = reason.as_str(), "updated subscription at Ivy");
    events::normal(ctx, sub, reason, note).await;
    Ok(())
}
