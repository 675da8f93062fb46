//! Builds the server's state (store, hub, keys) and its routes, serves them, and shuts down
//! gracefully: stop accepting, close sockets with 1001, let in-flight requests finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::RouteInfo;
use crate::auth::{self, Accounts, AuthUser, Keys, Passwords};
use crate::config::Config;
use crate::cors::Cors;
use crate::error::ApiError;
use crate::hub::{Event, EventKind, Hub, Outbound};
use crate::ids::GroupId;
use crate::limits::LoginGuard;
use crate::metrics::Metrics;
use crate::store::{seed, settings, written, Store};

pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub hub: Arc<Hub>,
    pub keys: Arc<Keys>,
    pub passwords: Passwords,
    pub accounts: Accounts,
    pub login_guard: LoginGuard,
    pub metrics: Arc<Metrics>,
    pub cors: Cors,
    pub shutdown: CancellationToken,
    /// Every socket task, so shutdown can wait for their close frames.
    pub sockets: TaskTracker,
}

impl AppState {
    /// The caller a token names: signed by us, unexpired, and its account still exists;
    /// 401 otherwise. Every protected route and the WebSocket upgrade go through here.
    pub async fn authenticate(&self, token: &str) -> Result<AuthUser, ApiError> {
        let user = self.keys.verify(token)?;
        self.accounts.ensure(user.id, &self.store).await?;
        Ok(user)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

impl From<ApiError> for StartError {
    fn from(e: ApiError) -> Self {
        StartError(e.to_string())
    }
}

pub struct Server {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    state: Arc<AppState>,
    routes: Vec<RouteInfo>,
    tasks: Vec<JoinHandle<()>>,
}

/// The key under which a generated JWT secret is kept.
pub const JWT_SECRET_KEY: &str = "jwt_secret";

/// The configured JWT secret, or the one kept in the database (generated on first use).
pub fn jwt_secret(
    conn: &rusqlite::Connection,
    configured: Option<&str>,
) -> Result<String, ApiError> {
    match configured {
        Some(secret) => Ok(secret.to_string()),
        None => settings::get_or_insert(conn, JWT_SECRET_KEY, &auth::generate_secret()),
    }
}

/// Opens and migrates the database, seeds a new one, binds the address and starts serving.
pub async fn start(config: Config) -> Result<Server, StartError> {
    config.validate().map_err(StartError)?;
    let hub = Arc::new(Hub::new(config.hub_capacity));
    let metrics = Arc::new(Metrics::new());
    let (path, sync, cost) = (config.db_path.clone(), config.sync, config.bcrypt_cost);
    let (open_hub, open_metrics) = (Arc::clone(&hub), Arc::clone(&metrics));
    let (store, passwords) = tokio::task::spawn_blocking(move || {
        let store = Store::open(&path, sync, open_hub, open_metrics)?;
        Ok::<_, String>((store, Passwords::new(cost)?))
    })
    .await
    .map_err(|e| StartError(e.to_string()))?
    .map_err(StartError)?;

    let (seed_new, configured) = (config.seed, config.jwt_secret.clone());
    let secret = store
        .write(move |c| {
            if seed_new && !seed::already_seeded(c)? {
                let file = seed::SeedFile::parse(seed::DEFAULT).map_err(ApiError::internal)?;
                let hash = |p: &str| bcrypt::hash(p, cost).map_err(|e| e.to_string());
                let report = seed::apply(c, &file, &hash).map_err(ApiError::internal)?;
                tracing::info!(users = ?report.users, groups = ?report.groups, "seeded a new database");
            }
            Ok(written(jwt_secret(c, configured.as_deref())?, Vec::new()))
        })
        .await?;

    let accounts = store.read(Accounts::load).await?;
    let (listener, addr) = bind(config.addr).await?;
    let metrics_listener = match config.metrics_addr {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let state = Arc::new(AppState {
        keys: Arc::new(Keys::new(secret.as_bytes(), config.access_ttl)),
        cors: Cors::new(&config.cors_origins),
        login_guard: LoginGuard::new(config.account_login_limit, config.address_login_limit),
        accounts,
        config,
        store,
        hub,
        passwords,
        metrics,
        shutdown: CancellationToken::new(),
        sockets: TaskTracker::new(),
    });
    let (filter, routes) = crate::api::routes(&state);
    let mut tasks = vec![tokio::spawn(crate::net::serve(
        listener,
        filter,
        Arc::clone(&state),
    ))];
    tasks.push(tokio::spawn(watch_deletions(Arc::clone(&state))));
    let mut metrics_addr = None;
    if let Some((listener, a)) = metrics_listener {
        let only_metrics = crate::api::metrics_only(&state);
        tasks.push(tokio::spawn(crate::net::serve(
            listener,
            only_metrics,
            Arc::clone(&state),
        )));
        metrics_addr = Some(a);
        tracing::info!(addr = %a, "metrics listening");
    }
    tracing::info!(%addr, db = %state.config.db_path.display(), "listening");
    Ok(Server {
        addr,
        metrics_addr,
        state,
        routes,
        tasks,
    })
}

/// Notices accounts deleted by the CLI: their tokens stop working and their sockets close.
async fn watch_deletions(state: Arc<AppState>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        match state.accounts.refresh(&state.store).await {
            Ok(gone) => {
                for user in gone {
                    tracing::info!(%user, "account deleted; closing its sockets");
                    let event =
                        Event::new(GroupId(0), EventKind::AccountClosed, &"account deleted");
                    state.hub.publish(Outbound::User(user, Arc::new(event)));
                }
            }
            Err(e) => tracing::warn!(error = %e, "checking for deleted accounts"),
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| StartError(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| StartError(e.to_string()))?;
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
        tracing::info!("stopped");
    }
}
