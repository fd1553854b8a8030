//! The create protocol: record the attempt in the Secret (write-ahead), create a subscription
//! with a derived idempotency key and our marker, store its id and secret in the Secret in one
//! write at once (the only moment the secret is ever visible). Only after an interrupted
//! attempt (a record without a stored outcome) is Ivy listed for what it may have left behind.

use tracing::info;

use super::decision::{Decision, Duplicate, Facts, Inputs, Purpose, Remote};
use crate::controller::context::Context;
use crate::controller::desired::{desired_request, rotation_tag, rotation_url};
use crate::controller::events::{self, EventReason};
use crate::controller::marker::{idempotency_key, is_marked_for, request_parts};
use crate::controller::outcome::{Interrupt, Retry, Step, crash_point, ivy};
use crate::controller::remote::{delete_remote, report_leftover_deleted};
use crate::controller::secret::{CreateAttempt, StoredSecret};
use crate::controller::status::{Outcome, Reason};
use crate::controller::target::Target;
use crate::crd::{ANNOTATION_ROTATE, WebhookSubscription};
use crate::ivy::error::ConflictKind;
use crate::ivy::{IdempotencyKey, IvyError, SubscriptionRequest};

/// Without a stored subscription (and nothing to adopt): create one, unless the resource is
/// going away.
pub(crate) fn plan(inputs: &Inputs, facts: &Facts) -> Option<Decision> {
    if facts.stored.subscription_id.is_some() {
        return None;
    }
    if inputs.deleting {
        return Some(Decision::Stop {
            outcome: Outcome::new(
                Reason::Deleting,
                "the resource is being deleted: nothing is created for it",
                None,
            ),
            retry: Retry::AwaitChange,
        });
    }
    Some(Decision::Create(match &facts.vanished {
        Some(vanished) => Purpose::Replace {
            vanished: vanished.clone(),
        },
        None => Purpose::Initial,
    }))
}

/// Whether the dialect lets the operator find and delete its leftovers.
pub(crate) fn can_sweep(inputs: &Inputs) -> bool {
    let capabilities = inputs.capabilities;
    capabilities.list && capabilities.description && capabilities.delete
}

/// After an interrupted attempt, once the current subscription is in place (so that a create
/// Ivy replays by its idempotency key is kept), look once for what the attempt left behind.
pub(crate) fn plan_sweep(inputs: &Inputs, facts: &Facts) -> Option<Decision> {
    let due = facts.interrupted && !facts.swept && facts.stored.subscription_id.is_some();
    (due && can_sweep(inputs)).then_some(Decision::SweepLeftovers)
}

/// The request and idempotency key of a create for `purpose`.
pub(crate) fn create_request(
    sub: &WebhookSubscription,
    uid: &str,
    stored: &StoredSecret,
    purpose: &Purpose,
) -> (SubscriptionRequest, IdempotencyKey) {
    let url = match purpose {
        Purpose::Rotate { value } => rotation_url(&sub.spec.url, &rotation_tag(Some(value))),
        Purpose::Initial | Purpose::Replace { .. } => sub.spec.url.clone(),
    };
    let request = desired_request(sub, uid, &url);
    let mut parts = request_parts(&request);
    match purpose {
        Purpose::Initial => {}
        Purpose::Replace { vanished } => parts.push(vanished.clone()),
        Purpose::Rotate { value } => {
            // Rotating away from this subscription: the same annotation value set again later
            // (from another subscription) must not replay this rotation.
            parts.push(value.clone());
            parts.push(stored.subscription_id.clone().unwrap_or_default());
        }
    }
    let part_refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let key = idempotency_key(purpose.tag(), uid, &part_refs);
    (request, key)
}

/// Creates a subscription and stores its id and secret in the Secret in one write.
pub(crate) async fn create(
    target: &Target,
    ctx: &Context,
    inputs: &Inputs<'_>,
    facts: &mut Facts,
    purpose: Purpose,
) -> Step<()> {
    let sub = target.sub.as_ref();
    let (request, key) = create_request(sub, &target.uid, &facts.stored, &purpose);
    // Write-ahead: no create is sent unless its record is durable (a terminating namespace or a
    // refused Secret write stops here), so an interruption is always noticed afterwards.
    if facts.stored.attempt.as_ref().map(|a| a.key.as_str()) != Some(key.as_str()) {
        facts.stored.attempt = Some(CreateAttempt {
            key: key.as_str().to_owned(),
            at: inputs.now,
        });
        target.write_secret(&facts.stored, true).await?;
        crash_point!("create-after-attempt-record");
    }
    let created = match target.ivy.create(&request, &key).await {
        Ok(created) => created,
        Err(IvyError::Conflict {
            kind: ConflictKind::DuplicateUrl,
            ..
        }) => {
            facts.duplicate = Some(Duplicate::new(request.url));
            return Ok(());
        }
        Err(error) => return Err(ivy("create the subscription")(error)),
    };
    crash_point!("create-after-ivy-create");
    let id = created.subscription.id.clone();
    let Some(secret) = created
        .signing_secret
        .or_else(|| inputs.app_secret.cloned())
    else {
        return Err(Interrupt::Stop {
            outcome: Outcome::new(
                Reason::Unsupported,
                "this Ivy dialect returns no signing secret and the operator has no --app-signing-secret-file",
                None,
            ),
            retry: Retry::AwaitChange,
        });
    };

    let stored = &mut facts.stored;
    match &purpose {
        Purpose::Rotate { value } => {
            stored.previous_subscription_id = stored.subscription_id.take();
            stored.previous_signing_secret = stored.signing_secret.take();
            stored.rotation = Some(value.clone());
            stored.rotated_at = Some(inputs.now);
        }
        Purpose::Initial | Purpose::Replace { .. } => {
            // A rotation requested before this subscription existed is answered by it.
            stored.rotation = sub.annotation(ANNOTATION_ROTATE).map(str::to_owned);
        }
    }
    stored.subscription_id = Some(id.clone());
    stored.signing_secret = Some(secret);
    stored.url = Some(sub.spec.url.clone());
    // The record stays until the sweep it calls for has run.
    if !(facts.interrupted && can_sweep(inputs)) {
        stored.attempt = None;
    }
    // One write: id and secret together, before the id is recorded anywhere else.
    target.write_secret(stored, true).await?;
    crash_point!("create-after-secret-write");
    facts.created = true;
    facts.remote = Remote::InStep;
    facts.duplicate = None;
    info!(key = %target.key, subscription = %id, purpose = purpose.tag(), "created subscription at Ivy and stored its secret");

    let (reason, note) = match &purpose {
        Purpose::Initial => (
            EventReason::Created,
            format!("created subscription {id} at Ivy"),
        ),
        Purpose::Replace { vanished } => (
            EventReason::Recreated,
            format!(
                "subscription {vanished} no longer exists at Ivy; created {id} with a new signing secret"
            ),
        ),
        Purpose::Rotate { .. } => (
            EventReason::Rotated,
            format!(
                "created subscription {id} with a new signing secret; the previous secret stays valid for {}s",
                ctx.config.rotation_grace_period.as_secs()
            ),
        ),
    };
    events::normal(ctx, sub, reason, note).await;
    Ok(())
}

/// Deletes every remote subscription marked for this resource whose secret the Secret does not
/// hold (never silently adopted: its secret is lost), and settles the attempt record.
pub(crate) async fn sweep(target: &Target, ctx: &Context, facts: &mut Facts) -> Step<()> {
    let keep = [
        facts.stored.subscription_id.as_deref(),
        facts.stored.previous_subscription_id.as_deref(),
    ];
    let remotes = target
        .ivy
        .list()
        .await
        .map_err(ivy("list subscriptions to find leftovers"))?;
    for leftover in remotes
        .iter()
        .filter(|r| is_marked_for(r, &target.uid) && !keep.contains(&Some(r.id.as_str())))
    {
        delete_remote(target.ivy.as_ref(), &target.uid, &leftover.id).await?;
        info!(key = %target.key, subscription = %leftover.id, "deleted a subscription left by an interrupted attempt");
        report_leftover_deleted(ctx, &target.sub, &leftover.id).await;
    }
    facts.stored.attempt = None;
    facts.swept = true;
    Ok(())
}
