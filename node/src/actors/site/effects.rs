//! Acting on the domain's effects: events to metrics and streams, offers to Agent actors,
//! overflows, callback requests; offers that rang out and the sweep for lost offer timers.

use callgrid_domain::{
    AgentId, ContactId, ContactPhase, Direction, Effect, EventKind, SkillId, TimeMs,
};

use super::messages::ContactStage;
use super::views::push_sample;
use super::{OFFER_LATENCY_SAMPLES_MAX, OFFER_TIMER_GRACE_MS, SiteActor};
use crate::actors::agent::SiteToAgent;
use crate::actors::overflow::OverflowedTo;
use crate::state::site_writes::SiteWrite;

impl SiteActor {
    pub(super) fn process_effects(&mut self) {
        let mut effects = std::mem::take(&mut self.effects);
        for effect in effects.drain(..) {
            match effect {
                Effect::Event(event) => {
                    self.metrics.record(&event);
                    self.days
                        .record(&event, self.epoch_ms.saturating_add(event.at.0));
                    self.on_event(&event.kind, event.at);
                    self.note_for_ledger(&event.kind, event.at);
                    if !self.streams.supervisors.is_empty() {
                        let message = self.event_message(&event);
                        self.streams.supervisors.publish(&message);
                    }
                }
                Effect::Offer {
                    contact,
                    agent,
                    timeout_at,
                } => self.on_offer(contact, agent, timeout_at),
                Effect::CancelOffer { contact, agent } => {
                    self.live.offers.remove(&contact);
                    self.dirty.contacts.push(contact);
                    self.tell_agent(agent, SiteToAgent::OfferCancelled(contact));
                }
                Effect::Overflow { contact, target } => {
                    // The domain has taken it out of the queue and counted it overflowed
                    // out; the gateway re-presents the call at the target (stage
                    // `overflowed` on its stream and in the final view).
                    let peer = self.config.peer_site_by_number(target.0);
                    let site = peer.map_or_else(|| target.0.to_string(), |peer| peer.id.clone());
                    let api_url = peer.and_then(|peer| peer.api_url.clone());
                    tracing::info!(
                        contact = contact.id.0,
                        target = %site,
                        "contact overflowed to another site"
                    );
                    if let Some(record) = self.live.contacts.get_mut(&contact.id) {
                        record.stage = ContactStage::Overflowed;
                        record.agent = None;
                        record.overflowed_to = Some(OverflowedTo {
                            site,
                            api_url,
                            hops: contact.overflow_count,
                        });
                    }
                    self.live.offers.remove(&contact.id);
                    if let Some(view) = self.finish(contact.id) {
                        self.overflow.last_overflowed = Some((contact.id, view));
                    }
                }
                Effect::RequestCallback(request) => {
                    // The domain's rule: enabled, the channel listed (voice only by default:
                    // an abandoned chat gets no voice callback), short abandons by policy.
                    if !self.config.callbacks.admits(&request) {
                        continue;
                    }
                    let Some(record) = self.live.contacts.values().find(|record| {
                        record.direction == Direction::Inbound
                            && record.stage == ContactStage::Abandoned
                            && record.skill == request.skill
                    }) else {
                        continue;
                    };
                    let write = SiteWrite::AbandonedCallback {
                        caller: record.caller.clone(),
                        skill: self.skill_name(request.skill),
                        ordering_time_ms: self.epoch_ms.saturating_add(request.ordering_time.0),
                    };
                    self.write_through_outbox(write);
                }
            }
        }
        // Effects pushed while handling effects are handled next round.
        let pending = std::mem::take(&mut self.effects);
        self.effects = effects;
        if !pending.is_empty() {
            self.effects = pending;
            self.process_effects();
        }
    }

    pub(super) fn on_event(&mut self, kind: &EventKind, at: TimeMs) {
        if let Some((contact, skill)) = event_contact(kind) {
            self.dirty.contacts.push(contact);
            self.dirty.queues.insert(skill);
        }
        match *kind {
            EventKind::AgentStateChanged { agent, to, .. } => {
                let since_ms = self.epoch_ms.saturating_add(at.0);
                self.roster.state_since_ms.insert(agent, since_ms);
                self.mark_queues_of_agent(agent);
                if self.children.agent_actors.contains_key(&agent) {
                    self.tell_agent(
                        agent,
                        SiteToAgent::StateChanged {
                            state: to,
                            since_ms,
                        },
                    );
                } else if let Some(streams) = self.streams.parked_agents.get_mut(&agent) {
                    streams.publish(&super::views::state_message(to, Some(since_ms)));
                }
            }
            EventKind::Answered { contact, agent, .. } => {
                if let Some(record) = self.live.contacts.get_mut(&contact) {
                    record.stage = ContactStage::Talking;
                    record.agent = Some(agent);
                }
            }
            EventKind::Ended { contact, agent, .. } => {
                if let Some(record) = self.live.contacts.get_mut(&contact)
                    && record.agent == Some(agent)
                {
                    record.stage = ContactStage::WrapUp;
                }
            }
            EventKind::Abandoned { contact, .. } => {
                if let Some(record) = self.live.contacts.get_mut(&contact) {
                    record.stage = ContactStage::Abandoned;
                    record.agent = None;
                }
            }
            EventKind::SelfServed { contact, .. } => {
                if let Some(record) = self.live.contacts.get_mut(&contact) {
                    // A drained site's caller withdrawn for a callback keeps saying so.
                    if record.stage != ContactStage::CallbackScheduled {
                        record.stage = ContactStage::SelfServed;
                    }
                    record.agent = None;
                }
            }
            EventKind::OfferRejected { contact, .. } | EventKind::OfferTimedOut { contact, .. } => {
                if let Some(record) = self.live.contacts.get_mut(&contact) {
                    record.stage = ContactStage::Queued;
                    record.agent = None;
                }
            }
            EventKind::TransferredOut {
                contact, to_skill, ..
            } => {
                self.dirty.queues.insert(to_skill);
                if let Some(record) = self.live.contacts.get_mut(&contact) {
                    record.stage = ContactStage::Queued;
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_offer(&mut self, contact: ContactId, agent: AgentId, timeout_at: TimeMs) {
        if let Some(record) = self.live.contacts.get_mut(&contact) {
            record.stage = ContactStage::Offered;
            record.agent = Some(agent);
            if !record.offered_once {
                record.offered_once = true;
                let elapsed =
                    u64::try_from(record.arrived_at.elapsed().as_micros()).unwrap_or(u64::MAX);
                push_sample(
                    &mut self.stats.offer_latency_us,
                    elapsed,
                    OFFER_LATENCY_SAMPLES_MAX,
                );
                if self.live.arriving == Some(contact) {
                    // Routed to a free agent while handling the arrival: pure routing time.
                    push_sample(
                        &mut self.stats.offer_latency_immediate_us,
                        elapsed,
                        OFFER_LATENCY_SAMPLES_MAX,
                    );
                }
            }
        }
        self.dirty.contacts.push(contact);
        // The Agent actor rings the desktop and times the offer (the dial request of a
        // callback goes to the gateway from the Call actor, which sees the view change).
        let deadline_ms = self.epoch_ms.saturating_add(timeout_at.0);
        self.live.offers.insert(contact, (agent, deadline_ms));
        if let Some(view) = self.contact_view(contact) {
            self.tell_agent(
                agent,
                SiteToAgent::Offer {
                    contact,
                    view: Box::new(view),
                    deadline_ms,
                },
            );
        }
    }

    /// An offer rang out: the domain decides (it ignores a stale timeout — accepted, rejected,
    /// re-offered since).
    pub(super) fn offer_expired(&mut self, contact: ContactId, agent: AgentId) {
        let now = self.now();
        let mut effects = std::mem::take(&mut self.effects);
        let timed_out = self
            .site
            .handle_offer_timeout(now, contact, agent, &mut effects);
        self.effects = effects;
        if timed_out {
            self.live.offers.remove(&contact);
            tracing::info!(
                contact = contact.0,
                agent = agent.0,
                "offer timed out; contact back at its place"
            );
        }
        self.process_effects();
    }

    /// Times out offers whose Agent actor did not report in time (its timer was lost), and
    /// forgets offers that ended without the Site noticing.
    pub(super) fn sweep_offers(&mut self) {
        let now = crate::clock::now_ms();
        let overdue: Vec<(ContactId, AgentId)> = self
            .live
            .offers
            .iter()
            .filter(|(_, (_, deadline_ms))| deadline_ms.saturating_add(OFFER_TIMER_GRACE_MS) <= now)
            .map(|(contact, (agent, _))| (*contact, *agent))
            .collect();
        for (contact, agent) in overdue {
            if self.site.contact_phase(contact) == Some(ContactPhase::Offered(agent)) {
                tracing::warn!(
                    contact = contact.0,
                    agent = agent.0,
                    "offer timer lost; timing out"
                );
                self.stats.offer_timers_lost += 1;
                self.offer_expired(contact, agent);
            } else {
                self.live.offers.remove(&contact);
            }
        }
    }
}

/// The contact and queue an event is about, if any.
fn event_contact(kind: &EventKind) -> Option<(ContactId, SkillId)> {
    match *kind {
        EventKind::Arrived { contact, skill, .. }
        | EventKind::Blocked { contact, skill }
        | EventKind::Queued { contact, skill, .. }
        | EventKind::Offered { contact, skill, .. }
        | EventKind::OfferRejected { contact, skill, .. }
        | EventKind::OfferTimedOut { contact, skill, .. }
        | EventKind::Answered { contact, skill, .. }
        | EventKind::Abandoned { contact, skill, .. }
        | EventKind::SelfServed { contact, skill, .. }
        | EventKind::TransferredIn { contact, skill }
        | EventKind::OverflowOut { contact, skill, .. }
        | EventKind::OverflowIn { contact, skill, .. }
        | EventKind::Ended { contact, skill, .. }
        | EventKind::WrapUpEnded { contact, skill, .. } => Some((contact, skill)),
        EventKind::TransferredOut {
            contact,
            from_skill,
            ..
        } => Some((contact, from_skill)),
        EventKind::AgentStateChanged { .. }
        | EventKind::CallbackCreated { .. }
        | EventKind::CallbackClosed { .. } => None,
    }
}
