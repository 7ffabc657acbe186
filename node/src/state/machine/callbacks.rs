//! Callbacks: the domain's [`callgrid_domain::CallbackMachine`] (the one implementation of the
//! callback rules, the same the simulator runs) with the node's payloads, and the records
//! readers see.
//!
//! The machine decides (due times, one abandoned-call task per number, claims and their
//! lease, retries, cancellation when the caller phones again); this file turns commands into
//! machine inputs, mirrors each task into its [`Callback`] record, and adds what only the node
//! knows: an order waiting at its pickup point is announced again the next day.

use callgrid_domain::{
    AttemptResult, CallbackError, CallbackId as TaskId, CallbackOutcome, CallbackPayload,
    CallbackRules, ClosedCallback,
};
use serde::{Deserialize, Serialize};

use super::super::command::{ApplyError, Outcome, Response};
use super::super::model::{
    Callback, CallbackId, CallbackReason, CallbackStatus, OrderStatus, StatePolicy, TimestampMs,
};
use super::retention::RecordKind;
use super::{ReplicatedState, StateEvent, time};

/// How long a site's claim on a callback holds without an outcome; then the attempt counts as
/// unanswered (retried or failed by the policy), so a site that died or lost the call never
/// leaves a callback queued forever.
pub const CALLBACK_CLAIM_LEASE_MS: u64 = 2 * 60 * 60 * 1000;
/// Most open callbacks the state holds; further ones are refused (and logged by the proposer).
pub const CALLBACKS_OPEN_MAX: u32 = 1_000_000;
/// Claim expiries handled per applied command (the sweep is amortised over commands).
pub const CALLBACK_CLAIM_EXPIRIES_PER_APPLY_MAX: usize = 1_000;

/// What a node callback task carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCallback {
    /// Site that created it (the default owner).
    pub site: String,
    /// Number to dial (normalized).
    pub caller: String,
    /// Why.
    pub reason: CallbackReason,
    /// Site that claimed the attempt in progress.
    pub claimed_by: Option<String>,
}

impl CallbackPayload for NodeCallback {
    type Caller = String;

    fn caller(&self) -> &String {
        &self.caller
    }

    /// Abandoned-call callbacks are one per number and cancelled when the caller phones again;
    /// reminders (order ready, pre-order arrived, follow-up) are not.
    fn one_per_caller(&self) -> bool {
        matches!(self.reason, CallbackReason::Abandoned { .. })
    }
}

/// The machine's rules under a policy.
pub(super) fn rules(policy: &StatePolicy) -> CallbackRules {
    CallbackRules {
        attempts_max: policy.callback_attempts_max,
        retry_interval_ms: policy.callback_retry_interval_ms,
        claim_lease_ms: Some(CALLBACK_CLAIM_LEASE_MS),
        open_max: CALLBACKS_OPEN_MAX,
    }
}

impl ReplicatedState {
    /// Opens a callback; `Err` when the machine refuses it (already open for the number, or
    /// full).
    fn open_callback(
        &mut self,
        at_ms: TimestampMs,
        site: &str,
        caller: &str,
        reason: CallbackReason,
        due_at_ms: TimestampMs,
    ) -> Result<CallbackId, CallbackError> {
        let id = self.allocate_id();
        let payload = NodeCallback {
            site: site.to_string(),
            caller: caller.to_string(),
            reason: reason.clone(),
            claimed_by: None,
        };
        // The machine works under the creating site's policy for this task.
        self.with_site_rules(site, |state| {
            state
                .callback_machine
                .open(time(at_ms), TaskId(id), payload, time(due_at_ms))
        })?;
        let rules = rules(self.policy_for(site));
        self.callbacks.insert(
            id,
            Callback {
                id,
                site: site.to_string(),
                caller: caller.to_string(),
                reason: reason.clone(),
                due_at_ms,
                attempts: 0,
                attempts_max: rules.attempts_max,
                retry_interval_ms: rules.retry_interval_ms,
                status: CallbackStatus::Pending,
                claimed_by: None,
                last_outcome: None,
                created_at_ms: at_ms,
            },
        );
        if let CallbackReason::OrderReady { order } = reason {
            self.order_ready_callbacks.insert(order, id);
        }
        Ok(id)
    }

    /// Opens a reminder callback; `None` (logged) when the machine is full.
    pub(super) fn create_callback(
        &mut self,
        at_ms: TimestampMs,
        site: &str,
        caller: &str,
        reason: CallbackReason,
        due_at_ms: TimestampMs,
    ) -> Option<CallbackId> {
        match self.open_callback(at_ms, site, caller, reason, due_at_ms) {
            Ok(id) => Some(id),
            Err(error) => {
                tracing::warn!(%error, "callback not created");
                None
            }
        }
    }

    pub(super) fn create_abandoned_callback(
        &mut self,
        at_ms: TimestampMs,
        site: &str,
        caller: &str,
        skill: &str,
        ordering_time_ms: TimestampMs,
    ) -> Response {
        let reason = CallbackReason::Abandoned {
            skill: skill.to_string(),
            ordering_time_ms,
        };
        let due_at_ms = at_ms.saturating_add(self.policy_for(site).abandoned_callback_delay_ms);
        match self.open_callback(at_ms, site, caller, reason, due_at_ms) {
            Ok(id) => Ok(Outcome::CallbacksCreated(vec![id])),
            Err(CallbackError::AlreadyOpenForCaller(_)) => {
                Ok(Outcome::CallbacksCreated(Vec::new()))
            }
            Err(error) => Err(ApplyError::Conflict(error.to_string())),
        }
    }

    pub(super) fn claim_callback(
        &mut self,
        at_ms: TimestampMs,
        site: &str,
        callback: CallbackId,
    ) -> Response {
        self.callback_machine
            .claim(time(at_ms), TaskId(callback))
            .map(|_| ())
            .map_err(|error| self.callback_refusal(callback, error))?;
        if let Some(payload) = self.callback_machine.payload_mut(TaskId(callback)) {
            payload.claimed_by = Some(site.to_string());
        }
        self.sync_callback(callback);
        Ok(Outcome::Done)
    }

    pub(super) fn release_callback(&mut self, callback: CallbackId) -> Response {
        self.callback_machine
            .release(TaskId(callback))
            .map_err(|error| self.callback_refusal(callback, error))?;
        if let Some(payload) = self.callback_machine.payload_mut(TaskId(callback)) {
            payload.claimed_by = None;
        }
        self.sync_callback(callback);
        Ok(Outcome::Done)
    }

    /// The outcome of a dial attempt. Only a claimed (dialled) callback has one, except
    /// `cancelled`, which closes any open callback.
    pub(super) fn record_attempt(
        &mut self,
        at_ms: TimestampMs,
        callback: CallbackId,
        outcome: CallbackOutcome,
    ) -> Response {
        let owner = self
            .callbacks
            .get(&callback)
            .map(|record| record.site.clone())
            .unwrap_or_default();
        let result = self
            .with_site_rules(&owner, |state| {
                state
                    .callback_machine
                    .record_outcome(time(at_ms), TaskId(callback), outcome)
            })
            .map_err(|error| self.callback_refusal(callback, error))?;
        let created = self.after_attempt(at_ms, callback, result);
        Ok(match created {
            Some(next) => Outcome::CallbacksCreated(vec![next]),
            None => Outcome::Done,
        })
    }

    /// The number phoned in: its waiting abandoned-call callback is cancelled.
    pub(super) fn caller_called_in(&mut self, at_ms: TimestampMs, caller: &str) -> Response {
        if let Some(closed) = self
            .callback_machine
            .caller_called_in(time(at_ms), &caller.to_string())
        {
            self.record_closed(&closed);
        }
        Ok(Outcome::Done)
    }

    pub(super) fn cancel_callback(&mut self, at_ms: TimestampMs, callback: CallbackId) {
        if let Ok(closed) = self.callback_machine.cancel(time(at_ms), TaskId(callback)) {
            self.record_closed(&closed);
        }
    }

    pub(super) fn expire_callback_claims(
        &mut self,
        at_ms: TimestampMs,
        events: &mut Vec<StateEvent>,
    ) {
        let expired = self
            .callback_machine
            .expire_claims(time(at_ms), CALLBACK_CLAIM_EXPIRIES_PER_APPLY_MAX);
        for (TaskId(callback), result) in expired {
            let site = self
                .callbacks
                .get(&callback)
                .and_then(|record| record.claimed_by.clone());
            events.push(StateEvent::CallbackClaimExpired { callback, site });
            if let Some(payload) = self.callback_machine.payload_mut(TaskId(callback)) {
                payload.claimed_by = None;
            }
            self.after_attempt(at_ms, callback, result);
        }
    }

    /// Mirrors an attempt's result; an order still waiting at its pickup point gets the next
    /// day's reminder when today's closes (whatever happened to the call, unless cancelled).
    fn after_attempt(
        &mut self,
        at_ms: TimestampMs,
        callback: CallbackId,
        result: AttemptResult<NodeCallback>,
    ) -> Option<CallbackId> {
        let closed = match result {
            AttemptResult::Retry(_) => {
                self.sync_callback(callback);
                return None;
            }
            AttemptResult::Closed(closed) => closed,
        };
        self.record_closed(&closed);
        let payload = &closed.entry.payload;
        let CallbackReason::OrderReady { order } = payload.reason else {
            return None;
        };
        let waiting = self
            .orders
            .get(&order)
            .is_some_and(|record| record.status == OrderStatus::Ready);
        if closed.outcome == CallbackOutcome::Cancelled || !waiting {
            return None;
        }
        let due = at_ms.saturating_add(
            self.policy_for(&payload.site)
                .order_ready_repeat_interval_ms,
        );
        let (site, caller) = (payload.site.clone(), payload.caller.clone());
        self.create_callback(
            at_ms,
            &site,
            &caller,
            CallbackReason::OrderReady { order },
            due,
        )
    }

    /// Copies an open task's life cycle into its record.
    fn sync_callback(&mut self, callback: CallbackId) {
        let rules = self.callbacks.get(&callback).map_or_else(
            || self.callback_machine.rules(),
            |record| rules(self.policy_for(&record.site)),
        );
        let (Some(entry), Some(record)) = (
            self.callback_machine.get(TaskId(callback)),
            self.callbacks.get_mut(&callback),
        ) else {
            return;
        };
        record.due_at_ms = entry.due_at.0;
        record.attempts = entry.attempts;
        record.attempts_max = rules.attempts_max;
        record.retry_interval_ms = rules.retry_interval_ms;
        record.last_outcome = entry.last_outcome;
        record.claimed_by = entry.payload.claimed_by.clone();
        record.status = if entry.is_claimed() {
            CallbackStatus::Queued
        } else {
            CallbackStatus::Pending
        };
    }

    /// Writes a closed task into its record and schedules the record's retention.
    fn record_closed(&mut self, closed: &ClosedCallback<NodeCallback>) {
        let TaskId(id) = closed.entry.id;
        if let Some(record) = self.callbacks.get_mut(&id) {
            record.attempts = closed.entry.attempts;
            record.last_outcome = Some(closed.outcome);
            record.claimed_by = None;
            record.status = match closed.outcome {
                CallbackOutcome::Reached => CallbackStatus::Completed,
                CallbackOutcome::Cancelled => CallbackStatus::Cancelled,
                CallbackOutcome::NoAnswer | CallbackOutcome::Busy => CallbackStatus::Failed,
            };
        }
        if let CallbackReason::OrderReady { order } = closed.entry.payload.reason
            && self.order_ready_callbacks.get(&order) == Some(&id)
        {
            self.order_ready_callbacks.remove(&order);
        }
        self.retain_until(closed.at.0, RecordKind::Callback, id);
    }

    /// The API's view of a refusal: unknown ids are not found, the rest are conflicts.
    fn callback_refusal(&self, callback: CallbackId, error: CallbackError) -> ApplyError {
        match (error, self.callbacks.get(&callback)) {
            (CallbackError::UnknownTask(_), None) => ApplyError::not_found("callback", callback),
            (CallbackError::UnknownTask(_), Some(record)) => {
                ApplyError::Conflict(format!("callback {callback} is {:?}", record.status))
            }
            (error, _) => ApplyError::Conflict(error.to_string()),
        }
    }

    /// A callback by id (open, or closed and not yet past retention).
    pub fn callback(&self, id: CallbackId) -> Option<&Callback> {
        self.callbacks.get(&id)
    }

    /// Callbacks, newest first, at most `limit`.
    pub fn callbacks_recent(&self, limit: usize) -> Vec<&Callback> {
        self.callbacks.values().rev().take(limit).collect()
    }

    /// Pending callbacks due at `now_ms` or earlier, oldest due first, at most `limit`.
    pub fn callbacks_due(&self, now_ms: TimestampMs, limit: usize) -> Vec<&Callback> {
        self.callback_machine
            .due(time(now_ms))
            .filter_map(|entry| self.callbacks.get(&entry.id.0))
            .take(limit)
            .collect()
    }

    /// Callbacks queued by `site` (to re-queue after a restart). O(open callbacks).
    pub fn callbacks_claimed_by(&self, site: &str) -> Vec<&Callback> {
        self.callback_machine
            .entries()
            .filter(|entry| entry.is_claimed() && entry.payload.claimed_by.as_deref() == Some(site))
            .filter_map(|entry| self.callbacks.get(&entry.id.0))
            .collect()
    }

    /// The open abandoned-call callback of a (normalized) number.
    pub fn abandoned_callback_for(&self, caller: &str) -> Option<&Callback> {
        self.callback_machine
            .open_for(&caller.to_string())
            .and_then(|entry| self.callbacks.get(&entry.id.0))
    }
}
