//! What a non-2xx answer means: the mapping from an HTTP status (and the call that got it) to
//! an [`IvyError`], and [`Transport::exchange`], which applies it.

use super::transport::{Call, RawResponse, Transport};
use crate::ivy::dialect::Dialect;
use crate::ivy::error::{ConflictKind, IvyError};

/// What a dialect could read from an error body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    pub message: Option<String>,
    /// Machine-readable code (`invalid_endpoint_url`, `duplicate_url`, …).
    pub code: Option<String>,
    /// The error family: `type` in `internal`, `category` in `service`, `error` in `rest`.
    pub kind: Option<String>,
}

/// How a dialect wants a non-2xx answer read.
pub(crate) struct Classify<'a> {
    pub dialect: Dialect,
    pub operation: &'static str,
    /// The id the call was about, for [`IvyError::NotFound`].
    pub id: &'a str,
    /// Parses the dialect's error body; `None` when the body is not in the dialect's shape.
    pub parse_error: fn(&[u8]) -> Option<ErrorBody>,
    /// Treat a 404/405 without the dialect's error body as a missing route
    /// ([`IvyError::Unsupported`]) rather than a missing subscription.
    pub route_may_be_missing: bool,
}

impl Transport {
    /// [`Transport::send`], with a non-2xx answer turned into the error `how` reads it as.
    pub async fn exchange(
        &self,
        call: Call<'_>,
        how: &Classify<'_>,
    ) -> Result<RawResponse, IvyError> {
        let response = self.send(call).await?;
        if response.is_success() {
            Ok(response)
        } else {
            Err(classify(self, &response, how))
        }
    }
}

/// Maps a non-2xx answer to an [`IvyError`].
pub(crate) fn classify(
    transport: &Transport,
    response: &RawResponse,
    how: &Classify<'_>,
) -> IvyError {
    let parsed = (how.parse_error)(&response.body);
    let status = response.status.as_u16();
    let message = || -> String {
        match parsed.as_ref().and_then(|p| p.message.as_deref()) {
            Some(message) => transport.scrub(message),
            None => body_snippet(transport, response),
        }
    };
    match status {
        400 | 422 => IvyError::Validation {
            message: message(),
            code: parsed.as_ref().and_then(|p| p.code.clone()),
        },
        401 | 403 => IvyError::Auth { status },
        404 | 405 if how.route_may_be_missing && parsed.is_none() => IvyError::Unsupported {
            dialect: how.dialect.as_str(),
            operation: how.operation,
        },
        // A 404 to a call about no particular subscription (create, list) cannot mean "no
        // such subscription".
        404 if how.id.is_empty() => IvyError::UnexpectedStatus {
            status,
            message: message(),
        },
        404 => IvyError::NotFound {
            id: how.id.to_owned(),
        },
        409 => IvyError::Conflict {
            message: message(),
            kind: conflict_kind(parsed.as_ref()),
        },
        429 => IvyError::RateLimited {
            retry_after: response.retry_after,
        },
        408 | 500..=599 => IvyError::Transient {
            message: format!("HTTP {status} from {}: {}", how.operation, message()),
        },
        _ => IvyError::UnexpectedStatus {
            status,
            message: message(),
        },
    }
}

fn conflict_kind(parsed: Option<&ErrorBody>) -> ConflictKind {
    let Some(parsed) = parsed else {
        return ConflictKind::Other;
    };
    let labels = [&parsed.code, &parsed.kind];
    let mentions = |needle: &str| {
        labels.iter().any(|l| {
            l.as_deref()
                .is_some_and(|l| l.to_ascii_lowercase().contains(needle))
        })
    };
    if mentions("idempotency") {
        ConflictKind::IdempotencyKeyReused
    } else if mentions("duplicate") || mentions("url") || mentions("already_exists") {
        ConflictKind::DuplicateUrl
    } else {
        ConflictKind::Other
    }
}

fn body_snippet(transport: &Transport, response: &RawResponse) -> String {
    if response.body.iter().all(u8::is_ascii_whitespace) {
        return format!("HTTP {} with an empty body", response.status.as_u16());
    }
    transport.scrub(&String::from_utf8_lossy(&response.body))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reqwest::StatusCode;

    use super::super::test_support::*;
    use super::*;

    fn no_parse(_: &[u8]) -> Option<ErrorBody> {
        None
    }

    fn how(route_may_be_missing: bool) -> Classify<'static> {
        Classify {
            dialect: Dialect::Internal,
            operation: "get",
            id: "abc",
            parse_error: no_parse,
            route_may_be_missing,
        }
    }

    fn raw(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn status_codes_map_to_error_classes() {
        let t = transport("127.0.0.1:9".parse().unwrap());
        assert!(matches!(
            classify(&t, &raw(400, ""), &how(false)),
            IvyError::Validation { .. }
        ));
        assert!(matches!(
            classify(&t, &raw(401, ""), &how(false)),
            IvyError::Auth { status: 401 }
        ));
        assert!(matches!(
            classify(&t, &raw(403, ""), &how(false)),
            IvyError::Auth { status: 403 }
        ));
        assert!(
            matches!(classify(&t, &raw(404, ""), &how(false)), IvyError::NotFound { id } if id == "abc")
        );
        assert!(matches!(
            classify(&t, &raw(404, ""), &how(true)),
            IvyError::Unsupported {
                operation: "get",
                ..
            }
        ));
        assert!(matches!(
            classify(&t, &raw(405, ""), &how(true)),
            IvyError::Unsupported { .. }
        ));
        assert!(matches!(
            classify(&t, &raw(409, ""), &how(false)),
            IvyError::Conflict {
                kind: ConflictKind::Other,
                ..
            }
        ));
        assert!(matches!(
            classify(&t, &raw(502, "<html>"), &how(false)),
            IvyError::Transient { .. }
        ));
        assert!(matches!(
            classify(&t, &raw(408, ""), &how(false)),
            IvyError::Transient { .. }
        ));
        assert!(matches!(
            classify(&t, &raw(418, ""), &how(false)),
            IvyError::UnexpectedStatus { status: 418, .. }
        ));
    }

    #[test]
    fn a_rate_limit_keeps_its_retry_after() {
        let t = transport("127.0.0.1:9".parse().unwrap());
        let mut response = raw(429, "");
        response.retry_after = Some(Duration::from_secs(3));
        assert!(matches!(
            classify(&t, &response, &how(false)),
            IvyError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(3)
        ));
    }

    #[test]
    fn error_text_is_bounded_and_never_shows_the_api_key() {
        let t = transport("127.0.0.1:9".parse().unwrap());
        let body = format!("key test-key-123 {}", "x".repeat(5000));
        let err = classify(&t, &raw(500, &body), &how(false));
        let text = err.to_string();
        assert!(!text.contains("test-key-123"), "{text}");
        assert!(text.len() < 1000, "{}", text.len());
    }

    #[test]
    fn conflicts_are_told_apart_by_code_or_kind() {
        let body = |code: &str| ErrorBody {
            code: Some(code.into()),
            ..Default::default()
        };
        assert_eq!(
            conflict_kind(Some(&body("idempotency_error"))),
            ConflictKind::IdempotencyKeyReused
        );
        assert_eq!(
            conflict_kind(Some(&body("duplicate_url"))),
            ConflictKind::DuplicateUrl
        );
        assert_eq!(
            conflict_kind(Some(&body("something_else"))),
            ConflictKind::Other
        );
        assert_eq!(conflict_kind(None), ConflictKind::Other);
    }
}
