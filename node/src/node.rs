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
use crate::outbox::Outbox;
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
    /// The site's durable outbox: [`Outbox::close`] it after the server stopped.
    pub outbox: Outbox,
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
    let tokens = tokens.with_replicated(shared.clone());
    actix_web::rt::spawn(sync_site_settings(
        proposer.clone(),
        shared.clone(),
        SiteSettings {
            site: config.site.id.clone(),
            policy: config.state_policy(),
            tokens: tokens.seed(),
            skills: config
                .routing
                .skills
                .iter()
                .map(|skill| skill.name.clone())
                .collect(),
            agents: config.agent_definitions(),
        },
    ));
    let actor = SiteActor::new(config.clone(), proposer.clone(), shared.clone())?;
    let outbox = actor.outbox();
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
    // The binary handles SIGTERM/SIGINT itself: a leader hands leadership over first.
    .disable_signals()
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
        outbox,
    })
}

/// Attempts to replicate this site's settings before giving up with a warning (an hour).
pub const SETTINGS_SYNC_ATTEMPTS_MAX: u32 = 18_000;
/// Pause between two attempts: short, because until a site's policy is replicated, its
/// commands follow the policy it replicated before (or the cluster default on its first
/// start).
pub const SETTINGS_SYNC_RETRY_INTERVAL: Duration = Duration::from_millis(200);

/// What a site replicates from its configuration (see [`sync_site_settings`]).
struct SiteSettings {
    site: String,
    policy: crate::state::model::StatePolicy,
    tokens: Vec<crate::state::command::TokenGrant>,
    /// The site's skill names (its agents may hold only these).
    skills: Vec<String>,
    agents: Vec<crate::state::command::AgentDefinition>,
}

/// Replicates this site's settings once the node has caught up (a read barrier: everything
/// committed before it is applied here), and only what differs from the cluster's:
/// - its `[callbacks]`/`[orders]` policy, kept for this site alone (`SetSitePolicy`), so a
///   restart never changes another site's rules;
/// - its token seed (`[[tokens]]` and its admin token), merged: hashes the cluster knows —
///   active or revoked — stay as they are;
/// - its `[[agents]]`, merged into the cluster-wide roster (`SeedAgents`): an agent another
///   site defined differently is refused and logged here, never overwritten.
async fn sync_site_settings(proposer: Proposer, shared: SharedState, settings: SiteSettings) {
    use crate::state::model::Actor;
    use crate::state::{ApplyError, Command, Outcome};
    let SiteSettings {
        site,
        policy,
        tokens: seed,
        skills,
        agents,
    } = settings;
    for _ in 0..SETTINGS_SYNC_ATTEMPTS_MAX {
        let step = async {
            proposer
                .replicator()
                .read_barrier()
                .await
                .map_err(|error| error.to_string())?;
            let (policy_differs, unknown_tokens, roster_differs) = shared.read(|state| {
                (
                    state.site_policy(&site) != Some(&policy),
                    seed.iter()
                        .any(|grant| state.token(&grant.sha256).is_none()),
                    agents.iter().any(|agent| {
                        state.roster_agent(&agent.login).map(|record| &record.agent) != Some(agent)
                    }),
                )
            });
            if policy_differs {
                let command = Command::SetSitePolicy {
                    site: site.clone(),
                    policy: policy.clone(),
                };
                proposer
                    .propose(Actor::system(), command)
                    .await
                    .map_err(|error| error.to_string())?;
                tracing::info!(%site, "this site's policy replicated from its configuration");
            }
            if unknown_tokens {
                for chunk in seed.chunks(crate::state::command::TOKENS_PER_COMMAND_MAX) {
                    let command = Command::GrantTokens {
                        tokens: chunk.to_vec(),
                        seed: true,
                    };
                    proposer
                        .propose(Actor::system(), command)
                        .await
                        .map_err(|error| error.to_string())?;
                }
                tracing::info!(%site, tokens = seed.len(), "token seed merged into the cluster's tokens");
            }
            if roster_differs && !agents.is_empty() {
                let command = Command::SeedAgents {
                    skills: skills.clone(),
                    agents: agents.clone(),
                };
                match proposer.propose(Actor::system(), command).await {
                    Ok(Outcome::AgentsSeeded {
                        added,
                        unchanged,
                        refused,
                    }) => {
                        for (login, reason) in &refused {
                            tracing::warn!(%site, %login, %reason, "agent not taken into the cluster roster");
                        }
                        tracing::info!(%site, added, unchanged, refused = refused.len(), "agents merged into the cluster roster");
                    }
                    Ok(_) => {}
                    // A refusal is final (every agent conflicts): retrying would not help.
                    Err(crate::replicate::ProposeFailure::Refused(ApplyError::Conflict(
                        reason,
                    ))) => {
                        tracing::warn!(%site, %reason, "no agent of this site taken into the cluster roster");
                    }
                    Err(error) => return Err(error.to_string()),
                }
            }
            Ok::<(), String>(())
        };
        match step.await {
            Ok(()) => return,
            Err(error) => tracing::debug!(%error, "site settings not replicated yet; retrying"),
        }
        tokio::time::sleep(SETTINGS_SYNC_RETRY_INTERVAL).await;
    }
    tracing::warn!("could not replicate this site's policy, token seed and agents");
}

/// The replicator the binary runs: Raft on RocksDB (and QUIC when the site has peers).
pub fn cluster_replicator(
    config: &NodeConfig,
    shared: SharedState,
) -> Result<Arc<dyn Replicator>, crate::cluster::ClusterStartError> {
    Ok(Arc::new(crate::cluster::start(config, shared)?))
}
