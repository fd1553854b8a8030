//! Why a reconcile stopped, and what that means for the user: the pure mapping from failures
//! (Ivy errors, conditions the user must resolve) to the `Ready` condition and the next try.

use std::time::Duration;

use kube::runtime::controller::Action;

use crate::controller::context::ControllerConfig;
use crate::controller::error::Error;
use crate::controller::status::{Outcome, Reason};
use crate::ivy::error::ConflictKind;
use crate::ivy::{ErrorClass, IvyError};

/// When to look at a resource again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Only when the resource changes.
    AwaitChange,
    /// After a fixed time.
    After(Duration),
    /// After the resource's next exponential-backoff delay, never sooner than `floor`.
    Backoff { floor: Option<Duration> },
}

impl Retry {
    /// The controller action, drawing a backoff delay from `backoff` where needed.
    pub fn action(self, backoff: impl FnOnce(Option<Duration>) -> Duration) -> Action {
        match self {
            Retry::AwaitChange => Action::await_change(),
            Retry::After(delay) => Action::requeue(delay),
            Retry::Backoff { floor } => Action::requeue(backoff(floor)),
        }
    }
}

/// Why a convergence stopped before the resource was in step with Ivy.
#[derive(Debug)]
pub(crate) enum Interrupt {
    /// A call to Ivy failed; `action` says what was being done.
    Ivy {
        action: &'static str,
        error: IvyError,
    },
    /// A Kubernetes call failed.
    Kube(Error),
    /// A condition the user must resolve; `retry` says when to look again.
    Stop { outcome: Outcome, retry: Retry },
    /// Progress was made that needs a fresh look (e.g. a leftover was deleted).
    RetrySoon,
}

impl From<Error> for Interrupt {
    fn from(error: Error) -> Self {
        Interrupt::Kube(error)
    }
}

/// Maps an Ivy error to an interrupt naming what was being done.
pub(crate) fn ivy(action: &'static str) -> impl FnOnce(IvyError) -> Interrupt {
    move |error| Interrupt::Ivy { action, error }
}

pub(crate) type Step<T> = std::result::Result<T, Interrupt>;

/// A crash point: with the `fail/failpoints` feature (tests only) a configured point ends the
/// reconcile here as if the process had been killed; otherwise it compiles to nothing.
macro_rules! crash_point {
    ($name:literal) => {
        fail::fail_point!($name, |_| Err(
            $crate::controller::outcome::Interrupt::Kube(
                $crate::controller::error::Error::InjectedFault($name)
            )
        ))
    };
}
pub(crate) use crash_point;

/// The condition after an interrupted attempt that cleaned up after itself.
pub(crate) fn retry_soon() -> (Outcome, Retry) {
    (
        Outcome::new(
            Reason::IvyUnavailable,
            "cleaned up after an interrupted attempt; retrying",
            None,
        ),
        Retry::Backoff { floor: None },
    )
}

/// The condition and the next try for a failed Ivy call. `delay_hint` is the delay the retry
/// will use for errors retried with backoff, for the message.
pub(crate) fn ivy_failure(
    config: &ControllerConfig,
    action: &str,
    error: &IvyError,
    delay_hint: impl FnOnce(Option<Duration>) -> Duration,
) -> (Outcome, Retry) {
    let text = format!("failed to {action}: {error}");
    let condition = |reason, message: String| Outcome::new(reason, message, None);
    match (error.class(), error) {
        (_, IvyError::Validation { message, .. }) => (
            condition(
                Reason::IvyRejected,
                format!("Ivy rejected the subscription: {message}"),
            ),
            Retry::After(config.resync_interval),
        ),
        (
            _,
            IvyError::Conflict {
                kind: ConflictKind::DuplicateUrl,
                ..
            },
        ) => (
            condition(Reason::DuplicateUrl, text),
            Retry::After(config.resync_interval),
        ),
        (_, IvyError::Unsupported { .. }) => {
            (condition(Reason::Unsupported, text), Retry::AwaitChange)
        }
        (_, IvyError::InvalidRequest { .. }) => {
            (condition(Reason::InvalidSpec, text), Retry::AwaitChange)
        }
        (ErrorClass::Auth, _) => (
            condition(
                Reason::AuthFailed,
                format!("{text}; check the API key the operator is configured with"),
            ),
            Retry::After(config.recheck_interval),
        ),
        (_, IvyError::RateLimited { retry_after }) => {
            let delay = delay_hint(*retry_after);
            (
                condition(
                    Reason::RateLimited,
                    format!("{text}; retrying in {}s", delay.as_secs().max(1)),
                ),
                Retry::After(delay),
            )
        }
        (ErrorClass::Permanent, _) => (
            condition(Reason::IvyRejected, text),
            Retry::After(config.resync_interval),
        ),
        (ErrorClass::Transient, _) => {
            let delay = delay_hint(None);
            (
                condition(
                    Reason::IvyUnavailable,
                    format!("{text}; retrying in {}s", delay.as_secs().max(1)),
                ),
                Retry::After(delay),
            )
        }
    }
}

/// Whether a failed Ivy call deserves a Warning Event (the user must act).
pub(crate) fn warrants_event(error: &IvyError) -> bool {
    matches!(error.class(), ErrorClass::Permanent | ErrorClass::Auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HINT: Duration = Duration::from_secs(7);

    fn map(error: IvyError) -> (Outcome, Retry) {
        ivy_failure(&ControllerConfig::default(), "do it", &error, |floor| {
            floor.map_or(HINT, |f| f.max(HINT))
        })
    }

    #[test]
    fn each_ivy_failure_maps_to_its_reason_and_retry() {
        let config = ControllerConfig::default();
        let table: Vec<(IvyError, Reason, Retry)> = vec![
            (
                IvyError::Validation {
                    message: "url must be https".into(),
                    code: None,
                },
                Reason::IvyRejected,
                Retry::After(config.resync_interval),
            ),
            (
                IvyError::Conflict {
                    kind: ConflictKind::DuplicateUrl,
                    message: String::new(),
                },
                Reason::DuplicateUrl,
                Retry::After(config.resync_interval),
            ),
            (
                IvyError::Unsupported {
                    dialect: "internal",
                    operation: "delete",
                },
                Reason::Unsupported,
                Retry::AwaitChange,
            ),
            (
                IvyError::InvalidRequest {
                    message: "bad key".into(),
                },
                Reason::InvalidSpec,
                Retry::AwaitChange,
            ),
            (
                IvyError::Auth { status: 401 },
                Reason::AuthFailed,
                Retry::After(config.recheck_interval),
            ),
            (
                IvyError::RateLimited {
                    retry_after: Some(Duration::from_secs(30)),
                },
                Reason::RateLimited,
                Retry::After(Duration::from_secs(30)),
            ),
            (
                IvyError::Transient {
                    message: "HTTP 503".into(),
                },
                Reason::IvyUnavailable,
                Retry::After(HINT),
            ),
        ];
        for (error, reason, retry) in table {
            let shown = error.to_string();
            let (outcome, got_retry) = map(error);
            assert_eq!(outcome.reason, reason, "{shown}");
            assert_eq!(got_retry, retry, "{shown}");
        }
    }

    #[test]
    fn retried_failures_say_when_they_retry() {
        let (outcome, _) = map(IvyError::Transient {
            message: "HTTP 502".into(),
        });
        assert!(
            outcome.message.ends_with("retrying in 7s"),
            "{}",
            outcome.message
        );
    }

    #[test]
    fn validation_failures_carry_ivys_message() {
        let (outcome, _) = map(IvyError::Validation {
            message: "url must be https".into(),
            code: None,
        });
        assert_eq!(
            outcome.message,
            "Ivy rejected the subscription: url must be https"
        );
    }

    #[test]
    fn only_failures_the_user_must_fix_warrant_an_event() {
        assert!(warrants_event(&IvyError::Auth { status: 401 }));
        assert!(!warrants_event(&IvyError::Transient {
            message: "HTTP 503".into()
        }));
    }
}
