//! The resource's status: what the operator tells the user, computed as a pure function and
//! written only when something other than a timestamp changes.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{WebhookSubscription, WebhookSubscriptionStatus};

/// Type of the one condition the operator maintains.
pub const READY: &str = "Ready";

/// Why `Ready` has the status it has. Each reason tells the user what to do next
/// (see `docs/troubleshooting.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Ivy holds the spec and the Secret holds its signing secret.
    Subscribed,
    /// The spec breaks a rule the schema could not express.
    InvalidSpec,
    /// Ivy refused the spec; the message is Ivy's.
    IvyRejected,
    /// Ivy refused the API key.
    AuthFailed,
    /// Ivy is unreachable or failing; the operator retries.
    IvyUnavailable,
    /// Ivy is rate limiting; the operator waits as told.
    RateLimited,
    /// A Secret of that name exists and is not the operator's.
    SecretConflict,
    /// Another subscription at Ivy already uses this URL.
    DuplicateUrl,
    /// An adopted subscription whose signing secret Ivy will never reveal.
    SecretUnknown,
    /// The adoption annotation names a subscription Ivy does not have.
    AdoptionFailed,
    /// The subscription belongs to another resource (its marker or another resource's status
    /// says so), or adoption is turned off.
    AdoptionRefused,
    /// The account the resource names is missing or not usable yet.
    AccountNotReady,
    /// The account the resource names does not admit the resource's namespace.
    AccountForbidden,
    /// The configured dialect cannot do what the spec asks.
    Unsupported,
    /// The `paused` annotation stops all calls to Ivy.
    Paused,
    /// The resource is being deleted and the remote subscription is being removed.
    Deleting,
    /// Deletion cannot finish (Ivy unreachable, refusing the key, or the resource paused); the
    /// message says what fails and how to let go.
    CleanupBlocked,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Subscribed => "Subscribed",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::IvyRejected => "IvyRejected",
            Reason::AuthFailed => "AuthFailed",
            Reason::IvyUnavailable => "IvyUnavailable",
            Reason::RateLimited => "RateLimited",
            Reason::SecretConflict => "SecretConflict",
            Reason::DuplicateUrl => "DuplicateUrl",
            Reason::SecretUnknown => "SecretUnknown",
            Reason::AdoptionFailed => "AdoptionFailed",
            Reason::AdoptionRefused => "AdoptionRefused",
            Reason::AccountNotReady => "AccountNotReady",
            Reason::AccountForbidden => "AccountForbidden",
            Reason::Unsupported => "Unsupported",
            Reason::Paused => "Paused",
            Reason::Deleting => "Deleting",
            Reason::CleanupBlocked => "CleanupBlocked",
        }
    }

    /// Whether the condition status is `True` for this reason.
    pub fn is_ready(self) -> bool {
        self == Reason::Subscribed
    }
}

/// What one reconcile found, enough to compute the status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub reason: Reason,
    pub message: String,
    /// The remote id now stored in the Secret, if any.
    pub subscription_id: Option<String>,
    /// When the stored signing secret was created or last rotated, if known.
    pub last_rotation: Option<Timestamp>,
}

impl Outcome {
    pub fn new(
        reason: Reason,
        message: impl Into<String>,
        subscription_id: Option<String>,
    ) -> Self {
        Self {
            reason,
            message: message.into(),
            subscription_id,
            last_rotation: None,
        }
    }

    /// The same outcome, reporting when the signing secret was created or last rotated.
    pub fn with_last_rotation(mut self, at: Option<Timestamp>) -> Self {
        self.last_rotation = at;
        self
    }
}

/// The status the resource should have after `outcome`. `lastTransitionTime` moves only when
/// the condition's status moves, so an unchanged outcome yields an identical status.
pub fn compute_status(
    sub: &WebhookSubscription,
    outcome: &Outcome,
    now: Timestamp,
) -> WebhookSubscriptionStatus {
    let generation = sub.metadata.generation;
    let previous = sub.ready_condition();
    let status = if outcome.reason.is_ready() {
        "True"
    } else {
        "False"
    };
    let last_transition_time = match previous {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    let ready = Condition {
        type_: READY.to_owned(),
        status: status.to_owned(),
        reason: outcome.reason.as_str().to_owned(),
        message: truncate(&outcome.message, 1024),
        observed_generation: generation,
        last_transition_time,
    };
    let old = sub.status.clone().unwrap_or_default();
    let mut conditions: Vec<Condition> = old
        .conditions
        .into_iter()
        .filter(|c| c.type_ != READY)
        .collect();
    conditions.insert(0, ready);
    WebhookSubscriptionStatus {
        // Keep the last known id while a transient failure hides it.
        subscription_id: outcome.subscription_id.clone().or(old.subscription_id),
        secret_name: Some(sub.secret_name()),
        observed_generation: generation,
        conditions,
        // Whole seconds, as the API server stores a time: the status read back then compares
        // equal and is not written again.
        last_rotation_time: outcome
            .last_rotation
            .map(|at| Time(whole_seconds(at)))
            .or(old.last_rotation_time),
    }
}

fn whole_seconds(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap_or(at)
}

fn truncate(message: &str, max: usize) -> String {
    if message.len() <= max {
        return message.to_owned();
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::test_support::sub;

    fn ready_of(status: &WebhookSubscriptionStatus) -> &Condition {
        status.conditions.iter().find(|c| c.type_ == READY).unwrap()
    }

    #[test]
    fn subscribed_is_ready_true_with_id_and_generation() {
        let sub = sub();
        let outcome = Outcome::new(Reason::Subscribed, "ok", Some("sub-1".into()));
        let status = compute_status(&sub, &outcome, Timestamp::UNIX_EPOCH);
        assert_eq!(status.subscription_id.as_deref(), Some("sub-1"));
        assert_eq!(status.secret_name.as_deref(), Some("orders-ivy-webhook"));
        assert_eq!(status.observed_generation, Some(3));
        let ready = ready_of(&status);
        assert_eq!(ready.status, "True");
        assert_eq!(ready.reason, "Subscribed");
        assert_eq!(ready.observed_generation, Some(3));
    }

    #[test]
    fn failure_is_ready_false_with_the_reason() {
        let outcome = Outcome::new(Reason::IvyRejected, "Must be a valid HTTPS URL.", None);
        let status = compute_status(&sub(), &outcome, Timestamp::UNIX_EPOCH);
        let ready = ready_of(&status);
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason, "IvyRejected");
        assert_eq!(ready.message, "Must be a valid HTTPS URL.");
    }

    #[test]
    fn unchanged_outcome_gives_an_identical_status() {
        let mut sub = sub();
        let outcome = Outcome::new(Reason::Subscribed, "ok", Some("sub-1".into()));
        let first = compute_status(&sub, &outcome, Timestamp::UNIX_EPOCH);
        sub.status = Some(first.clone());
        let later = Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_hours(5);
        assert_eq!(compute_status(&sub, &outcome, later), first);
    }

    #[test]
    fn transition_time_moves_only_when_the_status_moves() {
        let mut sub = sub();
        let t0 = Timestamp::UNIX_EPOCH;
        let t1 = t0 + jiff::SignedDuration::from_secs(60);
        let t2 = t1 + jiff::SignedDuration::from_secs(60);
        let failing = Outcome::new(Reason::IvyUnavailable, "retrying", None);
        sub.status = Some(compute_status(&sub, &failing, t0));
        let rate_limited = Outcome::new(Reason::RateLimited, "waiting", None);
        let still_false = compute_status(&sub, &rate_limited, t1);
        assert_eq!(ready_of(&still_false).last_transition_time, Time(t0));
        sub.status = Some(still_false);
        let ok = Outcome::new(Reason::Subscribed, "ok", Some("s".into()));
        assert_eq!(
            ready_of(&compute_status(&sub, &ok, t2)).last_transition_time,
            Time(t2)
        );
    }

    #[test]
    fn transient_failure_keeps_the_known_id() {
        let mut sub = sub();
        let ok = Outcome::new(Reason::Subscribed, "ok", Some("sub-1".into()));
        sub.status = Some(compute_status(&sub, &ok, Timestamp::UNIX_EPOCH));
        let failing = Outcome::new(Reason::IvyUnavailable, "retrying", None);
        let status = compute_status(&sub, &failing, Timestamp::UNIX_EPOCH);
        assert_eq!(status.subscription_id.as_deref(), Some("sub-1"));
    }

    #[test]
    fn last_rotation_time_is_reported_in_whole_seconds() {
        let at: Timestamp = "2026-06-01T12:00:00.75Z".parse().unwrap();
        let outcome = Outcome::new(Reason::Subscribed, "ok", Some("sub-1".into()))
            .with_last_rotation(Some(at));
        let status = compute_status(&sub(), &outcome, Timestamp::UNIX_EPOCH);
        assert_eq!(
            status.last_rotation_time,
            Some(Time("2026-06-01T12:00:00Z".parse().unwrap()))
        );
    }

    #[test]
    fn a_failure_keeps_the_known_last_rotation_time() {
        let mut sub = sub();
        let at: Timestamp = "2026-06-01T12:00:00Z".parse().unwrap();
        let ok = Outcome::new(Reason::Subscribed, "ok", Some("sub-1".into()))
            .with_last_rotation(Some(at));
        sub.status = Some(compute_status(&sub, &ok, Timestamp::UNIX_EPOCH));
        let failing = Outcome::new(Reason::IvyUnavailable, "retrying", None);
        let status = compute_status(&sub, &failing, Timestamp::UNIX_EPOCH);
        assert_eq!(status.last_rotation_time, Some(Time(at)));
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(2000);
        let outcome = Outcome::new(Reason::IvyRejected, long, None);
        let status = compute_status(&sub(), &outcome, Timestamp::UNIX_EPOCH);
        assert!(ready_of(&status).message.len() <= 1024 + '…'.len_utf8());
    }
}
