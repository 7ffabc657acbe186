//! `staff`: the fewest agents per interval, per site and staffing group, that reach the
//! scenario's service-level and abandonment targets — found by simulation, shown beside the
//! Erlang C figure (Erlang A when callers have a patience distribution).
//!
//! The search works on the whole day because intervals interact (a backlog carries over, a
//! line-2 queue is fed by line 1, overflow moves work between sites):
//!
//! 1. Start every (group, interval) at its closed-form figure, computed from the offered load
//!    and handle time a first simulation measures for the group's first skill.
//! 2. Raise: simulate (several replications pooled), add one agent wherever the group's queue
//!    misses a target, repeat until nothing misses.
//! 3. Lower: remove one agent from every cell with slack, simulate, put it back where a target
//!    is then missed and freeze that cell; repeat until nothing can be removed.
//! 4. Raise again, since a lowered interval can hand a backlog to the next one.
//!
//! Each step is bounded by [`ROUNDS_MAX`]. A group's queue is its first listed skill (voice and
//! chat queues pooled); other groups at the site that share the skill are left as they are.

// Cells × intervals index several parallel tables (plan, counters, figures, frozen flags);
// explicit indices read clearer than zipped iterators here.
#![allow(clippy::needless_range_loop)]

use std::fmt::Write as _;

use serde::Serialize;

use crate::engine::{Engine, EngineError, SkillMap};
use crate::erlang;
use crate::scenario::{Distribution, Scenario, clock_of};
use callgrid_domain::{Counters, ServiceLevelPolicy, SiteId, SkillId};

/// Replications pooled per evaluation by default.
pub const REPLICATIONS_DEFAULT: u32 = 8;
/// Bound on raise and lower rounds each.
pub const ROUNDS_MAX: usize = 40;
/// A cell is raised to at most twice its closed-form figure plus this.
pub const RAISE_SLACK: u32 = 3;
/// Bound on agents in one cell.
pub const AGENTS_MAX: u32 = 10_000;

/// One row of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct StaffRow {
    /// Site.
    pub site: String,
    /// The group's skills, joined with '+'.
    pub group: String,
    /// Interval start.
    pub interval_start: String,
    /// Contacts offered to the group's queue per replication.
    pub offered: f64,
    /// Agents found by simulation.
    pub agents: u32,
    /// Erlang C / A figure for the same load.
    pub agents_erlang: Option<u32>,
    /// Service level reached with `agents`.
    pub service_level: f64,
    /// Abandonment reached with `agents`.
    pub abandonment: f64,
}

/// The result of [`search`].
#[derive(Debug, Clone, Serialize)]
pub struct StaffPlan {
    /// "Erlang C" or "Erlang A".
    pub closed_form: &'static str,
    /// Replications pooled per evaluation.
    pub replications: u32,
    /// Simulations run.
    pub simulations: u32,
    /// Whether every cell met both targets at the end.
    pub all_targets_met: bool,
    /// Agent-hours per day, simulation plan.
    pub agent_hours: f64,
    /// Agent-hours per day, closed-form plan.
    pub agent_hours_erlang: f64,
    /// Rows with demand.
    pub rows: Vec<StaffRow>,
    /// The scenario with the found staffing (per-interval form).
    #[serde(skip)]
    pub scenario: Scenario,
}

/// Why the search failed.
#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

struct Cell {
    site: usize,
    entry: usize,
    /// The group's queue: (skill, agents one contact occupies: 1 for voice, 1/slots for chat).
    skills: Vec<(SkillId, f64)>,
}

struct Evaluation {
    /// Per cell, per interval of the day: pooled counters over days and replications.
    counters: Vec<Vec<Counters>>,
    /// Per cell, per interval: offered agent-seconds (handle time × share of an agent).
    work_s: Vec<Vec<f64>>,
}

/// Runs the search.
pub fn search(scenario: &Scenario, replications: u32) -> Result<StaffPlan, StaffError> {
    let replications = replications.clamp(1, 1_000);
    let intervals = scenario.intervals_per_day();
    let mut plan = scenario.clone();
    // Every entry becomes per-interval from midnight so each interval is its own variable.
    for site in &mut plan.sites {
        for entry in &mut site.staffing {
            let counts = scenario.entry_agents_per_interval(entry);
            entry.start = "00:00".to_owned();
            entry.end = None;
            entry.agents = None;
            entry.per_interval = Some(counts);
        }
    }
    let skills = SkillMap::new(scenario)?;
    let cells: Vec<Cell> = plan
        .sites
        .iter()
        .enumerate()
        .flat_map(|(site, config)| {
            let skills = &skills;
            config
                .staffing
                .iter()
                .enumerate()
                .map(move |(entry, staffing)| {
                    let name = staffing.skills.first().cloned().unwrap_or_default();
                    let index = skills
                        .names
                        .iter()
                        .position(|known| *known == name)
                        .unwrap_or(0);
                    let chat_share_of_agent = 1.0 / f64::from(scenario.channels.chat_slots.max(1));
                    let mut ids = vec![(skills.voice[index], 1.0)];
                    ids.extend(skills.chat[index].map(|chat| (chat, chat_share_of_agent)));
                    Cell {
                        site,
                        entry,
                        skills: ids,
                    }
                })
        })
        .collect();
    let policy = match scenario.service_level.policy {
        crate::scenario::ServiceLevelPolicy::AnsweredWithinOverOffered => {
            ServiceLevelPolicy::Offered
        }
        crate::scenario::ServiceLevelPolicy::AnsweredWithinOverOfferedMinusShortAbandons => {
            ServiceLevelPolicy::OfferedExcludingShortAbandons
        }
    };
    // Only intervals with arrivals are searched; the rest keep their staffing (late callbacks
    // after closing are not a reason to open the site).
    let open: Vec<bool> = scenario
        .interval_shares()
        .iter()
        .map(|share| *share > 0.0)
        .collect();
    let target_service_level = scenario.service_level.target;
    let target_abandonment = scenario.service_level.abandonment_target;
    let meets = |counters: &Counters| {
        counters.offered == 0
            || (counters.service_level(policy).unwrap_or(1.0) >= target_service_level
                && counters.abandon_rate().unwrap_or(0.0) <= target_abandonment)
    };
    let mut simulations = 0u32;
    let mut evaluate = |plan: &Scenario| -> Result<Evaluation, StaffError> {
        let mut counters = vec![vec![Counters::default(); intervals]; cells.len()];
        let mut work_s = vec![vec![0.0; intervals]; cells.len()];
        for replication in 0..replications {
            let mut engine = Engine::new(plan, plan.seed.wrapping_add(u64::from(replication)))?;
            engine.run(None)?;
            simulations += 1;
            let metrics = engine.metrics();
            for (cell_index, cell) in cells.iter().enumerate() {
                for global in 0..metrics.interval_count().min(plan.days() * intervals) {
                    for (skill, agent_share) in &cell.skills {
                        let cell_counters =
                            metrics.queue_interval(global, SiteId(cell.site as u16), *skill);
                        let handle_s = cell_counters.aht_ms().unwrap_or(0.0) / 1000.0;
                        work_s[cell_index][global % intervals] +=
                            cell_counters.offered as f64 * handle_s * agent_share;
                        counters[cell_index][global % intervals].merge(&cell_counters);
                    }
                }
            }
        }
        Ok(Evaluation { counters, work_s })
    };
    let agents_of = |plan: &Scenario, cell: &Cell, interval: usize| -> u32 {
        plan.sites[cell.site].staffing[cell.entry]
            .per_interval
            .as_ref()
            .map_or(0, |counts| counts[interval])
    };
    let set_agents = |plan: &mut Scenario, cell: &Cell, interval: usize, agents: u32| {
        if let Some(counts) = plan.sites[cell.site].staffing[cell.entry]
            .per_interval
            .as_mut()
        {
            counts[interval] = agents.min(AGENTS_MAX);
        }
    };

    // 1. Closed-form start from the measured load.
    let patience_s_mean = match scenario.patience {
        Distribution::None => None,
        other => other.mean_s(),
    };
    let interval_s = f64::from(scenario.interval_minutes) * 60.0;
    let baseline = evaluate(&plan)?;
    let runs = (replications as usize * plan.days()) as f64;
    let mut erlang_figures = vec![vec![None; intervals]; cells.len()];
    for (cell_index, cell) in cells.iter().enumerate() {
        for interval in 0..intervals {
            let counters = &baseline.counters[cell_index][interval];
            if counters.offered == 0 {
                continue;
            }
            // One M/M/n(+M) queue with the group's pooled load: a chat counts as the share of an
            // agent it occupies, so the load is in agent-seconds per second (erlangs).
            let arrival_rate_per_s = counters.offered as f64 / runs / interval_s;
            let load_erlangs = baseline.work_s[cell_index][interval] / runs / interval_s;
            let handle_time_s_mean = (load_erlangs / arrival_rate_per_s).max(1.0);
            let figure = erlang::agents_required(
                arrival_rate_per_s,
                handle_time_s_mean,
                patience_s_mean,
                scenario.service_level.threshold_s,
                target_service_level,
                target_abandonment,
                AGENTS_MAX,
            );
            erlang_figures[cell_index][interval] = figure;
            if let Some(figure) = figure {
                set_agents(&mut plan, cell, interval, figure.max(1));
            }
        }
    }

    // 2. Raise until every cell meets its targets.
    let mut evaluation = evaluate(&plan)?;
    for _ in 0..ROUNDS_MAX {
        let mut raised = false;
        for (cell_index, cell) in cells.iter().enumerate() {
            for interval in 0..intervals {
                let agents = agents_of(&plan, cell, interval);
                // A cell whose misses more agents do not fix (contacts stranded when the
                // site closes, a starved downstream queue) stops at a bound instead of growing
                // for every round.
                let bound = erlang_figures[cell_index][interval]
                    .unwrap_or(agents)
                    .saturating_mul(2)
                    + RAISE_SLACK;
                if open[interval]
                    && agents < bound
                    && !meets(&evaluation.counters[cell_index][interval])
                {
                    set_agents(&mut plan, cell, interval, agents + 1);
                    raised = true;
                }
            }
        }
        if !raised {
            break;
        }
        evaluation = evaluate(&plan)?;
    }

    // 3. Lower while targets still hold.
    let mut frozen = vec![vec![false; intervals]; cells.len()];
    for _ in 0..ROUNDS_MAX {
        let mut lowered = Vec::new();
        for (cell_index, cell) in cells.iter().enumerate() {
            for interval in 0..intervals {
                let agents = agents_of(&plan, cell, interval);
                let counters = &evaluation.counters[cell_index][interval];
                if !frozen[cell_index][interval]
                    && agents > 1
                    && counters.offered > 0
                    && meets(counters)
                {
                    set_agents(&mut plan, cell, interval, agents - 1);
                    lowered.push((cell_index, interval));
                }
            }
        }
        if lowered.is_empty() {
            break;
        }
        let trial = evaluate(&plan)?;
        let mut restored = false;
        for (cell_index, cell) in cells.iter().enumerate() {
            for interval in 0..intervals {
                if !meets(&trial.counters[cell_index][interval]) {
                    let agents = agents_of(&plan, cell, interval);
                    set_agents(&mut plan, cell, interval, agents + 1);
                    frozen[cell_index][interval] = true;
                    restored = true;
                }
            }
        }
        evaluation = if restored { evaluate(&plan)? } else { trial };
    }

    // 4. Lowering one interval can push a backlog into the next: raise once more.
    for _ in 0..ROUNDS_MAX {
        let mut raised = false;
        for (cell_index, cell) in cells.iter().enumerate() {
            for interval in 0..intervals {
                let agents = agents_of(&plan, cell, interval);
                // A cell whose misses more agents do not fix (contacts stranded when the
                // site closes, a starved downstream queue) stops at a bound instead of growing
                // for every round.
                let bound = erlang_figures[cell_index][interval]
                    .unwrap_or(agents)
                    .saturating_mul(2)
                    + RAISE_SLACK;
                if open[interval]
                    && agents < bound
                    && !meets(&evaluation.counters[cell_index][interval])
                {
                    set_agents(&mut plan, cell, interval, agents + 1);
                    raised = true;
                }
            }
        }
        if !raised {
            break;
        }
        evaluation = evaluate(&plan)?;
    }

    let all_targets_met = evaluation
        .counters
        .iter()
        .all(|cell| cell.iter().all(meets));
    let mut rows = Vec::new();
    let mut agent_intervals = 0u64;
    let mut agent_intervals_erlang = 0u64;
    for (cell_index, cell) in cells.iter().enumerate() {
        for interval in 0..intervals {
            let agents = agents_of(&plan, cell, interval);
            agent_intervals += u64::from(agents);
            let counters = &evaluation.counters[cell_index][interval];
            if !open[interval] || counters.offered == 0 {
                continue;
            }
            agent_intervals_erlang += u64::from(erlang_figures[cell_index][interval].unwrap_or(0));
            rows.push(StaffRow {
                site: plan.sites[cell.site].name.clone(),
                group: plan.sites[cell.site].staffing[cell.entry].skills.join("+"),
                interval_start: clock_of(interval as u32 * scenario.interval_minutes),
                offered: counters.offered as f64 / runs,
                agents,
                agents_erlang: erlang_figures[cell_index][interval],
                service_level: counters.service_level(policy).unwrap_or(f64::NAN),
                abandonment: counters.abandon_rate().unwrap_or(0.0),
            });
        }
    }
    let hours_per_interval = f64::from(scenario.interval_minutes) / 60.0;
    Ok(StaffPlan {
        closed_form: if patience_s_mean.is_some() {
            "Erlang A"
        } else {
            "Erlang C"
        },
        replications,
        simulations,
        all_targets_met,
        agent_hours: agent_intervals as f64 * hours_per_interval,
        agent_hours_erlang: agent_intervals_erlang as f64 * hours_per_interval,
        rows,
        scenario: plan,
    })
}

/// Terminal table of a plan.
pub fn render(plan: &StaffPlan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "fewest agents meeting the targets per interval (simulation, {} replications pooled, {} simulations) beside {}",
        plan.replications, plan.simulations, plan.closed_form
    );
    let _ = writeln!(
        out,
        "{:<16} {:<20} {:>6} {:>9} {:>7} {:>7} {:>7} {:>7}",
        "site", "group", "start", "offered", "agents", "erlang", "SL %", "aband %"
    );
    for row in &plan.rows {
        let _ = writeln!(
            out,
            "{:<16} {:<20} {:>6} {:>9.1} {:>7} {:>7} {:>7.1} {:>7.2}",
            row.site,
            row.group,
            row.interval_start,
            row.offered,
            row.agents,
            row.agents_erlang
                .map_or_else(|| "-".to_owned(), |agents| agents.to_string()),
            row.service_level * 100.0,
            row.abandonment * 100.0
        );
    }
    let _ = writeln!(
        out,
        "agent-hours per day: {:.1} by simulation, {:.1} by {}; all targets met: {}",
        plan.agent_hours, plan.agent_hours_erlang, plan.closed_form, plan.all_targets_met
    );
    out
}
