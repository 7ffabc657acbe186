//! The contact ledger, the Site's part: the domain's events, turned into coarse ledger
//! updates and handed to the durable outbox (batched there, never awaited here), and the
//! overflowed-in contacts this Site took (one arrival per committed claim).

use std::collections::{HashMap, HashSet};

use callgrid_domain::{ContactId, Direction, EventKind, TimeMs};

use super::SiteActor;
use super::messages::SiteResult;
use super::views::{Accepted, SiteReply};
use crate::state::ledger::{LedgerChange, LedgerStage, LedgerUpdate};
use crate::state::site_writes::SiteWrite;

/// Overflowed-in contacts remembered (source contact → local contact) to refuse a second
/// presentation of the same claim; the oldest are forgotten first (the ledger still refuses
/// a second `opened`).
pub const OVERFLOWED_IN_REMEMBERED_MAX: usize = 10_000;
/// Contacts whose ledger entry this Site closed, remembered (oldest forgotten first) so a
/// recording reference the gateway gives at or after the end still reaches the entry while
/// the entry's opening may not have committed yet. About two hours of the 17k day's peak.
pub const LEDGER_CLOSED_REMEMBERED_MAX: usize = 4_096;

/// Which contacts the ledger follows here.
#[derive(Debug, Default)]
pub(super) struct LedgerGlue {
    /// Contacts with an open ledger entry written from here.
    open: HashSet<ContactId>,
    /// Source contact of each overflowed-in contact taken here → the local contact.
    overflowed_in: HashMap<u64, ContactId>,
    /// Insertion order of `overflowed_in`, to bound it.
    overflowed_in_order: std::collections::VecDeque<u64>,
    /// An adoption of a lost site is being proposed (at most one at a time).
    pub(super) adopting: bool,
    /// Contacts whose entry was closed from here, newest last (bounded).
    closed: std::collections::VecDeque<ContactId>,
}

impl SiteActor {
    /// The local contact already taken for the overflowed contact `source`, if any.
    pub(super) fn overflowed_in_already(&self, source: u64) -> Option<ContactId> {
        self.ledger.overflowed_in.get(&source).copied()
    }

    /// Remembers that `local` is the overflowed contact `source`.
    pub(super) fn remember_overflowed_in(&mut self, source: u64, local: ContactId) {
        if self.ledger.overflowed_in.insert(source, local).is_none() {
            self.ledger.overflowed_in_order.push_back(source);
        }
        while self.ledger.overflowed_in_order.len() > OVERFLOWED_IN_REMEMBERED_MAX {
            if let Some(old) = self.ledger.overflowed_in_order.pop_front() {
                self.ledger.overflowed_in.remove(&old);
            }
        }
    }

    /// The ledger's part of a domain event: an update for the outbox, for inbound contacts.
    pub(super) fn note_for_ledger(&mut self, kind: &EventKind, at: TimeMs) {
        let Some((contact, change)) = self.ledger_change(kind) else {
            return;
        };
        let opening = matches!(change, LedgerChange::Opened { .. });
        if !opening && !self.ledger.open.contains(&contact) {
            return;
        }
        let closes = matches!(&change, LedgerChange::Stage(stage) if stage.is_closed())
            || matches!(change, LedgerChange::Stage(LedgerStage::Overflowed { .. }));
        if opening {
            self.ledger.open.insert(contact);
        } else if closes {
            self.ledger.open.remove(&contact);
            self.ledger.closed.push_back(contact);
            if self.ledger.closed.len() > LEDGER_CLOSED_REMEMBERED_MAX {
                self.ledger.closed.pop_front();
            }
        }
        self.write_through_outbox(SiteWrite::Ledger(LedgerUpdate {
            contact: contact.0,
            at_ms: self.epoch_ms.saturating_add(at.0),
            change,
        }));
    }

    /// The gateway's recording reference of `contact`, for its ledger entry: written through
    /// the outbox when the ledger follows the contact (an inbound contact of this site, open
    /// or recently closed here, or known to the replicated ledger as this site's); otherwise
    /// (an outbound
    /// callback, which has no entry) it is dropped.
    pub(super) fn contact_recording(
        &mut self,
        contact: ContactId,
        reference: String,
    ) -> SiteResult {
        let site = &self.config.site.id;
        let followed = self.ledger.open.contains(&contact)
            || self.ledger.closed.contains(&contact)
            || self.shared.read(|state| {
                state
                    .ledger_entry(contact.0)
                    .is_some_and(|entry| entry.owner == *site)
            });
        if followed {
            self.write_through_outbox(SiteWrite::Ledger(LedgerUpdate {
                contact: contact.0,
                at_ms: crate::clock::now_ms(),
                change: LedgerChange::Recording { reference },
            }));
        } else {
            tracing::debug!(%contact, "recording reference of a contact the ledger does not follow");
        }
        Ok(SiteReply::Accepted(Accepted { accepted: true }))
    }

    fn ledger_change(&self, kind: &EventKind) -> Option<(ContactId, LedgerChange)> {
        let stage = |contact, stage| Some((contact, LedgerChange::Stage(stage)));
        match *kind {
            EventKind::Arrived {
                contact,
                skill,
                direction: Direction::Inbound,
                ..
            } => {
                let record = self.live.contacts.get(&contact)?;
                Some((
                    contact,
                    LedgerChange::Opened {
                        caller: record.caller.clone(),
                        skill: self.skill_name(skill),
                        arrived_at_ms: record.arrived_at_ms,
                        moved_from: None,
                    },
                ))
            }
            EventKind::OverflowIn { contact, skill, .. } => {
                let record = self.live.contacts.get(&contact)?;
                let from = record.overflowed_from.as_ref()?;
                Some((
                    contact,
                    LedgerChange::Opened {
                        caller: record.caller.clone(),
                        skill: self.skill_name(skill),
                        arrived_at_ms: from.arrived_at_ms,
                        moved_from: Some(from.contact),
                    },
                ))
            }
            EventKind::Answered { contact, agent, .. } => {
                let login = self.roster.logins.get(&agent)?.clone();
                stage(contact, LedgerStage::Answered { agent: login })
            }
            EventKind::TransferredOut {
                contact, to_skill, ..
            } => Some((
                contact,
                LedgerChange::Requeued {
                    skill: self.skill_name(to_skill),
                },
            )),
            EventKind::Ended { contact, .. } | EventKind::Blocked { contact, .. } => {
                stage(contact, LedgerStage::Ended)
            }
            EventKind::Abandoned { contact, .. } => stage(contact, LedgerStage::Abandoned),
            EventKind::SelfServed { contact, .. } => {
                // A drained site's caller given a callback (see `drain`): its entry ends here.
                let scheduled = self.live.contacts.get(&contact).is_some_and(|record| {
                    record.stage == super::messages::ContactStage::CallbackScheduled
                });
                if scheduled {
                    stage(contact, LedgerStage::Ended)
                } else {
                    stage(contact, LedgerStage::ServedByBot)
                }
            }
            EventKind::OverflowOut {
                contact, target, ..
            } => {
                let to = self
                    .config
                    .peer_site_by_number(target.0)
                    .map_or_else(|| target.0.to_string(), |peer| peer.id.clone());
                stage(contact, LedgerStage::Overflowed { to, claimed: false })
            }
            _ => None,
        }
    }
}
