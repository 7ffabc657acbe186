//! Supervisor endpoints and reports: queues, agents, monitoring, interval reports.

use actix_web::{HttpRequest, HttpResponse, web};
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::actors::site::reports::LocalDay;
use crate::api::AppState;
use crate::state::quality::{QualityFigure, Review};

use super::*;

pub(super) async fn supervisor_queues(state: Data, request: HttpRequest) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    ask(&state, SiteInput::QueuesView).await
}

pub(super) async fn supervisor_agents(state: Data, request: HttpRequest) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    ask(&state, SiteInput::AgentsView).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub(super) enum MonitorMode {
    Listen,
    Whisper,
    Barge,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MonitorBody {
    agent: String,
    mode: MonitorMode,
}

pub(super) async fn supervisor_monitor(
    state: Data,
    request: HttpRequest,
    body: web::Json<MonitorBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, &[Role::Supervisor])?;
    let body = body.into_inner();
    validate_login(&body.agent)?;
    let mode = match body.mode {
        MonitorMode::Listen => "listen",
        MonitorMode::Whisper => "whisper",
        MonitorMode::Barge => "barge",
    };
    let value = state
        .site
        .send(SiteInput::Monitor {
            supervisor: actor.name,
            agent: body.agent,
            mode: mode.to_string(),
        })
        .await??;
    Ok(HttpResponse::Accepted().json(value))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub(super) enum ReportFormat {
    Json,
    Csv,
}

/// CSV separator: `comma` (`.` decimals) or `semicolon` / `;` (`,` decimals, for spreadsheets
/// in locales such as Russian where the comma is the decimal mark).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum CsvSeparator {
    #[default]
    #[serde(alias = ",")]
    Comma,
    #[serde(alias = ";")]
    Semicolon,
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
}

pub(super) async fn report_intervals(
    state: Data,
    request: HttpRequest,
    query: web::Query<ReportQuery>,
) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    let date = match query.date.as_deref() {
        None => None,
        Some(text) => Some(LocalDay::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!("date `{text}` is not a YYYY-MM-DD calendar date"))
        })?),
    };
    let report = day_report(&state, date).await?;
    match query.format {
        Some(ReportFormat::Csv) => Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                format!(
                    "attachment; filename=\"intervals-{}.csv\"",
                    report["date"].as_str().unwrap_or("today")
                ),
            ))
            .body(report_csv(&state, &report, query.sep.unwrap_or_default()))),
        _ => Ok(HttpResponse::Ok().json(report)),
    }
}

/// One local day's report as JSON (today without `date`), its agent rows with their logins
/// and quality figures (see [`add_quality`]).
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

/// `GET /reports/agents?date=&format=json|csv&sep=`: per-agent workload and quality of one
/// local day (today by default).
pub(super) async fn report_agents(
    state: Data,
    request: HttpRequest,
    query: web::Query<ReportQuery>,
) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    let date = match query.date.as_deref() {
        None => None,
        Some(text) => Some(LocalDay::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!("date `{text}` is not a YYYY-MM-DD calendar date"))
        })?),
    };
    let report = day_report(&state, date).await?;
    let date = report["date"].as_str().unwrap_or("today").to_string();
    match query.format {
        Some(ReportFormat::Csv) => Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                format!("attachment; filename=\"agents-{date}.csv\""),
            ))
            .body(agents_csv(&state, &report, query.sep.unwrap_or_default()))),
        _ => Ok(HttpResponse::Ok().json(json!({
            "date": date,
            "site": state.config.site.id,
            "utc_offset_minutes": report["utc_offset_minutes"],
            "agents": report["agents"],
        }))),
    }
}

/// CSV cells: the separator and decimal mark of `sep`, quoting as RFC 4180 needs.
struct CsvStyle {
    separator: char,
    decimal: char,
}

impl CsvStyle {
    fn of(sep: CsvSeparator) -> Self {
        match sep {
            CsvSeparator::Comma => Self {
                separator: ',',
                decimal: '.',
            },
            CsvSeparator::Semicolon => Self {
                separator: ';',
                decimal: ',',
            },
        }
    }

    fn field(&self, text: &str) -> String {
        if text.contains([self.separator, '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_string()
        }
    }

    fn number(&self, value: &Value) -> String {
        value
            .as_f64()
            .map(|number| format!("{number:.4}").replace('.', &self.decimal.to_string()))
            .unwrap_or_default()
    }

    fn line(&self, fields: &[String]) -> String {
        let mut line = fields.join(&self.separator.to_string());
        line.push('\n');
        line
    }
}

/// Per-agent rows of one local day as CSV: workload and quality (`review_score_percent_mean`
/// in percent, empty without reviews).
pub(super) fn agents_csv(state: &Data, report: &Value, sep: CsvSeparator) -> String {
    let style = CsvStyle::of(sep);
    let header = [
        "date",
        "site",
        "agent",
        "offered",
        "answered",
        "handled",
        "rejected",
        "transferred_out",
        "talk_ms_sum",
        "wrap_up_ms_sum",
        "staffed_ms",
        "aht_ms",
        "occupancy",
        "reviews",
        "review_score_percent_mean",
    ];
    let mut csv = style.line(&header.map(str::to_string));
    let date = report["date"].as_str().unwrap_or("");
    let empty = Vec::new();
    for row in report["agents"].as_array().unwrap_or(&empty) {
        let counters = &row["counters"];
        let count = |key: &str| {
            counters[key]
                .as_u64()
                .map(|n| n.to_string())
                .unwrap_or_default()
        };
        csv.push_str(&style.line(&[
            date.to_string(),
            style.field(&state.config.site.id),
            style.field(row["login"].as_str().unwrap_or("")),
            count("offered"),
            count("answered"),
            count("handled"),
            count("rejected"),
            count("transferred_out"),
            count("talk_ms_sum"),
            count("wrap_up_ms_sum"),
            count("staffed_ms"),
            style.number(&row["aht_ms"]),
            style.number(&row["occupancy"]),
            row["reviews"].as_u64().unwrap_or(0).to_string(),
            style.number(&row["review_score_percent_mean"]),
        ]));
    }
    csv
}

/// The local start of an interval as RFC 3339 with the site's offset, e.g.
/// `2026-12-03T09:15:00+03:00`.
fn local_start(date: &str, start_ms: u64, offset_minutes: i64) -> String {
    let minutes = start_ms / 60_000;
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let offset = offset_minutes.unsigned_abs();
    format!(
        "{date}T{:02}:{:02}:00{sign}{:02}:{:02}",
        minutes / 60,
        minutes % 60,
        offset / 60,
        offset % 60
    )
}

/// Per-interval, per-queue rows of one local day as CSV (header row; `interval_start` in
/// RFC 3339 with the site's offset). With [`CsvSeparator::Semicolon`] fields are separated by
/// `;` and decimals use `,`.
pub(super) fn report_csv(state: &Data, report: &Value, sep: CsvSeparator) -> String {
    let (separator, decimal) = match sep {
        CsvSeparator::Comma => (',', '.'),
        CsvSeparator::Semicolon => (';', ','),
    };
    let field = |text: &str| -> String {
        if text.contains([separator, '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_string()
        }
    };
    let header = [
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
    ];
    let mut csv = header.join(&separator.to_string());
    csv.push('\n');
    let date = report["date"].as_str().unwrap_or("1970-01-01");
    let offset = report["utc_offset_minutes"].as_i64().unwrap_or(0);
    let number = |value: &Value| {
        value
            .as_f64()
            .map(|number| format!("{number:.4}").replace('.', &decimal.to_string()))
            .unwrap_or_default()
    };
    let empty = Vec::new();
    for interval in report["intervals"].as_array().unwrap_or(&empty) {
        let start = local_start(date, interval["start_ms"].as_u64().unwrap_or(0), offset);
        let rows = ["sites", "queues"]
            .into_iter()
            .filter_map(|key| interval[key].as_array())
            .flatten();
        for row in rows {
            let skill = row["skill"]
                .as_u64()
                .and_then(|skill| state.config.routing.skills.get(skill as usize))
                .map(|skill| skill.name.clone())
                .unwrap_or_else(|| "all".to_string());
            let counters = &row["counters"];
            let fields = [
                start.clone(),
                field(&state.config.site.id),
                field(&skill),
                counters["offered"].to_string(),
                counters["answered"].to_string(),
                counters["abandoned"].to_string(),
                counters["abandoned_short"].to_string(),
                counters["answered_within_target"].to_string(),
                number(&row["service_level"]),
                number(&row["abandon_rate"]),
                number(&row["asa_ms"]),
                number(&row["aht_ms"]),
                counters["queue_length_max"].to_string(),
            ];
            csv.push_str(&fields.join(&separator.to_string()));
            csv.push('\n');
        }
    }
    csv
}
