//! Issue 8 defect 4 and the interval CSV, through a real `callgrid` process: a day's report
//! survives a kill -9 and restart, days are named by the site's local date (`?date=`), and the
//! CSV carries RFC 3339 local interval starts and a `;` / decimal-comma variant.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::json;

/// A single-site node in Moscow time (+03:00).
fn moscow_site() -> (tempfile::TempDir, Node) {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let port = free_udp_port();
    let cluster = format!(
        "[cluster]\nnode_id = 1\nlisten = \"127.0.0.1:{port}\"\ncertificates_dir = \"{}\"\n",
        directory.path().join("certs").display()
    );
    let config = site_config("msk", 0, &data, &cluster).replacen(
        "[site]\n",
        "[site]\nutc_offset_minutes = 180\n",
        1,
    );
    assert!(config.contains("utc_offset_minutes = 180"));
    let path = directory.path().join("site.toml");
    std::fs::write(&path, config).unwrap();
    let node = Node::start(&path, &data);
    (directory, node)
}

/// Today in Moscow, `YYYY-MM-DD` (civil-from-days).
fn moscow_today() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let days = (now.as_secs() as i64 + 3 * 3600).div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn arrive(node: &Node, caller: &str) {
    let (status, body) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(json!({"caller": caller, "topic": "order"})),
    );
    assert_eq!(status, 201, "{body}");
}

fn offered_today(node: &Node, query: &str) -> (String, u64) {
    let (status, report) = node.call(
        "GET",
        &format!("/api/v1/reports/intervals{query}"),
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["utc_offset_minutes"], 180);
    (
        report["date"].as_str().unwrap().to_string(),
        report["totals"]["counters"]["offered"].as_u64().unwrap(),
    )
}

#[test]
fn the_days_report_survives_a_restart() {
    let (_directory, mut node) = moscow_site();
    arrive(&node, "+79160002201");
    arrive(&node, "+79160002202");
    let (date, offered) = offered_today(&node, "");
    assert_eq!(offered, 2);
    let today = moscow_today();
    assert_eq!(date, today, "the day is the site's local day");
    // The current day is written within a second or so; then the process dies hard.
    let file = node.data_dir.join("reports").join(format!("{date}.json"));
    eventually("the day's report on disk", || {
        let text = std::fs::read_to_string(&file).ok()?;
        let stored: serde_json::Value = serde_json::from_str(&text).ok()?;
        (stored["report"]["totals"]["counters"]["offered"] == 2).then_some(())
    });
    node.restart();

    let (after, offered) = offered_today(&node, &format!("?date={date}"));
    assert_eq!(after, date);
    assert_eq!(
        offered, 2,
        "the day's figures are still there after the restart"
    );
    arrive(&node, "+79160002203");
    assert_eq!(
        offered_today(&node, "").1,
        3,
        "and later traffic adds to them"
    );

    let (status, body) = node.call(
        "GET",
        "/api/v1/reports/intervals?date=2001-01-01",
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(status, 404, "a day not kept: {body}");
    for bad in ["2026-02-30", "today", "2026-1-1"] {
        let (status, body) = node.call(
            "GET",
            &format!("/api/v1/reports/intervals?date={bad}"),
            Some(SUPERVISOR),
            None,
        );
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[test]
fn interval_csv_has_local_times_and_a_semicolon_variant() {
    let (_directory, node) = moscow_site();
    arrive(&node, "+79160002301");
    let today = moscow_today();
    let csv = |query: &str| -> String {
        let (status, body) = node.call(
            "GET",
            &format!("/api/v1/reports/intervals?format=csv{query}"),
            Some(SUPERVISOR),
            None,
        );
        assert_eq!(status, 200, "{body}");
        body.as_str().unwrap().to_string()
    };

    let comma = csv("");
    let mut lines = comma.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("interval_start,site,skill,offered")
    );
    let rows: Vec<&str> = lines.collect();
    assert!(
        rows.iter().all(|row| !row.contains(",all,0,0,0,0,0,,,,,0")),
        "no empty intervals: {comma}"
    );
    let site_row = rows
        .iter()
        .find(|line| line.split(',').nth(2) == Some("all"))
        .unwrap_or_else(|| panic!("no site row in\n{comma}"));
    let start = site_row.split(',').next().unwrap();
    assert!(
        start.starts_with(&format!("{today}T")) && start.ends_with(":00+03:00"),
        "RFC 3339 local start: {start}"
    );
    assert_eq!(start.len(), "2026-12-03T09:15:00+03:00".len(), "{start}");
    assert!(site_row.contains(",msk,all,1,0,0,0,0,"), "{site_row}");
    assert!(
        site_row.contains(",0.0000,"),
        "abandon rate with a point: {site_row}"
    );

    for query in ["&sep=semicolon", "&sep=%3B"] {
        let semicolon = csv(query);
        let mut lines = semicolon.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("interval_start;site;skill;offered"),
            "{semicolon}"
        );
        let row = lines
            .find(|line| line.split(';').nth(2) == Some("all"))
            .unwrap_or_else(|| panic!("no site row in\n{semicolon}"));
        assert!(
            row.starts_with(&format!("{start};msk;all;1;0;0;0;0;")),
            "{row}"
        );
        assert!(row.contains(";0,0000;"), "decimal comma: {row}");
        assert!(!row.contains('.'), "no decimal points: {row}");
    }
    let (status, _) = node.call(
        "GET",
        "/api/v1/reports/intervals?format=csv&sep=tab",
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(status, 400);
}

/// The report names sites, skills and agents (not indexes) and gives each interval its epoch
/// start; the CSV has an occupancy column, a per-agent variant and locale options.
#[test]
fn the_report_names_things_and_the_csv_has_occupancy_agents_and_locales() {
    let (_directory, node) = moscow_site();
    ready(&node, "anna", ANNA);
    arrive(&node, "+79160002401");
    let today = moscow_today();
    // Anna's offer: accepted and answered, so she has busy time (occupancy above zero).
    let contact = agent_contacts(&node, "anna", ANNA)[0]["id"]
        .as_u64()
        .unwrap();
    let (status, _) = node.call(
        "POST",
        &format!("/api/v1/agents/anna/contacts/{contact}/accept"),
        Some(ANNA),
        None,
    );
    assert_eq!(status, 200);
    std::thread::sleep(std::time::Duration::from_millis(300));

    let (status, report) = node.call("GET", "/api/v1/reports/intervals", Some(SUPERVISOR), None);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["totals"]["site"], "msk", "sites by id");
    assert!(
        report["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|row| row["skill"] == "line1"),
        "skills by name: {}",
        report["queues"]
    );
    assert!(report["sites"][0]["skill"].is_null());
    let anna = report["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["agent"] == "anna")
        .unwrap_or_else(|| panic!("agents by login: {}", report["agents"]));
    assert_eq!(anna["site"], "msk");
    let interval = report["intervals"].as_array().unwrap().last().unwrap();
    let start = interval["interval_start"].as_str().unwrap();
    assert!(
        start.starts_with(&format!("{today}T")) && start.ends_with("+03:00"),
        "{start}"
    );
    let start_at = interval["start_at_ms"].as_u64().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let interval_ms = report["interval_ms"].as_u64().unwrap();
    assert!(
        start_at <= now && now < start_at + interval_ms + 60_000,
        "start_at_ms {start_at} is the epoch start of the current interval (now {now})"
    );

    let csv = |query: &str| -> (u16, String) {
        let (status, body) = node.call(
            "GET",
            &format!("/api/v1/reports/intervals?format=csv{query}"),
            Some(SUPERVISOR),
            None,
        );
        (status, body.as_str().unwrap_or_default().to_string())
    };
    let (status, intervals) = csv("");
    assert_eq!(status, 200);
    let header = intervals.lines().next().unwrap();
    assert!(header.ends_with(",queue_length_max,occupancy"), "{header}");
    let site_row = intervals
        .lines()
        .find(|line| line.split(',').nth(2) == Some("all"))
        .unwrap();
    let occupancy = site_row.rsplit(',').next().unwrap();
    assert!(
        occupancy.parse::<f64>().is_ok_and(|value| value > 0.0),
        "occupancy on the site row: {site_row}"
    );

    let (status, agents) = csv("&rows=agents");
    assert_eq!(status, 200, "{agents}");
    let mut lines = agents.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("date,utc_offset,site,agent,offered,answered"),
        "{agents}"
    );
    let row = lines
        .find(|line| line.split(',').nth(3) == Some("anna"))
        .unwrap_or_else(|| panic!("anna's row in\n{agents}"));
    assert!(
        row.starts_with(&format!("{today},+03:00,msk,anna,1,")),
        "{row}"
    );

    for query in [
        "&locale=ru",
        "&sep=semicolon&decimal=comma",
        "&sep=%3B&decimal=%2C",
    ] {
        let (status, text) = csv(&format!("{query}&rows=agents"));
        assert_eq!(status, 200, "{query}: {text}");
        let row = text.lines().find(|line| line.contains(";anna;")).unwrap();
        assert!(
            row.starts_with(&format!("{today};+03:00;msk;anna;1;")),
            "{query}: {row}"
        );
        let column = text
            .lines()
            .next()
            .unwrap()
            .split(';')
            .position(|title| title == "occupancy")
            .unwrap();
        let occupancy = row.split(';').nth(column).unwrap();
        assert!(
            occupancy.contains(',') && !occupancy.contains('.'),
            "{query}: {row}"
        );
    }
    let (status, text) = csv("&sep=semicolon&decimal=point");
    assert_eq!(status, 200);
    assert!(
        text.lines().nth(1).unwrap_or_default().contains(';'),
        "{text}"
    );
    for bad in ["&decimal=comma", "&locale=de", "&rows=calls"] {
        assert_eq!(csv(bad).0, 400, "{bad}");
    }
    let (status, _) = node.call(
        "GET",
        "/api/v1/reports/intervals?rows=agents",
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(status, 400, "rows is for CSV");
}
