//! Supervisor endpoints: queues, agents, monitoring (interval reports: [`super::reports`]).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::*;

pub(super) async fn supervisor_queues(state: Data, request: HttpRequest) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    ask(&state, SiteInput::QueuesView).await
}

pub(super) async fn supervisor_agents(state: Data, request: HttpRequest) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    ask(&state, SiteInput::AgentsView).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub(super) enum MonitorMode {
    Listen,
    Whisper,
    Barge,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MonitorBody {
    agent: String,
    mode: MonitorMode,
}

pub(super) async fn supervisor_monitor(
    state: Data,
    request: HttpRequest,
    body: web::Json<MonitorBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, &[Role::Supervisor])?;
    let body = body.into_inner();
    validate_login(&body.agent)?;
    let mode = match body.mode {
        MonitorMode::Listen => "listen",
        MonitorMode::Whisper => "whisper",
        MonitorMode::Barge => "barge",
    };
    let value = state
        .site
        .send(SiteInput::Monitor {
            supervisor: actor.name,
            agent: body.agent,
            mode: mode.to_string(),
        })
        .await??;
    Ok(HttpResponse::Accepted().json(value))
}
