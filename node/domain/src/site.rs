//! One site's routing engine: its agents, its queues (one per skill), offers, transfers,
//! abandonment, overflow and outage — a sans-IO state machine.
//!
//! ```text
//!  driver ──handle_*(now, input, &mut effects)──▶ Site ──▶ effects: Event | Offer |
//!         ◀────────────── act on effects ──────────────    CancelOffer | Overflow | RequestCallback
//! ```
//!
//! Invariant kept after every handler (while the site is up): no queue holds a contact while
//! an agent that is ready, qualified and has room for its channel sits idle. So a new contact
//! either goes straight to the longest-idle qualified agent or waits, and a freed agent takes
//! the best head among its skills' queues (highest priority, then oldest ordering time, then
//! earliest sequence).

use crate::agent::{AgentSpec, AgentState, CHAT_SLOTS_MAX, NotReadyReason, SkillGrant};
use crate::config::{ConfigError, OverflowConfig, OverflowTrigger, RoutingConfig};
use crate::contact::{Channel, Contact, Direction};
use crate::error::DomainError;
use crate::event::{CallbackRequest, Effect, Event, EventKind, OverflowReason};
use crate::ids::{AgentId, ContactId, SiteId, SkillId, SkillSet, TimeMs};
use crate::overflow::{
    ShareWindow, SiteSummary, SkillSummary, choose_outage_target, choose_rule_target,
};
use crate::queue::{IdleEntry, LazyHeap, QueueEntry};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::BuildHasherDefault;

/// How many times the overflow rule may move one contact between sites; beyond it the contact
/// stays where it is, so contacts cannot bounce between sites forever.
pub const OVERFLOW_HOPS_MAX: u8 = 2;

type IdMap<K> = HashMap<K, u32, BuildHasherDefault<crate::ids::IdHasher>>;

/// Entries of each site's direct-mapped id tables (contacts and agents): an id is looked up at
/// `id mod DIRECT_TABLE_ENTRIES` first (one cache line, no hashing) and in a hash map only when
/// two live ids share that position. Ids numbered from a slab (`generation << 32 | slot` or
/// consecutive integers) almost never collide.
pub const DIRECT_TABLE_ENTRIES: usize = 1 << 12;

/// Ids usable as keys of a [`DirectIndex`].
trait RawId: Copy + Eq + std::hash::Hash {
    fn raw(self) -> u64;
}

impl RawId for ContactId {
    #[inline]
    fn raw(self) -> u64 {
        self.0
    }
}

impl RawId for AgentId {
    #[inline]
    fn raw(self) -> u64 {
        u64::from(self.0)
    }
}

/// Id → dense index: a direct-mapped table with a hash-map fallback for collisions.
#[derive(Debug)]
struct DirectIndex<K> {
    /// (raw id, value); `ABSENT` marks an empty position.
    direct: Vec<(u64, u32)>,
    sparse: IdMap<K>,
    len: usize,
}

impl<K> Default for DirectIndex<K> {
    fn default() -> Self {
        DirectIndex {
            direct: Vec::new(),
            sparse: IdMap::default(),
            len: 0,
        }
    }
}

impl<K: RawId> DirectIndex<K> {
    const ABSENT: u32 = u32::MAX;

    #[inline]
    fn position(raw: u64) -> usize {
        (raw as usize) & (DIRECT_TABLE_ENTRIES - 1)
    }

    #[inline]
    fn get(&self, key: &K) -> Option<&u32> {
        let raw = key.raw();
        if let Some(entry) = self.direct.get(Self::position(raw)) {
            if entry.1 != Self::ABSENT && entry.0 == raw {
                return Some(&entry.1);
            }
        }
        if self.sparse.is_empty() {
            return None;
        }
        self.sparse.get(key)
    }

    #[inline]
    fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    #[inline]
    fn len(&self) -> usize {
        self.len
    }

    fn insert(&mut self, key: K, value: u32) {
        let raw = key.raw();
        let position = Self::position(raw);
        if self.direct.len() <= position {
            self.direct.resize(position + 1, (0, Self::ABSENT));
        }
        let entry = &mut self.direct[position];
        if entry.1 == Self::ABSENT && !self.sparse.contains_key(&key) {
            *entry = (raw, value);
            self.len += 1;
        } else if entry.1 != Self::ABSENT && entry.0 == raw {
            entry.1 = value;
        } else if self.sparse.insert(key, value).is_none() {
            self.len += 1;
        }
    }

    fn remove(&mut self, key: &K) {
        let raw = key.raw();
        if let Some(entry) = self.direct.get_mut(Self::position(raw)) {
            if entry.1 != Self::ABSENT && entry.0 == raw {
                entry.1 = Self::ABSENT;
                self.len -= 1;
                return;
            }
        }
        if self.sparse.remove(key).is_some() {
            self.len -= 1;
        }
    }
}

/// Where a contact is in its life at this site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactPhase {
    /// Waiting in its skill's queue.
    Queued,
    /// Ringing at an agent.
    Offered(AgentId),
    /// Talking with an agent.
    Talking(AgentId),
}

#[derive(Clone, Copy, Debug)]
struct ContactEntry {
    contact: Contact,
    live: bool,
    phase: InternalPhase,
    generation: u32,
    sequence: u64,
    entered_queue_at: TimeMs,
    entered_site_at: TimeMs,
    offered_at: TimeMs,
    answered_at: TimeMs,
    hold_since: Option<TimeMs>,
    hold_ms: u64,
    answered_before: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InternalPhase {
    Queued,
    Offered(u32),
    Talking(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ItemPhase {
    Offered,
    Talking,
    WrapUp,
}

/// A contact an agent holds: ringing, talking or in wrap-up.
#[derive(Clone, Copy, Debug)]
struct Item {
    contact: ContactId,
    skill: SkillId,
    channel: Channel,
    phase: ItemPhase,
    since: TimeMs,
    /// Talk + hold of the finished conversation, for the handle-time average (saturates at
    /// 49 days, far beyond any conversation; keeps an item at 24 bytes).
    handled_ms: u32,
}

const EMPTY_ITEM: Item = Item {
    contact: ContactId(0),
    skill: SkillId(0),
    channel: Channel::Voice,
    phase: ItemPhase::WrapUp,
    since: TimeMs::ZERO,
    handled_ms: 0,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Presence {
    LoggedOut,
    Ready,
    NotReady(NotReadyReason),
    /// Logged out as soon as the contacts in hand are finished; takes no new work.
    LoggingOut,
}

/// `repr(C)` keeps the fields every routing step reads in the first cache line, followed by
/// the first items; grants (read only on expiry and renewal) come last.
#[derive(Clone, Debug)]
#[repr(C)]
struct AgentEntry {
    /// Skills whose grant is valid now (expired certificates removed by `advance`).
    skills: SkillSet,
    idle_since: TimeMs,
    id: AgentId,
    generation: u32,
    presence: Presence,
    state: AgentState,
    item_count: u8,
    chat_slots: u8,
    items: [Item; CHAT_SLOTS_MAX as usize],
    grants: Vec<SkillGrant>,
}

impl AgentEntry {
    fn items(&self) -> &[Item] {
        &self.items[..usize::from(self.item_count)]
    }

    fn holds_voice(&self) -> bool {
        self.items()
            .iter()
            .any(|item| item.channel == Channel::Voice)
    }

    /// Whether the agent may be offered a contact of `channel` now.
    fn has_room_for(&self, channel: Channel) -> bool {
        if !matches!(self.presence, Presence::Ready) {
            return false;
        }
        match channel {
            Channel::Voice => self.item_count == 0,
            Channel::Chat => !self.holds_voice() && self.item_count < self.chat_slots,
        }
    }

    /// What the agent adds to the per-skill counters now.
    #[inline]
    fn contribution(&self) -> AgentContribution {
        let ready = matches!(self.presence, Presence::Ready);
        AgentContribution {
            idle_skills: if ready && self.item_count == 0 {
                self.skills
            } else {
                SkillSet::EMPTY
            },
            serving_skills: if ready { self.skills } else { SkillSet::EMPTY },
        }
    }

    fn derive_state(&self) -> AgentState {
        if matches!(self.presence, Presence::LoggedOut) {
            return AgentState::LoggedOut;
        }
        // One pass over at most CHAT_SLOTS_MAX items: this runs on every agent change.
        let mut offered = false;
        for item in self.items() {
            match item.phase {
                ItemPhase::Talking => return AgentState::Busy,
                ItemPhase::Offered => offered = true,
                ItemPhase::WrapUp => {}
            }
        }
        if offered {
            AgentState::Reserved
        } else if self.item_count > 0 {
            AgentState::WrapUp
        } else {
            match self.presence {
                Presence::Ready => AgentState::Available,
                Presence::NotReady(reason) => AgentState::NotReady(reason),
                Presence::LoggingOut | Presence::LoggedOut => AgentState::LoggedOut,
            }
        }
    }

    fn find_item(&self, contact: ContactId, phase: ItemPhase) -> Option<usize> {
        self.items()
            .iter()
            .position(|item| item.contact == contact && item.phase == phase)
    }

    fn remove_item(&mut self, position: usize) -> Item {
        let count = usize::from(self.item_count);
        let item = self.items[position];
        self.items.copy_within(position + 1..count, position);
        self.item_count -= 1;
        item
    }
}

/// What an agent contributed to the per-skill counters before a change.
#[derive(Clone, Copy)]
struct AgentContribution {
    idle_skills: SkillSet,
    serving_skills: SkillSet,
}

#[derive(Debug, Default)]
struct SkillQueue {
    heap: LazyHeap<QueueEntry>,
    waiting: u32,
}

/// Per-skill routing state.
#[derive(Debug)]
struct SkillState {
    channel: Channel,
    queue: SkillQueue,
    idle: LazyHeap<IdleEntry>,
    /// Ready agents holding nothing who have the skill.
    idle_agents: u32,
    /// Ready agents who have the skill.
    serving_agents: u32,
    /// Contacts the skill's ready agents can hold at once (1 per voice agent, slots per chat
    /// agent): the divisor of the wait estimate.
    serving_capacity: u32,
    /// Moving average of handle time (talk + hold + wrap-up).
    handle_ms_average: u64,
    /// Overflow hysteresis: currently overflowing.
    overflowing: bool,
}

/// A waiting contact's place and estimated wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuePosition {
    /// 1 = next to be served in its queue.
    pub position: u32,
    /// Estimated wait from now; `u64::MAX` when no agent serves the skill.
    pub estimated_wait_ms: u64,
}

/// One site's routing engine. See the module documentation and API.md.
#[derive(Debug)]
pub struct Site {
    id: SiteId,
    config: RoutingConfig,
    overflow: OverflowConfig,
    up: bool,
    skills: Vec<SkillState>,
    contacts: Vec<ContactEntry>,
    free_slots: Vec<u32>,
    contact_index: DirectIndex<ContactId>,
    agents: Vec<AgentEntry>,
    agent_index: DirectIndex<AgentId>,
    /// Certificate expiries, earliest first: (valid_until, agent index, skill).
    expiries: BinaryHeap<Reverse<(u64, u32, u16)>>,
    next_sequence: u64,
    waiting_total: u32,
    share_window: ShareWindow,
    /// While down: the other sites' summaries as given to `handle_site_down`, updated as
    /// contacts are sent to them, so an outage spreads its contacts instead of flooding one site.
    outage_peers: Vec<SiteSummary>,
    /// Scratch for one overflow pass: contacts sent to each peer (reused, no allocation).
    scratch_sent: Vec<u32>,
    /// The latest `now` seen: certificates are expired up to here.
    last_now: TimeMs,
    /// Scratch effects for queries that must expire certificates first.
    scratch_effects: Vec<Effect>,
}

impl Site {
    /// A site with no agents. Fails if the configuration is invalid.
    pub fn new(
        id: SiteId,
        config: RoutingConfig,
        overflow: OverflowConfig,
    ) -> Result<Site, ConfigError> {
        config.validate()?;
        overflow.validate()?;
        let skills = config
            .skills
            .iter()
            .map(|skill| SkillState {
                channel: skill.channel,
                queue: SkillQueue::default(),
                idle: LazyHeap::default(),
                idle_agents: 0,
                serving_agents: 0,
                serving_capacity: 0,
                handle_ms_average: skill.handle_time_s_initial.saturating_mul(1000),
                overflowing: false,
            })
            .collect::<Vec<_>>();
        Ok(Site {
            id,
            share_window: ShareWindow::new(overflow.window_s, overflow.share_out_max),
            config,
            overflow,
            up: true,
            skills,
            contacts: Vec::new(),
            free_slots: Vec::new(),
            contact_index: DirectIndex::default(),
            agents: Vec::new(),
            agent_index: DirectIndex::default(),
            expiries: BinaryHeap::new(),
            next_sequence: 0,
            waiting_total: 0,
            outage_peers: Vec::new(),
            scratch_sent: Vec::new(),
            scratch_effects: Vec::new(),
            last_now: TimeMs::ZERO,
        })
    }

    /// This site's id.
    pub fn id(&self) -> SiteId {
        self.id
    }

    /// The routing configuration.
    pub fn config(&self) -> &RoutingConfig {
        &self.config
    }

    /// Whether the site is up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    // ----- agents -------------------------------------------------------------------------

    /// Registers an agent (logged out). Grants for unknown skills are an error.
    pub fn add_agent(&mut self, spec: AgentSpec) -> Result<(), DomainError> {
        if self.agent_index.contains_key(&spec.id) {
            return Err(DomainError::DuplicateAgent(spec.id));
        }
        if spec.chat_slots == 0 || spec.chat_slots > CHAT_SLOTS_MAX {
            return Err(DomainError::InvalidAgent {
                agent: spec.id,
                reason: "chat_slots must be within 1..=CHAT_SLOTS_MAX",
            });
        }
        for grant in &spec.skills {
            if grant.skill.index() >= self.skills.len() {
                return Err(DomainError::UnknownSkill(grant.skill));
            }
        }
        let index = u32::try_from(self.agents.len()).map_err(|_| DomainError::InvalidAgent {
            agent: spec.id,
            reason: "too many agents",
        })?;
        let mut skills = SkillSet::EMPTY;
        for grant in &spec.skills {
            skills.insert(grant.skill);
            if let Some(until) = grant.valid_until {
                self.expiries.push(Reverse((until.0, index, grant.skill.0)));
            }
        }
        self.agent_index.insert(spec.id, index);
        self.agents.push(AgentEntry {
            id: spec.id,
            grants: spec.skills,
            skills,
            chat_slots: spec.chat_slots,
            presence: Presence::LoggedOut,
            items: [EMPTY_ITEM; CHAT_SLOTS_MAX as usize],
            item_count: 0,
            state: AgentState::LoggedOut,
            idle_since: TimeMs::ZERO,
            generation: 0,
        });
        Ok(())
    }

    /// Replaces an agent's skill grants (e.g. a renewed certificate). Takes effect for the next
    /// routing decision; contacts in hand are not affected.
    pub fn handle_skills_changed(
        &mut self,
        now: TimeMs,
        agent: AgentId,
        grants: Vec<SkillGrant>,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let index = self.agent(agent)?;
        for grant in &grants {
            if grant.skill.index() >= self.skills.len() {
                return Err(DomainError::UnknownSkill(grant.skill));
            }
        }
        self.advance(now, out);
        let before = self.contribution(index);
        let entry = &mut self.agents[index as usize];
        let mut skills = SkillSet::EMPTY;
        for grant in &grants {
            if grant.is_valid_at(now) {
                skills.insert(grant.skill);
            }
            if let Some(until) = grant.valid_until {
                self.expiries.push(Reverse((until.0, index, grant.skill.0)));
            }
        }
        entry.grants = grants;
        entry.skills = skills;
        self.refresh_agent(now, index, before, out);
        self.dispatch_agent(now, index, out);
        Ok(())
    }

    /// Logs an agent in: ready, idle since `now`. Cancels a pending logout.
    pub fn handle_login(
        &mut self,
        now: TimeMs,
        agent: AgentId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let index = self.agent(agent)?;
        self.advance(now, out);
        let before = self.contribution(index);
        let entry = &mut self.agents[index as usize];
        match entry.presence {
            Presence::LoggedOut => {
                entry.presence = Presence::Ready;
                entry.idle_since = now;
            }
            Presence::LoggingOut => entry.presence = Presence::Ready,
            Presence::Ready | Presence::NotReady(_) => {
                return Err(DomainError::AgentState {
                    agent,
                    state: entry.state,
                    operation: "log in",
                });
            }
        }
        self.refresh_agent(now, index, before, out);
        self.dispatch_agent(now, index, out);
        Ok(())
    }

    /// Logs an agent out. With contacts in hand the agent finishes them and takes no new one
    /// (state stays Busy/WrapUp until then); a ringing offer is withdrawn and its contact goes
    /// back to its old place in the queue.
    pub fn handle_logout(
        &mut self,
        now: TimeMs,
        agent: AgentId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let index = self.agent(agent)?;
        self.advance(now, out);
        if matches!(self.agents[index as usize].presence, Presence::LoggedOut) {
            return Err(DomainError::AgentState {
                agent,
                state: AgentState::LoggedOut,
                operation: "log out",
            });
        }
        let before = self.contribution(index);
        self.agents[index as usize].presence = Presence::LoggingOut;
        self.withdraw_offers(now, index, out);
        self.refresh_agent(now, index, before, out);
        Ok(())
    }

    /// Makes a logged-in agent ready (available for offers).
    pub fn handle_ready(
        &mut self,
        now: TimeMs,
        agent: AgentId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let index = self.agent(agent)?;
        self.advance(now, out);
        let entry = &self.agents[index as usize];
        match entry.presence {
            Presence::Ready => return Ok(()),
            Presence::NotReady(_) => {}
            Presence::LoggedOut | Presence::LoggingOut => {
                return Err(DomainError::AgentState {
                    agent,
                    state: entry.state,
                    operation: "become ready",
                });
            }
        }
        let before = self.contribution(index);
        let entry = &mut self.agents[index as usize];
        entry.presence = Presence::Ready;
        entry.idle_since = now;
        self.refresh_agent(now, index, before, out);
        self.dispatch_agent(now, index, out);
        Ok(())
    }

    /// Makes a logged-in agent not ready. Contacts in hand (and a ringing offer) continue; no
    /// new offer comes.
    pub fn handle_not_ready(
        &mut self,
        now: TimeMs,
        agent: AgentId,
        reason: NotReadyReason,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let index = self.agent(agent)?;
        self.advance(now, out);
        let entry = &self.agents[index as usize];
        if matches!(entry.presence, Presence::LoggedOut | Presence::LoggingOut) {
            return Err(DomainError::AgentState {
                agent,
                state: entry.state,
                operation: "become not ready",
            });
        }
        let before = self.contribution(index);
        self.agents[index as usize].presence = Presence::NotReady(reason);
        self.refresh_agent(now, index, before, out);
        Ok(())
    }

    // ----- contacts -----------------------------------------------------------------------

    /// A new contact arrives at this site: offered to the longest-idle qualified agent, or
    /// queued. At a down site it is sent on to another site (or blocked if none serves it).
    pub fn handle_arrival(
        &mut self,
        now: TimeMs,
        contact: Contact,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let arrived = EventKind::Arrived {
            contact: contact.id,
            skill: contact.skill,
            channel: contact.channel,
            topic: contact.topic,
            direction: contact.direction,
        };
        self.enter(now, contact, arrived, out)
    }

    /// A contact overflowed from site `from` arrives; it keeps its ordering time, so it is
    /// placed by its original arrival among local contacts of the same priority.
    pub fn handle_overflow_in(
        &mut self,
        now: TimeMs,
        contact: Contact,
        from: SiteId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let overflowed_in = EventKind::OverflowIn {
            contact: contact.id,
            skill: contact.skill,
            from,
        };
        self.enter(now, contact, overflowed_in, out)
    }

    /// A contact new to this site (an arrival or an overflow in) enters: validated, blocked if
    /// no agent here could ever serve it, else counted as offered, announced with `entered`
    /// and offered or queued.
    fn enter(
        &mut self,
        now: TimeMs,
        contact: Contact,
        entered: EventKind,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        self.check_new_contact(&contact)?;
        self.advance(now, out);
        if self.blocks(&contact) {
            self.emit(
                now,
                EventKind::Blocked {
                    contact: contact.id,
                    skill: contact.skill,
                },
                out,
            );
            return Ok(());
        }
        if self.overflow.enabled {
            self.share_window.record_offered(now);
        }
        self.emit(now, entered, out);
        self.admit(now, contact, out)
    }

    /// The agent accepted the offer: talking starts.
    pub fn handle_accept(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let slot = self.contact(contact)?;
        let InternalPhase::Offered(index) = self.contacts[slot as usize].phase else {
            return Err(DomainError::ContactState {
                contact,
                operation: "be accepted",
            });
        };
        self.advance(now, out);
        let before = self.contribution(index);
        let agent = &mut self.agents[index as usize];
        let agent_id = agent.id;
        let Some(position) = agent.find_item(contact, ItemPhase::Offered) else {
            return Err(DomainError::NotAssigned {
                contact,
                agent: agent_id,
            });
        };
        agent.items[position].phase = ItemPhase::Talking;
        agent.items[position].since = now;
        let entry = &mut self.contacts[slot as usize];
        entry.phase = InternalPhase::Talking(index);
        entry.answered_at = now;
        let kind = EventKind::Answered {
            contact,
            agent: agent_id,
            skill: entry.contact.skill,
            wait_ms: now.since(entry.entered_queue_at),
            site_wait_ms: now.since(entry.entered_site_at),
            entered_queue_at: entry.entered_queue_at,
            entered_site_at: entry.entered_site_at,
            answered_before: entry.answered_before,
        };
        entry.answered_before = true;
        self.emit(now, kind, out);
        self.refresh_agent(now, index, before, out);
        Ok(())
    }

    /// The agent rejected the offer: the contact returns to its old place at the head of its
    /// queue and the agent becomes not ready ([`NotReadyReason::REJECTED`]) so the same
    /// contact is not offered straight back.
    pub fn handle_reject(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let slot = self.contact(contact)?;
        let InternalPhase::Offered(index) = self.contacts[slot as usize].phase else {
            return Err(DomainError::ContactState {
                contact,
                operation: "be rejected",
            });
        };
        self.advance(now, out);
        self.return_offer(now, slot, index, NotReadyReason::REJECTED, false, out);
        Ok(())
    }

    /// The offer made to `agent` rang out. Returns false (and does nothing) when the timeout
    /// is stale: the contact was accepted, rejected, abandoned, or re-offered since.
    /// Otherwise the contact returns to its old place and the agent becomes not ready
    /// ([`NotReadyReason::NO_ANSWER`]).
    pub fn handle_offer_timeout(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        agent: AgentId,
        out: &mut Vec<Effect>,
    ) -> bool {
        let Some(&slot) = self.contact_index.get(&contact) else {
            return false;
        };
        let Some(&index) = self.agent_index.get(&agent) else {
            return false;
        };
        let entry = &self.contacts[slot as usize];
        if entry.phase != InternalPhase::Offered(index)
            || now < entry.offered_at.plus_ms(self.config.offer_timeout_ms)
        {
            return false;
        }
        self.advance(now, out);
        self.return_offer(now, slot, index, NotReadyReason::NO_ANSWER, true, out);
        true
    }

    /// The customer hung up before being answered (waiting or ringing). Returns false (and
    /// does nothing) if the contact is not waiting here: unknown, or already talking — a
    /// hang-up while talking is [`Site::handle_end`].
    pub fn handle_abandon(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        out: &mut Vec<Effect>,
    ) -> bool {
        let Some(&slot) = self.contact_index.get(&contact) else {
            return false;
        };
        let entry = self.contacts[slot as usize];
        let in_queue = match entry.phase {
            InternalPhase::Talking(_) => return false,
            InternalPhase::Queued => true,
            InternalPhase::Offered(_) => false,
        };
        self.advance(now, out);
        let skill = entry.contact.skill;
        let mut freed_agent = None;
        match entry.phase {
            InternalPhase::Queued => self.leave_queue(slot),
            InternalPhase::Offered(index) => {
                let before = self.contribution(index);
                let agent = &mut self.agents[index as usize];
                if let Some(position) = agent.find_item(contact, ItemPhase::Offered) {
                    agent.remove_item(position);
                }
                out.push(Effect::CancelOffer {
                    contact,
                    agent: agent.id,
                });
                self.refresh_agent(now, index, before, out);
                freed_agent = Some(index);
            }
            InternalPhase::Talking(_) => {}
        }
        let wait_ms = now.since(entry.entered_queue_at);
        let short = wait_ms < self.config.short_abandon_ms;
        self.emit(
            now,
            EventKind::Abandoned {
                contact,
                skill,
                wait_ms,
                short,
                in_queue,
                entered_queue_at: entry.entered_queue_at,
                entered_site_at: entry.entered_site_at,
                answered_before: entry.answered_before,
            },
            out,
        );
        if entry.contact.direction == Direction::Inbound {
            out.push(Effect::RequestCallback(CallbackRequest {
                site: self.id,
                caller: entry.contact.caller,
                skill,
                channel: entry.contact.channel,
                topic: entry.contact.topic,
                ordering_time: entry.contact.ordering_time,
                abandoned_at: now,
                short,
            }));
        }
        self.free_contact(slot);
        if let Some(index) = freed_agent {
            self.dispatch_agent(now, index, out);
        }
        true
    }

    /// Puts a talking contact on hold (hold time counts in handle time, not talk time).
    pub fn handle_hold(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        _out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let slot = self.contact(contact)?;
        let entry = &mut self.contacts[slot as usize];
        if !matches!(entry.phase, InternalPhase::Talking(_)) || entry.hold_since.is_some() {
            return Err(DomainError::ContactState {
                contact,
                operation: "be put on hold",
            });
        }
        entry.hold_since = Some(now);
        Ok(())
    }

    /// Takes a contact off hold.
    pub fn handle_resume(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        _out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let slot = self.contact(contact)?;
        let entry = &mut self.contacts[slot as usize];
        let Some(since) = entry.hold_since.take() else {
            return Err(DomainError::ContactState {
                contact,
                operation: "be resumed",
            });
        };
        entry.hold_ms += now.since(since);
        Ok(())
    }

    /// The conversation ended (either side hung up, chat closed). The agent keeps the
    /// contact's slot in wrap-up until [`Site::handle_wrap_up_end`]; the contact leaves the site.
    pub fn handle_end(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let slot = self.contact(contact)?;
        let InternalPhase::Talking(index) = self.contacts[slot as usize].phase else {
            return Err(DomainError::ContactState {
                contact,
                operation: "end",
            });
        };
        self.advance(now, out);
        self.finish_talk(now, slot, index, out);
        self.free_contact(slot);
        Ok(())
    }

    /// The agent finished after-contact work for `contact`: its slot is free and it takes the
    /// next contact if one waits.
    pub fn handle_wrap_up_end(
        &mut self,
        now: TimeMs,
        agent: AgentId,
        contact: ContactId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let index = self.agent(agent)?;
        let Some(position) = self.agents[index as usize].find_item(contact, ItemPhase::WrapUp)
        else {
            return Err(DomainError::NotAssigned { contact, agent });
        };
        self.advance(now, out);
        let before = self.contribution(index);
        let entry = &mut self.agents[index as usize];
        let item = entry.remove_item(position);
        entry.idle_since = now;
        let wrap_up_ms = now.since(item.since);
        self.record_handle_time(
            item.skill,
            u64::from(item.handled_ms).saturating_add(wrap_up_ms),
        );
        self.emit(
            now,
            EventKind::WrapUpEnded {
                contact,
                agent,
                skill: item.skill,
                wrap_up_ms,
            },
            out,
        );
        self.refresh_agent(now, index, before, out);
        self.dispatch_agent(now, index, out);
        Ok(())
    }

    /// A talking contact is transferred (line 1 → line 2) to `to_skill`'s queue: the agent's
    /// leg ends (Ended, then wrap-up) and the contact is offered to the new queue — counted as
    /// a transfer and as offered to that queue, not as a new contact at the site.
    pub fn handle_transfer(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        to_skill: SkillId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        let slot = self.contact(contact)?;
        let InternalPhase::Talking(index) = self.contacts[slot as usize].phase else {
            return Err(DomainError::ContactState {
                contact,
                operation: "be transferred",
            });
        };
        let Some(target) = self.skills.get(to_skill.index()) else {
            return Err(DomainError::UnknownSkill(to_skill));
        };
        let channel = self.contacts[slot as usize].contact.channel;
        if target.channel != channel {
            return Err(DomainError::ChannelMismatch {
                channel,
                skill: to_skill,
            });
        }
        self.advance(now, out);
        let from_skill = self.contacts[slot as usize].contact.skill;
        let agent = self.agents[index as usize].id;
        self.finish_talk(now, slot, index, out);
        self.emit(
            now,
            EventKind::TransferredOut {
                contact,
                agent,
                from_skill,
                to_skill,
            },
            out,
        );
        let entry = &mut self.contacts[slot as usize];
        entry.contact.skill = to_skill;
        entry.contact.transfer_count = entry.contact.transfer_count.saturating_add(1);
        entry.contact.ordering_time = now;
        entry.entered_queue_at = now;
        entry.hold_ms = 0;
        entry.hold_since = None;
        entry.sequence = self.next_sequence;
        self.next_sequence += 1;
        self.emit(
            now,
            EventKind::TransferredIn {
                contact,
                skill: to_skill,
            },
            out,
        );
        self.route_or_queue(now, slot, out);
        Ok(())
    }

    // ----- overflow and outage ------------------------------------------------------------

    /// Applies the overflow rule: for each queue whose measured wait crossed the on-threshold
    /// (and has not yet fallen below the off-threshold), sends contacts from the head to the
    /// other site with the most idle qualified agents (ties: lowest id) while the cap on the
    /// share sent out allows. Never sends to a site whose summary shows no idle qualified
    /// agent left for this pass. Call after arrivals, when peer summaries change, and at
    /// [`Site::overflow_deadline`].
    pub fn poll_overflow(&mut self, now: TimeMs, peers: &[SiteSummary], out: &mut Vec<Effect>) {
        if !self.overflow.enabled || !self.up {
            return;
        }
        self.advance(now, out);
        for skill_index in 0..self.skills.len() {
            let skill = SkillId(skill_index as u16);
            if self.skills[skill_index].queue.waiting == 0 {
                // Measured wait 0: below any positive off-threshold, never above on.
                if self.overflow.threshold_off_ms > 0 {
                    self.skills[skill_index].overflowing = false;
                }
                continue;
            }
            let measured = self.measured_wait_ms(now, skill);
            let state = &mut self.skills[skill_index];
            if !state.overflowing && measured > self.overflow.threshold_on_ms {
                state.overflowing = true;
            } else if state.overflowing && measured < self.overflow.threshold_off_ms {
                state.overflowing = false;
            }
            if !state.overflowing || state.queue.waiting == 0 {
                continue;
            }
            self.scratch_sent.clear();
            self.scratch_sent.resize(peers.len(), 0);
            while let Some(head) = self.queue_head(skill) {
                let slot = head.slot;
                if self.contacts[slot as usize].contact.overflow_count >= OVERFLOW_HOPS_MAX {
                    break;
                }
                if !self.share_window.allows_one_more(now) {
                    break;
                }
                let Some(peer) = choose_rule_target(self.id, skill, peers, &self.scratch_sent)
                else {
                    break;
                };
                self.scratch_sent[peer] += 1;
                self.share_window.record_sent_out(now);
                self.send_away(now, slot, peers[peer].site, OverflowReason::Rule, out);
            }
        }
    }

    /// The earliest time at which the oldest-wait trigger could start overflowing a queue
    /// that is not overflowing yet; `None` if no queue could (nothing waits, or the rule is
    /// off, or the trigger is the predicted wait). The predicted wait does not grow with the
    /// clock, only with arrivals and agent states, so a driver polls on arrivals instead;
    /// a deadline for it would lie in the past as soon as the head waited `threshold_on_ms`
    /// and make a driver re-poll at every tick.
    pub fn overflow_deadline(&mut self) -> Option<TimeMs> {
        if !self.overflow.enabled
            || !self.up
            || self.overflow.trigger != OverflowTrigger::OldestWait
        {
            return None;
        }
        let mut deadline: Option<TimeMs> = None;
        for skill_index in 0..self.skills.len() {
            let state = &self.skills[skill_index];
            // An empty queue has no head (skip the lazy heap's clean-up walk; it runs later).
            if state.overflowing || state.queue.waiting == 0 {
                continue;
            }
            if let Some(head) = self.queue_head(SkillId(skill_index as u16)) {
                let entered = self.contacts[head.slot as usize].entered_queue_at;
                let at = entered.plus_ms(self.overflow.threshold_on_ms.saturating_add(1));
                deadline = Some(deadline.map_or(at, |current| current.min(at)));
            }
        }
        deadline
    }

    /// Marks the site down. Ringing offers are withdrawn; each waiting contact (and, while
    /// down, each new arrival) goes to the other site that is up and serves its skill with the
    /// most idle agents, then fewest waiting, then lowest id — counting the contacts already
    /// sent there, so the load spreads. A contact stays queued if no site serves its skill
    /// (an arrival is then blocked). Nothing is routed here while down. Calling it again with
    /// fresh summaries re-targets.
    pub fn handle_site_down(&mut self, now: TimeMs, peers: &[SiteSummary], out: &mut Vec<Effect>) {
        self.advance(now, out);
        self.up = false;
        self.outage_peers.clear();
        self.outage_peers.extend_from_slice(peers);
        for index in 0..self.agents.len() as u32 {
            let before = self.contribution(index);
            self.withdraw_offers(now, index, out);
            self.refresh_agent(now, index, before, out);
        }
        for skill_index in 0..self.skills.len() {
            let skill = SkillId(skill_index as u16);
            while let Some(head) = self.queue_head(skill) {
                let Some(target) = self.take_outage_target(skill) else {
                    break;
                };
                self.send_away(now, head.slot, target, OverflowReason::Outage, out);
            }
        }
    }

    /// The outage target for one more contact of `skill`, booked against the peer's summary.
    fn take_outage_target(&mut self, skill: SkillId) -> Option<SiteId> {
        let target = choose_outage_target(self.id, skill, &self.outage_peers)?;
        if let Some(peer) = self
            .outage_peers
            .iter_mut()
            .find(|peer| peer.site == target)
        {
            if let Some(cell) = peer.skills.get_mut(skill.index()) {
                if cell.idle_agents > 0 {
                    cell.idle_agents -= 1;
                } else {
                    cell.waiting = cell.waiting.saturating_add(1);
                }
            }
        }
        Some(target)
    }

    /// Marks the site up again: routing resumes (idle agents take waiting contacts).
    pub fn handle_site_up(&mut self, now: TimeMs, out: &mut Vec<Effect>) {
        self.advance(now, out);
        if self.up {
            return;
        }
        self.up = true;
        for index in 0..self.agents.len() as u32 {
            let before = self.contribution(index);
            self.refresh_agent(now, index, before, out);
            self.dispatch_agent(now, index, out);
        }
    }

    // ----- queries ------------------------------------------------------------------------

    /// Writes this site's availability into `summary` (reusing its allocation).
    pub fn fill_summary(&mut self, now: TimeMs, summary: &mut SiteSummary) {
        let mut scratch = std::mem::take(&mut self.scratch_effects);
        self.advance(now, &mut scratch);
        // Expiring a grant never changes an agent's shown state, so nothing is lost here.
        debug_assert!(scratch.is_empty());
        scratch.clear();
        self.scratch_effects = scratch;
        summary.site = self.id;
        summary.up = self.up;
        summary.at = now;
        summary.skills.clear();
        for skill_index in 0..self.skills.len() {
            let skill = SkillId(skill_index as u16);
            let oldest_wait_ms = if self.skills[skill_index].queue.waiting == 0 {
                0
            } else {
                self.queue_head(skill).map_or(0, |head| {
                    now.since(self.contacts[head.slot as usize].entered_queue_at)
                })
            };
            let state = &self.skills[skill_index];
            let (idle_agents, serving_agents) = if self.up {
                (state.idle_agents, state.serving_agents)
            } else {
                (0, 0)
            };
            summary.skills.push(SkillSummary {
                idle_agents,
                serving_agents,
                waiting: state.queue.waiting,
                oldest_wait_ms,
                estimated_wait_ms: self.estimate_wait_ms(skill, state.queue.waiting + 1),
            });
        }
    }

    /// Writes into `summary` only what other sites' routing decisions read from it: `up` and,
    /// per skill, idle agents, serving agents and waiting contacts; `oldest_wait_ms` and
    /// `estimated_wait_ms` are left 0. [`Site::poll_overflow`] and [`Site::handle_site_down`]
    /// decide exactly as with [`Site::fill_summary`], at a fraction of its cost (no queue
    /// heads, no division) — for drivers that refresh summaries often and show them to nobody,
    /// like the simulator. Reuses the allocation.
    pub fn fill_routing_summary(&mut self, now: TimeMs, summary: &mut SiteSummary) {
        let mut scratch = std::mem::take(&mut self.scratch_effects);
        self.advance(now, &mut scratch);
        // Expiring a grant never changes an agent's shown state, so nothing is lost here.
        debug_assert!(scratch.is_empty());
        scratch.clear();
        self.scratch_effects = scratch;
        summary.site = self.id;
        summary.up = self.up;
        summary.at = now;
        summary
            .skills
            .resize(self.skills.len(), SkillSummary::default());
        for (state, cell) in self.skills.iter().zip(summary.skills.iter_mut()) {
            let (idle_agents, serving_agents) = if self.up {
                (state.idle_agents, state.serving_agents)
            } else {
                (0, 0)
            };
            *cell = SkillSummary {
                idle_agents,
                serving_agents,
                waiting: state.queue.waiting,
                oldest_wait_ms: 0,
                estimated_wait_ms: 0,
            };
        }
    }

    /// A fresh summary (allocates; prefer [`Site::fill_summary`] in loops).
    pub fn summary(&mut self, now: TimeMs) -> SiteSummary {
        let mut summary = SiteSummary::default();
        self.fill_summary(now, &mut summary);
        summary
    }

    /// Position and estimated wait of a waiting contact; `None` unless it is queued here.
    /// Estimator: position × average handle time of the skill ÷ contacts its ready agents can
    /// hold at once (voice agent 1, chat agent its slots); the average is a moving average
    /// of recent handle times (talk + hold + wrap-up), seeded from configuration.
    /// Costs O(queue length).
    pub fn queue_position(&self, contact: ContactId) -> Option<QueuePosition> {
        let &slot = self.contact_index.get(&contact)?;
        let entry = &self.contacts[slot as usize];
        if entry.phase != InternalPhase::Queued {
            return None;
        }
        let key = self.queue_key(slot);
        let skill = entry.contact.skill;
        let ahead = self.skills[skill.index()]
            .queue
            .heap
            .iter()
            .filter(|other| self.is_queued_live(other) && other.serves_before(&key))
            .count() as u32;
        let position = ahead + 1;
        Some(QueuePosition {
            position,
            estimated_wait_ms: self.estimate_wait_ms(skill, position),
        })
    }

    /// Estimated wait of the contact at `position` (1-based) in `skill`'s queue.
    pub fn estimate_wait_ms(&self, skill: SkillId, position: u32) -> u64 {
        let Some(state) = self.skills.get(skill.index()) else {
            return u64::MAX;
        };
        if state.serving_capacity == 0 {
            return u64::MAX;
        }
        u64::from(position).saturating_mul(state.handle_ms_average)
            / u64::from(state.serving_capacity)
    }

    /// Contacts waiting in `skill`'s queue.
    pub fn waiting(&self, skill: SkillId) -> u32 {
        self.skills
            .get(skill.index())
            .map_or(0, |state| state.queue.waiting)
    }

    /// Contacts waiting in all queues.
    pub fn waiting_total(&self) -> u32 {
        self.waiting_total
    }

    /// Contacts waiting or ringing here that have not been answered at this site yet — the
    /// in-progress term of the site balance (see [`crate::Counters`]); a transferred contact
    /// waiting for line 2 is not counted. O(contacts): for end-of-run checks.
    pub fn unanswered_in_progress(&self) -> usize {
        self.contacts
            .iter()
            .filter(|entry| {
                entry.live
                    && !entry.answered_before
                    && !matches!(entry.phase, InternalPhase::Talking(_))
            })
            .count()
    }

    /// Contacts at this site (waiting, ringing or talking).
    pub fn contact_count(&self) -> usize {
        self.contact_index.len()
    }

    /// Where a contact is, if it is at this site.
    pub fn contact_phase(&self, contact: ContactId) -> Option<ContactPhase> {
        let &slot = self.contact_index.get(&contact)?;
        Some(match self.contacts[slot as usize].phase {
            InternalPhase::Queued => ContactPhase::Queued,
            InternalPhase::Offered(index) => ContactPhase::Offered(self.agents[index as usize].id),
            InternalPhase::Talking(index) => ContactPhase::Talking(self.agents[index as usize].id),
        })
    }

    /// The contact as stored here (skill and counters may have changed by transfer).
    pub fn contact_info(&self, contact: ContactId) -> Option<Contact> {
        let &slot = self.contact_index.get(&contact)?;
        Some(self.contacts[slot as usize].contact)
    }

    /// An agent's state.
    pub fn agent_state(&self, agent: AgentId) -> Option<AgentState> {
        let &index = self.agent_index.get(&agent)?;
        Some(self.agents[index as usize].state)
    }

    /// How many contacts an agent holds (ringing, talking, wrap-up).
    pub fn agent_load(&self, agent: AgentId) -> Option<usize> {
        let &index = self.agent_index.get(&agent)?;
        Some(usize::from(self.agents[index as usize].item_count))
    }

    /// The contacts an agent holds, in the order it got them.
    pub fn agent_contacts(&self, agent: AgentId) -> Option<impl Iterator<Item = ContactId> + '_> {
        let &index = self.agent_index.get(&agent)?;
        Some(
            self.agents[index as usize]
                .items()
                .iter()
                .map(|item| item.contact),
        )
    }

    /// Since when an agent has been idle (last login, ready, or freed slot).
    pub fn agent_idle_since(&self, agent: AgentId) -> Option<TimeMs> {
        let &index = self.agent_index.get(&agent)?;
        Some(self.agents[index as usize].idle_since)
    }

    /// Agent ids in registration order.
    pub fn agent_ids(&self) -> impl Iterator<Item = AgentId> + '_ {
        self.agents.iter().map(|agent| agent.id)
    }

    /// Checks the internal invariants (slots, counters, routing, no skill kept past its
    /// certificate as of the last handled `now`) and describes the first violation.
    /// O(agents + contacts): for tests and debug assertions, not the hot path.
    pub fn check_invariants(&self) -> Result<(), String> {
        let now = self.last_now;
        let mut waiting_per_skill = vec![0u32; self.skills.len()];
        for (slot, entry) in self.contacts.iter().enumerate() {
            if !entry.live {
                continue;
            }
            match entry.phase {
                InternalPhase::Queued => waiting_per_skill[entry.contact.skill.index()] += 1,
                InternalPhase::Offered(index) | InternalPhase::Talking(index) => {
                    let agent = &self.agents[index as usize];
                    let holders = agent
                        .items()
                        .iter()
                        .filter(|item| {
                            item.contact == entry.contact.id && item.phase != ItemPhase::WrapUp
                        })
                        .count();
                    if holders != 1 {
                        return Err(format!(
                            "contact {} (slot {slot}) held {holders} times by agent {}",
                            entry.contact.id, agent.id
                        ));
                    }
                }
            }
        }
        for (skill_index, state) in self.skills.iter().enumerate() {
            if waiting_per_skill[skill_index] != state.queue.waiting {
                return Err(format!(
                    "skill {skill_index}: {} queued contacts but counter says {}",
                    waiting_per_skill[skill_index], state.queue.waiting
                ));
            }
        }
        let mut idle = vec![0u32; self.skills.len()];
        let mut serving = vec![0u32; self.skills.len()];
        for agent in &self.agents {
            let capacity = if agent.holds_voice() {
                1
            } else {
                agent.chat_slots
            };
            if agent.item_count > capacity {
                return Err(format!(
                    "agent {} holds {} contacts, capacity {capacity}",
                    agent.id, agent.item_count
                ));
            }
            if agent.holds_voice() && agent.item_count > 1 {
                return Err(format!("agent {} holds voice and more", agent.id));
            }
            for item in agent.items() {
                if item.phase != ItemPhase::WrapUp {
                    let Some(&slot) = self.contact_index.get(&item.contact) else {
                        return Err(format!("agent {} holds unknown contact", agent.id));
                    };
                    let expected = match item.phase {
                        ItemPhase::Offered => InternalPhase::Offered,
                        _ => InternalPhase::Talking,
                    };
                    let Some(&index) = self.agent_index.get(&agent.id) else {
                        return Err(format!("agent {} missing from the index", agent.id));
                    };
                    if self.contacts[slot as usize].phase != expected(index) {
                        return Err(format!("agent {} and contact disagree", agent.id));
                    }
                }
            }
            if agent.state != agent.derive_state() {
                return Err(format!("agent {} state is stale", agent.id));
            }
            for grant in &agent.grants {
                if agent.skills.contains(grant.skill)
                    && !agent
                        .grants
                        .iter()
                        .any(|other| other.skill == grant.skill && other.is_valid_at(now))
                {
                    return Err(format!(
                        "agent {} keeps skill {} past its certificate",
                        agent.id, grant.skill
                    ));
                }
            }
            if matches!(agent.presence, Presence::Ready) {
                for skill in agent.skills.iter() {
                    serving[skill.index()] += 1;
                    if agent.item_count == 0 {
                        idle[skill.index()] += 1;
                    }
                }
            }
            if self.up {
                for skill in agent.skills.iter() {
                    let state = &self.skills[skill.index()];
                    if state.queue.waiting > 0 && agent.has_room_for(state.channel) {
                        return Err(format!(
                            "agent {} has room while skill {skill} has {} waiting",
                            agent.id, state.queue.waiting
                        ));
                    }
                }
            }
        }
        for (skill_index, state) in self.skills.iter().enumerate() {
            if idle[skill_index] != state.idle_agents
                || serving[skill_index] != state.serving_agents
            {
                return Err(format!("skill {skill_index}: agent counters are stale"));
            }
        }
        Ok(())
    }

    // ----- internals ----------------------------------------------------------------------

    fn agent(&self, agent: AgentId) -> Result<u32, DomainError> {
        self.agent_index
            .get(&agent)
            .copied()
            .ok_or(DomainError::UnknownAgent(agent))
    }

    fn contact(&self, contact: ContactId) -> Result<u32, DomainError> {
        self.contact_index
            .get(&contact)
            .copied()
            .ok_or(DomainError::UnknownContact(contact))
    }

    #[inline]
    fn emit(&self, now: TimeMs, kind: EventKind, out: &mut Vec<Effect>) {
        out.push(Effect::Event(Event {
            at: now,
            site: self.id,
            kind,
        }));
    }

    fn check_new_contact(&self, contact: &Contact) -> Result<(), DomainError> {
        let Some(skill) = self.skills.get(contact.skill.index()) else {
            return Err(DomainError::UnknownSkill(contact.skill));
        };
        if skill.channel != contact.channel {
            return Err(DomainError::ChannelMismatch {
                channel: contact.channel,
                skill: contact.skill,
            });
        }
        if self.contact_index.contains_key(&contact.id) {
            return Err(DomainError::DuplicateContact(contact.id));
        }
        if self.contact_index.len() >= self.config.contacts_max as usize {
            return Err(DomainError::CapacityReached);
        }
        Ok(())
    }

    /// Expires certificates whose validity ended by `now`. O(1) when none is due (every
    /// handler calls it, so the check is inlined and the work is out of line).
    #[inline]
    fn advance(&mut self, now: TimeMs, out: &mut Vec<Effect>) {
        self.last_now = self.last_now.max(now);
        if self
            .expiries
            .peek()
            .is_some_and(|Reverse((until, _, _))| *until <= now.0)
        {
            self.expire_grants(now, out);
        }
    }

    #[cold]
    fn expire_grants(&mut self, now: TimeMs, out: &mut Vec<Effect>) {
        while let Some(&Reverse((until, index, skill))) = self.expiries.peek() {
            if until > now.0 {
                break;
            }
            self.expiries.pop();
            let skill = SkillId(skill);
            let agent = &self.agents[index as usize];
            let still_valid = agent
                .grants
                .iter()
                .any(|grant| grant.skill == skill && grant.is_valid_at(now));
            if still_valid || !agent.skills.contains(skill) {
                continue;
            }
            let before = self.contribution(index);
            self.agents[index as usize].skills.remove(skill);
            self.refresh_agent(now, index, before, out);
        }
    }

    #[inline]
    fn contribution(&self, index: u32) -> AgentContribution {
        self.agents[index as usize].contribution()
    }

    /// After any change to an agent: logs out a finished logging-out agent, updates the
    /// per-skill counters, emits a state change, and (re)enters the agent into the idle sets
    /// of the skills it has room for. Runs on every agent change, so it reads the agent once.
    fn refresh_agent(
        &mut self,
        now: TimeMs,
        index: u32,
        before: AgentContribution,
        out: &mut Vec<Effect>,
    ) {
        let up = self.up;
        let agent = &mut self.agents[index as usize];
        if matches!(agent.presence, Presence::LoggingOut) && agent.item_count == 0 {
            agent.presence = Presence::LoggedOut;
        }
        let after = agent.contribution();
        let state = agent.derive_state();
        let from = agent.state;
        agent.state = state;
        agent.generation = agent.generation.wrapping_add(1);
        let agent_id = agent.id;
        let skills = agent.skills;
        // Rooms only matter for a ready agent at an up site.
        let (room_voice, room_chat) = if up && matches!(agent.presence, Presence::Ready) {
            let holds_voice = agent.holds_voice();
            (
                agent.item_count == 0,
                !holds_voice && agent.item_count < agent.chat_slots,
            )
        } else {
            (false, false)
        };
        let entry = IdleEntry::new(
            agent.item_count,
            agent.idle_since.0,
            agent_id.0,
            index,
            agent.generation,
        );
        if before.idle_skills != after.idle_skills || before.serving_skills != after.serving_skills
        {
            self.update_skill_counters(index, before, after);
        }
        if state != from {
            self.emit(
                now,
                EventKind::AgentStateChanged {
                    agent: agent_id,
                    from,
                    to: state,
                },
                out,
            );
        }
        if !room_voice && !room_chat {
            return;
        }
        let agents = &self.agents;
        for skill in skills.iter() {
            let state = &mut self.skills[skill.index()];
            let channel = state.channel;
            let room = match channel {
                Channel::Voice => room_voice,
                Channel::Chat => room_chat,
            };
            if room {
                state.idle.push(entry);
                // Live entries: one per fully idle agent for voice; at most one per ready
                // agent for chat. A tight bound keeps stale entries (agents taken through
                // another skill) from making every pop wade through them.
                let live_bound = match channel {
                    Channel::Voice => state.idle_agents,
                    Channel::Chat => state.serving_agents,
                } as usize;
                state.idle.compact_if_needed(live_bound, |entry| {
                    idle_entry_live(agents, entry, skill, channel)
                });
            }
        }
    }

    fn update_skill_counters(
        &mut self,
        index: u32,
        before: AgentContribution,
        after: AgentContribution,
    ) {
        let chat_slots = u32::from(self.agents[index as usize].chat_slots);
        for skill in before.idle_skills.iter() {
            self.skills[skill.index()].idle_agents -= 1;
        }
        for skill in after.idle_skills.iter() {
            self.skills[skill.index()].idle_agents += 1;
        }
        for skill in before.serving_skills.iter() {
            let state = &mut self.skills[skill.index()];
            state.serving_agents -= 1;
            state.serving_capacity -= capacity_for(state.channel, chat_slots);
        }
        for skill in after.serving_skills.iter() {
            let state = &mut self.skills[skill.index()];
            state.serving_agents += 1;
            state.serving_capacity += capacity_for(state.channel, chat_slots);
        }
    }

    /// Takes the longest-idle agent that can take a contact of `skill` now.
    fn take_idle_agent(&mut self, skill: SkillId) -> Option<u32> {
        let agents = &self.agents;
        let state = &mut self.skills[skill.index()];
        let channel = state.channel;
        let top = state
            .idle
            .peek_live(|entry| idle_entry_live(agents, entry, skill, channel))?;
        state.idle.pop();
        Some(top.index)
    }

    fn is_queued_live(&self, entry: &QueueEntry) -> bool {
        let contact = &self.contacts[entry.slot as usize];
        contact.live
            && contact.generation == entry.generation
            && contact.phase == InternalPhase::Queued
    }

    fn queue_key(&self, slot: u32) -> QueueEntry {
        let entry = &self.contacts[slot as usize];
        QueueEntry {
            priority: entry.contact.priority.0,
            ordering_time_ms: entry.contact.ordering_time.0,
            sequence: entry.sequence,
            slot,
            generation: entry.generation,
        }
    }

    fn queue_head(&mut self, skill: SkillId) -> Option<QueueEntry> {
        let contacts = &self.contacts;
        self.skills[skill.index()].queue.heap.peek_live(|entry| {
            let contact = &contacts[entry.slot as usize];
            contact.live
                && contact.generation == entry.generation
                && contact.phase == InternalPhase::Queued
        })
    }

    /// Whether a new contact gets a busy tone: the site is down with nowhere to send it, or
    /// the waiting limit is reached and no agent could take it at once.
    fn blocks(&mut self, contact: &Contact) -> bool {
        if !self.up {
            return choose_outage_target(self.id, contact.skill, &self.outage_peers).is_none();
        }
        if self.waiting_total < self.config.waiting_max {
            return false;
        }
        let agents = &self.agents;
        let skill = contact.skill;
        let state = &mut self.skills[skill.index()];
        let channel = state.channel;
        state
            .idle
            .peek_live(|entry| idle_entry_live(agents, entry, skill, channel))
            .is_none()
    }

    /// Admits a contact that is new to this site (arrival or overflow-in).
    fn admit(
        &mut self,
        now: TimeMs,
        contact: Contact,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        // A contact new to this site has not been answered here, whatever happened elsewhere.
        let answered_before = false;
        if !self.up {
            match self.take_outage_target(contact.skill) {
                Some(target) => {
                    let mut moved = contact;
                    moved.overflow_count = moved.overflow_count.saturating_add(1);
                    // A zero-length stay in the queue keeps the event stream's rule that
                    // every OverflowOut leaves a queue (metrics track lengths from it).
                    let waiting = self.skills[contact.skill.index()].queue.waiting + 1;
                    self.emit(
                        now,
                        EventKind::Queued {
                            contact: contact.id,
                            skill: contact.skill,
                            waiting,
                        },
                        out,
                    );
                    self.emit(
                        now,
                        EventKind::OverflowOut {
                            contact: contact.id,
                            skill: contact.skill,
                            target,
                            reason: OverflowReason::Outage,
                            wait_ms: 0,
                            entered_queue_at: now,
                            entered_site_at: now,
                            answered_before,
                        },
                        out,
                    );
                    out.push(Effect::Overflow {
                        contact: moved,
                        target,
                    });
                }
                None => self.emit(
                    now,
                    EventKind::Blocked {
                        contact: contact.id,
                        skill: contact.skill,
                    },
                    out,
                ),
            }
            return Ok(());
        }
        let entry = ContactEntry {
            contact,
            live: true,
            phase: InternalPhase::Queued,
            generation: 0,
            sequence: self.next_sequence,
            entered_queue_at: now,
            entered_site_at: now,
            offered_at: now,
            answered_at: now,
            hold_since: None,
            hold_ms: 0,
            answered_before,
        };
        self.next_sequence += 1;
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                let generation = self.contacts[slot as usize].generation.wrapping_add(1);
                self.contacts[slot as usize] = ContactEntry {
                    generation,
                    ..entry
                };
                slot
            }
            None => {
                let slot = self.contacts.len() as u32;
                self.contacts.push(entry);
                slot
            }
        };
        self.contact_index.insert(contact.id, slot);
        self.route_or_queue(now, slot, out);
        Ok(())
    }

    /// Offers the contact in `slot` to the longest-idle qualified agent, or queues it.
    fn route_or_queue(&mut self, now: TimeMs, slot: u32, out: &mut Vec<Effect>) {
        let skill = self.contacts[slot as usize].contact.skill;
        if self.up {
            if let Some(index) = self.take_idle_agent(skill) {
                self.offer(now, slot, index, false, out);
                return;
            }
        }
        self.enqueue(now, slot, out);
    }

    fn enqueue(&mut self, now: TimeMs, slot: u32, out: &mut Vec<Effect>) {
        let entry = &mut self.contacts[slot as usize];
        entry.phase = InternalPhase::Queued;
        entry.generation = entry.generation.wrapping_add(1);
        let contact = entry.contact;
        let key = self.queue_key(slot);
        let queue = &mut self.skills[contact.skill.index()].queue;
        queue.heap.push(key);
        queue.waiting += 1;
        let waiting = queue.waiting;
        self.waiting_total += 1;
        let contacts = &self.contacts;
        self.skills[contact.skill.index()]
            .queue
            .heap
            .compact_if_needed(waiting as usize, |entry| {
                let contact = &contacts[entry.slot as usize];
                contact.live
                    && contact.generation == entry.generation
                    && contact.phase == InternalPhase::Queued
            });
        self.emit(
            now,
            EventKind::Queued {
                contact: contact.id,
                skill: contact.skill,
                waiting,
            },
            out,
        );
    }

    /// Removes a queued contact from its queue's counters (its heap entry goes stale).
    fn leave_queue(&mut self, slot: u32) {
        let entry = &mut self.contacts[slot as usize];
        debug_assert_eq!(entry.phase, InternalPhase::Queued);
        entry.generation = entry.generation.wrapping_add(1);
        self.skills[entry.contact.skill.index()].queue.waiting -= 1;
        self.waiting_total -= 1;
    }

    fn offer(&mut self, now: TimeMs, slot: u32, index: u32, dequeued: bool, out: &mut Vec<Effect>) {
        let before = self.contribution(index);
        let contact = self.contacts[slot as usize].contact;
        let agent = &mut self.agents[index as usize];
        // The slot bound and the certificate rule are the two promises routing makes to
        // agents; a violation here is a routing bug, not bad input.
        assert!(
            agent.has_room_for(contact.channel),
            "routing bug: agent has no room"
        );
        assert!(
            agent.skills.contains(contact.skill),
            "routing bug: agent lacks a valid grant"
        );
        let position = usize::from(agent.item_count);
        agent.items[position] = Item {
            contact: contact.id,
            skill: contact.skill,
            channel: contact.channel,
            phase: ItemPhase::Offered,
            since: now,
            handled_ms: 0,
        };
        agent.item_count += 1;
        let agent_id = agent.id;
        let entry = &mut self.contacts[slot as usize];
        entry.phase = InternalPhase::Offered(index);
        entry.offered_at = now;
        self.emit(
            now,
            EventKind::Offered {
                contact: contact.id,
                agent: agent_id,
                skill: contact.skill,
                dequeued,
            },
            out,
        );
        out.push(Effect::Offer {
            contact: contact.id,
            agent: agent_id,
            timeout_at: now.plus_ms(self.config.offer_timeout_ms),
        });
        self.refresh_agent(now, index, before, out);
    }

    /// Gives a freed agent work: the best head among the queues of its skills it has room
    /// for, repeatedly while it has room (chat slots).
    fn dispatch_agent(&mut self, now: TimeMs, index: u32, out: &mut Vec<Effect>) {
        if !self.up {
            return;
        }
        loop {
            let agent = &self.agents[index as usize];
            if !matches!(agent.presence, Presence::Ready) {
                return;
            }
            let skills = agent.skills;
            let mut best: Option<QueueEntry> = None;
            for skill in skills.iter() {
                if !self.agents[index as usize].has_room_for(self.skills[skill.index()].channel)
                    || self.skills[skill.index()].queue.waiting == 0
                {
                    continue;
                }
                if let Some(head) = self.queue_head(skill) {
                    if best.is_none_or(|current| head.serves_before(&current)) {
                        best = Some(head);
                    }
                }
            }
            let Some(head) = best else {
                return;
            };
            self.leave_queue(head.slot);
            self.offer(now, head.slot, index, true, out);
        }
    }

    /// Offers waiting contacts of `skill` to idle agents while both exist.
    fn dispatch_skill(&mut self, now: TimeMs, skill: SkillId, out: &mut Vec<Effect>) {
        if !self.up {
            return;
        }
        while self.skills[skill.index()].queue.waiting > 0 {
            let Some(index) = self.take_idle_agent(skill) else {
                return;
            };
            // The agent may prefer another skill's head; dispatching the agent applies the
            // cross-skill rule rather than favouring this skill.
            self.dispatch_agent(now, index, out);
        }
    }

    /// Withdraws an offer (reject, timeout): contact back to its old place, agent not ready.
    fn return_offer(
        &mut self,
        now: TimeMs,
        slot: u32,
        index: u32,
        reason: NotReadyReason,
        timed_out: bool,
        out: &mut Vec<Effect>,
    ) {
        let before = self.contribution(index);
        let contact = self.contacts[slot as usize].contact;
        let agent = &mut self.agents[index as usize];
        if let Some(position) = agent.find_item(contact.id, ItemPhase::Offered) {
            agent.remove_item(position);
        }
        if matches!(agent.presence, Presence::Ready) {
            agent.presence = Presence::NotReady(reason);
        }
        let agent_id = agent.id;
        let kind = if timed_out {
            EventKind::OfferTimedOut {
                contact: contact.id,
                agent: agent_id,
                skill: contact.skill,
            }
        } else {
            EventKind::OfferRejected {
                contact: contact.id,
                agent: agent_id,
                skill: contact.skill,
            }
        };
        self.emit(now, kind, out);
        self.refresh_agent(now, index, before, out);
        // Same priority, ordering time and sequence: the contact regains its old place.
        self.enqueue(now, slot, out);
        self.dispatch_skill(now, contact.skill, out);
        self.dispatch_agent(now, index, out);
    }

    /// Withdraws every ringing offer of an agent (logout, outage); contacts are requeued.
    fn withdraw_offers(&mut self, now: TimeMs, index: u32, out: &mut Vec<Effect>) {
        loop {
            let agent = &mut self.agents[index as usize];
            let Some(position) = agent
                .items()
                .iter()
                .position(|item| item.phase == ItemPhase::Offered)
            else {
                return;
            };
            let item = agent.remove_item(position);
            let agent_id = agent.id;
            out.push(Effect::CancelOffer {
                contact: item.contact,
                agent: agent_id,
            });
            if let Some(&slot) = self.contact_index.get(&item.contact) {
                self.enqueue(now, slot, out);
                self.dispatch_skill(now, item.skill, out);
            }
        }
    }

    /// Ends the talking leg of the contact in `slot` with agent `index`: Ended event, the
    /// agent's item moves to wrap-up.
    fn finish_talk(&mut self, now: TimeMs, slot: u32, index: u32, out: &mut Vec<Effect>) {
        let before = self.contribution(index);
        let entry = &mut self.contacts[slot as usize];
        if let Some(since) = entry.hold_since.take() {
            entry.hold_ms += now.since(since);
        }
        let total_ms = now.since(entry.answered_at);
        let hold_ms = entry.hold_ms.min(total_ms);
        let talk_ms = total_ms - hold_ms;
        let contact = entry.contact;
        let agent = &mut self.agents[index as usize];
        if let Some(position) = agent.find_item(contact.id, ItemPhase::Talking) {
            let item = &mut agent.items[position];
            item.phase = ItemPhase::WrapUp;
            item.since = now;
            item.handled_ms = u32::try_from(total_ms).unwrap_or(u32::MAX);
        }
        let agent_id = agent.id;
        self.emit(
            now,
            EventKind::Ended {
                contact: contact.id,
                agent: agent_id,
                skill: contact.skill,
                talk_ms,
                hold_ms,
            },
            out,
        );
        self.refresh_agent(now, index, before, out);
    }

    fn free_contact(&mut self, slot: u32) {
        let entry = &mut self.contacts[slot as usize];
        entry.live = false;
        entry.generation = entry.generation.wrapping_add(1);
        self.contact_index.remove(&entry.contact.id);
        self.free_slots.push(slot);
    }

    fn record_handle_time(&mut self, skill: SkillId, handle_ms: u64) {
        let smoothing = u64::from(self.config.handle_time_smoothing);
        let state = &mut self.skills[skill.index()];
        // Integer moving average: deterministic on every machine.
        let average = state.handle_ms_average;
        state.handle_ms_average = if handle_ms >= average {
            average + (handle_ms - average) / smoothing
        } else {
            average - (average - handle_ms) / smoothing
        };
    }

    fn measured_wait_ms(&mut self, now: TimeMs, skill: SkillId) -> u64 {
        match self.overflow.trigger {
            OverflowTrigger::OldestWait => self.queue_head(skill).map_or(0, |head| {
                now.since(self.contacts[head.slot as usize].entered_queue_at)
            }),
            OverflowTrigger::PredictedWait => {
                let waiting = self.skills[skill.index()].queue.waiting;
                if waiting == 0 {
                    0
                } else {
                    self.estimate_wait_ms(skill, waiting + 1)
                }
            }
        }
    }

    /// Sends a queued contact to another site.
    fn send_away(
        &mut self,
        now: TimeMs,
        slot: u32,
        target: SiteId,
        reason: OverflowReason,
        out: &mut Vec<Effect>,
    ) {
        self.leave_queue(slot);
        let entry = self.contacts[slot as usize];
        self.emit(
            now,
            EventKind::OverflowOut {
                contact: entry.contact.id,
                skill: entry.contact.skill,
                target,
                reason,
                wait_ms: now.since(entry.entered_queue_at),
                entered_queue_at: entry.entered_queue_at,
                entered_site_at: entry.entered_site_at,
                answered_before: entry.answered_before,
            },
            out,
        );
        let mut moved = entry.contact;
        moved.overflow_count = moved.overflow_count.saturating_add(1);
        out.push(Effect::Overflow {
            contact: moved,
            target,
        });
        self.free_contact(slot);
    }
}

fn capacity_for(channel: Channel, chat_slots: u32) -> u32 {
    match channel {
        Channel::Voice => 1,
        Channel::Chat => chat_slots,
    }
}

fn idle_entry_live(
    agents: &[AgentEntry],
    entry: &IdleEntry,
    skill: SkillId,
    channel: Channel,
) -> bool {
    let agent = &agents[entry.index as usize];
    agent.generation == entry.generation()
        && agent.skills.contains(skill)
        && agent.has_room_for(channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_index_falls_back_on_collisions_and_keeps_count() {
        let mut index: DirectIndex<ContactId> = DirectIndex::default();
        let step = DIRECT_TABLE_ENTRIES as u64;
        let (first, second, third) = (ContactId(5), ContactId(5 + step), ContactId(5 + 2 * step));
        index.insert(first, 1);
        index.insert(second, 2);
        index.insert(third, 3);
        assert_eq!(index.len(), 3);
        assert_eq!(index.get(&first), Some(&1));
        assert_eq!(index.get(&second), Some(&2));
        assert_eq!(index.get(&third), Some(&3));
        index.remove(&first);
        assert_eq!(index.get(&first), None);
        assert_eq!(index.len(), 2);
        // The freed position is not reused by a key that already lives in the fallback map.
        index.insert(second, 7);
        assert_eq!(index.get(&second), Some(&7));
        assert_eq!(index.len(), 2);
        index.remove(&second);
        index.remove(&third);
        index.remove(&third);
        assert_eq!(index.len(), 0);
        assert!(!index.contains_key(&third));
        index.insert(ContactId(u64::MAX), 9);
        assert_eq!(index.get(&ContactId(u64::MAX)), Some(&9));
    }
}
