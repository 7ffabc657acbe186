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
//!
//! One file per piece of the state: id tables (`indexes`), the records (`entries`), agents'
//! presence (`presence`), contacts' life (`contacts`), routing and queues (`dispatch`),
//! overflow and outage (`overflow`), read-only views (`queries`) and the invariants
//! (`invariants`). This file holds the state and the public handlers: each lets time pass
//! (certificate expiry, wrap-up maximum), delegates, and checks the invariants (amortised) in
//! debug builds.

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

mod contacts;
mod dispatch;
mod entries;
mod indexes;
mod invariants;
mod overflow;
mod presence;
mod queries;

use entries::*;
use indexes::DirectIndex;

/// How many times the overflow rule may move one contact between sites; beyond it the contact
/// stays where it is, so contacts cannot bounce between sites forever.
pub const OVERFLOW_HOPS_MAX: u8 = 2;

/// Entries of each site's direct-mapped id tables (contacts and agents): an id is looked up at
/// `id mod DIRECT_TABLE_ENTRIES` first (one cache line, no hashing) and in a hash map only when
/// two live ids share that position. Ids numbered from a slab (`generation << 32 | slot` or
/// consecutive integers) almost never collide.
pub const DIRECT_TABLE_ENTRIES: usize = 1 << 12;

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
    /// Wrap-up maximums, earliest first: (deadline ms, agent index, contact id).
    wrap_up_deadlines: BinaryHeap<Reverse<(u64, u32, u64)>>,
    /// Handlers left before the next full invariant check in debug builds (see
    /// [`Site::debug_check_invariants`]).
    handlers_until_check: u64,
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
            handlers_until_check: 0,
            wrap_up_deadlines: BinaryHeap::new(),
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

    /// Lets time pass to `now`: expires certificates whose validity ended and ends wrap-ups
    /// that reached the configured maximum. O(1) when nothing is due (every handler calls it,
    /// so the check is inlined and the work is out of line).
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
        if self
            .wrap_up_deadlines
            .peek()
            .is_some_and(|Reverse((deadline, _, _))| *deadline <= now.0)
        {
            self.expire_wrap_ups(now, out);
        }
    }

    /// Runs one input: time first passes to `now` (expired grants end, wrap-ups at their
    /// maximum end), then `input` runs, then the invariants are checked in debug builds. Every
    /// public `handle_*` goes through here, so none can skip either.
    fn step<T>(
        &mut self,
        now: TimeMs,
        out: &mut Vec<Effect>,
        input: impl FnOnce(&mut Self, &mut Vec<Effect>) -> T,
    ) -> T {
        self.advance(now, out);
        let result = input(self, out);
        self.debug_check_invariants();
        result
    }

    /// When the earliest wrap-up reaches the configured maximum (`wrap_up_max_ms`), if any:
    /// the driver calls [`Site::handle_timers`] then (a deadline whose wrap-up ended earlier
    /// does nothing).
    pub fn wrap_up_deadline(&self) -> Option<TimeMs> {
        self.wrap_up_deadlines
            .peek()
            .map(|Reverse((deadline, _, _))| TimeMs(*deadline))
    }

    /// Time passed with no other input: wrap-ups at their maximum end (the agent takes the
    /// next contact) and expired certificates are removed.
    pub fn handle_timers(&mut self, now: TimeMs, out: &mut Vec<Effect>) {
        self.step(now, out, |_, _| ());
    }

    // ----- handlers (each checks the invariants in debug builds) -------------------------

    /// Replaces an agent's skill grants (e.g. a renewed certificate). Takes effect for the next
    /// routing decision; contacts in hand are not affected.
    pub fn handle_skills_changed(
        &mut self,
        now: TimeMs,
        agent: AgentId,
        grants: Vec<SkillGrant>,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        self.step(now, out, |site, out| {
            site.skills_changed(now, agent, grants, out)
        })
    }

    /// Logs an agent in: ready, idle since `now`. Cancels a pending logout.
    pub fn handle_login(
        &mut self,
        now: TimeMs,
        agent: AgentId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        self.step(now, out, |site, out| site.login(now, agent, out))
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
        self.step(now, out, |site, out| site.logout(now, agent, out))
    }

    /// Makes a logged-in agent ready (available for offers).
    pub fn handle_ready(
        &mut self,
        now: TimeMs,
        agent: AgentId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        self.step(now, out, |site, out| site.ready(now, agent, out))
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
        self.step(now, out, |site, out| {
            site.not_ready(now, agent, reason, out)
        })
    }

    /// A new contact arrives at this site: offered to the longest-idle qualified agent, or
    /// queued. At a down site it is sent on to another site (or blocked if none serves it).
    pub fn handle_arrival(
        &mut self,
        now: TimeMs,
        contact: Contact,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        self.step(now, out, |site, out| site.arrival(now, contact, out))
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
        self.step(now, out, |site, out| {
            site.overflow_in(now, contact, from, out)
        })
    }

    /// The agent accepted the offer: talking starts.
    pub fn handle_accept(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        self.step(now, out, |site, out| site.accept(now, contact, out))
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
        self.step(now, out, |site, out| site.reject(now, contact, out))
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
        self.step(now, out, |site, out| {
            site.offer_timeout(now, contact, agent, out)
        })
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
        self.step(now, out, |site, out| site.abandon(now, contact, out))
    }

    /// The self-service bot served the caller before an agent answered: the contact leaves
    /// (waiting or ringing) with `SelfServed`, counted apart — no abandonment, no callback.
    /// Returns false (and does nothing) if the contact is not waiting or ringing here.
    pub fn handle_self_served(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        out: &mut Vec<Effect>,
    ) -> bool {
        self.step(now, out, |site, out| {
            site.leave_unanswered(now, contact, true, out)
        })
    }

    /// Puts a talking contact on hold (hold time counts in handle time, not talk time).
    pub fn handle_hold(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        self.step(now, out, |site, out| site.hold(now, contact, out))
    }

    /// Takes a contact off hold.
    pub fn handle_resume(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        self.step(now, out, |site, out| site.resume(now, contact, out))
    }

    /// The conversation ended (either side hung up, chat closed). The agent keeps the
    /// contact's slot in wrap-up until [`Site::handle_wrap_up_end`]; the contact leaves the site.
    pub fn handle_end(
        &mut self,
        now: TimeMs,
        contact: ContactId,
        out: &mut Vec<Effect>,
    ) -> Result<(), DomainError> {
        self.step(now, out, |site, out| site.end(now, contact, out))
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
        self.step(now, out, |site, out| {
            site.wrap_up_end(now, agent, contact, out)
        })
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
        self.step(now, out, |site, out| {
            site.transfer(now, contact, to_skill, out)
        })
    }

    /// Applies the overflow rule: for each queue whose measured wait crossed the on-threshold
    /// (and has not yet fallen below the off-threshold), sends contacts from the head to the
    /// other site with the most idle qualified agents (ties: lowest id) while the cap on the
    /// share sent out allows. Never sends to a site whose summary shows no idle qualified
    /// agent left for this pass. Call after arrivals, when peer summaries change, and at
    /// [`Site::overflow_deadline`].
    pub fn poll_overflow(&mut self, now: TimeMs, peers: &[SiteSummary], out: &mut Vec<Effect>) {
        self.step(now, out, |site, out| site.overflow_pass(now, peers, out));
    }

    /// Marks the site down. Ringing offers are withdrawn; each waiting contact (and, while
    /// down, each new arrival) goes to the other site that is up and serves its skill with the
    /// most idle agents, then fewest waiting, then lowest id — counting the contacts already
    /// sent there, so the load spreads. A contact stays queued if no site serves its skill
    /// (an arrival is then blocked). Nothing is routed here while down. Calling it again with
    /// fresh summaries re-targets.
    pub fn handle_site_down(&mut self, now: TimeMs, peers: &[SiteSummary], out: &mut Vec<Effect>) {
        self.step(now, out, |site, out| site.site_down(now, peers, out));
    }

    /// Marks the site up again: routing resumes (idle agents take waiting contacts).
    pub fn handle_site_up(&mut self, now: TimeMs, out: &mut Vec<Effect>) {
        self.step(now, out, |site, out| site.site_up(now, out));
    }
}
