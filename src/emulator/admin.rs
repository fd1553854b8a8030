//! The admin and test-control API under `/admin/`: no API key, answered only to loopback
//! peers. Each route is a thin wrapper over [`EmulatorState`], which in-process tests use
//! directly. See `docs/ivy-emulator.md` for curl examples.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;

use super::errors::json_response;
use super::faults::FaultSpec;
use super::shared::Shared;
use super::state::{EmulatorState, SendEventError};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/subscriptions", get(subscriptions))
        .route(
            "/subscriptions/{id}",
            get(subscription).delete(delete_subscription),
        )
        .route("/deliveries", get(deliveries))
        .route("/events", post(send_event))
        .route("/requests", get(requests).delete(reset_requests))
        .route("/operations", get(operations))
        .route("/mutations", get(mutations).delete(clear_mutations))
        .route("/quirks", get(quirks))
        .route("/faults", get(faults).post(add_fault).delete(clear_faults))
        .route("/faults/{id}", delete(remove_fault))
        .route("/idempotency", get(idempotency).put(set_idempotency))
        .route("/app-signing-secret", get(app_signing_secret))
        .route("/reset", post(reset))
        .route_layer(middleware::from_fn(loopback_only))
}

/// Refuses peers that are not on loopback (relevant only with `--allow-non-loopback-listen`).
async fn loopback_only(request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    match peer {
        Some(ip) if ip.is_loopback() => next.run(request).await,
        _ => (
            StatusCode::FORBIDDEN,
            "the admin API answers loopback peers only",
        )
            .into_response(),
    }
}

fn state(shared: Arc<Shared>) -> EmulatorState {
    EmulatorState { shared }
}

#[derive(Deserialize)]
struct SubscriptionQuery {
    /// Only this merchant's (the API key's index).
    merchant: Option<usize>,
}

async fn subscriptions(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<SubscriptionQuery>,
) -> Response {
    let state = state(shared);
    let views = match query.merchant {
        Some(merchant) => state.subscriptions_of(merchant),
        None => state.subscriptions(),
    };
    json_response(StatusCode::OK, &views)
}

async fn subscription(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    match state(shared).subscription(&id) {
        Some(s) => json_response(StatusCode::OK, &s),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn delete_subscription(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Response {
    if state(shared).delete_subscription(&id) {
        json_response(StatusCode::OK, &json!({"deleted": true}))
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

#[derive(Deserialize)]
struct DeliveryQuery {
    subscription: Option<String>,
}

async fn deliveries(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<DeliveryQuery>,
) -> Response {
    let state = state(shared);
    let wanted = query
        .subscription
        .as_deref()
        .and_then(|id| state.subscription(id).map(|s| s.id));
    let mut all = state.deliveries();
    if query.subscription.is_some() {
        all.retain(|d| Some(&d.subscription_id) == wanted.as_ref());
    }
    json_response(StatusCode::OK, &all)
}

#[derive(Deserialize)]
struct EventRequest {
    #[serde(rename = "type")]
    event_type: String,
    subscription_id: Option<String>,
    payload: Option<serde_json::Value>,
}

async fn send_event(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<EventRequest>,
) -> Response {
    let sent = state(shared).send_event(
        &request.event_type,
        request.subscription_id.as_deref(),
        request.payload,
    );
    match sent {
        Ok(deliveries) => json_response(StatusCode::OK, &deliveries),
        Err(err @ SendEventError::UnknownEvent(_)) => json_response(
            StatusCode::BAD_REQUEST,
            &json!({"message": err.to_string()}),
        ),
        Err(err @ SendEventError::NoSuchSubscription(_)) => {
            json_response(StatusCode::NOT_FOUND, &json!({"message": err.to_string()}))
        }
    }
}

async fn requests(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &state(shared).request_counts())
}

async fn reset_requests(State(shared): State<Arc<Shared>>) -> Response {
    state(shared).reset_request_counts();
    StatusCode::NO_CONTENT.into_response()
}

async fn operations(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &state(shared).operation_counts())
}

#[derive(Deserialize)]
struct MutationQuery {
    /// Only entries with a greater `seq` (to read the log incrementally).
    after: Option<u64>,
}

async fn mutations(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<MutationQuery>,
) -> Response {
    let log = state(shared).mutations_after(query.after.unwrap_or(0));
    json_response(StatusCode::OK, &log)
}

async fn clear_mutations(State(shared): State<Arc<Shared>>) -> Response {
    state(shared).clear_mutations();
    StatusCode::NO_CONTENT.into_response()
}

async fn quirks(State(shared): State<Arc<Shared>>) -> Response {
    let quirks = state(shared).quirks();
    json_response(
        StatusCode::OK,
        &json!({"quirks": quirks.to_string(), "profiles": quirks.names()}),
    )
}

async fn faults(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &state(shared).faults())
}

async fn add_fault(State(shared): State<Arc<Shared>>, Json(spec): Json<FaultSpec>) -> Response {
    if let Err(message) = spec.validate() {
        return json_response(StatusCode::BAD_REQUEST, &json!({"message": message}));
    }
    let id = state(shared).add_fault(spec);
    json_response(StatusCode::CREATED, &json!({"id": id}))
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> Response {
    state(shared).clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

async fn remove_fault(State(shared): State<Arc<Shared>>, Path(id): Path<u64>) -> Response {
    if state(shared).remove_fault(id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

#[derive(Deserialize)]
struct IdempotencySwitch {
    enabled: bool,
}

async fn idempotency(State(shared): State<Arc<Shared>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"enabled": state(shared).idempotency()}),
    )
}

async fn set_idempotency(
    State(shared): State<Arc<Shared>>,
    Json(switch): Json<IdempotencySwitch>,
) -> Response {
    state(shared.clone()).set_idempotency(switch.enabled);
    json_response(StatusCode::OK, &json!({"enabled": switch.enabled}))
}

async fn app_signing_secret(State(shared): State<Arc<Shared>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"signing_secret": state(shared).app_signing_secret()}),
    )
}

async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    state(shared).reset();
    StatusCode::NO_CONTENT.into_response()
}
