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
