//! Wires the process together from the flags: Ivy client, kube client, metrics, server,
//! leader election, controller, and an orderly shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::FutureExt;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::accounts::{
    self, AccountMetrics, AccountRegistry, AccountsConfig, BudgetConfig, DefaultAccount,
};
use crate::controller::metrics::{InstrumentedIvy, Metrics};
use crate::controller::{self, Context, ControllerConfig};
use crate::ivy::{ApiKey, ClientConfig, Dialect, SharedIvyApi, SigningSecret, build_ivy_client};
use crate::operator::cli::RunArgs;
use crate::operator::leader::Leadership;
use crate::operator::metrics::ProcessMetrics;
use crate::operator::server::{self, Health};

/// How the process ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop (SIGTERM / SIGINT).
    Stopped,
    /// Another replica took the Lease; the process exits so it restarts as a standby.
    LostLeadership,
}

/// Runs the operator until SIGTERM / SIGINT or, with leader election, until leadership is lost.
pub async fn run(args: RunArgs) -> anyhow::Result<Exit> {
    let api_key = read_api_key(&args)?;
    let app_signing_secret = read_app_signing_secret(&args)?;
    if args.ivy_dialect == Dialect::Service && app_signing_secret.is_none() {
        bail!(
            "the service dialect needs --app-signing-secret-file: its subscriptions have no secret of their own"
        );
    }

    let client = kube::Client::try_default()
        .await
        .context("failed to build a Kubernetes client (in-cluster or KUBECONFIG)")?;

    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let process_metrics = ProcessMetrics::register(&mut registry);
    let mut ivy_config = ClientConfig::new(args.ivy_base_url.clone(), api_key, args.ivy_dialect);
    ivy_config.request_timeout = args.ivy_request_timeout;
    ivy_config.api_key_file = args.ivy_api_key_file.clone();
    ivy_config.ca_file = args.ivy_ca_file.clone();
    let http = ivy_config.http_client()?;
    let ivy = Arc::new(InstrumentedIvy::new(
        build_ivy_client(ivy_config, http.clone()),
        metrics.clone(),
    ));
    // Every account, the flags' default one included, spends its own request budget.
    let accounts_config = AccountsConfig {
        default_budget: BudgetConfig {
            rate: args.ivy_rate,
            burst: args.ivy_burst,
        },
        request_timeout: args.ivy_request_timeout,
        watch_namespace: args.watch_namespace.clone(),
        // Cluster accounts need cluster-wide RBAC, which a single-namespace install lacks.
        cluster_accounts: args.watch_namespace.is_none(),
        ..AccountsConfig::default()
    };
    let instrument = metrics.clone();
    let account_registry = Arc::new(
        AccountRegistry::new(
            client.clone(),
            http,
            DefaultAccount {
                ivy,
                app_signing_secret: app_signing_secret.clone(),
            },
            accounts_config,
            Arc::new(AccountMetrics::register(&mut registry)),
        )
        .with_decorator(Arc::new(move |ivy| {
            Arc::new(InstrumentedIvy::new(ivy, instrument.clone())) as SharedIvyApi
        })),
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(forward_signals(stop_tx));

    let health = Arc::new(Health::default());
    let (addr, server_task) = server::bind(
        args.metrics_addr,
        server::router(registry, health.clone()),
        wait_for(stop_rx.clone()),
    )
    .await
    .with_context(|| format!("failed to listen on {}", args.metrics_addr))?;
    info!(%addr, dialect = %args.ivy_dialect, base_url = %args.ivy_base_url, "metrics and health server listening");

    let identity = args
        .pod_name
        .clone()
        .unwrap_or_else(|| format!("ivy-webhook-operator-{}", uuid::Uuid::new_v4().simple()));
    let config = ControllerConfig {
        watch_namespace: args.watch_namespace.clone(),
        resync_interval: args.resync_interval,
        rotation_grace_period: args.rotation_grace_period,
        concurrency: args.concurrency,
        instance_name: Some(identity.clone()),
        allow_adoption: args.allow_adoption,
        ..ControllerConfig::default()
    };
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            account_registry.default_account().ivy,
            app_signing_secret,
            config,
            metrics,
        )
        .with_accounts(account_registry.clone()),
    );

    let mut leadership = None;
    if args.leader_election {
        let namespace = args
            .lease_namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let mut lease = Leadership::compete(
            client,
            &namespace,
            &args.lease_name,
            &identity,
            args.lease_duration,
        )
        .await
        .context("failed to start leader election")?;
        // A standby is healthy and ready to take over; it must not block rolling updates.
        health.set_ready(true);
        info!(%identity, lease = %args.lease_name, %namespace, "waiting to become the leader");
        let mut stop = stop_rx.clone();
        tokio::select! {
            acquired = lease.acquired() => {
                if !acquired {
                    bail!("leader election stopped before this replica became the leader");
                }
            }
            _ = stop.wait_for(|stopped| *stopped) => {
                lease.release().await;
                let _ = server_task.await;
                return Ok(Exit::Stopped);
            }
        }
        info!(%identity, "became the leader");
        health.set_ready(false);
        leadership = Some(lease);
    }
    // The leader, or the only replica: this process reconciles from here on.
    process_metrics.set_leader(true);

    let (lost_tx, mut lost_rx) = watch::channel(false);
    let lost_watch = leadership.as_ref().map(|lease| {
        let mut state = lease.subscribe();
        tokio::spawn(async move {
            if state.wait_for(|leader| !*leader).await.is_ok() {
                let _ = lost_tx.send(true);
            }
        })
    });
    let controller_stop = {
        let mut stop = stop_rx.clone();
        let mut lost = lost_rx.clone();
        async move {
            let lost_leadership = async {
                // Without leader election the sender is gone at once: that is not a loss.
                if lost.wait_for(|l| *l).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = stop.wait_for(|s| *s) => {}
                _ = lost_leadership => {}
            }
        }
    };
    let controller_stop = controller_stop.boxed().shared();
    let accounts_task = tokio::spawn(accounts::run_accounts(
        ctx.client.clone(),
        account_registry.clone(),
        controller_stop.clone(),
    ));
    let ready = health.clone();
    controller::run(ctx, controller_stop, move || ready.set_ready(true)).await;
    health.set_ready(false);
    process_metrics.set_leader(false);
    let _ = accounts_task.await;

    let lost = *lost_rx.borrow_and_update();
    // It holds a receiver of the lease state; the lease task ends only once all are dropped.
    if let Some(task) = lost_watch {
        task.abort();
        let _ = task.await;
    }
    if let Some(lease) = leadership {
        if lost {
            warn!("lost the leader lease; exiting so that this replica restarts as a standby");
        } else {
            lease.release().await;
        }
    }
    // The server stops with the stop signal; after a lost lease, stop it here.
    server_task.abort();
    Ok(if lost {
        Exit::LostLeadership
    } else {
        Exit::Stopped
    })
}

async fn wait_for(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Turns SIGTERM / SIGINT into the stop signal.
async fn forward_signals(stop: watch::Sender<bool>) {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|error| warn!(%error, "cannot listen for SIGTERM"))
        .ok();
    tokio::select! {
        _ = next_signal(&mut terminate) => info!("SIGTERM received; finishing in-flight reconciles"),
        _ = tokio::signal::ctrl_c() => info!("interrupt received; finishing in-flight reconciles"),
    }
    let _ = stop.send(true);
    // A second signal, or a shutdown that hangs, ends the process anyway.
    tokio::select! {
        _ = next_signal(&mut terminate) => warn!("second SIGTERM; exiting now"),
        _ = tokio::signal::ctrl_c() => warn!("second interrupt; exiting now"),
        _ = tokio::time::sleep(Duration::from_secs(25)) => warn!("shutdown took too long; exiting"),
    }
    std::process::exit(1);
}

/// The next delivery of `signal`; never, when it could not be listened for.
async fn next_signal(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

fn read_api_key(args: &RunArgs) -> anyhow::Result<ApiKey> {
    let key = match (&args.ivy_api_key_file, &args.ivy_api_key) {
        (Some(path), _) => std::fs::read_to_string(path)
            .with_context(|| format!("failed to read the Ivy API key file {}", path.display()))?,
        (None, Some(key)) => key.clone(),
        (None, None) => bail!("no Ivy API key: set --ivy-api-key-file or IVY_API_KEY"),
    };
    let key = key.trim();
    if key.is_empty() {
        bail!("the Ivy API key is empty");
    }
    Ok(ApiKey::new(key))
}

fn read_app_signing_secret(args: &RunArgs) -> anyhow::Result<Option<SigningSecret>> {
    let Some(path) = &args.app_signing_secret_file else {
        return Ok(None);
    };
    let secret = std::fs::read_to_string(path).with_context(|| {
        format!(
            "failed to read the app signing secret file {}",
            path.display()
        )
    })?;
    let secret = secret.trim();
    if secret.is_empty() {
        bail!("the app signing secret file {} is empty", path.display());
    }
    Ok(Some(SigningSecret::new(secret)))
}
