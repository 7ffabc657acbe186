//! `validate`: long single-queue runs of the full engine (M/M/c and M/M/c+M) compared with
//! the Erlang C and Erlang A closed forms from [`crate::erlang`].
//!
//! Each case is an ordinary [`Scenario`] — one site, one voice skill, exponential handle
//! times, no ring, wrap-up, bot, transfer, callback or overflow, a flat arrival rate for as
//! many days as needed — so what is validated is the same engine and routing core that runs
//! planners' scenarios, not a separate queue model.

use std::fmt::Write as _;

use serde::Serialize;

use crate::engine::{self, EngineError};
use crate::erlang::{self, ErlangError, Figures};
use crate::scenario::{
    CallbackConfig, ChannelConfig, Distribution, HandleTimeConfig, OverflowConfig, ProfileConfig,
    Scenario, ServiceLevelConfig, ServiceLevelPolicy, SiteConfig, StaffingConfig, TopicConfig,
    VolumeConfig,
};

/// Contacts per case for the CLI (about 1.5 s of simulation per case in release).
pub const CONTACTS_DEFAULT: u64 = 2_000_000;
/// Agreement bound on service level, percentage points.
pub const SERVICE_LEVEL_TOLERANCE_PP: f64 = 1.0;
/// Agreement bound on ASA, relative, applied where the closed-form ASA exceeds 2 s.
pub const ANSWER_SPEED_TOLERANCE: f64 = 0.05;
/// ASA below this is too small for a relative comparison.
pub const ANSWER_SPEED_COMPARED_ABOVE_S: f64 = 2.0;
/// Answer-time threshold of the compared service level.
pub const THRESHOLD_S: f64 = 20.0;
/// Seed of every case.
pub const SEED: u64 = 1_234_567;

/// One validation case.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Case {
    /// Short name.
    pub name: &'static str,
    /// Offered load, erlangs.
    pub load_erlangs: f64,
    /// Mean handle time, seconds.
    pub handle_time_s_mean: f64,
    /// Agents.
    pub agents: u32,
    /// Mean patience, seconds (Erlang A) or none (Erlang C).
    pub patience_s_mean: Option<f64>,
}

/// The built-in cases: three M/M/c and three M/M/c+M, from light to overloaded. The Erlang C
/// cases stay at 83–88% occupancy: nearer to 1 the queue forgets its past so slowly that even
/// a million contacts leave a ±1 pp spread between seeds.
pub const CASES: [Case; 6] = [
    Case {
        name: "M/M/12, 10 erl",
        load_erlangs: 10.0,
        handle_time_s_mean: 180.0,
        agents: 12,
        patience_s_mean: None,
    },
    Case {
        name: "M/M/50, 42 erl",
        load_erlangs: 42.0,
        handle_time_s_mean: 180.0,
        agents: 50,
        patience_s_mean: None,
    },
    Case {
        name: "M/M/100, 88 erl",
        load_erlangs: 88.0,
        handle_time_s_mean: 300.0,
        agents: 100,
        patience_s_mean: None,
    },
    Case {
        name: "M/M/11+M, 10 erl",
        load_erlangs: 10.0,
        handle_time_s_mean: 180.0,
        agents: 11,
        patience_s_mean: Some(120.0),
    },
    Case {
        name: "M/M/50+M, 50 erl",
        load_erlangs: 50.0,
        handle_time_s_mean: 180.0,
        agents: 50,
        patience_s_mean: Some(180.0),
    },
    Case {
        name: "M/M/95+M, 100 erl",
        load_erlangs: 100.0,
        handle_time_s_mean: 240.0,
        agents: 95,
        patience_s_mean: Some(300.0),
    },
];

/// Simulated and closed-form figures of one case.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The case.
    pub case: Case,
    /// Which closed form: "Erlang C" or "Erlang A".
    pub model: &'static str,
    /// Contacts simulated.
    pub contacts: u64,
    /// Closed form.
    pub closed_form: Figures,
    /// Simulation.
    pub simulated: Figures,
    /// |SL difference| in percentage points.
    pub service_level_difference_pp: f64,
    /// Relative ASA difference (None where ASA ≤ 2 s).
    pub answer_speed_difference: Option<f64>,
    /// Within both bounds.
    pub agrees: bool,
}

/// Why validation failed to run.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The closed form could not be evaluated.
    #[error(transparent)]
    Erlang(#[from] ErlangError),
}

/// A scenario realising `case` for about `contacts` contacts.
pub fn scenario_for(case: &Case, contacts: u64) -> Scenario {
    let arrival_rate_per_s = case.load_erlangs / case.handle_time_s_mean;
    let contacts_per_day = arrival_rate_per_s * 86_400.0;
    let days =
        ((contacts as f64 / contacts_per_day).ceil() as usize).clamp(1, crate::scenario::DAYS_MAX);
    Scenario {
        name: format!("validate {}", case.name),
        seed: SEED,
        interval_minutes: 60,
        ring_time_s: 0.0,
        wrap_up_s: 0.0,
        service_level: ServiceLevelConfig {
            threshold_s: THRESHOLD_S,
            target: 0.8,
            abandonment_target: 0.05,
            short_abandon_threshold_s: 0.0,
            policy: ServiceLevelPolicy::AnsweredWithinOverOffered,
        },
        volume: VolumeConfig {
            contacts_per_day,
            day_factors: vec![1.0; days],
            season_factor: 1.0,
        },
        profile: ProfileConfig {
            start: "00:00".to_owned(),
            shares: vec![1.0 / 24.0; 24],
        },
        channels: ChannelConfig {
            chat_share: 0.0,
            chat_slots: 1,
        },
        topics: vec![TopicConfig {
            name: "other".to_owned(),
            share: 1.0,
            skill: "line1".to_owned(),
            priority: 0,
        }],
        handle_time: HandleTimeConfig {
            voice: Distribution::Exponential {
                mean_s: case.handle_time_s_mean,
            },
            chat: Distribution::Exponential {
                mean_s: case.handle_time_s_mean,
            },
        },
        patience: match case.patience_s_mean {
            Some(mean_s) => Distribution::Exponential { mean_s },
            None => Distribution::None,
        },
        transfer: None,
        bot: None,
        callbacks: CallbackConfig::default(),
        overflow: OverflowConfig::default(),
        sites: vec![SiteConfig {
            name: "site".to_owned(),
            volume_share: 1.0,
            overflow_to: Vec::new(),
            staffing: vec![StaffingConfig {
                skills: vec!["line1".to_owned()],
                start: "00:00".to_owned(),
                end: Some("24:00".to_owned()),
                agents: Some(case.agents),
                per_interval: None,
            }],
        }],
        outages: Vec::new(),
        calendar: None,
    }
}

/// Runs one case.
pub fn compare(case: &Case, contacts: u64) -> Result<Comparison, ValidateError> {
    let queue = erlang::Queue {
        arrival_rate_per_s: case.load_erlangs / case.handle_time_s_mean,
        handle_time_s_mean: case.handle_time_s_mean,
        agents: case.agents,
        patience_s_mean: case.patience_s_mean,
    };
    let closed_form = queue.figures(THRESHOLD_S)?;
    let scenario = scenario_for(case, contacts);
    let report = engine::simulate(&scenario, scenario.seed, None)?;
    let total = &report.total;
    let simulated = Figures {
        wait_probability: report.wait_probability,
        service_level: total.service_level,
        answer_speed_s_mean: total.answer_speed_s_mean,
        abandonment: total.abandonment,
        occupancy: total.occupancy.unwrap_or(f64::NAN),
    };
    let service_level_difference_pp =
        (simulated.service_level - closed_form.service_level).abs() * 100.0;
    let answer_speed_difference = (closed_form.answer_speed_s_mean > ANSWER_SPEED_COMPARED_ABOVE_S)
        .then(|| {
            (simulated.answer_speed_s_mean - closed_form.answer_speed_s_mean).abs()
                / closed_form.answer_speed_s_mean
        });
    let agrees = service_level_difference_pp <= SERVICE_LEVEL_TOLERANCE_PP
        && answer_speed_difference.is_none_or(|difference| difference <= ANSWER_SPEED_TOLERANCE);
    Ok(Comparison {
        case: *case,
        model: if case.patience_s_mean.is_some() {
            "Erlang A"
        } else {
            "Erlang C"
        },
        contacts: total.offered,
        closed_form,
        simulated,
        service_level_difference_pp,
        answer_speed_difference,
        agrees,
    })
}

/// Runs every built-in case, in parallel.
pub fn run(contacts: u64) -> Result<Vec<Comparison>, ValidateError> {
    let results: Vec<Result<Comparison, ValidateError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = CASES
            .iter()
            .map(|case| scope.spawn(move || compare(case, contacts)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    Err(ValidateError::Engine(EngineError::Unsupported(
                        "validation thread panicked".to_owned(),
                    )))
                })
            })
            .collect()
    });
    results.into_iter().collect()
}

/// Side-by-side table.
pub fn render(comparisons: &[Comparison]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "simulation vs closed form, SL = answered within {THRESHOLD_S:.0} s / offered; bounds ±{SERVICE_LEVEL_TOLERANCE_PP} pp SL, ±{:.0}% ASA (where ASA > {ANSWER_SPEED_COMPARED_ABOVE_S} s)",
        ANSWER_SPEED_TOLERANCE * 100.0
    );
    let _ = writeln!(
        out,
        "{:<20} {:<8} {:>9} | {:>15} | {:>15} | {:>15} | {:>15} | agrees",
        "case",
        "model",
        "contacts",
        "P(wait) % sim/cf",
        "SL % sim/cf",
        "ASA s sim/cf",
        "aband % sim/cf",
    );
    for comparison in comparisons {
        let pair = |simulated: f64, closed: f64, scale: f64, decimals: usize| {
            format!(
                "{:.*} / {:.*}",
                decimals,
                simulated * scale,
                decimals,
                closed * scale
            )
        };
        let _ = writeln!(
            out,
            "{:<20} {:<8} {:>9} | {:>15} | {:>15} | {:>15} | {:>15} | {}",
            comparison.case.name,
            comparison.model,
            comparison.contacts,
            pair(
                comparison.simulated.wait_probability,
                comparison.closed_form.wait_probability,
                100.0,
                2
            ),
            pair(
                comparison.simulated.service_level,
                comparison.closed_form.service_level,
                100.0,
                2
            ),
            pair(
                comparison.simulated.answer_speed_s_mean,
                comparison.closed_form.answer_speed_s_mean,
                1.0,
                2
            ),
            pair(
                comparison.simulated.abandonment,
                comparison.closed_form.abandonment,
                100.0,
                2
            ),
            if comparison.agrees { "yes" } else { "NO" }
        );
    }
    out
}
