//! Follows the WebhookSubscriptions of one namespace through a watch: which are Ready for
//! their current generation, under which subscription id, and when the last one became Ready
//! or went away. Waiting on it costs the apiserver one watch, not a list per poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::StreamExt;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio::task::JoinHandle;

use ivy_webhook_operator::crd::WebhookSubscription;

#[derive(Debug, Clone, Default)]
struct Entry {
    ready: bool,
    subscription_id: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    synced: bool,
    entries: HashMap<String, Entry>,
    /// A (re-)list in progress: replaces `entries` when complete, so that a resource deleted
    /// while the watch was down does not linger.
    listing: Option<HashMap<String, Entry>>,
    /// When a resource last became Ready, or last went away.
    last_ready: Option<Instant>,
    last_gone: Option<Instant>,
}

/// The watch and what it has seen so far; the watch stops when this is dropped.
pub struct Tracker {
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Tracker {
    /// Starts watching and waits until the first list is in.
    pub async fn start(client: &Client, namespace: &str) -> anyhow::Result<Self> {
        let api: Api<WebhookSubscription> = Api::namespaced(client.clone(), namespace);
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default()).boxed();
            while let Some(event) = events.next().await {
                // A watch error is retried by the next poll of the stream.
                if let Ok(event) = event {
                    shared
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .apply(event);
                }
            }
        });
        let tracker = Self { state, task };
        tracker
            .wait(Duration::from_secs(60), "the first list", |s| s.synced)
            .await?;
        Ok(tracker)
    }

    /// Waits until `n` resources are Ready; returns when the last of them became Ready.
    pub async fn wait_ready(&self, n: usize, timeout: Duration) -> anyhow::Result<Instant> {
        self.wait(timeout, &format!("{n} resources Ready"), |s| {
            s.ready_count() >= n
        })
        .await?;
        Ok(self.read(|s| s.last_ready).unwrap_or_else(Instant::now))
    }

    /// Waits until no resource is left; returns when the last one went away.
    pub async fn wait_empty(&self, timeout: Duration) -> anyhow::Result<Instant> {
        self.wait(timeout, "every resource gone", |s| s.entries.is_empty())
            .await?;
        Ok(self.read(|s| s.last_gone).unwrap_or_else(Instant::now))
    }

    /// The subscription id in `name`'s status.
    pub fn subscription_id(&self, name: &str) -> Option<String> {
        self.read(|s| s.entries.get(name).and_then(|e| e.subscription_id.clone()))
    }

    /// Every resource with the subscription id in its status.
    pub fn subscription_ids(&self) -> HashMap<String, Option<String>> {
        self.read(|s| {
            s.entries
                .iter()
                .map(|(name, e)| (name.clone(), e.subscription_id.clone()))
                .collect()
        })
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    async fn wait(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&State) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.read(&done) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let (ready, total) = self.read(|s| (s.ready_count(), s.entries.len()));
                bail!("timed out after {timeout:?} waiting for {what} ({ready} of {total} Ready)");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl State {
    fn ready_count(&self) -> usize {
        self.entries.values().filter(|e| e.ready).count()
    }

    fn apply(&mut self, event: watcher::Event<WebhookSubscription>) {
        match event {
            watcher::Event::Init => self.listing = Some(HashMap::new()),
            watcher::Event::InitApply(sub) => {
                if let Some(listing) = &mut self.listing {
                    listing.insert(sub.name_any(), entry(&sub));
                }
            }
            watcher::Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let now = Instant::now();
                if listed.len() < self.entries.len() {
                    self.last_gone = Some(now);
                }
                let newly_ready = listed.iter().any(|(name, e)| {
                    e.ready && !self.entries.get(name).is_some_and(|old| old.ready)
                });
                if newly_ready {
                    self.last_ready = Some(now);
                }
                self.entries = listed;
                self.synced = true;
            }
            watcher::Event::Apply(sub) => self.upsert(&sub),
            watcher::Event::Delete(sub) => {
                if self.entries.remove(&sub.name_any()).is_some() {
                    self.last_gone = Some(Instant::now());
                }
            }
        }
    }

    fn upsert(&mut self, sub: &WebhookSubscription) {
        let entry = entry(sub);
        let ready = entry.ready;
        let was_ready = self
            .entries
            .insert(sub.name_any(), entry)
            .is_some_and(|e| e.ready);
        if ready && !was_ready {
            self.last_ready = Some(Instant::now());
        }
    }
}

fn entry(sub: &WebhookSubscription) -> Entry {
    Entry {
        ready: is_ready(sub),
        subscription_id: sub.status.as_ref().and_then(|s| s.subscription_id.clone()),
    }
}

/// Ready=True for the resource's current generation.
fn is_ready(sub: &WebhookSubscription) -> bool {
    let generation = sub.metadata.generation;
    let observed = sub.status.as_ref().and_then(|s| s.observed_generation);
    sub.ready_condition()
        .is_some_and(|c| c.status == "True" && c.observed_generation == generation)
        && observed == generation
}
