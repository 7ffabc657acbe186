//! Cluster membership for operators (role `admin`, made on the leader; deploy/RUNBOOK.md):
//!
//! | request | does |
//! |---|---|
//! | `POST /api/v1/cluster/learners` `{"id": 4, "address": "kzn:7080"}` | add a learner |
//! | `POST /api/v1/cluster/voters/{id}` | promote a learner to voter |
//! | `DELETE /api/v1/cluster/members/{id}` | remove a voter or learner |
//! | `POST /api/v1/cluster/leader` `{"id": 2}` | hand leadership to a voter |
//!
//! Each answers `200 {"done": ..., "cluster": <status>}` once the change is applied on this
//! node, `409` on a node that is not the leader (the problem names the leader) or for a
//! change raft refuses, `503` when it could not complete in time. The token is checked before
//! the body is read.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::require;
use super::problem::ApiError;
use crate::replicate::{MembershipFailure, MembershipRequest};
use crate::state::model::Role;

type Data = web::Data<AppState>;
type ApiResult = Result<HttpResponse, ApiError>;

/// Longest `host:port` accepted as a member's address.
pub const ADDRESS_CHARS_MAX: usize = 255;

/// Registers the endpoints in the `/api/v1/cluster` scope (`routes::register`), which
/// authenticates before any body is read, as the rest of `/api/v1` (a 401, never a 400).
/// A resource each: another method on the path is a 405.
pub fn register(scope: &mut web::ServiceConfig) {
    scope
        .service(web::resource("/learners").route(web::post().to(add_learner)))
        .service(web::resource("/voters/{id}").route(web::post().to(promote)))
        .service(web::resource("/members/{id}").route(web::delete().to(remove)))
        .service(web::resource("/leader").route(web::post().to(transfer_leader)));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LearnerBody {
    id: u64,
    address: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaderBody {
    id: u64,
}

fn admin(state: &Data, request: &HttpRequest) -> Result<(), ApiError> {
    let actor = state.tokens.authenticate(request)?;
    require(&actor, &[Role::Admin])
}

/// Bodies are parsed after the token is checked: 401/403 before 400.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| ApiError::BadRequest(error.to_string()))
}

fn node_id(id: u64) -> Result<u64, ApiError> {
    if id == 0 {
        return Err(ApiError::BadRequest("node id must not be 0".to_string()));
    }
    Ok(id)
}

fn address(address: &str) -> Result<String, ApiError> {
    let valid = !address.is_empty()
        && address.len() <= ADDRESS_CHARS_MAX
        && address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty()
                && port.parse::<u16>().is_ok_and(|port| port != 0)
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
        });
    if valid {
        Ok(address.to_string())
    } else {
        Err(ApiError::BadRequest(
            "address must be host:port (the member's cluster listener)".to_string(),
        ))
    }
}

async fn change(state: &Data, request: MembershipRequest) -> ApiResult {
    let done = format!("{request:?}");
    tracing::info!(change = %done, "membership change requested");
    let replicator = state.proposer.replicator();
    match replicator.change_membership(request).await {
        Ok(()) => Ok(HttpResponse::Ok().json(json!({
            "done": done,
            "cluster": replicator.health(),
        }))),
        Err(error) => {
            tracing::warn!(change = %done, %error, "membership change failed");
            Err(match error {
                MembershipFailure::NotLeader { .. } | MembershipFailure::Refused(_) => {
                    ApiError::Conflict(error.to_string())
                }
                MembershipFailure::Unavailable(_) => ApiError::Unavailable(error.to_string()),
            })
        }
    }
}

async fn add_learner(state: Data, request: HttpRequest, body: web::Bytes) -> ApiResult {
    admin(&state, &request)?;
    let body: LearnerBody = parse(&body)?;
    let request = MembershipRequest::AddLearner {
        id: node_id(body.id)?,
        address: address(&body.address)?,
    };
    change(&state, request).await
}

async fn promote(state: Data, request: HttpRequest, path: web::Path<u64>) -> ApiResult {
    admin(&state, &request)?;
    let id = node_id(path.into_inner())?;
    change(&state, MembershipRequest::Promote { id }).await
}

async fn remove(state: Data, request: HttpRequest, path: web::Path<u64>) -> ApiResult {
    admin(&state, &request)?;
    let id = node_id(path.into_inner())?;
    change(&state, MembershipRequest::Remove { id }).await
}

async fn transfer_leader(state: Data, request: HttpRequest, body: web::Bytes) -> ApiResult {
    admin(&state, &request)?;
    let body: LeaderBody = parse(&body)?;
    let to = node_id(body.id)?;
    change(&state, MembershipRequest::TransferLeader { to }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_and_port() {
        assert!(address("kzn:7080").is_ok());
        assert!(address("10.0.0.4:7080").is_ok());
        assert!(address("[::1]:7080").is_ok());
        for bad in [
            "",
            "kzn",
            "kzn:",
            ":7080",
            "kzn:0",
            "kzn:70800",
            "k zn:7080",
            "a/b:1",
        ] {
            assert!(address(bad).is_err(), "{bad:?} accepted");
        }
        assert!(node_id(0).is_err());
    }
}
