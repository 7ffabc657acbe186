//! HTTP JSON API (actix-web) under `/api/v1`, WebSocket streams, and operations endpoints.
//!
//! ```text
//!   request ─ size limit ─ bearer token → principal ─ role check ─ body (deny_unknown_fields)
//!      ├─ routing (contacts, agents, supervisor)  ──► Site actor (bounded mailbox)
//!      └─ orders, pre-orders, complaints, ...     ──► Proposer → Raft → state machine
//!   every error: RFC 9457 problem details (`problem`)
//! ```
//!
//! - [`auth`] — tokens and roles.
//! - [`problem`] — errors as problem details, extractor configs.
//! - [`routes`] — the endpoints.
//! - [`openapi`] — the OpenAPI document.

pub mod auth;
pub mod openapi;
pub mod problem;
pub mod routes;

use std::sync::Arc;

use actix::Addr;
use actix_web::web;

use crate::actors::site::SiteActor;
use crate::config::NodeConfig;
use crate::replicate::Proposer;
use crate::state::SharedState;
use auth::TokenTable;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The configuration.
    pub config: Arc<NodeConfig>,
    /// Tokens → principals.
    pub tokens: Arc<TokenTable>,
    /// The Site actor.
    pub site: Addr<SiteActor>,
    /// Proposes commands to the replicated state.
    pub proposer: Proposer,
    /// The replicated state (read side).
    pub shared: SharedState,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AppState")
            .field("site", &self.config.site.id)
            .finish()
    }
}

/// Registers every route and extractor config on an actix `App`.
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |service: &mut web::ServiceConfig| {
        let body_bytes_max = state.config.http.body_bytes_max;
        service
            .app_data(web::Data::new(state))
            .app_data(problem::json_config(body_bytes_max))
            .app_data(problem::payload_config(body_bytes_max))
            .app_data(problem::path_config())
            .app_data(problem::query_config());
        routes::register(service);
    }
}
