//! The Ivy side as the reconciler sees it: one [`IvyApi`] trait, its value types and its
//! classified errors, with one HTTP client per API dialect and the factory that picks one.
//!
//! The reconciler knows only the trait, the value types and [`IvyError`]. Paths, JSON field
//! names and error bodies live in the dialect clients (`dialects/`), which send every request
//! through the shared HTTP plumbing (`http/`: configuration, the API-key file, transport,
//! status classification, tolerant decoding).
//!
//! Imports point one way: `dialects/` -> `http/` -> the value and error types; `http/` knows no
//! dialect, and this file imports the dialects only to build one in [`build_ivy_client`].

mod api;
pub mod dialect;
pub(crate) mod dialects;
pub mod error;
pub(crate) mod http;
pub mod redacted;
pub mod signature;
mod types;

use std::sync::Arc;

pub use api::{Capabilities, IvyApi, SharedIvyApi};
pub use dialect::Dialect;
pub use error::{ConflictKind, ErrorClass, IvyError, error_chain};
pub use http::{
    ClientConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, HttpClientError, http_client,
};
pub use redacted::{ApiKey, SigningSecret};
pub use signature::{SignatureError, sign, verify_signature};
pub use types::{
    CreatedSubscription, IdempotencyKey, RemoteSubscription, SubscriptionPatch, SubscriptionRequest,
};

/// The [`IvyApi`] implementation for `config.dialect`, sending through the shared `http`.
pub fn build_ivy_client(config: ClientConfig, http: reqwest::Client) -> SharedIvyApi {
    let dialect = config.dialect;
    let transport = http::Transport::new(config, http);
    match dialect {
        Dialect::Rest => Arc::new(dialects::rest::RestClient::new(transport)),
        Dialect::Internal => Arc::new(dialects::internal::InternalClient::new(transport)),
        Dialect::Service => Arc::new(dialects::service::ServiceClient::new(transport)),
    }
}
