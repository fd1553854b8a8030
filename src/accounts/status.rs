//! An account's `Ready` condition: what one key check found (a [`Verdict`]), the status it
//! gives (a pure function), and what a status says about using the account.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::accounts::credentials::CredentialsError;
use crate::accounts::source::{AccountSource, SourceError};
use crate::crd::account::IvyAccountStatus;
use crate::ivy::{ErrorClass, IvyError, RemoteSubscription, error_chain};

/// Type of the one condition of an account.
pub const READY: &str = "Ready";

/// Why an account's `Ready` has the status it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountReason {
    /// Ivy accepted the API key.
    Verified,
    /// The dialect has no call to check a key with; the first subscription call will.
    Unverifiable,
    /// Ivy refused the API key.
    AuthFailed,
    /// A Secret or key the account names does not exist (or cannot be read).
    SecretMissing,
    /// The spec cannot be used (the schema should have refused it).
    InvalidAccount,
    /// Ivy could not be asked (unreachable, failing, rate limiting, or an unexpected answer).
    IvyUnavailable,
}

impl AccountReason {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountReason::Verified => "Verified",
            AccountReason::Unverifiable => "Unverifiable",
            AccountReason::AuthFailed => "AuthFailed",
            AccountReason::SecretMissing => "SecretMissing",
            AccountReason::InvalidAccount => "InvalidAccount",
            AccountReason::IvyUnavailable => "IvyUnavailable",
        }
    }

    /// Whether resources may use the account.
    pub fn is_ready(self) -> bool {
        matches!(self, AccountReason::Verified | AccountReason::Unverifiable)
    }

    /// Whether the same inputs can give another answer later (so they are checked again).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            AccountReason::IvyUnavailable | AccountReason::SecretMissing
        )
    }
}

/// What one check of an account found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub reason: AccountReason,
    pub message: String,
    /// When Ivy asked to be left alone for a while.
    pub retry_after: Option<Duration>,
}

impl Verdict {
    fn new(reason: AccountReason, message: String) -> Self {
        Self {
            reason,
            message,
            retry_after: None,
        }
    }
}

/// The verdict of the key check: a `get` of an id that does not exist, which Ivy answers
/// with `404` (or, in a dialect that lists to find one, an empty result) once the key is good.
pub fn verdict_of_check(
    result: &Result<RemoteSubscription, IvyError>,
    source: &AccountSource,
) -> Verdict {
    let key = &source.api_key;
    let where_ = format!("{} at {}", source.dialect, source.base_url);
    match result {
        Ok(_) | Err(IvyError::NotFound { .. }) => Verdict::new(
            AccountReason::Verified,
            format!(
                "Ivy ({where_}) accepted the API key in Secret {}/{}",
                key.namespace, key.name
            ),
        ),
        Err(IvyError::Auth { status }) => Verdict::new(
            AccountReason::AuthFailed,
            format!(
                "Ivy ({where_}) refused the API key in Secret {}/{} key {} (HTTP {status}): put this \
                 merchant's API key for {} into that Secret, or correct baseUrl or dialect; the \
                 account is checked again when its Secret or spec changes",
                key.namespace, key.name, key.key, source.base_url
            ),
        ),
        Err(IvyError::Unsupported { .. }) => Verdict::new(
            AccountReason::Unverifiable,
            format!(
                "the {} dialect at {} has no call to check a key with; the first subscription \
                 call checks it",
                source.dialect, source.base_url
            ),
        ),
        Err(IvyError::RateLimited { retry_after }) => Verdict {
            reason: AccountReason::IvyUnavailable,
            message: format!(
                "Ivy ({where_}) is rate limiting this account; the key is checked when it allows"
            ),
            retry_after: *retry_after,
        },
        Err(error) if error.class() == ErrorClass::Transient => Verdict::new(
            AccountReason::IvyUnavailable,
            format!(
                "could not check the API key with Ivy ({where_}): {}; retrying",
                error_chain(error)
            ),
        ),
        Err(error) => Verdict::new(
            AccountReason::IvyUnavailable,
            format!(
                "Ivy ({where_}) answered the key check unexpectedly: {}; retrying",
                error_chain(error)
            ),
        ),
    }
}

/// The verdict when the account's Secrets cannot be read.
pub fn verdict_of_credentials(error: &CredentialsError) -> Verdict {
    let hint = match error {
        CredentialsError::SecretMissing { .. } | CredentialsError::KeyMissing { .. } => {
            "create it (kubectl create secret generic NAME --from-literal=KEY=...); the account is \
             checked again within a minute"
        }
        CredentialsError::Read { .. } => "the operator may lack RBAC to get it; retrying",
    };
    Verdict::new(
        AccountReason::SecretMissing,
        format!("{}: {hint}", error_chain(error)),
    )
}

/// The verdict when the spec cannot be used.
pub fn verdict_of_source(error: &SourceError) -> Verdict {
    Verdict::new(AccountReason::InvalidAccount, error_chain(error))
}

/// The status an account with `generation` should have after `verdict`. `lastTransitionTime`
/// moves only when the condition's status moves, so an unchanged verdict yields an identical
/// status (and no write).
pub fn compute_status(
    current: Option<&IvyAccountStatus>,
    generation: Option<i64>,
    verdict: &Verdict,
    now: Timestamp,
) -> IvyAccountStatus {
    let status = if verdict.reason.is_ready() {
        "True"
    } else {
        "False"
    };
    let previous = current.and_then(IvyAccountStatus::ready_condition);
    let last_transition_time = match previous {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    let ready = Condition {
        type_: READY.to_owned(),
        status: status.to_owned(),
        reason: verdict.reason.as_str().to_owned(),
        message: truncate(&verdict.message, 1024),
        observed_generation: generation,
        last_transition_time,
    };
    let mut conditions: Vec<Condition> = current
        .map(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != READY)
        .collect();
    conditions.insert(0, ready);
    IvyAccountStatus {
        observed_generation: generation,
        conditions,
    }
}

/// What an account's status says about using it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Usable {
    Yes,
    /// Not checked since its spec last changed.
    NotCheckedYet,
    /// Checked and found wanting: the `Ready` reason and message.
    No {
        reason: String,
        message: String,
    },
}

/// Whether an account with `generation` and `status` may be used: its `Ready` is `True` for
/// this generation.
pub fn usable(status: Option<&IvyAccountStatus>, generation: Option<i64>) -> Usable {
    let Some(ready) = status.and_then(IvyAccountStatus::ready_condition) else {
        return Usable::NotCheckedYet;
    };
    if generation.is_some() && ready.observed_generation != generation {
        return Usable::NotCheckedYet;
    }
    if ready.status == "True" {
        Usable::Yes
    } else {
        Usable::No {
            reason: ready.reason.clone(),
            message: ready.message.clone(),
        }
    }
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
    use crate::accounts::budget::BudgetConfig;
    use crate::accounts::identity::AccountRef;
    use crate::accounts::source::SecretKeyRef;
    use crate::ivy::Dialect;

    fn source() -> AccountSource {
        AccountSource {
            id: AccountRef::Namespaced {
                namespace: "shop".into(),
                name: "main".into(),
            },
            uid: Some("uid-1".into()),
            generation: Some(2),
            base_url: "https://api.getivy.de".parse().unwrap(),
            dialect: Dialect::Rest,
            api_key: SecretKeyRef {
                namespace: "shop".into(),
                name: "ivy-key".into(),
                key: "api-key".into(),
            },
            app_signing_secret: None,
            budget: BudgetConfig::default(),
        }
    }

    fn check(result: Result<RemoteSubscription, IvyError>) -> Verdict {
        verdict_of_check(&result, &source())
    }

    #[test]
    fn not_found_for_a_random_id_means_the_key_is_good() {
        let verdict = check(Err(IvyError::NotFound { id: "x".into() }));
        assert_eq!(verdict.reason, AccountReason::Verified);
        assert!(verdict.reason.is_ready());
    }

    #[test]
    fn a_refused_key_is_auth_failed_and_says_what_to_do() {
        let verdict = check(Err(IvyError::Auth { status: 401 }));
        assert_eq!(verdict.reason, AccountReason::AuthFailed);
        assert!(!verdict.reason.is_ready());
        assert!(
            verdict.message.contains("Secret shop/ivy-key key api-key"),
            "{}",
            verdict.message
        );
        assert!(
            verdict.message.contains("put this merchant's API key"),
            "{}",
            verdict.message
        );
    }

    #[test]
    fn a_transport_failure_is_ivy_unavailable_and_transient() {
        let verdict = check(Err(IvyError::Transient {
            message: "connection refused".into(),
        }));
        assert_eq!(verdict.reason, AccountReason::IvyUnavailable);
        assert!(verdict.reason.is_transient());
        assert!(verdict.message.contains("connection refused"));
    }

    #[test]
    fn a_rate_limited_check_keeps_the_delay() {
        let verdict = check(Err(IvyError::RateLimited {
            retry_after: Some(Duration::from_secs(9)),
        }));
        assert_eq!(verdict.reason, AccountReason::IvyUnavailable);
        assert_eq!(verdict.retry_after, Some(Duration::from_secs(9)));
    }

    #[test]
    fn a_dialect_without_a_read_call_is_usable_but_unverified() {
        let verdict = check(Err(IvyError::Unsupported {
            dialect: "internal",
            operation: "get",
        }));
        assert_eq!(verdict.reason, AccountReason::Unverifiable);
        assert!(verdict.reason.is_ready());
    }

    #[test]
    fn a_missing_secret_names_it_and_says_how_to_create_it() {
        let verdict = verdict_of_credentials(&CredentialsError::SecretMissing {
            namespace: "shop".into(),
            name: "ivy-key".into(),
        });
        assert_eq!(verdict.reason, AccountReason::SecretMissing);
        assert!(verdict.message.contains("shop/ivy-key does not exist"));
        assert!(verdict.message.contains("kubectl create secret"));
    }

    fn verified() -> Verdict {
        check(Ok(RemoteSubscription {
            id: "x".into(),
            url: "https://a.example/h".into(),
            events: vec![],
            description: None,
            active: None,
        }))
    }

    #[test]
    fn an_unchanged_verdict_gives_an_identical_status() {
        let t0 = Timestamp::UNIX_EPOCH;
        let first = compute_status(None, Some(2), &verified(), t0);
        let later = t0 + jiff::SignedDuration::from_hours(3);
        assert_eq!(
            compute_status(Some(&first), Some(2), &verified(), later),
            first
        );
    }

    #[test]
    fn the_transition_time_moves_only_when_ready_moves() {
        let t0 = Timestamp::UNIX_EPOCH;
        let t1 = t0 + jiff::SignedDuration::from_secs(60);
        let failing = check(Err(IvyError::Auth { status: 403 }));
        let first = compute_status(None, Some(1), &failing, t0);
        let unavailable = check(Err(IvyError::Transient {
            message: "x".into(),
        }));
        let still_false = compute_status(Some(&first), Some(1), &unavailable, t1);
        let ready = still_false.ready_condition().unwrap();
        assert_eq!(ready.last_transition_time, Time(t0));
        assert_eq!(ready.reason, "IvyUnavailable");
        let now_true = compute_status(Some(&still_false), Some(1), &verified(), t1);
        assert_eq!(
            now_true.ready_condition().unwrap().last_transition_time,
            Time(t1)
        );
    }

    #[test]
    fn an_account_is_usable_only_when_ready_for_its_generation() {
        let t0 = Timestamp::UNIX_EPOCH;
        assert_eq!(usable(None, Some(1)), Usable::NotCheckedYet);
        let ready = compute_status(None, Some(1), &verified(), t0);
        assert_eq!(usable(Some(&ready), Some(1)), Usable::Yes);
        assert_eq!(usable(Some(&ready), Some(2)), Usable::NotCheckedYet);
        let refused = compute_status(
            None,
            Some(1),
            &check(Err(IvyError::Auth { status: 401 })),
            t0,
        );
        assert!(matches!(
            usable(Some(&refused), Some(1)),
            Usable::No { reason, .. } if reason == "AuthFailed"
        ));
    }
}
