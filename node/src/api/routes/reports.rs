//! `GET /api/v1/reports/intervals`: one local day of the site's interval report, as JSON with
//! names (docs/CONVENTIONS.md) or as CSV for spreadsheets.
//!
//! ```text
//!   ?date=YYYY-MM-DD            the site's local day (default today)
//!   ?format=json|csv            JSON (default) or CSV
//!   ?rows=intervals|agents      CSV rows: interval × site/queue (default), or one per agent
//!   ?sep=comma|semicolon        CSV field separator (`,` `;` also accepted)
//!   ?decimal=point|comma        CSV decimal mark (default: comma with `;`, point with `,`)
//!   ?locale=ru|en               shorthand: ru = `;` and decimal commas, en = `,` and points
//! ```
//!
//! JSON rows name their site by id, their skill by name (`null` for a site row) and agent
//! rows the agent by login; every interval carries `interval_start` (RFC 3339 in the site's
//! offset) and `start_at_ms` (ms since the Unix epoch) beside `start_ms` (ms since the local
//! midnight of `date`).

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::actors::site::reports::LocalDay;
use crate::api::AppState;
use crate::api::export::site_names;
use crate::state::quality::{QualityFigure, Review};

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub(super) enum ReportFormat {
    Json,
    Csv,
}

/// CSV separator: `comma` or `semicolon` (`,` and `;` accepted too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum CsvSeparator {
    #[serde(alias = ",")]
    Comma,
    #[serde(alias = ";")]
    Semicolon,
}

/// CSV decimal mark: `point` or `comma` (`.` and `,` accepted too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum DecimalMark {
    #[serde(alias = ".")]
    Point,
    #[serde(alias = ",")]
    Comma,
}

/// A spreadsheet locale: `ru` (`;` and decimal commas) or `en` (`,` and points).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum CsvLocale {
    Ru,
    En,
}

/// Which rows a CSV holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum CsvRows {
    /// Interval × (site, queue).
    #[default]
    Intervals,
    /// One row per agent for the day.
    Agents,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportQuery {
    #[serde(default)]
    format: Option<ReportFormat>,
    /// The site's local day, `YYYY-MM-DD` (default: today).
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    sep: Option<CsvSeparator>,
    #[serde(default)]
    decimal: Option<DecimalMark>,
    #[serde(default)]
    locale: Option<CsvLocale>,
    #[serde(default)]
    rows: Option<CsvRows>,
}

/// How a CSV is written: separator and decimal mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CsvStyle {
    separator: char,
    decimal: char,
}

impl ReportQuery {
    /// The CSV style the query asks for: `sep` and `decimal` win over `locale`; a separator
    /// alone brings its usual decimal mark (`;` with `,`); a decimal comma with a comma
    /// separator is refused (the fields could not be told apart).
    fn style(&self) -> Result<CsvStyle, ApiError> {
        let (mut separator, mut decimal) = match self.locale {
            Some(CsvLocale::Ru) => (';', ','),
            Some(CsvLocale::En) | None => (',', '.'),
        };
        if let Some(sep) = self.sep {
            (separator, decimal) = match sep {
                CsvSeparator::Comma => (',', '.'),
                CsvSeparator::Semicolon => (';', ','),
            };
        }
        if let Some(mark) = self.decimal {
            decimal = match mark {
                DecimalMark::Point => '.',
                DecimalMark::Comma => ',',
            };
        }
        if separator == decimal {
            return Err(ApiError::BadRequest(
                "`decimal=comma` needs `sep=semicolon` (or `locale=ru`)".to_string(),
            ));
        }
        Ok(CsvStyle { separator, decimal })
    }
}

pub(super) async fn report_intervals(
    state: Data,
    request: HttpRequest,
    query: web::Query<ReportQuery>,
) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    let date = local_day("date", query.date.as_deref())?;
    let csv = matches!(query.format, Some(ReportFormat::Csv));
    let style = query.style()?;
    let csv_only = query.sep.is_some()
        || query.decimal.is_some()
        || query.locale.is_some()
        || query.rows.is_some();
    if !csv && csv_only {
        return Err(ApiError::BadRequest(
            "`sep`, `decimal`, `locale` and `rows` are for `format=csv`".to_string(),
        ));
    }
    let report = named_report(&state, day_report(&state, date).await?);
    if !csv {
        return Ok(HttpResponse::Ok().json(report));
    }
    let rows = query.rows.unwrap_or_default();
    let (body, kind) = match rows {
        CsvRows::Intervals => (interval_csv(&state, &report, style), "intervals"),
        CsvRows::Agents => (agent_csv(&state, &report, style), "agents"),
    };
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!(
                "attachment; filename=\"{kind}-{}.csv\"",
                report["date"].as_str().unwrap_or("today")
            ),
        ))
        .body(body))
}

/// One local day's report as JSON (today without `date`), its agent rows with their logins
/// and quality figures (see [`add_quality`]); ids, not names (see [`named_report`]).
pub(crate) async fn day_report(
    state: &AppState,
    date: Option<LocalDay>,
) -> Result<Value, ApiError> {
    let reply = state.site.send(SiteInput::Report { date }).await??;
    let mut report =
        serde_json::to_value(&reply).map_err(|error| ApiError::Internal(error.to_string()))?;
    add_quality(state, &mut report);
    Ok(report)
}

/// Adds to each agent row of `report` (a day's report as JSON) the agent's `login` and the
/// quality reviews of this site's contacts the agent answered that ended that local day:
/// `reviews` and `review_score_percent_mean` (percent, `null` without reviews). An agent
/// reviewed that day without a workload row gets a row of its own (no counters). Read from
/// this node's copy of the replicated reviews.
pub(crate) fn add_quality(state: &AppState, report: &mut Value) {
    let Some(day) = report["date"].as_str().and_then(LocalDay::parse) else {
        return;
    };
    let site = &state.config.site;
    let mut figures: BTreeMap<String, QualityFigure> = state.shared.read(|replicated| {
        let mut by_agent: BTreeMap<String, Vec<&Review>> = BTreeMap::new();
        for review in replicated.reviews() {
            if review.site == site.id
                && super::quality::review_day(review, site.utc_offset_minutes) == day
            {
                by_agent
                    .entry(review.agent.clone())
                    .or_default()
                    .push(review);
            }
        }
        by_agent
            .into_iter()
            .map(|(agent, reviews)| (agent, QualityFigure::of(reviews)))
            .collect()
    });
    let logins: BTreeMap<u64, &str> = state
        .config
        .agents
        .iter()
        .map(|agent| (u64::from(agent.id), agent.login.as_str()))
        .collect();
    let Some(rows) = report["agents"].as_array_mut() else {
        return;
    };
    let put = |row: &mut Value, login: &str, figure: QualityFigure| {
        row["login"] = json!(login);
        row["reviews"] = json!(figure.reviews);
        row["review_score_percent_mean"] = json!(figure.score_percent_mean);
    };
    for row in rows.iter_mut() {
        let id = row["agent"].as_u64().unwrap_or(0);
        let login = logins
            .get(&id)
            .map_or_else(|| format!("agent {id}"), |login| (*login).to_string());
        let figure = figures.remove(&login).unwrap_or_default();
        put(row, &login, figure);
    }
    for (login, figure) in figures {
        let id = state
            .config
            .agents
            .iter()
            .find(|agent| agent.login == login)
            .map(|agent| agent.id);
        let mut row = json!({"agent": id, "site": site.number, "counters": null,
                             "occupancy": null, "aht_ms": null});
        put(&mut row, &login, figure);
        rows.push(row);
    }
}

/// `GET /reports/agents?date=&format=json|csv&sep=&decimal=&locale=`: per-agent workload and
/// quality of one local day (today by default); the CSV is the intervals report's
/// `rows=agents` variant.
pub(super) async fn report_agents(
    state: Data,
    request: HttpRequest,
    query: web::Query<ReportQuery>,
) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    let date = local_day("date", query.date.as_deref())?;
    if query.rows.is_some() {
        return Err(ApiError::BadRequest(
            "`rows` is for /reports/intervals".to_string(),
        ));
    }
    let style = query.style()?;
    let report = named_report(&state, day_report(&state, date).await?);
    let date = report["date"].as_str().unwrap_or("today").to_string();
    match query.format {
        Some(ReportFormat::Csv) => Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                format!("attachment; filename=\"agents-{date}.csv\""),
            ))
            .body(agent_csv(&state, &report, style))),
        _ => Ok(HttpResponse::Ok().json(json!({
            "date": date,
            "site": state.config.site.id,
            "utc_offset_minutes": report["utc_offset_minutes"],
            "agents": report["agents"],
        }))),
    }
}

/// The report with names and epoch times (see the module documentation).
pub(super) fn named_report(state: &Data, mut report: Value) -> Value {
    let sites = site_names(state);
    let skills: Vec<String> = state
        .config
        .routing
        .skills
        .iter()
        .map(|skill| skill.name.clone())
        .collect();
    let logins: BTreeMap<u64, String> = state
        .config
        .agents
        .iter()
        .map(|agent| (u64::from(agent.id), agent.login.clone()))
        .collect();
    let name_row = |row: &mut Value| {
        if let Some(site) = row["site"].as_u64() {
            row["site"] = json!(
                sites
                    .get(&site)
                    .cloned()
                    .unwrap_or_else(|| site.to_string())
            );
        }
        if row.get("skill").is_some() {
            let skill = row["skill"]
                .as_u64()
                .and_then(|skill| usize::try_from(skill).ok())
                .and_then(|skill| skills.get(skill).cloned());
            row["skill"] = json!(skill);
        }
        if let Some(agent) = row["agent"].as_u64() {
            row["agent"] = json!(
                logins
                    .get(&agent)
                    .cloned()
                    .unwrap_or_else(|| agent.to_string())
            );
        }
    };
    name_row(&mut report["totals"]);
    for key in ["sites", "queues", "agents"] {
        if let Some(rows) = report[key].as_array_mut() {
            rows.iter_mut().for_each(name_row);
        }
    }
    let date = report["date"].as_str().unwrap_or("1970-01-01").to_string();
    let offset = report["utc_offset_minutes"].as_i64().unwrap_or(0);
    let midnight = LocalDay::parse(&date).map_or(0, |day| {
        day.midnight_utc_ms(i16::try_from(offset).unwrap_or(0))
    });
    if let Some(intervals) = report["intervals"].as_array_mut() {
        for interval in intervals {
            let start_ms = interval["start_ms"].as_u64().unwrap_or(0);
            interval["interval_start"] = json!(local_start(&date, start_ms, offset));
            let start_at = midnight.saturating_add(i64::try_from(start_ms).unwrap_or(0));
            interval["start_at_ms"] = json!(start_at);
            for key in ["sites", "queues"] {
                if let Some(rows) = interval[key].as_array_mut() {
                    rows.iter_mut().for_each(name_row);
                }
            }
        }
    }
    report
}

/// The local start of an interval as RFC 3339 with the site's offset, e.g.
/// `2026-12-03T09:15:00+03:00`.
fn local_start(date: &str, start_ms: u64, offset_minutes: i64) -> String {
    let minutes = start_ms / 60_000;
    format!(
        "{date}T{:02}:{:02}:00{}",
        minutes / 60,
        minutes % 60,
        offset_text(offset_minutes)
    )
}

/// An offset from UTC as RFC 3339 writes it: `+03:00`, `-05:30`.
fn offset_text(offset_minutes: i64) -> String {
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let offset = offset_minutes.unsigned_abs();
    format!("{sign}{:02}:{:02}", offset / 60, offset % 60)
}

/// Writes CSV lines in one style: fields quoted when needed, numbers with its decimal mark.
struct CsvWriter {
    style: CsvStyle,
    text: String,
}

impl CsvWriter {
    fn new(style: CsvStyle, header: &[&str]) -> Self {
        let mut writer = Self {
            style,
            text: String::new(),
        };
        let header: Vec<String> = header.iter().map(|title| (*title).to_string()).collect();
        writer.line(&header);
        writer
    }

    fn field(&self, text: &str) -> String {
        if text.contains([self.style.separator, '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_string()
        }
    }

    /// A ratio or average with four decimals; empty when undefined.
    fn number(&self, value: &Value) -> String {
        value
            .as_f64()
            .map(|number| format!("{number:.4}").replace('.', &self.style.decimal.to_string()))
            .unwrap_or_default()
    }

    fn line(&mut self, fields: &[String]) {
        self.text
            .push_str(&fields.join(&self.style.separator.to_string()));
        self.text.push('\n');
    }
}

/// Per-interval site and queue rows of one local day (`interval_start` in RFC 3339 with the
/// site's offset; `skill` is `all` on a site row; `occupancy` on site rows only).
fn interval_csv(state: &Data, report: &Value, style: CsvStyle) -> String {
    let mut csv = CsvWriter::new(
        style,
        &[
            "interval_start",
            "site",
            "skill",
            "offered",
            "answered",
            "abandoned",
            "abandoned_short",
            "answered_within_target",
            "service_level",
            "abandon_rate",
            "asa_ms",
            "aht_ms",
            "queue_length_max",
            "occupancy",
        ],
    );
    let empty = Vec::new();
    for interval in report["intervals"].as_array().unwrap_or(&empty) {
        let start = interval["interval_start"].as_str().unwrap_or_default();
        let rows = ["sites", "queues"]
            .into_iter()
            .filter_map(|key| interval[key].as_array())
            .flatten();
        for row in rows {
            let site = row["site"].as_str().unwrap_or(&state.config.site.id);
            let skill = row["skill"].as_str().unwrap_or("all");
            let counters = &row["counters"];
            let fields = vec![
                start.to_string(),
                csv.field(site),
                csv.field(skill),
                counters["offered"].to_string(),
                counters["answered"].to_string(),
                counters["abandoned"].to_string(),
                counters["abandoned_short"].to_string(),
                counters["answered_within_target"].to_string(),
                csv.number(&row["service_level"]),
                csv.number(&row["abandon_rate"]),
                csv.number(&row["asa_ms"]),
                csv.number(&row["aht_ms"]),
                counters["queue_length_max"].to_string(),
                csv.number(&row["occupancy"]),
            ];
            csv.line(&fields);
        }
    }
    csv.text
}

/// One row per agent for the local day: workload, times on duty, occupancy and quality
/// reviews (`review_score_percent_mean` in percent, empty without reviews).
fn agent_csv(state: &Data, report: &Value, style: CsvStyle) -> String {
    let mut csv = CsvWriter::new(
        style,
        &[
            "date",
            "utc_offset",
            "site",
            "agent",
            "offered",
            "answered",
            "handled",
            "rejected",
            "timed_out",
            "transferred_out",
            "talk_ms",
            "wrap_up_ms",
            "staffed_ms",
            "available_ms",
            "busy_ms",
            "not_ready_ms",
            "aht_ms",
            "occupancy",
            "reviews",
            "review_score_percent_mean",
        ],
    );
    let date = report["date"].as_str().unwrap_or_default().to_string();
    let offset = offset_text(report["utc_offset_minutes"].as_i64().unwrap_or(0));
    let empty = Vec::new();
    for row in report["agents"].as_array().unwrap_or(&empty) {
        let counters = &row["counters"];
        let count = |key: &str| counters[key].as_u64().unwrap_or(0).to_string();
        let site = row["site"].as_str().unwrap_or(&state.config.site.id);
        let agent = row["agent"]
            .as_str()
            .or(row["login"].as_str())
            .unwrap_or_default();
        let fields = vec![
            date.clone(),
            offset.clone(),
            csv.field(site),
            csv.field(agent),
            count("offered"),
            count("answered"),
            count("handled"),
            count("rejected"),
            count("timed_out"),
            count("transferred_out"),
            count("talk_ms_sum"),
            count("wrap_up_ms_sum"),
            count("staffed_ms"),
            count("available_ms"),
            count("busy_ms"),
            count("not_ready_ms"),
            csv.number(&row["aht_ms"]),
            csv.number(&row["occupancy"]),
            row["reviews"].as_u64().unwrap_or(0).to_string(),
            csv.number(&row["review_score_percent_mean"]),
        ];
        csv.line(&fields);
    }
    csv.text
}
