//! The callback book: tasks to call back abandoned callers — de-duplicated by number, due
//! after a delay, retried on no-answer or busy up to a maximum, closed with an outcome.
//!
//! It is its own state machine (not part of [`crate::Site`]) because the node replicates it
//! through Raft: every input is a deterministic command, so applying the same commands in the
//! same order on every replica yields the same book. The simulator drives it directly.

use crate::config::CallbackPolicy;
use crate::contact::{Channel, Contact, Direction, Priority, Topic};
use crate::event::{CallbackOutcome, CallbackRequest, Effect, Event, EventKind};
use crate::ids::{CallbackId, CallerNumber, ContactId, SiteId, SkillId, TimeMs};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

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

/// A callback input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// No open task has this id.
    #[error("unknown callback task {0}")]
    UnknownTask(CallbackId),
    /// The task has no attempt in progress to report on.
    #[error("callback task {0} has no attempt in progress")]
    NoAttemptInProgress(CallbackId),
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

/// Open callback tasks and the rules that drive them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallbackBook {
    policy: CallbackPolicy,
    next_id: u64,
    /// Ordered maps so that a serialized book (a Raft snapshot) is byte-identical everywhere.
    tasks: BTreeMap<CallbackId, CallbackTask>,
    open_by_number: BTreeMap<CallerNumber, CallbackId>,
    #[serde(skip)]
    due: BinaryHeap<Reverse<(TimeMs, CallbackId)>>,
    counters: CallbackCounters,
}

impl CallbackBook {
    /// An empty book.
    pub fn new(policy: CallbackPolicy) -> CallbackBook {
        CallbackBook {
            policy,
            next_id: 1,
            tasks: BTreeMap::new(),
            open_by_number: BTreeMap::new(),
            due: BinaryHeap::new(),
            counters: CallbackCounters::default(),
        }
    }

    /// Rebuilds the due index after deserialization (it is not serialized).
    pub fn rebuild_index(&mut self) {
        self.due = self
            .tasks
            .values()
            .filter(|task| !task.in_progress)
            .map(|task| Reverse((task.due_at, task.id)))
            .collect();
    }

    /// A caller abandoned: opens a task due after the policy's delay, unless one is already
    /// open for the number (then nothing new: one caller, one callback). Emits
    /// `CallbackCreated` (as an event of the requesting site) when a task is opened.
    pub fn handle_request(
        &mut self,
        now: TimeMs,
        request: &CallbackRequest,
        out: &mut Vec<Effect>,
    ) -> Option<CallbackId> {
        if !self.policy.enabled || (request.short && !self.policy.include_short_abandons) {
            self.counters.dropped += 1;
            return None;
        }
        if self.open_by_number.contains_key(&request.caller) {
            self.counters.deduplicated += 1;
            return None;
        }
        if self.tasks.len() >= self.policy.open_max as usize {
            self.counters.dropped += 1;
            return None;
        }
        let id = CallbackId(self.next_id);
        self.next_id += 1;
        let due_at = now.plus_ms(self.policy.delay_s.saturating_mul(1000));
        self.tasks.insert(
            id,
            CallbackTask {
                id,
                site: request.site,
                caller: request.caller,
                skill: request.skill,
                channel: request.channel,
                topic: request.topic,
                ordering_time: request.ordering_time,
                due_at,
                attempts: 0,
                in_progress: false,
            },
        );
        self.open_by_number.insert(request.caller, id);
        self.due.push(Reverse((due_at, id)));
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
        self.skip_stale_due();
        self.due.peek().map(|Reverse((due_at, _))| *due_at)
    }

    /// The next task due at or before `now`, marked in progress (attempts + 1). Turn it into a
    /// contact with [`CallbackTask::to_contact`], and report with [`CallbackBook::handle_outcome`].
    pub fn poll_due(&mut self, now: TimeMs) -> Option<CallbackTask> {
        self.skip_stale_due();
        let &Reverse((due_at, id)) = self.due.peek()?;
        if due_at > now {
            return None;
        }
        self.due.pop();
        let task = self.tasks.get_mut(&id)?;
        task.in_progress = true;
        task.attempts = task.attempts.saturating_add(1);
        Some(*task)
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
        let task = self
            .tasks
            .get_mut(&id)
            .ok_or(CallbackError::UnknownTask(id))?;
        if !task.in_progress && outcome != CallbackOutcome::Cancelled {
            return Err(CallbackError::NoAttemptInProgress(id));
        }
        let retry = matches!(outcome, CallbackOutcome::NoAnswer | CallbackOutcome::Busy)
            && task.attempts < self.policy.attempts_max;
        if retry {
            task.in_progress = false;
            task.due_at = now.plus_ms(self.policy.retry_interval_s.saturating_mul(1000));
            self.due.push(Reverse((task.due_at, id)));
            return Ok(());
        }
        match outcome {
            CallbackOutcome::Reached => self.counters.reached += 1,
            CallbackOutcome::Cancelled => self.counters.cancelled += 1,
            CallbackOutcome::NoAnswer | CallbackOutcome::Busy => self.counters.failed += 1,
        }
        self.close(now, id, outcome, out);
        Ok(())
    }

    /// The customer called in again: their open task (if any, and not mid-attempt) is
    /// cancelled, since the caller is being served anyway. Returns the cancelled task.
    pub fn handle_inbound_from(
        &mut self,
        now: TimeMs,
        caller: CallerNumber,
        out: &mut Vec<Effect>,
    ) -> Option<CallbackId> {
        let &id = self.open_by_number.get(&caller)?;
        if self.tasks.get(&id).is_none_or(|task| task.in_progress) {
            return None;
        }
        self.counters.cancelled += 1;
        self.close(now, id, CallbackOutcome::Cancelled, out);
        Some(id)
    }

    /// Moves every task owned by `from` to `to` (failover of a dead site).
    pub fn reassign_site(&mut self, from: SiteId, to: SiteId) -> usize {
        let mut moved = 0;
        for task in self.tasks.values_mut() {
            if task.site == from {
                task.site = to;
                moved += 1;
            }
        }
        moved
    }

    /// An open task.
    pub fn task(&self, id: CallbackId) -> Option<&CallbackTask> {
        self.tasks.get(&id)
    }

    /// The open task for a number.
    pub fn open_for(&self, caller: CallerNumber) -> Option<&CallbackTask> {
        self.open_by_number
            .get(&caller)
            .and_then(|id| self.tasks.get(id))
    }

    /// Open tasks.
    pub fn open_count(&self) -> usize {
        self.tasks.len()
    }

    /// Open tasks in id order.
    pub fn tasks(&self) -> impl Iterator<Item = &CallbackTask> {
        self.tasks.values()
    }

    /// Counters.
    pub fn counters(&self) -> CallbackCounters {
        self.counters
    }

    fn close(
        &mut self,
        now: TimeMs,
        id: CallbackId,
        outcome: CallbackOutcome,
        out: &mut Vec<Effect>,
    ) {
        if let Some(task) = self.tasks.remove(&id) {
            self.open_by_number.remove(&task.caller);
            out.push(Effect::Event(Event {
                at: now,
                site: task.site,
                kind: EventKind::CallbackClosed {
                    callback: id,
                    outcome,
                    attempts: task.attempts,
                },
            }));
        }
    }

    /// Drops due entries whose task was closed or rescheduled since they were pushed.
    fn skip_stale_due(&mut self) {
        while let Some(&Reverse((due_at, id))) = self.due.peek() {
            match self.tasks.get(&id) {
                Some(task) if !task.in_progress && task.due_at == due_at => return,
                _ => {
                    self.due.pop();
                }
            }
        }
    }
}
