//! The Ivy side as the reconciler sees it: one [`IvyApi`] trait, its value types and its
//! classified errors, with one implementation per API dialect.
//!
//! The reconciler knows only this module's types. Each dialect module maps them to and from its
//! own wire format; nothing here knows about HTTP paths or JSON field names.

pub mod client;
pub mod dialect;
pub mod error;
pub mod internal;
pub mod redacted;
pub mod rest;
pub mod service;
pub mod signature;

use std::sync::Arc;

use async_trait::async_trait;

pub use client::{ClientConfig, build_ivy_client};
pub use dialect::Dialect;
pub use error::{ErrorClass, IvyError};
pub use redacted::{ApiKey, SigningSecret};
pub use signature::{SignatureError, sign, verify_signature};

/// What the operator asks Ivy to hold for one subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionRequest {
    /// The https URL Ivy delivers to.
    pub url: String,
    /// Event names from Ivy's catalogue, in the order the user gave them.
    pub events: Vec<String>,
    /// Free text; the operator appends its ownership marker here (see the controller).
    /// Dialects without a description field drop it.
    pub description: Option<String>,
    /// Whether Ivy should deliver; dialects without an active flag ignore `false` only where
    /// [`Capabilities::active_flag`] says so.
    pub active: bool,
}

/// A change to an existing subscription: only the fields that are `Some` are sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscriptionPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub active: Option<bool>,
}

impl SubscriptionPatch {
    /// True when the patch would change nothing.
    pub fn is_empty(&self) -> bool {
        self.url.is_none()
            && self.events.is_none()
            && self.description.is_none()
            && self.active.is_none()
    }
}

/// A subscription as Ivy reports it. Never carries the signing secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteSubscription {
    /// Ivy's id (a UUID in `rest`, `wsub_…` in `internal`, an opaque string in `service`).
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    /// `None` where the dialect has no description field.
    pub description: Option<String>,
    /// `None` where the dialect has no active flag.
    pub active: Option<bool>,
}

/// The answer to a create: the subscription and, where the dialect returns one, its signing
/// secret. This is the only moment the secret is ever visible.
#[derive(Clone, Debug)]
pub struct CreatedSubscription {
    pub subscription: RemoteSubscription,
    /// `None` in the `service` dialect, where the secret belongs to the merchant app.
    pub signing_secret: Option<SigningSecret>,
}

/// An `Idempotency-Key` header value (1..=255 visible ASCII characters).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Longest key Ivy accepts.
    pub const MAX_LEN: usize = 255;

    /// Builds a key, refusing values Ivy would reject.
    pub fn new(value: impl Into<String>) -> Result<Self, IvyError> {
        let value = value.into();
        let valid = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value.bytes().all(|b| b.is_ascii_graphic());
        if valid {
            Ok(Self(value))
        } else {
            Err(IvyError::InvalidRequest {
                message: "idempotency key must be 1 to 255 visible ASCII characters".into(),
            })
        }
    }

    /// A fresh random key, for calls whose retry need not replay a specific earlier call.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a dialect can do, so callers branch on data instead of matching on errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// A direct `get` by id exists (else [`IvyApi::get`] scans [`IvyApi::list`]).
    pub get: bool,
    /// Subscriptions can be listed.
    pub list: bool,
    /// Subscriptions can be deleted.
    pub delete: bool,
    /// Subscriptions carry a description (where the operator keeps its ownership marker).
    pub description: bool,
    /// Subscriptions carry an active flag.
    pub active_flag: bool,
    /// Create returns a per-subscription signing secret (else the secret belongs to the app).
    pub per_subscription_secret: bool,
    /// A test event can be triggered for one subscription.
    pub trigger_test: bool,
}

/// Ivy's webhook-subscription API, whatever its dialect.
///
/// Every mutating call takes an [`IdempotencyKey`]; implementations send it as the
/// `Idempotency-Key` header. A verb the dialect lacks returns [`IvyError::Unsupported`].
#[async_trait]
pub trait IvyApi: Send + Sync {
    /// Which wire dialect this client speaks.
    fn dialect(&self) -> Dialect;

    /// What this dialect supports.
    fn capabilities(&self) -> Capabilities;

    /// Creates a subscription. The signing secret (where the dialect has one) is in the answer.
    async fn create(
        &self,
        request: &SubscriptionRequest,
        key: &IdempotencyKey,
    ) -> Result<CreatedSubscription, IvyError>;

    /// Reads one subscription; [`IvyError::NotFound`] when Ivy does not know the id.
    async fn get(&self, id: &str) -> Result<RemoteSubscription, IvyError>;

    /// Changes the given fields of one subscription and returns it as Ivy now holds it.
    async fn update(
        &self,
        id: &str,
        patch: &SubscriptionPatch,
        key: &IdempotencyKey,
    ) -> Result<RemoteSubscription, IvyError>;

    /// Deletes one subscription; [`IvyError::NotFound`] when it is already gone.
    async fn delete(&self, id: &str, key: &IdempotencyKey) -> Result<(), IvyError>;

    /// Every subscription of the merchant (all pages).
    async fn list(&self) -> Result<Vec<RemoteSubscription>, IvyError>;

    /// Asks Ivy to send the `test` event to one subscription.
    async fn trigger_test(&self, id: &str) -> Result<(), IvyError>;
}

/// The shared handle the controller keeps.
pub type SharedIvyApi = Arc<dyn IvyApi>;
