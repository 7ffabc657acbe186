//! Call quality control for supervisors: score a finished contact on the site's checklist,
//! read a contact's reviews (with its recording reference), list reviews by agent and day, and
//! the recent finished contacts the QA page offers for scoring.
//!
//! ```text
//!   POST /api/v1/contacts/{contact}/reviews   {"scores": {"greeting": 5, ...}, "comment": ""}
//!   GET  /api/v1/contacts/{contact}/reviews   the ledger entry, its reviews, the checklist
//!   GET  /api/v1/reviews?agent=&from=&to=     reviews of contacts that ended on those days
//!   GET  /api/v1/quality/contacts?limit=      finished contacts, newest first, to score
//! ```
//!
//! A review is a replicated create (`Command::ReviewContact`, `Idempotency-Key` honoured); the
//! state machine checks the contact (ended after an agent answered it) and the scores. Days
//! are this site's local days (`[site] utc_offset_minutes`) of the contact's end.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::actors::site::reports::LocalDay;
use crate::state::ledger::{LEDGER_LIST_MAX, LedgerEntry, LedgerStage};
use crate::state::quality::{ItemScore, QualityFigure, REVIEWS_LIST_MAX, Review};

/// `POST /contacts/{contact}/reviews`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReviewBody {
    /// Points per checklist item name.
    scores: BTreeMap<String, u32>,
    #[serde(default)]
    comment: String,
}

/// A review as the API shows it: the record and its score.
pub(crate) fn review_json(review: &Review) -> Value {
    let mut value = serde_json::to_value(review).unwrap_or(Value::Null);
    value["score_percent"] = json!(review.score_percent());
    value
}

pub(super) async fn review_create(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
    body: web::Json<ReviewBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, &[Role::Supervisor])?;
    let contact = path.into_inner();
    let body = body.into_inner();
    let checklist = state.config.quality.checklist.clone();
    // In checklist order; names the checklist lacks are kept, so validation names them.
    let mut scores: Vec<ItemScore> = checklist
        .iter()
        .filter_map(|item| {
            body.scores.get(&item.name).map(|points| ItemScore {
                item: item.name.clone(),
                points: *points,
            })
        })
        .collect();
    scores.extend(
        body.scores
            .iter()
            .filter(|(name, _)| !checklist.iter().any(|item| &item.name == *name))
            .map(|(name, points)| ItemScore {
                item: name.clone(),
                points: *points,
            }),
    );
    let command = Command::ReviewContact {
        contact,
        checklist,
        scores,
        comment: body.comment,
    };
    propose_create(&state, &request, actor, command, true).await
}

/// `GET /contacts/{contact}/reviews`: the contact's ledger entry (agent, recording), its
/// reviews and this site's checklist.
pub(super) async fn contact_reviews(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
    query: web::Query<ReadQuery>,
) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    let contact = path.into_inner();
    let stamp = read(&state, query.consistency).await?;
    let (entry, reviews) = state.shared.read(|replicated| {
        (
            replicated.ledger_entry(contact).cloned(),
            replicated
                .reviews_of_contact(contact)
                .into_iter()
                .map(review_json)
                .collect::<Vec<_>>(),
        )
    });
    if entry.is_none() && reviews.is_empty() {
        return Err(ApiError::NotFound(format!(
            "contact {contact} is neither in the ledger nor reviewed"
        )));
    }
    Ok(stamp.ok().json(json!({
        "contact": contact,
        "ledger": entry,
        "reviews": reviews,
        "checklist": state.config.quality.checklist,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReviewsQuery {
    #[serde(default)]
    agent: Option<String>,
    /// First local day (`YYYY-MM-DD`) of the contacts' end, inclusive.
    #[serde(default)]
    from: Option<String>,
    /// Last local day, inclusive.
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    consistency: Option<replicated::Consistency>,
}

/// The local day (at `offset_minutes`) a review's contact ended on.
pub(crate) fn review_day(review: &Review, offset_minutes: i16) -> LocalDay {
    LocalDay::of(review.ended_at_ms, offset_minutes).0
}

/// `GET /reviews?agent=&from=&to=`: reviews (newest first) and each agent's count and mean.
pub(super) async fn review_list(
    state: Data,
    request: HttpRequest,
    query: web::Query<ReviewsQuery>,
) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    if let Some(agent) = &query.agent {
        validate_login(agent)?;
    }
    let from = local_day("from", query.from.as_deref())?;
    let to = local_day("to", query.to.as_deref())?;
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        return Err(ApiError::BadRequest("`to` is before `from`".to_string()));
    }
    let limit = list_limit(query.limit, 100, REVIEWS_LIST_MAX)?;
    let offset = state.config.site.utc_offset_minutes;
    let stamp = read(&state, query.consistency).await?;
    let body = state.shared.read(|replicated| {
        let chosen: Vec<&Review> = replicated
            .reviews()
            .rev()
            .filter(|review| query.agent.as_ref().is_none_or(|agent| review.agent == *agent))
            .filter(|review| {
                let day = review_day(review, offset);
                from.is_none_or(|from| day >= from) && to.is_none_or(|to| day <= to)
            })
            .collect();
        let mut by_agent: BTreeMap<&str, Vec<&Review>> = BTreeMap::new();
        for review in &chosen {
            by_agent.entry(&review.agent).or_default().push(review);
        }
        let agents: Vec<Value> = by_agent
            .into_iter()
            .map(|(agent, reviews)| {
                let figure = QualityFigure::of(reviews);
                json!({"agent": agent, "reviews": figure.reviews,
                       "score_percent_mean": figure.score_percent_mean})
            })
            .collect();
        json!({
            "reviews": chosen.iter().take(limit).map(|review| review_json(review)).collect::<Vec<_>>(),
            "total": chosen.len(),
            "agents": agents,
        })
    });
    Ok(stamp.ok().json(body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FinishedQuery {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    consistency: Option<replicated::Consistency>,
}

fn finished_json(entry: &LedgerEntry, reviews: &[&Review]) -> Value {
    json!({
        "contact": entry.contact,
        "site": entry.owner,
        "skill": entry.skill,
        "agent": entry.agent,
        "arrived_at_ms": entry.arrived_at_ms,
        "ended_at_ms": entry.updated_at_ms,
        "recording_ref": entry.recording_ref,
        "reviews": reviews.len(),
        "score_percent_mean": QualityFigure::of(reviews.iter().copied()).score_percent_mean,
    })
}

/// `GET /quality/contacts?limit=`: the ledger's contacts that ended after an agent answered
/// them (every site's, within the ledger's day of retention), newest end first, with their
/// review counts, and this site's checklist for the scoring form.
pub(super) async fn finished_contacts(
    state: Data,
    request: HttpRequest,
    query: web::Query<FinishedQuery>,
) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    let limit = list_limit(query.limit, 50, LEDGER_LIST_MAX)?;
    let stamp = read(&state, query.consistency).await?;
    let contacts = state.shared.read(|replicated| {
        let mut finished: Vec<&LedgerEntry> = replicated
            .ledger_entries()
            .filter(|entry| entry.stage == LedgerStage::Ended && entry.agent.is_some())
            .collect();
        finished.sort_by_key(|entry| std::cmp::Reverse((entry.updated_at_ms, entry.contact)));
        finished
            .into_iter()
            .take(limit)
            .map(|entry| finished_json(entry, &replicated.reviews_of_contact(entry.contact)))
            .collect::<Vec<_>>()
    });
    Ok(stamp.ok().json(json!({
        "contacts": contacts,
        "checklist": state.config.quality.checklist,
    })))
}
