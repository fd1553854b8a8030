//! Error answers: in each dialect's own shape, the quirky ones (409 bodies without our codes,
//! a proxy's HTML 502, a framework's JSON 404), and the JSON and dropped-connection answers
//! the server and the handlers share.
//!
//! - `rest`: `{"statusCode": 400, "error": "Bad Request", "code": "invalid_url", "message": "…"}`
//! - `internal`: `{"error": {"code": "…", "message": "…", "type": "validation_error"}}` (the
//!   shape of Ivy's documented `internal` errors)
//! - `service`: `{"message": "…", "category": "invalid_request_error", "code": "…", "param": "url"}`

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::quirks::ConflictBody;
use crate::ivy::Dialect;

/// The family of an error; each dialect names it its own way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Validation,
    Auth,
    NotFound,
    Conflict,
    Idempotency,
    RateLimit,
    Server,
}

/// One error answer, before it is put in a dialect's shape.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub family: Family,
    pub code: String,
    pub message: String,
    /// The request field at fault (`service` reports it as `param`).
    pub param: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, family: Family, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            family,
            code: code.to_owned(),
            message: message.into(),
            param: None,
        }
    }

    pub fn validation(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Family::Validation, code, message)
    }

    pub fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            Family::Auth,
            "invalid_api_key",
            "The X-Ivy-Api-Key header is missing or not a valid API key.",
        )
    }

    pub fn not_found(code: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Family::NotFound,
            code,
            "No webhook subscription with this id exists.",
        )
    }

    pub fn idempotency(message: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            Family::Idempotency,
            "idempotency_key_reused",
            message,
        )
    }

    pub fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            Family::RateLimit,
            "rate_limited",
            "Too many requests; retry later.",
        )
    }

    pub fn server(status: StatusCode) -> Self {
        Self::new(
            status,
            Family::Server,
            "internal_error",
            "The emulator was told to fail this request.",
        )
    }

    /// The answer in `dialect`'s shape.
    pub fn render(&self, dialect: Dialect) -> Response {
        let body = match dialect {
            Dialect::Rest => json!({
                "statusCode": self.status.as_u16(),
                "error": self.status.canonical_reason().unwrap_or("Error"),
                "code": rest_code(self),
                "message": self.message,
            }),
            Dialect::Internal => json!({
                "error": {
                    "code": self.code,
                    "message": self.message,
                    "type": internal_type(self.family),
                }
            }),
            Dialect::Service => {
                let mut body = json!({
                    "message": self.message,
                    "category": service_category(self.family),
                    "code": self.code,
                });
                if let Some(param) = self.param {
                    body["param"] = json!(param);
                }
                body
            }
        };
        json_response(self.status, &body)
    }
}

/// `rest` reports reused keys with the same word `service` uses as a category.
fn rest_code(error: &ApiError) -> &str {
    match error.family {
        Family::Idempotency => "idempotency_error",
        _ => &error.code,
    }
}

fn internal_type(family: Family) -> &'static str {
    match family {
        Family::Validation => "validation_error",
        Family::Auth => "authentication_error",
        Family::NotFound => "not_found_error",
        Family::Conflict => "conflict_error",
        Family::Idempotency => "idempotency_error",
        Family::RateLimit => "rate_limit_error",
        Family::Server => "api_error",
    }
}

fn service_category(family: Family) -> &'static str {
    match family {
        Family::Validation | Family::Auth | Family::NotFound | Family::Conflict => {
            "invalid_request_error"
        }
        Family::Idempotency => "idempotency_error",
        Family::RateLimit => "rate_limiting",
        Family::Server => "api_error",
    }
}

/// A 409 whose body is what a conflict quirk says, for a 409 of any cause. `turn` (how many
/// 409s were answered before) picks the style under [`ConflictBody::Mixed`].
pub fn quirky_conflict(dialect: Dialect, style: ConflictBody, turn: u64) -> Response {
    let style = match style {
        ConflictBody::Mixed => match turn % 3 {
            0 => ConflictBody::Empty,
            1 => ConflictBody::PlainText,
            _ => ConflictBody::Reworded,
        },
        fixed => fixed,
    };
    match style {
        ConflictBody::Empty => StatusCode::CONFLICT.into_response(),
        ConflictBody::PlainText => (StatusCode::CONFLICT, "Conflict").into_response(),
        ConflictBody::Reworded | ConflictBody::Mixed => ApiError::new(
            StatusCode::CONFLICT,
            Family::Conflict,
            "resource_conflict",
            "The request conflicts with the current state of the target resource.",
        )
        .render(dialect),
    }
}

/// The page a proxy in front of Ivy answers when Ivy does not (`proxy-502`).
pub fn proxy_bad_gateway() -> Response {
    let page = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n\
                </body>\r\n</html>\r\n";
    let mut response = (StatusCode::BAD_GATEWAY, page).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}

/// What a web framework answers for a route it does not have (`json-404`): JSON, but not a
/// dialect's error body.
pub fn json_not_found(method: &str, path: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({
            "statusCode": 404,
            "error": "Not Found",
            "message": format!("Cannot {method} {path}"),
        }),
    )
}

/// `value` as a JSON answer.
pub fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut response = (status, bytes).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// An answer whose body fails as soon as it is read: hyper aborts the connection, so the
/// client gets no usable answer (a "dropped connection").
pub fn dropped_connection() -> Response {
    let failing = futures::stream::once(async {
        Err::<Vec<u8>, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "fault injection: connection dropped",
        ))
    });
    let mut response = Response::new(Body::from_stream(failing));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn each_dialect_has_its_own_error_shape() {
        let err = ApiError::validation("invalid_url", "bad url").with_param("url");
        let rest = body_of(err.render(Dialect::Rest)).await;
        assert_eq!(
            rest,
            json!({"statusCode":400,"error":"Bad Request","code":"invalid_url","message":"bad url"})
        );
        let internal = body_of(err.render(Dialect::Internal)).await;
        assert_eq!(
            internal,
            json!({"error":{"code":"invalid_url","message":"bad url","type":"validation_error"}})
        );
        let service = body_of(err.render(Dialect::Service)).await;
        assert_eq!(
            service,
            json!({"message":"bad url","category":"invalid_request_error","code":"invalid_url","param":"url"})
        );
    }

    async fn raw_body_of(response: Response) -> (StatusCode, Vec<u8>) {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, bytes.to_vec())
    }

    #[tokio::test]
    async fn quirky_conflicts_carry_no_code_of_ours_and_mixed_takes_turns() {
        let mut bodies = Vec::new();
        for turn in 0..3 {
            let (status, body) = raw_body_of(quirky_conflict(
                Dialect::Internal,
                ConflictBody::Mixed,
                turn,
            ))
            .await;
            assert_eq!(status, StatusCode::CONFLICT);
            bodies.push(String::from_utf8(body).unwrap());
        }
        assert_eq!(bodies[0], "");
        assert_eq!(bodies[1], "Conflict");
        let reworded: serde_json::Value = serde_json::from_str(&bodies[2]).unwrap();
        assert_eq!(reworded["error"]["code"], "resource_conflict");
        for body in &bodies {
            let lower = body.to_lowercase();
            for word in ["url", "duplicate", "idempotency"] {
                assert!(!lower.contains(word), "{body}");
            }
        }
    }

    #[tokio::test]
    async fn the_proxy_502_is_html_and_the_json_404_names_the_route() {
        let response = proxy_bad_gateway();
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/html");
        let (status, body) = raw_body_of(response).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert!(String::from_utf8(body).unwrap().starts_with("<html>"));
        let json = body_of(json_not_found("POST", "/x/get")).await;
        assert_eq!(json["message"], "Cannot POST /x/get");
    }

    #[tokio::test]
    async fn idempotency_conflicts_name_idempotency_in_every_dialect() {
        let err = ApiError::idempotency("reused");
        assert_eq!(
            body_of(err.render(Dialect::Rest)).await["code"],
            "idempotency_error"
        );
        assert_eq!(
            body_of(err.render(Dialect::Internal)).await["error"]["type"],
            "idempotency_error"
        );
        assert_eq!(
            body_of(err.render(Dialect::Service)).await["category"],
            "idempotency_error"
        );
    }
}
