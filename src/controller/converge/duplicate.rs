//! A create Ivy refused because the URL is taken: find the holder and decide whose it is.
//! Ours, left by an interrupted attempt whose secret is lost: delete it and try again. In the
//! `service` dialect (no marker, the secret belongs to the app): take it over where the
//! ownership rule allows. Anyone else's: report `DuplicateUrl`.

use super::decision::{Decision, Facts, Inputs, Lookup};
use super::ownership;
use crate::controller::context::Context;
use crate::controller::marker::is_marked_for;
use crate::controller::outcome::{Retry, Step, ivy};
use crate::controller::remote::{delete_remote, report_leftover_deleted};
use crate::controller::status::{Outcome, Reason};
use crate::controller::target::Target;
use crate::crd::ANNOTATION_ADOPT;

pub(crate) fn plan(inputs: &Inputs, facts: &Facts) -> Option<Decision> {
    let duplicate = facts.duplicate.as_ref()?;
    let url = &duplicate.url;
    let retry = Retry::After(inputs.resync_interval);
    let holder = match &duplicate.holder {
        Lookup::NotDone if inputs.capabilities.list => {
            return Some(Decision::FindUrlHolder { url: url.clone() });
        }
        Lookup::NotDone | Lookup::Absent => {
            return Some(Decision::Stop {
                outcome: Outcome::new(
                    Reason::DuplicateUrl,
                    format!(
                        "Ivy already has a subscription for {url}; delete it at Ivy or adopt it with the annotation {ANNOTATION_ADOPT}"
                    ),
                    None,
                ),
                retry,
            });
        }
        Lookup::Found(holder) => holder,
    };
    if !inputs.capabilities.per_subscription_secret {
        // The secret belongs to the app, so nothing is lost by taking the holder over, as long
        // as no other resource manages it (two owners would delete it under each other).
        if !inputs.allow_adoption {
            return Some(ownership::adoption_off(inputs, &holder.id));
        }
        return Some(
            ownership::check_takeover(inputs, facts, holder)
                .unwrap_or_else(|| Decision::Adopt(holder.clone())),
        );
    }
    if is_marked_for(holder, inputs.uid) {
        // Left by an interrupted create of ours; its secret is gone, so replace it.
        return Some(if duplicate.cleared {
            Decision::RetrySoon
        } else {
            Decision::DeleteUrlHolder {
                id: holder.id.clone(),
            }
        });
    }
    Some(Decision::Stop {
        outcome: Outcome::new(
            Reason::DuplicateUrl,
            format!(
                "subscription {} at Ivy already uses {url} and was not created by this resource: delete it at Ivy, or adopt it with the annotation {ANNOTATION_ADOPT}={}",
                holder.id, holder.id
            ),
            None,
        ),
        retry,
    })
}

/// Lists Ivy's subscriptions and records the one holding the URL.
pub(crate) async fn find_holder(target: &Target, facts: &mut Facts, url: String) -> Step<()> {
    let remotes = target.ivy.list().await.map_err(ivy("list subscriptions"))?;
    if let Some(duplicate) = facts.duplicate.as_mut() {
        duplicate.holder = match remotes.into_iter().find(|r| r.url == url) {
            Some(holder) => Lookup::Found(holder),
            None => Lookup::Absent,
        };
    }
    Ok(())
}

/// Deletes a URL holder an interrupted attempt of ours left.
pub(crate) async fn delete_holder(
    target: &Target,
    ctx: &Context,
    facts: &mut Facts,
    id: String,
) -> Step<()> {
    delete_remote(target.ivy.as_ref(), &target.uid, &id).await?;
    report_leftover_deleted(ctx, &target.sub, &id).await;
    if let Some(duplicate) = facts.duplicate.as_mut() {
        duplicate.cleared = true;
    }
    Ok(())
}
