//! The apply path, as a short list of steps: validate -> read the Secret -> converge with Ivy
//! -> report the outcome in the status.

use std::sync::Arc;

use kube::runtime::controller::Action;

use crate::accounts::AccountError;
use crate::controller::context::Context;
use crate::controller::converge::converge;
use crate::controller::error::{Error, Result};
use crate::controller::events::{self, EventReason};
use crate::controller::outcome::{Interrupt, Retry, ivy_failure, retry_soon, warrants_event};
use crate::controller::secret::{SecretOwnership, StoredSecret, classify, template_outdated};
use crate::controller::status::{Outcome, Reason};
use crate::controller::target::{Target, is_controlled_by};
use crate::controller::validate::{SpecError, validate};
use crate::crd::WebhookSubscription;
use crate::ivy::Capabilities;
use crate::ivy::error_chain;

/// Reconciles a resource that is not being deleted.
pub async fn apply(sub: Arc<WebhookSubscription>, ctx: Arc<Context>) -> Result<Action> {
    let mut target = Target::new(sub, &ctx)?;
    if let Err(problem) = target.bind_account(&ctx).await {
        return account_unusable(&target, &ctx, problem).await;
    }
    let sub = target.sub.as_ref();

    if let Some(outcome) = preflight(sub, target.ivy.capabilities()) {
        return finish(&target, &ctx, outcome, Action::await_change()).await;
    }

    let existing = target.read_secret().await?;
    let stored = match classify(existing.as_ref(), sub) {
        SecretOwnership::Foreign { reason } => {
            let message = format!(
                "Secret {} exists and is not managed by this WebhookSubscription ({reason}); it is never overwritten: delete or rename that Secret, or recreate this resource with another spec.secretName",
                target.secret_name
            );
            events::warning(&ctx, sub, EventReason::SecretConflict, message.clone()).await;
            let outcome = Outcome::new(Reason::SecretConflict, message, None);
            let retry = Action::requeue(ctx.config.recheck_interval);
            return finish(&target, &ctx, outcome, retry).await;
        }
        SecretOwnership::Absent => StoredSecret::default(),
        SecretOwnership::Ours(stored) => stored,
    };
    let needs_owner = existing
        .as_ref()
        .is_some_and(|s| !is_controlled_by(s, &target.uid));
    let template_outdated = existing.as_ref().is_some_and(|s| template_outdated(s, sub));

    let backoff = |floor| ctx.backoff.next_delay(&target.key, floor);
    let (outcome, action) =
        match converge(&target, &ctx, stored, needs_owner, template_outdated).await {
            Ok((outcome, next_check)) => {
                ctx.backoff.reset(&target.key);
                (outcome, Action::requeue(next_check))
            }
            Err(Interrupt::Kube(error)) => return Err(error),
            Err(Interrupt::Stop { outcome, retry }) => {
                ctx.backoff.reset(&target.key);
                (outcome, retry.action(backoff))
            }
            Err(Interrupt::RetrySoon) => {
                let (outcome, retry) = retry_soon();
                (outcome, retry.action(backoff))
            }
            Err(Interrupt::Ivy { action, error }) => {
                ctx.verified.forget(&target.key);
                let (outcome, retry) = ivy_failure(&ctx.config, action, &error, backoff);
                if warrants_event(&error) {
                    let reason = EventReason::Failed(outcome.reason);
                    events::warning(&ctx, sub, reason, outcome.message.clone()).await;
                }
                (outcome, retry.action(backoff))
            }
        };
    finish(&target, &ctx, outcome, action).await
}

/// Why the resource must not reach Ivy at all as it stands (an invalid spec, a verb the dialect
/// lacks, the paused annotation); each waits for the resource to change.
fn preflight(sub: &WebhookSubscription, capabilities: Capabilities) -> Option<Outcome> {
    if let Err(problem) = validate(sub, capabilities) {
        let reason = match problem {
            SpecError::Invalid(_) => Reason::InvalidSpec,
            SpecError::Unsupported(_) => Reason::Unsupported,
        };
        return Some(Outcome::new(reason, problem.to_string(), None));
    }
    sub.is_paused().then(|| {
        Outcome::new(
            Reason::Paused,
            "paused by the webhooks.ivy.dev/paused annotation: no calls to Ivy until it is removed",
            None,
        )
    })
}

/// The account the resource names cannot be used (yet): a condition, looked at again with
/// backoff (an account becomes Ready by itself once its Secret is right); an apiserver failure
/// is an error.
async fn account_unusable(target: &Target, ctx: &Context, problem: AccountError) -> Result<Action> {
    if problem.is_transient() {
        return Err(Error::Account { source: problem });
    }
    let reason = match problem {
        AccountError::Forbidden { .. } => Reason::AccountForbidden,
        _ => Reason::AccountNotReady,
    };
    let outcome = Outcome::new(reason, error_chain(&problem), None);
    let retry = Retry::Backoff { floor: None };
    let action = retry.action(|floor| ctx.backoff.next_delay(&target.key, floor));
    finish(target, ctx, outcome, action).await
}

async fn finish(
    target: &Target,
    ctx: &Context,
    outcome: Outcome,
    action: Action,
) -> Result<Action> {
    target.write_status(ctx, &outcome).await?;
    Ok(action)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::test_support::{ALL_CAPABILITIES, sub};
    use crate::crd::ANNOTATION_PAUSED;

    fn reason(sub: &WebhookSubscription, capabilities: Capabilities) -> Option<Reason> {
        preflight(sub, capabilities).map(|o| o.reason)
    }

    #[test]
    fn a_valid_resource_goes_on_to_ivy() {
        assert_eq!(reason(&sub(), ALL_CAPABILITIES), None);
    }

    #[test]
    fn paused_resources_stop_before_ivy() {
        let mut paused = sub();
        paused.metadata.annotations =
            Some([(ANNOTATION_PAUSED.to_owned(), "true".to_owned())].into());
        assert_eq!(reason(&paused, ALL_CAPABILITIES), Some(Reason::Paused));
    }

    #[test]
    fn invalid_specs_stop_before_ivy() {
        let mut invalid = sub();
        invalid.spec.events.clear();
        assert_eq!(
            reason(&invalid, ALL_CAPABILITIES),
            Some(Reason::InvalidSpec)
        );
    }

    #[test]
    fn specs_the_dialect_cannot_hold_stop_before_ivy() {
        let mut inactive = sub();
        inactive.spec.active = false;
        let no_active_flag = Capabilities {
            active_flag: false,
            ..ALL_CAPABILITIES
        };
        assert_eq!(reason(&inactive, no_active_flag), Some(Reason::Unsupported));
    }
}
