//! Contact-center metrics computed from the event stream alone — the same code in node and
//! simulator — per interval, per site, per queue (site × skill) and per agent.
//!
//! Everything is integer sums and counts (no per-contact storage), so memory depends on
//! intervals × sites × skills + agents, never on the number of contacts.
//!
//! Attribution: offered, answered, abandoned, overflowed out and their waits count in the
//! interval in which the contact *entered* the site or queue (so a contact answered after a
//! boundary still counts towards the service level of the interval it arrived in); handle
//! times count where the talk or wrap-up ended; state times and queue lengths are split
//! across interval boundaries exactly.

use crate::agent::AgentState;
use crate::config::{MetricsConfig, ServiceLevelPolicy};
use crate::event::{Event, EventKind};
use crate::ids::{AgentId, SiteId, SkillId, TimeMs};
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

/// Agent ids below this are indexed through a dense table (4 bytes per id at most 4 MiB);
/// larger ids use a hash map.
pub const AGENT_DENSE_IDS_MAX: usize = 1 << 20;

/// Counts and sums for one cell (interval × site, interval × queue, or totals).
///
/// Balances (property-tested): for a site,
/// `offered = answered + abandoned + overflowed_out_unanswered() + still waiting or ringing`
/// — a transferred contact is answered once for the site, and if it is later sent away it
/// counts in `overflowed_out` and in `overflowed_out_after_answer`; for a queue,
/// `offered = answered + abandoned + overflowed_out + still waiting or ringing`; across the
/// cluster, `Σ overflowed_out = Σ overflowed_in + deliveries blocked at the target`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Contacts offered (arrivals + overflow-ins; for queues also transfers in).
    pub offered: u64,
    /// Contacts answered.
    pub answered: u64,
    /// Answered within the service-level target T.
    pub answered_within_target: u64,
    /// Abandoned (short abandons included).
    pub abandoned: u64,
    /// Abandoned with a wait under the short-abandon threshold.
    pub abandoned_short: u64,
    /// Abandoned with a wait over T.
    pub abandoned_after_target: u64,
    /// Served by the self-service bot before an agent answered: their own ending, neither
    /// answered nor abandoned, and left out of the service level's denominator.
    pub self_served: u64,
    /// Got a busy tone because the site's waiting limit was reached (not offered).
    pub blocked: u64,
    /// Sent to another site (by the rule or an outage). Across the cluster the sum of
    /// `overflowed_out` equals the sum of `overflowed_in` once every delivery has arrived
    /// (a delivery refused at a target with a busy tone shows there as `blocked`).
    pub overflowed_out: u64,
    /// Of `overflowed_out`, contacts already answered at this site (a transferred contact
    /// waiting for line 2). They are outside the site's balance
    /// `offered = answered + abandoned + (overflowed_out − overflowed_out_after_answer) + waiting`.
    pub overflowed_out_after_answer: u64,
    /// Received from another site.
    pub overflowed_in: u64,
    /// Transferred out (line 1 → line 2).
    pub transferred_out: u64,
    /// Transferred in.
    pub transferred_in: u64,
    /// Callback tasks created.
    pub callbacks_created: u64,
    /// Sum of waits of answered contacts.
    pub answer_wait_ms_sum: u64,
    /// Sum of waits of abandoned contacts.
    pub abandon_wait_ms_sum: u64,
    /// Conversations ended (the divisor of AHT).
    pub handled: u64,
    /// Sum of talk time.
    pub talk_ms_sum: u64,
    /// Sum of hold time.
    pub hold_ms_sum: u64,
    /// Sum of wrap-up time.
    pub wrap_up_ms_sum: u64,
    /// Integral of the queue length over time (length × ms).
    pub queue_length_ms_sum: u64,
    /// Largest queue length seen.
    pub queue_length_max: u64,
    /// Agent time Busy.
    pub busy_ms: u64,
    /// Agent time in WrapUp.
    pub wrap_up_state_ms: u64,
    /// Agent time logged in.
    pub staffed_ms: u64,
}

impl Counters {
    /// Adds `other` into `self` (maxima take the maximum).
    pub fn merge(&mut self, other: &Counters) {
        self.offered += other.offered;
        self.answered += other.answered;
        self.answered_within_target += other.answered_within_target;
        self.abandoned += other.abandoned;
        self.abandoned_short += other.abandoned_short;
        self.abandoned_after_target += other.abandoned_after_target;
        self.self_served += other.self_served;
        self.blocked += other.blocked;
        self.overflowed_out += other.overflowed_out;
        self.overflowed_out_after_answer += other.overflowed_out_after_answer;
        self.overflowed_in += other.overflowed_in;
        self.transferred_out += other.transferred_out;
        self.transferred_in += other.transferred_in;
        self.callbacks_created += other.callbacks_created;
        self.answer_wait_ms_sum += other.answer_wait_ms_sum;
        self.abandon_wait_ms_sum += other.abandon_wait_ms_sum;
        self.handled += other.handled;
        self.talk_ms_sum += other.talk_ms_sum;
        self.hold_ms_sum += other.hold_ms_sum;
        self.wrap_up_ms_sum += other.wrap_up_ms_sum;
        self.queue_length_ms_sum += other.queue_length_ms_sum;
        self.queue_length_max = self.queue_length_max.max(other.queue_length_max);
        self.busy_ms += other.busy_ms;
        self.wrap_up_state_ms += other.wrap_up_state_ms;
        self.staffed_ms += other.staffed_ms;
    }

    /// Contacts sent away before being answered here: the overflow term of the site balance
    /// `offered = answered + abandoned + overflowed_out_unanswered() + still waiting or ringing`
    /// (for queue cells `overflowed_out_after_answer` is 0, so it equals `overflowed_out`).
    pub fn overflowed_out_unanswered(&self) -> u64 {
        self.overflowed_out - self.overflowed_out_after_answer
    }

    /// Service level under `policy`, 0.0..=1.0; `None` when the denominator is zero.
    pub fn service_level(&self, policy: ServiceLevelPolicy) -> Option<f64> {
        let denominator = match policy {
            ServiceLevelPolicy::Offered => self.offered.saturating_sub(self.self_served),
            ServiceLevelPolicy::OfferedExcludingShortAbandons => self
                .offered
                .saturating_sub(self.abandoned_short)
                .saturating_sub(self.self_served),
            ServiceLevelPolicy::AnsweredPlusAbandonedAfterTarget => {
                self.answered + self.abandoned_after_target
            }
        };
        ratio(self.answered_within_target, denominator)
    }

    /// Abandoned / offered.
    pub fn abandon_rate(&self) -> Option<f64> {
        ratio(self.abandoned, self.offered)
    }

    /// Answered / offered.
    pub fn answer_rate(&self) -> Option<f64> {
        ratio(self.answered, self.offered)
    }

    /// Average speed of answer (wait of answered contacts, ringing included), in ms.
    pub fn asa_ms(&self) -> Option<f64> {
        ratio(self.answer_wait_ms_sum, self.answered)
    }

    /// Average wait before abandoning, in ms.
    pub fn abandon_wait_ms_average(&self) -> Option<f64> {
        ratio(self.abandon_wait_ms_sum, self.abandoned)
    }

    /// Average handle time (talk + hold + wrap-up) per handled conversation, in ms.
    pub fn aht_ms(&self) -> Option<f64> {
        ratio(
            self.talk_ms_sum + self.hold_ms_sum + self.wrap_up_ms_sum,
            self.handled,
        )
    }

    /// Time-weighted average queue length over a span of `span_ms`.
    pub fn queue_length_average(&self, span_ms: u64) -> Option<f64> {
        ratio(self.queue_length_ms_sum, span_ms)
    }

    /// Occupancy: (Busy + WrapUp time) / time logged in.
    pub fn occupancy(&self) -> Option<f64> {
        ratio(self.busy_ms + self.wrap_up_state_ms, self.staffed_ms)
    }
}

fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// Per-agent totals over the whole run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCounters {
    /// Offers made to the agent.
    pub offered: u64,
    /// Offers accepted.
    pub answered: u64,
    /// Offers rejected.
    pub rejected: u64,
    /// Offers that rang out.
    pub timed_out: u64,
    /// Contacts transferred away.
    pub transferred_out: u64,
    /// Conversations ended.
    pub handled: u64,
    /// Sum of talk time.
    pub talk_ms_sum: u64,
    /// Sum of hold time.
    pub hold_ms_sum: u64,
    /// Sum of wrap-up time.
    pub wrap_up_ms_sum: u64,
    /// Time Available.
    pub available_ms: u64,
    /// Time Reserved.
    pub reserved_ms: u64,
    /// Time Busy.
    pub busy_ms: u64,
    /// Time WrapUp.
    pub wrap_up_state_ms: u64,
    /// Time NotReady.
    pub not_ready_ms: u64,
    /// Time logged in (time on duty).
    pub staffed_ms: u64,
}

impl AgentCounters {
    /// Occupancy: (Busy + WrapUp time) / time logged in.
    pub fn occupancy(&self) -> Option<f64> {
        ratio(self.busy_ms + self.wrap_up_state_ms, self.staffed_ms)
    }

    /// Average handle time per handled conversation.
    pub fn aht_ms(&self) -> Option<f64> {
        ratio(
            self.talk_ms_sum + self.hold_ms_sum + self.wrap_up_ms_sum,
            self.handled,
        )
    }
}

#[derive(Clone, Debug)]
struct AgentTrack {
    id: AgentId,
    site: SiteId,
    state: AgentState,
    since: TimeMs,
    counters: AgentCounters,
}

#[derive(Clone, Copy, Debug, Default)]
struct QueueTrack {
    length: u64,
    since: TimeMs,
}

/// The accumulator: feed every [`Event`] in time order with [`Metrics::record`], call
/// [`Metrics::finish`] at the end, then read cells or build a [`MetricsReport`].
#[derive(Debug)]
pub struct Metrics {
    config: MetricsConfig,
    interval_ms: u64,
    target_ms: u64,
    site_count: usize,
    skill_count: usize,
    /// Interval-major: `intervals[i]` has `site_count` site cells then
    /// `site_count × skill_count` queue cells; created when first touched.
    intervals: Vec<Vec<Counters>>,
    queues: Vec<QueueTrack>,
    agents: Vec<AgentTrack>,
    agent_index: HashMap<AgentId, usize, BuildHasherDefault<crate::ids::IdHasher>>,
    /// Agent id → index for small ids (the common case): a Vec lookup instead of a hash.
    agent_dense: Vec<u32>,
    /// (start ms, end ms, index) of the interval of the latest event.
    interval_cache: Cell<(u64, u64, usize)>,
    /// Cells repeat every this many intervals (0: they do not; see [`Metrics::new_cyclic`]).
    cycle_intervals: usize,
    first_at: Option<TimeMs>,
    last_at: TimeMs,
}

impl Metrics {
    /// An accumulator for `site_count` sites (ids 0..n) and `skill_count` skills.
    pub fn new(config: MetricsConfig, site_count: usize, skill_count: usize) -> Metrics {
        Metrics {
            interval_ms: config.interval_ms().max(1),
            target_ms: config.service_level_target_s.saturating_mul(1000),
            config,
            site_count,
            skill_count,
            intervals: Vec::new(),
            queues: vec![QueueTrack::default(); site_count * skill_count],
            agents: Vec::new(),
            agent_index: HashMap::default(),
            agent_dense: Vec::new(),
            interval_cache: Cell::new((0, 0, 0)),
            cycle_intervals: 0,
            first_at: None,
            last_at: TimeMs::ZERO,
        }
    }

    /// An accumulator whose interval cells repeat every `cycle_intervals` intervals (e.g. one
    /// day): interval `i` counts into cell `i mod cycle_intervals`, so every cell holds the
    /// sum over all cycles of the same clock interval and memory stays bounded however long
    /// the run (`intervals_max` is not used). Spans (agent states, queue lengths) are still
    /// split at every interval boundary. For runs over many days, such as the simulator's.
    pub fn new_cyclic(
        config: MetricsConfig,
        site_count: usize,
        skill_count: usize,
        cycle_intervals: u32,
    ) -> Metrics {
        Metrics {
            cycle_intervals: cycle_intervals.max(1) as usize,
            ..Metrics::new(config, site_count, skill_count)
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MetricsConfig {
        &self.config
    }

    /// Records one event. Events of sites or skills outside the configured ranges are ignored.
    pub fn record(&mut self, event: &Event) {
        // Agent state changes are four in ten events: a small path for them keeps the large
        // match (and its register saves) off their way.
        if let EventKind::AgentStateChanged { agent, to, .. } = event.kind {
            let at = event.at;
            if event.site.index() >= self.site_count {
                return;
            }
            if self.first_at.is_none() {
                self.first_at = Some(at);
            }
            self.last_at = self.last_at.max(at);
            let index = self.agent_slot(agent, event.site, at);
            self.close_agent_span(index, at);
            self.agents[index].state = to;
            return;
        }
        self.record_other(event);
    }

    /// Every event but agent state changes (see [`Metrics::record`]).
    #[inline(never)]
    fn record_other(&mut self, event: &Event) {
        let at = event.at;
        let site = event.site.index();
        if site >= self.site_count {
            return;
        }
        if self.first_at.is_none() {
            self.first_at = Some(at);
        }
        self.last_at = self.last_at.max(at);
        let target_ms = self.target_ms;
        match event.kind {
            EventKind::Arrived { skill, .. } => {
                self.cell_pair(
                    at,
                    site,
                    skill,
                    |cell| cell.offered += 1,
                    |cell| cell.offered += 1,
                );
            }
            EventKind::OverflowIn { skill, .. } => self.cell_pair(
                at,
                site,
                skill,
                |cell| {
                    cell.offered += 1;
                    cell.overflowed_in += 1;
                },
                |cell| {
                    cell.offered += 1;
                    cell.overflowed_in += 1;
                },
            ),
            EventKind::Blocked { skill, .. } => {
                self.cell_pair(
                    at,
                    site,
                    skill,
                    |cell| cell.blocked += 1,
                    |cell| cell.blocked += 1,
                );
            }
            EventKind::Queued { skill, .. } => self.change_queue(at, site, skill, 1),
            EventKind::Offered {
                agent,
                skill,
                dequeued,
                ..
            } => {
                if dequeued {
                    self.change_queue(at, site, skill, -1);
                }
                self.agent(agent, event.site, at).counters.offered += 1;
            }
            EventKind::OfferRejected { agent, .. } => {
                self.agent(agent, event.site, at).counters.rejected += 1;
            }
            EventKind::OfferTimedOut { agent, .. } => {
                self.agent(agent, event.site, at).counters.timed_out += 1;
            }
            EventKind::Answered {
                agent,
                skill,
                wait_ms,
                site_wait_ms,
                entered_queue_at,
                entered_site_at,
                answered_before,
                ..
            } => {
                let queue = self.queue_cell(entered_queue_at, site, skill);
                queue.answered += 1;
                queue.answer_wait_ms_sum += wait_ms;
                if wait_ms <= target_ms {
                    queue.answered_within_target += 1;
                }
                if !answered_before {
                    let cell = self.site_cell(entered_site_at, site);
                    cell.answered += 1;
                    cell.answer_wait_ms_sum += site_wait_ms;
                    if site_wait_ms <= target_ms {
                        cell.answered_within_target += 1;
                    }
                }
                self.agent(agent, event.site, at).counters.answered += 1;
            }
            EventKind::Abandoned {
                skill,
                wait_ms,
                short,
                in_queue,
                entered_queue_at,
                entered_site_at,
                answered_before,
                ..
            } => {
                if in_queue {
                    self.change_queue(at, site, skill, -1);
                }
                let apply = |cell: &mut Counters, wait_ms: u64| {
                    cell.abandoned += 1;
                    cell.abandon_wait_ms_sum += wait_ms;
                    if short {
                        cell.abandoned_short += 1;
                    }
                    if wait_ms > target_ms {
                        cell.abandoned_after_target += 1;
                    }
                };
                apply(self.queue_cell(entered_queue_at, site, skill), wait_ms);
                if !answered_before {
                    let site_wait_ms = at.since(entered_site_at);
                    apply(self.site_cell(entered_site_at, site), site_wait_ms);
                }
            }
            EventKind::SelfServed {
                skill,
                in_queue,
                entered_queue_at,
                entered_site_at,
                answered_before,
                ..
            } => {
                if in_queue {
                    self.change_queue(at, site, skill, -1);
                }
                self.queue_cell(entered_queue_at, site, skill).self_served += 1;
                if !answered_before {
                    self.site_cell(entered_site_at, site).self_served += 1;
                }
            }
            EventKind::TransferredOut {
                agent, from_skill, ..
            } => {
                self.cell_pair(
                    at,
                    site,
                    from_skill,
                    |cell| cell.transferred_out += 1,
                    |cell| cell.transferred_out += 1,
                );
                self.agent(agent, event.site, at).counters.transferred_out += 1;
            }
            EventKind::TransferredIn { skill, .. } => {
                let cell = self.queue_cell(at, site, skill);
                cell.offered += 1;
                cell.transferred_in += 1;
                self.site_cell(at, site).transferred_in += 1;
            }
            EventKind::OverflowOut {
                skill,
                entered_queue_at,
                entered_site_at,
                answered_before,
                ..
            } => {
                self.change_queue(at, site, skill, -1);
                self.queue_cell(entered_queue_at, site, skill)
                    .overflowed_out += 1;
                let cell = self.site_cell(entered_site_at, site);
                cell.overflowed_out += 1;
                if answered_before {
                    cell.overflowed_out_after_answer += 1;
                }
            }
            EventKind::Ended {
                agent,
                skill,
                talk_ms,
                hold_ms,
                ..
            } => {
                let apply = |cell: &mut Counters| {
                    cell.handled += 1;
                    cell.talk_ms_sum += talk_ms;
                    cell.hold_ms_sum += hold_ms;
                };
                self.cell_pair(at, site, skill, apply, apply);
                let counters = &mut self.agent(agent, event.site, at).counters;
                counters.handled += 1;
                counters.talk_ms_sum += talk_ms;
                counters.hold_ms_sum += hold_ms;
            }
            EventKind::WrapUpEnded {
                agent,
                skill,
                wrap_up_ms,
                ..
            } => {
                let apply = |cell: &mut Counters| cell.wrap_up_ms_sum += wrap_up_ms;
                self.cell_pair(at, site, skill, apply, apply);
                self.agent(agent, event.site, at).counters.wrap_up_ms_sum += wrap_up_ms;
            }
            EventKind::AgentStateChanged { agent, to, .. } => {
                let index = self.agent_slot(agent, event.site, at);
                self.close_agent_span(index, at);
                self.agents[index].state = to;
            }
            EventKind::CallbackCreated { skill, .. } => self.cell_pair(
                at,
                site,
                skill,
                |cell| cell.callbacks_created += 1,
                |cell| cell.callbacks_created += 1,
            ),
            EventKind::CallbackClosed { .. } => {}
        }
    }

    /// Closes open spans (agent states, queue lengths) at `now`; call once at the end.
    /// Recording later events afterwards continues correctly from `now`.
    pub fn finish(&mut self, now: TimeMs) {
        self.last_at = self.last_at.max(now);
        for index in 0..self.agents.len() {
            self.close_agent_span(index, now);
        }
        for site in 0..self.site_count {
            for skill in 0..self.skill_count {
                self.change_queue(now, site, SkillId(skill as u16), 0);
            }
        }
    }

    /// Number of intervals touched so far.
    pub fn interval_count(&self) -> usize {
        self.intervals.len()
    }

    /// Interval length.
    pub fn interval_ms(&self) -> u64 {
        self.interval_ms
    }

    /// A site's cell in interval `interval`.
    pub fn site_interval(&self, interval: usize, site: SiteId) -> Counters {
        self.intervals
            .get(interval)
            .and_then(|cells| cells.get(site.index()))
            .copied()
            .unwrap_or_default()
    }

    /// A queue's cell in interval `interval`.
    pub fn queue_interval(&self, interval: usize, site: SiteId, skill: SkillId) -> Counters {
        self.intervals
            .get(interval)
            .and_then(|cells| cells.get(self.queue_offset(site.index(), skill.index())))
            .copied()
            .unwrap_or_default()
    }

    /// A site's totals over all intervals.
    pub fn site_totals(&self, site: SiteId) -> Counters {
        let mut totals = Counters::default();
        for interval in 0..self.intervals.len() {
            totals.merge(&self.site_interval(interval, site));
        }
        totals
    }

    /// A queue's totals over all intervals.
    pub fn queue_totals(&self, site: SiteId, skill: SkillId) -> Counters {
        let mut totals = Counters::default();
        for interval in 0..self.intervals.len() {
            totals.merge(&self.queue_interval(interval, site, skill));
        }
        totals
    }

    /// All sites' totals in interval `interval`.
    pub fn interval_totals(&self, interval: usize) -> Counters {
        let mut totals = Counters::default();
        for site in 0..self.site_count {
            totals.merge(&self.site_interval(interval, SiteId(site as u16)));
        }
        totals
    }

    /// Everything: all sites, all intervals.
    pub fn totals(&self) -> Counters {
        let mut totals = Counters::default();
        for site in 0..self.site_count {
            totals.merge(&self.site_totals(SiteId(site as u16)));
        }
        totals
    }

    /// An agent's totals.
    pub fn agent_totals(&self, agent: AgentId) -> Option<AgentCounters> {
        self.agent_index
            .get(&agent)
            .map(|&index| self.agents[index].counters)
    }

    /// Span from the start of the first touched interval to the last event or `finish`.
    pub fn observed_ms(&self) -> u64 {
        let Some(first) = self.first_at else {
            return 0;
        };
        let start = first.0 / self.interval_ms * self.interval_ms;
        self.last_at.0.saturating_sub(start)
    }

    /// A serializable report with derived figures.
    pub fn report(&self) -> MetricsReport {
        let policy = self.config.service_level_policy;
        let mut intervals = Vec::with_capacity(self.intervals.len());
        for interval in 0..self.intervals.len() {
            let start_ms = interval as u64 * self.interval_ms;
            let sites = (0..self.site_count)
                .map(|site| {
                    let site = SiteId(site as u16);
                    Row::new(
                        site,
                        None,
                        self.site_interval(interval, site),
                        self.interval_ms,
                        policy,
                    )
                })
                .collect();
            let queues = self.queue_rows(
                |site, skill| self.queue_interval(interval, site, skill),
                self.interval_ms,
            );
            intervals.push(IntervalReport {
                index: interval as u32,
                start_ms,
                sites,
                queues,
            });
        }
        let span_ms = self.observed_ms();
        let sites = (0..self.site_count)
            .map(|site| {
                let site = SiteId(site as u16);
                Row::new(site, None, self.site_totals(site), span_ms, policy)
            })
            .collect();
        let queues = self.queue_rows(|site, skill| self.queue_totals(site, skill), span_ms);
        let mut agents: Vec<AgentRow> = self
            .agents
            .iter()
            .map(|track| AgentRow {
                agent: track.id,
                site: track.site,
                occupancy: track.counters.occupancy(),
                aht_ms: track.counters.aht_ms(),
                counters: track.counters,
            })
            .collect();
        agents.sort_by_key(|row| row.agent);
        let totals = self.totals();
        MetricsReport {
            interval_ms: self.interval_ms,
            service_level_target_ms: self.target_ms,
            service_level_policy: policy,
            totals: Row::new(SiteId(0), None, totals, span_ms, policy),
            intervals,
            sites,
            queues,
            agents,
        }
    }

    fn queue_rows(&self, cell: impl Fn(SiteId, SkillId) -> Counters, span_ms: u64) -> Vec<Row> {
        let policy = self.config.service_level_policy;
        let mut rows = Vec::with_capacity(self.site_count * self.skill_count);
        for site in 0..self.site_count {
            for skill in 0..self.skill_count {
                let site = SiteId(site as u16);
                let skill = SkillId(skill as u16);
                rows.push(Row::new(
                    site,
                    Some(skill),
                    cell(site, skill),
                    span_ms,
                    policy,
                ));
            }
        }
        rows
    }

    /// The interval (cell) index of `at`. Events arrive in time order, so the last answer is
    /// cached to skip a 64-bit division on nearly every event.
    #[inline]
    fn interval_of(&self, at: TimeMs) -> usize {
        self.interval_and_end(at).0
    }

    /// The interval (cell) index of `at` and where the span of `at` in that cell ends: the
    /// next interval boundary, or `u64::MAX` in the last kept interval of a non-cyclic
    /// accumulator (everything later folds into it).
    #[inline]
    fn interval_and_end(&self, at: TimeMs) -> (usize, TimeMs) {
        let (start, end, index) = self.interval_cache.get();
        if at.0 >= start && at.0 < end {
            return (index, TimeMs(end));
        }
        let raw = at.0 / self.interval_ms;
        let start = raw * self.interval_ms;
        let (index, end) = if self.cycle_intervals > 0 {
            (
                (raw % self.cycle_intervals as u64) as usize,
                start.saturating_add(self.interval_ms),
            )
        } else {
            let last = self.config.intervals_max.max(1) as usize - 1;
            if raw as usize >= last {
                (last, u64::MAX)
            } else {
                (raw as usize, start.saturating_add(self.interval_ms))
            }
        };
        self.interval_cache.set((start, end, index));
        (index, TimeMs(end))
    }

    fn queue_offset(&self, site: usize, skill: usize) -> usize {
        self.site_count + site * self.skill_count + skill
    }

    #[inline(always)]
    fn cells(&mut self, interval: usize) -> &mut Vec<Counters> {
        if interval >= self.intervals.len() {
            self.grow_intervals(interval);
        }
        &mut self.intervals[interval]
    }

    #[cold]
    fn grow_intervals(&mut self, interval: usize) {
        let width = self.site_count * (1 + self.skill_count);
        while self.intervals.len() <= interval {
            self.intervals.push(vec![Counters::default(); width]);
        }
    }

    #[inline]
    fn site_cell(&mut self, at: TimeMs, site: usize) -> &mut Counters {
        let interval = self.interval_of(at);
        &mut self.cells(interval)[site]
    }

    #[inline]
    fn queue_cell(&mut self, at: TimeMs, site: usize, skill: SkillId) -> &mut Counters {
        let interval = self.interval_of(at);
        let offset = if skill.index() < self.skill_count {
            self.queue_offset(site, skill.index())
        } else {
            // Unknown skills fold into the site cell rather than being lost or panicking.
            site
        };
        &mut self.cells(interval)[offset]
    }

    /// Updates a site cell and its queue cell of the same interval (one interval lookup).
    #[inline]
    fn cell_pair(
        &mut self,
        at: TimeMs,
        site: usize,
        skill: SkillId,
        site_update: impl Fn(&mut Counters),
        queue_update: impl Fn(&mut Counters),
    ) {
        let interval = self.interval_of(at);
        let queue =
            (skill.index() < self.skill_count).then(|| self.queue_offset(site, skill.index()));
        let row = self.cells(interval);
        site_update(&mut row[site]);
        if let Some(queue) = queue {
            queue_update(&mut row[queue]);
        }
    }

    /// Integrates the queue length up to `at`, then applies `delta`.
    fn change_queue(&mut self, at: TimeMs, site: usize, skill: SkillId, delta: i64) {
        if skill.index() >= self.skill_count {
            return;
        }
        let track_index = site * self.skill_count + skill.index();
        let track = self.queues[track_index];
        let queue_offset = self.queue_offset(site, skill.index());
        if track.length > 0 {
            let mut start = track.since;
            while start < at {
                let (interval, boundary) = self.interval_and_end(start);
                let end = boundary.min(at);
                let span = end.since(start);
                let length = track.length;
                let cells = self.cells(interval);
                cells[queue_offset].queue_length_ms_sum += length * span;
                cells[queue_offset].queue_length_max =
                    cells[queue_offset].queue_length_max.max(length);
                cells[site].queue_length_ms_sum += length * span;
                start = end;
            }
        }
        let length = (track.length as i64 + delta).max(0) as u64;
        self.queues[track_index] = QueueTrack { length, since: at };
        if delta > 0 {
            let interval = self.interval_of(at);
            let cells = self.cells(interval);
            cells[queue_offset].queue_length_max = cells[queue_offset].queue_length_max.max(length);
            let site_total: u64 = (0..self.skill_count)
                .map(|skill| self.queues[site * self.skill_count + skill].length)
                .sum();
            let cells = self.cells(interval);
            cells[site].queue_length_max = cells[site].queue_length_max.max(site_total);
        }
    }

    #[inline(always)]
    fn agent_slot(&mut self, agent: AgentId, site: SiteId, at: TimeMs) -> usize {
        if let Some(&index) = self.agent_dense.get(agent.index()) {
            if index != u32::MAX {
                return index as usize;
            }
        }
        self.agent_slot_slow(agent, site, at)
    }

    #[cold]
    fn agent_slot_slow(&mut self, agent: AgentId, site: SiteId, at: TimeMs) -> usize {
        if let Some(&index) = self.agent_index.get(&agent) {
            return index;
        }
        let index = self.agents.len();
        self.agents.push(AgentTrack {
            id: agent,
            site,
            state: AgentState::LoggedOut,
            since: at,
            counters: AgentCounters::default(),
        });
        if agent.index() < AGENT_DENSE_IDS_MAX {
            if self.agent_dense.len() <= agent.index() {
                self.agent_dense.resize(agent.index() + 1, u32::MAX);
            }
            self.agent_dense[agent.index()] = index as u32;
        }
        self.agent_index.insert(agent, index);
        index
    }

    fn agent(&mut self, agent: AgentId, site: SiteId, at: TimeMs) -> &mut AgentTrack {
        let index = self.agent_slot(agent, site, at);
        &mut self.agents[index]
    }

    /// Adds the time the agent spent in its current state up to `at`, split by interval.
    fn close_agent_span(&mut self, index: usize, at: TimeMs) {
        let track = &self.agents[index];
        let (state, since, site) = (track.state, track.since, track.site.index());
        let span_total = at.since(since);
        self.agents[index].since = at.max(since);
        if span_total == 0 {
            return;
        }
        let counters = &mut self.agents[index].counters;
        match state {
            AgentState::LoggedOut => return,
            AgentState::Available => counters.available_ms += span_total,
            AgentState::Reserved => counters.reserved_ms += span_total,
            AgentState::Busy => counters.busy_ms += span_total,
            AgentState::WrapUp => counters.wrap_up_state_ms += span_total,
            AgentState::NotReady(_) => counters.not_ready_ms += span_total,
        }
        counters.staffed_ms += span_total;
        let (cached_start, cached_end, cached_index) = self.interval_cache.get();
        if since.0 >= cached_start && at.0 <= cached_end {
            // The whole span lies in the current interval: the common case.
            let cell = &mut self.cells(cached_index)[site];
            cell.staffed_ms += span_total;
            match state {
                AgentState::Busy => cell.busy_ms += span_total,
                AgentState::WrapUp => cell.wrap_up_state_ms += span_total,
                _ => {}
            }
            return;
        }
        let mut start = since;
        while start < at {
            let (interval, boundary) = self.interval_and_end(start);
            let end = boundary.min(at);
            let span = end.since(start);
            let cell = &mut self.cells(interval)[site];
            cell.staffed_ms += span;
            match state {
                AgentState::Busy => cell.busy_ms += span,
                AgentState::WrapUp => cell.wrap_up_state_ms += span,
                _ => {}
            }
            start = end;
        }
    }
}

/// Derived figures for one cell, ready for CSV/JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Site.
    pub site: SiteId,
    /// Skill, for queue rows.
    pub skill: Option<SkillId>,
    /// Service level under the configured policy.
    pub service_level: Option<f64>,
    /// Abandoned / offered.
    pub abandon_rate: Option<f64>,
    /// Average speed of answer, ms.
    pub asa_ms: Option<f64>,
    /// Average handle time, ms.
    pub aht_ms: Option<f64>,
    /// Average wait before abandoning, ms.
    pub abandon_wait_ms_average: Option<f64>,
    /// Time-weighted average queue length.
    pub queue_length_average: Option<f64>,
    /// Occupancy (site rows only; queue rows have no agent time).
    pub occupancy: Option<f64>,
    /// The raw counts and sums.
    pub counters: Counters,
}

impl Row {
    fn new(
        site: SiteId,
        skill: Option<SkillId>,
        counters: Counters,
        span_ms: u64,
        policy: ServiceLevelPolicy,
    ) -> Row {
        Row {
            site,
            skill,
            service_level: counters.service_level(policy),
            abandon_rate: counters.abandon_rate(),
            asa_ms: counters.asa_ms(),
            aht_ms: counters.aht_ms(),
            abandon_wait_ms_average: counters.abandon_wait_ms_average(),
            queue_length_average: counters.queue_length_average(span_ms),
            occupancy: counters.occupancy(),
            counters,
        }
    }
}

/// One interval's rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntervalReport {
    /// Interval number from the epoch.
    pub index: u32,
    /// Start time.
    pub start_ms: u64,
    /// One row per site.
    pub sites: Vec<Row>,
    /// One row per (site, skill).
    pub queues: Vec<Row>,
}

/// One agent's row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentRow {
    /// Agent.
    pub agent: AgentId,
    /// Site.
    pub site: SiteId,
    /// (Busy + WrapUp) / staffed.
    pub occupancy: Option<f64>,
    /// Average handle time.
    pub aht_ms: Option<f64>,
    /// The raw counts and times.
    pub counters: AgentCounters,
}

/// Everything the metrics know, serializable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsReport {
    /// Interval length.
    pub interval_ms: u64,
    /// T of "answered within T".
    pub service_level_target_ms: u64,
    /// Denominator policy.
    pub service_level_policy: ServiceLevelPolicy,
    /// All sites, whole run.
    pub totals: Row,
    /// Per interval.
    pub intervals: Vec<IntervalReport>,
    /// Per site, whole run.
    pub sites: Vec<Row>,
    /// Per queue, whole run.
    pub queues: Vec<Row>,
    /// Per agent, whole run, by id.
    pub agents: Vec<AgentRow>,
}
