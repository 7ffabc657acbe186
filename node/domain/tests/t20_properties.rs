//! Property tests: random sequences of arrivals, agent presence changes, accepts, rejects,
//! timeouts, holds, ends, wrap-ups, abandons, transfers, overflow polls and outages, with the
//! routing invariants checked after every step.
#![allow(clippy::unwrap_used)]

use callgrid_domain::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const SKILL_COUNT: usize = 3;
const LINE2: SkillId = SkillId(1);
const CHAT: SkillId = SkillId(2);

fn routing() -> RoutingConfig {
    let skill = |name: &str, channel, line| SkillConfig {
        name: name.into(),
        channel,
        line,
        handle_time_s_initial: 60,
    };
    let mut config = RoutingConfig::with_skills(vec![
        skill("voice_line1", Channel::Voice, Line::Line1),
        skill("voice_line2", Channel::Voice, Line::Line2),
        skill("chat_line1", Channel::Chat, Line::Line1),
    ]);
    config.waiting_max = 12;
    config
}

fn channel_of(skill: SkillId) -> Channel {
    if skill == CHAT {
        Channel::Chat
    } else {
        Channel::Voice
    }
}

#[derive(Clone, Debug)]
struct AgentPlan {
    skills: u8,
    chat_slots: u8,
    certificate_until_ms: Option<u64>,
}

fn agent_plan() -> impl Strategy<Value = AgentPlan> {
    (1u8..8, 1u8..4, proptest::option::of(0u64..300_000)).prop_map(
        |(skills, chat_slots, certificate_until_ms)| AgentPlan {
            skills,
            chat_slots,
            certificate_until_ms,
        },
    )
}

#[derive(Clone, Debug)]
enum Op {
    Advance(u64),
    Arrive {
        site: u8,
        skill: u8,
        priority: u8,
        older_ms: u64,
    },
    Login(u8),
    Logout(u8),
    Ready(u8),
    NotReady(u8),
    Accept(u8),
    Reject(u8),
    Timeout(u8),
    Hold(u8),
    Resume(u8),
    End(u8),
    WrapUpEnd(u8),
    Abandon(u8),
    Transfer(u8),
    PollOverflow(u8),
    SiteDown(u8),
    SiteUp(u8),
    StaleTimeout(u8),
}

fn op(with_sites: bool) -> impl Strategy<Value = Op> {
    let index = any::<u8>();
    let outage_weight = if with_sites { 2 } else { 1 };
    prop_oneof![
        4 => (0u64..30_000).prop_map(Op::Advance),
        8 => (any::<u8>(), 0u8..SKILL_COUNT as u8, 0u8..3, prop_oneof![3 => Just(0u64), 1 => 0u64..60_000])
            .prop_map(|(site, skill, priority, older_ms)| Op::Arrive { site, skill, priority, older_ms }),
        3 => index.prop_map(Op::Login),
        1 => index.prop_map(Op::Logout),
        2 => index.prop_map(Op::Ready),
        1 => index.prop_map(Op::NotReady),
        6 => index.prop_map(Op::Accept),
        1 => index.prop_map(Op::Reject),
        1 => index.prop_map(Op::Timeout),
        1 => index.prop_map(Op::Hold),
        1 => index.prop_map(Op::Resume),
        4 => index.prop_map(Op::End),
        4 => index.prop_map(Op::WrapUpEnd),
        2 => index.prop_map(Op::Abandon),
        1 => index.prop_map(Op::Transfer),
        3 => index.prop_map(Op::PollOverflow),
        outage_weight => index.prop_map(Op::SiteDown),
        outage_weight => index.prop_map(Op::SiteUp),
        1 => index.prop_map(Op::StaleTimeout),
    ]
}

/// What the test knows about a contact, from the effects it saw.
#[derive(Clone, Copy, Debug)]
struct Known {
    site: usize,
    skill: SkillId,
    priority: u8,
    ordering_time: TimeMs,
    /// Order of entry into its current queue (arrival, transfer or overflow-in).
    entry_order: u64,
}

struct World {
    now: TimeMs,
    sites: Vec<Site>,
    agents: Vec<(usize, AgentId, AgentPlan)>,
    metrics: Metrics,
    book: CallbackBook,
    known: BTreeMap<ContactId, Known>,
    /// Queued contacts per (site, skill), as seen from events.
    waiting: BTreeMap<(usize, SkillId), BTreeSet<ContactId>>,
    offers: BTreeMap<ContactId, (usize, AgentId, TimeMs)>,
    talking: BTreeMap<ContactId, (usize, AgentId)>,
    held: BTreeSet<ContactId>,
    wrap_ups: BTreeSet<(usize, AgentId, ContactId)>,
    answered_at_site: BTreeSet<(usize, ContactId)>,
    next_contact: u64,
    next_entry: u64,
    /// Overflow deliveries the target refused (busy tone).
    overflow_deliveries_blocked: u64,
    effects: Vec<Effect>,
    summaries: Vec<SiteSummary>,
}

impl World {
    fn new(site_count: usize, plans: &[AgentPlan], overflow: OverflowConfig) -> World {
        let mut sites: Vec<Site> = (0..site_count)
            .map(|site| Site::new(SiteId(site as u16), routing(), overflow.clone()).unwrap())
            .collect();
        let mut agents = Vec::new();
        for (number, plan) in plans.iter().enumerate() {
            let site = number % site_count;
            let id = AgentId(100 + number as u32);
            let grants = (0..SKILL_COUNT as u16)
                .filter(|skill| plan.skills & (1 << skill) != 0)
                .map(|skill| SkillGrant {
                    skill: SkillId(skill),
                    valid_until: if SkillId(skill) == LINE2 {
                        plan.certificate_until_ms.map(TimeMs)
                    } else {
                        None
                    },
                })
                .collect();
            sites[site]
                .add_agent(AgentSpec {
                    id,
                    skills: grants,
                    chat_slots: plan.chat_slots,
                })
                .unwrap();
            agents.push((site, id, plan.clone()));
        }
        World {
            now: TimeMs(1_000),
            sites,
            agents,
            metrics: Metrics::new(MetricsConfig::default(), site_count, SKILL_COUNT),
            book: CallbackBook::new(CallbackPolicy::default()),
            known: BTreeMap::new(),
            waiting: BTreeMap::new(),
            offers: BTreeMap::new(),
            talking: BTreeMap::new(),
            held: BTreeSet::new(),
            wrap_ups: BTreeSet::new(),
            answered_at_site: BTreeSet::new(),
            next_contact: 1,
            next_entry: 0,
            overflow_deliveries_blocked: 0,
            effects: Vec::new(),
            summaries: vec![SiteSummary::default(); site_count],
        }
    }

    fn pick<T: Copy>(items: impl Iterator<Item = T>, index: u8) -> Option<T> {
        let items: Vec<T> = items.collect();
        (!items.is_empty()).then(|| items[usize::from(index) % items.len()])
    }

    fn refresh_summaries(&mut self) {
        for (site, summary) in self.sites.iter_mut().zip(self.summaries.iter_mut()) {
            site.fill_summary(self.now, summary);
        }
    }

    fn apply(&mut self, op: &Op) {
        let now = self.now;
        let mut effects = std::mem::take(&mut self.effects);
        effects.clear();
        let agent_at = |world: &World, index: u8| {
            world.agents[usize::from(index) % world.agents.len()].clone()
        };
        match *op {
            Op::Advance(ms) => self.now = now.plus_ms(ms),
            Op::Arrive {
                site,
                skill,
                priority,
                older_ms,
            } => {
                let site = usize::from(site) % self.sites.len();
                let id = ContactId(self.next_contact);
                self.next_contact += 1;
                let skill = SkillId(u16::from(skill));
                let mut contact = Contact::inbound(
                    id,
                    channel_of(skill),
                    Topic::Order,
                    skill,
                    CallerNumber(1000 + id.0 % 7),
                    SiteId(site as u16),
                    now,
                )
                .with_priority(Priority(priority));
                contact.ordering_time = TimeMs(now.0.saturating_sub(older_ms));
                self.known.insert(
                    id,
                    Known {
                        site,
                        skill,
                        priority,
                        ordering_time: contact.ordering_time,
                        entry_order: 0,
                    },
                );
                self.sites[site]
                    .handle_arrival(now, contact, &mut effects)
                    .unwrap();
            }
            Op::Login(index) => {
                let (site, agent, _) = agent_at(self, index);
                let _ = self.sites[site].handle_login(now, agent, &mut effects);
            }
            Op::Logout(index) => {
                let (site, agent, _) = agent_at(self, index);
                let _ = self.sites[site].handle_logout(now, agent, &mut effects);
            }
            Op::Ready(index) => {
                let (site, agent, _) = agent_at(self, index);
                let _ = self.sites[site].handle_ready(now, agent, &mut effects);
            }
            Op::NotReady(index) => {
                let (site, agent, _) = agent_at(self, index);
                let _ = self.sites[site].handle_not_ready(
                    now,
                    agent,
                    NotReadyReason::BREAK,
                    &mut effects,
                );
            }
            Op::Accept(index) => {
                if let Some((contact, (site, _, _))) =
                    Self::pick(self.offers.iter().map(|(c, v)| (*c, *v)), index)
                {
                    self.sites[site]
                        .handle_accept(now, contact, &mut effects)
                        .unwrap();
                }
            }
            Op::Reject(index) => {
                if let Some((contact, (site, _, _))) =
                    Self::pick(self.offers.iter().map(|(c, v)| (*c, *v)), index)
                {
                    self.sites[site]
                        .handle_reject(now, contact, &mut effects)
                        .unwrap();
                }
            }
            Op::Timeout(index) => {
                if let Some((contact, (site, agent, offered_at))) =
                    Self::pick(self.offers.iter().map(|(c, v)| (*c, *v)), index)
                {
                    let deadline = offered_at.plus_ms(self.sites[site].config().offer_timeout_ms);
                    self.now = self.now.max(deadline);
                    assert!(self.sites[site].handle_offer_timeout(
                        self.now,
                        contact,
                        agent,
                        &mut effects
                    ));
                }
            }
            Op::StaleTimeout(index) => {
                if let Some((contact, (site, agent, offered_at))) =
                    Self::pick(self.offers.iter().map(|(c, v)| (*c, *v)), index)
                {
                    let deadline = offered_at.plus_ms(self.sites[site].config().offer_timeout_ms);
                    if now < deadline {
                        assert!(!self.sites[site].handle_offer_timeout(
                            now,
                            contact,
                            agent,
                            &mut effects
                        ));
                    }
                }
                if let Some((contact, (site, agent))) =
                    Self::pick(self.talking.iter().map(|(c, v)| (*c, *v)), index)
                {
                    assert!(!self.sites[site].handle_offer_timeout(
                        now.plus_ms(1_000_000),
                        contact,
                        agent,
                        &mut effects
                    ));
                }
            }
            Op::Hold(index) => {
                if let Some((contact, (site, _))) =
                    Self::pick(self.talking.iter().map(|(c, v)| (*c, *v)), index)
                {
                    let result = self.sites[site].handle_hold(now, contact, &mut effects);
                    assert_eq!(result.is_ok(), self.held.insert(contact));
                }
            }
            Op::Resume(index) => {
                if let Some(contact) = Self::pick(self.held.iter().copied(), index) {
                    let site = self.talking[&contact].0;
                    self.sites[site]
                        .handle_resume(now, contact, &mut effects)
                        .unwrap();
                    self.held.remove(&contact);
                }
            }
            Op::End(index) => {
                if let Some((contact, (site, _))) =
                    Self::pick(self.talking.iter().map(|(c, v)| (*c, *v)), index)
                {
                    self.sites[site]
                        .handle_end(now, contact, &mut effects)
                        .unwrap();
                }
            }
            Op::WrapUpEnd(index) => {
                if let Some((site, agent, contact)) =
                    Self::pick(self.wrap_ups.iter().copied(), index)
                {
                    self.sites[site]
                        .handle_wrap_up_end(now, agent, contact, &mut effects)
                        .unwrap();
                }
            }
            Op::Abandon(index) => {
                let waiting = self
                    .known
                    .iter()
                    .filter(|(contact, known)| {
                        matches!(
                            self.sites[known.site].contact_phase(**contact),
                            Some(ContactPhase::Queued | ContactPhase::Offered(_))
                        )
                    })
                    .map(|(contact, known)| (*contact, known.site));
                if let Some((contact, site)) = Self::pick(waiting, index) {
                    assert!(self.sites[site].handle_abandon(now, contact, &mut effects));
                }
            }
            Op::Transfer(index) => {
                if let Some((contact, (site, _))) =
                    Self::pick(self.talking.iter().map(|(c, v)| (*c, *v)), index)
                {
                    let known = self.known[&contact];
                    if channel_of(known.skill) == Channel::Voice && known.skill != LINE2 {
                        self.sites[site]
                            .handle_transfer(now, contact, LINE2, &mut effects)
                            .unwrap();
                    }
                }
            }
            Op::PollOverflow(index) => {
                let site = usize::from(index) % self.sites.len();
                self.refresh_summaries();
                let peers = self.summaries.clone();
                self.sites[site].poll_overflow(now, &peers, &mut effects);
                // Never more contacts to a site than it showed idle qualified agents.
                let mut sent: BTreeMap<(u16, SkillId), u32> = BTreeMap::new();
                for effect in &effects {
                    if let Effect::Overflow { contact, target } = effect {
                        let count = sent.entry((target.0, contact.skill)).or_default();
                        *count += 1;
                        let idle = peers[target.index()].skill(contact.skill).idle_agents;
                        assert!(
                            *count <= idle,
                            "overflow sent {count} contacts to site {target} showing {idle} idle"
                        );
                        assert_ne!(target.index(), site);
                        assert!(peers[target.index()].up);
                    }
                }
            }
            Op::SiteDown(index) => {
                let site = usize::from(index) % self.sites.len();
                self.refresh_summaries();
                let peers = self.summaries.clone();
                self.sites[site].handle_site_down(now, &peers, &mut effects);
            }
            Op::SiteUp(index) => {
                let site = usize::from(index) % self.sites.len();
                self.sites[site].handle_site_up(now, &mut effects);
            }
        }
        self.consume(effects);
    }

    /// Acts on effects like a driver, checking each against the test's model.
    fn consume(&mut self, mut effects: Vec<Effect>) {
        let mut cursor = 0;
        while cursor < effects.len() {
            let effect = effects[cursor];
            cursor += 1;
            match effect {
                Effect::Event(event) => {
                    self.metrics.record(&event);
                    self.observe(&event);
                }
                Effect::Offer {
                    contact,
                    agent,
                    timeout_at,
                } => {
                    let site = self.known[&contact].site;
                    let previous = self.offers.insert(contact, (site, agent, self.now));
                    assert!(
                        previous.is_none(),
                        "contact {contact} offered twice at once"
                    );
                    assert_eq!(
                        timeout_at,
                        self.now.plus_ms(self.sites[site].config().offer_timeout_ms)
                    );
                }
                Effect::CancelOffer { contact, .. } => {
                    self.offers.remove(&contact);
                }
                Effect::Overflow { contact, target } => {
                    let from = self.known[&contact.id].site;
                    let known = self.known.get_mut(&contact.id).unwrap();
                    known.site = target.index();
                    let mut more = Vec::new();
                    self.sites[target.index()]
                        .handle_overflow_in(self.now, contact, SiteId(from as u16), &mut more)
                        .unwrap();
                    let refused = more.iter().any(|effect| {
                        matches!(
                            effect,
                            Effect::Event(Event {
                                kind: EventKind::Blocked { contact: blocked, .. },
                                ..
                            }) if *blocked == contact.id
                        )
                    });
                    if refused {
                        self.overflow_deliveries_blocked += 1;
                    }
                    effects.extend(more);
                }
                Effect::RequestCallback(request) => {
                    let mut more = Vec::new();
                    self.book.handle_request(self.now, &request, &mut more);
                    effects.extend(more);
                }
            }
        }
        effects.clear();
        self.effects = effects;
    }

    fn observe(&mut self, event: &Event) {
        let site = event.site.index();
        match event.kind {
            EventKind::Arrived { contact, .. } | EventKind::OverflowIn { contact, .. } => {
                let order = self.next_entry;
                self.next_entry += 1;
                self.known.get_mut(&contact).unwrap().entry_order = order;
            }
            EventKind::TransferredIn { contact, skill } => {
                let order = self.next_entry;
                self.next_entry += 1;
                let known = self.known.get_mut(&contact).unwrap();
                known.entry_order = order;
                known.skill = skill;
                known.ordering_time = event.at;
            }
            EventKind::Queued { contact, skill, .. } => {
                assert!(
                    self.waiting
                        .entry((site, skill))
                        .or_default()
                        .insert(contact)
                );
            }
            EventKind::Offered {
                contact,
                agent,
                skill,
                dequeued,
            } => {
                let queue = self.waiting.entry((site, skill)).or_default();
                if dequeued {
                    // FIFO within a priority: the offered contact is the best of its queue.
                    let best = queue
                        .iter()
                        .map(|id| {
                            let known = self.known[id];
                            (
                                std::cmp::Reverse(known.priority),
                                known.ordering_time,
                                known.entry_order,
                                *id,
                            )
                        })
                        .min()
                        .unwrap();
                    assert_eq!(best.3, contact, "offered contact is not the queue head");
                    queue.remove(&contact);
                } else {
                    assert!(queue.is_empty(), "direct offer while contacts wait");
                }
                if skill == LINE2 {
                    let plan = &self
                        .agents
                        .iter()
                        .find(|(_, id, _)| *id == agent)
                        .unwrap()
                        .2;
                    if let Some(until) = plan.certificate_until_ms {
                        assert!(
                            event.at.0 < until,
                            "line-2 offer to {agent} at {} after certificate end {until}",
                            event.at
                        );
                    }
                }
            }
            EventKind::OfferRejected { contact, .. } | EventKind::OfferTimedOut { contact, .. } => {
                self.offers.remove(&contact);
            }
            EventKind::Answered { contact, agent, .. } => {
                self.offers.remove(&contact);
                self.talking.insert(contact, (site, agent));
                self.answered_at_site.insert((site, contact));
            }
            EventKind::Abandoned {
                contact,
                skill,
                in_queue,
                ..
            } => {
                if in_queue {
                    assert!(
                        self.waiting
                            .entry((site, skill))
                            .or_default()
                            .remove(&contact)
                    );
                }
                self.offers.remove(&contact);
            }
            EventKind::OverflowOut { contact, skill, .. } => {
                assert!(
                    self.waiting
                        .entry((site, skill))
                        .or_default()
                        .remove(&contact)
                );
                // Should it come back, it is a new contact for this site.
                self.answered_at_site.remove(&(site, contact));
            }
            EventKind::Ended { contact, agent, .. } => {
                self.talking.remove(&contact);
                self.held.remove(&contact);
                self.wrap_ups.insert((site, agent, contact));
            }
            EventKind::WrapUpEnded { contact, agent, .. } => {
                assert!(self.wrap_ups.remove(&(site, agent, contact)));
            }
            _ => {}
        }
    }

    fn check(&mut self) {
        for site in &self.sites {
            site.check_invariants().unwrap();
        }
        for (site, agent, plan) in &self.agents {
            let load = self.sites[*site].agent_load(*agent).unwrap();
            assert!(
                load <= usize::from(plan.chat_slots),
                "agent {agent} holds {load}"
            );
        }
        // Conservation per site and per queue.
        for (site_index, site) in self.sites.iter().enumerate() {
            let site_id = SiteId(site_index as u16);
            let mut site_in_progress = 0u64;
            for skill in 0..SKILL_COUNT as u16 {
                let skill = SkillId(skill);
                let mut in_progress = 0u64;
                for (contact, known) in &self.known {
                    if known.site != site_index || known.skill != skill {
                        continue;
                    }
                    if matches!(
                        site.contact_phase(*contact),
                        Some(ContactPhase::Queued | ContactPhase::Offered(_))
                    ) {
                        in_progress += 1;
                        if !self.answered_at_site.contains(&(site_index, *contact)) {
                            site_in_progress += 1;
                        }
                    }
                }
                let cell = self.metrics.queue_totals(site_id, skill);
                assert_eq!(
                    cell.offered,
                    cell.answered + cell.abandoned + cell.overflowed_out + in_progress,
                    "queue conservation at site {site_index} skill {skill}: {cell:?}"
                );
            }
            assert_eq!(site.unanswered_in_progress() as u64, site_in_progress);
            let cell = self.metrics.site_totals(site_id);
            assert_eq!(
                cell.offered,
                cell.answered
                    + cell.abandoned
                    + cell.overflowed_out_unanswered()
                    + site_in_progress,
                "site conservation at site {site_index}: {cell:?}"
            );
        }
        // Every contact sent out arrives somewhere (deliveries are immediate here) or is
        // refused there with a busy tone.
        let totals = self.metrics.totals();
        assert_eq!(
            totals.overflowed_out,
            totals.overflowed_in + self.overflow_deliveries_blocked,
            "cluster overflow balance: {totals:?}"
        );
    }
}

fn run(site_count: usize, plans: Vec<AgentPlan>, ops: Vec<Op>, overflow: OverflowConfig) {
    let mut world = World::new(site_count, &plans, overflow);
    for op in &ops {
        world.apply(op);
        world.check();
    }
    world.metrics.finish(world.now);
    let totals = world.metrics.totals();
    assert!(totals.answered <= totals.offered);
}

/// Fixed seed so the suite is deterministic; set `CALLGRID_PROPTEST_SEED` to explore others.
fn config() -> ProptestConfig {
    let seed = std::env::var("CALLGRID_PROPTEST_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(20_261_124);
    eprintln!("proptest seed {seed} (CALLGRID_PROPTEST_SEED to change)");
    ProptestConfig {
        cases: 256,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn single_site_invariants(
        plans in proptest::collection::vec(agent_plan(), 1..7),
        ops in proptest::collection::vec(op(false), 1..120),
    ) {
        run(1, plans, ops, OverflowConfig::default());
    }

    #[test]
    fn multi_site_overflow_invariants(
        plans in proptest::collection::vec(agent_plan(), 1..10),
        ops in proptest::collection::vec(op(true), 1..150),
        threshold_on_ms in 0u64..40_000,
        share_out_max in 0.0f64..=1.0,
        predicted in any::<bool>(),
    ) {
        let overflow = OverflowConfig {
            enabled: true,
            trigger: if predicted { OverflowTrigger::PredictedWait } else { OverflowTrigger::OldestWait },
            threshold_on_ms,
            threshold_off_ms: threshold_on_ms / 2,
            share_out_max,
            window_s: 300,
        };
        run(3, plans, ops, overflow);
    }
}
