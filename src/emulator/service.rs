//! The `service` dialect as the emulator serves it (Ivy's webhook guide and its SDKs), with
//! its own wire types. Every verb is a `POST` with a JSON body:
//!
//! - `/api/service/webhook-subscription/create {url, events}` -> 200 the subscription
//! - `/api/service/webhook-subscription/update {id, url?, events?}` -> 200 the subscription
//! - `/api/service/webhook-subscription/list {limit?, skip?}` -> 200
//!   `{items, count, hasNext, skip}` (`count` is the total; limit 1..=100, default 20;
//!   `{items}` alone under the `unpaged-lists` quirk)
//! - `/api/service/webhook-subscription/delete {id}` -> 200 `{success: true}`
//! - `/api/service/webhook-subscription/ping {id}` -> 200 `{success: true}` (sends `test`)
//! - `/api/service/webhook/trigger {id}` -> 200 `{success: true}`: re-sends the delivered
//!   webhook whose body `id` this is
//!
//! A subscription is `{id, merchant, merchantApp, url, events, createdAt, updatedAt}`; there is
//! no description, no active flag and no secret (deliveries are signed with the app's secret).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::deliveries;
use super::errors::{ApiError, Family, json_response};
use super::handler::{
    self, Caller, Wire, listed, page_limit, parse_body, parse_optional_body, touched,
};
use super::model::{Change, Field, Filter, ModelError, NewSubscription, Subscription, parse_id};
use super::paging::{self, PageRequest, Start};
use super::shared::Shared;
use crate::ivy::Dialect;

/// The `service` dialect, for [`handler::Answer`].
pub(crate) struct Service;

type Answer = handler::Answer<Service>;

const DIALECT: Dialect = Service::DIALECT;
const BASE: &str = "/api/service/webhook-subscription";

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(&format!("{BASE}/create"), post(create))
        .route(&format!("{BASE}/update"), post(update))
        .route(&format!("{BASE}/list"), post(list))
        .route(&format!("{BASE}/delete"), post(remove))
        .route(&format!("{BASE}/ping"), post(ping))
        .route("/api/service/webhook/trigger", post(resend))
}

#[derive(Deserialize)]
struct CreateRequest {
    url: Option<String>,
    events: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct UpdateRequest {
    id: Option<String>,
    url: Option<String>,
    events: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ByIdRequest {
    id: Option<String>,
}

#[derive(Deserialize, Default)]
struct ListRequest {
    limit: Option<usize>,
    skip: Option<usize>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireSubscription {
    id: String,
    merchant: String,
    merchant_app: String,
    url: String,
    events: Vec<String>,
    created_at: String,
    updated_at: String,
}

impl From<&Subscription> for WireSubscription {
    fn from(s: &Subscription) -> Self {
        WireSubscription {
            id: s.service_id(),
            merchant: s.merchant.name(),
            merchant_app: s.merchant.app_name(),
            url: s.url.clone(),
            events: s.events.clone(),
            created_at: s.created_at.to_string(),
            updated_at: s.updated_at.to_string(),
        }
    }
}

#[derive(Serialize)]
struct Page {
    items: Vec<WireSubscription>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    paging: Option<Paging>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Paging {
    count: usize,
    has_next: bool,
    skip: usize,
}

impl Wire for Service {
    const DIALECT: Dialect = Dialect::Service;

    fn model_error(err: ModelError) -> ApiError {
        match err {
            ModelError::Invalid { field, message } => match field {
                Field::Url => ApiError::validation("invalid_url", message).with_param("url"),
                Field::Events => {
                    ApiError::validation("invalid_events", message).with_param("events")
                }
                Field::Description => ApiError::validation("invalid_request", message),
            },
            ModelError::NotFound => ApiError::not_found("resource_missing").with_param("id"),
            ModelError::DuplicateUrl => ApiError::new(
                StatusCode::CONFLICT,
                Family::Conflict,
                "duplicate_url",
                "A webhook subscription with this url already exists for this merchant app.",
            )
            .with_param("url"),
        }
    }
}

fn body_id(id: Option<&str>) -> Result<Uuid, ApiError> {
    let id = id.ok_or_else(|| {
        ApiError::validation("parameter_missing", "id is required.").with_param("id")
    })?;
    parse_id(DIALECT, id).ok_or_else(|| ApiError::not_found("resource_missing").with_param("id"))
}

/// The subscription an `{id}` body names.
fn target(body: &[u8]) -> Result<Uuid, ApiError> {
    let request: ByIdRequest = parse_body(body)?;
    body_id(request.id.as_deref())
}

/// What `delete`, `ping` and `trigger` answer.
fn success() -> Answer {
    Ok(json_response(StatusCode::OK, &json!({"success": true})))
}

async fn create(Caller { shared, merchant }: Caller, body: Bytes) -> Answer {
    let request: CreateRequest = parse_body(&body)?;
    let Some(url) = request.url else {
        return Err(
            ApiError::validation("parameter_missing", "url is required.")
                .with_param("url")
                .into(),
        );
    };
    let Some(events) = request.events else {
        return Err(
            ApiError::validation("parameter_missing", "events is required.")
                .with_param("events")
                .into(),
        );
    };
    let new = NewSubscription {
        url,
        events,
        description: None,
        active: true,
    };
    let s = handler::create(&shared, merchant, DIALECT, new)?;
    let response = json_response(StatusCode::OK, &WireSubscription::from(&s));
    Ok(touched(response, &s))
}

async fn update(Caller { shared, merchant }: Caller, body: Bytes) -> Answer {
    let request: UpdateRequest = parse_body(&body)?;
    let uuid = body_id(request.id.as_deref())?;
    let change = Change {
        url: request.url,
        events: request.events,
        ..Default::default()
    };
    let s = handler::update(&shared, merchant, uuid, change)?;
    let response = json_response(StatusCode::OK, &WireSubscription::from(&s));
    Ok(touched(response, &s))
}

async fn list(Caller { shared, merchant }: Caller, body: Bytes) -> Answer {
    let request: ListRequest = parse_optional_body(&body)?;
    let limit = page_limit(request.limit, "invalid_request")?;
    let skip = request.skip.unwrap_or(0);
    let request = PageRequest {
        start: Start::Offset(skip),
        limit,
        filter: Filter::default(),
    };
    let answer = {
        let inner = shared.lock();
        let page = paging::page(&inner.store, merchant, &request, &shared.config.quirks);
        Page {
            paging: page.paged.then_some(Paging {
                count: page.total,
                has_next: page.has_more,
                skip,
            }),
            items: page.items.into_iter().map(WireSubscription::from).collect(),
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
    Ok(touched(success()?, &s))
}

async fn ping(Caller { shared, merchant }: Caller, body: Bytes) -> Answer {
    let uuid = target(&body)?;
    handler::send_test(&shared, merchant, uuid)?;
    success()
}

async fn resend(Caller { shared, merchant }: Caller, body: Bytes) -> Answer {
    let request: ByIdRequest = parse_body(&body)?;
    let Some(id) = request.id else {
        return Err(ApiError::validation("parameter_missing", "id is required.")
            .with_param("id")
            .into());
    };
    match deliveries::resend(&shared, merchant, &id) {
        Some(_) => success(),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Family::NotFound,
            "resource_missing",
            "No delivered webhook with this id (or its subscription is gone).",
        )
        .with_param("id")
        .into()),
    }
}
