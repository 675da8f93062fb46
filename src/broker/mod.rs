//! The broker seam: where events go once published. Alone (the default) they go straight to
//! this process's hub. With `--broker nats://…` they also reach every other instance serving
//! the same PostgreSQL database, through NATS (`nats`).
//!
//! Two kinds cross:
//! - **Committed events** (messages, edits, reactions, memberships): the writer numbers each
//!   batch from a counter row in the database (`cluster_head`), whose lock orders the batches
//!   of all instances, and stores the batch's events under that number (`cluster_log`) in the
//!   same transaction. After the commit they are published on NATS, and each instance hands
//!   batches to its hub strictly in number order, its own included: a number that does not
//!   arrive in time, or a broker that is away, is read back from the log. So every socket
//!   gets each event once, in commit order, whatever NATS drops.
//! - **Passing events** (typing, presence, orders to sockets): published on NATS and to the
//!   local hub, never stored; lost if the broker is away, as typing would be anyway.

mod nats;

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::Accounts;
use crate::config::Database;
use crate::error::Result;
use crate::hub::{Hub, Outbound};
use crate::limits::{LoginGuard, RateLimit};
use crate::metrics::Metrics;
use crate::store::Store;

pub(crate) struct Bus {
    hub: Arc<Hub>,
    cluster: Option<nats::Cluster>,
}

/// A batch as the writer committed it: its number, and its events as stored.
pub(crate) struct Batch {
    pub seq: i64,
    pub body: String,
}

impl Bus {
    /// This process only.
    pub fn alone(hub: Arc<Hub>) -> Bus {
        Bus { hub, cluster: None }
    }

    /// Joins the instances of `db` through the NATS server at `url`: connects and subscribes
    /// now, so nothing published from here on is missed.
    pub async fn join(
        url: &str,
        db: &Database,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
    ) -> Result<Bus> {
        let cluster = nats::Cluster::connect(url, db, metrics).await?;
        Ok(Bus {
            hub,
            cluster: Some(cluster),
        })
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// For `/healthz`: "none" or "nats".
    pub fn name(&self) -> &'static str {
        match self.cluster {
            None => "none",
            Some(_) => "nats",
        }
    }

    /// False while the broker is unreachable (events then reach other instances late, from
    /// the database).
    pub fn usable(&self) -> bool {
        self.cluster.as_ref().is_none_or(nats::Cluster::connected)
    }

    /// Whether the writer numbers and logs its batches (instances are joined).
    pub fn joined(&self) -> bool {
        self.cluster.is_some()
    }

    /// Sessions ended on another instance are refused here as soon as its word arrives (and
    /// within a second from the database if it does not: see `Accounts::refresh`).
    pub fn follow_accounts(&self, accounts: Arc<Accounts>) {
        if let Some(cluster) = &self.cluster {
            cluster.follow_accounts(accounts);
        }
    }

    /// Failed logins and sign-ups count on every instance: each is passed to the others.
    pub fn share_limits(&self, logins: Arc<LoginGuard>, signups: Arc<RateLimit>) {
        if let Some(cluster) = &self.cluster {
            cluster.share_limits(logins, signups);
        }
    }

    /// An event that is not stored: here, and on every other instance.
    pub fn publish(&self, out: Outbound) {
        if let Some(cluster) = &self.cluster {
            cluster.pass(&out);
        }
        self.hub.publish(out);
    }

    /// A committed batch's events, in commit order (called by the writer, after the commit).
    /// Joined, `batch` is what the log holds of them.
    pub fn committed(&self, batch: Option<Batch>, events: Vec<Outbound>) {
        match (&self.cluster, batch) {
            (Some(cluster), Some(batch)) => cluster.committed(batch, events),
            _ => {
                for event in events {
                    self.hub.publish(event);
                }
            }
        }
    }

    /// Starts handing other instances' batches to the hub, from the newest one committed now
    /// (what came before is in the database, where sockets start reading). Nothing to do
    /// alone.
    pub async fn start(
        &self,
        store: Store,
        shutdown: CancellationToken,
    ) -> Result<Option<JoinHandle<()>>> {
        match &self.cluster {
            None => Ok(None),
            Some(cluster) => Ok(Some(
                cluster
                    .start(Arc::clone(&self.hub), store, shutdown)
                    .await?,
            )),
        }
    }
}
