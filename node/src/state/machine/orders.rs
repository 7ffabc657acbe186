//! Orders: creation, changes before assembly, status transitions (and the callbacks they
//! start or stop).

use super::super::command::{ApplyError, Envelope, Outcome, Response};
use super::super::model::{
    Actor, AuditEntry, CallbackReason, Fulfilment, Order, OrderId, OrderItem, OrderStatus,
    PaymentForm, TimestampMs,
};
use super::retention::RecordKind;
use super::{AUDIT_ENTRIES_MAX, ReplicatedState};

/// The fields of a `CreateOrder` command.
pub(super) struct NewOrder<'a> {
    pub caller: &'a str,
    pub items: &'a [OrderItem],
    pub fulfilment: &'a Fulfilment,
    pub payment: PaymentForm,
    pub delivery_note: &'a str,
}

/// The optional fields of an `UpdateOrder` command.
pub(super) struct OrderChanges<'a> {
    pub items: Option<&'a [OrderItem]>,
    pub fulfilment: Option<&'a Fulfilment>,
    pub payment: Option<PaymentForm>,
    pub delivery_note: Option<&'a str>,
}

impl ReplicatedState {
    pub(super) fn create_order(&mut self, envelope: &Envelope, new: NewOrder<'_>) -> Response {
        let total_minor = order_total(new.items)?;
        let id = self.allocate_id();
        let at_ms = envelope.at_ms;
        let order = Order {
            id,
            site: envelope.site.clone(),
            caller: new.caller.to_string(),
            items: new.items.to_vec(),
            fulfilment: new.fulfilment.clone(),
            payment: new.payment,
            delivery_note: new.delivery_note.to_string(),
            status: OrderStatus::Created,
            total_minor,
            created_at_ms: at_ms,
            history: vec![AuditEntry {
                at_ms,
                actor: envelope.actor.clone(),
                change: "created".to_string(),
            }],
        };
        self.orders_by_caller
            .entry(new.caller.to_string())
            .or_default()
            .insert(id);
        self.orders.insert(id, order);
        self.tallies.orders_taken += 1;
        self.tallies.orders_open += 1;
        Ok(Outcome::OrderCreated(id))
    }

    pub(super) fn update_order(
        &mut self,
        at_ms: TimestampMs,
        actor: &Actor,
        order: OrderId,
        changes: OrderChanges<'_>,
    ) -> Response {
        let current = self
            .orders
            .get(&order)
            .ok_or_else(|| ApplyError::not_found("order", order))?;
        if !matches!(
            current.status,
            OrderStatus::Created | OrderStatus::Confirmed
        ) {
            return Err(ApplyError::Conflict(format!(
                "order {order} is {:?}; only created or confirmed orders can be changed",
                current.status
            )));
        }
        let total_minor = changes.items.map(order_total).transpose()?;
        let record = self
            .orders
            .get_mut(&order)
            .ok_or_else(|| ApplyError::not_found("order", order))?;
        let mut changed = Vec::new();
        if let (Some(items), Some(total_minor)) = (changes.items, total_minor) {
            record.items = items.to_vec();
            record.total_minor = total_minor;
            changed.push("items");
        }
        if let Some(fulfilment) = changes.fulfilment {
            record.fulfilment = fulfilment.clone();
            changed.push("fulfilment");
        }
        if let Some(payment) = changes.payment {
            record.payment = payment;
            changed.push("payment");
        }
        if let Some(note) = changes.delivery_note {
            record.delivery_note = note.to_string();
            changed.push("delivery note");
        }
        if !changed.is_empty() {
            push_audit(
                record,
                at_ms,
                actor,
                format!("changed {}", changed.join(", ")),
            );
        }
        Ok(Outcome::Done)
    }

    /// Moves an order to `status`. Repeating the current status is a no-op (a retried request
    /// succeeds and changes nothing); other disallowed transitions are conflicts.
    pub(super) fn change_order_status(
        &mut self,
        at_ms: TimestampMs,
        actor: &Actor,
        order: OrderId,
        status: OrderStatus,
    ) -> Response {
        let record = self
            .orders
            .get_mut(&order)
            .ok_or_else(|| ApplyError::not_found("order", order))?;
        let from = record.status;
        if from == status {
            return Ok(Outcome::Done);
        }
        if !from.allows(status, &record.fulfilment) {
            return Err(ApplyError::Conflict(format!(
                "order {order} cannot go from {from:?} to {status:?}"
            )));
        }
        record.status = status;
        push_audit(
            record,
            at_ms,
            actor,
            format!("status {from:?} -> {status:?}"),
        );
        let caller = record.caller.clone();
        let owner = record.site.clone();
        let pickup = matches!(record.fulfilment, Fulfilment::Pickup { .. });
        if from.is_open() && !status.is_open() {
            self.tallies.orders_open = self.tallies.orders_open.saturating_sub(1);
            self.retain_until(at_ms, RecordKind::Order, order);
        }
        if status != OrderStatus::Ready {
            // The "ready at pickup" reminders stop once the order left the pickup shelf.
            if let Some(reminder) = self.order_ready_callbacks.remove(&order) {
                self.cancel_callback(at_ms, reminder);
            }
        }
        let mut created = Vec::new();
        match status {
            OrderStatus::Ready if pickup => {
                created.extend(self.create_callback(
                    at_ms,
                    &owner,
                    &caller,
                    CallbackReason::OrderReady { order },
                    at_ms,
                ));
            }
            OrderStatus::Delivered => {
                let due = at_ms.saturating_add(self.policy_for(&owner).follow_up_delay_ms);
                created.extend(self.create_callback(
                    at_ms,
                    &owner,
                    &caller,
                    CallbackReason::FollowUp { order },
                    due,
                ));
            }
            _ => {}
        }
        if created.is_empty() {
            Ok(Outcome::Done)
        } else {
            Ok(Outcome::CallbacksCreated(created))
        }
    }
}

pub(super) fn order_total(items: &[OrderItem]) -> Result<u64, ApplyError> {
    items.iter().try_fold(0_u64, |sum, item| {
        item.unit_price_minor
            .checked_mul(u64::from(item.quantity))
            .and_then(|line| sum.checked_add(line))
            .ok_or_else(|| ApplyError::Conflict("order total overflows".to_string()))
    })
}

fn push_audit(order: &mut Order, at_ms: TimestampMs, actor: &Actor, change: String) {
    if order.history.len() >= AUDIT_ENTRIES_MAX {
        // Keep the creation entry; drop the oldest change after it.
        order.history.remove(1);
    }
    order.history.push(AuditEntry {
        at_ms,
        actor: actor.clone(),
        change,
    });
}
