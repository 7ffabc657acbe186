//! What the outside world will do in a live run, drawn up front from the scenario and seed
//! with the offline simulator's samplers: every contact (when, where, what, how patient, how
//! long) and every agent's shifts. Drawing it all first keeps the players simple (no shared
//! random stream across threads) and makes a run reproducible from its seed.

use rand::SeedableRng as _;
use rand_pcg::Pcg64;

use crate::engine::domain_topic;
use crate::sample::{Sampler, chance, gap_s};
use crate::scenario::{self, Scenario};

/// Most contacts a plan may hold (bounds memory and the caller-number space).
pub const CONTACTS_MAX: usize = 5_000_000;
/// Caller numbers are this prefix followed by the contact's plan index (7 digits).
pub const CALLER_PREFIX: &str = "+7900";

/// One planned contact.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedContact {
    /// Index in the plan (also encoded in the caller number).
    pub index: usize,
    /// Arrival, ms since the scenario day's midnight.
    pub at_ms: u64,
    /// Entry site (scenario order).
    pub site: usize,
    /// Chat rather than voice.
    pub chat: bool,
    /// Scenario topic index.
    pub topic: usize,
    /// Answered by the self-service bot (never queued).
    pub bot: bool,
    /// How long the caller waits before hanging up, ms (`u64::MAX`: forever).
    pub patience_ms: u64,
    /// Talk time with the first agent, ms.
    pub handle_ms: u64,
    /// Talk time with line 2 after a transfer, if the contact is transferred.
    pub transfer_handle_ms: Option<u64>,
    /// Whether a callback attempt for this caller reaches the customer.
    pub callback_reached: bool,
}

impl PlannedContact {
    /// The caller number that identifies this contact to every player.
    pub fn caller(&self) -> String {
        caller_of(self.index)
    }
}

/// The caller number of plan index `index`.
pub fn caller_of(index: usize) -> String {
    format!("{CALLER_PREFIX}{index:07}")
}

/// The plan index a caller number (as the node normalizes it: digits, maybe a `+`) encodes.
pub fn index_of_caller(caller: &str) -> Option<usize> {
    let digits: String = caller.chars().filter(char::is_ascii_digit).collect();
    let prefix: String = CALLER_PREFIX.chars().filter(char::is_ascii_digit).collect();
    digits.strip_prefix(&prefix)?.parse().ok()
}

/// One agent of the staffing plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedAgent {
    /// Login (unique in the cluster).
    pub login: String,
    /// Numeric id (unique in the cluster).
    pub id: u32,
    /// Site (scenario order).
    pub site: usize,
    /// Scenario skill names.
    pub skills: Vec<String>,
    /// Logged-in spans, ms since the day's midnight, in order, not overlapping.
    pub shifts: Vec<(u64, u64)>,
}

/// The whole plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Contacts in arrival order.
    pub contacts: Vec<PlannedContact>,
    /// Agents, site by site.
    pub agents: Vec<PlannedAgent>,
    /// Ring time before an agent picks up, ms.
    pub ring_ms: u64,
    /// Wrap-up after each contact, ms.
    pub wrap_up_ms: u64,
    /// First arrival interval start and last interval end, ms since midnight.
    pub day_span_ms: (u64, u64),
}

/// Why a plan cannot be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Live runs play one day.
    #[error("live runs play one day; the scenario has {0} (use a one-day scenario)")]
    Days(usize),
    /// Too many contacts.
    #[error("the plan would exceed {CONTACTS_MAX} contacts")]
    TooManyContacts,
}

/// Draws the plan of `scenario` with `seed`.
pub fn draw(scenario: &Scenario, seed: u64) -> Result<Plan, PlanError> {
    if scenario.days() != 1 {
        return Err(PlanError::Days(scenario.days()));
    }
    let interval_ms = u64::from(scenario.interval_minutes) * 60_000;
    let shares = scenario.interval_shares();
    let volume = scenario.volume.contacts_per_day
        * scenario.volume.season_factor
        * scenario.volume.day_factors.first().copied().unwrap_or(1.0);
    let mut random = Pcg64::seed_from_u64(seed);
    let samplers = Samplers::new(scenario);
    let mut contacts = Vec::new();
    let first = shares.iter().position(|share| *share > 0.0).unwrap_or(0);
    let last = shares.iter().rposition(|share| *share > 0.0).unwrap_or(0);
    for (interval, share) in shares.iter().enumerate() {
        let rate_per_s = volume * share / (interval_ms as f64 / 1000.0);
        let start = interval as u64 * interval_ms;
        let mut at_s = start as f64 / 1000.0;
        loop {
            at_s += gap_s(&mut random, rate_per_s);
            let at_ms = (at_s * 1000.0) as u64;
            if !at_s.is_finite() || at_ms >= start + interval_ms {
                break;
            }
            if contacts.len() >= CONTACTS_MAX {
                return Err(PlanError::TooManyContacts);
            }
            let index = contacts.len();
            contacts.push(samplers.contact(scenario, &mut random, index, at_ms));
        }
    }
    Ok(Plan {
        contacts,
        agents: agents(scenario, interval_ms),
        ring_ms: crate::domain_config::ms(scenario.ring_time_s),
        wrap_up_ms: crate::domain_config::ms(scenario.wrap_up_s),
        day_span_ms: (first as u64 * interval_ms, (last as u64 + 1) * interval_ms),
    })
}

struct Samplers {
    voice: Sampler,
    chat: Sampler,
    line2: Sampler,
    patience: Sampler,
}

impl Samplers {
    fn new(scenario: &Scenario) -> Samplers {
        let line2 = scenario
            .transfer
            .as_ref()
            .map_or(scenario::Distribution::None, |transfer| {
                transfer.handle_time
            });
        Samplers {
            voice: Sampler::new(&scenario.handle_time.voice),
            chat: Sampler::new(&scenario.handle_time.chat),
            line2: Sampler::new(&line2),
            patience: Sampler::new(&scenario.patience),
        }
    }

    fn contact(
        &self,
        scenario: &Scenario,
        random: &mut Pcg64,
        index: usize,
        at_ms: u64,
    ) -> PlannedContact {
        let site = pick(random, scenario.sites.iter().map(|site| site.volume_share));
        let chat = chance(random, scenario.channels.chat_share);
        let topic = pick(random, scenario.topics.iter().map(|topic| topic.share));
        let topic_config = &scenario.topics[topic];
        let bot = !chat && chance(random, scenario.bot_share(&topic_config.name));
        let patience_s = self.patience.sample(random);
        let handle_s = if chat {
            self.chat.sample(random)
        } else {
            self.voice.sample(random)
        };
        let transferred = !chat
            && scenario.transfer.as_ref().is_some_and(|transfer| {
                transfer.from_skill == topic_config.skill && chance(random, transfer.share)
            });
        let transfer_handle_ms =
            transferred.then(|| crate::domain_config::ms(self.line2.sample(random)));
        let callback_reached = chance(random, scenario.callbacks.reach_probability);
        PlannedContact {
            index,
            at_ms,
            site,
            chat,
            topic,
            bot,
            patience_ms: if patience_s.is_finite() {
                crate::domain_config::ms(patience_s)
            } else {
                u64::MAX
            },
            handle_ms: crate::domain_config::ms(handle_s).max(1),
            transfer_handle_ms,
            callback_reached,
        }
    }
}

/// An index drawn by weights (the last one when rounding leaves a remainder).
fn pick(random: &mut Pcg64, weights: impl Iterator<Item = f64> + Clone) -> usize {
    let total: f64 = weights.clone().sum();
    let mut draw = rand::Rng::r#gen::<f64>(random) * total;
    let count = weights.clone().count();
    for (index, weight) in weights.enumerate() {
        if draw < weight {
            return index;
        }
        draw -= weight;
    }
    count.saturating_sub(1)
}

/// The staffing plan as individual agents: agent k of a group is logged in during the
/// intervals whose target exceeds k (the offline engine's rule: the group's logged-in count
/// follows its target).
fn agents(scenario: &Scenario, interval_ms: u64) -> Vec<PlannedAgent> {
    let mut agents = Vec::new();
    for (site_index, site) in scenario.sites.iter().enumerate() {
        for (group_index, entry) in site.staffing.iter().enumerate() {
            let targets = scenario.entry_agents_per_interval(entry);
            let most = targets.iter().copied().max().unwrap_or(0);
            for k in 0..most {
                let mut shifts: Vec<(u64, u64)> = Vec::new();
                for (interval, target) in targets.iter().enumerate() {
                    if *target <= k {
                        continue;
                    }
                    let (start, end) = (
                        interval as u64 * interval_ms,
                        (interval as u64 + 1) * interval_ms,
                    );
                    match shifts.last_mut() {
                        Some(last) if last.1 == start => last.1 = end,
                        _ => shifts.push((start, end)),
                    }
                }
                let id = agents.len() as u32 + 1;
                agents.push(PlannedAgent {
                    login: format!("{}-g{group_index}-{k:03}", login_part(&site.name)),
                    id,
                    site: site_index,
                    skills: entry.skills.clone(),
                    shifts,
                });
            }
        }
    }
    agents
}

/// A site name as a login part: lowercase ASCII letters and digits.
pub fn login_part(name: &str) -> String {
    let part: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(24)
        .collect();
    if part.is_empty() {
        "site".to_string()
    } else {
        part
    }
}

/// The node's topic name (IVR topic) of a scenario topic.
pub fn node_topic(scenario: &Scenario, topic: usize) -> String {
    let domain = domain_topic(&scenario.topics[topic].name);
    serde_json::to_value(domain)
        .ok()
        .and_then(|value| value.as_str().map(str::to_string))
        .unwrap_or_else(|| "other".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_numbers_carry_the_plan_index() {
        assert_eq!(index_of_caller(&caller_of(1234)), Some(1234));
        assert_eq!(index_of_caller("79000001234"), Some(1234));
        assert_eq!(index_of_caller("+79161234567"), None);
    }

    #[test]
    fn the_default_day_draws_about_its_volume_and_its_staffing() {
        let scenario = Scenario::built_in().expect("built-in scenario");
        let plan = draw(&scenario, 7).expect("plan");
        let count = plan.contacts.len() as f64;
        assert!((16_000.0..18_000.0).contains(&count), "{count}");
        assert!(
            plan.contacts
                .windows(2)
                .all(|pair| pair[0].at_ms <= pair[1].at_ms)
        );
        let peak_line1_moscow = plan
            .agents
            .iter()
            .filter(|agent| agent.site == 0 && agent.skills == ["line1"])
            .count();
        assert_eq!(peak_line1_moscow, 42);
    }
}
