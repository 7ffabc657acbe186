//! What-if: two scenarios side by side over the same replications, with 95% confidence
//! intervals for each and for their difference, and an SVG of both days' service level.
//!
//! Both scenarios run seeds `a.seed … a.seed + n − 1` (scenario B takes A's seed): common
//! random numbers, so replication `i` of A and of B see the same stream of draws where the
//! scenarios agree, and the difference is estimated from the paired differences (Student t
//! over `b_i − a_i`), which is tighter than two independent intervals when the runs correlate.

use std::fmt::Write as _;

use serde::Serialize;

use crate::engine::EngineError;
use crate::replicate;
use crate::report::{Row, RunReport};
use crate::scenario::{Scenario, ServiceLevelPolicy, clock_of};
use crate::stats::Estimate;
use crate::svg::{self, Series};

/// Replications when none are given.
pub const REPLICATIONS_DEFAULT: u32 = 20;

/// One figure of both scenarios and their difference.
#[derive(Debug, Clone, Serialize)]
pub struct FigureComparison {
    /// What it is, with its unit.
    pub figure: &'static str,
    /// Scenario A.
    pub a: Estimate,
    /// Scenario B.
    pub b: Estimate,
    /// B − A, from the paired differences.
    pub difference: Estimate,
}

/// The service level of one clock interval in each scenario, pooled over replications
/// (`None`: no contacts in that interval).
#[derive(Debug, Clone, Serialize)]
pub struct IntervalLevels {
    /// Minutes after midnight of the interval start.
    pub start_minutes: u32,
    /// Interval length, minutes.
    pub length_minutes: u32,
    /// Which scenario: "a" or "b".
    pub scenario: &'static str,
    /// Pooled service level.
    pub service_level: Option<f64>,
}

/// The result of [`compare`].
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Name of scenario A.
    pub a: String,
    /// Name of scenario B.
    pub b: String,
    /// Replications per scenario.
    pub replications: u32,
    /// Seed of the first replication (both scenarios).
    pub seed_first: u64,
    /// Service-level target of A (the plot's line).
    pub service_level_target: f64,
    /// Chain-wide figures.
    pub figures: Vec<FigureComparison>,
    /// Per interval service level of both scenarios.
    pub intervals: Vec<IntervalLevels>,
}

/// Runs both scenarios `replications` times with A's seeds and compares them.
pub fn compare(a: &Scenario, b: &Scenario, replications: u32) -> Result<Comparison, EngineError> {
    let replications = replications.clamp(2, replicate::REPLICATIONS_MAX);
    let mut b_paired = b.clone();
    b_paired.seed = a.seed;
    let a_reports = replicate::run_many(a, replications)?;
    let b_reports = replicate::run_many(&b_paired, replications)?;
    let figure = |name: &'static str, pick: &dyn Fn(&Row) -> f64| {
        let a_values: Vec<f64> = a_reports.iter().map(|report| pick(&report.total)).collect();
        let b_values: Vec<f64> = b_reports.iter().map(|report| pick(&report.total)).collect();
        let differences: Vec<f64> = a_values.iter().zip(&b_values).map(|(a, b)| b - a).collect();
        FigureComparison {
            figure: name,
            a: Estimate::of(&a_values),
            b: Estimate::of(&b_values),
            difference: Estimate::of(&differences),
        }
    };
    let figures = vec![
        figure("contacts offered", &|row| row.offered as f64),
        figure("service level %", &|row| row.service_level * 100.0),
        figure("abandoned %", &|row| row.abandonment * 100.0),
        figure("average speed of answer s", &|row| row.answer_speed_s_mean),
        figure("average handle time s", &|row| row.handle_time_s_mean),
        figure("occupancy %", &|row| {
            row.occupancy.unwrap_or(f64::NAN) * 100.0
        }),
        figure("queue length mean", &|row| row.queue_length_mean),
    ];
    let mut intervals = interval_levels(a, &a_reports, "a");
    intervals.extend(interval_levels(b, &b_reports, "b"));
    Ok(Comparison {
        a: a.name.clone(),
        b: b.name.clone(),
        replications,
        seed_first: a.seed,
        service_level_target: a.service_level.target,
        figures,
        intervals,
    })
}

/// Service level per clock interval, pooled over the replications (each row of a report
/// already pools the days).
fn interval_levels(
    scenario: &Scenario,
    reports: &[RunReport],
    which: &'static str,
) -> Vec<IntervalLevels> {
    let count = reports.first().map_or(0, |report| report.intervals.len());
    (0..count)
        .map(|index| {
            let (mut within, mut denominator) = (0u64, 0u64);
            for report in reports {
                if let Some(row) = report.intervals.get(index) {
                    within += row.answered_within_threshold;
                    denominator += match scenario.service_level.policy {
                        ServiceLevelPolicy::AnsweredWithinOverOffered => row.offered,
                        ServiceLevelPolicy::AnsweredWithinOverOfferedMinusShortAbandons => {
                            row.offered.saturating_sub(row.short_abandoned)
                        }
                    };
                }
            }
            IntervalLevels {
                start_minutes: index as u32 * scenario.interval_minutes,
                length_minutes: scenario.interval_minutes,
                scenario: which,
                service_level: (denominator > 0).then(|| within as f64 / denominator as f64),
            }
        })
        .collect()
}

/// Terminal table.
pub fn render(comparison: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "A: {}", comparison.a);
    let _ = writeln!(out, "B: {}", comparison.b);
    let _ = writeln!(
        out,
        "{} replications each, seeds {}.. (common random numbers); mean ± 95% CI half-width \
         (Student t); B − A from the paired differences",
        comparison.replications, comparison.seed_first
    );
    let _ = writeln!(
        out,
        "{:<28} {:>20} {:>20} {:>20}",
        "figure", "A", "B", "B − A"
    );
    for figure in &comparison.figures {
        let cell =
            |estimate: &Estimate| format!("{:.2} ± {:.2}", estimate.mean, estimate.half_width_95);
        let significant = if figure.difference.mean.abs() > figure.difference.half_width_95 {
            " *"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{:<28} {:>20} {:>20} {:>20}{significant}",
            figure.figure,
            cell(&figure.a),
            cell(&figure.b),
            cell(&figure.difference)
        );
    }
    let _ = writeln!(out, "* the 95% interval of the difference excludes 0");
    out
}

/// Both days' service level on one time-of-day axis (gaps where an interval has no contacts).
pub fn service_level_svg(comparison: &Comparison) -> String {
    let pick = |which: &str| -> Vec<(f64, f64)> {
        comparison
            .intervals
            .iter()
            .filter(|level| level.scenario == which)
            .map(|level| {
                (
                    f64::from(level.start_minutes) + f64::from(level.length_minutes) / 2.0,
                    level.service_level.map_or(f64::NAN, |value| value * 100.0),
                )
            })
            .collect()
    };
    let a = pick("a");
    let b = pick("b");
    let open: Vec<f64> = a
        .iter()
        .chain(&b)
        .filter(|(_, value)| value.is_finite())
        .map(|(minute, _)| *minute)
        .collect();
    let first = open.iter().copied().fold(f64::INFINITY, f64::min);
    let last = open.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (from, to) = if first.is_finite() && last > first {
        ((first / 60.0).floor() * 60.0, (last / 60.0).ceil() * 60.0)
    } else {
        (0.0, 1_440.0)
    };
    let target = comparison.service_level_target * 100.0;
    svg::time_chart(
        &format!(
            "Service level through the day, % — A: {} / B: {}",
            short(&comparison.a),
            short(&comparison.b)
        ),
        (from, to),
        100.0,
        &[
            Series::points("A", "#1f77b4", a, false),
            Series::points("B", "#ff7f0e", b, false),
            Series::points(
                "target",
                "#d62728",
                vec![(from, target), (to, target)],
                true,
            ),
        ],
        &|minute| clock_of(minute as u32),
    )
}

fn short(name: &str) -> String {
    let mut text: String = name.chars().take(40).collect();
    if name.chars().count() > 40 {
        text.push('…');
    }
    text
}
