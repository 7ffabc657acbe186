//! `GET /metrics`: Prometheus text (format 0.0.4) for routing, Raft and the replicated records.
//!
//! The Site actor answers a typed snapshot ([`RoutingMetrics`]); the text is built here, and
//! every metric family carries `# HELP` and `# TYPE`.

use std::fmt::Display;
use std::fmt::Write as _;

use actix_web::{HttpResponse, web};

use super::AppState;
use super::problem::ApiError;
use crate::actors::site::views::{LatencySummary, QueueView};
use crate::actors::site::{LookupMetrics, RoutingMetrics};

/// Prometheus metric kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
    Summary,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Summary => "summary",
        }
    }
}

fn header(text: &mut String, name: &str, kind: Kind, help: &str) {
    let _ = writeln!(text, "# HELP {name} {help}");
    let _ = writeln!(text, "# TYPE {name} {}", kind.as_str());
}

/// One family with a single sample labelled by site.
fn single(text: &mut String, site: &str, name: &str, kind: Kind, help: &str, value: impl Display) {
    header(text, name, kind, help);
    let _ = writeln!(text, "{name}{{site=\"{site}\"}} {value}");
}

/// Microseconds in a second (the latency samples are kept in µs, exported in seconds).
const MICROS_PER_SECOND: f64 = 1_000_000.0;
/// Milliseconds in a second.
const MILLIS_PER_SECOND: f64 = 1_000.0;

/// A summary family in seconds of samples kept in µs (p50, p90, p99, max, count); nothing
/// while there are no samples.
fn summary(text: &mut String, site: &str, name: &str, help: &str, latency: Option<LatencySummary>) {
    let Some(latency) = latency else {
        return;
    };
    header(text, name, Kind::Summary, help);
    for (quantile, value) in [
        ("0.5", latency.p50),
        ("0.9", latency.p90),
        ("0.99", latency.p99),
        ("1", latency.max),
    ] {
        let _ = writeln!(
            text,
            "{name}{{site=\"{site}\",quantile=\"{quantile}\"}} {}",
            value as f64 / MICROS_PER_SECOND
        );
    }
    let _ = writeln!(text, "{name}_count{{site=\"{site}\"}} {}", latency.count);
}

/// Per-queue gauges: (name, help, field).
type QueueField = (&'static str, &'static str, fn(&QueueView) -> f64);

const QUEUE_FIELDS: [QueueField; 8] = [
    (
        "callgrid_queue_contacts_waiting",
        "Contacts waiting in the queue.",
        |row| f64::from(row.in_queue),
    ),
    (
        "callgrid_queue_oldest_age_seconds",
        "Age of the oldest waiting contact in seconds (0: none waiting).",
        |row| row.oldest_age_ms.unwrap_or(0) as f64 / MILLIS_PER_SECOND,
    ),
    (
        "callgrid_queue_estimated_wait_seconds",
        "Estimated wait for a new contact in seconds (0: no estimate).",
        |row| row.wait_ms_estimated.unwrap_or(0) as f64 / MILLIS_PER_SECOND,
    ),
    (
        "callgrid_queue_agents_staffed",
        "Agents logged in with the skill.",
        |row| f64::from(row.agents_staffed),
    ),
    (
        "callgrid_queue_agents_available",
        "Agents available.",
        |row| f64::from(row.agents_available),
    ),
    (
        "callgrid_queue_agents_on_contact",
        "Agents ringing or talking.",
        |row| f64::from(row.agents_on_contact),
    ),
    (
        "callgrid_queue_agents_wrap_up",
        "Agents in wrap-up.",
        |row| f64::from(row.agents_wrap_up),
    ),
    (
        "callgrid_queue_agents_not_ready",
        "Agents not ready.",
        |row| f64::from(row.agents_not_ready),
    ),
];

/// Renders the routing part of `/metrics`.
pub fn render_routing(text: &mut String, routing: &RoutingMetrics) {
    let site = routing.site.as_str();
    for (name, help, field) in QUEUE_FIELDS {
        header(text, name, Kind::Gauge, help);
        for row in &routing.queues {
            let _ = writeln!(
                text,
                "{name}{{site=\"{site}\",skill=\"{}\"}} {}",
                row.skill,
                field(row)
            );
        }
    }
    let totals = &routing.totals;
    let counters = [
        (
            "callgrid_contacts_offered_total",
            "Contacts offered to the site (arrivals).",
            totals.offered,
        ),
        (
            "callgrid_contacts_answered_total",
            "Contacts answered by an agent.",
            totals.answered,
        ),
        (
            "callgrid_contacts_abandoned_total",
            "Contacts abandoned while waiting or ringing.",
            totals.abandoned,
        ),
        (
            "callgrid_contacts_self_served_total",
            "Contacts served by the self-service bot before an agent answered.",
            totals.self_served,
        ),
        (
            "callgrid_contacts_abandoned_short_total",
            "Abandons within the short-abandon threshold.",
            totals.abandoned_short,
        ),
        (
            "callgrid_contacts_transferred_out_total",
            "Contacts transferred to another skill.",
            totals.transferred_out,
        ),
        (
            "callgrid_contacts_overflowed_out_total",
            "Contacts sent to another site by the overflow rule.",
            totals.overflowed_out,
        ),
        (
            "callgrid_contacts_overflowed_in_total",
            "Contacts received from another site by the overflow rule.",
            totals.overflowed_in,
        ),
        (
            "callgrid_overflow_polls_total",
            "Applications of the overflow rule.",
            routing.overflow_polls,
        ),
        (
            "callgrid_contacts_blocked_total",
            "Contacts refused at arrival (site full).",
            totals.blocked,
        ),
        (
            "callgrid_offer_timers_lost_total",
            "Offers timed out by the Site's sweep because no Agent actor reported them.",
            routing.offer_timers_lost,
        ),
    ];
    for (name, help, value) in counters {
        single(text, site, name, Kind::Counter, help, value);
    }
    let ratios = [
        (
            "callgrid_service_level",
            "Share of contacts answered within the service-level threshold.",
            routing.service_level,
        ),
        (
            "callgrid_abandon_rate",
            "Abandoned contacts over offered contacts.",
            routing.abandon_rate,
        ),
        (
            "callgrid_asa_seconds",
            "Average speed of answer in seconds.",
            routing.asa_ms.map(|ms| ms / MILLIS_PER_SECOND),
        ),
        (
            "callgrid_aht_seconds",
            "Average handle time in seconds.",
            routing.aht_ms.map(|ms| ms / MILLIS_PER_SECOND),
        ),
        (
            "callgrid_occupancy",
            "Share of staffed time agents spent on contacts.",
            routing.occupancy,
        ),
    ];
    for (name, help, value) in ratios {
        if let Some(value) = value {
            single(text, site, name, Kind::Gauge, help, value);
        }
    }
    summary(
        text,
        site,
        "callgrid_offer_latency_seconds",
        "Arrival to first offer in seconds, recent contacts (queueing included).",
        routing.offer_latency_us,
    );
    summary(
        text,
        site,
        "callgrid_offer_latency_immediate_seconds",
        "Arrival to offer in seconds for contacts that found a free agent (routing only).",
        routing.offer_latency_immediate_us,
    );
    header(
        text,
        "callgrid_actors_running",
        Kind::Gauge,
        "Child actors running, by kind (calls include finished ones lingering for lookups).",
    );
    for (kind, count) in routing.actors_running {
        let _ = writeln!(
            text,
            "callgrid_actors_running{{site=\"{site}\",kind=\"{kind}\"}} {count}"
        );
    }
    single(
        text,
        site,
        "callgrid_actor_restarts_total",
        Kind::Counter,
        "Child actors restarted by their supervisor after a panic.",
        routing.actor_restarts,
    );
    header(text, "callgrid_agents", Kind::Gauge, "Agents by state.");
    for (state, count) in &routing.agents_by_state {
        let _ = writeln!(
            text,
            "callgrid_agents{{site=\"{site}\",state=\"{state}\"}} {count}"
        );
    }
    header(
        text,
        "callgrid_overflow_peer_agents_idle",
        Kind::Gauge,
        "Idle agents per skill at a peer site, from its last summary (stale: absent).",
    );
    for peer in &routing.peer_idle {
        let _ = writeln!(
            text,
            "callgrid_overflow_peer_agents_idle{{site=\"{site}\",peer=\"{}\",skill=\"{}\"}} {}",
            peer.peer, peer.skill, peer.idle_agents
        );
    }
    render_outbox(text, site, &routing.outbox);
}

/// The contact ledger's families: its size, and this site's overflow moves from committed
/// claims (the counts that balance across sites).
fn render_ledger(text: &mut String, site: &str, shared: &crate::state::SharedState) {
    let (open, held, counts) = shared.read(|replicated| {
        (
            replicated.ledger_open_count(),
            replicated.ledger_len(),
            replicated.overflow_counts(site),
        )
    });
    let gauges = [
        (
            "callgrid_ledger_contacts_open",
            "Open contacts in the replicated contact ledger (all sites).",
            open as u64,
        ),
        (
            "callgrid_ledger_contacts_held",
            "Contacts the ledger holds, open and closed within retention (all sites).",
            held as u64,
        ),
    ];
    for (name, help, value) in gauges {
        single(text, site, name, Kind::Gauge, help, value);
    }
    let counters = [
        (
            "callgrid_ledger_overflowed_out_total",
            "Contacts claimed away from this site (committed overflow claims).",
            counts.out,
        ),
        (
            "callgrid_ledger_overflowed_in_total",
            "Contacts this site claimed from other sites (committed overflow claims).",
            counts.into,
        ),
    ];
    for (name, help, value) in counters {
        single(text, site, name, Kind::Counter, help, value);
    }
}

/// The durable outbox's families.
fn render_outbox(text: &mut String, site: &str, outbox: &crate::outbox::OutboxSnapshot) {
    single(
        text,
        site,
        "callgrid_outbox_depth",
        Kind::Gauge,
        "Site writes accepted by the outbox and not yet committed.",
        outbox.depth,
    );
    let ages = [
        (
            "callgrid_outbox_oldest_age_seconds",
            "Age of the oldest write waiting in the outbox in seconds (0 when empty).",
            outbox.oldest_age_ms,
        ),
        (
            "callgrid_outbox_commit_lag_seconds",
            "Append-to-commit time of the oldest write of the last committed outbox batch, in seconds.",
            outbox.commit_lag_ms,
        ),
    ];
    for (name, help, ms) in ages {
        single(
            text,
            site,
            name,
            Kind::Gauge,
            help,
            ms as f64 / MILLIS_PER_SECOND,
        );
    }
    let counters = [
        (
            "callgrid_outbox_committed_total",
            "Outbox writes committed.",
            outbox.committed_total,
        ),
        (
            "callgrid_outbox_batches_total",
            "Outbox batches committed (one replicated command each).",
            outbox.batches_total,
        ),
        (
            "callgrid_outbox_retries_total",
            "Outbox batch proposals that failed (no quorum, outcome unknown) and were retried.",
            outbox.retries_total,
        ),
        (
            "callgrid_outbox_stalled_total",
            "Outbox batch proposals given up after 1 s without an answer while the cluster committed other writes (a leader that was gone), then proposed again.",
            outbox.stalled_total,
        ),
        (
            "callgrid_outbox_dropped_total",
            "Outbox writes the replicated state refused alone (never committable).",
            outbox.dropped_total,
        ),
        (
            "callgrid_outbox_store_errors_total",
            "Disk errors of the outbox store (writes are retried, never dropped).",
            outbox.store_errors_total,
        ),
    ];
    for (name, help, value) in counters {
        single(text, site, name, Kind::Counter, help, value);
    }
}

/// `GET /metrics`.
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let routing = state.site.send(LookupMetrics).await?;
    let mut text = String::new();
    render_routing(&mut text, &routing);
    let site = state.config.site.id.as_str();
    let health = state.proposer.replicator().health();
    let raft = [
        ("callgrid_raft_term", "Current Raft term.", health.term),
        (
            "callgrid_raft_commit_index",
            "Raft commit index.",
            health.commit_index,
        ),
        (
            "callgrid_raft_applied_index",
            "Raft index applied to the replicated state.",
            health.applied_index,
        ),
        (
            "callgrid_raft_has_leader",
            "1 when this node knows a Raft leader.",
            u64::from(health.leader.is_some()),
        ),
        (
            "callgrid_raft_is_leader",
            "1 when this node is the Raft leader.",
            u64::from(health.leader == Some(health.node_id)),
        ),
        (
            "callgrid_raft_voters",
            "Raft voters in the configuration.",
            health.voters.len() as u64,
        ),
        (
            "callgrid_raft_learners",
            "Raft learners in the configuration.",
            health.learners.len() as u64,
        ),
        (
            "callgrid_raft_stores_lost",
            "On the leader: members that held the log and now answer from an empty store (a lost disk); they are not sent the log and cannot vote until replaced by the runbook.",
            health
                .details
                .get("stores_lost")
                .and_then(serde_json::Value::as_array)
                .map_or(0, |lost| lost.len() as u64),
        ),
        (
            "callgrid_raft_rejoin_required",
            "1 when a leader proved this node's store lost entries it had acknowledged: it does not vote until removed, re-added as a learner and promoted.",
            u64::from(
                health
                    .details
                    .get("rejoin_required")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false),
            ),
        ),
        (
            "callgrid_raft_failed",
            "1 when this node's Raft driver failed (the process exits for its supervisor).",
            u64::from(
                health
                    .details
                    .get("fatal_error")
                    .is_some_and(|error| !error.is_null()),
            ),
        ),
    ];
    for (name, help, value) in raft {
        single(&mut text, site, name, Kind::Gauge, help, value);
    }
    summary(
        &mut text,
        site,
        "callgrid_raft_propose_seconds",
        "Proposal to answer in seconds (replicated and applied on this node), recent proposals of this node's API and actors.",
        state.proposer.propose_latency(),
    );
    super::host_metrics::render(&mut text, &state.config, &health);
    let counts = state.shared.read(|replicated| replicated.counts());
    let records = [
        (
            "callgrid_orders_open",
            "Orders not yet closed.",
            counts.orders_open,
        ),
        (
            "callgrid_pre_orders_waiting",
            "Pre-orders waiting for stock.",
            counts.pre_orders_waiting,
        ),
        (
            "callgrid_reservations_active",
            "Reservations not yet expired or collected.",
            counts.reservations_active,
        ),
        (
            "callgrid_complaints_escalated",
            "Complaints escalated.",
            counts.complaints_escalated,
        ),
        (
            "callgrid_callbacks_open",
            "Callbacks not yet closed.",
            counts.callbacks_open,
        ),
        (
            "callgrid_idempotency_keys",
            "Idempotency keys whose first result the replicated state remembers.",
            counts.idempotency_keys,
        ),
    ];
    for (name, help, value) in records {
        single(&mut text, site, name, Kind::Gauge, help, value);
    }
    // Tallies that only grow (kept through retention and snapshots): counters.
    let totals = [
        (
            "callgrid_orders_total",
            "Orders taken, chain-wide (the replicated state's count; never decreases).",
            counts.orders,
        ),
        (
            "callgrid_complaints_total",
            "Complaints filed, chain-wide (the replicated state's count; never decreases).",
            counts.complaints,
        ),
    ];
    for (name, help, value) in totals {
        single(&mut text, site, name, Kind::Counter, help, value);
    }
    // Operators' controls: a site left drained after maintenance is worth an alert.
    let (drained, tokens_active) = state.shared.read(|replicated| {
        (
            u8::from(replicated.is_drained(site)),
            replicated
                .tokens()
                .filter(|(_, token)| !token.revoked)
                .count(),
        )
    });
    single(
        &mut text,
        site,
        "callgrid_site_drained",
        Kind::Gauge,
        "1 while this site is drained (no new contacts, no callback claims).",
        drained,
    );
    single(
        &mut text,
        site,
        "callgrid_idempotency_keys_evicted_total",
        Kind::Counter,
        "Idempotency keys forgotten before their expiry because the table was full.",
        counts.idempotency_keys_evicted,
    );
    single(
        &mut text,
        site,
        "callgrid_cluster_tokens_active",
        Kind::Gauge,
        "Tokens the cluster accepts at every site (not revoked).",
        tokens_active,
    );
    single(
        &mut text,
        site,
        "callgrid_raft_quorum_contact_age_seconds",
        Kind::Gauge,
        "Seconds since this node last heard from a quorum of voters or its leader (the age of its local reads; +Inf: never since it started).",
        health.quorum_contact_age_ms.map_or_else(
            || "+Inf".to_string(),
            |age_ms| format!("{}.{:03}", age_ms / 1_000, age_ms % 1_000),
        ),
    );
    render_ledger(&mut text, site, &state.shared);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every family in the rendered text has HELP and TYPE lines before its samples.
    #[test]
    fn every_routing_metric_has_help_and_type() {
        let routing = RoutingMetrics {
            site: "msk".to_string(),
            queues: vec![QueueView {
                skill: "line1".to_string(),
                channel: callgrid_domain::Channel::Voice,
                line: callgrid_domain::Line::Line1,
                in_queue: 2,
                oldest_age_ms: Some(5),
                newest_age_ms: Some(1),
                wait_ms_estimated: None,
                agents_staffed: 1,
                agents_available: 0,
                agents_on_contact: 1,
                agents_wrap_up: 0,
                agents_not_ready: 0,
            }],
            totals: callgrid_domain::Counters::default(),
            service_level: Some(0.5),
            abandon_rate: Some(0.1),
            asa_ms: None,
            aht_ms: None,
            occupancy: None,
            overflow_polls: 3,
            offer_latency_us: Some(LatencySummary {
                p50: 1,
                p90: 2,
                p99: 3,
                max: 4,
                count: 5,
            }),
            offer_latency_immediate_us: None,
            actors_running: [("agent", 1), ("call", 2), ("queue", 1)],
            actor_restarts: 0,
            offer_timers_lost: 0,
            agents_by_state: [("busy", 1)].into_iter().collect(),
            peer_idle: Vec::new(),
            outbox: crate::outbox::OutboxSnapshot {
                depth: 4,
                ..Default::default()
            },
        };
        let mut text = String::new();
        render_routing(&mut text, &routing);
        assert_every_family_documented(&text);
        assert!(text.contains("callgrid_queue_contacts_waiting{site=\"msk\",skill=\"line1\"} 2\n"));
        assert!(
            text.contains(
                "callgrid_offer_latency_seconds{site=\"msk\",quantile=\"0.99\"} 0.000003\n"
            )
        );
        assert!(
            text.contains(
                "callgrid_queue_oldest_age_seconds{site=\"msk\",skill=\"line1\"} 0.005\n"
            )
        );
        assert!(text.contains("callgrid_outbox_depth{site=\"msk\"} 4\n"));
    }

    /// Checks that each sample's family was introduced by HELP and TYPE.
    pub(crate) fn assert_every_family_documented(text: &str) {
        let mut helped = std::collections::BTreeSet::new();
        let mut typed = std::collections::BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                helped.insert(rest.split(' ').next().unwrap_or_default().to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap_or_default().to_string());
            } else {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                let family = name
                    .strip_suffix("_count")
                    .filter(|base| typed.contains(*base))
                    .unwrap_or(name);
                assert!(helped.contains(family), "no HELP before {line}");
                assert!(typed.contains(family), "no TYPE before {line}");
            }
        }
    }
}
