//! A drained site moves its waiting callers (`callgrid cluster drain SITE`).
//!
//! Once this site sees itself drained in the replicated state (every callback sweep), it
//! withdraws the callbacks it had queued (they are released for a peer, see `callbacks`), and
//! the domain takes the site down with the live, undrained peers' summaries
//! (`Site::handle_site_down`): each waiting caller is overflowed to the peer with the most
//! idle agents of its queue — the same `Effect::Overflow` the overflow rule emits, so the
//! gateway re-presents it there with `overflowed_from` (its original arrival time: it keeps
//! its place) and the peer routes it only on a committed `ClaimOverflow`. A caller no peer can
//! take (no live peer with an idle agent of its queue) gets a callback at its original place
//! (through the outbox, like an abandoned caller's) and leaves with stage
//! `callback_scheduled`: the gateway tells the caller and ends the call. Ringing offers are
//! withdrawn first (the caller is moved like the waiting ones); talks in progress finish here.
//! Undrained, the site is up again and routes as before.

use callgrid_domain::{ContactId, Direction};

use super::SiteActor;
use super::messages::ContactStage;
use crate::actors::overflow as rule;
use crate::replicate::now_ms;
use crate::state::site_writes::SiteWrite;

impl SiteActor {
    /// Applies the replicated drain state to the domain site: see the module.
    pub(super) fn drain_tick(&mut self) {
        let site = self.config.site.id.clone();
        let drained = self.shared.read(|state| state.is_drained(&site));
        if !drained {
            if self.drain_down {
                self.drain_down = false;
                let now = self.now();
                let mut effects = std::mem::take(&mut self.effects);
                self.site.handle_site_up(now, &mut effects);
                self.effects = effects;
                self.process_effects();
                tracing::info!(%site, "undrained: routing here again");
            }
            return;
        }
        self.withdraw_queued_callbacks();
        let wall_ms = now_ms();
        let peers = self.shared.read(|state| {
            rule::peer_summaries(
                &self.config,
                wall_ms,
                &mut self.overflow.arrivals,
                state
                    .site_summaries()
                    .filter(|summary| !state.is_drained(&summary.site)),
            )
        });
        let waiting_before = self.waiting_inbound().len();
        let now = self.now();
        let mut effects = std::mem::take(&mut self.effects);
        // Called again on every sweep: it re-targets with fresh summaries.
        self.site.handle_site_down(now, &peers, &mut effects);
        self.effects = effects;
        self.process_effects();
        if !self.drain_down {
            tracing::info!(%site, waiting = waiting_before, "drained: moving waiting callers to peers");
            self.drain_down = true;
        }
        let stranded = self.waiting_inbound();
        for contact in stranded {
            self.schedule_callback_for(contact);
        }
    }

    /// Inbound contacts waiting here (queued; none ring while the site is down).
    fn waiting_inbound(&self) -> Vec<ContactId> {
        let mut waiting: Vec<ContactId> = self
            .live
            .contacts
            .values()
            .filter(|record| {
                record.direction == Direction::Inbound && record.stage == ContactStage::Queued
            })
            .map(|record| record.id)
            .collect();
        waiting.sort_unstable();
        waiting
    }

    /// Withdraws every queued callback contact (counted as served by the self-service path,
    /// never abandoned); the callback sweep releases their claims for a peer.
    fn withdraw_queued_callbacks(&mut self) {
        let queued: Vec<(u64, ContactId)> = self
            .callbacks
            .queued
            .iter()
            .map(|(callback, contact)| (*callback, *contact))
            .collect();
        for (callback, contact) in queued {
            let waiting = self
                .live
                .contacts
                .get(&contact)
                .is_some_and(|record| record.stage == ContactStage::Queued);
            if !waiting {
                continue;
            }
            match self.self_served(contact) {
                Ok(_) => {
                    self.callbacks.queued.remove(&callback);
                }
                Err(error) => {
                    tracing::warn!(%error, callback, "drained: callback contact not withdrawn");
                }
            }
        }
    }

    /// A waiting caller no peer can take: a callback at its original place, and the call
    /// leaves with stage `callback_scheduled`.
    fn schedule_callback_for(&mut self, contact: ContactId) {
        let Some(ordering) = self
            .site
            .contact_info(contact)
            .map(|info| info.ordering_time)
        else {
            return;
        };
        let Some((caller, skill)) = self
            .live
            .contacts
            .get(&contact)
            .map(|record| (record.caller.clone(), record.skill))
        else {
            return;
        };
        let write = SiteWrite::AbandonedCallback {
            caller,
            skill: self.skill_name(skill),
            ordering_time_ms: self.epoch_ms.saturating_add(ordering.0),
        };
        if let Some(record) = self.live.contacts.get_mut(&contact) {
            // Marked first: the domain's self-served event keeps this stage (and the ledger
            // closes the entry as ended), see `effects` and `ledger`.
            record.stage = ContactStage::CallbackScheduled;
        }
        let now = self.now();
        let mut effects = std::mem::take(&mut self.effects);
        let withdrawn = self.site.handle_self_served(now, contact, &mut effects);
        self.effects = effects;
        if !withdrawn {
            self.effects.clear();
            if let Some(record) = self.live.contacts.get_mut(&contact) {
                record.stage = ContactStage::Queued;
            }
            return;
        }
        self.write_through_outbox(write);
        self.process_effects();
        tracing::info!(
            contact = contact.0,
            "drained: no peer can take the caller; callback at its place"
        );
        let _ = self.finish(contact);
    }
}
