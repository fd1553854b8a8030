//! The apply path: validate -> read the Secret -> converge with Ivy (the create protocol,
//! rotation, drift) -> write the Secret -> write the status.
//!
//! The create protocol (see `docs/design.md`): a create carries an idempotency key derived from
//! the resource UID, the purpose and the body, and a `[ivywh:<uid>]` marker in its description;
//! its id and secret are written to the Secret in one write before the id reaches the status;
//! after every create, marked subscriptions whose secret the Secret does not hold are deleted.
//! Every step re-reads what it depends on, so a crash between any two steps is repaired by the
//! next reconcile.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};
use tracing::{debug, info};

use crate::controller::FIELD_MANAGER;
use crate::controller::context::Context;
use crate::controller::desired::{changed_fields, desired_request, drift_patch, rotation_url};
use crate::controller::error::{Error, Result};
use crate::controller::events;
use crate::controller::marker::{idempotency_key, is_marked_for, request_parts};
use crate::controller::secret::{SecretOwnership, StoredSecret, classify, desired_secret};
use crate::controller::status::{Outcome, Reason, compute_status};
use crate::controller::validate::{SpecError, validate};
use crate::crd::{ANNOTATION_ADOPT, ANNOTATION_ROTATE, WebhookSubscription};
use crate::ivy::error::ConflictKind;
use crate::ivy::{ErrorClass, IdempotencyKey, IvyError, RemoteSubscription, SigningSecret};

/// One resource being reconciled, with the handles every step uses.
pub(crate) struct Target {
    pub sub: Arc<WebhookSubscription>,
    pub uid: String,
    pub name: String,
    /// `namespace/name`, the key for backoff, caches and metrics.
    pub key: String,
    pub secret_name: String,
    pub secrets: Api<Secret>,
    pub subs: Api<WebhookSubscription>,
    /// What this reconcile last wrote to the Secret, so that unchanged content is not written
    /// twice.
    persisted: std::sync::Mutex<Option<StoredSecret>>,
}

impl Target {
    pub fn new(sub: Arc<WebhookSubscription>, ctx: &Context) -> Result<Self> {
        let namespace = sub
            .namespace()
            .ok_or(Error::MissingObjectKey("namespace"))?;
        let uid = sub.uid().ok_or(Error::MissingObjectKey("uid"))?;
        let name = sub.name_any();
        Ok(Self {
            key: format!("{namespace}/{name}"),
            secret_name: sub.secret_name(),
            secrets: Api::namespaced(ctx.client.clone(), &namespace),
            subs: Api::namespaced(ctx.client.clone(), &namespace),
            sub,
            uid,
            name,
            persisted: std::sync::Mutex::new(None),
        })
    }

    fn persisted(&self) -> Option<StoredSecret> {
        self.persisted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reads the resource's Secret.
    pub async fn read_secret(&self) -> Result<Option<Secret>> {
        self.secrets
            .get_opt(&self.secret_name)
            .await
            .map_err(|source| Error::GetSecret {
                name: self.secret_name.clone(),
                source,
            })
    }

    /// Writes the whole Secret in one server-side apply.
    pub async fn write_secret(&self, stored: &StoredSecret, owned: bool) -> Result<()> {
        let secret = desired_secret(&self.sub, stored, owned);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.secrets
            .patch(&self.secret_name, &params, &Patch::Apply(&secret))
            .await
            .map_err(|source| Error::ApplySecret {
                name: self.secret_name.clone(),
                source,
            })?;
        debug!(secret = %self.secret_name, "applied Secret");
        *self
            .persisted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(stored.clone());
        Ok(())
    }

    /// Writes the status for `outcome` unless it would change nothing.
    pub async fn write_status(&self, ctx: &Context, outcome: &Outcome) -> Result<()> {
        let status = compute_status(&self.sub, outcome, Timestamp::now());
        let ready = if outcome.reason.is_ready() {
            "True"
        } else {
            "False"
        };
        ctx.metrics.set_readiness(&self.key, Some(ready));
        if self.sub.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let patch = serde_json::json!({
            "apiVersion": WebhookSubscription::api_version(&()),
            "kind": WebhookSubscription::kind(&()),
            "status": status,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.subs
            .patch_status(&self.name, &params, &Patch::Apply(&patch))
            .await
            .map_err(|source| Error::ApplyStatus {
                name: self.name.clone(),
                source,
            })?;
        Ok(())
    }
}

/// Why a convergence stopped before the resource was in step with Ivy.
pub(crate) enum Interrupt {
    /// A call to Ivy failed; `action` says what was being done.
    Ivy {
        action: &'static str,
        error: IvyError,
    },
    /// A Kubernetes call failed.
    Kube(Error),
    /// A condition the user must resolve; `retry` says when to look again.
    Stop { outcome: Outcome, retry: Action },
    /// Progress was made that needs a fresh look (e.g. a leftover was deleted).
    RetrySoon,
}

impl From<Error> for Interrupt {
    fn from(error: Error) -> Self {
        Interrupt::Kube(error)
    }
}

fn ivy(action: &'static str) -> impl FnOnce(IvyError) -> Interrupt {
    move |error| Interrupt::Ivy { action, error }
}

type Step<T> = std::result::Result<T, Interrupt>;

/// A crash point: with the `fail/failpoints` feature (tests only) a configured point ends the
/// reconcile here as if the process had been killed; otherwise it compiles to nothing.
macro_rules! crash_point {
    ($name:literal) => {
        fail::fail_point!($name, |_| Err(Interrupt::Kube(Error::InjectedFault($name))))
    };
}
pub(crate) use crash_point;

/// Reconciles a resource that is not being deleted.
pub async fn apply(sub: Arc<WebhookSubscription>, ctx: Arc<Context>) -> Result<Action> {
    let target = Target::new(sub, &ctx)?;
    let sub = target.sub.as_ref();

    if let Err(problem) = validate(sub, ctx.ivy.capabilities()) {
        let reason = match problem {
            SpecError::Invalid(_) => Reason::InvalidSpec,
            SpecError::Unsupported(_) => Reason::Unsupported,
        };
        let outcome = Outcome::new(reason, problem.to_string(), None);
        return finish(&target, &ctx, outcome, Action::await_change()).await;
    }
    if sub.is_paused() {
        let outcome = Outcome::new(
            Reason::Paused,
            "paused by the webhooks.ivy.dev/paused annotation: no calls to Ivy until it is removed",
            None,
        );
        return finish(&target, &ctx, outcome, Action::await_change()).await;
    }

    let existing = target.read_secret().await?;
    let stored = match classify(existing.as_ref(), sub) {
        SecretOwnership::Foreign { reason } => {
            let message = format!(
                "Secret {} exists and is not managed by this WebhookSubscription ({reason}); it is never overwritten: delete or rename that Secret, or recreate this resource with another spec.secretName",
                target.secret_name
            );
            events::warning(&ctx, sub, "SecretConflict", message.clone()).await;
            let outcome = Outcome::new(Reason::SecretConflict, message, None);
            let retry = Action::requeue(ctx.config.recheck_interval);
            return finish(&target, &ctx, outcome, retry).await;
        }
        SecretOwnership::Absent => StoredSecret::default(),
        SecretOwnership::Ours(stored) => stored,
    };
    let needs_owner = existing
        .as_ref()
        .is_some_and(|s| !is_controlled_by(s, &target.uid));

    match converge(&target, &ctx, stored, needs_owner).await {
        Ok((outcome, next_check)) => {
            ctx.backoff.reset(&target.key);
            finish(&target, &ctx, outcome, Action::requeue(next_check)).await
        }
        Err(Interrupt::Kube(error)) => Err(error),
        Err(Interrupt::Stop { outcome, retry }) => {
            ctx.backoff.reset(&target.key);
            finish(&target, &ctx, outcome, retry).await
        }
        Err(Interrupt::RetrySoon) => {
            let delay = ctx.backoff.next_delay(&target.key, None);
            let outcome = Outcome::new(
                Reason::IvyUnavailable,
                "cleaned up after an interrupted attempt; retrying",
                None,
            );
            finish(&target, &ctx, outcome, Action::requeue(delay)).await
        }
        Err(Interrupt::Ivy { action, error }) => {
            ctx.verified.forget(&target.key);
            let (outcome, retry) = ivy_failure(&target, &ctx, action, &error);
            if matches!(error.class(), ErrorClass::Permanent | ErrorClass::Auth) {
                events::warning(&ctx, sub, outcome.reason.as_str(), outcome.message.clone()).await;
            }
            finish(&target, &ctx, outcome, retry).await
        }
    }
}

async fn finish(
    target: &Target,
    ctx: &Context,
    outcome: Outcome,
    action: Action,
) -> Result<Action> {
    target.write_status(ctx, &outcome).await?;
    Ok(action)
}

fn is_controlled_by(secret: &Secret, uid: &str) -> bool {
    secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

/// The condition and the next try for a failed Ivy call.
fn ivy_failure(
    target: &Target,
    ctx: &Context,
    action: &str,
    error: &IvyError,
) -> (Outcome, Action) {
    let text = format!("failed to {action}: {error}");
    match (error.class(), error) {
        (_, IvyError::Validation { message, .. }) => (
            Outcome::new(
                Reason::IvyRejected,
                format!("Ivy rejected the subscription: {message}"),
                None,
            ),
            Action::requeue(ctx.config.resync_interval),
        ),
        (
            _,
            IvyError::Conflict {
                kind: ConflictKind::DuplicateUrl,
                ..
            },
        ) => (
            Outcome::new(Reason::DuplicateUrl, text, None),
            Action::requeue(ctx.config.resync_interval),
        ),
        (_, IvyError::Unsupported { .. }) => (
            Outcome::new(Reason::Unsupported, text, None),
            Action::await_change(),
        ),
        (_, IvyError::InvalidRequest { .. }) => (
            Outcome::new(Reason::InvalidSpec, text, None),
            Action::await_change(),
        ),
        (ErrorClass::Auth, _) => (
            Outcome::new(
                Reason::AuthFailed,
                format!("{text}; check the API key the operator is configured with"),
                None,
            ),
            Action::requeue(ctx.config.recheck_interval),
        ),
        (_, IvyError::RateLimited { retry_after }) => {
            let delay = ctx.backoff.next_delay(&target.key, *retry_after);
            (
                Outcome::new(
                    Reason::RateLimited,
                    format!("{text}; retrying in {}s", delay.as_secs().max(1)),
                    None,
                ),
                Action::requeue(delay),
            )
        }
        (ErrorClass::Permanent, _) => (
            Outcome::new(Reason::IvyRejected, text, None),
            Action::requeue(ctx.config.resync_interval),
        ),
        (ErrorClass::Transient, _) => {
            let delay = ctx.backoff.next_delay(&target.key, None);
            (
                Outcome::new(
                    Reason::IvyUnavailable,
                    format!("{text}; retrying in {}s", delay.as_secs().max(1)),
                    None,
                ),
                Action::requeue(delay),
            )
        }
    }
}

/// Brings Ivy and the Secret in step with the spec. Returns the outcome and when to check again.
async fn converge(
    target: &Target,
    ctx: &Context,
    mut stored: StoredSecret,
    needs_owner: bool,
) -> Step<(Outcome, Duration)> {
    let original = stored.clone();
    let sub = target.sub.as_ref();
    let mut next_check = ctx.config.resync_interval;

    // A: end a rotation (or an app-secret change) whose grace period is over.
    if let Some(remaining) = finish_rotation_if_due(target, ctx, &mut stored).await? {
        next_check = next_check.min(remaining);
    }

    // B: make sure a subscription exists whose secret is stored, and that it matches the spec.
    match stored.subscription_id.clone() {
        None => {
            let adopt = sub.annotation(ANNOTATION_ADOPT).map(str::to_owned);
            match adopt {
                Some(id) if stored.adopted.as_deref() != Some(id.as_str()) => {
                    adopt_subscription(target, ctx, &mut stored, &id).await?;
                    ensure_in_step(target, ctx, &mut stored, &id).await?;
                }
                _ => {
                    create_and_store(target, ctx, &mut stored, Purpose::Initial).await?;
                }
            }
        }
        Some(id) => {
            let fingerprint = fingerprint(sub, &stored);
            let rotation_pending = rotation_requested(sub, &stored).is_some();
            if ctx
                .verified
                .is_fresh(&target.key, fingerprint, ctx.config.resync_interval)
                && !rotation_pending
                && !needs_owner
            {
                debug!(key = %target.key, "in step with Ivy recently; skipping the drift check");
            } else {
                ensure_in_step(target, ctx, &mut stored, &id).await?;
            }
        }
    }

    // C: rotate when asked.
    if let Some(value) = rotation_requested(sub, &stored) {
        rotate(target, ctx, &mut stored, &value).await?;
        next_check = next_check.min(ctx.config.rotation_grace_period);
    }

    // D: the Secret says what Ivy holds.
    stored.url = Some(sub.spec.url.clone());
    if let Some(app_secret) = service_secret_change(ctx, &stored) {
        stored.previous_signing_secret = stored.signing_secret.take();
        stored.signing_secret = Some(app_secret);
        stored.rotated_at = Some(Timestamp::now());
        next_check = next_check.min(ctx.config.rotation_grace_period);
    }
    let written = target.persisted();
    let unchanged = match &written {
        Some(last) => *last == stored,
        None => stored == original && !needs_owner,
    };
    if !unchanged {
        target.write_secret(&stored, true).await?;
    }

    crash_point!("converge-before-status");
    let id = stored.subscription_id.clone();
    ctx.verified.record(&target.key, fingerprint(sub, &stored));
    let outcome = if stored.signing_secret.is_none() {
        Outcome::new(
            Reason::SecretUnknown,
            format!(
                "adopted subscription {}, but Ivy reveals a signing secret only when a subscription is created: set the annotation {ANNOTATION_ROTATE} to replace it with one whose secret the operator stores",
                id.as_deref().unwrap_or_default()
            ),
            id,
        )
    } else {
        Outcome::new(
            Reason::Subscribed,
            format!(
                "subscription {} matches the spec; its signing secret is in Secret {}",
                id.as_deref().unwrap_or_default(),
                target.secret_name
            ),
            id,
        )
    };
    Ok((outcome, next_check))
}

/// In the `service` dialect the secret belongs to the merchant app: when the configured one
/// changed, the Secret follows (keeping the old one as previous for the grace period).
fn service_secret_change(ctx: &Context, stored: &StoredSecret) -> Option<SigningSecret> {
    if ctx.ivy.capabilities().per_subscription_secret {
        return None;
    }
    let app = ctx.app_signing_secret.clone()?;
    match &stored.signing_secret {
        Some(current) if current != &app && stored.subscription_id.is_some() => Some(app),
        _ => None,
    }
}

/// What inputs a successful check against Ivy depended on.
fn fingerprint(sub: &WebhookSubscription, stored: &StoredSecret) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    sub.metadata.generation.hash(&mut hasher);
    stored.subscription_id.hash(&mut hasher);
    stored.previous_subscription_id.hash(&mut hasher);
    stored.rotation.hash(&mut hasher);
    sub.annotation(ANNOTATION_ADOPT).hash(&mut hasher);
    sub.annotation(ANNOTATION_ROTATE).hash(&mut hasher);
    hasher.finish()
}

/// The `rotate-secret` value not yet answered, if any.
fn rotation_requested(sub: &WebhookSubscription, stored: &StoredSecret) -> Option<String> {
    let wanted = sub.annotation(ANNOTATION_ROTATE)?;
    let answered = stored.rotation.as_deref() == Some(wanted);
    (!answered && stored.subscription_id.is_some() && stored.previous_subscription_id.is_none())
        .then(|| wanted.to_owned())
}

/// The short tag a rotation's temporary URL carries (never the annotation value itself).
fn rotation_tag(value: Option<&str>) -> String {
    let digest = Sha256::digest(value.unwrap_or_default().as_bytes());
    hex::encode(&digest[..4])
}

/// The URL the current subscription should have: `spec.url`, or the rotation URL while the
/// rotation's old subscription still holds `spec.url`.
fn current_url(sub: &WebhookSubscription, stored: &StoredSecret) -> String {
    if stored.previous_subscription_id.is_some() {
        rotation_url(&sub.spec.url, &rotation_tag(stored.rotation.as_deref()))
    } else {
        sub.spec.url.clone()
    }
}

/// Why a subscription is being created.
#[derive(Clone, Debug)]
enum Purpose {
    /// The resource has none yet (or its secret was lost).
    Initial,
    /// Ivy no longer has the stored subscription.
    Replace { vanished: String },
    /// A rotation asked for with this annotation value.
    Rotate { value: String },
}

impl Purpose {
    fn tag(&self) -> &'static str {
        match self {
            Purpose::Initial => "create",
            Purpose::Replace { .. } => "replace",
            Purpose::Rotate { .. } => "rotate",
        }
    }
}

/// Creates a subscription and stores its id and secret in the Secret in one write, then deletes
/// what interrupted attempts left behind.
async fn create_and_store(
    target: &Target,
    ctx: &Context,
    stored: &mut StoredSecret,
    purpose: Purpose,
) -> Step<()> {
    let sub = target.sub.as_ref();
    let url = match &purpose {
        Purpose::Rotate { value } => rotation_url(&sub.spec.url, &rotation_tag(Some(value))),
        Purpose::Initial | Purpose::Replace { .. } => sub.spec.url.clone(),
    };
    let request = desired_request(sub, &target.uid, &url);
    let mut parts = request_parts(&request);
    match &purpose {
        Purpose::Initial => {}
        Purpose::Replace { vanished } => parts.push(vanished.clone()),
        Purpose::Rotate { value } => {
            // Rotating away from this subscription: the same annotation value set again later
            // (from another subscription) must not replay this rotation.
            parts.push(value.clone());
            parts.push(stored.subscription_id.clone().unwrap_or_default());
        }
    }
    let part_refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let key = idempotency_key(purpose.tag(), &target.uid, &part_refs);

    let created = match ctx.ivy.create(&request, &key).await {
        Ok(created) => created,
        Err(IvyError::Conflict {
            kind: ConflictKind::DuplicateUrl,
            ..
        }) => return resolve_duplicate_url(target, ctx, stored, &request.url).await,
        Err(error) => {
            return Err(Interrupt::Ivy {
                action: "create the subscription",
                error,
            });
        }
    };
    crash_point!("create-after-ivy-create");
    let id = created.subscription.id.clone();
    let secret = match created
        .signing_secret
        .or_else(|| ctx.app_signing_secret.clone())
    {
        Some(secret) => secret,
        None => {
            return Err(Interrupt::Stop {
                outcome: Outcome::new(
                    Reason::Unsupported,
                    "this Ivy dialect returns no signing secret and the operator has no --app-signing-secret-file",
                    None,
                ),
                retry: Action::await_change(),
            });
        }
    };

    match &purpose {
        Purpose::Rotate { value } => {
            stored.previous_subscription_id = stored.subscription_id.take();
            stored.previous_signing_secret = stored.signing_secret.take();
            stored.rotation = Some(value.clone());
            stored.rotated_at = Some(Timestamp::now());
        }
        Purpose::Initial | Purpose::Replace { .. } => {
            // A rotation requested before this subscription existed is answered by it.
            stored.rotation = sub.annotation(ANNOTATION_ROTATE).map(str::to_owned);
        }
    }
    stored.subscription_id = Some(id.clone());
    stored.signing_secret = Some(secret);
    stored.url = Some(sub.spec.url.clone());
    // One write: id and secret together, before the id is recorded anywhere else.
    target.write_secret(stored, true).await?;
    crash_point!("create-after-secret-write");
    info!(key = %target.key, subscription = %id, purpose = purpose.tag(), "created subscription at Ivy and stored its secret");

    let (reason, note) = match &purpose {
        Purpose::Initial => ("Created", format!("created subscription {id} at Ivy")),
        Purpose::Replace { vanished } => (
            "Recreated",
            format!(
                "subscription {vanished} no longer exists at Ivy; created {id} with a new signing secret"
            ),
        ),
        Purpose::Rotate { .. } => (
            "Rotated",
            format!(
                "created subscription {id} with a new signing secret; the previous secret stays valid for {}s",
                ctx.config.rotation_grace_period.as_secs()
            ),
        ),
    };
    events::normal(ctx, sub, reason, note).await;
    delete_leftovers(target, ctx, stored).await
}

/// Deletes every remote subscription marked for this resource whose secret the Secret does not
/// hold (design rule 4: never silently adopted).
async fn delete_leftovers(target: &Target, ctx: &Context, stored: &StoredSecret) -> Step<()> {
    let capabilities = ctx.ivy.capabilities();
    if !capabilities.list || !capabilities.description || !capabilities.delete {
        return Ok(());
    }
    let keep = [
        stored.subscription_id.as_deref(),
        stored.previous_subscription_id.as_deref(),
    ];
    let remotes = ctx
        .ivy
        .list()
        .await
        .map_err(ivy("list subscriptions to find leftovers"))?;
    for leftover in remotes
        .iter()
        .filter(|r| is_marked_for(r, &target.uid) && !keep.contains(&Some(r.id.as_str())))
    {
        delete_remote(ctx, &target.uid, &leftover.id).await?;
        info!(key = %target.key, subscription = %leftover.id, "deleted a subscription left by an interrupted attempt");
        events::normal(
            ctx,
            &target.sub,
            "LeftoverDeleted",
            format!(
                "deleted subscription {} left at Ivy by an interrupted attempt (its secret was never stored)",
                leftover.id
            ),
        )
        .await;
    }
    Ok(())
}

/// Deletes one remote subscription; already gone counts as done.
pub(crate) async fn delete_remote(ctx: &Context, uid: &str, id: &str) -> Step<()> {
    let key = idempotency_key("delete", uid, &[id]);
    match ctx.ivy.delete(id, &key).await {
        Ok(()) | Err(IvyError::NotFound { .. }) => Ok(()),
        Err(error) => Err(Interrupt::Ivy {
            action: "delete a subscription",
            error,
        }),
    }
}

/// Ivy refused a create because the URL is taken: decide whose subscription holds it.
async fn resolve_duplicate_url(
    target: &Target,
    ctx: &Context,
    stored: &mut StoredSecret,
    url: &str,
) -> Step<()> {
    let capabilities = ctx.ivy.capabilities();
    let holder = if capabilities.list {
        ctx.ivy
            .list()
            .await
            .map_err(ivy("list subscriptions"))?
            .into_iter()
            .find(|r| r.url == url)
    } else {
        None
    };
    let Some(holder) = holder else {
        return Err(Interrupt::Stop {
            outcome: Outcome::new(
                Reason::DuplicateUrl,
                format!(
                    "Ivy already has a subscription for {url}; delete it at Ivy or adopt it with the annotation {ANNOTATION_ADOPT}"
                ),
                None,
            ),
            retry: Action::requeue(ctx.config.resync_interval),
        });
    };
    if !capabilities.per_subscription_secret {
        // Without a description there is no marker: another resource with the same URL may
        // already manage this subscription, and two owners would delete it under each other.
        if let Some(owner) = claimed_by_another(target, ctx, &holder.id).await? {
            return Err(Interrupt::Stop {
                outcome: Outcome::new(
                    Reason::DuplicateUrl,
                    format!(
                        "subscription {} for {url} is already managed by WebhookSubscription {owner}",
                        holder.id
                    ),
                    None,
                ),
                retry: Action::requeue(ctx.config.resync_interval),
            });
        }
        // The secret belongs to the app, so nothing is lost by taking this subscription over.
        adopt_subscription(target, ctx, stored, &holder.id).await?;
        return ensure_in_step(target, ctx, stored, &holder.id).await;
    }
    if is_marked_for(&holder, &target.uid) {
        // Left by an interrupted create of ours; its secret is gone, so replace it.
        delete_remote(ctx, &target.uid, &holder.id).await?;
        events::normal(
            ctx,
            &target.sub,
            "LeftoverDeleted",
            format!(
                "deleted subscription {} left at Ivy by an interrupted attempt (its secret was never stored)",
                holder.id
            ),
        )
        .await;
        return Err(Interrupt::RetrySoon);
    }
    Err(Interrupt::Stop {
        outcome: Outcome::new(
            Reason::DuplicateUrl,
            format!(
                "subscription {} at Ivy already uses {url} and was not created by this resource: delete it at Ivy, or adopt it with the annotation {ANNOTATION_ADOPT}={}",
                holder.id, holder.id
            ),
            None,
        ),
        retry: Action::requeue(ctx.config.resync_interval),
    })
}

/// The `namespace/name` of another resource (in the watched scope) whose status names `id`.
pub(crate) async fn claimed_by_another(
    target: &Target,
    ctx: &Context,
    id: &str,
) -> Step<Option<String>> {
    let api: Api<WebhookSubscription> = match &ctx.config.watch_namespace {
        Some(namespace) => Api::namespaced(ctx.client.clone(), namespace),
        None => Api::all(ctx.client.clone()),
    };
    let all = api
        .list(&Default::default())
        .await
        .map_err(|source| Interrupt::Kube(Error::ListResources { source }))?;
    Ok(all.items.into_iter().find_map(|other| {
        let claims = other.status.as_ref()?.subscription_id.as_deref() == Some(id);
        (claims && other.uid().as_deref() != Some(target.uid.as_str())).then(|| {
            format!(
                "{}/{}",
                other.namespace().unwrap_or_default(),
                other.name_any()
            )
        })
    }))
}

/// Takes over an existing remote subscription named by the adoption annotation.
async fn adopt_subscription(
    target: &Target,
    ctx: &Context,
    stored: &mut StoredSecret,
    id: &str,
) -> Step<()> {
    match ctx.ivy.get(id).await {
        Ok(_) => {}
        Err(IvyError::NotFound { .. }) => {
            return Err(Interrupt::Stop {
                outcome: Outcome::new(
                    Reason::AdoptionFailed,
                    format!(
                        "Ivy has no subscription {id} to adopt: correct or remove the annotation {ANNOTATION_ADOPT}"
                    ),
                    None,
                ),
                retry: Action::await_change(),
            });
        }
        Err(error) => {
            return Err(Interrupt::Ivy {
                action: "read the subscription to adopt",
                error,
            });
        }
    }
    stored.subscription_id = Some(id.to_owned());
    stored.adopted = target.sub.annotation(ANNOTATION_ADOPT).map(str::to_owned);
    // Only an app-wide secret (service dialect) is known; Ivy never reveals a subscription's.
    stored.signing_secret = if ctx.ivy.capabilities().per_subscription_secret {
        None
    } else {
        ctx.app_signing_secret.clone()
    };
    stored.rotation = target.sub.annotation(ANNOTATION_ROTATE).map(str::to_owned);
    stored.url = Some(target.sub.spec.url.clone());
    target.write_secret(stored, true).await?;
    events::normal(
        ctx,
        &target.sub,
        "Adopted",
        format!("adopted subscription {id} at Ivy"),
    )
    .await;
    Ok(())
}

/// Reads the stored subscription at Ivy and reverts any drift; recreates it if Ivy lost it.
async fn ensure_in_step(
    target: &Target,
    ctx: &Context,
    stored: &mut StoredSecret,
    id: &str,
) -> Step<()> {
    let sub = target.sub.as_ref();
    let remote = match ctx.ivy.get(id).await {
        Ok(remote) => remote,
        Err(IvyError::NotFound { .. }) => {
            events::warning(
                ctx,
                sub,
                "RemoteMissing",
                format!("subscription {id} no longer exists at Ivy; creating a new one"),
            )
            .await;
            stored.subscription_id = None;
            stored.signing_secret = None;
            stored.adopted = None;
            let purpose = Purpose::Replace {
                vanished: id.to_owned(),
            };
            return Box::pin(create_and_store(target, ctx, stored, purpose)).await;
        }
        Err(error) => {
            return Err(Interrupt::Ivy {
                action: "read the subscription",
                error,
            });
        }
    };
    revert_drift(target, ctx, stored, &remote).await
}

async fn revert_drift(
    target: &Target,
    ctx: &Context,
    stored: &StoredSecret,
    remote: &RemoteSubscription,
) -> Step<()> {
    let sub = target.sub.as_ref();
    let desired = desired_request(sub, &target.uid, &current_url(sub, stored));
    let patch = drift_patch(&desired, remote, ctx.ivy.capabilities());
    if patch.is_empty() {
        return Ok(());
    }
    // A fresh key per update: an update is idempotent by itself, and a derived key would make
    // Ivy replay the first revert instead of applying a later one that restores the same spec.
    let key = IdempotencyKey::random();
    ctx.ivy
        .update(&remote.id, &patch, &key)
        .await
        .map_err(ivy("update the subscription"))?;
    crash_point!("drift-after-update");
    let fields = changed_fields(&patch);
    let spec_changed =
        sub.status.as_ref().and_then(|s| s.observed_generation) != sub.metadata.generation;
    let (reason, note) = if spec_changed {
        (
            "Updated",
            format!("updated {fields} of subscription {} at Ivy", remote.id),
        )
    } else {
        (
            "DriftReverted",
            format!(
                "subscription {} was changed at Ivy ({fields}); restored the spec",
                remote.id
            ),
        )
    };
    info!(key = %target.key, subscription = %remote.id, fields = %fields, reason, "updated subscription at Ivy");
    events::normal(ctx, sub, reason, note).await;
    Ok(())
}

/// Starts a rotation: a new subscription with a new secret, the old one kept for the grace period.
async fn rotate(
    target: &Target,
    ctx: &Context,
    stored: &mut StoredSecret,
    value: &str,
) -> Step<()> {
    if !ctx.ivy.capabilities().per_subscription_secret {
        stored.rotation = Some(value.to_owned());
        events::warning(
            ctx,
            &target.sub,
            "RotationUnsupported",
            "in this Ivy dialect the signing secret belongs to the merchant app: rotate it in Ivy's dashboard and update the operator's app signing secret; every Secret follows".into(),
        )
        .await;
        return Ok(());
    }
    let purpose = Purpose::Rotate {
        value: value.to_owned(),
    };
    create_and_store(target, ctx, stored, purpose).await
}

/// Deletes a rotation's old subscription and drops the previous secret once the grace period
/// is over. Returns the time left when it is not over yet.
async fn finish_rotation_if_due(
    target: &Target,
    ctx: &Context,
    stored: &mut StoredSecret,
) -> Step<Option<Duration>> {
    if stored.previous_subscription_id.is_none() && stored.previous_signing_secret.is_none() {
        return Ok(None);
    }
    let grace =
        SignedDuration::try_from(ctx.config.rotation_grace_period).unwrap_or(SignedDuration::ZERO);
    let due_at = stored
        .rotated_at
        .map(|t| t.saturating_add(grace).unwrap_or(t));
    let now = Timestamp::now();
    if let Some(due_at) = due_at
        && due_at > now
    {
        let left = Duration::try_from(due_at.duration_since(now)).unwrap_or_default();
        return Ok(Some(left.max(Duration::from_secs(1))));
    }
    if let Some(previous) = stored.previous_subscription_id.clone() {
        if ctx.ivy.capabilities().delete {
            delete_remote(ctx, &target.uid, &previous).await?;
        }
        crash_point!("rotation-after-old-delete");
        events::normal(
            ctx,
            &target.sub,
            "RotationCompleted",
            format!("deleted the previous subscription {previous}; only the new signing secret is valid now"),
        )
        .await;
    }
    stored.previous_subscription_id = None;
    stored.previous_signing_secret = None;
    // Written now so the old id is forgotten only once it is gone at Ivy.
    target.write_secret(stored, true).await?;
    Ok(None)
}
