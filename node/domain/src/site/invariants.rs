//! The site's invariants, checked in full by tests and (amortised) after every handler in
//! debug builds.

use super::*;

impl Site {
    /// Checks the internal invariants (slots, counters, routing, no skill kept past its
    /// certificate as of the last handled `now`) and describes the first violation.
    /// O(agents + contacts): for tests and debug assertions, not the hot path.
    pub fn check_invariants(&self) -> Result<(), String> {
        let now = self.last_now;
        let mut waiting_per_skill = vec![0u32; self.skills.len()];
        for (slot, entry) in self.contacts.iter().enumerate() {
            if !entry.live {
                continue;
            }
            match entry.phase {
                InternalPhase::Queued => waiting_per_skill[entry.contact.skill.index()] += 1,
                InternalPhase::Offered(index) | InternalPhase::Talking(index) => {
                    let agent = &self.agents[index as usize];
                    let holders = agent
                        .items()
                        .iter()
                        .filter(|item| {
                            item.contact == entry.contact.id && item.phase != ItemPhase::WrapUp
                        })
                        .count();
                    if holders != 1 {
                        return Err(format!(
                            "contact {} (slot {slot}) held {holders} times by agent {}",
                            entry.contact.id, agent.id
                        ));
                    }
                }
            }
        }
        for (skill_index, state) in self.skills.iter().enumerate() {
            if waiting_per_skill[skill_index] != state.queue.waiting {
                return Err(format!(
                    "skill {skill_index}: {} queued contacts but counter says {}",
                    waiting_per_skill[skill_index], state.queue.waiting
                ));
            }
        }
        let mut idle = vec![0u32; self.skills.len()];
        let mut serving = vec![0u32; self.skills.len()];
        for agent in &self.agents {
            let capacity = if agent.holds_voice() {
                1
            } else {
                agent.chat_slots
            };
            if agent.item_count > capacity {
                return Err(format!(
                    "agent {} holds {} contacts, capacity {capacity}",
                    agent.id, agent.item_count
                ));
            }
            if agent.holds_voice() && agent.item_count > 1 {
                return Err(format!("agent {} holds voice and more", agent.id));
            }
            for item in agent.items() {
                if item.phase != ItemPhase::WrapUp {
                    let Some(&slot) = self.contact_index.get(&item.contact) else {
                        return Err(format!("agent {} holds unknown contact", agent.id));
                    };
                    let expected = match item.phase {
                        ItemPhase::Offered => InternalPhase::Offered,
                        _ => InternalPhase::Talking,
                    };
                    let Some(&index) = self.agent_index.get(&agent.id) else {
                        return Err(format!("agent {} missing from the index", agent.id));
                    };
                    if self.contacts[slot as usize].phase != expected(index) {
                        return Err(format!("agent {} and contact disagree", agent.id));
                    }
                }
            }
            if agent.state != agent.derive_state() {
                return Err(format!("agent {} state is stale", agent.id));
            }
            for grant in &agent.grants {
                if agent.skills.contains(grant.skill)
                    && !agent
                        .grants
                        .iter()
                        .any(|other| other.skill == grant.skill && other.is_valid_at(now))
                {
                    return Err(format!(
                        "agent {} keeps skill {} past its certificate",
                        agent.id, grant.skill
                    ));
                }
            }
            if matches!(agent.presence, Presence::Ready) {
                for skill in agent.skills.iter() {
                    serving[skill.index()] += 1;
                    if agent.item_count == 0 {
                        idle[skill.index()] += 1;
                    }
                }
            }
            if self.up {
                for skill in agent.skills.iter() {
                    let state = &self.skills[skill.index()];
                    if state.queue.waiting > 0 && agent.has_room_for(state.channel) {
                        return Err(format!(
                            "agent {} has room while skill {skill} has {} waiting",
                            agent.id, state.queue.waiting
                        ));
                    }
                }
            }
        }
        for (skill_index, state) in self.skills.iter().enumerate() {
            if idle[skill_index] != state.idle_agents
                || serving[skill_index] != state.serving_agents
            {
                return Err(format!("skill {skill_index}: agent counters are stale"));
            }
        }
        Ok(())
    }

    /// Runs [`Site::check_invariants`] in debug builds, amortised: in full once per as many
    /// handler calls as the check costs (agents + contact slots + skills), so a handler stays
    /// O(1) amortised and a broken invariant is still caught within that many calls. Panics
    /// with the violation. Release builds skip it.
    #[inline]
    pub(super) fn debug_check_invariants(&mut self) {
        if !cfg!(debug_assertions) {
            return;
        }
        if self.handlers_until_check > 0 {
            self.handlers_until_check -= 1;
            return;
        }
        self.handlers_until_check =
            (self.agents.len() + self.contacts.len() + self.skills.len()) as u64;
        if let Err(violation) = self.check_invariants() {
            panic!("site {} invariant broken: {violation}", self.id);
        }
    }
}
