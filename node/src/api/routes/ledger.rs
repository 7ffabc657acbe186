//! The contact ledger: reads for supervisors, and the committed claim an overflowed-in
//! contact needs before this site routes it.

use std::time::Duration;

use actix_web::{HttpRequest, web};
use serde::Deserialize;
use serde_json::json;

use super::*;
use crate::actors::overflow::OverflowedFrom;
use crate::replicate::ProposeFailure;
use crate::state::ledger::{LEDGER_LIST_MAX, LedgerStage};
use crate::state::{ApplyError, Outcome};

/// How long an overflowed-in arrival waits for the source's release of the contact to reach
/// the ledger (the source's outbox is a commit round trip behind its routing), and so for its
/// claim to commit, before it is refused with 409.
pub const OVERFLOW_CLAIM_WAIT: Duration = Duration::from_secs(5);
/// Pause between claim attempts while the source's release has not arrived.
pub const OVERFLOW_CLAIM_RETRY: Duration = Duration::from_millis(100);

/// What the ledger says of a claimed contact: the hops and the caller's first arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Claimed {
    hops: u8,
    arrived_at_ms: u64,
}

/// Claims `from.contact` for this site (the first claim wins; the ledger enforces the hop
/// cap) and rewrites `from` with the ledger's hops and arrival time: the gateway's word is not
/// trusted for either. Retries while the source's release has not reached the ledger, up to
/// [`OVERFLOW_CLAIM_WAIT`]; a claim refused for good is a 409.
pub(super) async fn claim_overflow(
    state: &Data,
    actor: Actor,
    from: &mut OverflowedFrom,
) -> Result<(), ApiError> {
    // Arrival times are routing times (scaled in a drill), so the check's "now" is too.
    from.check(&state.config, crate::clock::now_ms())
        .map_err(ApiError::BadRequest)?;
    let site = state.config.site.id.clone();
    let command = Command::ClaimOverflow {
        contact: from.contact,
        from: from.site.clone(),
        to: site.clone(),
    };
    let deadline = tokio::time::Instant::now() + OVERFLOW_CLAIM_WAIT;
    let claimed = loop {
        let refusal = match state.proposer.propose(actor.clone(), command.clone()).await {
            Ok(Outcome::OverflowClaimed {
                hops,
                arrived_at_ms,
                ..
            }) => {
                break Claimed {
                    hops,
                    arrived_at_ms,
                };
            }
            Ok(other) => {
                return Err(ApiError::Internal(format!(
                    "unexpected claim outcome {other:?}"
                )));
            }
            Err(ProposeFailure::Refused(refusal)) => refusal,
            Err(failure) => return Err(failure.into()),
        };
        // Already ours (a retry of a claim whose answer was lost)? Not yet released?
        let (ours, waiting) =
            state
                .shared
                .read(|replicated| match replicated.ledger_entry(from.contact) {
                    None => (None, true),
                    Some(entry) => match &entry.stage {
                        LedgerStage::Overflowed { to, claimed: true } if *to == site => (
                            Some(Claimed {
                                hops: entry.hops.saturating_add(1),
                                arrived_at_ms: entry.arrived_at_ms,
                            }),
                            false,
                        ),
                        LedgerStage::Queued => (None, entry.owner == from.site),
                        _ => (None, false),
                    },
                });
        if let Some(claimed) = ours {
            // The Site refuses a second arrival for the same source contact.
            break claimed;
        }
        if !waiting || tokio::time::Instant::now() >= deadline {
            return Err(claim_refused(from, &refusal));
        }
        tokio::time::sleep(OVERFLOW_CLAIM_RETRY).await;
    };
    from.hops = claimed.hops;
    from.arrived_at_ms = claimed.arrived_at_ms;
    Ok(())
}

fn claim_refused(from: &OverflowedFrom, refusal: &ApplyError) -> ApiError {
    ApiError::Conflict(format!(
        "contact {} from {} is not released to this site: {refusal}",
        from.contact, from.site
    ))
}

/// `GET /api/v1/ledger/contacts/{id}`: one contact's ledger entry (after a read barrier).
pub(super) async fn ledger_contact(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
    query: web::Query<ReadQuery>,
) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    let id = path.into_inner();
    let stamp = read(&state, query.consistency).await?;
    let entry = state
        .shared
        .read(|replicated| replicated.ledger_entry(id).cloned());
    match entry {
        Some(entry) => Ok(stamp.ok().json(entry)),
        None => Err(ApiError::NotFound(format!("ledger contact {id} not found"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OpenQuery {
    #[serde(default)]
    limit: Option<usize>,
    /// How to read (default linearizable; `local` serves a cut-off node's copy, marked stale).
    #[serde(default)]
    consistency: Option<replicated::Consistency>,
}

/// `GET /api/v1/ledger/sites/{site}/open`: a site's open contacts, with its overflow counts
/// and when its last summary was published (a site is adopted once that stops).
pub(super) async fn ledger_open(
    state: Data,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<OpenQuery>,
) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    let site = path.into_inner();
    if site.is_empty() || site.chars().count() > 64 {
        return Err(ApiError::BadRequest(
            "site must be 1-64 characters".to_string(),
        ));
    }
    let limit = list_limit(query.limit, 100, LEDGER_LIST_MAX)?;
    let stamp = read(&state, query.consistency).await?;
    let body = state.shared.read(|replicated| {
        let counts = replicated.overflow_counts(&site);
        let last_summary_at_ms = replicated
            .site_summaries()
            .find(|summary| summary.site == site)
            .map(|summary| summary.at_ms);
        json!({
            "site": site,
            "last_summary_at_ms": last_summary_at_ms,
            "open": replicated.ledger_open(&site, limit),
            "overflowed_out": counts.out,
            "overflowed_in": counts.into,
            "applied_index": replicated.applied_index,
        })
    });
    Ok(stamp.ok().json(body))
}
