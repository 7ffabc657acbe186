//! Read models of the Site actor: contact, agent and queue views, the metrics snapshot, and
//! contact lookups (a finished contact's view is its Call actor's).

use std::collections::{BTreeMap, VecDeque};

use actix::prelude::*;
use callgrid_domain::{
    AgentId, AgentState, Channel, ContactId, Counters, Direction, Line, SkillId, Topic,
};
use serde::Serialize;

use super::SiteActor;
use super::messages::{ContactStage, LookupContact, LookupMetrics, SiteError, SiteResult};
use crate::actors::call::{CallLookupError, LookupCall};
use crate::actors::overflow::{OverflowedFrom, OverflowedTo};
use crate::clock::now_ms;

/// One queue's live view (the Queue actor's, a row of `GET /supervisor/queues`, `/metrics`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueView {
    /// Skill name.
    pub skill: String,
    /// Channel the skill serves.
    pub channel: Channel,
    /// Line the skill belongs to.
    pub line: Line,
    /// Contacts waiting.
    pub in_queue: u32,
    /// Age of the oldest waiting contact.
    pub oldest_age_ms: Option<u64>,
    /// Age of the newest waiting contact.
    pub newest_age_ms: Option<u64>,
    /// Estimated wait for a new contact (none when no agent can take it).
    pub wait_ms_estimated: Option<u64>,
    /// Agents logged in with the skill.
    pub agents_staffed: u32,
    /// Agents available.
    pub agents_available: u32,
    /// Agents ringing or talking.
    pub agents_on_contact: u32,
    /// Agents in wrap-up.
    pub agents_wrap_up: u32,
    /// Agents not ready.
    pub agents_not_ready: u32,
}

/// A contact as the API, the desktop and the gateway see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContactView {
    /// Contact id (unique in the cluster, below 2^53).
    pub id: u64,
    /// Caller number (normalized).
    pub caller: String,
    /// Voice or chat.
    pub channel: Channel,
    /// IVR topic.
    pub topic: Topic,
    /// Skill name the contact is queued for (after a transfer: the new skill).
    pub skill: String,
    /// Inbound or outbound callback.
    pub direction: Direction,
    /// The callback this contact works, if it is one.
    pub callback: Option<u64>,
    /// Login of the agent it is offered to or with.
    pub agent: Option<String>,
    /// Where the contact is.
    pub stage: ContactStage,
    /// Arrival, ms since the Unix epoch.
    pub arrived_at_ms: u64,
    /// Position in its queue while waiting (1 = next).
    pub queue_position: Option<u32>,
    /// Estimated wait while queued.
    pub wait_ms_estimated: Option<u64>,
    /// Wrap-up code, once wrapped up.
    pub wrap_up_code: Option<String>,
    /// The skill it was transferred from.
    pub transferred_from: Option<String>,
    /// The site it was overflowed from.
    pub overflowed_from: Option<OverflowedFrom>,
    /// The site it was overflowed to.
    pub overflowed_to: Option<OverflowedTo>,
    /// The chat transcript (lookups only; absent on streams).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<ChatLine>>,
}

/// Who wrote a chat line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatAuthor {
    /// The customer (through the gateway).
    Customer,
    /// The agent (from the desktop).
    Agent,
}

/// One line of a chat transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatLine {
    /// Who wrote it.
    pub from: ChatAuthor,
    /// The agent's login when an agent wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Text.
    pub text: String,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
}

/// An agent as the desktop and the supervisor see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentView {
    /// Login.
    pub login: String,
    /// Numeric id from the roster.
    pub id: u32,
    /// Current state by name: `logged_out`, `available`, `reserved`, `busy`, `wrap_up`,
    /// `not_ready` (docs/CONVENTIONS.md).
    pub state: &'static str,
    /// In `not_ready`: the reason's name (`break`, `other_work`, `no_answer`, `rejected`,
    /// `code_<n>`); null otherwise.
    pub not_ready_reason: Option<String>,
    /// Since when, ms since the Unix epoch.
    pub state_since_ms: Option<u64>,
    /// Time in the current state.
    pub time_in_state_ms: Option<u64>,
    /// The contacts it holds (offered, talking, wrap-up).
    pub contacts: Vec<ContactView>,
    /// In answers to login, logout and state changes: whether the agent's state changed now
    /// (`false`: it already was so; a logout during a contact takes effect after wrap-up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<bool>,
}

/// Every agent of the site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentsView {
    /// Site id.
    pub site: String,
    /// Agents, by login.
    pub agents: Vec<AgentView>,
}

/// Every queue of the site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueuesView {
    /// Site id.
    pub site: String,
    /// One row per skill.
    pub queues: Vec<QueueView>,
}

/// A supervisor's listen/whisper/barge request, as the gateway receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonitorRequest {
    /// Always `monitor` (stream message type).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// listen, whisper or barge.
    pub mode: String,
    /// Supervisor name.
    pub supervisor: String,
    /// Agent login.
    pub agent: String,
    /// The agent's talking contact.
    pub contact: u64,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
}

/// A chat message taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// Always true.
    pub accepted: bool,
}

/// What the Site actor answers an input: one typed view per kind of request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SiteReply {
    /// A contact.
    Contact(Box<ContactView>),
    /// One agent.
    Agent(Box<AgentView>),
    /// Every agent.
    Agents(AgentsView),
    /// Every queue.
    Queues(QueuesView),
    /// A monitoring request sent to the gateways.
    Monitor(MonitorRequest),
    /// Interval reports.
    Report(Box<super::reports::DayReport>),
    /// A message taken.
    Accepted(Accepted),
}

impl SiteReply {
    /// A contact reply.
    pub fn contact(view: ContactView) -> Self {
        SiteReply::Contact(Box::new(view))
    }

    /// An agent reply.
    pub fn agent(view: AgentView) -> Self {
        SiteReply::Agent(Box::new(view))
    }
}

/// Adds `value` to a window of the most recent samples, dropping the oldest once it holds
/// `max` (the offer latencies here, the proposal latencies of `replicate::Proposer`).
pub fn push_sample(samples: &mut VecDeque<u64>, value: u64, max: usize) {
    debug_assert!(max > 0, "a sample window holds at least one sample");
    if samples.len() >= max {
        samples.pop_front();
    }
    samples.push_back(value);
}

/// Quantiles of a latency sample set (microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest sample.
    pub max: u64,
    /// Samples.
    pub count: usize,
}

impl LatencySummary {
    /// The summary of `samples`; `None` when there are none.
    pub fn of(samples: &VecDeque<u64>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted: Vec<u64> = samples.iter().copied().collect();
        sorted.sort_unstable();
        let at = |quantile: f64| {
            let position =
                ((sorted.len() as f64 * quantile).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[position]
        };
        Some(Self {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: at(1.0),
            count: sorted.len(),
        })
    }
}

/// Idle agents for a skill at a peer site, from its last summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerIdle {
    /// Peer site id.
    pub peer: String,
    /// Skill name.
    pub skill: String,
    /// Idle agents.
    pub idle_agents: u32,
}

/// The routing part of `/metrics`: what the Site actor knows, rendered by `api::metrics`.
#[derive(Debug, Clone, PartialEq, MessageResponse)]
pub struct RoutingMetrics {
    /// Site id (the `site` label).
    pub site: String,
    /// One row per skill.
    pub queues: Vec<QueueView>,
    /// Contact counters since start.
    pub totals: Counters,
    /// Service level by the configured policy.
    pub service_level: Option<f64>,
    /// Abandoned / offered.
    pub abandon_rate: Option<f64>,
    /// Average speed of answer.
    pub asa_ms: Option<f64>,
    /// Average handle time.
    pub aht_ms: Option<f64>,
    /// Occupancy.
    pub occupancy: Option<f64>,
    /// Overflow rule applications.
    pub overflow_polls: u64,
    /// Arrival to first offer, recent contacts.
    pub offer_latency_us: Option<LatencySummary>,
    /// Arrival to offer for contacts that found a free agent.
    pub offer_latency_immediate_us: Option<LatencySummary>,
    /// Child actors running: agents, calls (lingering included), queues.
    pub actors_running: [(&'static str, usize); 3],
    /// Child actor restarts.
    pub actor_restarts: usize,
    /// Offers timed out by the Site's sweep.
    pub offer_timers_lost: u64,
    /// Agents by state name.
    pub agents_by_state: BTreeMap<&'static str, u64>,
    /// Idle agents per skill at each peer.
    pub peer_idle: Vec<PeerIdle>,
    /// The durable outbox: depth, age, commit lag, counters.
    pub outbox: crate::outbox::OutboxSnapshot,
}

/// The reason's name of a not-ready state (null in every other state), as views and streams
/// show it beside the state's name.
pub fn not_ready_reason(state: AgentState) -> Option<String> {
    state
        .not_ready_reason()
        .map(|reason| reason.name().into_owned())
}

/// The agent stream's state message: `{"type": "state", "state": <name>, "not_ready_reason":
/// <name or null>, "since_ms": <epoch ms or null>}`.
pub fn state_message(state: AgentState, since_ms: Option<u64>) -> serde_json::Value {
    serde_json::json!({
        "type": "state",
        "state": state.name(),
        "not_ready_reason": not_ready_reason(state),
        "since_ms": since_ms,
    })
}

impl SiteActor {
    /// A live contact's view; `None` once the Site forgot it (finished, or never here).
    pub(super) fn contact_view(&self, contact: ContactId) -> Option<ContactView> {
        let record = self.live.contacts.get(&contact)?;
        let position = self.site.queue_position(contact);
        Some(ContactView {
            id: record.id.0,
            caller: record.caller.clone(),
            channel: record.channel,
            topic: record.topic,
            skill: self.skill_name(record.skill),
            direction: record.direction,
            callback: record.callback,
            agent: record
                .agent
                .and_then(|agent| self.roster.logins.get(&agent).cloned()),
            stage: record.stage,
            arrived_at_ms: record.arrived_at_ms,
            queue_position: position.map(|position| position.position),
            wait_ms_estimated: position
                .map(|position| position.estimated_wait_ms)
                .filter(|wait| *wait != u64::MAX),
            wrap_up_code: record.wrap_up_code.clone(),
            transferred_from: record.transferred_from.map(|skill| self.skill_name(skill)),
            overflowed_from: record.overflowed_from.clone(),
            overflowed_to: record.overflowed_to.clone(),
            messages: None,
        })
    }

    /// A live contact's view as a reply; an unknown contact is not found.
    pub(super) fn contact_reply(&self, contact: ContactId) -> SiteResult {
        self.contact_view(contact)
            .map(SiteReply::contact)
            .ok_or_else(|| SiteError::NotFound(format!("contact {contact} not found")))
    }

    /// An agent's view: state, since when, and the contacts it holds.
    pub(super) fn agent_view(&self, login: &str, agent: AgentId) -> AgentView {
        let state = self
            .site
            .agent_state(agent)
            .unwrap_or(AgentState::LoggedOut);
        let since = self.roster.state_since_ms.get(&agent).copied();
        let contacts: Vec<ContactView> = self
            .site
            .agent_contacts(agent)
            .map(|contacts| {
                contacts
                    .filter_map(|contact| self.contact_view(contact))
                    .collect()
            })
            .unwrap_or_default();
        AgentView {
            login: login.to_string(),
            id: agent.0,
            state: state.name(),
            not_ready_reason: not_ready_reason(state),
            state_since_ms: since,
            time_in_state_ms: since.map(|since| now_ms().saturating_sub(since)),
            contacts,
            changed: None,
        }
    }

    /// Every queue of the site.
    pub(super) fn queues_view(&self) -> QueuesView {
        let queues = (0..self.config.routing.skills.len())
            .filter_map(|index| u16::try_from(index).ok())
            .filter_map(|index| self.queue_view(SkillId(index)))
            .collect();
        QueuesView {
            site: self.config.site.id.clone(),
            queues,
        }
    }

    /// One queue's live view, typed; `None` for an unknown skill.
    pub(super) fn queue_view(&self, skill_id: SkillId) -> Option<QueueView> {
        let skill = self.config.routing.skills.get(skill_id.index())?;
        let now = now_ms();
        let (mut oldest, mut newest): (Option<u64>, Option<u64>) = (None, None);
        for record in self.live.contacts.values() {
            if record.skill == skill_id && record.stage == ContactStage::Queued {
                oldest =
                    Some(oldest.map_or(record.arrived_at_ms, |at| at.min(record.arrived_at_ms)));
                newest =
                    Some(newest.map_or(record.arrived_at_ms, |at| at.max(record.arrived_at_ms)));
            }
        }
        let (mut staffed, mut available, mut on_contact, mut wrap_up, mut not_ready) =
            (0, 0, 0, 0, 0);
        for (agent, skills) in &self.roster.agent_skills {
            if !skills.contains(&skill_id) {
                continue;
            }
            match self
                .site
                .agent_state(*agent)
                .unwrap_or(AgentState::LoggedOut)
            {
                AgentState::LoggedOut => continue,
                AgentState::Available => available += 1,
                AgentState::Reserved | AgentState::Busy => on_contact += 1,
                AgentState::WrapUp => wrap_up += 1,
                AgentState::NotReady(_) => not_ready += 1,
            }
            staffed += 1;
        }
        let estimated = self
            .site
            .estimate_wait_ms(skill_id, self.site.waiting(skill_id).saturating_add(1));
        Some(QueueView {
            skill: skill.name.clone(),
            channel: skill.channel,
            line: skill.line,
            in_queue: self.site.waiting(skill_id),
            oldest_age_ms: oldest.map(|oldest| now.saturating_sub(oldest)),
            newest_age_ms: newest.map(|newest| now.saturating_sub(newest)),
            wait_ms_estimated: (estimated != u64::MAX).then_some(estimated),
            agents_staffed: staffed,
            agents_available: available,
            agents_on_contact: on_contact,
            agents_wrap_up: wrap_up,
            agents_not_ready: not_ready,
        })
    }

    /// The routing metrics snapshot.
    pub(super) fn metrics_snapshot(&self) -> RoutingMetrics {
        let queues = (0..self.config.routing.skills.len())
            .filter_map(|index| u16::try_from(index).ok())
            .filter_map(|index| self.queue_view(SkillId(index)))
            .collect();
        let totals = self.metrics.totals();
        let policy = self.config.metrics.service_level_policy;
        let mut agents_by_state: BTreeMap<&'static str, u64> = BTreeMap::new();
        for agent in self.roster.logins.keys() {
            let state = self
                .site
                .agent_state(*agent)
                .unwrap_or(AgentState::LoggedOut);
            *agents_by_state.entry(state.name()).or_default() += 1;
        }
        let mut peer_idle = Vec::new();
        for peer in &self.overflow.peers {
            let name = self
                .config
                .peer_site_by_number(peer.site.0)
                .map_or("", |peer| peer.id.as_str());
            for (index, cell) in peer.skills.iter().enumerate() {
                let skill = u16::try_from(index)
                    .map(|index| self.skill_name(SkillId(index)))
                    .unwrap_or_default();
                peer_idle.push(PeerIdle {
                    peer: name.to_string(),
                    skill,
                    idle_agents: cell.idle_agents,
                });
            }
        }
        let (agents, calls, queue_actors, restarts) = self.children.counts.snapshot();
        RoutingMetrics {
            site: self.config.site.id.clone(),
            queues,
            totals,
            service_level: totals.service_level(policy),
            abandon_rate: totals.abandon_rate(),
            asa_ms: totals.asa_ms(),
            aht_ms: totals.aht_ms(),
            occupancy: totals.occupancy(),
            overflow_polls: self.overflow.polls,
            offer_latency_us: LatencySummary::of(&self.stats.offer_latency_us),
            offer_latency_immediate_us: LatencySummary::of(&self.stats.offer_latency_immediate_us),
            actors_running: [("agent", agents), ("call", calls), ("queue", queue_actors)],
            actor_restarts: restarts,
            offer_timers_lost: self.stats.offer_timers_lost,
            agents_by_state,
            peer_idle,
            outbox: self.outbox.snapshot(),
        }
    }
}

impl Handler<LookupMetrics> for SiteActor {
    type Result = RoutingMetrics;

    fn handle(&mut self, _lookup: LookupMetrics, _ctx: &mut Self::Context) -> Self::Result {
        self.metrics_snapshot()
    }
}

impl Handler<LookupContact> for SiteActor {
    type Result = ResponseFuture<Result<ContactView, SiteError>>;

    fn handle(&mut self, lookup: LookupContact, _ctx: &mut Self::Context) -> Self::Result {
        let contact = lookup.contact;
        // A live contact: the Site checks the agent and gives the current view (queue
        // positions move); a finished one: its Call actor holds the final view.
        let fresh = if self.live.contacts.contains_key(&contact) {
            if let Some(login) = &lookup.agent
                && let Err(error) = self.contact_for_agent(login, contact)
            {
                return Box::pin(async move { Err(error) });
            }
            self.contact_view(contact)
        } else {
            None
        };
        let Some(address) = self.children.call_actors.get(&contact).cloned() else {
            return Box::pin(async move {
                Err(SiteError::NotFound(format!("contact {contact} not found")))
            });
        };
        let agent = lookup.agent;
        Box::pin(async move {
            match address.send(LookupCall { fresh, agent }).await {
                Ok(Ok(view)) => Ok(view),
                Ok(Err(error @ CallLookupError::NotYours(..))) => {
                    Err(SiteError::Forbidden(error.to_string()))
                }
                Ok(Err(error @ CallLookupError::NotReady(..))) => {
                    Err(SiteError::Conflict(error.to_string()))
                }
                Err(_) => Err(SiteError::NotFound(format!("contact {contact} not found"))),
            }
        })
    }
}
