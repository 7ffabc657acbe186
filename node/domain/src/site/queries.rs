//! Read-only views of the site: queue positions and wait estimates, contacts and agents.

use super::*;

impl Site {
    /// Position and estimated wait of a waiting contact; `None` unless it is queued here.
    /// Estimator: position × average handle time of the skill ÷ contacts its ready agents can
    /// hold at once (voice agent 1, chat agent its slots); the average is a moving average
    /// of recent handle times (talk + hold + wrap-up), seeded from configuration.
    /// Costs O(queue length).
    pub fn queue_position(&self, contact: ContactId) -> Option<QueuePosition> {
        let &slot = self.contact_index.get(&contact)?;
        let entry = &self.contacts[slot as usize];
        if entry.phase != InternalPhase::Queued {
            return None;
        }
        let key = self.queue_key(slot);
        let skill = entry.contact.skill;
        let ahead = self.skills[skill.index()]
            .queue
            .heap
            .iter()
            .filter(|other| self.is_queued_live(other) && other.serves_before(&key))
            .count() as u32;
        let position = ahead + 1;
        Some(QueuePosition {
            position,
            estimated_wait_ms: self.estimate_wait_ms(skill, position),
        })
    }

    /// Estimated wait of the contact at `position` (1-based) in `skill`'s queue.
    pub fn estimate_wait_ms(&self, skill: SkillId, position: u32) -> u64 {
        let Some(state) = self.skills.get(skill.index()) else {
            return u64::MAX;
        };
        if state.serving_capacity == 0 {
            return u64::MAX;
        }
        u64::from(position).saturating_mul(state.handle_ms_average)
            / u64::from(state.serving_capacity)
    }

    /// Contacts waiting in `skill`'s queue.
    pub fn waiting(&self, skill: SkillId) -> u32 {
        self.skills
            .get(skill.index())
            .map_or(0, |state| state.queue.waiting)
    }

    /// Contacts waiting in all queues.
    pub fn waiting_total(&self) -> u32 {
        self.waiting_total
    }

    /// Contacts waiting or ringing here that have not been answered at this site yet — the
    /// in-progress term of the site balance (see [`crate::Counters`]); a transferred contact
    /// waiting for line 2 is not counted. O(contacts): for end-of-run checks.
    pub fn unanswered_in_progress(&self) -> usize {
        self.contacts
            .iter()
            .filter(|entry| {
                entry.live
                    && !entry.answered_before
                    && !matches!(entry.phase, InternalPhase::Talking(_))
            })
            .count()
    }

    /// Contacts at this site (waiting, ringing or talking).
    pub fn contact_count(&self) -> usize {
        self.contact_index.len()
    }

    /// Where a contact is, if it is at this site.
    pub fn contact_phase(&self, contact: ContactId) -> Option<ContactPhase> {
        let &slot = self.contact_index.get(&contact)?;
        Some(match self.contacts[slot as usize].phase {
            InternalPhase::Queued => ContactPhase::Queued,
            InternalPhase::Offered(index) => ContactPhase::Offered(self.agents[index as usize].id),
            InternalPhase::Talking(index) => ContactPhase::Talking(self.agents[index as usize].id),
        })
    }

    /// The contact as stored here (skill and counters may have changed by transfer).
    pub fn contact_info(&self, contact: ContactId) -> Option<Contact> {
        let &slot = self.contact_index.get(&contact)?;
        Some(self.contacts[slot as usize].contact)
    }

    /// An agent's state.
    pub fn agent_state(&self, agent: AgentId) -> Option<AgentState> {
        let &index = self.agent_index.get(&agent)?;
        Some(self.agents[index as usize].state)
    }

    /// How many contacts an agent holds (ringing, talking, wrap-up).
    pub fn agent_load(&self, agent: AgentId) -> Option<usize> {
        let &index = self.agent_index.get(&agent)?;
        Some(usize::from(self.agents[index as usize].item_count))
    }

    /// The contacts an agent holds, in the order it got them.
    pub fn agent_contacts(&self, agent: AgentId) -> Option<impl Iterator<Item = ContactId> + '_> {
        let &index = self.agent_index.get(&agent)?;
        Some(
            self.agents[index as usize]
                .items()
                .iter()
                .map(|item| item.contact),
        )
    }

    /// Since when an agent has been idle (last login, ready, or freed slot).
    pub fn agent_idle_since(&self, agent: AgentId) -> Option<TimeMs> {
        let &index = self.agent_index.get(&agent)?;
        Some(self.agents[index as usize].idle_since)
    }

    /// Agent ids in registration order.
    pub fn agent_ids(&self) -> impl Iterator<Item = AgentId> + '_ {
        self.agents.iter().map(|agent| agent.id)
    }
}
