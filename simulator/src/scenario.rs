//! Scenario files: the TOML a capacity planner writes, its validation, and the built-in
//! default day.
//!
//! Parsing happens in two passes. serde (with `deny_unknown_fields`) catches syntax errors,
//! unknown keys and wrong types, and toml reports their position. Semantic checks (a profile
//! that does not sum to 1, a negative rate, a policy naming a missing site …) run on the typed
//! scenario and produce a *path* (`sites[1].volume_share`); [`locate`] then looks that path up
//! in a span-preserving `toml_edit` parse of the same text to turn it into a line and column,
//! so every error names both the field and the line.

use std::ops::Range;

use serde::{Deserialize, Serialize};

pub use crate::calendar::CalendarConfig;

/// The built-in default scenario, also shipped as `scenarios/default.toml`.
pub const DEFAULT_SCENARIO_TOML: &str = include_str!("../scenarios/default.toml");

/// Tolerance for shares that must sum to one (profile, topic mix, site split).
pub const SHARE_SUM_TOLERANCE: f64 = 1e-6;
/// Upper bound on simulated days, so a typo cannot make a run take hours.
pub const DAYS_MAX: usize = 366;
/// Upper bound on sites in one scenario (site ids are `u16` in the routing core).
pub const SITES_MAX: usize = 1_000;
/// Upper bound on agents in one staffing entry for one interval.
pub const AGENTS_PER_ENTRY_MAX: u32 = 100_000;
/// Minutes in a day.
pub const MINUTES_PER_DAY: u32 = 1_440;

/// A complete simulation scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Human name shown in reports.
    pub name: String,
    /// Seed of the random stream; the same seed gives the same result on any machine.
    pub seed: u64,
    /// Reporting and staffing interval, minutes (must divide a day; usually 15 or 30).
    pub interval_minutes: u32,
    /// Time an offered contact rings at the agent before it is answered, seconds.
    pub ring_time_s: f64,
    /// After-contact work (wrap-up) per contact, seconds.
    pub wrap_up_s: f64,
    /// Service-level objective and how it is computed.
    pub service_level: ServiceLevelConfig,
    /// How many contacts arrive per day.
    pub volume: VolumeConfig,
    /// How a day's volume is spread over its intervals.
    pub profile: ProfileConfig,
    /// Voice / chat split.
    pub channels: ChannelConfig,
    /// IVR topics and their shares; each names the skill that serves it.
    pub topics: Vec<TopicConfig>,
    /// Handle-time (talk + hold) distributions per channel.
    pub handle_time: HandleTimeConfig,
    /// How long a waiting caller stays before hanging up.
    pub patience: Distribution,
    /// Line 1 → line 2 (pharma consultant) transfers; left out: no transfers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferConfig>,
    /// Self-service bot answering order-status calls; left out: no bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<BotConfig>,
    /// Automatic callbacks to abandoned callers; left out: disabled.
    #[serde(default)]
    pub callbacks: CallbackConfig,
    /// Overflow of waiting contacts to other sites; left out: disabled.
    #[serde(default)]
    pub overflow: OverflowConfig,
    /// The sites, their share of traffic and their staffing.
    pub sites: Vec<SiteConfig>,
    /// Windows during which a site is down.
    #[serde(default)]
    pub outages: Vec<OutageConfig>,
    /// Weekday factors, season and holidays of a long run; replaces `volume.day_factors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<CalendarConfig>,
}

/// Service-level objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceLevelConfig {
    /// Answer-time threshold T of "X% within T seconds", seconds.
    pub threshold_s: f64,
    /// Target share answered within the threshold (0..=1), e.g. 0.8 for 80/20.
    pub target: f64,
    /// Highest acceptable abandoned share (0..=1).
    pub abandonment_target: f64,
    /// Abandons after less than this wait are "short abandons", counted apart, seconds.
    pub short_abandon_threshold_s: f64,
    /// Which denominator the service level uses.
    pub policy: ServiceLevelPolicy,
}

/// Denominator of the service level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceLevelPolicy {
    /// answered within T / offered.
    AnsweredWithinOverOffered,
    /// answered within T / (offered − short abandons).
    AnsweredWithinOverOfferedMinusShortAbandons,
}

/// Daily volume and day factors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeConfig {
    /// Contacts arriving at the IVR on a day with factor 1.
    pub contacts_per_day: f64,
    /// One factor per simulated day (weekday pattern); its length is the number of days.
    /// Computed from `[calendar]` when the scenario has one.
    #[serde(default)]
    pub day_factors: Vec<f64>,
    /// Season factor applied to every day (mid-autumn to mid-spring is above 1).
    #[serde(default = "one")]
    pub season_factor: f64,
}

fn one() -> f64 {
    1.0
}

/// Intraday profile: shares of the day's volume per interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// Clock time of the first share, "HH:MM", on an interval boundary.
    pub start: String,
    /// Share of the day's contacts per interval from `start`; sums to 1.
    pub shares: Vec<f64>,
}

/// Channel split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Share of contacts that are chats (the rest are voice calls).
    pub chat_share: f64,
    /// Concurrent chats one agent can hold.
    pub chat_slots: u8,
}

/// One IVR topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    /// Topic name (e.g. "order_status").
    pub name: String,
    /// Share of contacts choosing it; all topics sum to 1.
    pub share: f64,
    /// Skill that serves it (e.g. "line1", "complaints").
    pub skill: String,
    /// Queue priority (higher is served first).
    #[serde(default)]
    pub priority: u8,
}

/// Handle-time distributions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandleTimeConfig {
    /// Voice talk + hold time.
    pub voice: Distribution,
    /// Chat handle time (one slot).
    pub chat: Distribution,
}

/// A non-negative random duration, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "distribution", rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    /// Never happens (infinite), e.g. callers who never abandon.
    None,
    /// Always the same value.
    Constant {
        /// The value, seconds.
        value_s: f64,
    },
    /// Exponential with the given mean.
    Exponential {
        /// Mean, seconds.
        mean_s: f64,
    },
    /// Lognormal given by its mean and coefficient of variation (sd / mean).
    Lognormal {
        /// Mean, seconds.
        mean_s: f64,
        /// Coefficient of variation.
        cv: f64,
    },
}

impl Distribution {
    /// Mean in seconds, `None` for [`Distribution::None`].
    pub fn mean_s(&self) -> Option<f64> {
        match *self {
            Distribution::None => None,
            Distribution::Constant { value_s } => Some(value_s),
            Distribution::Exponential { mean_s } | Distribution::Lognormal { mean_s, .. } => {
                Some(mean_s)
            }
        }
    }
}

/// Line 1 → line 2 transfers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferConfig {
    /// Share of answered `from_skill` voice contacts transferred after line-1 handling.
    pub share: f64,
    /// Skill transferred from.
    pub from_skill: String,
    /// Skill transferred to (pharma consultants).
    pub to_skill: String,
    /// Handle time at line 2.
    pub handle_time: Distribution,
}

/// Self-service bot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotConfig {
    /// Topic the bot answers (the caller's number has an open order).
    pub topic: String,
    /// Share of that topic's voice calls the bot finishes without an agent.
    pub share: f64,
}

/// Callbacks for abandoned callers. Default (section left out): disabled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackConfig {
    /// Whether abandoned callers are called back.
    pub enabled: bool,
    /// Delay from abandonment to the first attempt, seconds.
    pub delay_s: f64,
    /// Attempts before giving up.
    pub attempts_max: u32,
    /// Delay between attempts, seconds.
    pub retry_interval_s: f64,
    /// Probability that an attempt reaches the caller.
    pub reach_probability: f64,
}

/// Overflow between sites. Default (section left out): disabled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverflowConfig {
    /// Whether overflow is on.
    pub enabled: bool,
    /// What is compared with the thresholds.
    pub trigger: OverflowTrigger,
    /// Start overflowing above this wait, seconds.
    pub threshold_on_s: f64,
    /// Stop overflowing below this wait, seconds (hysteresis; ≤ `threshold_on_s`).
    pub threshold_off_s: f64,
    /// Highest share of a site's offered traffic that may be sent out.
    pub share_cap: f64,
}

impl Default for CallbackConfig {
    /// Disabled; the other fields are the values a planner would start from.
    fn default() -> CallbackConfig {
        CallbackConfig {
            enabled: false,
            delay_s: 300.0,
            attempts_max: 3,
            retry_interval_s: 900.0,
            reach_probability: 0.7,
        }
    }
}

impl Default for OverflowConfig {
    /// Disabled; the thresholds are the values a planner would start from.
    fn default() -> OverflowConfig {
        OverflowConfig {
            enabled: false,
            trigger: OverflowTrigger::OldestWait,
            threshold_on_s: 60.0,
            threshold_off_s: 30.0,
            share_cap: 0.3,
        }
    }
}

/// Overflow trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowTrigger {
    /// Wait of the oldest waiting contact.
    OldestWait,
    /// Predicted wait of a new arrival.
    PredictedWait,
}

/// One site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Site name (city).
    pub name: String,
    /// Share of the contacts entering at this site; all sites sum to 1.
    pub volume_share: f64,
    /// Sites this one may overflow to (empty: all others).
    #[serde(default)]
    pub overflow_to: Vec<String>,
    /// Staffing entries (shifts or per-interval counts).
    pub staffing: Vec<StaffingConfig>,
}

/// A group of identical agents: either a shift (`start`, `end`, `agents`) or per-interval
/// counts (`start`, `per_interval`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffingConfig {
    /// Skills of these agents.
    pub skills: Vec<String>,
    /// Clock time the entry starts, "HH:MM", on an interval boundary.
    pub start: String,
    /// Shift end, "HH:MM" (shift form; "24:00" allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Agents on the shift (shift form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<u32>,
    /// Agents per interval from `start` (per-interval form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_interval: Option<Vec<u32>>,
}

/// A site outage window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutageConfig {
    /// The site that goes down.
    pub site: String,
    /// Day index (0-based).
    #[serde(default)]
    pub day: u32,
    /// Start, "HH:MM".
    pub start: String,
    /// End, "HH:MM" ("24:00" allowed).
    pub end: String,
}

/// One segment of a path to a scenario field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// A table key.
    Key(&'static str),
    /// An array index.
    Index(usize),
}

/// A path to a scenario field, e.g. `sites[1].volume_share`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldPath(pub Vec<PathSegment>);

impl FieldPath {
    fn key(mut self, key: &'static str) -> Self {
        self.0.push(PathSegment::Key(key));
        self
    }
    fn index(mut self, index: usize) -> Self {
        self.0.push(PathSegment::Index(index));
        self
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                PathSegment::Key(key) if position == 0 => write!(f, "{key}")?,
                PathSegment::Key(key) => write!(f, ".{key}")?,
                PathSegment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

fn path(key: &'static str) -> FieldPath {
    FieldPath::default().key(key)
}

/// A position in the scenario text (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Location {
    /// Line, 1-based.
    pub line: usize,
    /// Column, 1-based, in characters.
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// File path.
        path: String,
        /// Underlying IO error.
        source: std::io::Error,
    },
    /// TOML syntax error, unknown key or wrong type.
    #[error("{origin}: {}: {message}", location.map_or_else(|| "unknown position".to_owned(), |l| l.to_string()))]
    Parse {
        /// Where the text came from (file path or "built-in").
        origin: String,
        /// Position of the offending text, when known.
        location: Option<Location>,
        /// What is wrong, as toml reports it (names the key).
        message: String,
    },
    /// The scenario parses but is not meaningful.
    #[error("{origin}: {}: field `{field}`: {message}", location.map_or_else(|| "unknown position".to_owned(), |l| l.to_string()))]
    Invalid {
        /// Where the text came from.
        origin: String,
        /// The offending field, e.g. `sites[1].volume_share`.
        field: String,
        /// Position of the field in the text, when known.
        location: Option<Location>,
        /// What is wrong.
        message: String,
    },
}

/// A semantic problem found by [`Scenario::check`], before it is located in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The offending field.
    pub path: FieldPath,
    /// What is wrong.
    pub message: String,
}

impl Scenario {
    /// Parses and validates scenario text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let mut scenario: Scenario =
            toml::from_str(text).map_err(|error| ScenarioError::Parse {
                origin: origin.to_owned(),
                location: error.span().map(|span| location_of(text, span.start)),
                message: error.message().trim().to_owned(),
            })?;
        if let Some(calendar) = &scenario.calendar {
            scenario.volume.day_factors =
                calendar
                    .day_factors(DAYS_MAX)
                    .map_err(|problem| ScenarioError::Invalid {
                        origin: origin.to_owned(),
                        field: format!("calendar.{}", problem.field),
                        location: locate(text, &path("calendar")),
                        message: problem.message,
                    })?;
        }
        if let Some(problem) = scenario.check().into_iter().next() {
            return Err(ScenarioError::Invalid {
                origin: origin.to_owned(),
                field: problem.path.to_string(),
                location: locate(text, &problem.path),
                message: problem.message,
            });
        }
        Ok(scenario)
    }

    /// Reads, parses and validates a scenario file.
    pub fn from_file(file: &std::path::Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(file).map_err(|source| ScenarioError::Read {
            path: file.display().to_string(),
            source,
        })?;
        Scenario::from_toml(&text, &file.display().to_string())
    }

    /// The built-in default: a 17,000-contact day over three city sites.
    pub fn built_in() -> Result<Scenario, ScenarioError> {
        Scenario::from_toml(DEFAULT_SCENARIO_TOML, "built-in default scenario")
    }

    /// Intervals in a day.
    pub fn intervals_per_day(&self) -> usize {
        (MINUTES_PER_DAY / self.interval_minutes.max(1)) as usize
    }

    /// Simulated days.
    pub fn days(&self) -> usize {
        self.volume.day_factors.len()
    }

    /// Index of the site with this name.
    pub fn site_index(&self, name: &str) -> Option<usize> {
        self.sites.iter().position(|site| site.name == name)
    }

    /// The line-2 skill transfers go to, if the scenario has transfers.
    pub fn transfer_target(&self) -> Option<&str> {
        self.transfer
            .as_ref()
            .map(|transfer| transfer.to_skill.as_str())
    }

    /// Share of `topic`'s voice calls the bot finishes (0 without a bot).
    pub fn bot_share(&self, topic: &str) -> f64 {
        self.bot
            .as_ref()
            .filter(|bot| bot.topic == topic)
            .map_or(0.0, |bot| bot.share)
    }

    /// Skill names in first-mention order: topics, then transfer target, then staffing.
    pub fn skill_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let mut add = |name: &str| {
            if !names.iter().any(|known| known == name) {
                names.push(name.to_owned());
            }
        };
        for topic in &self.topics {
            add(&topic.skill);
        }
        if let Some(transfer) = &self.transfer {
            add(&transfer.from_skill);
            add(&transfer.to_skill);
        }
        for site in &self.sites {
            for entry in &site.staffing {
                for skill in &entry.skills {
                    add(skill);
                }
            }
        }
        names
    }

    /// Share of each interval of the day (length `intervals_per_day`), from the profile.
    pub fn interval_shares(&self) -> Vec<f64> {
        let mut shares = vec![0.0; self.intervals_per_day()];
        if let Ok(start) = self.interval_of(&self.profile.start) {
            for (offset, share) in self.profile.shares.iter().enumerate() {
                if let Some(slot) = shares.get_mut(start + offset) {
                    *slot = *share;
                }
            }
        }
        shares
    }

    /// Agents of one staffing entry per interval of the day.
    pub fn entry_agents_per_interval(&self, entry: &StaffingConfig) -> Vec<u32> {
        let mut agents = vec![0; self.intervals_per_day()];
        let Ok(start) = self.interval_of(&entry.start) else {
            return agents;
        };
        if let Some(per_interval) = &entry.per_interval {
            for (offset, count) in per_interval.iter().enumerate() {
                if let Some(slot) = agents.get_mut(start + offset) {
                    *slot = *count;
                }
            }
        } else if let (Some(end), Some(count)) = (&entry.end, entry.agents) {
            if let Ok(end) = self.interval_of(end) {
                for slot in agents.iter_mut().take(end).skip(start) {
                    *slot = count;
                }
            }
        }
        agents
    }

    /// Interval index of an "HH:MM" clock time that lies on an interval boundary.
    pub fn interval_of(&self, clock: &str) -> Result<usize, String> {
        let minutes = parse_clock_minutes(clock)?;
        if minutes % self.interval_minutes.max(1) != 0 {
            return Err(format!(
                "{clock} is not on a {}-minute interval boundary",
                self.interval_minutes
            ));
        }
        Ok((minutes / self.interval_minutes.max(1)) as usize)
    }

    /// Semantic checks; every problem names its field.
    pub fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut fail = |path: FieldPath, message: String| problems.push(Problem { path, message });

        if self.interval_minutes == 0 || MINUTES_PER_DAY % self.interval_minutes != 0 {
            fail(
                path("interval_minutes"),
                format!(
                    "{} does not divide a day of 1440 minutes",
                    self.interval_minutes
                ),
            );
            // Every clock check below depends on a usable interval.
            return problems;
        }
        check_non_negative(&mut fail, path("ring_time_s"), self.ring_time_s);
        check_non_negative(&mut fail, path("wrap_up_s"), self.wrap_up_s);

        let level = path("service_level");
        check_non_negative(
            &mut fail,
            level.clone().key("threshold_s"),
            self.service_level.threshold_s,
        );
        check_share(
            &mut fail,
            level.clone().key("target"),
            self.service_level.target,
        );
        check_share(
            &mut fail,
            level.clone().key("abandonment_target"),
            self.service_level.abandonment_target,
        );
        check_non_negative(
            &mut fail,
            level.key("short_abandon_threshold_s"),
            self.service_level.short_abandon_threshold_s,
        );

        let volume = path("volume");
        check_non_negative(
            &mut fail,
            volume.clone().key("contacts_per_day"),
            self.volume.contacts_per_day,
        );
        check_non_negative(
            &mut fail,
            volume.clone().key("season_factor"),
            self.volume.season_factor,
        );
        if self.volume.day_factors.is_empty() || self.volume.day_factors.len() > DAYS_MAX {
            fail(
                volume.clone().key("day_factors"),
                format!("needs 1 to {DAYS_MAX} day factors (one per simulated day)"),
            );
        }
        for (day, factor) in self.volume.day_factors.iter().enumerate() {
            check_non_negative(
                &mut fail,
                volume.clone().key("day_factors").index(day),
                *factor,
            );
        }

        let profile = path("profile");
        match self.interval_of(&self.profile.start) {
            Err(message) => fail(profile.clone().key("start"), message),
            Ok(start) if start + self.profile.shares.len() > self.intervals_per_day() => fail(
                profile.clone().key("shares"),
                format!(
                    "{} shares from {} run past midnight ({} intervals of {} minutes per day)",
                    self.profile.shares.len(),
                    self.profile.start,
                    self.intervals_per_day(),
                    self.interval_minutes
                ),
            ),
            Ok(_) => {}
        }
        for (index, share) in self.profile.shares.iter().enumerate() {
            check_share(
                &mut fail,
                profile.clone().key("shares").index(index),
                *share,
            );
        }
        check_sum(
            &mut fail,
            profile.key("shares"),
            self.profile.shares.iter().copied(),
            "profile shares",
        );

        check_share(
            &mut fail,
            path("channels").key("chat_share"),
            self.channels.chat_share,
        );
        if self.channels.chat_slots == 0 {
            fail(
                path("channels").key("chat_slots"),
                "must be at least 1".to_owned(),
            );
        }

        if self.topics.is_empty() {
            fail(path("topics"), "needs at least one topic".to_owned());
        }
        for (index, topic) in self.topics.iter().enumerate() {
            check_share(
                &mut fail,
                path("topics").index(index).key("share"),
                topic.share,
            );
        }
        check_sum(
            &mut fail,
            path("topics"),
            self.topics.iter().map(|topic| topic.share),
            "topic shares",
        );

        check_distribution(
            &mut fail,
            path("handle_time").key("voice"),
            &self.handle_time.voice,
            false,
        );
        check_distribution(
            &mut fail,
            path("handle_time").key("chat"),
            &self.handle_time.chat,
            false,
        );
        check_distribution(&mut fail, path("patience"), &self.patience, true);

        if let Some(transfer) = &self.transfer {
            let here = path("transfer");
            check_share(&mut fail, here.clone().key("share"), transfer.share);
            check_distribution(
                &mut fail,
                here.clone().key("handle_time"),
                &transfer.handle_time,
                false,
            );
            if transfer.from_skill == transfer.to_skill {
                fail(
                    here.key("to_skill"),
                    "must differ from from_skill".to_owned(),
                );
            }
        }

        if let Some(bot) = &self.bot {
            check_share(&mut fail, path("bot").key("share"), bot.share);
            if !self.topics.iter().any(|topic| topic.name == bot.topic) {
                fail(
                    path("bot").key("topic"),
                    format!("names a topic `{}` that is not in [[topics]]", bot.topic),
                );
            }
        }

        let callbacks = path("callbacks");
        check_non_negative(
            &mut fail,
            callbacks.clone().key("delay_s"),
            self.callbacks.delay_s,
        );
        check_non_negative(
            &mut fail,
            callbacks.clone().key("retry_interval_s"),
            self.callbacks.retry_interval_s,
        );
        check_share(
            &mut fail,
            callbacks.key("reach_probability"),
            self.callbacks.reach_probability,
        );

        let overflow = path("overflow");
        check_non_negative(
            &mut fail,
            overflow.clone().key("threshold_on_s"),
            self.overflow.threshold_on_s,
        );
        check_non_negative(
            &mut fail,
            overflow.clone().key("threshold_off_s"),
            self.overflow.threshold_off_s,
        );
        check_share(
            &mut fail,
            overflow.clone().key("share_cap"),
            self.overflow.share_cap,
        );
        if self.overflow.threshold_off_s > self.overflow.threshold_on_s {
            fail(
                overflow.key("threshold_off_s"),
                "must not exceed threshold_on_s (hysteresis)".to_owned(),
            );
        }

        if self.sites.is_empty() || self.sites.len() > SITES_MAX {
            fail(path("sites"), format!("needs 1 to {SITES_MAX} sites"));
        }
        for (index, site) in self.sites.iter().enumerate() {
            let here = path("sites").index(index);
            check_share(
                &mut fail,
                here.clone().key("volume_share"),
                site.volume_share,
            );
            if self.sites[..index]
                .iter()
                .any(|other| other.name == site.name)
            {
                fail(
                    here.clone().key("name"),
                    format!("site `{}` is defined twice", site.name),
                );
            }
            for (target_index, target) in site.overflow_to.iter().enumerate() {
                if self.site_index(target).is_none() {
                    fail(
                        here.clone().key("overflow_to").index(target_index),
                        format!("names a site `{target}` that is not in [[sites]]"),
                    );
                }
            }
            for (entry_index, entry) in site.staffing.iter().enumerate() {
                self.check_staffing(
                    &mut fail,
                    here.clone().key("staffing").index(entry_index),
                    entry,
                );
            }
        }
        check_sum(
            &mut fail,
            path("sites"),
            self.sites.iter().map(|site| site.volume_share),
            "site volume shares",
        );

        for (index, outage) in self.outages.iter().enumerate() {
            let here = path("outages").index(index);
            if self.site_index(&outage.site).is_none() {
                fail(
                    here.clone().key("site"),
                    format!("names a site `{}` that is not in [[sites]]", outage.site),
                );
            }
            if outage.day as usize >= self.days() {
                fail(
                    here.clone().key("day"),
                    format!(
                        "day {} is past the {} simulated days",
                        outage.day,
                        self.days()
                    ),
                );
            }
            match (
                parse_clock_minutes(&outage.start),
                parse_clock_minutes(&outage.end),
            ) {
                (Err(message), _) => fail(here.key("start"), message),
                (_, Err(message)) => fail(here.key("end"), message),
                (Ok(start), Ok(end)) if end <= start => {
                    fail(here.key("end"), "must be after start".to_owned())
                }
                _ => {}
            }
        }

        if problems.is_empty() {
            self.check_demand_is_staffed(&mut problems);
        }
        problems
    }

    fn check_staffing(
        &self,
        fail: &mut impl FnMut(FieldPath, String),
        here: FieldPath,
        entry: &StaffingConfig,
    ) {
        if entry.skills.is_empty() {
            fail(
                here.clone().key("skills"),
                "needs at least one skill".to_owned(),
            );
        }
        for (index, skill) in entry.skills.iter().enumerate() {
            if !self.topics.iter().any(|topic| &topic.skill == skill)
                && self.transfer_target() != Some(skill.as_str())
            {
                fail(
                    here.clone().key("skills").index(index),
                    format!("skill `{skill}` is served by no topic and is not the transfer target"),
                );
            }
        }
        let start = match self.interval_of(&entry.start) {
            Ok(start) => start,
            Err(message) => return fail(here.key("start"), message),
        };
        match (&entry.per_interval, &entry.end, entry.agents) {
            (Some(per_interval), None, None) => {
                if start + per_interval.len() > self.intervals_per_day() {
                    fail(
                        here.clone().key("per_interval"),
                        "runs past midnight".to_owned(),
                    );
                }
                for (index, count) in per_interval.iter().enumerate() {
                    if *count > AGENTS_PER_ENTRY_MAX {
                        fail(
                            here.clone().key("per_interval").index(index),
                            format!("more than {AGENTS_PER_ENTRY_MAX} agents"),
                        );
                    }
                }
            }
            (None, Some(end), Some(agents)) => {
                match parse_clock_minutes(end).and_then(|_| self.interval_of(end)) {
                    Err(message) => fail(here.key("end"), message),
                    Ok(end) if end <= start => {
                        fail(here.key("end"), "must be after start".to_owned())
                    }
                    Ok(_) if agents > AGENTS_PER_ENTRY_MAX => fail(
                        here.key("agents"),
                        format!("more than {AGENTS_PER_ENTRY_MAX} agents"),
                    ),
                    Ok(_) => {}
                }
            }
            _ => fail(
                here,
                "give either `end` and `agents` (a shift) or `per_interval` (counts per interval)"
                    .to_owned(),
            ),
        }
    }

    /// Zero agents for a skill in an interval where the site has demand for it is an error:
    /// the simulation would only measure an empty room.
    fn check_demand_is_staffed(&self, problems: &mut Vec<Problem>) {
        let shares = self.interval_shares();
        let mut skills_with_demand: Vec<&str> = self
            .topics
            .iter()
            .filter(|topic| topic.share > 0.0)
            .map(|topic| topic.skill.as_str())
            .collect();
        if let Some(transfer) = self
            .transfer
            .as_ref()
            .filter(|transfer| transfer.share > 0.0)
        {
            skills_with_demand.push(&transfer.to_skill);
        }
        let any_demand = self.volume.contacts_per_day * self.volume.season_factor > 0.0
            && self.volume.day_factors.iter().any(|factor| *factor > 0.0);
        if !any_demand {
            return;
        }
        for (site_index, site) in self.sites.iter().enumerate() {
            if site.volume_share <= 0.0 {
                continue;
            }
            let entries: Vec<(Vec<u32>, &StaffingConfig)> = site
                .staffing
                .iter()
                .map(|entry| (self.entry_agents_per_interval(entry), entry))
                .collect();
            for skill in &skills_with_demand {
                for (interval, share) in shares.iter().enumerate() {
                    if *share <= 0.0 {
                        continue;
                    }
                    let agents: u32 = entries
                        .iter()
                        .filter(|(_, entry)| entry.skills.iter().any(|known| known == skill))
                        .map(|(per_interval, _)| per_interval[interval])
                        .sum();
                    if agents == 0 {
                        problems.push(Problem {
                            path: path("sites").index(site_index).key("staffing"),
                            message: format!(
                                "site `{}` has zero `{skill}` agents at {} but nonzero demand",
                                site.name,
                                clock_of(interval as u32 * self.interval_minutes)
                            ),
                        });
                        return;
                    }
                }
            }
        }
    }
}

fn check_non_negative(fail: &mut impl FnMut(FieldPath, String), path: FieldPath, value: f64) {
    if !value.is_finite() || value < 0.0 {
        fail(path, format!("must be a finite number ≥ 0, got {value}"));
    }
}

fn check_share(fail: &mut impl FnMut(FieldPath, String), path: FieldPath, value: f64) {
    if !value.is_finite() || !(0.0..=1.0).contains(&value) {
        fail(
            path,
            format!("must be a share between 0 and 1, got {value}"),
        );
    }
}

fn check_sum(
    fail: &mut impl FnMut(FieldPath, String),
    path: FieldPath,
    values: impl Iterator<Item = f64>,
    what: &str,
) {
    let sum: f64 = values.sum();
    if sum.is_finite() && (sum - 1.0).abs() > SHARE_SUM_TOLERANCE {
        fail(path, format!("{what} sum to {sum}, not 1"));
    }
}

fn check_distribution(
    fail: &mut impl FnMut(FieldPath, String),
    path: FieldPath,
    distribution: &Distribution,
    none_allowed: bool,
) {
    match *distribution {
        Distribution::None if !none_allowed => {
            fail(path, "`none` is only allowed for patience".to_owned())
        }
        Distribution::None => {}
        Distribution::Constant { value_s } => {
            check_non_negative(fail, path.key("value_s"), value_s)
        }
        Distribution::Exponential { mean_s } => check_positive(fail, path.key("mean_s"), mean_s),
        Distribution::Lognormal { mean_s, cv } => {
            check_positive(fail, path.clone().key("mean_s"), mean_s);
            check_positive(fail, path.key("cv"), cv);
        }
    }
}

fn check_positive(fail: &mut impl FnMut(FieldPath, String), path: FieldPath, value: f64) {
    if !value.is_finite() || value <= 0.0 {
        fail(path, format!("must be a finite number > 0, got {value}"));
    }
}

/// Minutes after midnight of "HH:MM" (00:00 ..= 24:00).
pub fn parse_clock_minutes(clock: &str) -> Result<u32, String> {
    let invalid = || format!("`{clock}` is not a clock time HH:MM between 00:00 and 24:00");
    let (hours, minutes) = clock.split_once(':').ok_or_else(invalid)?;
    let hours: u32 = hours.parse().map_err(|_| invalid())?;
    let minutes: u32 = minutes.parse().map_err(|_| invalid())?;
    let total = hours * 60 + minutes;
    if minutes >= 60 || total > MINUTES_PER_DAY {
        return Err(invalid());
    }
    Ok(total)
}

/// "HH:MM" of minutes after midnight.
pub fn clock_of(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Line and column of a byte offset.
pub fn location_of(text: &str, offset: usize) -> Location {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |position| position + 1);
    let column = before
        .get(line_start..)
        .map_or(0, |rest| rest.chars().count())
        + 1;
    Location { line, column }
}

/// Finds a field path in the TOML text and returns where it is written; for a path that is
/// not written (a default) the nearest written ancestor is returned.
pub fn locate(text: &str, path: &FieldPath) -> Option<Location> {
    let document = toml_edit::ImDocument::parse(text).ok()?;
    let span = locate_span(document.as_table(), &path.0)?;
    Some(location_of(text, span.start))
}

enum Node<'a> {
    Item(&'a toml_edit::Item),
    Value(&'a toml_edit::Value),
    Table(&'a toml_edit::Table),
}

fn locate_span(root: &toml_edit::Table, segments: &[PathSegment]) -> Option<Range<usize>> {
    let mut node = Node::Table(root);
    let mut best: Option<Range<usize>> = None;
    for segment in segments {
        let next = match (segment, &node) {
            (PathSegment::Key(key), Node::Table(table)) => {
                table.get_key_value(key).map(|(name, item)| {
                    best = name.span().or(best.clone());
                    Node::Item(item)
                })
            }
            (PathSegment::Key(key), Node::Item(item)) => match item {
                toml_edit::Item::Table(table) => table.get_key_value(key).map(|(name, item)| {
                    best = name.span().or(best.clone());
                    Node::Item(item)
                }),
                toml_edit::Item::Value(toml_edit::Value::InlineTable(table)) => {
                    table.get_key_value(key).map(|(name, item)| {
                        best = name.span().or(best.clone());
                        Node::Item(item)
                    })
                }
                _ => None,
            },
            (PathSegment::Key(key), Node::Value(toml_edit::Value::InlineTable(table))) => {
                table.get_key_value(key).map(|(name, item)| {
                    best = name.span().or(best.clone());
                    Node::Item(item)
                })
            }
            (PathSegment::Index(index), Node::Item(toml_edit::Item::ArrayOfTables(array))) => {
                array.get(*index).map(|table| {
                    best = table.span().or(best.clone());
                    Node::Table(table)
                })
            }
            (
                PathSegment::Index(index),
                Node::Item(toml_edit::Item::Value(toml_edit::Value::Array(array))),
            )
            | (PathSegment::Index(index), Node::Value(toml_edit::Value::Array(array))) => {
                array.get(*index).map(|value| {
                    best = value.span().or(best.clone());
                    Node::Value(value)
                })
            }
            _ => None,
        };
        match next {
            Some(next) => node = next,
            None => break,
        }
    }
    best
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn built_in_default_parses_and_validates() {
        let scenario = Scenario::built_in().unwrap();
        assert_eq!(scenario.sites.len(), 3);
        assert_eq!(scenario.volume.contacts_per_day, 17_000.0);
    }

    #[test]
    fn built_in_default_equals_the_shipped_file() {
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenarios/default.toml"
        ))
        .unwrap();
        let from_file = Scenario::from_toml(&shipped, "scenarios/default.toml").unwrap();
        assert_eq!(from_file, Scenario::built_in().unwrap());
        assert_eq!(shipped, DEFAULT_SCENARIO_TOML);
    }

    #[test]
    fn clock_parsing_accepts_midnight_end_and_rejects_garbage() {
        assert_eq!(parse_clock_minutes("24:00").unwrap(), 1440);
        assert_eq!(parse_clock_minutes("08:30").unwrap(), 510);
        assert!(parse_clock_minutes("24:01").is_err());
        assert!(parse_clock_minutes("8h").is_err());
        assert!(parse_clock_minutes("10:60").is_err());
    }

    #[test]
    fn location_counts_lines_and_columns_from_one() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(location_of(text, 0), Location { line: 1, column: 1 });
        assert_eq!(location_of(text, 7), Location { line: 2, column: 2 });
    }
}
