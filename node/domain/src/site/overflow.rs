//! Overflow and outage: sending contacts to other sites by rule or when this site is down,
//! and the summaries other sites read.

use super::*;

impl Site {
    /// See [`Site::poll_overflow`].
    pub(super) fn overflow_pass(
        &mut self,
        now: TimeMs,
        peers: &[SiteSummary],
        out: &mut Vec<Effect>,
    ) {
        if !self.overflow.enabled || !self.up {
            return;
        }
        for skill_index in 0..self.skills.len() {
            let skill = SkillId(skill_index as u16);
            if self.skills[skill_index].queue.waiting == 0 {
                // Measured wait 0: below any positive off-threshold, never above on.
                if self.overflow.threshold_off_ms > 0 {
                    self.skills[skill_index].overflowing = false;
                }
                continue;
            }
            let measured = self.measured_wait_ms(now, skill);
            let state = &mut self.skills[skill_index];
            if !state.overflowing && measured > self.overflow.threshold_on_ms {
                state.overflowing = true;
            } else if state.overflowing && measured < self.overflow.threshold_off_ms {
                state.overflowing = false;
            }
            if !state.overflowing || state.queue.waiting == 0 {
                continue;
            }
            self.scratch_sent.clear();
            self.scratch_sent.resize(peers.len(), 0);
            while let Some(head) = self.queue_head(skill) {
                let slot = head.slot;
                if self.contacts[slot as usize].contact.overflow_count >= OVERFLOW_HOPS_MAX {
                    break;
                }
                if !self.share_window.allows_one_more(now) {
                    break;
                }
                let Some(peer) = choose_rule_target(self.id, skill, peers, &self.scratch_sent)
                else {
                    break;
                };
                self.scratch_sent[peer] += 1;
                self.share_window.record_sent_out(now);
                self.send_away(now, slot, peers[peer].site, OverflowReason::Rule, out);
            }
        }
    }

    /// The earliest time at which the oldest-wait trigger could start overflowing a queue
    /// that is not overflowing yet; `None` if no queue could (nothing waits, or the rule is
    /// off, or the trigger is the predicted wait). The predicted wait does not grow with the
    /// clock, only with arrivals and agent states, so a driver polls on arrivals instead;
    /// a deadline for it would lie in the past as soon as the head waited `threshold_on_ms`
    /// and make a driver re-poll at every tick.
    pub fn overflow_deadline(&mut self) -> Option<TimeMs> {
        if !self.overflow.enabled
            || !self.up
            || self.overflow.trigger != OverflowTrigger::OldestWait
        {
            return None;
        }
        let mut deadline: Option<TimeMs> = None;
        for skill_index in 0..self.skills.len() {
            let state = &self.skills[skill_index];
            // An empty queue has no head (skip the lazy heap's clean-up walk; it runs later).
            if state.overflowing || state.queue.waiting == 0 {
                continue;
            }
            if let Some(head) = self.queue_head(SkillId(skill_index as u16)) {
                let entered = self.contacts[head.slot as usize].entered_queue_at;
                let at = entered.plus_ms(self.overflow.threshold_on_ms.saturating_add(1));
                deadline = Some(deadline.map_or(at, |current| current.min(at)));
            }
        }
        deadline
    }

    /// See [`Site::handle_site_down`].
    pub(super) fn site_down(&mut self, now: TimeMs, peers: &[SiteSummary], out: &mut Vec<Effect>) {
        self.up = false;
        self.outage_peers.clear();
        self.outage_peers.extend_from_slice(peers);
        for index in 0..self.agents.len() as u32 {
            let before = self.contribution(index);
            self.withdraw_offers(now, index, out);
            self.refresh_agent(now, index, before, out);
        }
        for skill_index in 0..self.skills.len() {
            let skill = SkillId(skill_index as u16);
            while let Some(head) = self.queue_head(skill) {
                let Some(target) = self.take_outage_target(skill) else {
                    break;
                };
                self.send_away(now, head.slot, target, OverflowReason::Outage, out);
            }
        }
    }

    /// The outage target for one more contact of `skill`, booked against the peer's summary.
    pub(super) fn take_outage_target(&mut self, skill: SkillId) -> Option<SiteId> {
        let target = choose_outage_target(self.id, skill, &self.outage_peers)?;
        if let Some(peer) = self
            .outage_peers
            .iter_mut()
            .find(|peer| peer.site == target)
        {
            if let Some(cell) = peer.skills.get_mut(skill.index()) {
                if cell.idle_agents > 0 {
                    cell.idle_agents -= 1;
                } else {
                    cell.waiting = cell.waiting.saturating_add(1);
                }
            }
        }
        Some(target)
    }

    /// See [`Site::handle_site_up`].
    pub(super) fn site_up(&mut self, now: TimeMs, out: &mut Vec<Effect>) {
        if self.up {
            return;
        }
        self.up = true;
        for index in 0..self.agents.len() as u32 {
            let before = self.contribution(index);
            self.refresh_agent(now, index, before, out);
            self.dispatch_agent(now, index, out);
        }
    }

    /// Writes this site's availability into `summary` (reusing its allocation).
    pub fn fill_summary(&mut self, now: TimeMs, summary: &mut SiteSummary) {
        let mut scratch = std::mem::take(&mut self.scratch_effects);
        self.advance(now, &mut scratch);
        // Expiring a grant never changes an agent's shown state, so nothing is lost here.
        debug_assert!(scratch.is_empty());
        scratch.clear();
        self.scratch_effects = scratch;
        summary.site = self.id;
        summary.up = self.up;
        summary.at = now;
        summary.skills.clear();
        for skill_index in 0..self.skills.len() {
            let skill = SkillId(skill_index as u16);
            let oldest_wait_ms = if self.skills[skill_index].queue.waiting == 0 {
                0
            } else {
                self.queue_head(skill).map_or(0, |head| {
                    now.since(self.contacts[head.slot as usize].entered_queue_at)
                })
            };
            let state = &self.skills[skill_index];
            let (idle_agents, serving_agents) = if self.up {
                (state.idle_agents, state.serving_agents)
            } else {
                (0, 0)
            };
            summary.skills.push(SkillSummary {
                idle_agents,
                serving_agents,
                waiting: state.queue.waiting,
                oldest_wait_ms,
                estimated_wait_ms: self.estimate_wait_ms(skill, state.queue.waiting + 1),
            });
        }
    }

    /// Writes into `summary` only what other sites' routing decisions read from it: `up` and,
    /// per skill, idle agents, serving agents and waiting contacts; `oldest_wait_ms` and
    /// `estimated_wait_ms` are left 0. [`Site::poll_overflow`] and [`Site::handle_site_down`]
    /// decide exactly as with [`Site::fill_summary`], at a fraction of its cost (no queue
    /// heads, no division) — for drivers that refresh summaries often and show them to nobody,
    /// like the simulator. Reuses the allocation.
    pub fn fill_routing_summary(&mut self, now: TimeMs, summary: &mut SiteSummary) {
        let mut scratch = std::mem::take(&mut self.scratch_effects);
        self.advance(now, &mut scratch);
        // Expiring a grant never changes an agent's shown state, so nothing is lost here.
        debug_assert!(scratch.is_empty());
        scratch.clear();
        self.scratch_effects = scratch;
        summary.site = self.id;
        summary.up = self.up;
        summary.at = now;
        summary
            .skills
            .resize(self.skills.len(), SkillSummary::default());
        for (state, cell) in self.skills.iter().zip(summary.skills.iter_mut()) {
            let (idle_agents, serving_agents) = if self.up {
                (state.idle_agents, state.serving_agents)
            } else {
                (0, 0)
            };
            *cell = SkillSummary {
                idle_agents,
                serving_agents,
                waiting: state.queue.waiting,
                oldest_wait_ms: 0,
                estimated_wait_ms: 0,
            };
        }
    }

    /// A fresh summary (allocates; prefer [`Site::fill_summary`] in loops).
    pub fn summary(&mut self, now: TimeMs) -> SiteSummary {
        let mut summary = SiteSummary::default();
        self.fill_summary(now, &mut summary);
        summary
    }

    /// Whether a new contact gets a busy tone: the site is down with nowhere to send it, or
    /// the waiting limit is reached and no agent could take it at once.
    pub(super) fn blocks(&mut self, contact: &Contact) -> bool {
        if !self.up {
            return choose_outage_target(self.id, contact.skill, &self.outage_peers).is_none();
        }
        if self.waiting_total < self.config.waiting_max {
            return false;
        }
        let agents = &self.agents;
        let skill = contact.skill;
        let state = &mut self.skills[skill.index()];
        let channel = state.channel;
        state
            .idle
            .peek_live(|entry| idle_entry_live(agents, entry, skill, channel))
            .is_none()
    }

    pub(super) fn measured_wait_ms(&mut self, now: TimeMs, skill: SkillId) -> u64 {
        match self.overflow.trigger {
            OverflowTrigger::OldestWait => self.queue_head(skill).map_or(0, |head| {
                now.since(self.contacts[head.slot as usize].entered_queue_at)
            }),
            OverflowTrigger::PredictedWait => {
                let waiting = self.skills[skill.index()].queue.waiting;
                if waiting == 0 {
                    0
                } else {
                    self.estimate_wait_ms(skill, waiting + 1)
                }
            }
        }
    }

    /// Sends a queued contact to another site.
    pub(super) fn send_away(
        &mut self,
        now: TimeMs,
        slot: u32,
        target: SiteId,
        reason: OverflowReason,
        out: &mut Vec<Effect>,
    ) {
        self.leave_queue(slot);
        let entry = self.contacts[slot as usize];
        self.emit(
            now,
            EventKind::OverflowOut {
                contact: entry.contact.id,
                skill: entry.contact.skill,
                target,
                reason,
                wait_ms: now.since(entry.entered_queue_at),
                entered_queue_at: entry.entered_queue_at,
                entered_site_at: entry.entered_site_at,
                answered_before: entry.answered_before,
            },
            out,
        );
        let mut moved = entry.contact;
        moved.overflow_count = moved.overflow_count.saturating_add(1);
        out.push(Effect::Overflow {
            contact: moved,
            target,
        });
        self.free_contact(slot);
    }
}
