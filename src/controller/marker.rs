//! How the operator recognises its own remote subscriptions and keys its retries.
//!
//! Every remote subscription it creates carries `[ivywh:<resource uid>]` at the end of its
//! description, so a list can find what an interrupted attempt left behind even where Ivy ignores
//! `Idempotency-Key`. Idempotency keys are derived from the resource UID, the purpose of the call
//! and its body, so a retry after a crash replays the first call and a changed body never reuses
//! a key.

use sha2::{Digest, Sha256};

use crate::ivy::{IdempotencyKey, RemoteSubscription, SubscriptionRequest};

const MARKER_PREFIX: &str = "[ivywh:";

/// `[ivywh:<uid>]`.
pub fn marker(uid: &str) -> String {
    format!("{MARKER_PREFIX}{uid}]")
}

/// The description sent to Ivy: the user's text followed by the marker.
pub fn marked_description(user_description: Option<&str>, uid: &str) -> String {
    match user_description.map(str::trim).filter(|d| !d.is_empty()) {
        Some(text) => format!("{text} {}", marker(uid)),
        None => marker(uid),
    }
}

/// The UID in a description's trailing marker, if it has one.
pub fn marker_uid(description: &str) -> Option<&str> {
    let trimmed = description.trim_end();
    let start = trimmed.rfind(MARKER_PREFIX)?;
    let rest = trimmed.get(start + MARKER_PREFIX.len()..)?;
    rest.strip_suffix(']').filter(|uid| !uid.is_empty())
}

/// Whether a remote subscription was created for the resource with this UID.
pub fn is_marked_for(remote: &RemoteSubscription, uid: &str) -> bool {
    remote
        .description
        .as_deref()
        .and_then(marker_uid)
        .is_some_and(|found| found == uid)
}

/// Whose a remote subscription is, by its description's marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marking {
    /// No marker (or no description in this dialect).
    Unmarked,
    /// Created or adopted by the resource with this UID.
    Ours,
    /// Created or adopted by another resource.
    Another,
}

/// Reads the ownership marker of `remote` relative to the resource with `uid`.
pub fn marking(remote: &RemoteSubscription, uid: &str) -> Marking {
    match remote.description.as_deref().and_then(marker_uid) {
        None => Marking::Unmarked,
        Some(found) if found == uid => Marking::Ours,
        Some(_) => Marking::Another,
    }
}

/// An idempotency key for one logical call: the same inputs give the same key.
pub fn idempotency_key(purpose: &str, uid: &str, body_parts: &[&str]) -> IdempotencyKey {
    let mut hasher = Sha256::new();
    for part in [purpose, uid].iter().chain(body_parts) {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hex::encode(hasher.finalize());
    // 6 + ~20 + 1 + 40 chars: well under Ivy's 255.
    let purpose: String = purpose
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(20)
        .collect();
    IdempotencyKey::new(format!("ivywh-{purpose}-{}", &digest[..40]))
        .unwrap_or_else(|_| IdempotencyKey::random())
}

/// The parts of a create request that an idempotency key must cover.
pub fn request_parts(request: &SubscriptionRequest) -> Vec<String> {
    vec![
        request.url.clone(),
        request.events.join(","),
        request.description.clone().unwrap_or_default(),
        request.active.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(description: Option<&str>) -> RemoteSubscription {
        RemoteSubscription {
            id: "1".into(),
            url: "https://a.example/h".into(),
            events: vec!["test".into()],
            description: description.map(Into::into),
            active: Some(true),
        }
    }

    #[test]
    fn marker_follows_the_user_description() {
        assert_eq!(
            marked_description(Some("Orders"), "u-1"),
            "Orders [ivywh:u-1]"
        );
        assert_eq!(marked_description(None, "u-1"), "[ivywh:u-1]");
        assert_eq!(marked_description(Some("  "), "u-1"), "[ivywh:u-1]");
    }

    #[test]
    fn marker_uid_is_read_back() {
        assert_eq!(marker_uid("Orders [ivywh:u-1]"), Some("u-1"));
        assert_eq!(marker_uid("[ivywh:u-1]  "), Some("u-1"));
        assert_eq!(marker_uid("Orders"), None);
        assert_eq!(marker_uid("[ivywh:]"), None);
    }

    #[test]
    fn only_our_uid_counts_as_ours() {
        assert!(is_marked_for(&remote(Some("x [ivywh:u-1]")), "u-1"));
        assert!(!is_marked_for(&remote(Some("x [ivywh:u-2]")), "u-1"));
        assert!(!is_marked_for(&remote(None), "u-1"));
    }

    #[test]
    fn same_inputs_same_key_and_changed_body_new_key() {
        let a = idempotency_key("create", "u-1", &["https://a", "test"]);
        let b = idempotency_key("create", "u-1", &["https://a", "test"]);
        let c = idempotency_key("create", "u-1", &["https://b", "test"]);
        let d = idempotency_key("rotate", "u-1", &["https://a", "test"]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert!(a.as_str().len() <= IdempotencyKey::MAX_LEN);
    }

    #[test]
    fn parts_are_separated_so_shifted_boundaries_differ() {
        let a = idempotency_key("create", "u", &["ab", "c"]);
        let b = idempotency_key("create", "u", &["a", "bc"]);
        assert_ne!(a, b);
    }
}
