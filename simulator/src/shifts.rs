//! Shift plans at least cost: `staff --shifts shifts.toml`.
//!
//! 1. The per-interval minimum per site and staffing group comes from [`staff::search`]
//!    (simulation; it meets the SL and abandonment targets in every interval).
//! 2. For each group with allowed shift patterns, an integer program chooses how many agents
//!    start on each (pattern, start time): minimise `Σ cost(shift) · agents(shift)` subject to
//!    `Σ agents(shifts covering interval i) ≥ minimum(i)` for every interval with demand, agents
//!    integer ≥ 0. A shift covers the intervals from its start for its length except its
//!    breaks. Solved by `microlp` (pure-Rust simplex with branch and bound); the answer is
//!    checked to cover every minimum (an invariant) and, in the tests, against exhaustive
//!    enumeration on small cases.
//! 3. The plan is simulated with fresh seeds; a group-interval that misses a target has its
//!    minimum raised by one and the program is solved again (at most [`VERIFY_ROUNDS_MAX`]).
//!
//! Groups without patterns keep the per-interval minimum of step 1 and are costed at
//! `hourly_cost` per agent-hour like the others.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::EngineError;
use crate::scenario::{MINUTES_PER_DAY, Scenario, clock_of};
use crate::staff::{self, Cell, StaffPlan};

/// Re-solves after a verification miss, at most.
pub const VERIFY_ROUNDS_MAX: usize = 6;
/// Bound on agents on one shift.
pub const AGENTS_PER_SHIFT_MAX: u32 = 10_000;
/// Bound on patterns in a file.
pub const PATTERNS_MAX: usize = 500;

/// The shifts file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftsConfig {
    /// Cost of one agent-hour (breaks included: a shift is paid for its whole length).
    pub hourly_cost: f64,
    /// Allowed patterns.
    pub patterns: Vec<PatternConfig>,
}

/// One allowed shift pattern for one site and staffing group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternConfig {
    /// Name shown in the plan.
    pub name: String,
    /// Site name.
    pub site: String,
    /// Skills of the staffing group at that site (exactly as in the scenario).
    pub skills: Vec<String>,
    /// Allowed start times "HH:MM" on interval boundaries.
    pub starts: Vec<String>,
    /// Shift length, hours (a whole number of intervals; must end by midnight).
    pub length_h: f64,
    /// Breaks: offset from the shift start and length.
    #[serde(default)]
    pub breaks: Vec<BreakConfig>,
    /// Overrides the file's hourly cost for this pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly_cost: Option<f64>,
}

/// A break inside a shift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakConfig {
    /// Hours after the shift start.
    pub after_h: f64,
    /// Minutes (a whole number of intervals).
    pub length_min: u32,
}

/// Why a shift plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ShiftError {
    /// The file could not be read.
    #[error("cannot read shifts file {path}: {source}")]
    Read {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML syntax, unknown key or wrong type.
    #[error("{path}: {source}")]
    Parse {
        /// Path.
        path: String,
        /// Cause (names the key and the line).
        source: toml::de::Error,
    },
    /// A pattern is not meaningful for the scenario.
    #[error("shifts file: patterns[{index}] ({name}): {message}")]
    Invalid {
        /// Pattern index.
        index: usize,
        /// Pattern name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The file as a whole is not meaningful.
    #[error("shifts file: {0}")]
    File(String),
    /// Some interval with demand is covered by no pattern.
    #[error("{site} {group}: no pattern covers {interval}, which needs {agents} agents")]
    Uncovered {
        /// Site.
        site: String,
        /// Group skills.
        group: String,
        /// Interval start.
        interval: String,
        /// Agents needed.
        agents: u32,
    },
    /// The solver failed.
    #[error("integer program for {site} {group}: {message}")]
    Solver {
        /// Site.
        site: String,
        /// Group.
        group: String,
        /// The solver's message.
        message: String,
    },
    /// The staffing search or a simulation failed.
    #[error(transparent)]
    Staff(#[from] staff::StaffError),
    /// A simulation failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// One concrete shift: a pattern at one start, as interval coverage of the day.
#[derive(Debug, Clone, PartialEq)]
pub struct Shift {
    /// Pattern index in the file.
    pub pattern: usize,
    /// Start, minutes after midnight.
    pub start_minutes: u32,
    /// Cost of one agent on it.
    pub cost: f64,
    /// Whether the agent works in each interval of the day.
    pub covers: Vec<bool>,
}

impl ShiftsConfig {
    /// Reads and parses a shifts file (checked against a scenario by [`ShiftsConfig::shifts`]).
    pub fn from_file(path: &Path) -> Result<ShiftsConfig, ShiftError> {
        let text = std::fs::read_to_string(path).map_err(|source| ShiftError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ShiftError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// Every (pattern, start) as coverage, checked against `scenario`; per pattern the cell
    /// index (site × staffing group) it staffs.
    pub fn shifts(
        &self,
        scenario: &Scenario,
        cells: &[Cell],
    ) -> Result<Vec<(usize, Shift)>, ShiftError> {
        if !self.hourly_cost.is_finite() || self.hourly_cost < 0.0 {
            return Err(ShiftError::File(format!(
                "hourly_cost must be a finite number ≥ 0, got {}",
                self.hourly_cost
            )));
        }
        if self.patterns.is_empty() || self.patterns.len() > PATTERNS_MAX {
            return Err(ShiftError::File(format!(
                "needs 1 to {PATTERNS_MAX} patterns"
            )));
        }
        let interval_minutes = scenario.interval_minutes;
        let mut shifts = Vec::new();
        for (index, pattern) in self.patterns.iter().enumerate() {
            let invalid = |message: String| ShiftError::Invalid {
                index,
                name: pattern.name.clone(),
                message,
            };
            let cell = cells
                .iter()
                .position(|cell| {
                    scenario.sites[cell.site].name == pattern.site
                        && scenario.sites[cell.site].staffing[cell.entry].skills == pattern.skills
                })
                .ok_or_else(|| {
                    invalid(format!(
                        "site `{}` has no staffing group with skills {:?}",
                        pattern.site, pattern.skills
                    ))
                })?;
            let cost_per_hour = pattern.hourly_cost.unwrap_or(self.hourly_cost);
            if !cost_per_hour.is_finite() || cost_per_hour < 0.0 {
                return Err(invalid(format!(
                    "hourly_cost must be a finite number ≥ 0, got {cost_per_hour}"
                )));
            }
            let length_minutes = whole_intervals(pattern.length_h * 60.0, interval_minutes)
                .filter(|minutes| *minutes > 0)
                .ok_or_else(|| {
                    invalid(format!(
                        "length_h {} is not a positive whole number of {interval_minutes}-minute intervals",
                        pattern.length_h
                    ))
                })?;
            if pattern.starts.is_empty() {
                return Err(invalid("needs at least one start time".to_owned()));
            }
            let mut breaks = Vec::new();
            for item in &pattern.breaks {
                let offset = whole_intervals(item.after_h * 60.0, interval_minutes);
                let length = whole_intervals(f64::from(item.length_min), interval_minutes);
                match (offset, length) {
                    (Some(offset), Some(length))
                        if length > 0 && offset > 0 && offset + length < length_minutes =>
                    {
                        breaks.push((offset, length));
                    }
                    _ => {
                        return Err(invalid(format!(
                            "break after {} h for {} min must lie inside the shift on {interval_minutes}-minute boundaries",
                            item.after_h, item.length_min
                        )));
                    }
                }
            }
            for start in &pattern.starts {
                let start_minutes = scenario
                    .interval_of(start)
                    .map_err(|message| invalid(format!("start: {message}")))?
                    as u32
                    * interval_minutes;
                if start_minutes + length_minutes > MINUTES_PER_DAY {
                    return Err(invalid(format!(
                        "a shift from {start} for {} h runs past midnight",
                        pattern.length_h
                    )));
                }
                let mut covers = vec![false; scenario.intervals_per_day()];
                for minute in (start_minutes..start_minutes + length_minutes)
                    .step_by(interval_minutes as usize)
                {
                    let offset = minute - start_minutes;
                    let on_break = breaks
                        .iter()
                        .any(|(from, length)| offset >= *from && offset < from + length);
                    covers[(minute / interval_minutes) as usize] = !on_break;
                }
                shifts.push((
                    cell,
                    Shift {
                        pattern: index,
                        start_minutes,
                        cost: cost_per_hour * f64::from(length_minutes) / 60.0,
                        covers,
                    },
                ));
            }
        }
        Ok(shifts)
    }
}

/// `minutes` as a whole number of intervals, in minutes (None if it is not one).
fn whole_intervals(minutes: f64, interval_minutes: u32) -> Option<u32> {
    let rounded = minutes.round();
    (minutes.is_finite()
        && minutes >= 0.0
        && (minutes - rounded).abs() < 1e-6
        && rounded <= f64::from(MINUTES_PER_DAY)
        && (rounded as u32) % interval_minutes == 0)
        .then_some(rounded as u32)
}

/// Least-cost agents per shift covering `minimum` per interval: an integer program solved by
/// microlp. Errors name the first interval no shift covers.
pub fn solve_cover(shifts: &[&Shift], minimum: &[u32]) -> Result<Vec<u32>, String> {
    use microlp::{ComparisonOp, OptimizationDirection, Problem};
    if let Some(interval) = minimum.iter().enumerate().position(|(interval, need)| {
        *need > 0 && !shifts.iter().any(|shift| shift.covers[interval])
    }) {
        return Err(format!("uncovered interval {interval}"));
    }
    if shifts.is_empty() {
        return Ok(Vec::new());
    }
    let need_max = minimum
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .min(AGENTS_PER_SHIFT_MAX);
    let mut problem = Problem::new(OptimizationDirection::Minimize);
    let variables: Vec<_> = shifts
        .iter()
        .map(|shift| problem.add_integer_var(shift.cost, (0, need_max as i32)))
        .collect();
    for (interval, need) in minimum.iter().enumerate() {
        if *need == 0 {
            continue;
        }
        let terms: Vec<_> = shifts
            .iter()
            .zip(&variables)
            .filter(|(shift, _)| shift.covers[interval])
            .map(|(_, variable)| (*variable, 1.0))
            .collect();
        problem.add_constraint(terms.as_slice(), ComparisonOp::Ge, f64::from(*need));
    }
    // microlp documents that it may panic on some hard problems: that is an error for this
    // group, not a crash of the planner.
    let solution = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| problem.solve()))
        .map_err(|_| "the solver panicked".to_owned())?
        .map_err(|error| error.to_string())?;
    let agents: Vec<u32> = variables
        .iter()
        .map(|variable| solution[*variable].round().max(0.0) as u32)
        .collect();
    // The rounded integer answer must cover every minimum (solver tolerance guard).
    let coverage = coverage(shifts, &agents, minimum.len());
    if let Some(interval) =
        (0..minimum.len()).find(|interval| coverage[*interval] < minimum[*interval])
    {
        return Err(format!(
            "solver answer leaves interval {interval} short ({} < {})",
            coverage[interval], minimum[interval]
        ));
    }
    Ok(agents)
}

/// Agents working per interval given agents per shift.
pub fn coverage(shifts: &[&Shift], agents: &[u32], intervals: usize) -> Vec<u32> {
    let mut working = vec![0u32; intervals];
    for (shift, count) in shifts.iter().zip(agents) {
        for (interval, covered) in shift.covers.iter().enumerate() {
            if *covered {
                working[interval] += count;
            }
        }
    }
    working
}

/// One line of the plan: agents starting a pattern at a time.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedShift {
    /// Site.
    pub site: String,
    /// Group skills joined with '+'.
    pub group: String,
    /// Pattern name.
    pub pattern: String,
    /// Start "HH:MM".
    pub start: String,
    /// Agents.
    pub agents: u32,
    /// Their cost.
    pub cost: f64,
}

/// One interval of one group: the minimum, the scheduled agents and the slack.
#[derive(Debug, Clone, Serialize)]
pub struct IntervalSlack {
    /// Site.
    pub site: String,
    /// Group.
    pub group: String,
    /// Interval start.
    pub interval_start: String,
    /// Per-interval minimum (simulation, plus verification raises).
    pub minimum: u32,
    /// Agents the shifts put there.
    pub scheduled: u32,
    /// scheduled − minimum.
    pub slack: i64,
    /// Service level in the verification run (mean over fresh seeds).
    pub service_level: Option<f64>,
    /// Abandonment in the verification run.
    pub abandonment: Option<f64>,
}

/// The result of [`plan`].
#[derive(Debug, Clone, Serialize)]
pub struct ShiftPlan {
    /// Shifts with agents.
    pub shifts: Vec<PlannedShift>,
    /// Total cost of the plan per day.
    pub cost: f64,
    /// Cost of staffing every group at its peak minimum in all its open intervals, with the
    /// same patterns (the least-cost cover of that flat requirement).
    pub cost_peak_staffing: f64,
    /// Cost of the per-interval minimum itself (a lower bound no shift plan can beat).
    pub cost_per_interval_minimum: f64,
    /// Per group and interval with demand.
    pub intervals: Vec<IntervalSlack>,
    /// Group-intervals meeting both targets in the verification.
    pub cells_met: usize,
    /// Group-intervals with demand.
    pub cells: usize,
    /// Re-solves after verification misses.
    pub verify_rounds: usize,
    /// Replications per verification.
    pub replications: u32,
    /// The per-interval search it started from.
    #[serde(skip)]
    pub minimum: StaffPlan,
    /// The scenario staffed by the shifts.
    #[serde(skip)]
    pub scenario: Scenario,
}

/// Plans shifts for `scenario` from `config`.
pub fn plan(
    scenario: &Scenario,
    config: &ShiftsConfig,
    replications: u32,
) -> Result<ShiftPlan, ShiftError> {
    let cells = staff::cells_of(scenario)?;
    let shifts = config.shifts(scenario, &cells)?;
    let minimum_plan = staff::search(scenario, replications)?;
    let replications = minimum_plan.replications;
    let intervals = scenario.intervals_per_day();
    let open: Vec<bool> = scenario
        .interval_shares()
        .iter()
        .map(|share| *share > 0.0)
        .collect();
    let mut minimum: Vec<Vec<u32>> = cells
        .iter()
        .map(|cell| {
            let counts = minimum_plan.scenario.sites[cell.site].staffing[cell.entry]
                .per_interval
                .clone()
                .unwrap_or_default();
            (0..intervals)
                .map(|interval| {
                    if open[interval] {
                        counts.get(interval).copied().unwrap_or(0)
                    } else {
                        0
                    }
                })
                .collect()
        })
        .collect();
    let group_name = |cell: &Cell| {
        scenario.sites[cell.site].staffing[cell.entry]
            .skills
            .join("+")
    };
    let mut verify_rounds = 0;
    loop {
        let mut staffed = staff::per_interval_form(scenario);
        let mut agents_per_shift = vec![0u32; shifts.len()];
        for (cell_index, cell) in cells.iter().enumerate() {
            let indices: Vec<usize> = (0..shifts.len())
                .filter(|index| shifts[*index].0 == cell_index)
                .collect();
            let working = if indices.is_empty() {
                minimum[cell_index].clone()
            } else {
                let own: Vec<&Shift> = indices.iter().map(|index| &shifts[*index].1).collect();
                let agents = solve_cover(&own, &minimum[cell_index]).map_err(|message| match (0
                    ..intervals)
                    .find(|interval| {
                        minimum[cell_index][*interval] > 0
                            && !own.iter().any(|shift| shift.covers[*interval])
                    }) {
                    Some(interval) => ShiftError::Uncovered {
                        site: scenario.sites[cell.site].name.clone(),
                        group: group_name(cell),
                        interval: clock_of(interval as u32 * scenario.interval_minutes),
                        agents: minimum[cell_index][interval],
                    },
                    None => ShiftError::Solver {
                        site: scenario.sites[cell.site].name.clone(),
                        group: group_name(cell),
                        message,
                    },
                })?;
                for (index, count) in indices.iter().zip(&agents) {
                    agents_per_shift[*index] = *count;
                }
                coverage(&own, &agents, intervals)
            };
            staffed.sites[cell.site].staffing[cell.entry].per_interval = Some(working);
        }
        let verification = staff::evaluate(
            &staffed,
            &cells,
            replications,
            staff::VERIFICATION_SEED_OFFSET,
        )?;
        let mut raised = false;
        if verify_rounds < VERIFY_ROUNDS_MAX {
            for (cell_index, cell_minimum) in minimum.iter_mut().enumerate() {
                for interval in 0..intervals {
                    if open[interval]
                        && !staff::meets_targets(
                            scenario,
                            &verification.counters[cell_index][interval],
                        )
                    {
                        cell_minimum[interval] += 1;
                        raised = true;
                    }
                }
            }
        }
        if raised {
            verify_rounds += 1;
            continue;
        }
        return Ok(finish(
            scenario,
            config,
            &cells,
            &shifts,
            &agents_per_shift,
            &minimum,
            &verification,
            staffed,
            minimum_plan,
            verify_rounds,
        ));
    }
}

#[allow(clippy::too_many_arguments)]
fn finish(
    scenario: &Scenario,
    config: &ShiftsConfig,
    cells: &[Cell],
    shifts: &[(usize, Shift)],
    agents_per_shift: &[u32],
    minimum: &[Vec<u32>],
    verification: &staff::Evaluation,
    staffed: Scenario,
    minimum_plan: StaffPlan,
    verify_rounds: usize,
) -> ShiftPlan {
    let hours_per_interval = f64::from(scenario.interval_minutes) / 60.0;
    let group_name = |cell: &Cell| {
        scenario.sites[cell.site].staffing[cell.entry]
            .skills
            .join("+")
    };
    let mut planned = Vec::new();
    let mut cost = 0.0;
    for ((cell_index, shift), agents) in shifts.iter().zip(agents_per_shift) {
        if *agents == 0 {
            continue;
        }
        let cell = &cells[*cell_index];
        cost += shift.cost * f64::from(*agents);
        planned.push(PlannedShift {
            site: scenario.sites[cell.site].name.clone(),
            group: group_name(cell),
            pattern: config.patterns[shift.pattern].name.clone(),
            start: clock_of(shift.start_minutes),
            agents: *agents,
            cost: shift.cost * f64::from(*agents),
        });
    }
    let policy = staff::policy_of(scenario);
    let mut rows = Vec::new();
    let mut cells_met = 0;
    let mut cost_peak = 0.0;
    let mut cost_minimum = 0.0;
    for (cell_index, cell) in cells.iter().enumerate() {
        let has_shifts = shifts.iter().any(|(index, _)| *index == cell_index);
        let scheduled = staffed.sites[cell.site].staffing[cell.entry]
            .per_interval
            .clone()
            .unwrap_or_default();
        cost_peak += peak_cost(
            shifts,
            cell_index,
            &minimum[cell_index],
            hours_per_interval * config.hourly_cost,
        );
        let minimum_hours = minimum[cell_index]
            .iter()
            .map(|need| f64::from(*need))
            .sum::<f64>()
            * hours_per_interval;
        cost_minimum += minimum_hours * config.hourly_cost;
        if !has_shifts {
            cost += minimum_hours * config.hourly_cost;
        }
        for (interval, need) in minimum[cell_index].iter().enumerate() {
            if *need == 0 {
                continue;
            }
            let counters = &verification.counters[cell_index][interval];
            if staff::meets_targets(scenario, counters) {
                cells_met += 1;
            }
            let agents = scheduled.get(interval).copied().unwrap_or(0);
            rows.push(IntervalSlack {
                site: scenario.sites[cell.site].name.clone(),
                group: group_name(cell),
                interval_start: clock_of(interval as u32 * scenario.interval_minutes),
                minimum: *need,
                scheduled: agents,
                slack: i64::from(agents) - i64::from(*need),
                service_level: counters.service_level(policy),
                abandonment: counters.abandon_rate(),
            });
        }
    }
    ShiftPlan {
        shifts: planned,
        cost,
        cost_peak_staffing: cost_peak,
        cost_per_interval_minimum: cost_minimum,
        cells: rows.len(),
        intervals: rows,
        cells_met,
        verify_rounds,
        replications: minimum_plan.replications,
        minimum: minimum_plan,
        scenario: staffed,
    }
}

/// Cost of staffing a group at its peak minimum in every interval with demand, with the same
/// patterns (the least-cost cover of that flat requirement); a group without patterns pays
/// the peak for every such interval at `interval_cost` per agent.
fn peak_cost(
    shifts: &[(usize, Shift)],
    cell_index: usize,
    minimum: &[u32],
    interval_cost: f64,
) -> f64 {
    let peak = minimum.iter().copied().max().unwrap_or(0);
    let flat: Vec<u32> = minimum
        .iter()
        .map(|need| if *need > 0 { peak } else { 0 })
        .collect();
    let own: Vec<&Shift> = shifts
        .iter()
        .filter(|(index, _)| *index == cell_index)
        .map(|(_, shift)| shift)
        .collect();
    let flat_hours_cost = flat.iter().map(|need| f64::from(*need)).sum::<f64>() * interval_cost;
    if own.is_empty() {
        return flat_hours_cost;
    }
    match solve_cover(&own, &flat) {
        Ok(agents) => own
            .iter()
            .zip(&agents)
            .map(|(shift, count)| shift.cost * f64::from(*count))
            .sum(),
        Err(_) => flat_hours_cost,
    }
}

/// Terminal rendering of a shift plan.
pub fn render(plan: &ShiftPlan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "shift plan (least cost covering the simulated per-interval minimum)"
    );
    let _ = writeln!(
        out,
        "{:<16} {:<20} {:<20} {:>6} {:>7} {:>10}",
        "site", "group", "pattern", "start", "agents", "cost"
    );
    for shift in &plan.shifts {
        let _ = writeln!(
            out,
            "{:<16} {:<20} {:<20} {:>6} {:>7} {:>10.2}",
            shift.site, shift.group, shift.pattern, shift.start, shift.agents, shift.cost
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<16} {:<20} {:>6} {:>8} {:>10} {:>6} {:>7} {:>8}",
        "site", "group", "start", "minimum", "scheduled", "slack", "SL %", "aband %"
    );
    for row in &plan.intervals {
        let _ = writeln!(
            out,
            "{:<16} {:<20} {:>6} {:>8} {:>10} {:>6} {:>7} {:>8}",
            row.site,
            row.group,
            row.interval_start,
            row.minimum,
            row.scheduled,
            row.slack,
            row.service_level
                .map_or_else(|| "-".to_owned(), |value| format!("{:.1}", value * 100.0)),
            row.abandonment
                .map_or_else(|| "-".to_owned(), |value| format!("{:.2}", value * 100.0)),
        );
    }
    let _ = writeln!(
        out,
        "cost per day: {:.2} (the same patterns staffing every interval at the group's peak: {:.2}; the per-interval minimum itself, without shift constraints: {:.2})",
        plan.cost, plan.cost_peak_staffing, plan.cost_per_interval_minimum
    );
    let _ = writeln!(
        out,
        "verified with {} fresh replications: {} of {} group-intervals meet both targets ({} re-solves)",
        plan.replications, plan.cells_met, plan.cells, plan.verify_rounds
    );
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn shift(cost: f64, covers: &[u8]) -> Shift {
        Shift {
            pattern: 0,
            start_minutes: 0,
            cost,
            covers: covers.iter().map(|flag| *flag == 1).collect(),
        }
    }

    /// Exhaustive search over 0..=bound agents per shift.
    fn brute_force(shifts: &[&Shift], minimum: &[u32], bound: u32) -> f64 {
        let mut best = f64::INFINITY;
        let mut agents = vec![0u32; shifts.len()];
        loop {
            let working = coverage(shifts, &agents, minimum.len());
            if working.iter().zip(minimum).all(|(have, need)| have >= need) {
                let cost: f64 = shifts
                    .iter()
                    .zip(&agents)
                    .map(|(shift, count)| shift.cost * f64::from(*count))
                    .sum();
                best = best.min(cost);
            }
            let mut position = 0;
            loop {
                if position == agents.len() {
                    return best;
                }
                agents[position] += 1;
                if agents[position] <= bound {
                    break;
                }
                agents[position] = 0;
                position += 1;
            }
        }
    }

    #[test]
    fn integer_program_matches_exhaustive_search_on_small_cases() {
        let shifts = [
            shift(4.0, &[1, 1, 1, 1, 0, 0]),
            shift(4.0, &[0, 0, 1, 1, 1, 1]),
            shift(3.0, &[0, 1, 0, 1, 1, 0]),
            shift(2.5, &[1, 1, 0, 0, 0, 0]),
            shift(6.0, &[1, 1, 1, 1, 1, 1]),
        ];
        let references: Vec<&Shift> = shifts.iter().collect();
        for minimum in [
            vec![1, 2, 3, 3, 2, 1],
            vec![0, 4, 1, 0, 3, 2],
            vec![2, 2, 2, 2, 2, 2],
            vec![5, 1, 0, 4, 0, 1],
        ] {
            let agents = solve_cover(&references, &minimum).unwrap();
            let cost: f64 = shifts
                .iter()
                .zip(&agents)
                .map(|(shift, count)| shift.cost * f64::from(*count))
                .sum();
            let best = brute_force(&references, &minimum, 5);
            assert!(
                (cost - best).abs() < 1e-9,
                "{minimum:?}: solver {cost}, exhaustive {best}"
            );
        }
    }

    #[test]
    fn an_uncovered_interval_is_an_error() {
        let shifts = [shift(1.0, &[1, 1, 0])];
        let references: Vec<&Shift> = shifts.iter().collect();
        assert!(solve_cover(&references, &[1, 1, 1]).is_err());
    }

    #[test]
    fn patterns_become_coverage_with_breaks() {
        let scenario = Scenario::built_in().unwrap();
        let cells = staff::cells_of(&scenario).unwrap();
        let config: ShiftsConfig = toml::from_str(
            r#"
            hourly_cost = 10.0
            [[patterns]]
            name = "day"
            site = "moscow"
            skills = ["line1"]
            starts = ["08:00", "12:00"]
            length_h = 4.0
            breaks = [{ after_h = 2.0, length_min = 30 }]
            "#,
        )
        .unwrap();
        let shifts = config.shifts(&scenario, &cells).unwrap();
        assert_eq!(shifts.len(), 2);
        let (cell, first) = &shifts[0];
        assert_eq!(cells[*cell].skill_name, "line1");
        assert_eq!(first.cost, 40.0);
        let worked: Vec<usize> = (0..48).filter(|index| first.covers[*index]).collect();
        assert_eq!(worked, vec![16, 17, 18, 19, 21, 22, 23]);
        let bad: ShiftsConfig = toml::from_str(
            r#"
            hourly_cost = 10.0
            [[patterns]]
            name = "late"
            site = "moscow"
            skills = ["line1"]
            starts = ["22:00"]
            length_h = 4.0
            "#,
        )
        .unwrap();
        let error = bad.shifts(&scenario, &cells).unwrap_err().to_string();
        assert!(error.contains("past midnight"), "{error}");
    }
}
