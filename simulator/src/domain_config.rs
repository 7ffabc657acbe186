//! The routing core's configuration for a scenario: the one place that turns a scenario's
//! service-level, overflow and callback settings into `callgrid-domain` configs, used by the
//! offline engine and by `live --emit-configs` (the site TOMLs of a drill cluster), so the
//! simulated and the real sites route by the same rules.

use callgrid_domain::{
    CallbackPolicy, MetricsConfig, OverflowConfig, RoutingConfig, ServiceLevelPolicy,
};

use crate::engine::SkillMap;
use crate::scenario::{self, Scenario};

/// Seconds to whole milliseconds (0 for negative or non-finite input).
pub fn ms(seconds: f64) -> u64 {
    if seconds.is_finite() && seconds > 0.0 {
        (seconds * 1000.0).round() as u64
    } else {
        0
    }
}

/// Queues and routing rules: the scenario's skills, short-abandon threshold, and an offer
/// timeout longer than the ring time (simulated agents always pick up).
pub fn routing(scenario: &Scenario, skills: &SkillMap) -> RoutingConfig {
    let mut routing = RoutingConfig::with_skills(skills.configs.clone());
    routing.short_abandon_ms = ms(scenario.service_level.short_abandon_threshold_s);
    routing.offer_timeout_ms = routing
        .offer_timeout_ms
        .max(ms(scenario.ring_time_s) + 1_000);
    routing
}

/// Overflow between sites (off with a single site).
pub fn overflow(scenario: &Scenario) -> OverflowConfig {
    OverflowConfig {
        enabled: scenario.overflow.enabled && scenario.sites.len() > 1,
        trigger: match scenario.overflow.trigger {
            scenario::OverflowTrigger::OldestWait => callgrid_domain::OverflowTrigger::OldestWait,
            scenario::OverflowTrigger::PredictedWait => {
                callgrid_domain::OverflowTrigger::PredictedWait
            }
        },
        threshold_on_ms: ms(scenario.overflow.threshold_on_s),
        threshold_off_ms: ms(scenario.overflow.threshold_off_s),
        share_out_max: scenario.overflow.share_cap,
        ..OverflowConfig::default()
    }
}

/// Callbacks for abandoned callers.
pub fn callbacks(scenario: &Scenario) -> CallbackPolicy {
    CallbackPolicy {
        enabled: scenario.callbacks.enabled,
        delay_s: scenario.callbacks.delay_s.round() as u64,
        retry_interval_s: scenario.callbacks.retry_interval_s.round() as u64,
        attempts_max: scenario.callbacks.attempts_max.clamp(1, u32::from(u8::MAX)) as u8,
        ..CallbackPolicy::default()
    }
}

/// Report intervals and the service-level policy; `intervals_max` cells.
pub fn metrics(scenario: &Scenario, intervals_max: u32) -> MetricsConfig {
    MetricsConfig {
        interval_minutes: scenario.interval_minutes,
        service_level_target_s: scenario.service_level.threshold_s.round() as u64,
        service_level_policy: match scenario.service_level.policy {
            scenario::ServiceLevelPolicy::AnsweredWithinOverOffered => ServiceLevelPolicy::Offered,
            scenario::ServiceLevelPolicy::AnsweredWithinOverOfferedMinusShortAbandons => {
                ServiceLevelPolicy::OfferedExcludingShortAbandons
            }
        },
        intervals_max,
    }
}
