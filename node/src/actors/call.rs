//! The Call actor: one per contact, started by the Site at arrival, stopped when the contact
//! is finished and its linger for lookups is over.
//!
//! It owns what belongs to one contact and to no routing decision: the chat transcript
//! (bounded), the events the gateway sees about the contact (stage changes with the queue
//! position and estimated wait, so the IVR can tell a waiting caller; the dial request when a
//! callback rings at an agent), and the contact's view for `GET /contacts/{id}` — fresh from
//! the Site while the contact is live, the final one after it finished (the Site forgets
//! finished contacts; the Call actor lingers for lookups).
//!
//! If a handler panics the actor is restarted by its supervisor; the restarted actor asks the
//! Site for the contact's current view (`CallToSite::Restarted`). The transcript and the last
//! view are kept (an assignment either happened or not; a panic cannot leave them half-built).

use std::collections::VecDeque;

use actix::prelude::*;
use callgrid_domain::{ContactId, Direction};
use serde_json::json;

use super::site::ContactStage;
use super::site::views::{ChatLine, ContactView};

use super::{ChildCounts, GatewayStreams, count_in, count_out, guarded};

/// Messages a Call actor may hold before the Site's sends to it fail.
pub const CALL_MAILBOX_CAPACITY: usize = 64;
/// Chat messages kept per contact.
pub const CHAT_MESSAGES_MAX: usize = 200;

/// What the Site tells a Call actor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum SiteToCall {
    /// The contact's view changed (stage, agent, skill, queue position...).
    ViewChanged(Box<ContactView>),
    /// A chat message (customer or agent) to keep in the transcript.
    ChatMessage(ChatLine),
    /// Makes the handler panic (tests of supervision).
    #[cfg(test)]
    Panic,
}

/// A lookup of the contact: `fresh` is the Site's current view while the contact is live
/// (queue positions move without the contact changing); `agent` restricts to that agent.
#[derive(Debug, Message)]
#[rtype(result = "Result<ContactView, CallLookupError>")]
pub struct LookupCall {
    /// The Site's current view, if the contact is live.
    pub fresh: Option<ContactView>,
    /// The requesting agent's login, if the caller is an agent.
    pub agent: Option<String>,
}

/// Why a lookup was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallLookupError {
    /// The contact was not with this agent.
    #[error("contact {0} is not with agent `{1}`")]
    NotYours(u64, String),
    /// The actor has no view yet (restarting).
    #[error("contact {0} is not available yet")]
    NotReady(u64),
}

/// What a Call actor tells the Site.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum CallToSite {
    /// The actor restarted after a failure and needs the contact's view.
    Restarted(ContactId),
}

/// The Call actor.
pub struct CallActor {
    contact: ContactId,
    site: Recipient<CallToSite>,
    gateways: GatewayStreams,
    counts: ChildCounts,
    view: Option<ContactView>,
    transcript: VecDeque<ChatLine>,
    dialed_agent: Option<String>,
    restarted: bool,
}

impl std::fmt::Debug for CallActor {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CallActor")
            .field("contact", &self.contact.0)
            .finish()
    }
}

impl CallActor {
    /// An actor for `contact`.
    pub fn new(
        contact: ContactId,
        site: Recipient<CallToSite>,
        gateways: GatewayStreams,
        counts: ChildCounts,
    ) -> Self {
        Self {
            contact,
            site,
            gateways,
            counts,
            view: None,
            transcript: VecDeque::new(),
            dialed_agent: None,
            restarted: false,
        }
    }

    fn with_transcript(&self, view: &ContactView) -> ContactView {
        let mut view = view.clone();
        view.messages = Some(self.transcript.iter().cloned().collect());
        view
    }

    fn on_view(&mut self, view: ContactView) {
        let stage_changed = self.view.as_ref().map(|old| old.stage) != Some(view.stage);
        if stage_changed {
            self.gateways.publish(&json!({
                "type": "contact",
                "contact": self.contact.0,
                "stage": view.stage,
                "skill": view.skill,
                "queue_position": view.queue_position,
                "wait_ms_estimated": view.wait_ms_estimated,
                // Set when the contact left for another site: re-present the call there.
                "overflowed_to": view.overflowed_to,
            }));
        }
        // A callback ringing at an agent: the gateway dials the customer for that agent.
        let offered = view.stage == ContactStage::Offered;
        if view.direction == Direction::OutboundCallback && offered {
            if view.agent.is_some() && view.agent != self.dialed_agent {
                self.gateways.publish(&json!({
                    "type": "dial",
                    "contact": self.contact.0,
                    "callback": view.callback,
                    "number": view.caller,
                    "agent": view.agent,
                }));
                self.dialed_agent = view.agent.clone();
            }
        } else if !offered {
            self.dialed_agent = None;
        }
        self.view = Some(view);
    }

    fn handle_message(&mut self, message: SiteToCall) {
        match message {
            SiteToCall::ViewChanged(view) => self.on_view(*view),
            SiteToCall::ChatMessage(message) => {
                if self.transcript.len() >= CHAT_MESSAGES_MAX {
                    self.transcript.pop_front();
                }
                self.transcript.push_back(message);
            }
            #[cfg(test)]
            SiteToCall::Panic => panic!("call actor asked to fail"),
        }
    }
}

impl Actor for CallActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(CALL_MAILBOX_CAPACITY);
        count_in(&self.counts.calls);
        if self.restarted {
            self.site.do_send(CallToSite::Restarted(self.contact));
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        count_out(&self.counts.calls);
    }
}

impl actix::Supervised for CallActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::warn!(contact = self.contact.0, "call actor restarting");
        count_in(&self.counts.restarts);
        // The last view stays until the Site sends the current one (a finished contact's
        // final view is held only here).
        self.restarted = true;
    }
}

impl Handler<SiteToCall> for CallActor {
    type Result = ();

    fn handle(&mut self, message: SiteToCall, ctx: &mut Self::Context) {
        if !guarded("call", || self.handle_message(message)) {
            ctx.stop();
        }
    }
}

impl Handler<LookupCall> for CallActor {
    type Result = Result<ContactView, CallLookupError>;

    fn handle(&mut self, lookup: LookupCall, _ctx: &mut Self::Context) -> Self::Result {
        let Some(view) = lookup.fresh.as_ref().or(self.view.as_ref()) else {
            return Err(CallLookupError::NotReady(self.contact.0));
        };
        if let Some(login) = lookup.agent
            && view.agent.as_deref() != Some(login.as_str())
        {
            return Err(CallLookupError::NotYours(self.contact.0, login));
        }
        Ok(self.with_transcript(view))
    }
}
