//! The pipeline every dialect request goes through, in this order:
//! `proxy-502` quirk -> faults (latency, 5xx, 429, drop) -> API key -> `Idempotency-Key` ->
//! handler -> 409 quirks -> after-commit faults (500/drop, malformed body) -> counts and the
//! mutation log.
//!
//! The idempotency record is stored before the after-commit faults, so a client that lost the
//! answer to a committed create gets the very same answer on a retry with the same key.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::counters::{Operation, Served, Touched};
use super::errors::{self, ApiError, dropped_connection};
use super::faults::{After, AfterCommit, Before};
use super::idempotency::{Begin, Fingerprint, Slot, StoredAnswer, is_valid_key};
use super::model::Merchant;
use super::shared::Shared;
use crate::ivy::Dialect;

/// Largest request body read for idempotency fingerprints.
const MAX_BODY: usize = 1 << 20;
/// The header that marks a replayed answer.
const REPLAYED: &str = "idempotent-replayed";

/// What the handler's answer said about itself, kept before after-commit faults replace it.
#[derive(Default)]
struct Marks {
    touched: Option<Touched>,
    operation: Option<Operation>,
    replayed: bool,
}

impl Marks {
    fn of(response: &Response) -> Self {
        Self {
            touched: response.extensions().get::<Touched>().cloned(),
            operation: response.extensions().get::<Operation>().copied(),
            replayed: response.headers().contains_key(REPLAYED),
        }
    }
}

/// The middleware on every dialect route.
pub(crate) async fn pipeline(
    State((shared, dialect)): State<(Arc<Shared>, Dialect)>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let received_at_unix_nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let operation = Operation::of_route(request.method().as_str(), &route);
    let (response, marks) = serve(&shared, dialect, &route, request, next).await;
    if let Some(operation) = marks.operation.or(operation) {
        let served = Served {
            dialect,
            operation,
            status: response.status().as_u16(),
            touched: marks.touched,
            received_at_unix_nanos,
            handling_micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            replayed: marks.replayed,
        };
        shared.lock().counters.record(served);
    }
    response
}

async fn serve(
    shared: &Arc<Shared>,
    dialect: Dialect,
    route: &str,
    mut request: Request,
    next: Next,
) -> (Response, Marks) {
    if proxy_502_due(shared) {
        return (errors::proxy_bad_gateway(), Marks::default());
    }
    let decision = shared.lock().faults.decide(
        dialect,
        request.method().as_str(),
        route,
        request.uri().path(),
    );
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    match decision.before {
        Some(Before::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (ApiError::server(status).render(dialect), Marks::default());
        }
        Some(Before::RateLimit(retry_after)) => {
            let mut response = ApiError::rate_limited().render(dialect);
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            return (response, Marks::default());
        }
        Some(Before::Drop) => return (dropped_connection(), Marks::default()),
        None => {}
    }

    let merchant = request
        .headers()
        .get("x-ivy-api-key")
        .and_then(|key| shared.merchant_for(key.as_bytes()));
    let Some(merchant) = merchant else {
        return (ApiError::unauthorized().render(dialect), Marks::default());
    };
    request.extensions_mut().insert(merchant);

    let response = idempotent(shared, dialect, merchant, request, next).await;
    let marks = Marks::of(&response);
    let response = quirky_conflict(shared, dialect, response);

    let response = match decision.after {
        Some(After::FailAfterCommit(AfterCommit::Status)) => {
            ApiError::server(StatusCode::INTERNAL_SERVER_ERROR).render(dialect)
        }
        Some(After::FailAfterCommit(AfterCommit::Drop)) => dropped_connection(),
        Some(After::MalformedBody(body)) if response.status().is_success() => {
            let (parts, _) = response.into_parts();
            Response::from_parts(parts, Body::from(body))
        }
        _ => response,
    };
    (response, marks)
}

/// Counts the request for `proxy-502`; true when this one is the Nth.
fn proxy_502_due(shared: &Shared) -> bool {
    let Some(every) = shared.config.quirks.proxy_502_every else {
        return false;
    };
    let mut inner = shared.lock();
    inner.dialect_requests += 1;
    inner.dialect_requests.is_multiple_of(every.get())
}

/// Under a conflict quirk, any 409 loses the body that says why.
fn quirky_conflict(shared: &Shared, dialect: Dialect, response: Response) -> Response {
    let Some(style) = shared.config.quirks.conflict_body else {
        return response;
    };
    if response.status() != StatusCode::CONFLICT {
        return response;
    }
    let turn = {
        let mut inner = shared.lock();
        inner.conflicts += 1;
        inner.conflicts - 1
    };
    errors::quirky_conflict(dialect, style, turn)
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
    if !enabled || request.method() == Method::GET {
        return next.run(request).await;
    }
    let key = match request.headers().get("idempotency-key") {
        None => return next.run(request).await,
        Some(value) if is_valid_key(value.as_bytes()) => {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        }
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
    let slot: Slot = (merchant, key);
    let begun = shared.lock().idempotency.begin(&slot, &fingerprint);
    match begun {
        Begin::Fresh => {}
        Begin::Replay(answer) => return replay(answer),
        Begin::StillRunning => {
            return ApiError::idempotency(
                "A request with this Idempotency-Key is still being processed.",
            )
            .render(dialect);
        }
        Begin::Mismatch => {
            return ApiError::idempotency(
                "This Idempotency-Key was already used with a different request.",
            )
            .render(dialect);
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
    let answer = StoredAnswer {
        status: parts.status.as_u16(),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: bytes.clone(),
        touched: parts.extensions.get::<Touched>().cloned(),
    };
    guard.disarm();
    shared.lock().idempotency.finish(slot, fingerprint, answer);
    Response::from_parts(parts, Body::from(bytes))
}

/// Removes an in-flight idempotency entry unless disarmed.
struct InFlightGuard {
    shared: Arc<Shared>,
    slot: Option<Slot>,
}

impl InFlightGuard {
    fn disarm(mut self) {
        self.slot = None;
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.shared.lock().idempotency.abandon(&slot);
        }
    }
}

fn replay(answer: StoredAnswer) -> Response {
    let mut response = Response::new(Body::from(Bytes::clone(&answer.body)));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    if let Some(value) = answer
        .content_type
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    if let Some(touched) = answer.touched {
        response.extensions_mut().insert(touched);
    }
    response
}
