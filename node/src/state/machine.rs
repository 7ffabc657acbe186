//! The deterministic state machine: applies committed commands to the replicated records.
//!
//! Rules that hold for every command:
//! - time comes only from the envelope (`at_ms`), never from a clock;
//! - a command is checked completely before anything is changed, so a refused command leaves
//!   the state exactly as it was (nothing half-applied);
//! - collections are `BTreeMap`s so iteration order, snapshots and responses are the same on
//!   every site.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::command::{ApplyError, Command, Envelope, Outcome, Response, normalize_phone};
use super::model::{
    Actor, AuditEntry, Callback, CallbackId, CallbackOutcome, CallbackReason, CallbackStatus,
    Complaint, ComplaintId, ComplaintStatus, DAY_MS, Fulfilment, Order, OrderId, OrderItem,
    OrderStatus, PreOrder, PreOrderId, PreOrderStatus, Reservation, ReservationId,
    ReservationStatus, SiteSummary, StatePolicy, TimestampMs,
};

/// Audit entries kept per order; older ones are dropped first (transitions are few, updates
/// are what could grow it).
pub const AUDIT_ENTRIES_MAX: usize = 256;
/// Callbacks created per `MarkInStock` command; further waiting customers are notified by the
/// next `MarkInStock` for the same item.
pub const CALLBACKS_PER_STOCK_ARRIVAL_MAX: usize = 1_000;
/// Reservations expired per applied command (the sweep is amortised over commands).
pub const RESERVATION_EXPIRIES_PER_APPLY_MAX: usize = 1_000;

/// Everything replicated through Raft.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicatedState {
    /// Raft index of the last applied entry.
    pub applied_index: u64,
    /// Replicated policy.
    pub policy: StatePolicy,
    orders: BTreeMap<OrderId, Order>,
    pre_orders: BTreeMap<PreOrderId, PreOrder>,
    reservations: BTreeMap<ReservationId, Reservation>,
    complaints: BTreeMap<ComplaintId, Complaint>,
    callbacks: BTreeMap<CallbackId, Callback>,
    site_summaries: BTreeMap<String, SiteSummary>,
    next_id: u64,
    orders_by_caller: BTreeMap<String, BTreeSet<OrderId>>,
    complaints_by_caller: BTreeMap<String, BTreeSet<ComplaintId>>,
    pre_orders_waiting_by_sku: BTreeMap<String, BTreeSet<PreOrderId>>,
    reservation_expiries: BTreeSet<(TimestampMs, ReservationId)>,
    /// Open callbacks ordered by due time, for the workers that dial them.
    callbacks_open_by_due: BTreeSet<(TimestampMs, CallbackId)>,
}

impl ReplicatedState {
    /// An empty state with the default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one committed envelope at Raft index `index`.
    pub fn apply(&mut self, index: u64, envelope: &Envelope) -> Response {
        self.applied_index = index;
        self.expire_reservations(envelope.at_ms);
        if let Err(invalid) = envelope.command.validate() {
            return Err(ApplyError::Invalid(invalid));
        }
        self.apply_command(envelope)
    }

    /// Records that an entry at `index` was applied without a command (e.g. an undecodable or
    /// empty entry), so the applied index stays exact.
    pub fn skip(&mut self, index: u64) {
        self.applied_index = index;
    }

    fn allocate_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn apply_command(&mut self, envelope: &Envelope) -> Response {
        let at_ms = envelope.at_ms;
        let actor = &envelope.actor;
        let site = &envelope.site;
        match &envelope.command {
            Command::CreateOrder {
                caller,
                items,
                fulfilment,
                payment,
                delivery_note,
            } => {
                let total_minor = order_total(items)?;
                let id = self.allocate_id();
                let order = Order {
                    id,
                    site: site.clone(),
                    caller: caller.clone(),
                    items: items.clone(),
                    fulfilment: fulfilment.clone(),
                    payment: *payment,
                    delivery_note: delivery_note.clone(),
                    status: OrderStatus::Created,
                    total_minor,
                    created_at_ms: at_ms,
                    history: vec![AuditEntry {
                        at_ms,
                        actor: actor.clone(),
                        change: "created".to_string(),
                    }],
                };
                self.orders_by_caller
                    .entry(caller.clone())
                    .or_default()
                    .insert(id);
                self.orders.insert(id, order);
                Ok(Outcome::OrderCreated(id))
            }
            Command::UpdateOrder {
                order,
                items,
                fulfilment,
                payment,
                delivery_note,
            } => {
                let current = self
                    .orders
                    .get(order)
                    .ok_or_else(|| ApplyError::not_found("order", *order))?;
                if !matches!(
                    current.status,
                    OrderStatus::Created | OrderStatus::Confirmed
                ) {
                    return Err(ApplyError::Conflict(format!(
                        "order {order} is {:?}; only created or confirmed orders can be changed",
                        current.status
                    )));
                }
                let total_minor = match items {
                    Some(items) => Some(order_total(items)?),
                    None => None,
                };
                let mut changes = Vec::new();
                let record = self
                    .orders
                    .get_mut(order)
                    .ok_or_else(|| ApplyError::not_found("order", *order))?;
                if let (Some(items), Some(total_minor)) = (items, total_minor) {
                    record.items = items.clone();
                    record.total_minor = total_minor;
                    changes.push("items");
                }
                if let Some(fulfilment) = fulfilment {
                    record.fulfilment = fulfilment.clone();
                    changes.push("fulfilment");
                }
                if let Some(payment) = payment {
                    record.payment = *payment;
                    changes.push("payment");
                }
                if let Some(note) = delivery_note {
                    record.delivery_note = note.clone();
                    changes.push("delivery note");
                }
                if !changes.is_empty() {
                    push_audit(
                        record,
                        at_ms,
                        actor,
                        format!("changed {}", changes.join(", ")),
                    );
                }
                Ok(Outcome::Done)
            }
            Command::ChangeOrderStatus { order, status } => {
                self.change_order_status(at_ms, actor, *order, *status)
            }
            Command::CreatePreOrder {
                caller,
                sku,
                name,
                quantity,
                pharmacy,
            } => {
                let id = self.allocate_id();
                self.pre_orders.insert(
                    id,
                    PreOrder {
                        id,
                        site: site.clone(),
                        caller: caller.clone(),
                        sku: sku.clone(),
                        name: name.clone(),
                        quantity: *quantity,
                        pharmacy: pharmacy.clone(),
                        status: PreOrderStatus::Waiting,
                        created_at_ms: at_ms,
                        callback: None,
                    },
                );
                self.pre_orders_waiting_by_sku
                    .entry(sku.clone())
                    .or_default()
                    .insert(id);
                Ok(Outcome::PreOrderCreated(id))
            }
            Command::CancelPreOrder { pre_order } => {
                let record = self
                    .pre_orders
                    .get_mut(pre_order)
                    .ok_or_else(|| ApplyError::not_found("pre-order", *pre_order))?;
                if record.status != PreOrderStatus::Waiting {
                    return Err(ApplyError::Conflict(format!(
                        "pre-order {pre_order} is not waiting"
                    )));
                }
                record.status = PreOrderStatus::Cancelled;
                let sku = record.sku.clone();
                remove_from_index(&mut self.pre_orders_waiting_by_sku, &sku, *pre_order);
                Ok(Outcome::Done)
            }
            Command::MarkInStock { sku, pharmacy } => {
                let waiting: Vec<PreOrderId> = self
                    .pre_orders_waiting_by_sku
                    .get(sku)
                    .map(|set| {
                        set.iter()
                            .copied()
                            .filter(|id| {
                                pharmacy.as_ref().is_none_or(|wanted| {
                                    self.pre_orders
                                        .get(id)
                                        .is_some_and(|pre_order| &pre_order.pharmacy == wanted)
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
                        pre_order.callback = Some(callback);
                    }
                    remove_from_index(&mut self.pre_orders_waiting_by_sku, sku, pre_order_id);
                    created.push(callback);
                }
                Ok(Outcome::CallbacksCreated(created))
            }
            Command::CreateReservation {
                caller,
                pharmacy,
                items,
                expires_at_ms,
            } => {
                if *expires_at_ms <= at_ms {
                    return Err(ApplyError::Conflict(
                        "expires_at_ms must be in the future".to_string(),
                    ));
                }
                let id = self.allocate_id();
                self.reservations.insert(
                    id,
                    Reservation {
                        id,
                        site: site.clone(),
                        caller: caller.clone(),
                        pharmacy: pharmacy.clone(),
                        items: items.clone(),
                        expires_at_ms: *expires_at_ms,
                        status: ReservationStatus::Active,
                        created_at_ms: at_ms,
                    },
                );
                self.reservation_expiries.insert((*expires_at_ms, id));
                Ok(Outcome::ReservationCreated(id))
            }
            Command::CollectReservation { reservation }
            | Command::CancelReservation { reservation } => {
                let record = self
                    .reservations
                    .get_mut(reservation)
                    .ok_or_else(|| ApplyError::not_found("reservation", *reservation))?;
                if record.status != ReservationStatus::Active {
                    return Err(ApplyError::Conflict(format!(
                        "reservation {reservation} is {:?}",
                        record.status
                    )));
                }
                record.status = if matches!(envelope.command, Command::CollectReservation { .. }) {
                    ReservationStatus::Collected
                } else {
                    ReservationStatus::Cancelled
                };
                let key = (record.expires_at_ms, *reservation);
                self.reservation_expiries.remove(&key);
                Ok(Outcome::Done)
            }
            Command::FileComplaint {
                caller,
                order,
                text,
            } => {
                if let Some(order) = order
                    && !self.orders.contains_key(order)
                {
                    return Err(ApplyError::not_found("order", *order));
                }
                let window_ms =
                    u64::from(self.policy.complaint_repeat_window_days).saturating_mul(DAY_MS);
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
                self.complaints.insert(
                    id,
                    Complaint {
                        id,
                        site: site.clone(),
                        caller: caller.clone(),
                        order: *order,
                        text: text.clone(),
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
                    .entry(caller.clone())
                    .or_default()
                    .insert(id);
                Ok(Outcome::ComplaintFiled {
                    complaint: id,
                    escalated,
                })
            }
            Command::ResolveComplaint {
                complaint,
                resolution,
            } => {
                let record = self
                    .complaints
                    .get_mut(complaint)
                    .ok_or_else(|| ApplyError::not_found("complaint", *complaint))?;
                if record.status == ComplaintStatus::Resolved {
                    return Err(ApplyError::Conflict(format!(
                        "complaint {complaint} is already resolved"
                    )));
                }
                record.status = ComplaintStatus::Resolved;
                record.resolution = resolution.clone();
                Ok(Outcome::Done)
            }
            Command::CreateAbandonedCallback {
                caller,
                skill,
                ordering_time_ms,
            } => {
                let already_open = self
                    .callbacks_open_by_due
                    .iter()
                    .filter_map(|(_, id)| self.callbacks.get(id))
                    .any(|callback| {
                        &callback.caller == caller
                            && matches!(callback.reason, CallbackReason::Abandoned { .. })
                    });
                if already_open {
                    return Ok(Outcome::CallbacksCreated(Vec::new()));
                }
                let due_at_ms = at_ms.saturating_add(self.policy.abandoned_callback_delay_ms);
                let id = self.create_callback(
                    at_ms,
                    site,
                    caller,
                    CallbackReason::Abandoned {
                        skill: skill.clone(),
                        ordering_time_ms: *ordering_time_ms,
                    },
                    due_at_ms,
                );
                Ok(Outcome::CallbacksCreated(vec![id]))
            }
            Command::ClaimCallback { callback } => {
                let record = self
                    .callbacks
                    .get_mut(callback)
                    .ok_or_else(|| ApplyError::not_found("callback", *callback))?;
                if record.status != CallbackStatus::Pending {
                    return Err(ApplyError::Conflict(format!(
                        "callback {callback} is {:?}, not pending",
                        record.status
                    )));
                }
                if record.due_at_ms > at_ms {
                    return Err(ApplyError::Conflict(format!(
                        "callback {callback} is not due yet"
                    )));
                }
                record.status = CallbackStatus::Queued;
                record.claimed_by = Some(site.clone());
                Ok(Outcome::Done)
            }
            Command::ReleaseCallback { callback } => {
                let record = self
                    .callbacks
                    .get_mut(callback)
                    .ok_or_else(|| ApplyError::not_found("callback", *callback))?;
                if record.status != CallbackStatus::Queued {
                    return Err(ApplyError::Conflict(format!(
                        "callback {callback} is not queued"
                    )));
                }
                record.status = CallbackStatus::Pending;
                record.claimed_by = None;
                Ok(Outcome::Done)
            }
            Command::RecordCallbackAttempt { callback, outcome } => {
                self.record_attempt(at_ms, *callback, *outcome)
            }
            Command::PublishSiteSummary(summary) => {
                self.site_summaries
                    .insert(summary.site.clone(), summary.clone());
                Ok(Outcome::Done)
            }
            Command::SetPolicy(policy) => {
                self.policy = policy.clone();
                Ok(Outcome::Done)
            }
        }
    }

    fn change_order_status(
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
        let mut created = Vec::new();
        match status {
            OrderStatus::Ready if pickup => {
                created.push(self.create_callback(
                    at_ms,
                    &owner,
                    &caller,
                    CallbackReason::OrderReady { order },
                    at_ms,
                ));
            }
            OrderStatus::Delivered => {
                let due = at_ms.saturating_add(self.policy.follow_up_delay_ms);
                created.push(self.create_callback(
                    at_ms,
                    &owner,
                    &caller,
                    CallbackReason::FollowUp { order },
                    due,
                ));
            }
            _ => {}
        }
        if status != OrderStatus::Ready {
            // The "ready at pickup" reminders stop once the order left the pickup shelf.
            let stale: Vec<CallbackId> = self
                .callbacks
                .values()
                .filter(|callback| {
                    callback.status.is_open()
                        && matches!(callback.reason, CallbackReason::OrderReady { order: waiting } if waiting == order)
                })
                .map(|callback| callback.id)
                .collect();
            for id in stale {
                self.close_callback(id, CallbackStatus::Cancelled);
            }
        }
        if created.is_empty() {
            Ok(Outcome::Done)
        } else {
            Ok(Outcome::CallbacksCreated(created))
        }
    }

    fn record_attempt(
        &mut self,
        at_ms: TimestampMs,
        callback: CallbackId,
        outcome: CallbackOutcome,
    ) -> Response {
        let record = self
            .callbacks
            .get(&callback)
            .ok_or_else(|| ApplyError::not_found("callback", callback))?;
        if !record.status.is_open() {
            return Err(ApplyError::Conflict(format!(
                "callback {callback} is {:?}",
                record.status
            )));
        }
        let attempts = record.attempts.saturating_add(1);
        let next_status = match outcome {
            CallbackOutcome::Reached => CallbackStatus::Completed,
            CallbackOutcome::Cancelled => CallbackStatus::Cancelled,
            CallbackOutcome::NoAnswer | CallbackOutcome::Busy
                if attempts >= record.attempts_max =>
            {
                CallbackStatus::Failed
            }
            CallbackOutcome::NoAnswer | CallbackOutcome::Busy => CallbackStatus::Pending,
        };
        let retry_due = at_ms.saturating_add(record.retry_interval_ms);
        let reason = record.reason.clone();
        let caller = record.caller.clone();
        let owner = record.site.clone();
        let old_key = (record.due_at_ms, callback);
        self.callbacks_open_by_due.remove(&old_key);
        if let Some(record) = self.callbacks.get_mut(&callback) {
            record.attempts = attempts;
            record.last_outcome = Some(outcome);
            record.status = next_status;
            record.claimed_by = None;
            if next_status == CallbackStatus::Pending {
                record.due_at_ms = retry_due;
            }
        }
        if next_status == CallbackStatus::Pending {
            self.callbacks_open_by_due.insert((retry_due, callback));
            return Ok(Outcome::Done);
        }
        // An order waiting at the pickup point is announced again the next day, whatever
        // happened to today's call, until it is collected or cancelled.
        if let CallbackReason::OrderReady { order } = reason
            && outcome != CallbackOutcome::Cancelled
            && self
                .orders
                .get(&order)
                .is_some_and(|record| record.status == OrderStatus::Ready)
        {
            let due = at_ms.saturating_add(self.policy.order_ready_repeat_interval_ms);
            let next = self.create_callback(
                at_ms,
                &owner,
                &caller,
                CallbackReason::OrderReady { order },
                due,
            );
            return Ok(Outcome::CallbacksCreated(vec![next]));
        }
        Ok(Outcome::Done)
    }

    fn create_callback(
        &mut self,
        at_ms: TimestampMs,
        site: &str,
        caller: &str,
        reason: CallbackReason,
        due_at_ms: TimestampMs,
    ) -> CallbackId {
        let id = self.allocate_id();
        self.callbacks.insert(
            id,
            Callback {
                id,
                site: site.to_string(),
                caller: caller.to_string(),
                reason,
                due_at_ms,
                attempts: 0,
                attempts_max: self.policy.callback_attempts_max,
                retry_interval_ms: self.policy.callback_retry_interval_ms,
                status: CallbackStatus::Pending,
                claimed_by: None,
                last_outcome: None,
                created_at_ms: at_ms,
            },
        );
        self.callbacks_open_by_due.insert((due_at_ms, id));
        id
    }

    fn close_callback(&mut self, id: CallbackId, status: CallbackStatus) {
        if let Some(record) = self.callbacks.get_mut(&id) {
            self.callbacks_open_by_due.remove(&(record.due_at_ms, id));
            record.status = status;
            record.claimed_by = None;
        }
    }

    fn expire_reservations(&mut self, at_ms: TimestampMs) {
        for _ in 0..RESERVATION_EXPIRIES_PER_APPLY_MAX {
            let Some(&(expires_at_ms, id)) = self.reservation_expiries.first() else {
                return;
            };
            if expires_at_ms > at_ms {
                return;
            }
            self.reservation_expiries.remove(&(expires_at_ms, id));
            if let Some(reservation) = self.reservations.get_mut(&id)
                && reservation.status == ReservationStatus::Active
            {
                reservation.status = ReservationStatus::Expired;
            }
        }
    }

    /// An order by id.
    pub fn order(&self, id: OrderId) -> Option<&Order> {
        self.orders.get(&id)
    }

    /// Orders, newest first, at most `limit`.
    pub fn orders_recent(&self, limit: usize) -> Vec<&Order> {
        self.orders.values().rev().take(limit).collect()
    }

    /// Orders of a caller (any number format), newest first; `open_only` keeps unfinished ones.
    pub fn orders_by_caller(&self, caller: &str, open_only: bool) -> Vec<&Order> {
        let Ok(normalized) = normalize_phone(caller) else {
            return Vec::new();
        };
        self.orders_by_caller
            .get(&normalized)
            .map(|ids| {
                ids.iter()
                    .rev()
                    .filter_map(|id| self.orders.get(id))
                    .filter(|order| !open_only || order.status.is_open())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A pre-order by id.
    pub fn pre_order(&self, id: PreOrderId) -> Option<&PreOrder> {
        self.pre_orders.get(&id)
    }

    /// Pre-orders, newest first, at most `limit`.
    pub fn pre_orders_recent(&self, limit: usize) -> Vec<&PreOrder> {
        self.pre_orders.values().rev().take(limit).collect()
    }

    /// A reservation by id.
    pub fn reservation(&self, id: ReservationId) -> Option<&Reservation> {
        self.reservations.get(&id)
    }

    /// Reservations, newest first, at most `limit`.
    pub fn reservations_recent(&self, limit: usize) -> Vec<&Reservation> {
        self.reservations.values().rev().take(limit).collect()
    }

    /// A complaint by id.
    pub fn complaint(&self, id: ComplaintId) -> Option<&Complaint> {
        self.complaints.get(&id)
    }

    /// Complaints, newest first, at most `limit`.
    pub fn complaints_recent(&self, limit: usize) -> Vec<&Complaint> {
        self.complaints.values().rev().take(limit).collect()
    }

    /// A callback by id.
    pub fn callback(&self, id: CallbackId) -> Option<&Callback> {
        self.callbacks.get(&id)
    }

    /// Callbacks, newest first, at most `limit`.
    pub fn callbacks_recent(&self, limit: usize) -> Vec<&Callback> {
        self.callbacks.values().rev().take(limit).collect()
    }

    /// Pending callbacks due at `now_ms` or earlier, oldest due first, at most `limit`.
    pub fn callbacks_due(&self, now_ms: TimestampMs, limit: usize) -> Vec<&Callback> {
        self.callbacks_open_by_due
            .iter()
            .take_while(|(due, _)| *due <= now_ms)
            .filter_map(|(_, id)| self.callbacks.get(id))
            .filter(|callback| callback.status == CallbackStatus::Pending)
            .take(limit)
            .collect()
    }

    /// Callbacks queued by `site` (to re-queue after a restart).
    pub fn callbacks_claimed_by(&self, site: &str) -> Vec<&Callback> {
        self.callbacks
            .values()
            .filter(|callback| {
                callback.status == CallbackStatus::Queued
                    && callback.claimed_by.as_deref() == Some(site)
            })
            .collect()
    }

    /// Published site summaries.
    pub fn site_summaries(&self) -> impl Iterator<Item = &SiteSummary> {
        self.site_summaries.values()
    }

    /// Counts of records, for metrics.
    pub fn counts(&self) -> StateCounts {
        StateCounts {
            orders: self.orders.len(),
            orders_open: self
                .orders
                .values()
                .filter(|order| order.status.is_open())
                .count(),
            pre_orders_waiting: self
                .pre_orders_waiting_by_sku
                .values()
                .map(BTreeSet::len)
                .sum(),
            reservations_active: self.reservation_expiries.len(),
            complaints: self.complaints.len(),
            complaints_escalated: self
                .complaints
                .values()
                .filter(|complaint| complaint.status == ComplaintStatus::Escalated)
                .count(),
            callbacks_open: self.callbacks_open_by_due.len(),
        }
    }
}

/// Record counts of the replicated state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    /// Orders ever taken.
    pub orders: usize,
    /// Orders not yet finished.
    pub orders_open: usize,
    /// Pre-orders waiting for stock.
    pub pre_orders_waiting: usize,
    /// Active reservations.
    pub reservations_active: usize,
    /// Complaints ever filed.
    pub complaints: usize,
    /// Complaints currently escalated.
    pub complaints_escalated: usize,
    /// Callbacks pending or queued.
    pub callbacks_open: usize,
}

fn order_total(items: &[OrderItem]) -> Result<u64, ApplyError> {
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

fn remove_from_index(index: &mut BTreeMap<String, BTreeSet<u64>>, key: &str, id: u64) {
    if let Some(set) = index.get_mut(key) {
        set.remove(&id);
        if set.is_empty() {
            index.remove(key);
        }
    }
}
