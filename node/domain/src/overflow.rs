//! Cross-site overflow: the availability summary sites publish, the sliding window that caps
//! the share of traffic sent out, and the deterministic choice of a target site.
//!
//! The rule itself runs in [`crate::Site::poll_overflow`]; this module holds its parts so they
//! can be tested alone.

use crate::ids::{SiteId, SkillId, TimeMs};
use serde::{Deserialize, Serialize};

/// One skill's availability at a site.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillSummary {
    /// Agents ready and holding nothing, qualified (certificate valid) for the skill.
    pub idle_agents: u32,
    /// Agents ready for the skill (idle or working).
    pub serving_agents: u32,
    /// Contacts waiting in the queue.
    pub waiting: u32,
    /// Wait of the contact at the head of the queue (0 when empty).
    pub oldest_wait_ms: u64,
    /// Estimated wait of a contact joining the queue now; `u64::MAX` when nobody serves it.
    pub estimated_wait_ms: u64,
}

/// A site's availability snapshot: what other sites read to decide overflow. The node
/// replicates it through Raft; the simulator passes the live values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteSummary {
    /// The site.
    pub site: SiteId,
    /// Whether the site is up (a site marked down takes no contacts).
    pub up: bool,
    /// When the snapshot was taken.
    pub at: TimeMs,
    /// Per skill, indexed by [`SkillId`].
    pub skills: Vec<SkillSummary>,
}

impl SiteSummary {
    /// The summary of `skill`, or an empty one if the site does not have it.
    #[inline]
    pub fn skill(&self, skill: SkillId) -> SkillSummary {
        self.skills.get(skill.index()).copied().unwrap_or_default()
    }
}

/// Buckets of the sliding window; the window slides one bucket at a time.
pub const SHARE_WINDOW_BUCKETS: usize = 15;

/// Offered and overflowed-out counts over a sliding window, for the overflow cap.
#[derive(Clone, Debug)]
pub(crate) struct ShareWindow {
    bucket_ms: u64,
    /// Index (time / bucket_ms) of the newest bucket.
    newest: u64,
    offered: [u32; SHARE_WINDOW_BUCKETS],
    sent_out: [u32; SHARE_WINDOW_BUCKETS],
    share_out_max_ppm: u64,
}

impl ShareWindow {
    pub(crate) fn new(window_s: u64, share_out_max: f64) -> ShareWindow {
        let bucket_ms = (window_s.saturating_mul(1000) / SHARE_WINDOW_BUCKETS as u64).max(1);
        // Rounding to parts per million keeps the comparison in integers, so results do not
        // depend on floating-point evaluation order.
        let share_out_max_ppm = (share_out_max.clamp(0.0, 1.0) * 1_000_000.0).round() as u64;
        ShareWindow {
            bucket_ms,
            newest: 0,
            offered: [0; SHARE_WINDOW_BUCKETS],
            sent_out: [0; SHARE_WINDOW_BUCKETS],
            share_out_max_ppm,
        }
    }

    fn advance(&mut self, now: TimeMs) {
        let index = now.0 / self.bucket_ms;
        if index <= self.newest {
            return;
        }
        let steps = (index - self.newest).min(SHARE_WINDOW_BUCKETS as u64);
        for step in 1..=steps {
            let bucket = ((self.newest + step) % SHARE_WINDOW_BUCKETS as u64) as usize;
            self.offered[bucket] = 0;
            self.sent_out[bucket] = 0;
        }
        self.newest = index;
    }

    fn bucket(&self) -> usize {
        (self.newest % SHARE_WINDOW_BUCKETS as u64) as usize
    }

    pub(crate) fn record_offered(&mut self, now: TimeMs) {
        self.advance(now);
        let bucket = self.bucket();
        self.offered[bucket] = self.offered[bucket].saturating_add(1);
    }

    pub(crate) fn record_sent_out(&mut self, now: TimeMs) {
        self.advance(now);
        let bucket = self.bucket();
        self.sent_out[bucket] = self.sent_out[bucket].saturating_add(1);
    }

    /// Whether one more contact may be sent out without exceeding the cap.
    pub(crate) fn allows_one_more(&mut self, now: TimeMs) -> bool {
        self.advance(now);
        let offered: u64 = self.offered.iter().map(|&count| u64::from(count)).sum();
        let sent_out: u64 = self.sent_out.iter().map(|&count| u64::from(count)).sum();
        (sent_out + 1) * 1_000_000 <= self.share_out_max_ppm * offered
    }
}

/// The overflow target for `skill`: among other sites that are up and have more idle
/// qualified agents than `already_sent[i]` (contacts sent to `peers[i]` in this pass), the one
/// with the most remaining idle agents; ties go to the lowest site id. Returns the index into
/// `peers`.
pub(crate) fn choose_rule_target(
    own_site: SiteId,
    skill: SkillId,
    peers: &[SiteSummary],
    already_sent: &[u32],
) -> Option<usize> {
    let mut best: Option<(usize, u32, SiteId)> = None;
    for (index, peer) in peers.iter().enumerate() {
        if peer.site == own_site || !peer.up {
            continue;
        }
        let sent = already_sent.get(index).copied().unwrap_or(0);
        let idle = peer.skill(skill).idle_agents.saturating_sub(sent);
        if idle == 0 {
            continue;
        }
        let better = match best {
            None => true,
            Some((_, best_idle, best_site)) => {
                idle > best_idle || (idle == best_idle && peer.site < best_site)
            }
        };
        if better {
            best = Some((index, idle, peer.site));
        }
    }
    best.map(|(index, _, _)| index)
}

/// The target for contacts leaving a site that is down: among other sites that are up and
/// serve the skill (someone ready for it), most idle agents, then fewest waiting, then
/// lowest site id. Unlike the rule, an outage moves contacts even when nobody is idle, because
/// staying means waiting at a site that cannot answer.
pub(crate) fn choose_outage_target(
    own_site: SiteId,
    skill: SkillId,
    peers: &[SiteSummary],
) -> Option<SiteId> {
    let mut best: Option<(u32, u32, SiteId)> = None;
    for peer in peers {
        if peer.site == own_site || !peer.up {
            continue;
        }
        let summary = peer.skill(skill);
        if summary.serving_agents == 0 {
            continue;
        }
        let candidate = (summary.idle_agents, summary.waiting, peer.site);
        let better = match best {
            None => true,
            Some((idle, waiting, site)) => {
                candidate.0 > idle
                    || (candidate.0 == idle
                        && (candidate.1 < waiting
                            || (candidate.1 == waiting && candidate.2 < site)))
            }
        };
        if better {
            best = Some(candidate);
        }
    }
    best.map(|(_, _, site)| site)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(site: u16, up: bool, idle: u32, waiting: u32) -> SiteSummary {
        SiteSummary {
            site: SiteId(site),
            up,
            at: TimeMs::ZERO,
            skills: vec![SkillSummary {
                idle_agents: idle,
                serving_agents: idle + 1,
                waiting,
                oldest_wait_ms: 0,
                estimated_wait_ms: 0,
            }],
        }
    }

    #[test]
    fn rule_target_prefers_most_idle_then_lowest_id_and_skips_down_and_self() {
        let peers = vec![
            peer(0, true, 9, 0),
            peer(1, true, 2, 0),
            peer(2, true, 3, 0),
            peer(3, true, 3, 0),
            peer(4, false, 8, 0),
        ];
        let sent = vec![0; peers.len()];
        assert_eq!(
            choose_rule_target(SiteId(0), SkillId(0), &peers, &sent),
            Some(2)
        );
        let sent = vec![0, 0, 2, 0, 0];
        assert_eq!(
            choose_rule_target(SiteId(0), SkillId(0), &peers, &sent),
            Some(3)
        );
        let none_idle = vec![peer(1, true, 0, 0)];
        assert_eq!(
            choose_rule_target(SiteId(0), SkillId(0), &none_idle, &[0]),
            None
        );
        assert_eq!(
            choose_rule_target(SiteId(0), SkillId(5), &peers, &sent),
            None
        );
    }

    #[test]
    fn outage_target_accepts_busy_sites() {
        let peers = vec![
            peer(1, true, 0, 5),
            peer(2, true, 0, 3),
            peer(3, false, 4, 0),
        ];
        assert_eq!(
            choose_outage_target(SiteId(0), SkillId(0), &peers),
            Some(SiteId(2))
        );
    }

    #[test]
    fn share_window_caps_and_slides() {
        let mut window = ShareWindow::new(150, 0.2);
        for _ in 0..10 {
            window.record_offered(TimeMs(0));
        }
        assert!(window.allows_one_more(TimeMs(0)));
        window.record_sent_out(TimeMs(0));
        assert!(window.allows_one_more(TimeMs(0)));
        window.record_sent_out(TimeMs(0));
        assert!(!window.allows_one_more(TimeMs(0)));
        // After the whole window has passed the old counts are gone.
        assert!(!window.allows_one_more(TimeMs(150_000)));
        window.record_offered(TimeMs(150_000));
        window.record_offered(TimeMs(150_000));
        window.record_offered(TimeMs(150_000));
        window.record_offered(TimeMs(150_000));
        window.record_offered(TimeMs(150_000));
        assert!(window.allows_one_more(TimeMs(150_000)));
    }
}
