//! Wiring a running node: tokens, the Site actor under its supervisor, and the HTTP server.
//!
//! The caller (the `callgrid` binary, or a test) chooses the [`Replicator`]; the binary always
//! passes the Raft one from `cluster_replicator`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Supervisor};
use actix_web::{App, HttpServer, dev::ServerHandle};

use crate::actors::site::{SiteActor, SiteError};
use crate::api::auth::TokenTable;
use crate::api::{AppState, configure};
use crate::config::NodeConfig;
use crate::replicate::{Proposer, Replicator};
use crate::state::SharedState;

/// HTTP worker threads; the work is in the Site actor and Raft, not in the handlers.
pub const HTTP_WORKERS: usize = 2;
/// Pending connections the listener queues.
pub const HTTP_BACKLOG: u32 = 1_024;
/// Connections served at once per worker.
pub const HTTP_CONNECTIONS_MAX: usize = 10_000;

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The Site actor could not be built from the configuration.
    #[error("site: {0}")]
    Site(#[from] SiteError),
    /// The HTTP listener could not bind.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The IO error.
        source: std::io::Error,
    },
}

/// A started node: where it listens and how to stop it.
pub struct RunningNode {
    /// The bound HTTP address (the real port when 0 was asked for).
    pub http_address: SocketAddr,
    /// The HTTP server future; await it to serve until stopped.
    pub server: actix_web::dev::Server,
    /// Stops the HTTP server.
    pub handle: ServerHandle,
    /// The Site actor.
    pub site: Addr<SiteActor>,
}

impl std::fmt::Debug for RunningNode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RunningNode")
            .field("http_address", &self.http_address)
            .finish()
    }
}

/// Starts the Site actor and the HTTP server inside the current actix system.
pub fn start(
    config: Arc<NodeConfig>,
    tokens: TokenTable,
    replicator: Arc<dyn Replicator>,
    shared: SharedState,
) -> Result<RunningNode, NodeError> {
    let proposer = Proposer::new(replicator, config.site.id.clone());
    actix_web::rt::spawn(sync_policy(
        proposer.clone(),
        shared.clone(),
        config.state_policy(),
    ));
    let actor = SiteActor::new(config.clone(), proposer.clone(), shared.clone())?;
    let site = Supervisor::start(move |_| actor);
    let state = AppState {
        config: config.clone(),
        tokens: Arc::new(tokens),
        site: site.clone(),
        proposer,
        shared,
    };
    let address = config.http.listen;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(
                crate::api::refuse_oversized_bodies,
            ))
            .configure(configure(state.clone()))
    })
    .workers(HTTP_WORKERS)
    .backlog(HTTP_BACKLOG)
    .max_connections(HTTP_CONNECTIONS_MAX)
    .shutdown_timeout(config.http.drain_s)
    .client_request_timeout(Duration::from_secs(10))
    .bind(address)
    .map_err(|source| NodeError::Bind { address, source })?;
    let http_address = server.addrs().first().copied().unwrap_or(address);
    let server = server.run();
    let handle = server.handle();
    Ok(RunningNode {
        http_address,
        server,
        handle,
        site,
    })
}

/// Attempts to replicate the configured policy before giving up (one a second).
pub const POLICY_SYNC_ATTEMPTS_MAX: u32 = 120;

/// Replicates this site's `[callbacks]`/`[orders]` policy when the cluster holds another one.
/// Sites should carry the same values; if they differ, the last site started wins.
async fn sync_policy(
    proposer: Proposer,
    shared: SharedState,
    policy: crate::state::model::StatePolicy,
) {
    for _ in 0..POLICY_SYNC_ATTEMPTS_MAX {
        if shared.read(|state| state.policy == policy) {
            return;
        }
        let command = crate::state::Command::SetPolicy(policy.clone());
        match proposer
            .propose(crate::state::model::Actor::system(), command)
            .await
        {
            Ok(_) => {
                tracing::info!("replicated policy updated from this site's configuration");
                return;
            }
            Err(error) => tracing::debug!(%error, "policy not replicated yet; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tracing::warn!("could not replicate this site's policy");
}

/// The replicator the binary runs: Raft on RocksDB (and QUIC when the site has peers).
pub fn cluster_replicator(
    config: &NodeConfig,
    shared: SharedState,
) -> Result<Arc<dyn Replicator>, crate::cluster::ClusterStartError> {
    Ok(Arc::new(crate::cluster::start(config, shared)?))
}
