//! The fault schedule of a live run (`callgrid-sim live --local BINARY --faults FILE`): steps
//! in simulated time that the run applies to the site processes it started itself.
//!
//! ```toml
//! [[step]]
//! at = "12:40"          # simulated clock time, HH:MM
//! action = "kill"       # SIGKILL
//! site = "leader"       # a site id, "leader" (the Raft leader then) or "follower"
//! [[step]]
//! at = "13:00"
//! action = "restart"    # start it again from its disk
//! site = "leader"       # the same name: the site the opening step chose
//! ```
//!
//! Actions come in pairs, opening then closing, on the same `site` name: `kill`/`restart`,
//! `stop`/`cont` (SIGSTOP/SIGCONT: a hung process), `partition`/`heal` (its cluster port cut
//! off from the others' with nftables) and `wipe`/`rejoin` (SIGKILL and its data directory
//! deleted; at `rejoin` the runbook's replacement: the old member removed on the leader, a
//! peer's live backup restored under a new node id, added as a learner, promoted once caught
//! up). Every opening step must be closed before the day (and its drain) ends, so the
//! collector can read every replica. `delay`/`undelay` (one-way delay and loss between two
//! sites) are recognised and refused: they need each site in its own network namespace.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::scenario::parse_clock_minutes;

/// Why a fault schedule cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FaultsError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not the schedule's TOML.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A step is invalid (`step` is 1-based, in file order).
    #[error("fault step {step}: {message}")]
    Invalid {
        /// Which step.
        step: usize,
        /// What is wrong.
        message: String,
    },
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// SIGKILL the site's process.
    Kill,
    /// Start a killed site again from its disk.
    Restart,
    /// SIGSTOP (a hung process).
    Stop,
    /// SIGCONT.
    Cont,
    /// Cut the site's cluster port off from the others'.
    Partition,
    /// Remove the partition.
    Heal,
    /// SIGKILL and delete the site's data directory.
    Wipe,
    /// Replace the wiped member by the runbook (remove, restore a peer's backup under a new
    /// node id, add as learner, promote).
    Rejoin,
    /// One-way delay and loss between two sites (not implemented: refused).
    Delay,
    /// Remove a delay (not implemented: refused).
    Undelay,
}

impl Action {
    /// The step that closes this one, for an opening step.
    pub fn closed_by(self) -> Option<Action> {
        match self {
            Action::Kill => Some(Action::Restart),
            Action::Stop => Some(Action::Cont),
            Action::Partition => Some(Action::Heal),
            Action::Wipe => Some(Action::Rejoin),
            Action::Delay => Some(Action::Undelay),
            _ => None,
        }
    }

    /// The opening step this one closes, for a closing step.
    pub fn closes(self) -> Option<Action> {
        [
            Action::Kill,
            Action::Stop,
            Action::Partition,
            Action::Wipe,
            Action::Delay,
        ]
        .into_iter()
        .find(|opening| opening.closed_by() == Some(self))
    }

    /// The lowercase name used in the file.
    pub fn name(self) -> &'static str {
        match self {
            Action::Kill => "kill",
            Action::Restart => "restart",
            Action::Stop => "stop",
            Action::Cont => "cont",
            Action::Partition => "partition",
            Action::Heal => "heal",
            Action::Wipe => "wipe",
            Action::Rejoin => "rejoin",
            Action::Delay => "delay",
            Action::Undelay => "undelay",
        }
    }
}

/// Which site a step concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Target {
    /// A site by index (scenario order).
    Site(usize),
    /// The Raft leader's site when the opening step runs.
    Leader,
    /// A site that is not the leader and not under another fault when the opening step runs.
    Follower,
}

/// One step of the schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Ms into the simulated day.
    pub at_ms: u64,
    /// What it does.
    pub action: Action,
    /// The `site` name as written (pairs opening and closing steps).
    pub site_name: String,
    /// Which site.
    pub target: Target,
}

/// A fault's window on the plot and in `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultWindow {
    /// The opening action (`kill`, `stop`, `partition`, `wipe`).
    pub action: Action,
    /// The `site` name as written.
    pub site: String,
    /// Ms into the simulated day it opens.
    pub start_ms: u64,
    /// Ms into the simulated day it closes.
    pub end_ms: u64,
}

/// A checked schedule, steps in time order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Schedule {
    /// The steps.
    pub steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultFile {
    #[serde(default)]
    step: Vec<RawStep>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    at: String,
    action: Action,
    site: String,
}

impl Schedule {
    /// Reads and checks a schedule for a run whose sites are `site_ids` and whose steps must
    /// lie within `[first_ms, last_ms]` (ms into the simulated day).
    pub fn load(
        path: &Path,
        site_ids: &[String],
        first_ms: u64,
        last_ms: u64,
    ) -> Result<Schedule, FaultsError> {
        let text = std::fs::read_to_string(path).map_err(|source| FaultsError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Schedule::parse(&text, site_ids, first_ms, last_ms).map_err(|error| match error {
            FaultsError::Parse { source, .. } => FaultsError::Parse {
                path: path.display().to_string(),
                source,
            },
            other => other,
        })
    }

    /// [`Schedule::load`] of a text.
    pub fn parse(
        text: &str,
        site_ids: &[String],
        first_ms: u64,
        last_ms: u64,
    ) -> Result<Schedule, FaultsError> {
        let file: FaultFile = toml::from_str(text).map_err(|source| FaultsError::Parse {
            path: "fault schedule".to_string(),
            source: Box::new(source),
        })?;
        let mut steps = Vec::with_capacity(file.step.len());
        for (position, raw) in file.step.into_iter().enumerate() {
            let number = position + 1;
            let invalid = |message: String| FaultsError::Invalid {
                step: number,
                message,
            };
            if matches!(raw.action, Action::Delay | Action::Undelay) {
                return Err(invalid(format!(
                    "`{}` (one-way delay and loss between sites) is not implemented: it needs \
                     each site in its own network namespace joined by veth pairs, and tc netem \
                     must not touch the host's loopback; use kill, stop, partition or wipe",
                    raw.action.name()
                )));
            }
            let minutes = parse_clock_minutes(&raw.at).map_err(invalid)?;
            let at_ms = u64::from(minutes) * 60_000;
            if !(first_ms..=last_ms).contains(&at_ms) {
                return Err(invalid(format!(
                    "at = \"{}\" is outside the run ({} to {}, the day and its drain)",
                    raw.at,
                    clock(first_ms),
                    clock(last_ms)
                )));
            }
            let target = match raw.site.as_str() {
                "leader" => Target::Leader,
                "follower" => Target::Follower,
                name => {
                    Target::Site(site_ids.iter().position(|id| id == name).ok_or_else(|| {
                        invalid(format!(
                            "site `{name}` is not one of {site_ids:?}, \"leader\" or \"follower\""
                        ))
                    })?)
                }
            };
            if let Some(previous) = steps.last().map(|step: &Step| step.at_ms)
                && at_ms < previous
            {
                return Err(invalid(format!(
                    "at = \"{}\" is before the previous step's {}: list steps in time order",
                    raw.at,
                    clock(previous)
                )));
            }
            steps.push(Step {
                at_ms,
                action: raw.action,
                site_name: raw.site,
                target,
            });
        }
        let schedule = Schedule { steps };
        schedule.windows()?;
        Ok(schedule)
    }

    /// The fault windows: each opening step with its closing step. Fails on a closing step
    /// without its opening one, a site name faulted twice at once, or a fault never closed.
    pub fn windows(&self) -> Result<Vec<FaultWindow>, FaultsError> {
        let mut open: Vec<(usize, &Step)> = Vec::new();
        let mut windows = Vec::new();
        for (position, step) in self.steps.iter().enumerate() {
            let invalid = |message: String| FaultsError::Invalid {
                step: position + 1,
                message,
            };
            if step.action.closed_by().is_some() {
                if let Some((other, _)) = open.iter().find(|(_, opened)| same_site(opened, step)) {
                    return Err(invalid(format!(
                        "`{}` of `{}` while step {} still holds it: close that fault first",
                        step.action.name(),
                        step.site_name,
                        other + 1
                    )));
                }
                open.push((position, step));
                continue;
            }
            let Some(opening) = step.action.closes() else {
                continue;
            };
            let Some(index) = open.iter().position(|(_, opened)| {
                opened.action == opening && opened.site_name == step.site_name
            }) else {
                return Err(invalid(format!(
                    "`{}` of `{}` without an earlier `{}` of it",
                    step.action.name(),
                    step.site_name,
                    opening.name()
                )));
            };
            let (_, opened) = open.remove(index);
            windows.push(FaultWindow {
                action: opened.action,
                site: opened.site_name.clone(),
                start_ms: opened.at_ms,
                end_ms: step.at_ms,
            });
        }
        if let Some((position, step)) = open.first() {
            return Err(FaultsError::Invalid {
                step: position + 1,
                message: format!(
                    "`{}` of `{}` is never closed: add a `{}` step before the run ends \
                     (the collector reads every replica at the end)",
                    step.action.name(),
                    step.site_name,
                    step.action.closed_by().map_or("", Action::name)
                ),
            });
        }
        windows.sort_by_key(|window| window.start_ms);
        Ok(windows)
    }
}

/// Two steps on the same site name, or on the same explicit site.
fn same_site(one: &Step, other: &Step) -> bool {
    one.site_name == other.site_name
        || matches!((&one.target, &other.target), (Target::Site(a), Target::Site(b)) if a == b)
}

/// "HH:MM" of ms into the day.
pub fn clock(day_ms: u64) -> String {
    let minutes = day_ms / 60_000;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites() -> Vec<String> {
        ["moscow", "yekaterinburg", "novosibirsk"]
            .map(str::to_string)
            .to_vec()
    }

    const DAY: (u64, u64) = (12 * 3_600_000, 15 * 3_600_000);

    fn parse(text: &str) -> Result<Schedule, FaultsError> {
        Schedule::parse(text, &sites(), DAY.0, DAY.1)
    }

    fn error(text: &str) -> String {
        parse(text).expect_err("refused").to_string()
    }

    #[test]
    fn the_example_schedule_parses_into_windows() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/drill-faults.toml");
        let schedule = Schedule::load(&path, &sites(), DAY.0, DAY.1).expect("example");
        let windows = schedule.windows().expect("windows");
        assert_eq!(windows.len(), 2, "{windows:?}");
        assert_eq!(windows[0].action, Action::Kill);
        assert_eq!(windows[0].site, "leader");
        assert_eq!(windows[0].start_ms, (12 * 60 + 40) * 60_000);
        assert_eq!(windows[0].end_ms, 13 * 3_600_000);
        assert_eq!(windows[1].action, Action::Partition);
        assert_eq!(schedule.steps[2].target, Target::Follower);
    }

    #[test]
    fn pairs_are_checked() {
        let kill = "[[step]]\nat = \"12:40\"\naction = \"kill\"\nsite = \"moscow\"\n";
        assert!(error(kill).contains("never closed"), "{}", error(kill));
        let restart = "[[step]]\nat = \"12:40\"\naction = \"restart\"\nsite = \"moscow\"\n";
        assert!(error(restart).contains("without an earlier `kill`"));
        let twice =
            format!("{kill}[[step]]\nat = \"12:45\"\naction = \"stop\"\nsite = \"moscow\"\n");
        assert!(
            error(&twice).contains("still holds it"),
            "{}",
            error(&twice)
        );
        let closed =
            format!("{kill}[[step]]\nat = \"12:50\"\naction = \"restart\"\nsite = \"moscow\"\n");
        let schedule = parse(&closed).expect("closed");
        assert_eq!(schedule.steps[0].target, Target::Site(0));
    }

    #[test]
    fn unknown_sites_times_and_delays_are_refused() {
        let step = |at: &str, action: &str, site: &str| {
            format!("[[step]]\nat = \"{at}\"\naction = \"{action}\"\nsite = \"{site}\"\n")
        };
        assert!(error(&step("12:40", "kill", "kazan")).contains("`kazan` is not one of"));
        assert!(error(&step("11:00", "kill", "moscow")).contains("outside the run"));
        assert!(error(&step("12:61", "kill", "moscow")).contains("not a clock time"));
        assert!(error(&step("12:40", "delay", "moscow")).contains("not implemented"));
        assert!(error(&step("12:40", "explode", "moscow")).contains("unknown variant"));
        let backwards = format!(
            "{}{}",
            step("13:00", "stop", "moscow"),
            step("12:00", "cont", "moscow")
        );
        assert!(
            error(&backwards).contains("time order"),
            "{}",
            error(&backwards)
        );
        assert!(error("[[step]]\nat = \"12:00\"\n").contains("missing field"));
    }
}
