//! Spreadsheet export (`.xlsx`, rust_xlsxwriter) for supervisors: interval reports, per-agent
//! workload and the order journal, one sheet per site, with number, percent, duration and
//! date-time formats and a frozen, filterable header row. The CSV of the interval report stays
//! at `GET /api/v1/reports/intervals?format=csv`.
//!
//! ```text
//!   GET /api/v1/exports/intervals.xlsx   interval × queue rows (this node's routing metrics)
//!   GET /api/v1/exports/agents.xlsx      per-agent workload and quality reviews today
//!   GET /api/v1/exports/orders.xlsx      the replicated order journal, newest first
//! ```

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use rust_xlsxwriter::{ExcelDateTime, Format, FormatAlign, Workbook, XlsxError};
use serde_json::Value;

use super::AppState;
use super::auth::require;
use super::problem::ApiError;
use crate::state::model::{Fulfilment, Order, Role};

/// Orders exported at most (newest first).
pub const EXPORT_ORDERS_MAX: usize = 100_000;
/// Excel's limit on sheet names.
const SHEET_NAME_CHARS_MAX: usize = 31;
/// Milliseconds in a day (Excel durations and times are fractions of a day).
const DAY_MS: f64 = 86_400_000.0;

/// One cell of an exported row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text.
    Text(String),
    /// A count.
    Count(u64),
    /// Money in minor units (kopecks), shown as roubles.
    Money(u64),
    /// A ratio shown as a percentage (empty when undefined).
    Percent(Option<f64>),
    /// A duration in milliseconds, shown as `[h]:mm:ss` (empty when undefined).
    Duration(Option<f64>),
    /// A Unix time in milliseconds (UTC), shown as date and time.
    Time(u64),
}

/// A sheet: its name, header and rows (every row as long as the header).
#[derive(Debug, Clone, PartialEq)]
pub struct Sheet {
    /// Sheet name (made valid for Excel when written).
    pub name: String,
    /// Column headers.
    pub header: Vec<&'static str>,
    /// Rows.
    pub rows: Vec<Vec<Cell>>,
}

/// Why a workbook could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// rust_xlsxwriter refused something.
    #[error("xlsx: {0}")]
    Xlsx(#[from] XlsxError),
}

impl From<ExportError> for ApiError {
    fn from(error: ExportError) -> Self {
        tracing::error!(%error, "export failed");
        ApiError::Internal(error.to_string())
    }
}

/// A sheet name Excel accepts: no `[]:*?/\`, at most 31 characters, not empty.
pub fn sheet_name(raw: &str) -> String {
    let name: String = raw
        .chars()
        .map(|character| {
            if matches!(character, '[' | ']' | ':' | '*' | '?' | '/' | '\\') {
                '_'
            } else {
                character
            }
        })
        .take(SHEET_NAME_CHARS_MAX)
        .collect();
    let name = name.trim_matches('\'').to_string();
    if name.is_empty() {
        "sheet".to_string()
    } else {
        name
    }
}

struct Formats {
    header: Format,
    count: Format,
    money: Format,
    percent: Format,
    duration: Format,
    time: Format,
}

impl Formats {
    fn new() -> Self {
        Self {
            header: Format::new().set_bold().set_align(FormatAlign::Center),
            count: Format::new().set_num_format("0"),
            money: Format::new().set_num_format("#,##0.00"),
            percent: Format::new().set_num_format("0.0%"),
            duration: Format::new().set_num_format("[h]:mm:ss"),
            time: Format::new().set_num_format("yyyy-mm-dd hh:mm"),
        }
    }
}

/// Writes `sheets` into an `.xlsx` workbook (at least one sheet, even if empty).
pub fn workbook(sheets: &[Sheet]) -> Result<Vec<u8>, ExportError> {
    let formats = Formats::new();
    let mut book = Workbook::new();
    let mut used = BTreeMap::<String, usize>::new();
    for sheet in sheets {
        let mut name = sheet_name(&sheet.name);
        let seen = used.entry(name.to_lowercase()).or_insert(0);
        *seen += 1;
        if *seen > 1 {
            let suffix = format!("-{seen}");
            name = format!(
                "{}{suffix}",
                name.chars()
                    .take(SHEET_NAME_CHARS_MAX - suffix.len())
                    .collect::<String>()
            );
        }
        let worksheet = book.add_worksheet();
        worksheet.set_name(name)?;
        for (column, title) in (0_u16..).zip(&sheet.header) {
            worksheet.write_string_with_format(0, column, *title, &formats.header)?;
            worksheet.set_column_width(column, (title.len() as f64 + 4.0).max(12.0))?;
        }
        for (row, cells) in (1_u32..).zip(&sheet.rows) {
            debug_assert_eq!(cells.len(), sheet.header.len(), "row as long as the header");
            for (column, cell) in (0_u16..).zip(cells) {
                write_cell(worksheet, &formats, row, column, cell)?;
            }
        }
        worksheet.set_freeze_panes(1, 0)?;
        let last_column = u16::try_from(sheet.header.len().saturating_sub(1)).unwrap_or(0);
        let last_row = u32::try_from(sheet.rows.len()).unwrap_or(u32::MAX);
        worksheet.autofilter(0, 0, last_row, last_column)?;
    }
    if sheets.is_empty() {
        book.add_worksheet().set_name("empty")?;
    }
    Ok(book.save_to_buffer()?)
}

fn write_cell(
    worksheet: &mut rust_xlsxwriter::Worksheet,
    formats: &Formats,
    row: u32,
    column: u16,
    cell: &Cell,
) -> Result<(), XlsxError> {
    match cell {
        Cell::Text(text) => {
            worksheet.write_string(row, column, text)?;
        }
        Cell::Count(count) => {
            worksheet.write_number_with_format(row, column, *count as f64, &formats.count)?;
        }
        Cell::Money(minor) => {
            let roubles = *minor as f64 / 100.0;
            worksheet.write_number_with_format(row, column, roubles, &formats.money)?;
        }
        Cell::Percent(Some(ratio)) => {
            worksheet.write_number_with_format(row, column, *ratio, &formats.percent)?;
        }
        Cell::Duration(Some(ms)) => {
            worksheet.write_number_with_format(row, column, *ms / DAY_MS, &formats.duration)?;
        }
        Cell::Percent(None) | Cell::Duration(None) => {}
        Cell::Time(at_ms) => {
            let seconds = i64::try_from(at_ms / 1000).unwrap_or(i64::MAX);
            let time = ExcelDateTime::from_timestamp(seconds)?;
            worksheet.write_datetime_with_format(row, column, time, &formats.time)?;
        }
    }
    Ok(())
}

/// Names of the cluster's sites by routing number (this site and its peers).
pub(crate) fn site_names(state: &AppState) -> BTreeMap<u64, String> {
    let mut names: BTreeMap<u64, String> = state
        .config
        .peer_sites
        .iter()
        .map(|peer| (u64::from(peer.number), peer.id.clone()))
        .collect();
    names.insert(
        u64::from(state.config.site.number),
        state.config.site.id.clone(),
    );
    names
}

fn site_of(names: &BTreeMap<u64, String>, row: &Value) -> String {
    let number = row["site"].as_u64().unwrap_or(0);
    names
        .get(&number)
        .cloned()
        .unwrap_or_else(|| format!("site-{number}"))
}

fn count(value: &Value) -> Cell {
    Cell::Count(value.as_u64().unwrap_or(0))
}

/// Interval × queue rows of the report, one sheet per site.
pub fn interval_sheets(state: &AppState, report: &Value) -> Vec<Sheet> {
    let names = site_names(state);
    let skills = &state.config.routing.skills;
    let mut by_site: BTreeMap<String, Vec<Vec<Cell>>> = BTreeMap::new();
    let empty = Vec::new();
    for interval in report["intervals"].as_array().unwrap_or(&empty) {
        let start = interval["start_ms"].as_u64().unwrap_or(0);
        let rows = interval["sites"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .chain(interval["queues"].as_array().unwrap_or(&empty));
        for row in rows {
            let queue = row["skill"]
                .as_u64()
                .and_then(|skill| skills.get(usize::try_from(skill).ok()?))
                .map(|skill| skill.name.clone())
                .unwrap_or_else(|| "all".to_string());
            let counters = &row["counters"];
            by_site.entry(site_of(&names, row)).or_default().push(vec![
                Cell::Time(start),
                Cell::Text(queue),
                count(&counters["offered"]),
                count(&counters["answered"]),
                count(&counters["abandoned"]),
                count(&counters["abandoned_short"]),
                count(&counters["answered_within_target"]),
                Cell::Percent(row["service_level"].as_f64()),
                Cell::Percent(row["abandon_rate"].as_f64()),
                Cell::Duration(row["asa_ms"].as_f64()),
                Cell::Duration(row["aht_ms"].as_f64()),
                count(&counters["queue_length_max"]),
                count(&counters["overflowed_in"]),
                count(&counters["overflowed_out"]),
            ]);
        }
    }
    let header = vec![
        "Interval start (site local time)",
        "Queue",
        "Offered",
        "Answered",
        "Abandoned",
        "Abandoned short",
        "Answered within target",
        "Service level",
        "Abandonment",
        "ASA",
        "AHT",
        "Longest queue",
        "Overflowed in",
        "Overflowed out",
    ];
    sheets(by_site, header)
}

/// Per-agent workload today with the quality reviews of the day's contacts (reviews, mean
/// score; see `routes::reports::add_quality`), one sheet per site.
pub fn agent_sheets(state: &AppState, report: &Value) -> Vec<Sheet> {
    let names = site_names(state);
    let logins: BTreeMap<u64, &str> = state
        .config
        .agents
        .iter()
        .map(|agent| (u64::from(agent.id), agent.login.as_str()))
        .collect();
    let mut by_site: BTreeMap<String, Vec<Vec<Cell>>> = BTreeMap::new();
    let empty = Vec::new();
    for row in report["agents"].as_array().unwrap_or(&empty) {
        let id = row["agent"].as_u64().unwrap_or(0);
        let login = match row["login"].as_str() {
            Some(login) => login.to_string(),
            None => logins
                .get(&id)
                .map(|login| (*login).to_string())
                .unwrap_or_else(|| format!("agent {id}")),
        };
        let counters = &row["counters"];
        let ms = |key: &str| Cell::Duration(counters[key].as_f64());
        by_site.entry(site_of(&names, row)).or_default().push(vec![
            Cell::Text(login),
            count(&counters["offered"]),
            count(&counters["answered"]),
            count(&counters["handled"]),
            count(&counters["rejected"]),
            count(&counters["timed_out"]),
            count(&counters["transferred_out"]),
            ms("talk_ms_sum"),
            ms("wrap_up_ms_sum"),
            ms("staffed_ms"),
            ms("available_ms"),
            ms("not_ready_ms"),
            Cell::Duration(row["aht_ms"].as_f64()),
            Cell::Percent(row["occupancy"].as_f64()),
            count(&row["reviews"]),
            Cell::Percent(
                row["review_score_percent_mean"]
                    .as_f64()
                    .map(|percent| percent / 100.0),
            ),
        ]);
    }
    let header = vec![
        "Agent",
        "Offered",
        "Answered",
        "Handled",
        "Rejected",
        "Timed out",
        "Transferred out",
        "Talk time",
        "Wrap-up time",
        "Staffed",
        "Available",
        "Not ready",
        "AHT",
        "Occupancy",
        "QA reviews",
        "QA mean score",
    ];
    sheets(by_site, header)
}

fn text_of<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(text)) => text,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// The order journal, one sheet per site (the order's site).
pub fn order_sheets(orders: &[&Order]) -> Vec<Sheet> {
    let mut by_site: BTreeMap<String, Vec<Vec<Cell>>> = BTreeMap::new();
    for order in orders {
        let items = order
            .items
            .iter()
            .map(|item| format!("{} × {} ({})", item.quantity, item.name, item.sku))
            .collect::<Vec<_>>()
            .join("; ");
        let (fulfilment, place) = match &order.fulfilment {
            Fulfilment::Pickup { pharmacy } => ("pickup", pharmacy.clone()),
            Fulfilment::Delivery { address } => ("delivery", address.clone()),
        };
        by_site.entry(order.site.clone()).or_default().push(vec![
            Cell::Count(order.id),
            Cell::Time(order.created_at_ms),
            Cell::Text(order.caller.clone()),
            Cell::Text(items),
            Cell::Money(order.total_minor),
            Cell::Text(fulfilment.to_string()),
            Cell::Text(place),
            Cell::Text(text_of(&order.payment)),
            Cell::Text(text_of(&order.status)),
            Cell::Text(order.delivery_note.clone()),
        ]);
    }
    let header = vec![
        "Order",
        "Created (UTC)",
        "Caller",
        "Items",
        "Total (RUB)",
        "Fulfilment",
        "Pharmacy / address",
        "Payment",
        "Status",
        "Note",
    ];
    sheets(by_site, header)
}

fn sheets(by_site: BTreeMap<String, Vec<Vec<Cell>>>, header: Vec<&'static str>) -> Vec<Sheet> {
    by_site
        .into_iter()
        .map(|(name, rows)| Sheet {
            name,
            header: header.clone(),
            rows,
        })
        .collect()
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// `GET /api/v1/exports/{name}` (supervisors).
pub(crate) async fn export(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = state.tokens.authenticate(&request)?;
    require(&actor, &[Role::Supervisor])?;
    let name = path.into_inner();
    let sheets = match name.as_str() {
        "intervals.xlsx" | "agents.xlsx" => {
            // The sheets read the report as the API shows it (its JSON form).
            let report = super::routes::day_report(&state, None).await?;
            if name == "intervals.xlsx" {
                interval_sheets(&state, &report)
            } else {
                agent_sheets(&state, &report)
            }
        }
        "orders.xlsx" => {
            state
                .proposer
                .replicator()
                .read_barrier()
                .await
                .map_err(ApiError::from)?;
            state
                .shared
                .read(|replicated| order_sheets(&replicated.orders_recent(EXPORT_ORDERS_MAX)))
        }
        _ => {
            return Err(ApiError::NotFound(
                "exports are intervals.xlsx, agents.xlsx and orders.xlsx".to_string(),
            ));
        }
    };
    let bytes = workbook(&sheets)?;
    tracing::info!(principal = %actor.name, export = %name, bytes = bytes.len(), "exported");
    Ok(HttpResponse::Ok()
        .content_type(XLSX)
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        ))
        .insert_header(("Cache-Control", "no-store"))
        .body(bytes))
}

/// Registers `/{name}` in the `/api/v1/exports` scope (`routes::register`).
pub fn register(scope: &mut web::ServiceConfig) {
    scope.route("/{name}", web::get().to(export));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sheet_names_are_valid_for_excel() {
        assert_eq!(sheet_name("msk"), "msk");
        assert_eq!(sheet_name("a/b:c[1]"), "a_b_c_1_");
        assert_eq!(sheet_name(""), "sheet");
        assert_eq!(sheet_name(&"x".repeat(40)).chars().count(), 31);
    }

    #[test]
    fn a_workbook_is_a_zip_with_one_sheet_per_site() {
        let sheet = |name: &str| Sheet {
            name: name.to_string(),
            header: vec!["Order", "Created", "Total", "SL", "AHT"],
            rows: vec![vec![
                Cell::Count(7),
                Cell::Time(1_796_337_273_533),
                Cell::Money(50_100),
                Cell::Percent(Some(0.8)),
                Cell::Duration(None),
            ]],
        };
        let bytes = workbook(&[sheet("msk"), sheet("spb"), sheet("MSK")]).unwrap();
        assert!(bytes.starts_with(b"PK\x03\x04"), "xlsx is a zip");
        let text = String::from_utf8_lossy(&bytes);
        for part in ["xl/worksheets/sheet1.xml", "xl/worksheets/sheet3.xml"] {
            assert!(text.contains(part), "{part}");
        }
        assert!(workbook(&[]).unwrap().starts_with(b"PK"));
    }
}
