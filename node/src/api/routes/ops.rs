//! Operations: health, readiness, the OpenAPI document, cluster status.

use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::*;

pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: ready or not for anyone (load balancers); the cluster's details (members,
/// addresses, indexes) only with a supervisor or admin token.
pub(super) async fn readyz(state: Data, request: HttpRequest) -> HttpResponse {
    let health = state.proposer.replicator().health();
    let ready = health.leader.is_some();
    let status = if ready { "ready" } else { "no leader" };
    let details = state
        .tokens
        .authenticate(&request)
        .is_ok_and(|actor| require(&actor, &[Role::Supervisor]).is_ok());
    let body = if details {
        json!({"status": status, "cluster": health})
    } else {
        json!({"status": status})
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub(super) async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(crate::api::openapi::document())
}

pub(super) async fn cluster_status(state: Data, request: HttpRequest) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    Ok(HttpResponse::Ok().json(state.proposer.replicator().health()))
}
