//! The Agent actor: one per logged-in agent, started by the Site at login and stopped at
//! logout.
//!
//! It owns what belongs to one desktop and to no routing decision: the desktop's stream
//! subscribers, the timers of the offers ringing at the agent, and the agent's state with the
//! time it entered it. When an offer rings out it tells the Site (`AgentToSite::OfferExpired`);
//! the Site decides (through the domain: the contact back at the head of its queue, the agent
//! not ready), because the contact may have been accepted meanwhile.
//!
//! If a handler panics the actor is restarted by its supervisor; the restarted actor asks the
//! Site for the agent's state and ringing offers (`AgentToSite::Restarted`) and re-arms its
//! timers from the deadlines the Site holds. Desktop streams survive a restart.

use std::collections::HashMap;

use actix::prelude::*;
use callgrid_domain::{AgentId, AgentState, ContactId};
use serde_json::{Value, json};

use super::site::views::{ContactView, state_message};
use tokio::sync::mpsc;

use super::{ChildCounts, StreamsFull, Subscribers, count_in, count_out, guarded};

/// Messages an Agent actor may hold before the Site's sends to it fail.
pub const AGENT_MAILBOX_CAPACITY: usize = 256;

/// What the Site tells an Agent actor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum SiteToAgent {
    /// A contact rings at the agent until `deadline_ms` (wall clock, ms since the epoch).
    Offer {
        /// Contact.
        contact: ContactId,
        /// The contact as the desktop shows it.
        view: Box<ContactView>,
        /// When the offer rings out.
        deadline_ms: u64,
    },
    /// The offer ended (accepted, rejected, timed out): stop its timer, tell nobody.
    OfferSettled(ContactId),
    /// The offer was withdrawn (caller hung up): stop its timer and tell the desktop.
    OfferCancelled(ContactId),
    /// The agent's state changed at `since_ms`.
    StateChanged {
        /// New state.
        state: AgentState,
        /// When (ms since the epoch).
        since_ms: u64,
    },
    /// A message for the desktop (chat text, ...), already JSON.
    Notify(Value),
    /// Everything the Site holds for this agent, after a restart of this actor.
    Restore {
        /// State.
        state: AgentState,
        /// Since when (ms since the epoch).
        since_ms: u64,
        /// Offers ringing: contact, view, deadline.
        offers: Vec<(ContactId, ContactView, u64)>,
    },
    /// Makes the handler panic (tests of supervision).
    #[cfg(test)]
    Panic,
}

/// A desktop stream to add.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StreamsFull>")]
pub struct SubscribeAgentStream(pub mpsc::Sender<String>);

/// What an Agent actor tells the Site.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum AgentToSite {
    /// The offer of `contact` rang out at `agent`.
    OfferExpired {
        /// Agent.
        agent: AgentId,
        /// Contact.
        contact: ContactId,
    },
    /// The actor restarted after a failure and needs `SiteToAgent::Restore`.
    Restarted(AgentId),
    /// The actor stopped; here are its desktop streams (kept by the Site while the agent is
    /// logged out, or handed to the next Agent actor).
    Released {
        /// Agent.
        agent: AgentId,
        /// The streams.
        streams: Vec<mpsc::Sender<String>>,
    },
}

/// The Agent actor.
pub struct AgentActor {
    agent: AgentId,
    login: String,
    site: Recipient<AgentToSite>,
    counts: ChildCounts,
    streams: Subscribers,
    state: AgentState,
    since_ms: u64,
    timers: HashMap<ContactId, SpawnHandle>,
    restarted: bool,
}

impl std::fmt::Debug for AgentActor {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AgentActor")
            .field("login", &self.login)
            .finish()
    }
}

impl AgentActor {
    /// An actor for `login`, with the desktop streams opened before the login.
    pub fn new(
        agent: AgentId,
        login: String,
        site: Recipient<AgentToSite>,
        counts: ChildCounts,
        streams: Vec<mpsc::Sender<String>>,
    ) -> Self {
        let mut subscribers = Subscribers::default();
        for stream in streams {
            let _ = subscribers.add(stream);
        }
        Self {
            agent,
            login,
            site,
            counts,
            streams: subscribers,
            state: AgentState::LoggedOut,
            since_ms: crate::clock::now_ms(),
            timers: HashMap::new(),
            restarted: false,
        }
    }

    fn arm(&mut self, ctx: &mut Context<Self>, contact: ContactId, deadline_ms: u64) {
        let delay = crate::clock::wall_delay(deadline_ms.saturating_sub(crate::clock::now_ms()));
        let agent = self.agent;
        let handle = ctx.run_later(delay, move |actor, _ctx| {
            actor.timers.remove(&contact);
            actor
                .site
                .do_send(AgentToSite::OfferExpired { agent, contact });
        });
        if let Some(previous) = self.timers.insert(contact, handle) {
            ctx.cancel_future(previous);
        }
    }

    fn disarm(&mut self, ctx: &mut Context<Self>, contact: ContactId) {
        if let Some(handle) = self.timers.remove(&contact) {
            ctx.cancel_future(handle);
        }
    }

    fn handle_message(&mut self, message: SiteToAgent, ctx: &mut Context<Self>) {
        match message {
            SiteToAgent::Offer {
                contact,
                view,
                deadline_ms,
            } => {
                self.arm(ctx, contact, deadline_ms);
                self.streams.publish(
                    &json!({"type": "offer", "contact": view, "timeout_at_ms": deadline_ms}),
                );
            }
            SiteToAgent::OfferSettled(contact) => self.disarm(ctx, contact),
            SiteToAgent::OfferCancelled(contact) => {
                self.disarm(ctx, contact);
                self.streams
                    .publish(&json!({"type": "offer_cancelled", "contact": contact.0}));
            }
            SiteToAgent::StateChanged { state, since_ms } => {
                self.state = state;
                self.since_ms = since_ms;
                self.streams.publish(&state_message(state, Some(since_ms)));
            }
            SiteToAgent::Notify(value) => self.streams.publish(&value),
            SiteToAgent::Restore {
                state,
                since_ms,
                offers,
            } => {
                self.state = state;
                self.since_ms = since_ms;
                for (contact, _view, deadline_ms) in offers {
                    self.arm(ctx, contact, deadline_ms);
                }
                tracing::info!(agent = %self.login, offers = self.timers.len(), "agent actor restored");
            }
            #[cfg(test)]
            SiteToAgent::Panic => panic!("agent actor asked to fail"),
        }
    }
}

impl Actor for AgentActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(AGENT_MAILBOX_CAPACITY);
        count_in(&self.counts.agents);
        if self.restarted {
            self.site.do_send(AgentToSite::Restarted(self.agent));
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        count_out(&self.counts.agents);
        let streams = self.streams.take();
        if !streams.is_empty() {
            self.site.do_send(AgentToSite::Released {
                agent: self.agent,
                streams,
            });
        }
    }
}

impl actix::Supervised for AgentActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::warn!(agent = %self.login, "agent actor restarting");
        count_in(&self.counts.restarts);
        // Timers died with the old context; the Site resends what it holds.
        self.timers.clear();
        self.restarted = true;
    }
}

impl Handler<SiteToAgent> for AgentActor {
    type Result = ();

    fn handle(&mut self, message: SiteToAgent, ctx: &mut Self::Context) {
        if !guarded("agent", || self.handle_message(message, ctx)) {
            ctx.stop();
        }
    }
}

impl Handler<SubscribeAgentStream> for AgentActor {
    type Result = Result<(), StreamsFull>;

    fn handle(
        &mut self,
        subscribe: SubscribeAgentStream,
        _ctx: &mut Self::Context,
    ) -> Self::Result {
        self.streams.add(subscribe.0)?;
        self.streams
            .send_to_last(state_message(self.state, Some(self.since_ms)).to_string());
        Ok(())
    }
}
