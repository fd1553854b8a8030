//! The HTTP server for `/metrics` (Prometheus text), `/healthz` (the process runs) and
//! `/readyz` (caches synced and, with leader election, the process is the leader or a ready
//! standby).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// Readiness shared between the controller and the server.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

struct ServerState {
    registry: Registry,
    health: Arc<Health>,
}

/// The server's routes.
pub fn router(registry: Registry, health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(Arc::new(ServerState { registry, health }))
}

async fn metrics(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn readyz(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    if state.health.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

/// Binds `addr` (fails early if it is taken) and returns the bound address and the server task.
pub async fn bind(
    addr: SocketAddr,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
    });
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get_text(addr: SocketAddr, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    #[tokio::test]
    async fn readyz_follows_health_and_metrics_are_prometheus_text() {
        let mut registry = Registry::default();
        let metrics = crate::controller::metrics::Metrics::register(&mut registry);
        metrics.observe_reconcile("success", std::time::Instant::now());
        let health = Arc::new(Health::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr, task) = bind(
            "127.0.0.1:0".parse().unwrap(),
            router(registry, health.clone()),
            async {
                rx.await.ok();
            },
        )
        .await
        .unwrap();

        assert_eq!(get_text(addr, "/healthz").await.0, 200);
        assert_eq!(get_text(addr, "/readyz").await.0, 503);
        health.set_ready(true);
        assert_eq!(get_text(addr, "/readyz").await.0, 200);
        let (status, body) = get_text(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            body.contains("ivywh_reconciles_total{result=\"success\"} 1"),
            "{body}"
        );
        assert!(
            body.contains("ivywh_reconcile_duration_seconds_bucket"),
            "{body}"
        );

        tx.send(()).unwrap();
        task.await.unwrap().unwrap();
    }
}
