//! The endpoints: gateway, agent desktop, supervisor, reports, orders and the records around
//! them, streams, and operations (`/metrics`, `/healthz`, `/readyz`).
//!
//! Each handler authenticates, checks the role, validates the body and path, and only then
//! acts; commands to the replicated state are validated before they are proposed, so a
//! refused request changes nothing.

use actix_web::{HttpRequest, HttpResponse, web};
use callgrid_domain::{Channel, ContactId, Topic};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::AppState;
use super::auth::{require, require_agent};
use super::problem::ApiError;
use crate::actors::STREAM_BUFFER_EVENTS;
use crate::actors::site::{Audience, LookupContact, SiteError, SiteInput, Subscribe, outcome_json};
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

/// Registers the routes.
pub fn register(service: &mut web::ServiceConfig) {
    service
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .service(
            web::scope("/api/v1")
                .route("/openapi.json", web::get().to(openapi))
                // gateway
                .route("/contacts", web::post().to(contact_arrived))
                .route("/contacts/{contact}", web::get().to(contact_view))
                .route(
                    "/contacts/{contact}/answered",
                    web::post().to(contact_answered),
                )
                .route("/contacts/{contact}/ended", web::post().to(contact_ended))
                .route(
                    "/contacts/{contact}/abandoned",
                    web::post().to(contact_abandoned),
                )
                .route("/contacts/{contact}/messages", web::post().to(chat_message))
                .route("/gateway/stream", web::get().to(gateway_stream))
                .route(
                    "/self-service/order-status",
                    web::get().to(order_status_lookup),
                )
                // agent desktop
                .route("/agents/{login}", web::get().to(agent_view))
                .route("/agents/{login}/login", web::post().to(agent_login))
                .route("/agents/{login}/logout", web::post().to(agent_logout))
                .route("/agents/{login}/state", web::post().to(agent_state))
                .route(
                    "/agents/{login}/contacts/{contact}",
                    web::get().to(agent_contact_view),
                )
                .route(
                    "/agents/{login}/contacts/{contact}/accept",
                    web::post().to(agent_accept),
                )
                .route(
                    "/agents/{login}/contacts/{contact}/reject",
                    web::post().to(agent_reject),
                )
                .route(
                    "/agents/{login}/contacts/{contact}/end",
                    web::post().to(agent_end),
                )
                .route(
                    "/agents/{login}/contacts/{contact}/wrap-up",
                    web::post().to(agent_wrap_up),
                )
                .route(
                    "/agents/{login}/contacts/{contact}/transfer",
                    web::post().to(agent_transfer),
                )
                .route("/agents/{login}/stream", web::get().to(agent_stream))
                // supervisor
                .route("/supervisor/queues", web::get().to(supervisor_queues))
                .route("/supervisor/agents", web::get().to(supervisor_agents))
                .route("/supervisor/monitor", web::post().to(supervisor_monitor))
                .route("/supervisor/stream", web::get().to(supervisor_stream))
                .route("/reports/intervals", web::get().to(report_intervals))
                // orders and the records around them
                .route("/orders", web::post().to(order_create))
                .route("/orders", web::get().to(order_list))
                .route("/orders/{order}", web::get().to(order_view))
                .route("/orders/{order}", web::patch().to(order_update))
                .route("/orders/{order}/status", web::post().to(order_status))
                .route("/pre-orders", web::post().to(pre_order_create))
                .route("/pre-orders", web::get().to(pre_order_list))
                .route("/pre-orders/{id}", web::get().to(pre_order_view))
                .route("/pre-orders/{id}/cancel", web::post().to(pre_order_cancel))
                .route("/stock-arrivals", web::post().to(stock_arrival))
                .route("/reservations", web::post().to(reservation_create))
                .route("/reservations", web::get().to(reservation_list))
                .route("/reservations/{id}", web::get().to(reservation_view))
                .route(
                    "/reservations/{id}/collect",
                    web::post().to(reservation_collect),
                )
                .route(
                    "/reservations/{id}/cancel",
                    web::post().to(reservation_cancel),
                )
                .route("/complaints", web::post().to(complaint_create))
                .route("/complaints", web::get().to(complaint_list))
                .route("/complaints/{id}", web::get().to(complaint_view))
                .route(
                    "/complaints/{id}/resolve",
                    web::post().to(complaint_resolve),
                )
                .route("/callbacks", web::get().to(callback_list))
                .route("/callbacks/{id}", web::get().to(callback_view))
                .route("/callbacks/{id}/outcome", web::post().to(callback_outcome))
                .route("/cluster/status", web::get().to(cluster_status))
                .default_service(web::to(not_found)),
        );
}

async fn not_found() -> ApiResult {
    Err(ApiError::NotFound("no such endpoint".to_string()))
}

fn authenticate(state: &Data, request: &HttpRequest, roles: &[Role]) -> Result<Actor, ApiError> {
    let actor = state.tokens.authenticate(request)?;
    require(&actor, roles)?;
    Ok(actor)
}

fn validate_login(login: &str) -> Result<(), ApiError> {
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

async fn ask(state: &Data, input: SiteInput) -> ApiResult {
    let value = state.site.send(input).await??;
    Ok(HttpResponse::Ok().json(value))
}

/// A contact's view with its chat transcript (answered by its Call actor).
async fn lookup_contact(state: &Data, contact: ContactId, agent: Option<String>) -> ApiResult {
    let value = state.site.send(LookupContact { contact, agent }).await??;
    Ok(HttpResponse::Ok().json(value))
}

async fn propose(state: &Data, actor: Actor, command: Command, created: bool) -> ApiResult {
    let outcome = state.proposer.propose(actor, command).await?;
    let body = outcome_json(&outcome);
    Ok(if created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

async fn linearizable(state: &Data) -> Result<(), ApiError> {
    state
        .proposer
        .replicator()
        .read_barrier()
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))
}

fn phone(raw: &str) -> Result<String, ApiError> {
    normalize_phone(raw).map_err(|error| ApiError::BadRequest(error.to_string()))
}

// ---------------------------------------------------------------------------------------
// operations
// ---------------------------------------------------------------------------------------

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(state: Data) -> HttpResponse {
    let health = state.proposer.replicator().health();
    if health.leader.is_some() {
        HttpResponse::Ok().json(json!({"status": "ready", "cluster": health}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "no leader", "cluster": health}))
    }
}

async fn metrics(state: Data) -> ApiResult {
    let routing = state.site.send(SiteInput::MetricsText).await??;
    let mut text = routing.as_str().unwrap_or_default().to_string();
    let health = state.proposer.replicator().health();
    let site = &state.config.site.id;
    let raft = [
        ("callgrid_raft_term", health.term),
        ("callgrid_raft_commit_index", health.commit_index),
        ("callgrid_raft_applied_index", health.applied_index),
        (
            "callgrid_raft_has_leader",
            u64::from(health.leader.is_some()),
        ),
        (
            "callgrid_raft_is_leader",
            u64::from(health.leader == Some(health.node_id)),
        ),
        ("callgrid_raft_voters", health.voters.len() as u64),
        ("callgrid_raft_learners", health.learners.len() as u64),
        (
            "callgrid_raft_failed",
            u64::from(
                health
                    .details
                    .get("fatal_error")
                    .is_some_and(|error| !error.is_null()),
            ),
        ),
    ];
    for (name, value) in raft {
        text.push_str(&format!(
            "# TYPE {name} gauge\n{name}{{site=\"{site}\"}} {value}\n"
        ));
    }
    let counts = state.shared.read(|replicated| replicated.counts());
    let records = [
        ("callgrid_orders_total", counts.orders),
        ("callgrid_orders_open", counts.orders_open),
        ("callgrid_pre_orders_waiting", counts.pre_orders_waiting),
        ("callgrid_reservations_active", counts.reservations_active),
        ("callgrid_complaints_total", counts.complaints),
        ("callgrid_complaints_escalated", counts.complaints_escalated),
        ("callgrid_callbacks_open", counts.callbacks_open),
    ];
    for (name, value) in records {
        text.push_str(&format!(
            "# TYPE {name} gauge\n{name}{{site=\"{site}\"}} {value}\n"
        ));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text))
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(super::openapi::document())
}

async fn cluster_status(state: Data, request: HttpRequest) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    Ok(HttpResponse::Ok().json(state.proposer.replicator().health()))
}

// ---------------------------------------------------------------------------------------
// gateway
// ---------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactArrivedBody {
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

fn voice() -> Channel {
    Channel::Voice
}

async fn contact_arrived(
    state: Data,
    request: HttpRequest,
    body: web::Json<ContactArrivedBody>,
) -> ApiResult {
    authenticate(&state, &request, &[Role::Gateway])?;
    let body = body.into_inner();
    let caller = phone(&body.caller)?;
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
        .send(SiteInput::ContactArrived {
            caller,
            channel: body.channel,
            topic: body.topic,
            skill: body.skill,
            priority: body.priority,
            overflowed_from: body.overflowed_from,
        })
        .await??;
    Ok(HttpResponse::Created().json(json!({"contact": value, "open_orders": open_orders})))
}

async fn contact_view(state: Data, request: HttpRequest, path: web::Path<u64>) -> ApiResult {
    let actor = authenticate(
        &state,
        &request,
        &[Role::Gateway, Role::Supervisor, Role::Agent],
    )?;
    let agent = (actor.role == Role::Agent).then(|| actor.name.clone());
    lookup_contact(&state, ContactId(path.into_inner()), agent).await
}

async fn contact_answered(state: Data, request: HttpRequest, path: web::Path<u64>) -> ApiResult {
    authenticate(&state, &request, &[Role::Gateway])?;
    ask(
        &state,
        SiteInput::ContactAnswered(ContactId(path.into_inner())),
    )
    .await
}

async fn contact_ended(state: Data, request: HttpRequest, path: web::Path<u64>) -> ApiResult {
    authenticate(&state, &request, &[Role::Gateway])?;
    let contact = ContactId(path.into_inner());
    match state.site.send(SiteInput::ContactEnded(contact)).await? {
        Ok(value) => Ok(HttpResponse::Ok().json(value)),
        // The agent already ended and wrapped it up: the hang-up changes nothing.
        Err(SiteError::Finished(_)) => lookup_contact(&state, contact, None).await,
        Err(error) => Err(error.into()),
    }
}

async fn contact_abandoned(state: Data, request: HttpRequest, path: web::Path<u64>) -> ApiResult {
    authenticate(&state, &request, &[Role::Gateway])?;
    ask(
        &state,
        SiteInput::ContactAbandoned(ContactId(path.into_inner())),
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatMessageBody {
    text: String,
}

async fn chat_message(
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
struct CallerQuery {
    caller: String,
}

async fn order_status_lookup(
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
    linearizable(&state).await?;
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
    Ok(HttpResponse::Ok().json(json!({"caller": caller, "open_orders": orders})))
}

// ---------------------------------------------------------------------------------------
// agent desktop
// ---------------------------------------------------------------------------------------

fn agent_path(state: &Data, request: &HttpRequest, login: &str) -> Result<Actor, ApiError> {
    validate_login(login)?;
    let actor = authenticate(state, request, &[Role::Agent, Role::Supervisor])?;
    require_agent(&actor, login)?;
    Ok(actor)
}

async fn agent_view(state: Data, request: HttpRequest, path: web::Path<String>) -> ApiResult {
    let login = path.into_inner();
    agent_path(&state, &request, &login)?;
    ask(&state, SiteInput::AgentView(login)).await
}

async fn agent_login(state: Data, request: HttpRequest, path: web::Path<String>) -> ApiResult {
    let login = path.into_inner();
    agent_path(&state, &request, &login)?;
    ask(&state, SiteInput::Login(login)).await
}

async fn agent_logout(state: Data, request: HttpRequest, path: web::Path<String>) -> ApiResult {
    let login = path.into_inner();
    agent_path(&state, &request, &login)?;
    ask(&state, SiteInput::Logout(login)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum PresenceState {
    Ready,
    NotReady,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentStateBody {
    state: PresenceState,
    /// Not-ready reason code (3 = break, 4 = other work, site-defined above 16).
    #[serde(default)]
    reason: Option<u16>,
}

async fn agent_state(
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
                .unwrap_or(callgrid_domain::NotReadyReason::BREAK.0),
        },
    };
    ask(&state, input).await
}

async fn agent_contact_view(
    state: Data,
    request: HttpRequest,
    path: web::Path<(String, u64)>,
) -> ApiResult {
    let (login, contact) = path.into_inner();
    agent_path(&state, &request, &login)?;
    lookup_contact(&state, ContactId(contact), Some(login)).await
}

async fn agent_accept(
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

async fn agent_reject(
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

async fn agent_end(state: Data, request: HttpRequest, path: web::Path<(String, u64)>) -> ApiResult {
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
struct WrapUpBody {
    code: String,
    #[serde(default)]
    callback_outcome: Option<CallbackOutcome>,
}

async fn agent_wrap_up(
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
    ask(
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
struct TransferBody {
    #[serde(default = "line2")]
    skill: String,
}

fn line2() -> String {
    "line2".to_string()
}

async fn agent_transfer(
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

// ---------------------------------------------------------------------------------------
// supervisor and reports
// ---------------------------------------------------------------------------------------

async fn supervisor_queues(state: Data, request: HttpRequest) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    ask(&state, SiteInput::QueuesView).await
}

async fn supervisor_agents(state: Data, request: HttpRequest) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    ask(&state, SiteInput::AgentsView).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum MonitorMode {
    Listen,
    Whisper,
    Barge,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorBody {
    agent: String,
    mode: MonitorMode,
}

async fn supervisor_monitor(
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum ReportFormat {
    Json,
    Csv,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    #[serde(default)]
    format: Option<ReportFormat>,
}

async fn report_intervals(
    state: Data,
    request: HttpRequest,
    query: web::Query<ReportQuery>,
) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    let report = state.site.send(SiteInput::Report).await??;
    match query.format {
        Some(ReportFormat::Csv) => Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                "attachment; filename=\"intervals.csv\"",
            ))
            .body(report_csv(&state, &report))),
        _ => Ok(HttpResponse::Ok().json(report)),
    }
}

/// Per-interval, per-queue rows as CSV (comma separated, header row, `.` decimals).
fn report_csv(state: &Data, report: &Value) -> String {
    let mut csv = String::from(
        "interval_start,site,skill,offered,answered,abandoned,abandoned_short,answered_within_target,service_level,abandon_rate,asa_ms,aht_ms,queue_length_max\n",
    );
    let interval_minutes = u64::from(state.config.metrics.interval_minutes);
    let empty = Vec::new();
    let intervals = report["intervals"].as_array().unwrap_or(&empty);
    for (position, interval) in intervals.iter().enumerate() {
        let index = interval["interval"].as_u64().unwrap_or(position as u64);
        let start_minutes = index * interval_minutes;
        let start = format!("{:02}:{:02}", (start_minutes / 60) % 24, start_minutes % 60);
        let mut rows: Vec<&Value> = Vec::new();
        for key in ["sites", "queues"] {
            if let Some(list) = interval[key].as_array() {
                rows.extend(list.iter());
            }
        }
        for row in rows {
            let skill = row["skill"]
                .as_u64()
                .and_then(|skill| state.config.routing.skills.get(skill as usize))
                .map(|skill| skill.name.clone())
                .unwrap_or_else(|| "all".to_string());
            let number = |value: &Value| {
                value
                    .as_f64()
                    .map(|number| format!("{number:.4}"))
                    .unwrap_or_default()
            };
            let counters = &row["counters"];
            csv.push_str(&format!(
                "{start},{},{skill},{},{},{},{},{},{},{},{},{},{}\n",
                state.config.site.id,
                counters["offered"],
                counters["answered"],
                counters["abandoned"],
                counters["abandoned_short"],
                counters["answered_within_target"],
                number(&row["service_level"]),
                number(&row["abandon_rate"]),
                number(&row["asa_ms"]),
                number(&row["aht_ms"]),
                counters["queue_length_max"],
            ));
        }
    }
    csv
}

// ---------------------------------------------------------------------------------------
// streams
// ---------------------------------------------------------------------------------------

async fn open_stream(
    state: &Data,
    request: &HttpRequest,
    payload: web::Payload,
    audience: Audience,
) -> ApiResult {
    let (sender, mut receiver) = mpsc::channel::<String>(STREAM_BUFFER_EVENTS);
    state.site.send(Subscribe { audience, sender }).await??;
    let (response, mut session, stream) = actix_ws::handle(request, payload)
        .map_err(|error| ApiError::BadRequest(format!("websocket handshake: {error}")))?;
    let mut stream = stream.max_frame_size(WEBSOCKET_FRAME_BYTES_MAX);
    actix_web::rt::spawn(async move {
        loop {
            tokio::select! {
                outgoing = receiver.recv() => {
                    let Some(text) = outgoing else { break };
                    if session.text(text).await.is_err() {
                        break;
                    }
                }
                incoming = stream.recv() => {
                    match incoming {
                        Some(Ok(actix_ws::Message::Ping(bytes))) => {
                            if session.pong(&bytes).await.is_err() {
                                break;
                            }
                        }
                        Some(Ok(actix_ws::Message::Close(_))) | None | Some(Err(_)) => break,
                        Some(Ok(_)) => {}
                    }
                }
            }
        }
        let _ = session.close(None).await;
    });
    Ok(response)
}

async fn agent_stream(
    state: Data,
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> ApiResult {
    let login = path.into_inner();
    agent_path(&state, &request, &login)?;
    open_stream(&state, &request, payload, Audience::Agent(login)).await
}

async fn supervisor_stream(state: Data, request: HttpRequest, payload: web::Payload) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    open_stream(&state, &request, payload, Audience::Supervisor).await
}

async fn gateway_stream(state: Data, request: HttpRequest, payload: web::Payload) -> ApiResult {
    authenticate(&state, &request, &[Role::Gateway])?;
    open_stream(&state, &request, payload, Audience::Gateway).await
}

// ---------------------------------------------------------------------------------------
// orders
// ---------------------------------------------------------------------------------------

const ORDER_ROLES: &[Role] = &[Role::Agent, Role::Supervisor, Role::Gateway];
const STAFF_ROLES: &[Role] = &[Role::Agent, Role::Supervisor];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderCreateBody {
    caller: String,
    items: Vec<OrderItem>,
    fulfilment: Fulfilment,
    payment: PaymentForm,
    #[serde(default)]
    delivery_note: String,
}

async fn order_create(
    state: Data,
    request: HttpRequest,
    body: web::Json<OrderCreateBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, ORDER_ROLES)?;
    let body = body.into_inner();
    let command = Command::CreateOrder {
        caller: phone(&body.caller)?,
        items: body.items,
        fulfilment: body.fulfilment,
        payment: body.payment,
        delivery_note: body.delivery_note,
    };
    propose(&state, actor, command, true).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    caller: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

fn limit(query: &ListQuery) -> Result<usize, ApiError> {
    match query.limit {
        None => Ok(100),
        Some(limit) if (1..=LIST_LIMIT_MAX).contains(&limit) => Ok(limit),
        Some(_) => Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {LIST_LIMIT_MAX}"
        ))),
    }
}

async fn order_list(state: Data, request: HttpRequest, query: web::Query<ListQuery>) -> ApiResult {
    authenticate(&state, &request, ORDER_ROLES)?;
    let limit = limit(&query)?;
    let caller = query.caller.as_deref().map(phone).transpose()?;
    linearizable(&state).await?;
    let orders = state.shared.read(|replicated| {
        let orders = match &caller {
            Some(caller) => replicated.orders_by_caller(caller, false),
            None => replicated.orders_recent(limit),
        };
        serde_json::to_value(orders.into_iter().take(limit).collect::<Vec<_>>())
            .unwrap_or(Value::Null)
    });
    Ok(HttpResponse::Ok().json(json!({"orders": orders})))
}

async fn order_view(state: Data, request: HttpRequest, path: web::Path<u64>) -> ApiResult {
    authenticate(&state, &request, ORDER_ROLES)?;
    let id = path.into_inner();
    linearizable(&state).await?;
    let order = state
        .shared
        .read(|replicated| replicated.order(id).map(serde_json::to_value));
    match order {
        Some(Ok(order)) => Ok(HttpResponse::Ok().json(order)),
        Some(Err(error)) => Err(ApiError::Internal(error.to_string())),
        None => Err(ApiError::NotFound(format!("order {id} not found"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderUpdateBody {
    #[serde(default)]
    items: Option<Vec<OrderItem>>,
    #[serde(default)]
    fulfilment: Option<Fulfilment>,
    #[serde(default)]
    payment: Option<PaymentForm>,
    #[serde(default)]
    delivery_note: Option<String>,
}

async fn order_update(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
    body: web::Json<OrderUpdateBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, STAFF_ROLES)?;
    let body = body.into_inner();
    if body.items.is_none()
        && body.fulfilment.is_none()
        && body.payment.is_none()
        && body.delivery_note.is_none()
    {
        return Err(ApiError::BadRequest("nothing to change".to_string()));
    }
    let command = Command::UpdateOrder {
        order: path.into_inner(),
        items: body.items,
        fulfilment: body.fulfilment,
        payment: body.payment,
        delivery_note: body.delivery_note,
    };
    propose(&state, actor, command, false).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderStatusBody {
    status: OrderStatus,
}

async fn order_status(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
    body: web::Json<OrderStatusBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, STAFF_ROLES)?;
    let command = Command::ChangeOrderStatus {
        order: path.into_inner(),
        status: body.into_inner().status,
    };
    propose(&state, actor, command, false).await
}

// ---------------------------------------------------------------------------------------
// pre-orders, stock, reservations, complaints, callbacks
// ---------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreOrderBody {
    caller: String,
    sku: String,
    name: String,
    quantity: u32,
    pharmacy: String,
}

async fn pre_order_create(
    state: Data,
    request: HttpRequest,
    body: web::Json<PreOrderBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, ORDER_ROLES)?;
    let body = body.into_inner();
    let command = Command::CreatePreOrder {
        caller: phone(&body.caller)?,
        sku: body.sku,
        name: body.name,
        quantity: body.quantity,
        pharmacy: body.pharmacy,
    };
    propose(&state, actor, command, true).await
}

/// The most recent records of one kind (newest first, at most the query's limit), read
/// linearizably, as `{ key: [..] }`.
async fn recent_list<T: serde::Serialize + Clone>(
    state: &Data,
    request: &HttpRequest,
    query: &ListQuery,
    roles: &[Role],
    key: &str,
    recent: fn(&ReplicatedState, usize) -> Vec<&T>,
) -> ApiResult {
    authenticate(state, request, roles)?;
    let limit = limit(query)?;
    linearizable(state).await?;
    let items: Vec<T> = state
        .shared
        .read(|replicated| recent(replicated, limit).into_iter().cloned().collect());
    list_response(key, items)
}

fn list_response<T: serde::Serialize>(key: &str, items: Vec<T>) -> ApiResult {
    let value =
        serde_json::to_value(items).map_err(|error| ApiError::Internal(error.to_string()))?;
    Ok(HttpResponse::Ok().json(json!({ key: value })))
}

fn one_response<T: serde::Serialize>(kind: &str, id: u64, item: Option<T>) -> ApiResult {
    match item {
        Some(item) => Ok(HttpResponse::Ok().json(item)),
        None => Err(ApiError::NotFound(format!("{kind} {id} not found"))),
    }
}

async fn pre_order_list(
    state: Data,
    request: HttpRequest,
    query: web::Query<ListQuery>,
) -> ApiResult {
    recent_list(
        &state,
        &request,
        &query,
        STAFF_ROLES,
        "pre_orders",
        ReplicatedState::pre_orders_recent,
    )
    .await
}

async fn pre_order_view(state: Data, request: HttpRequest, path: web::Path<u64>) -> ApiResult {
    authenticate(&state, &request, ORDER_ROLES)?;
    let id = path.into_inner();
    linearizable(&state).await?;
    one_response(
        "pre-order",
        id,
        state
            .shared
            .read(|replicated| replicated.pre_order(id).cloned()),
    )
}

async fn pre_order_cancel(state: Data, request: HttpRequest, path: web::Path<u64>) -> ApiResult {
    let actor = authenticate(&state, &request, STAFF_ROLES)?;
    propose(
        &state,
        actor,
        Command::CancelPreOrder {
            pre_order: path.into_inner(),
        },
        false,
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StockArrivalBody {
    sku: String,
    #[serde(default)]
    pharmacy: Option<String>,
}

async fn stock_arrival(
    state: Data,
    request: HttpRequest,
    body: web::Json<StockArrivalBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, STAFF_ROLES)?;
    let body = body.into_inner();
    propose(
        &state,
        actor,
        Command::MarkInStock {
            sku: body.sku,
            pharmacy: body.pharmacy,
        },
        false,
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReservationBody {
    caller: String,
    pharmacy: String,
    items: Vec<OrderItem>,
    expires_at_ms: TimestampMs,
}

async fn reservation_create(
    state: Data,
    request: HttpRequest,
    body: web::Json<ReservationBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, ORDER_ROLES)?;
    let body = body.into_inner();
    let command = Command::CreateReservation {
        caller: phone(&body.caller)?,
        pharmacy: body.pharmacy,
        items: body.items,
        expires_at_ms: body.expires_at_ms,
    };
    propose(&state, actor, command, true).await
}

async fn reservation_list(
    state: Data,
    request: HttpRequest,
    query: web::Query<ListQuery>,
) -> ApiResult {
    recent_list(
        &state,
        &request,
        &query,
        STAFF_ROLES,
        "reservations",
        ReplicatedState::reservations_recent,
    )
    .await
}

async fn reservation_view(state: Data, request: HttpRequest, path: web::Path<u64>) -> ApiResult {
    authenticate(&state, &request, ORDER_ROLES)?;
    let id = path.into_inner();
    linearizable(&state).await?;
    one_response(
        "reservation",
        id,
        state
            .shared
            .read(|replicated| replicated.reservation(id).cloned()),
    )
}

async fn reservation_collect(state: Data, request: HttpRequest, path: web::Path<u64>) -> ApiResult {
    let actor = authenticate(&state, &request, STAFF_ROLES)?;
    propose(
        &state,
        actor,
        Command::CollectReservation {
            reservation: path.into_inner(),
        },
        false,
    )
    .await
}

async fn reservation_cancel(state: Data, request: HttpRequest, path: web::Path<u64>) -> ApiResult {
    let actor = authenticate(&state, &request, STAFF_ROLES)?;
    propose(
        &state,
        actor,
        Command::CancelReservation {
            reservation: path.into_inner(),
        },
        false,
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComplaintBody {
    caller: String,
    #[serde(default)]
    order: Option<u64>,
    text: String,
}

async fn complaint_create(
    state: Data,
    request: HttpRequest,
    body: web::Json<ComplaintBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, STAFF_ROLES)?;
    let body = body.into_inner();
    let command = Command::FileComplaint {
        caller: phone(&body.caller)?,
        order: body.order,
        text: body.text,
    };
    propose(&state, actor, command, true).await
}

async fn complaint_list(
    state: Data,
    request: HttpRequest,
    query: web::Query<ListQuery>,
) -> ApiResult {
    recent_list(
        &state,
        &request,
        &query,
        &[Role::Supervisor],
        "complaints",
        ReplicatedState::complaints_recent,
    )
    .await
}

async fn complaint_view(state: Data, request: HttpRequest, path: web::Path<u64>) -> ApiResult {
    authenticate(&state, &request, STAFF_ROLES)?;
    let id = path.into_inner();
    linearizable(&state).await?;
    one_response(
        "complaint",
        id,
        state
            .shared
            .read(|replicated| replicated.complaint(id).cloned()),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    resolution: String,
}

async fn complaint_resolve(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
    body: web::Json<ResolveBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, &[Role::Supervisor])?;
    let command = Command::ResolveComplaint {
        complaint: path.into_inner(),
        resolution: body.into_inner().resolution,
    };
    propose(&state, actor, command, false).await
}

async fn callback_list(
    state: Data,
    request: HttpRequest,
    query: web::Query<ListQuery>,
) -> ApiResult {
    recent_list(
        &state,
        &request,
        &query,
        &[Role::Supervisor, Role::Gateway],
        "callbacks",
        ReplicatedState::callbacks_recent,
    )
    .await
}

async fn callback_view(state: Data, request: HttpRequest, path: web::Path<u64>) -> ApiResult {
    authenticate(
        &state,
        &request,
        &[Role::Supervisor, Role::Gateway, Role::Agent],
    )?;
    let id = path.into_inner();
    linearizable(&state).await?;
    one_response(
        "callback",
        id,
        state
            .shared
            .read(|replicated| replicated.callback(id).cloned()),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbackOutcomeBody {
    outcome: CallbackOutcome,
}

async fn callback_outcome(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
    body: web::Json<CallbackOutcomeBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, &[Role::Gateway, Role::Supervisor])?;
    let command = Command::RecordCallbackAttempt {
        callback: path.into_inner(),
        outcome: body.into_inner().outcome,
    };
    propose(&state, actor, command, false).await
}
