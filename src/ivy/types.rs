//! The values that cross the [`IvyApi`](super::api::IvyApi) boundary: what the operator asks
//! for, what Ivy reports, and the idempotency key every mutating call carries.

use super::error::IvyError;
use super::redacted::SigningSecret;

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
    /// [`Capabilities::active_flag`](super::api::Capabilities::active_flag) says so.
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
