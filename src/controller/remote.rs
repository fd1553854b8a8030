//! Acting on remote subscriptions that may not be the current one: deleting them, and finding
//! out whether another resource claims one. Used by both converge and cleanup.

use kube::ResourceExt;
use kube::api::Api;

use crate::controller::context::Context;
use crate::controller::error::Error;
use crate::controller::events::{self, EventReason};
use crate::controller::marker::idempotency_key;
use crate::controller::outcome::{Interrupt, Step};
use crate::crd::WebhookSubscription;
use crate::ivy::{IvyApi, IvyError};

/// Deletes one remote subscription; already gone counts as done.
pub(crate) async fn delete_remote(ivy: &dyn IvyApi, uid: &str, id: &str) -> Step<()> {
    let key = idempotency_key("delete", uid, &[id]);
    match ivy.delete(id, &key).await {
        Ok(()) | Err(IvyError::NotFound { .. }) => Ok(()),
        Err(error) => Err(Interrupt::Ivy {
            action: "delete a subscription",
            error,
        }),
    }
}

/// A subscription whose owner is being looked for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Claim<'a> {
    pub id: &'a str,
    /// The UID in the subscription's marker, if it has one.
    pub marker_uid: Option<&'a str>,
}

/// Another live resource anywhere in the cluster (not only in this replica's watched scope)
/// that owns the subscription: records its id in the status, or has its marker's UID.
/// Described for a message to the user of `namespace`: by name in the same namespace, never by
/// name in another.
pub(crate) async fn claimed_by_another(
    ctx: &Context,
    uid: &str,
    namespace: &str,
    claim: Claim<'_>,
) -> Step<Option<String>> {
    let api: Api<WebhookSubscription> = Api::all(ctx.client.clone());
    let all = api
        .list(&Default::default())
        .await
        .map_err(|source| Interrupt::Kube(Error::ListResources { source }))?;
    Ok(all.items.into_iter().find_map(|other| {
        let other_uid = other.uid();
        let records = other
            .status
            .as_ref()
            .and_then(|s| s.subscription_id.as_deref())
            == Some(claim.id);
        let marked = claim.marker_uid.is_some() && other_uid.as_deref() == claim.marker_uid;
        ((records || marked) && other_uid.as_deref() != Some(uid)).then(|| {
            if other.namespace().as_deref() == Some(namespace) {
                format!("WebhookSubscription {}", other.name_any())
            } else {
                "a WebhookSubscription in another namespace".to_owned()
            }
        })
    }))
}

/// Tells the user a leftover of an interrupted attempt was deleted.
pub(crate) async fn report_leftover_deleted(ctx: &Context, sub: &WebhookSubscription, id: &str) {
    events::normal(
        ctx,
        sub,
        EventReason::LeftoverDeleted,
        format!(
            "deleted subscription {id} left at Ivy by an interrupted attempt (its secret was never stored)"
        ),
    )
    .await;
}
