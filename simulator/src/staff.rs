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
//!
//! The closed form is computed from the scenario's *expected* rate and handle time
//! ([`crate::load`]), not from a sampled day. How many replications are pooled: by default
//! ([`REPLICATIONS_AUTO`]) enough that the median open cell pools [`POOLED_CONTACTS_MIN`]
//! contacts (a binomial standard error of its service level of about 1 point at 80%),
//! between [`REPLICATIONS_DEFAULT`] and [`REPLICATIONS_AUTO_MAX`]. The found plan is then
//! re-simulated with as many *fresh* seeds and every row states its service level as a
//! mean ± 95% confidence half-width over those replications (Student t), and the plan states
//! how many cells still meet both targets there.

// Cells × intervals index several parallel tables (plan, counters, figures, frozen flags);
// explicit indices read clearer than zipped iterators here.
#![allow(clippy::needless_range_loop)]

use std::fmt::Write as _;

use serde::Serialize;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::engine::{Engine, EngineError, SkillMap};
use crate::erlang;
use crate::load;
use crate::scenario::{Distribution, Scenario, clock_of};
use crate::stats::Estimate;
use callgrid_domain::{Counters, ServiceLevelPolicy, SiteId, SkillId};

/// Fewest replications pooled per evaluation.
pub const REPLICATIONS_DEFAULT: u32 = 8;
/// `replications` value meaning "choose from the traffic" (the CLI default).
pub const REPLICATIONS_AUTO: u32 = 0;
/// Most replications the automatic choice takes.
pub const REPLICATIONS_AUTO_MAX: u32 = 48;
/// Contacts the median open cell should pool over the replications.
pub const POOLED_CONTACTS_MIN: f64 = 1_600.0;
/// Seeds of the verification pass start this far after the search's seeds.
pub const VERIFICATION_SEED_OFFSET: u64 = 1_000_000;
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
    /// Service level reached with `agents` (verification: mean over fresh replications).
    pub service_level: f64,
    /// Half-width of the 95% confidence interval of `service_level` (Student t).
    pub service_level_half_width_95: f64,
    /// Abandonment reached with `agents` (verification, pooled).
    pub abandonment: f64,
}

/// The result of [`search`].
#[derive(Debug, Clone, Serialize)]
pub struct StaffPlan {
    /// "Erlang C" or "Erlang A".
    pub closed_form: &'static str,
    /// Replications pooled per evaluation (and run again with fresh seeds to verify).
    pub replications: u32,
    /// Simulations run.
    pub simulations: u32,
    /// Whether every cell met both targets at the end of the search.
    pub all_targets_met: bool,
    /// Open cells (group × interval with contacts).
    pub cells: usize,
    /// Of those, cells meeting both targets in the verification with fresh seeds.
    pub cells_met_in_verification: usize,
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

/// One staffing group at one site and the queues it is judged by.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Site index.
    pub site: usize,
    /// Staffing entry index at the site.
    pub entry: usize,
    /// The group's first skill (its queue).
    pub skill_name: String,
    /// The group's queue: (skill, agents one contact occupies: 1 for voice, 1/slots for chat).
    skills: Vec<(SkillId, f64)>,
}

/// Counters of every cell and interval of the day, per replication.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Per cell, per interval of the day: pooled over days and replications.
    pub counters: Vec<Vec<Counters>>,
    /// Per replication, per cell, per interval: pooled over days.
    pub per_replication: Vec<Vec<Vec<Counters>>>,
}

/// The cells (site × staffing group) of a scenario.
pub fn cells_of(scenario: &Scenario) -> Result<Vec<Cell>, EngineError> {
    let skills = SkillMap::new(scenario)?;
    let chat_share_of_agent = 1.0 / f64::from(scenario.channels.chat_slots.max(1));
    let mut cells = Vec::new();
    for (site, config) in scenario.sites.iter().enumerate() {
        for (entry, staffing) in config.staffing.iter().enumerate() {
            let name = staffing.skills.first().cloned().unwrap_or_default();
            let index = skills
                .names
                .iter()
                .position(|known| *known == name)
                .unwrap_or(0);
            let mut ids = vec![(skills.voice[index], 1.0)];
            ids.extend(skills.chat[index].map(|chat| (chat, chat_share_of_agent)));
            cells.push(Cell {
                site,
                entry,
                skill_name: name,
                skills: ids,
            });
        }
    }
    Ok(cells)
}

/// The domain's service-level policy for the scenario's.
pub fn policy_of(scenario: &Scenario) -> ServiceLevelPolicy {
    match scenario.service_level.policy {
        crate::scenario::ServiceLevelPolicy::AnsweredWithinOverOffered => {
            ServiceLevelPolicy::Offered
        }
        crate::scenario::ServiceLevelPolicy::AnsweredWithinOverOfferedMinusShortAbandons => {
            ServiceLevelPolicy::OfferedExcludingShortAbandons
        }
    }
}

/// Whether a cell's counters meet both targets (a cell without contacts does).
pub fn meets_targets(scenario: &Scenario, counters: &Counters) -> bool {
    counters.offered == 0
        || (counters.service_level(policy_of(scenario)).unwrap_or(1.0)
            >= scenario.service_level.target
            && counters.abandon_rate().unwrap_or(0.0) <= scenario.service_level.abandonment_target)
}

/// Simulates `replications` seeds `plan.seed + seed_offset + i` on all cores and collects the
/// counters of every cell per interval of the day.
pub fn evaluate(
    plan: &Scenario,
    cells: &[Cell],
    replications: u32,
    seed_offset: u64,
) -> Result<Evaluation, EngineError> {
    let intervals = plan.intervals_per_day();
    let one = |replication: u32| -> Result<Vec<Vec<Counters>>, EngineError> {
        let seed = plan
            .seed
            .wrapping_add(seed_offset)
            .wrapping_add(u64::from(replication));
        let mut engine = Engine::new(plan, seed)?;
        engine.run(None)?;
        let metrics = engine.metrics();
        let mut counters = vec![vec![Counters::default(); intervals]; cells.len()];
        for (cell_index, cell) in cells.iter().enumerate() {
            for global in 0..metrics.interval_count().min(plan.days() * intervals) {
                for (skill, _) in &cell.skills {
                    let cell_counters =
                        metrics.queue_interval(global, SiteId(cell.site as u16), *skill);
                    counters[cell_index][global % intervals].merge(&cell_counters);
                }
            }
        }
        Ok(counters)
    };
    let per_replication = parallel(replications, &one)?;
    let mut counters = vec![vec![Counters::default(); intervals]; cells.len()];
    for replication in &per_replication {
        for (cell_index, cell) in replication.iter().enumerate() {
            for (interval, cell_counters) in cell.iter().enumerate() {
                counters[cell_index][interval].merge(cell_counters);
            }
        }
    }
    Ok(Evaluation {
        counters,
        per_replication,
    })
}

/// Runs `job(0..count)` on all cores; results in index order.
fn parallel<T: Send>(
    count: u32,
    job: &(dyn Fn(u32) -> Result<T, EngineError> + Sync),
) -> Result<Vec<T>, EngineError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |threads| threads.get())
        .min(count as usize)
        .max(1);
    let next = AtomicU32::new(0);
    let slots: Mutex<Vec<Option<Result<T, EngineError>>>> =
        Mutex::new((0..count).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    let result = job(index);
                    if let Ok(mut slots) = slots.lock() {
                        slots[index as usize] = Some(result);
                    }
                }
            });
        }
    });
    slots
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .into_iter()
        .map(|slot| {
            slot.unwrap_or_else(|| {
                Err(EngineError::Unsupported(
                    "a simulation thread failed".to_owned(),
                ))
            })
        })
        .collect()
}

/// Replications for `replications` (or the automatic choice when it is [`REPLICATIONS_AUTO`])
/// given the expected contacts per open cell in one replication.
pub fn replications_for(replications: u32, contacts_per_open_cell: &[f64]) -> u32 {
    if replications != REPLICATIONS_AUTO {
        return replications.clamp(1, 1_000);
    }
    let mut sorted: Vec<f64> = contacts_per_open_cell
        .iter()
        .copied()
        .filter(|contacts| *contacts > 0.0)
        .collect();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(1.0);
    ((POOLED_CONTACTS_MIN / median).ceil() as u32)
        .clamp(REPLICATIONS_DEFAULT, REPLICATIONS_AUTO_MAX)
}

/// The scenario with every staffing entry in per-interval form from midnight, so each interval
/// is its own variable.
pub fn per_interval_form(scenario: &Scenario) -> Scenario {
    let mut plan = scenario.clone();
    for site in &mut plan.sites {
        for entry in &mut site.staffing {
            let counts = scenario.entry_agents_per_interval(entry);
            entry.start = "00:00".to_owned();
            entry.end = None;
            entry.agents = None;
            entry.per_interval = Some(counts);
        }
    }
    plan
}

fn agents_of(plan: &Scenario, cell: &Cell, interval: usize) -> u32 {
    plan.sites[cell.site].staffing[cell.entry]
        .per_interval
        .as_ref()
        .map_or(0, |counts| counts[interval])
}

fn set_agents(plan: &mut Scenario, cell: &Cell, interval: usize, agents: u32) {
    if let Some(counts) = plan.sites[cell.site].staffing[cell.entry]
        .per_interval
        .as_mut()
    {
        counts[interval] = agents.min(AGENTS_MAX);
    }
}

/// Runs the search; `replications` = [`REPLICATIONS_AUTO`] chooses from the traffic.
pub fn search(scenario: &Scenario, replications: u32) -> Result<StaffPlan, StaffError> {
    let intervals = scenario.intervals_per_day();
    let mut plan = per_interval_form(scenario);
    let cells = cells_of(scenario)?;
    // Only intervals with arrivals are searched; the rest keep their staffing (late callbacks
    // after closing are not a reason to open the site).
    let open: Vec<bool> = scenario
        .interval_shares()
        .iter()
        .map(|share| *share > 0.0)
        .collect();
    let meets = |counters: &Counters| meets_targets(scenario, counters);

    // 1. Closed-form start from the expected load.
    let patience_s_mean = match scenario.patience {
        Distribution::None => None,
        other => other.mean_s(),
    };
    let interval_s = f64::from(scenario.interval_minutes) * 60.0;
    let mut erlang_figures = vec![vec![None; intervals]; cells.len()];
    let mut contacts_per_open_cell = Vec::new();
    for (cell_index, cell) in cells.iter().enumerate() {
        let loads = load::expected_load(scenario, cell.site, &cell.skill_name);
        for interval in 0..intervals {
            let expected = loads[interval];
            if !open[interval] || expected.arrival_rate_per_s <= 0.0 {
                continue;
            }
            contacts_per_open_cell.push(expected.arrival_rate_per_s * interval_s);
            let figure = erlang::agents_required(
                expected.arrival_rate_per_s,
                expected.handle_time_s_mean().max(1.0),
                patience_s_mean,
                scenario.service_level.threshold_s,
                scenario.service_level.target,
                scenario.service_level.abandonment_target,
                AGENTS_MAX,
            );
            erlang_figures[cell_index][interval] = figure;
            if let Some(figure) = figure {
                set_agents(&mut plan, cell, interval, figure.max(1));
            }
        }
    }
    let replications = replications_for(replications, &contacts_per_open_cell);
    let mut simulations = 0u32;
    let mut run = |plan: &Scenario, seed_offset: u64| {
        simulations += replications;
        evaluate(plan, &cells, replications, seed_offset)
    };

    // 2. Raise until every cell meets its targets.
    let raise_bound = |cell_index: usize, interval: usize, agents: u32| {
        // A cell whose misses more agents do not fix (contacts stranded when the site closes,
        // a starved downstream queue) stops at a bound instead of growing for every round.
        erlang_figures[cell_index][interval]
            .unwrap_or(agents)
            .saturating_mul(2)
            + RAISE_SLACK
    };
    let raise = |plan: &mut Scenario, evaluation: &Evaluation| {
        let mut raised = false;
        for (cell_index, cell) in cells.iter().enumerate() {
            for interval in 0..intervals {
                let agents = agents_of(plan, cell, interval);
                if open[interval]
                    && agents < raise_bound(cell_index, interval, agents)
                    && !meets(&evaluation.counters[cell_index][interval])
                {
                    set_agents(plan, cell, interval, agents + 1);
                    raised = true;
                }
            }
        }
        raised
    };
    let mut evaluation = run(&plan, 0)?;
    for _ in 0..ROUNDS_MAX {
        if !raise(&mut plan, &evaluation) {
            break;
        }
        evaluation = run(&plan, 0)?;
    }

    // 3. Lower while targets still hold.
    let mut frozen = vec![vec![false; intervals]; cells.len()];
    for _ in 0..ROUNDS_MAX {
        let mut lowered = false;
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
                    lowered = true;
                }
            }
        }
        if !lowered {
            break;
        }
        let trial = run(&plan, 0)?;
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
        evaluation = if restored { run(&plan, 0)? } else { trial };
    }

    // 4. Lowering one interval can push a backlog into the next: raise once more.
    for _ in 0..ROUNDS_MAX {
        if !raise(&mut plan, &evaluation) {
            break;
        }
        evaluation = run(&plan, 0)?;
    }
    let all_targets_met = evaluation
        .counters
        .iter()
        .all(|cell| cell.iter().all(meets));

    // 5. Verify with fresh seeds and state the confidence per row.
    let verification = run(&plan, VERIFICATION_SEED_OFFSET)?;
    let (rows, cells_met_in_verification) = rows_of(
        scenario,
        &plan,
        &cells,
        &verification,
        &erlang_figures,
        &open,
    );
    let hours_per_interval = f64::from(scenario.interval_minutes) / 60.0;
    let mut agent_intervals = 0u64;
    for cell in &cells {
        for interval in 0..intervals {
            agent_intervals += u64::from(agents_of(&plan, cell, interval));
        }
    }
    let agent_intervals_erlang: u64 = rows
        .iter()
        .map(|row| u64::from(row.agents_erlang.unwrap_or(0)))
        .sum();
    Ok(StaffPlan {
        closed_form: if patience_s_mean.is_some() {
            "Erlang A"
        } else {
            "Erlang C"
        },
        replications,
        simulations,
        all_targets_met,
        cells: rows.len(),
        cells_met_in_verification,
        agent_hours: agent_intervals as f64 * hours_per_interval,
        agent_hours_erlang: agent_intervals_erlang as f64 * hours_per_interval,
        rows,
        scenario: plan,
    })
}

/// Rows of the open cells with the verification's figures, and how many meet both targets.
fn rows_of(
    scenario: &Scenario,
    plan: &Scenario,
    cells: &[Cell],
    verification: &Evaluation,
    erlang_figures: &[Vec<Option<u32>>],
    open: &[bool],
) -> (Vec<StaffRow>, usize) {
    let policy = policy_of(scenario);
    let runs = (verification.per_replication.len() * plan.days()).max(1) as f64;
    let mut rows = Vec::new();
    let mut met = 0;
    for (cell_index, cell) in cells.iter().enumerate() {
        for interval in 0..scenario.intervals_per_day() {
            let counters = &verification.counters[cell_index][interval];
            if !open[interval] || counters.offered == 0 {
                continue;
            }
            if meets_targets(scenario, counters) {
                met += 1;
            }
            let levels: Vec<f64> = verification
                .per_replication
                .iter()
                .filter_map(|replication| replication[cell_index][interval].service_level(policy))
                .collect();
            let estimate = Estimate::of(&levels);
            rows.push(StaffRow {
                site: plan.sites[cell.site].name.clone(),
                group: plan.sites[cell.site].staffing[cell.entry].skills.join("+"),
                interval_start: clock_of(interval as u32 * scenario.interval_minutes),
                offered: counters.offered as f64 / runs,
                agents: agents_of(plan, cell, interval),
                agents_erlang: erlang_figures[cell_index][interval],
                service_level: estimate.mean,
                service_level_half_width_95: estimate.half_width_95,
                abandonment: counters.abandon_rate().unwrap_or(0.0),
            });
        }
    }
    (rows, met)
}

/// Terminal table of a plan.
pub fn render(plan: &StaffPlan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "fewest agents meeting the targets per interval (simulation, {} replications pooled, {} simulations) beside {} for the expected rate",
        plan.replications, plan.simulations, plan.closed_form
    );
    let _ = writeln!(
        out,
        "{:<16} {:<20} {:>6} {:>9} {:>7} {:>7} {:>14} {:>7}",
        "site", "group", "start", "offered", "agents", "erlang", "SL % (95% CI)", "aband %"
    );
    for row in &plan.rows {
        let _ = writeln!(
            out,
            "{:<16} {:<20} {:>6} {:>9.1} {:>7} {:>7} {:>14} {:>7.2}",
            row.site,
            row.group,
            row.interval_start,
            row.offered,
            row.agents,
            row.agents_erlang
                .map_or_else(|| "-".to_owned(), |agents| agents.to_string()),
            format!(
                "{:.1} ± {:.1}",
                row.service_level * 100.0,
                row.service_level_half_width_95 * 100.0
            ),
            row.abandonment * 100.0
        );
    }
    let _ = writeln!(
        out,
        "agent-hours per day: {:.1} by simulation, {:.1} by {}; all targets met in the search: {}",
        plan.agent_hours, plan.agent_hours_erlang, plan.closed_form, plan.all_targets_met
    );
    let _ = writeln!(
        out,
        "confidence: re-simulated with {} fresh seeds, {} of {} cells meet both targets; \
         SL is the mean over those replications ± the 95% confidence half-width (Student t)",
        plan.replications, plan.cells_met_in_verification, plan.cells
    );
    out
}
