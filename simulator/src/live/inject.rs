//! Applies a fault [`Schedule`] to a [`LocalCluster`] on the drill clock: one thread walks the
//! steps, sleeping until each one's simulated time, resolves `leader`/`follower` when a fault
//! opens (the closing step acts on the same site), applies it and records what it did and
//! when. [`Injector::finish`] waits for it and returns the record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use super::clock::DrillClock;
use super::faults::{Action, Schedule, Step, Target};
use super::local::{LocalCluster, LocalError};

/// What one step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// The step's number in the file (1-based).
    pub step: usize,
    /// Its action.
    pub action: Action,
    /// The `site` name as written.
    pub site_name: String,
    /// The site it acted on (its id), when it was resolved.
    pub site: Option<String>,
    /// Ms into the simulated day the step was planned for.
    pub planned_ms: u64,
    /// Ms into the simulated day it was done (after its work, e.g. a rejoin's promotion).
    pub done_ms: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// The running schedule.
#[derive(Debug)]
pub struct Injector {
    handle: Mutex<Option<JoinHandle<Vec<FaultEvent>>>>,
}

impl Injector {
    /// Starts applying `schedule` to `cluster` on `clock`.
    pub fn start(
        schedule: Schedule,
        cluster: Arc<Mutex<LocalCluster>>,
        clock: DrillClock,
    ) -> Result<Arc<Injector>, LocalError> {
        let handle = std::thread::Builder::new()
            .name("faults".to_string())
            .spawn(move || apply(&schedule, &cluster, &clock))
            .map_err(|source| LocalError::Io {
                what: "starting the fault thread".to_string(),
                source,
            })?;
        Ok(Arc::new(Injector {
            handle: Mutex::new(Some(handle)),
        }))
    }

    /// Waits until every step was applied; what each did (empty if called twice).
    pub fn finish(&self) -> Vec<FaultEvent> {
        let handle = self.handle.lock().ok().and_then(|mut handle| handle.take());
        handle.map_or_else(Vec::new, |handle| {
            handle.join().unwrap_or_else(|_| {
                vec![FaultEvent {
                    step: 0,
                    action: Action::Kill,
                    site_name: String::new(),
                    site: None,
                    planned_ms: 0,
                    done_ms: 0,
                    error: Some("the fault thread panicked".to_string()),
                }]
            })
        })
    }
}

fn apply(
    schedule: &Schedule,
    cluster: &Mutex<LocalCluster>,
    clock: &DrillClock,
) -> Vec<FaultEvent> {
    // Site name → the site its open fault acts on.
    let mut resolved: HashMap<String, usize> = HashMap::new();
    // Sites an earlier step acted on (`follower` prefers the others).
    let mut touched: Vec<usize> = Vec::new();
    let mut events = Vec::with_capacity(schedule.steps.len());
    for (position, step) in schedule.steps.iter().enumerate() {
        clock.sleep_until_day(step.at_ms);
        let result = match cluster.lock() {
            Ok(mut cluster) => apply_step(step, &mut cluster, &mut resolved, &touched),
            Err(_) => Err(LocalError::State(
                "the cluster lock is poisoned".to_string(),
            )),
        };
        let (site, error) = match result {
            Ok(site) => {
                touched.push(site);
                (Some(site), None)
            }
            Err(error) => (None, Some(error.to_string())),
        };
        let site_id = site.and_then(|index| {
            cluster
                .lock()
                .ok()
                .and_then(|cluster| cluster.sites.get(index).map(|site| site.id.clone()))
        });
        let event = FaultEvent {
            step: position + 1,
            action: step.action,
            site_name: step.site_name.clone(),
            site: site_id,
            planned_ms: step.at_ms,
            done_ms: clock.day_now_ms(),
            error,
        };
        match &event.error {
            None => tracing::warn!(
                step = event.step,
                action = step.action.name(),
                site = event.site.as_deref().unwrap_or(""),
                at = %super::faults::clock(event.done_ms),
                "fault applied"
            ),
            Some(error) => tracing::error!(step = event.step, %error, "fault step failed"),
        }
        events.push(event);
    }
    events
}

/// Applies one step; the site index it acted on.
fn apply_step(
    step: &Step,
    cluster: &mut LocalCluster,
    resolved: &mut HashMap<String, usize>,
    touched: &[usize],
) -> Result<usize, LocalError> {
    let index = if step.action.closed_by().is_some() {
        let index = resolve(&step.target, cluster, resolved, touched)?;
        resolved.insert(step.site_name.clone(), index);
        index
    } else {
        resolved.remove(&step.site_name).ok_or_else(|| {
            LocalError::State(format!(
                "`{}` has no open fault (its opening step failed)",
                step.site_name
            ))
        })?
    };
    match step.action {
        Action::Kill => cluster.kill(index)?,
        Action::Restart => cluster.restart(index)?,
        Action::Stop => cluster.signal_stop(index, true)?,
        Action::Cont => cluster.signal_stop(index, false)?,
        Action::Partition => cluster.partition(index)?,
        Action::Heal => cluster.heal(index)?,
        Action::Wipe => cluster.wipe(index)?,
        Action::Rejoin => cluster.rejoin(index)?,
        Action::Delay | Action::Undelay => {
            return Err(LocalError::State(format!(
                "`{}` is not implemented",
                step.action.name()
            )));
        }
    }
    Ok(index)
}

/// The site an opening step acts on: `leader` is the Raft leader now, `follower` a running
/// other site not under a fault, preferring one no earlier step acted on.
fn resolve(
    target: &Target,
    cluster: &LocalCluster,
    resolved: &HashMap<String, usize>,
    touched: &[usize],
) -> Result<usize, LocalError> {
    let busy = |index: usize| resolved.values().any(|taken| *taken == index);
    let index = match target {
        Target::Site(index) => *index,
        Target::Leader => cluster.wait_leader()?,
        Target::Follower => {
            let leader = cluster.wait_leader()?;
            let candidates: Vec<usize> = (0..cluster.sites.len())
                .filter(|index| {
                    *index != leader && !busy(*index) && cluster.sites[*index].running()
                })
                .collect();
            candidates
                .iter()
                .find(|index| !touched.contains(index))
                .or_else(|| candidates.first())
                .copied()
                .ok_or_else(|| LocalError::State("no follower free of faults".to_string()))?
        }
    };
    if busy(index) {
        return Err(LocalError::State(format!(
            "site {} is already under a fault",
            cluster
                .sites
                .get(index)
                .map_or("?", |site| site.id.as_str())
        )));
    }
    Ok(index)
}
