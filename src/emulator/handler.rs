//! What the three dialect modules' handlers share: refusals answered in the dialect's shape
//! through `?`, reading request bodies, the page-size rule, the model calls every dialect
//! makes alike, and the marks a handler puts on its answer for the counters. Wire types, error
//! codes and wording stay in each dialect module.

use std::marker::PhantomData;
use std::ops::RangeInclusive;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::counters::{Operation, Touched};
use super::deliveries;
use super::delivery_log::Delivery;
use super::errors::ApiError;
use super::model::{Change, Merchant, ModelError, NewSubscription, Subscription};
use super::payloads;
use super::shared::Shared;
use crate::ivy::Dialect;

/// Page size of a list that names none.
const DEFAULT_PAGE_LIMIT: usize = 20;
/// Page sizes every dialect accepts.
const PAGE_LIMITS: RangeInclusive<usize> = 1..=100;

/// One dialect as its handlers answer: the error shape it renders and its own names for the
/// model's refusals.
pub(crate) trait Wire {
    const DIALECT: Dialect;

    fn model_error(err: ModelError) -> ApiError;
}

/// A refusal on its way out, rendered in `W`'s shape.
pub(crate) struct Refusal<W>(ApiError, PhantomData<W>);

impl<W: Wire> IntoResponse for Refusal<W> {
    fn into_response(self) -> Response {
        self.0.render(W::DIALECT)
    }
}

impl<W> From<ApiError> for Refusal<W> {
    fn from(err: ApiError) -> Self {
        Self(err, PhantomData)
    }
}

impl<W: Wire> From<ModelError> for Refusal<W> {
    fn from(err: ModelError) -> Self {
        Self(W::model_error(err), PhantomData)
    }
}

/// What a handler of dialect `W` returns.
pub(crate) type Answer<W> = Result<Response, Refusal<W>>;

/// Who calls a dialect route: the shared state and the merchant whose API key the pipeline in
/// `server` accepted.
pub(crate) struct Caller {
    pub shared: Arc<Shared>,
    pub merchant: Merchant,
}

impl FromRequestParts<Arc<Shared>> for Caller {
    /// Only a route mounted without the pipeline lacks a merchant: a bug, so a bare 500.
    type Rejection = StatusCode;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        let merchant = parts
            .extensions
            .get::<Merchant>()
            .copied()
            .ok_or(StatusCode::INTERNAL_SERVER_ERROR)?;
        Ok(Self {
            shared: shared.clone(),
            merchant,
        })
    }
}

/// Reads a JSON request body into `T`, or a 400.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::validation(
            "invalid_request",
            format!("The request body is not valid JSON for this endpoint: {e}"),
        )
    })
}

/// Like [`parse_body`], but an empty body means "all defaults" (list verbs take no arguments).
pub(crate) fn parse_optional_body<T: DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_body(body)
    }
}

/// The page size a list asked for; out of range is `code` (each dialect has its own).
pub(crate) fn page_limit(requested: Option<usize>, code: &str) -> Result<usize, ApiError> {
    let limit = requested.unwrap_or(DEFAULT_PAGE_LIMIT);
    if PAGE_LIMITS.contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::validation(code, "limit must be between 1 and 100.").with_param("limit"))
    }
}

/// Creates a subscription under the configured URL rules.
pub(crate) fn create(
    shared: &Shared,
    merchant: Merchant,
    via: Dialect,
    new: NewSubscription,
) -> Result<Subscription, ModelError> {
    let allow_http = shared.config.allow_http_urls;
    shared.lock().store.create(merchant, via, new, allow_http)
}

/// Changes a subscription under the configured URL rules.
pub(crate) fn update(
    shared: &Shared,
    merchant: Merchant,
    uuid: Uuid,
    change: Change,
) -> Result<Subscription, ModelError> {
    let allow_http = shared.config.allow_http_urls;
    shared
        .lock()
        .store
        .update(merchant, uuid, change, allow_http)
}

/// Marks a successful mutation's answer with the subscription it changed (for the mutation
/// log).
pub(crate) fn touched(mut response: Response, subscription: &Subscription) -> Response {
    response.extensions_mut().insert(Touched {
        uuid: subscription.uuid,
        url: subscription.url.clone(),
    });
    response
}

/// Marks a list answer for a page after the first (counted as `list-page`, not `list`).
pub(crate) fn listed(mut response: Response, first_page: bool) -> Response {
    if !first_page {
        response.extensions_mut().insert(Operation::ListPage);
    }
    response
}

/// Sends the `test` event to one of the merchant's subscriptions (every dialect's test verb).
pub(crate) fn send_test(
    shared: &Arc<Shared>,
    merchant: Merchant,
    uuid: Uuid,
) -> Result<(Subscription, Delivery), ModelError> {
    let subscription = shared.lock().store.get(merchant, uuid).cloned()?;
    let payload = payloads::payload("test", merchant.0);
    let delivery = deliveries::send_event(shared, &subscription, "test", &payload);
    Ok((subscription, delivery))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_limit_defaults_to_20_and_must_be_1_to_100() {
        assert_eq!(page_limit(None, "c").unwrap(), 20);
        assert_eq!(page_limit(Some(100), "c").unwrap(), 100);
        for bad in [0, 101] {
            let err = page_limit(Some(bad), "invalid_limit").unwrap_err();
            assert_eq!(
                (err.code.as_str(), err.param),
                ("invalid_limit", Some("limit"))
            );
        }
    }

    #[test]
    fn an_empty_optional_body_is_all_defaults_but_bad_json_is_refused() {
        #[derive(serde::Deserialize, Default, Debug, PartialEq)]
        struct Args {
            limit: Option<usize>,
        }
        assert_eq!(
            parse_optional_body::<Args>(b" \n").unwrap(),
            Args::default()
        );
        assert_eq!(
            parse_optional_body::<Args>(br#"{"limit":5}"#).unwrap(),
            Args { limit: Some(5) }
        );
        let err = parse_optional_body::<Args>(b"{").unwrap_err();
        assert_eq!(err.code, "invalid_request");
    }
}
