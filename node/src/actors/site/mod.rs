//! The Site actor: one per node, the supervisor of the Agent, Call and Queue actors, and the
//! thin shell around `callgrid_domain::Site`.
//!
//! It owns the domain state machine (queues per skill, agents, contacts). Routing is decided
//! only here, because one decision spans queues and agents atomically (see [`super`]). It
//! turns API inputs into `handle_*` calls and the domain's effects into messages to its
//! children: offers to the Agent actor (which rings the desktop and times the offer), contact
//! views to the Call actor (transcript, gateway events, lookups), queue views to the Queue
//! actor (wallboards). It turns events into metrics and the supervisor event stream, and
//! callback requests into writes of its durable outbox (`crate::outbox`: fsync'd, then
//! committed in batches, each once). It also works due callbacks: claims them through
//! Raft and queues them as outbound contacts. It publishes the site's availability summary
//! through Raft and applies the overflow rule with the peers' summaries; an overflowed
//! contact leaves with stage `overflowed` for the gateway to re-present at the target site
//! (see [`super::overflow`]).
//!
//! Children are started with `actix::Supervisor`; the Site holds their addresses and drops an
//! address to stop a child for good (logout; a finished contact after its linger). A child
//! restarted after a panic asks the Site for what it holds and rebuilds from it.
//!
//! The code is split by audience and concern:
//! - [`messages`] — the inputs, errors and stages the API sees;
//! - `gateway`, `desktop`, `supervisor` — input handling per audience;
//! - `effects` — acting on the domain's effects, the offer sweep;
//! - `children` — starting, telling and stopping children; streams;
//! - `callbacks` — working due callbacks through Raft;
//! - `overflow` — the summary tick and the overflow rule's timer;
//! - `adoption` — adopting a lost peer's contacts (site loss);
//! - `ledger` — the contact ledger's updates (through the outbox) and overflowed-in claims;
//! - [`views`] — the read models (contacts, agents, queues, metrics snapshot).
//!
//! Its mailbox is bounded ([`SITE_MAILBOX_CAPACITY`]); API senders wait when it is full. Its
//! sends to children use `try_send` on their bounded mailboxes; a child that cannot keep up
//! loses views (the next one replaces them), and an offer whose timer was lost is timed out by
//! the Site's own sweep [`OFFER_TIMER_GRACE_MS`] after its deadline. Streams are bounded
//! channels; a desktop that does not read loses events, never the node.

mod adoption;
mod callbacks;
mod children;
mod desktop;
mod drain;
mod effects;
mod event_view;
mod gateway;
mod ledger;
pub mod messages;
mod overflow;
mod report_writer;
pub mod reports;
mod supervisor;
pub mod views;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use callgrid_domain::{
    AgentId, AgentSpec, Channel, ContactId, Direction, Effect, Metrics, SiteId, SkillGrant,
    SkillId, TimeMs, Topic,
};

use super::agent::AgentActor;
use super::call::CallActor;
use super::overflow::{OverflowedFrom, OverflowedTo, SUMMARY_PUBLISH_INTERVAL};
use super::queue::{QueueActor, SubscribeQueueStream};
use super::{ChildCounts, GatewayStreams, Subscribers};
pub use super::{STREAM_BUFFER_EVENTS, SUBSCRIBERS_MAX};
use crate::config::{NodeConfig, parse_date_end_ms};
use crate::outbox::Outbox;
use crate::replicate::{Proposer, now_ms};
use crate::state::SharedState;
use crate::state::model::DAY_MS;
use crate::state::site_writes::SiteWrite;
pub use adoption::ADOPTION_BOUND_MS;
pub use messages::{
    Arrival, Audience, ContactStage, Drain, LookupChildren, LookupContact, LookupMetrics,
    OutboxDurable, OutboxHandle, SiteChildren, SiteError, SiteInput, SiteResult, Subscribe,
    outcome_json,
};
pub use views::{
    AgentView, AgentsView, ContactView, MonitorRequest, QueuesView, RoutingMetrics, SiteReply,
};

/// Bits of a contact id below the node id.
pub const CONTACT_COUNTER_BITS: u32 = 40;
/// The counter part of a contact id.
const CONTACT_COUNTER_MASK: u64 = (1 << CONTACT_COUNTER_BITS) - 1;
/// The largest node id: ids stay below 2^53 (exact as JSON numbers).
pub const NODE_ID_MAX: u64 = (1 << (53 - CONTACT_COUNTER_BITS)) - 1;
/// The contact id counter starts from the milliseconds since this instant (2026-01-01 UTC);
/// 2^40 ms later (the year 2060) it wraps.
pub const CONTACT_ID_EPOCH_MS: u64 = 1_767_225_600_000;

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

/// The agents on the roster (fixed by the configuration) and when each entered its state.
#[derive(Debug, Default)]
struct Roster {
    agents_by_login: BTreeMap<String, AgentId>,
    logins: HashMap<AgentId, String>,
    agent_skills: HashMap<AgentId, Vec<SkillId>>,
    state_since_ms: HashMap<AgentId, u64>,
}

/// Contacts the Site is working on (arrived, not finished) and their offers.
#[derive(Debug, Default)]
struct LiveContacts {
    next_contact: u64,
    /// Live contacts; finished ones live on in their Call actors.
    contacts: HashMap<ContactId, ContactRecord>,
    /// Offers ringing: contact → (agent, deadline in ms since the epoch).
    offers: HashMap<ContactId, (AgentId, u64)>,
    /// The contact whose arrival is being handled (immediate-offer latency).
    arriving: Option<ContactId>,
    /// The armed timer of the domain's earliest wrap-up maximum: (deadline, timer).
    wrap_up_timer: Option<(TimeMs, SpawnHandle)>,
}

/// The addresses of the Site's children.
#[derive(Debug, Default)]
struct Children {
    agent_actors: HashMap<AgentId, Addr<AgentActor>>,
    call_actors: HashMap<ContactId, Addr<CallActor>>,
    queue_actors: Vec<Addr<QueueActor>>,
    /// Finished contacts whose Call actors linger: (contact, finished at ms).
    lingering: VecDeque<(ContactId, u64)>,
    counts: ChildCounts,
}

/// Streams the Site holds itself.
#[derive(Debug, Default)]
struct Streams {
    /// Desktop streams of agents that are logged out (an Agent actor holds them otherwise).
    parked_agents: HashMap<AgentId, Subscribers>,
    supervisors: Subscribers,
    gateways: GatewayStreams,
    monitor_requests: VecDeque<MonitorRequest>,
}

/// What changed since the children were last told.
#[derive(Debug, Default)]
struct Dirty {
    contacts: Vec<ContactId>,
    queues: BTreeSet<SkillId>,
    queue_publish_scheduled: bool,
}

/// Callbacks being claimed through Raft, and those queued here as contacts.
#[derive(Debug, Default)]
struct CallbackWork {
    claiming: BTreeSet<u64>,
    /// Releases in flight (a drained site giving its claims back).
    releasing: BTreeSet<u64>,
    /// Callback → the outbound contact working it.
    queued: BTreeMap<u64, ContactId>,
}

/// The overflow rule's inputs and timer.
#[derive(Debug, Default)]
struct OverflowGlue {
    /// The peers' summaries as last read from the replicated state (domain form).
    peers: Vec<callgrid_domain::SiteSummary>,
    /// The last summary this site had committed, and when it was published (ms).
    published: Option<(crate::state::model::SiteSummary, u64)>,
    /// When each peer's current summary arrived, on this node's clock.
    arrivals: crate::actors::overflow::PeerArrivals,
    /// A summary proposal is in flight (at most one).
    publishing: bool,
    /// The scheduled overflow poll at `overflow_deadline()`.
    timer: Option<(TimeMs, SpawnHandle)>,
    /// Overflow rule applications (`/metrics`; tests wait on it).
    polls: u64,
    /// The final view of the contact last sent away, for the arrival that triggered it.
    last_overflowed: Option<(ContactId, ContactView)>,
}

/// Offer latency samples and lost offer timers (`/metrics`).
#[derive(Debug, Default)]
struct OfferStats {
    offer_latency_us: VecDeque<u64>,
    offer_latency_immediate_us: VecDeque<u64>,
    /// Offers the Site had to time out itself because no Agent actor reported them.
    offer_timers_lost: u64,
}

/// The Site actor.
pub struct SiteActor {
    config: Arc<NodeConfig>,
    site_id: SiteId,
    epoch_ms: u64,
    site: callgrid_domain::Site,
    metrics: Metrics,
    /// Daily interval reports (today live, closed days on disk).
    days: reports::DayBook,
    effects: Vec<Effect>,
    proposer: Proposer,
    /// Writes the site must get committed (callbacks, attempt outcomes), durable first.
    outbox: Outbox,
    shared: SharedState,
    node_id: u64,
    draining: bool,
    /// The domain site is down because this site is drained (its waiting callers moved).
    drain_down: bool,
    roster: Roster,
    live: LiveContacts,
    children: Children,
    streams: Streams,
    dirty: Dirty,
    callbacks: CallbackWork,
    overflow: OverflowGlue,
    stats: OfferStats,
    /// The contacts the ledger follows, and the overflowed-in contacts taken.
    ledger: ledger::LedgerGlue,
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
    /// A handle to the site's durable outbox (the node closes it last when it stops, so its
    /// threads are not inside RocksDB or a proposal when the process exits).
    pub fn outbox(&self) -> Outbox {
        self.outbox.clone()
    }

    /// Builds the actor: the domain site with the configured roster (all logged out), and
    /// opens the site's durable outbox in the data dir (its drainer proposes through
    /// `proposer`).
    pub fn new(
        config: Arc<NodeConfig>,
        proposer: Proposer,
        shared: SharedState,
    ) -> Result<Self, SiteError> {
        let outbox = Outbox::open_with(
            &config.site.data_dir,
            proposer.clone(),
            Some(shared.clone()),
        )
        .map_err(|error| SiteError::Outbox(Arc::new(error)))?;
        Self::build(config, proposer, shared, outbox)
    }

    /// Builds the actor around an open outbox (a restart keeps the outbox).
    fn build(
        config: Arc<NodeConfig>,
        proposer: Proposer,
        shared: SharedState,
        outbox: Outbox,
    ) -> Result<Self, SiteError> {
        let now = crate::clock::now_ms();
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
            let skills = skill_grants(
                &config,
                epoch_ms,
                &agent.skills,
                agent.certificate_valid_until.as_deref(),
            );
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
        let days = reports::DayBook::open(
            &config.site.data_dir,
            &config.site.id,
            config.site.utc_offset_minutes,
            config.metrics.clone(),
            (usize::from(config.site.number) + 1, skill_count),
            now,
        );
        let node_id = config.cluster.node_id;
        Ok(Self {
            config,
            site_id,
            epoch_ms,
            site,
            metrics,
            days,
            effects: Vec::with_capacity(64),
            proposer,
            outbox,
            shared,
            node_id,
            draining: false,
            drain_down: false,
            roster: Roster {
                agents_by_login,
                logins,
                agent_skills,
                state_since_ms: HashMap::new(),
            },
            live: LiveContacts::default(),
            children: Children::default(),
            streams: Streams::default(),
            dirty: Dirty::default(),
            callbacks: CallbackWork::default(),
            overflow: OverflowGlue::default(),
            stats: OfferStats::default(),
            ledger: ledger::LedgerGlue::default(),
        })
    }

    /// Hands `write` to the outbox (durable, then committed once; never waits for Raft).
    fn write_through_outbox(&self, write: SiteWrite) {
        let kind = write.kind();
        if let Err(error) = self.outbox.append(write) {
            tracing::error!(kind, %error, "site write not taken by the outbox");
        }
    }

    fn now(&self) -> TimeMs {
        TimeMs(crate::clock::now_ms().saturating_sub(self.epoch_ms))
    }

    /// The agent's id here for a login. An agent of the cluster roster (defined at another
    /// site) joins this site's roster at its first login, with the skills this site has (the
    /// others are ignored); with none of them it is refused (409).
    fn agent_for_login(&mut self, login: &str) -> Result<AgentId, SiteError> {
        if let Some(agent) = self.roster.agents_by_login.get(login) {
            return Ok(*agent);
        }
        let record = self
            .shared
            .read(|state| state.roster_agent(login).cloned())
            .ok_or_else(|| {
                SiteError::NotFound(format!(
                    "agent `{login}` is on neither this site's roster nor the cluster's"
                ))
            })?;
        let definition = record.agent;
        let skills = skill_grants(
            &self.config,
            self.epoch_ms,
            &definition.skills,
            definition.certificate_valid_until.as_deref(),
        );
        if skills.is_empty() {
            return Err(SiteError::Conflict(format!(
                "agent `{login}` (defined by site {}) has none of this site's skills ({})",
                record.defined_by_site,
                definition.skills.join(", ")
            )));
        }
        let id = AgentId(definition.id);
        if let Some(other) = self.roster.logins.get(&id) {
            return Err(SiteError::Conflict(format!(
                "agent `{login}`'s id {} is agent `{other}`'s at this site",
                definition.id
            )));
        }
        let skill_ids = skills.iter().map(|grant| grant.skill).collect::<Vec<_>>();
        self.site.add_agent(AgentSpec {
            id,
            skills,
            chat_slots: definition.chat_slots,
        })?;
        self.roster.agent_skills.insert(id, skill_ids);
        self.roster.agents_by_login.insert(login.to_string(), id);
        self.roster.logins.insert(id, login.to_string());
        tracing::info!(site = %self.config.site.id, %login, defined_by = %record.defined_by_site, "agent of the cluster roster joined this site's roster");
        Ok(id)
    }

    fn agent_id(&self, login: &str) -> Result<AgentId, SiteError> {
        self.roster
            .agents_by_login
            .get(login)
            .copied()
            .ok_or_else(|| {
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

    /// A new contact id: the node id in the top bits (unique across the cluster), then a
    /// counter that never falls below the milliseconds since [`CONTACT_ID_EPOCH_MS`]. A
    /// restarted node or Site actor therefore continues above every id it handed out before
    /// (unless it had handed out more than one id per millisecond since that epoch, or the
    /// clock went back), so a late gateway event for an old contact cannot hit a new one.
    /// Ids stay below 2^53 (exact in JSON): the node id is at most [`NODE_ID_MAX`].
    fn allocate_contact_id(&mut self) -> ContactId {
        let floor = now_ms().saturating_sub(CONTACT_ID_EPOCH_MS);
        let next = self.live.next_contact.saturating_add(1).max(floor) & CONTACT_COUNTER_MASK;
        self.live.next_contact = next;
        debug_assert!(
            self.node_id <= NODE_ID_MAX,
            "node id bounded by the config check"
        );
        let id = (self.node_id << CONTACT_COUNTER_BITS) | next;
        debug_assert!(id < 1 << 53, "contact ids are exact in JSON");
        ContactId(id)
    }

    fn contact_for_agent(
        &self,
        login: &str,
        contact: ContactId,
    ) -> Result<(AgentId, &ContactRecord), SiteError> {
        let agent = self.agent_id(login)?;
        let record = self
            .live
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
                self.process_effects();
                self.arm_wrap_up_timer(ctx);
                Ok(value)
            }
            Err(error) => {
                self.effects.clear();
                Err(SiteError::Domain(error))
            }
        }
    }

    fn handle_input(&mut self, input: SiteInput, ctx: &mut Context<Self>) -> SiteResult {
        match input {
            SiteInput::ContactArrived(arrival) => self.contact_arrived(ctx, arrival),
            SiteInput::ContactAnswered { contact, agent } => {
                self.contact_answered(ctx, contact, &agent)
            }
            SiteInput::ContactEnded(contact) => self.contact_ended(ctx, contact),
            SiteInput::ContactRecording { contact, reference } => {
                self.contact_recording(contact, reference)
            }
            SiteInput::ContactAbandoned(contact) => self.abandon(contact),
            SiteInput::ContactSelfServed(contact) => self.self_served(contact),
            SiteInput::ChatMessage { contact, text } => self.chat_message(contact, text),
            SiteInput::AgentChat {
                login,
                contact,
                text,
            } => self.agent_chat(&login, contact, text),
            SiteInput::Login(login) => self.login(ctx, &login),
            SiteInput::Logout(login) => self.logout(ctx, &login),
            SiteInput::Ready(login) => self.ready(ctx, &login),
            SiteInput::NotReady { login, reason } => self.not_ready(ctx, &login, reason),
            SiteInput::Accept { login, contact } => self.accept(ctx, &login, contact),
            SiteInput::Reject { login, contact } => self.reject(ctx, &login, contact),
            SiteInput::End { login, contact } => self.end(ctx, &login, contact),
            SiteInput::WrapUp {
                login,
                contact,
                code,
                callback_outcome,
            } => self.wrap_up(ctx, &login, contact, code, callback_outcome),
            SiteInput::Transfer {
                login,
                contact,
                skill,
            } => self.transfer(ctx, &login, contact, &skill),
            SiteInput::AgentView(login) => {
                let agent = self.agent_id(&login)?;
                Ok(SiteReply::agent(self.agent_view(&login, agent)))
            }
            SiteInput::QueuesView => Ok(SiteReply::Queues(self.queues_view())),
            SiteInput::AgentsView => Ok(SiteReply::Agents(self.agents_view())),
            SiteInput::Monitor {
                supervisor,
                agent,
                mode,
            } => self.monitor(&supervisor, &agent, &mode),
            SiteInput::Report { date } => self
                .days
                .report(date, crate::clock::now_ms())
                .map(|report| SiteReply::Report(Box::new(report)))
                .map_err(|error| SiteError::NotFound(error.to_string())),
        }
    }
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
        self.children.queue_actors.clear();
        for index in 0..self.config.routing.skills.len() {
            let Ok(index) = u16::try_from(index) else {
                continue;
            };
            let skill = SkillId(index);
            let Some(view) = self.queue_view(skill) else {
                continue;
            };
            let actor = QueueActor::new(
                skill,
                view,
                ctx.address().recipient(),
                self.children.counts.clone(),
            );
            self.children
                .queue_actors
                .push(Supervisor::start(move |_| actor));
        }
        for stream in self.streams.supervisors.take() {
            let _ = self.streams.supervisors.add(stream.clone());
            for queue in &self.children.queue_actors {
                queue.do_send(SubscribeQueueStream(stream.clone()));
            }
        }
        self.follow_state_events(ctx);
        // Callbacks this site had queued before a restart go back into its queue, once the
        // replicated state has been reloaded.
        self.requeue_claimed_after_reload(ctx);
        self.recover_own_contacts(ctx);
        self.flush(ctx);
        ctx.run_interval(CALLBACK_SWEEP_INTERVAL, |actor, ctx| {
            actor.drain_tick();
            actor.sweep_callbacks(ctx);
            actor.sweep_offers();
            actor.sweep_lingering();
            actor.arm_overflow_timer(ctx);
            actor.flush(ctx);
        });
        ctx.run_interval(reports::FLUSH_INTERVAL, |actor, _ctx| {
            actor.days.flush(crate::clock::now_ms());
        });
        if self.config.overflow.enabled || !self.config.peer_sites.is_empty() {
            ctx.run_interval(
                crate::clock::scaled_interval(SUMMARY_PUBLISH_INTERVAL),
                |actor, ctx| {
                    actor.overflow_tick(ctx);
                    actor.adoption_tick(ctx);
                    actor.flush(ctx);
                },
            );
        }
        tracing::info!(site = %self.config.site.id, agents = self.roster.agents_by_login.len(), "site actor started");
    }
}

impl actix::Supervised for SiteActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Rebuilt from the configuration and the replicated state (the last acknowledged
        // state): live calls are lost with the actor, durable work (callbacks) is re-queued
        // by `started`. The children's addresses go with the old state, so they stop; Agent
        // actors hand their desktop streams back as they do.
        tracing::warn!(site = %self.config.site.id, "site actor restarting");
        if let Ok(fresh) = SiteActor::build(
            self.config.clone(),
            self.proposer.clone(),
            self.shared.clone(),
            self.outbox.clone(),
        ) {
            let parked = std::mem::take(&mut self.streams.parked_agents);
            let supervisors = std::mem::take(&mut self.streams.supervisors);
            let gateways = self.streams.gateways.clone();
            let counts = self.children.counts.clone();
            let next_contact = self.live.next_contact;
            *self = fresh;
            // Ids go on from the last one handed out (no reuse within the same millisecond).
            self.live.next_contact = next_contact;
            self.streams.parked_agents = parked;
            self.streams.supervisors = supervisors;
            self.streams.gateways = gateways;
            self.children.counts = counts;
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

impl Handler<OutboxDurable> for SiteActor {
    type Result = ResponseFuture<Result<(), SiteError>>;

    fn handle(&mut self, _durable: OutboxDurable, _ctx: &mut Self::Context) -> Self::Result {
        let outbox = self.outbox.clone();
        Box::pin(async move {
            outbox
                .durable()
                .await
                .map_err(|error| SiteError::Outbox(Arc::new(error)))
        })
    }
}

impl Handler<OutboxHandle> for SiteActor {
    type Result = MessageResult<OutboxHandle>;

    fn handle(&mut self, _handle: OutboxHandle, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.outbox.clone())
    }
}

impl Handler<Drain> for SiteActor {
    type Result = ();

    fn handle(&mut self, _drain: Drain, _ctx: &mut Self::Context) {
        self.draining = true;
        tracing::info!(
            queued_callbacks = self.callbacks.queued.len(),
            "site draining"
        );
    }
}

/// The skill grants of an agent at this site: the named skills the site has (others are
/// ignored); line-2 skills last until the end of the certificate's day (none without one).
fn skill_grants(
    config: &NodeConfig,
    epoch_ms: u64,
    skills: &[String],
    certificate_valid_until: Option<&str>,
) -> Vec<SkillGrant> {
    let valid_until = certificate_valid_until
        .and_then(parse_date_end_ms)
        .map(|end| TimeMs(end.saturating_sub(epoch_ms)));
    skills
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
        .collect()
}
