//! Cross-site overflow, the node's part: what a site publishes about itself, how it reads the
//! other sites' publications, and what an overflowed contact carries to its target.
//!
//! The rule itself (thresholds with hysteresis, the cap on the share sent out, only to sites
//! with idle qualified agents) is the domain's `Site::poll_overflow`; the Site actor drives it:
//!
//! 1. Publish: every [`SUMMARY_PUBLISH_INTERVAL`] the site proposes its per-skill availability
//!    (`Command::PublishSiteSummary`) through Raft when it changed, or when the last one is
//!    [`SUMMARY_REFRESH_AFTER_MS`] old (so peers can tell a live site from a silent one).
//!    A failed proposal is logged; the next tick tries again.
//! 2. Decide: after arrivals, at `Site::overflow_deadline()`, and when the peers' summaries
//!    (read from the replicated state on the same tick) changed, the actor calls
//!    `poll_overflow` with them mapped by [`peer_summaries`]: sites by `[[peer_sites]]`
//!    number, skills by name; a summary that has not changed for [`SUMMARY_STALE_AFTER_MS`]
//!    counts as a site that is down (it receives nothing). Age is measured on the receiver's
//!    clock from when a summary was first seen ([`PeerArrivals`]), never by comparing the
//!    sender's `at_ms` with the receiver's wall clock: two machines' clocks may differ by
//!    more than the threshold. (A summary already in the state when the node starts counts
//!    as arrived at start.)
//! 3. Deliver: an `Effect::Overflow` takes the contact out of the local queue (the domain
//!    counted it overflowed out); its view's stage becomes `overflowed` with `overflowed_to`
//!    (target site id, API URL if configured, and the hop count), which the gateway sees on
//!    its stream. The telephony side re-presents the call at the target with
//!    `POST /api/v1/contacts` and an [`OverflowedFrom`] field. The source has released the
//!    contact in the contact ledger (stage `overflowed`, through its outbox); the target
//!    claims it (`Command::ClaimOverflow`, the first claim wins) and routes it only once the
//!    claim committed, else 409 (`api::routes::ledger`). It then calls `handle_overflow_in`,
//!    keeping the caller's original arrival time as its ordering time and the hop count as
//!    the contact's overflow count — both as the ledger has them, not as the gateway says:
//!    the ledger enforces [`OVERFLOW_HOPS_MAX`], so a contact cannot be passed on A→B→C→…
//!    past the cap whatever the gateway sends.
//!
//! Summaries are state, not a log: only the latest per site is kept (one entry per site).

use std::time::Duration;

use callgrid_domain::{SiteId, SiteSummary as DomainSummary, SkillSummary as DomainSkill};
use serde::{Deserialize, Serialize};

use crate::config::NodeConfig;
use crate::state::model::{SiteSummary, SkillSummary};

/// How often a site considers publishing its summary and re-reads its peers' summaries.
pub const SUMMARY_PUBLISH_INTERVAL: Duration = Duration::from_secs(2);
/// An unchanged summary is published again after this long, so it never looks stale.
pub const SUMMARY_REFRESH_AFTER_MS: u64 = 5_000;
/// A peer summary older than this counts as a site that is down: no overflow to it.
pub const SUMMARY_STALE_AFTER_MS: u64 = 10_000;
/// How far in the future an `overflowed_from.arrived_at_ms` may lie (clock skew between
/// sites) before it is refused.
pub const ARRIVAL_CLOCK_SKEW_MS_MAX: u64 = 60_000;
/// How many times a contact may have moved between sites when it is presented here: the
/// domain's own limit, since a contact that moved that often is never moved again.
pub const OVERFLOW_HOPS_MAX: u8 = callgrid_domain::OVERFLOW_HOPS_MAX;

/// `overflowed_from.hops` when a gateway leaves it out (gateways older than the field only
/// ever saw single moves).
fn hops_default() -> u8 {
    1
}

/// Where an overflowed contact comes from: the optional `overflowed_from` field of
/// `POST /api/v1/contacts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverflowedFrom {
    /// The source site's id (one of `[[peer_sites]]`).
    pub site: String,
    /// The contact's id at the source site.
    pub contact: u64,
    /// When the caller first arrived (ms since the Unix epoch): kept as its queue place.
    pub arrived_at_ms: u64,
    /// How many times the contact has moved between sites, this move included (the
    /// `hops` of the source's `overflowed_to`): 1..=[`OVERFLOW_HOPS_MAX`], default 1. The
    /// domain never moves a contact again once it reached the maximum, so A→B→C stops at B
    /// when the maximum is 1 and at C when it is 2.
    #[serde(default = "hops_default")]
    pub hops: u8,
}

impl OverflowedFrom {
    /// Checks the field against the configuration: a configured peer site, a positive
    /// contact, hops within 1..=[`OVERFLOW_HOPS_MAX`], a past arrival time (clock skew
    /// allowed). Returns the peer site's number, or what is wrong (a 400).
    pub fn check(&self, config: &NodeConfig, now_ms: u64) -> Result<u16, String> {
        let peer = config.peer_site(&self.site).ok_or_else(|| {
            format!(
                "overflowed_from.site: `{}` is not one of this site's peer sites",
                self.site.chars().take(64).collect::<String>()
            )
        })?;
        if self.contact == 0 {
            return Err("overflowed_from.contact: must be positive".to_string());
        }
        if !(1..=OVERFLOW_HOPS_MAX).contains(&self.hops) {
            return Err(format!(
                "overflowed_from.hops: must be 1..={OVERFLOW_HOPS_MAX}"
            ));
        }
        if self.arrived_at_ms == 0
            || self.arrived_at_ms > now_ms.saturating_add(ARRIVAL_CLOCK_SKEW_MS_MAX)
        {
            return Err(
                "overflowed_from.arrived_at_ms: must be a past time in ms since the Unix epoch"
                    .to_string(),
            );
        }
        Ok(peer.number)
    }
}

/// Where a contact was overflowed to: `overflowed_to` in its view and on the gateway stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverflowedTo {
    /// The target site's id.
    pub site: String,
    /// The target's API base URL, if `[[peer_sites]]` sets it.
    pub api_url: Option<String>,
    /// What the gateway sends as `overflowed_from.hops` at the target.
    pub hops: u8,
}

/// The replicated form of this site's domain summary (skills by name).
pub fn publishable(config: &NodeConfig, at_ms: u64, summary: &DomainSummary) -> SiteSummary {
    SiteSummary {
        site: config.site.id.clone(),
        at_ms,
        skills: config
            .routing
            .skills
            .iter()
            .zip(&summary.skills)
            .map(|(skill, cell)| SkillSummary {
                skill: skill.name.clone(),
                agents_idle: cell.idle_agents,
                contacts_waiting: cell.waiting,
                wait_ms_estimated: cell.estimated_wait_ms,
            })
            .collect(),
    }
}

/// Whether two publications say the same (the time aside).
pub fn same_availability(left: &SiteSummary, right: &SiteSummary) -> bool {
    left.site == right.site && left.skills == right.skills
}

/// The peers' replicated summaries as the domain reads them: one per configured peer site
/// that published, indexed skills as this site's routing config has them (a skill the peer
/// did not publish has nobody idle), down when stale. The time field is left at zero so that
/// a refresh of an unchanged summary compares equal.
pub fn peer_summaries<'a>(
    config: &NodeConfig,
    now_ms: u64,
    arrivals: &mut PeerArrivals,
    published: impl Iterator<Item = &'a SiteSummary>,
) -> Vec<DomainSummary> {
    let mut peers: Vec<DomainSummary> = published
        .filter_map(|summary| {
            let peer = config.peer_site(&summary.site)?;
            let arrived_ms = arrivals.observe(&summary.site, summary.at_ms, now_ms);
            let fresh = now_ms.saturating_sub(arrived_ms) <= SUMMARY_STALE_AFTER_MS;
            let skills = if fresh {
                config
                    .routing
                    .skills
                    .iter()
                    .map(|skill| {
                        summary
                            .skills
                            .iter()
                            .find(|cell| cell.skill == skill.name)
                            .map_or_else(DomainSkill::default, |cell| DomainSkill {
                                idle_agents: cell.agents_idle,
                                serving_agents: cell.agents_idle,
                                waiting: cell.contacts_waiting,
                                oldest_wait_ms: 0,
                                estimated_wait_ms: cell.wait_ms_estimated,
                            })
                    })
                    .collect()
            } else {
                Vec::new()
            };
            Some(DomainSummary {
                site: SiteId(peer.number),
                up: fresh,
                at: callgrid_domain::TimeMs::ZERO,
                skills,
            })
        })
        .collect();
    peers.sort_by_key(|summary| summary.site);
    peers
}

/// When each peer's current summary arrived, on this node's clock: a summary is told apart
/// from the previous one by the sender's `at_ms` (compared only with the sender's own earlier
/// values, never with this clock).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerArrivals {
    /// Peer site id → (its summary's `at_ms`, when this node first saw that summary).
    seen: std::collections::BTreeMap<String, (u64, u64)>,
}

impl PeerArrivals {
    /// Records the summary `site` published at `at_ms` (sender's clock) as seen at `now_ms`
    /// (this node's clock) unless it was seen before; returns when it was first seen.
    pub fn observe(&mut self, site: &str, at_ms: u64, now_ms: u64) -> u64 {
        match self.seen.get_mut(site) {
            Some((seen_at, arrived)) if *seen_at == at_ms => *arrived,
            Some(entry) => {
                *entry = (at_ms, now_ms);
                now_ms
            }
            None => {
                self.seen.insert(site.to_string(), (at_ms, now_ms));
                now_ms
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::path::Path;

    fn config() -> NodeConfig {
        NodeConfig::parse(
            r#"
[site]
id = "msk"
number = 0
[[peer_sites]]
id = "spb"
number = 1
api_url = "http://127.0.0.1:9"
"#,
            Path::new("test.toml"),
        )
        .unwrap()
    }

    fn published(site: &str, at_ms: u64, idle: u32) -> SiteSummary {
        SiteSummary {
            site: site.to_string(),
            at_ms,
            skills: vec![SkillSummary {
                skill: "line1".to_string(),
                agents_idle: idle,
                contacts_waiting: 0,
                wait_ms_estimated: 0,
            }],
        }
    }

    #[test]
    fn peers_are_mapped_by_number_and_skill_name_and_stale_ones_are_down() {
        let config = config();
        let summaries = [
            published("spb", 1_000, 2),
            published("msk", 1_000, 5),
            published("unknown", 1_000, 5),
        ];
        let mut arrivals = PeerArrivals::default();
        let peers = peer_summaries(&config, 1_000, &mut arrivals, summaries.iter());
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].site, SiteId(1));
        assert!(peers[0].up);
        assert_eq!(peers[0].skills.len(), config.routing.skills.len());
        assert_eq!(peers[0].skills[0].idle_agents, 2);
        assert_eq!(peers[0].skills[1].idle_agents, 0);
        let still = peer_summaries(
            &config,
            1_000 + SUMMARY_STALE_AFTER_MS,
            &mut arrivals,
            summaries.iter(),
        );
        assert!(still[0].up);
        let stale = peer_summaries(
            &config,
            1_001 + SUMMARY_STALE_AFTER_MS,
            &mut arrivals,
            summaries.iter(),
        );
        assert!(!stale[0].up);
        assert!(stale[0].skills.is_empty());
    }

    /// Defect 11: a peer whose clock lags by a minute is up while it keeps publishing, and
    /// down once it stops, judged by this node's clock alone.
    #[test]
    fn a_peer_with_a_skewed_clock_is_judged_by_arrival_on_the_receivers_clock() {
        let config = config();
        let mut arrivals = PeerArrivals::default();
        let now = 1_000_000;
        let lagging = 60_000;
        let first = [published("spb", now - lagging, 2)];
        assert!(peer_summaries(&config, now, &mut arrivals, first.iter())[0].up);
        // A fresh publication 5 s later (sender's clock still a minute behind).
        let later = now + SUMMARY_STALE_AFTER_MS;
        let second = [published("spb", later - lagging, 2)];
        assert!(peer_summaries(&config, later, &mut arrivals, second.iter())[0].up);
        // The peer falls silent: the same summary, seen long enough ago, is stale.
        let silent = later + SUMMARY_STALE_AFTER_MS + 1;
        assert!(!peer_summaries(&config, silent, &mut arrivals, second.iter())[0].up);
        // A peer whose clock runs ahead is not kept alive by it either.
        let mut arrivals = PeerArrivals::default();
        let ahead = [published("spb", now + 3_600_000, 2)];
        assert!(peer_summaries(&config, now, &mut arrivals, ahead.iter())[0].up);
        let silent = now + SUMMARY_STALE_AFTER_MS + 1;
        assert!(!peer_summaries(&config, silent, &mut arrivals, ahead.iter())[0].up);
    }

    #[test]
    fn unchanged_availability_compares_equal_whatever_the_time() {
        assert!(same_availability(
            &published("spb", 1, 2),
            &published("spb", 9, 2)
        ));
        assert!(!same_availability(
            &published("spb", 1, 2),
            &published("spb", 1, 3)
        ));
    }
}
