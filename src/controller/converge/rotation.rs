//! Rotation: when to start one, when its grace period is over, and following a changed app
//! signing secret in the `service` dialect. A rotation creates a new subscription (see
//! [`super::create`]) and keeps the old one and its secret for the grace period.

use std::time::Duration;

use jiff::Timestamp;

use super::decision::{Decision, Facts, Inputs, Purpose};
use crate::controller::clock;
use crate::controller::context::Context;
use crate::controller::events::{self, EventReason};
use crate::controller::outcome::{Step, crash_point};
use crate::controller::remote::delete_remote;
use crate::controller::secret::StoredSecret;
use crate::controller::target::Target;
use crate::ivy::SigningSecret;

/// A rotation (or an app-secret change) whose grace period is over ends first.
pub(crate) fn plan_finish(inputs: &Inputs, facts: &Facts) -> Option<Decision> {
    let stored = &facts.stored;
    if stored.previous_subscription_id.is_none() && stored.previous_signing_secret.is_none() {
        return None;
    }
    grace_left(stored, inputs.rotation_grace_period, inputs.now)
        .is_none()
        .then(|| Decision::FinishRotation {
            previous: stored.previous_subscription_id.clone(),
        })
}

/// A requested rotation starts once the current subscription is in step.
pub(crate) fn plan_start(inputs: &Inputs, facts: &Facts) -> Option<Decision> {
    let value = facts.rotation_requested(inputs.sub)?;
    Some(if inputs.capabilities.per_subscription_secret {
        Decision::Create(Purpose::Rotate { value })
    } else {
        Decision::RotationUnsupported { value }
    })
}

/// In the `service` dialect the secret belongs to the merchant app: when the configured one
/// changed, the Secret follows (keeping the old one as previous for the grace period).
pub(crate) fn plan_app_secret(inputs: &Inputs, facts: &Facts) -> Option<Decision> {
    if inputs.capabilities.per_subscription_secret {
        return None;
    }
    let app = inputs.app_secret?;
    match &facts.stored.signing_secret {
        Some(current) if current != app && facts.stored.subscription_id.is_some() => {
            Some(Decision::FollowAppSecret(app.clone()))
        }
        _ => None,
    }
}

/// How long the running rotation's grace period still lasts; `None` when it is over (or no
/// rotation time was recorded).
pub(crate) fn grace_left(
    stored: &StoredSecret,
    grace: Duration,
    now: Timestamp,
) -> Option<Duration> {
    let due_at = clock::add(stored.rotated_at?, grace);
    (due_at > now).then(|| clock::elapsed_between(now, due_at).max(Duration::from_secs(1)))
}

/// Deletes a rotation's old subscription and forgets the previous secret. The Secret is written
/// at the end of the reconcile, so the old id is forgotten only once it is gone at Ivy.
pub(crate) async fn finish(
    target: &Target,
    ctx: &Context,
    facts: &mut Facts,
    previous: Option<String>,
) -> Step<()> {
    if let Some(previous) = previous {
        if target.ivy.capabilities().delete {
            delete_remote(target.ivy.as_ref(), &target.uid, &previous).await?;
        }
        crash_point!("rotation-after-old-delete");
        events::normal(
            ctx,
            &target.sub,
            EventReason::RotationCompleted,
            format!("deleted the previous subscription {previous}; only the new signing secret is valid now"),
        )
        .await;
    }
    facts.stored.previous_subscription_id = None;
    facts.stored.previous_signing_secret = None;
    Ok(())
}

/// Records a rotation the dialect cannot do, and tells the user what to do instead.
pub(crate) async fn refuse(target: &Target, ctx: &Context, facts: &mut Facts, value: String) {
    facts.stored.rotation = Some(value);
    events::warning(
        ctx,
        &target.sub,
        EventReason::RotationUnsupported,
        "in this Ivy dialect the signing secret belongs to the merchant app: rotate it in Ivy's dashboard and update the operator's app signing secret; every Secret follows".into(),
    )
    .await;
}

/// Stores the app's new secret and keeps the old one valid for the grace period.
pub(crate) fn follow_app_secret(facts: &mut Facts, app: SigningSecret, now: Timestamp) {
    facts.stored.previous_signing_secret = facts.stored.signing_secret.take();
    facts.stored.signing_secret = Some(app);
    facts.stored.rotated_at = Some(now);
}
