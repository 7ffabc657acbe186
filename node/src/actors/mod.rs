//! actix actors: thin shells around the `callgrid-domain` state machine.
//!
//! ```text
//!                    ┌──────────── SiteActor (one per node, supervised) ────────────┐
//!   API inputs ────► │ owns callgrid_domain::Site: every routing decision, atomically │
//!                    └──┬──────────────────────┬───────────────────────────┬──────────┘
//!           SiteToAgent │ ▲ AgentToSite        │ SiteToCall ▲ CallToSite   │ SiteToQueue ▲ QueueToSite
//!                       ▼ │                    ▼            │              ▼             │
//!               AgentActor (per logged-in  CallActor (per contact:     QueueActor (per skill:
//!               agent: desktop streams,    transcript, gateway events, live view for wallboards,
//!               offer timers, state time)  view for lookups, linger)   wallboard subscribers)
//! ```
//!
//! Why the routing stays in one actor: a routing decision spans queues and agents at once (an
//! arriving contact picks the longest-idle eligible agent across every queue it could be
//! served from; a freed agent takes the oldest contact across all its skills). Splitting the
//! domain state across actors would turn each decision into a distributed transaction between
//! mailboxes. So the Site actor owns `callgrid_domain::Site` (the same code the simulator
//! runs) and decides; the children own the per-entity IO around the decision — streams,
//! timers, transcripts, published views — and tell the Site only what happened to them
//! (an offer rang out, a child restarted).
//!
//! Messages are named by direction (`SiteToAgent`, `AgentToSite`, ...). Children are started
//! with `actix::Supervisor`; a handler that panics stops its child, the supervisor restarts it,
//! and the restarted child asks the Site for what it holds (state, pending offers, views).
//! A child whose address the Site dropped (logout, a finished contact's linger over) stops
//! for good: a supervisor restarts only actors someone can still reach.
//!
//! - [`site`] — the Site actor.
//! - [`agent`] — one per logged-in agent.
//! - [`call`] — one per contact.
//! - [`queue`] — one per skill.
//! - [`overflow`] — the node's part of cross-site overflow (summaries, delivery).

pub mod agent;
pub mod call;
pub mod overflow;
pub mod queue;
pub mod site;

#[cfg(test)]
mod tests;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokio::sync::mpsc;

/// Events buffered per stream subscriber before events to it are dropped.
pub const STREAM_BUFFER_EVENTS: usize = 256;
/// Stream subscribers per agent, per queue, and supervisor/gateway subscribers in total.
pub const SUBSCRIBERS_MAX: usize = 64;

/// Why a stream could not be subscribed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many streams (at most {SUBSCRIBERS_MAX})")]
pub struct StreamsFull;

/// The senders of WebSocket streams for one audience, bounded by [`SUBSCRIBERS_MAX`].
///
/// Each sender is a bounded channel ([`STREAM_BUFFER_EVENTS`]): a reader that falls behind
/// loses events, never the node's memory; a closed stream is dropped on the next send.
#[derive(Debug, Default)]
pub struct Subscribers {
    senders: Vec<mpsc::Sender<String>>,
}

impl Subscribers {
    /// Adds a subscriber, unless [`SUBSCRIBERS_MAX`] live ones are there already.
    pub fn add(&mut self, sender: mpsc::Sender<String>) -> Result<(), StreamsFull> {
        self.senders.retain(|stream| !stream.is_closed());
        if self.senders.len() >= SUBSCRIBERS_MAX {
            return Err(StreamsFull);
        }
        self.senders.push(sender);
        Ok(())
    }

    /// Whether nobody listens (callers skip building the text then).
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// Sends `text` to every subscriber; full ones lose it, closed ones are dropped.
    pub fn broadcast(&mut self, text: &str) {
        self.senders
            .retain(|stream| match stream.try_send(text.to_string()) {
                Ok(()) => true,
                // A slow reader loses this event but keeps its stream.
                Err(mpsc::error::TrySendError::Full(_)) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }

    /// Serializes `value` and broadcasts it, if anybody listens.
    pub fn publish<T: serde::Serialize + ?Sized>(&mut self, value: &T) {
        if self.senders.is_empty() {
            return;
        }
        if let Ok(text) = serde_json::to_string(value) {
            self.broadcast(&text);
        }
    }

    /// Takes the senders out (handing them to another owner).
    pub fn take(&mut self) -> Vec<mpsc::Sender<String>> {
        std::mem::take(&mut self.senders)
    }

    /// Sends `text` to one new subscriber only (the current view on subscribing).
    pub fn send_to_last(&mut self, text: String) {
        if let Some(stream) = self.senders.last() {
            let _ = stream.try_send(text);
        }
    }
}

/// Gateway subscribers, shared by the Site (monitoring requests) and the Call actors (dial
/// requests, contact events): gateways listen to the whole site, not to one contact.
#[derive(Debug, Clone, Default)]
pub struct GatewayStreams(Arc<Mutex<Subscribers>>);

impl GatewayStreams {
    /// Adds a gateway stream.
    pub fn add(&self, sender: mpsc::Sender<String>) -> Result<(), StreamsFull> {
        self.0.lock().add(sender)
    }

    /// Publishes an event to every gateway.
    pub fn publish<T: serde::Serialize + ?Sized>(&self, value: &T) {
        self.0.lock().publish(value);
    }
}

/// How many children of each kind run (for `/metrics` and tests): each child counts itself
/// in `started` and out in `stopped`, so a restart leaves the count unchanged.
#[derive(Debug, Clone, Default)]
pub struct ChildCounts {
    /// Agent actors.
    pub agents: Arc<AtomicUsize>,
    /// Call actors (lingering ones included).
    pub calls: Arc<AtomicUsize>,
    /// Queue actors.
    pub queues: Arc<AtomicUsize>,
    /// Child restarts after a failure, all kinds.
    pub restarts: Arc<AtomicUsize>,
}

impl ChildCounts {
    /// Current values: (agents, calls, queues, restarts).
    pub fn snapshot(&self) -> (usize, usize, usize, usize) {
        (
            self.agents.load(Ordering::Relaxed),
            self.calls.load(Ordering::Relaxed),
            self.queues.load(Ordering::Relaxed),
            self.restarts.load(Ordering::Relaxed),
        )
    }
}

pub(crate) fn count_in(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn count_out(counter: &AtomicUsize) {
    // Never below zero, even if a child stops twice.
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |value| {
        Some(value.saturating_sub(1))
    });
}

/// Runs a child's handler; a panic is logged and reported as `false` (the caller stops the
/// actor and its supervisor restarts it), instead of unwinding through the arbiter.
pub(crate) fn guarded(what: &str, work: impl FnOnce()) -> bool {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(()) => true,
        Err(_) => {
            tracing::error!(actor = what, "actor handler panicked; restarting the actor");
            false
        }
    }
}
