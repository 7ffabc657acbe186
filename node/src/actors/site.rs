//! The Site actor: one per node, the thin shell around `callgrid_domain::Site`.
//!
//! It owns the domain state machine (queues per skill, agents, contacts — routing is decided
//! only there), turns API inputs into `handle_*` calls, and turns the domain's effects into
//! IO: offers pushed to the agent's stream with a timeout timer, events into metrics and the
//! supervisor stream, callback requests into Raft proposals. It also works due callbacks:
//! claims them through Raft and queues them as outbound contacts.
//!
//! Its mailbox is bounded ([`SITE_MAILBOX_CAPACITY`]); senders wait when it is full. Streams to
//! desktops are bounded channels; a desktop that does not read loses events, never the node.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use callgrid_domain::{
    AgentId, AgentSpec, AgentState, Channel, Contact, ContactId, ContactPhase, Direction, Effect,
    EventKind, Metrics, NotReadyReason, Priority, SiteId, SkillGrant, SkillId, TimeMs, Topic,
};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::config::{NodeConfig, parse_date_end_ms};
use crate::replicate::{Proposer, now_ms};
use crate::state::model::{Actor as Principal, CallbackOutcome, CallbackReason, DAY_MS};
use crate::state::{Command, Outcome, SharedState};

/// Messages the Site actor may hold before senders wait.
pub const SITE_MAILBOX_CAPACITY: usize = 4_096;
/// Events buffered per stream subscriber before events to it are dropped.
pub const STREAM_BUFFER_EVENTS: usize = 256;
/// Stream subscribers per agent, and supervisor/gateway subscribers in total.
pub const SUBSCRIBERS_MAX: usize = 64;
/// Chat messages kept per contact.
pub const CHAT_MESSAGES_MAX: usize = 200;
/// Finished contacts remembered for lookups.
pub const FINISHED_CONTACTS_MAX: usize = 10_000;
/// Due callbacks claimed per sweep.
pub const CALLBACKS_PER_SWEEP_MAX: usize = 32;
/// A due callback its owner site has not claimed for this long is taken by any site: the owner
/// is presumed down (failover of callbacks by rule; the claim through Raft picks one site).
pub const CALLBACK_ORPHAN_AFTER_MS: u64 = 120_000;
/// How often due callbacks are looked for.
pub const CALLBACK_SWEEP_INTERVAL: Duration = Duration::from_millis(500);
/// Monitoring requests kept for the gateway.
pub const MONITOR_REQUESTS_MAX: usize = 1_000;
/// Arrival-to-offer latency samples kept for the `/metrics` quantiles (most recent).
pub const OFFER_LATENCY_SAMPLES_MAX: usize = 100_000;

/// Why the Site actor refused an input.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SiteError {
    /// The agent, contact or skill is unknown here.
    #[error("{0}")]
    NotFound(String),
    /// The input does not fit the current state (domain refusal).
    #[error("{0}")]
    Conflict(String),
    /// The contact belongs to another agent.
    #[error("{0}")]
    Forbidden(String),
    /// The input is malformed.
    #[error("{0}")]
    Invalid(String),
}

/// Result of a Site actor request.
pub type SiteResult = Result<Value, SiteError>;

/// Where a contact is, as the node tracks it (the domain forgets contacts after talking).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactStage {
    /// Waiting in queue.
    Queued,
    /// Ringing at an agent.
    Offered,
    /// Talking.
    Talking,
    /// Agent in after-contact work.
    WrapUp,
    /// Done.
    Finished,
    /// Caller hung up while waiting.
    Abandoned,
    /// Refused at arrival (site full).
    Blocked,
}

#[derive(Debug, Clone)]
struct ContactRecord {
    id: ContactId,
    caller: String,
    channel: Channel,
    topic: Topic,
    skill: SkillId,
    direction: Direction,
    callback: Option<u64>,
    agent: Option<AgentId>,
    stage: ContactStage,
    arrived_at_ms: u64,
    arrived_at: std::time::Instant,
    offered_once: bool,
    wrap_up_code: Option<String>,
    transferred_from: Option<SkillId>,
    messages: VecDeque<Value>,
}

/// An input from the API.
#[derive(Debug)]
pub enum SiteInput {
    /// Gateway: a contact arrived.
    ContactArrived {
        /// Caller number (normalized).
        caller: String,
        /// Voice or chat.
        channel: Channel,
        /// IVR topic.
        topic: Topic,
        /// Skill override; otherwise derived from the topic.
        skill: Option<String>,
        /// Routing priority.
        priority: u8,
    },
    /// Gateway: the agent's leg was answered (same as accept on the desktop).
    ContactAnswered(ContactId),
    /// Gateway: the conversation ended.
    ContactEnded(ContactId),
    /// Gateway: the caller hung up while waiting or ringing.
    ContactAbandoned(ContactId),
    /// Gateway: a chat message from the customer.
    ChatMessage {
        /// Contact.
        contact: ContactId,
        /// Text.
        text: String,
    },
    /// A contact's details; `agent` restricts to that agent's own contacts.
    ContactView {
        /// Contact.
        contact: ContactId,
        /// Requesting agent, if the caller is an agent.
        agent: Option<String>,
    },
    /// Agent logs in.
    Login(String),
    /// Agent logs out.
    Logout(String),
    /// Agent becomes ready.
    Ready(String),
    /// Agent becomes not ready.
    NotReady {
        /// Login.
        login: String,
        /// Reason code.
        reason: u16,
    },
    /// Agent accepts an offer.
    Accept {
        /// Login.
        login: String,
        /// Contact.
        contact: ContactId,
    },
    /// Agent rejects an offer.
    Reject {
        /// Login.
        login: String,
        /// Contact.
        contact: ContactId,
    },
    /// Agent ends the conversation (chat close, or voice hang-up from the desktop).
    End {
        /// Login.
        login: String,
        /// Contact.
        contact: ContactId,
    },
    /// Agent finishes wrap-up with a code; a callback contact may carry its outcome.
    WrapUp {
        /// Login.
        login: String,
        /// Contact.
        contact: ContactId,
        /// Wrap-up code.
        code: String,
        /// Outcome of the callback this contact executed.
        callback_outcome: Option<CallbackOutcome>,
    },
    /// Agent transfers a talking contact to another skill (line 2).
    Transfer {
        /// Login.
        login: String,
        /// Contact.
        contact: ContactId,
        /// Target skill name.
        skill: String,
    },
    /// Agent's own view: state, offers, contacts.
    AgentView(String),
    /// Supervisor: queues.
    QueuesView,
    /// Supervisor: agents.
    AgentsView,
    /// Supervisor: listen/whisper/barge request for the gateway.
    Monitor {
        /// Supervisor name.
        supervisor: String,
        /// Agent login.
        agent: String,
        /// Mode.
        mode: String,
    },
    /// Reports: per-interval statistics.
    Report,
    /// Prometheus text for the routing part.
    MetricsText,
}

impl Message for SiteInput {
    type Result = SiteResult;
}

/// Subscribe a stream: an agent's desktop, a supervisor wallboard, or a gateway.
#[derive(Debug)]
pub struct Subscribe {
    /// Whose stream.
    pub audience: Audience,
    /// Where to send JSON text.
    pub sender: mpsc::Sender<String>,
}

/// Who a stream is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// An agent's desktop: its offers and contacts.
    Agent(String),
    /// Supervisors: every routing event.
    Supervisor,
    /// Gateways: dial requests for callbacks and monitoring requests.
    Gateway,
}

impl Message for Subscribe {
    type Result = Result<(), SiteError>;
}

/// Sent to itself when a callback claim committed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct CallbackClaimed {
    callback: u64,
    caller: String,
    reason: CallbackReason,
}

/// Sent to itself when a claim failed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct CallbackClaimFailed {
    callback: u64,
}

/// Asks the actor to stop taking new work (SIGTERM): it releases queued callbacks.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Drain;

/// The Site actor.
pub struct SiteActor {
    config: Arc<NodeConfig>,
    site_id: SiteId,
    epoch_ms: u64,
    site: callgrid_domain::Site,
    metrics: Metrics,
    effects: Vec<Effect>,
    proposer: Proposer,
    shared: SharedState,
    node_id: u64,
    next_contact: u64,
    contacts: HashMap<ContactId, ContactRecord>,
    finished: VecDeque<ContactId>,
    agents_by_login: BTreeMap<String, AgentId>,
    logins: HashMap<AgentId, String>,
    state_since_ms: HashMap<AgentId, u64>,
    offer_timers: HashMap<ContactId, SpawnHandle>,
    agent_streams: HashMap<String, Vec<mpsc::Sender<String>>>,
    supervisor_streams: Vec<mpsc::Sender<String>>,
    gateway_streams: Vec<mpsc::Sender<String>>,
    monitor_requests: VecDeque<Value>,
    claiming: BTreeSet<u64>,
    queued_callbacks: BTreeMap<u64, ContactId>,
    offer_latency_us: VecDeque<u64>,
    offer_latency_immediate_us: VecDeque<u64>,
    arriving: Option<ContactId>,
    draining: bool,
}

impl std::fmt::Debug for SiteActor {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SiteActor")
            .field("site", &self.config.site.id)
            .finish()
    }
}

impl SiteActor {
    /// Builds the actor: the domain site with the configured roster (all logged out).
    pub fn new(
        config: Arc<NodeConfig>,
        proposer: Proposer,
        shared: SharedState,
    ) -> Result<Self, SiteError> {
        let now = now_ms();
        // Domain time counts from midnight UTC of the start day, so report intervals line up
        // with the clock.
        let epoch_ms = now - now % DAY_MS;
        let site_id = SiteId(config.site.number);
        let mut site =
            callgrid_domain::Site::new(site_id, config.routing.clone(), config.overflow.clone())
                .map_err(|error| SiteError::Invalid(error.to_string()))?;
        let mut agents_by_login = BTreeMap::new();
        let mut logins = HashMap::new();
        for agent in &config.agents {
            let valid_until = agent
                .certificate_valid_until
                .as_deref()
                .and_then(parse_date_end_ms)
                .map(|end| TimeMs(end.saturating_sub(epoch_ms)));
            let skills = agent
                .skills
                .iter()
                .filter_map(|name| {
                    let index = config.skill_index(name)?;
                    let line2 = config
                        .skill_by_name(name)
                        .is_some_and(|skill| skill.line == callgrid_domain::Line::Line2);
                    Some(SkillGrant {
                        skill: SkillId(index),
                        // Line-2 work needs a valid pharma certificate; no date means none.
                        valid_until: if line2 {
                            Some(valid_until.unwrap_or(TimeMs::ZERO))
                        } else {
                            None
                        },
                    })
                })
                .collect();
            let spec = AgentSpec {
                id: AgentId(agent.id),
                skills,
                chat_slots: agent.chat_slots,
            };
            site.add_agent(spec)
                .map_err(|error| SiteError::Invalid(error.to_string()))?;
            agents_by_login.insert(agent.login.clone(), AgentId(agent.id));
            logins.insert(AgentId(agent.id), agent.login.clone());
        }
        let skill_count = config.routing.skills.len();
        let metrics = Metrics::new(
            config.metrics.clone(),
            usize::from(config.site.number) + 1,
            skill_count,
        );
        let node_id = config.cluster.node_id;
        Ok(Self {
            config,
            site_id,
            epoch_ms,
            site,
            metrics,
            effects: Vec::with_capacity(64),
            proposer,
            shared,
            node_id,
            next_contact: 0,
            contacts: HashMap::new(),
            finished: VecDeque::new(),
            agents_by_login,
            logins,
            state_since_ms: HashMap::new(),
            offer_timers: HashMap::new(),
            agent_streams: HashMap::new(),
            supervisor_streams: Vec::new(),
            gateway_streams: Vec::new(),
            monitor_requests: VecDeque::new(),
            claiming: BTreeSet::new(),
            queued_callbacks: BTreeMap::new(),
            offer_latency_us: VecDeque::new(),
            offer_latency_immediate_us: VecDeque::new(),
            arriving: None,
            draining: false,
        })
    }

    fn now(&self) -> TimeMs {
        TimeMs(now_ms().saturating_sub(self.epoch_ms))
    }

    fn agent_id(&self, login: &str) -> Result<AgentId, SiteError> {
        self.agents_by_login.get(login).copied().ok_or_else(|| {
            SiteError::NotFound(format!("agent `{login}` is not on this site's roster"))
        })
    }

    fn skill_id(&self, name: &str) -> Result<SkillId, SiteError> {
        self.config
            .skill_index(name)
            .map(SkillId)
            .ok_or_else(|| SiteError::NotFound(format!("unknown skill `{name}`")))
    }

    fn skill_name(&self, skill: SkillId) -> String {
        self.config
            .routing
            .skills
            .get(skill.index())
            .map(|skill| skill.name.clone())
            .unwrap_or_default()
    }

    /// The skill serving a topic: configured routes first, then the conventional ones.
    fn skill_for(&self, topic: Topic, channel: Channel) -> Result<SkillId, SiteError> {
        if let Some(route) = self
            .config
            .topics
            .iter()
            .find(|route| route.topic == topic && route.channel == channel)
        {
            return self.skill_id(&route.skill);
        }
        let preferred: &[&str] = match (channel, topic) {
            (Channel::Chat, _) => &["chat"],
            (Channel::Voice, Topic::Consultation) => &["line2", "line1"],
            (Channel::Voice, Topic::Complaint) => &["complaints", "line1"],
            (Channel::Voice, _) => &["line1"],
        };
        for name in preferred {
            if let Some(index) = self.config.skill_index(name)
                && self
                    .config
                    .routing
                    .skills
                    .get(usize::from(index))
                    .is_some_and(|skill| skill.channel == channel)
            {
                return Ok(SkillId(index));
            }
        }
        self.config
            .routing
            .skills
            .iter()
            .position(|skill| skill.channel == channel)
            .and_then(|index| u16::try_from(index).ok())
            .map(SkillId)
            .ok_or_else(|| SiteError::NotFound(format!("no skill serves {channel:?} {topic:?}")))
    }

    fn allocate_contact_id(&mut self) -> ContactId {
        self.next_contact += 1;
        // Unique across the cluster: the node id in the high bits (JSON-safe below 2^53).
        ContactId((self.node_id << 40) | self.next_contact)
    }

    fn contact_for_agent(
        &self,
        login: &str,
        contact: ContactId,
    ) -> Result<(AgentId, &ContactRecord), SiteError> {
        let agent = self.agent_id(login)?;
        let record = self
            .contacts
            .get(&contact)
            .ok_or_else(|| SiteError::NotFound(format!("contact {contact} not found")))?;
        if record.agent != Some(agent) {
            return Err(SiteError::Forbidden(format!(
                "contact {contact} is not with agent `{login}`"
            )));
        }
        Ok((agent, record))
    }

    fn arrive(
        &mut self,
        ctx: &mut Context<Self>,
        contact: Contact,
        caller: String,
        callback: Option<u64>,
    ) -> SiteResult {
        let now = self.now();
        let mut effects = std::mem::take(&mut self.effects);
        let result = self.site.handle_arrival(now, contact, &mut effects);
        let blocked = effects.iter().any(|effect| {
            matches!(effect, Effect::Event(event) if matches!(event.kind, EventKind::Blocked { .. }))
        });
        if let Err(error) = result {
            self.effects = effects;
            self.effects.clear();
            return Err(SiteError::Conflict(error.to_string()));
        }
        self.contacts.insert(
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
                arrived_at_ms: now_ms(),
                arrived_at: std::time::Instant::now(),
                offered_once: false,
                wrap_up_code: None,
                transferred_from: None,
                messages: VecDeque::new(),
            },
        );
        self.effects = effects;
        self.arriving = Some(contact.id);
        self.process_effects(ctx);
        self.arriving = None;
        if blocked {
            self.finish(contact.id);
        }
        Ok(self.contact_json(contact.id))
    }

    fn process_effects(&mut self, ctx: &mut Context<Self>) {
        let mut effects = std::mem::take(&mut self.effects);
        for effect in effects.drain(..) {
            match effect {
                Effect::Event(event) => {
                    self.metrics.record(&event);
                    self.on_event(&event.kind, event.at);
                    if let Ok(text) =
                        serde_json::to_string(&json!({"type": "event", "event": event}))
                    {
                        broadcast(&mut self.supervisor_streams, &text);
                    }
                }
                Effect::Offer {
                    contact,
                    agent,
                    timeout_at,
                } => self.on_offer(ctx, contact, agent, timeout_at),
                Effect::CancelOffer { contact, agent } => {
                    if let Some(handle) = self.offer_timers.remove(&contact) {
                        ctx.cancel_future(handle);
                    }
                    self.notify_agent(
                        agent,
                        json!({"type": "offer_cancelled", "contact": contact.0}),
                    );
                }
                Effect::Overflow { contact, target } => {
                    // Cross-site delivery of live contacts is not wired yet; overflow is off
                    // in the shipped configs. Keep the caller: put the contact back locally.
                    tracing::warn!(
                        contact = contact.id.0,
                        target = target.0,
                        "overflow not delivered; re-queued locally"
                    );
                    let now = self.now();
                    let mut nested = Vec::new();
                    if let Err(error) =
                        self.site
                            .handle_overflow_in(now, contact, self.site_id, &mut nested)
                    {
                        tracing::error!(%error, contact = contact.id.0, "could not re-queue overflowed contact");
                    }
                    self.effects.extend(nested);
                }
                Effect::RequestCallback(request) => {
                    if !self.config.callbacks.enabled
                        || (request.short && !self.config.callbacks.include_short_abandons)
                    {
                        continue;
                    }
                    let Some(record) = self.contacts.values().find(|record| {
                        record.direction == Direction::Inbound
                            && record.stage == ContactStage::Abandoned
                            && record.skill == request.skill
                    }) else {
                        continue;
                    };
                    let caller = record.caller.clone();
                    let command = Command::CreateAbandonedCallback {
                        caller,
                        skill: self.skill_name(request.skill),
                        ordering_time_ms: self.epoch_ms.saturating_add(request.ordering_time.0),
                    };
                    let proposer = self.proposer.clone();
                    ctx.spawn(
                        async move {
                            if let Err(error) = proposer.propose(Principal::system(), command).await
                            {
                                tracing::error!(%error, "abandoned-call callback not recorded");
                            }
                        }
                        .into_actor(self),
                    );
                }
            }
        }
        // Effects pushed while handling effects (re-queued overflow) are handled next round.
        let pending = std::mem::take(&mut self.effects);
        self.effects = effects;
        if !pending.is_empty() {
            self.effects = pending;
            self.process_effects(ctx);
        }
    }

    fn on_event(&mut self, kind: &EventKind, at: TimeMs) {
        match *kind {
            EventKind::AgentStateChanged { agent, to, .. } => {
                self.state_since_ms
                    .insert(agent, self.epoch_ms.saturating_add(at.0));
                self.notify_agent(agent, json!({"type": "state", "state": to}));
            }
            EventKind::Answered { contact, agent, .. } => {
                if let Some(record) = self.contacts.get_mut(&contact) {
                    record.stage = ContactStage::Talking;
                    record.agent = Some(agent);
                }
            }
            EventKind::Ended { contact, agent, .. } => {
                if let Some(record) = self.contacts.get_mut(&contact)
                    && record.agent == Some(agent)
                {
                    record.stage = ContactStage::WrapUp;
                }
            }
            EventKind::Abandoned { contact, .. } => {
                if let Some(record) = self.contacts.get_mut(&contact) {
                    record.stage = ContactStage::Abandoned;
                    record.agent = None;
                }
            }
            EventKind::OfferRejected { contact, .. } | EventKind::OfferTimedOut { contact, .. } => {
                if let Some(record) = self.contacts.get_mut(&contact) {
                    record.stage = ContactStage::Queued;
                    record.agent = None;
                }
            }
            EventKind::TransferredOut { contact, .. } => {
                if let Some(record) = self.contacts.get_mut(&contact) {
                    record.stage = ContactStage::Queued;
                }
            }
            _ => {}
        }
    }

    fn on_offer(
        &mut self,
        ctx: &mut Context<Self>,
        contact: ContactId,
        agent: AgentId,
        timeout_at: TimeMs,
    ) {
        if let Some(record) = self.contacts.get_mut(&contact) {
            record.stage = ContactStage::Offered;
            record.agent = Some(agent);
            if !record.offered_once {
                record.offered_once = true;
                let elapsed =
                    u64::try_from(record.arrived_at.elapsed().as_micros()).unwrap_or(u64::MAX);
                push_sample(&mut self.offer_latency_us, elapsed);
                if self.arriving == Some(contact) {
                    // Routed to a free agent while handling the arrival: pure routing time.
                    push_sample(&mut self.offer_latency_immediate_us, elapsed);
                }
            }
        }
        let delay_ms = timeout_at.0.saturating_sub(self.now().0);
        let handle = ctx.run_later(Duration::from_millis(delay_ms), move |actor, ctx| {
            actor.offer_timers.remove(&contact);
            let now = actor.now();
            let mut effects = std::mem::take(&mut actor.effects);
            if actor
                .site
                .handle_offer_timeout(now, contact, agent, &mut effects)
            {
                tracing::info!(
                    contact = contact.0,
                    agent = agent.0,
                    "offer timed out; contact back at its place"
                );
            }
            actor.effects = effects;
            actor.process_effects(ctx);
        });
        if let Some(previous) = self.offer_timers.insert(contact, handle) {
            ctx.cancel_future(previous);
        }
        let offer = self.contact_json(contact);
        self.notify_agent(agent, json!({"type": "offer", "contact": offer, "timeout_at_ms": self.epoch_ms + timeout_at.0}));
        if let Some(record) = self.contacts.get(&contact)
            && record.direction == Direction::OutboundCallback
        {
            let login = self.logins.get(&agent).cloned().unwrap_or_default();
            let dial = json!({"type": "dial", "contact": contact.0, "callback": record.callback, "number": record.caller, "agent": login});
            if let Ok(text) = serde_json::to_string(&dial) {
                broadcast(&mut self.gateway_streams, &text);
            }
        }
    }

    fn notify_agent(&mut self, agent: AgentId, message: Value) {
        let Some(login) = self.logins.get(&agent) else {
            return;
        };
        if let Some(streams) = self.agent_streams.get_mut(login)
            && let Ok(text) = serde_json::to_string(&message)
        {
            broadcast(streams, &text);
        }
    }

    fn finish(&mut self, contact: ContactId) {
        if let Some(record) = self.contacts.get_mut(&contact) {
            if matches!(record.stage, ContactStage::WrapUp | ContactStage::Talking) {
                record.stage = ContactStage::Finished;
            }
            self.finished.push_back(contact);
        }
        while self.finished.len() > FINISHED_CONTACTS_MAX {
            if let Some(old) = self.finished.pop_front() {
                self.contacts.remove(&old);
            }
        }
    }

    fn contact_json(&self, contact: ContactId) -> Value {
        let Some(record) = self.contacts.get(&contact) else {
            return Value::Null;
        };
        let position = self.site.queue_position(contact);
        json!({
            "id": record.id.0,
            "caller": record.caller,
            "channel": record.channel,
            "topic": record.topic,
            "skill": self.skill_name(record.skill),
            "direction": record.direction,
            "callback": record.callback,
            "agent": record.agent.and_then(|agent| self.logins.get(&agent)),
            "stage": record.stage,
            "arrived_at_ms": record.arrived_at_ms,
            "queue_position": position.map(|position| position.position),
            "wait_ms_estimated": position.map(|position| position.estimated_wait_ms).filter(|wait| *wait != u64::MAX),
            "wrap_up_code": record.wrap_up_code,
            "transferred_from": record.transferred_from.map(|skill| self.skill_name(skill)),
            "messages": record.messages,
        })
    }

    fn agent_json(&self, login: &str, agent: AgentId) -> Value {
        let state = self
            .site
            .agent_state(agent)
            .unwrap_or(AgentState::LoggedOut);
        let since = self.state_since_ms.get(&agent).copied();
        let contacts: Vec<Value> = self
            .site
            .agent_contacts(agent)
            .map(|contacts| contacts.map(|contact| self.contact_json(contact)).collect())
            .unwrap_or_default();
        json!({
            "login": login,
            "id": agent.0,
            "state": state,
            "state_since_ms": since,
            "time_in_state_ms": since.map(|since| now_ms().saturating_sub(since)),
            "contacts": contacts,
        })
    }

    fn domain<T>(
        &mut self,
        ctx: &mut Context<Self>,
        call: impl FnOnce(
            &mut callgrid_domain::Site,
            TimeMs,
            &mut Vec<Effect>,
        ) -> Result<T, callgrid_domain::DomainError>,
    ) -> Result<T, SiteError> {
        let now = self.now();
        let mut effects = std::mem::take(&mut self.effects);
        let result = call(&mut self.site, now, &mut effects);
        self.effects = effects;
        match result {
            Ok(value) => {
                self.process_effects(ctx);
                Ok(value)
            }
            Err(error) => {
                self.effects.clear();
                Err(SiteError::Conflict(error.to_string()))
            }
        }
    }

    fn sweep_callbacks(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        let now = now_ms();
        let site = self.config.site.id.clone();
        let due: Vec<(u64, String, CallbackReason)> = self.shared.read(|state| {
            state
                .callbacks_due(now, CALLBACKS_PER_SWEEP_MAX * 4)
                .into_iter()
                .filter(|callback| {
                    callback.site == site
                        || callback.due_at_ms.saturating_add(CALLBACK_ORPHAN_AFTER_MS) <= now
                })
                .map(|callback| {
                    (
                        callback.id,
                        callback.caller.clone(),
                        callback.reason.clone(),
                    )
                })
                .take(CALLBACKS_PER_SWEEP_MAX)
                .collect()
        });
        for (callback, caller, reason) in due {
            if !self.claiming.insert(callback) {
                continue;
            }
            let proposer = self.proposer.clone();
            ctx.spawn(
                async move {
                    let result = proposer
                        .propose(Principal::system(), Command::ClaimCallback { callback })
                        .await;
                    (callback, caller, reason, result)
                }
                .into_actor(self)
                .map(
                    |(callback, caller, reason, result), _actor, ctx| match result {
                        Ok(_) => ctx.notify(CallbackClaimed {
                            callback,
                            caller,
                            reason,
                        }),
                        Err(error) => {
                            tracing::debug!(callback, %error, "callback claim failed");
                            ctx.notify(CallbackClaimFailed { callback });
                        }
                    },
                ),
            );
        }
    }

    fn queue_callback(
        &mut self,
        ctx: &mut Context<Self>,
        callback: u64,
        caller: String,
        reason: &CallbackReason,
    ) {
        if self.queued_callbacks.contains_key(&callback) {
            return;
        }
        let now = self.now();
        let (skill, ordering_time) = match reason {
            CallbackReason::Abandoned {
                skill,
                ordering_time_ms,
            } => (
                self.skill_id(skill).ok(),
                // The caller's original place in the queue.
                TimeMs(ordering_time_ms.saturating_sub(self.epoch_ms)),
            ),
            _ => (None, now),
        };
        let skill = match skill {
            Some(skill) => skill,
            None => match self.skill_for(Topic::Other, Channel::Voice) {
                Ok(skill) => skill,
                Err(error) => {
                    tracing::error!(%error, callback, "no voice skill for callbacks");
                    return;
                }
            },
        };
        let id = self.allocate_contact_id();
        let topic = match reason {
            CallbackReason::Abandoned { .. } => Topic::Other,
            CallbackReason::OrderReady { .. } | CallbackReason::FollowUp { .. } => {
                Topic::OrderStatus
            }
            CallbackReason::PreOrderArrived { .. } => Topic::PreOrder,
        };
        let contact = Contact {
            id,
            channel: Channel::Voice,
            topic,
            skill,
            caller: caller_number(&caller),
            entry_site: self.site_id,
            arrived_at: now,
            priority: Priority::default(),
            ordering_time: ordering_time.min(now),
            direction: Direction::OutboundCallback,
            callback: Some(callgrid_domain::CallbackId(callback)),
            overflow_count: 0,
            transfer_count: 0,
        };
        match self.arrive(ctx, contact, caller, Some(callback)) {
            Ok(_) => {
                self.queued_callbacks.insert(callback, id);
                tracing::info!(
                    callback,
                    contact = id.0,
                    kind = reason.kind(),
                    "callback queued as outbound contact"
                );
            }
            Err(error) => tracing::error!(%error, callback, "callback could not be queued"),
        }
    }

    fn record_callback_outcome(
        &mut self,
        ctx: &mut Context<Self>,
        contact: ContactId,
        outcome: CallbackOutcome,
    ) {
        let Some(callback) = self
            .contacts
            .get(&contact)
            .and_then(|record| record.callback)
        else {
            return;
        };
        self.queued_callbacks.remove(&callback);
        let proposer = self.proposer.clone();
        ctx.spawn(
            async move {
                let command = Command::RecordCallbackAttempt { callback, outcome };
                if let Err(error) = proposer.propose(Principal::system(), command).await {
                    tracing::error!(callback, %error, "callback outcome not recorded");
                }
            }
            .into_actor(self),
        );
    }

    fn queues_json(&mut self) -> Value {
        let now = self.now();
        let mut rows = Vec::new();
        for (index, skill) in self.config.routing.skills.iter().enumerate() {
            let Ok(index16) = u16::try_from(index) else {
                continue;
            };
            let skill_id = SkillId(index16);
            let waiting: Vec<&ContactRecord> = self
                .contacts
                .values()
                .filter(|record| record.skill == skill_id && record.stage == ContactStage::Queued)
                .collect();
            let oldest_ms = waiting
                .iter()
                .map(|record| record.arrived_at_ms)
                .min()
                .map(|oldest| now_ms().saturating_sub(oldest));
            let newest_ms = waiting
                .iter()
                .map(|record| record.arrived_at_ms)
                .max()
                .map(|newest| now_ms().saturating_sub(newest));
            let (mut staffed, mut available, mut on_contact, mut wrap_up, mut not_ready) =
                (0, 0, 0, 0, 0);
            for agent in &self.config.agents {
                if !agent.skills.iter().any(|name| name == &skill.name) {
                    continue;
                }
                match self
                    .site
                    .agent_state(AgentId(agent.id))
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
            rows.push(json!({
                "skill": skill.name,
                "channel": skill.channel,
                "line": skill.line,
                "in_queue": self.site.waiting(skill_id),
                "oldest_age_ms": oldest_ms,
                "newest_age_ms": newest_ms,
                "wait_ms_estimated": (estimated != u64::MAX).then_some(estimated),
                "agents_staffed": staffed,
                "agents_available": available,
                "agents_on_contact": on_contact,
                "agents_wrap_up": wrap_up,
                "agents_not_ready": not_ready,
            }));
        }
        let _ = now;
        json!({ "site": self.config.site.id, "queues": rows })
    }

    fn metrics_text(&mut self) -> String {
        let mut text = String::new();
        let site = self.config.site.id.clone();
        let queues = self.queues_json();
        let gauge = |text: &mut String, name: &str, help: &str| {
            text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        };
        let fields = [
            (
                "callgrid_queue_contacts_waiting",
                "in_queue",
                "Contacts waiting in the queue.",
            ),
            (
                "callgrid_queue_oldest_age_ms",
                "oldest_age_ms",
                "Age of the oldest waiting contact.",
            ),
            (
                "callgrid_queue_wait_ms_estimated",
                "wait_ms_estimated",
                "Estimated wait for a new contact.",
            ),
            (
                "callgrid_queue_agents_staffed",
                "agents_staffed",
                "Agents logged in with the skill.",
            ),
            (
                "callgrid_queue_agents_available",
                "agents_available",
                "Agents available.",
            ),
            (
                "callgrid_queue_agents_on_contact",
                "agents_on_contact",
                "Agents ringing or talking.",
            ),
            (
                "callgrid_queue_agents_wrap_up",
                "agents_wrap_up",
                "Agents in wrap-up.",
            ),
            (
                "callgrid_queue_agents_not_ready",
                "agents_not_ready",
                "Agents not ready.",
            ),
        ];
        for (name, field, help) in fields {
            gauge(&mut text, name, help);
            for row in queues["queues"].as_array().into_iter().flatten() {
                let value = row[field].as_f64().unwrap_or(0.0);
                text.push_str(&format!(
                    "{name}{{site=\"{site}\",skill=\"{}\"}} {value}\n",
                    row["skill"].as_str().unwrap_or("")
                ));
            }
        }
        let totals = self.metrics.totals();
        let policy = self.config.metrics.service_level_policy;
        let counters = [
            ("callgrid_contacts_offered_total", totals.offered),
            ("callgrid_contacts_answered_total", totals.answered),
            ("callgrid_contacts_abandoned_total", totals.abandoned),
            (
                "callgrid_contacts_abandoned_short_total",
                totals.abandoned_short,
            ),
            (
                "callgrid_contacts_transferred_out_total",
                totals.transferred_out,
            ),
            (
                "callgrid_contacts_overflowed_out_total",
                totals.overflowed_out,
            ),
            ("callgrid_contacts_blocked_total", totals.blocked),
        ];
        for (name, value) in counters {
            text.push_str(&format!(
                "# TYPE {name} counter\n{name}{{site=\"{site}\"}} {value}\n"
            ));
        }
        let ratios = [
            ("callgrid_service_level", totals.service_level(policy)),
            ("callgrid_abandon_rate", totals.abandon_rate()),
            ("callgrid_asa_ms", totals.asa_ms()),
            ("callgrid_aht_ms", totals.aht_ms()),
            ("callgrid_occupancy", totals.occupancy()),
        ];
        for (name, value) in ratios {
            if let Some(value) = value {
                text.push_str(&format!(
                    "# TYPE {name} gauge\n{name}{{site=\"{site}\"}} {value}\n"
                ));
            }
        }
        let mut states: BTreeMap<&'static str, u64> = BTreeMap::new();
        for agent in self.logins.keys() {
            let name = match self
                .site
                .agent_state(*agent)
                .unwrap_or(AgentState::LoggedOut)
            {
                AgentState::LoggedOut => "logged_out",
                AgentState::Available => "available",
                AgentState::Reserved => "reserved",
                AgentState::Busy => "busy",
                AgentState::WrapUp => "wrap_up",
                AgentState::NotReady(_) => "not_ready",
            };
            *states.entry(name).or_default() += 1;
        }
        summary(
            &mut text,
            &site,
            "callgrid_offer_latency_us",
            "Arrival to first offer, recent contacts (queueing included).",
            &self.offer_latency_us,
        );
        summary(
            &mut text,
            &site,
            "callgrid_offer_latency_immediate_us",
            "Arrival to offer for contacts that found a free agent (routing only).",
            &self.offer_latency_immediate_us,
        );
        gauge(&mut text, "callgrid_agents", "Agents by state.");
        for (state, count) in states {
            text.push_str(&format!(
                "callgrid_agents{{site=\"{site}\",state=\"{state}\"}} {count}\n"
            ));
        }
        text
    }

    fn report_json(&self) -> Value {
        serde_json::to_value(self.metrics.report()).unwrap_or(Value::Null)
    }

    fn handle_input(&mut self, input: SiteInput, ctx: &mut Context<Self>) -> SiteResult {
        match input {
            SiteInput::ContactArrived {
                caller,
                channel,
                topic,
                skill,
                priority,
            } => {
                if self.draining {
                    return Err(SiteError::Conflict("site is draining".to_string()));
                }
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
                let id = self.allocate_contact_id();
                let now = self.now();
                let contact = Contact::inbound(
                    id,
                    channel,
                    topic,
                    skill,
                    caller_number(&caller),
                    self.site_id,
                    now,
                )
                .with_priority(Priority(priority));
                self.arrive(ctx, contact, caller, None)
            }
            SiteInput::ContactAnswered(contact) => {
                match self.site.contact_phase(contact) {
                    Some(ContactPhase::Talking(_)) => {}
                    Some(ContactPhase::Offered(_)) => {
                        self.domain(ctx, |site, now, out| site.handle_accept(now, contact, out))?;
                        if let Some(handle) = self.offer_timers.remove(&contact) {
                            ctx.cancel_future(handle);
                        }
                    }
                    _ => {
                        return Err(SiteError::Conflict(format!(
                            "contact {contact} is not ringing"
                        )));
                    }
                }
                Ok(self.contact_json(contact))
            }
            SiteInput::ContactEnded(contact) => {
                let record = self
                    .contacts
                    .get(&contact)
                    .ok_or_else(|| SiteError::NotFound(format!("contact {contact} not found")))?;
                match record.stage {
                    ContactStage::Talking => {
                        self.domain(ctx, |site, now, out| site.handle_end(now, contact, out))?;
                    }
                    ContactStage::Queued | ContactStage::Offered => {
                        return self.abandon(ctx, contact);
                    }
                    _ => {}
                }
                Ok(self.contact_json(contact))
            }
            SiteInput::ContactAbandoned(contact) => self.abandon(ctx, contact),
            SiteInput::ChatMessage { contact, text } => {
                let record = self
                    .contacts
                    .get_mut(&contact)
                    .ok_or_else(|| SiteError::NotFound(format!("contact {contact} not found")))?;
                if record.channel != Channel::Chat {
                    return Err(SiteError::Conflict(format!(
                        "contact {contact} is not a chat"
                    )));
                }
                let message = json!({"from": "customer", "text": text, "at_ms": now_ms()});
                if record.messages.len() >= CHAT_MESSAGES_MAX {
                    record.messages.pop_front();
                }
                record.messages.push_back(message.clone());
                if let Some(agent) = record.agent {
                    self.notify_agent(
                        agent,
                        json!({"type": "chat_message", "contact": contact.0, "message": message}),
                    );
                }
                Ok(json!({"accepted": true}))
            }
            SiteInput::ContactView { contact, agent } => {
                if let Some(login) = agent {
                    self.contact_for_agent(&login, contact)?;
                }
                if !self.contacts.contains_key(&contact) {
                    return Err(SiteError::NotFound(format!("contact {contact} not found")));
                }
                Ok(self.contact_json(contact))
            }
            SiteInput::Login(login) => {
                let agent = self.agent_id(&login)?;
                self.domain(ctx, |site, now, out| site.handle_login(now, agent, out))?;
                Ok(self.agent_json(&login, agent))
            }
            SiteInput::Logout(login) => {
                let agent = self.agent_id(&login)?;
                self.domain(ctx, |site, now, out| site.handle_logout(now, agent, out))?;
                Ok(self.agent_json(&login, agent))
            }
            SiteInput::Ready(login) => {
                let agent = self.agent_id(&login)?;
                self.domain(ctx, |site, now, out| site.handle_ready(now, agent, out))?;
                Ok(self.agent_json(&login, agent))
            }
            SiteInput::NotReady { login, reason } => {
                let agent = self.agent_id(&login)?;
                self.domain(ctx, |site, now, out| {
                    site.handle_not_ready(now, agent, NotReadyReason(reason), out)
                })?;
                Ok(self.agent_json(&login, agent))
            }
            SiteInput::Accept { login, contact } => {
                let (agent, _) = self.contact_for_agent(&login, contact)?;
                if self.site.contact_phase(contact) != Some(ContactPhase::Offered(agent)) {
                    return Err(SiteError::Conflict(format!(
                        "contact {contact} is not offered to `{login}`"
                    )));
                }
                self.domain(ctx, |site, now, out| site.handle_accept(now, contact, out))?;
                if let Some(handle) = self.offer_timers.remove(&contact) {
                    ctx.cancel_future(handle);
                }
                Ok(self.contact_json(contact))
            }
            SiteInput::Reject { login, contact } => {
                let (agent, _) = self.contact_for_agent(&login, contact)?;
                if self.site.contact_phase(contact) != Some(ContactPhase::Offered(agent)) {
                    return Err(SiteError::Conflict(format!(
                        "contact {contact} is not offered to `{login}`"
                    )));
                }
                self.domain(ctx, |site, now, out| site.handle_reject(now, contact, out))?;
                if let Some(handle) = self.offer_timers.remove(&contact) {
                    ctx.cancel_future(handle);
                }
                Ok(self.contact_json(contact))
            }
            SiteInput::End { login, contact } => {
                self.contact_for_agent(&login, contact)?;
                self.domain(ctx, |site, now, out| site.handle_end(now, contact, out))?;
                Ok(self.contact_json(contact))
            }
            SiteInput::WrapUp {
                login,
                contact,
                code,
                callback_outcome,
            } => {
                let (agent, record) = self.contact_for_agent(&login, contact)?;
                if record.stage != ContactStage::WrapUp {
                    return Err(SiteError::Conflict(format!(
                        "contact {contact} is not in wrap-up"
                    )));
                }
                let is_callback = record.callback.is_some();
                self.domain(ctx, |site, now, out| {
                    site.handle_wrap_up_end(now, agent, contact, out)
                })?;
                if let Some(record) = self.contacts.get_mut(&contact) {
                    record.wrap_up_code = Some(code);
                }
                if is_callback {
                    self.record_callback_outcome(
                        ctx,
                        contact,
                        callback_outcome.unwrap_or(CallbackOutcome::Reached),
                    );
                }
                self.finish(contact);
                Ok(self.contact_json(contact))
            }
            SiteInput::Transfer {
                login,
                contact,
                skill,
            } => {
                let (_, record) = self.contact_for_agent(&login, contact)?;
                if record.stage != ContactStage::Talking {
                    return Err(SiteError::Conflict(format!(
                        "contact {contact} is not talking"
                    )));
                }
                let from = record.skill;
                let to = self.skill_id(&skill)?;
                self.domain(ctx, |site, now, out| {
                    site.handle_transfer(now, contact, to, out)
                })?;
                if let Some(record) = self.contacts.get_mut(&contact) {
                    record.transferred_from = Some(from);
                    record.skill = to;
                    if record.stage == ContactStage::WrapUp || record.stage == ContactStage::Talking
                    {
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
                Ok(self.contact_json(contact))
            }
            SiteInput::AgentView(login) => {
                let agent = self.agent_id(&login)?;
                Ok(self.agent_json(&login, agent))
            }
            SiteInput::QueuesView => Ok(self.queues_json()),
            SiteInput::AgentsView => {
                let agents: Vec<Value> = self
                    .agents_by_login
                    .iter()
                    .map(|(login, agent)| self.agent_json(login, *agent))
                    .collect();
                Ok(json!({"site": self.config.site.id, "agents": agents}))
            }
            SiteInput::Monitor {
                supervisor,
                agent,
                mode,
            } => {
                let agent_id = self.agent_id(&agent)?;
                let contact = self
                    .site
                    .agent_contacts(agent_id)
                    .and_then(|mut contacts| contacts.next());
                let Some(contact) = contact else {
                    return Err(SiteError::Conflict(format!(
                        "agent `{agent}` has no contact to monitor"
                    )));
                };
                let request = json!({
                    "type": "monitor", "mode": mode, "supervisor": supervisor, "agent": agent,
                    "contact": contact.0, "at_ms": now_ms(),
                });
                if let Ok(text) = serde_json::to_string(&request) {
                    broadcast(&mut self.gateway_streams, &text);
                }
                if self.monitor_requests.len() >= MONITOR_REQUESTS_MAX {
                    self.monitor_requests.pop_front();
                }
                self.monitor_requests.push_back(request.clone());
                Ok(request)
            }
            SiteInput::Report => Ok(self.report_json()),
            SiteInput::MetricsText => Ok(Value::String(self.metrics_text())),
        }
    }

    fn abandon(&mut self, ctx: &mut Context<Self>, contact: ContactId) -> SiteResult {
        let record = self
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
        if let Some(handle) = self.offer_timers.remove(&contact) {
            ctx.cancel_future(handle);
        }
        if let Some(record) = self.contacts.get_mut(&contact) {
            record.stage = ContactStage::Abandoned;
            record.agent = None;
        }
        if outbound {
            // The customer did not pick up the callback: a failed attempt, retried by policy.
            self.effects
                .retain(|effect| !matches!(effect, Effect::RequestCallback(_)));
            self.record_callback_outcome(ctx, contact, CallbackOutcome::NoAnswer);
        }
        self.process_effects(ctx);
        self.finish(contact);
        Ok(self.contact_json(contact))
    }
}

fn push_sample(samples: &mut VecDeque<u64>, value: u64) {
    if samples.len() >= OFFER_LATENCY_SAMPLES_MAX {
        samples.pop_front();
    }
    samples.push_back(value);
}

/// Appends a Prometheus summary (p50, p90, p99, max) of `samples`.
fn summary(text: &mut String, site: &str, name: &str, help: &str, samples: &VecDeque<u64>) {
    if samples.is_empty() {
        return;
    }
    let mut sorted: Vec<u64> = samples.iter().copied().collect();
    sorted.sort_unstable();
    text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} summary\n"));
    for quantile in [0.5, 0.9, 0.99, 1.0] {
        let position =
            ((sorted.len() as f64 * quantile).ceil() as usize).clamp(1, sorted.len()) - 1;
        text.push_str(&format!(
            "{name}{{site=\"{site}\",quantile=\"{quantile}\"}} {}\n",
            sorted[position]
        ));
    }
    text.push_str(&format!(
        "{name}_count{{site=\"{site}\"}} {}\n",
        sorted.len()
    ));
}

fn broadcast(streams: &mut Vec<mpsc::Sender<String>>, text: &str) {
    streams.retain(|stream| match stream.try_send(text.to_string()) {
        Ok(()) => true,
        // A slow reader loses this event but keeps its stream.
        Err(mpsc::error::TrySendError::Full(_)) => true,
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    });
}

/// Packs a normalized phone number into the domain's integer form (digits only).
pub fn caller_number(caller: &str) -> callgrid_domain::CallerNumber {
    let digits: String = caller.chars().filter(char::is_ascii_digit).collect();
    callgrid_domain::CallerNumber(digits.parse().unwrap_or(0))
}

impl Actor for SiteActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(SITE_MAILBOX_CAPACITY);
        // Callbacks this site had queued before a restart go back into its queue.
        let site = self.config.site.id.clone();
        let claimed: Vec<(u64, String, CallbackReason)> = self.shared.read(|state| {
            state
                .callbacks_claimed_by(&site)
                .into_iter()
                .map(|callback| {
                    (
                        callback.id,
                        callback.caller.clone(),
                        callback.reason.clone(),
                    )
                })
                .collect()
        });
        for (callback, caller, reason) in claimed {
            self.queue_callback(ctx, callback, caller, &reason);
        }
        ctx.run_interval(CALLBACK_SWEEP_INTERVAL, |actor, ctx| {
            actor.sweep_callbacks(ctx)
        });
        tracing::info!(site = %self.config.site.id, agents = self.agents_by_login.len(), "site actor started");
    }
}

impl actix::Supervised for SiteActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Rebuilt from the configuration and the replicated state (the last acknowledged
        // state): live calls are lost with the actor, durable work (callbacks) is re-queued
        // by `started`.
        tracing::warn!(site = %self.config.site.id, "site actor restarting");
        if let Ok(fresh) = SiteActor::new(
            self.config.clone(),
            self.proposer.clone(),
            self.shared.clone(),
        ) {
            let streams = std::mem::take(&mut self.agent_streams);
            let supervisors = std::mem::take(&mut self.supervisor_streams);
            let gateways = std::mem::take(&mut self.gateway_streams);
            *self = fresh;
            self.agent_streams = streams;
            self.supervisor_streams = supervisors;
            self.gateway_streams = gateways;
        }
    }
}

impl Handler<SiteInput> for SiteActor {
    type Result = SiteResult;

    fn handle(&mut self, input: SiteInput, ctx: &mut Self::Context) -> Self::Result {
        self.handle_input(input, ctx)
    }
}

impl Handler<Subscribe> for SiteActor {
    type Result = Result<(), SiteError>;

    fn handle(&mut self, subscribe: Subscribe, _ctx: &mut Self::Context) -> Self::Result {
        let streams = match &subscribe.audience {
            Audience::Agent(login) => {
                self.agent_id(login)?;
                self.agent_streams.entry(login.clone()).or_default()
            }
            Audience::Supervisor => &mut self.supervisor_streams,
            Audience::Gateway => &mut self.gateway_streams,
        };
        streams.retain(|stream| !stream.is_closed());
        if streams.len() >= SUBSCRIBERS_MAX {
            return Err(SiteError::Conflict("too many streams".to_string()));
        }
        streams.push(subscribe.sender);
        Ok(())
    }
}

impl Handler<CallbackClaimed> for SiteActor {
    type Result = ();

    fn handle(&mut self, claimed: CallbackClaimed, ctx: &mut Self::Context) {
        self.claiming.remove(&claimed.callback);
        self.queue_callback(ctx, claimed.callback, claimed.caller, &claimed.reason);
    }
}

impl Handler<CallbackClaimFailed> for SiteActor {
    type Result = ();

    fn handle(&mut self, failed: CallbackClaimFailed, _ctx: &mut Self::Context) {
        self.claiming.remove(&failed.callback);
    }
}

impl Handler<Drain> for SiteActor {
    type Result = ();

    fn handle(&mut self, _drain: Drain, _ctx: &mut Self::Context) {
        self.draining = true;
        tracing::info!(
            queued_callbacks = self.queued_callbacks.len(),
            "site draining"
        );
    }
}

/// Outcome of a proposal reported back as JSON (used by the API for created ids).
pub fn outcome_json(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::OrderCreated(id) => json!({"order": id}),
        Outcome::PreOrderCreated(id) => json!({"pre_order": id}),
        Outcome::ReservationCreated(id) => json!({"reservation": id}),
        Outcome::ComplaintFiled {
            complaint,
            escalated,
        } => json!({"complaint": complaint, "escalated": escalated}),
        Outcome::CallbacksCreated(ids) => json!({"callbacks": ids}),
        Outcome::Done => json!({}),
    }
}
