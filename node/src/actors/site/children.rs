//! The Site's children and streams: starting, telling and stopping Agent, Call and Queue
//! actors; finished contacts lingering; subscriptions; what restarted children ask for.

use actix::prelude::*;
use callgrid_domain::{AgentId, AgentState, ContactId, SkillId};
use serde_json::Value;

use super::messages::{
    Audience, ContactStage, LookupChildren, SiteChildren, SiteError, SiteResult, Subscribe,
};
use super::views::{ContactView, SiteReply};
use super::{CALL_LINGER_AFTER_FINISH_MS, FINISHED_CONTACTS_MAX, SiteActor};
use crate::actors::agent::{AgentActor, AgentToSite, SiteToAgent, SubscribeAgentStream};
use crate::actors::call::{CallActor, CallToSite, SiteToCall};
use crate::actors::queue::{
    QUEUE_VIEW_PUBLISH_INTERVAL, QueueToSite, SiteToQueue, SubscribeQueueStream,
};
use crate::replicate::now_ms;

impl SiteActor {
    pub(super) fn start_call(&mut self, ctx: &mut Context<Self>, contact: ContactId) {
        let actor = CallActor::new(
            contact,
            ctx.address().recipient(),
            self.streams.gateways.clone(),
            self.children.counts.clone(),
        );
        let address = Supervisor::start(move |_| actor);
        self.children.call_actors.insert(contact, address);
    }

    pub(super) fn start_agent(&mut self, ctx: &mut Context<Self>, agent: AgentId) {
        if self.children.agent_actors.contains_key(&agent) {
            return;
        }
        let login = self.roster.logins.get(&agent).cloned().unwrap_or_default();
        let streams = self
            .streams
            .parked_agents
            .remove(&agent)
            .map(|mut streams| streams.take())
            .unwrap_or_default();
        let actor = AgentActor::new(
            agent,
            login,
            ctx.address().recipient(),
            self.children.counts.clone(),
            streams,
        );
        let address = Supervisor::start(move |_| actor);
        self.children.agent_actors.insert(agent, address);
    }

    /// Stops the agent's actor for good: the Site drops its only address. The actor hands its
    /// desktop streams back (`AgentToSite::Released`) as it stops.
    pub(super) fn stop_agent(&mut self, agent: AgentId) {
        self.children.agent_actors.remove(&agent);
    }

    pub(super) fn tell_agent(&mut self, agent: AgentId, message: SiteToAgent) {
        if let Some(address) = self.children.agent_actors.get(&agent)
            && let Err(error) = address.try_send(message)
        {
            tracing::warn!(agent = agent.0, %error, "agent actor did not take a message");
        }
    }

    pub(super) fn tell_call(&self, contact: ContactId, message: SiteToCall) {
        if let Some(address) = self.children.call_actors.get(&contact)
            && let Err(error) = address.try_send(message)
        {
            tracing::debug!(contact = contact.0, %error, "call actor did not take a message");
        }
    }

    /// The offer of `contact` to `agent` ended without a withdrawal notice (accepted,
    /// rejected): that agent's timer stops. The domain may already have offered the contact to
    /// someone else in the same step (a rejected contact goes on to the next agent); that
    /// offer is left alone.
    pub(super) fn settle_offer(&mut self, contact: ContactId, agent: AgentId) {
        if self
            .live
            .offers
            .get(&contact)
            .is_some_and(|(holder, _)| *holder == agent)
        {
            self.live.offers.remove(&contact);
        }
        self.tell_agent(agent, SiteToAgent::OfferSettled(contact));
    }

    /// Sends what changed to the children: contact views to Call actors now, queue views to
    /// Queue actors at most once per [`QUEUE_VIEW_PUBLISH_INTERVAL`].
    pub(super) fn flush(&mut self, ctx: &mut Context<Self>) {
        let mut dirty = std::mem::take(&mut self.dirty.contacts);
        dirty.sort_unstable();
        dirty.dedup();
        for contact in dirty.drain(..) {
            if let Some(view) = self.contact_view(contact) {
                self.tell_call(contact, SiteToCall::ViewChanged(Box::new(view)));
            }
        }
        self.dirty.contacts = dirty;
        if !self.dirty.queues.is_empty() && !self.dirty.queue_publish_scheduled {
            self.dirty.queue_publish_scheduled = true;
            ctx.run_later(QUEUE_VIEW_PUBLISH_INTERVAL, |actor, _ctx| {
                actor.dirty.queue_publish_scheduled = false;
                let skills = std::mem::take(&mut actor.dirty.queues);
                for skill in skills {
                    actor.publish_queue(skill);
                }
            });
        }
    }

    pub(super) fn publish_queue(&mut self, skill: SkillId) {
        let Some(address) = self.children.queue_actors.get(skill.index()) else {
            return;
        };
        let Some(view) = self.queue_view(skill) else {
            return;
        };
        if let Err(error) = address.try_send(SiteToQueue::ViewChanged(view)) {
            tracing::debug!(skill = skill.0, %error, "queue actor did not take its view");
        }
    }

    pub(super) fn mark_queues_of_agent(&mut self, agent: AgentId) {
        if let Some(skills) = self.roster.agent_skills.get(&agent) {
            self.dirty.queues.extend(skills.iter().copied());
        }
    }

    pub(super) fn notify_agent(&mut self, agent: AgentId, message: Value) {
        if self.children.agent_actors.contains_key(&agent) {
            self.tell_agent(agent, SiteToAgent::Notify(message));
        } else if let Some(streams) = self.streams.parked_agents.get_mut(&agent) {
            streams.publish(&message);
        }
    }

    /// The contact is done: its final view goes to its Call actor, which lingers for lookups;
    /// the Site forgets it. Returns the final view (`None`: the Site did not know it).
    pub(super) fn finish(&mut self, contact: ContactId) -> Option<ContactView> {
        if let Some(record) = self.live.contacts.get_mut(&contact)
            && matches!(record.stage, ContactStage::WrapUp | ContactStage::Talking)
        {
            record.stage = ContactStage::Finished;
        }
        let view = self.contact_view(contact);
        if let Some(record) = self.live.contacts.remove(&contact) {
            self.dirty.queues.insert(record.skill);
            self.live.offers.remove(&contact);
            if let Some(view) = &view {
                self.tell_call(contact, SiteToCall::ViewChanged(Box::new(view.clone())));
            }
            self.children.lingering.push_back((contact, now_ms()));
        }
        while self.children.lingering.len() > FINISHED_CONTACTS_MAX {
            if let Some((old, _)) = self.children.lingering.pop_front() {
                self.children.call_actors.remove(&old);
            }
        }
        view
    }

    /// Finishes the contact and answers its final view.
    pub(super) fn finish_reply(&mut self, contact: ContactId) -> SiteResult {
        self.finish(contact)
            .map(SiteReply::contact)
            .ok_or_else(|| SiteError::NotFound(format!("contact {contact} not found")))
    }

    /// Drops the addresses of Call actors whose linger is over: they stop.
    pub(super) fn sweep_lingering(&mut self) {
        let now = now_ms();
        while let Some((contact, finished_at_ms)) = self.children.lingering.front().copied() {
            if finished_at_ms.saturating_add(CALL_LINGER_AFTER_FINISH_MS) > now {
                break;
            }
            self.children.lingering.pop_front();
            self.children.call_actors.remove(&contact);
        }
    }
}

impl Handler<Subscribe> for SiteActor {
    type Result = ResponseFuture<Result<(), SiteError>>;

    fn handle(&mut self, subscribe: Subscribe, _ctx: &mut Self::Context) -> Self::Result {
        let full = |_| SiteError::Conflict("too many streams".to_string());
        let result = match subscribe.audience {
            Audience::Agent(login) => {
                let agent = match self.agent_id(&login) {
                    Ok(agent) => agent,
                    Err(error) => return Box::pin(async move { Err(error) }),
                };
                if let Some(address) = self.children.agent_actors.get(&agent).cloned() {
                    return Box::pin(async move {
                        match address.send(SubscribeAgentStream(subscribe.sender)).await {
                            Ok(result) => result.map_err(full),
                            Err(_) => Err(SiteError::Conflict(
                                "the agent's desktop is restarting; retry".to_string(),
                            )),
                        }
                    });
                }
                // A logged-out agent's desktop gets its state at once, as a logged-in one's
                // does from its Agent actor.
                let state = self
                    .site
                    .agent_state(agent)
                    .unwrap_or(AgentState::LoggedOut);
                let since_ms = self.roster.state_since_ms.get(&agent).copied();
                let snapshot = super::views::state_message(state, since_ms);
                let streams = self.streams.parked_agents.entry(agent).or_default();
                let added = streams.add(subscribe.sender).map_err(full);
                if added.is_ok() {
                    streams.send_to_last(snapshot.to_string());
                }
                added
            }
            Audience::Supervisor => {
                let result = self
                    .streams
                    .supervisors
                    .add(subscribe.sender.clone())
                    .map_err(full);
                if result.is_ok() {
                    for queue in &self.children.queue_actors {
                        queue.do_send(SubscribeQueueStream(subscribe.sender.clone()));
                    }
                }
                result
            }
            Audience::Gateway => self.streams.gateways.add(subscribe.sender).map_err(full),
        };
        Box::pin(async move { result })
    }
}

impl Handler<AgentToSite> for SiteActor {
    type Result = ();

    fn handle(&mut self, message: AgentToSite, ctx: &mut Self::Context) {
        match message {
            AgentToSite::OfferExpired { agent, contact } => {
                self.offer_expired(contact, agent);
            }
            AgentToSite::Restarted(agent) => {
                // A restarted actor of a logged-out agent gets nothing: it stops when the
                // last address to it goes.
                if self.children.agent_actors.contains_key(&agent) {
                    let state = self
                        .site
                        .agent_state(agent)
                        .unwrap_or(AgentState::LoggedOut);
                    let since_ms = self
                        .roster
                        .state_since_ms
                        .get(&agent)
                        .copied()
                        .unwrap_or_else(crate::clock::now_ms);
                    let offers = self
                        .live
                        .offers
                        .iter()
                        .filter(|(_, (holder, _))| *holder == agent)
                        .filter_map(|(contact, (_, deadline_ms))| {
                            Some((*contact, self.contact_view(*contact)?, *deadline_ms))
                        })
                        .collect();
                    self.tell_agent(
                        agent,
                        SiteToAgent::Restore {
                            state,
                            since_ms,
                            offers,
                        },
                    );
                }
            }
            AgentToSite::Released { agent, streams } => {
                if let Some(address) = self.children.agent_actors.get(&agent) {
                    // Logged in again (or restarted) meanwhile: the streams go to the actor.
                    for stream in streams {
                        address.do_send(SubscribeAgentStream(stream));
                    }
                } else {
                    let parked = self.streams.parked_agents.entry(agent).or_default();
                    for stream in streams {
                        let _ = parked.add(stream);
                    }
                }
            }
        }
        self.flush(ctx);
    }
}

impl Handler<CallToSite> for SiteActor {
    type Result = ();

    fn handle(&mut self, message: CallToSite, _ctx: &mut Self::Context) {
        match message {
            CallToSite::Restarted(contact) => {
                if let Some(view) = self.contact_view(contact) {
                    self.tell_call(contact, SiteToCall::ViewChanged(Box::new(view)));
                }
            }
        }
    }
}

impl Handler<QueueToSite> for SiteActor {
    type Result = ();

    fn handle(&mut self, message: QueueToSite, _ctx: &mut Self::Context) {
        match message {
            QueueToSite::Restarted(skill) => self.publish_queue(skill),
        }
    }
}

impl Handler<LookupChildren> for SiteActor {
    type Result = SiteChildren;

    fn handle(&mut self, _lookup: LookupChildren, _ctx: &mut Self::Context) -> Self::Result {
        SiteChildren {
            agents: self
                .children
                .agent_actors
                .iter()
                .map(|(agent, address)| {
                    (
                        self.roster.logins.get(agent).cloned().unwrap_or_default(),
                        address.clone(),
                    )
                })
                .collect(),
            calls: self
                .children
                .call_actors
                .iter()
                .map(|(contact, address)| (contact.0, address.clone()))
                .collect(),
            queues: self.children.queue_actors.clone(),
            counts: self.children.counts.clone(),
        }
    }
}
