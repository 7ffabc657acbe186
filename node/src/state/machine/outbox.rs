//! Applying a site's outbox batch: each entry once, by the site's replicated progress mark.
//!
//! An entry at or below the mark (same incarnation) was applied before — the batch is a retry
//! after "outcome unknown" — and is skipped. An entry the state refuses (an attempt on a
//! callback that closed meanwhile) is consumed all the same: the refusal is deterministic, a
//! retry would meet it again, and one refused entry must not hold back the site's later ones.

use super::super::command::{Envelope, Outcome, Response};
use super::super::model::TimestampMs;
use super::super::site_writes::{OutboxBatch, OutboxProgress, SiteWrite};
use super::{ReplicatedState, StateEvent};

impl ReplicatedState {
    /// Applies the entries of `batch` of `site` that were not applied before.
    pub(super) fn apply_outbox_batch(
        &mut self,
        at_ms: TimestampMs,
        site: &str,
        batch: &OutboxBatch,
        events: &mut Vec<StateEvent>,
    ) -> Response {
        let mut progress = self.outbox_progress.get(site).copied().unwrap_or_default();
        let (mut applied, mut duplicates, mut refused) = (0u32, 0u32, 0u32);
        if batch.incarnation < progress.incarnation {
            // A store that was replaced: its entries were applied (or given up) before.
            duplicates = u32::try_from(batch.entries.len()).unwrap_or(u32::MAX);
            return Ok(Outcome::OutboxApplied {
                applied,
                duplicates,
                refused,
            });
        }
        if batch.incarnation > progress.incarnation {
            progress = OutboxProgress {
                incarnation: batch.incarnation,
                sequence: 0,
            };
        }
        for entry in &batch.entries {
            if entry.sequence <= progress.sequence {
                duplicates += 1;
                continue;
            }
            if entry.sequence != progress.sequence + 1 {
                // Never expected (the outbox numbers without gaps); applied anyway, told.
                tracing::warn!(
                    site,
                    expected = progress.sequence + 1,
                    found = entry.sequence,
                    "outbox sequence gap"
                );
            }
            progress.sequence = entry.sequence;
            match self.apply_site_write(at_ms, site, entry.sequence, &entry.write, events) {
                Ok(_) => applied += 1,
                Err(error) => {
                    refused += 1;
                    tracing::debug!(site, sequence = entry.sequence, kind = entry.write.kind(), %error, "outbox entry refused");
                }
            }
        }
        debug_assert!(
            self.outbox_progress.get(site).is_none_or(|before| (
                before.incarnation,
                before.sequence
            ) <= (
                progress.incarnation,
                progress.sequence
            )),
            "an outbox mark never goes back"
        );
        self.outbox_progress.insert(site.to_string(), progress);
        Ok(Outcome::OutboxApplied {
            applied,
            duplicates,
            refused,
        })
    }

    /// One write, by the same rule as its stand-alone command.
    fn apply_site_write(
        &mut self,
        at_ms: TimestampMs,
        site: &str,
        sequence: u64,
        write: &SiteWrite,
        events: &mut Vec<StateEvent>,
    ) -> Response {
        match write {
            SiteWrite::AbandonedCallback {
                caller,
                skill,
                ordering_time_ms,
            } => self.create_abandoned_callback(at_ms, site, caller, skill, *ordering_time_ms),
            SiteWrite::CallerCalledIn { caller } => self.caller_called_in(at_ms, caller),
            SiteWrite::CallbackAttempt { callback, outcome } => {
                self.record_attempt(at_ms, *callback, *outcome)
            }
            SiteWrite::Ledger(update) => self.apply_ledger_update(at_ms, site, sequence, update),
            SiteWrite::IdempotentCreate {
                actor,
                key,
                command,
                ..
            } => {
                // As if `actor` had proposed `Command::Idempotent` itself: a key the client
                // also used directly (or an earlier batch that committed) replays.
                let envelope = Envelope {
                    at_ms,
                    actor: actor.clone(),
                    site: site.to_string(),
                    command: super::super::command::Command::Idempotent {
                        key: key.clone(),
                        command: command.clone(),
                    },
                };
                let index = self.applied_index;
                self.apply_once(index, &envelope, key, command, events)
            }
        }
    }

    /// How far `site`'s outbox has been applied.
    pub fn outbox_progress(&self, site: &str) -> OutboxProgress {
        self.outbox_progress.get(site).copied().unwrap_or_default()
    }
}
