//! Errors of one reconcile. Ivy's own failures are turned into conditions (see `outcome`); what
//! reaches `error_policy` is a failed Kubernetes call or a blocked cleanup.

use crate::accounts::AccountError;
use crate::ivy::IvyError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read Secret {name}")]
    GetSecret {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to apply Secret {name}")]
    ApplySecret {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to apply status of {name}")]
    ApplyStatus {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to list WebhookSubscriptions")]
    ListResources {
        #[source]
        source: kube::Error,
    },
    #[error("failed to {action} at Ivy")]
    Ivy {
        action: &'static str,
        #[source]
        source: IvyError,
    },
    #[error("failed to read the resource's Ivy account")]
    Account {
        #[source]
        source: AccountError,
    },
    #[error("cleanup is blocked: {reason}")]
    CleanupBlocked { reason: String },
    #[error("resource has no {0}")]
    MissingObjectKey(&'static str),
    /// A simulated crash at a named point (only with the `fail/failpoints` feature, in tests).
    #[error("injected fault at {0}")]
    InjectedFault(&'static str),
    /// The planners kept deciding without reaching an end: a bug, reported instead of looping.
    #[error("no decision reached for {key}")]
    Undecided { key: String },
    #[error("finalizer failed")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::GetSecret { .. } | Error::ApplySecret { .. } => "secret_error",
            Error::ApplyStatus { .. } => "status_error",
            Error::ListResources { .. } => "list_error",
            Error::Ivy { .. } => "ivy_error",
            Error::CleanupBlocked { .. } => "cleanup_blocked",
            Error::Account { .. } => "account_error",
            Error::MissingObjectKey(_) => "invalid_object",
            Error::Finalizer(_) => "finalizer_error",
            Error::InjectedFault(_) => "injected_fault",
            Error::Undecided { .. } => "undecided",
        }
    }

    /// The error of the apply or cleanup step inside a finalizer error, else `self`.
    pub fn inner(&self) -> &Error {
        match self {
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
                _ => self,
            },
            _ => self,
        }
    }

    /// The delay Ivy asked for, if this error (or the one a finalizer error wraps) carries one.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self.inner() {
            Error::Ivy { source, .. } => source.retry_after(),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
