//! After the day: every replica's records (each acknowledged order, pre-order and complaint
//! by id, every callback) and every site's interval report, fetched with the supervisor token
//! into the history directory. These reads go to `collect/history.jsonl`, apart from the
//! players' history.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use callgrid_domain::MetricsReport;
use serde_json::Value;

use super::client::{About, Answer, Api};
use super::history::{self, HistoryError, Replica, Request};
use super::{LiveError, LiveOptions};

/// Attempts of one collecting read while a site has no leader or is restarting.
const READ_ATTEMPTS: u32 = 20;
/// Pause between attempts.
const READ_PAUSE: Duration = Duration::from_millis(250);
/// The callbacks list answers at most this many (then the collector walks ids).
const LIST_LIMIT: usize = 500;

/// What was collected.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    /// Each site's interval report of the drill day (sites that answered).
    pub reports: Vec<MetricsReport>,
}

/// Fetches every replica's records and every site's report into the history directory.
pub fn collect(
    options: &LiveOptions,
    requests: &[Request],
    site_ids: &[String],
) -> Result<Collected, LiveError> {
    let directory = options.history.join("collect");
    let (sink, writer) = history::start(&directory)?;
    let api = Api::new(options.sites.clone(), sink);
    let ids = |class: &str, field: &str| -> BTreeSet<u64> {
        requests
            .iter()
            .filter(|request| request.class == class && request.acknowledged())
            .filter_map(|request| request.body[field].as_u64())
            .collect()
    };
    let orders = ids("order", "order");
    // Every caller an order was attempted for (acknowledged or not: an unanswered attempt may
    // have committed, and a retry must not have made a second one).
    let order_callers: BTreeSet<String> = requests
        .iter()
        .filter(|request| request.class == "order")
        .filter_map(|request| request.plan)
        .map(super::plan::caller_of)
        .collect();
    let pre_orders = ids("pre_order", "pre_order");
    let complaints = ids("complaint", "complaint");
    let date = civil_date(options.clock.midnight_ms);
    let token = options.tokens.supervisor.as_str();
    let results: Vec<(Replica, Option<(Value, MetricsReport)>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..options.sites.len())
            .map(|site| {
                let api = &api;
                let (orders, pre_orders, complaints, date, order_callers) =
                    (&orders, &pre_orders, &complaints, &date, &order_callers);
                scope.spawn(move || {
                    let mut replica = Replica {
                        site: site_ids.get(site).cloned().unwrap_or_default(),
                        reachable: true,
                        ..Replica::default()
                    };
                    let mut fetch = |kind: &str, path: &str, ids: &BTreeSet<u64>| {
                        let mut found = std::collections::BTreeMap::new();
                        for id in ids {
                            let answer = read(api, site, kind, &format!("{path}/{id}"), token);
                            match answer.status {
                                200 => {
                                    found.insert(*id, answer.body);
                                }
                                404 => {}
                                _ => replica.reachable = false,
                            }
                        }
                        found
                    };
                    let orders = fetch("collect_order", "/api/v1/orders", orders);
                    let pre_orders = fetch("collect_pre_order", "/api/v1/pre-orders", pre_orders);
                    let complaints = fetch("collect_complaint", "/api/v1/complaints", complaints);
                    replica.orders = orders;
                    for caller in order_callers {
                        let path = format!(
                            "/api/v1/orders?caller={}&limit=10",
                            caller.replace('+', "%2B")
                        );
                        let answer = read(api, site, "collect_orders_by_caller", &path, token);
                        if !answer.ok() {
                            replica.reachable = false;
                            continue;
                        }
                        let ids = answer.body["orders"]
                            .as_array()
                            .map(|orders| {
                                orders
                                    .iter()
                                    .filter_map(|order| order["id"].as_u64())
                                    .collect()
                            })
                            .unwrap_or_default();
                        replica.orders_by_caller.insert(caller.clone(), ids);
                    }
                    replica.pre_orders = pre_orders;
                    replica.complaints = complaints;
                    match callbacks(api, site, token) {
                        Some(callbacks) => replica.callbacks = callbacks,
                        None => replica.reachable = false,
                    }
                    let path = format!("/api/v1/reports/intervals?date={date}");
                    let answer = read(api, site, "collect_report", &path, token);
                    let report = answer
                        .ok()
                        .then(|| {
                            metrics_report(answer.body.clone()).map(|report| (answer.body, report))
                        })
                        .flatten();
                    (replica, report)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or_default())
            .collect()
    });
    drop(api);
    writer.finish()?;
    let mut collected = Collected::default();
    for (index, (replica, report)) in results.into_iter().enumerate() {
        history::write_replica(&options.history, index, &replica)?;
        if let Some((body, report)) = report {
            write(&options.history.join("reports"), index, &body)?;
            collected.reports.push(report);
        }
    }
    Ok(collected)
}

/// A read retried while the site answers "unavailable" or not at all (reads are safe to
/// repeat).
fn read(api: &Api, site: usize, class: &str, path: &str, token: &str) -> Answer {
    let mut answer = api.call(
        "collector",
        site,
        class,
        "GET",
        path,
        token,
        None,
        About::default(),
    );
    for _ in 1..READ_ATTEMPTS {
        if answer.status != 0 && answer.status != 503 {
            break;
        }
        std::thread::sleep(READ_PAUSE);
        answer = api.call(
            "collector",
            site,
            class,
            "GET",
            path,
            token,
            None,
            About::default(),
        );
    }
    answer
}

/// Every callback a replica holds: the recent list, then by id below it when the list is full.
fn callbacks(api: &Api, site: usize, token: &str) -> Option<Vec<Value>> {
    let answer = read(
        api,
        site,
        "collect_callbacks",
        &format!("/api/v1/callbacks?limit={LIST_LIMIT}"),
        token,
    );
    if !answer.ok() {
        return None;
    }
    let mut callbacks = answer.body["callbacks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if callbacks.len() < LIST_LIMIT {
        return Some(callbacks);
    }
    let known: BTreeSet<u64> = callbacks
        .iter()
        .filter_map(|callback| callback["id"].as_u64())
        .collect();
    let highest = known.iter().next_back().copied().unwrap_or(0);
    for id in 1..=highest {
        if known.contains(&id) {
            continue;
        }
        let answer = read(
            api,
            site,
            "collect_callback",
            &format!("/api/v1/callbacks/{id}"),
            token,
        );
        match answer.status {
            200 => callbacks.push(answer.body),
            404 => {}
            _ => return None,
        }
    }
    Some(callbacks)
}

/// A day report's figures. The node's report names its sites, skills and agents
/// (docs/CONVENTIONS.md) and adds `date`, `utc_offset_minutes`, interval start times and agent
/// logins and quality beside the domain's [`MetricsReport`]; the live figures need only its
/// counters, so a copy with the names cleared (sites and agents 0, skills none) is read as
/// one; the history keeps the node's own body. `None` (and a warning) when the body is no
/// report at all.
fn metrics_report(mut body: Value) -> Option<MetricsReport> {
    if let Some(object) = body.as_object_mut() {
        object.remove("date");
        object.remove("utc_offset_minutes");
    }
    let unname = |row: &mut Value| {
        if row["site"].is_string() {
            row["site"] = Value::from(0);
        }
        if row["skill"].is_string() {
            row["skill"] = Value::Null;
        }
        if row["agent"].is_string() || row["agent"].is_null() {
            row["agent"] = Value::from(0);
        }
    };
    unname(&mut body["totals"]);
    for key in ["sites", "queues", "agents"] {
        if let Some(rows) = body[key].as_array_mut() {
            rows.iter_mut().for_each(unname);
        }
    }
    if let Some(intervals) = body["intervals"].as_array_mut() {
        for interval in intervals {
            for key in ["sites", "queues"] {
                if let Some(rows) = interval[key].as_array_mut() {
                    rows.iter_mut().for_each(unname);
                }
            }
        }
    }
    match serde_json::from_value(body) {
        Ok(report) => Some(report),
        Err(error) => {
            tracing::warn!(%error, "a site's interval report could not be read");
            None
        }
    }
}

fn write(directory: &Path, index: usize, report: &Value) -> Result<(), LiveError> {
    std::fs::create_dir_all(directory).map_err(|source| HistoryError::Io {
        path: directory.to_path_buf(),
        source,
    })?;
    super::write_json(&directory.join(format!("{index}.json")), report)
}

/// `YYYY-MM-DD` of a UTC midnight (ms since the Unix epoch).
pub fn civil_date(midnight_ms: u64) -> String {
    // Howard Hinnant's days-to-civil.
    let days = (midnight_ms / 86_400_000) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_date(0), "1970-01-01");
        assert_eq!(super::civil_date(1_764_806_400_000), "2025-12-04");
    }
}
