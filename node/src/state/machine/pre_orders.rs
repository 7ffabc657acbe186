//! Pre-orders (the defectura list): customers waiting for an out-of-stock item, called back
//! when it arrives.

use super::super::command::{ApplyError, Envelope, Outcome, Response};
use super::super::model::{CallbackReason, PreOrder, PreOrderId, PreOrderStatus, TimestampMs};
use super::retention::RecordKind;
use super::{CALLBACKS_PER_STOCK_ARRIVAL_MAX, ReplicatedState, remove_from_index};

/// The fields of a `CreatePreOrder` command.
pub(super) struct NewPreOrder<'a> {
    pub caller: &'a str,
    pub sku: &'a str,
    pub name: &'a str,
    pub quantity: u32,
    pub pharmacy: &'a str,
}

impl ReplicatedState {
    pub(super) fn create_pre_order(
        &mut self,
        envelope: &Envelope,
        new: NewPreOrder<'_>,
    ) -> Response {
        let id = self.allocate_id();
        self.pre_orders.insert(
            id,
            PreOrder {
                id,
                site: envelope.site.clone(),
                caller: new.caller.to_string(),
                sku: new.sku.to_string(),
                name: new.name.to_string(),
                quantity: new.quantity,
                pharmacy: new.pharmacy.to_string(),
                status: PreOrderStatus::Waiting,
                created_at_ms: envelope.at_ms,
                callback: None,
            },
        );
        self.pre_orders_waiting_by_sku
            .entry(new.sku.to_string())
            .or_default()
            .insert(id);
        self.tallies.pre_orders_waiting += 1;
        Ok(Outcome::PreOrderCreated(id))
    }

    pub(super) fn cancel_pre_order(
        &mut self,
        at_ms: TimestampMs,
        pre_order: PreOrderId,
    ) -> Response {
        let record = self
            .pre_orders
            .get_mut(&pre_order)
            .ok_or_else(|| ApplyError::not_found("pre-order", pre_order))?;
        if record.status != PreOrderStatus::Waiting {
            return Err(ApplyError::Conflict(format!(
                "pre-order {pre_order} is not waiting"
            )));
        }
        record.status = PreOrderStatus::Cancelled;
        let sku = record.sku.clone();
        remove_from_index(&mut self.pre_orders_waiting_by_sku, &sku, pre_order);
        self.tallies.pre_orders_waiting = self.tallies.pre_orders_waiting.saturating_sub(1);
        self.retain_until(at_ms, RecordKind::PreOrder, pre_order);
        Ok(Outcome::Done)
    }

    /// An item arrived: every waiting pre-order for it (at `pharmacy`, or anywhere) gets a
    /// callback, at most [`CALLBACKS_PER_STOCK_ARRIVAL_MAX`] per command.
    pub(super) fn mark_in_stock(
        &mut self,
        at_ms: TimestampMs,
        sku: &str,
        pharmacy: Option<&str>,
    ) -> Response {
        let waiting: Vec<PreOrderId> = self
            .pre_orders_waiting_by_sku
            .get(sku)
            .map(|set| {
                set.iter()
                    .copied()
                    .filter(|id| {
                        pharmacy.is_none_or(|wanted| {
                            self.pre_orders
                                .get(id)
                                .is_some_and(|pre_order| pre_order.pharmacy == wanted)
                        })
                    })
                    .take(CALLBACKS_PER_STOCK_ARRIVAL_MAX)
                    .collect()
            })
            .unwrap_or_default();
        let mut created = Vec::with_capacity(waiting.len());
        for pre_order_id in waiting {
            let Some(pre_order) = self.pre_orders.get(&pre_order_id) else {
                continue;
            };
            let caller = pre_order.caller.clone();
            let owner = pre_order.site.clone();
            let callback = self.create_callback(
                at_ms,
                &owner,
                &caller,
                CallbackReason::PreOrderArrived {
                    pre_order: pre_order_id,
                },
                at_ms,
            );
            if let Some(pre_order) = self.pre_orders.get_mut(&pre_order_id) {
                pre_order.status = PreOrderStatus::Notified;
                pre_order.callback = callback;
            }
            remove_from_index(&mut self.pre_orders_waiting_by_sku, sku, pre_order_id);
            self.tallies.pre_orders_waiting = self.tallies.pre_orders_waiting.saturating_sub(1);
            self.retain_until(at_ms, RecordKind::PreOrder, pre_order_id);
            created.extend(callback);
        }
        Ok(Outcome::CallbacksCreated(created))
    }
}
