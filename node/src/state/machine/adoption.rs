//! Site loss: a live site adopts a lost site's open ledger entries. Callers who were waiting
//! there get callback tasks at their original place (ordering time = first arrival), callers
//! cut off while talking get a callback to follow up, and the callbacks the lost site had
//! claimed are released for any site to dial.
//!
//! The adopter decides that the site is lost (its summaries stopped, on the adopter's clock);
//! the state machine checks it again with the times it has (the lost site's last summary is
//! at least [`SITE_LOST_AFTER_MS`] older than the command), so a live site's contacts are
//! never taken. Adoption is bounded per command ([`ADOPTIONS_PER_COMMAND_MAX`]); the adopter
//! proposes again while entries remain.

use super::super::command::{ApplyError, Outcome, Response};
use super::super::ledger::LedgerStage;
use super::super::model::TimestampMs;
use super::ReplicatedState;

/// A site whose last summary is this much older than an adoption command is lost: the
/// summaries' own staleness bound (`actors::overflow::SUMMARY_STALE_AFTER_MS`).
pub const SITE_LOST_AFTER_MS: u64 = crate::actors::overflow::SUMMARY_STALE_AFTER_MS;
/// Open entries adopted per command at most.
pub const ADOPTIONS_PER_COMMAND_MAX: usize = 1_000;

impl ReplicatedState {
    /// `adopter` takes over `lost`'s open contacts and releases its claimed callbacks.
    pub(super) fn adopt_site(&mut self, at_ms: TimestampMs, adopter: &str, lost: &str) -> Response {
        if adopter == lost {
            return Err(ApplyError::Conflict(
                "a site cannot adopt itself".to_string(),
            ));
        }
        let last_summary_ms = self
            .site_summaries
            .get(lost)
            .map(|summary| summary.at_ms)
            .ok_or_else(|| ApplyError::Conflict(format!("site {lost} never published")))?;
        if last_summary_ms.saturating_add(SITE_LOST_AFTER_MS) > at_ms {
            return Err(ApplyError::Conflict(format!(
                "site {lost} published {} ms ago: not lost",
                at_ms.saturating_sub(last_summary_ms)
            )));
        }
        Ok(self.adopt_open(at_ms, adopter, lost, None))
    }

    /// A site that restarted recovers its own contacts that were open when it stopped (their
    /// last update is older than `before_ms`, its start): they are gone from its memory, so
    /// their callers get callbacks as a lost site's do.
    pub(super) fn recover_own_contacts(
        &mut self,
        at_ms: TimestampMs,
        site: &str,
        before_ms: TimestampMs,
    ) -> Response {
        if before_ms > at_ms {
            return Err(ApplyError::Conflict(
                "recovery of contacts from the future".to_string(),
            ));
        }
        Ok(self.adopt_open(at_ms, site, site, Some(before_ms)))
    }

    /// `adopter` takes over `lost`'s open entries (only those last updated before
    /// `before_ms`, if given): callbacks for their callers, claimed callbacks released (for a
    /// lost site only: a recovering site re-queues its own).
    fn adopt_open(
        &mut self,
        at_ms: TimestampMs,
        adopter: &str,
        lost: &str,
        before_ms: Option<TimestampMs>,
    ) -> Outcome {
        let open: Vec<u64> = self
            .ledger_open(lost, usize::MAX)
            .into_iter()
            .filter(|entry| before_ms.is_none_or(|before| entry.updated_at_ms < before))
            .take(ADOPTIONS_PER_COMMAND_MAX)
            .map(|entry| entry.contact)
            .collect();
        let mut callbacks = Vec::new();
        for contact in &open {
            let Some(mut entry) = self.ledger.get(contact).cloned() else {
                continue;
            };
            // Waiting (or released but never claimed) and talking callers alike are called
            // back at their first arrival's place; one open callback per number.
            if let Ok(Outcome::CallbacksCreated(created)) = self.create_abandoned_callback(
                at_ms,
                adopter,
                &entry.caller,
                &entry.skill,
                entry.arrived_at_ms,
            ) {
                callbacks.extend(created);
            }
            entry.stage = LedgerStage::Adopted {
                by: adopter.to_string(),
            };
            entry.updated_at_ms = at_ms;
            self.store_ledger_entry(entry);
        }
        let claimed: Vec<u64> = if before_ms.is_some() {
            Vec::new()
        } else {
            self.callbacks_claimed_by(lost)
                .into_iter()
                .map(|callback| callback.id)
                .collect()
        };
        let mut released = 0u32;
        for callback in claimed {
            if self.release_callback(callback).is_ok() {
                released += 1;
            }
        }
        Outcome::SiteAdopted {
            contacts: u32::try_from(open.len()).unwrap_or(u32::MAX),
            callbacks,
            released,
        }
    }
}
