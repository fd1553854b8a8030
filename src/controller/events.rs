//! Kubernetes Events the operator publishes about a resource. Notes name ids and fields, never
//! a secret or the API key.

use kube::Resource;
use kube::runtime::events::{Event, EventType};

use crate::controller::context::Context;
use crate::controller::status::Reason;
use crate::crd::WebhookSubscription;

/// Why an Event was published: one of the operator's actions, or a failure reported with the
/// `Ready` condition's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventReason {
    /// A subscription was created at Ivy.
    Created,
    /// The stored subscription vanished at Ivy and a new one was created.
    Recreated,
    /// A rotation created a new subscription with a new secret.
    Rotated,
    /// A rotation's old subscription was deleted after the grace period.
    RotationCompleted,
    /// The dialect cannot rotate a per-subscription secret.
    RotationUnsupported,
    /// The spec changed and Ivy was updated.
    Updated,
    /// Someone changed the subscription at Ivy and the spec was restored.
    DriftReverted,
    /// The stored subscription no longer exists at Ivy.
    RemoteMissing,
    /// An existing subscription was adopted.
    Adopted,
    /// A subscription left by an interrupted attempt was deleted.
    LeftoverDeleted,
    /// The Secret's name is taken by a Secret the operator does not own.
    SecretConflict,
    /// The resource was deleted and its subscriptions with it.
    Deleted,
    /// The resource was deleted and its subscription kept (`deletionPolicy: Orphan`).
    Orphaned,
    /// The dialect cannot delete subscriptions.
    DeleteUnsupported,
    /// A failure, named by the `Ready` condition's reason.
    Failed(Reason),
}

impl EventReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EventReason::Created => "Created",
            EventReason::Recreated => "Recreated",
            EventReason::Rotated => "Rotated",
            EventReason::RotationCompleted => "RotationCompleted",
            EventReason::RotationUnsupported => "RotationUnsupported",
            EventReason::Updated => "Updated",
            EventReason::DriftReverted => "DriftReverted",
            EventReason::RemoteMissing => "RemoteMissing",
            EventReason::Adopted => "Adopted",
            EventReason::LeftoverDeleted => "LeftoverDeleted",
            EventReason::SecretConflict => "SecretConflict",
            EventReason::Deleted => "Deleted",
            EventReason::Orphaned => "Orphaned",
            EventReason::DeleteUnsupported => "DeleteUnsupported",
            EventReason::Failed(reason) => reason.as_str(),
        }
    }
}

/// Publishes one Event; a failure to publish is logged and otherwise ignored, because an
/// Event is a courtesy and must not fail the reconcile that produced it.
pub async fn publish(
    ctx: &Context,
    sub: &WebhookSubscription,
    type_: EventType,
    reason: EventReason,
    note: String,
) {
    let reason = reason.as_str();
    // The recorder folds Events with the same reason and action into one series that keeps the
    // first note; a digest of the note in the action keeps a different message its own Event.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&note, &mut hasher);
    let digest = std::hash::Hasher::finish(&hasher) as u32;
    let event = Event {
        type_,
        reason: reason.to_owned(),
        action: format!("{reason}-{digest:08x}"),
        note: Some(note),
        secondary: None,
    };
    let reference = sub.object_ref(&());
    if let Err(error) = ctx.recorder.publish(&event, &reference).await {
        tracing::warn!(%error, reason, "failed to publish event");
    }
}

/// A `Normal` Event.
pub async fn normal(ctx: &Context, sub: &WebhookSubscription, reason: EventReason, note: String) {
    publish(ctx, sub, EventType::Normal, reason, note).await;
}

/// A `Warning` Event.
pub async fn warning(ctx: &Context, sub: &WebhookSubscription, reason: EventReason, note: String) {
    publish(ctx, sub, EventType::Warning, reason, note).await;
}
