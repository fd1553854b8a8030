//! What Ivy should hold for a resource, and how that differs from what it holds (drift).

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::controller::marker::marked_description;
use crate::controller::secret::StoredSecret;
use crate::crd::WebhookSubscription;
use crate::ivy::{Capabilities, RemoteSubscription, SubscriptionPatch, SubscriptionRequest};

/// Query parameter that tells a rotation's new subscription apart while the old one still
/// holds the URL (Ivy refuses two subscriptions with one URL). It is removed once the old
/// subscription is deleted.
pub const ROTATION_QUERY_PARAM: &str = "ivywh-rotation";

/// The subscription Ivy should hold for `sub`. `url` is `spec.url`, or the rotation URL while a
/// rotation's old subscription still exists.
pub fn desired_request(sub: &WebhookSubscription, uid: &str, url: &str) -> SubscriptionRequest {
    SubscriptionRequest {
        url: url.to_owned(),
        events: sub
            .spec
            .events
            .iter()
            .map(|e| e.as_str().to_owned())
            .collect(),
        description: Some(marked_description(sub.spec.description.as_deref(), uid)),
        active: sub.spec.active,
    }
}

/// `url` with `ivywh-rotation=<tag>` added to its query.
pub fn rotation_url(url: &str, tag: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed
                .query_pairs_mut()
                .append_pair(ROTATION_QUERY_PARAM, tag);
            parsed.to_string()
        }
        // Validation refuses unparsable URLs before this point; keep the URL usable anyway.
        Err(_) => {
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}{ROTATION_QUERY_PARAM}={tag}")
        }
    }
}

/// The short tag a rotation's temporary URL carries (never the annotation value itself).
pub fn rotation_tag(value: Option<&str>) -> String {
    let digest = Sha256::digest(value.unwrap_or_default().as_bytes());
    hex::encode(&digest[..4])
}

/// The URL the current subscription should have: `spec.url`, or the rotation URL while the
/// rotation's old subscription still holds `spec.url`.
pub fn current_url(sub: &WebhookSubscription, stored: &StoredSecret) -> String {
    if stored.previous_subscription_id.is_some() {
        rotation_url(&sub.spec.url, &rotation_tag(stored.rotation.as_deref()))
    } else {
        sub.spec.url.clone()
    }
}

/// The fields in which `remote` differs from `desired`, as an update. Event order does not
/// matter; fields the dialect cannot hold are not compared.
pub fn drift_patch(
    desired: &SubscriptionRequest,
    remote: &RemoteSubscription,
    capabilities: Capabilities,
) -> SubscriptionPatch {
    let want_events: BTreeSet<&str> = desired.events.iter().map(String::as_str).collect();
    let have_events: BTreeSet<&str> = remote.events.iter().map(String::as_str).collect();
    SubscriptionPatch {
        url: (remote.url != desired.url).then(|| desired.url.clone()),
        events: (want_events != have_events).then(|| desired.events.clone()),
        description: if capabilities.description && remote.description != desired.description {
            desired.description.clone()
        } else {
            None
        },
        active: if capabilities.active_flag && remote.active != Some(desired.active) {
            Some(desired.active)
        } else {
            None
        },
    }
}

/// Which fields a patch changes, for Events and logs (never values).
pub fn changed_fields(patch: &SubscriptionPatch) -> String {
    let fields: Vec<&str> = [
        patch.url.as_ref().map(|_| "url"),
        patch.events.as_ref().map(|_| "events"),
        patch.description.as_ref().map(|_| "description"),
        patch.active.map(|_| "active"),
    ]
    .into_iter()
    .flatten()
    .collect();
    fields.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::test_support::{ALL_CAPABILITIES, sub};

    fn remote_matching(desired: &SubscriptionRequest) -> RemoteSubscription {
        RemoteSubscription {
            id: "sub-1".into(),
            url: desired.url.clone(),
            events: desired.events.iter().rev().cloned().collect(),
            description: desired.description.clone(),
            active: Some(desired.active),
        }
    }

    #[test]
    fn desired_request_carries_spec_and_marker() {
        let sub = sub();
        let request = desired_request(&sub, "uid-1", &sub.spec.url);
        assert_eq!(request.url, "https://shop.example.com/webhooks/ivy");
        assert_eq!(request.events, ["order_created", "refund_succeeded"]);
        assert_eq!(request.description.as_deref(), Some("Orders [ivywh:uid-1]"));
        assert!(request.active);
    }

    #[test]
    fn matching_remote_has_no_drift_whatever_the_event_order() {
        let sub = sub();
        let desired = desired_request(&sub, "uid-1", &sub.spec.url);
        let patch = drift_patch(&desired, &remote_matching(&desired), ALL_CAPABILITIES);
        assert!(patch.is_empty(), "{patch:?}");
    }

    #[test]
    fn each_changed_field_is_patched_alone() {
        let sub = sub();
        let desired = desired_request(&sub, "uid-1", &sub.spec.url);
        let mut remote = remote_matching(&desired);
        remote.url = "https://evil.example/hook".into();
        remote.active = Some(false);
        let patch = drift_patch(&desired, &remote, ALL_CAPABILITIES);
        assert_eq!(patch.url.as_deref(), Some(desired.url.as_str()));
        assert_eq!(patch.active, Some(true));
        assert!(patch.events.is_none());
        assert!(patch.description.is_none());
        assert_eq!(changed_fields(&patch), "url, active");
    }

    #[test]
    fn fields_the_dialect_lacks_are_not_drift() {
        let sub = sub();
        let desired = desired_request(&sub, "uid-1", &sub.spec.url);
        let mut remote = remote_matching(&desired);
        remote.description = None;
        remote.active = None;
        let service = Capabilities {
            description: false,
            active_flag: false,
            ..ALL_CAPABILITIES
        };
        assert!(drift_patch(&desired, &remote, service).is_empty());
    }

    #[test]
    fn rotation_url_adds_a_query_parameter() {
        assert_eq!(
            rotation_url("https://a.example/hook", "ab12"),
            "https://a.example/hook?ivywh-rotation=ab12"
        );
        assert_eq!(
            rotation_url("https://a.example/hook?x=1", "ab12"),
            "https://a.example/hook?x=1&ivywh-rotation=ab12"
        );
    }
}
