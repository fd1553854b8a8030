//! What a non-2xx answer means: the mapping from an HTTP status and the call that got it to an
//! [`IvyError`], and [`Transport::exchange`], which applies it.
//!
//! Decisions come from the status code and the call made, never from the wording of a body:
//! Ivy's documents define no error body for most calls, and another server written from the
//! same documents words them differently. A body's text is kept only as information for people
//! (the `message` of the error). The one exception is a 409 whose JSON body explicitly names
//! idempotency: that is the reused-key conflict, every other 409 to a create or update is a
//! duplicate URL. `docs/design.md` ("Signals") lists every decision and its signal.

use super::transport::{Call, RawResponse, Transport};
use crate::ivy::dialect::Dialect;
use crate::ivy::error::{ConflictKind, IvyError};

/// The call that got an answer: what a status means depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    Create,
    Get,
    Update,
    Delete,
    List,
    TriggerTest,
}

impl Verb {
    /// The operation's name in errors (`IvyError::Unsupported`, `MalformedResponse`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Get => "get",
            Verb::Update => "update",
            Verb::Delete => "delete",
            Verb::List => "list",
            Verb::TriggerTest => "trigger_test",
        }
    }

    /// Calls that set a subscription's URL, the only ones Ivy refuses for a URL in use.
    fn sets_url(self) -> bool {
        matches!(self, Verb::Create | Verb::Update)
    }
}

/// Whether an Ivy document defines the route a call goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// A 404 there is about the subscription, never about the route.
    Documented,
    /// This project's guess in the dialect's style: the server may not have it at all.
    Undocumented,
}

/// What a dialect could read from its error body: information for people only.
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
    pub verb: Verb,
    /// The id the call was about (for [`IvyError::NotFound`]); empty for calls about no
    /// particular subscription (create, list).
    pub id: &'a str,
    pub route: Route,
    /// Parses the dialect's error body, for the message and code shown to people.
    pub parse_error: fn(&[u8]) -> Option<ErrorBody>,
}

impl Classify<'_> {
    /// The error for "this dialect's server has no such route".
    pub fn unsupported(&self) -> IvyError {
        IvyError::Unsupported {
            dialect: self.dialect.as_str(),
            operation: self.verb.as_str(),
        }
    }
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

/// Maps a non-2xx answer to an [`IvyError`] by its status and the call made.
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
    let about_an_id = !how.id.is_empty();
    match status {
        400 | 422 => IvyError::Validation {
            message: message(),
            code: parsed.as_ref().and_then(|p| p.code.clone()),
        },
        401 | 403 => IvyError::Auth { status },
        // 405 names the route, never an id; and a 404 to a call about no particular
        // subscription (a list) can only mean the route is missing.
        405 if how.route == Route::Undocumented => how.unsupported(),
        404 if how.route == Route::Undocumented && !about_an_id => how.unsupported(),
        // A documented call about no particular subscription (create) cannot be "no such
        // subscription" either, but its route is documented: something else is wrong.
        404 if !about_an_id => IvyError::UnexpectedStatus {
            status,
            message: message(),
        },
        // On an undocumented route this may still mean the route is missing; the dialect
        // confirms it (see `dialects::verbs::on_undocumented_route`).
        404 => IvyError::NotFound {
            id: how.id.to_owned(),
        },
        409 => IvyError::Conflict {
            message: message(),
            kind: conflict_kind(how.verb, &response.body),
        },
        429 => IvyError::RateLimited {
            retry_after: response.retry_after,
        },
        408 | 500..=599 => IvyError::Transient {
            message: format!("HTTP {status} from {}: {}", how.verb.as_str(), message()),
        },
        _ => IvyError::UnexpectedStatus {
            status,
            message: message(),
        },
    }
}

/// A 409 is a reused idempotency key when its JSON body says so in so many words; otherwise,
/// to a create or update, the URL is taken (the only other conflict the documents name).
fn conflict_kind(verb: Verb, body: &[u8]) -> ConflictKind {
    if names_idempotency(body) {
        ConflictKind::IdempotencyKeyReused
    } else if verb.sets_url() {
        ConflictKind::DuplicateUrl
    } else {
        ConflictKind::Other
    }
}

/// Whether a JSON error body names idempotency in one of the fields error bodies use (at the
/// top level or inside an `error` object), whatever the dialect's own shape. Plain text and
/// HTML never count: a proxy's page is not Ivy's statement.
fn names_idempotency(body: &[u8]) -> bool {
    const FIELDS: [&str; 5] = ["code", "type", "category", "error", "message"];
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    let objects = [Some(&value), value.get("error")];
    objects.into_iter().flatten().any(|object| {
        FIELDS.iter().any(|field| {
            object
                .get(field)
                .and_then(serde_json::Value::as_str)
                .is_some_and(|text| text.to_ascii_lowercase().contains("idempoten"))
        })
    })
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

    fn how(verb: Verb, id: &'static str, route: Route) -> Classify<'static> {
        Classify {
            dialect: Dialect::Internal,
            verb,
            id,
            route,
            parse_error: no_parse,
        }
    }

    fn get() -> Classify<'static> {
        how(Verb::Get, "abc", Route::Documented)
    }

    fn raw(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            body: body.as_bytes().to_vec(),
        }
    }

    fn classified(status: u16, body: &str, how: &Classify<'_>) -> IvyError {
        classify(
            &transport("127.0.0.1:9".parse().unwrap()),
            &raw(status, body),
            how,
        )
    }

    #[test]
    fn status_codes_map_to_error_classes() {
        assert!(matches!(
            classified(400, "", &get()),
            IvyError::Validation { .. }
        ));
        assert!(matches!(
            classified(422, "", &get()),
            IvyError::Validation { .. }
        ));
        assert!(matches!(
            classified(401, "", &get()),
            IvyError::Auth { status: 401 }
        ));
        assert!(matches!(
            classified(403, "", &get()),
            IvyError::Auth { status: 403 }
        ));
        assert!(matches!(classified(404, "", &get()), IvyError::NotFound { id } if id == "abc"));
        assert!(matches!(
            classified(409, "", &get()),
            IvyError::Conflict {
                kind: ConflictKind::Other,
                ..
            }
        ));
        assert!(matches!(
            classified(408, "", &get()),
            IvyError::Transient { .. }
        ));
        assert!(matches!(
            classified(418, "", &get()),
            IvyError::UnexpectedStatus { status: 418, .. }
        ));
        assert!(matches!(
            classified(405, "", &get()),
            IvyError::UnexpectedStatus { status: 405, .. }
        ));
    }

    #[test]
    fn a_404_or_405_is_read_by_the_route_and_the_call_never_by_the_body() {
        let list = how(Verb::List, "", Route::Undocumented);
        let undocumented_get = how(Verb::Get, "abc", Route::Undocumented);
        let create = how(Verb::Create, "", Route::Documented);
        let json_not_found = r#"{"error":{"code":"resource_not_found","type":"not_found_error"}}"#;
        for body in ["", json_not_found, "<html>Not Found</html>", "Cannot POST"] {
            assert!(
                matches!(
                    classified(404, body, &list),
                    IvyError::Unsupported {
                        operation: "list",
                        ..
                    }
                ),
                "{body:?}"
            );
            assert!(
                matches!(
                    classified(405, body, &undocumented_get),
                    IvyError::Unsupported {
                        operation: "get",
                        ..
                    }
                ),
                "{body:?}"
            );
            // Still ambiguous: the dialect confirms it against a route it can trust.
            assert!(
                matches!(
                    classified(404, body, &undocumented_get),
                    IvyError::NotFound { .. }
                ),
                "{body:?}"
            );
            assert!(
                matches!(
                    classified(404, body, &create),
                    IvyError::UnexpectedStatus { status: 404, .. }
                ),
                "{body:?}"
            );
        }
    }

    #[test]
    fn a_409_to_a_create_or_update_is_a_duplicate_url_unless_the_body_names_idempotency() {
        use ConflictKind::{DuplicateUrl, IdempotencyKeyReused, Other};
        let cases: [(&str, &str, ConflictKind, ConflictKind); 12] = [
            ("no body", "", DuplicateUrl, Other),
            ("plain text", "Conflict", DuplicateUrl, Other),
            (
                "html",
                "<html><h1>409 Conflict</h1></html>",
                DuplicateUrl,
                Other,
            ),
            (
                "plain text naming idempotency",
                "Idempotency-Key reused",
                DuplicateUrl,
                Other,
            ),
            (
                "unknown code",
                r#"{"code":"conflict"}"#,
                DuplicateUrl,
                Other,
            ),
            ("empty object", "{}", DuplicateUrl, Other),
            (
                "another server's duplicate wording",
                r#"{"message":"A subscription for this endpoint exists"}"#,
                DuplicateUrl,
                Other,
            ),
            (
                "rest code",
                r#"{"statusCode":409,"code":"idempotency_error","message":"reused"}"#,
                IdempotencyKeyReused,
                IdempotencyKeyReused,
            ),
            (
                "internal type",
                r#"{"error":{"code":"key_reused","type":"idempotency_error","message":"x"}}"#,
                IdempotencyKeyReused,
                IdempotencyKeyReused,
            ),
            (
                "service category",
                r#"{"category":"idempotency_error","message":"x"}"#,
                IdempotencyKeyReused,
                IdempotencyKeyReused,
            ),
            (
                "message only",
                r#"{"message":"This Idempotency-Key was used with another request"}"#,
                IdempotencyKeyReused,
                IdempotencyKeyReused,
            ),
            (
                "idempotent request wording",
                r#"{"error":"idempotent request in progress"}"#,
                IdempotencyKeyReused,
                IdempotencyKeyReused,
            ),
        ];
        for (name, body, to_a_write, to_a_delete) in cases {
            for verb in [Verb::Create, Verb::Update] {
                let err = classified(409, body, &how(verb, "", Route::Documented));
                assert!(
                    matches!(err, IvyError::Conflict { kind, .. } if kind == to_a_write),
                    "{name} to {verb:?}: {err:?}"
                );
            }
            let err = classified(409, body, &how(Verb::Delete, "x", Route::Documented));
            assert!(
                matches!(err, IvyError::Conflict { kind, .. } if kind == to_a_delete),
                "{name} to a delete: {err:?}"
            );
        }
    }

    #[test]
    fn server_errors_are_transient_whatever_their_body() {
        for (status, body) in [
            (502, "<html><body><h1>502 Bad Gateway</h1></body></html>"),
            (503, ""),
            (500, r#"{"message":"boom"}"#),
            (504, "upstream timed out"),
        ] {
            let err = classified(status, body, &get());
            assert!(
                matches!(err, IvyError::Transient { .. }),
                "{status}: {err:?}"
            );
        }
    }

    #[test]
    fn a_rate_limit_keeps_its_retry_after() {
        let t = transport("127.0.0.1:9".parse().unwrap());
        let mut response = raw(429, "");
        response.retry_after = Some(Duration::from_secs(3));
        assert!(matches!(
            classify(&t, &response, &get()),
            IvyError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(3)
        ));
    }

    #[test]
    fn error_text_is_bounded_and_never_shows_the_api_key() {
        let body = format!("key test-key-123 {}", "x".repeat(5000));
        let text = classified(500, &body, &get()).to_string();
        assert!(!text.contains("test-key-123"), "{text}");
        assert!(text.len() < 1000, "{}", text.len());
    }
}
