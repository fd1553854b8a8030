//! The `internal` dialect as the emulator serves it (seed 000), with its own wire types.
//! Every verb is `POST /api/service/internal/webhook-subscription/{verb}` with a JSON body:
//!
//! - `create {endpoint_url, event_types, description?}` -> 200 the subscription plus
//!   `webhook_signing_secret` (seed 000)
//! - `update {subscription_id, endpoint_url?, event_types?, description?, status?}` -> 200
//! - `get {subscription_id}` -> 200 the subscription (not in the seed)
//! - `list {limit?, cursor?}` -> 200 `{object: "list", data, has_more, next_cursor}` (not in
//!   the seed; limit 1..=100, default 20; `next_cursor` is opaque)
//! - `delete {subscription_id}` -> 200 `{id, deleted: true}` (not in the seed)
//! - `trigger-test {subscription_id}` -> 200 `{webhook_id, subscription_id, event_type}` (not in
//!   the seed; its "trigger test webhook" next step)
//!
//! A subscription is `{id: "wsub_…", endpoint_url, event_types, status: active|inactive,
//! description, created_at, updated_at}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::deliveries;
use super::errors::{ApiError, Family, json_response, parse_body};
use super::model::{
    Change, Field, Filter, Merchant, ModelError, NewSubscription, Subscription, parse_id,
};
use super::payloads;
use super::state::Shared;
use crate::ivy::Dialect;

const DIALECT: Dialect = Dialect::Internal;
const BASE: &str = "/api/service/internal/webhook-subscription";

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(&format!("{BASE}/create"), post(create))
        .route(&format!("{BASE}/update"), post(update))
        .route(&format!("{BASE}/get"), post(read))
        .route(&format!("{BASE}/list"), post(list))
        .route(&format!("{BASE}/delete"), post(remove))
        .route(&format!("{BASE}/trigger-test"), post(trigger_test))
}

#[derive(Deserialize)]
struct CreateRequest {
    endpoint_url: Option<String>,
    event_types: Option<Vec<String>>,
    description: Option<String>,
}

#[derive(Deserialize)]
struct UpdateRequest {
    subscription_id: Option<String>,
    endpoint_url: Option<String>,
    event_types: Option<Vec<String>>,
    description: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
struct ByIdRequest {
    subscription_id: Option<String>,
}

#[derive(Deserialize, Default)]
struct ListRequest {
    limit: Option<usize>,
    cursor: Option<String>,
}

#[derive(Serialize)]
struct WireSubscription {
    id: String,
    endpoint_url: String,
    event_types: Vec<String>,
    status: &'static str,
    description: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<&Subscription> for WireSubscription {
    fn from(s: &Subscription) -> Self {
        WireSubscription {
            id: s.internal_id(),
            endpoint_url: s.url.clone(),
            event_types: s.events.clone(),
            status: if s.active { "active" } else { "inactive" },
            description: s.description.clone(),
            created_at: s.created_at.to_string(),
            updated_at: s.updated_at.to_string(),
        }
    }
}

#[derive(Serialize)]
struct Created {
    #[serde(flatten)]
    subscription: WireSubscription,
    webhook_signing_secret: String,
}

#[derive(Serialize)]
struct Page {
    object: &'static str,
    data: Vec<WireSubscription>,
    has_more: bool,
    next_cursor: Option<String>,
}

fn model_error(err: ModelError) -> ApiError {
    match err {
        ModelError::Invalid { field, message } => match field {
            Field::Url => ApiError::validation("invalid_endpoint_url", message),
            Field::Events => ApiError::validation("invalid_event_types", message),
            Field::Description => ApiError::validation("invalid_description", message),
        },
        ModelError::NotFound => ApiError::not_found("resource_not_found"),
        ModelError::DuplicateUrl => ApiError::new(
            StatusCode::CONFLICT,
            Family::Conflict,
            "duplicate_endpoint_url",
            "A webhook subscription with this endpoint URL already exists.",
        ),
    }
}

fn fail(err: ApiError) -> Response {
    err.render(DIALECT)
}

/// The `subscription_id` of a body; an id in another format is simply not found.
fn subscription_id(id: Option<&str>) -> Result<Uuid, ApiError> {
    let id = id.ok_or_else(|| {
        ApiError::validation("missing_subscription_id", "subscription_id is required.")
    })?;
    parse_id(DIALECT, id).ok_or_else(|| ApiError::not_found("resource_not_found"))
}

async fn create(
    State(shared): State<Arc<Shared>>,
    Extension(merchant): Extension<Merchant>,
    body: Bytes,
) -> Response {
    let request: CreateRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let Some(endpoint_url) = request.endpoint_url else {
        return fail(ApiError::validation(
            "invalid_endpoint_url",
            "endpoint_url is required. Must be a valid HTTPS URL.",
        ));
    };
    let Some(event_types) = request.event_types else {
        return fail(ApiError::validation(
            "invalid_event_types",
            "event_types is required.",
        ));
    };
    let new = NewSubscription {
        url: endpoint_url,
        events: event_types,
        description: request.description,
        active: true,
    };
    let allow_http = shared.config.allow_http_urls;
    let created = shared
        .lock()
        .store
        .create(merchant, DIALECT, new, allow_http);
    match created {
        Ok(s) => json_response(
            StatusCode::OK,
            &Created {
                subscription: WireSubscription::from(&s),
                webhook_signing_secret: s.signing_secret.clone().unwrap_or_default(),
            },
        ),
        Err(e) => fail(model_error(e)),
    }
}

async fn update(
    State(shared): State<Arc<Shared>>,
    Extension(merchant): Extension<Merchant>,
    body: Bytes,
) -> Response {
    let request: UpdateRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let uuid = match subscription_id(request.subscription_id.as_deref()) {
        Ok(u) => u,
        Err(e) => return fail(e),
    };
    let active = match request.status.as_deref() {
        None => None,
        Some("active") => Some(true),
        Some("inactive") => Some(false),
        Some(_) => {
            return fail(ApiError::validation(
                "invalid_status",
                "status must be active or inactive.",
            ));
        }
    };
    let change = Change {
        url: request.endpoint_url,
        events: request.event_types,
        description: request.description,
        active,
    };
    let allow_http = shared.config.allow_http_urls;
    let updated = shared
        .lock()
        .store
        .update(merchant, uuid, change, allow_http);
    match updated {
        Ok(s) => json_response(StatusCode::OK, &WireSubscription::from(&s)),
        Err(e) => fail(model_error(e)),
    }
}

async fn read(
    State(shared): State<Arc<Shared>>,
    Extension(merchant): Extension<Merchant>,
    body: Bytes,
) -> Response {
    let request: ByIdRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let uuid = match subscription_id(request.subscription_id.as_deref()) {
        Ok(u) => u,
        Err(e) => return fail(e),
    };
    let found = shared
        .lock()
        .store
        .get(merchant, uuid)
        .map(WireSubscription::from);
    match found {
        Ok(s) => json_response(StatusCode::OK, &s),
        Err(e) => fail(model_error(e)),
    }
}

/// Cursors are `cur_<seq>`: the page starts after the subscription created `seq`-th.
async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(merchant): Extension<Merchant>,
    body: Bytes,
) -> Response {
    let request: ListRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ListRequest::default()
    } else {
        match parse_body(&body) {
            Ok(r) => r,
            Err(e) => return fail(e),
        }
    };
    let limit = request.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return fail(ApiError::validation(
            "invalid_limit",
            "limit must be between 1 and 100.",
        ));
    }
    let after = match request.cursor.as_deref() {
        None => 0,
        Some(c) => match c.strip_prefix("cur_").and_then(|n| n.parse::<u64>().ok()) {
            Some(seq) => seq,
            None => return fail(ApiError::validation("invalid_cursor", "Unknown cursor.")),
        },
    };
    let all = shared.lock().store.list(merchant, &Filter::default());
    let rest: Vec<&Subscription> = all.iter().filter(|s| s.seq > after).collect();
    let page: Vec<&Subscription> = rest.iter().take(limit).copied().collect();
    let has_more = rest.len() > page.len();
    let next_cursor = page
        .last()
        .filter(|_| has_more)
        .map(|s| format!("cur_{}", s.seq));
    json_response(
        StatusCode::OK,
        &Page {
            object: "list",
            data: page.into_iter().map(WireSubscription::from).collect(),
            has_more,
            next_cursor,
        },
    )
}

async fn remove(
    State(shared): State<Arc<Shared>>,
    Extension(merchant): Extension<Merchant>,
    body: Bytes,
) -> Response {
    let request: ByIdRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let uuid = match subscription_id(request.subscription_id.as_deref()) {
        Ok(u) => u,
        Err(e) => return fail(e),
    };
    let deleted = shared.lock().store.delete(merchant, uuid);
    match deleted {
        Ok(s) => json_response(
            StatusCode::OK,
            &json!({"id": s.internal_id(), "deleted": true}),
        ),
        Err(e) => fail(model_error(e)),
    }
}

async fn trigger_test(
    State(shared): State<Arc<Shared>>,
    Extension(merchant): Extension<Merchant>,
    body: Bytes,
) -> Response {
    let request: ByIdRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let uuid = match subscription_id(request.subscription_id.as_deref()) {
        Ok(u) => u,
        Err(e) => return fail(e),
    };
    let found = shared.lock().store.get(merchant, uuid).cloned();
    match found {
        Ok(s) => {
            let payload = payloads::payload("test", merchant.0);
            let delivery = deliveries::send_event(&shared, &s, "test", &payload);
            json_response(
                StatusCode::OK,
                &json!({
                    "webhook_id": delivery.webhook_id,
                    "subscription_id": s.internal_id(),
                    "event_type": "test",
                }),
            )
        }
        Err(e) => fail(model_error(e)),
    }
}
