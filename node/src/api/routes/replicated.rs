//! What the API promises about the replicated state, on every endpoint that touches it:
//!
//! - **Creates happen once.** A create (order, pre-order, reservation, complaint, callback
//!   outcome) with an `Idempotency-Key` header (1–128 visible ASCII characters) is proposed
//!   as `Command::Idempotent`: the state machine remembers the key's first result per
//!   principal for a day, so a retry — after a timeout, an "outcome unknown" problem, or
//!   through another site — gets the same answer (same id, same status) with
//!   `Idempotent-Replayed: true`, and the same key with another body is a 422 problem.
//! - **Creates can wait for the quorum.** With `Prefer: respond-async` an order, pre-order,
//!   reservation or complaint that cannot commit now is kept in the site's durable outbox and
//!   answered `202` pending; it commits once after the heal (see [`super::pending`]).
//! - **Reads say how old they are.** A read of the replicated state is linearizable by
//!   default (a read barrier through the leader; a node cut off from the quorum answers 503
//!   `no-quorum` instead of serving what it has). With `?consistency=local` the node serves
//!   its own copy at once, marked as such. Either way the answer carries
//!   `X-Callgrid-Read: linearizable|local`, `X-Callgrid-Applied-Index` (the state served is
//!   at least this new), `X-Callgrid-Staleness-Ms` (0 for a linearizable read; for a local
//!   one, the time since this node last knew itself in contact with a quorum — absent when
//!   it never was since it started) and `X-Callgrid-Stale: true|false` (a local read older
//!   than an election timeout, or of unknown age).

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, ResponseError as _};
use serde::Deserialize;

use super::{ApiError, ApiResult, Data, propose};
use crate::actors::site::outcome_json;
pub use crate::replicate::Once;
use crate::state::Command;
use crate::state::command::validate_idempotency_key;
use crate::state::model::Actor;

/// Request header that makes a create idempotent.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";
/// Response header of a replayed create: `true`.
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "Idempotent-Replayed";
/// Response header: how the read was made, `linearizable` or `local`.
pub const READ_HEADER: &str = "X-Callgrid-Read";
/// Response header: the applied Raft index the read saw (at least).
pub const APPLIED_INDEX_HEADER: &str = "X-Callgrid-Applied-Index";
/// Response header: milliseconds the data may lag the cluster by.
pub const STALENESS_HEADER: &str = "X-Callgrid-Staleness-Ms";
/// Response header: `true` when a local read may miss what the cluster committed.
pub const STALE_HEADER: &str = "X-Callgrid-Stale";

/// How a read of the replicated state is made (`?consistency=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Through a read barrier: current as of the request, or 503 `no-quorum`.
    #[default]
    Linearizable,
    /// This node's copy, at once, with its age: served even when cut off from the quorum.
    Local,
}

impl Consistency {
    fn as_str(self) -> &'static str {
        match self {
            Consistency::Linearizable => "linearizable",
            Consistency::Local => "local",
        }
    }
}

/// The query of reads that take nothing else.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    /// How to read (default linearizable).
    #[serde(default)]
    pub consistency: Option<Consistency>,
}

/// How a read was made and how old its data may be: stamped on the response as headers.
#[derive(Debug, Clone, Copy)]
pub struct ReadStamp {
    consistency: Consistency,
    applied_index: u64,
    staleness_ms: Option<u64>,
    stale: bool,
}

/// Prepares a read of the replicated state: a read barrier for a linearizable read (503
/// `no-quorum` when the quorum cannot be reached), this node's contact age for a local one.
pub async fn read(state: &Data, consistency: Option<Consistency>) -> Result<ReadStamp, ApiError> {
    let consistency = consistency.unwrap_or_default();
    let replicator = state.proposer.replicator();
    let (staleness_ms, stale) = match consistency {
        Consistency::Linearizable => {
            replicator.read_barrier().await.map_err(ApiError::from)?;
            (Some(0), false)
        }
        Consistency::Local => {
            let health = replicator.health();
            (health.quorum_contact_age_ms, health.is_stale())
        }
    };
    Ok(ReadStamp {
        consistency,
        applied_index: state.shared.applied_index(),
        staleness_ms,
        stale,
    })
}

impl ReadStamp {
    /// A 200 response carrying the stamp's headers.
    pub fn ok(&self) -> HttpResponseBuilder {
        let mut builder = HttpResponse::Ok();
        builder.insert_header((READ_HEADER, self.consistency.as_str()));
        builder.insert_header((APPLIED_INDEX_HEADER, self.applied_index.to_string()));
        if let Some(staleness_ms) = self.staleness_ms {
            builder.insert_header((STALENESS_HEADER, staleness_ms.to_string()));
        }
        builder.insert_header((STALE_HEADER, if self.stale { "true" } else { "false" }));
        builder
    }
}

/// The request's `Idempotency-Key`, validated; `None` without one.
pub fn idempotency_key(request: &HttpRequest) -> Result<Option<String>, ApiError> {
    let mut values = request.headers().get_all(IDEMPOTENCY_KEY_HEADER);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::BadRequest(format!(
            "one {IDEMPOTENCY_KEY_HEADER} header at most"
        )));
    }
    let key = value.to_str().map_err(|_| {
        ApiError::BadRequest(format!(
            "{IDEMPOTENCY_KEY_HEADER} must be visible ASCII characters only"
        ))
    })?;
    validate_idempotency_key(key).map_err(|invalid| ApiError::BadRequest(invalid.to_string()))?;
    Ok(Some(key.to_string()))
}

/// Proposes a create once per (principal, `Idempotency-Key`) when the request has a key;
/// a replayed answer (success or refusal) carries `Idempotent-Replayed: true`.
pub async fn propose_create(
    state: &Data,
    request: &HttpRequest,
    actor: Actor,
    command: Command,
    created: bool,
) -> ApiResult {
    if super::pending::prefers_async(request) && super::pending::may_wait(&command) {
        return super::pending::create_or_defer(state, request, actor, command).await;
    }
    let Some(key) = idempotency_key(request)? else {
        return propose(state, actor, command, created).await;
    };
    let once = state.proposer.propose_once(actor, key, command).await;
    once_response(once, created)
}

/// The answer to an idempotent create: its outcome (201 or 200), or the replayed refusal,
/// with `Idempotent-Replayed: true` when it was a replay; an error otherwise.
pub fn once_response(once: Once, created: bool) -> ApiResult {
    let mut response = match once.result {
        Ok(outcome) => {
            let body = outcome_json(&outcome);
            if created {
                HttpResponse::Created().json(body)
            } else {
                HttpResponse::Ok().json(body)
            }
        }
        Err(failure) if once.replayed => ApiError::from(failure).error_response(),
        Err(failure) => return Err(failure.into()),
    };
    if once.replayed {
        response.headers_mut().insert(
            HeaderName::from_static("idempotent-replayed"),
            HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}
