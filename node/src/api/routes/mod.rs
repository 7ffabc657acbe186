//! The endpoints: gateway, agent desktop, supervisor, reports, orders and the records around
//! them, streams, and operations (`/metrics`, `/healthz`, `/readyz`).
//!
//! Each handler authenticates, checks the role, validates the body and path, and only then
//! acts; commands to the replicated state are validated before they are proposed, so a
//! refused request changes nothing.
//!
//! One file per audience: `gateway`, `desktop` (agents), `supervisor` (and reports),
//! `records` (orders, pre-orders, reservations, complaints, callbacks), `ledger` (the
//! contact ledger, overflow claims), `quality` (supervisors' reviews of finished contacts),
//! `streams`
//! (WebSockets), `ops` (health, readiness, OpenAPI, cluster status); `/metrics` is
//! [`super::metrics`]. Shared helpers (authentication, asking the Site actor, proposing)
//! live here.

use actix_web::{HttpRequest, HttpResponse, web};
use callgrid_domain::{Channel, ContactId, Topic};
use tokio::sync::mpsc;

use super::AppState;
use super::auth::{require, require_agent};
use super::problem::ApiError;
use crate::actors::STREAM_BUFFER_EVENTS;
use crate::actors::site::{
    Arrival, Audience, LookupContact, OutboxDurable, SiteError, SiteInput, Subscribe, outcome_json,
};
use crate::state::command::normalize_phone;
use crate::state::model::{
    Actor, CallbackOutcome, Fulfilment, OrderItem, OrderStatus, PaymentForm, Role, TimestampMs,
};
use crate::state::{Command, ReplicatedState};

/// Records returned by list endpoints at most.
pub const LIST_LIMIT_MAX: usize = 500;
/// Characters allowed in a chat message.
pub const CHAT_TEXT_CHARS_MAX: usize = 4_000;
/// Largest WebSocket frame accepted from a client.
pub const WEBSOCKET_FRAME_BYTES_MAX: usize = 16 * 1024;

type Data = web::Data<AppState>;
type ApiResult = Result<HttpResponse, ApiError>;

mod desktop;
mod gateway;
pub mod replicated;

use replicated::{ReadQuery, propose_create, read};
mod ledger;
mod ops;
pub mod pending;
mod quality;
mod records;
mod reports;
mod streams;
mod supervisor;

pub(crate) use reports::day_report;

/// Registers the routes. Paths with an id in them sit in a scope per collection: the router
/// compares a scope's static prefix before it runs any of its patterns, so a request is
/// matched against its own collection's patterns only. (Flat, with the cluster, export and UI
/// asset routes registered before the API's scope, `POST /api/v1/orders` ran some thirty
/// patterns first: ~6% of the leader's CPU at 64 clients.)
pub fn register(service: &mut web::ServiceConfig) {
    service
        .route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(super::metrics::metrics))
        .service(
            web::scope("/api/v1")
                .wrap(actix_web::middleware::from_fn(super::authenticate_first))
                .route("/openapi.json", web::get().to(ops::openapi))
                .service(
                    collection("/cluster")
                        .configure(super::membership::register)
                        .configure(super::site_control::register)
                        .route("/status", web::get().to(ops::cluster_status)),
                )
                .service(collection("/exports").configure(super::export::register))
                // gateway
                .service(
                    collection("/contacts")
                        .route("", web::post().to(gateway::contact_arrived))
                        .route("/{contact}", web::get().to(gateway::contact_view))
                        .route(
                            "/{contact}/answered",
                            web::post().to(gateway::contact_answered),
                        )
                        .route("/{contact}/ended", web::post().to(gateway::contact_ended))
                        .route(
                            "/{contact}/abandoned",
                            web::post().to(gateway::contact_abandoned),
                        )
                        .route(
                            "/{contact}/self-served",
                            web::post().to(gateway::contact_self_served),
                        )
                        .route("/{contact}/messages", web::post().to(gateway::chat_message))
                        .route("/{contact}/reviews", web::post().to(quality::review_create))
                        .route(
                            "/{contact}/reviews",
                            web::get().to(quality::contact_reviews),
                        ),
                )
                .route("/reviews", web::get().to(quality::review_list))
                .route(
                    "/quality/contacts",
                    web::get().to(quality::finished_contacts),
                )
                .route("/gateway/stream", web::get().to(streams::gateway_stream))
                .route(
                    "/self-service/order-status",
                    web::get().to(gateway::order_status_lookup),
                )
                // agent desktop
                .service(
                    collection("/agents")
                        .route("/{login}", web::get().to(desktop::agent_view))
                        .route("/{login}/login", web::post().to(desktop::agent_login))
                        .route("/{login}/logout", web::post().to(desktop::agent_logout))
                        .route("/{login}/state", web::post().to(desktop::agent_state))
                        .route(
                            "/{login}/contacts/{contact}",
                            web::get().to(desktop::agent_contact_view),
                        )
                        .route(
                            "/{login}/contacts/{contact}/accept",
                            web::post().to(desktop::agent_accept),
                        )
                        .route(
                            "/{login}/contacts/{contact}/reject",
                            web::post().to(desktop::agent_reject),
                        )
                        .route(
                            "/{login}/contacts/{contact}/end",
                            web::post().to(desktop::agent_end),
                        )
                        .route(
                            "/{login}/contacts/{contact}/wrap-up",
                            web::post().to(desktop::agent_wrap_up),
                        )
                        .route(
                            "/{login}/contacts/{contact}/transfer",
                            web::post().to(desktop::agent_transfer),
                        )
                        .route(
                            "/{login}/contacts/{contact}/messages",
                            web::post().to(desktop::agent_chat),
                        )
                        .route("/{login}/stream", web::get().to(streams::agent_stream)),
                )
                // supervisor
                .route(
                    "/supervisor/queues",
                    web::get().to(supervisor::supervisor_queues),
                )
                .route(
                    "/supervisor/agents",
                    web::get().to(supervisor::supervisor_agents),
                )
                .route(
                    "/supervisor/monitor",
                    web::post().to(supervisor::supervisor_monitor),
                )
                .route(
                    "/supervisor/stream",
                    web::get().to(streams::supervisor_stream),
                )
                .route(
                    "/reports/intervals",
                    web::get().to(reports::report_intervals),
                )
                .route("/reports/agents", web::get().to(reports::report_agents))
                // orders and the records around them
                .service(
                    collection("/orders")
                        .route("", web::post().to(records::order_create))
                        .route("", web::get().to(records::order_list))
                        .route("/{order}", web::get().to(records::order_view))
                        .route("/{order}", web::patch().to(records::order_update))
                        .route("/{order}/status", web::post().to(records::order_status)),
                )
                .service(
                    collection("/pre-orders")
                        .route("", web::post().to(records::pre_order_create))
                        .route("", web::get().to(records::pre_order_list))
                        .route("/{id}", web::get().to(records::pre_order_view))
                        .route("/{id}/cancel", web::post().to(records::pre_order_cancel)),
                )
                .route("/stock-arrivals", web::post().to(records::stock_arrival))
                .service(
                    collection("/reservations")
                        .route("", web::post().to(records::reservation_create))
                        .route("", web::get().to(records::reservation_list))
                        .route("/{id}", web::get().to(records::reservation_view))
                        .route(
                            "/{id}/collect",
                            web::post().to(records::reservation_collect),
                        )
                        .route("/{id}/cancel", web::post().to(records::reservation_cancel)),
                )
                .service(
                    collection("/complaints")
                        .route("", web::post().to(records::complaint_create))
                        .route("", web::get().to(records::complaint_list))
                        .route("/{id}", web::get().to(records::complaint_view))
                        .route("/{id}/resolve", web::post().to(records::complaint_resolve)),
                )
                .service(
                    collection("/callbacks")
                        .route("", web::get().to(records::callback_list))
                        .route("/{id}", web::get().to(records::callback_view))
                        .route("/{id}/outcome", web::post().to(records::callback_outcome)),
                )
                .service(
                    collection("/ledger")
                        .route("/contacts/{id}", web::get().to(ledger::ledger_contact))
                        .route("/sites/{site}/open", web::get().to(ledger::ledger_open)),
                )
                .service(
                    collection("/pending")
                        .route("", web::get().to(pending::pending_list))
                        .route("/{id}", web::get().to(pending::pending_view)),
                )
                .default_service(web::to(not_found)),
        );
}

/// A scope for one collection's paths. A scope does not inherit its parent scope's default
/// service (actix takes the application's): each answers an unknown path as `/api/v1` does.
fn collection(prefix: &str) -> actix_web::Scope {
    web::scope(prefix).default_service(web::to(not_found))
}

async fn not_found() -> ApiResult {
    Err(ApiError::NotFound("no such endpoint".to_string()))
}

pub(super) fn authenticate(
    state: &Data,
    request: &HttpRequest,
    roles: &[Role],
) -> Result<Actor, ApiError> {
    let actor = state.tokens.authenticate(request)?;
    require(&actor, roles)?;
    Ok(actor)
}

pub(super) fn validate_login(login: &str) -> Result<(), ApiError> {
    let valid = !login.is_empty()
        && login.len() <= 64
        && login.chars().all(|character| {
            character.is_ascii_alphanumeric() || matches!(character, '.' | '_' | '-')
        });
    if valid {
        Ok(())
    } else {
        Err(ApiError::BadRequest(
            "agent login must be 1-64 characters of a-z, 0-9, '.', '_', '-'".to_string(),
        ))
    }
}

/// `?limit=` of a list: `default` without it, a 400 outside `1..=max`.
pub(super) fn list_limit(
    limit: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match limit {
        None => Ok(default),
        Some(limit) if (1..=max).contains(&limit) => Ok(limit),
        Some(_) => Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {max}"
        ))),
    }
}

/// A `YYYY-MM-DD` query parameter named `field` as a local day (a 400 when it is none).
pub(super) fn local_day(
    field: &str,
    text: Option<&str>,
) -> Result<Option<crate::actors::site::reports::LocalDay>, ApiError> {
    text.map(|text| {
        crate::actors::site::reports::LocalDay::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{field} `{text}` is not a YYYY-MM-DD calendar date"
            ))
        })
    })
    .transpose()
}

pub(super) async fn ask(state: &Data, input: SiteInput) -> ApiResult {
    let value = state.site.send(input).await??;
    Ok(HttpResponse::Ok().json(value))
}

/// [`ask`] for inputs whose answer acknowledges a write of the Site's outbox (an abandoned
/// caller's callback, a dial attempt's outcome): answered once that write is fsync'd.
pub(super) async fn ask_durable(state: &Data, input: SiteInput) -> ApiResult {
    let value = state.site.send(input).await??;
    state.site.send(OutboxDurable).await??;
    Ok(HttpResponse::Ok().json(value))
}

/// A contact's view with its chat transcript (answered by its Call actor).
pub(super) async fn lookup_contact(
    state: &Data,
    contact: ContactId,
    agent: Option<String>,
) -> ApiResult {
    let value = state.site.send(LookupContact { contact, agent }).await??;
    Ok(HttpResponse::Ok().json(value))
}

pub(super) async fn propose(
    state: &Data,
    actor: Actor,
    command: Command,
    created: bool,
) -> ApiResult {
    let outcome = state.proposer.propose(actor, command).await?;
    let body = outcome_json(&outcome);
    Ok(if created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

pub(super) fn phone(raw: &str) -> Result<String, ApiError> {
    normalize_phone(raw).map_err(|error| ApiError::BadRequest(error.to_string()))
}
