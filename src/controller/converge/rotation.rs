//! Rotation: when to start one (asked for by the annotation, or due by `spec.rotation.every`),
//! when its grace period is over, and following a changed app signing secret in the `service`
//! dialect. A rotation creates a new subscription (see [`super::create`]) and keeps the old one
//! and its secret for the grace period.
//!
//! A scheduled rotation is due `spec.rotation.every` after the current secret was stored (its
//! last rotation, else the Secret's creation), and is found by the requeue that [`until_due`]
//! schedules, not by polling. It answers the same `rotate-secret` value as the last rotation
//! did, so the annotation stays answered; its idempotency key still differs from every earlier
//! rotation's because it names the subscription rotated away from, and a crash before its
//! secret is stored replays the same create.

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
use crate::crd::WebhookSubscription;
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

/// A requested rotation starts once the current subscription is in step; without a request, a
/// scheduled one that is due.
pub(crate) fn plan_start(inputs: &Inputs, facts: &Facts) -> Option<Decision> {
    if let Some(value) = facts.rotation_requested(inputs.sub) {
        return Some(if inputs.capabilities.per_subscription_secret {
            Decision::Create(Purpose::Rotate { value })
        } else {
            Decision::RotationUnsupported { value }
        });
    }
    plan_scheduled(inputs, facts)
}

/// A scheduled rotation that is due, where the dialect gives each subscription its own secret.
fn plan_scheduled(inputs: &Inputs, facts: &Facts) -> Option<Decision> {
    let stored = &facts.stored;
    let idle = stored.subscription_id.is_some()
        && stored.previous_subscription_id.is_none()
        && stored.previous_signing_secret.is_none();
    if !idle || inputs.deleting || !inputs.capabilities.per_subscription_secret {
        return None;
    }
    let due_at = next_due(inputs.sub, stored, facts.created, inputs.now)?;
    (due_at <= inputs.now).then(|| {
        Decision::Create(Purpose::Rotate {
            value: stored.rotation.clone().unwrap_or_default(),
        })
    })
}

/// `spec.rotation.every`, if set and readable.
pub(crate) fn interval(sub: &WebhookSubscription) -> Option<Duration> {
    parse_interval(&sub.spec.rotation.as_ref()?.every)
}

/// Reads the schema's interval form: whole days, hours, minutes and seconds in that order
/// (`90d`, `2160h`, `1d12h`). `None` for anything else, or for zero.
pub(crate) fn parse_interval(text: &str) -> Option<Duration> {
    let mut rest = text;
    let mut seconds: u64 = 0;
    for (unit, factor) in [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)] {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && rest[digits..].starts_with(unit) {
            let count: u64 = rest[..digits].parse().ok()?;
            seconds = seconds.checked_add(count.checked_mul(factor)?)?;
            rest = &rest[digits + 1..];
        }
    }
    (rest.is_empty() && seconds > 0).then(|| Duration::from_secs(seconds))
}

/// When the current signing secret was stored: its last rotation, else the Secret's creation;
/// `now` when it was created in this reconcile.
pub(crate) fn last_rotation(
    stored: &StoredSecret,
    created_now: bool,
    now: Timestamp,
) -> Option<Timestamp> {
    if created_now {
        return Some(now);
    }
    stored.rotated_at.or(stored.secret_created_at)
}

/// When the next scheduled rotation is due, if the resource has a schedule.
pub(crate) fn next_due(
    sub: &WebhookSubscription,
    stored: &StoredSecret,
    created_now: bool,
    now: Timestamp,
) -> Option<Timestamp> {
    let every = interval(sub)?;
    Some(clock::add(last_rotation(stored, created_now, now)?, every))
}

/// How long until the next scheduled rotation is due (at least a second), for the requeue.
pub(crate) fn until_due(
    sub: &WebhookSubscription,
    stored: &StoredSecret,
    created_now: bool,
    now: Timestamp,
) -> Option<Duration> {
    let due_at = next_due(sub, stored, created_now, now)?;
    Some(clock::elapsed_between(now, due_at).max(Duration::from_secs(1)))
}

/// The signing secret was replaced without a rotation (Ivy lost the subscription, or the
/// Secret was lost with it): it counts as new from `now`, for the schedule and the status.
pub(crate) fn note_replaced_secret(
    stored: &mut StoredSecret,
    original: &StoredSecret,
    now: Timestamp,
) {
    let replaced = original.signing_secret.is_some()
        && stored.signing_secret.is_some()
        && stored.signing_secret != original.signing_secret
        && stored.rotated_at == original.rotated_at;
    if replaced {
        stored.rotated_at = Some(now);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::test_support::sub;
    use crate::crd::RotationSpec;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn every(text: &str) -> WebhookSubscription {
        let mut sub = sub();
        sub.spec.rotation = Some(RotationSpec { every: text.into() });
        sub
    }

    #[test]
    fn intervals_read_days_hours_minutes_and_seconds() {
        assert_eq!(
            parse_interval("90d"),
            Some(Duration::from_secs(90 * 86_400))
        );
        assert_eq!(
            parse_interval("2160h"),
            Some(Duration::from_secs(2160 * 3_600))
        );
        assert_eq!(
            parse_interval("1d12h30m5s"),
            Some(Duration::from_secs(131_405))
        );
        assert_eq!(parse_interval("1m"), Some(Duration::from_secs(60)));
    }

    #[test]
    fn intervals_out_of_order_fractional_or_zero_are_unreadable() {
        for text in [
            "",
            "0d",
            "12h1d",
            "1.5h",
            "90 days",
            "-1h",
            "h",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_interval(text), None, "{text}");
        }
    }

    #[test]
    fn the_schedule_counts_from_the_last_rotation_else_the_secrets_creation() {
        let now = at("2026-06-01T12:00:00Z");
        let mut stored = StoredSecret {
            secret_created_at: Some(at("2026-05-01T00:00:00Z")),
            ..StoredSecret::default()
        };
        let sub = every("1d");
        assert_eq!(
            next_due(&sub, &stored, false, now),
            Some(at("2026-05-02T00:00:00Z"))
        );
        stored.rotated_at = Some(at("2026-05-31T18:00:00Z"));
        assert_eq!(
            next_due(&sub, &stored, false, now),
            Some(at("2026-06-01T18:00:00Z"))
        );
        assert_eq!(
            until_due(&sub, &stored, false, now),
            Some(Duration::from_secs(6 * 3_600))
        );
    }

    #[test]
    fn a_subscription_created_in_this_reconcile_is_due_a_whole_interval_later() {
        let now = at("2026-06-01T12:00:00Z");
        let stored = StoredSecret {
            secret_created_at: Some(at("2020-01-01T00:00:00Z")),
            ..StoredSecret::default()
        };
        assert_eq!(
            until_due(&every("1h"), &stored, true, now),
            Some(Duration::from_secs(3_600))
        );
    }

    #[test]
    fn without_a_schedule_nothing_is_due() {
        let stored = StoredSecret {
            rotated_at: Some(at("2020-01-01T00:00:00Z")),
            ..StoredSecret::default()
        };
        assert_eq!(
            until_due(&sub(), &stored, false, at("2026-06-01T12:00:00Z")),
            None
        );
    }

    #[test]
    fn a_replaced_secret_counts_as_new_but_a_rotation_keeps_its_own_time() {
        let now = at("2026-06-01T12:00:00Z");
        let original = StoredSecret {
            signing_secret: Some(SigningSecret::new("whsec_old")),
            rotated_at: Some(at("2026-01-01T00:00:00Z")),
            ..StoredSecret::default()
        };
        let mut replaced = StoredSecret {
            signing_secret: Some(SigningSecret::new("whsec_new")),
            ..original.clone()
        };
        note_replaced_secret(&mut replaced, &original, now);
        assert_eq!(replaced.rotated_at, Some(now));

        let rotated_at = at("2026-06-01T11:59:00Z");
        let mut rotated = StoredSecret {
            signing_secret: Some(SigningSecret::new("whsec_new")),
            rotated_at: Some(rotated_at),
            ..original.clone()
        };
        note_replaced_secret(&mut rotated, &original, now);
        assert_eq!(rotated.rotated_at, Some(rotated_at));

        let mut unchanged = original.clone();
        note_replaced_secret(&mut unchanged, &original, now);
        assert_eq!(unchanged, original);
    }

    #[test]
    fn a_first_secret_is_not_a_replacement() {
        let now = at("2026-06-01T12:00:00Z");
        let mut first = StoredSecret {
            signing_secret: Some(SigningSecret::new("whsec_first")),
            ..StoredSecret::default()
        };
        note_replaced_secret(&mut first, &StoredSecret::default(), now);
        assert_eq!(first.rotated_at, None);
    }
}
