//! Converge: bring Ivy and the Secret in step with the spec, as a loop of decisions. Each
//! step's planner looks at what is known and names the one next thing to do; the
//! driver here does it, records what it learnt, and plans again, until the answer is
//! [`Decision::Done`] or a stop. Steps never call each other.
//!
//! The Secret is written once at the end, except right after an Ivy create, whose one-time
//! secret is stored at once (see `docs/design.md`, "The create protocol").

mod adopt;
mod create;
mod decision;
mod drift;
mod duplicate;
mod ownership;
mod rotation;

#[cfg(test)]
mod tests;

use std::time::Duration;

use tracing::debug;

use self::decision::{Decision, Facts, Inputs};
use crate::controller::context::Context;
use crate::controller::error::Error;
use crate::controller::outcome::{Interrupt, Step, crash_point};
use crate::controller::remote::{Claim, claimed_by_another};
use crate::controller::restart;
use crate::controller::secret::StoredSecret;
use crate::controller::status::{Outcome, Reason};
use crate::controller::target::Target;
use crate::crd::ANNOTATION_ROTATE;

/// More decisions than any path needs (the longest: finish a rotation, read, find a vanished
/// subscription, create, sweep, revert, rotate, follow the app secret): a planner that keeps
/// asking for more is a bug, reported instead of looping.
const MAX_DECISIONS: usize = 16;

/// Brings Ivy and the Secret in step with the spec. Returns the outcome and when to check again.
pub(crate) async fn converge(
    target: &Target,
    ctx: &Context,
    stored: StoredSecret,
    needs_owner: bool,
    template_outdated: bool,
) -> Step<(Outcome, Duration)> {
    let original = stored.clone();
    let now = ctx.now();
    let capabilities = target.ivy.capabilities();
    let inputs = Inputs {
        sub: target.sub.as_ref(),
        uid: &target.uid,
        capabilities,
        app_secret: target.app_signing_secret.as_ref(),
        now,
        rotation_grace_period: ctx.config.rotation_grace_period,
        resync_interval: ctx.config.resync_interval,
        verified: ctx
            .verified
            .fresh_fingerprint(&target.key, ctx.config.resync_interval, now),
        needs_owner,
        template_outdated,
        deleting: target.sub.metadata.deletion_timestamp.is_some(),
        allow_adoption: ctx.config.allow_adoption,
        recorded_id: target
            .sub
            .status
            .as_ref()
            .and_then(|s| s.subscription_id.as_deref()),
    };
    let mut facts = Facts::new(stored);
    for _ in 0..MAX_DECISIONS {
        let decision = plan(&inputs, &facts);
        debug!(key = %target.key, decision = decision_name(&decision), "next step");
        match decision {
            Decision::Done => return finish(target, ctx, &inputs, facts, &original).await,
            Decision::Stop { outcome, retry } => return Err(Interrupt::Stop { outcome, retry }),
            Decision::RetrySoon => return Err(Interrupt::RetrySoon),
            Decision::FinishRotation { previous } => {
                rotation::finish(target, ctx, &mut facts, previous).await?;
            }
            Decision::SweepLeftovers => create::sweep(target, ctx, &mut facts).await?,
            Decision::Create(purpose) => {
                create::create(target, ctx, &inputs, &mut facts, purpose).await?;
            }
            Decision::ReadForAdoption { id } => adopt::read(target, &mut facts, id).await?,
            Decision::Adopt(remote) => adopt::adopt(target, ctx, &inputs, &mut facts, remote).await,
            Decision::FindUrlHolder { url } => {
                duplicate::find_holder(target, &mut facts, url).await?
            }
            Decision::CheckClaim { id, marker_uid } => {
                let claim = Claim {
                    id: &id,
                    marker_uid: marker_uid.as_deref(),
                };
                let owner = claimed_by_another(ctx, &target.uid, &target.namespace, claim).await?;
                facts.claims.push((id, owner));
            }
            Decision::MarkOwned { id, description } => {
                drift::mark_owned(target, &mut facts, id, description).await?;
            }
            Decision::DeleteUrlHolder { id } => {
                duplicate::delete_holder(target, ctx, &mut facts, id).await?;
            }
            Decision::Read { id } => drift::read(target, ctx, &mut facts, id).await?,
            Decision::Revert { id, patch } => {
                drift::revert(target, ctx, &mut facts, id, patch).await?;
            }
            Decision::RotationUnsupported { value } => {
                rotation::refuse(target, ctx, &mut facts, value).await;
            }
            Decision::FollowAppSecret(app) => rotation::follow_app_secret(&mut facts, app, now),
        }
    }
    Err(Interrupt::Kube(Error::Undecided {
        key: target.key.clone(),
    }))
}

/// The next decision: each step's planner in order, the first that has something to do wins.
/// Pure: the same inputs and facts always give the same decision.
fn plan(inputs: &Inputs, facts: &Facts) -> Decision {
    rotation::plan_finish(inputs, facts)
        .or_else(|| duplicate::plan(inputs, facts))
        .or_else(|| adopt::plan(inputs, facts))
        .or_else(|| create::plan(inputs, facts))
        .or_else(|| drift::plan(inputs, facts))
        .or_else(|| rotation::plan_start(inputs, facts))
        .or_else(|| rotation::plan_app_secret(inputs, facts))
        .or_else(|| create::plan_sweep(inputs, facts))
        .unwrap_or(Decision::Done)
}

/// In step: write the Secret if anything changed, restart the workloads that must see a new
/// secret, remember the check, report (and when to look again: the resync, the end of a grace
/// period or the next scheduled rotation, whichever comes first).
async fn finish(
    target: &Target,
    ctx: &Context,
    inputs: &Inputs<'_>,
    mut facts: Facts,
    original: &StoredSecret,
) -> Step<(Outcome, Duration)> {
    let sub = inputs.sub;
    facts.stored.url = Some(sub.spec.url.clone());
    rotation::note_replaced_secret(&mut facts.stored, original, inputs.now);
    let last_rotation = rotation::last_rotation(&facts.stored, facts.created, inputs.now);
    let until_rotation = rotation::until_due(sub, &facts.stored, facts.created, inputs.now);
    let stored = facts.stored;
    let unchanged = match target.persisted() {
        Some(last) => last == stored,
        None => stored == *original && !inputs.needs_owner && !inputs.template_outdated,
    };
    if !unchanged {
        target.write_secret(&stored, true).await?;
    }
    if restart::restart_due(sub, original, &stored) {
        restart::restart_workloads(ctx, sub, &stored).await;
    }

    crash_point!("converge-before-status");
    ctx.verified
        .record(&target.key, drift::fingerprint(sub, &stored), inputs.now);
    let grace_left = rotation::grace_left(&stored, inputs.rotation_grace_period, inputs.now)
        .filter(|_| {
            stored.previous_subscription_id.is_some() || stored.previous_signing_secret.is_some()
        });
    let next_check = [grace_left, until_rotation]
        .into_iter()
        .flatten()
        .fold(ctx.config.resync_interval, Duration::min);
    ctx.metrics.set_last_rotation(&target.key, last_rotation);
    let id = stored.subscription_id.clone();
    let outcome = if stored.signing_secret.is_none() {
        Outcome::new(
            Reason::SecretUnknown,
            format!(
                "adopted subscription {}, but Ivy reveals a signing secret only when a subscription is created: set the annotation {ANNOTATION_ROTATE} to replace it with one whose secret the operator stores",
                id.as_deref().unwrap_or_default()
            ),
            id,
        )
    } else {
        let mut message = format!(
            "subscription {} matches the spec; its signing secret is in Secret {}",
            id.as_deref().unwrap_or_default(),
            target.secret_name
        );
        if sub.spec.rotation.is_some() && !inputs.capabilities.per_subscription_secret {
            message.push_str("; spec.rotation is ignored: in this Ivy dialect the signing secret is the merchant app's, rotated in Ivy's dashboard");
        }
        Outcome::new(Reason::Subscribed, message, id)
    };
    Ok((outcome.with_last_rotation(last_rotation), next_check))
}

/// A decision's name for logs (never its contents: they may hold a secret).
fn decision_name(decision: &Decision) -> &'static str {
    match decision {
        Decision::FinishRotation { .. } => "finish-rotation",
        Decision::SweepLeftovers => "sweep-leftovers",
        Decision::Create(purpose) => purpose.tag(),
        Decision::ReadForAdoption { .. } => "read-for-adoption",
        Decision::Adopt(_) => "adopt",
        Decision::FindUrlHolder { .. } => "find-url-holder",
        Decision::CheckClaim { .. } => "check-claim",
        Decision::MarkOwned { .. } => "mark-owned",
        Decision::DeleteUrlHolder { .. } => "delete-url-holder",
        Decision::Read { .. } => "read",
        Decision::Revert { .. } => "revert",
        Decision::RotationUnsupported { .. } => "rotation-unsupported",
        Decision::FollowAppSecret(_) => "follow-app-secret",
        Decision::Stop { .. } => "stop",
        Decision::RetrySoon => "retry-soon",
        Decision::Done => "done",
    }
}
