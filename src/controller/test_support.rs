//! Fixtures for the controller's unit tests: a resource builder and an in-memory Ivy.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::crd::{DeletionPolicy, EventName, WebhookSubscription, WebhookSubscriptionSpec};
use crate::ivy::{
    Capabilities, CreatedSubscription, Dialect, IdempotencyKey, IvyApi, IvyError,
    RemoteSubscription, SigningSecret, SubscriptionPatch, SubscriptionRequest,
};

pub const ALL_CAPABILITIES: Capabilities = Capabilities {
    get: true,
    list: true,
    delete: true,
    description: true,
    active_flag: true,
    per_subscription_secret: true,
    trigger_test: true,
};

/// `shop/orders`, uid `uid-1`, generation 3, a valid spec, no status.
pub fn sub() -> WebhookSubscription {
    let mut sub = WebhookSubscription::new(
        "orders",
        WebhookSubscriptionSpec {
            account_ref: None,
            url: "https://shop.example.com/webhooks/ivy".into(),
            events: vec![EventName::OrderCreated, EventName::RefundSucceeded],
            description: Some("Orders".into()),
            active: true,
            secret_name: None,
            deletion_policy: DeletionPolicy::Delete,
            secret_template: None,
            restart_on_rotation: Vec::new(),
            rotation: None,
        },
    );
    sub.metadata = ObjectMeta {
        name: Some("orders".into()),
        namespace: Some("shop".into()),
        uid: Some("uid-1".into()),
        generation: Some(3),
        resource_version: Some("1".into()),
        finalizers: Some(vec![crate::crd::FINALIZER.into()]),
        ..ObjectMeta::default()
    };
    sub
}

/// A Secret with the given labels, controlled by `owner_uid` when given.
pub fn secret_of(name: &str, labels: BTreeMap<String, String>, owner_uid: Option<&str>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            labels: Some(labels),
            owner_references: owner_uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "webhooks.ivy.dev/v1alpha1".into(),
                    kind: "WebhookSubscription".into(),
                    name: "orders".into(),
                    uid: uid.into(),
                    controller: Some(true),
                    block_owner_deletion: None,
                }]
            }),
            ..ObjectMeta::default()
        },
        ..Secret::default()
    }
}

/// An in-memory Ivy for unit tests of the reconcile paths (the protocol itself is tested
/// against `ivy-emulator`).
#[derive(Default)]
pub struct FakeIvy {
    pub subscriptions: Mutex<BTreeMap<String, RemoteSubscription>>,
    pub calls: Mutex<Vec<String>>,
    pub fail_next: Mutex<Option<IvyError>>,
    next_id: Mutex<u32>,
}

impl FakeIvy {
    pub fn with(remote: RemoteSubscription) -> Self {
        let fake = Self::default();
        fake.subscriptions
            .lock()
            .unwrap()
            .insert(remote.id.clone(), remote);
        fake
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn enter(&self, call: &str) -> Result<(), IvyError> {
        self.calls.lock().unwrap().push(call.to_owned());
        match self.fail_next.lock().unwrap().take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl IvyApi for FakeIvy {
    fn dialect(&self) -> Dialect {
        Dialect::Rest
    }

    fn capabilities(&self) -> Capabilities {
        ALL_CAPABILITIES
    }

    async fn create(
        &self,
        request: &SubscriptionRequest,
        _key: &IdempotencyKey,
    ) -> Result<CreatedSubscription, IvyError> {
        self.enter("create")?;
        let mut next = self.next_id.lock().unwrap();
        *next += 1;
        let remote = RemoteSubscription {
            id: format!("sub-{next}"),
            url: request.url.clone(),
            events: request.events.clone(),
            description: request.description.clone(),
            active: Some(request.active),
        };
        self.subscriptions
            .lock()
            .unwrap()
            .insert(remote.id.clone(), remote.clone());
        Ok(CreatedSubscription {
            subscription: remote,
            signing_secret: Some(SigningSecret::new(format!("whsec_{next}"))),
        })
    }

    async fn get(&self, id: &str) -> Result<RemoteSubscription, IvyError> {
        self.enter("get")?;
        self.subscriptions
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or(IvyError::NotFound { id: id.into() })
    }

    async fn update(
        &self,
        id: &str,
        patch: &SubscriptionPatch,
        _key: &IdempotencyKey,
    ) -> Result<RemoteSubscription, IvyError> {
        self.enter("update")?;
        let mut subs = self.subscriptions.lock().unwrap();
        let remote = subs
            .get_mut(id)
            .ok_or(IvyError::NotFound { id: id.into() })?;
        if let Some(url) = &patch.url {
            remote.url = url.clone();
        }
        if let Some(events) = &patch.events {
            remote.events = events.clone();
        }
        if let Some(description) = &patch.description {
            remote.description = Some(description.clone());
        }
        if let Some(active) = patch.active {
            remote.active = Some(active);
        }
        Ok(remote.clone())
    }

    async fn delete(&self, id: &str, _key: &IdempotencyKey) -> Result<(), IvyError> {
        self.enter("delete")?;
        self.subscriptions
            .lock()
            .unwrap()
            .remove(id)
            .map(|_| ())
            .ok_or(IvyError::NotFound { id: id.into() })
    }

    async fn list(&self) -> Result<Vec<RemoteSubscription>, IvyError> {
        self.enter("list")?;
        Ok(self
            .subscriptions
            .lock()
            .unwrap()
            .values()
            .cloned()
            .collect())
    }

    async fn trigger_test(&self, _id: &str) -> Result<(), IvyError> {
        self.enter("trigger_test")
    }
}
