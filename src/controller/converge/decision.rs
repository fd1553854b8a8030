//! The vocabulary of converge: what a reconcile knows ([`Inputs`], [`Facts`]) and what it may
//! do next ([`Decision`]). Every step's planner reads the first two and names the third.

use std::time::Duration;

use jiff::Timestamp;

use crate::controller::outcome::Retry;
use crate::controller::secret::StoredSecret;
use crate::controller::status::Outcome;
use crate::crd::{ANNOTATION_ROTATE, WebhookSubscription};
use crate::ivy::{Capabilities, RemoteSubscription, SigningSecret, SubscriptionPatch};

/// What does not change while one resource is reconciled.
#[derive(Clone, Debug)]
pub(crate) struct Inputs<'a> {
    pub sub: &'a WebhookSubscription,
    pub uid: &'a str,
    pub capabilities: Capabilities,
    /// The merchant app's signing secret (`service` dialect).
    pub app_secret: Option<&'a SigningSecret>,
    pub now: Timestamp,
    pub rotation_grace_period: Duration,
    /// How long a condition the user must resolve waits before it is looked at again.
    pub resync_interval: Duration,
    /// The fingerprint this resource was last verified against Ivy with, if that was within the
    /// resync interval.
    pub verified: Option<u64>,
    /// The Secret exists but does not name this resource as its controller yet.
    pub needs_owner: bool,
    /// The Secret was written with another `spec.secretTemplate`: write it again at the end.
    pub template_outdated: bool,
    /// The resource is being deleted: nothing may be created for it.
    pub deleting: bool,
    /// Whether existing subscriptions may be taken over.
    pub allow_adoption: bool,
    /// The subscription id the operator last recorded in the status (only the operator writes
    /// the status, so this id was verified as this resource's).
    pub recorded_id: Option<&'a str>,
}

/// The result of looking something up during this reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Lookup<T> {
    #[default]
    NotDone,
    Absent,
    Found(T),
}

/// What the driver knows about the stored subscription at Ivy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Remote {
    /// Not read in this reconcile.
    #[default]
    Unread,
    /// As Ivy reported it.
    Present(RemoteSubscription),
    /// Known to match the spec (just created or updated from it).
    InStep,
}

/// A create Ivy refused because the URL is taken, and what was found out about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Duplicate {
    pub url: String,
    /// The subscription at Ivy that holds the URL.
    pub holder: Lookup<RemoteSubscription>,
    /// The holder was ours (left by an interrupted attempt) and has been deleted.
    pub cleared: bool,
}

impl Duplicate {
    pub fn new(url: String) -> Self {
        Self {
            url,
            holder: Lookup::NotDone,
            cleared: false,
        }
    }
}

/// What the driver has learnt and changed so far in this reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Facts {
    /// What the Secret holds (or will hold once written).
    pub stored: StoredSecret,
    pub remote: Remote,
    /// The stored subscription was found missing at Ivy.
    pub vanished: Option<String>,
    /// The subscription named by the adoption annotation.
    pub adoption: Lookup<RemoteSubscription>,
    pub duplicate: Option<Duplicate>,
    /// A subscription was created in this reconcile.
    pub created: bool,
    /// The Secret recorded a create attempt whose outcome was never stored: Ivy may hold a
    /// subscription of ours whose secret is lost.
    pub interrupted: bool,
    /// Leftovers of interrupted attempts were looked for in this reconcile.
    pub swept: bool,
    /// Which subscriptions another resource in the cluster claims: id, and `Some(who)` (safe
    /// to show: never another namespace's names) when claimed, `None` when free.
    pub claims: Vec<(String, Option<String>)>,
}

impl Facts {
    pub fn new(stored: StoredSecret) -> Self {
        Self {
            interrupted: stored.attempt.is_some(),
            stored,
            ..Self::default()
        }
    }

    /// What is known about another resource claiming `id`.
    pub fn claim_of(&self, id: &str) -> Lookup<String> {
        match self.claims.iter().find(|(known, _)| known == id) {
            None => Lookup::NotDone,
            Some((_, None)) => Lookup::Absent,
            Some((_, Some(owner))) => Lookup::Found(owner.clone()),
        }
    }

    /// The `rotate-secret` value not yet answered, if a rotation can start now (there is a
    /// subscription, and no earlier rotation is still in its grace period).
    pub fn rotation_requested(&self, sub: &WebhookSubscription) -> Option<String> {
        let wanted = sub.annotation(ANNOTATION_ROTATE)?;
        let stored = &self.stored;
        let answered = stored.rotation.as_deref() == Some(wanted);
        (!answered && stored.subscription_id.is_some() && stored.previous_subscription_id.is_none())
            .then(|| wanted.to_owned())
    }
}

/// Why a subscription is being created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The resource has none yet (or its secret was lost).
    Initial,
    /// Ivy no longer has the stored subscription.
    Replace { vanished: String },
    /// A rotation asked for with this annotation value.
    Rotate { value: String },
}

impl Purpose {
    pub fn tag(&self) -> &'static str {
        match self {
            Purpose::Initial => "create",
            Purpose::Replace { .. } => "replace",
            Purpose::Rotate { .. } => "rotate",
        }
    }
}

/// The one next thing to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// A rotation's grace period is over: delete the old subscription, drop the old secret.
    FinishRotation { previous: Option<String> },
    /// Delete what an interrupted attempt left at Ivy.
    SweepLeftovers,
    /// Create a subscription and store its secret at once.
    Create(Purpose),
    /// Read the subscription the adoption annotation names.
    ReadForAdoption { id: String },
    /// Take over this existing subscription.
    Adopt(RemoteSubscription),
    /// Find which subscription holds a URL Ivy called taken.
    FindUrlHolder { url: String },
    /// Ask whether another live resource in the cluster owns this subscription: records it in
    /// its status, or has the UID its marker carries.
    CheckClaim {
        id: String,
        marker_uid: Option<String>,
    },
    /// Put this resource's marker on a subscription it took over, before changing anything
    /// else about it.
    MarkOwned { id: String, description: String },
    /// Delete a URL holder left by an interrupted attempt of ours.
    DeleteUrlHolder { id: String },
    /// Read the stored subscription to compare it with the spec.
    Read { id: String },
    /// Restore the spec at Ivy.
    Revert {
        id: String,
        patch: SubscriptionPatch,
    },
    /// Record a rotation request the dialect cannot honour.
    RotationUnsupported { value: String },
    /// Follow a changed app signing secret (`service` dialect).
    FollowAppSecret(SigningSecret),
    /// Stop: the user must act, or wait.
    Stop { outcome: Outcome, retry: Retry },
    /// Stop after cleaning up; try again soon.
    RetrySoon,
    /// In step: write what changed and report.
    Done,
}
