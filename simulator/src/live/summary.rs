//! The live run's summary: SL, ASA, abandonment and overflow as the cluster reported them
//! (the sites' interval reports), as the client observed them (its history), and as the
//! offline simulator predicts for the same scenario and seed; API latency per endpoint class
//! and the offer latency agents saw; the SL-per-interval plot (measured vs predicted).

use std::collections::{BTreeMap, HashMap};

use callgrid_domain::MetricsReport;
use serde::Serialize;

use super::history::Request;
use crate::report::RunReport;
use crate::svg::{self, Series};

/// Chain-wide figures from one source.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Contacts offered to the chain (each once, overflow not counted twice).
    pub offered: u64,
    /// Answered.
    pub answered: u64,
    /// Answered within the threshold.
    pub answered_within: u64,
    /// Abandoned.
    pub abandoned: u64,
    /// Moved to another site.
    pub overflowed: u64,
    /// Service level (answered within / offered).
    pub service_level: Option<f64>,
    /// Average speed of answer, seconds.
    pub asa_s: Option<f64>,
    /// Abandoned / offered.
    pub abandonment: Option<f64>,
}

impl Figures {
    fn finish(mut self, wait_ms_sum: f64) -> Figures {
        let offered = self.offered as f64;
        if self.offered > 0 {
            self.service_level = Some(self.answered_within as f64 / offered);
            self.abandonment = Some(self.abandoned as f64 / offered);
        }
        if self.answered > 0 {
            self.asa_s = Some(wait_ms_sum / self.answered as f64 / 1_000.0);
        }
        self
    }
}

/// Latency of one endpoint class, wall ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Requests.
    pub count: u64,
    /// Answered with a 2xx.
    pub ok: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// The whole summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// As the sites' interval reports count it.
    pub cluster: Figures,
    /// As the client's history shows it.
    pub client: Figures,
    /// As the offline simulator predicts it (same scenario and seed).
    pub predicted: Figures,
    /// Predicted SL over replications: (mean, 95 % half-width).
    pub predicted_service_level_interval: Option<(f64, f64)>,
    /// Per endpoint class.
    pub latency: BTreeMap<String, Latency>,
    /// Wall seconds the run took.
    pub wall_s: f64,
    /// Clock speed.
    pub speed: f64,
    /// Planned contacts.
    pub planned_contacts: u64,
    /// Arrivals presented later than planned by more than the SL threshold (routing time).
    pub late_arrivals: u64,
    /// The fault schedule's windows (shaded on the SL plot).
    pub fault_windows: Vec<super::faults::FaultWindow>,
    /// What each fault step did and when (a `--local --faults` run).
    pub faults: Vec<super::inject::FaultEvent>,
    /// Retries of creates with their `Idempotency-Key` (after a 503 outcome-unknown /
    /// no-quorum or no answer).
    pub create_retries: u64,
}

/// Chain figures from the sites' reports (each site counts its own contacts).
pub fn cluster_figures(reports: &[MetricsReport]) -> Figures {
    let mut figures = Figures::default();
    let mut wait = 0.0;
    for report in reports {
        let counters = &report.totals.counters;
        // Each contact once (not again where it was overflowed to); bot calls never queued.
        figures.offered += counters
            .offered
            .saturating_sub(counters.overflowed_in)
            .saturating_sub(counters.self_served);
        figures.answered += counters.answered;
        figures.answered_within += counters.answered_within_target;
        figures.abandoned += counters.abandoned;
        figures.overflowed += counters.overflowed_out;
        wait += counters.answer_wait_ms_sum as f64;
    }
    figures.finish(wait)
}

/// Chain figures from the client's history (`speed` scales wall time to routing time).
pub fn client_figures(requests: &[Request], speed: f64, threshold_ms: f64) -> Figures {
    let mut arrived: HashMap<usize, u64> = HashMap::new();
    let mut answered: HashMap<usize, u64> = HashMap::new();
    let mut figures = Figures::default();
    let mut self_served = 0;
    let mut abandoned = std::collections::HashSet::new();
    for request in requests.iter().filter(|request| request.acknowledged()) {
        let Some(plan) = request.plan else { continue };
        match request.class.as_str() {
            "arrive" => {
                arrived.entry(plan).or_insert(request.start_us);
            }
            "accept" => {
                answered.entry(plan).or_insert(request.end_us);
            }
            "abandon" => {
                abandoned.insert(plan);
            }
            "represent" => figures.overflowed += 1,
            "self_served" => self_served += 1,
            _ => {}
        }
    }
    figures.offered = (arrived.len() as u64).saturating_sub(self_served);
    figures.abandoned = abandoned.len() as u64;
    let mut wait_sum = 0.0;
    for (plan, answered_us) in &answered {
        let Some(arrived_us) = arrived.get(plan) else {
            continue;
        };
        let wait_ms = answered_us.saturating_sub(*arrived_us) as f64 / 1_000.0 * speed;
        figures.answered += 1;
        wait_sum += wait_ms;
        if wait_ms <= threshold_ms {
            figures.answered_within += 1;
        }
    }
    figures.finish(wait_sum)
}

/// The offline simulator's figures.
pub fn predicted_figures(report: &RunReport) -> Figures {
    let total = &report.total;
    Figures {
        offered: total.offered,
        answered: total.answered,
        answered_within: total.answered_within_threshold,
        abandoned: total.abandoned,
        overflowed: total.overflowed_out,
        service_level: total
            .service_level
            .is_finite()
            .then_some(total.service_level),
        asa_s: total
            .answer_speed_s_mean
            .is_finite()
            .then_some(total.answer_speed_s_mean),
        abandonment: total.abandonment.is_finite().then_some(total.abandonment),
    }
}

/// Latency per endpoint class (`offer_seen`: from the offer's routing time to the agent).
pub fn latencies(requests: &[Request]) -> BTreeMap<String, Latency> {
    let mut samples: BTreeMap<String, (Vec<f64>, u64)> = BTreeMap::new();
    for request in requests {
        let entry = samples.entry(request.class.clone()).or_default();
        entry
            .0
            .push(request.end_us.saturating_sub(request.start_us) as f64 / 1_000.0);
        entry.1 += u64::from(request.acknowledged());
    }
    samples
        .into_iter()
        .map(|(class, (mut values, ok))| {
            values.sort_by(f64::total_cmp);
            let at = |quantile: f64| {
                let index = ((values.len() as f64 - 1.0) * quantile).round() as usize;
                values.get(index).copied().unwrap_or(0.0)
            };
            let latency = Latency {
                count: values.len() as u64,
                ok,
                p50_ms: at(0.5),
                p99_ms: at(0.99),
                max_ms: values.last().copied().unwrap_or(0.0),
            };
            (class, latency)
        })
        .collect()
}

fn percent(value: Option<f64>) -> String {
    value.map_or("-".to_string(), |value| format!("{:.1}%", value * 100.0))
}

/// The terminal table.
pub fn render(summary: &Summary) -> String {
    let mut text = format!(
        "live run at {}×: {} contacts planned, {:.1} s wall, {} arrivals late by more than the SL threshold\n\n",
        summary.speed, summary.planned_contacts, summary.wall_s, summary.late_arrivals
    );
    text.push_str(&format!(
        "{:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}\n",
        "source", "offered", "answered", "abandoned", "overflow", "SL", "ASA s", "abandon %"
    ));
    for (name, figures) in [
        ("cluster", &summary.cluster),
        ("client", &summary.client),
        ("predicted", &summary.predicted),
    ] {
        text.push_str(&format!(
            "{:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}\n",
            name,
            figures.offered,
            figures.answered,
            figures.abandoned,
            figures.overflowed,
            percent(figures.service_level),
            figures
                .asa_s
                .map_or("-".to_string(), |asa| format!("{asa:.1}")),
            percent(figures.abandonment),
        ));
    }
    if let Some((mean, half)) = summary.predicted_service_level_interval {
        text.push_str(&format!(
            "predicted SL over replications: {:.1}% ± {:.1}\n",
            mean * 100.0,
            half * 100.0
        ));
    }
    text.push_str(&format!(
        "\n{:<14} {:>8} {:>8} {:>9} {:>9} {:>9}\n",
        "endpoint", "count", "ok", "p50 ms", "p99 ms", "max ms"
    ));
    for (class, latency) in &summary.latency {
        text.push_str(&format!(
            "{:<14} {:>8} {:>8} {:>9.1} {:>9.1} {:>9.1}\n",
            class, latency.count, latency.ok, latency.p50_ms, latency.p99_ms, latency.max_ms
        ));
    }
    if summary.create_retries > 0 {
        text.push_str(&format!(
            "\ncreates retried with their Idempotency-Key: {}\n",
            summary.create_retries
        ));
    }
    if !summary.faults.is_empty() {
        text.push_str("\nfaults:\n");
    }
    for event in &summary.faults {
        text.push_str(&format!(
            "  step {:>2} {:<9} {:<14} planned {} done {}{}\n",
            event.step,
            event.action.name(),
            event.site.as_deref().unwrap_or(&event.site_name),
            super::faults::clock(event.planned_ms),
            super::faults::clock(event.done_ms),
            event
                .error
                .as_ref()
                .map_or(String::new(), |error| format!("  FAILED: {error}"))
        ));
    }
    text
}

/// SL per interval, measured (the sites' reports) vs predicted, as an SVG; `faults` are
/// shaded windows (minutes of the day).
pub fn service_level_svg(
    reports: &[MetricsReport],
    predicted: &RunReport,
    faults: &[(f64, f64)],
) -> String {
    let mut measured: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new();
    for report in reports {
        for interval in &report.intervals {
            let cell = measured.entry(interval.start_ms).or_default();
            for row in &interval.sites {
                cell.0 += row
                    .counters
                    .offered
                    .saturating_sub(row.counters.overflowed_in)
                    .saturating_sub(row.counters.self_served);
                cell.1 += row.counters.answered_within_target;
                cell.2 += 1;
            }
        }
    }
    let interval_minutes = f64::from(predicted.interval_minutes.max(1));
    let measured_points: Vec<(f64, f64)> = measured
        .iter()
        .filter(|(_, (offered, _, _))| *offered > 0)
        .map(|(start, (offered, within, _))| {
            let minute = (*start % 86_400_000) as f64 / 60_000.0 + interval_minutes / 2.0;
            (minute, *within as f64 / *offered as f64 * 100.0)
        })
        .collect();
    let predicted_points: Vec<(f64, f64)> = predicted
        .intervals
        .iter()
        .filter(|row| row.offered > 0)
        .filter_map(|row| {
            let start = row.interval_start.as_deref()?;
            let minutes = crate::scenario::parse_clock_minutes(start).ok()?;
            Some((
                f64::from(minutes) + interval_minutes / 2.0,
                row.service_level * 100.0,
            ))
        })
        .collect();
    let xs = measured_points
        .iter()
        .chain(&predicted_points)
        .map(|(x, _)| *x);
    let from = xs.clone().fold(f64::INFINITY, f64::min) - interval_minutes / 2.0;
    let to = xs.fold(f64::NEG_INFINITY, f64::max) + interval_minutes / 2.0;
    let series = [
        Series::points("measured (cluster)", "#1f77b4", measured_points, false),
        Series::points("predicted (offline)", "#ff7f0e", predicted_points, true),
    ];
    let label = |minute: f64| {
        let minute = minute.max(0.0) as u32;
        format!("{:02}:{:02}", minute / 60, minute % 60)
    };
    let (from, to) = if from.is_finite() && to.is_finite() {
        (from, to)
    } else {
        (0.0, 1440.0)
    };
    let mut chart = svg::time_chart(
        "Service level per interval, %",
        (from, to),
        100.0,
        &series,
        &label,
    );
    shade(&mut chart, faults, (from, to));
    chart
}

/// Shades fault windows under the chart's lines (drawn as translucent bands).
fn shade(chart: &mut String, faults: &[(f64, f64)], range: (f64, f64)) {
    if faults.is_empty() {
        return;
    }
    // time_chart's plot area: x from 60 to 900 − 160, y from 40 to 300 − 40.
    let (left, right, top, bottom) = (60.0, 740.0, 40.0, 260.0);
    let scale = (right - left) / (range.1 - range.0).max(1.0);
    let mut bands = String::new();
    for (start, end) in faults {
        let x0 = left + (start - range.0).max(0.0) * scale;
        let x1 = left + (end - range.0).min(range.1 - range.0) * scale;
        bands.push_str(&format!(
            "<rect x=\"{x0:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{}\" fill=\"#d62728\" fill-opacity=\"0.12\"><title>fault</title></rect>\n",
            (x1 - x0).max(1.0),
            bottom - top
        ));
    }
    if let Some(position) = chart.rfind("</svg>") {
        chart.insert_str(position, &bands);
    }
}
