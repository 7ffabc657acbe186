//! Retention: a record that reached its end (a finished order, a notified or cancelled
//! pre-order, a reservation no longer active, a resolved complaint, a closed callback) is
//! dropped [`CLOSED_RECORD_RETENTION_MS`] later, so the replicated state stays bounded by the
//! traffic of that period. The sweep runs with the time of every applied command and is
//! amortised ([`RETENTION_DROPS_PER_APPLY_MAX`] per command).

use serde::{Deserialize, Serialize};

use super::super::model::{
    ComplaintStatus, DAY_MS, PreOrderStatus, ReservationStatus, TimestampMs,
};
use super::{ReplicatedState, remove_from_index};

/// How long a closed record stays readable (and a repeat complaint detectable) after it closed.
pub const CLOSED_RECORD_RETENTION_MS: u64 = 90 * DAY_MS;
/// Closed records dropped per applied command.
pub const RETENTION_DROPS_PER_APPLY_MAX: usize = 1_000;

/// Which map a retained record lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) enum RecordKind {
    Order,
    PreOrder,
    Reservation,
    Complaint,
    Callback,
    /// A closed contact ledger entry (kept [`super::super::ledger::LEDGER_ENDED_RETENTION_MS`]).
    LedgerEntry,
    /// A quality review (kept [`super::super::quality::REVIEW_RETENTION_MS`]). Appended:
    /// snapshots encode variants by position.
    Review,
}

impl ReplicatedState {
    /// Schedules the closed record `id` to be dropped after the retention period (at least
    /// the complaint repeat window, so repeats stay detectable).
    pub(super) fn retain_until(&mut self, closed_at_ms: TimestampMs, kind: RecordKind, id: u64) {
        let window_ms = u64::from(self.complaint_window_days_max()).saturating_mul(DAY_MS);
        let keep_ms = CLOSED_RECORD_RETENTION_MS.max(window_ms);
        self.retention
            .insert((closed_at_ms.saturating_add(keep_ms), kind, id));
    }

    /// Drops the closed records whose retention ended by `at_ms` (still closed: a record is
    /// never dropped while it has work ahead of it).
    pub(super) fn drop_expired_records(&mut self, at_ms: TimestampMs) {
        for _ in 0..RETENTION_DROPS_PER_APPLY_MAX {
            let Some(&(until, kind, id)) = self.retention.first() else {
                return;
            };
            if until > at_ms {
                return;
            }
            self.retention.remove(&(until, kind, id));
            self.drop_record(kind, id);
        }
    }

    fn drop_record(&mut self, kind: RecordKind, id: u64) {
        match kind {
            RecordKind::Order => {
                if self
                    .orders
                    .get(&id)
                    .is_some_and(|order| !order.status.is_open())
                    && let Some(order) = self.orders.remove(&id)
                {
                    remove_from_index(&mut self.orders_by_caller, &order.caller, id);
                }
            }
            RecordKind::PreOrder => {
                if self
                    .pre_orders
                    .get(&id)
                    .is_some_and(|pre_order| pre_order.status != PreOrderStatus::Waiting)
                {
                    self.pre_orders.remove(&id);
                }
            }
            RecordKind::Reservation => {
                if self
                    .reservations
                    .get(&id)
                    .is_some_and(|reservation| reservation.status != ReservationStatus::Active)
                {
                    self.reservations.remove(&id);
                }
            }
            RecordKind::Complaint => {
                if self
                    .complaints
                    .get(&id)
                    .is_some_and(|complaint| complaint.status == ComplaintStatus::Resolved)
                    && let Some(complaint) = self.complaints.remove(&id)
                {
                    remove_from_index(&mut self.complaints_by_caller, &complaint.caller, id);
                }
            }
            RecordKind::LedgerEntry => self.drop_ledger_entry(id),
            RecordKind::Review => self.drop_review(id),
            RecordKind::Callback => {
                if self
                    .callbacks
                    .get(&id)
                    .is_some_and(|callback| !callback.status.is_open())
                {
                    self.callbacks.remove(&id);
                }
            }
        }
    }

    /// Closed records waiting for their retention to end.
    pub fn retained_closed_records(&self) -> usize {
        self.retention.len()
    }
}
