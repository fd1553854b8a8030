//! The HTTP application: the routes of the three dialects (each behind the `pipeline`), the
//! admin API, the answer for unknown routes, and the access log with its per-route counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::errors::json_not_found;
use super::pipeline::pipeline;
use super::shared::Shared;
use super::{admin, internal, rest, service};
use crate::ivy::Dialect;

const UNMATCHED: &str = "<unmatched>";

/// How long a graceful shutdown waits for open connections before cutting them.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The whole application.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let quirks = &shared.config.quirks;
    let dialect = |routes: Router<Arc<Shared>>, dialect: Dialect| {
        routes.route_layer(middleware::from_fn_with_state(
            (shared.clone(), dialect),
            pipeline,
        ))
    };
    Router::new()
        .merge(dialect(rest::routes(quirks), Dialect::Rest))
        .merge(dialect(internal::routes(quirks), Dialect::Internal))
        .merge(dialect(service::routes(), Dialect::Service))
        .nest("/admin", admin::routes())
        .route("/healthz", get(|| async { "ok" }))
        .fallback(unknown_route)
        .layer(middleware::from_fn_with_state(shared.clone(), access_log))
        .with_state(shared)
}

/// Unknown routes answer a bare 404 (no body), like a server that lacks the route; with the
/// `json-404` quirk, a web framework's JSON 404.
async fn unknown_route(State(shared): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    if shared.config.quirks.json_404 {
        json_not_found(method.as_str(), uri.path())
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
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
    shared.lock().counters.count_route(&method, &route, status);
    tracing::info!(
        %method,
        %route,
        status,
        latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "request"
    );
    response
}
