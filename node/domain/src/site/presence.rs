//! Agents: registration, skill grants and their certificate expiry, login, logout, ready and
//! not ready, and the per-skill counters an agent contributes to.

use super::*;

impl Site {
    /// Registers an agent (logged out). Grants for unknown skills are an error.
    pub fn add_agent(&mut self, spec: AgentSpec) -> Result<(), DomainError> {
        if self.agent_index.contains_key(&spec.id) {
            return Err(DomainError::DuplicateAgent(spec.id));
        }
        if spec.chat_slots == 0 || spec.chat_slots > CHAT_SLOTS_MAX {
            return Err(DomainError::InvalidAgent {
                agent: spec.id,
                reason: "chat_slots must be within 1..=CHAT_SLOTS_MAX",
            });
        }
        for grant in &spec.skills {
            if grant.skill.index() >= self.skills.len() {
                return Err(DomainError::UnknownSkill(grant.skill));
            }
        }
        let index = u32::try_from(self.agents.len()).map_err(|_| DomainError::InvalidAgent {
            agent: spec.id,
            reason: "too many agents",
        })?;
        let mut skills = SkillSet::EMPTY;
        for grant in &spec.skills {
            skills.insert(grant.skill);
            if let Some(until) = grant.valid_until {
                self.expiries.push(Reverse((until.0, index, grant.skill.0)));
            }
        }
        self.agent_index.insert(spec.id, index);
        self.agents.push(AgentEntry {
            id: spec.id,
            grants: spec.skills,
            skills,
            chat_slots: spec.chat_slots,
            presence: Presence::LoggedOut,
            items: [EMPTY_ITEM; CHAT_SLOTS_MAX as usize],
            item_count: 0,
            state: AgentState::LoggedOut,
            idle_since: TimeMs::ZERO,
            generation: 0,
        });
        Ok(())
    }

    /// See [`Site::handle_skills_changed`].
    pub(super) fn skills_changed(
        &mut self,
        now: TimeMs,
        agent: AgentId,
        grants: Vec<SkillGrant>,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let index = self.agent(agent)?;
        for grant in &grants {
            if grant.skill.index() >= self.skills.len() {
                return Err(DomainError::UnknownSkill(grant.skill));
            }
        }
        let before = self.contribution(index);
        let entry = &mut self.agents[index as usize];
        let mut skills = SkillSet::EMPTY;
        for grant in &grants {
            if grant.is_valid_at(now) {
                skills.insert(grant.skill);
            }
            if let Some(until) = grant.valid_until {
                self.expiries.push(Reverse((until.0, index, grant.skill.0)));
            }
        }
        entry.grants = grants;
        entry.skills = skills;
        self.refresh_agent(now, index, before, out);
        self.dispatch_agent(now, index, out);
        Ok(())
    }

    /// See [`Site::handle_login`].
    pub(super) fn login(
        &mut self,
        now: TimeMs,
        agent: AgentId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let index = self.agent(agent)?;
        let before = self.contribution(index);
        let entry = &mut self.agents[index as usize];
        match entry.presence {
            Presence::LoggedOut => {
                entry.presence = Presence::Ready;
                entry.idle_since = now;
            }
            Presence::LoggingOut => entry.presence = Presence::Ready,
            Presence::Ready | Presence::NotReady(_) => {
                return Err(DomainError::AgentState {
                    agent,
                    state: entry.state,
                    operation: "log in",
                });
            }
        }
        self.refresh_agent(now, index, before, out);
        self.dispatch_agent(now, index, out);
        Ok(())
    }

    /// See [`Site::handle_logout`].
    pub(super) fn logout(
        &mut self,
        now: TimeMs,
        agent: AgentId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let index = self.agent(agent)?;
        if matches!(self.agents[index as usize].presence, Presence::LoggedOut) {
            return Err(DomainError::AgentState {
                agent,
                state: AgentState::LoggedOut,
                operation: "log out",
            });
        }
        let before = self.contribution(index);
        self.agents[index as usize].presence = Presence::LoggingOut;
        self.withdraw_offers(now, index, out);
        self.refresh_agent(now, index, before, out);
        Ok(())
    }

    /// See [`Site::handle_ready`].
    pub(super) fn ready(
        &mut self,
        now: TimeMs,
        agent: AgentId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let index = self.agent(agent)?;
        let entry = &self.agents[index as usize];
        match entry.presence {
            Presence::Ready => return Ok(()),
            Presence::NotReady(_) => {}
            Presence::LoggedOut | Presence::LoggingOut => {
                return Err(DomainError::AgentState {
                    agent,
                    state: entry.state,
                    operation: "become ready",
                });
            }
        }
        let before = self.contribution(index);
        let entry = &mut self.agents[index as usize];
        entry.presence = Presence::Ready;
        entry.idle_since = now;
        self.refresh_agent(now, index, before, out);
        self.dispatch_agent(now, index, out);
        Ok(())
    }

    /// See [`Site::handle_not_ready`].
    pub(super) fn not_ready(
        &mut self,
        now: TimeMs,
        agent: AgentId,
        reason: NotReadyReason,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let index = self.agent(agent)?;
        let entry = &self.agents[index as usize];
        if matches!(entry.presence, Presence::LoggedOut | Presence::LoggingOut) {
            return Err(DomainError::AgentState {
                agent,
                state: entry.state,
                operation: "become not ready",
            });
        }
        let before = self.contribution(index);
        self.agents[index as usize].presence = Presence::NotReady(reason);
        self.refresh_agent(now, index, before, out);
        Ok(())
    }

    #[cold]
    pub(super) fn expire_grants(&mut self, now: TimeMs, out: &mut Vec<Effect>) {
        while let Some(&Reverse((until, index, skill))) = self.expiries.peek() {
            if until > now.0 {
                break;
            }
            self.expiries.pop();
            let skill = SkillId(skill);
            let agent = &self.agents[index as usize];
            let still_valid = agent
                .grants
                .iter()
                .any(|grant| grant.skill == skill && grant.is_valid_at(now));
            if still_valid || !agent.skills.contains(skill) {
                continue;
            }
            let before = self.contribution(index);
            self.agents[index as usize].skills.remove(skill);
            self.refresh_agent(now, index, before, out);
        }
    }

    #[inline]
    pub(super) fn contribution(&self, index: u32) -> AgentContribution {
        self.agents[index as usize].contribution()
    }

    /// After any change to an agent: logs out a finished logging-out agent, updates the
    /// per-skill counters, emits a state change, and (re)enters the agent into the idle sets
    /// of the skills it has room for. Runs on every agent change, so it reads the agent once.
    pub(super) fn refresh_agent(
        &mut self,
        now: TimeMs,
        index: u32,
        before: AgentContribution,
        out: &mut Vec<Effect>,
    ) {
        let up = self.up;
        let agent = &mut self.agents[index as usize];
        if matches!(agent.presence, Presence::LoggingOut) && agent.item_count == 0 {
            agent.presence = Presence::LoggedOut;
        }
        let after = agent.contribution();
        let state = agent.derive_state();
        let from = agent.state;
        agent.state = state;
        agent.generation = agent.generation.wrapping_add(1);
        let agent_id = agent.id;
        let skills = agent.skills;
        // Rooms only matter for a ready agent at an up site.
        let (room_voice, room_chat) = if up && matches!(agent.presence, Presence::Ready) {
            let holds_voice = agent.holds_voice();
            (
                agent.item_count == 0,
                !holds_voice && agent.item_count < agent.chat_slots,
            )
        } else {
            (false, false)
        };
        let entry = IdleEntry::new(
            agent.item_count,
            agent.idle_since.0,
            agent_id.0,
            index,
            agent.generation,
        );
        if before.idle_skills != after.idle_skills || before.serving_skills != after.serving_skills
        {
            self.update_skill_counters(index, before, after);
        }
        if state != from {
            self.emit(
                now,
                EventKind::AgentStateChanged {
                    agent: agent_id,
                    from,
                    to: state,
                },
                out,
            );
        }
        if !room_voice && !room_chat {
            return;
        }
        let agents = &self.agents;
        for skill in skills.iter() {
            let state = &mut self.skills[skill.index()];
            let channel = state.channel;
            let room = match channel {
                Channel::Voice => room_voice,
                Channel::Chat => room_chat,
            };
            if room {
                state.idle.push(entry);
                // Live entries: one per fully idle agent for voice; at most one per ready
                // agent for chat. A tight bound keeps stale entries (agents taken through
                // another skill) from making every pop wade through them.
                let live_bound = match channel {
                    Channel::Voice => state.idle_agents,
                    Channel::Chat => state.serving_agents,
                } as usize;
                state.idle.compact_if_needed(live_bound, |entry| {
                    idle_entry_live(agents, entry, skill, channel)
                });
            }
        }
    }

    pub(super) fn update_skill_counters(
        &mut self,
        index: u32,
        before: AgentContribution,
        after: AgentContribution,
    ) {
        let chat_slots = u32::from(self.agents[index as usize].chat_slots);
        for skill in before.idle_skills.iter() {
            self.skills[skill.index()].idle_agents -= 1;
        }
        for skill in after.idle_skills.iter() {
            self.skills[skill.index()].idle_agents += 1;
        }
        for skill in before.serving_skills.iter() {
            let state = &mut self.skills[skill.index()];
            state.serving_agents -= 1;
            state.serving_capacity -= capacity_for(state.channel, chat_slots);
        }
        for skill in after.serving_skills.iter() {
            let state = &mut self.skills[skill.index()];
            state.serving_agents += 1;
            state.serving_capacity += capacity_for(state.channel, chat_slots);
        }
    }
}
