//! Supervisor endpoints and reports: queues, agents, monitoring, interval reports.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::Value;

use crate::actors::site::reports::LocalDay;

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
    let reply = state.site.send(SiteInput::Report { date }).await??;
    let report =
        serde_json::to_value(&reply).map_err(|error| ApiError::Internal(error.to_string()))?;
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
