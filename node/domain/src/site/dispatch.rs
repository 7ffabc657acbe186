//! Dispatch: queues and idle-agent heaps, offering a contact to an agent or queueing it, and
//! freeing an agent's slot.

use super::*;

impl Site {
    /// Takes the longest-idle agent that can take a contact of `skill` now.
    pub(super) fn take_idle_agent(&mut self, skill: SkillId) -> Option<u32> {
        let agents = &self.agents;
        let state = &mut self.skills[skill.index()];
        let channel = state.channel;
        let top = state
            .idle
            .peek_live(|entry| idle_entry_live(agents, entry, skill, channel))?;
        state.idle.pop();
        Some(top.index)
    }

    pub(super) fn is_queued_live(&self, entry: &QueueEntry) -> bool {
        let contact = &self.contacts[entry.slot as usize];
        contact.live
            && contact.generation == entry.generation
            && contact.phase == InternalPhase::Queued
    }

    pub(super) fn queue_key(&self, slot: u32) -> QueueEntry {
        let entry = &self.contacts[slot as usize];
        QueueEntry {
            priority: entry.contact.priority.0,
            ordering_time_ms: entry.contact.ordering_time.0,
            sequence: entry.sequence,
            slot,
            generation: entry.generation,
        }
    }

    pub(super) fn queue_head(&mut self, skill: SkillId) -> Option<QueueEntry> {
        let contacts = &self.contacts;
        self.skills[skill.index()].queue.heap.peek_live(|entry| {
            let contact = &contacts[entry.slot as usize];
            contact.live
                && contact.generation == entry.generation
                && contact.phase == InternalPhase::Queued
        })
    }

    /// Admits a contact that is new to this site (arrival or overflow-in).
    pub(super) fn admit(
        &mut self,
        now: TimeMs,
        contact: Contact,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        // A contact new to this site has not been answered here, whatever happened elsewhere.
        let answered_before = false;
        if !self.up {
            match self.take_outage_target(contact.skill) {
                Some(target) => {
                    let mut moved = contact;
                    moved.overflow_count = moved.overflow_count.saturating_add(1);
                    // A zero-length stay in the queue keeps the event stream's rule that
                    // every OverflowOut leaves a queue (metrics track lengths from it).
                    let waiting = self.skills[contact.skill.index()].queue.waiting + 1;
                    self.emit(
                        now,
                        EventKind::Queued {
                            contact: contact.id,
                            skill: contact.skill,
                            waiting,
                        },
                        out,
                    );
                    self.emit(
                        now,
                        EventKind::OverflowOut {
                            contact: contact.id,
                            skill: contact.skill,
                            target,
                            reason: OverflowReason::Outage,
                            wait_ms: 0,
                            entered_queue_at: now,
                            entered_site_at: now,
                            answered_before,
                        },
                        out,
                    );
                    out.push(Effect::Overflow {
                        contact: moved,
                        target,
                    });
                }
                None => self.emit(
                    now,
                    EventKind::Blocked {
                        contact: contact.id,
                        skill: contact.skill,
                    },
                    out,
                ),
            }
            return Ok(());
        }
        let entry = ContactEntry {
            contact,
            live: true,
            phase: InternalPhase::Queued,
            generation: 0,
            sequence: self.next_sequence,
            entered_queue_at: now,
            entered_site_at: now,
            offered_at: now,
            answered_at: now,
            hold_since: None,
            hold_ms: 0,
            answered_before,
        };
        self.next_sequence += 1;
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                let generation = self.contacts[slot as usize].generation.wrapping_add(1);
                self.contacts[slot as usize] = ContactEntry {
                    generation,
                    ..entry
                };
                slot
            }
            None => {
                let slot = self.contacts.len() as u32;
                self.contacts.push(entry);
                slot
            }
        };
        self.contact_index.insert(contact.id, slot);
        self.route_or_queue(now, slot, out);
        Ok(())
    }

    /// Offers the contact in `slot` to the longest-idle qualified agent, or queues it.
    pub(super) fn route_or_queue(&mut self, now: TimeMs, slot: u32, out: &mut Vec<Effect>) {
        let skill = self.contacts[slot as usize].contact.skill;
        if self.up {
            if let Some(index) = self.take_idle_agent(skill) {
                self.offer(now, slot, index, false, out);
                return;
            }
        }
        self.enqueue(now, slot, out);
    }

    pub(super) fn enqueue(&mut self, now: TimeMs, slot: u32, out: &mut Vec<Effect>) {
        let entry = &mut self.contacts[slot as usize];
        entry.phase = InternalPhase::Queued;
        entry.generation = entry.generation.wrapping_add(1);
        let contact = entry.contact;
        let key = self.queue_key(slot);
        let queue = &mut self.skills[contact.skill.index()].queue;
        queue.heap.push(key);
        queue.waiting += 1;
        let waiting = queue.waiting;
        self.waiting_total += 1;
        let contacts = &self.contacts;
        self.skills[contact.skill.index()]
            .queue
            .heap
            .compact_if_needed(waiting as usize, |entry| {
                let contact = &contacts[entry.slot as usize];
                contact.live
                    && contact.generation == entry.generation
                    && contact.phase == InternalPhase::Queued
            });
        self.emit(
            now,
            EventKind::Queued {
                contact: contact.id,
                skill: contact.skill,
                waiting,
            },
            out,
        );
    }

    /// Removes a queued contact from its queue's counters (its heap entry goes stale).
    pub(super) fn leave_queue(&mut self, slot: u32) {
        let entry = &mut self.contacts[slot as usize];
        debug_assert_eq!(entry.phase, InternalPhase::Queued);
        entry.generation = entry.generation.wrapping_add(1);
        self.skills[entry.contact.skill.index()].queue.waiting -= 1;
        self.waiting_total -= 1;
    }

    pub(super) fn offer(
        &mut self,
        now: TimeMs,
        slot: u32,
        index: u32,
        dequeued: bool,
        out: &mut Vec<Effect>,
    ) {
        let before = self.contribution(index);
        let contact = self.contacts[slot as usize].contact;
        let agent = &mut self.agents[index as usize];
        // The slot bound and the certificate rule are the two promises routing makes to
        // agents; a violation here is a routing bug, not bad input.
        assert!(
            agent.has_room_for(contact.channel),
            "routing bug: agent has no room"
        );
        assert!(
            agent.skills.contains(contact.skill),
            "routing bug: agent lacks a valid grant"
        );
        let position = usize::from(agent.item_count);
        agent.items[position] = Item {
            contact: contact.id,
            skill: contact.skill,
            channel: contact.channel,
            phase: ItemPhase::Offered,
            since: now,
            handled_ms: 0,
        };
        agent.item_count += 1;
        let agent_id = agent.id;
        let entry = &mut self.contacts[slot as usize];
        entry.phase = InternalPhase::Offered(index);
        entry.offered_at = now;
        self.emit(
            now,
            EventKind::Offered {
                contact: contact.id,
                agent: agent_id,
                skill: contact.skill,
                dequeued,
            },
            out,
        );
        out.push(Effect::Offer {
            contact: contact.id,
            agent: agent_id,
            timeout_at: now.plus_ms(self.config.offer_timeout_ms),
        });
        self.refresh_agent(now, index, before, out);
    }

    /// Gives a freed agent work: the best head among the queues of its skills it has room
    /// for, repeatedly while it has room (chat slots).
    pub(super) fn dispatch_agent(&mut self, now: TimeMs, index: u32, out: &mut Vec<Effect>) {
        if !self.up {
            return;
        }
        loop {
            let agent = &self.agents[index as usize];
            if !matches!(agent.presence, Presence::Ready) {
                return;
            }
            let skills = agent.skills;
            let mut best: Option<QueueEntry> = None;
            for skill in skills.iter() {
                if !self.agents[index as usize].has_room_for(self.skills[skill.index()].channel)
                    || self.skills[skill.index()].queue.waiting == 0
                {
                    continue;
                }
                if let Some(head) = self.queue_head(skill) {
                    if best.is_none_or(|current| head.serves_before(&current)) {
                        best = Some(head);
                    }
                }
            }
            let Some(head) = best else {
                return;
            };
            self.leave_queue(head.slot);
            self.offer(now, head.slot, index, true, out);
        }
    }

    /// Offers waiting contacts of `skill` to idle agents while both exist.
    pub(super) fn dispatch_skill(&mut self, now: TimeMs, skill: SkillId, out: &mut Vec<Effect>) {
        if !self.up {
            return;
        }
        while self.skills[skill.index()].queue.waiting > 0 {
            let Some(index) = self.take_idle_agent(skill) else {
                return;
            };
            // The agent may prefer another skill's head; dispatching the agent applies the
            // cross-skill rule rather than favouring this skill.
            self.dispatch_agent(now, index, out);
        }
    }

    /// Withdraws an offer (reject, timeout): contact back to its old place, agent not ready.
    pub(super) fn return_offer(
        &mut self,
        now: TimeMs,
        slot: u32,
        index: u32,
        reason: NotReadyReason,
        timed_out: bool,
        out: &mut Vec<Effect>,
    ) {
        let before = self.contribution(index);
        let contact = self.contacts[slot as usize].contact;
        let agent = &mut self.agents[index as usize];
        if let Some(position) = agent.find_item(contact.id, ItemPhase::Offered) {
            agent.remove_item(position);
        }
        if matches!(agent.presence, Presence::Ready) {
            agent.presence = Presence::NotReady(reason);
        }
        let agent_id = agent.id;
        let kind = if timed_out {
            EventKind::OfferTimedOut {
                contact: contact.id,
                agent: agent_id,
                skill: contact.skill,
            }
        } else {
            EventKind::OfferRejected {
                contact: contact.id,
                agent: agent_id,
                skill: contact.skill,
            }
        };
        self.emit(now, kind, out);
        self.refresh_agent(now, index, before, out);
        // Same priority, ordering time and sequence: the contact regains its old place.
        self.enqueue(now, slot, out);
        self.dispatch_skill(now, contact.skill, out);
        self.dispatch_agent(now, index, out);
    }

    /// Withdraws every ringing offer of an agent (logout, outage); contacts are requeued.
    pub(super) fn withdraw_offers(&mut self, now: TimeMs, index: u32, out: &mut Vec<Effect>) {
        loop {
            let agent = &mut self.agents[index as usize];
            let Some(position) = agent
                .items()
                .iter()
                .position(|item| item.phase == ItemPhase::Offered)
            else {
                return;
            };
            let item = agent.remove_item(position);
            let agent_id = agent.id;
            out.push(Effect::CancelOffer {
                contact: item.contact,
                agent: agent_id,
            });
            if let Some(&slot) = self.contact_index.get(&item.contact) {
                self.enqueue(now, slot, out);
                self.dispatch_skill(now, item.skill, out);
            }
        }
    }

    /// Ends the talking leg of the contact in `slot` with agent `index`: Ended event, the
    /// agent's item moves to wrap-up.
    pub(super) fn finish_talk(
        &mut self,
        now: TimeMs,
        slot: u32,
        index: u32,
        out: &mut Vec<Effect>,
    ) {
        let before = self.contribution(index);
        let entry = &mut self.contacts[slot as usize];
        if let Some(since) = entry.hold_since.take() {
            entry.hold_ms += now.since(since);
        }
        let total_ms = now.since(entry.answered_at);
        let hold_ms = entry.hold_ms.min(total_ms);
        let talk_ms = total_ms - hold_ms;
        let contact = entry.contact;
        let agent = &mut self.agents[index as usize];
        if let Some(position) = agent.find_item(contact.id, ItemPhase::Talking) {
            let item = &mut agent.items[position];
            item.phase = ItemPhase::WrapUp;
            item.since = now;
            item.handled_ms = u32::try_from(total_ms).unwrap_or(u32::MAX);
            if let Some(max_ms) = self.config.wrap_up_max_ms {
                self.wrap_up_deadlines.push(Reverse((
                    now.0.saturating_add(max_ms),
                    index,
                    contact.id.0,
                )));
            }
        }
        let agent_id = agent.id;
        self.emit(
            now,
            EventKind::Ended {
                contact: contact.id,
                agent: agent_id,
                skill: contact.skill,
                talk_ms,
                hold_ms,
            },
            out,
        );
        self.refresh_agent(now, index, before, out);
    }

    pub(super) fn free_contact(&mut self, slot: u32) {
        let entry = &mut self.contacts[slot as usize];
        entry.live = false;
        entry.generation = entry.generation.wrapping_add(1);
        self.contact_index.remove(&entry.contact.id);
        self.free_slots.push(slot);
    }

    pub(super) fn record_handle_time(&mut self, skill: SkillId, handle_ms: u64) {
        let smoothing = u64::from(self.config.handle_time_smoothing);
        let state = &mut self.skills[skill.index()];
        // Integer moving average: deterministic on every machine.
        let average = state.handle_ms_average;
        state.handle_ms_average = if handle_ms >= average {
            average + (handle_ms - average) / smoothing
        } else {
            average - (average - handle_ms) / smoothing
        };
    }
}
