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
//! The wire formats, the quirk profiles, the admin API and the fault model are documented in
//! `docs/ivy-emulator.md`.

pub mod catalogue;
pub mod config;
pub mod counters;
pub mod deliveries;
pub mod faults;
pub mod model;
pub mod payloads;
pub mod quirks;
pub mod state;
pub mod tls;

mod admin;
mod delivery_log;
mod errors;
mod handler;
mod idempotency;
mod internal;
mod paging;
mod pipeline;
mod rest;
mod server;
mod service;
mod shared;
mod store;

#[cfg(test)]
mod scale;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

pub use config::{DEFAULT_API_KEY, EmulatorConfig, ivy_retry_schedule};
pub use counters::{Mutation, Operation, OperationCount, RequestCount};
pub use delivery_log::{Attempt, Delivery, DeliveryState};
pub use faults::{AfterCommit, Fault, FaultKind, FaultSpec};
pub use quirks::{ConflictBody, Quirks, QuirksError};
pub use state::{EmulatorState, SendEventError, SubscriptionView};
pub use tls::{TlsError, TlsIdentity};

use shared::Shared;

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
    #[error("cannot serve TLS")]
    Tls(#[from] TlsError),
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
        let tls = config.tls.as_ref().map(tls::server_config).transpose()?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base_url = Url::parse(&format!("{scheme}://{local}/"))
            .map_err(|_| EmulatorError::BaseUrl { addr: local })?;
        let shared = Arc::new(Shared::new(config, app_secret, delivery_http));
        let app = server::router(shared.clone());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let stopped = async {
            let _ = stop_rx.await;
        };
        let server = match tls {
            None => tokio::spawn(async move {
                let served = axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(stopped)
                .await;
                if let Err(err) = served {
                    tracing::error!(error = %err, "ivy-emulator server stopped");
                }
            }),
            Some(config) => {
                let listener = tls::TlsListener::new(listener, config)
                    .map_err(|source| EmulatorError::Bind { addr, source })?;
                let app = app.layer(axum::middleware::from_fn(tls::peer_as_socket_addr));
                tokio::spawn(async move {
                    let served = axum::serve(
                        listener,
                        app.into_make_service_with_connect_info::<tls::TlsPeer>(),
                    )
                    .with_graceful_shutdown(stopped)
                    .await;
                    if let Err(err) = served {
                        tracing::error!(error = %err, "ivy-emulator server stopped");
                    }
                })
            }
        };
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

    /// `http://ADDR/` (`https://ADDR/` when serving TLS), the base URL for an Ivy client.
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
