//! Builds the server's state (store, hub, keys) and its routes, serves them, and shuts down
//! gracefully: stop accepting, close sockets with 1001, let in-flight requests finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{self, Accounts};
use crate::broker::Bus;
use crate::config::Config;
use crate::cors::Cors;
use crate::error::{Error, Result};
use crate::http::{self, RouteInfo};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::net::{self, Budget, Hosts};
use crate::service::Service;
use crate::state::AppState;
use crate::store::{Caps, DbLock, SeedFile, Store};

/// A running server.
pub struct Server {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    state: Arc<AppState>,
    routes: Vec<RouteInfo>,
    tasks: Vec<JoinHandle<()>>,
    /// Held until the server is dropped: released, another server may open the database.
    _lock: Option<DbLock>,
}

/// Opens and migrates the database, seeds a new one, binds the address and starts serving.
pub async fn start(config: Config) -> Result<Server> {
    // One server per database, and the address taken, before anything is changed: a second
    // server, or a busy port, leaves the database as it was.
    // (PostgreSQL's lock is an advisory lock the store takes before migrating.)
    let mut lock = config.db.file().map(DbLock::acquire).transpose()?;
    let (listener, addr) = bind(config.addr).await?;
    let metrics_listener = match config.metrics_addr {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    if let Some(lock) = &mut lock {
        lock.note(&format!("pid {}, http://{addr}", std::process::id()));
    }
    let metrics = Arc::new(Metrics::new());
    let service = open_service(&config, &metrics).await?;
    // Before serving: no upload can be in progress, so every unfinished one is abandoned.
    service.purge_attachments(true).await;
    let shutdown = CancellationToken::new();
    // Before serving: sockets start from what is committed now, and the broker brings the
    // rest.
    let applier = service
        .bus
        .start(service.store.clone(), shutdown.clone())
        .await?;
    let state = state(config, service, metrics, shutdown);
    let router = http::router(&state);
    let routes = router.table();
    let mut tasks = vec![tokio::spawn(net::serve(
        listener,
        router,
        Arc::clone(&state),
    ))];
    tasks.extend(housekeeping(&state));
    tasks.extend(applier);
    let metrics_addr = metrics_listener.map(|(listener, a)| {
        let only_metrics = http::metrics_router();
        tasks.push(tokio::spawn(net::serve(
            listener,
            only_metrics,
            Arc::clone(&state),
        )));
        tracing::info!(addr = %a, "metrics listening");
        a
    });
    tracing::info!(
        %addr,
        db = %state.config.db,
        broker = state.config.broker.as_deref().unwrap_or("none"),
        max_connections = state.budget.max(),
        per_address = state.budget.per_ip(),
        "listening"
    );
    Ok(Server {
        addr,
        metrics_addr,
        state,
        routes,
        tasks,
        _lock: lock,
    })
}

fn state(
    config: Config,
    service: Service,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Arc<AppState> {
    Arc::new(AppState {
        service,
        cors: Cors::new(&config.cors_origins),
        hosts: Hosts::new(&config.net.public_hosts),
        budget: Budget::new(
            config.net.max_connections,
            config.net.max_connections_per_ip,
        ),
        config,
        metrics,
        shutdown,
        sockets: TaskTracker::new(),
    })
}

/// Opens and migrates the database (on the blocking pool), starts its writer, seeds a new
/// database, and loads the keys and accounts.
async fn open_service(config: &Config, metrics: &Arc<Metrics>) -> Result<Service> {
    let hub = Arc::new(Hub::new(config.hub_capacity));
    let bus = Arc::new(match &config.broker {
        None => Bus::alone(hub),
        Some(url) => Bus::join(url, &config.db, hub, Arc::clone(metrics)).await?,
    });
    let (db, sync) = (config.db.clone(), config.sync);
    let caps = Caps {
        groups_owned: config.max_groups_per_user,
        memberships: config.max_memberships,
    };
    let (open_bus, store_metrics) = (Arc::clone(&bus), Arc::clone(metrics));
    let store =
        tokio::task::spawn_blocking(move || Store::open(&db, sync, caps, open_bus, store_metrics))
            .await
            .map_err(|e| Error::internal(e.to_string()))??;
    let configured = config
        .tokens
        .secret()
        .map_err(|e| Error::invalid("invalid_secret", e))?;
    let secret = store
        .prepare(seed_plan(config)?, configured, auth::generate_secret())
        .await?;
    let accounts = Accounts::load(&store, config.tokens.access_ttl).await?;
    Ok(Service::new(store, bus, &secret, accounts, config, metrics))
}

/// The server's own timers: following the changes to accounts made elsewhere and to the
/// database file, purging expired sessions and unused attachments, and the cluster log.
fn housekeeping(state: &Arc<AppState>) -> [JoinHandle<()>; 3] {
    let deletions = every(Duration::from_secs(1), Arc::clone(state), |s| async move {
        s.service.store.check_file();
        s.service.follow_account_changes().await;
        s.service.follow_cli_changes().await
    });
    let purge = every(
        Duration::from_secs(3600),
        Arc::clone(state),
        |s| async move {
            s.service.purge_expired_sessions().await;
            s.service.purge_attachments(false).await
        },
    );
    let log = every(Duration::from_secs(60), Arc::clone(state), |s| async move {
        if s.service.bus.joined() {
            if let Err(e) = s.service.store.prune_batches().await {
                tracing::warn!(error = %e, "pruning the cluster log");
            }
        }
    });
    [
        tokio::spawn(deletions),
        tokio::spawn(purge),
        tokio::spawn(log),
    ]
}

/// The built-in seed with its hashing, unless seeding is off.
fn seed_plan(config: &Config) -> Result<Option<(SeedFile, Box<crate::store::Hasher>)>> {
    if config.no_seed {
        return Ok(None);
    }
    let file = SeedFile::parse(crate::store::DEFAULT_SEED)?;
    let cost = config.hashing.bcrypt_cost;
    Ok(Some((
        file,
        Box::new(move |p: &str| auth::hash_password(p, cost)),
    )))
}

/// Runs `job` every `period` (the first time after one period) until shutdown.
async fn every<F, Fut>(period: Duration, state: Arc<AppState>, job: F)
where
    F: Fn(Arc<AppState>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(period);
    ticks.reset();
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = ticks.tick() => job(Arc::clone(&state)).await,
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::unavailable(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::internal(e.to_string()))?;
    Ok((listener, bound))
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served when `--metrics-addr` moved it off the main address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The demo accounts that still exist (username, password), for the banner.
    pub async fn demo_accounts(&self) -> Vec<(String, String)> {
        let loopback = Some(std::net::IpAddr::from([127, 0, 0, 1]));
        match self.state.service.welcome(loopback).await {
            Ok(w) => w
                .demo_accounts
                .into_iter()
                .map(|d| (d.username, d.password))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Every route the server serves, as documented in /openapi.json.
    pub fn routes(&self) -> &[RouteInfo] {
        &self.routes
    }

    /// Stops accepting, closes every socket with 1001, and waits for in-flight requests.
    pub async fn shutdown(self) {
        self.state.shutdown.cancel();
        self.state.sockets.close();
        if tokio::time::timeout(Duration::from_secs(5), self.state.sockets.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sockets did not close in time");
        }
        for task in self.tasks {
            let _ = task.await;
        }
        self.state.service.store.close().await;
        tracing::info!("stopped");
    }
}
