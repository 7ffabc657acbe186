//! Gateway endpoints: contact events, chat messages from customers, the self-service bot.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::state::ledger::validate_recording_ref;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ContactArrivedBody {
    caller: String,
    #[serde(default = "voice")]
    channel: Channel,
    topic: Topic,
    #[serde(default)]
    skill: Option<String>,
    #[serde(default)]
    priority: u8,
    /// Set by the gateway when it re-presents a call another site overflowed here.
    #[serde(default)]
    overflowed_from: Option<crate::actors::overflow::OverflowedFrom>,
}

/// A drained site takes no new contacts (also none overflowed here): the problem names the
/// live peer sites — configured, not drained, with a published summary — so the gateway
/// presents the contact at one of them.
fn refuse_when_drained(state: &Data) -> Result<(), ApiError> {
    let site = &state.config.site.id;
    state.shared.read(|replicated| {
        if !replicated.is_drained(site) {
            return Ok(());
        }
        let peers = state
            .config
            .peer_sites
            .iter()
            .filter(|peer| !replicated.is_drained(&peer.id))
            .filter(|peer| {
                replicated
                    .site_summaries()
                    .any(|summary| summary.site == peer.id)
            })
            .map(|peer| json!({"site": peer.id, "api_url": peer.api_url}))
            .collect();
        Err(ApiError::SiteDraining {
            site: site.clone(),
            peers,
        })
    })
}

pub(super) fn voice() -> Channel {
    Channel::Voice
}

pub(super) async fn contact_arrived(
    state: Data,
    request: HttpRequest,
    body: web::Json<ContactArrivedBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, &[Role::Gateway])?;
    refuse_when_drained(&state)?;
    let mut body = body.into_inner();
    let caller = phone(&body.caller)?;
    if let Some(from) = &mut body.overflowed_from {
        // Routed here only with a committed claim (hops and arrival from the ledger).
        super::ledger::claim_overflow(&state, actor, from).await?;
    }
    // The self-service bot answers order-status calls when the number has open orders.
    let open_orders: Vec<Value> = state.shared.read(|replicated| {
        replicated
            .orders_by_caller(&caller, true)
            .into_iter()
            .take(10)
            .map(|order| json!({"order": order.id, "status": order.status}))
            .collect()
    });
    let value = state
        .site
        .send(SiteInput::ContactArrived(Arrival {
            caller,
            channel: body.channel,
            topic: body.topic,
            skill: body.skill,
            priority: body.priority,
            overflowed_from: body.overflowed_from,
        }))
        .await??;
    Ok(HttpResponse::Created().json(json!({"contact": value, "open_orders": open_orders})))
}

pub(super) async fn contact_view(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
) -> ApiResult {
    let actor = authenticate(
        &state,
        &request,
        &[Role::Gateway, Role::Supervisor, Role::Agent],
    )?;
    let agent = (actor.role == Role::Agent).then(|| actor.name.clone());
    lookup_contact(&state, ContactId(path.into_inner()), agent).await
}

/// `POST /contacts/{id}/answered`: which agent's leg was answered, and the call's recording
/// if the gateway knows it already.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AnsweredBody {
    agent: String,
    #[serde(default)]
    recording_ref: Option<String>,
}

/// `POST /contacts/{id}/ended`: the body is optional (`{}` or none at all).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EndedBody {
    #[serde(default)]
    recording_ref: Option<String>,
}

fn check_recording_ref(reference: Option<&str>) -> Result<(), ApiError> {
    match reference {
        Some(reference) => validate_recording_ref(reference)
            .map_err(|invalid| ApiError::BadRequest(invalid.to_string())),
        None => Ok(()),
    }
}

/// Keeps the gateway's recording reference with the contact's ledger entry (through the
/// Site's outbox, after the answer or end it came with).
async fn keep_recording(
    state: &Data,
    contact: ContactId,
    reference: Option<String>,
) -> Result<(), ApiError> {
    if let Some(reference) = reference {
        state
            .site
            .send(SiteInput::ContactRecording { contact, reference })
            .await??;
    }
    Ok(())
}

pub(super) async fn contact_answered(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
    body: web::Json<AnsweredBody>,
) -> ApiResult {
    authenticate(&state, &request, &[Role::Gateway])?;
    let AnsweredBody {
        agent,
        recording_ref,
    } = body.into_inner();
    validate_login(&agent)?;
    check_recording_ref(recording_ref.as_deref())?;
    let contact = ContactId(path.into_inner());
    let value = state
        .site
        .send(SiteInput::ContactAnswered { contact, agent })
        .await??;
    keep_recording(&state, contact, recording_ref).await?;
    Ok(HttpResponse::Ok().json(value))
}

pub(super) async fn contact_ended(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
    body: web::Bytes,
) -> ApiResult {
    authenticate(&state, &request, &[Role::Gateway])?;
    let body: EndedBody = if body.iter().all(u8::is_ascii_whitespace) {
        EndedBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|error| ApiError::BadRequest(format!("invalid body: {error}")))?
    };
    check_recording_ref(body.recording_ref.as_deref())?;
    let contact = ContactId(path.into_inner());
    match state.site.send(SiteInput::ContactEnded(contact)).await? {
        Ok(value) => {
            keep_recording(&state, contact, body.recording_ref).await?;
            // A hang-up while waiting is an abandonment: its callback is acknowledged durable.
            state.site.send(OutboxDurable).await??;
            Ok(HttpResponse::Ok().json(value))
        }
        // The agent already ended and wrapped it up: the hang-up changes nothing (but the
        // recording is kept).
        Err(SiteError::Finished(_)) => {
            keep_recording(&state, contact, body.recording_ref).await?;
            lookup_contact(&state, contact, None).await
        }
        Err(error) => Err(error.into()),
    }
}

pub(super) async fn contact_abandoned(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
) -> ApiResult {
    authenticate(&state, &request, &[Role::Gateway])?;
    ask_durable(
        &state,
        SiteInput::ContactAbandoned(ContactId(path.into_inner())),
    )
    .await
}

pub(super) async fn contact_self_served(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
) -> ApiResult {
    authenticate(&state, &request, &[Role::Gateway])?;
    ask(
        &state,
        SiteInput::ContactSelfServed(ContactId(path.into_inner())),
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChatMessageBody {
    pub(super) text: String,
}

pub(super) async fn chat_message(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
    body: web::Json<ChatMessageBody>,
) -> ApiResult {
    authenticate(&state, &request, &[Role::Gateway])?;
    let text = body.into_inner().text;
    if text.trim().is_empty() || text.chars().count() > CHAT_TEXT_CHARS_MAX {
        return Err(ApiError::BadRequest(format!(
            "text must be 1 to {CHAT_TEXT_CHARS_MAX} characters"
        )));
    }
    ask(
        &state,
        SiteInput::ChatMessage {
            contact: ContactId(path.into_inner()),
            text,
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CallerQuery {
    caller: String,
    /// `linearizable` (default) or `local` (see [`super::replicated`]).
    #[serde(default)]
    consistency: Option<replicated::Consistency>,
}

pub(super) async fn order_status_lookup(
    state: Data,
    request: HttpRequest,
    query: web::Query<CallerQuery>,
) -> ApiResult {
    authenticate(
        &state,
        &request,
        &[Role::Gateway, Role::Agent, Role::Supervisor],
    )?;
    let caller = phone(&query.caller)?;
    let stamp = read(&state, query.consistency).await?;
    let orders: Vec<Value> = state.shared.read(|replicated| {
        replicated
            .orders_by_caller(&caller, true)
            .into_iter()
            .take(LIST_LIMIT_MAX)
            .map(|order| {
                json!({"order": order.id, "status": order.status, "fulfilment": order.fulfilment,
                       "total_minor": order.total_minor, "created_at_ms": order.created_at_ms})
            })
            .collect()
    });
    Ok(stamp
        .ok()
        .json(json!({"caller": caller, "open_orders": orders})))
}
