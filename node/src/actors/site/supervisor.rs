//! Supervisor inputs: queue and agent views, monitoring requests, reports, the metrics
//! snapshot.

use actix::prelude::*;
use callgrid_domain::ContactPhase;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::messages::{SiteError, SiteResult};
use super::views::{AgentsView, MonitorRequest, SiteReply};
use super::{MONITOR_REQUESTS_MAX, SiteActor};
use crate::replicate::now_ms;
use crate::state::StateEvent;

impl SiteActor {
    /// Forwards the replicated state's events (reservation expired, complaint escalated, a
    /// callback claim that ran out) to this site's supervisor streams. Called from `started`:
    /// a restart drops the old subscription with the old context and subscribes again.
    pub(super) fn follow_state_events(&mut self, ctx: &mut Context<Self>) {
        let receiver = self.shared.subscribe_events();
        let events = futures::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(event) => return Some((event, receiver)),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "supervisor stream missed state events");
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        });
        ctx.add_stream(events);
    }
}

impl StreamHandler<StateEvent> for SiteActor {
    fn handle(&mut self, event: StateEvent, _ctx: &mut Self::Context) {
        let site = match &event {
            StateEvent::ReservationExpired { site, .. }
            | StateEvent::ComplaintEscalated { site, .. } => Some(site),
            StateEvent::CallbackClaimExpired { site, .. } => site.as_ref(),
        };
        // Every node applies every entry; each tells its own site's supervisors.
        if site != Some(&self.config.site.id) {
            return;
        }
        self.streams
            .supervisors
            .publish(&json!({"type": "state_event", "event": event}));
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // The shared state outlives the actor; if its channel closes, the site goes on.
    }
}

impl SiteActor {
    /// Every agent on the roster, with state and contacts.
    pub(super) fn agents_view(&self) -> AgentsView {
        let agents = self
            .roster
            .agents_by_login
            .iter()
            .map(|(login, agent)| self.agent_view(login, *agent))
            .collect();
        AgentsView {
            site: self.config.site.id.clone(),
            agents,
        }
    }

    /// A listen/whisper/barge request for the gateway.
    pub(super) fn monitor(&mut self, supervisor: &str, agent: &str, mode: &str) -> SiteResult {
        let agent_id = self.agent_id(agent)?;
        // The contact the agent is talking on (not one ringing or in wrap-up).
        let contact = self.site.agent_contacts(agent_id).and_then(|mut contacts| {
            contacts.find(|contact| {
                self.site.contact_phase(*contact) == Some(ContactPhase::Talking(agent_id))
            })
        });
        let Some(contact) = contact else {
            return Err(SiteError::Conflict(format!(
                "agent `{agent}` is not talking on any contact"
            )));
        };
        let request = MonitorRequest {
            kind: "monitor",
            mode: mode.to_string(),
            supervisor: supervisor.to_string(),
            agent: agent.to_string(),
            contact: contact.0,
            at_ms: now_ms(),
        };
        self.streams.gateways.publish(&request);
        if self.streams.monitor_requests.len() >= MONITOR_REQUESTS_MAX {
            self.streams.monitor_requests.pop_front();
        }
        self.streams.monitor_requests.push_back(request.clone());
        Ok(SiteReply::Monitor(request))
    }
}
