//! Error answers in each dialect's own shape, and the JSON and dropped-connection answers the
//! server and the handlers share.
//!
//! - `rest`: `{"statusCode": 400, "error": "Bad Request", "code": "invalid_url", "message": "…"}`
//! - `internal`: `{"error": {"code": "…", "message": "…", "type": "validation_error"}}` (seed 000)
//! - `service`: `{"message": "…", "category": "invalid_request_error", "code": "…", "param": "url"}`

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

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
