//! What every request and socket shares: the service, and what the edges need beside it.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::cors::Cors;
use crate::metrics::Metrics;
use crate::net::{Budget, Hosts};
use crate::service::Service;

pub(crate) struct AppState {
    pub config: Config,
    pub service: Service,
    pub metrics: Arc<Metrics>,
    pub cors: Cors,
    /// The names a request's Host may give.
    pub hosts: Hosts,
    /// Connections held, in all and per address.
    pub budget: Arc<Budget>,
    /// Cancelled when the server stops: every loop selects on it.
    pub shutdown: CancellationToken,
    /// Every socket task, so shutdown can wait for their close frames.
    pub sockets: TaskTracker,
}
