//! Contacts: arrival, overflow in, offers accepted, rejected or timed out, abandonment, hold,
//! end, wrap-up and transfer.

use super::*;

impl Site {
    /// See [`Site::handle_arrival`].
    pub(super) fn arrival(
        &mut self,
        now: TimeMs,
        contact: Contact,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let arrived = EventKind::Arrived {
            contact: contact.id,
            skill: contact.skill,
            channel: contact.channel,
            topic: contact.topic,
            direction: contact.direction,
        };
        self.enter(now, contact, arrived, out)
    }

    /// See [`Site::handle_overflow_in`].
    pub(super) fn overflow_in(
        &mut self,
        now: TimeMs,
        contact: Contact,
        from: SiteId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let overflowed_in = EventKind::OverflowIn {
            contact: contact.id,
            skill: contact.skill,
            from,
        };
        self.enter(now, contact, overflowed_in, out)
    }

    /// A contact new to this site (an arrival or an overflow in) enters: validated, blocked if
    /// no agent here could ever serve it, else counted as offered, announced with `entered`
    /// and offered or queued.
    pub(super) fn enter(
        &mut self,
        now: TimeMs,
        contact: Contact,
        entered: EventKind,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        self.check_new_contact(&contact)?;
        self.advance(now, out);
        if self.blocks(&contact) {
            self.emit(
                now,
                EventKind::Blocked {
                    contact: contact.id,
                    skill: contact.skill,
                },
                out,
            );
            return Ok(());
        }
        if self.overflow.enabled {
            self.share_window.record_offered(now);
        }
        self.emit(now, entered, out);
        self.admit(now, contact, out)
    }

    /// See [`Site::handle_accept`].
    pub(super) fn accept(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let slot = self.contact(contact)?;
        let InternalPhase::Offered(index) = self.contacts[slot as usize].phase else {
            return Err(DomainError::ContactState {
                contact,
                operation: "be accepted",
            });
        };
        let before = self.contribution(index);
        let agent = &mut self.agents[index as usize];
        let agent_id = agent.id;
        let Some(position) = agent.find_item(contact, ItemPhase::Offered) else {
            return Err(DomainError::NotAssigned {
                contact,
                agent: agent_id,
            });
        };
        agent.items[position].phase = ItemPhase::Talking;
        agent.items[position].since = now;
        let entry = &mut self.contacts[slot as usize];
        entry.phase = InternalPhase::Talking(index);
        entry.answered_at = now;
        let kind = EventKind::Answered {
            contact,
            agent: agent_id,
            skill: entry.contact.skill,
            wait_ms: now.since(entry.entered_queue_at),
            site_wait_ms: now.since(entry.entered_site_at),
            entered_queue_at: entry.entered_queue_at,
            entered_site_at: entry.entered_site_at,
            answered_before: entry.answered_before,
        };
        entry.answered_before = true;
        self.emit(now, kind, out);
        self.refresh_agent(now, index, before, out);
        Ok(())
    }

    /// See [`Site::handle_reject`].
    pub(super) fn reject(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let slot = self.contact(contact)?;
        let InternalPhase::Offered(index) = self.contacts[slot as usize].phase else {
            return Err(DomainError::ContactState {
                contact,
                operation: "be rejected",
            });
        };
        self.return_offer(now, slot, index, NotReadyReason::REJECTED, false, out);
        Ok(())
    }

    /// See [`Site::handle_offer_timeout`].
    pub(super) fn offer_timeout(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        agent: AgentId,
        out: &mut Vec<Effect>,
    ) -> bool {
        let Some(&slot) = self.contact_index.get(&contact) else {
            return false;
        };
        let Some(&index) = self.agent_index.get(&agent) else {
            return false;
        };
        let entry = &self.contacts[slot as usize];
        if entry.phase != InternalPhase::Offered(index)
            || now < entry.offered_at.plus_ms(self.config.offer_timeout_ms)
        {
            return false;
        }
        self.return_offer(now, slot, index, NotReadyReason::NO_ANSWER, true, out);
        true
    }

    /// See [`Site::handle_abandon`].
    pub(super) fn abandon(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        out: &mut Vec<Effect>,
    ) -> bool {
        self.leave_unanswered(now, contact, false, out)
    }

    /// A waiting or ringing contact leaves unanswered: abandoned (a callback is requested for
    /// an inbound caller) or served by the bot (`self_served`: its own ending, no callback).
    pub(super) fn leave_unanswered(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        self_served: bool,
        out: &mut Vec<Effect>,
    ) -> bool {
        let Some(&slot) = self.contact_index.get(&contact) else {
            return false;
        };
        let entry = self.contacts[slot as usize];
        let in_queue = match entry.phase {
            InternalPhase::Talking(_) => return false,
            InternalPhase::Queued => true,
            InternalPhase::Offered(_) => false,
        };
        self.advance(now, out);
        let skill = entry.contact.skill;
        let mut freed_agent = None;
        match entry.phase {
            InternalPhase::Queued => self.leave_queue(slot),
            InternalPhase::Offered(index) => {
                let before = self.contribution(index);
                let agent = &mut self.agents[index as usize];
                if let Some(position) = agent.find_item(contact, ItemPhase::Offered) {
                    agent.remove_item(position);
                }
                out.push(Effect::CancelOffer {
                    contact,
                    agent: agent.id,
                });
                self.refresh_agent(now, index, before, out);
                freed_agent = Some(index);
            }
            InternalPhase::Talking(_) => {}
        }
        let wait_ms = now.since(entry.entered_queue_at);
        if self_served {
            self.emit(
                now,
                EventKind::SelfServed {
                    contact,
                    skill,
                    wait_ms,
                    in_queue,
                    entered_queue_at: entry.entered_queue_at,
                    entered_site_at: entry.entered_site_at,
                    answered_before: entry.answered_before,
                },
                out,
            );
        } else {
            self.emit_abandoned(now, &entry, in_queue, wait_ms, out);
        }
        self.free_contact(slot);
        if let Some(index) = freed_agent {
            self.dispatch_agent(now, index, out);
        }
        true
    }

    fn emit_abandoned(
        &self,
        now: TimeMs,
        entry: &ContactEntry,
        in_queue: bool,
        wait_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let short = wait_ms < self.config.short_abandon_ms;
        self.emit(
            now,
            EventKind::Abandoned {
                contact: entry.contact.id,
                skill: entry.contact.skill,
                wait_ms,
                short,
                in_queue,
                entered_queue_at: entry.entered_queue_at,
                entered_site_at: entry.entered_site_at,
                answered_before: entry.answered_before,
            },
            out,
        );
        if entry.contact.direction == Direction::Inbound {
            out.push(Effect::RequestCallback(CallbackRequest {
                site: self.id,
                caller: entry.contact.caller,
                skill: entry.contact.skill,
                channel: entry.contact.channel,
                topic: entry.contact.topic,
                ordering_time: entry.contact.ordering_time,
                abandoned_at: now,
                short,
            }));
        }
    }

    /// See [`Site::handle_hold`].
    pub(super) fn hold(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        _out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let slot = self.contact(contact)?;
        let entry = &mut self.contacts[slot as usize];
        if !matches!(entry.phase, InternalPhase::Talking(_)) || entry.hold_since.is_some() {
            return Err(DomainError::ContactState {
                contact,
                operation: "be put on hold",
            });
        }
        entry.hold_since = Some(now);
        Ok(())
    }

    /// See [`Site::handle_resume`].
    pub(super) fn resume(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        _out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let slot = self.contact(contact)?;
        let entry = &mut self.contacts[slot as usize];
        let Some(since) = entry.hold_since.take() else {
            return Err(DomainError::ContactState {
                contact,
                operation: "be resumed",
            });
        };
        entry.hold_ms += now.since(since);
        Ok(())
    }

    /// See [`Site::handle_end`].
    pub(super) fn end(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let slot = self.contact(contact)?;
        let InternalPhase::Talking(index) = self.contacts[slot as usize].phase else {
            return Err(DomainError::ContactState {
                contact,
                operation: "end",
            });
        };
        self.finish_talk(now, slot, index, out);
        self.free_contact(slot);
        Ok(())
    }

    /// See [`Site::handle_wrap_up_end`].
    pub(super) fn wrap_up_end(
        &mut self,
        now: TimeMs,
        agent: AgentId,
        contact: ContactId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let index = self.agent(agent)?;
        let Some(position) = self.agents[index as usize].find_item(contact, ItemPhase::WrapUp)
        else {
            return Err(DomainError::NotAssigned { contact, agent });
        };
        self.end_wrap_up(now, index, position, out);
        Ok(())
    }

    /// Ends the wrap-up item at `position` of agent `index`: the slot is free, the handle time
    /// recorded, and the agent takes the next contact if one waits.
    pub(super) fn end_wrap_up(
        &mut self,
        now: TimeMs,
        index: u32,
        position: usize,
        out: &mut Vec<Effect>,
    ) {
        let before = self.contribution(index);
        let entry = &mut self.agents[index as usize];
        let agent = entry.id;
        let item = entry.remove_item(position);
        entry.idle_since = now;
        let wrap_up_ms = now.since(item.since);
        self.record_handle_time(
            item.skill,
            u64::from(item.handled_ms).saturating_add(wrap_up_ms),
        );
        self.emit(
            now,
            EventKind::WrapUpEnded {
                contact: item.contact,
                agent,
                skill: item.skill,
                wrap_up_ms,
            },
            out,
        );
        self.refresh_agent(now, index, before, out);
        self.dispatch_agent(now, index, out);
    }

    /// Ends the wrap-ups that reached the configured maximum by `now` (stale deadlines, whose
    /// wrap-up ended earlier, are skipped).
    #[cold]
    pub(super) fn expire_wrap_ups(&mut self, now: TimeMs, out: &mut Vec<Effect>) {
        while let Some(&Reverse((deadline, index, contact))) = self.wrap_up_deadlines.peek() {
            if deadline > now.0 {
                break;
            }
            self.wrap_up_deadlines.pop();
            let contact = ContactId(contact);
            if let Some(position) =
                self.agents[index as usize].find_item(contact, ItemPhase::WrapUp)
            {
                self.end_wrap_up(TimeMs(deadline), index, position, out);
            }
        }
    }

    /// See [`Site::handle_transfer`].
    pub(super) fn transfer(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        to_skill: SkillId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let slot = self.contact(contact)?;
        let InternalPhase::Talking(index) = self.contacts[slot as usize].phase else {
            return Err(DomainError::ContactState {
                contact,
                operation: "be transferred",
            });
        };
        let Some(target) = self.skills.get(to_skill.index()) else {
            return Err(DomainError::UnknownSkill(to_skill));
        };
        let channel = self.contacts[slot as usize].contact.channel;
        if target.channel != channel {
            return Err(DomainError::ChannelMismatch {
                channel,
                skill: to_skill,
            });
        }
        let from_skill = self.contacts[slot as usize].contact.skill;
        let agent = self.agents[index as usize].id;
        self.finish_talk(now, slot, index, out);
        self.emit(
            now,
            EventKind::TransferredOut {
                contact,
                agent,
                from_skill,
                to_skill,
            },
            out,
        );
        let entry = &mut self.contacts[slot as usize];
        entry.contact.skill = to_skill;
        entry.contact.transfer_count = entry.contact.transfer_count.saturating_add(1);
        entry.contact.ordering_time = now;
        entry.entered_queue_at = now;
        entry.hold_ms = 0;
        entry.hold_since = None;
        entry.sequence = self.next_sequence;
        self.next_sequence += 1;
        self.emit(
            now,
            EventKind::TransferredIn {
                contact,
                skill: to_skill,
            },
            out,
        );
        self.route_or_queue(now, slot, out);
        Ok(())
    }

    pub(super) fn check_new_contact(&self, contact: &Contact) -> Result<(), DomainError> {
        let Some(skill) = self.skills.get(contact.skill.index()) else {
            return Err(DomainError::UnknownSkill(contact.skill));
        };
        if skill.channel != contact.channel {
            return Err(DomainError::ChannelMismatch {
                channel: contact.channel,
                skill: contact.skill,
            });
        }
        if self.contact_index.contains_key(&contact.id) {
            return Err(DomainError::DuplicateContact(contact.id));
        }
        if self.contact_index.len() >= self.config.contacts_max as usize {
            return Err(DomainError::CapacityReached);
        }
        Ok(())
    }
}
