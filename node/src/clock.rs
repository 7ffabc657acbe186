//! The routing clock: wall time, or for drills a scaled clock that every node of a cluster
//! agrees on (`[site] clock_speed`, `clock_epoch_ms`, `clock_start_ms`).
//!
//! ```text
//! routing now = clock_start_ms + (wall now − clock_epoch_ms) × clock_speed
//! ```
//!
//! Only routing time is scaled: the Site actor's domain clock (waits, service level, interval
//! reports, the wrap-up and overflow timers, offer deadlines). Replicated records keep wall
//! time stamps, and the cluster's own timers (Raft, summary publication and freshness, report
//! flushes) run in wall time, so a drill at 600× exercises the same consensus machinery as
//! production. A drill driver (`callgrid-sim live`) plays callers and agents on the same
//! formula, so at 600× a 20 s service-level threshold is 33 ms of wall time on both sides.
//!
//! The clock is installed once per process at start-up; without it (tests, production) the
//! routing clock is the wall clock.

use std::sync::OnceLock;
use std::time::Duration;

/// Fastest clock a config may ask for.
pub const CLOCK_SPEED_MAX: f64 = 10_000.0;

/// A scaled clock: `start_ms + (wall − epoch_ms) × speed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaledClock {
    /// Routing milliseconds per wall millisecond (1 = wall time).
    pub speed: f64,
    /// Wall time (ms since the Unix epoch) at which the scaled clock reads `start_ms`.
    pub epoch_ms: u64,
    /// What the scaled clock reads at `epoch_ms`.
    pub start_ms: u64,
}

impl ScaledClock {
    /// The scaled time at wall time `wall_ms`. Before the epoch the clock stands still at
    /// `start_ms`, so routing time never runs backwards.
    pub fn at(&self, wall_ms: u64) -> u64 {
        let elapsed = wall_ms.saturating_sub(self.epoch_ms) as f64 * self.speed;
        debug_assert!(elapsed.is_finite() && elapsed >= 0.0);
        self.start_ms.saturating_add(elapsed as u64)
    }

    /// The wall duration of `routing_ms` routing milliseconds (rounded up to whole
    /// microseconds, so a timer never fires before its routing deadline).
    pub fn wall_delay(&self, routing_ms: u64) -> Duration {
        let micros = (routing_ms as f64 * 1_000.0 / self.speed).ceil();
        Duration::from_micros(micros as u64)
    }
}

static CLOCK: OnceLock<ScaledClock> = OnceLock::new();

/// Installs the process's scaled clock; a speed of 1 with the start equal to the epoch is
/// wall time and installs nothing. Returns false when a different clock was installed before.
pub fn install(clock: ScaledClock) -> bool {
    if clock.speed == 1.0 && clock.start_ms == clock.epoch_ms {
        return CLOCK.get().is_none();
    }
    debug_assert!(clock.speed > 0.0 && clock.speed <= CLOCK_SPEED_MAX);
    tracing::warn!(
        speed = clock.speed,
        epoch_ms = clock.epoch_ms,
        start_ms = clock.start_ms,
        "routing clock scaled (a drill): waits and reports are in scaled time"
    );
    CLOCK.get_or_init(|| clock) == &clock
}

/// Routing time now, ms since the Unix epoch (scaled when a clock is installed).
pub fn now_ms() -> u64 {
    let wall = crate::replicate::now_ms();
    match CLOCK.get() {
        Some(clock) => clock.at(wall),
        None => wall,
    }
}

/// Shortest wall period of a periodic task scaled with the clock (see [`scaled_interval`]).
pub const SCALED_INTERVAL_MIN: Duration = Duration::from_millis(100);

/// The wall period of a periodic routing task (the overflow summary publication): its wall
/// period divided by the speed, but never below [`SCALED_INTERVAL_MIN`], so a fast drill clock
/// keeps the sites' views of each other about as fresh in routing time as the cluster can
/// afford in proposals.
pub fn scaled_interval(period: Duration) -> Duration {
    match CLOCK.get() {
        Some(clock) => period
            .div_f64(clock.speed)
            .max(SCALED_INTERVAL_MIN)
            .min(period),
        None => period,
    }
}

/// The wall duration of a routing delay (for timers armed from routing deadlines).
pub fn wall_delay(routing_ms: u64) -> Duration {
    match CLOCK.get() {
        Some(clock) => clock.wall_delay(routing_ms),
        None => Duration::from_millis(routing_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_clock_runs_speed_times_faster_from_its_start() {
        let clock = ScaledClock {
            speed: 600.0,
            epoch_ms: 1_000_000,
            start_ms: 5_000,
        };
        assert_eq!(clock.at(1_000_000), 5_000);
        assert_eq!(clock.at(999_000), 5_000, "stands still before the epoch");
        assert_eq!(clock.at(1_000_010), 5_000 + 6_000);
        assert_eq!(clock.wall_delay(20_000), Duration::from_micros(33_334));
    }
}
