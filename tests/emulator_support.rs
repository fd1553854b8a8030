//! Helpers shared by the emulator and client suites (included with `#[path]`): an emulator on
//! 127.0.0.1 port 0, clients for each dialect, and a scripted webhook receiver.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use ivy_webhook_operator::emulator::{Emulator, EmulatorConfig, RunningEmulator};
use ivy_webhook_operator::ivy::http_client;
use ivy_webhook_operator::ivy::{
    ApiKey, ClientConfig, Dialect, IdempotencyKey, SharedIvyApi, SubscriptionRequest,
    build_ivy_client,
};

pub const KEY: &str = "test-api-key";
pub const OTHER_KEY: &str = "other-merchant-key";

pub fn config() -> EmulatorConfig {
    EmulatorConfig::default()
        .with_api_key(KEY)
        .add_api_key(OTHER_KEY)
        .retry_schedule(vec![Duration::from_millis(20), Duration::from_millis(20)])
}

pub async fn emulator(config: EmulatorConfig) -> RunningEmulator {
    Emulator::spawn(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

pub fn client_with(
    emu: &RunningEmulator,
    dialect: Dialect,
    key: &str,
    timeout: Duration,
) -> SharedIvyApi {
    let mut config = ClientConfig::new(emu.base_url(), ApiKey::new(key), dialect);
    config.request_timeout = timeout;
    let http = http_client(Duration::from_secs(2), Duration::from_secs(10)).unwrap();
    build_ivy_client(config, http)
}

pub fn client(emu: &RunningEmulator, dialect: Dialect) -> SharedIvyApi {
    client_with(emu, dialect, KEY, Duration::from_secs(5))
}

pub fn request(url: &str) -> SubscriptionRequest {
    SubscriptionRequest {
        url: url.to_owned(),
        events: vec!["order_created".to_owned(), "refund_succeeded".to_owned()],
        description: Some("managed by test".to_owned()),
        active: true,
    }
}

pub fn key(value: &str) -> IdempotencyKey {
    IdempotencyKey::new(value).unwrap()
}

/// A unique https URL per call, so tests do not trip over duplicate-URL rules by accident.
pub fn url(tag: &str) -> String {
    format!("https://shop.example/{tag}/{}", uuid::Uuid::new_v4())
}

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: tokio::time::Instant,
}

/// A plain-http webhook receiver on 127.0.0.1 that answers the scripted statuses in order
/// (200 once the script is used up) and records every request.
pub struct Receiver {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start(script: Vec<u16>) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let seen = received.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let seen = seen.clone();
            let script = script.clone();
            async move {
                seen.lock().unwrap().push(Received {
                    headers,
                    body,
                    at: tokio::time::Instant::now(),
                });
                let status = script.lock().unwrap().pop_front().unwrap_or(200);
                StatusCode::from_u16(status).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            received,
            task,
        }
    }

    /// The https URL a subscription uses; the emulator (with `plain_http_to_loopback`)
    /// delivers it over plain http to this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/{path}", self.addr.port())
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived (or 5 s passed).
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let got = self.received();
            if got.len() >= n || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A raw HTTP client for wire-level assertions.
pub fn raw() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}
