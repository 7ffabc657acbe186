//! The discrete-event engine: a time-ordered agenda of pending actions driving
//! `callgrid-domain`'s sites and callback book, and acting on the effects they return.
//!
//! ```text
//! agenda of (time ms, sequence, Action) ──pop──▶ handler ──handle_*(now, …)──▶ domain Site
//!        ▲                                                                        │ effects
//!        └──── schedule ring / talk end / wrap-up end / patience / callback ◀──────┘
//!                                 Event effects ──▶ domain Metrics (the same code as the node)
//! ```
//!
//! What the engine decides itself is only what the outside world decides in production: when
//! contacts arrive (a Poisson process whose rate is piecewise constant per interval), what they
//! are (site, channel, topic by the scenario's shares), how long callers wait before hanging up,
//! how long conversations last, whether line 1 transfers to line 2, whether a callback reaches
//! the customer, and when agents start and end their shifts. Routing, queueing, overflow,
//! abandonment bookkeeping, callbacks and metrics are the domain's.
//!
//! Staffing rule at interval boundaries: the engine keeps, per site and staffing group, the
//! number of logged-in agents equal to the interval's target. Surplus agents are logged out —
//! idle ones first — and an agent logged out while holding a contact finishes it and takes no
//! new one (the domain's logout rule). Swapping every agent at every boundary instead would let
//! fresh agents start while the old ones still finish their calls, briefly doubling capacity at
//! each boundary and inflating the service level.
//!
//! Memory: contacts live in a slab whose slots are reused when the contact leaves, the agenda
//! holds only pending actions, and the metrics hold per-interval counters — nothing grows with
//! the number of contacts. Over several days the metrics' interval cells repeat daily
//! (`Metrics::new_cyclic`), so nothing grows with the number of days either.

use callgrid_domain::{
    AgentId, AgentSpec, AgentState, CallbackBook, CallbackId, CallbackOutcome, CallerNumber,
    Channel, Contact, ContactId, Direction, Effect, EventKind, Line, Metrics, Priority,
    ServiceLevelPolicy, Site, SiteId, SiteSummary, SkillConfig, SkillGrant, SkillId, TimeMs, Topic,
};
use rand::SeedableRng;
use rand_pcg::Pcg64;

use crate::agenda::Agenda;
use crate::chain::{ChainContact, ChainMetrics, chain_row_counters};
use crate::contacts::ContactLog;
use crate::domain_config;
use crate::report::{Row, RunReport};
use crate::sample::{Sampler, chance, gap_s};
use crate::scenario::{self, Scenario};

/// Steps reported to a progress callback over a run.
pub const PROGRESS_STEPS: u64 = 1_000;
/// How long after the last interval the engine keeps running so contacts in progress finish.
pub const DRAIN_MS_MAX: u64 = 4 * 3_600_000;
/// Overflow decisions read other sites' summaries refreshed at most this often — the node
/// reads summaries replicated through Raft, which are similarly a moment old.
pub const SUMMARY_REFRESH_MS: u64 = 1_000;
/// An unanswered callback attempt occupies the agent this long (dialling, ringing out).
pub const CALLBACK_NO_ANSWER_MS: u64 = 30_000;
/// Bound on how deep effects may cause further handler calls (overflow hops, callbacks).
pub const EFFECT_DEPTH_MAX: usize = 16;
/// Contacts one site may hold at once (the number field of a contact id: 20 bits).
pub const CONTACT_NUMBERS_PER_SITE: u32 = 1 << 20;
/// Contacts the engine may hold at once (the slot field of a contact id: 24 bits).
pub const CONTACT_SLOTS_MAX: usize = 1 << 24;
/// Contact id layout: generation (20 bits, wrapping) · slot (24 bits) · number at the site
/// (20 bits).
const CONTACT_SLOT_SHIFT: u32 = 20;
const CONTACT_GENERATION_SHIFT: u32 = 44;
/// Bound on pending actions; a scenario needing more is rejected rather than exhausting memory.
pub const PENDING_ACTIONS_MAX: usize = 50_000_000;

/// A skill id no queue has: the transfer ends of a scenario without transfers.
const NO_SKILL: SkillId = SkillId(u16::MAX);

/// A progress callback: receives 0..=[`PROGRESS_STEPS`].
pub type Progress<'a> = dyn Fn(u64) + 'a;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The scenario cannot be mapped onto the routing core (e.g. too many skills).
    #[error("scenario not supported: {0}")]
    Unsupported(String),
    /// The routing core rejected its configuration.
    #[error("routing configuration rejected: {0}")]
    Config(#[from] callgrid_domain::ConfigError),
    /// The routing core refused an input the engine believed valid: an engine bug.
    #[error("routing core refused an input at {at_ms} ms: {message}")]
    Domain {
        /// Simulated time.
        at_ms: u64,
        /// The domain's error.
        message: String,
    },
    /// The pending actions exceeded [`PENDING_ACTIONS_MAX`].
    #[error("more than {PENDING_ACTIONS_MAX} pending actions")]
    TooManyPendingActions,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// Next inbound arrival (one aggregate Poisson stream for all sites).
    Arrival,
    /// Start of global interval `index` (day × intervals per day + interval).
    Boundary { index: u32 },
    /// The ringing agent picks up.
    Ring {
        site: u16,
        contact: ContactId,
        agent: AgentId,
    },
    /// The waiting caller's patience runs out (stale unless `token` matches).
    Patience { contact: ContactId, token: u32 },
    /// Conversation ends (or line 1 transfers to line 2).
    TalkEnd { site: u16, contact: ContactId },
    /// After-contact work ends.
    WrapUpEnd {
        site: u16,
        contact: ContactId,
        agent: AgentId,
    },
    /// A callback task may be due.
    CallbackDue,
    /// Re-run the overflow rule at a site.
    OverflowPoll { site: u16 },
    /// Site outage starts / ends.
    Outage { site: u16, down: bool },
}

/// Agenda lanes (see [`crate::agenda`]): actions scheduled in time order by construction.
mod lane {
    /// Interval boundaries (all scheduled up front, in order).
    pub const BOUNDARY: usize = 0;
    /// The next arrival (one pending at a time).
    pub const ARRIVAL: usize = 1;
    /// Rings: now + the constant ring time.
    pub const RING: usize = 2;
    /// Wrap-up ends: now + the constant wrap-up time.
    pub const WRAP_UP: usize = 3;
}

impl Action {
    /// The agenda lane whose pushes come in time order, if any.
    #[inline]
    fn lane(self) -> Option<usize> {
        match self {
            Action::Boundary { .. } => Some(lane::BOUNDARY),
            Action::Arrival => Some(lane::ARRIVAL),
            Action::Ring { .. } => Some(lane::RING),
            Action::WrapUpEnd { .. } => Some(lane::WRAP_UP),
            _ => None,
        }
    }
}

/// The engine's own view of a contact: where it is and how its caller behaves.
#[derive(Clone, Copy, Debug)]
struct ContactSlot {
    id: ContactId,
    /// The site whose numbers this slot uses (for good; `site` follows overflow).
    home_site: u16,
    site: u16,
    live: bool,
    patience_token: u32,
    /// Outbound callback executing this task.
    callback: Option<CallbackId>,
    /// A callback attempt that did not reach the customer (drawn when the agent picks it up).
    unreached: bool,
    /// When the caller hangs up if still waiting (`u64::MAX`: never).
    patience_at: u64,
    /// The agent it is ringing at (from the last Offer not yet cancelled or answered).
    offered_to: Option<AgentId>,
    /// The agent talking with it.
    agent: AgentId,
    /// Its medium.
    channel: Channel,
    /// The queue it is in now (changes on transfer).
    skill: SkillId,
    /// Transfers so far.
    transfers: u8,
    /// Chain-wide arrival time and whether it has been counted as answered or abandoned.
    chain: ChainContact,
}

/// A staffing group at a site: identical agents whose logged-in count follows a target.
#[derive(Debug)]
struct Group {
    site: u16,
    grants: Vec<SkillGrant>,
    chat_slots: u8,
    /// Target per interval of the day.
    targets: Vec<u32>,
    /// Agents ever created for the group; the first `active` are logged in (possibly
    /// others are still finishing contacts after logout).
    roster: Vec<AgentId>,
    active: usize,
}

/// Prepared scenario: everything the hot loop needs as plain numbers.
struct Model {
    interval_ms: u64,
    intervals_per_day: usize,
    days: usize,
    /// Contacts per day, per simulated day (volume × season × day factor).
    day_volumes: Vec<f64>,
    /// Share of the day's contacts per interval of the day.
    shares: Vec<f64>,
    site_cumulative: Vec<f64>,
    chat_share: f64,
    /// Per topic: cumulative share, domain topic, voice skill, chat skill, priority, bot share.
    topics: Vec<TopicModel>,
    voice_handle: Sampler,
    chat_handle: Sampler,
    line2_handle: Sampler,
    patience: Sampler,
    ring_ms: u64,
    wrap_up_ms: u64,
    transfer_share: f64,
    transfer_from: SkillId,
    transfer_to: SkillId,
    callback_reach: f64,
    overflow_enabled: bool,
    outages: Vec<(u64, u64, u16)>,
}

impl Model {
    /// Arrivals per ms in global interval `index` (computed per boundary rather than stored
    /// per interval, so nothing grows with the number of days).
    fn arrival_rate_per_ms(&self, index: usize) -> f64 {
        let per_day = self.intervals_per_day.max(1);
        let day_volume = self
            .day_volumes
            .get(index / per_day)
            .copied()
            .unwrap_or(0.0);
        let share = self.shares.get(index % per_day).copied().unwrap_or(0.0);
        day_volume * share / self.interval_ms as f64
    }
}

#[derive(Clone, Copy, Debug)]
struct TopicModel {
    cumulative: f64,
    /// Index of its skill in [`Scenario::skill_names`] (for per-contact records).
    skill_index: u16,
    topic: Topic,
    voice_skill: SkillId,
    chat_skill: Option<SkillId>,
    priority: u8,
    bot_share: f64,
}

/// Domain topic for a scenario topic name; unknown names count as `Other`.
pub fn domain_topic(name: &str) -> Topic {
    match name {
        "price_availability" => Topic::PriceAvailability,
        "order" => Topic::Order,
        "pre_order" => Topic::PreOrder,
        "order_status" => Topic::OrderStatus,
        "complaint" => Topic::Complaint,
        "consultation" => Topic::Consultation,
        _ => Topic::Other,
    }
}

/// The domain skills of a scenario: one per (scenario skill, channel) that can carry traffic.
#[derive(Debug, Clone)]
pub struct SkillMap {
    /// Domain skill configs, indexed by `SkillId`.
    pub configs: Vec<SkillConfig>,
    /// Per scenario skill name (in [`Scenario::skill_names`] order): voice skill.
    pub voice: Vec<SkillId>,
    /// Per scenario skill name: chat skill, if chats can need it.
    pub chat: Vec<Option<SkillId>>,
    /// Scenario skill names.
    pub names: Vec<String>,
}

impl SkillMap {
    /// Builds the skill map of a scenario.
    pub fn new(scenario: &Scenario) -> Result<SkillMap, EngineError> {
        let names = scenario.skill_names();
        let mut configs = Vec::new();
        let mut voice = Vec::new();
        let mut chat = Vec::new();
        let voice_mean = scenario.handle_time.voice.mean_s().unwrap_or(180.0) + scenario.wrap_up_s;
        let chat_mean = scenario.handle_time.chat.mean_s().unwrap_or(180.0) + scenario.wrap_up_s;
        let line2_mean = scenario
            .transfer
            .as_ref()
            .and_then(|transfer| transfer.handle_time.mean_s())
            .unwrap_or(180.0)
            + scenario.wrap_up_s;
        for name in &names {
            let is_line2 = scenario.transfer_target() == Some(name.as_str());
            let is_complaints = scenario
                .topics
                .iter()
                .any(|topic| topic.skill == *name && domain_topic(&topic.name) == Topic::Complaint);
            let line = if is_line2 {
                Line::Line2
            } else if is_complaints {
                Line::Complaints
            } else {
                Line::Line1
            };
            voice.push(SkillId(configs.len() as u16));
            configs.push(SkillConfig {
                name: format!("{name}_voice"),
                channel: Channel::Voice,
                line,
                handle_time_s_initial: (if is_line2 { line2_mean } else { voice_mean }).round()
                    as u64,
            });
            let has_chat = scenario.channels.chat_share > 0.0
                && scenario
                    .topics
                    .iter()
                    .any(|topic| topic.skill == *name && topic.share > 0.0);
            if has_chat {
                chat.push(Some(SkillId(configs.len() as u16)));
                configs.push(SkillConfig {
                    name: format!("{name}_chat"),
                    channel: Channel::Chat,
                    line,
                    handle_time_s_initial: chat_mean.round() as u64,
                });
            } else {
                chat.push(None);
            }
        }
        if configs.len() > callgrid_domain::SKILLS_MAX {
            return Err(EngineError::Unsupported(format!(
                "{} skill × channel queues, the routing core allows {}",
                configs.len(),
                callgrid_domain::SKILLS_MAX
            )));
        }
        Ok(SkillMap {
            configs,
            voice,
            chat,
            names,
        })
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|known| known == name)
    }

    /// The scenario skill (index into `names`) a domain skill belongs to.
    pub fn scenario_index_of(&self, skill: SkillId) -> u16 {
        self.voice
            .iter()
            .position(|voice| *voice == skill)
            .or_else(|| self.chat.iter().position(|chat| *chat == Some(skill)))
            .unwrap_or(0) as u16
    }
}

/// Seconds to whole milliseconds, rounding half away from zero like `f64::round` (0 for
/// negative, zero or non-finite input). Written out because `round` is a libm call on
/// baseline x86-64 and this runs for every drawn duration; the fraction `scaled - whole` is
/// exact below 2^52 and zero above, so the result equals `round` for every input.
#[inline]
fn ms(seconds: f64) -> u64 {
    if seconds.is_finite() && seconds > 0.0 {
        let scaled = seconds * 1000.0;
        let whole = scaled as u64;
        if scaled - whole as f64 >= 0.5 {
            whole.saturating_add(1)
        } else {
            whole
        }
    } else {
        0
    }
}

/// Runs one replication of a scenario with `seed` and reports it.
pub fn simulate(
    scenario: &Scenario,
    seed: u64,
    progress: Option<&Progress<'_>>,
) -> Result<RunReport, EngineError> {
    let mut engine = Engine::new(scenario, seed)?;
    engine.run(progress)?;
    Ok(engine.report(scenario, seed))
}

/// The simulation state of one run.
pub struct Engine {
    model: Model,
    skills: SkillMap,
    sites: Vec<Site>,
    book: CallbackBook,
    metrics: Metrics,
    /// Each contact once, chain-wide (the "all" rows).
    chain: ChainMetrics,
    groups: Vec<Group>,
    queue: Agenda<Action>,
    random: Pcg64,
    now: u64,
    end_ms: u64,
    contacts: Vec<ContactSlot>,
    /// Per site: how many slots belong to it. Each slot belongs to one site for good and has
    /// a number there; contact ids carry that number in their low bits, so each site's ids
    /// are small dense numbers and the site's direct-mapped contact table stays compact in
    /// cache (it matters at 100 sites).
    site_numbers: Vec<u32>,
    /// Per site: its slots free for reuse.
    free_slots: Vec<Vec<u32>>,
    next_agent: u32,
    effects: Vec<Effect>,
    /// Reusable buffers for effects of nested handler calls.
    spare_effects: Vec<Vec<Effect>>,
    summaries: Vec<SiteSummary>,
    summaries_at: Option<u64>,
    overflow_poll_at: Vec<u64>,
    callback_due_at: u64,
    bot_handled: u64,
    queued: u64,
    events: u64,
    current_interval: usize,
    /// Arrivals per ms in the current interval.
    current_rate_per_ms: f64,
    naive_swap: bool,
    /// Per-contact records, when asked for (`run --contacts`).
    log: Option<ContactLog>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("now", &self.now)
            .field("events", &self.events)
            .finish()
    }
}

impl Engine {
    /// Prepares a run.
    pub fn new(scenario: &Scenario, seed: u64) -> Result<Engine, EngineError> {
        let skills = SkillMap::new(scenario)?;
        let interval_ms = u64::from(scenario.interval_minutes) * 60_000;
        let intervals_per_day = scenario.intervals_per_day();
        let days = scenario.days();
        let shares = scenario.interval_shares();
        let day_volumes: Vec<f64> = scenario
            .volume
            .day_factors
            .iter()
            .map(|factor| scenario.volume.contacts_per_day * scenario.volume.season_factor * factor)
            .collect();
        let mut cumulative = 0.0;
        let site_cumulative = scenario
            .sites
            .iter()
            .map(|site| {
                cumulative += site.volume_share;
                cumulative
            })
            .collect();
        let mut cumulative = 0.0;
        let mut topics = Vec::new();
        for topic in &scenario.topics {
            cumulative += topic.share;
            let index = skills.index_of(&topic.skill).ok_or_else(|| {
                EngineError::Unsupported(format!("topic skill `{}` unknown", topic.skill))
            })?;
            topics.push(TopicModel {
                cumulative,
                skill_index: index as u16,
                topic: domain_topic(&topic.name),
                voice_skill: skills.voice[index],
                chat_skill: skills.chat[index],
                priority: topic.priority,
                bot_share: scenario.bot_share(&topic.name),
            });
        }
        let skill_id = |name: &str| {
            skills
                .index_of(name)
                .map(|index| skills.voice[index])
                .ok_or_else(|| EngineError::Unsupported(format!("skill `{name}` unknown")))
        };
        // Without transfers both ends are a skill id no queue has, so no contact matches.
        let (transfer_from, transfer_to) = match &scenario.transfer {
            Some(transfer) => (
                skill_id(&transfer.from_skill)?,
                skill_id(&transfer.to_skill)?,
            ),
            None => (NO_SKILL, NO_SKILL),
        };

        let mut outages = Vec::new();
        for outage in &scenario.outages {
            let site = scenario.site_index(&outage.site).ok_or_else(|| {
                EngineError::Unsupported(format!("outage site `{}` unknown", outage.site))
            })?;
            let day_start = u64::from(outage.day) * 86_400_000;
            let start =
                scenario::parse_clock_minutes(&outage.start).map_err(EngineError::Unsupported)?;
            let end =
                scenario::parse_clock_minutes(&outage.end).map_err(EngineError::Unsupported)?;
            outages.push((
                day_start + u64::from(start) * 60_000,
                day_start + u64::from(end) * 60_000,
                site as u16,
            ));
        }

        let model = Model {
            interval_ms,
            intervals_per_day,
            days,
            day_volumes,
            shares,
            site_cumulative,
            chat_share: scenario.channels.chat_share,
            topics,
            voice_handle: Sampler::new(&scenario.handle_time.voice),
            chat_handle: Sampler::new(&scenario.handle_time.chat),
            line2_handle: Sampler::new(
                &scenario
                    .transfer
                    .as_ref()
                    .map_or(scenario::Distribution::None, |transfer| {
                        transfer.handle_time
                    }),
            ),
            patience: Sampler::new(&scenario.patience),
            ring_ms: ms(scenario.ring_time_s),
            wrap_up_ms: ms(scenario.wrap_up_s),
            transfer_share: scenario
                .transfer
                .as_ref()
                .map_or(0.0, |transfer| transfer.share),
            transfer_from,
            transfer_to,
            callback_reach: scenario.callbacks.reach_probability,
            overflow_enabled: scenario.overflow.enabled && scenario.sites.len() > 1,
            outages,
        };

        let routing = domain_config::routing(scenario, &skills);
        let overflow = domain_config::overflow(scenario);
        let sites = (0..scenario.sites.len())
            .map(|index| Site::new(SiteId(index as u16), routing.clone(), overflow.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let book = CallbackBook::new(domain_config::callbacks(scenario));
        let drain_intervals = DRAIN_MS_MAX.div_ceil(interval_ms) as usize;
        let metrics_config = domain_config::metrics(
            scenario,
            (days * intervals_per_day + drain_intervals) as u32,
        );
        // Several days: interval cells repeat daily (memory independent of the number of
        // days); the report's interval rows then sum each clock interval over all days.
        let metrics = if days > 1 {
            Metrics::new_cyclic(
                metrics_config,
                sites.len(),
                skills.configs.len(),
                intervals_per_day as u32,
            )
        } else {
            Metrics::new(metrics_config, sites.len(), skills.configs.len())
        };

        let chain = ChainMetrics::new(
            interval_ms,
            intervals_per_day,
            ms(scenario.service_level.threshold_s.round()),
            ms(scenario.service_level.short_abandon_threshold_s),
        );

        let mut groups = Vec::new();
        for (site_index, site) in scenario.sites.iter().enumerate() {
            for entry in &site.staffing {
                let mut grants = Vec::new();
                for name in &entry.skills {
                    let index = skills.index_of(name).ok_or_else(|| {
                        EngineError::Unsupported(format!("staffing skill `{name}` unknown"))
                    })?;
                    grants.push(SkillGrant::permanent(skills.voice[index]));
                    if let Some(chat) = skills.chat[index] {
                        grants.push(SkillGrant::permanent(chat));
                    }
                }
                groups.push(Group {
                    site: site_index as u16,
                    grants,
                    chat_slots: scenario
                        .channels
                        .chat_slots
                        .clamp(1, callgrid_domain::CHAT_SLOTS_MAX),
                    targets: scenario.entry_agents_per_interval(entry),
                    roster: Vec::new(),
                    active: 0,
                });
            }
        }

        let site_count = sites.len();
        let end_ms = (days * intervals_per_day) as u64 * interval_ms;
        Ok(Engine {
            model,
            skills,
            sites,
            book,
            metrics,
            chain,
            groups,
            queue: Agenda::default(),
            random: Pcg64::seed_from_u64(seed),
            now: 0,
            end_ms,
            contacts: Vec::new(),
            site_numbers: vec![0; site_count],
            free_slots: vec![Vec::new(); site_count],
            next_agent: 0,
            effects: Vec::with_capacity(64),
            spare_effects: Vec::new(),
            summaries: vec![SiteSummary::default(); site_count],
            summaries_at: None,
            overflow_poll_at: vec![u64::MAX; site_count],
            callback_due_at: u64::MAX,
            bot_handled: 0,
            queued: 0,
            events: 0,
            current_interval: 0,
            current_rate_per_ms: 0.0,
            naive_swap: false,
            log: None,
        })
    }

    #[inline]
    fn schedule(&mut self, at: u64, action: Action) -> Result<(), EngineError> {
        if self.queue.len() >= PENDING_ACTIONS_MAX {
            return Err(EngineError::TooManyPendingActions);
        }
        self.queue.push(at, action.lane(), action);
        Ok(())
    }

    fn domain_error(&self, error: impl std::fmt::Display) -> EngineError {
        EngineError::Domain {
            at_ms: self.now,
            message: error.to_string(),
        }
    }

    /// Replaces the staffing rule with the naive one — at every boundary every agent logs out
    /// and fresh agents log in — to demonstrate how it inflates the service level. Never use
    /// it for planning.
    pub fn use_naive_staffing_swap(&mut self) {
        self.naive_swap = true;
    }

    /// Runs to the end of the last interval plus the drain.
    pub fn run(&mut self, progress: Option<&Progress<'_>>) -> Result<(), EngineError> {
        // Boundaries come one at a time (each schedules the next), first among the actions at
        // their time, so the agenda does not grow with the number of days. After the last
        // interval one more boundary drops staffing to nothing (the same rule: finish, take
        // none).
        self.queue
            .push_first(0, Some(lane::BOUNDARY), Action::Boundary { index: 0 });
        for (start, end, site) in self.model.outages.clone() {
            self.schedule(start, Action::Outage { site, down: true })?;
            self.schedule(end, Action::Outage { site, down: false })?;
        }
        let stop = self.end_ms + DRAIN_MS_MAX;
        let progress_every = (self.end_ms / PROGRESS_STEPS).max(1);
        let mut progress_next = 0;
        while let Some((at, action)) = self.queue.pop() {
            if at > stop {
                break;
            }
            self.now = at;
            self.events += 1;
            if let Some(report) = progress {
                if self.now >= progress_next {
                    report((self.now / progress_every).min(PROGRESS_STEPS));
                    progress_next = self.now + progress_every;
                }
            }
            self.dispatch(action)?;
        }
        self.metrics.finish(TimeMs(self.now));
        if let Some(report) = progress {
            report(PROGRESS_STEPS);
        }
        Ok(())
    }

    fn dispatch(&mut self, action: Action) -> Result<(), EngineError> {
        let now = TimeMs(self.now);
        match action {
            Action::Arrival => self.arrival()?,
            Action::Boundary { index } => self.boundary(index as usize)?,
            Action::Ring {
                site,
                contact,
                agent,
            } => {
                // The engine tracks offers from Offer / CancelOffer effects itself, so a stale
                // ring (the caller hung up, the offer was withdrawn or moved to another agent)
                // is recognised without asking the site.
                let Some(slot) = self.slot_of(contact) else {
                    return Ok(());
                };
                if self.contacts[slot].offered_to != Some(agent) {
                    return Ok(());
                }
                self.contacts[slot].offered_to = None;
                self.contacts[slot].agent = agent;
                self.effects.clear();
                self.sites[site as usize]
                    .handle_accept(now, contact, &mut self.effects)
                    .map_err(|error| self.domain_error(error))?;
                self.drain_effects(site)?;
                self.start_talking(site, contact)?;
            }
            Action::Patience { contact, token } => {
                let Some(slot) = self.slot_of(contact) else {
                    return Ok(());
                };
                if self.contacts[slot].patience_token != token {
                    return Ok(());
                }
                let site = self.contacts[slot].site;
                self.effects.clear();
                let abandoned =
                    self.sites[site as usize].handle_abandon(now, contact, &mut self.effects);
                // The `Abandoned` event is acted on (chain counts, contact record) before the
                // slot is released.
                self.drain_effects(site)?;
                if abandoned {
                    self.release(contact);
                }
            }
            Action::TalkEnd { site, contact } => self.talk_end(site, contact)?,
            Action::WrapUpEnd {
                site,
                contact,
                agent,
            } => {
                self.effects.clear();
                self.sites[site as usize]
                    .handle_wrap_up_end(now, agent, contact, &mut self.effects)
                    .map_err(|error| self.domain_error(error))?;
                self.drain_effects(site)?;
            }
            Action::CallbackDue => {
                self.callback_due_at = u64::MAX;
                self.callbacks_due()?;
            }
            Action::OverflowPoll { site } => {
                self.overflow_poll_at[site as usize] = u64::MAX;
                self.poll_overflow(site)?;
            }
            Action::Outage { site, down } => {
                self.effects.clear();
                if down {
                    self.refresh_summaries(true);
                    self.sites[site as usize].handle_site_down(
                        now,
                        &self.summaries,
                        &mut self.effects,
                    );
                } else {
                    self.sites[site as usize].handle_site_up(now, &mut self.effects);
                }
                self.drain_effects(site)?;
            }
        }
        Ok(())
    }

    fn boundary(&mut self, index: usize) -> Result<(), EngineError> {
        self.current_interval = index;
        let intervals = self.model.days * self.model.intervals_per_day;
        if index < intervals {
            self.queue.push_first(
                (index + 1) as u64 * self.model.interval_ms,
                Some(lane::BOUNDARY),
                Action::Boundary {
                    index: (index + 1) as u32,
                },
            );
            self.current_rate_per_ms = self.model.arrival_rate_per_ms(index);
        }
        let interval_of_day = index % self.model.intervals_per_day.max(1);
        for group in 0..self.groups.len() {
            let target = if index < intervals {
                self.groups[group].targets[interval_of_day]
            } else {
                0
            };
            self.staff(group, target as usize)?;
        }
        if index < intervals {
            // The arrival stream restarts at each boundary with the new rate; memorylessness
            // makes this the same as a non-homogeneous Poisson process.
            let gap = gap_s(&mut self.random, self.current_rate_per_ms);
            let at = self.now as f64 + gap;
            if at < ((index + 1) as u64 * self.model.interval_ms) as f64 {
                self.schedule(at as u64, Action::Arrival)?;
            }
        }
        Ok(())
    }

    fn staff(&mut self, group_index: usize, target: usize) -> Result<(), EngineError> {
        let now = TimeMs(self.now);
        let site = self.groups[group_index].site;
        if self.naive_swap {
            // Everybody leaves (finishing the contact in hand) and a fresh crew starts.
            let leaving: Vec<AgentId> = self.groups[group_index].roster.drain(..).collect();
            for agent in leaving.into_iter().take(self.groups[group_index].active) {
                self.effects.clear();
                self.sites[site as usize]
                    .handle_logout(now, agent, &mut self.effects)
                    .map_err(|error| self.domain_error(error))?;
                self.drain_effects(site)?;
            }
            self.groups[group_index].active = 0;
        }
        let active = self.groups[group_index].active;
        if target > active {
            for position in active..target {
                let agent = if let Some(agent) = self.groups[group_index].roster.get(position) {
                    *agent
                } else {
                    let agent = AgentId(self.next_agent);
                    self.next_agent += 1;
                    let group = &self.groups[group_index];
                    let spec = AgentSpec {
                        id: agent,
                        skills: group.grants.clone(),
                        chat_slots: group.chat_slots,
                    };
                    self.sites[site as usize]
                        .add_agent(spec)
                        .map_err(|error| self.domain_error(error))?;
                    self.groups[group_index].roster.push(agent);
                    agent
                };
                self.effects.clear();
                self.sites[site as usize]
                    .handle_login(now, agent, &mut self.effects)
                    .map_err(|error| self.domain_error(error))?;
                self.drain_effects(site)?;
            }
        } else if target < active {
            // Idle agents leave first, so nobody is pulled out of a conversation needlessly;
            // the rest finish their contact and take no new one.
            let roster = &mut self.groups[group_index].roster;
            let site_ref = &self.sites[site as usize];
            roster[..active].sort_by_key(|agent| {
                let idle = site_ref.agent_state(*agent) == Some(AgentState::Available);
                (idle, agent.0)
            });
            let leaving: Vec<AgentId> = roster[target..active].to_vec();
            for agent in leaving {
                self.effects.clear();
                self.sites[site as usize]
                    .handle_logout(now, agent, &mut self.effects)
                    .map_err(|error| self.domain_error(error))?;
                self.drain_effects(site)?;
            }
        }
        self.groups[group_index].active = target;
        Ok(())
    }

    fn arrival(&mut self) -> Result<(), EngineError> {
        let interval = self.current_interval;
        let rate = self.current_rate_per_ms;
        let next = self.now as f64 + gap_s(&mut self.random, rate);
        if next < ((interval + 1) as u64 * self.model.interval_ms) as f64 {
            self.schedule(next as u64, Action::Arrival)?;
        }
        let site = pick(&self.model.site_cumulative, &mut self.random) as u16;
        let chat = chance(&mut self.random, self.model.chat_share);
        let topic_index = pick_topic(&self.model.topics, &mut self.random);
        let topic = self.model.topics[topic_index];
        if !chat && chance(&mut self.random, topic.bot_share) {
            // The self-service bot answers: the caller never reaches an agent queue.
            self.bot_handled += 1;
            if let Some(log) = &mut self.log {
                log.bot(self.now, site, topic_index as u16, topic.skill_index);
            }
            return Ok(());
        }
        let (channel, skill) = match (chat, topic.chat_skill) {
            (true, Some(skill)) => (Channel::Chat, skill),
            _ => (Channel::Voice, topic.voice_skill),
        };
        let id = self.allocate(site)?;
        if let Some(slot) = self.slot_of(id) {
            self.contacts[slot].channel = channel;
            self.contacts[slot].skill = skill;
            if let Some(log) = &mut self.log {
                log.arrived(
                    slot,
                    self.now,
                    site,
                    false,
                    channel == Channel::Chat,
                    Some(topic_index as u16),
                    topic.skill_index,
                );
            }
        }
        let now = TimeMs(self.now);
        let contact = Contact::inbound(
            id,
            channel,
            topic.topic,
            skill,
            CallerNumber(id.0),
            SiteId(site),
            now,
        )
        .with_priority(Priority(topic.priority));
        self.arm_patience(id);
        self.effects.clear();
        self.sites[site as usize]
            .handle_arrival(now, contact, &mut self.effects)
            .map_err(|error| self.domain_error(error))?;
        self.drain_effects(site)?;
        if self.model.overflow_enabled && self.sites[site as usize].waiting_total() > 0 {
            self.poll_overflow(site)?;
        }
        Ok(())
    }

    /// Draws the caller's patience for a (new or transferred) wait. The abandon timer is only
    /// scheduled when the contact actually queues (`Queued`), so the many contacts answered at
    /// once never put a timer in the agenda.
    fn arm_patience(&mut self, contact: ContactId) {
        let Some(slot) = self.slot_of(contact) else {
            return;
        };
        self.contacts[slot].patience_token = self.contacts[slot].patience_token.wrapping_add(1);
        self.contacts[slot].patience_at = u64::MAX;
        if self.contacts[slot].callback.is_some() {
            return; // the agent calls the customer: nobody waits on the line
        }
        let patience = self.model.patience.sample(&mut self.random);
        if patience.is_finite() {
            self.contacts[slot].patience_at = self.now.saturating_add(ms(patience));
        }
    }

    fn schedule_patience(&mut self, contact: ContactId) -> Result<(), EngineError> {
        let Some(slot) = self.slot_of(contact) else {
            return Ok(());
        };
        let entry = self.contacts[slot];
        if entry.patience_at == u64::MAX {
            return Ok(());
        }
        self.schedule(
            entry.patience_at.max(self.now),
            Action::Patience {
                contact,
                token: entry.patience_token,
            },
        )
    }

    fn start_talking(&mut self, site: u16, contact: ContactId) -> Result<(), EngineError> {
        let Some(slot) = self.slot_of(contact) else {
            return Ok(());
        };
        let entry = self.contacts[slot];
        let talk_ms =
            if entry.callback.is_some() && !chance(&mut self.random, self.model.callback_reach) {
                self.contacts[slot].unreached = true;
                CALLBACK_NO_ANSWER_MS
            } else if entry.channel == Channel::Chat {
                ms(self.model.chat_handle.sample(&mut self.random))
            } else if entry.skill == self.model.transfer_to {
                ms(self.model.line2_handle.sample(&mut self.random))
            } else {
                ms(self.model.voice_handle.sample(&mut self.random))
            };
        self.schedule(self.now + talk_ms, Action::TalkEnd { site, contact })
    }

    fn talk_end(&mut self, site: u16, contact: ContactId) -> Result<(), EngineError> {
        let now = TimeMs(self.now);
        // Conversations are never cut short (an outage leaves talking contacts to finish), so
        // a talk end always finds its contact talking with the agent that answered.
        let Some(slot) = self.slot_of(contact) else {
            return Ok(());
        };
        let entry = self.contacts[slot];
        let agent = entry.agent;
        let callback = entry.callback;
        let transfer = callback.is_none()
            && entry.channel == Channel::Voice
            && entry.skill == self.model.transfer_from
            && entry.transfers == 0
            && chance(&mut self.random, self.model.transfer_share);
        self.effects.clear();
        if transfer {
            self.arm_patience(contact);
            self.contacts[slot].skill = self.model.transfer_to;
            self.contacts[slot].transfers += 1;
            self.sites[site as usize]
                .handle_transfer(now, contact, self.model.transfer_to, &mut self.effects)
                .map_err(|error| self.domain_error(error))?;
            self.drain_effects(site)?;
        } else {
            self.sites[site as usize]
                .handle_end(now, contact, &mut self.effects)
                .map_err(|error| self.domain_error(error))?;
            self.drain_effects(site)?;
            if let Some(callback) = callback {
                let outcome = if self.contacts[slot].unreached {
                    CallbackOutcome::NoAnswer
                } else {
                    CallbackOutcome::Reached
                };
                self.effects.clear();
                self.book
                    .handle_outcome(now, callback, outcome, &mut self.effects)
                    .map_err(|error| self.domain_error(error))?;
                self.drain_effects(site)?;
                self.arm_callback_timer()?;
            }
            self.release(contact);
        }
        self.schedule(
            self.now + self.model.wrap_up_ms,
            Action::WrapUpEnd {
                site,
                contact,
                agent,
            },
        )
    }

    fn callbacks_due(&mut self) -> Result<(), EngineError> {
        let now = TimeMs(self.now);
        while let Some(task) = self.book.poll_due(now) {
            let site = task.site.0;
            let id = self.allocate(site)?;
            let slot = self.slot_of(id).unwrap_or_default();
            self.contacts[slot].callback = Some(task.id);
            self.contacts[slot].channel = task.channel;
            self.contacts[slot].skill = task.skill;
            if let Some(log) = &mut self.log {
                let skill = self.skills.scenario_index_of(task.skill);
                log.arrived(
                    slot,
                    self.now,
                    site,
                    true,
                    task.channel == Channel::Chat,
                    None,
                    skill,
                );
            }
            let contact = task.to_contact(id, now);
            self.effects.clear();
            self.sites[site as usize]
                .handle_arrival(now, contact, &mut self.effects)
                .map_err(|error| self.domain_error(error))?;
            self.drain_effects(site)?;
        }
        self.arm_callback_timer()
    }

    fn arm_callback_timer(&mut self) -> Result<(), EngineError> {
        if let Some(due) = self.book.next_due_at() {
            let due = due.0.max(self.now);
            if due < self.callback_due_at {
                self.callback_due_at = due;
                self.schedule(due, Action::CallbackDue)?;
            }
        }
        Ok(())
    }

    /// Refreshes the other sites' summaries the overflow rule reads (only the fields routing
    /// decisions use; see `Site::fill_routing_summary`).
    fn refresh_summaries(&mut self, force: bool) {
        if !force
            && self
                .summaries_at
                .is_some_and(|at| self.now < at + SUMMARY_REFRESH_MS)
        {
            return;
        }
        let now = TimeMs(self.now);
        for (site, summary) in self.sites.iter_mut().zip(self.summaries.iter_mut()) {
            site.fill_routing_summary(now, summary);
        }
        self.summaries_at = Some(self.now);
    }

    fn poll_overflow(&mut self, site: u16) -> Result<(), EngineError> {
        if !self.model.overflow_enabled {
            return Ok(());
        }
        self.refresh_summaries(false);
        self.effects.clear();
        self.sites[site as usize].poll_overflow(
            TimeMs(self.now),
            &self.summaries,
            &mut self.effects,
        );
        self.drain_effects(site)?;
        if let Some(deadline) = self.sites[site as usize].overflow_deadline() {
            let at = deadline.0.max(self.now + 1);
            if at < self.overflow_poll_at[site as usize] {
                self.overflow_poll_at[site as usize] = at;
                self.schedule(at, Action::OverflowPoll { site })?;
            }
        }
        Ok(())
    }

    /// Acts on the effects in `self.effects` (produced by `site`) and everything they cause.
    fn drain_effects(&mut self, site: u16) -> Result<(), EngineError> {
        let mut effects = std::mem::take(&mut self.effects);
        let result = self.act(site, &effects, 0);
        effects.clear();
        self.effects = effects;
        result
    }

    /// Acts on `effects` in order; effects of the handlers this calls (overflow delivery,
    /// callback requests) are acted on at once, depth first, with buffers from a pool.
    fn act(&mut self, site: u16, effects: &[Effect], depth: usize) -> Result<(), EngineError> {
        if depth > EFFECT_DEPTH_MAX {
            return Err(self.domain_error("effects caused effects more than EFFECT_DEPTH_MAX deep"));
        }
        for effect in effects {
            match *effect {
                Effect::Event(ref event) => {
                    self.metrics.record(event);
                    match event.kind {
                        // Outbound callbacks are agents' work, not callers waiting: the
                        // sites count them, the chain's service level does not.
                        EventKind::Arrived {
                            contact,
                            direction: Direction::Inbound,
                            ..
                        } => {
                            if let Some(slot) = self.slot_of(contact) {
                                self.contacts[slot].chain = self.chain.arrived(self.now);
                            }
                        }
                        EventKind::Answered { contact, .. } => {
                            if let Some(slot) = self.slot_of(contact) {
                                self.chain
                                    .answered(&mut self.contacts[slot].chain, self.now);
                                if let Some(log) = &mut self.log {
                                    log.answered(slot, self.now);
                                }
                            }
                        }
                        EventKind::Blocked { contact, .. } => {
                            if let Some(slot) = self.slot_of(contact) {
                                self.chain.blocked(&mut self.contacts[slot].chain);
                                if let Some(log) = &mut self.log {
                                    log.blocked(slot);
                                }
                            }
                            self.release(contact);
                        }
                        EventKind::Abandoned { contact, .. } => {
                            if let Some(slot) = self.slot_of(contact) {
                                self.chain
                                    .abandoned(&mut self.contacts[slot].chain, self.now);
                                if let Some(log) = &mut self.log {
                                    log.abandoned(slot, self.now);
                                }
                            }
                            self.release(contact);
                        }
                        EventKind::Ended { contact, .. } if self.log.is_some() => {
                            if let (Some(slot), Some(log)) = (self.slot_of(contact), &mut self.log)
                            {
                                log.talk_ended(slot, self.now);
                            }
                        }
                        EventKind::TransferredOut { contact, .. } if self.log.is_some() => {
                            if let (Some(slot), Some(log)) = (self.slot_of(contact), &mut self.log)
                            {
                                log.transferred(slot, self.now);
                            }
                        }
                        EventKind::OverflowIn { contact, .. } if self.log.is_some() => {
                            if let (Some(slot), Some(log)) = (self.slot_of(contact), &mut self.log)
                            {
                                log.moved(slot, event.site.0);
                            }
                        }
                        EventKind::Queued { contact, .. } => {
                            self.queued += 1;
                            self.schedule_patience(contact)?;
                        }
                        _ => {}
                    }
                }
                Effect::Offer { contact, agent, .. } => {
                    if let Some(slot) = self.slot_of(contact) {
                        self.contacts[slot].offered_to = Some(agent);
                    }
                    self.schedule(
                        self.now + self.model.ring_ms,
                        Action::Ring {
                            site,
                            contact,
                            agent,
                        },
                    )?;
                }
                Effect::CancelOffer { contact, .. } => {
                    if let Some(slot) = self.slot_of(contact) {
                        self.contacts[slot].offered_to = None;
                    }
                }
                Effect::Overflow { contact, target } => {
                    if let Some(slot) = self.slot_of(contact.id) {
                        self.contacts[slot].site = target.0;
                    }
                    let mut nested = self.spare_effects.pop().unwrap_or_default();
                    let result = self.sites[target.index()].handle_overflow_in(
                        TimeMs(self.now),
                        contact,
                        SiteId(site),
                        &mut nested,
                    );
                    let acted = match result {
                        Ok(()) => self.act(target.0, &nested, depth + 1),
                        Err(error) => Err(self.domain_error(error)),
                    };
                    nested.clear();
                    self.spare_effects.push(nested);
                    acted?;
                }
                Effect::RequestCallback(request) => {
                    let mut nested = self.spare_effects.pop().unwrap_or_default();
                    self.book
                        .handle_request(TimeMs(self.now), &request, &mut nested);
                    let acted = self.act(request.site.0, &nested, depth + 1);
                    nested.clear();
                    self.spare_effects.push(nested);
                    acted?;
                    self.arm_callback_timer()?;
                }
            }
        }
        Ok(())
    }

    /// A fresh contact id at `site`: `generation << 44 | slot << 20 | number at the site`; a
    /// slot is reused once its contact has left, with the next generation.
    fn allocate(&mut self, site: u16) -> Result<ContactId, EngineError> {
        let site_index = usize::from(site);
        let slot = match self.free_slots[site_index].pop() {
            Some(slot) => slot as usize,
            None => {
                let number = self.site_numbers[site_index];
                let slot = self.contacts.len();
                if number >= CONTACT_NUMBERS_PER_SITE || slot >= CONTACT_SLOTS_MAX {
                    return Err(EngineError::Unsupported(format!(
                        "more than {CONTACT_NUMBERS_PER_SITE} contacts at once at one site \
                         or {CONTACT_SLOTS_MAX} in all"
                    )));
                }
                self.site_numbers[site_index] += 1;
                self.contacts.push(ContactSlot {
                    // Generation 0 is never handed out.
                    id: ContactId(((slot as u64) << CONTACT_SLOT_SHIFT) | u64::from(number)),
                    home_site: site,
                    site,
                    live: false,
                    patience_token: 0,
                    callback: None,
                    unreached: false,
                    patience_at: u64::MAX,
                    offered_to: None,
                    agent: AgentId(0),
                    channel: Channel::Voice,
                    skill: SkillId(0),
                    transfers: 0,
                    chain: ChainContact::default(),
                });
                slot
            }
        };
        let entry = &mut self.contacts[slot];
        let generation = (entry.id.0 >> CONTACT_GENERATION_SHIFT).wrapping_add(1);
        entry.id = ContactId(
            (generation << CONTACT_GENERATION_SHIFT)
                | (entry.id.0 & ((1 << CONTACT_GENERATION_SHIFT) - 1)),
        );
        entry.site = site;
        entry.live = true;
        entry.callback = None;
        entry.unreached = false;
        entry.patience_at = u64::MAX;
        entry.offered_to = None;
        entry.transfers = 0;
        // Closed until its `Arrived` event: a contact refused at entry is never offered.
        entry.chain = ChainContact {
            arrived_at_ms: 0,
            closed: true,
        };
        Ok(entry.id)
    }

    /// The slot of a live contact (None for a contact that has left: stale actions).
    #[inline]
    fn slot_of(&self, contact: ContactId) -> Option<usize> {
        let slot = ((contact.0 >> CONTACT_SLOT_SHIFT) as usize) & (CONTACT_SLOTS_MAX - 1);
        self.contacts
            .get(slot)
            .filter(|entry| entry.live && entry.id == contact)
            .map(|_| slot)
    }

    fn release(&mut self, contact: ContactId) {
        if let Some(slot) = self.slot_of(contact) {
            if let Some(log) = &mut self.log {
                log.close(slot);
            }
            let entry = &mut self.contacts[slot];
            entry.live = false;
            entry.patience_token = entry.patience_token.wrapping_add(1);
            let home = usize::from(entry.home_site);
            self.free_slots[home].push(slot as u32);
        }
    }

    /// Writes a record per contact into `log` from now on (before [`Engine::run`]).
    pub fn log_contacts(&mut self, log: ContactLog) {
        self.log = Some(log);
    }

    /// Writes the records of contacts still in progress and flushes the log; how many records
    /// were written (`None` without a log).
    pub fn finish_contact_log(&mut self) -> Option<Result<u64, std::io::Error>> {
        let live: Vec<usize> = self
            .contacts
            .iter()
            .enumerate()
            .filter(|(_, entry)| entry.live)
            .map(|(slot, _)| slot)
            .collect();
        self.log.as_mut().map(|log| log.finish(live.into_iter()))
    }

    /// Events processed so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Builds the report of a finished run.
    pub fn report(&self, scenario: &Scenario, seed: u64) -> RunReport {
        let policy = match scenario.service_level.policy {
            scenario::ServiceLevelPolicy::AnsweredWithinOverOffered => ServiceLevelPolicy::Offered,
            scenario::ServiceLevelPolicy::AnsweredWithinOverOfferedMinusShortAbandons => {
                ServiceLevelPolicy::OfferedExcludingShortAbandons
            }
        };
        let interval_ms = self.model.interval_ms;
        let site_names: Vec<&str> = scenario
            .sites
            .iter()
            .map(|site| site.name.as_str())
            .collect();
        let queue_name = |skill: usize| self.skills.configs[skill].name.clone();
        let observed_ms = self.metrics.observed_ms().max(1);
        let row = |counters: &callgrid_domain::Counters,
                   site: &str,
                   queue: String,
                   interval: Option<usize>,
                   span_ms: u64| {
            let (day, interval_start) = match interval {
                Some(index) => {
                    let day = index / self.model.intervals_per_day.max(1);
                    let minutes =
                        (index % self.model.intervals_per_day.max(1)) as u64 * interval_ms / 60_000;
                    // Over several days a row sums the clock interval over all days: no day.
                    let day = (self.model.days == 1).then_some(day as u32);
                    (day, Some(scenario::clock_of(minutes as u32)))
                }
                None => (None, None),
            };
            to_row(
                counters,
                policy,
                site.to_owned(),
                queue,
                day,
                interval_start,
                span_ms,
            )
        };
        let sites = site_names
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let mut site_row = row(
                    &self.metrics.site_totals(SiteId(index as u16)),
                    name,
                    "all".to_owned(),
                    None,
                    observed_ms,
                );
                site_row.still_waiting_at_end = self.sites[index].unanswered_in_progress() as u64;
                site_row
            })
            .collect::<Vec<Row>>();
        let still_waiting_at_end = sites.iter().map(|site| site.still_waiting_at_end).sum();
        let mut queues = Vec::new();
        for (index, name) in site_names.iter().enumerate() {
            for skill in 0..self.skills.configs.len() {
                let counters = self
                    .metrics
                    .queue_totals(SiteId(index as u16), SkillId(skill as u16));
                if counters.offered > 0 || counters.staffed_ms > 0 {
                    queues.push(row(&counters, name, queue_name(skill), None, observed_ms));
                }
            }
        }
        let mut intervals = Vec::new();
        let mut site_intervals = Vec::new();
        let mut queue_intervals = Vec::new();
        let interval_count = self
            .metrics
            .interval_count()
            .min(self.model.days * self.model.intervals_per_day);
        // Over several days each interval row covers that clock interval on every day.
        let interval_span_ms = interval_ms * self.model.days as u64;
        for interval in 0..interval_count {
            intervals.push(row(
                &chain_row_counters(
                    &self.metrics.interval_totals(interval),
                    &self.chain.interval(interval),
                ),
                "all",
                "all".to_owned(),
                Some(interval),
                interval_span_ms,
            ));
            for (index, name) in site_names.iter().enumerate() {
                site_intervals.push(row(
                    &self.metrics.site_interval(interval, SiteId(index as u16)),
                    name,
                    "all".to_owned(),
                    Some(interval),
                    interval_span_ms,
                ));
                for skill in 0..self.skills.configs.len() {
                    let counters = self.metrics.queue_interval(
                        interval,
                        SiteId(index as u16),
                        SkillId(skill as u16),
                    );
                    if counters.offered > 0 {
                        queue_intervals.push(row(
                            &counters,
                            name,
                            queue_name(skill),
                            Some(interval),
                            interval_span_ms,
                        ));
                    }
                }
            }
        }
        RunReport {
            scenario: scenario.name.clone(),
            seed,
            days: self.model.days as u32,
            interval_minutes: scenario.interval_minutes,
            service_level_threshold_s: scenario.service_level.threshold_s,
            service_level_target: scenario.service_level.target,
            abandonment_target: scenario.service_level.abandonment_target,
            bot_handled: self.bot_handled,
            events: self.events,
            wait_probability: {
                let offered = self.metrics.totals().offered;
                if offered > 0 {
                    self.queued as f64 / offered as f64
                } else {
                    0.0
                }
            },
            total: Row {
                still_waiting_at_end,
                ..row(
                    &chain_row_counters(&self.metrics.totals(), &self.chain.totals()),
                    "all",
                    "all".to_owned(),
                    None,
                    observed_ms,
                )
            },
            sites,
            queues,
            intervals,
            site_intervals,
            queue_intervals,
        }
    }

    /// The domain metrics of the run.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The skill map of the run.
    pub fn skills(&self) -> &SkillMap {
        &self.skills
    }
}

fn to_row(
    counters: &callgrid_domain::Counters,
    policy: ServiceLevelPolicy,
    site: String,
    queue: String,
    day: Option<u32>,
    interval_start: Option<String>,
    span_ms: u64,
) -> Row {
    Row {
        day,
        interval_start,
        site,
        queue,
        offered: counters.offered,
        answered: counters.answered,
        answered_within_threshold: counters.answered_within_target,
        abandoned: counters.abandoned,
        short_abandoned: counters.abandoned_short,
        overflowed_out: counters.overflowed_out,
        overflowed_out_unanswered: counters.overflowed_out_unanswered(),
        overflowed_in: counters.overflowed_in,
        transferred: counters.transferred_out,
        callbacks_created: counters.callbacks_created,
        service_level: counters.service_level(policy).unwrap_or(f64::NAN),
        abandonment: counters.abandon_rate().unwrap_or(0.0),
        answer_speed_s_mean: counters.asa_ms().unwrap_or(0.0) / 1000.0,
        handle_time_s_mean: counters.aht_ms().unwrap_or(0.0) / 1000.0,
        abandon_wait_s_mean: counters.abandon_wait_ms_average().unwrap_or(0.0) / 1000.0,
        queue_length_mean: counters.queue_length_average(span_ms).unwrap_or(0.0),
        queue_length_max: counters.queue_length_max,
        occupancy: counters.occupancy(),
        still_waiting_at_end: 0,
    }
}

/// Index drawn from cumulative shares (the last index absorbs rounding).
fn pick(cumulative: &[f64], random: &mut Pcg64) -> usize {
    let draw: f64 = rand::Rng::r#gen(random);
    let total = cumulative.last().copied().unwrap_or(1.0);
    let target = draw * total;
    cumulative
        .partition_point(|edge| *edge <= target)
        .min(cumulative.len().saturating_sub(1))
}

fn pick_topic(topics: &[TopicModel], random: &mut Pcg64) -> usize {
    let draw: f64 = rand::Rng::r#gen(random);
    let total = topics.last().map_or(1.0, |topic| topic.cumulative);
    let target = draw * total;
    topics
        .partition_point(|topic| topic.cumulative <= target)
        .min(topics.len().saturating_sub(1))
}

/// The summary printed by `run --json`: the report without the per-interval tables.
pub fn summary_json(report: &RunReport) -> serde_json::Value {
    serde_json::json!({
        "scenario": report.scenario,
        "seed": report.seed,
        "days": report.days,
        "events": report.events,
        "bot_handled": report.bot_handled,
        "total": report.total,
        "sites": report.sites,
        "queues": report.queues,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// `ms` rounds exactly like `f64::round` on every finite positive input.
        #[test]
        fn ms_rounds_like_round(bits in any::<u64>(), seconds in 0.0f64..1e7) {
            let any = f64::from_bits(bits);
            for value in [any, seconds, seconds.floor() + 0.0005, seconds.floor() + 0.0004999] {
                let expected = if value.is_finite() && value > 0.0 {
                    (value * 1000.0).round() as u64
                } else {
                    0
                };
                prop_assert_eq!(ms(value), expected, "{}", value);
            }
        }
    }
}
