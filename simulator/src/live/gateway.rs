//! The telephony gateway player: presents each planned contact at its arrival time, hangs up
//! for callers whose patience runs out while they wait, hands bot calls to self-service, and
//! re-presents contacts at the site the node overflowed them to (from the gateway stream).
//!
//! ```text
//! scheduler (plan order, sleeps to each arrival) ─┐
//! patience timer (heap of deadlines) ─────────────┼─► bounded job channel ─► workers (HTTP)
//! gateway stream readers (one per site) ──────────┘
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

use super::client::About;
use super::world::{World, fate};
use super::ws::{self, Read};

/// Gateway worker threads (concurrent requests from the gateway).
pub const GATEWAY_WORKERS: usize = 16;
/// Jobs waiting for a worker at most.
pub const JOB_CHANNEL_CAPACITY: usize = 4_096;
/// The patience timer wakes at least this often (to notice the end of the run).
const TIMER_TICK: Duration = Duration::from_millis(20);
/// Moves of one contact an abandon follows at most.
pub const OVERFLOW_HOPS_FOLLOWED: usize = 4;
/// Stream reads wake at least this often.
const STREAM_TICK: Duration = Duration::from_millis(50);

#[derive(Debug)]
enum Job {
    Arrive(usize),
    Abandon(usize),
    Represent {
        index: usize,
        to: usize,
        from: Value,
    },
}

/// The gateway's moving parts.
#[derive(Debug)]
pub struct Gateway {
    threads: Vec<JoinHandle<()>>,
    scheduler: Option<JoinHandle<()>>,
}

struct Shared {
    world: Arc<World>,
    site_ids: Vec<String>,
    jobs: SyncSender<Job>,
    deadlines: Mutex<BinaryHeap<Reverse<(u64, usize)>>>,
    wake: Condvar,
    /// Plan index → the routing time (ms since the Unix epoch) of its first arrival.
    arrived_at_ms: Mutex<HashMap<usize, u64>>,
}

/// Starts the gateway: stream readers, workers, the patience timer and the scheduler.
pub fn start(world: Arc<World>, site_ids: Vec<String>) -> Result<Gateway, String> {
    let (jobs, receiver) = sync_channel(JOB_CHANNEL_CAPACITY);
    let shared = Arc::new(Shared {
        world,
        site_ids,
        jobs,
        deadlines: Mutex::new(BinaryHeap::new()),
        wake: Condvar::new(),
        arrived_at_ms: Mutex::new(HashMap::new()),
    });
    let mut threads = Vec::new();
    for site in 0..shared.world.api.sites.len() {
        let base = &shared.world.api.sites[site];
        let stream = ws::open(base, "/api/v1/gateway/stream", &shared.world.tokens.gateway)?;
        let shared = Arc::clone(&shared);
        threads.push(spawn(&format!("gateway-stream-{site}"), move || {
            read_stream(&shared, site, stream);
        })?);
    }
    let receiver = Arc::new(Mutex::new(receiver));
    for worker in 0..GATEWAY_WORKERS {
        let shared = Arc::clone(&shared);
        let receiver = Arc::clone(&receiver);
        threads.push(spawn(&format!("gateway-{worker}"), move || {
            work(&shared, &receiver);
        })?);
    }
    {
        let shared = Arc::clone(&shared);
        threads.push(spawn("gateway-patience", move || patience(&shared))?);
    }
    let scheduler = spawn("gateway-scheduler", move || schedule(&shared))?;
    Ok(Gateway {
        threads,
        scheduler: Some(scheduler),
    })
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
        .map_err(|error| format!("starting {name}: {error}"))
}

impl Gateway {
    /// Waits until every planned contact was presented.
    pub fn wait_presented(&mut self) {
        if let Some(scheduler) = self.scheduler.take() {
            let _ = scheduler.join();
        }
    }

    /// Waits for every thread after the world's stop flag was set.
    pub fn join(mut self) {
        self.wait_presented();
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn schedule(shared: &Arc<Shared>) {
    let world = &shared.world;
    for contact in &world.plan.contacts {
        world.clock.sleep_until_day(contact.at_ms);
        if world.stopping() || shared.jobs.send(Job::Arrive(contact.index)).is_err() {
            return;
        }
    }
}

fn work(shared: &Shared, receiver: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let Ok(receiver) = receiver.lock() else {
                return;
            };
            match receiver.recv_timeout(TIMER_TICK) {
                Ok(job) => job,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if shared.world.stopping() {
                        return;
                    }
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
        };
        match job {
            Job::Arrive(index) => arrive(shared, index, None),
            Job::Represent { index, to, from } => arrive(shared, index, Some((to, from))),
            Job::Abandon(index) => abandon(shared, index),
        }
    }
}

/// Presents contact `index` at its entry site, or at `to` when it was overflowed there.
fn arrive(shared: &Shared, index: usize, overflow: Option<(usize, Value)>) {
    let world = &shared.world;
    let Some(contact) = world.plan.contacts.get(index) else {
        return;
    };
    let topic = &world.topics[contact.topic];
    let mut body = json!({
        "caller": contact.caller(),
        "channel": if contact.chat { "chat" } else { "voice" },
        "topic": topic.node_topic,
        "priority": topic.priority,
    });
    let site = match &overflow {
        Some((to, from)) => {
            body["overflowed_from"] = from.clone();
            *to
        }
        None => contact.site,
    };
    let class = if overflow.is_some() {
        "represent"
    } else {
        "arrive"
    };
    let about = About {
        plan: Some(index),
        contact: None,
    };
    let token = &world.tokens.gateway;
    let answer = world.api.call(
        "gateway",
        site,
        class,
        "POST",
        "/api/v1/contacts",
        token,
        Some(&body),
        about,
    );
    let view = &answer.body["contact"];
    let Some(id) = view["id"].as_u64().filter(|_| answer.ok()) else {
        if overflow.is_none() {
            world.settle(index, fate::WAITING, fate::REFUSED);
        }
        return;
    };
    world.place(index, site, id);
    // The caller may have hung up while the call moved: the new site must hear it too.
    if overflow.is_some() && world.fate(index) == fate::ABANDONED {
        post_abandoned(world, index, site, id);
        return;
    }
    if overflow.is_none()
        && let (Some(at), Ok(mut arrived)) =
            (view["arrived_at_ms"].as_u64(), shared.arrived_at_ms.lock())
    {
        arrived.insert(index, at);
    }
    if view["stage"] == "blocked" {
        world.settle(index, fate::WAITING, fate::REFUSED);
        return;
    }
    if contact.bot && overflow.is_none() {
        if world.settle(index, fate::WAITING, fate::SELF_SERVED) {
            let path = format!("/api/v1/contacts/{id}/self-served");
            let about = About {
                plan: Some(index),
                contact: Some(id),
            };
            world.api.call(
                "gateway",
                site,
                "self_served",
                "POST",
                &path,
                token,
                None,
                about,
            );
        }
        return;
    }
    if overflow.is_none() && contact.patience_ms != u64::MAX {
        let deadline = contact.at_ms.saturating_add(contact.patience_ms);
        if let Ok(mut deadlines) = shared.deadlines.lock() {
            deadlines.push(Reverse((deadline, index)));
            shared.wake.notify_one();
        }
    }
}

fn abandon(shared: &Shared, index: usize) {
    let world = &shared.world;
    if !world.settle(index, fate::WAITING, fate::ABANDONED) {
        return;
    }
    let Some((site, id)) = world.whereabouts(index) else {
        return;
    };
    post_abandoned(world, index, site, id);
}

/// Tells the site holding contact `index` that its caller hung up. A contact that moved
/// meanwhile (overflow) is followed: a 404 with newer whereabouts is retried there, and a
/// re-presentation that lands after the hang-up reports it itself (see [`arrive`]).
fn post_abandoned(world: &World, index: usize, mut site: usize, mut id: u64) {
    for _ in 0..=crate::live::gateway::OVERFLOW_HOPS_FOLLOWED {
        let path = format!("/api/v1/contacts/{id}/abandoned");
        let about = About {
            plan: Some(index),
            contact: Some(id),
        };
        let token = &world.tokens.gateway;
        let answer = world.api.call(
            "gateway", site, "abandon", "POST", &path, token, None, about,
        );
        if answer.status != 404 {
            return;
        }
        match world.whereabouts(index) {
            Some(moved) if moved != (site, id) => (site, id) = moved,
            _ => return,
        }
    }
}

/// Hangs up callers at their patience deadline (if they are still waiting then).
fn patience(shared: &Shared) {
    let world = &shared.world;
    let Ok(mut deadlines) = shared.deadlines.lock() else {
        return;
    };
    while !world.stopping() {
        let now = world.clock.day_now_ms();
        match deadlines.peek().copied() {
            Some(Reverse((at, index))) if at <= now => {
                deadlines.pop();
                if world.fate(index) == fate::WAITING {
                    drop(deadlines);
                    if shared.jobs.send(Job::Abandon(index)).is_err() {
                        return;
                    }
                    let Ok(relocked) = shared.deadlines.lock() else {
                        return;
                    };
                    deadlines = relocked;
                }
            }
            next => {
                let wait = next.map_or(TIMER_TICK, |Reverse((at, _))| {
                    world
                        .clock
                        .wall_duration(at.saturating_sub(now))
                        .min(TIMER_TICK)
                });
                let Ok((relocked, _)) = shared.wake.wait_timeout(deadlines, wait) else {
                    return;
                };
                deadlines = relocked;
            }
        }
    }
}

/// Follows one site's gateway stream: re-presents overflowed contacts at their new site.
fn read_stream(shared: &Shared, site: usize, mut stream: ws::Stream) {
    let world = &shared.world;
    while !world.stopping() {
        match stream.read(STREAM_TICK) {
            Read::Message(message) => {
                if message["type"] == "contact" && message["overflowed_to"].is_object() {
                    overflowed(shared, site, &message);
                }
            }
            Read::Idle => {}
            Read::Closed(reason) => {
                tracing::warn!(site, %reason, "gateway stream closed; reopening");
                let base = &world.api.sites[site];
                let token = &world.tokens.gateway;
                match ws::reopen(base, "/api/v1/gateway/stream", token, &|| world.stopping()) {
                    Some(reopened) => stream = reopened,
                    None => return,
                }
            }
        }
    }
}

fn overflowed(shared: &Shared, site: usize, message: &Value) {
    let world = &shared.world;
    let (Some(contact), Some(target)) = (
        message["contact"].as_u64(),
        message["overflowed_to"]["site"].as_str(),
    ) else {
        return;
    };
    let Some(to) = shared.site_ids.iter().position(|id| id == target) else {
        return;
    };
    let Some(index) = world.index_of(site, contact) else {
        return;
    };
    if world.fate(index) != fate::WAITING {
        return;
    }
    let arrived_at_ms = shared
        .arrived_at_ms
        .lock()
        .ok()
        .and_then(|arrived| arrived.get(&index).copied())
        .unwrap_or_else(|| world.clock.routing_at(super::clock::wall_ms()));
    let from = json!({
        "site": shared.site_ids[site],
        "contact": contact,
        "arrived_at_ms": arrived_at_ms,
        "hops": message["overflowed_to"]["hops"].as_u64().unwrap_or(1),
    });
    let _ = shared.jobs.send(Job::Represent { index, to, from });
}
