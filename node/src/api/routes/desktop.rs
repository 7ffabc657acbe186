//! Agent desktop endpoints: presence, offers, wrap-up, transfer, own contacts.

use actix_web::{HttpRequest, web};
use callgrid_domain::NotReadyReason;
use serde::Deserialize;

use super::*;

pub(super) fn agent_path(
    state: &Data,
    request: &HttpRequest,
    login: &str,
) -> Result<Actor, ApiError> {
    validate_login(login)?;
    let actor = authenticate(state, request, &[Role::Agent, Role::Supervisor])?;
    require_agent(&actor, login)?;
    Ok(actor)
}

pub(super) async fn agent_view(
    state: Data,
    request: HttpRequest,
    path: web::Path<String>,
) -> ApiResult {
    let login = path.into_inner();
    agent_path(&state, &request, &login)?;
    ask(&state, SiteInput::AgentView(login)).await
}

pub(super) async fn agent_login(
    state: Data,
    request: HttpRequest,
    path: web::Path<String>,
) -> ApiResult {
    let login = path.into_inner();
    agent_path(&state, &request, &login)?;
    ask(&state, SiteInput::Login(login)).await
}

pub(super) async fn agent_logout(
    state: Data,
    request: HttpRequest,
    path: web::Path<String>,
) -> ApiResult {
    let login = path.into_inner();
    agent_path(&state, &request, &login)?;
    ask(&state, SiteInput::Logout(login)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub(super) enum PresenceState {
    Ready,
    NotReady,
}

/// A not-ready reason as a client sends it: its name (`break`, `other_work`, `code_17`), or
/// the bare code (older clients).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum ReasonInput {
    Code(u16),
    Name(String),
}

impl ReasonInput {
    fn reason(self) -> Result<NotReadyReason, ApiError> {
        match self {
            ReasonInput::Code(code) => Ok(NotReadyReason(code)),
            ReasonInput::Name(name) => NotReadyReason::from_name(&name).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "`reason`: unknown not-ready reason `{name}` (break, other_work, no_answer, rejected or code_<n>)"
                ))
            }),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AgentStateBody {
    state: PresenceState,
    /// Not-ready reason by name (`break` by default), or its code.
    #[serde(default)]
    reason: Option<ReasonInput>,
}

pub(super) async fn agent_state(
    state: Data,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<AgentStateBody>,
) -> ApiResult {
    let login = path.into_inner();
    agent_path(&state, &request, &login)?;
    let body = body.into_inner();
    let input = match body.state {
        PresenceState::Ready => {
            if body.reason.is_some() {
                return Err(ApiError::BadRequest(
                    "`reason` is only for not_ready".to_string(),
                ));
            }
            SiteInput::Ready(login)
        }
        PresenceState::NotReady => SiteInput::NotReady {
            login,
            reason: body
                .reason
                .map_or(Ok(NotReadyReason::BREAK), ReasonInput::reason)?
                .0,
        },
    };
    ask(&state, input).await
}

pub(super) async fn agent_contact_view(
    state: Data,
    request: HttpRequest,
    path: web::Path<(String, u64)>,
) -> ApiResult {
    let (login, contact) = path.into_inner();
    agent_path(&state, &request, &login)?;
    lookup_contact(&state, ContactId(contact), Some(login)).await
}

pub(super) async fn agent_accept(
    state: Data,
    request: HttpRequest,
    path: web::Path<(String, u64)>,
) -> ApiResult {
    let (login, contact) = path.into_inner();
    agent_path(&state, &request, &login)?;
    ask(
        &state,
        SiteInput::Accept {
            login,
            contact: ContactId(contact),
        },
    )
    .await
}

pub(super) async fn agent_reject(
    state: Data,
    request: HttpRequest,
    path: web::Path<(String, u64)>,
) -> ApiResult {
    let (login, contact) = path.into_inner();
    agent_path(&state, &request, &login)?;
    ask(
        &state,
        SiteInput::Reject {
            login,
            contact: ContactId(contact),
        },
    )
    .await
}

pub(super) async fn agent_end(
    state: Data,
    request: HttpRequest,
    path: web::Path<(String, u64)>,
) -> ApiResult {
    let (login, contact) = path.into_inner();
    agent_path(&state, &request, &login)?;
    ask(
        &state,
        SiteInput::End {
            login,
            contact: ContactId(contact),
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WrapUpBody {
    code: String,
    #[serde(default)]
    callback_outcome: Option<CallbackOutcome>,
}

pub(super) async fn agent_wrap_up(
    state: Data,
    request: HttpRequest,
    path: web::Path<(String, u64)>,
    body: web::Json<WrapUpBody>,
) -> ApiResult {
    let (login, contact) = path.into_inner();
    agent_path(&state, &request, &login)?;
    let body = body.into_inner();
    if body.code.trim().is_empty() || body.code.len() > 64 {
        return Err(ApiError::BadRequest(
            "`code` must be 1 to 64 characters".to_string(),
        ));
    }
    ask_durable(
        &state,
        SiteInput::WrapUp {
            login,
            contact: ContactId(contact),
            code: body.code,
            callback_outcome: body.callback_outcome,
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TransferBody {
    #[serde(default = "line2")]
    skill: String,
}

pub(super) fn line2() -> String {
    "line2".to_string()
}

pub(super) async fn agent_transfer(
    state: Data,
    request: HttpRequest,
    path: web::Path<(String, u64)>,
    body: web::Json<TransferBody>,
) -> ApiResult {
    let (login, contact) = path.into_inner();
    agent_path(&state, &request, &login)?;
    ask(
        &state,
        SiteInput::Transfer {
            login,
            contact: ContactId(contact),
            skill: body.into_inner().skill,
        },
    )
    .await
}

/// `POST /agents/{login}/contacts/{contact}/messages`: the agent's chat reply.
pub(super) async fn agent_chat(
    state: Data,
    request: HttpRequest,
    path: web::Path<(String, u64)>,
    body: web::Json<super::gateway::ChatMessageBody>,
) -> ApiResult {
    let (login, contact) = path.into_inner();
    agent_path(&state, &request, &login)?;
    let text = body.into_inner().text;
    ask(&state, chat_input(login, ContactId(contact), text)?).await
}

/// A checked agent chat input (API and desktop stream).
pub(super) fn chat_input(
    login: String,
    contact: ContactId,
    text: String,
) -> Result<SiteInput, ApiError> {
    if text.trim().is_empty() || text.chars().count() > CHAT_TEXT_CHARS_MAX {
        return Err(ApiError::BadRequest(format!(
            "text must be 1 to {CHAT_TEXT_CHARS_MAX} characters"
        )));
    }
    Ok(SiteInput::AgentChat {
        login,
        contact,
        text,
    })
}
