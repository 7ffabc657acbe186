//! Reports of a run: the terminal table, CSV and JSON files per interval / site / queue, and
//! hand-written SVG plots (a few hundred lines of SVG do not justify a plotting dependency).
//!
//! The figures come from the routing core's metrics (computed from its event stream); this
//! module only lays them out.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::svg::{escape, format_tick, nice_ceiling};

/// Files written by [`write_files`], relative to the output directory.
pub const OUTPUT_FILES: [&str; 10] = [
    "summary.json",
    "intervals.csv",
    "intervals.json",
    "sites.csv",
    "queues.csv",
    "queues.json",
    "site_intervals.csv",
    "queue_intervals.csv",
    "service_level.svg",
    "volume.svg",
];

/// Why writing a report failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The path.
        path: String,
        /// Underlying IO error.
        source: std::io::Error,
    },
    /// JSON encoding failed.
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The figures of one slice of a run (whole run, one site, one queue, one interval …).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Row {
    /// Day index, when the row is per interval.
    pub day: Option<u32>,
    /// Interval start "HH:MM", when the row is per interval.
    pub interval_start: Option<String>,
    /// Site name or "all".
    pub site: String,
    /// Queue (skill) name or "all".
    pub queue: String,
    /// Contacts offered (arrivals + overflow in; for a queue also transfers in).
    pub offered: u64,
    /// Contacts answered.
    pub answered: u64,
    /// Answered within the service-level threshold.
    pub answered_within_threshold: u64,
    /// Contacts abandoned.
    pub abandoned: u64,
    /// Of those, short abandons.
    pub short_abandoned: u64,
    /// Contacts sent to another site.
    pub overflowed_out: u64,
    /// Of those, contacts not yet answered here (the site's conservation term; the rest are
    /// transferred contacts moved while waiting for line 2).
    pub overflowed_out_unanswered: u64,
    /// Contacts received from another site.
    pub overflowed_in: u64,
    /// Line-1 → line-2 transfers.
    pub transferred: u64,
    /// Callback tasks created.
    pub callbacks_created: u64,
    /// Service level under the scenario's policy; not a number (JSON `null`, an empty CSV field)
    /// when the slice had no contacts.
    pub service_level: f64,
    /// Abandoned / offered.
    pub abandonment: f64,
    /// Average speed of answer, seconds.
    pub answer_speed_s_mean: f64,
    /// Average handle time (talk + hold + wrap-up), seconds.
    pub handle_time_s_mean: f64,
    /// Average wait before abandoning, seconds.
    pub abandon_wait_s_mean: f64,
    /// Time-weighted mean contacts waiting.
    pub queue_length_mean: f64,
    /// Most contacts waiting at once.
    pub queue_length_max: u64,
    /// Busy + wrap-up time / staffed time (`None` for queue rows: agents are not per queue).
    pub occupancy: Option<f64>,
    /// Contacts still waiting or ringing when the run ended (whole-run site rows only).
    pub still_waiting_at_end: u64,
}

/// A whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunReport {
    /// Scenario name.
    pub scenario: String,
    /// Seed used.
    pub seed: u64,
    /// Simulated days.
    pub days: u32,
    /// Interval length, minutes.
    pub interval_minutes: u32,
    /// Service-level threshold, seconds.
    pub service_level_threshold_s: f64,
    /// Service-level target.
    pub service_level_target: f64,
    /// Abandonment target.
    pub abandonment_target: f64,
    /// Contacts finished by the self-service bot (never offered to agents).
    pub bot_handled: u64,
    /// Events processed by the engine.
    pub events: u64,
    /// Share of offered contacts that had to wait in a queue (found no free qualified agent).
    pub wait_probability: f64,
    /// The whole run over all sites and queues.
    pub total: Row,
    /// Per site, whole run.
    pub sites: Vec<Row>,
    /// Per site and queue, whole run.
    pub queues: Vec<Row>,
    /// Per interval, all sites.
    pub intervals: Vec<Row>,
    /// Per interval and site.
    pub site_intervals: Vec<Row>,
    /// Per interval, site and queue (cells with traffic only).
    pub queue_intervals: Vec<Row>,
}

/// Renders the terminal summary table.
pub fn render_table(report: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} — seed {}, {} day(s), {}-minute intervals, SL target {:.0}/{:.0}, abandonment ≤ {:.0}%",
        report.scenario,
        report.seed,
        report.days,
        report.interval_minutes,
        report.service_level_target * 100.0,
        report.service_level_threshold_s,
        report.abandonment_target * 100.0
    );
    let _ = writeln!(
        out,
        "{:<16} {:<16} {:>8} {:>8} {:>7} {:>6} {:>7} {:>6} {:>6} {:>7} {:>7} {:>6} {:>6}",
        "site",
        "queue",
        "offered",
        "answered",
        "SL%",
        "aband%",
        "ASA s",
        "AHT s",
        "occ%",
        "Qmean",
        "Qmax",
        "ovOut",
        "ovIn"
    );
    let mut row = |row: &Row| {
        let _ = writeln!(
            out,
            "{:<16} {:<16} {:>8} {:>8} {:>7} {:>6.1} {:>7.1} {:>6.0} {:>6} {:>7.2} {:>7} {:>6} {:>6}",
            truncate(&row.site, 16),
            truncate(&row.queue, 16),
            row.offered,
            row.answered,
            if row.service_level.is_finite() {
                format!("{:.1}", row.service_level * 100.0)
            } else {
                "-".to_owned()
            },
            row.abandonment * 100.0,
            row.answer_speed_s_mean,
            row.handle_time_s_mean,
            row.occupancy.map_or_else(
                || "-".to_owned(),
                |occupancy| format!("{:.1}", occupancy * 100.0)
            ),
            row.queue_length_mean,
            row.queue_length_max,
            row.overflowed_out,
            row.overflowed_in
        );
    };
    for site in &report.sites {
        row(site);
    }
    for queue in &report.queues {
        row(queue);
    }
    row(&report.total);
    let _ = writeln!(
        out,
        "bot handled {} contacts; {} transfers to line 2; {} callbacks created; {} events",
        report.bot_handled, report.total.transferred, report.total.callbacks_created, report.events
    );
    out
}

fn truncate(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

/// Writes the CSV, JSON and SVG files into `directory` (created if missing).
pub fn write_files(report: &RunReport, directory: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(directory).map_err(|source| ReportError::Write {
        path: directory.display().to_string(),
        source,
    })?;
    let write = |name: &str, content: String| {
        let file = directory.join(name);
        std::fs::write(&file, content).map_err(|source| ReportError::Write {
            path: file.display().to_string(),
            source,
        })
    };
    write("summary.json", serde_json::to_string_pretty(report)?)?;
    write("intervals.csv", csv(&report.intervals))?;
    write(
        "intervals.json",
        serde_json::to_string_pretty(&report.intervals)?,
    )?;
    write("sites.csv", csv(&report.sites))?;
    write("queues.csv", csv(&report.queues))?;
    write("queues.json", serde_json::to_string_pretty(&report.queues)?)?;
    write("site_intervals.csv", csv(&report.site_intervals))?;
    write("queue_intervals.csv", csv(&report.queue_intervals))?;
    write("service_level.svg", service_level_svg(report))?;
    write("volume.svg", volume_svg(report))?;
    Ok(())
}

const CSV_HEADER: &str = "day,interval_start,site,queue,offered,answered,answered_within_threshold,abandoned,short_abandoned,overflowed_out,overflowed_out_unanswered,overflowed_in,transferred,callbacks_created,service_level,abandonment,answer_speed_s_mean,handle_time_s_mean,abandon_wait_s_mean,queue_length_mean,queue_length_max,occupancy";

/// Rows as CSV with a header line.
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::with_capacity(64 + rows.len() * 160);
    out.push_str(CSV_HEADER);
    out.push('\n');
    for row in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.6},{:.3},{:.3},{:.3},{:.4},{},{}",
            row.day.map(|day| day.to_string()).unwrap_or_default(),
            row.interval_start.as_deref().unwrap_or(""),
            csv_field(&row.site),
            csv_field(&row.queue),
            row.offered,
            row.answered,
            row.answered_within_threshold,
            row.abandoned,
            row.short_abandoned,
            row.overflowed_out,
            row.overflowed_out_unanswered,
            row.overflowed_in,
            row.transferred,
            row.callbacks_created,
            optional(row.service_level, 6),
            row.abandonment,
            row.answer_speed_s_mean,
            row.handle_time_s_mean,
            row.abandon_wait_s_mean,
            row.queue_length_mean,
            row.queue_length_max,
            row.occupancy
                .map_or_else(String::new, |occupancy| format!("{occupancy:.6}"))
        );
    }
    out
}

/// A figure with `decimals` decimals, or nothing when it is undefined (no contacts).
fn optional(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        String::new()
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// One line of a chart.
struct Series<'a> {
    name: &'a str,
    color: &'a str,
    values: Vec<f64>,
    dashed: bool,
}

const CHART_WIDTH: f64 = 900.0;
const PANEL_HEIGHT: f64 = 260.0;
const MARGIN_LEFT: f64 = 60.0;
const MARGIN_RIGHT: f64 = 150.0;
const MARGIN_TOP: f64 = 40.0;
const MARGIN_BOTTOM: f64 = 40.0;

/// Intervals from the first to the last that carries traffic (the chart skips the closed
/// night; an empty interval inside the span stays, as a gap in the service level).
fn open_rows(report: &RunReport) -> Vec<&Row> {
    let first = report.intervals.iter().position(|row| row.offered > 0);
    let last = report.intervals.iter().rposition(|row| row.offered > 0);
    match (first, last) {
        (Some(first), Some(last)) => report.intervals[first..=last].iter().collect(),
        _ => Vec::new(),
    }
}

fn labels(rows: &[&Row]) -> Vec<String> {
    rows.iter()
        .map(|row| match (row.day, &row.interval_start) {
            (Some(day), Some(start)) if day > 0 => format!("d{day} {start}"),
            (_, Some(start)) => start.clone(),
            _ => String::new(),
        })
        .collect()
}

/// SL and queue length through the day: two panels sharing the time axis.
pub fn service_level_svg(report: &RunReport) -> String {
    let rows = open_rows(report);
    let labels = labels(&rows);
    let mut svg = svg_open(2.0 * PANEL_HEIGHT + 30.0);
    let target = report.service_level_target * 100.0;
    panel(
        &mut svg,
        0.0,
        &format!(
            "Service level (answered within {:.0} s), %",
            report.service_level_threshold_s
        ),
        &labels,
        &[
            Series {
                name: "service level",
                color: "#1f77b4",
                values: rows.iter().map(|row| row.service_level * 100.0).collect(),
                dashed: false,
            },
            Series {
                name: "target",
                color: "#d62728",
                values: vec![target; rows.len()],
                dashed: true,
            },
        ],
        Some(100.0),
    );
    panel(
        &mut svg,
        PANEL_HEIGHT + 30.0,
        "Queue length (contacts waiting)",
        &labels,
        &[
            Series {
                name: "mean",
                color: "#2ca02c",
                values: rows.iter().map(|row| row.queue_length_mean).collect(),
                dashed: false,
            },
            Series {
                name: "max",
                color: "#ff7f0e",
                values: rows.iter().map(|row| row.queue_length_max as f64).collect(),
                dashed: true,
            },
        ],
        None,
    );
    svg.push_str("</svg>\n");
    svg
}

/// Offered vs answered vs abandoned per interval.
pub fn volume_svg(report: &RunReport) -> String {
    let rows = open_rows(report);
    let labels = labels(&rows);
    let mut svg = svg_open(PANEL_HEIGHT);
    panel(
        &mut svg,
        0.0,
        &format!("Contacts per {}-minute interval", report.interval_minutes),
        &labels,
        &[
            Series {
                name: "offered",
                color: "#1f77b4",
                values: rows.iter().map(|row| row.offered as f64).collect(),
                dashed: false,
            },
            Series {
                name: "answered",
                color: "#2ca02c",
                values: rows.iter().map(|row| row.answered as f64).collect(),
                dashed: false,
            },
            Series {
                name: "abandoned",
                color: "#d62728",
                values: rows.iter().map(|row| row.abandoned as f64).collect(),
                dashed: false,
            },
        ],
        None,
    );
    svg.push_str("</svg>\n");
    svg
}

fn svg_open(height: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{CHART_WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {CHART_WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    )
}

fn panel(
    svg: &mut String,
    top: f64,
    title: &str,
    labels: &[String],
    series: &[Series<'_>],
    y_max: Option<f64>,
) {
    let left = MARGIN_LEFT;
    let right = CHART_WIDTH - MARGIN_RIGHT;
    let plot_top = top + MARGIN_TOP;
    let bottom = top + PANEL_HEIGHT - MARGIN_BOTTOM;
    let data_max = series
        .iter()
        .flat_map(|line| line.values.iter().copied())
        .filter(|value| value.is_finite())
        .fold(0.0_f64, f64::max);
    let y_top = y_max.unwrap_or_else(|| nice_ceiling(data_max));
    let count = labels.len().max(1);
    let x = |index: usize| {
        if count == 1 {
            (left + right) / 2.0
        } else {
            left + (right - left) * index as f64 / (count - 1) as f64
        }
    };
    let y = |value: f64| bottom - (bottom - plot_top) * (value.clamp(0.0, y_top) / y_top);
    let _ = writeln!(
        svg,
        "<text x=\"{left}\" y=\"{}\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        top + 22.0,
        escape(title)
    );
    // Axes and horizontal grid with five ticks.
    for tick in 0..=4 {
        let value = y_top * f64::from(tick) / 4.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{right}\" y2=\"{0:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{1}\" y=\"{2:.1}\" text-anchor=\"end\">{3}</text>",
            y(value),
            left - 6.0,
            y(value) + 4.0,
            format_tick(value)
        );
    }
    let _ = writeln!(
        svg,
        "<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"#444\"/>"
    );
    let label_every = labels.len().div_ceil(16).max(1);
    for (index, label) in labels.iter().enumerate().step_by(label_every) {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x(index),
            bottom + 16.0,
            escape(label)
        );
    }
    for (number, line) in series.iter().enumerate() {
        let dash = if line.dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        // A value that is not a number (an interval without contacts has no service level)
        // breaks the line: a gap, not a drop to zero.
        for run in finite_runs(&line.values) {
            if run.len() == 1 {
                // A lone value between gaps: a dot (a one-point line is invisible).
                let _ = writeln!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{}\"/>",
                    x(run.start),
                    y(line.values[run.start]),
                    line.color
                );
                continue;
            }
            let points: Vec<String> = run
                .map(|index| format!("{:.1},{:.1}", x(index), y(line.values[index])))
                .collect();
            let _ = writeln!(
                svg,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash} points=\"{}\"/>",
                line.color,
                points.join(" ")
            );
        }
        let legend_y = plot_top + 16.0 * number as f64;
        crate::svg::legend_entry(svg, right, legend_y, line.color, dash, line.name);
    }
}

/// Index ranges of consecutive finite values.
fn finite_runs(values: &[f64]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = None;
    for (index, value) in values.iter().enumerate() {
        match (value.is_finite(), start) {
            (true, None) => start = Some(index),
            (false, Some(begin)) => {
                runs.push(begin..index);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(begin) = start {
        runs.push(begin..values.len());
    }
    runs
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample_report() -> RunReport {
        let interval = |start: &str, offered: u64, answered: u64| Row {
            day: Some(0),
            interval_start: Some(start.to_owned()),
            site: "all".to_owned(),
            queue: "all".to_owned(),
            offered,
            answered,
            abandoned: offered - answered,
            service_level: answered as f64 / offered.max(1) as f64,
            queue_length_mean: 1.5,
            queue_length_max: 4,
            ..Row::default()
        };
        RunReport {
            scenario: "a <test> & \"quote\"".to_owned(),
            interval_minutes: 30,
            service_level_target: 0.8,
            service_level_threshold_s: 20.0,
            intervals: vec![
                interval("08:00", 10, 9),
                interval("08:30", 20, 15),
                interval("09:00", 0, 0),
            ],
            ..RunReport::default()
        }
    }

    #[test]
    fn csv_has_header_and_one_line_per_row_with_quoted_commas() {
        let mut report = sample_report();
        report.intervals[0].site = "a,b".to_owned();
        let text = csv(&report.intervals);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].split(',').count(), 22);
        assert_eq!(lines[2].split(',').count(), 22);
        assert!(
            lines[1].starts_with("0,08:00,\"a,b\",all,10,9,"),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn svg_plots_only_open_intervals_and_escape_text() {
        let report = sample_report();
        let svg = volume_svg(&report);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        // Two open intervals → two points per polyline; the closed 09:00 is skipped.
        let polyline = svg
            .lines()
            .find(|line| line.starts_with("<polyline"))
            .unwrap();
        let points = polyline
            .split("points=\"")
            .nth(1)
            .unwrap()
            .trim_end_matches("\"/>");
        assert_eq!(points.split(' ').count(), 2);
        assert!(!svg.contains("09:00"));
        let level = service_level_svg(&report);
        assert!(level.contains("Service level"));
        assert!(!level.contains("<test>"));
    }

    #[test]
    fn an_empty_interval_inside_the_day_is_a_gap_in_the_service_level() {
        let mut report = sample_report();
        report.intervals.push(Row {
            interval_start: Some("09:30".to_owned()),
            offered: 5,
            answered: 5,
            service_level: 1.0,
            ..Row::default()
        });
        report.intervals[2].service_level = f64::NAN;
        let svg = service_level_svg(&report);
        let blue: Vec<&str> = svg
            .lines()
            .filter(|line| line.starts_with("<polyline") && line.contains("#1f77b4"))
            .collect();
        // 08:00, 08:30 | gap at 09:00 | 09:30 (a single point is drawn as a dot).
        assert_eq!(blue.len(), 1, "{svg}");
        assert!(svg.contains("<circle"), "{svg}");
        assert!(svg.contains("09:00") && !svg.contains("NaN"));
    }

    #[test]
    fn nice_ceiling_rounds_up_to_a_readable_bound() {
        assert_eq!(nice_ceiling(7.3), 10.0);
        assert_eq!(nice_ceiling(230.0), 250.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
    }

    #[test]
    fn files_are_written() {
        let directory = tempfile::tempdir().unwrap();
        write_files(&sample_report(), directory.path()).unwrap();
        for name in OUTPUT_FILES {
            assert!(directory.path().join(name).exists(), "{name}");
        }
    }
}
