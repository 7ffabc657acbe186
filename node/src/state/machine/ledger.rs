//! The contact ledger: sites' reports of their contacts (through their outboxes) and overflow
//! claims (a committed claim moves a contact; the first claim wins, the hop cap is the
//! ledger's).
//!
//! Rules, checked before anything changes:
//! - only the owner reports on an entry, and never after it closed (ended, abandoned, served
//!   by the bot, or claimed away) — except that an owner whose contacts were adopted while it
//!   was only cut off may still report that it answered, ended or served the contact: the
//!   adoption's callback is then withdrawn (not if it is being dialled);
//! - an overflowed-in contact is opened only on a committed claim to the opening site;
//! - a claim is made by the target site, on an entry its owner released (`overflowed`, not
//!   yet claimed), within [`OVERFLOW_HOPS_MAX`] moves.
//!
//! Closed entries are dropped [`LEDGER_ENDED_RETENTION_MS`] after they closed.

use std::collections::BTreeSet;

use super::super::command::{ApplyError, Outcome, Response};
use super::super::ledger::{
    LEDGER_ENDED_RETENTION_MS, LEDGER_OPEN_MAX, LedgerChange, LedgerEntry, LedgerStage,
    LedgerUpdate, OverflowCounts,
};
use super::super::model::TimestampMs;
use super::ReplicatedState;
use super::retention::RecordKind;

/// Moves between sites a contact may make: the domain's own limit.
pub const OVERFLOW_HOPS_MAX: u8 = callgrid_domain::OVERFLOW_HOPS_MAX;

impl ReplicatedState {
    /// Applies `site`'s report `update` (its outbox entry `sequence`).
    pub(super) fn apply_ledger_update(
        &mut self,
        at_ms: TimestampMs,
        site: &str,
        sequence: u64,
        update: &LedgerUpdate,
    ) -> Response {
        let contact = update.contact;
        if let LedgerChange::Recording { reference } = &update.change {
            return self.keep_recording_ref(site, sequence, contact, reference);
        }
        let mut entry = match &update.change {
            LedgerChange::Opened {
                caller,
                skill,
                arrived_at_ms,
                moved_from,
            } => self.opened_entry(site, contact, (caller, skill), *arrived_at_ms, *moved_from)?,
            change => {
                let entry = self
                    .ledger
                    .get(&contact)
                    .ok_or_else(|| ApplyError::not_found("ledger contact", contact))?;
                if entry.owner != site {
                    return Err(ApplyError::Conflict(format!(
                        "contact {contact} belongs to {}",
                        entry.owner
                    )));
                }
                let resumed = matches!(entry.stage, LedgerStage::Adopted { .. })
                    && matches!(
                        change,
                        LedgerChange::Stage(
                            LedgerStage::Answered { .. }
                                | LedgerStage::Ended
                                | LedgerStage::ServedByBot
                        )
                    );
                if entry.stage.is_closed() && !resumed {
                    return Err(ApplyError::Conflict(format!("contact {contact} is closed")));
                }
                let mut entry = entry.clone();
                if resumed {
                    // The owner was cut off, not lost: it served the caller after all. The
                    // adoption's callback is withdrawn unless it is being dialled already.
                    self.caller_called_in(at_ms, &entry.caller)?;
                }
                match change {
                    LedgerChange::Requeued { skill } => {
                        entry.skill.clone_from(skill);
                        entry.stage = LedgerStage::Queued;
                    }
                    LedgerChange::Stage(stage) => {
                        if let LedgerStage::Answered { agent } = stage {
                            entry.agent = Some(agent.clone());
                        }
                        entry.stage = stage.clone();
                    }
                    LedgerChange::Opened { .. } | LedgerChange::Recording { .. } => {}
                }
                entry
            }
        };
        entry.updated_at_ms = update.at_ms;
        entry.sequence = sequence;
        self.store_ledger_entry(entry);
        Ok(Outcome::Done)
    }

    /// Keeps the gateway's recording reference with `site`'s own entry `contact` (also after
    /// it ended: the gateway may know the recording only at the hang-up). The stage and its
    /// time are left as they are.
    fn keep_recording_ref(
        &mut self,
        site: &str,
        sequence: u64,
        contact: u64,
        reference: &str,
    ) -> Response {
        let entry = self
            .ledger
            .get_mut(&contact)
            .ok_or_else(|| ApplyError::not_found("ledger contact", contact))?;
        if entry.owner != site {
            return Err(ApplyError::Conflict(format!(
                "contact {contact} belongs to {}",
                entry.owner
            )));
        }
        entry.recording_ref = Some(reference.to_string());
        entry.sequence = sequence;
        Ok(Outcome::Done)
    }

    /// The new entry of an `opened` report (checked: new, within the cap, and for an
    /// overflowed-in contact a committed claim to `site`).
    fn opened_entry(
        &self,
        site: &str,
        contact: u64,
        (caller, skill): (&str, &str),
        arrived_at_ms: TimestampMs,
        moved_from: Option<u64>,
    ) -> Result<LedgerEntry, ApplyError> {
        if self.ledger.contains_key(&contact) {
            return Err(ApplyError::Conflict(format!(
                "contact {contact} is in the ledger already"
            )));
        }
        if self.ledger_open_count() >= LEDGER_OPEN_MAX {
            return Err(ApplyError::Conflict(format!(
                "the ledger holds {LEDGER_OPEN_MAX} open contacts"
            )));
        }
        let mut entry = LedgerEntry {
            contact,
            owner: site.to_string(),
            caller: caller.to_string(),
            skill: skill.to_string(),
            arrived_at_ms,
            arrived_at_site: site.to_string(),
            stage: LedgerStage::Queued,
            hops: 0,
            moved_from,
            updated_at_ms: arrived_at_ms,
            sequence: 0,
            agent: None,
            recording_ref: None,
        };
        if let Some(previous) = moved_from {
            let from = self
                .ledger
                .get(&previous)
                .ok_or_else(|| ApplyError::not_found("ledger contact", previous))?;
            if !matches!(&from.stage, LedgerStage::Overflowed { to, claimed: true } if to == site) {
                return Err(ApplyError::Conflict(format!(
                    "contact {previous} has no committed claim to {site}"
                )));
            }
            // The ledger's own history, not the gateway's word.
            entry.arrived_at_ms = from.arrived_at_ms;
            entry.arrived_at_site.clone_from(&from.arrived_at_site);
            entry.hops = from.hops.saturating_add(1);
        }
        Ok(entry)
    }

    /// `to` claims `contact`, released for overflow by its owner `from`: the first claim wins.
    pub(super) fn claim_overflow(
        &mut self,
        at_ms: TimestampMs,
        claimer: &str,
        contact: u64,
        from: &str,
    ) -> Response {
        let entry = self
            .ledger
            .get(&contact)
            .ok_or_else(|| ApplyError::not_found("ledger contact", contact))?;
        if entry.owner != from {
            return Err(ApplyError::Conflict(format!(
                "contact {contact} belongs to {}, not {from}",
                entry.owner
            )));
        }
        if claimer == from {
            return Err(ApplyError::Conflict(
                "a site cannot claim its own contact".to_string(),
            ));
        }
        match &entry.stage {
            LedgerStage::Overflowed { claimed: false, .. } => {}
            LedgerStage::Overflowed { to, claimed: true } => {
                return Err(ApplyError::Conflict(format!(
                    "contact {contact} was claimed by {to} already"
                )));
            }
            LedgerStage::Queued => {
                return Err(ApplyError::Conflict(format!(
                    "contact {contact} is not released for overflow (yet)"
                )));
            }
            _ => {
                return Err(ApplyError::Conflict(format!(
                    "contact {contact} is no longer waiting"
                )));
            }
        }
        let hops = entry.hops.saturating_add(1);
        if hops > OVERFLOW_HOPS_MAX {
            return Err(ApplyError::Conflict(format!(
                "contact {contact} moved {} times: the cap is {OVERFLOW_HOPS_MAX}",
                entry.hops
            )));
        }
        let mut entry = entry.clone();
        entry.stage = LedgerStage::Overflowed {
            to: claimer.to_string(),
            claimed: true,
        };
        entry.updated_at_ms = at_ms;
        let outcome = Outcome::OverflowClaimed {
            hops,
            arrived_at_ms: entry.arrived_at_ms,
            arrived_at_site: entry.arrived_at_site.clone(),
        };
        self.store_ledger_entry(entry);
        self.overflow_counts
            .entry(from.to_string())
            .or_default()
            .out += 1;
        self.overflow_counts
            .entry(claimer.to_string())
            .or_default()
            .into += 1;
        Ok(outcome)
    }

    /// Stores `entry`, keeping the per-site open index and the retention schedule.
    pub(super) fn store_ledger_entry(&mut self, entry: LedgerEntry) {
        let contact = entry.contact;
        if entry.stage.is_closed() {
            if let Some(open) = self.ledger_open_by_site.get_mut(&entry.owner) {
                open.remove(&contact);
                if open.is_empty() {
                    self.ledger_open_by_site.remove(&entry.owner);
                }
            }
            self.retention.insert((
                entry
                    .updated_at_ms
                    .saturating_add(LEDGER_ENDED_RETENTION_MS),
                RecordKind::LedgerEntry,
                contact,
            ));
        } else {
            self.ledger_open_by_site
                .entry(entry.owner.clone())
                .or_default()
                .insert(contact);
        }
        self.ledger.insert(contact, entry);
    }

    /// Drops a closed entry whose retention ended (an open one is never dropped).
    pub(super) fn drop_ledger_entry(&mut self, contact: u64) {
        if self
            .ledger
            .get(&contact)
            .is_some_and(|entry| entry.stage.is_closed())
        {
            self.ledger.remove(&contact);
        }
    }

    /// A contact's ledger entry.
    pub fn ledger_entry(&self, contact: u64) -> Option<&LedgerEntry> {
        self.ledger.get(&contact)
    }

    /// `site`'s open entries, oldest id first, at most `limit`.
    pub fn ledger_open(&self, site: &str, limit: usize) -> Vec<&LedgerEntry> {
        self.ledger_open_by_site
            .get(site)
            .map(|open| {
                open.iter()
                    .filter_map(|contact| self.ledger.get(contact))
                    .take(limit)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every entry held (open, and closed within retention), by contact id.
    pub fn ledger_entries(&self) -> impl Iterator<Item = &LedgerEntry> {
        self.ledger.values()
    }

    /// Open entries in the whole ledger.
    pub fn ledger_open_count(&self) -> usize {
        self.ledger_open_by_site.values().map(BTreeSet::len).sum()
    }

    /// Entries held (open and closed within retention).
    pub fn ledger_len(&self) -> usize {
        self.ledger.len()
    }

    /// Overflow moves of `site`, from committed claims.
    pub fn overflow_counts(&self, site: &str) -> OverflowCounts {
        self.overflow_counts.get(site).copied().unwrap_or_default()
    }

    /// Overflow moves of every site that took part in one.
    pub fn overflow_counts_all(&self) -> impl Iterator<Item = (&String, &OverflowCounts)> {
        self.overflow_counts.iter()
    }
}
