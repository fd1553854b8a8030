//! A minimal webhook receiver that verifies `X-Ivy-Signature` with the signing secret as a pod
//! sees it: the files of the mounted Secret (`signing-secret`, and during a rotation
//! `previous-signing-secret`). The files are read on every request, so a rotation applies as soon
//! as the kubelet updates the mount.
//!
//! ```text
//! cargo run --example receiver -- --listen 127.0.0.1:9000 --secret-dir /etc/ivy-webhook
//! ```
//!
//! Each delivery prints one JSON line: `{"verified":"current"|"previous"|null, "type", "id"}`.
//! Answers 200 to a verified delivery and 401 otherwise (Ivy retries non-200 answers).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use clap::Parser;
use ivy_webhook_operator::ivy::{SigningSecret, verify_signature};

/// Verifies Ivy webhook deliveries with the keys of a mounted Secret.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free port and prints it).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory where the Secret is mounted (holds `signing-secret`).
    #[arg(long)]
    secret_dir: PathBuf,
    /// Path deliveries arrive on.
    #[arg(long, default_value = "/webhooks/ivy")]
    path: String,
}

fn read_key(dir: &Path, name: &str) -> Option<SigningSecret> {
    let text = std::fs::read_to_string(dir.join(name)).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| SigningSecret::new(text))
}

async fn deliver(State(dir): State<Arc<PathBuf>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = headers
        .get("x-ivy-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let verified = [
        ("current", "signing-secret"),
        ("previous", "previous-signing-secret"),
    ]
    .into_iter()
    .find(|(_, file)| {
        read_key(&dir, file).is_some_and(|key| verify_signature(&key, &body, signature).is_ok())
    })
    .map(|(which, _)| which);
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let line = serde_json::json!({
        "verified": verified,
        "type": event.get("type"),
        "id": event.get("id"),
    });
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
    if verified.is_some() {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let app = Router::new()
        .route(&args.path, post(deliver))
        .with_state(Arc::new(args.secret_dir));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
