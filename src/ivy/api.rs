//! The [`IvyApi`] trait the reconciler sees, and the [`Capabilities`] a dialect reports.

use std::sync::Arc;

use async_trait::async_trait;

use super::dialect::Dialect;
use super::error::IvyError;
use super::types::{
    CreatedSubscription, IdempotencyKey, RemoteSubscription, SubscriptionPatch, SubscriptionRequest,
};

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
