//! Supervisor endpoints and reports: queues, agents, monitoring, interval reports.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::Value;

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportQuery {
    #[serde(default)]
    format: Option<ReportFormat>,
}

pub(super) async fn report_intervals(
    state: Data,
    request: HttpRequest,
    query: web::Query<ReportQuery>,
) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    let reply = state.site.send(SiteInput::Report).await??;
    let report =
        serde_json::to_value(&reply).map_err(|error| ApiError::Internal(error.to_string()))?;
    match query.format {
        Some(ReportFormat::Csv) => Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                "attachment; filename=\"intervals.csv\"",
            ))
            .body(report_csv(&state, &report))),
        _ => Ok(HttpResponse::Ok().json(report)),
    }
}

/// Per-interval, per-queue rows as CSV (comma separated, header row, `.` decimals).
pub(super) fn report_csv(state: &Data, report: &Value) -> String {
    let mut csv = String::from(
        "interval_start,site,skill,offered,answered,abandoned,abandoned_short,answered_within_target,service_level,abandon_rate,asa_ms,aht_ms,queue_length_max\n",
    );
    let interval_minutes = u64::from(state.config.metrics.interval_minutes);
    let empty = Vec::new();
    let intervals = report["intervals"].as_array().unwrap_or(&empty);
    for (position, interval) in intervals.iter().enumerate() {
        let index = interval["interval"].as_u64().unwrap_or(position as u64);
        let start_minutes = index * interval_minutes;
        let start = format!("{:02}:{:02}", (start_minutes / 60) % 24, start_minutes % 60);
        let mut rows: Vec<&Value> = Vec::new();
        for key in ["sites", "queues"] {
            if let Some(list) = interval[key].as_array() {
                rows.extend(list.iter());
            }
        }
        for row in rows {
            let skill = row["skill"]
                .as_u64()
                .and_then(|skill| state.config.routing.skills.get(skill as usize))
                .map(|skill| skill.name.clone())
                .unwrap_or_else(|| "all".to_string());
            let number = |value: &Value| {
                value
                    .as_f64()
                    .map(|number| format!("{number:.4}"))
                    .unwrap_or_default()
            };
            let counters = &row["counters"];
            csv.push_str(&format!(
                "{start},{},{skill},{},{},{},{},{},{},{},{},{},{}\n",
                state.config.site.id,
                counters["offered"],
                counters["answered"],
                counters["abandoned"],
                counters["abandoned_short"],
                counters["answered_within_target"],
                number(&row["service_level"]),
                number(&row["abandon_rate"]),
                number(&row["asa_ms"]),
                number(&row["aht_ms"]),
                counters["queue_length_max"],
            ));
        }
    }
    csv
}
