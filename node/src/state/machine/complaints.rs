//! Complaints: a repeat from the same caller within the policy's window is escalated, and the
//! escalation is announced as a [`StateEvent`].

use super::super::command::{ApplyError, Envelope, Outcome, Response};
use super::super::model::{Complaint, ComplaintId, ComplaintStatus, DAY_MS, OrderId, TimestampMs};
use super::retention::RecordKind;
use super::{ReplicatedState, StateEvent};

impl ReplicatedState {
    pub(super) fn file_complaint(
        &mut self,
        envelope: &Envelope,
        caller: &str,
        order: Option<OrderId>,
        text: &str,
        events: &mut Vec<StateEvent>,
    ) -> Response {
        if let Some(order) = order
            && !self.orders.contains_key(&order)
        {
            return Err(ApplyError::not_found("order", order));
        }
        let at_ms = envelope.at_ms;
        let window_ms = u64::from(self.policy_for(&envelope.site).complaint_repeat_window_days)
            .saturating_mul(DAY_MS);
        let since = at_ms.saturating_sub(window_ms);
        let repeat_of: Vec<ComplaintId> = self
            .complaints_by_caller
            .get(caller)
            .map(|ids| {
                ids.iter()
                    .copied()
                    .filter(|id| {
                        self.complaints
                            .get(id)
                            .is_some_and(|complaint| complaint.created_at_ms >= since)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let escalated = !repeat_of.is_empty();
        let id = self.allocate_id();
        if escalated {
            events.push(StateEvent::ComplaintEscalated {
                complaint: id,
                site: envelope.site.clone(),
                caller: caller.to_string(),
                repeat_of: repeat_of.clone(),
            });
            self.tallies.complaints_escalated += 1;
        }
        self.complaints.insert(
            id,
            Complaint {
                id,
                site: envelope.site.clone(),
                caller: caller.to_string(),
                order,
                text: text.to_string(),
                status: if escalated {
                    ComplaintStatus::Escalated
                } else {
                    ComplaintStatus::Open
                },
                repeat_of,
                created_at_ms: at_ms,
                resolution: String::new(),
            },
        );
        self.complaints_by_caller
            .entry(caller.to_string())
            .or_default()
            .insert(id);
        self.tallies.complaints_filed += 1;
        Ok(Outcome::ComplaintFiled {
            complaint: id,
            escalated,
        })
    }

    pub(super) fn resolve_complaint(
        &mut self,
        at_ms: TimestampMs,
        complaint: ComplaintId,
        resolution: &str,
    ) -> Response {
        let record = self
            .complaints
            .get_mut(&complaint)
            .ok_or_else(|| ApplyError::not_found("complaint", complaint))?;
        if record.status == ComplaintStatus::Resolved {
            return Err(ApplyError::Conflict(format!(
                "complaint {complaint} is already resolved"
            )));
        }
        if record.status == ComplaintStatus::Escalated {
            self.tallies.complaints_escalated = self.tallies.complaints_escalated.saturating_sub(1);
        }
        record.status = ComplaintStatus::Resolved;
        record.resolution = resolution.to_string();
        self.retain_until(at_ms, RecordKind::Complaint, complaint);
        Ok(Outcome::Done)
    }
}
