//! The `rest` dialect as the emulator serves it (Ivy's REST API reference: resources under
//! `/webhook`), with its own wire types.
//!
//! - `POST /webhook` `{url, events, description?}` -> 201 `{id, url, events, description,
//!   active, secret, created_at, updated_at}` (the only answer with `secret`)
//! - `GET /webhook/{id}` -> 200 the subscription; a malformed UUID is a 400
//! - `GET /webhook?limit=&offset=&active=&event=` -> 200 `{items, total, limit, offset}`
//!   (limit 1..=100, default 20; `{items}` alone under the `unpaged-lists` quirk)
//! - `PUT /webhook/{id}` `{url?, events?, description?, active?}` -> 200 the subscription
//! - `DELETE /webhook/{id}` -> 200 `{id, deleted: true}`
//! - `POST /webhook/{id}/test` -> 200 `{webhook_id, subscription_id, type: "test"}` (not in
//!   the reference; not served under the `documented-only` quirk)

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::errors::{ApiError, Family, json_response};
use super::handler::{self, Caller, Wire, listed, page_limit, parse_body, touched};
use super::model::{Change, Field, Filter, ModelError, NewSubscription, Subscription, parse_id};
use super::paging::{self, PageRequest, Start};
use super::quirks::Quirks;
use super::shared::Shared;
use crate::ivy::Dialect;

/// The `rest` dialect, for [`handler::Answer`].
pub(crate) struct Rest;

type Answer = handler::Answer<Rest>;

const DIALECT: Dialect = Rest::DIALECT;

pub(crate) fn routes(quirks: &Quirks) -> Router<Arc<Shared>> {
    let routes = Router::new()
        .route("/webhook", post(create).get(list))
        .route("/webhook/{id}", get(read).put(update).delete(remove));
    if quirks.documented_only {
        routes
    } else {
        routes.route("/webhook/{id}/test", post(trigger_test))
    }
}

#[derive(Deserialize)]
struct CreateRequest {
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
}

#[derive(Deserialize)]
struct UpdateRequest {
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
    active: Option<bool>,
}

#[derive(Serialize)]
struct Webhook {
    id: String,
    url: String,
    events: Vec<String>,
    description: Option<String>,
    active: bool,
    created_at: String,
    updated_at: String,
}

impl From<&Subscription> for Webhook {
    fn from(s: &Subscription) -> Self {
        Webhook {
            id: s.rest_id(),
            url: s.url.clone(),
            events: s.events.clone(),
            description: s.description.clone(),
            active: s.active,
            created_at: s.created_at.to_string(),
            updated_at: s.updated_at.to_string(),
        }
    }
}

#[derive(Serialize)]
struct CreatedWebhook {
    #[serde(flatten)]
    webhook: Webhook,
    secret: String,
}

#[derive(Serialize)]
struct Page {
    items: Vec<Webhook>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    paging: Option<Paging>,
}

#[derive(Serialize)]
struct Paging {
    total: usize,
    limit: usize,
    offset: usize,
}

impl Wire for Rest {
    const DIALECT: Dialect = Dialect::Rest;

    fn model_error(err: ModelError) -> ApiError {
        match err {
            ModelError::Invalid { field, message } => match field {
                Field::Url => ApiError::validation("invalid_url", message).with_param("url"),
                Field::Events => {
                    ApiError::validation("invalid_events", message).with_param("events")
                }
                Field::Description => {
                    ApiError::validation("invalid_description", message).with_param("description")
                }
            },
            ModelError::NotFound => ApiError::not_found("not_found"),
            ModelError::DuplicateUrl => ApiError::new(
                StatusCode::CONFLICT,
                Family::Conflict,
                "duplicate_url",
                "A webhook with this URL already exists.",
            ),
        }
    }
}

/// A path id: 400 when it is not a UUID (the reference lists 400 for get/update/delete).
fn path_id(id: &str) -> Result<Uuid, ApiError> {
    parse_id(DIALECT, id)
        .ok_or_else(|| ApiError::validation("invalid_id", "The webhook id must be a UUID."))
}

async fn create(Caller { shared, merchant }: Caller, body: Bytes) -> Answer {
    let request: CreateRequest = parse_body(&body)?;
    let (Some(url), Some(events)) = (request.url, request.events) else {
        return Err(ApiError::validation("missing_field", "url and events are required.").into());
    };
    let new = NewSubscription {
        url,
        events,
        description: request.description,
        active: true,
    };
    let s = handler::create(&shared, merchant, DIALECT, new)?;
    let response = json_response(
        StatusCode::CREATED,
        &CreatedWebhook {
            webhook: Webhook::from(&s),
            secret: s.signing_secret.clone().unwrap_or_default(),
        },
    );
    Ok(touched(response, &s))
}

async fn read(Caller { shared, merchant }: Caller, Path(id): Path<String>) -> Answer {
    let uuid = path_id(&id)?;
    let webhook = Webhook::from(shared.lock().store.get(merchant, uuid)?);
    Ok(json_response(StatusCode::OK, &webhook))
}

async fn update(
    Caller { shared, merchant }: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let uuid = path_id(&id)?;
    let request: UpdateRequest = parse_body(&body)?;
    let change = Change {
        url: request.url,
        events: request.events,
        description: request.description,
        active: request.active,
    };
    let s = handler::update(&shared, merchant, uuid, change)?;
    Ok(touched(
        json_response(StatusCode::OK, &Webhook::from(&s)),
        &s,
    ))
}

async fn remove(Caller { shared, merchant }: Caller, Path(id): Path<String>) -> Answer {
    let uuid = path_id(&id)?;
    let s = shared.lock().store.delete(merchant, uuid)?;
    let response = json_response(StatusCode::OK, &json!({"id": s.rest_id(), "deleted": true}));
    Ok(touched(response, &s))
}

async fn list(
    Caller { shared, merchant }: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let number = |name: &str| -> Result<Option<usize>, ApiError> {
        query
            .get(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::validation("invalid_query", format!("{name} must be a whole number."))
                })
            })
            .transpose()
    };
    let limit = number("limit")?;
    let offset = number("offset")?.unwrap_or(0);
    let limit = page_limit(limit, "invalid_query")?;
    let active = match query.get("active").map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(
                ApiError::validation("invalid_query", "active must be true or false.").into(),
            );
        }
    };
    let request = PageRequest {
        start: Start::Offset(offset),
        limit,
        filter: Filter {
            active,
            event: query.get("event").cloned(),
        },
    };
    let answer = {
        let inner = shared.lock();
        let page = paging::page(&inner.store, merchant, &request, &shared.config.quirks);
        Page {
            items: page.items.into_iter().map(Webhook::from).collect(),
            paging: page.paged.then_some(Paging {
                total: page.total,
                limit,
                offset,
            }),
        }
    };
    Ok(listed(
        json_response(StatusCode::OK, &answer),
        request.is_first(),
    ))
}

async fn trigger_test(Caller { shared, merchant }: Caller, Path(id): Path<String>) -> Answer {
    let uuid = path_id(&id)?;
    let (s, delivery) = handler::send_test(&shared, merchant, uuid)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"webhook_id": delivery.webhook_id, "subscription_id": s.rest_id(), "type": "test"}),
    ))
}
