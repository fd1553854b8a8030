//! `ivy-emulator`: an in-memory Ivy that serves all three API dialects from one model, sends
//! signed deliveries (to loopback only), and lets tests inject faults and look inside.
//!
//! In a test:
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ivy_webhook_operator::emulator::{Emulator, EmulatorConfig};
//!
//! let emulator = Emulator::spawn(
//!     EmulatorConfig::default().with_api_key("key-1"),
//!     "127.0.0.1:0".parse()?,
//! )
//! .await?;
//! let base_url = emulator.base_url(); // point an IvyApi client here
//! assert!(emulator.state().subscriptions().is_empty());
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```
//! The wire formats, the admin API and the fault model are documented in
//! `docs/ivy-emulator.md`.

pub mod catalogue;
pub mod deliveries;
pub mod faults;
pub mod model;
pub mod payloads;
pub mod state;

mod admin;
mod errors;
mod handler;
mod internal;
mod rest;
mod server;
mod service;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

pub use deliveries::{Attempt, Delivery, DeliveryState, ivy_retry_schedule};
pub use faults::{AfterCommit, Fault, FaultKind, FaultSpec};
pub use state::{EmulatorState, RequestCount, SendEventError, SubscriptionView};

use state::Shared;

/// The API key [`EmulatorConfig::default`] accepts.
pub const DEFAULT_API_KEY: &str = "ivy-emulator-api-key";

/// How the emulator behaves. `Default` is Ivy's behaviour with one API key,
/// [`DEFAULT_API_KEY`]. Its `Debug` output hides the keys and the secret.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// Accepted `X-Ivy-Api-Key` values. Each key is its own merchant: it sees only its own
    /// subscriptions, and URLs and idempotency keys are unique per key.
    pub api_keys: Vec<String>,
    /// Accept `http://` subscription URLs, but only with a loopback host.
    pub allow_http_urls: bool,
    /// Deliver to `https://<loopback>:PORT/…` URLs over plain http to the same host and port
    /// (end-to-end receivers are plain-http loopback servers; the CRD admits only https).
    pub plain_http_to_loopback: bool,
    /// Delays before each retry of a failed delivery; its length is the number of retries.
    pub retry_schedule: Vec<Duration>,
    /// Honour `Idempotency-Key` (can be switched at runtime through the admin API).
    pub idempotency: bool,
    /// The merchant app's signing secret (signs deliveries to subscriptions created through
    /// `service`); a random `whsec_` value when `None`.
    pub app_signing_secret: Option<String>,
    /// Timeout of one delivery attempt.
    pub delivery_timeout: Duration,
    /// Allow listening on a non-loopback address (off: [`Emulator::spawn`] refuses).
    pub allow_non_loopback_listen: bool,
}

impl std::fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field(
                "api_keys",
                &format_args!("<{} redacted>", self.api_keys.len()),
            )
            .field("allow_http_urls", &self.allow_http_urls)
            .field("plain_http_to_loopback", &self.plain_http_to_loopback)
            .field("retry_schedule", &self.retry_schedule)
            .field("idempotency", &self.idempotency)
            .field(
                "app_signing_secret",
                &self.app_signing_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("delivery_timeout", &self.delivery_timeout)
            .field("allow_non_loopback_listen", &self.allow_non_loopback_listen)
            .finish()
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            api_keys: vec![DEFAULT_API_KEY.to_owned()],
            allow_http_urls: false,
            plain_http_to_loopback: false,
            retry_schedule: ivy_retry_schedule(),
            idempotency: true,
            app_signing_secret: None,
            delivery_timeout: Duration::from_secs(10),
            allow_non_loopback_listen: false,
        }
    }
}

impl EmulatorConfig {
    /// Accept exactly this API key (replacing the default one).
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_keys = vec![key.into()];
        self
    }

    /// Accept this API key too (another merchant).
    pub fn add_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_keys.push(key.into());
        self
    }

    pub fn allow_http_urls(mut self, allow: bool) -> Self {
        self.allow_http_urls = allow;
        self
    }

    pub fn plain_http_to_loopback(mut self, plain: bool) -> Self {
        self.plain_http_to_loopback = plain;
        self
    }

    pub fn retry_schedule(mut self, schedule: Vec<Duration>) -> Self {
        self.retry_schedule = schedule;
        self
    }

    pub fn idempotency(mut self, enabled: bool) -> Self {
        self.idempotency = enabled;
        self
    }

    pub fn app_signing_secret(mut self, secret: impl Into<String>) -> Self {
        self.app_signing_secret = Some(secret.into());
        self
    }
}

/// The emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("refusing to listen on non-loopback address {addr} (allow it explicitly)")]
    NonLoopbackListen { addr: SocketAddr },
    #[error("at least one API key is required")]
    NoApiKeys,
    #[error("failed to listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot form a base URL for {addr}")]
    BaseUrl { addr: SocketAddr },
    #[error("failed to build the delivery HTTP client")]
    DeliveryClient(#[source] reqwest::Error),
}

/// Starts emulators.
pub struct Emulator;

impl Emulator {
    /// Listens on `addr` (port 0 picks a free port) and serves until shut down or dropped.
    pub async fn spawn(
        config: EmulatorConfig,
        addr: SocketAddr,
    ) -> Result<RunningEmulator, EmulatorError> {
        if !addr.ip().is_loopback() && !config.allow_non_loopback_listen {
            return Err(EmulatorError::NonLoopbackListen { addr });
        }
        if config.api_keys.iter().all(String::is_empty) {
            return Err(EmulatorError::NoApiKeys);
        }
        let delivery_http = reqwest::Client::builder()
            // Never through a proxy, never to a redirect target: only the loopback URL checked
            // in `deliveries::loopback_target` may be contacted.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.delivery_timeout)
            .connect_timeout(config.delivery_timeout)
            // Loopback test receivers use self-signed certificates, if any.
            .danger_accept_invalid_certs(true)
            .user_agent(concat!("ivy-emulator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(EmulatorError::DeliveryClient)?;
        let app_secret = config
            .app_signing_secret
            .clone()
            .unwrap_or_else(model::new_secret);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let base_url = Url::parse(&format!("http://{local}/"))
            .map_err(|_| EmulatorError::BaseUrl { addr: local })?;
        let shared = Arc::new(Shared::new(config, app_secret, delivery_http));
        let app = server::router(shared.clone());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let served = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await;
            if let Err(err) = served {
                tracing::error!(error = %err, "ivy-emulator server stopped");
            }
        });
        Ok(RunningEmulator {
            addr: local,
            base_url,
            shared,
            stop: Some(stop_tx),
            server: Some(server),
        })
    }
}

/// A serving emulator. Dropping it stops the server and cancels pending deliveries;
/// [`RunningEmulator::shutdown`] does the same gracefully.
pub struct RunningEmulator {
    addr: SocketAddr,
    base_url: Url,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl RunningEmulator {
    /// The address actually listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/`, the base URL for an Ivy client.
    pub fn base_url(&self) -> Url {
        self.base_url.clone()
    }

    /// The state, for assertions and for steering the emulator.
    pub fn state(&self) -> EmulatorState {
        EmulatorState {
            shared: self.shared.clone(),
        }
    }

    /// Stops accepting, lets open requests finish (up to a few seconds), cancels pending
    /// deliveries, and returns once the server task has ended.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(server::SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
        {
            server.abort();
            let _ = server.await;
        }
        self.shared.abort_jobs();
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        self.shared.abort_jobs();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_keys_and_secret() {
        let config = EmulatorConfig::default()
            .with_api_key("key-topsecret")
            .app_signing_secret("whsec_topsecret");
        let printed = format!("{config:?}");
        assert!(!printed.contains("topsecret"), "{printed}");
        assert!(printed.contains("redacted"));
    }
}
