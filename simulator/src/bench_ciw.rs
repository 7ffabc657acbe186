//! The day `bench` runs beside ciw (the Python discrete-event library): one pooled queue,
//! 17,000 contacts 08:00–20:00 with the 12–16 peak, exponential handle time 240 s and
//! patience 90 s, staffing per half hour (Erlang A for 80/20 and 5% abandonment at the
//! interval's expected rate), servers finishing their call at a shift change. No ring time,
//! wrap-up, chat, bot, transfers, callbacks or overflow: the same model in both.
//!
//! ciw runs `bench/ciw_day.py` (embedded) with `python3` if Python and ciw are installed; it
//! reports its own simulation time (interpreter start and imports excluded), and the whole
//! process is timed too. Our side is timed in process (median of repetitions) and as a whole
//! process (`callgrid-sim bench --ciw-day-probe`), so both ratios compare like with like.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::erlang;
use crate::scenario::{
    CallbackConfig, Distribution, OverflowConfig, Scenario, ScenarioError, SiteConfig,
    StaffingConfig, TopicConfig,
};

/// The ciw script.
pub const CIW_SCRIPT: &str = include_str!("../bench/ciw_day.py");
/// Contacts in the comparison day.
pub const CONTACTS: f64 = 17_000.0;
/// Mean handle time, seconds.
pub const HANDLE_S: f64 = 240.0;
/// Mean patience, seconds.
pub const PATIENCE_S: f64 = 90.0;
/// Hidden CLI flag: simulate the comparison day once (whole-process timing).
pub const PROBE_FLAG: &str = "--ciw-day-probe";
/// The opening, minutes after midnight.
const OPEN_MINUTES: u32 = 8 * 60;
/// Half-hour intervals 08:00–20:00.
const INTERVALS: usize = 24;

/// The comparison day as a scenario.
pub fn scenario() -> Result<Scenario, ScenarioError> {
    let mut scenario = Scenario::built_in()?;
    scenario.name = "ciw comparison: one queue, 17,000 contacts 08:00-20:00".to_owned();
    scenario.ring_time_s = 0.0;
    scenario.wrap_up_s = 0.0;
    scenario.channels.chat_share = 0.0;
    scenario.topics = vec![TopicConfig {
        name: "other".to_owned(),
        share: 1.0,
        skill: "line1".to_owned(),
        priority: 0,
    }];
    scenario.handle_time.voice = Distribution::Exponential { mean_s: HANDLE_S };
    scenario.patience = Distribution::Exponential { mean_s: PATIENCE_S };
    scenario.transfer = None;
    scenario.bot = None;
    scenario.callbacks = CallbackConfig::default();
    scenario.overflow = OverflowConfig::default();
    scenario.outages.clear();
    scenario.calendar = None;
    scenario.volume.contacts_per_day = CONTACTS;
    scenario.volume.day_factors = vec![1.0];
    scenario.volume.season_factor = 1.0;
    // The default day's 08:00–20:00 shape (12–16 is its peak), renormalised.
    let shares = scenario.interval_shares();
    let start = (OPEN_MINUTES / scenario.interval_minutes) as usize;
    let day: Vec<f64> = shares[start..start + INTERVALS].to_vec();
    let total: f64 = day.iter().sum();
    scenario.profile.start = "08:00".to_owned();
    scenario.profile.shares = day.iter().map(|share| share / total).collect();
    let interval_s = f64::from(scenario.interval_minutes) * 60.0;
    let servers: Vec<u32> = scenario
        .profile
        .shares
        .iter()
        .map(|share| {
            erlang::agents_required(
                CONTACTS * share / interval_s,
                HANDLE_S,
                Some(PATIENCE_S),
                scenario.service_level.threshold_s,
                scenario.service_level.target,
                scenario.service_level.abandonment_target,
                10_000,
            )
            .unwrap_or(1)
            .max(1)
        })
        .collect();
    scenario.sites = vec![SiteConfig {
        name: "pool".to_owned(),
        volume_share: 1.0,
        overflow_to: Vec::new(),
        staffing: vec![StaffingConfig {
            skills: vec!["line1".to_owned()],
            start: "08:00".to_owned(),
            end: None,
            agents: None,
            per_interval: Some(servers),
        }],
    }];
    let text = toml::to_string(&scenario).map_err(|error| ScenarioError::Parse {
        origin: "ciw comparison day".to_owned(),
        location: None,
        message: error.to_string(),
    })?;
    Scenario::from_toml(&text, "ciw comparison day")
}

/// What the ciw script reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CiwFigures {
    /// Median simulation time, seconds.
    pub wall_s_median: f64,
    /// Median CPU time of the simulation (Python's process time), seconds.
    #[serde(default)]
    pub cpu_s_median: Option<f64>,
    /// Customers served in the last repetition.
    pub served: u64,
    /// Customers who reneged (abandoned).
    pub abandoned: u64,
    /// ciw's version.
    pub ciw_version: String,
    /// Wall time of the whole Python process (all repetitions, interpreter start and imports
    /// included), seconds.
    #[serde(default)]
    pub process_wall_s: f64,
    /// Repetitions inside that process.
    #[serde(default)]
    pub repetitions: u32,
}

/// Runs the ciw side; `Err` says why it could not (no Python, no ciw, a failure).
pub fn run_ciw(scenario: &Scenario, repetitions: u32) -> Result<CiwFigures, String> {
    let interval_s = f64::from(scenario.interval_minutes) * 60.0;
    let rates: Vec<f64> = scenario
        .profile
        .shares
        .iter()
        .map(|share| CONTACTS * share / interval_s)
        .collect();
    let servers = scenario
        .sites
        .first()
        .and_then(|site| site.staffing.first())
        .and_then(|entry| entry.per_interval.clone())
        .ok_or("the comparison day has no staffing")?;
    let input = serde_json::json!({
        "interval_s": interval_s,
        "rates_per_s": rates,
        "servers": servers,
        "handle_s_mean": HANDLE_S,
        "patience_s_mean": PATIENCE_S,
        "seed": 1,
        "repetitions": repetitions.max(1),
    });
    let start = Instant::now();
    let mut child = Command::new("python3")
        .args(["-c", CIW_SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot start python3: {error}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.to_string().as_bytes())
            .map_err(|error| format!("cannot write to python3: {error}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|error| format!("python3 failed: {error}"))?;
    let process_wall_s = start.elapsed().as_secs_f64();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("no message");
        return Err(format!("the ciw script failed ({last})"));
    }
    let mut figures: CiwFigures = serde_json::from_slice(&output.stdout)
        .map_err(|error| format!("unreadable ciw output: {error}"))?;
    figures.process_wall_s = process_wall_s;
    figures.repetitions = repetitions.max(1);
    Ok(figures)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_comparison_day_has_its_shape_and_meets_targets_roughly() {
        let scenario = scenario().unwrap();
        assert_eq!(scenario.profile.shares.len(), INTERVALS);
        let peak: f64 = scenario.profile.shares[8..16].iter().sum();
        assert!(peak > 0.38, "12-16 carries the peak: {peak}");
        let report = crate::engine::simulate(&scenario, 1, None).unwrap();
        assert!((report.total.offered as f64 / CONTACTS - 1.0).abs() < 0.03);
        assert!(
            report.total.service_level > 0.75,
            "{}",
            report.total.service_level
        );
    }
}
