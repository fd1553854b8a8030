//! The HTTP server: routes of the three dialects and the admin API, the access log and request
//! counts, and the pipeline every dialect request goes through:
//! faults (latency, 5xx, 429, drop) -> API key -> `Idempotency-Key` -> handler ->
//! after-commit faults (500/drop, malformed body).
//!
//! The idempotency record is stored before the after-commit faults, so a client that lost the
//! answer to a committed create gets the very same answer on a retry with the same key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::errors::{ApiError, dropped_connection};
use super::faults::{After, AfterCommit, Before};
use super::model::Merchant;
use super::state::{Fingerprint, IdempotencyEntry, Shared};
use super::{admin, internal, rest, service};
use crate::ivy::{Dialect, IdempotencyKey};

/// Largest request body read for idempotency fingerprints.
const MAX_BODY: usize = 1 << 20;
const UNMATCHED: &str = "<unmatched>";

/// The whole application.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let dialect = |routes: Router<Arc<Shared>>, dialect: Dialect| {
        routes.route_layer(middleware::from_fn_with_state(
            (shared.clone(), dialect),
            pipeline,
        ))
    };
    Router::new()
        .merge(dialect(rest::routes(), Dialect::Rest))
        .merge(dialect(internal::routes(), Dialect::Internal))
        .merge(dialect(service::routes(), Dialect::Service))
        .nest("/admin", admin::routes())
        .route("/healthz", get(|| async { "ok" }))
        // Unknown routes answer a bare 404 (no JSON), like a server that lacks the route.
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(middleware::from_fn_with_state(shared.clone(), access_log))
        .with_state(shared)
}

/// One log line and one count per request. Never logs headers or bodies (API key, secrets).
async fn access_log(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| UNMATCHED.to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    shared.count_request(&method, &route, status);
    tracing::info!(
        %method,
        %route,
        status,
        latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

/// Faults, authentication and idempotency for one dialect request.
async fn pipeline(
    State((shared, dialect)): State<(Arc<Shared>, Dialect)>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let decision = shared.lock().faults.decide(
        dialect,
        request.method().as_str(),
        &route,
        request.uri().path(),
    );
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    match decision.before {
        Some(Before::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return ApiError::server(status).render(dialect);
        }
        Some(Before::RateLimit(retry_after)) => {
            let mut response = ApiError::rate_limited().render(dialect);
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            return response;
        }
        Some(Before::Drop) => return dropped_connection(),
        None => {}
    }

    let merchant = request
        .headers()
        .get("x-ivy-api-key")
        .and_then(|v| v.to_str().ok())
        .and_then(|key| shared.merchant_for(key));
    let Some(merchant) = merchant else {
        return ApiError::unauthorized().render(dialect);
    };
    request.extensions_mut().insert(merchant);

    let response = idempotent(&shared, dialect, merchant, request, next).await;

    match decision.after {
        Some(After::FailAfterCommit(AfterCommit::Status)) => {
            ApiError::server(StatusCode::INTERNAL_SERVER_ERROR).render(dialect)
        }
        Some(After::FailAfterCommit(AfterCommit::Drop)) => dropped_connection(),
        Some(After::MalformedBody(body)) if response.status().is_success() => {
            let (parts, _) = response.into_parts();
            Response::from_parts(parts, Body::from(body))
        }
        _ => response,
    }
}

/// Runs the handler under `Idempotency-Key` rules: a key seen before with the same request
/// replays the stored answer byte for byte; with a different request (or while the first is
/// still running) it is a 409. Only 2xx answers are stored, so a refused request leaves the
/// key unused. GET requests and requests without the header pass straight through.
async fn idempotent(
    shared: &Arc<Shared>,
    dialect: Dialect,
    merchant: Merchant,
    request: Request,
    next: Next,
) -> Response {
    let enabled = shared.lock().idempotency_enabled;
    let key = request
        .headers()
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_owned));
    let key = match key {
        _ if !enabled || request.method() == Method::GET => return next.run(request).await,
        None => return next.run(request).await,
        Some(Ok(key)) if IdempotencyKey::new(key.as_str()).is_ok() => key,
        Some(_) => {
            return ApiError::validation(
                "invalid_idempotency_key",
                "The Idempotency-Key header must be 1 to 255 visible ASCII characters.",
            )
            .render(dialect);
        }
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return ApiError::validation("invalid_request", "The request body is too large.")
            .render(dialect);
    };
    let fingerprint = Fingerprint::new(parts.method.as_str(), parts.uri.path(), &body);
    let slot = (merchant, key);
    {
        let mut inner = shared.lock();
        match inner.idempotency.get(&slot) {
            Some(IdempotencyEntry::Done {
                fingerprint: first,
                status,
                content_type,
                body,
            }) if *first == fingerprint => {
                return replay(*status, content_type.as_deref(), body.clone());
            }
            Some(IdempotencyEntry::InFlight { fingerprint: first }) if *first == fingerprint => {
                return ApiError::idempotency(
                    "A request with this Idempotency-Key is still being processed.",
                )
                .render(dialect);
            }
            Some(_) => {
                return ApiError::idempotency(
                    "This Idempotency-Key was already used with a different request.",
                )
                .render(dialect);
            }
            None => {
                inner.idempotency.insert(
                    slot.clone(),
                    IdempotencyEntry::InFlight {
                        fingerprint: fingerprint.clone(),
                    },
                );
            }
        }
    }
    // Frees the key if this request ends without a stored answer, including when the client
    // hangs up and hyper drops this future midway.
    let guard = InFlightGuard {
        shared: shared.clone(),
        slot: Some(slot.clone()),
    };
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    if !response.status().is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    guard.disarm();
    shared.lock().idempotency.insert(
        slot,
        IdempotencyEntry::Done {
            fingerprint,
            status: parts.status.as_u16(),
            content_type,
            body: bytes.clone(),
        },
    );
    Response::from_parts(parts, Body::from(bytes))
}

/// Removes an in-flight idempotency entry unless disarmed.
struct InFlightGuard {
    shared: Arc<Shared>,
    slot: Option<(Merchant, String)>,
}

impl InFlightGuard {
    fn disarm(mut self) {
        self.slot = None;
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let mut inner = self.shared.lock();
            if matches!(
                inner.idempotency.get(&slot),
                Some(IdempotencyEntry::InFlight { .. })
            ) {
                inner.idempotency.remove(&slot);
            }
        }
    }
}

fn replay(status: u16, content_type: Option<&str>, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if let Some(value) = content_type.and_then(|c| HeaderValue::from_str(c).ok()) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// How long a graceful shutdown waits for open connections before cutting them.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
