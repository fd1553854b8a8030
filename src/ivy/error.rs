//! Classified errors from Ivy: what failed, and whether retrying can help.

use std::time::Duration;

/// How the reconciler should treat an [`IvyError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request itself is wrong; retrying the same request cannot succeed.
    Permanent,
    /// The API key was refused; retrying helps only once someone fixes the key.
    Auth,
    /// Temporary: retry with backoff (honouring any `Retry-After`).
    Transient,
}

/// One failed call to Ivy. Messages never contain the API key or a signing secret.
#[derive(Debug, thiserror::Error)]
pub enum IvyError {
    /// 400: Ivy refused the request; `message` is Ivy's own words, for the user's condition.
    #[error("Ivy rejected the request: {message}")]
    Validation {
        message: String,
        /// Ivy's machine-readable code, when the dialect gives one (e.g. `invalid_endpoint_url`).
        code: Option<String>,
    },
    /// 401/403: the API key is missing or wrong.
    #[error("Ivy refused the API key (HTTP {status})")]
    Auth { status: u16 },
    /// 404: no subscription with that id.
    #[error("Ivy has no subscription {id}")]
    NotFound { id: String },
    /// 409: a duplicate URL or an idempotency key reused with a different body; `kind` is read
    /// from the call made, `message` is Ivy's text for people.
    #[error("Ivy reported a conflict: {message}")]
    Conflict { message: String, kind: ConflictKind },
    /// 429: slow down; wait at least `retry_after` when Ivy said so.
    #[error("Ivy is rate limiting requests")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, timeouts, refused or dropped connections.
    #[error("Ivy is unavailable: {message}")]
    Transient { message: String },
    /// A 2xx answer whose body does not have the documented shape.
    #[error("Ivy sent a malformed response to {operation}: {message}")]
    MalformedResponse {
        operation: &'static str,
        message: String,
    },
    /// The dialect has no such verb.
    #[error("the {dialect} dialect cannot {operation}")]
    Unsupported {
        dialect: &'static str,
        operation: &'static str,
    },
    /// The client refused to send a request it knows to be invalid.
    #[error("invalid request: {message}")]
    InvalidRequest { message: String },
    /// Any other HTTP status.
    #[error("Ivy answered HTTP {status}: {message}")]
    UnexpectedStatus { status: u16, message: String },
}

/// Which kind of 409 Ivy sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictKind {
    /// Another subscription already uses this URL: any 409 to a create or an update whose body
    /// does not name idempotency (no body, plain text, HTML and unknown codes included).
    DuplicateUrl,
    /// The idempotency key was used before with a different body: a 409 whose JSON body names
    /// idempotency.
    IdempotencyKeyReused,
    /// A 409 to a call that sets no URL (get, list, delete, test), not about idempotency.
    Other,
}

impl IvyError {
    /// Whether retrying can help, and how the reconciler should report the failure.
    pub fn class(&self) -> ErrorClass {
        match self {
            IvyError::Validation { .. }
            | IvyError::NotFound { .. }
            | IvyError::Unsupported { .. }
            | IvyError::InvalidRequest { .. } => ErrorClass::Permanent,
            IvyError::Conflict { kind, .. } => match kind {
                // A reused key clears when the key changes or expires; a duplicate URL needs a person.
                ConflictKind::IdempotencyKeyReused => ErrorClass::Transient,
                ConflictKind::DuplicateUrl | ConflictKind::Other => ErrorClass::Permanent,
            },
            IvyError::Auth { .. } => ErrorClass::Auth,
            IvyError::RateLimited { .. }
            | IvyError::Transient { .. }
            | IvyError::MalformedResponse { .. } => ErrorClass::Transient,
            IvyError::UnexpectedStatus { status, .. } => {
                if *status >= 500 || *status == 408 {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Permanent
                }
            }
        }
    }

    /// The delay Ivy asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            IvyError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// A short, stable label for metrics (`&'static str`, never `Debug` output).
    pub fn metric_label(&self) -> &'static str {
        match self {
            IvyError::Validation { .. } => "validation",
            IvyError::Auth { .. } => "auth",
            IvyError::NotFound { .. } => "not_found",
            IvyError::Conflict { .. } => "conflict",
            IvyError::RateLimited { .. } => "rate_limited",
            IvyError::Transient { .. } => "transient",
            IvyError::MalformedResponse { .. } => "malformed_response",
            IvyError::Unsupported { .. } => "unsupported",
            IvyError::InvalidRequest { .. } => "invalid_request",
            IvyError::UnexpectedStatus { .. } => "unexpected_status",
        }
    }
}

/// `error: cause: cause` on one line, for logs and error messages: `Display` alone shows only
/// the outermost error, and the cause (a refused connection, a TLS failure) is what helps.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_is_transient_and_keeps_its_delay() {
        let err = IvyError::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(err.class(), ErrorClass::Transient);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn validation_is_permanent_and_keeps_ivys_message() {
        let err = IvyError::Validation {
            message: "Must be a valid HTTPS URL.".into(),
            code: Some("invalid_endpoint_url".into()),
        };
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(err.to_string().contains("Must be a valid HTTPS URL."));
    }

    #[test]
    fn duplicate_url_is_permanent_but_reused_key_is_transient() {
        let dup = IvyError::Conflict {
            message: "url taken".into(),
            kind: ConflictKind::DuplicateUrl,
        };
        let key = IvyError::Conflict {
            message: "key reused".into(),
            kind: ConflictKind::IdempotencyKeyReused,
        };
        assert_eq!(dup.class(), ErrorClass::Permanent);
        assert_eq!(key.class(), ErrorClass::Transient);
    }

    #[test]
    fn unexpected_5xx_is_transient_and_4xx_permanent() {
        let five = IvyError::UnexpectedStatus {
            status: 503,
            message: String::new(),
        };
        let four = IvyError::UnexpectedStatus {
            status: 418,
            message: String::new(),
        };
        assert_eq!(five.class(), ErrorClass::Transient);
        assert_eq!(four.class(), ErrorClass::Permanent);
    }

    #[test]
    fn error_chain_joins_every_cause() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&err), "outer: inner");
    }
}
