//! Independent replications of a scenario in parallel, summarised as mean ± 95% CI.
//!
//! Replication `i` uses seed `scenario.seed + i`, so any replication can be re-run alone with
//! `run --seed`. Threads take replications from a shared counter (std::thread::scope over the
//! available cores); results are put back in replication order, so the summary does not depend
//! on thread timing.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::Serialize;

use crate::engine::{self, EngineError};
use crate::report::{Row, RunReport};
use crate::scenario::Scenario;
use crate::stats::Estimate;

/// Upper bound on replications in one call.
pub const REPLICATIONS_MAX: u32 = 10_000;

/// Figures of one slice (total or one site) over the replications.
#[derive(Debug, Clone, Serialize)]
pub struct SliceEstimate {
    /// Site name or "all".
    pub site: String,
    /// Contacts offered.
    pub offered: Estimate,
    /// Service level.
    pub service_level: Estimate,
    /// Abandoned share.
    pub abandonment: Estimate,
    /// Average speed of answer, seconds.
    pub answer_speed_s_mean: Estimate,
    /// Average handle time, seconds.
    pub handle_time_s_mean: Estimate,
    /// Occupancy.
    pub occupancy: Estimate,
}

/// The result of [`replicate`].
#[derive(Debug, Clone, Serialize)]
pub struct ReplicationSummary {
    /// Scenario name.
    pub scenario: String,
    /// Seed of the first replication.
    pub seed_first: u64,
    /// Replications run.
    pub replications: u32,
    /// Whole run.
    pub total: SliceEstimate,
    /// Per site.
    pub sites: Vec<SliceEstimate>,
}

/// Runs `replications` seeds in parallel and summarises them.
pub fn replicate(
    scenario: &Scenario,
    replications: u32,
) -> Result<ReplicationSummary, EngineError> {
    let reports = run_many(scenario, replications.clamp(1, REPLICATIONS_MAX))?;
    let slice = |name: &str, pick: &dyn Fn(&RunReport) -> &Row| {
        let values = |figure: &dyn Fn(&Row) -> f64| -> Estimate {
            let values: Vec<f64> = reports.iter().map(|report| figure(pick(report))).collect();
            Estimate::of(&values)
        };
        SliceEstimate {
            site: name.to_owned(),
            offered: values(&|row| row.offered as f64),
            service_level: values(&|row| row.service_level),
            abandonment: values(&|row| row.abandonment),
            answer_speed_s_mean: values(&|row| row.answer_speed_s_mean),
            handle_time_s_mean: values(&|row| row.handle_time_s_mean),
            occupancy: values(&|row| row.occupancy.unwrap_or(f64::NAN)),
        }
    };
    let total = slice("all", &|report| &report.total);
    let sites = scenario
        .sites
        .iter()
        .enumerate()
        .map(|(index, site)| slice(&site.name, &|report: &RunReport| &report.sites[index]))
        .collect();
    Ok(ReplicationSummary {
        scenario: scenario.name.clone(),
        seed_first: scenario.seed,
        replications: reports.len() as u32,
        total,
        sites,
    })
}

/// Runs seeds `scenario.seed .. + replications` on all cores; reports in seed order.
pub fn run_many(scenario: &Scenario, replications: u32) -> Result<Vec<RunReport>, EngineError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |count| count.get())
        .min(replications as usize)
        .max(1);
    let next = AtomicU32::new(0);
    let results: Mutex<Vec<Option<Result<RunReport, EngineError>>>> =
        Mutex::new((0..replications).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= replications {
                        break;
                    }
                    let seed = scenario.seed.wrapping_add(u64::from(index));
                    let result = engine::simulate(scenario, seed, None);
                    if let Ok(mut slots) = results.lock() {
                        slots[index as usize] = Some(result);
                    }
                }
            });
        }
    });
    let slots = results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    slots
        .into_iter()
        .map(|slot| {
            slot.unwrap_or_else(|| {
                Err(EngineError::Unsupported(
                    "a replication thread failed".to_owned(),
                ))
            })
        })
        .collect()
}

/// Terminal table of a replication summary.
pub fn render(summary: &ReplicationSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} — {} replications (seeds {}..{}), mean ± 95% CI half-width (Student t)",
        summary.scenario,
        summary.replications,
        summary.seed_first,
        summary.seed_first + u64::from(summary.replications) - 1
    );
    let _ = writeln!(
        out,
        "{:<16} {:>16} {:>14} {:>14} {:>14} {:>12} {:>12}",
        "site", "offered", "SL %", "aband %", "ASA s", "AHT s", "occ %"
    );
    let format = |estimate: &Estimate, scale: f64, decimals: usize| {
        format!(
            "{:.*} ± {:.*}",
            decimals,
            estimate.mean * scale,
            decimals,
            estimate.half_width_95 * scale
        )
    };
    for slice in summary.sites.iter().chain(std::iter::once(&summary.total)) {
        let _ = writeln!(
            out,
            "{:<16} {:>16} {:>14} {:>14} {:>14} {:>12} {:>12}",
            slice.site,
            format(&slice.offered, 1.0, 0),
            format(&slice.service_level, 100.0, 1),
            format(&slice.abandonment, 100.0, 2),
            format(&slice.answer_speed_s_mean, 1.0, 1),
            format(&slice.handle_time_s_mean, 1.0, 0),
            format(&slice.occupancy, 100.0, 1)
        );
    }
    out
}
