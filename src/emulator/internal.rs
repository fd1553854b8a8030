//! The `internal` dialect as the emulator serves it (Ivy's documented `internal` create, and
//! the same page family), with its own wire types. Every verb is
//! `POST /api/service/internal/webhook-subscription/{verb}` with a JSON body:
//!
//! - `create {endpoint_url, event_types, description?}` -> 200 the subscription plus
//!   `webhook_signing_secret` (documented)
//! - `update {subscription_id, endpoint_url?, event_types?, description?, status?}` -> 200
//! - `get {subscription_id}` -> 200 the subscription (undocumented)
//! - `list {limit?, cursor?}` -> 200 `{object: "list", data, has_more, next_cursor}`
//!   (undocumented; limit 1..=100, default 20; `next_cursor` is opaque)
//! - `delete {subscription_id}` -> 200 `{id, deleted: true}` (undocumented)
//! - `trigger-test {subscription_id}` -> 200 `{webhook_id, subscription_id, event_type}`
//!   (undocumented; the documents name a "trigger test webhook" endpoint as a next step)
//!
//! Under the `documented-only` quirk only `create` and `update` are served; under
//! `unpaged-lists` a list answers `{data}` alone.
//!
//! A subscription is `{id: "wsub_…", endpoint_url, event_types, status: active|inactive,
//! description, created_at, updated_at}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::errors::{ApiError, Family, json_response};
use super::handler::{
    self, Caller, Wire, listed, page_limit, parse_body, parse_optional_body, touched,
};
use super::model::{Change, Field, Filter, ModelError, NewSubscription, Subscription, parse_id};
use super::paging::{self, PageRequest, Start};
use super::quirks::Quirks;
use super::shared::Shared;
use crate::ivy::Dialect;

/// The `internal` dialect, for [`handler::Answer`].
pub(crate) struct Internal;

type Answer = handler::Answer<Internal>;

const DIALECT: Dialect = Internal::DIALECT;
const BASE: &str = "/api/service/internal/webhook-subscription";

pub(crate) fn routes(quirks: &Quirks) -> Router<Arc<Shared>> {
    let documented = Router::new()
        .route(&format!("{BASE}/create"), post(create))
        .route(&format!("{BASE}/update"), post(update));
    if quirks.documented_only {
        return documented;
    }
    documented
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
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<&'static str>,
    data: Vec<WireSubscription>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    paging: Option<Paging>,
}

#[derive(Serialize)]
struct Paging {
    has_more: bool,
    next_cursor: Option<String>,
}

impl Wire for Internal {
    const DIALECT: Dialect = Dialect::Internal;

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
}

/// The `subscription_id` of a body; an id in another format is simply not found.
fn subscription_id(id: Option<&str>) -> Result<Uuid, ApiError> {
    let id = id.ok_or_else(|| {
        ApiError::validation("missing_subscription_id", "subscription_id is required.")
    })?;
    parse_id(DIALECT, id).ok_or_else(|| ApiError::not_found("resource_not_found"))
}

/// The subscription a `{subscription_id}` body names.
fn target(body: &[u8]) -> Result<Uuid, ApiError> {
    let request: ByIdRequest = parse_body(body)?;
    subscription_id(request.subscription_id.as_deref())
}

async fn create(Caller { shared, merchant }: Caller, body: Bytes) -> Answer {
    let request: CreateRequest = parse_body(&body)?;
    let Some(endpoint_url) = request.endpoint_url else {
        return Err(ApiError::validation(
            "invalid_endpoint_url",
            "endpoint_url is required. Must be a valid HTTPS URL.",
        )
        .into());
    };
    let Some(event_types) = request.event_types else {
        return Err(ApiError::validation("invalid_event_types", "event_types is required.").into());
    };
    let new = NewSubscription {
        url: endpoint_url,
        events: event_types,
        description: request.description,
        active: true,
    };
    let s = handler::create(&shared, merchant, DIALECT, new)?;
    let response = json_response(
        StatusCode::OK,
        &Created {
            subscription: WireSubscription::from(&s),
            webhook_signing_secret: s.signing_secret.clone().unwrap_or_default(),
        },
    );
    Ok(touched(response, &s))
}

async fn update(Caller { shared, merchant }: Caller, body: Bytes) -> Answer {
    let request: UpdateRequest = parse_body(&body)?;
    let uuid = subscription_id(request.subscription_id.as_deref())?;
    let active = match request.status.as_deref() {
        None => None,
        Some("active") => Some(true),
        Some("inactive") => Some(false),
        Some(_) => {
            return Err(ApiError::validation(
                "invalid_status",
                "status must be active or inactive.",
            )
            .into());
        }
    };
    let change = Change {
        url: request.endpoint_url,
        events: request.event_types,
        description: request.description,
        active,
    };
    let s = handler::update(&shared, merchant, uuid, change)?;
    let response = json_response(StatusCode::OK, &WireSubscription::from(&s));
    Ok(touched(response, &s))
}

async fn read(Caller { shared, merchant }: Caller, body: Bytes) -> Answer {
    let uuid = target(&body)?;
    let subscription = WireSubscription::from(shared.lock().store.get(merchant, uuid)?);
    Ok(json_response(StatusCode::OK, &subscription))
}

/// Cursors are `cur_<seq>`: the page starts after the subscription created `seq`-th.
async fn list(Caller { shared, merchant }: Caller, body: Bytes) -> Answer {
    let request: ListRequest = parse_optional_body(&body)?;
    let limit = page_limit(request.limit, "invalid_limit")?;
    let after = match request.cursor.as_deref() {
        None => 0,
        Some(c) => match c.strip_prefix("cur_").and_then(|n| n.parse::<u64>().ok()) {
            Some(seq) => seq,
            None => return Err(ApiError::validation("invalid_cursor", "Unknown cursor.").into()),
        },
    };
    let request = PageRequest {
        start: Start::After(after),
        limit,
        filter: Filter::default(),
    };
    let answer = {
        let inner = shared.lock();
        let page = paging::page(&inner.store, merchant, &request, &shared.config.quirks);
        Page {
            object: page.paged.then_some("list"),
            paging: page.paged.then(|| Paging {
                has_more: page.has_more,
                next_cursor: page.next_after.map(|seq| format!("cur_{seq}")),
            }),
            data: page.items.into_iter().map(WireSubscription::from).collect(),
        }
    };
    Ok(listed(
        json_response(StatusCode::OK, &answer),
        request.is_first(),
    ))
}

async fn remove(Caller { shared, merchant }: Caller, body: Bytes) -> Answer {
    let uuid = target(&body)?;
    let s = shared.lock().store.delete(merchant, uuid)?;
    let response = json_response(
        StatusCode::OK,
        &json!({"id": s.internal_id(), "deleted": true}),
    );
    Ok(touched(response, &s))
}

async fn trigger_test(Caller { shared, merchant }: Caller, body: Bytes) -> Answer {
    let uuid = target(&body)?;
    let (s, delivery) = handler::send_test(&shared, merchant, uuid)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "webhook_id": delivery.webhook_id,
            "subscription_id": s.internal_id(),
            "event_type": "test",
        }),
    ))
}
