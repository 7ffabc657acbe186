//! The Site actor: one per node, the supervisor of the Agent, Call and Queue actors, and the
//! thin shell around `callgrid_domain::Site`.
//!
//! It owns the domain state machine (queues per skill, agents, contacts). Routing is decided
//! only here, because one decision spans queues and agents atomically (see [`super`]). It
//! turns API inputs into `handle_*` calls and the domain's effects into messages to its
//! children: offers to the Agent actor (which rings the desktop and times the offer), contact
//! views to the Call actor (transcript, gateway events, lookups), queue views to the Queue
//! actor (wallboards). It turns events into metrics and the supervisor event stream, and
//! callback requests into Raft proposals. It also works due callbacks: claims them through
//! Raft and queues them as outbound contacts. It publishes the site's availability summary
//! through Raft and applies the overflow rule with the peers' summaries; an overflowed
//! contact leaves with stage `overflowed` for the gateway to re-present at the target site
//! (see [`super::overflow`]).
//!
//! Children are started with `actix::Supervisor`; the Site holds their addresses and drops an
//! address to stop a child for good (logout; a finished contact after its linger). A child
//! restarted after a panic asks the Site for what it holds and rebuilds from it.
//!
//! Its mailbox is bounded ([`SITE_MAILBOX_CAPACITY`]); API senders wait when it is full. Its
//! sends to children use `try_send` on their bounded mailboxes; a child that cannot keep up
//! loses views (the next one replaces them), and an offer whose timer was lost is timed out by
//! the Site's own sweep [`OFFER_TIMER_GRACE_MS`] after its deadline. Streams are bounded
//! channels; a desktop that does not read loses events, never the node.

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

use super::agent::{AgentActor, AgentToSite, SiteToAgent, SubscribeAgentStream};
use super::call::{CallActor, CallLookupError, CallToSite, LookupCall, SiteToCall};
use super::overflow::{
    self, ARRIVAL_CLOCK_SKEW_MS_MAX, OVERFLOW_HOPS_MAX, OverflowedFrom, OverflowedTo,
    SUMMARY_PUBLISH_INTERVAL, SUMMARY_REFRESH_AFTER_MS,
};
use super::queue::{
    QUEUE_VIEW_PUBLISH_INTERVAL, QueueActor, QueueToSite, SiteToQueue, SubscribeQueueStream,
};
use super::{ChildCounts, GatewayStreams, Subscribers};
pub use super::{STREAM_BUFFER_EVENTS, SUBSCRIBERS_MAX};
use crate::config::{NodeConfig, parse_date_end_ms};
use crate::replicate::{Proposer, now_ms};
use crate::state::model::{Actor as Principal, CallbackOutcome, CallbackReason, DAY_MS};
use crate::state::{Command, Outcome, SharedState};

/// Messages the Site actor may hold before senders wait.
pub const SITE_MAILBOX_CAPACITY: usize = 4_096;
/// Finished contacts whose Call actors linger for lookups, at most (the oldest stop first).
pub const FINISHED_CONTACTS_MAX: usize = 10_000;
/// How long a finished contact's Call actor lingers for lookups.
pub const CALL_LINGER_AFTER_FINISH_MS: u64 = 15 * 60 * 1_000;
/// An offer still ringing this long after its deadline is timed out by the Site itself (its
/// Agent actor's timer was lost: mailbox full, actor restarting).
pub const OFFER_TIMER_GRACE_MS: u64 = 2_000;
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
    /// The contact is finished: only its Call actor (lookups) knows it still.
    #[error("contact {0} is finished")]
    Finished(ContactId),
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
    /// Sent to another site by the overflow rule: the gateway re-presents it there.
    Overflowed,
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
    /// The site it came from, if it was overflowed here.
    overflowed_from: Option<OverflowedFrom>,
    /// The site it was overflowed to.
    overflowed_to: Option<OverflowedTo>,
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
        /// Set when the call was overflowed here from another site.
        overflowed_from: Option<OverflowedFrom>,
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

/// A contact's details (the Call actor answers, with the transcript); `agent` restricts to
/// that agent's own contacts.
#[derive(Debug, Message)]
#[rtype(result = "SiteResult")]
pub struct LookupContact {
    /// Contact.
    pub contact: ContactId,
    /// Requesting agent, if the caller is an agent.
    pub agent: Option<String>,
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
    /// Live contacts (arrived, not finished); finished ones live on in their Call actors.
    contacts: HashMap<ContactId, ContactRecord>,
    agents_by_login: BTreeMap<String, AgentId>,
    logins: HashMap<AgentId, String>,
    agent_skills: HashMap<AgentId, Vec<SkillId>>,
    state_since_ms: HashMap<AgentId, u64>,
    /// Offers ringing: contact → (agent, deadline in ms since the epoch).
    offers: HashMap<ContactId, (AgentId, u64)>,
    agent_actors: HashMap<AgentId, Addr<AgentActor>>,
    call_actors: HashMap<ContactId, Addr<CallActor>>,
    queue_actors: Vec<Addr<QueueActor>>,
    /// Finished contacts whose Call actors linger: (contact, finished at ms).
    lingering: VecDeque<(ContactId, u64)>,
    counts: ChildCounts,
    /// Desktop streams of agents that are logged out (an Agent actor holds them otherwise).
    parked_agent_streams: HashMap<AgentId, Subscribers>,
    supervisor_streams: Subscribers,
    gateway_streams: GatewayStreams,
    dirty_contacts: Vec<ContactId>,
    dirty_queues: BTreeSet<SkillId>,
    queue_publish_scheduled: bool,
    monitor_requests: VecDeque<Value>,
    claiming: BTreeSet<u64>,
    queued_callbacks: BTreeMap<u64, ContactId>,
    offer_latency_us: VecDeque<u64>,
    offer_latency_immediate_us: VecDeque<u64>,
    arriving: Option<ContactId>,
    draining: bool,
    /// Offers the Site had to time out itself because no Agent actor reported them.
    offer_timers_lost: u64,
    /// The peers' summaries as last read from the replicated state (domain form).
    peers: Vec<callgrid_domain::SiteSummary>,
    /// The last summary this site had committed, and when it was published (ms).
    published: Option<(crate::state::model::SiteSummary, u64)>,
    /// A summary proposal is in flight (at most one).
    publishing: bool,
    /// The scheduled overflow poll at `overflow_deadline()`.
    overflow_timer: Option<(TimeMs, SpawnHandle)>,
    /// Overflow rule applications (`/metrics`; tests wait on it).
    overflow_polls: u64,
    /// The final view of the contact last sent away, for the arrival that triggered it.
    last_overflowed: Option<(ContactId, Value)>,
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
        let mut agent_skills = HashMap::new();
        for agent in &config.agents {
            let valid_until = agent
                .certificate_valid_until
                .as_deref()
                .and_then(parse_date_end_ms)
                .map(|end| TimeMs(end.saturating_sub(epoch_ms)));
            let skills: Vec<SkillGrant> = agent
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
            agent_skills.insert(
                AgentId(agent.id),
                skills.iter().map(|grant| grant.skill).collect::<Vec<_>>(),
            );
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
            agents_by_login,
            logins,
            agent_skills,
            state_since_ms: HashMap::new(),
            offers: HashMap::new(),
            agent_actors: HashMap::new(),
            call_actors: HashMap::new(),
            queue_actors: Vec::new(),
            lingering: VecDeque::new(),
            counts: ChildCounts::default(),
            parked_agent_streams: HashMap::new(),
            supervisor_streams: Subscribers::default(),
            gateway_streams: GatewayStreams::default(),
            dirty_contacts: Vec::new(),
            dirty_queues: BTreeSet::new(),
            queue_publish_scheduled: false,
            monitor_requests: VecDeque::new(),
            claiming: BTreeSet::new(),
            queued_callbacks: BTreeMap::new(),
            offer_latency_us: VecDeque::new(),
            offer_latency_immediate_us: VecDeque::new(),
            arriving: None,
            draining: false,
            offer_timers_lost: 0,
            peers: Vec::new(),
            published: None,
            publishing: false,
            overflow_timer: None,
            overflow_polls: 0,
            last_overflowed: None,
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
        overflowed_from: Option<(SiteId, OverflowedFrom)>,
    ) -> SiteResult {
        let now = self.now();
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
                overflowed_from: overflowed_from.map(|(_, from)| from),
                overflowed_to: None,
            },
        );
        self.effects = effects;
        self.arriving = Some(contact.id);
        self.process_effects(ctx);
        self.arriving = None;
        self.start_call(ctx, contact.id);
        self.dirty_contacts.push(contact.id);
        if blocked {
            return Ok(self.finish(contact.id));
        }
        Ok(self.contact_json(contact.id))
    }

    fn start_call(&mut self, ctx: &mut Context<Self>, contact: ContactId) {
        let actor = CallActor::new(
            contact,
            ctx.address().recipient(),
            self.gateway_streams.clone(),
            self.counts.clone(),
        );
        let address = Supervisor::start(move |_| actor);
        self.call_actors.insert(contact, address);
    }

    fn start_agent(&mut self, ctx: &mut Context<Self>, agent: AgentId) {
        if self.agent_actors.contains_key(&agent) {
            return;
        }
        let login = self.logins.get(&agent).cloned().unwrap_or_default();
        let streams = self
            .parked_agent_streams
            .remove(&agent)
            .map(|mut streams| streams.take())
            .unwrap_or_default();
        let actor = AgentActor::new(
            agent,
            login,
            ctx.address().recipient(),
            self.counts.clone(),
            streams,
        );
        let address = Supervisor::start(move |_| actor);
        self.agent_actors.insert(agent, address);
    }

    /// Stops the agent's actor for good: the Site drops its only address. The actor hands its
    /// desktop streams back (`AgentToSite::Released`) as it stops.
    fn stop_agent(&mut self, agent: AgentId) {
        self.agent_actors.remove(&agent);
    }

    fn tell_agent(&mut self, agent: AgentId, message: SiteToAgent) {
        if let Some(address) = self.agent_actors.get(&agent)
            && let Err(error) = address.try_send(message)
        {
            tracing::warn!(agent = agent.0, %error, "agent actor did not take a message");
        }
    }

    fn tell_call(&self, contact: ContactId, message: SiteToCall) {
        if let Some(address) = self.call_actors.get(&contact)
            && let Err(error) = address.try_send(message)
        {
            tracing::debug!(contact = contact.0, %error, "call actor did not take a message");
        }
    }

    /// The offer of `contact` to `agent` ended without a withdrawal notice (accepted,
    /// rejected): that agent's timer stops. The domain may already have offered the contact to
    /// someone else in the same step (a rejected contact goes on to the next agent); that
    /// offer is left alone.
    fn settle_offer(&mut self, contact: ContactId, agent: AgentId) {
        if self
            .offers
            .get(&contact)
            .is_some_and(|(holder, _)| *holder == agent)
        {
            self.offers.remove(&contact);
        }
        self.tell_agent(agent, SiteToAgent::OfferSettled(contact));
    }

    /// Sends what changed to the children: contact views to Call actors now, queue views to
    /// Queue actors at most once per [`QUEUE_VIEW_PUBLISH_INTERVAL`].
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let mut dirty = std::mem::take(&mut self.dirty_contacts);
        dirty.sort_unstable();
        dirty.dedup();
        for contact in dirty.drain(..) {
            if self.contacts.contains_key(&contact) {
                let view = self.contact_json(contact);
                self.tell_call(contact, SiteToCall::ViewChanged(view));
            }
        }
        self.dirty_contacts = dirty;
        if !self.dirty_queues.is_empty() && !self.queue_publish_scheduled {
            self.queue_publish_scheduled = true;
            ctx.run_later(QUEUE_VIEW_PUBLISH_INTERVAL, |actor, _ctx| {
                actor.queue_publish_scheduled = false;
                let skills = std::mem::take(&mut actor.dirty_queues);
                for skill in skills {
                    actor.publish_queue(skill);
                }
            });
        }
    }

    fn publish_queue(&mut self, skill: SkillId) {
        let Some(address) = self.queue_actors.get(skill.index()) else {
            return;
        };
        let view = self.queue_json(skill);
        if let Err(error) = address.try_send(SiteToQueue::ViewChanged(view)) {
            tracing::debug!(skill = skill.0, %error, "queue actor did not take its view");
        }
    }

    fn mark_queues_of_agent(&mut self, agent: AgentId) {
        if let Some(skills) = self.agent_skills.get(&agent) {
            self.dirty_queues.extend(skills.iter().copied());
        }
    }

    fn process_effects(&mut self, ctx: &mut Context<Self>) {
        let mut effects = std::mem::take(&mut self.effects);
        for effect in effects.drain(..) {
            match effect {
                Effect::Event(event) => {
                    self.metrics.record(&event);
                    self.on_event(&event.kind, event.at);
                    if !self.supervisor_streams.is_empty() {
                        self.supervisor_streams
                            .publish(&json!({"type": "event", "event": event}));
                    }
                }
                Effect::Offer {
                    contact,
                    agent,
                    timeout_at,
                } => self.on_offer(contact, agent, timeout_at),
                Effect::CancelOffer { contact, agent } => {
                    self.offers.remove(&contact);
                    self.dirty_contacts.push(contact);
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
                    if let Some(record) = self.contacts.get_mut(&contact.id) {
                        record.stage = ContactStage::Overflowed;
                        record.agent = None;
                        record.overflowed_to = Some(OverflowedTo {
                            site,
                            api_url,
                            hops: contact.overflow_count,
                        });
                    }
                    self.offers.remove(&contact.id);
                    let view = self.finish(contact.id);
                    self.last_overflowed = Some((contact.id, view));
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
        // Effects pushed while handling effects are handled next round.
        let pending = std::mem::take(&mut self.effects);
        self.effects = effects;
        if !pending.is_empty() {
            self.effects = pending;
            self.process_effects(ctx);
        }
    }

    fn on_event(&mut self, kind: &EventKind, at: TimeMs) {
        if let Some((contact, skill)) = event_contact(kind) {
            self.dirty_contacts.push(contact);
            self.dirty_queues.insert(skill);
        }
        match *kind {
            EventKind::AgentStateChanged { agent, to, .. } => {
                let since_ms = self.epoch_ms.saturating_add(at.0);
                self.state_since_ms.insert(agent, since_ms);
                self.mark_queues_of_agent(agent);
                if self.agent_actors.contains_key(&agent) {
                    self.tell_agent(
                        agent,
                        SiteToAgent::StateChanged {
                            state: to,
                            since_ms,
                        },
                    );
                } else if let Some(streams) = self.parked_agent_streams.get_mut(&agent) {
                    streams.publish(&json!({"type": "state", "state": to, "since_ms": since_ms}));
                }
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
            EventKind::TransferredOut {
                contact, to_skill, ..
            } => {
                self.dirty_queues.insert(to_skill);
                if let Some(record) = self.contacts.get_mut(&contact) {
                    record.stage = ContactStage::Queued;
                }
            }
            _ => {}
        }
    }

    fn on_offer(&mut self, contact: ContactId, agent: AgentId, timeout_at: TimeMs) {
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
        self.dirty_contacts.push(contact);
        // The Agent actor rings the desktop and times the offer (the dial request of a
        // callback goes to the gateway from the Call actor, which sees the view change).
        let deadline_ms = self.epoch_ms.saturating_add(timeout_at.0);
        self.offers.insert(contact, (agent, deadline_ms));
        let view = self.contact_json(contact);
        self.tell_agent(
            agent,
            SiteToAgent::Offer {
                contact,
                view,
                deadline_ms,
            },
        );
    }

    /// An offer rang out: the domain decides (it ignores a stale timeout — accepted, rejected,
    /// re-offered since).
    fn offer_expired(&mut self, ctx: &mut Context<Self>, contact: ContactId, agent: AgentId) {
        let now = self.now();
        let mut effects = std::mem::take(&mut self.effects);
        let timed_out = self
            .site
            .handle_offer_timeout(now, contact, agent, &mut effects);
        self.effects = effects;
        if timed_out {
            self.offers.remove(&contact);
            tracing::info!(
                contact = contact.0,
                agent = agent.0,
                "offer timed out; contact back at its place"
            );
        }
        self.process_effects(ctx);
    }

    /// Times out offers whose Agent actor did not report in time (its timer was lost), and
    /// forgets offers that ended without the Site noticing.
    fn sweep_offers(&mut self, ctx: &mut Context<Self>) {
        let now = now_ms();
        let overdue: Vec<(ContactId, AgentId)> = self
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
                self.offer_timers_lost += 1;
                self.offer_expired(ctx, contact, agent);
            } else {
                self.offers.remove(&contact);
            }
        }
    }

    fn notify_agent(&mut self, agent: AgentId, message: Value) {
        if self.agent_actors.contains_key(&agent) {
            self.tell_agent(agent, SiteToAgent::Notify(message));
        } else if let Some(streams) = self.parked_agent_streams.get_mut(&agent) {
            streams.publish(&message);
        }
    }

    /// The contact is done: its final view goes to its Call actor, which lingers for lookups;
    /// the Site forgets it. Returns the final view.
    fn finish(&mut self, contact: ContactId) -> Value {
        if let Some(record) = self.contacts.get_mut(&contact)
            && matches!(record.stage, ContactStage::WrapUp | ContactStage::Talking)
        {
            record.stage = ContactStage::Finished;
        }
        let view = self.contact_json(contact);
        if let Some(record) = self.contacts.remove(&contact) {
            self.dirty_queues.insert(record.skill);
            self.offers.remove(&contact);
            self.tell_call(contact, SiteToCall::ViewChanged(view.clone()));
            self.lingering.push_back((contact, now_ms()));
        }
        while self.lingering.len() > FINISHED_CONTACTS_MAX {
            if let Some((old, _)) = self.lingering.pop_front() {
                self.call_actors.remove(&old);
            }
        }
        view
    }

    /// Drops the addresses of Call actors whose linger is over: they stop.
    fn sweep_lingering(&mut self) {
        let now = now_ms();
        while let Some((contact, finished_at_ms)) = self.lingering.front().copied() {
            if finished_at_ms.saturating_add(CALL_LINGER_AFTER_FINISH_MS) > now {
                break;
            }
            self.lingering.pop_front();
            self.call_actors.remove(&contact);
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
            "overflowed_from": record.overflowed_from,
            "overflowed_to": record.overflowed_to,
        })
    }

    /// Applies the overflow rule with the peers' last summaries, then re-arms its timer.
    fn poll_overflow(&mut self, ctx: &mut Context<Self>) {
        if !self.config.overflow.enabled {
            return;
        }
        self.overflow_polls += 1;
        let now = self.now();
        let mut effects = std::mem::take(&mut self.effects);
        self.site.poll_overflow(now, &self.peers, &mut effects);
        self.effects = effects;
        self.process_effects(ctx);
        self.arm_overflow_timer(ctx);
    }

    /// Schedules one poll at `overflow_deadline()` (the oldest-wait trigger), replacing a
    /// poll scheduled for another time.
    fn arm_overflow_timer(&mut self, ctx: &mut Context<Self>) {
        if !self.config.overflow.enabled {
            return;
        }
        let deadline = self.site.overflow_deadline();
        if self.overflow_timer.as_ref().map(|(at, _)| *at) == deadline {
            return;
        }
        if let Some((_, handle)) = self.overflow_timer.take() {
            ctx.cancel_future(handle);
        }
        if let Some(at) = deadline {
            let delay = Duration::from_millis(at.0.saturating_sub(self.now().0));
            let handle = ctx.run_later(delay, |actor, ctx| {
                actor.overflow_timer = None;
                actor.poll_overflow(ctx);
                actor.flush(ctx);
            });
            self.overflow_timer = Some((at, handle));
        }
    }

    /// The summary tick: proposes this site's summary when it changed (or is getting old),
    /// reads the peers' summaries and polls the rule when they changed.
    fn overflow_tick(&mut self, ctx: &mut Context<Self>) {
        let wall_ms = now_ms();
        let mut summary = callgrid_domain::SiteSummary::default();
        let now = self.now();
        self.site.fill_summary(now, &mut summary);
        let publication = overflow::publishable(&self.config, wall_ms, &summary);
        let due = self.published.as_ref().is_none_or(|(last, at_ms)| {
            !overflow::same_availability(last, &publication)
                || wall_ms.saturating_sub(*at_ms) >= SUMMARY_REFRESH_AFTER_MS
        });
        if due && !self.publishing {
            self.publishing = true;
            let proposer = self.proposer.clone();
            let command = Command::PublishSiteSummary(publication.clone());
            ctx.spawn(
                async move { proposer.propose(Principal::system(), command).await }
                    .into_actor(self)
                    .map(move |result, actor, _ctx| {
                        actor.publishing = false;
                        match result {
                            Ok(_) => actor.published = Some((publication, wall_ms)),
                            Err(error) => {
                                tracing::warn!(%error, "site summary not published; retrying next tick");
                            }
                        }
                    }),
            );
        }
        if self.config.overflow.enabled {
            let peers = self.shared.read(|state| {
                overflow::peer_summaries(&self.config, wall_ms, state.site_summaries())
            });
            if peers != self.peers {
                self.peers = peers;
                self.poll_overflow(ctx);
            }
        }
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
            // The callback is this site's claim and is dialled from here; a gateway cannot
            // re-present an outbound call elsewhere, so the overflow rule never moves it (it
            // counts as having used its hops; while it heads a queue, that queue does not
            // overflow).
            overflow_count: callgrid_domain::OVERFLOW_HOPS_MAX,
            transfer_count: 0,
        };
        match self.arrive(ctx, contact, caller, Some(callback), None) {
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

    fn queues_json(&self) -> Value {
        let rows: Vec<Value> = (0..self.config.routing.skills.len())
            .filter_map(|index| u16::try_from(index).ok())
            .map(|index| self.queue_json(SkillId(index)))
            .collect();
        json!({ "site": self.config.site.id, "queues": rows })
    }

    /// One queue's live view (the Queue actor's, and a row of `GET /supervisor/queues`).
    fn queue_json(&self, skill_id: SkillId) -> Value {
        let Some(skill) = self.config.routing.skills.get(skill_id.index()) else {
            return Value::Null;
        };
        let now = now_ms();
        let (mut oldest, mut newest): (Option<u64>, Option<u64>) = (None, None);
        for record in self.contacts.values() {
            if record.skill == skill_id && record.stage == ContactStage::Queued {
                oldest =
                    Some(oldest.map_or(record.arrived_at_ms, |at| at.min(record.arrived_at_ms)));
                newest =
                    Some(newest.map_or(record.arrived_at_ms, |at| at.max(record.arrived_at_ms)));
            }
        }
        let (mut staffed, mut available, mut on_contact, mut wrap_up, mut not_ready) =
            (0, 0, 0, 0, 0);
        for (agent, skills) in &self.agent_skills {
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
        json!({
            "skill": skill.name,
            "channel": skill.channel,
            "line": skill.line,
            "in_queue": self.site.waiting(skill_id),
            "oldest_age_ms": oldest.map(|oldest| now.saturating_sub(oldest)),
            "newest_age_ms": newest.map(|newest| now.saturating_sub(newest)),
            "wait_ms_estimated": (estimated != u64::MAX).then_some(estimated),
            "agents_staffed": staffed,
            "agents_available": available,
            "agents_on_contact": on_contact,
            "agents_wrap_up": wrap_up,
            "agents_not_ready": not_ready,
        })
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
            (
                "callgrid_contacts_overflowed_in_total",
                totals.overflowed_in,
            ),
            ("callgrid_overflow_polls_total", self.overflow_polls),
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
        let (agents, calls, queues, restarts) = self.counts.snapshot();
        gauge(
            &mut text,
            "callgrid_actors_running",
            "Child actors running, by kind (calls include finished ones lingering for lookups).",
        );
        for (kind, count) in [("agent", agents), ("call", calls), ("queue", queues)] {
            text.push_str(&format!(
                "callgrid_actors_running{{site=\"{site}\",kind=\"{kind}\"}} {count}\n"
            ));
        }
        text.push_str(&format!(
            "# TYPE callgrid_actor_restarts_total counter\ncallgrid_actor_restarts_total{{site=\"{site}\"}} {restarts}\n"
        ));
        text.push_str(&format!(
            "# HELP callgrid_offer_timers_lost_total Offers timed out by the Site's sweep because no Agent actor reported them.\n\
             # TYPE callgrid_offer_timers_lost_total counter\ncallgrid_offer_timers_lost_total{{site=\"{site}\"}} {}\n",
            self.offer_timers_lost
        ));
        gauge(&mut text, "callgrid_agents", "Agents by state.");
        for (state, count) in states {
            text.push_str(&format!(
                "callgrid_agents{{site=\"{site}\",state=\"{state}\"}} {count}\n"
            ));
        }
        gauge(
            &mut text,
            "callgrid_overflow_peer_agents_idle",
            "Idle agents per skill at a peer site, from its last summary (stale: absent).",
        );
        for peer in &self.peers {
            let name = self
                .config
                .peer_site_by_number(peer.site.0)
                .map_or("", |peer| peer.id.as_str());
            for (index, cell) in peer.skills.iter().enumerate() {
                let skill = self.skill_name(SkillId(index as u16));
                text.push_str(&format!(
                    "callgrid_overflow_peer_agents_idle{{site=\"{site}\",peer=\"{name}\",skill=\"{skill}\"}} {}\n",
                    cell.idle_agents
                ));
            }
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
                overflowed_from,
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
                self.last_overflowed = None;
                let view = self.arrive(ctx, contact, caller, None, source)?;
                // A new arrival may start (predicted-wait trigger) or feed the rule.
                self.poll_overflow(ctx);
                match self.last_overflowed.take() {
                    Some((overflowed, final_view)) if overflowed == id => Ok(final_view),
                    _ if self.contacts.contains_key(&id) => Ok(self.contact_json(id)),
                    _ => Ok(view),
                }
            }
            SiteInput::ContactAnswered(contact) => {
                match self.site.contact_phase(contact) {
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
                Ok(self.contact_json(contact))
            }
            SiteInput::ContactEnded(contact) => {
                if !self.contacts.contains_key(&contact) && self.call_actors.contains_key(&contact)
                {
                    return Err(SiteError::Finished(contact));
                }
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
                if !self.contacts.contains_key(&contact) && self.call_actors.contains_key(&contact)
                {
                    return Err(SiteError::Finished(contact));
                }
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
                let agent = record.agent;
                self.tell_call(contact, SiteToCall::ChatMessage(message.clone()));
                if let Some(agent) = agent {
                    self.notify_agent(
                        agent,
                        json!({"type": "chat_message", "contact": contact.0, "message": message}),
                    );
                }
                Ok(json!({"accepted": true}))
            }
            SiteInput::Login(login) => {
                let agent = self.agent_id(&login)?;
                // The Agent actor exists before the domain's events about the login.
                let started = !self.agent_actors.contains_key(&agent);
                self.start_agent(ctx, agent);
                let result = self.domain(ctx, |site, now, out| site.handle_login(now, agent, out));
                if result.is_err()
                    && started
                    && self.site.agent_state(agent) == Some(AgentState::LoggedOut)
                {
                    self.stop_agent(agent);
                }
                result?;
                Ok(self.agent_json(&login, agent))
            }
            SiteInput::Logout(login) => {
                let agent = self.agent_id(&login)?;
                self.domain(ctx, |site, now, out| site.handle_logout(now, agent, out))?;
                // After the logged-out state went to the desktop: the actor stops.
                self.stop_agent(agent);
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
                self.settle_offer(contact, agent);
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
                self.settle_offer(contact, agent);
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
                Ok(self.finish(contact))
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
                self.dirty_contacts.push(contact);
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
                self.gateway_streams.publish(&request);
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

    /// Checks an `overflowed_from` field: a configured peer site, a plausible arrival time.
    fn overflow_source(&self, from: OverflowedFrom) -> Result<(SiteId, OverflowedFrom), SiteError> {
        let peer = self.config.peer_site(&from.site).ok_or_else(|| {
            SiteError::Invalid(format!(
                "overflowed_from.site: `{}` is not one of this site's peer sites",
                from.site.chars().take(64).collect::<String>()
            ))
        })?;
        if from.contact == 0 {
            return Err(SiteError::Invalid(
                "overflowed_from.contact: must be positive".to_string(),
            ));
        }
        if !(1..=OVERFLOW_HOPS_MAX).contains(&from.hops) {
            return Err(SiteError::Invalid(format!(
                "overflowed_from.hops: must be 1..={OVERFLOW_HOPS_MAX}"
            )));
        }
        if from.arrived_at_ms == 0
            || from.arrived_at_ms > now_ms().saturating_add(ARRIVAL_CLOCK_SKEW_MS_MAX)
        {
            return Err(SiteError::Invalid(
                "overflowed_from.arrived_at_ms: must be a past time in ms since the Unix epoch"
                    .to_string(),
            ));
        }
        Ok((SiteId(peer.number), from))
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
        // A ringing offer is withdrawn by the domain's `CancelOffer` effect.
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
        Ok(self.finish(contact))
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

/// Packs a normalized phone number into the domain's integer form (digits only).
pub fn caller_number(caller: &str) -> callgrid_domain::CallerNumber {
    let digits: String = caller.chars().filter(char::is_ascii_digit).collect();
    callgrid_domain::CallerNumber(digits.parse().unwrap_or(0))
}

impl Actor for SiteActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(SITE_MAILBOX_CAPACITY);
        // One Queue actor per skill; wallboards that were watching get the new ones.
        self.queue_actors.clear();
        for index in 0..self.config.routing.skills.len() {
            let Ok(index) = u16::try_from(index) else {
                continue;
            };
            let skill = SkillId(index);
            let actor = QueueActor::new(
                skill,
                self.queue_json(skill),
                ctx.address().recipient(),
                self.counts.clone(),
            );
            self.queue_actors.push(Supervisor::start(move |_| actor));
        }
        for stream in self.supervisor_streams.take() {
            let _ = self.supervisor_streams.add(stream.clone());
            for queue in &self.queue_actors {
                queue.do_send(SubscribeQueueStream(stream.clone()));
            }
        }
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
        self.flush(ctx);
        ctx.run_interval(CALLBACK_SWEEP_INTERVAL, |actor, ctx| {
            actor.sweep_callbacks(ctx);
            actor.sweep_offers(ctx);
            actor.sweep_lingering();
            actor.arm_overflow_timer(ctx);
            actor.flush(ctx);
        });
        if self.config.overflow.enabled || !self.config.peer_sites.is_empty() {
            ctx.run_interval(SUMMARY_PUBLISH_INTERVAL, |actor, ctx| {
                actor.overflow_tick(ctx);
                actor.flush(ctx);
            });
        }
        tracing::info!(site = %self.config.site.id, agents = self.agents_by_login.len(), "site actor started");
    }
}

impl actix::Supervised for SiteActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Rebuilt from the configuration and the replicated state (the last acknowledged
        // state): live calls are lost with the actor, durable work (callbacks) is re-queued
        // by `started`. The children's addresses go with the old state, so they stop; Agent
        // actors hand their desktop streams back as they do.
        tracing::warn!(site = %self.config.site.id, "site actor restarting");
        if let Ok(fresh) = SiteActor::new(
            self.config.clone(),
            self.proposer.clone(),
            self.shared.clone(),
        ) {
            let parked = std::mem::take(&mut self.parked_agent_streams);
            let supervisors = std::mem::take(&mut self.supervisor_streams);
            let gateways = self.gateway_streams.clone();
            let counts = self.counts.clone();
            *self = fresh;
            self.parked_agent_streams = parked;
            self.supervisor_streams = supervisors;
            self.gateway_streams = gateways;
            self.counts = counts;
        }
    }
}

impl Handler<SiteInput> for SiteActor {
    type Result = SiteResult;

    fn handle(&mut self, input: SiteInput, ctx: &mut Self::Context) -> Self::Result {
        let result = self.handle_input(input, ctx);
        self.arm_overflow_timer(ctx);
        self.flush(ctx);
        result
    }
}

impl Handler<LookupContact> for SiteActor {
    type Result = ResponseFuture<SiteResult>;

    fn handle(&mut self, lookup: LookupContact, _ctx: &mut Self::Context) -> Self::Result {
        let contact = lookup.contact;
        // A live contact: the Site checks the agent and gives the current view (queue
        // positions move); a finished one: its Call actor holds the final view.
        let fresh = if self.contacts.contains_key(&contact) {
            if let Some(login) = &lookup.agent
                && let Err(error) = self.contact_for_agent(login, contact)
            {
                return Box::pin(async move { Err(error) });
            }
            Some(self.contact_json(contact))
        } else {
            None
        };
        let Some(address) = self.call_actors.get(&contact).cloned() else {
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
                if let Some(address) = self.agent_actors.get(&agent).cloned() {
                    return Box::pin(async move {
                        match address.send(SubscribeAgentStream(subscribe.sender)).await {
                            Ok(result) => result.map_err(full),
                            Err(_) => Err(SiteError::Conflict(
                                "the agent's desktop is restarting; retry".to_string(),
                            )),
                        }
                    });
                }
                self.parked_agent_streams
                    .entry(agent)
                    .or_default()
                    .add(subscribe.sender)
                    .map_err(full)
            }
            Audience::Supervisor => {
                let result = self
                    .supervisor_streams
                    .add(subscribe.sender.clone())
                    .map_err(full);
                if result.is_ok() {
                    for queue in &self.queue_actors {
                        queue.do_send(SubscribeQueueStream(subscribe.sender.clone()));
                    }
                }
                result
            }
            Audience::Gateway => self.gateway_streams.add(subscribe.sender).map_err(full),
        };
        Box::pin(async move { result })
    }
}

impl Handler<AgentToSite> for SiteActor {
    type Result = ();

    fn handle(&mut self, message: AgentToSite, ctx: &mut Self::Context) {
        match message {
            AgentToSite::OfferExpired { agent, contact } => {
                self.offer_expired(ctx, contact, agent);
            }
            AgentToSite::Restarted(agent) => {
                // A restarted actor of a logged-out agent gets nothing: it stops when the
                // last address to it goes.
                if self.agent_actors.contains_key(&agent) {
                    let state = self
                        .site
                        .agent_state(agent)
                        .unwrap_or(AgentState::LoggedOut);
                    let since_ms = self
                        .state_since_ms
                        .get(&agent)
                        .copied()
                        .unwrap_or_else(now_ms);
                    let offers = self
                        .offers
                        .iter()
                        .filter(|(_, (holder, _))| *holder == agent)
                        .map(|(contact, (_, deadline_ms))| {
                            (*contact, self.contact_json(*contact), *deadline_ms)
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
                if let Some(address) = self.agent_actors.get(&agent) {
                    // Logged in again (or restarted) meanwhile: the streams go to the actor.
                    for stream in streams {
                        address.do_send(SubscribeAgentStream(stream));
                    }
                } else {
                    let parked = self.parked_agent_streams.entry(agent).or_default();
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
                if self.contacts.contains_key(&contact) {
                    let view = self.contact_json(contact);
                    self.tell_call(contact, SiteToCall::ViewChanged(view));
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

/// The Site's children, for tests and diagnostics.
#[derive(Debug, Message)]
#[rtype(result = "SiteChildren")]
pub struct LookupChildren;

/// Addresses of the Site's children.
#[derive(Debug, Default, MessageResponse)]
pub struct SiteChildren {
    /// Agent actors by login.
    pub agents: BTreeMap<String, Addr<AgentActor>>,
    /// Call actors by contact (lingering ones included).
    pub calls: BTreeMap<u64, Addr<CallActor>>,
    /// Queue actors by skill index.
    pub queues: Vec<Addr<QueueActor>>,
    /// Running counts.
    pub counts: ChildCounts,
}

impl Handler<LookupChildren> for SiteActor {
    type Result = SiteChildren;

    fn handle(&mut self, _lookup: LookupChildren, _ctx: &mut Self::Context) -> Self::Result {
        SiteChildren {
            agents: self
                .agent_actors
                .iter()
                .map(|(agent, address)| {
                    (
                        self.logins.get(agent).cloned().unwrap_or_default(),
                        address.clone(),
                    )
                })
                .collect(),
            calls: self
                .call_actors
                .iter()
                .map(|(contact, address)| (contact.0, address.clone()))
                .collect(),
            queues: self.queue_actors.clone(),
            counts: self.counts.clone(),
        }
    }
}

impl Handler<CallbackClaimed> for SiteActor {
    type Result = ();

    fn handle(&mut self, claimed: CallbackClaimed, ctx: &mut Self::Context) {
        self.claiming.remove(&claimed.callback);
        self.queue_callback(ctx, claimed.callback, claimed.caller, &claimed.reason);
        self.flush(ctx);
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
