//! `callgrid-sim check HISTORY_DIR`: the verdict on a live run from the client's history and
//! every replica's records. It fails on
//! - an acknowledged order, pre-order or complaint missing on any replica (or a replica that
//!   could not be read);
//! - a caller whose voice abandon was acknowledged without a callback for that caller on
//!   every replica (short abandons excepted, as the node's policy excepts them);
//! - a contact answered by two agents (beyond its acknowledged transfers), answered twice by
//!   the gateway, or both answered and abandoned;
//! - an order read that began after the order's creation was acknowledged and did not see it;
//! - an `Idempotency-Key` whose acknowledged answers name two different records, or a caller
//!   with more than one order on a replica (a retried create made a second record);
//! - a request the node refused as malformed (400) or as a reused idempotency key (422): the
//!   players send only what the API documents, so either side is wrong.
//!
//! It prints what it checked; a history in which nothing could be checked fails.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::history::{self, HistoryError, Replica, Request};
use super::plan::index_of_caller;

/// One kind of record a replica holds, by id.
type RecordsOf = fn(&Replica) -> &BTreeMap<u64, serde_json::Value>;

/// The run facts the checker needs (`run.json` in the history directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Clock speed (routing ms per wall ms).
    pub speed: f64,
    /// Abandons shorter than this (routing ms) need no callback.
    pub short_abandon_ms: u64,
    /// Whether the sites create callbacks for abandoned callers.
    pub callbacks_enabled: bool,
}

/// The run facts file.
pub const RUN_FILE: &str = "run.json";

/// The verdict.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Verdict {
    /// What was checked, by kind.
    pub checked: BTreeMap<String, u64>,
    /// Every violation found (the first [`FAILURES_SHOWN_MAX`] of each kind are described).
    pub failures: Vec<String>,
    /// Violations per kind.
    pub failure_counts: BTreeMap<String, u64>,
}

/// Described failures per kind at most.
pub const FAILURES_SHOWN_MAX: u64 = 20;

impl Verdict {
    /// True when something was checked and nothing failed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && self.checked.values().any(|count| *count > 0)
    }

    fn count(&mut self, kind: &str) {
        *self.checked.entry(kind.to_string()).or_default() += 1;
    }

    fn fail(&mut self, kind: &str, message: String) {
        let count = self.failure_counts.entry(kind.to_string()).or_default();
        *count += 1;
        if *count <= FAILURES_SHOWN_MAX {
            self.failures.push(format!("{kind}: {message}"));
        }
    }

    /// Human-readable lines.
    pub fn render(&self) -> String {
        let mut text = String::from("history check:\n");
        for (kind, count) in &self.checked {
            let failed = self.failure_counts.get(kind).copied().unwrap_or(0);
            text.push_str(&format!(
                "  {kind:<34} {count:>8} checked {failed:>6} failed\n"
            ));
        }
        for failure in &self.failures {
            text.push_str(&format!("  FAIL {failure}\n"));
        }
        let verdict = if self.passed() {
            "PASS"
        } else if self.failures.is_empty() {
            "FAIL (nothing was checked)"
        } else {
            "FAIL"
        };
        text.push_str(&format!("verdict: {verdict}\n"));
        text
    }
}

/// Checks the history in `directory`.
pub fn check_directory(directory: &Path) -> Result<Verdict, HistoryError> {
    let requests = history::read(directory)?;
    let replicas = history::read_replicas(directory)?;
    let path = directory.join(RUN_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| HistoryError::Io {
        path: path.clone(),
        source,
    })?;
    let info: RunInfo = serde_json::from_str(&text).map_err(|source| HistoryError::Parse {
        path,
        line: 0,
        source,
    })?;
    Ok(check(&requests, &replicas, &info))
}

/// Checks a history against the replicas' records.
pub fn check(requests: &[Request], replicas: &[Replica], info: &RunInfo) -> Verdict {
    let mut verdict = Verdict::default();
    if replicas.is_empty() {
        verdict.fail(
            "replicas",
            "no replica's records were collected".to_string(),
        );
    }
    for replica in replicas {
        verdict.count("replicas read");
        if !replica.reachable {
            verdict.fail("replicas", format!("{} could not be read", replica.site));
        }
    }
    check_records(requests, replicas, &mut verdict);
    check_answers(requests, &mut verdict);
    check_callbacks(requests, replicas, info, &mut verdict);
    check_order_reads(requests, &mut verdict);
    check_idempotency(requests, &mut verdict);
    check_orders_per_caller(replicas, &mut verdict);
    check_well_formed(requests, &mut verdict);
    verdict
}

/// No request of the players was refused as malformed (400) or as a reused key (422).
fn check_well_formed(requests: &[Request], verdict: &mut Verdict) {
    const CHECK: &str = "requests the node found well-formed";
    for request in requests
        .iter()
        .filter(|request| request.actor != "collector")
    {
        verdict.count(CHECK);
        if request.status == 400 || request.status == 422 {
            let detail = request.body["detail"]
                .as_str()
                .map_or_else(|| request.body.to_string(), str::to_string);
            verdict.fail(
                CHECK,
                format!(
                    "request {} ({} {} at site {}) answered {}: {detail}",
                    request.seq, request.method, request.path, request.site, request.status
                ),
            );
        }
    }
}

/// Every acknowledged answer to the creates of one (principal, `Idempotency-Key`) names the
/// same record.
fn check_idempotency(requests: &[Request], verdict: &mut Verdict) {
    const CHECK: &str = "creates once per idempotency key";
    let mut records: BTreeMap<(&str, &str), BTreeSet<u64>> = BTreeMap::new();
    for request in requests.iter().filter(|request| request.acknowledged()) {
        let Some(key) = request.idempotency_key.as_deref() else {
            continue;
        };
        let field = match request.class.as_str() {
            "order" => "order",
            "pre_order" => "pre_order",
            "complaint" => "complaint",
            _ => continue,
        };
        let ids = records.entry((request.actor.as_str(), key)).or_default();
        if let Some(id) = request.body[field].as_u64() {
            ids.insert(id);
        }
    }
    for ((actor, key), ids) in &records {
        verdict.count(CHECK);
        if ids.len() > 1 {
            verdict.fail(
                CHECK,
                format!("{actor}'s key {key} was acknowledged with records {ids:?}"),
            );
        }
    }
}

/// Each caller has at most one order on every replica (one planned order per contact, each
/// contact its own caller): a second one is a create that happened twice, acknowledged or not.
fn check_orders_per_caller(replicas: &[Replica], verdict: &mut Verdict) {
    const CHECK: &str = "callers with one order on every replica";
    let callers: BTreeSet<&String> = replicas
        .iter()
        .flat_map(|replica| replica.orders_by_caller.keys())
        .collect();
    for caller in callers {
        verdict.count(CHECK);
        for replica in replicas.iter().filter(|replica| replica.reachable) {
            if let Some(ids) = replica.orders_by_caller.get(caller)
                && ids.len() > 1
            {
                verdict.fail(
                    CHECK,
                    format!("caller {caller} has orders {ids:?} on {}", replica.site),
                );
            }
        }
    }
}

/// Every acknowledged create is on every replica.
fn check_records(requests: &[Request], replicas: &[Replica], verdict: &mut Verdict) {
    for request in requests.iter().filter(|request| request.acknowledged()) {
        let (kind, field): (&str, RecordsOf) = match request.class.as_str() {
            "order" => ("order", |replica| &replica.orders),
            "pre_order" => ("pre_order", |replica| &replica.pre_orders),
            "complaint" => ("complaint", |replica| &replica.complaints),
            _ => continue,
        };
        let check = format!("acknowledged {kind} on every replica");
        verdict.count(&check);
        let Some(id) = request.body[kind].as_u64() else {
            verdict.fail(
                &check,
                format!("request {} was acknowledged without an id", request.seq),
            );
            continue;
        };
        for replica in replicas.iter().filter(|replica| replica.reachable) {
            if field(replica)
                .get(&id)
                .is_none_or(serde_json::Value::is_null)
            {
                verdict.fail(
                    &check,
                    format!(
                        "{kind} {id} (request {}) is missing on {}",
                        request.seq, replica.site
                    ),
                );
            }
        }
    }
}

/// No contact answered by two agents or twice, or both answered and abandoned.
fn check_answers(requests: &[Request], verdict: &mut Verdict) {
    let mut accepts: HashMap<(usize, u64), BTreeSet<&str>> = HashMap::new();
    let mut transfers: HashMap<(usize, u64), usize> = HashMap::new();
    let mut answered: HashMap<usize, u64> = HashMap::new();
    let mut abandoned: BTreeSet<usize> = BTreeSet::new();
    for request in requests.iter().filter(|request| request.acknowledged()) {
        let key = request.contact.map(|contact| (request.site, contact));
        match (request.class.as_str(), key, request.plan) {
            ("accept", Some(key), _) => {
                accepts
                    .entry(key)
                    .or_default()
                    .insert(request.actor.as_str());
            }
            ("transfer", Some(key), _) => *transfers.entry(key).or_default() += 1,
            ("answered", _, Some(plan)) => *answered.entry(plan).or_default() += 1,
            ("abandon", _, Some(plan)) => {
                abandoned.insert(plan);
            }
            _ => {}
        }
    }
    for (key, agents) in &accepts {
        verdict.count("contacts answered by one agent");
        let allowed = 1 + transfers.get(key).copied().unwrap_or(0);
        if agents.len() > allowed {
            verdict.fail(
                "contacts answered by one agent",
                format!(
                    "contact {} at site {} was accepted by {agents:?}",
                    key.1, key.0
                ),
            );
        }
    }
    for (plan, count) in &answered {
        verdict.count("callers answered once");
        if *count > 1 {
            verdict.fail(
                "callers answered once",
                format!("caller {plan} was answered {count} times"),
            );
        }
        if abandoned.contains(plan) {
            verdict.fail(
                "callers answered once",
                format!("caller {plan} was both answered and abandoned"),
            );
        }
    }
}

/// Every acknowledged voice abandon that was surely not short has a callback for its caller
/// on every replica. The node measures the wait from the contact's entry at the abandoning
/// site; the client knows that moment only to within its requests' latency, so it requires a
/// callback only when even the shortest possible wait (from the end of the request that placed
/// the contact there to the start of the abandon) reaches the short-abandon threshold.
fn check_callbacks(
    requests: &[Request],
    replicas: &[Replica],
    info: &RunInfo,
    verdict: &mut Verdict,
) {
    const CHECK: &str = "abandoned callers with a callback";
    if !info.callbacks_enabled {
        return;
    }
    let mut placed: HashMap<(usize, u64), &Request> = HashMap::new();
    for request in requests.iter().filter(|request| {
        request.acknowledged() && (request.class == "arrive" || request.class == "represent")
    }) {
        if let Some(id) = request.body["contact"]["id"].as_u64() {
            placed.insert((request.site, id), request);
        }
    }
    let per_replica: Vec<BTreeSet<usize>> = replicas
        .iter()
        .map(|replica| {
            replica
                .callbacks
                .iter()
                .filter_map(|callback| callback["caller"].as_str().and_then(index_of_caller))
                .collect()
        })
        .collect();
    for request in requests
        .iter()
        .filter(|request| request.acknowledged() && request.class == "abandon")
    {
        let (Some(plan), Some(contact)) = (request.plan, request.contact) else {
            continue;
        };
        let Some(placing) = placed.get(&(request.site, contact)) else {
            continue;
        };
        if placing.body["contact"]["channel"] != "voice" {
            continue;
        }
        let waited_ms =
            (request.start_us.saturating_sub(placing.end_us) as f64 / 1_000.0) * info.speed;
        if waited_ms < info.short_abandon_ms as f64 {
            continue;
        }
        verdict.count(CHECK);
        for (replica, callers) in replicas.iter().zip(&per_replica) {
            if replica.reachable && !callers.contains(&plan) {
                verdict.fail(
                    CHECK,
                    format!(
                        "caller {plan} abandoned (request {}) has no callback on {}",
                        request.seq, replica.site
                    ),
                );
            }
        }
    }
}

/// An order read that began after the create was acknowledged sees the order.
fn check_order_reads(requests: &[Request], verdict: &mut Verdict) {
    const CHECK: &str = "order reads after the write";
    let created: HashMap<u64, u64> = requests
        .iter()
        .filter(|request| request.acknowledged() && request.class == "order")
        .filter_map(|request| Some((request.body["order"].as_u64()?, request.end_us)))
        .collect();
    for read in requests
        .iter()
        .filter(|request| request.class == "order_read")
    {
        let Some(order) = read
            .path
            .rsplit('/')
            .next()
            .and_then(|id| id.parse::<u64>().ok())
        else {
            continue;
        };
        let Some(acknowledged_us) = created.get(&order) else {
            continue;
        };
        if read.start_us < *acknowledged_us {
            continue;
        }
        verdict.count(CHECK);
        if read.status == 0 || read.status == 503 {
            // No answer is not a stale answer (the client sees the failure).
            continue;
        }
        if read.status != 200 || read.body["id"].as_u64() != Some(order) {
            verdict.fail(
                CHECK,
                format!(
                    "read {} of order {order} answered {} {}",
                    read.seq, read.status, read.body
                ),
            );
        }
    }
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
