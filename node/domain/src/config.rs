//! Configuration of routing, overflow, callbacks and metrics: serde structs (TOML in the node
//! and simulator) with defaults, `deny_unknown_fields`, and a `validate` that names the field.

use crate::contact::Channel;
use crate::ids::SKILLS_MAX;
use serde::{Deserialize, Serialize};

/// A configuration value is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A field holds a value outside its allowed range.
    #[error("invalid value for `{field}`: {reason}")]
    Invalid {
        /// Dotted path of the field, e.g. `overflow.share_out_max`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// Which line a skill belongs to; line 2 is reached by transfer from line 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    /// General operators.
    Line1,
    /// Certified pharma consultants.
    Line2,
    /// The dedicated complaints line.
    Complaints,
}

/// One skill, which is also one queue at every site. Its id is its index in
/// [`RoutingConfig::skills`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillConfig {
    /// Display name, e.g. `voice_line1`.
    pub name: String,
    /// Skills are channel-specific: a voice skill queues only calls, a chat skill only chats.
    pub channel: Channel,
    /// Line the skill belongs to.
    #[serde(default = "default_line")]
    pub line: Line,
    /// Handle time (talk + hold + wrap-up) assumed by the wait estimator before any contact of
    /// this skill has been handled.
    #[serde(default = "default_handle_time_s")]
    pub handle_time_s_initial: u64,
}

fn default_line() -> Line {
    Line::Line1
}
fn default_handle_time_s() -> u64 {
    180
}

/// Routing rules of a site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// The skills (queues), at most [`SKILLS_MAX`].
    pub skills: Vec<SkillConfig>,
    /// How long an offer rings before it times out (the driver schedules the timeout).
    #[serde(default = "default_offer_timeout_ms")]
    pub offer_timeout_ms: u64,
    /// Abandons with a wait below this are "short abandons", counted apart.
    #[serde(default = "default_short_abandon_ms")]
    pub short_abandon_ms: u64,
    /// Most contacts waiting at one site (all queues). A contact arriving beyond it is blocked
    /// (busy tone) and counted as blocked, not offered.
    #[serde(default = "default_waiting_max")]
    pub waiting_max: u32,
    /// Most contacts a site tracks at once (waiting + ringing + in progress).
    #[serde(default = "default_contacts_max")]
    pub contacts_max: u32,
    /// Weight of the newest handle time in the per-skill moving average used by the wait
    /// estimator, as 1/`handle_time_smoothing` (16 → the last ~16 contacts dominate).
    #[serde(default = "default_handle_time_smoothing")]
    pub handle_time_smoothing: u32,
    /// Longest wrap-up: after it the agent's slot frees by itself (the agent becomes
    /// available without pressing "done"). None: wrap-up lasts until the agent ends it.
    #[serde(default)]
    pub wrap_up_max_ms: Option<u64>,
}

fn default_offer_timeout_ms() -> u64 {
    15_000
}
fn default_short_abandon_ms() -> u64 {
    5_000
}
fn default_waiting_max() -> u32 {
    100_000
}
fn default_contacts_max() -> u32 {
    1_000_000
}
fn default_handle_time_smoothing() -> u32 {
    16
}

impl RoutingConfig {
    /// A config with the given skills and default values elsewhere.
    pub fn with_skills(skills: Vec<SkillConfig>) -> RoutingConfig {
        RoutingConfig {
            skills,
            offer_timeout_ms: default_offer_timeout_ms(),
            short_abandon_ms: default_short_abandon_ms(),
            waiting_max: default_waiting_max(),
            contacts_max: default_contacts_max(),
            handle_time_smoothing: default_handle_time_smoothing(),
            wrap_up_max_ms: None,
        }
    }

    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.skills.is_empty() {
            return Err(invalid("skills", "at least one skill is required"));
        }
        if self.skills.len() > SKILLS_MAX {
            return Err(invalid(
                "skills",
                format!("{} skills, at most {SKILLS_MAX}", self.skills.len()),
            ));
        }
        for (index, skill) in self.skills.iter().enumerate() {
            if skill.name.is_empty() {
                return Err(invalid(
                    &format!("skills[{index}].name"),
                    "must not be empty",
                ));
            }
            if self.skills[..index]
                .iter()
                .any(|other| other.name == skill.name)
            {
                return Err(invalid(
                    &format!("skills[{index}].name"),
                    format!("duplicate skill name `{}`", skill.name),
                ));
            }
        }
        if self.offer_timeout_ms == 0 {
            return Err(invalid("offer_timeout_ms", "must be positive"));
        }
        if self.wrap_up_max_ms == Some(0) {
            return Err(invalid("wrap_up_max_ms", "must be positive"));
        }
        if self.waiting_max == 0 {
            return Err(invalid("waiting_max", "must be positive"));
        }
        if self.contacts_max == 0 {
            return Err(invalid("contacts_max", "must be positive"));
        }
        if self.handle_time_smoothing == 0 {
            return Err(invalid("handle_time_smoothing", "must be positive"));
        }
        Ok(())
    }
}

/// What starts overflow from a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowTrigger {
    /// The wait of the oldest waiting contact of the queue.
    OldestWait,
    /// The estimated wait of a contact joining the back of the queue now.
    PredictedWait,
}

/// Overflow of waiting contacts to other sites.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverflowConfig {
    /// Whether the rule is active.
    #[serde(default)]
    pub enabled: bool,
    /// The measured wait.
    #[serde(default = "default_trigger")]
    pub trigger: OverflowTrigger,
    /// Start overflowing a queue when the measured wait exceeds this.
    #[serde(default = "default_threshold_on_ms")]
    pub threshold_on_ms: u64,
    /// Stop only when it falls below this (hysteresis; must be ≤ `threshold_on_ms`).
    #[serde(default = "default_threshold_off_ms")]
    pub threshold_off_ms: u64,
    /// Cap on the share of the site's offered contacts (arrivals + overflow-ins) sent out by
    /// the rule over the sliding window, 0.0..=1.0.
    #[serde(default = "default_share_out_max")]
    pub share_out_max: f64,
    /// Length of the sliding window for the cap.
    #[serde(default = "default_window_s")]
    pub window_s: u64,
}

fn default_trigger() -> OverflowTrigger {
    OverflowTrigger::OldestWait
}
fn default_threshold_on_ms() -> u64 {
    30_000
}
fn default_threshold_off_ms() -> u64 {
    15_000
}
fn default_share_out_max() -> f64 {
    0.2
}
fn default_window_s() -> u64 {
    900
}

impl Default for OverflowConfig {
    fn default() -> Self {
        OverflowConfig {
            enabled: false,
            trigger: default_trigger(),
            threshold_on_ms: default_threshold_on_ms(),
            threshold_off_ms: default_threshold_off_ms(),
            share_out_max: default_share_out_max(),
            window_s: default_window_s(),
        }
    }
}

impl OverflowConfig {
    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.threshold_off_ms > self.threshold_on_ms {
            return Err(invalid(
                "overflow.threshold_off_ms",
                "must not exceed overflow.threshold_on_ms",
            ));
        }
        if !(self.share_out_max.is_finite() && (0.0..=1.0).contains(&self.share_out_max)) {
            return Err(invalid(
                "overflow.share_out_max",
                "must be within 0.0..=1.0",
            ));
        }
        if self.window_s == 0 {
            return Err(invalid("overflow.window_s", "must be positive"));
        }
        Ok(())
    }
}

/// When abandoned callers are called back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackPolicy {
    /// Whether abandoned callers get a callback task.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Delay from abandonment to the first attempt.
    #[serde(default = "default_callback_delay_s")]
    pub delay_s: u64,
    /// Delay between attempts after a no-answer or busy outcome.
    #[serde(default = "default_retry_interval_s")]
    pub retry_interval_s: u64,
    /// Attempts before the task is closed as failed.
    #[serde(default = "default_attempts_max")]
    pub attempts_max: u8,
    /// Whether short abandons (likely misdials) also get a callback.
    #[serde(default)]
    pub include_short_abandons: bool,
    /// Most open tasks the book holds; beyond it new requests are dropped and counted.
    #[serde(default = "default_open_max")]
    pub open_max: u32,
    /// Channels whose abandons get a callback. Voice only by default: an abandoned chat has
    /// no number to call back on its own skill.
    #[serde(default = "default_callback_channels")]
    pub channels: Vec<Channel>,
    /// How long a started attempt may go without an outcome before it counts as unanswered
    /// (see `CallbackBook::handle_lease_expiry`); none by default.
    #[serde(default)]
    pub claim_lease_s: Option<u64>,
}

fn default_callback_channels() -> Vec<Channel> {
    vec![Channel::Voice]
}

fn default_true() -> bool {
    true
}
fn default_callback_delay_s() -> u64 {
    60
}
fn default_retry_interval_s() -> u64 {
    600
}
fn default_attempts_max() -> u8 {
    3
}
fn default_open_max() -> u32 {
    100_000
}

impl Default for CallbackPolicy {
    fn default() -> Self {
        CallbackPolicy {
            enabled: true,
            delay_s: default_callback_delay_s(),
            retry_interval_s: default_retry_interval_s(),
            attempts_max: default_attempts_max(),
            include_short_abandons: false,
            open_max: default_open_max(),
            channels: default_callback_channels(),
            claim_lease_s: None,
        }
    }
}

impl CallbackPolicy {
    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.attempts_max == 0 {
            return Err(invalid("callbacks.attempts_max", "must be at least 1"));
        }
        if self.open_max == 0 {
            return Err(invalid("callbacks.open_max", "must be positive"));
        }
        if self.claim_lease_s == Some(0) {
            return Err(invalid("callbacks.claim_lease_s", "must be positive"));
        }
        Ok(())
    }

    /// Whether an abandon gets a callback task: callbacks enabled, the channel listed, and a
    /// short abandon only when those are included.
    pub fn admits(&self, request: &crate::event::CallbackRequest) -> bool {
        self.enabled
            && self.channels.contains(&request.channel)
            && (!request.short || self.include_short_abandons)
    }

    /// The retry rules the callback machine runs with.
    pub fn rules(&self) -> crate::callback::CallbackRules {
        crate::callback::CallbackRules {
            attempts_max: u32::from(self.attempts_max),
            retry_interval_ms: self.retry_interval_s.saturating_mul(1000),
            claim_lease_ms: self.claim_lease_s.map(|lease| lease.saturating_mul(1000)),
            open_max: self.open_max,
        }
    }
}

/// The denominator of the service level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceLevelPolicy {
    /// answered within T / offered.
    Offered,
    /// answered within T / (offered − short abandons): misdials do not count against the site.
    OfferedExcludingShortAbandons,
    /// answered within T / (answered + abandoned after T): abandons before T are neutral.
    AnsweredPlusAbandonedAfterTarget,
}

/// How metrics are aggregated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Interval length in minutes: 15 or 30.
    #[serde(default = "default_interval_minutes")]
    pub interval_minutes: u32,
    /// Service-level target T ("answered within T").
    #[serde(default = "default_service_level_target_s")]
    pub service_level_target_s: u64,
    /// Denominator policy.
    #[serde(default = "default_service_level_policy")]
    pub service_level_policy: ServiceLevelPolicy,
    /// Most intervals kept (bounds memory: 96 intervals = one day of 15 minutes). Events past
    /// the last interval are added to the last one.
    #[serde(default = "default_intervals_max")]
    pub intervals_max: u32,
}

fn default_interval_minutes() -> u32 {
    15
}
fn default_service_level_target_s() -> u64 {
    20
}
fn default_service_level_policy() -> ServiceLevelPolicy {
    ServiceLevelPolicy::Offered
}
fn default_intervals_max() -> u32 {
    96
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            interval_minutes: default_interval_minutes(),
            service_level_target_s: default_service_level_target_s(),
            service_level_policy: default_service_level_policy(),
            intervals_max: default_intervals_max(),
        }
    }
}

impl MetricsConfig {
    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval_minutes != 15 && self.interval_minutes != 30 {
            return Err(invalid("metrics.interval_minutes", "must be 15 or 30"));
        }
        if self.intervals_max == 0 || self.intervals_max > 96 * 366 {
            return Err(invalid("metrics.intervals_max", "must be within 1..=35136"));
        }
        Ok(())
    }

    /// Interval length in milliseconds.
    pub fn interval_ms(&self) -> u64 {
        u64::from(self.interval_minutes) * 60_000
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn field_of(error: ConfigError) -> String {
        match error {
            ConfigError::Invalid { field, .. } => field,
        }
    }

    fn skill(name: &str) -> SkillConfig {
        SkillConfig {
            name: name.into(),
            channel: Channel::Voice,
            line: Line::Line1,
            handle_time_s_initial: 60,
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(
            field_of(RoutingConfig::with_skills(vec![]).validate().unwrap_err()),
            "skills"
        );
        let duplicate = RoutingConfig::with_skills(vec![skill("a"), skill("a")]);
        assert_eq!(
            field_of(duplicate.validate().unwrap_err()),
            "skills[1].name"
        );
        let overflow = OverflowConfig {
            threshold_on_ms: 10,
            threshold_off_ms: 20,
            ..OverflowConfig::default()
        };
        assert_eq!(
            field_of(overflow.validate().unwrap_err()),
            "overflow.threshold_off_ms"
        );
        let share = OverflowConfig {
            share_out_max: f64::NAN,
            ..OverflowConfig::default()
        };
        assert_eq!(
            field_of(share.validate().unwrap_err()),
            "overflow.share_out_max"
        );
        let metrics = MetricsConfig {
            interval_minutes: 20,
            ..MetricsConfig::default()
        };
        assert_eq!(
            field_of(metrics.validate().unwrap_err()),
            "metrics.interval_minutes"
        );
        assert!(
            RoutingConfig::with_skills(vec![skill("a")])
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn toml_style_input_rejects_unknown_fields() {
        let error = serde_json::from_str::<OverflowConfig>(r#"{"enabled": true, "treshold": 1}"#)
            .unwrap_err();
        assert!(error.to_string().contains("treshold"));
        let parsed: OverflowConfig = serde_json::from_str(r#"{"enabled": true}"#).unwrap();
        assert_eq!(parsed.threshold_on_ms, 30_000);
    }
}
