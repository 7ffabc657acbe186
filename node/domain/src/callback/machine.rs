//! The callback state machine itself, generic over what a task carries.
//!
//! ```text
//!   open ──▶ pending ──claim (due)──▶ claimed ──outcome reached/cancelled──▶ closed
//!              ▲  │                      │ │
//!              │  └─cancel / caller─▶ closed  └─no answer, busy, lease expired─▶ retry or closed (failed)
//!              └──── release (no attempt made) ◀──┘
//! ```
//!
//! One implementation for both shells: the domain's [`crate::CallbackBook`] (driven by the
//! simulator) wraps it with abandoned-call payloads, and the node's replicated state wraps it
//! with its own payloads (order-ready reminders, follow-ups, pre-order arrivals). Every input
//! carries `now`, nothing reads a clock, and every collection is ordered, so the same inputs
//! give the same machine (and the same serialized bytes) on every replica.

use crate::event::CallbackOutcome;
use crate::ids::{CallbackId, TimeMs};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What a callback task carries besides its life cycle.
pub trait CallbackPayload {
    /// The number a task calls (compared, not interpreted).
    type Caller: Ord + Clone + std::fmt::Debug;
    /// The number this task calls.
    fn caller(&self) -> &Self::Caller;
    /// Whether the task is "one per caller": at most one such task is open per number, and an
    /// inbound call from the number cancels it while it waits (the caller is served anyway).
    fn one_per_caller(&self) -> bool;
}

/// Retry rules of a machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackRules {
    /// Attempts before a task closes as failed (at least 1).
    pub attempts_max: u32,
    /// Delay from a no-answer or busy attempt to the next one.
    pub retry_interval_ms: u64,
    /// How long a claim holds without an outcome; when it runs out the attempt counts as
    /// unanswered, so a dialer that died never leaves a task claimed forever. `None`: no lease.
    pub claim_lease_ms: Option<u64>,
    /// Most open tasks; further openings are refused.
    pub open_max: u32,
}

/// One open task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackEntry<P> {
    /// Task id.
    pub id: CallbackId,
    /// What the task carries.
    pub payload: P,
    /// When it was opened.
    pub created_at: TimeMs,
    /// When the next attempt is due (while pending), or was due (while claimed).
    pub due_at: TimeMs,
    /// Attempts started (a claim starts one; a release takes it back).
    pub attempts: u32,
    /// While claimed: when the claim's lease runs out (`TimeMs(u64::MAX)` without a lease).
    pub claimed_until: Option<TimeMs>,
    /// Outcome of the last finished attempt.
    pub last_outcome: Option<CallbackOutcome>,
}

impl<P> CallbackEntry<P> {
    /// Whether an attempt is in progress.
    pub fn is_claimed(&self) -> bool {
        self.claimed_until.is_some()
    }
}

/// A task that left the machine, with how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosedCallback<P> {
    /// The task as it was when it closed.
    pub entry: CallbackEntry<P>,
    /// How it ended.
    pub outcome: CallbackOutcome,
    /// When.
    pub at: TimeMs,
}

/// What an attempt's outcome did to its task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptResult<P> {
    /// The task waits for another attempt, due then.
    Retry(TimeMs),
    /// The task closed.
    Closed(ClosedCallback<P>),
}

/// A callback input was refused; the machine is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// No open task has this id.
    #[error("unknown callback task {0}")]
    UnknownTask(CallbackId),
    /// The task has no attempt in progress to report on (it was never dialled, or its claim
    /// ran out).
    #[error("callback task {0} has no attempt in progress")]
    NoAttemptInProgress(CallbackId),
    /// The task is already claimed by an attempt.
    #[error("callback task {0} is already claimed")]
    AlreadyClaimed(CallbackId),
    /// The task is not due yet.
    #[error("callback task {id} is not due before {due_at}")]
    NotDue {
        /// Task id.
        id: CallbackId,
        /// When it is due.
        due_at: TimeMs,
    },
    /// The id is already used by an open task.
    #[error("callback task {0} already exists")]
    DuplicateId(CallbackId),
    /// A one-per-caller task is already open for the number.
    #[error("callback task {0} is already open for this number")]
    AlreadyOpenForCaller(CallbackId),
    /// The machine holds its maximum of open tasks.
    #[error("too many open callback tasks")]
    Full,
    /// An outcome that an attempt cannot report.
    #[error("outcome {0:?} cannot be reported for an attempt")]
    NotReportable(CallbackOutcome),
}

/// Open callback tasks and the rules that drive them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "P: Serialize, P::Caller: Serialize",
    deserialize = "P: Deserialize<'de>, P::Caller: Deserialize<'de>"
))]
pub struct CallbackMachine<P: CallbackPayload> {
    rules: CallbackRules,
    entries: BTreeMap<CallbackId, CallbackEntry<P>>,
    /// One-per-caller tasks by number.
    open_by_caller: BTreeMap<P::Caller, CallbackId>,
    /// Pending (unclaimed) tasks by due time.
    pending_by_due: BTreeSet<(TimeMs, CallbackId)>,
    /// Claimed tasks with a lease, by lease end.
    claims_by_deadline: BTreeSet<(TimeMs, CallbackId)>,
}

impl<P: CallbackPayload + Clone> CallbackMachine<P> {
    /// An empty machine.
    pub fn new(rules: CallbackRules) -> Self {
        CallbackMachine {
            rules,
            entries: BTreeMap::new(),
            open_by_caller: BTreeMap::new(),
            pending_by_due: BTreeSet::new(),
            claims_by_deadline: BTreeSet::new(),
        }
    }

    /// The rules.
    pub fn rules(&self) -> CallbackRules {
        self.rules
    }

    /// Replaces the rules; open tasks follow the new ones from their next transition on.
    pub fn set_rules(&mut self, rules: CallbackRules) {
        self.rules = rules;
    }

    /// Opens task `id` due at `due_at`. Refused when the id is taken, when a one-per-caller
    /// task is already open for the number, or when the machine is full.
    pub fn open(
        &mut self,
        now: TimeMs,
        id: CallbackId,
        payload: P,
        due_at: TimeMs,
    ) -> Result<CallbackId, CallbackError> {
        if self.entries.contains_key(&id) {
            return Err(CallbackError::DuplicateId(id));
        }
        if payload.one_per_caller()
            && let Some(&open) = self.open_by_caller.get(payload.caller())
        {
            return Err(CallbackError::AlreadyOpenForCaller(open));
        }
        if self.entries.len() >= self.rules.open_max as usize {
            return Err(CallbackError::Full);
        }
        if payload.one_per_caller() {
            self.open_by_caller.insert(payload.caller().clone(), id);
        }
        self.pending_by_due.insert((due_at, id));
        self.entries.insert(
            id,
            CallbackEntry {
                id,
                payload,
                created_at: now,
                due_at,
                attempts: 0,
                claimed_until: None,
                last_outcome: None,
            },
        );
        self.debug_check(id);
        Ok(id)
    }

    /// Starts an attempt on a due, pending task (attempts + 1; the lease starts now).
    pub fn claim(
        &mut self,
        now: TimeMs,
        id: CallbackId,
    ) -> Result<&CallbackEntry<P>, CallbackError> {
        let lease = self.rules.claim_lease_ms;
        let entry = self
            .entries
            .get_mut(&id)
            .ok_or(CallbackError::UnknownTask(id))?;
        if entry.is_claimed() {
            return Err(CallbackError::AlreadyClaimed(id));
        }
        if entry.due_at > now {
            return Err(CallbackError::NotDue {
                id,
                due_at: entry.due_at,
            });
        }
        let until = lease.map_or(TimeMs(u64::MAX), |lease| now.plus_ms(lease));
        self.pending_by_due.remove(&(entry.due_at, id));
        if lease.is_some() {
            self.claims_by_deadline.insert((until, id));
        }
        entry.claimed_until = Some(until);
        entry.attempts = entry.attempts.saturating_add(1);
        self.debug_check(id);
        self.entries.get(&id).ok_or(CallbackError::UnknownTask(id))
    }

    /// Gives a claimed task back without an attempt made (no agents, shutting down): pending
    /// again at its due time, the attempt not counted.
    pub fn release(&mut self, id: CallbackId) -> Result<(), CallbackError> {
        let entry = self
            .entries
            .get_mut(&id)
            .ok_or(CallbackError::UnknownTask(id))?;
        let Some(until) = entry.claimed_until.take() else {
            return Err(CallbackError::NoAttemptInProgress(id));
        };
        self.claims_by_deadline.remove(&(until, id));
        entry.attempts = entry.attempts.saturating_sub(1);
        self.pending_by_due.insert((entry.due_at, id));
        self.debug_check(id);
        Ok(())
    }

    /// The claimed attempt ended with `outcome` (`Cancelled` may close a pending task too).
    /// Reached and cancelled close the task; no-answer and busy retry after the rules'
    /// interval until `attempts_max`, then close it as failed.
    pub fn record_outcome(
        &mut self,
        now: TimeMs,
        id: CallbackId,
        outcome: CallbackOutcome,
    ) -> Result<AttemptResult<P>, CallbackError> {
        let entry = self
            .entries
            .get(&id)
            .ok_or(CallbackError::UnknownTask(id))?;
        if outcome == CallbackOutcome::Cancelled {
            return self.cancel(now, id).map(AttemptResult::Closed);
        }
        if !entry.is_claimed() {
            return Err(CallbackError::NoAttemptInProgress(id));
        }
        Ok(self.finish_attempt(now, id, outcome))
    }

    /// Closes an open task (claimed or not) as cancelled.
    pub fn cancel(
        &mut self,
        now: TimeMs,
        id: CallbackId,
    ) -> Result<ClosedCallback<P>, CallbackError> {
        self.close(now, id, CallbackOutcome::Cancelled)
            .ok_or(CallbackError::UnknownTask(id))
    }

    /// The number called in: its waiting one-per-caller task (not one mid-attempt) is
    /// cancelled, since the caller is being served anyway.
    pub fn caller_called_in(
        &mut self,
        now: TimeMs,
        caller: &P::Caller,
    ) -> Option<ClosedCallback<P>> {
        let &id = self.open_by_caller.get(caller)?;
        if self.entries.get(&id).is_none_or(CallbackEntry::is_claimed) {
            return None;
        }
        self.close(now, id, CallbackOutcome::Cancelled)
    }

    /// Ends claims whose lease ran out by `now` as unanswered attempts (retried or closed as
    /// failed by the rules), at most `limit` of them; returns what each did.
    pub fn expire_claims(
        &mut self,
        now: TimeMs,
        limit: usize,
    ) -> Vec<(CallbackId, AttemptResult<P>)> {
        let mut expired = Vec::new();
        while expired.len() < limit {
            let Some(&(until, id)) = self.claims_by_deadline.first() else {
                break;
            };
            if until > now {
                break;
            }
            expired.push((id, self.finish_attempt(now, id, CallbackOutcome::NoAnswer)));
        }
        expired
    }

    /// Pending tasks due at or before `now`, earliest due first.
    pub fn due(&self, now: TimeMs) -> impl Iterator<Item = &CallbackEntry<P>> + '_ {
        self.pending_by_due
            .iter()
            .take_while(move |(due_at, _)| *due_at <= now)
            .filter_map(|(_, id)| self.entries.get(id))
    }

    /// When the earliest pending task is due.
    pub fn next_due_at(&self) -> Option<TimeMs> {
        self.pending_by_due.first().map(|(due_at, _)| *due_at)
    }

    /// An open task.
    pub fn get(&self, id: CallbackId) -> Option<&CallbackEntry<P>> {
        self.entries.get(&id)
    }

    /// The payload of an open task, to change what the rules do not read (e.g. the owner
    /// site on failover). The caller and `one_per_caller` must stay as they were.
    pub fn payload_mut(&mut self, id: CallbackId) -> Option<&mut P> {
        self.entries.get_mut(&id).map(|entry| &mut entry.payload)
    }

    /// Every open task's payload, in id order, to change (see [`Self::payload_mut`]).
    pub fn payloads_mut(&mut self) -> impl Iterator<Item = &mut P> + '_ {
        self.entries.values_mut().map(|entry| &mut entry.payload)
    }

    /// The open one-per-caller task of a number.
    pub fn open_for(&self, caller: &P::Caller) -> Option<&CallbackEntry<P>> {
        self.open_by_caller
            .get(caller)
            .and_then(|id| self.entries.get(id))
    }

    /// Open tasks (pending and claimed).
    pub fn open_count(&self) -> usize {
        self.entries.len()
    }

    /// Claimed tasks.
    pub fn claimed_count(&self) -> usize {
        self.entries.len() - self.pending_by_due.len()
    }

    /// Open tasks in id order.
    pub fn entries(&self) -> impl Iterator<Item = &CallbackEntry<P>> + '_ {
        self.entries.values()
    }

    /// Checks the indexes against the tasks; describes the first violation. O(tasks).
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.pending_by_due.len() + self.claimed_count() != self.entries.len() {
            return Err("pending index and tasks disagree".to_string());
        }
        for entry in self.entries.values() {
            self.check_entry(entry)?;
        }
        for (caller, id) in &self.open_by_caller {
            if self.entries.get(id).is_none_or(|entry| {
                !entry.payload.one_per_caller() || entry.payload.caller() != caller
            }) {
                return Err(format!("number index points to task {id} wrongly"));
            }
        }
        Ok(())
    }

    fn check_entry(&self, entry: &CallbackEntry<P>) -> Result<(), String> {
        let id = entry.id;
        match entry.claimed_until {
            None if !self.pending_by_due.contains(&(entry.due_at, id)) => {
                Err(format!("pending task {id} missing from the due index"))
            }
            Some(_) if self.pending_by_due.contains(&(entry.due_at, id)) => {
                Err(format!("claimed task {id} still in the due index"))
            }
            Some(until)
                if self.rules.claim_lease_ms.is_some()
                    && until != TimeMs(u64::MAX)
                    && !self.claims_by_deadline.contains(&(until, id)) =>
            {
                Err(format!("claimed task {id} missing from the lease index"))
            }
            Some(_) if entry.attempts == 0 => Err(format!("claimed task {id} has no attempt")),
            _ if entry.payload.one_per_caller()
                && self.open_by_caller.get(entry.payload.caller()) != Some(&id) =>
            {
                Err(format!("task {id} missing from the number index"))
            }
            _ => Ok(()),
        }
    }

    /// O(log n) check of one task after a transition, in debug builds.
    fn debug_check(&self, id: CallbackId) {
        if cfg!(debug_assertions)
            && let Some(entry) = self.entries.get(&id)
            && let Err(violation) = self.check_entry(entry)
        {
            panic!("callback machine invariant: {violation}");
        }
    }

    fn finish_attempt(
        &mut self,
        now: TimeMs,
        id: CallbackId,
        outcome: CallbackOutcome,
    ) -> AttemptResult<P> {
        let rules = self.rules;
        let retry = matches!(outcome, CallbackOutcome::NoAnswer | CallbackOutcome::Busy);
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.last_outcome = Some(outcome);
            if retry && entry.attempts < rules.attempts_max {
                if let Some(until) = entry.claimed_until.take() {
                    self.claims_by_deadline.remove(&(until, id));
                }
                entry.due_at = now.plus_ms(rules.retry_interval_ms);
                self.pending_by_due.insert((entry.due_at, id));
                let due_at = entry.due_at;
                self.debug_check(id);
                return AttemptResult::Retry(due_at);
            }
        }
        match self.close(now, id, outcome) {
            Some(closed) => AttemptResult::Closed(closed),
            // Unreachable for an id the callers looked up; a retry far away keeps it harmless.
            None => AttemptResult::Retry(TimeMs(u64::MAX)),
        }
    }

    fn close(
        &mut self,
        now: TimeMs,
        id: CallbackId,
        outcome: CallbackOutcome,
    ) -> Option<ClosedCallback<P>> {
        let mut entry = self.entries.remove(&id)?;
        match entry.claimed_until {
            Some(until) => {
                self.claims_by_deadline.remove(&(until, id));
            }
            None => {
                self.pending_by_due.remove(&(entry.due_at, id));
            }
        }
        if entry.payload.one_per_caller()
            && self.open_by_caller.get(entry.payload.caller()) == Some(&id)
        {
            self.open_by_caller.remove(entry.payload.caller());
        }
        entry.last_outcome = Some(outcome);
        Some(ClosedCallback {
            entry,
            outcome,
            at: now,
        })
    }
}
