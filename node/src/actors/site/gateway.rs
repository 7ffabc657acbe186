//! Gateway inputs: arrivals (overflowed ones included), answer, end, abandon, chat messages.

use actix::prelude::*;
use callgrid_domain::{
    Channel, Contact, ContactId, ContactPhase, Direction, Effect, EventKind, Priority, SiteId,
    TimeMs,
};
use serde_json::json;

use super::messages::{Arrival, ContactStage, SiteError, SiteResult};
use super::views::{Accepted, ChatAuthor, ChatLine, SiteReply};
use super::{ContactRecord, SiteActor, caller_number};
use crate::actors::call::SiteToCall;
use crate::actors::overflow::OverflowedFrom;
use crate::replicate::now_ms;
use crate::state::model::CallbackOutcome;
use crate::state::site_writes::SiteWrite;

impl SiteActor {
    /// A contact arrived at the gateway (or was overflowed here by a peer).
    pub(super) fn contact_arrived(
        &mut self,
        ctx: &mut Context<Self>,
        arrival: Arrival,
    ) -> SiteResult {
        if self.draining {
            return Err(SiteError::Conflict("site is draining".to_string()));
        }
        let Arrival {
            caller,
            channel,
            topic,
            skill,
            priority,
            overflowed_from,
        } = arrival;
        let skill = match skill {
            Some(name) => self.skill_id(&name)?,
            None => self.skill_for(topic, channel)?,
        };
        let skill_channel = self
            .config
            .routing
            .skills
            .get(skill.index())
            .map(|skill| skill.channel);
        if skill_channel != Some(channel) {
            return Err(SiteError::Invalid(
                "the skill serves another channel".to_string(),
            ));
        }
        let source = match overflowed_from {
            Some(from) => Some(self.overflow_source(from)?),
            None => None,
        };
        let id = self.allocate_contact_id();
        let now = self.now();
        let mut contact = Contact::inbound(
            id,
            channel,
            topic,
            skill,
            caller_number(&caller),
            self.site_id,
            now,
        )
        .with_priority(Priority(priority));
        if let Some((site, from)) = &source {
            // The caller keeps the place earned by the original arrival.
            let arrived = TimeMs(from.arrived_at_ms.saturating_sub(self.epoch_ms)).min(now);
            contact.entry_site = *site;
            contact.arrived_at = arrived;
            contact.ordering_time = arrived;
            // A contact that moved the maximum number of times is not moved again.
            contact.overflow_count = from.hops;
        }
        self.overflow.last_overflowed = None;
        self.caller_called_in(&caller);
        let source_contact = source.as_ref().map(|(_, from)| from.contact);
        let view = self.arrive(ctx, contact, caller, None, source)?;
        if let Some(source_contact) = source_contact {
            self.remember_overflowed_in(source_contact, id);
        }
        // A new arrival may start (predicted-wait trigger) or feed the rule.
        self.poll_overflow(ctx);
        match self.overflow.last_overflowed.take() {
            Some((overflowed, final_view)) if overflowed == id => {
                Ok(SiteReply::contact(final_view))
            }
            _ if self.live.contacts.contains_key(&id) => self.contact_reply(id),
            _ => Ok(view),
        }
    }

    /// A caller phoned in: the callback waiting for their earlier abandoned call (if any, and
    /// not being dialled) is cancelled through the outbox, by the domain's rule.
    fn caller_called_in(&mut self, caller: &str) {
        let waiting = self
            .shared
            .read(|state| state.abandoned_callback_for(caller).is_some());
        if !waiting {
            return;
        }
        self.write_through_outbox(SiteWrite::CallerCalledIn {
            caller: caller.to_string(),
        });
    }

    /// Checks that the Site works on `contact`: a finished one is [`SiteError::Finished`], one
    /// never seen here [`SiteError::NotFound`].
    pub(super) fn live_contact(&self, contact: ContactId) -> Result<(), SiteError> {
        if self.live.contacts.contains_key(&contact) {
            Ok(())
        } else if self.children.call_actors.contains_key(&contact) {
            Err(SiteError::Finished(contact))
        } else {
            Err(SiteError::NotFound(format!("contact {contact} not found")))
        }
    }

    /// The agent's leg was answered at the gateway (same as accept on the desktop). The
    /// gateway names the agent; an answer for another agent than the one the contact rings
    /// at (a stale event after a re-offer) is refused.
    pub(super) fn contact_answered(
        &mut self,
        ctx: &mut Context<Self>,
        contact: ContactId,
        login: &str,
    ) -> SiteResult {
        self.live_contact(contact)?;
        let named = self.agent_id(login)?;
        match self.site.contact_phase(contact) {
            Some(ContactPhase::Talking(agent)) | Some(ContactPhase::Offered(agent))
                if agent != named =>
            {
                return Err(SiteError::Conflict(format!(
                    "contact {contact} is not with agent `{login}`"
                )));
            }
            Some(ContactPhase::Talking(_)) => {}
            Some(ContactPhase::Offered(agent)) => {
                self.domain(ctx, |site, now, out| site.handle_accept(now, contact, out))?;
                self.settle_offer(contact, agent);
            }
            _ => {
                return Err(SiteError::Conflict(format!(
                    "contact {contact} is not ringing"
                )));
            }
        }
        self.contact_reply(contact)
    }

    /// The conversation ended at the gateway (or the caller hung up while waiting).
    pub(super) fn contact_ended(
        &mut self,
        ctx: &mut Context<Self>,
        contact: ContactId,
    ) -> SiteResult {
        if !self.live.contacts.contains_key(&contact)
            && self.children.call_actors.contains_key(&contact)
        {
            return Err(SiteError::Finished(contact));
        }
        let record = self
            .live
            .contacts
            .get(&contact)
            .ok_or_else(|| SiteError::NotFound(format!("contact {contact} not found")))?;
        match record.stage {
            ContactStage::Talking => {
                self.domain(ctx, |site, now, out| site.handle_end(now, contact, out))?;
            }
            ContactStage::Queued | ContactStage::Offered => {
                return self.abandon(contact);
            }
            _ => {}
        }
        self.contact_reply(contact)
    }

    /// A chat message from the customer.
    pub(super) fn chat_message(&mut self, contact: ContactId, text: String) -> SiteResult {
        if !self.live.contacts.contains_key(&contact)
            && self.children.call_actors.contains_key(&contact)
        {
            return Err(SiteError::Finished(contact));
        }
        let record = self
            .live
            .contacts
            .get_mut(&contact)
            .ok_or_else(|| SiteError::NotFound(format!("contact {contact} not found")))?;
        if record.channel != Channel::Chat {
            return Err(SiteError::Conflict(format!(
                "contact {contact} is not a chat"
            )));
        }
        let message = ChatLine {
            from: ChatAuthor::Customer,
            agent: None,
            text,
            at_ms: now_ms(),
        };
        let agent = record.agent;
        self.tell_call(contact, SiteToCall::ChatMessage(message.clone()));
        if let Some(agent) = agent {
            self.notify_agent(
                agent,
                json!({"type": "chat_message", "contact": contact.0, "message": message}),
            );
        }
        Ok(SiteReply::Accepted(Accepted { accepted: true }))
    }

    pub(super) fn arrive(
        &mut self,
        ctx: &mut Context<Self>,
        contact: Contact,
        caller: String,
        callback: Option<u64>,
        overflowed_from: Option<(SiteId, OverflowedFrom)>,
    ) -> SiteResult {
        let now = self.now();
        // The record's arrival in wall milliseconds is the domain's own reading (the caller's
        // place in callbacks and views is compared with it), not a second clock read that
        // may fall in the next millisecond; an overflowed-in contact arrived here now.
        let arrived_at_ms = self.epoch_ms.saturating_add(if overflowed_from.is_some() {
            now.0
        } else {
            contact.arrived_at.0
        });
        let mut effects = std::mem::take(&mut self.effects);
        let result = match &overflowed_from {
            Some((source, _)) => self
                .site
                .handle_overflow_in(now, contact, *source, &mut effects),
            None => self.site.handle_arrival(now, contact, &mut effects),
        };
        let blocked = effects.iter().any(|effect| {
            matches!(effect, Effect::Event(event) if matches!(event.kind, EventKind::Blocked { .. }))
        });
        if let Err(error) = result {
            self.effects = effects;
            self.effects.clear();
            return Err(SiteError::Conflict(error.to_string()));
        }
        self.live.contacts.insert(
            contact.id,
            ContactRecord {
                id: contact.id,
                caller,
                channel: contact.channel,
                topic: contact.topic,
                skill: contact.skill,
                direction: contact.direction,
                callback,
                agent: None,
                stage: if blocked {
                    ContactStage::Blocked
                } else {
                    ContactStage::Queued
                },
                arrived_at_ms,
                arrived_at: std::time::Instant::now(),
                offered_once: false,
                wrap_up_code: None,
                transferred_from: None,
                overflowed_from: overflowed_from.map(|(_, from)| from),
                overflowed_to: None,
            },
        );
        self.effects = effects;
        self.live.arriving = Some(contact.id);
        self.process_effects();
        self.live.arriving = None;
        self.start_call(ctx, contact.id);
        self.dirty.contacts.push(contact.id);
        if blocked {
            return self.finish_reply(contact.id);
        }
        self.contact_reply(contact.id)
    }

    /// Checks an `overflowed_from` field (see [`OverflowedFrom::check`]) and that this site
    /// has not taken the contact already (a second presentation of one claim).
    fn overflow_source(&self, from: OverflowedFrom) -> Result<(SiteId, OverflowedFrom), SiteError> {
        let peer = from
            .check(&self.config, crate::clock::now_ms())
            .map_err(SiteError::Invalid)?;
        if let Some(local) = self.overflowed_in_already(from.contact) {
            return Err(SiteError::Conflict(format!(
                "contact {} from {} was taken here already (as contact {local})",
                from.contact, from.site
            )));
        }
        Ok((SiteId(peer), from))
    }

    pub(super) fn abandon(&mut self, contact: ContactId) -> SiteResult {
        let record = self
            .live
            .contacts
            .get(&contact)
            .ok_or_else(|| SiteError::NotFound(format!("contact {contact} not found")))?;
        let outbound = record.direction == Direction::OutboundCallback;
        let now = self.now();
        let mut effects = std::mem::take(&mut self.effects);
        let abandoned = self.site.handle_abandon(now, contact, &mut effects);
        self.effects = effects;
        if !abandoned {
            self.effects.clear();
            return Err(SiteError::Conflict(format!(
                "contact {contact} is not waiting or ringing"
            )));
        }
        // A ringing offer is withdrawn by the domain's `CancelOffer` effect.
        if let Some(record) = self.live.contacts.get_mut(&contact) {
            record.stage = ContactStage::Abandoned;
            record.agent = None;
        }
        if outbound {
            // The customer did not pick up the callback: a failed attempt, retried by policy.
            self.effects
                .retain(|effect| !matches!(effect, Effect::RequestCallback(_)));
            self.record_callback_outcome(contact, CallbackOutcome::NoAnswer);
        }
        self.process_effects();
        self.finish_reply(contact)
    }

    /// The self-service bot served the caller: the contact leaves by the domain's own ending
    /// (counted apart; no abandonment, no callback).
    pub(super) fn self_served(&mut self, contact: ContactId) -> SiteResult {
        if !self.live.contacts.contains_key(&contact) {
            return Err(SiteError::NotFound(format!("contact {contact} not found")));
        }
        let now = self.now();
        let mut effects = std::mem::take(&mut self.effects);
        let served = self.site.handle_self_served(now, contact, &mut effects);
        self.effects = effects;
        if !served {
            self.effects.clear();
            return Err(SiteError::Conflict(format!(
                "contact {contact} is not waiting or ringing"
            )));
        }
        self.process_effects();
        self.finish_reply(contact)
    }
}
