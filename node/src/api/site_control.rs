//! Operators' cluster-wide controls (role `admin`; `callgrid cluster ...`, deploy/RUNBOOK.md):
//!
//! | request | does |
//! |---|---|
//! | `GET /api/v1/cluster/overview` | members, roles, leader, term, indexes, each member's lag (on the leader), each site's load and drain state |
//! | `POST /api/v1/cluster/sites/{id}/drain` | drain a site: no new contacts, no callback claims, its waiting claims released |
//! | `POST /api/v1/cluster/sites/{id}/undrain` | serve again |
//! | `GET /api/v1/cluster/tokens` | the cluster's tokens (hashes, names, roles, revoked) |
//! | `POST /api/v1/cluster/tokens` `{"name", "role", "sha256"}` | a token valid at every site |
//! | `DELETE /api/v1/cluster/tokens/{sha256}` | revoke it at every site |
//! | `GET /api/v1/cluster/agents` | the cluster-wide agent roster (each site's `[[agents]]`) |
//!
//! Changes go through Raft and answer once committed and applied on this node. The token is
//! checked before any body is read.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::require;
use super::problem::ApiError;
use crate::replicate::now_ms;
use crate::state::Command;
use crate::state::command::TokenGrant;
use crate::state::model::{Actor, Role};

type Data = web::Data<AppState>;
type ApiResult = Result<HttpResponse, ApiError>;

/// Registers the endpoints in the `/api/v1/cluster` scope (`routes::register`), which
/// authenticates first. A resource each: another method on the path is a 405.
pub fn register(scope: &mut web::ServiceConfig) {
    scope
        .service(web::resource("/overview").route(web::get().to(overview)))
        .service(web::resource("/sites/{id}/drain").route(web::post().to(drain)))
        .service(web::resource("/sites/{id}/undrain").route(web::post().to(undrain)))
        .service(
            web::resource("/tokens")
                .route(web::get().to(token_list))
                .route(web::post().to(token_add)),
        )
        .service(web::resource("/tokens/{sha256}").route(web::delete().to(token_revoke)))
        .service(web::resource("/agents").route(web::get().to(agent_list)));
}

/// The cluster-wide roster: every agent any site configured, the site that defined it, and
/// whether this site has one of its skills (it may log in here).
async fn agent_list(state: Data, request: HttpRequest) -> ApiResult {
    admin(&state, &request)?;
    let agents: Vec<Value> = state.shared.read(|replicated| {
        replicated
            .roster_agents()
            .map(|record| {
                let agent = &record.agent;
                let here = agent
                    .skills
                    .iter()
                    .any(|skill| state.config.skill_index(skill).is_some());
                json!({
                    "login": agent.login,
                    "id": agent.id,
                    "skills": agent.skills,
                    "certificate_valid_until": agent.certificate_valid_until,
                    "chat_slots": agent.chat_slots,
                    "defined_by_site": record.defined_by_site,
                    "changed_at_ms": record.changed_at_ms,
                    "may_log_in_here": here,
                })
            })
            .collect()
    });
    Ok(HttpResponse::Ok().json(json!({"site": state.config.site.id, "agents": agents})))
}

fn admin(state: &Data, request: &HttpRequest) -> Result<Actor, ApiError> {
    let actor = state.tokens.authenticate(request)?;
    require(&actor, &[Role::Admin])?;
    Ok(actor)
}

/// `GET /cluster/overview`: what `callgrid cluster status` prints.
async fn overview(state: Data, request: HttpRequest) -> ApiResult {
    admin(&state, &request)?;
    let health = state.proposer.replicator().health();
    let leading = health.leader == Some(health.node_id);
    // On the leader: members that held the log and came back with an empty store.
    let stores_lost: Vec<u64> = health.details["stores_lost"]
        .as_array()
        .map(|lost| lost.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let members: Vec<Value> = health.details["members"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .map(|member| {
                    let match_index = member["match_index"].as_u64();
                    json!({
                        "id": member["id"],
                        "role": member["kind"],
                        "address": member["address"],
                        "leader": member["id"].as_u64() == health.leader,
                        "store_lost": member["id"]
                            .as_u64()
                            .is_some_and(|id| stores_lost.contains(&id)),
                        "match_index": match_index,
                        // Entries committed that the member has not yet stored; only the
                        // leader tracks members' match indexes.
                        "lag": match_index
                            .filter(|_| leading)
                            .map(|index| health.commit_index.saturating_sub(index)),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let now = now_ms();
    let sites: Vec<Value> = state.shared.read(|replicated| {
        let mut names: Vec<String> = std::iter::once(state.config.site.id.clone())
            .chain(state.config.peer_sites.iter().map(|peer| peer.id.clone()))
            .chain(
                replicated
                    .site_summaries()
                    .map(|summary| summary.site.clone()),
            )
            .chain(replicated.drained_sites().map(str::to_string))
            .collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|site| {
                let summary = replicated
                    .site_summaries()
                    .find(|summary| summary.site == site);
                let sum = |field: fn(&crate::state::model::SkillSummary) -> u32| {
                    summary.map(|summary| summary.skills.iter().map(field).sum::<u32>())
                };
                json!({
                    "site": site,
                    "drained": replicated.is_drained(&site),
                    "waiting": sum(|skill| skill.contacts_waiting),
                    "agents_available": sum(|skill| skill.agents_idle),
                    // On the publisher's clock against this node's: skewed clocks skew it.
                    "summary_age_ms": summary.map(|summary| now.saturating_sub(summary.at_ms)),
                    // The `[callbacks]`/`[orders]` policy the site replicated (null: not yet).
                    "policy": replicated.site_policy(&site),
                })
            })
            .collect()
    });
    Ok(HttpResponse::Ok().json(json!({
        "node_id": health.node_id,
        "site": state.config.site.id,
        "role": health.details["role"],
        "leader": health.leader,
        "term": health.term,
        "commit_index": health.commit_index,
        "applied_index": health.applied_index,
        "members": members,
        "sites": sites,
    })))
}

/// A site the node knows of: itself, a configured peer, one that published or is drained.
fn known_site(state: &Data, site: &str) -> Result<String, ApiError> {
    let known = site == state.config.site.id
        || state.config.peer_site(site).is_some()
        || state.shared.read(|replicated| {
            replicated.is_drained(site) || replicated.site_summaries().any(|s| s.site == site)
        });
    if known {
        Ok(site.to_string())
    } else {
        Err(ApiError::NotFound(format!(
            "site `{site}` is not known to this node (not itself, not a [[peer_sites]] entry, \
             never published)"
        )))
    }
}

async fn set_drained(state: Data, request: HttpRequest, site: String, drained: bool) -> ApiResult {
    let actor = admin(&state, &request)?;
    let site = known_site(&state, &site)?;
    tracing::info!(%site, drained, by = %actor.name, "site drain state change requested");
    let command = Command::SetSiteDrained {
        site: site.clone(),
        drained,
    };
    state.proposer.propose(actor, command).await?;
    Ok(HttpResponse::Ok().json(json!({"site": site, "drained": drained})))
}

async fn drain(state: Data, request: HttpRequest, path: web::Path<String>) -> ApiResult {
    set_drained(state, request, path.into_inner(), true).await
}

async fn undrain(state: Data, request: HttpRequest, path: web::Path<String>) -> ApiResult {
    set_drained(state, request, path.into_inner(), false).await
}

async fn token_list(state: Data, request: HttpRequest) -> ApiResult {
    admin(&state, &request)?;
    let tokens: Vec<Value> = state.shared.read(|replicated| {
        replicated
            .tokens()
            .map(|(hash, record)| {
                json!({
                    "sha256": hex::encode(hash),
                    "name": record.name,
                    "role": record.role,
                    "revoked": record.revoked,
                    "changed_by_site": record.changed_by_site,
                    "changed_at_ms": record.changed_at_ms,
                })
            })
            .collect()
    });
    Ok(HttpResponse::Ok().json(json!({"tokens": tokens})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
    role: Role,
    sha256: String,
}

fn parse_hash(text: &str) -> Result<[u8; 32], ApiError> {
    let mut hash = [0_u8; 32];
    hex::decode_to_slice(text.trim(), &mut hash).map_err(|_| {
        ApiError::BadRequest("sha256 must be 64 hex digits (`callgrid token hash`)".to_string())
    })?;
    Ok(hash)
}

/// Bodies are parsed after the token is checked: 401/403 before 400.
async fn token_add(state: Data, request: HttpRequest, body: web::Bytes) -> ApiResult {
    let actor = admin(&state, &request)?;
    let body: TokenBody = serde_json::from_slice(&body)
        .map_err(|error| ApiError::BadRequest(format!("invalid JSON body: {error}")))?;
    let sha256 = parse_hash(&body.sha256)?;
    if body.name.trim().is_empty() || body.name.chars().count() > 64 {
        return Err(ApiError::BadRequest(
            "name must be 1 to 64 characters".to_string(),
        ));
    }
    tracing::info!(name = %body.name, role = ?body.role, by = %actor.name, "token added");
    let command = Command::GrantTokens {
        tokens: vec![TokenGrant {
            sha256,
            name: body.name.clone(),
            role: body.role,
        }],
        seed: false,
    };
    state.proposer.propose(actor, command).await?;
    Ok(HttpResponse::Created().json(json!({
        "sha256": hex::encode(sha256),
        "name": body.name,
        "role": body.role,
    })))
}

async fn token_revoke(state: Data, request: HttpRequest, path: web::Path<String>) -> ApiResult {
    let actor = admin(&state, &request)?;
    let sha256 = parse_hash(&path.into_inner())?;
    if state
        .shared
        .read(|replicated| replicated.token(&sha256).is_none())
    {
        return Err(ApiError::NotFound(
            "the cluster knows no token with this hash".to_string(),
        ));
    }
    tracing::info!(sha256 = %hex::encode(sha256), by = %actor.name, "token revoked");
    state
        .proposer
        .propose(actor, Command::RevokeToken { sha256 })
        .await?;
    Ok(HttpResponse::Ok().json(json!({"sha256": hex::encode(sha256), "revoked": true})))
}
