//! Benchmarks: wall time (median of repetitions) and events/s for the built-in 17,000-contact
//! day and a built-in 100-site 1,000,000-contact day, plus peak memory (VmHWM) of separate
//! processes simulating 1 and 7 days, to show memory does not grow with days.

use std::fmt::Write as _;
use std::time::Instant;

use serde::Serialize;

use crate::engine::{self, EngineError};
use crate::scenario::{Scenario, ScenarioError, SiteConfig, StaffingConfig};

/// Timed repetitions per case by default.
pub const REPETITIONS_DEFAULT: u32 = 7;
/// Sites of the large case.
pub const LARGE_SITES: usize = 100;
/// Contacts per day of the large case.
pub const LARGE_CONTACTS_PER_DAY: f64 = 1_000_000.0;
/// Hidden CLI flag the parent uses to start a memory probe child.
pub const MEMORY_PROBE_FLAG: &str = "--memory-probe-days";

/// Why a benchmark failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The built-in scenario failed to load.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A memory probe child process failed.
    #[error("memory probe: {0}")]
    Probe(String),
}

/// Figures of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseFigures {
    /// Case name.
    pub name: String,
    /// Contacts offered in one run.
    pub contacts: u64,
    /// Engine events in one run.
    pub events: u64,
    /// Median wall time, milliseconds.
    pub wall_ms_median: f64,
    /// Fastest wall time, milliseconds.
    pub wall_ms_min: f64,
    /// Median CPU time of the simulating thread, milliseconds (from
    /// /proc/thread-self/schedstat; unlike wall time it excludes waiting for a core on a
    /// shared machine). `None` where unavailable.
    pub cpu_ms_median: Option<f64>,
    /// Events per second at the median.
    pub events_per_s: f64,
    /// Microseconds per contact at the median.
    pub contact_us_mean: f64,
}

/// All figures.
#[derive(Debug, Clone, Serialize)]
pub struct BenchFigures {
    /// Timed cases.
    pub cases: Vec<CaseFigures>,
    /// Peak resident memory of a process simulating the default scenario for 1 day, kB.
    pub memory_kb_one_day: Option<u64>,
    /// The same for 7 days, kB.
    pub memory_kb_seven_days: Option<u64>,
    /// Peak resident memory of this process after the timed cases, kB.
    pub memory_kb_this_process: Option<u64>,
}

/// The built-in 100-site, 1,000,000-contact day: the default day's shape with 100 identical
/// sites, each staffed like the default's first site scaled to its volume.
pub fn large_scenario() -> Result<Scenario, ScenarioError> {
    let mut scenario = Scenario::built_in()?;
    let template = scenario.sites[0].clone();
    let scale = LARGE_CONTACTS_PER_DAY
        / LARGE_SITES as f64
        / (scenario.volume.contacts_per_day * template.volume_share);
    let staffing: Vec<StaffingConfig> = template
        .staffing
        .iter()
        .map(|entry| StaffingConfig {
            agents: entry.agents.map(|agents| scale_agents(agents, scale)),
            per_interval: entry.per_interval.as_ref().map(|counts| {
                counts
                    .iter()
                    .map(|agents| scale_agents(*agents, scale))
                    .collect()
            }),
            ..entry.clone()
        })
        .collect();
    scenario.name = format!("{LARGE_SITES} sites, {LARGE_CONTACTS_PER_DAY} contacts");
    scenario.volume.contacts_per_day = LARGE_CONTACTS_PER_DAY;
    scenario.sites = (0..LARGE_SITES)
        .map(|index| SiteConfig {
            name: format!("site-{index:03}"),
            volume_share: 1.0 / LARGE_SITES as f64,
            overflow_to: Vec::new(),
            staffing: staffing.clone(),
        })
        .collect();
    Ok(scenario)
}

fn scale_agents(agents: u32, scale: f64) -> u32 {
    // Erlang staffing grows slightly less than linearly; plain scaling keeps it simple and on
    // the safe side.
    (f64::from(agents) * scale).ceil() as u32
}

/// The default scenario stretched to `days` identical days.
pub fn days_scenario(days: usize) -> Result<Scenario, ScenarioError> {
    let mut scenario = Scenario::built_in()?;
    scenario.volume.day_factors = vec![1.0; days.max(1)];
    Ok(scenario)
}

fn time_case(name: &str, scenario: &Scenario, repetitions: u32) -> Result<CaseFigures, BenchError> {
    // One untimed run warms caches and the allocator.
    let warm = engine::simulate(scenario, scenario.seed, None)?;
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    for _ in 0..repetitions.max(1) {
        let cpu_start = thread_cpu_ns();
        let start = Instant::now();
        let report = engine::simulate(scenario, scenario.seed, None)?;
        walls.push(start.elapsed().as_secs_f64() * 1000.0);
        if let (Some(before), Some(after)) = (cpu_start, thread_cpu_ns()) {
            cpus.push(after.saturating_sub(before) as f64 / 1e6);
        }
        std::hint::black_box(report);
    }
    cpus.sort_by(f64::total_cmp);
    walls.sort_by(f64::total_cmp);
    let median = walls[walls.len() / 2];
    let contacts = warm.total.offered - warm.total.overflowed_in;
    Ok(CaseFigures {
        name: name.to_owned(),
        contacts,
        events: warm.events,
        wall_ms_median: median,
        wall_ms_min: walls[0],
        cpu_ms_median: cpus.get(cpus.len() / 2).copied(),
        events_per_s: warm.events as f64 / (median / 1000.0),
        contact_us_mean: median * 1000.0 / contacts.max(1) as f64,
    })
}

/// CPU time consumed by the calling thread, nanoseconds (Linux schedstat).
pub fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Peak resident set size of this process (VmHWM), kB; Linux only.
pub fn peak_memory_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Body of a memory probe child: simulate `days` days, print VmHWM.
pub fn memory_probe(days: usize) -> Result<u64, BenchError> {
    let scenario = days_scenario(days)?;
    let report = engine::simulate(&scenario, scenario.seed, None)?;
    std::hint::black_box(report);
    peak_memory_kb().ok_or_else(|| BenchError::Probe("no VmHWM in /proc/self/status".to_owned()))
}

fn probe_child(days: usize) -> Result<u64, BenchError> {
    let exe = std::env::current_exe().map_err(|error| BenchError::Probe(error.to_string()))?;
    let output = std::process::Command::new(exe)
        .args(["bench", MEMORY_PROBE_FLAG, &days.to_string()])
        .output()
        .map_err(|error| BenchError::Probe(error.to_string()))?;
    if !output.status.success() {
        return Err(BenchError::Probe(
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|_| BenchError::Probe("unreadable probe output".to_owned()))
}

/// Runs the benchmark. `with_large` adds the 1M-contact day; `with_probes` runs the memory
/// probes as child processes of the current executable (the CLI only).
pub fn run(
    repetitions: u32,
    with_large: bool,
    with_probes: bool,
) -> Result<BenchFigures, BenchError> {
    let mut cases = vec![time_case(
        "default 17,000-contact day, 3 sites",
        &Scenario::built_in()?,
        repetitions,
    )?];
    if with_large {
        cases.push(time_case(
            "100 sites, 1,000,000-contact day",
            &large_scenario()?,
            repetitions.min(3),
        )?);
    }
    let (memory_kb_one_day, memory_kb_seven_days) = if with_probes {
        (Some(probe_child(1)?), Some(probe_child(7)?))
    } else {
        (None, None)
    };
    Ok(BenchFigures {
        cases,
        memory_kb_one_day,
        memory_kb_seven_days,
        memory_kb_this_process: peak_memory_kb(),
    })
}

/// Human-readable figures.
pub fn render(figures: &BenchFigures) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<40} {:>9} {:>9} {:>11} {:>9} {:>9} {:>12} {:>9}",
        "case", "contacts", "events", "median ms", "min ms", "CPU ms", "events/s", "µs/contact"
    );
    for case in &figures.cases {
        let _ = writeln!(
            out,
            "{:<40} {:>9} {:>9} {:>11.2} {:>9.2} {:>9} {:>12.0} {:>9.3}",
            case.name,
            case.contacts,
            case.events,
            case.wall_ms_median,
            case.wall_ms_min,
            case.cpu_ms_median
                .map_or_else(|| "-".to_owned(), |cpu| format!("{cpu:.2}")),
            case.events_per_s,
            case.contact_us_mean
        );
    }
    if let (Some(one), Some(seven)) = (figures.memory_kb_one_day, figures.memory_kb_seven_days) {
        let _ = writeln!(
            out,
            "peak memory (VmHWM) simulating the default day: 1 day {one} kB, 7 days {seven} kB"
        );
    }
    if let Some(peak) = figures.memory_kb_this_process {
        let _ = writeln!(out, "peak memory of this process: {peak} kB");
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn large_scenario_is_valid_and_sized() {
        let scenario = large_scenario().unwrap();
        assert!(scenario.check().is_empty(), "{:?}", scenario.check());
        assert_eq!(scenario.sites.len(), LARGE_SITES);
        assert_eq!(scenario.volume.contacts_per_day, LARGE_CONTACTS_PER_DAY);
    }

    #[test]
    fn peak_memory_is_readable_on_linux() {
        assert!(peak_memory_kb().unwrap() > 0);
    }
}
