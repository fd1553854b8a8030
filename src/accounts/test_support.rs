//! An Ivy for the accounts' unit tests: answers every call, counts them, and fails the ones
//! scripted to fail.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::ivy::{
    Capabilities, CreatedSubscription, Dialect, IdempotencyKey, IvyApi, IvyError,
    RemoteSubscription, SubscriptionPatch, SubscriptionRequest,
};

#[derive(Default)]
pub struct ScriptedIvy {
    failures: Mutex<VecDeque<IvyError>>,
    calls: Mutex<Vec<String>>,
}

impl ScriptedIvy {
    /// The next call answers `error`.
    pub fn fail_next(&self, error: IvyError) {
        self.failures.lock().unwrap().push_back(error);
    }

    /// How many calls reached this Ivy.
    pub fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    fn enter(&self, call: &str, id: &str) -> Result<(), IvyError> {
        self.calls.lock().unwrap().push(format!("{call} {id}"));
        match self.failures.lock().unwrap().pop_front() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

fn remote(id: &str) -> RemoteSubscription {
    RemoteSubscription {
        id: id.to_owned(),
        url: "https://shop.example.com/hook".into(),
        events: vec!["order_created".into()],
        description: None,
        active: Some(true),
    }
}

#[async_trait]
impl IvyApi for ScriptedIvy {
    fn dialect(&self) -> Dialect {
        Dialect::Rest
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            get: true,
            list: true,
            delete: true,
            description: true,
            active_flag: true,
            per_subscription_secret: true,
            trigger_test: true,
        }
    }

    async fn create(
        &self,
        _request: &SubscriptionRequest,
        _key: &IdempotencyKey,
    ) -> Result<CreatedSubscription, IvyError> {
        self.enter("create", "")?;
        Ok(CreatedSubscription {
            subscription: remote("new"),
            signing_secret: None,
        })
    }

    async fn get(&self, id: &str) -> Result<RemoteSubscription, IvyError> {
        self.enter("get", id)?;
        Ok(remote(id))
    }

    async fn update(
        &self,
        id: &str,
        _patch: &SubscriptionPatch,
        _key: &IdempotencyKey,
    ) -> Result<RemoteSubscription, IvyError> {
        self.enter("update", id)?;
        Ok(remote(id))
    }

    async fn delete(&self, id: &str, _key: &IdempotencyKey) -> Result<(), IvyError> {
        self.enter("delete", id)
    }

    async fn list(&self) -> Result<Vec<RemoteSubscription>, IvyError> {
        self.enter("list", "")?;
        Ok(Vec::new())
    }

    async fn trigger_test(&self, id: &str) -> Result<(), IvyError> {
        self.enter("trigger_test", id)
    }
}

/// A fake apiserver: answers `GET`s from a table of objects by path (404 for the rest), applies
/// a status patch to the stored object, and records every request as `METHOD path`.
pub struct FakeApiserver {
    objects: std::sync::Arc<Mutex<std::collections::HashMap<String, serde_json::Value>>>,
    requests: std::sync::Arc<Mutex<Vec<String>>>,
    patches: std::sync::Arc<Mutex<Vec<serde_json::Value>>>,
}

impl FakeApiserver {
    /// The fake and a kube client talking to it.
    pub fn start() -> (Self, kube::Client) {
        use http::{Request, Response, StatusCode};
        use kube::client::Body;

        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = Self {
            objects: Default::default(),
            requests: Default::default(),
            patches: Default::default(),
        };
        let objects = fake.objects.clone();
        let requests = fake.requests.clone();
        let patches = fake.patches.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().clone();
                let path = request.uri().path().to_owned();
                requests.lock().unwrap().push(format!("{method} {path}"));
                let bytes = request.into_body().collect_bytes().await.unwrap();
                let mut objects = objects.lock().unwrap();
                let found = if method == http::Method::PATCH {
                    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                    patches.lock().unwrap().push(body.clone());
                    let parent = path.trim_end_matches("/status");
                    objects.get_mut(parent).map(|object| {
                        object["status"] = body["status"].clone();
                        object.clone()
                    })
                } else {
                    objects.get(&path).cloned()
                };
                drop(objects);
                let (status, answer) = match found {
                    Some(object) => (StatusCode::OK, object),
                    None => (
                        StatusCode::NOT_FOUND,
                        serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
                    ),
                };
                send.send_response(
                    Response::builder()
                        .status(status)
                        .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                        .unwrap(),
                );
            }
        });
        (fake, kube::Client::new(service, "default"))
    }

    /// Serves `object` at `path` (replacing what was there).
    pub fn put(&self, path: &str, object: impl serde::Serialize) {
        self.objects
            .lock()
            .unwrap()
            .insert(path.to_owned(), serde_json::to_value(object).unwrap());
    }

    /// Serves nothing at `path` any more.
    pub fn remove(&self, path: &str) {
        self.objects.lock().unwrap().remove(path);
    }

    /// Every request so far, as `METHOD path`.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// The bodies of every patch so far.
    pub fn patches(&self) -> Vec<serde_json::Value> {
        self.patches.lock().unwrap().clone()
    }
}

/// A Secret holding `key: value`.
pub fn secret(
    namespace: &str,
    name: &str,
    key: &str,
    value: &str,
) -> k8s_openapi::api::core::v1::Secret {
    let mut secret = k8s_openapi::api::core::v1::Secret {
        data: Some(std::collections::BTreeMap::from([(
            key.to_owned(),
            k8s_openapi::ByteString(value.as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    secret.metadata.namespace = Some(namespace.to_owned());
    secret.metadata.name = Some(name.to_owned());
    secret
}
