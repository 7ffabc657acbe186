//! Quality reviews: a supervisor scores a finished contact of the ledger.
//!
//! Rules, checked before anything changes (the scores against the carried checklist are
//! checked by `Command::validate`, which the apply runs first):
//! - only a supervisor (or an admin) reviews;
//! - the contact is in the ledger and ended after an agent answered it (not waiting, not
//!   abandoned, not served by the bot, not moved away): the agent scored is the one who last
//!   answered it;
//! - one review per (contact, reviewer): a second one replaces the first (same id, `revision`
//!   + 1, retention counted from the first); a new review beyond [`REVIEWS_MAX`] is refused.
//!
//! Reviews are dropped [`REVIEW_RETENTION_MS`] after the first review of their (contact,
//! reviewer); the ledger entry itself is kept only a day after the contact ended, so a contact
//! can be scored within that day (the review keeps what it needs of the entry).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::super::command::{ApplyError, Outcome, Response};
use super::super::ledger::LedgerStage;
use super::super::model::{Actor, Role, TimestampMs};
use super::super::quality::{
    ChecklistItem, ItemScore, REVIEW_RETENTION_MS, REVIEWS_MAX, Review, ReviewId,
};
use super::ReplicatedState;
use super::retention::RecordKind;

/// The reviews and their index (snapshot format 4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct QualityBook {
    reviews: BTreeMap<ReviewId, Review>,
    /// (contact, reviewer) → the review.
    by_contact: BTreeMap<(u64, String), ReviewId>,
}

/// A review to record (the command's fields).
pub(super) struct NewReview<'a> {
    pub contact: u64,
    pub checklist: &'a [ChecklistItem],
    pub scores: &'a [ItemScore],
    pub comment: &'a str,
}

impl ReplicatedState {
    /// Records `actor`'s review of a finished contact (or replaces their earlier one).
    pub(super) fn review_contact(
        &mut self,
        at_ms: TimestampMs,
        actor: &Actor,
        new: NewReview<'_>,
    ) -> Response {
        if !matches!(actor.role, Role::Supervisor | Role::Admin) {
            return Err(ApplyError::Conflict(format!(
                "only supervisors review contacts, not {} ({:?})",
                actor.name, actor.role
            )));
        }
        let contact = new.contact;
        let entry = self
            .ledger
            .get(&contact)
            .ok_or_else(|| ApplyError::not_found("ledger contact", contact))?;
        if entry.stage != LedgerStage::Ended {
            return Err(ApplyError::Conflict(format!(
                "contact {contact} has not ended (stage {:?})",
                entry.stage
            )));
        }
        let Some(agent) = entry.agent.clone() else {
            return Err(ApplyError::Conflict(format!(
                "contact {contact} was not answered by an agent"
            )));
        };
        let key = (contact, actor.name.clone());
        let earlier = self.quality.by_contact.get(&key).copied();
        if earlier.is_none() && self.quality.reviews.len() >= REVIEWS_MAX {
            return Err(ApplyError::Conflict(format!(
                "the state holds {REVIEWS_MAX} reviews"
            )));
        }
        let mut review = Review {
            id: 0,
            contact,
            site: entry.owner.clone(),
            agent,
            skill: entry.skill.clone(),
            arrived_at_ms: entry.arrived_at_ms,
            ended_at_ms: entry.updated_at_ms,
            recording_ref: entry.recording_ref.clone(),
            reviewer: actor.name.clone(),
            reviewed_at_ms: at_ms,
            checklist: new.checklist.to_vec(),
            scores: new.scores.to_vec(),
            comment: new.comment.to_string(),
            revision: 0,
        };
        let replaced = match earlier.and_then(|id| self.quality.reviews.get(&id)) {
            Some(first) => {
                review.id = first.id;
                review.revision = first.revision.saturating_add(1);
                true
            }
            None => {
                review.id = self.allocate_id();
                self.retention.insert((
                    at_ms.saturating_add(REVIEW_RETENTION_MS),
                    RecordKind::Review,
                    review.id,
                ));
                self.quality.by_contact.insert(key, review.id);
                false
            }
        };
        let id = review.id;
        self.quality.reviews.insert(id, review);
        Ok(Outcome::ReviewRecorded {
            review: id,
            replaced,
        })
    }

    /// Drops a review whose retention ended.
    pub(super) fn drop_review(&mut self, id: ReviewId) {
        if let Some(review) = self.quality.reviews.remove(&id) {
            self.quality
                .by_contact
                .remove(&(review.contact, review.reviewer));
        }
    }

    /// A review by id.
    pub fn review(&self, id: ReviewId) -> Option<&Review> {
        self.quality.reviews.get(&id)
    }

    /// The reviews of `contact`, oldest first.
    pub fn reviews_of_contact(&self, contact: u64) -> Vec<&Review> {
        self.quality
            .by_contact
            .range((contact, String::new())..)
            .take_while(|((reviewed, _), _)| *reviewed == contact)
            .filter_map(|(_, id)| self.quality.reviews.get(id))
            .collect()
    }

    /// Every review held, oldest id first.
    pub fn reviews(&self) -> impl DoubleEndedIterator<Item = &Review> {
        self.quality.reviews.values()
    }

    /// Reviews held.
    pub fn reviews_len(&self) -> usize {
        self.quality.reviews.len()
    }
}
