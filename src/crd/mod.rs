//! The `WebhookSubscription` custom resource (`webhooks.ivy.dev/v1alpha1`): types, schema and
//! validation rules only. Every `///` on a field becomes `kubectl explain` text.

pub mod account;
pub mod events;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use account::{AccountKind, AccountRef, ClusterIvyAccount, IvyAccount};
pub use events::EventName;

/// API group of the resource.
pub const GROUP: &str = "webhooks.ivy.dev";
/// Finalizer that guards deletion of the remote subscription.
pub const FINALIZER: &str = "webhooks.ivy.dev/cleanup";
/// Annotation: set to any new value to rotate the signing secret.
pub const ANNOTATION_ROTATE: &str = "webhooks.ivy.dev/rotate-secret";
/// Annotation: `"true"` stops all remote calls until removed.
pub const ANNOTATION_PAUSED: &str = "webhooks.ivy.dev/paused";
/// Annotation: adopt this existing remote subscription instead of creating one.
pub const ANNOTATION_ADOPT: &str = "webhooks.ivy.dev/subscription-id";
/// Longest URL the schema admits.
pub const MAX_URL_LEN: usize = 2048;
/// Pod-template annotation the operator sets on `spec.restartOnRotation` workloads: a hash of
/// the current signing secret, so that a new secret rolls their pods.
pub const ANNOTATION_SECRET_HASH: &str = "webhooks.ivy.dev/secret-hash";
/// Most workloads `spec.restartOnRotation` may name.
pub const MAX_RESTART_TARGETS: usize = 16;
/// Longest description the schema admits (Ivy's limit is undocumented; this leaves room for
/// the operator's ownership marker).
pub const MAX_DESCRIPTION_LEN: usize = 200;

/// Desired state of one Ivy webhook subscription.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "webhooks.ivy.dev",
    version = "v1alpha1",
    kind = "WebhookSubscription",
    plural = "webhooksubscriptions",
    singular = "webhooksubscription",
    shortname = "ivywh",
    category = "ivy",
    namespaced,
    cel,
    status = "WebhookSubscriptionStatus",
    derive = "PartialEq",
    doc = "An Ivy webhook subscription, kept in step with Ivy's API, whose signing secret is stored in a Secret.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", priority = "1"),
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(name = "Subscription", type_ = "string", json_path = ".status.subscriptionId"),
    printcolumn(name = "Secret", type_ = "string", json_path = ".status.secretName"),
    printcolumn(name = "Rotated", type_ = "date", json_path = ".status.lastRotationTime"),
    printcolumn(name = "Message", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].message", priority = "1"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 241").message("metadata.name must be at most 241 characters so that the default Secret name '<name>-ivy-webhook' fits in 253"),
)]
#[x_kube(validation = Rule::new("has(self.secretName) == has(oldSelf.secretName) && (!has(self.secretName) || self.secretName == oldSelf.secretName)").message("spec.secretName is immutable: create a new WebhookSubscription to use another Secret"))]
#[x_kube(validation = Rule::new("has(self.accountRef) == has(oldSelf.accountRef) && (!has(self.accountRef) || self.accountRef == oldSelf.accountRef)").message("spec.accountRef is immutable: the subscription lives in its account at Ivy; create a new WebhookSubscription to use another account"))]
#[serde(rename_all = "camelCase")]
pub struct WebhookSubscriptionSpec {
    /// The HTTPS URL Ivy delivers events to. Must be an absolute https:// URL with a host.
    #[x_kube(validation = Rule::new("isURL(self) && url(self).getScheme() == 'https' && url(self).getHostname() != ''").message("url must be an absolute https:// URL with a host (Ivy delivers only over HTTPS)"))]
    #[schemars(length(min = 9, max = 2048))]
    pub url: String,

    /// Event types to receive: one or more distinct names from Ivy's catalogue,
    /// e.g. order_created, refund_succeeded, checkout_session.completed.
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub events: Vec<EventName>,

    /// Free text shown in Ivy's dashboard. The operator appends a short ownership marker to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub description: Option<String>,

    /// Whether Ivy delivers events to this subscription. Defaults to true.
    #[serde(default = "default_active")]
    pub active: bool,

    /// Name of the Secret (in this namespace) that receives the signing secret.
    /// Defaults to "<metadata.name>-ivy-webhook". Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub secret_name: Option<String>,

    /// What happens at Ivy when this resource is deleted: Delete (default) removes the remote
    /// subscription; Orphan keeps it, and keeps its Secret.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// The Ivy account to manage this subscription with: an IvyAccount in this namespace
    /// (kind IvyAccount, the default) or a ClusterIvyAccount that admits this namespace.
    /// Without it the operator's own account (its flags) is used. Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<AccountRef>,
    /// Labels and annotations added to the generated Secret, e.g. those a reloader watches.
    /// The operator's own labels (app.kubernetes.io/managed-by, webhooks.ivy.dev/subscription)
    /// win over these, and annotations under webhooks.ivy.dev/ are the operator's alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_template: Option<SecretTemplate>,

    /// Workloads in this namespace whose pods are restarted when the signing secret changes
    /// (rotation, replacement of a vanished subscription, a lost Secret): the operator sets the
    /// pod-template annotation webhooks.ivy.dev/secret-hash to a hash of the new secret, once
    /// per change. Needs the chart's restartOnRotation.enabled=true. Receivers that read the
    /// Secret from a volume and accept previous-signing-secret need none of this.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["kind".into(), "name".into()]))]
    pub restart_on_rotation: Vec<WorkloadRef>,

    /// Rotate the signing secret on a schedule, on top of the rotate-secret annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationSpec>,
}

/// Labels and annotations for the generated Secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// Labels added to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A workload in the resource's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    /// Deployment, StatefulSet or DaemonSet (group apps).
    pub kind: WorkloadKind,
    /// Name of the workload in this namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

/// Kinds of workload whose pod template the operator may annotate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }
}

/// Scheduled rotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationSpec {
    /// How long a signing secret is used before the operator rotates it, counted from its
    /// creation or last rotation: whole numbers of days, hours, minutes and seconds in that
    /// order, e.g. 90d, 2160h, 36h30m; at least 1m. A rotation never starts while the previous
    /// one's grace period runs, so rotations are at least that far apart.
    #[x_kube(validation = Rule::new("self.contains('d') || duration(self) >= duration('1m')").message("rotation.every must be at least 1m"))]
    #[schemars(
        length(min = 2, max = 32),
        regex(pattern = r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$")
    )]
    pub every: String,
}

fn default_active() -> bool {
    true
}

/// What deleting the resource does to the remote subscription.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the remote subscription (and, through its owner reference, the Secret).
    #[default]
    Delete,
    /// Keep the remote subscription and the Secret; only the resource goes away.
    Orphan,
}

/// Observed state, written by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSubscriptionStatus {
    /// Ivy's id of the subscription this resource manages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,

    /// The Secret holding the signing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,

    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions; `Ready` tells whether Ivy holds the spec and the Secret holds its
    /// signing secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// When the current signing secret was stored: its last rotation, or the create of its
    /// subscription. Scheduled rotations (spec.rotation.every) count from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<Time>,
}

impl WebhookSubscription {
    /// The Secret name this resource uses: `spec.secretName` or `<name>-ivy-webhook`.
    pub fn secret_name(&self) -> String {
        match &self.spec.secret_name {
            Some(name) => name.clone(),
            None => default_secret_name(self.metadata.name.as_deref().unwrap_or_default()),
        }
    }

    /// The annotation value, if set.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }

    /// Whether the user paused remote calls.
    pub fn is_paused(&self) -> bool {
        self.annotation(ANNOTATION_PAUSED)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// The `Ready` condition, if any.
    pub fn ready_condition(&self) -> Option<&Condition> {
        self.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
    }
}

/// `<name>-ivy-webhook`.
pub fn default_secret_name(resource_name: &str) -> String {
    format!("{resource_name}-ivy-webhook")
}

/// The CRD as YAML, exactly as `ivy-webhook-operator crd` prints it.
pub fn crd_yaml() -> Result<String, serde_norway::Error> {
    serde_norway::to_string(&WebhookSubscription::crd())
}

/// Every CRD of the operator as (file name `<plural>.<group>.yaml`, YAML), in the order
/// `ivy-webhook-operator crd` prints them.
pub fn crd_files() -> Result<Vec<(String, String)>, serde_norway::Error> {
    Ok(vec![
        (
            format!("{}.yaml", WebhookSubscription::crd_name()),
            crd_yaml()?,
        ),
        (
            format!("{}.yaml", IvyAccount::crd_name()),
            account::ivy_account_crd_yaml()?,
        ),
        (
            format!("{}.yaml", ClusterIvyAccount::crd_name()),
            account::cluster_ivy_account_crd_yaml()?,
        ),
    ])
}

#[cfg(test)]
mod tests;
