//! Supervisor inputs: queue and agent views, monitoring requests, reports, the metrics
//! snapshot.

use callgrid_domain::ContactPhase;

use super::messages::{SiteError, SiteResult};
use super::views::{AgentsView, MonitorRequest, SiteReply};
use super::{MONITOR_REQUESTS_MAX, SiteActor};
use crate::replicate::now_ms;

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
