//! Operations: health, readiness, the OpenAPI document, cluster status.

use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::*;

pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub(super) async fn readyz(state: Data) -> HttpResponse {
    let health = state.proposer.replicator().health();
    if health.leader.is_some() {
        HttpResponse::Ok().json(json!({"status": "ready", "cluster": health}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "no leader", "cluster": health}))
    }
}

pub(super) async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(crate::api::openapi::document())
}

pub(super) async fn cluster_status(state: Data, request: HttpRequest) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    Ok(HttpResponse::Ok().json(state.proposer.replicator().health()))
}
