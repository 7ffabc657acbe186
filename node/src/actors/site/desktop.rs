//! Desktop inputs: an agent's login, state, offers, wrap-up and transfer.

use actix::prelude::*;

use callgrid_domain::{
    AgentId, AgentState, Channel, ContactId, ContactPhase, Effect, Event, EventKind, NotReadyReason,
};

use super::SiteActor;
use super::messages::{ContactStage, SiteError, SiteResult};
use super::views::{Accepted, ChatAuthor, ChatLine, SiteReply};
use crate::actors::call::SiteToCall;
use crate::replicate::now_ms;
use crate::state::model::CallbackOutcome;
use serde_json::json;

impl SiteActor {
    /// The agent's state and since when, to tell whether an input changed it.
    fn presence(&self, agent: AgentId) -> (Option<AgentState>, Option<u64>) {
        (
            self.site.agent_state(agent),
            self.roster.state_since_ms.get(&agent).copied(),
        )
    }

    /// The agent's view after a presence input, saying whether its state changed.
    fn presence_reply(
        &self,
        login: &str,
        agent: AgentId,
        before: (Option<AgentState>, Option<u64>),
    ) -> SiteResult {
        let mut view = self.agent_view(login, agent);
        view.changed = Some(self.presence(agent) != before);
        Ok(SiteReply::agent(view))
    }

    /// The agent logs in: its Agent actor starts before the domain's events about it.
    pub(super) fn login(&mut self, ctx: &mut Context<Self>, login: &str) -> SiteResult {
        let agent = self.agent_for_login(login)?;
        let before = self.presence(agent);
        // The Agent actor exists before the domain's events about the login.
        let started = !self.children.agent_actors.contains_key(&agent);
        self.start_agent(ctx, agent);
        let result = self.domain(ctx, |site, now, out| site.handle_login(now, agent, out));
        if result.is_err() && started && self.site.agent_state(agent) == Some(AgentState::LoggedOut)
        {
            self.stop_agent(agent);
        }
        result?;
        self.presence_reply(login, agent, before)
    }

    /// The agent logs out; its actor stops after the logged-out state went to the desktop.
    pub(super) fn logout(&mut self, ctx: &mut Context<Self>, login: &str) -> SiteResult {
        let agent = self.agent_id(login)?;
        let before = self.presence(agent);
        self.domain(ctx, |site, now, out| site.handle_logout(now, agent, out))?;
        // After the logged-out state went to the desktop: the actor stops.
        self.stop_agent(agent);
        self.presence_reply(login, agent, before)
    }

    /// The agent becomes ready.
    pub(super) fn ready(&mut self, ctx: &mut Context<Self>, login: &str) -> SiteResult {
        let agent = self.agent_id(login)?;
        let before = self.presence(agent);
        self.domain(ctx, |site, now, out| site.handle_ready(now, agent, out))?;
        self.presence_reply(login, agent, before)
    }

    /// The agent becomes not ready with a reason code.
    pub(super) fn not_ready(
        &mut self,
        ctx: &mut Context<Self>,
        login: &str,
        reason: u16,
    ) -> SiteResult {
        let agent = self.agent_id(login)?;
        let before = self.presence(agent);
        self.domain(ctx, |site, now, out| {
            site.handle_not_ready(now, agent, NotReadyReason(reason), out)
        })?;
        self.presence_reply(login, agent, before)
    }

    /// The agent accepts an offer.
    pub(super) fn accept(
        &mut self,
        ctx: &mut Context<Self>,
        login: &str,
        contact: ContactId,
    ) -> SiteResult {
        let (agent, _) = self.contact_for_agent(login, contact)?;
        if self.site.contact_phase(contact) != Some(ContactPhase::Offered(agent)) {
            return Err(SiteError::Conflict(format!(
                "contact {contact} is not offered to `{login}`"
            )));
        }
        self.domain(ctx, |site, now, out| site.handle_accept(now, contact, out))?;
        self.settle_offer(contact, agent);
        self.contact_reply(contact)
    }

    /// The agent rejects an offer.
    pub(super) fn reject(
        &mut self,
        ctx: &mut Context<Self>,
        login: &str,
        contact: ContactId,
    ) -> SiteResult {
        let (agent, _) = self.contact_for_agent(login, contact)?;
        if self.site.contact_phase(contact) != Some(ContactPhase::Offered(agent)) {
            return Err(SiteError::Conflict(format!(
                "contact {contact} is not offered to `{login}`"
            )));
        }
        self.domain(ctx, |site, now, out| site.handle_reject(now, contact, out))?;
        self.settle_offer(contact, agent);
        self.contact_reply(contact)
    }

    /// The agent ends the conversation (chat close, or voice hang-up from the desktop).
    pub(super) fn end(
        &mut self,
        ctx: &mut Context<Self>,
        login: &str,
        contact: ContactId,
    ) -> SiteResult {
        self.contact_for_agent(login, contact)?;
        self.domain(ctx, |site, now, out| site.handle_end(now, contact, out))?;
        self.contact_reply(contact)
    }

    /// The agent finishes wrap-up; a callback contact may carry its outcome.
    pub(super) fn wrap_up(
        &mut self,
        ctx: &mut Context<Self>,
        login: &str,
        contact: ContactId,
        code: String,
        callback_outcome: Option<CallbackOutcome>,
    ) -> SiteResult {
        let agent = self.agent_id(login)?;
        let holder = self
            .live
            .contacts
            .get(&contact)
            .and_then(|record| record.agent);
        if holder != Some(agent) && self.holds_wrap_up(agent, contact) {
            // After a transfer the contact is with line 2 (or already gone); the first
            // agent keeps only its own wrap-up of it, which it may finish.
            self.domain(ctx, |site, now, out| {
                site.handle_wrap_up_end(now, agent, contact, out)
            })?;
            // The contact is no longer this agent's: the reply is the agent, now free.
            return Ok(SiteReply::agent(self.agent_view(login, agent)));
        }
        let (agent, record) = self.contact_for_agent(login, contact)?;
        if record.stage != ContactStage::WrapUp {
            return Err(SiteError::Conflict(format!(
                "contact {contact} is not in wrap-up"
            )));
        }
        let is_callback = record.callback.is_some();
        self.domain(ctx, |site, now, out| {
            site.handle_wrap_up_end(now, agent, contact, out)
        })?;
        if let Some(record) = self.live.contacts.get_mut(&contact) {
            record.wrap_up_code = Some(code);
        }
        if is_callback {
            self.record_callback_outcome(
                contact,
                callback_outcome.unwrap_or(CallbackOutcome::Reached),
            );
        }
        self.finish_reply(contact)
    }

    /// The agent writes to the customer of a chat it is talking on: the line joins the
    /// transcript (Call actor) and goes to the gateways, which deliver it.
    pub(super) fn agent_chat(
        &mut self,
        login: &str,
        contact: ContactId,
        text: String,
    ) -> SiteResult {
        let (_, record) = self.contact_for_agent(login, contact)?;
        if record.channel != Channel::Chat {
            return Err(SiteError::Conflict(format!(
                "contact {contact} is not a chat"
            )));
        }
        if record.stage != ContactStage::Talking {
            return Err(SiteError::Conflict(format!(
                "contact {contact} is not talking"
            )));
        }
        let line = ChatLine {
            from: ChatAuthor::Agent,
            agent: Some(login.to_string()),
            text,
            at_ms: now_ms(),
        };
        self.streams
            .gateways
            .publish(&json!({"type": "chat_message", "contact": contact.0, "message": line}));
        self.tell_call(contact, SiteToCall::ChatMessage(line));
        Ok(SiteReply::Accepted(Accepted { accepted: true }))
    }

    /// Whether the domain has `contact` in `agent`'s hands (called when the contact's record
    /// names another agent or is gone: then it is the agent's wrap-up after a transfer).
    fn holds_wrap_up(&self, agent: AgentId, contact: ContactId) -> bool {
        self.site
            .agent_contacts(agent)
            .is_some_and(|mut held| held.any(|held| held == contact))
    }

    /// Arms one timer for the domain's earliest wrap-up maximum (`routing.wrap_up_max_ms`),
    /// re-armed when an earlier deadline appears.
    pub(super) fn arm_wrap_up_timer(&mut self, ctx: &mut Context<Self>) {
        let Some(deadline) = self.site.wrap_up_deadline() else {
            return;
        };
        if self
            .live
            .wrap_up_timer
            .is_some_and(|(armed, _)| armed <= deadline)
        {
            return;
        }
        if let Some((_, timer)) = self.live.wrap_up_timer.take() {
            ctx.cancel_future(timer);
        }
        let delay = crate::clock::wall_delay(deadline.0.saturating_sub(self.now().0));
        let timer = ctx.run_later(delay, |actor, ctx| {
            actor.live.wrap_up_timer = None;
            actor.wrap_up_maximum_reached(ctx);
        });
        self.live.wrap_up_timer = Some((deadline, timer));
    }

    /// Wrap-ups at their maximum end by themselves: the agents take the next contact, and the
    /// contacts finish as if the agents had pressed "done" (a callback counts as reached: it
    /// was answered).
    fn wrap_up_maximum_reached(&mut self, ctx: &mut Context<Self>) {
        let now = self.now();
        let mut effects = std::mem::take(&mut self.effects);
        self.site.handle_timers(now, &mut effects);
        let ended: Vec<(ContactId, AgentId)> = effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Event(Event {
                    kind: EventKind::WrapUpEnded { contact, agent, .. },
                    ..
                }) => Some((*contact, *agent)),
                _ => None,
            })
            .collect();
        self.effects = effects;
        self.process_effects();
        for (contact, agent) in ended {
            let Some(record) = self.live.contacts.get(&contact) else {
                continue;
            };
            if record.agent != Some(agent) || record.stage != ContactStage::WrapUp {
                continue;
            }
            if record.callback.is_some() {
                self.record_callback_outcome(contact, CallbackOutcome::Reached);
            }
            self.finish(contact);
        }
        self.arm_wrap_up_timer(ctx);
    }

    /// The agent transfers a talking contact to another skill (line 2).
    pub(super) fn transfer(
        &mut self,
        ctx: &mut Context<Self>,
        login: &str,
        contact: ContactId,
        skill: &str,
    ) -> SiteResult {
        let (_, record) = self.contact_for_agent(login, contact)?;
        if record.stage != ContactStage::Talking {
            return Err(SiteError::Conflict(format!(
                "contact {contact} is not talking"
            )));
        }
        let from = record.skill;
        let previous = record.transferred_from;
        let to = self.skill_id(skill)?;
        if to == from {
            return Err(SiteError::Conflict(format!(
                "contact {contact} is already on skill `{skill}`"
            )));
        }
        // The record shows the new leg before the domain acts: an offer made while the
        // transfer is handled already names the new skill and where it came from.
        if let Some(record) = self.live.contacts.get_mut(&contact) {
            record.transferred_from = Some(from);
            record.skill = to;
        }
        let transferred = self.domain(ctx, |site, now, out| {
            site.handle_transfer(now, contact, to, out)
        });
        if let Err(error) = transferred {
            if let Some(record) = self.live.contacts.get_mut(&contact) {
                record.transferred_from = previous;
                record.skill = from;
            }
            return Err(error);
        }
        if let Some(record) = self.live.contacts.get_mut(&contact) {
            if record.stage == ContactStage::WrapUp || record.stage == ContactStage::Talking {
                record.stage = ContactStage::Queued;
            }
            // The new leg is queued or already offered; the first agent keeps only its wrap-up.
            if let Some(ContactPhase::Offered(agent)) = self.site.contact_phase(contact) {
                record.agent = Some(agent);
                record.stage = ContactStage::Offered;
            } else {
                record.agent = None;
            }
        }
        self.dirty.contacts.push(contact);
        self.contact_reply(contact)
    }
}
