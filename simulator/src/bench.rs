//! Benchmarks: wall time (median of repetitions) and events/s for the built-in 17,000-contact
//! day and a built-in 100-site 1,000,000-contact day, plus peak memory (VmHWM) of separate
//! processes simulating 1 and 7 days, to show memory does not grow with days; the year
//! scenario (14 sites, 365 days) per replication with its memory at 30 and 365 days; and the
//! ciw comparison day beside ciw when Python with ciw is installed ([`crate::bench_ciw`]).

use std::fmt::Write as _;
use std::time::Instant;

use serde::Serialize;

use crate::bench_ciw::{self, CiwFigures};
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
/// Hidden CLI flag for a memory probe of the year scenario cut to N days.
pub const YEAR_PROBE_FLAG: &str = "--memory-probe-year-days";
/// The year scenario: 14 city sites over 365 days.
pub const YEAR_SCENARIO_TOML: &str = include_str!("../scenarios/year.toml");
/// Days of the short year probe (memory must not grow from it to the full year).
pub const YEAR_PROBE_DAYS_SHORT: usize = 30;
/// ciw's repetitions (its median is compared).
pub const CIW_REPETITIONS: u32 = 3;

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
    /// The year scenario, if run.
    pub year: Option<YearFigures>,
    /// The ciw comparison, if run.
    pub ciw: Option<CiwComparison>,
}

/// One replication of the year scenario.
#[derive(Debug, Clone, Serialize)]
pub struct YearFigures {
    /// Contacts reaching a queue (each once) plus those the bot finished.
    pub contacts: u64,
    /// Engine events.
    pub events: u64,
    /// Wall time of one replication, seconds.
    pub wall_s: f64,
    /// CPU time of the simulating thread, seconds.
    pub cpu_s: Option<f64>,
    /// Peak memory of a process simulating the first 30 days, kB.
    pub memory_kb_short: Option<u64>,
    /// Peak memory of a process simulating all 365 days, kB.
    pub memory_kb_year: Option<u64>,
}

/// Our comparison day beside ciw's.
#[derive(Debug, Clone, Serialize)]
pub struct CiwComparison {
    /// Our median in-process wall time, ms.
    pub ours_ms_median: f64,
    /// Our median thread CPU time, ms.
    pub ours_cpu_ms_median: Option<f64>,
    /// Our whole process (start, simulate once, exit), ms.
    pub ours_process_ms: Option<f64>,
    /// Contacts we offered, and abandoned.
    pub ours_contacts: u64,
    /// Our abandoned contacts.
    pub ours_abandoned: u64,
    /// ciw's figures, or why ciw did not run.
    pub ciw: Result<CiwFigures, String>,
    /// ciw's whole process with one repetition, ms.
    pub ciw_process_ms: Option<f64>,
    /// ciw simulation time / ours (wall).
    pub ratio_in_process: Option<f64>,
    /// ciw simulation CPU time / ours (on a loaded machine the fairer figure).
    pub ratio_cpu: Option<f64>,
    /// ciw whole process / ours.
    pub ratio_process: Option<f64>,
    /// ciw simulation time / our built-in default day's median (the wording: the
    /// built-in day against ciw running a comparable day).
    pub ratio_default_day: Option<f64>,
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

/// The year scenario, optionally cut to its first `days` days.
pub fn year_scenario(days: Option<usize>) -> Result<Scenario, ScenarioError> {
    let mut scenario = Scenario::from_toml(YEAR_SCENARIO_TOML, "scenarios/year.toml")?;
    if let Some(days) = days {
        scenario.volume.day_factors.truncate(days.max(1));
        scenario.calendar = None;
    }
    Ok(scenario)
}

fn time_year(with_probes: bool) -> Result<YearFigures, BenchError> {
    let scenario = year_scenario(None)?;
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    let report = engine::simulate(&scenario, scenario.seed, None)?;
    let wall_s = start.elapsed().as_secs_f64();
    let cpu_s = match (cpu_start, thread_cpu_ns()) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before) as f64 / 1e9),
        _ => None,
    };
    let (memory_kb_short, memory_kb_year) = if with_probes {
        (
            Some(probe_child(YEAR_PROBE_FLAG, YEAR_PROBE_DAYS_SHORT)?),
            Some(probe_child(YEAR_PROBE_FLAG, scenario.days())?),
        )
    } else {
        (None, None)
    };
    Ok(YearFigures {
        contacts: report.total.offered + report.bot_handled,
        events: report.events,
        wall_s,
        cpu_s,
        memory_kb_short,
        memory_kb_year,
    })
}

/// Body of the whole-process probe: simulate the ciw comparison day once.
pub fn ciw_day_probe() -> Result<u64, BenchError> {
    let scenario = bench_ciw::scenario()?;
    let report = engine::simulate(&scenario, scenario.seed, None)?;
    Ok(report.total.offered)
}

fn compare_with_ciw(repetitions: u32) -> Result<CiwComparison, BenchError> {
    let scenario = bench_ciw::scenario()?;
    let ours = time_case("ciw comparison day", &scenario, repetitions)?;
    let report = engine::simulate(&scenario, scenario.seed, None)?;
    let ours_process_ms = {
        let start = Instant::now();
        let status = std::env::current_exe()
            .and_then(|exe| {
                std::process::Command::new(exe)
                    .args(["bench", bench_ciw::PROBE_FLAG])
                    .stdout(std::process::Stdio::null())
                    .status()
            })
            .ok();
        status
            .filter(|status| status.success())
            .map(|_| start.elapsed().as_secs_f64() * 1000.0)
    };
    let ciw = bench_ciw::run_ciw(&scenario, CIW_REPETITIONS);
    let ciw_process_ms = ciw
        .as_ref()
        .ok()
        .and_then(|_| bench_ciw::run_ciw(&scenario, 1).ok())
        .map(|single| single.process_wall_s * 1000.0);
    let ratio_in_process = ciw
        .as_ref()
        .ok()
        .map(|figures| figures.wall_s_median * 1000.0 / ours.wall_ms_median);
    let ratio_cpu = match (
        ciw.as_ref().ok().and_then(|figures| figures.cpu_s_median),
        ours.cpu_ms_median,
    ) {
        (Some(theirs), Some(ours)) if ours > 0.0 => Some(theirs * 1000.0 / ours),
        _ => None,
    };
    let ratio_process = match (ciw_process_ms, ours_process_ms) {
        (Some(theirs), Some(ours)) => Some(theirs / ours),
        _ => None,
    };
    Ok(CiwComparison {
        ours_ms_median: ours.wall_ms_median,
        ours_cpu_ms_median: ours.cpu_ms_median,
        ours_process_ms,
        ours_contacts: report.total.offered,
        ours_abandoned: report.total.abandoned,
        ciw,
        ciw_process_ms,
        ratio_in_process,
        ratio_cpu,
        ratio_process,
        ratio_default_day: None,
    })
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

/// Body of a memory probe child: simulate `days` days of the default (or, with `year`, of
/// the year scenario), print VmHWM.
pub fn memory_probe(days: usize, year: bool) -> Result<u64, BenchError> {
    let scenario = if year {
        year_scenario(Some(days))?
    } else {
        days_scenario(days)?
    };
    let report = engine::simulate(&scenario, scenario.seed, None)?;
    std::hint::black_box(report);
    peak_memory_kb().ok_or_else(|| BenchError::Probe("no VmHWM in /proc/self/status".to_owned()))
}

fn probe_child(flag: &str, days: usize) -> Result<u64, BenchError> {
    let exe = std::env::current_exe().map_err(|error| BenchError::Probe(error.to_string()))?;
    let output = std::process::Command::new(exe)
        .args(["bench", flag, &days.to_string()])
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
    with_ciw: bool,
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
        (
            Some(probe_child(MEMORY_PROBE_FLAG, 1)?),
            Some(probe_child(MEMORY_PROBE_FLAG, 7)?),
        )
    } else {
        (None, None)
    };
    let year = if with_large {
        Some(time_year(with_probes)?)
    } else {
        None
    };
    let ciw = if with_ciw {
        let mut comparison = compare_with_ciw(repetitions)?;
        comparison.ratio_default_day = match (&comparison.ciw, cases.first()) {
            (Ok(ciw), Some(default_day)) => {
                Some(ciw.wall_s_median * 1000.0 / default_day.wall_ms_median)
            }
            _ => None,
        };
        Some(comparison)
    } else {
        None
    };
    Ok(BenchFigures {
        cases,
        memory_kb_one_day,
        memory_kb_seven_days,
        memory_kb_this_process: peak_memory_kb(),
        year,
        ciw,
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
    if let Some(year) = &figures.year {
        let _ = writeln!(
            out,
            "year (14 sites, 365 days): {} contacts, {} events, {:.2} s wall per replication{} (target: under 2 s on one core where the default day takes ~9 ms; default day here: {:.2} ms)",
            year.contacts,
            year.events,
            year.wall_s,
            year.cpu_s
                .map_or_else(String::new, |cpu| format!(", {cpu:.2} s thread CPU")),
            figures
                .cases
                .first()
                .map_or(f64::NAN, |case| case.wall_ms_median)
        );
        if let (Some(short), Some(full)) = (year.memory_kb_short, year.memory_kb_year) {
            let _ = writeln!(
                out,
                "year peak memory (VmHWM): {YEAR_PROBE_DAYS_SHORT} days {short} kB, 365 days {full} kB"
            );
        }
    }
    if let Some(comparison) = &figures.ciw {
        render_ciw(&mut out, comparison);
    }
    out
}

fn render_ciw(out: &mut String, comparison: &CiwComparison) {
    let _ = writeln!(
        out,
        "ciw comparison day (one queue, 17,000 contacts 08:00-20:00, exp. handle 240 s, patience 90 s):"
    );
    let _ = writeln!(
        out,
        "  ours: {:.2} ms median in process ({} CPU), {} whole process; {} contacts, {} abandoned",
        comparison.ours_ms_median,
        comparison
            .ours_cpu_ms_median
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.2} ms")),
        comparison
            .ours_process_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms")),
        comparison.ours_contacts,
        comparison.ours_abandoned
    );
    match &comparison.ciw {
        Ok(ciw) => {
            let _ = writeln!(
                out,
                "  ciw {}: {:.0} ms median simulation ({} CPU), {} whole process; {} served, {} abandoned",
                ciw.ciw_version,
                ciw.wall_s_median * 1000.0,
                ciw.cpu_s_median.map_or_else(
                    || "-".to_owned(),
                    |seconds| format!("{:.0} ms", seconds * 1000.0)
                ),
                comparison
                    .ciw_process_ms
                    .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.0} ms")),
                ciw.served,
                ciw.abandoned
            );
            let _ = writeln!(
                out,
                "  ratio ciw / ours: {} in process (wall), {} in CPU time, {} as whole processes (target: at least 250×)",
                comparison
                    .ratio_in_process
                    .map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.0}×")),
                comparison
                    .ratio_cpu
                    .map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.0}×")),
                comparison
                    .ratio_process
                    .map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.0}×"))
            );
            if let Some(ratio) = comparison.ratio_default_day {
                let _ = writeln!(
                    out,
                    "  ratio ciw's day / our built-in default day (wall, in process): {ratio:.0}×"
                );
            }
        }
        Err(reason) => {
            let _ = writeln!(out, "  ciw not run: {reason}");
        }
    }
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
    fn year_scenario_has_fourteen_sites_a_season_and_about_six_million_contacts() {
        let scenario = year_scenario(None).unwrap();
        assert_eq!(scenario.sites.len(), 14);
        assert_eq!(scenario.days(), 365);
        let factors = &scenario.volume.day_factors;
        // Wednesday 14 January is in season, Wednesday 15 July is not.
        assert!((factors[13] / factors[195] - 1.12).abs() < 1e-9);
        // 1 January is a holiday.
        assert!(factors[0] < 0.5);
        let contacts: f64 = factors.iter().sum::<f64>() * scenario.volume.contacts_per_day;
        assert!((5.8e6..6.6e6).contains(&contacts), "{contacts}");
        assert_eq!(year_scenario(Some(30)).unwrap().days(), 30);
    }

    #[test]
    fn peak_memory_is_readable_on_linux() {
        assert!(peak_memory_kb().unwrap() > 0);
    }
}
