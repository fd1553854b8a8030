//! Adoption: take over an existing remote subscription named by the
//! `webhooks.ivy.dev/subscription-id` annotation (or, in the `service` dialect, the one holding
//! the URL), instead of creating one. Ivy never reveals an existing subscription's secret, so an
//! adopted subscription has none until it is rotated (except the app-wide one in `service`).
//! Only what [`ownership`] allows is adopted, and it is marked as ours before anything else
//! about it changes (see `drift`).

use super::decision::{Decision, Facts, Inputs, Lookup, Remote};
use super::ownership;
use crate::controller::context::Context;
use crate::controller::events::{self, EventReason};
use crate::controller::outcome::{Interrupt, Retry, Step};
use crate::controller::status::{Outcome, Reason};
use crate::controller::target::Target;
use crate::crd::{ANNOTATION_ADOPT, ANNOTATION_ROTATE};
use crate::ivy::{IvyError, RemoteSubscription};

/// Without a stored subscription, an adoption annotation not yet answered is followed.
pub(crate) fn plan(inputs: &Inputs, facts: &Facts) -> Option<Decision> {
    if facts.stored.subscription_id.is_some() || facts.vanished.is_some() {
        return None;
    }
    let id = inputs.sub.annotation(ANNOTATION_ADOPT)?;
    if facts.stored.adopted.as_deref() == Some(id) {
        return None;
    }
    if !inputs.allow_adoption {
        return Some(ownership::adoption_off(inputs, id));
    }
    Some(match &facts.adoption {
        Lookup::NotDone => Decision::ReadForAdoption { id: id.to_owned() },
        Lookup::Absent => Decision::Stop {
            outcome: Outcome::new(
                Reason::AdoptionFailed,
                format!(
                    "Ivy has no subscription {id} to adopt: correct or remove the annotation {ANNOTATION_ADOPT}"
                ),
                None,
            ),
            retry: Retry::AwaitChange,
        },
        Lookup::Found(remote) => ownership::check_takeover(inputs, facts, remote)
            .unwrap_or_else(|| Decision::Adopt(remote.clone())),
    })
}

/// Reads the subscription to adopt.
pub(crate) async fn read(target: &Target, facts: &mut Facts, id: String) -> Step<()> {
    facts.adoption = match target.ivy.get(&id).await {
        Ok(remote) => Lookup::Found(remote),
        Err(IvyError::NotFound { .. }) => Lookup::Absent,
        Err(error) => {
            return Err(Interrupt::Ivy {
                action: "read the subscription to adopt",
                error,
            });
        }
    };
    Ok(())
}

/// Makes `remote` this resource's subscription; its drift is reverted next.
pub(crate) async fn adopt(
    target: &Target,
    ctx: &Context,
    inputs: &Inputs<'_>,
    facts: &mut Facts,
    remote: RemoteSubscription,
) {
    let sub = target.sub.as_ref();
    let id = remote.id.clone();
    let stored = &mut facts.stored;
    stored.subscription_id = Some(id.clone());
    stored.adopted = sub.annotation(ANNOTATION_ADOPT).map(str::to_owned);
    // Only an app-wide secret (service dialect) is known; Ivy never reveals a subscription's.
    stored.signing_secret = if inputs.capabilities.per_subscription_secret {
        None
    } else {
        inputs.app_secret.cloned()
    };
    stored.rotation = sub.annotation(ANNOTATION_ROTATE).map(str::to_owned);
    stored.url = Some(sub.spec.url.clone());
    facts.remote = Remote::Present(remote);
    facts.duplicate = None;
    events::normal(
        ctx,
        sub,
        EventReason::Adopted,
        format!("adopted subscription {id} at Ivy"),
    )
    .await;
}
