//! One self-contained HTML report per run (`report.html` in `--out`): summary against the
//! targets, service level and queue through the day, volume, per-site and per-queue tables and
//! the staffing plan. Inline SVG and CSS only: no scripts, no fonts or images from elsewhere,
//! so a planner can open it offline or mail it.

use std::fmt::Write as _;

use crate::report::{self, Row, RunReport};
use crate::scenario::{Scenario, clock_of};
use crate::svg::escape;

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:13px}\
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}\
th:first-child,td:first-child{text-align:left}\
.miss{color:#b00;font-weight:bold}.ok{color:#070}\
.staff td{padding:2px 4px;font-size:11px}";

/// The report page.
pub fn render(report: &RunReport, scenario: &Scenario) -> String {
    let mut html = String::with_capacity(64 * 1024);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&report.scenario)
    );
    let _ = writeln!(html, "<h1>{}</h1>", escape(&report.scenario));
    let _ = writeln!(
        html,
        "<p>seed {}, {} day(s), {}-minute intervals; {} events. Chain-wide rows count each \
         contact once, from its first arrival; an interval without contacts has no service \
         level (a gap in the plot, an empty cell in the tables).</p>",
        report.seed, report.days, report.interval_minutes, report.events
    );
    summary(&mut html, report);
    html.push_str("<h2>Through the day</h2>\n");
    html.push_str(&report::service_level_svg(report));
    html.push_str(&report::volume_svg(report));
    html.push_str("<h2>Sites</h2>\n");
    table(
        &mut html,
        report.sites.iter().chain(std::iter::once(&report.total)),
        report,
    );
    html.push_str("<h2>Queues</h2>\n");
    table(&mut html, report.queues.iter(), report);
    staffing(&mut html, scenario);
    html.push_str("</body></html>\n");
    html
}

fn summary(html: &mut String, report: &RunReport) {
    let total = &report.total;
    let level_met = total.service_level >= report.service_level_target;
    let abandonment_met = total.abandonment <= report.abandonment_target;
    let mark = |met: bool| if met { "ok" } else { "miss" };
    let _ = writeln!(
        html,
        "<h2>Summary against targets</h2><table><tr><th>figure</th><th>result</th><th>target</th></tr>\
         <tr><td>service level (answered within {:.0} s)</td><td class=\"{}\">{}</td><td>≥ {:.0}%</td></tr>\
         <tr><td>abandoned</td><td class=\"{}\">{:.2}%</td><td>≤ {:.0}%</td></tr>\
         <tr><td>contacts offered (each once)</td><td>{}</td><td></td></tr>\
         <tr><td>answered</td><td>{}</td><td></td></tr>\
         <tr><td>average speed of answer</td><td>{:.1} s</td><td></td></tr>\
         <tr><td>finished by the bot</td><td>{}</td><td></td></tr>\
         <tr><td>intervals below the SL target</td><td>{} of {}</td><td></td></tr></table>",
        report.service_level_threshold_s,
        mark(level_met),
        percent(total.service_level),
        report.service_level_target * 100.0,
        mark(abandonment_met),
        total.abandonment * 100.0,
        report.abandonment_target * 100.0,
        total.offered,
        total.answered,
        total.answer_speed_s_mean,
        report.bot_handled,
        report
            .intervals
            .iter()
            .filter(|row| row.service_level < report.service_level_target)
            .count(),
        report
            .intervals
            .iter()
            .filter(|row| row.service_level.is_finite())
            .count(),
    );
}

fn percent(value: f64) -> String {
    if value.is_finite() {
        format!("{:.1}%", value * 100.0)
    } else {
        String::new()
    }
}

fn table<'a>(html: &mut String, rows: impl Iterator<Item = &'a Row>, report: &RunReport) {
    html.push_str(
        "<table><tr><th>site</th><th>queue</th><th>offered</th><th>answered</th><th>SL</th>\
         <th>abandoned</th><th>ASA s</th><th>AHT s</th><th>occupancy</th><th>queue mean</th>\
         <th>queue max</th><th>overflow out</th><th>overflow in</th></tr>\n",
    );
    for row in rows {
        let level_class =
            if row.service_level.is_finite() && row.service_level < report.service_level_target {
                " class=\"miss\""
            } else {
                ""
            };
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{level_class}>{}</td><td>{:.2}%</td>\
             <td>{:.1}</td><td>{:.0}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&row.site),
            escape(&row.queue),
            row.offered,
            row.answered,
            percent(row.service_level),
            row.abandonment * 100.0,
            row.answer_speed_s_mean,
            row.handle_time_s_mean,
            row.occupancy.map_or_else(String::new, percent),
            row.queue_length_mean,
            row.queue_length_max,
            row.overflowed_out,
            row.overflowed_in
        );
    }
    html.push_str("</table>\n");
}

/// Agents per interval per site and staffing group (open intervals only).
fn staffing(html: &mut String, scenario: &Scenario) {
    let shares = scenario.interval_shares();
    let first = shares.iter().position(|share| *share > 0.0).unwrap_or(0);
    let last = shares.iter().rposition(|share| *share > 0.0).unwrap_or(0);
    html.push_str("<h2>Staffing plan (agents logged in per interval)</h2>\n<table class=\"staff\"><tr><th>site / group</th>");
    for interval in first..=last {
        let _ = write!(
            html,
            "<th>{}</th>",
            clock_of(interval as u32 * scenario.interval_minutes)
        );
    }
    html.push_str("<th>agent-hours</th></tr>\n");
    let hours_per_interval = f64::from(scenario.interval_minutes) / 60.0;
    for site in &scenario.sites {
        for entry in &site.staffing {
            let agents = scenario.entry_agents_per_interval(entry);
            let _ = write!(
                html,
                "<tr><td>{} {}</td>",
                escape(&site.name),
                escape(&entry.skills.join("+"))
            );
            for count in agents.iter().take(last + 1).skip(first) {
                let _ = write!(html, "<td>{count}</td>");
            }
            let hours: f64 =
                agents.iter().map(|count| f64::from(*count)).sum::<f64>() * hours_per_interval;
            let _ = writeln!(html, "<td>{hours:.1}</td></tr>");
        }
    }
    html.push_str("</table>\n");
}

/// The shift plan page (`staff --shifts --out`): the shifts, the costs and per group and
/// interval the minimum, the scheduled agents, the slack and the verified service level,
/// with a chart of minimum against scheduled per group.
pub fn render_shift_plan(plan: &crate::shifts::ShiftPlan, scenario: &Scenario) -> String {
    let mut html = String::with_capacity(64 * 1024);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Shift plan — {}</title><style>{STYLE}</style></head><body>\n\
         <h1>Shift plan — {}</h1>\n",
        escape(&scenario.name),
        escape(&scenario.name)
    );
    let _ = writeln!(
        html,
        "<table><tr><th>figure</th><th>cost per day</th></tr>\
         <tr><td>this plan</td><td>{:.2}</td></tr>\
         <tr><td>the same patterns staffing every interval at the group's peak</td><td>{:.2}</td></tr>\
         <tr><td>the per-interval minimum without shift constraints (lower bound)</td><td>{:.2}</td></tr></table>\
         <p>Verified with {} fresh replications: {} of {} group-intervals meet both targets \
         ({} re-solves).</p>",
        plan.cost,
        plan.cost_peak_staffing,
        plan.cost_per_interval_minimum,
        plan.replications,
        plan.cells_met,
        plan.cells,
        plan.verify_rounds
    );
    html.push_str("<h2>Shifts</h2>\n<table><tr><th>site</th><th>group</th><th>pattern</th><th>start</th><th>agents</th><th>cost</th></tr>\n");
    for shift in &plan.shifts {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td></tr>",
            escape(&shift.site),
            escape(&shift.group),
            escape(&shift.pattern),
            shift.start,
            shift.agents,
            shift.cost
        );
    }
    html.push_str("</table>\n<h2>Minimum and scheduled agents</h2>\n");
    let mut groups: Vec<(&str, &str)> = plan
        .intervals
        .iter()
        .map(|row| (row.site.as_str(), row.group.as_str()))
        .collect();
    groups.dedup();
    for (site, group) in groups {
        let rows: Vec<&crate::shifts::IntervalSlack> = plan
            .intervals
            .iter()
            .filter(|row| row.site == site && row.group == group)
            .collect();
        let minute = |row: &crate::shifts::IntervalSlack| {
            crate::scenario::parse_clock_minutes(&row.interval_start).map_or(f64::NAN, f64::from)
        };
        let points = |pick: &dyn Fn(&crate::shifts::IntervalSlack) -> u32| -> Vec<(f64, f64)> {
            rows.iter()
                .map(|row| (minute(row), f64::from(pick(row))))
                .collect()
        };
        let from = rows.first().map_or(0.0, |row| minute(row));
        let to = rows.last().map_or(1_440.0, |row| {
            minute(row) + f64::from(scenario.interval_minutes)
        });
        html.push_str(&crate::svg::time_chart(
            &format!("{site} {group}: agents per interval"),
            (from, to),
            0.0,
            &[
                crate::svg::Series::points("minimum", "#d62728", points(&|row| row.minimum), true),
                crate::svg::Series::points(
                    "scheduled",
                    "#1f77b4",
                    points(&|row| row.scheduled),
                    false,
                ),
            ],
            &|minute| clock_of(minute as u32),
        ));
    }
    html.push_str("<h2>Per interval</h2>\n<table><tr><th>site</th><th>group</th><th>start</th><th>minimum</th><th>scheduled</th><th>slack</th><th>SL</th><th>abandoned</th></tr>\n");
    for row in &plan.intervals {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&row.site),
            escape(&row.group),
            row.interval_start,
            row.minimum,
            row.scheduled,
            row.slack,
            row.service_level.map_or_else(String::new, percent),
            row.abandonment.map_or_else(String::new, percent)
        );
    }
    html.push_str("</table>\n</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_page_is_self_contained_and_has_every_section() {
        let scenario = Scenario::built_in().unwrap();
        let report = crate::engine::simulate(&scenario, scenario.seed, None).unwrap();
        let page = render(&report, &scenario);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(!page.contains("<script"));
        assert!(!page.contains("src=\"http"));
        assert!(!page.contains("href=\"http"));
        for section in [
            "Summary against targets",
            "Through the day",
            "Sites",
            "Queues",
            "Staffing plan",
        ] {
            assert!(page.contains(section), "{section}");
        }
        assert_eq!(page.matches("<svg").count(), 2);
        assert!(!page.contains("NaN"));
    }
}
