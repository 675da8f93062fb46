//! Builds the server's state (store, hub, keys) and its routes, serves them, and shuts down
//! gracefully: stop accepting, close sockets with 1001, let in-flight requests finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{self, Keys, Passwords};
use crate::config::Config;
use crate::error::ApiError;
use crate::hub::Hub;
use crate::store::{seed, settings, written, Store};

pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub hub: Arc<Hub>,
    pub keys: Arc<Keys>,
    pub passwords: Passwords,
    pub shutdown: CancellationToken,
    /// Every socket task, so shutdown can wait for their close frames.
    pub sockets: TaskTracker,
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
    state: Arc<AppState>,
    task: JoinHandle<()>,
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
    let (path, sync, cost) = (config.db_path.clone(), config.sync, config.bcrypt_cost);
    let open_hub = Arc::clone(&hub);
    let (store, passwords) = tokio::task::spawn_blocking(move || {
        let store = Store::open(&path, sync, open_hub)?;
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

    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|e| StartError(format!("cannot listen on {}: {e}", config.addr)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError(e.to_string()))?;
    let state = Arc::new(AppState {
        keys: Arc::new(Keys::new(secret.as_bytes(), config.access_ttl)),
        config,
        store,
        hub,
        passwords,
        shutdown: CancellationToken::new(),
        sockets: TaskTracker::new(),
    });
    let routes = crate::api::routes(&state);
    let task = tokio::spawn(crate::net::serve(listener, routes, state.shutdown.clone()));
    tracing::info!(%addr, db = %state.config.db_path.display(), "listening");
    Ok(Server { addr, state, task })
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
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
        let _ = self.task.await;
        tracing::info!("stopped");
    }
}
