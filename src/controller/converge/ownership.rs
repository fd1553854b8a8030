//! The rule every take-over follows (adoption, the `service` dialect's take-over of a URL
//! holder, and a Secret naming a subscription the status never recorded): a subscription may
//! become this resource's only when no other live WebhookSubscription in the cluster owns it:
//! none whose UID its marker carries, none that records it in its status. (A marker of a
//! resource that no longer exists, e.g. one deleted with `deletionPolicy: Orphan`, owns
//! nothing.) A shared rule, not a step.

use super::decision::{Decision, Facts, Inputs, Lookup};
use crate::controller::marker::{Marking, marker_uid, marking};
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
    if marking(remote, inputs.uid) == Marking::Ours {
        return None;
    }
    match facts.claim_of(&remote.id) {
        Lookup::NotDone => Some(Decision::CheckClaim {
            id: remote.id.clone(),
            marker_uid: remote
                .description
                .as_deref()
                .and_then(marker_uid)
                .map(str::to_owned),
        }),
        Lookup::Found(owner) => Some(refuse(inputs, &remote.id, &owner)),
        Lookup::Absent => None,
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
