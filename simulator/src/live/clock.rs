//! The drill clock, the same formula as the node's `[site] clock_*` options
//! (`callgrid-node`'s `clock` module): `routing = start_ms + (wall − epoch_ms) × speed`.
//!
//! `callgrid-sim live --emit-configs` chooses it and writes it to `clock.json` beside the site
//! configs; the nodes and the players then agree on what "now" is in the simulated day, so a
//! 20 s service-level threshold is 20 s of routing time on both sides at any speed.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Fastest speed a drill may ask for (the node's limit).
pub const SPEED_MAX: f64 = 10_000.0;

/// A scaled clock shared by the nodes and the players.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillClock {
    /// Routing ms per wall ms.
    pub speed: f64,
    /// Wall time (ms since the Unix epoch) at which routing time reads `start_ms`.
    pub epoch_ms: u64,
    /// Routing time at `epoch_ms`.
    pub start_ms: u64,
    /// Routing time of the scenario day's midnight (UTC; the sites run at offset 0).
    pub midnight_ms: u64,
}

/// Why a clock file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    /// Unreadable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Malformed.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
    /// Out of range.
    #[error("{0}")]
    Invalid(String),
}

/// Wall time now, ms since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Wall time now, µs since the Unix epoch (history time stamps).
pub fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl DrillClock {
    /// A clock starting `lead` of wall time from now at `day_ms` into the scenario's day of
    /// today (UTC).
    pub fn starting_in(speed: f64, lead: Duration, day_ms: u64) -> DrillClock {
        let now = wall_ms();
        let midnight_ms = now - now % 86_400_000;
        DrillClock {
            speed,
            epoch_ms: now + u64::try_from(lead.as_millis()).unwrap_or(0),
            start_ms: midnight_ms + day_ms,
            midnight_ms,
        }
    }

    /// Reads and checks `clock.json`.
    pub fn load(path: &Path) -> Result<DrillClock, ClockError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClockError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let clock: DrillClock =
            serde_json::from_str(&text).map_err(|source| ClockError::Parse {
                path: path.display().to_string(),
                source,
            })?;
        if !(1.0..=SPEED_MAX).contains(&clock.speed) {
            return Err(ClockError::Invalid(format!(
                "speed {} is outside 1..={SPEED_MAX}",
                clock.speed
            )));
        }
        Ok(clock)
    }

    /// Routing time at wall time `wall_ms` (standing still before the epoch).
    pub fn routing_at(&self, wall_ms: u64) -> u64 {
        let elapsed = wall_ms.saturating_sub(self.epoch_ms) as f64 * self.speed;
        self.start_ms.saturating_add(elapsed as u64)
    }

    /// Ms into the scenario day now.
    pub fn day_now_ms(&self) -> u64 {
        self.routing_at(wall_ms()).saturating_sub(self.midnight_ms)
    }

    /// Wall time (ms since the Unix epoch) at which the scenario day reads `day_ms`.
    pub fn wall_of_day(&self, day_ms: u64) -> u64 {
        let routing = self.midnight_ms.saturating_add(day_ms);
        let ahead = routing.saturating_sub(self.start_ms) as f64 / self.speed;
        self.epoch_ms.saturating_add(ahead as u64)
    }

    /// Wall duration of `day_ms` of simulated time.
    pub fn wall_duration(&self, day_ms: u64) -> Duration {
        Duration::from_micros((day_ms as f64 * 1_000.0 / self.speed) as u64)
    }

    /// Sleeps until the scenario day reads `day_ms` (returns at once if it is past).
    pub fn sleep_until_day(&self, day_ms: u64) {
        let target_us = u128::from(self.wall_of_day(day_ms)) * 1_000;
        let now_us = u128::from(wall_us());
        if target_us > now_us {
            let micros = u64::try_from(target_us - now_us).unwrap_or(u64::MAX);
            std::thread::sleep(Duration::from_micros(micros));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_time_and_wall_time_convert_both_ways() {
        let clock = DrillClock {
            speed: 600.0,
            epoch_ms: 1_000_000,
            start_ms: 86_400_000 + 8 * 3_600_000,
            midnight_ms: 86_400_000,
        };
        assert_eq!(clock.routing_at(1_000_000), clock.start_ms);
        let nine = 9 * 3_600_000;
        assert_eq!(clock.wall_of_day(nine), 1_000_000 + 6_000);
        assert_eq!(
            clock.routing_at(clock.wall_of_day(nine)) - clock.midnight_ms,
            nine
        );
        assert_eq!(clock.wall_duration(20_000), Duration::from_micros(33_333));
    }
}
