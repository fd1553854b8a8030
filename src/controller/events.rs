//! Kubernetes Events the operator publishes about a resource. Notes name ids and fields, never
//! a secret or the API key.

use kube::Resource;
use kube::runtime::events::{Event, EventType};

use crate::controller::context::Context;
use crate::crd::WebhookSubscription;

/// Publishes one Event; a failure to publish is logged and otherwise ignored, because an
/// Event is a courtesy and must not fail the reconcile that produced it.
pub async fn publish(
    ctx: &Context,
    sub: &WebhookSubscription,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    // The recorder folds Events with the same reason and action into one series that keeps the
    // first note; a digest of the note in the action keeps a different message its own Event.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&note, &mut hasher);
    let digest = std::hash::Hasher::finish(&hasher) as u32;
    let event = Event {
        type_,
        reason: reason.to_owned(),
        action: format!("{action}-{digest:08x}"),
        note: Some(note),
        secondary: None,
    };
    let reference = sub.object_ref(&());
    if let Err(error) = ctx.recorder.publish(&event, &reference).await {
        tracing::warn!(%error, reason, "failed to publish event");
    }
}

/// A `Normal` Event.
pub async fn normal(ctx: &Context, sub: &WebhookSubscription, reason: &str, note: String) {
    publish(ctx, sub, EventType::Normal, reason, reason, note).await;
}

/// A `Warning` Event.
pub async fn warning(ctx: &Context, sub: &WebhookSubscription, reason: &str, note: String) {
    publish(ctx, sub, EventType::Warning, reason, reason, note).await;
}
