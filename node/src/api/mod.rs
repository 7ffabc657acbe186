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
//! - [`membership`] — cluster membership for operators.
//! - [`site_control`] — cluster overview, drain/undrain, cluster-wide tokens (operators).
//! - [`openapi`] — the OpenAPI document.
//! - [`session`] — browser sign-in: session cookie and CSRF token.
//! - [`export`] — `.xlsx` exports of reports and the order journal.

pub mod auth;
pub mod export;
pub mod host_metrics;
pub mod membership;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod session;
pub mod site_control;

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};
use futures::StreamExt;

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

/// A body declared larger than the limit is still read, up to this many bytes, and dropped
/// before the 413 goes out: closing a connection with unread request bytes makes the kernel
/// reset it, and the client may then lose the 413 itself.
pub const OVERSIZED_BODY_DRAIN_BYTES_MAX: usize = 1024 * 1024;
/// Longest time spent reading an oversized body before answering anyway.
pub const OVERSIZED_BODY_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Middleware: a request whose `Content-Length` exceeds `http.body_bytes_max` is answered 413
/// (problem details) without reaching a handler; its body is drained first (see
/// [`OVERSIZED_BODY_DRAIN_BYTES_MAX`]). Bodies without a length are limited by the extractors.
pub async fn refuse_oversized_bodies(
    mut request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let limit = request
        .app_data::<web::Data<AppState>>()
        .map(|state| state.config.http.body_bytes_max);
    let declared = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    let (Some(limit), Some(declared)) = (limit, declared) else {
        return Ok(next.call(request).await?.map_into_left_body());
    };
    if declared <= limit {
        return Ok(next.call(request).await?.map_into_left_body());
    }
    if declared <= OVERSIZED_BODY_DRAIN_BYTES_MAX {
        let mut payload = request.take_payload();
        let drain = async {
            while let Some(chunk) = payload.next().await {
                if chunk.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(OVERSIZED_BODY_DRAIN_TIMEOUT, drain).await;
    }
    let response = problem::ApiError::TooLarge(limit).error_response();
    Ok(request.into_response(response).map_into_right_body())
}

/// Paths under `/api/v1` anyone may read without a token.
pub const PUBLIC_API_PATHS: &[&str] = &["/api/v1/openapi.json"];

/// Authenticates every `/api/v1` request before anything reads its body: a request without
/// a valid token is a 401 whatever it carries (never a 400 describing a parse error). Roles
/// are checked by each handler.
pub async fn authenticate_first(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if PUBLIC_API_PATHS.contains(&request.path()) {
        return Ok(next.call(request).await?.map_into_left_body());
    }
    // Who it is, or why not: no or unknown token 401; a session cookie without its CSRF
    // token, or from another origin, 403.
    let authenticated = match request.app_data::<web::Data<AppState>>() {
        Some(state) => state.tokens.authenticate(request.request()).map(|_| ()),
        None => Err(problem::ApiError::Unauthorized),
    };
    let error = match authenticated {
        Ok(()) => return Ok(next.call(request).await?.map_into_left_body()),
        Err(error) => error,
    };
    let response = error.error_response();
    Ok(request.into_response(response).map_into_right_body())
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
        // Before the `/api/v1` scope, whose default service answers 404 for what it lacks.
        session::register(service);
        crate::ui::register(service);
        routes::register(service);
    }
}
