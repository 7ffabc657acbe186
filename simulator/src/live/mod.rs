//! `callgrid-sim live`: a simulated day played against a real cluster through its public API.
//!
//! ```text
//! scenario + seed ─► plan (contacts, agents' shifts; the offline samplers)
//!                      │
//!   clock (drill clock shared with the nodes: `--emit-configs` writes both)
//!                      ▼
//!   gateway player ──HTTP/WS──► sites ◄──HTTP/WS── agent players (one thread per agent)
//!          │ every request                              │ every request
//!          └──────────────► history (bounded channel → history.jsonl) ◄┘
//!                      ▼ after the day
//!   collect (every replica's records, every site's interval report) ─► check ─► summary
//! ```
//!
//! Time scaling: the nodes run a scaled routing clock (`[site] clock_speed`, shared epoch), so
//! waits, service level, overflow and wrap-up timers are in simulated time on the node, and
//! the players sleep on the same formula. What is not scaled is the wall cost of each request
//! (a few ms): at 600× 1 ms of latency is 0.6 s of simulated time, which is what bounds the
//! speed at which measured and predicted still agree.

pub mod agents;
pub mod check;
pub mod client;
pub mod clock;
pub mod collect;
pub mod configs;
pub mod faults;
pub mod gateway;
pub mod history;
pub mod inject;
pub mod local;
pub mod partition;
pub mod plan;
pub mod summary;
pub mod world;
pub mod ws;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::{self, SkillMap};
use crate::scenario::Scenario;

use self::check::{RunInfo, Verdict};
use self::clock::DrillClock;
use self::configs::Tokens;
use self::summary::Summary;
use self::world::{RecordKind, TopicInfo, World};

/// Simulated time the players keep working after the last interval (calls in progress end).
pub const DRAIN_MS: u64 = 30 * 60_000;
/// Predicted SL is the mean of this many offline replications (seed, seed + 1, …).
pub const PREDICTION_REPLICATIONS: u32 = 5;

/// Why a live run could not run (a failed check is a [`Verdict`], not an error).
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The plan could not be drawn.
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    /// History files.
    #[error(transparent)]
    History(#[from] history::HistoryError),
    /// The offline prediction failed.
    #[error("offline prediction: {0}")]
    Engine(#[from] engine::EngineError),
    /// The sites or the drill set-up are not usable.
    #[error("{0}")]
    Setup(String),
}

/// What a live run needs.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// The scenario.
    pub scenario: Scenario,
    /// Seed of the plan and of the prediction.
    pub seed: u64,
    /// Site base URLs, scenario order.
    pub sites: Vec<String>,
    /// Tokens.
    pub tokens: Tokens,
    /// The clock the nodes run.
    pub clock: DrillClock,
    /// Where the history goes.
    pub history: PathBuf,
    /// Show a progress bar.
    pub progress: bool,
    /// Fault windows to shade on the SL plot: a drill that kills, stops or cuts off a site
    /// says when (a `--faults` schedule's [`faults::Schedule::windows`]).
    pub fault_windows: Vec<faults::FaultWindow>,
    /// The schedule being applied (a `--local --faults` run): the run waits for it before it
    /// collects, and its record goes into the summary.
    pub injector: Option<Arc<inject::Injector>>,
}

/// What a live run produced.
#[derive(Debug, Clone)]
pub struct LiveOutcome {
    /// The figures.
    pub summary: Summary,
    /// The checker's verdict.
    pub verdict: Verdict,
    /// The SL plot.
    pub svg: String,
}

impl LiveOutcome {
    /// Fault steps that failed (`step N (action site): why`); empty when all applied.
    pub fn fault_errors(&self) -> Vec<String> {
        self.summary
            .faults
            .iter()
            .filter_map(|event| {
                let error = event.error.as_ref()?;
                Some(format!(
                    "step {} ({} {}): {error}",
                    event.step,
                    event.action.name(),
                    event.site_name
                ))
            })
            .collect()
    }
}

/// Plays the scenario against the sites, collects, checks and summarizes.
pub fn run(options: LiveOptions) -> Result<LiveOutcome, LiveError> {
    let scenario = &options.scenario;
    if options.sites.len() != scenario.sites.len() {
        return Err(LiveError::Setup(format!(
            "the scenario has {} sites, --sites names {}",
            scenario.sites.len(),
            options.sites.len()
        )));
    }
    let plan = plan::draw(scenario, options.seed)?;
    let clock = options.clock;
    let first_ms = plan.day_span_ms.0;
    if clock.day_now_ms() > first_ms {
        return Err(LiveError::Setup(format!(
            "the drill clock is already past the day's first interval ({} s of simulated time late): \
             emit the configs again (a later --start-in-s) and restart the sites",
            (clock.day_now_ms() - first_ms) / 1_000
        )));
    }
    let skills = SkillMap::new(scenario)?;
    let routing = crate::domain_config::routing(scenario, &skills);
    let info = RunInfo {
        speed: clock.speed,
        short_abandon_ms: routing.short_abandon_ms,
        callbacks_enabled: scenario.callbacks.enabled,
    };
    std::fs::create_dir_all(&options.history).map_err(|source| history::HistoryError::Io {
        path: options.history.clone(),
        source,
    })?;
    write_json(&options.history.join(check::RUN_FILE), &info)?;
    let (sink, writer) = history::start(&options.history)?;
    let api = client::Api::new(options.sites.clone(), sink);
    let site_ids: Vec<String> = (0..scenario.sites.len())
        .map(|site| configs::site_id(scenario, site))
        .collect();
    let end_ms = plan
        .day_span_ms
        .1
        .max(plan.contacts.last().map_or(0, |contact| contact.at_ms))
        + DRAIN_MS;
    let planned = plan.contacts.len() as u64;
    let world = Arc::new(World {
        topics: topics(scenario),
        transfer_skill: scenario
            .transfer
            .as_ref()
            .map(|transfer| format!("{}_voice", transfer.to_skill)),
        fates: (0..plan.contacts.len())
            .map(|_| AtomicU8::new(world::fate::WAITING))
            .collect(),
        plan,
        tokens: options.tokens.clone(),
        api,
        clock,
        offer_timeout_ms: configs::offer_timeout_ms(routing.offer_timeout_ms, clock.speed),
        whereabouts: Mutex::new(HashMap::new()),
        by_contact: Mutex::new(HashMap::new()),
        stop: AtomicBool::new(false),
        retries: Mutex::new(Vec::new()),
    });
    let started = Instant::now();
    let agent_threads = agents::start(&world).map_err(LiveError::Setup)?;
    let gateway = gateway::start(Arc::clone(&world), site_ids.clone()).map_err(LiveError::Setup)?;
    wait_for_day(&world, end_ms, options.progress);
    world.stop.store(true, std::sync::atomic::Ordering::Release);
    gateway.join();
    for thread in agent_threads {
        let _ = thread.join();
    }
    let retries = world
        .retries
        .lock()
        .map(|mut retries| std::mem::take(&mut *retries))
        .unwrap_or_default();
    for thread in retries {
        let _ = thread.join();
    }
    let wall_s = started.elapsed().as_secs_f64();
    let fault_events = options
        .injector
        .as_ref()
        .map(|injector| injector.finish())
        .unwrap_or_default();
    let Ok(world) = Arc::try_unwrap(world) else {
        return Err(LiveError::Setup(
            "a player thread outlived the run".to_string(),
        ));
    };
    drop(world.api);
    writer.finish()?;
    let requests = history::read(&options.history)?;
    let threshold_ms = scenario.service_level.threshold_s * 1_000.0;
    let late_arrivals = late_arrivals(&world.plan, &clock, &requests, threshold_ms);
    let collected = collect::collect(&options, &requests, &site_ids)?;
    let verdict = check::check_directory(&options.history)?;
    let predicted = engine::simulate(scenario, options.seed, None)?;
    let mut summary = Summary {
        cluster: summary::cluster_figures(&collected.reports),
        client: summary::client_figures(
            &requests,
            clock.speed,
            scenario.service_level.threshold_s * 1_000.0,
        ),
        predicted: summary::predicted_figures(&predicted),
        predicted_service_level_interval: prediction_interval(scenario, options.seed)?,
        latency: summary::latencies(&requests),
        wall_s,
        speed: clock.speed,
        planned_contacts: planned,
        late_arrivals,
        fault_windows: options.fault_windows.clone(),
        faults: fault_events,
        create_retries: requests.iter().filter(|request| request.retry > 0).count() as u64,
    };
    summary.latency.retain(|_, latency| latency.count > 0);
    let faults: Vec<(f64, f64)> = options
        .fault_windows
        .iter()
        .map(|window| {
            (
                window.start_ms as f64 / 60_000.0,
                window.end_ms as f64 / 60_000.0,
            )
        })
        .collect();
    let svg = summary::service_level_svg(&collected.reports, &predicted, &faults);
    std::fs::write(options.history.join("service_level.svg"), &svg).map_err(|source| {
        history::HistoryError::Io {
            path: options.history.join("service_level.svg"),
            source,
        }
    })?;
    write_json(&options.history.join("summary.json"), &summary)?;
    write_json(&options.history.join("verdict.json"), &verdict)?;
    Ok(LiveOutcome {
        summary,
        verdict,
        svg,
    })
}

/// Arrivals the gateway presented later than planned by more than the SL threshold (in
/// simulated time): the players could not keep up with the speed.
fn late_arrivals(
    plan: &plan::Plan,
    clock: &DrillClock,
    requests: &[history::Request],
    threshold_ms: f64,
) -> u64 {
    let slack_us = threshold_ms / clock.speed * 1_000.0;
    requests
        .iter()
        .filter(|request| request.class == "arrive")
        .filter_map(|request| {
            let contact = plan.contacts.get(request.plan?)?;
            let planned_us = clock.wall_of_day(contact.at_ms).saturating_mul(1_000);
            Some(request.start_us.saturating_sub(planned_us) as f64 > slack_us)
        })
        .filter(|late| *late)
        .count() as u64
}

fn topics(scenario: &Scenario) -> Vec<TopicInfo> {
    scenario
        .topics
        .iter()
        .enumerate()
        .map(|(index, topic)| TopicInfo {
            node_topic: plan::node_topic(scenario, index),
            priority: topic.priority,
            record: match topic.name.as_str() {
                "order" => Some(RecordKind::Order),
                "pre_order" => Some(RecordKind::PreOrder),
                "complaint" => Some(RecordKind::Complaint),
                _ => None,
            },
        })
        .collect()
}

/// Waits until the day (and its drain) is over, with a progress bar on a terminal.
fn wait_for_day(world: &World, end_ms: u64, progress: bool) {
    let start_ms = world.clock.day_now_ms();
    let bar = progress.then(|| {
        let bar = indicatif::ProgressBar::new(end_ms.saturating_sub(start_ms) / 60_000);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} simulated minutes {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    loop {
        let now = world.clock.day_now_ms();
        if let Some(bar) = &bar {
            bar.set_position(now.saturating_sub(start_ms) / 60_000);
            bar.set_message(format!("{:02}:{:02}", now / 3_600_000, now / 60_000 % 60));
        }
        if now >= end_ms {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

fn prediction_interval(scenario: &Scenario, seed: u64) -> Result<Option<(f64, f64)>, LiveError> {
    let mut levels = Vec::new();
    for replication in 0..PREDICTION_REPLICATIONS {
        let report = engine::simulate(scenario, seed.wrapping_add(u64::from(replication)), None)?;
        if report.total.service_level.is_finite() {
            levels.push(report.total.service_level);
        }
    }
    if levels.len() < 2 {
        return Ok(None);
    }
    let count = levels.len() as f64;
    let mean = levels.iter().sum::<f64>() / count;
    let variance = levels
        .iter()
        .map(|level| (level - mean).powi(2))
        .sum::<f64>()
        / (count - 1.0);
    // Student t, 4 degrees of freedom (5 replications), 95 % two-sided.
    let t = if levels.len() == 5 { 2.776 } else { 2.0 };
    Ok(Some((mean, t * (variance / count).sqrt())))
}

fn write_json<T: serde::Serialize>(path: &std::path::Path, value: &T) -> Result<(), LiveError> {
    let text =
        serde_json::to_string_pretty(value).map_err(|source| history::HistoryError::Parse {
            path: path.to_path_buf(),
            line: 0,
            source,
        })?;
    std::fs::write(path, text).map_err(|source| {
        LiveError::History(history::HistoryError::Io {
            path: path.to_path_buf(),
            source,
        })
    })
}
