//! Leader election on a coordination.k8s.io Lease (kube-lease-manager), so that of several
//! replicas exactly one reconciles.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// A held (or awaited) leadership.
pub struct Leadership {
    state: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

impl Leadership {
    /// Starts competing for the Lease `namespace/name` as `identity`.
    pub async fn compete(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> kube_lease_manager::Result<Self> {
        let seconds = duration.as_secs().max(2);
        let manager = LeaseManagerBuilder::new(client, name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(seconds)
            // Renew well before expiry; tolerates that much clock skew between nodes.
            .with_grace((seconds / 3).max(1))
            .with_field_manager(format!("ivy-webhook-operator-lease-{identity}"))
            .build()
            .await?;
        let (state, task) = manager.watch().await;
        Ok(Self { state, task })
    }

    /// Waits until this process holds the Lease.
    pub async fn acquired(&mut self) -> bool {
        self.state.wait_for(|leader| *leader).await.is_ok()
    }

    /// Gives the Lease up so a standby takes over at once instead of after the lease duration.
    pub async fn release(self) {
        drop(self.state);
        match self.task.await {
            Ok(Ok(manager)) => match manager.release().await {
                Ok(()) => info!("released the leader lease"),
                Err(error) => warn!(%error, "failed to release the leader lease"),
            },
            Ok(Err(error)) => warn!(%error, "lease manager failed"),
            Err(error) => warn!(%error, "lease manager task failed"),
        }
    }

    /// A receiver of leadership changes, for a task that outlives `&mut self` borrows.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.state.clone()
    }
}
