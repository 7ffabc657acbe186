//! The offered load a scenario *expects* (its rates, not a sampled day): contacts per second
//! and erlangs per site, skill and interval of the day. The closed forms (Erlang C / A) that
//! `staff` prints beside the simulated minimum are computed from these figures.
//!
//! Expected contacts to a skill at a site in an interval:
//! `contacts_per_day × season × mean(day factors) × interval share × site share × Σ topics of
//! the skill (topic share × (voice: (1 − chat share) × (1 − bot share) | chat: chat share))`;
//! a transfer target also receives `transfer share ×` the expected voice contacts of the
//! transfer source. Load is contacts × (mean handle time + wrap-up), a chat counting as
//! `1 / chat_slots` of an agent. Overflow moves, abandonment and callbacks are not in it: the
//! closed form is for the traffic the site is expected to get.

use crate::scenario::Scenario;

/// Expected traffic of one queue (site × skill) in one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ExpectedLoad {
    /// Contacts per second (voice and chat).
    pub arrival_rate_per_s: f64,
    /// Offered work in agent-seconds per second (erlangs).
    pub load_erlangs: f64,
}

impl ExpectedLoad {
    /// Mean agent-seconds per contact (the handle time the closed form uses).
    pub fn handle_time_s_mean(&self) -> f64 {
        if self.arrival_rate_per_s > 0.0 {
            self.load_erlangs / self.arrival_rate_per_s
        } else {
            0.0
        }
    }
}

/// Expected traffic of `skill` at site `site` (index) in every interval of the day.
pub fn expected_load(scenario: &Scenario, site: usize, skill: &str) -> Vec<ExpectedLoad> {
    let days = scenario.days().max(1) as f64;
    let day_factor_mean = scenario.volume.day_factors.iter().sum::<f64>() / days;
    let site_share = scenario
        .sites
        .get(site)
        .map_or(0.0, |site| site.volume_share);
    let per_day = scenario.volume.contacts_per_day
        * scenario.volume.season_factor
        * day_factor_mean
        * site_share;
    let interval_s = f64::from(scenario.interval_minutes) * 60.0;
    let wrap_up_s = scenario.wrap_up_s;
    let voice_s = scenario.handle_time.voice.mean_s().unwrap_or(0.0) + wrap_up_s;
    let chat_s = scenario.handle_time.chat.mean_s().unwrap_or(0.0) + wrap_up_s;
    let chat_share = scenario.channels.chat_share;
    let chat_weight = 1.0 / f64::from(scenario.channels.chat_slots.max(1));
    // Shares of the day's contacts that reach `name` by voice and by chat.
    let shares_of = |name: &str| -> (f64, f64) {
        scenario
            .topics
            .iter()
            .filter(|topic| topic.skill == name)
            .fold((0.0, 0.0), |(voice, chat), topic| {
                (
                    voice
                        + topic.share
                            * (1.0 - chat_share)
                            * (1.0 - scenario.bot_share(&topic.name)),
                    chat + topic.share * chat_share,
                )
            })
    };
    let (voice_share, chat_share_of_skill) = shares_of(skill);
    let (transfer_share, transfer_s) = match &scenario.transfer {
        Some(transfer) if transfer.to_skill == skill => (
            transfer.share * shares_of(&transfer.from_skill).0,
            transfer.handle_time.mean_s().unwrap_or(0.0) + wrap_up_s,
        ),
        _ => (0.0, 0.0),
    };
    scenario
        .interval_shares()
        .iter()
        .map(|share| {
            let contacts = per_day * share;
            let voice = contacts * voice_share / interval_s;
            let chat = contacts * chat_share_of_skill / interval_s;
            let transferred = contacts * transfer_share / interval_s;
            ExpectedLoad {
                arrival_rate_per_s: voice + chat + transferred,
                load_erlangs: voice * voice_s
                    + chat * chat_s * chat_weight
                    + transferred * transfer_s,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn default_day_peak_interval_matches_a_hand_computation() {
        let scenario = Scenario::built_in().unwrap();
        let loads = expected_load(&scenario, 0, "line1");
        // 12:00 is interval 24 with share 0.048972; Moscow 45%; line1 topics 95% of contacts,
        // order status (50%) loses 25% of its voice calls to the bot.
        let contacts = 17_000.0 * 0.048972 * 0.45;
        let voice = contacts * 0.85 * (0.45 + 0.50 * 0.75);
        let chat = contacts * 0.15 * 0.95;
        let expected_rate = (voice + chat) / 1800.0;
        let expected_erlangs = (voice * 195.0 + chat * 375.0 / 2.0) / 1800.0;
        assert!((loads[24].arrival_rate_per_s - expected_rate).abs() < 1e-9);
        assert!((loads[24].load_erlangs - expected_erlangs).abs() < 1e-9);
        assert_eq!(loads[0], ExpectedLoad::default());
        let line2 = expected_load(&scenario, 0, "line2");
        let transferred = 0.08 * contacts * 0.85 * (0.45 + 0.50 * 0.75) / 1800.0;
        assert!((line2[24].arrival_rate_per_s - transferred).abs() < 1e-9);
    }
}
