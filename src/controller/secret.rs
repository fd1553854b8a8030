//! The Secret receivers mount: its layout, who owns it, and the object the operator applies.
//!
//! The Secret is the operator's durable memory: the subscription id and its signing secret are
//! written together in one write, before the id reaches the resource's status, so a crash at any
//! point leaves either both or neither.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use sha2::{Digest, Sha256};

use crate::crd::WebhookSubscription;
use crate::ivy::SigningSecret;

/// Key holding the current signing secret (`whsec_…`).
pub const KEY_SIGNING_SECRET: &str = "signing-secret";
/// Key holding the signing secret of the subscription being replaced during a rotation.
pub const KEY_PREVIOUS_SIGNING_SECRET: &str = "previous-signing-secret";
/// Key holding Ivy's id of the current subscription.
pub const KEY_SUBSCRIPTION_ID: &str = "subscription-id";
/// Key holding the URL Ivy delivers to.
pub const KEY_URL: &str = "url";

/// Label marking Secrets this operator manages (the controller watches only these).
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "ivy-webhook-operator";
/// Label naming the WebhookSubscription a Secret belongs to.
pub const LABEL_SUBSCRIPTION: &str = "webhooks.ivy.dev/subscription";

/// Annotation: id of the subscription being replaced by a rotation (deleted after the grace period).
pub const ANNOTATION_PREVIOUS_ID: &str = "webhooks.ivy.dev/previous-subscription-id";
/// Annotation: the `rotate-secret` value the current secret answers.
pub const ANNOTATION_ROTATION: &str = "webhooks.ivy.dev/rotation";
/// Annotation: when the last rotation stored its new secret (RFC 3339).
pub const ANNOTATION_ROTATED_AT: &str = "webhooks.ivy.dev/rotated-at";
/// Annotation: the `subscription-id` annotation value that was adopted.
pub const ANNOTATION_ADOPTED: &str = "webhooks.ivy.dev/adopted-subscription-id";

/// Annotation: a create the operator is about to send (or sent) to Ivy whose outcome is not
/// settled yet: `<idempotency key> <RFC 3339 time>`, written before the create (write-ahead).
/// Found at the start of a reconcile, it means an attempt was interrupted and Ivy may hold a
/// subscription whose secret was never stored: the next successful create is followed by a
/// sweep for such leftovers, and deletion looks for them too.
pub const ANNOTATION_CREATE_ATTEMPT: &str = "webhooks.ivy.dev/create-attempt";

/// A create recorded before it was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateAttempt {
    /// The idempotency key the create carries.
    pub key: String,
    /// When the attempt was recorded.
    pub at: Timestamp,
}

impl CreateAttempt {
    fn parse(text: &str) -> Option<Self> {
        let (key, at) = text.split_once(' ')?;
        Some(Self {
            key: key.to_owned(),
            at: at.parse().ok()?,
        })
    }
}

impl std::fmt::Display for CreateAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.key, self.at)
    }
}

/// What the operator keeps in the Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredSecret {
    pub subscription_id: Option<String>,
    pub signing_secret: Option<SigningSecret>,
    pub previous_signing_secret: Option<SigningSecret>,
    pub previous_subscription_id: Option<String>,
    pub rotation: Option<String>,
    pub rotated_at: Option<Timestamp>,
    pub adopted: Option<String>,
    pub url: Option<String>,
    /// A create whose outcome is not settled (see [`ANNOTATION_CREATE_ATTEMPT`]).
    pub attempt: Option<CreateAttempt>,
    /// When the Secret was created (observed, never written): the age of a secret that was
    /// never rotated.
    pub secret_created_at: Option<Timestamp>,
}

/// The Secret of a resource, as found in the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
// Built once per reconcile and consumed at once: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum SecretOwnership {
    /// No Secret of that name exists.
    Absent,
    /// The operator manages it for this resource.
    Ours(StoredSecret),
    /// Someone else's Secret (or another resource's): never touched.
    Foreign { reason: String },
}

/// Decides whose Secret this is and reads what the operator stored in it.
pub fn classify(secret: Option<&Secret>, sub: &WebhookSubscription) -> SecretOwnership {
    let Some(secret) = secret else {
        return SecretOwnership::Absent;
    };
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    let name = sub.metadata.name.as_deref().unwrap_or_default();
    if labels.get(LABEL_MANAGED_BY).map(String::as_str) != Some(MANAGED_BY) {
        return SecretOwnership::Foreign {
            reason: format!("it is not labelled {LABEL_MANAGED_BY}={MANAGED_BY}"),
        };
    }
    if labels.get(LABEL_SUBSCRIPTION).map(String::as_str) != Some(name) {
        return SecretOwnership::Foreign {
            reason: "it belongs to another WebhookSubscription".into(),
        };
    }
    let uid = sub.metadata.uid.as_deref().unwrap_or_default();
    let controller = secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    if let Some(owner) = controller
        && owner.uid != uid
    {
        // A Secret left by an earlier resource of the same name that is still being collected.
        return SecretOwnership::Foreign {
            reason: format!("it is still owned by {} {}", owner.kind, owner.uid),
        };
    }
    // No controller owner: a Secret kept by `deletionPolicy: Orphan` for a resource of this
    // name, which this resource takes back together with the subscription it names.
    SecretOwnership::Ours(read_stored(secret))
}

fn read_stored(secret: &Secret) -> StoredSecret {
    let data = secret.data.clone().unwrap_or_default();
    let text = |key: &str| {
        data.get(key)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .filter(|v| !v.is_empty())
    };
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    let annotation = |key: &str| annotations.get(key).cloned().filter(|v| !v.is_empty());
    StoredSecret {
        subscription_id: text(KEY_SUBSCRIPTION_ID),
        signing_secret: text(KEY_SIGNING_SECRET).map(SigningSecret::new),
        previous_signing_secret: text(KEY_PREVIOUS_SIGNING_SECRET).map(SigningSecret::new),
        previous_subscription_id: annotation(ANNOTATION_PREVIOUS_ID),
        rotation: annotation(ANNOTATION_ROTATION),
        rotated_at: annotation(ANNOTATION_ROTATED_AT).and_then(|t| t.parse().ok()),
        adopted: annotation(ANNOTATION_ADOPTED),
        attempt: annotation(ANNOTATION_CREATE_ATTEMPT).and_then(|a| CreateAttempt::parse(&a)),
        url: text(KEY_URL),
        secret_created_at: secret.metadata.creation_timestamp.as_ref().map(|t| t.0),
    }
}

/// Annotation: a digest of the `spec.secretTemplate` the Secret was written with, so that a
/// changed template (or one removed) is written again even when nothing else changed.
pub const ANNOTATION_TEMPLATE: &str = "webhooks.ivy.dev/template";

/// The digest [`ANNOTATION_TEMPLATE`] holds for `sub`'s template; `None` without a template.
pub fn template_digest(sub: &WebhookSubscription) -> Option<String> {
    let template = sub.spec.secret_template.as_ref()?;
    let mut hasher = Sha256::new();
    for (kind, map) in [("l", &template.labels), ("a", &template.annotations)] {
        for (key, value) in map {
            for part in [kind, key.as_str(), value.as_str()] {
                hasher.update(part.as_bytes());
                hasher.update([0]);
            }
        }
    }
    Some(hex::encode(&hasher.finalize()[..8]))
}

/// Whether `secret` was written with another template than `sub` has now.
pub fn template_outdated(secret: &Secret, sub: &WebhookSubscription) -> bool {
    let written = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_TEMPLATE));
    written.cloned() != template_digest(sub)
}

/// Prefix of the annotations the operator keeps its memory in: a `spec.secretTemplate`
/// annotation under it is never written, so a template cannot pose as the operator's record.
pub const OPERATOR_ANNOTATION_PREFIX: &str = "webhooks.ivy.dev/";

/// The complete Secret the operator applies for `stored`, with `spec.secretTemplate`'s labels
/// and annotations under the operator's own (which win). With `owned == false` (orphaning) the
/// owner reference is left out so garbage collection keeps the Secret.
pub fn desired_secret(sub: &WebhookSubscription, stored: &StoredSecret, owned: bool) -> Secret {
    let mut data = BTreeMap::new();
    let mut put = |key: &str, value: Option<&str>| {
        if let Some(value) = value {
            data.insert(key.to_owned(), ByteString(value.as_bytes().to_vec()));
        }
    };
    put(KEY_SUBSCRIPTION_ID, stored.subscription_id.as_deref());
    put(
        KEY_SIGNING_SECRET,
        stored.signing_secret.as_ref().map(SigningSecret::expose),
    );
    put(
        KEY_PREVIOUS_SIGNING_SECRET,
        stored
            .previous_signing_secret
            .as_ref()
            .map(SigningSecret::expose),
    );
    put(KEY_URL, stored.url.as_deref());

    let template = sub.spec.secret_template.clone().unwrap_or_default();
    let mut annotations: BTreeMap<String, String> = template
        .annotations
        .into_iter()
        .filter(|(key, _)| !key.starts_with(OPERATOR_ANNOTATION_PREFIX))
        .collect();
    let mut note = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            annotations.insert(key.to_owned(), value);
        }
    };
    note(
        ANNOTATION_PREVIOUS_ID,
        stored.previous_subscription_id.clone(),
    );
    note(ANNOTATION_ROTATION, stored.rotation.clone());
    note(
        ANNOTATION_ROTATED_AT,
        stored.rotated_at.map(|t| t.to_string()),
    );
    note(ANNOTATION_ADOPTED, stored.adopted.clone());
    note(
        ANNOTATION_CREATE_ATTEMPT,
        stored.attempt.as_ref().map(ToString::to_string),
    );
    note(ANNOTATION_TEMPLATE, template_digest(sub));

    let name = sub.metadata.name.clone().unwrap_or_default();
    let mut labels = template.labels;
    labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned());
    labels.insert(LABEL_SUBSCRIPTION.to_owned(), name);
    let owner_references = owned
        .then(|| owner_reference(sub))
        .flatten()
        .map(|r| vec![r]);
    Secret {
        metadata: ObjectMeta {
            name: Some(sub.secret_name()),
            namespace: sub.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references,
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

fn owner_reference(sub: &WebhookSubscription) -> Option<OwnerReference> {
    let mut reference = sub.controller_owner_ref(&())?;
    // blockOwnerDeletion would need `update` on the finalizers subresource; the finalizer
    // already orders deletion, so it is not worth the extra permission.
    reference.block_owner_deletion = None;
    Some(reference)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::test_support::{secret_of, sub};
    use crate::crd::SecretTemplate;

    fn stored() -> StoredSecret {
        StoredSecret {
            subscription_id: Some("sub-1".into()),
            signing_secret: Some(SigningSecret::new("whsec_new")),
            url: Some("https://shop.example.com/hook".into()),
            rotation: Some("r1".into()),
            ..StoredSecret::default()
        }
    }

    #[test]
    fn desired_secret_holds_id_secret_and_url_with_labels_and_owner() {
        let sub = sub();
        let secret = desired_secret(&sub, &stored(), true);
        let data = secret.data.clone().unwrap();
        assert_eq!(data[KEY_SIGNING_SECRET].0, b"whsec_new");
        assert_eq!(data[KEY_SUBSCRIPTION_ID].0, b"sub-1");
        assert_eq!(data[KEY_URL].0, b"https://shop.example.com/hook");
        assert!(!data.contains_key(KEY_PREVIOUS_SIGNING_SECRET));
        assert_eq!(secret.metadata.name.as_deref(), Some("orders-ivy-webhook"));
        let labels = secret.metadata.labels.clone().unwrap();
        assert_eq!(labels[LABEL_MANAGED_BY], MANAGED_BY);
        assert_eq!(labels[LABEL_SUBSCRIPTION], "orders");
        let owner = &secret.metadata.owner_references.clone().unwrap()[0];
        assert_eq!(owner.uid, "uid-1");
        assert_eq!(owner.controller, Some(true));
    }

    #[test]
    fn rotation_keeps_the_previous_secret_beside_the_new_one() {
        let mut rotating = stored();
        rotating.previous_signing_secret = Some(SigningSecret::new("whsec_old"));
        rotating.previous_subscription_id = Some("sub-0".into());
        let secret = desired_secret(&sub(), &rotating, true);
        assert_eq!(
            secret.data.clone().unwrap()[KEY_PREVIOUS_SIGNING_SECRET].0,
            b"whsec_old"
        );
        assert_eq!(
            secret.metadata.annotations.unwrap()[ANNOTATION_PREVIOUS_ID],
            "sub-0"
        );
    }

    fn with_template(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> WebhookSubscription {
        let pairs = |list: &[(&str, &str)]| {
            list.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let mut sub = sub();
        sub.spec.secret_template = Some(SecretTemplate {
            labels: pairs(labels),
            annotations: pairs(annotations),
        });
        sub
    }

    #[test]
    fn a_changed_or_removed_template_marks_the_secret_for_rewriting() {
        let first = with_template(&[("team", "shop")], &[]);
        let written = desired_secret(&first, &stored(), true);
        assert!(!template_outdated(&written, &first));
        let changed = with_template(&[("team", "payments")], &[]);
        assert!(template_outdated(&written, &changed));
        assert!(template_outdated(&written, &sub()), "template removed");
        let plain = desired_secret(&sub(), &stored(), true);
        assert!(
            !template_outdated(&plain, &sub()),
            "no template, nothing to do"
        );
    }

    #[test]
    fn template_labels_and_annotations_are_added_to_the_secret() {
        let sub = with_template(
            &[("team", "shop")],
            &[("reloader.stakater.com/match", "true")],
        );
        let secret = desired_secret(&sub, &stored(), true);
        let labels = secret.metadata.labels.unwrap();
        assert_eq!(labels["team"], "shop");
        assert_eq!(labels[LABEL_MANAGED_BY], MANAGED_BY);
        let annotations = secret.metadata.annotations.unwrap();
        assert_eq!(annotations["reloader.stakater.com/match"], "true");
        assert_eq!(annotations[ANNOTATION_ROTATION], "r1");
    }

    #[test]
    fn the_operators_labels_win_over_the_template() {
        let sub = with_template(
            &[(LABEL_MANAGED_BY, "helm"), (LABEL_SUBSCRIPTION, "payments")],
            &[],
        );
        let secret = desired_secret(&sub, &stored(), true);
        let labels = secret.metadata.labels.clone().unwrap();
        assert_eq!(labels[LABEL_MANAGED_BY], MANAGED_BY);
        assert_eq!(labels[LABEL_SUBSCRIPTION], "orders");
        assert!(matches!(
            classify(Some(&secret), &sub),
            SecretOwnership::Ours(_)
        ));
    }

    #[test]
    fn template_annotations_in_the_operators_prefix_are_never_written() {
        // Read back as the operator's record, such an annotation would answer a rotation
        // request or name a subscription to delete.
        let sub = with_template(
            &[],
            &[
                (ANNOTATION_ROTATION, "forged"),
                (ANNOTATION_PREVIOUS_ID, "someone-elses"),
                ("example.com/kept", "yes"),
            ],
        );
        let mut plain = stored();
        plain.rotation = None;
        let secret = desired_secret(&sub, &plain, true);
        let annotations = secret.metadata.annotations.clone().unwrap();
        assert!(
            !annotations.contains_key(ANNOTATION_ROTATION),
            "{annotations:?}"
        );
        assert!(
            !annotations.contains_key(ANNOTATION_PREVIOUS_ID),
            "{annotations:?}"
        );
        assert_eq!(annotations["example.com/kept"], "yes");
        assert_eq!(classify(Some(&secret), &sub), SecretOwnership::Ours(plain));
    }

    #[test]
    fn the_secrets_creation_time_is_read_but_never_written() {
        let mut secret = desired_secret(&sub(), &stored(), true);
        let created: Timestamp = "2026-05-01T08:00:00Z".parse().unwrap();
        secret.metadata.creation_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(created),
        );
        let SecretOwnership::Ours(read) = classify(Some(&secret), &sub()) else {
            panic!("not ours");
        };
        assert_eq!(read.secret_created_at, Some(created));
        assert!(
            desired_secret(&sub(), &read, true)
                .metadata
                .creation_timestamp
                .is_none()
        );
    }

    #[test]
    fn orphaned_secret_has_no_owner() {
        let secret = desired_secret(&sub(), &stored(), false);
        assert!(secret.metadata.owner_references.is_none());
    }

    #[test]
    fn stored_values_read_back_unchanged() {
        let mut original = stored();
        original.rotated_at = Some("2026-11-22T10:00:00Z".parse().unwrap());
        original.previous_subscription_id = Some("sub-0".into());
        original.attempt = Some(CreateAttempt {
            key: "ivywh-create-0123abcd".into(),
            at: "2026-11-22T10:00:01Z".parse().unwrap(),
        });
        let secret = desired_secret(&sub(), &original, true);
        assert_eq!(
            classify(Some(&secret), &sub()),
            SecretOwnership::Ours(original)
        );
    }

    #[test]
    fn unlabelled_secret_is_foreign() {
        let secret = secret_of("orders-ivy-webhook", BTreeMap::new(), None);
        assert!(matches!(
            classify(Some(&secret), &sub()),
            SecretOwnership::Foreign { .. }
        ));
    }

    #[test]
    fn secret_of_another_resource_is_foreign() {
        let labels = BTreeMap::from([
            (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
            (LABEL_SUBSCRIPTION.to_owned(), "payments".to_owned()),
        ]);
        let secret = secret_of("orders-ivy-webhook", labels, None);
        assert!(matches!(
            classify(Some(&secret), &sub()),
            SecretOwnership::Foreign { .. }
        ));
    }

    #[test]
    fn secret_still_owned_by_a_deleted_namesake_is_foreign() {
        let labels = BTreeMap::from([
            (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
            (LABEL_SUBSCRIPTION.to_owned(), "orders".to_owned()),
        ]);
        let secret = secret_of("orders-ivy-webhook", labels, Some("old-uid"));
        assert!(matches!(
            classify(Some(&secret), &sub()),
            SecretOwnership::Foreign { .. }
        ));
    }

    #[test]
    fn missing_secret_is_absent() {
        assert_eq!(classify(None, &sub()), SecretOwnership::Absent);
    }
}
