//! The rule every take-over follows (adoption, the `service` dialect's take-over of a URL
//! holder, and a Secret naming a subscription the status never recorded): a subscription may
//! become this resource's only when it carries no marker or this resource's own, and no other
//! WebhookSubscription in the cluster records it in its status. A shared rule, not a step.

use super::decision::{Decision, Facts, Inputs, Lookup};
use crate::controller::marker::{Marking, marking};
use crate::controller::outcome::Retry;
use crate::controller::status::{Outcome, Reason};
use crate::ivy::RemoteSubscription;

/// `None` when this resource may take `remote` over; otherwise the lookup still needed, or the
/// refusal.
pub(crate) fn check_takeover(
    inputs: &Inputs,
    facts: &Facts,
    remote: &RemoteSubscription,
) -> Option<Decision> {
    match marking(remote, inputs.uid) {
        Marking::Another => Some(refuse(inputs, &remote.id, "another WebhookSubscription")),
        Marking::Ours => None,
        Marking::Unmarked => match facts.claim_of(&remote.id) {
            Lookup::NotDone => Some(Decision::CheckClaim {
                id: remote.id.clone(),
            }),
            Lookup::Found(owner) => Some(refuse(inputs, &remote.id, &owner)),
            Lookup::Absent => None,
        },
    }
}

/// `AdoptionRefused`, naming the owner only as the claim lookup described it (never another
/// namespace's names).
pub(crate) fn refuse(inputs: &Inputs, id: &str, owner: &str) -> Decision {
    Decision::Stop {
        outcome: Outcome::new(
            Reason::AdoptionRefused,
            format!(
                "subscription {id} at Ivy belongs to {owner} and is never taken over: remove the annotation or the Secret that names it, or use another URL"
            ),
            None,
        ),
        retry: Retry::After(inputs.resync_interval),
    }
}

/// `AdoptionRefused` because the operator was started with `--allow-adoption=false`.
pub(crate) fn adoption_off(inputs: &Inputs, id: &str) -> Decision {
    Decision::Stop {
        outcome: Outcome::new(
            Reason::AdoptionRefused,
            format!(
                "subscription {id} exists at Ivy, and this operator does not take over existing subscriptions (--allow-adoption=false): remove the annotation, or delete the subscription at Ivy"
            ),
            None,
        ),
        retry: Retry::After(inputs.resync_interval),
    }
}
