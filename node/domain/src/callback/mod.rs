//! The callback book: tasks to call back abandoned callers — de-duplicated by number, due
//! after a delay, retried on no-answer or busy up to a maximum, closed with an outcome.
//!
//! It is its own state machine (not part of [`crate::Site`]) because the node replicates it
//! through Raft: every input is a deterministic command, so applying the same commands in the
//! same order on every replica yields the same book. The rules live once, in the generic
//! [`CallbackMachine`]: [`CallbackBook`] is that machine with abandoned-call payloads (what the
//! simulator drives), and the node's replicated state runs the same machine with its own
//! payloads (order-ready reminders, follow-ups, pre-order arrivals, abandoned calls).

mod machine;

pub use machine::{
    AttemptResult, CallbackEntry, CallbackError, CallbackMachine, CallbackPayload, CallbackRules,
    ClosedCallback,
};

use crate::config::CallbackPolicy;
use crate::contact::{Channel, Contact, Direction, Priority, Topic};
use crate::event::{CallbackOutcome, CallbackRequest, Effect, Event, EventKind};
use crate::ids::{CallbackId, CallerNumber, ContactId, SiteId, SkillId, TimeMs};
use serde::{Deserialize, Serialize};

/// An open callback task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackTask {
    /// Task id.
    pub id: CallbackId,
    /// Site that owns the task (where the caller abandoned; reassigned on failover).
    pub site: SiteId,
    /// Number to call.
    pub caller: CallerNumber,
    /// Queue the outbound contact joins.
    pub skill: SkillId,
    /// Medium.
    pub channel: Channel,
    /// Topic chosen in the IVR.
    pub topic: Topic,
    /// The caller's original place in the queue.
    pub ordering_time: TimeMs,
    /// When the next attempt is due.
    pub due_at: TimeMs,
    /// Attempts started so far.
    pub attempts: u8,
    /// Whether an attempt is in progress (handed out by `poll_due`, no outcome yet).
    pub in_progress: bool,
}

impl CallbackTask {
    /// The outbound contact that executes this task's current attempt, keeping the caller's
    /// original place in the queue.
    pub fn to_contact(&self, id: ContactId, now: TimeMs) -> Contact {
        Contact {
            id,
            channel: self.channel,
            topic: self.topic,
            skill: self.skill,
            caller: self.caller,
            entry_site: self.site,
            arrived_at: now,
            priority: Priority::default(),
            ordering_time: self.ordering_time,
            direction: Direction::OutboundCallback,
            callback: Some(self.id),
            overflow_count: 0,
            transfer_count: 0,
        }
    }
}

/// Counters of the book (the per-site "callbacks created" metric comes from events).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackCounters {
    /// Tasks opened.
    pub created: u64,
    /// Requests folded into an already open task for the same number.
    pub deduplicated: u64,
    /// Requests dropped because the book was full or the policy excluded them.
    pub dropped: u64,
    /// Tasks closed as reached.
    pub reached: u64,
    /// Tasks closed after the last failed attempt.
    pub failed: u64,
    /// Tasks cancelled.
    pub cancelled: u64,
}

/// What a task of the [`CallbackBook`] carries: the abandoned contact's routing facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbandonedCallback {
    /// Site that owns the task.
    pub site: SiteId,
    /// Number to call.
    pub caller: CallerNumber,
    /// Queue the outbound contact joins.
    pub skill: SkillId,
    /// Medium.
    pub channel: Channel,
    /// Topic chosen in the IVR.
    pub topic: Topic,
    /// The caller's original place in the queue.
    pub ordering_time: TimeMs,
}

impl CallbackPayload for AbandonedCallback {
    type Caller = CallerNumber;

    fn caller(&self) -> &CallerNumber {
        &self.caller
    }

    fn one_per_caller(&self) -> bool {
        true
    }
}

/// Open callback tasks for abandoned callers, driven by the policy: the [`CallbackMachine`]
/// with [`AbandonedCallback`] payloads, plus the policy's admission rules and the events.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallbackBook {
    policy: CallbackPolicy,
    next_id: u64,
    machine: CallbackMachine<AbandonedCallback>,
    counters: CallbackCounters,
}

impl CallbackBook {
    /// An empty book.
    pub fn new(policy: CallbackPolicy) -> CallbackBook {
        let machine = CallbackMachine::new(policy.rules());
        CallbackBook {
            policy,
            next_id: 1,
            machine,
            counters: CallbackCounters::default(),
        }
    }

    /// Kept for drivers written against earlier versions: the indexes are serialized with the
    /// book now, so there is nothing to rebuild after deserialization.
    pub fn rebuild_index(&mut self) {}

    /// A caller abandoned: opens a task due after the policy's delay, unless the policy
    /// excludes the request (disabled, short abandon, a channel without callbacks) or one is
    /// already open for the number (one caller, one callback). Emits `CallbackCreated` (as an
    /// event of the requesting site) when a task is opened.
    pub fn handle_request(
        &mut self,
        now: TimeMs,
        request: &CallbackRequest,
        out: &mut Vec<Effect>,
    ) -> Option<CallbackId> {
        if !self.policy.admits(request) {
            self.counters.dropped += 1;
            return None;
        }
        let id = CallbackId(self.next_id);
        let due_at = now.plus_ms(self.policy.delay_s.saturating_mul(1000));
        let payload = AbandonedCallback {
            site: request.site,
            caller: request.caller,
            skill: request.skill,
            channel: request.channel,
            topic: request.topic,
            ordering_time: request.ordering_time,
        };
        match self.machine.open(now, id, payload, due_at) {
            Ok(_) => {}
            Err(CallbackError::AlreadyOpenForCaller(_)) => {
                self.counters.deduplicated += 1;
                return None;
            }
            Err(_) => {
                self.counters.dropped += 1;
                return None;
            }
        }
        self.next_id += 1;
        self.counters.created += 1;
        out.push(Effect::Event(Event {
            at: now,
            site: request.site,
            kind: EventKind::CallbackCreated {
                callback: id,
                caller: request.caller,
                skill: request.skill,
            },
        }));
        Some(id)
    }

    /// When the earliest waiting task is due.
    pub fn next_due_at(&mut self) -> Option<TimeMs> {
        self.machine.next_due_at()
    }

    /// The next task due at or before `now`, marked in progress (attempts + 1). Turn it into a
    /// contact with [`CallbackTask::to_contact`], and report with [`CallbackBook::handle_outcome`].
    pub fn poll_due(&mut self, now: TimeMs) -> Option<CallbackTask> {
        let id = self.machine.due(now).next()?.id;
        let entry = self.machine.claim(now, id).ok()?;
        Some(CallbackTask::from_entry(entry))
    }

    /// Ends the attempts whose claim lease (`claim_lease_s` of the policy) ran out by `now`,
    /// as unanswered: retried, or closed as failed with a `CallbackClosed` event. A driver
    /// that may lose track of an attempt calls this with its timers; returns how many ended.
    pub fn handle_lease_expiry(&mut self, now: TimeMs, out: &mut Vec<Effect>) -> usize {
        let expired = self.machine.expire_claims(now, usize::MAX);
        for (_, result) in &expired {
            if let AttemptResult::Closed(closed) = result {
                self.counters.failed += 1;
                emit_closed(closed, out);
            }
        }
        expired.len()
    }

    /// The attempt in progress ended with `outcome`. Reached and cancelled close the task;
    /// no-answer and busy retry after the policy's interval until `attempts_max`.
    pub fn handle_outcome(
        &mut self,
        now: TimeMs,
        id: CallbackId,
        outcome: CallbackOutcome,
        out: &mut Vec<Effect>,
    ) -> Result<(), CallbackError> {
        match self.machine.record_outcome(now, id, outcome)? {
            AttemptResult::Retry(_) => Ok(()),
            AttemptResult::Closed(closed) => {
                match outcome {
                    CallbackOutcome::Reached => self.counters.reached += 1,
                    CallbackOutcome::Cancelled => self.counters.cancelled += 1,
                    CallbackOutcome::NoAnswer | CallbackOutcome::Busy => self.counters.failed += 1,
                }
                emit_closed(&closed, out);
                Ok(())
            }
        }
    }

    /// The customer called in again: their open task (if any, and not mid-attempt) is
    /// cancelled, since the caller is being served anyway. Returns the cancelled task.
    pub fn handle_inbound_from(
        &mut self,
        now: TimeMs,
        caller: CallerNumber,
        out: &mut Vec<Effect>,
    ) -> Option<CallbackId> {
        let closed = self.machine.caller_called_in(now, &caller)?;
        self.counters.cancelled += 1;
        emit_closed(&closed, out);
        Some(closed.entry.id)
    }

    /// Moves every task owned by `from` to `to` (failover of a dead site).
    pub fn reassign_site(&mut self, from: SiteId, to: SiteId) -> usize {
        let mut moved = 0;
        for payload in self.machine.payloads_mut() {
            if payload.site == from {
                payload.site = to;
                moved += 1;
            }
        }
        moved
    }

    /// An open task.
    pub fn task(&self, id: CallbackId) -> Option<CallbackTask> {
        self.machine.get(id).map(CallbackTask::from_entry)
    }

    /// The open task for a number.
    pub fn open_for(&self, caller: CallerNumber) -> Option<CallbackTask> {
        self.machine.open_for(&caller).map(CallbackTask::from_entry)
    }

    /// Open tasks.
    pub fn open_count(&self) -> usize {
        self.machine.open_count()
    }

    /// Open tasks in id order.
    pub fn tasks(&self) -> impl Iterator<Item = CallbackTask> + '_ {
        self.machine.entries().map(CallbackTask::from_entry)
    }

    /// Counters.
    pub fn counters(&self) -> CallbackCounters {
        self.counters
    }

    /// The machine underneath (its invariants, its entries).
    pub fn machine(&self) -> &CallbackMachine<AbandonedCallback> {
        &self.machine
    }
}

impl CallbackTask {
    fn from_entry(entry: &CallbackEntry<AbandonedCallback>) -> CallbackTask {
        let payload = entry.payload;
        CallbackTask {
            id: entry.id,
            site: payload.site,
            caller: payload.caller,
            skill: payload.skill,
            channel: payload.channel,
            topic: payload.topic,
            ordering_time: payload.ordering_time,
            due_at: entry.due_at,
            attempts: u8::try_from(entry.attempts).unwrap_or(u8::MAX),
            in_progress: entry.is_claimed(),
        }
    }
}

fn emit_closed(closed: &ClosedCallback<AbandonedCallback>, out: &mut Vec<Effect>) {
    out.push(Effect::Event(Event {
        at: closed.at,
        site: closed.entry.payload.site,
        kind: EventKind::CallbackClosed {
            callback: closed.entry.id,
            outcome: closed.outcome,
            attempts: u8::try_from(closed.entry.attempts).unwrap_or(u8::MAX),
        },
    }));
}
