//! The records kept in the replicated state: orders, pre-orders, reservations, complaints,
//! callbacks, site summaries and the policy that shapes them.
//!
//! Every type here is serialized into Raft snapshots with bincode, so enums stay externally
//! tagged and no field uses `skip_serializing_if` (bincode cannot skip fields).

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, as stamped by the proposer. Never read from a clock while
/// applying: the same log must produce the same state on every site.
pub type TimestampMs = u64;

/// Milliseconds in a day; daily callbacks and day-based windows count in these.
pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Identifier of an order, assigned in log order when the order is created.
pub type OrderId = u64;
/// Identifier of a pre-order (an entry on the defectura list).
pub type PreOrderId = u64;
/// Identifier of a reservation.
pub type ReservationId = u64;
/// Identifier of a complaint.
pub type ComplaintId = u64;
/// Identifier of a callback task.
pub type CallbackId = u64;

/// Who changed something: the authenticated principal and its role, stamped by the proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Principal name (agent login, gateway name, "system").
    pub name: String,
    /// Role the principal acted in.
    pub role: Role,
}

impl Actor {
    /// The node itself, for changes made by rule (expiry, recurring callbacks).
    pub fn system() -> Self {
        Self {
            name: "system".to_string(),
            role: Role::Admin,
        }
    }
}

/// Roles a bearer token maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Telephony or chat gateway: reports contacts, dials callbacks.
    Gateway,
    /// Contact-center agent (operator or pharma consultant).
    Agent,
    /// Supervisor: real-time views, reports, monitoring.
    Supervisor,
    /// Administrator: everything.
    Admin,
}

/// One line of an order, a pre-order or a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderItem {
    /// Stock keeping unit of the drug or product.
    pub sku: String,
    /// Human-readable name.
    pub name: String,
    /// How many units.
    pub quantity: u32,
    /// Price of one unit in minor currency units (kopecks).
    pub unit_price_minor: u64,
}

/// How the customer gets the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Fulfilment {
    /// Collected by the customer at a pharmacy.
    Pickup {
        /// Pharmacy identifier.
        pharmacy: String,
    },
    /// Delivered to an address.
    Delivery {
        /// Delivery address.
        address: String,
    },
}

/// How the customer pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentForm {
    /// Cash on collection or delivery.
    Cash,
    /// Card on collection or delivery.
    Card,
    /// Paid online in advance.
    Online,
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Taken by an agent or a bot.
    Created,
    /// Confirmed with the customer and the pharmacy.
    Confirmed,
    /// Assembled at the pharmacy.
    Assembled,
    /// Waiting at the pickup point, or handed to the courier.
    Ready,
    /// Collected by the customer (pickup only).
    Collected,
    /// Delivered to the customer (delivery only).
    Delivered,
    /// Cancelled before completion.
    Cancelled,
    /// Returned after collection or delivery.
    Returned,
}

impl OrderStatus {
    /// Whether the order still needs work (the self-service bot reports these).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            OrderStatus::Created
                | OrderStatus::Confirmed
                | OrderStatus::Assembled
                | OrderStatus::Ready
        )
    }

    /// Whether `self → to` is an allowed transition for an order fulfilled as `fulfilment`.
    pub fn allows(self, to: OrderStatus, fulfilment: &Fulfilment) -> bool {
        let pickup = matches!(fulfilment, Fulfilment::Pickup { .. });
        match (self, to) {
            (OrderStatus::Created, OrderStatus::Confirmed) => true,
            (OrderStatus::Confirmed, OrderStatus::Assembled) => true,
            (OrderStatus::Assembled, OrderStatus::Ready) => true,
            (OrderStatus::Ready, OrderStatus::Collected) => pickup,
            (OrderStatus::Ready, OrderStatus::Delivered) => !pickup,
            (
                OrderStatus::Created
                | OrderStatus::Confirmed
                | OrderStatus::Assembled
                | OrderStatus::Ready,
                OrderStatus::Cancelled,
            ) => true,
            (OrderStatus::Collected | OrderStatus::Delivered, OrderStatus::Returned) => true,
            _ => false,
        }
    }
}

/// One entry of an order's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When, as stamped by the proposer.
    pub at_ms: TimestampMs,
    /// Who.
    pub actor: Actor,
    /// What changed, in words ("status created → confirmed", "items replaced").
    pub change: String,
}

/// A phone order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Order number.
    pub id: OrderId,
    /// Site that took the order.
    pub site: String,
    /// Customer's phone number (normalized).
    pub caller: String,
    /// Lines of the order.
    pub items: Vec<OrderItem>,
    /// Pickup or delivery.
    pub fulfilment: Fulfilment,
    /// Payment form.
    pub payment: PaymentForm,
    /// Free-text note for the courier or the pharmacy.
    pub delivery_note: String,
    /// Current status.
    pub status: OrderStatus,
    /// Sum of quantity × unit price, in minor units.
    pub total_minor: u64,
    /// When it was created.
    pub created_at_ms: TimestampMs,
    /// Who changed what and when, oldest first (bounded by `AUDIT_ENTRIES_MAX`).
    pub history: Vec<AuditEntry>,
}

/// Status of a pre-order on the defectura list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreOrderStatus {
    /// Waiting for the item to arrive.
    Waiting,
    /// The item arrived; a callback was created.
    Notified,
    /// Cancelled by the customer.
    Cancelled,
}

/// A customer waiting for an out-of-stock item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreOrder {
    /// Identifier.
    pub id: PreOrderId,
    /// Site that took it.
    pub site: String,
    /// Customer's phone number.
    pub caller: String,
    /// The missing item.
    pub sku: String,
    /// Human-readable name of the item.
    pub name: String,
    /// How many units are wanted.
    pub quantity: u32,
    /// Pharmacy where the customer wants it.
    pub pharmacy: String,
    /// Status.
    pub status: PreOrderStatus,
    /// When it was taken.
    pub created_at_ms: TimestampMs,
    /// The callback created when the item arrived.
    pub callback: Option<CallbackId>,
}

/// Status of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Items held at the pharmacy.
    Active,
    /// Collected by the customer.
    Collected,
    /// Cancelled.
    Cancelled,
    /// Not collected before the expiry.
    Expired,
}

/// Items held at a pharmacy for a customer until an expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Identifier.
    pub id: ReservationId,
    /// Site that took it.
    pub site: String,
    /// Customer's phone number.
    pub caller: String,
    /// Pharmacy holding the items.
    pub pharmacy: String,
    /// Held items.
    pub items: Vec<OrderItem>,
    /// When the hold ends.
    pub expires_at_ms: TimestampMs,
    /// Status.
    pub status: ReservationStatus,
    /// When it was made.
    pub created_at_ms: TimestampMs,
}

/// Status of a complaint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComplaintStatus {
    /// Filed, first from this caller within the repeat window.
    Open,
    /// A repeat complaint: escalated to the complaints line supervisor.
    Escalated,
    /// Resolved.
    Resolved,
}

/// A customer complaint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Complaint {
    /// Identifier.
    pub id: ComplaintId,
    /// Site that took it.
    pub site: String,
    /// Customer's phone number.
    pub caller: String,
    /// The order it is about, if any.
    pub order: Option<OrderId>,
    /// What the customer said.
    pub text: String,
    /// Status.
    pub status: ComplaintStatus,
    /// Earlier complaints from the same caller inside the repeat window.
    pub repeat_of: Vec<ComplaintId>,
    /// When it was filed.
    pub created_at_ms: TimestampMs,
    /// How it was resolved.
    pub resolution: String,
}

/// Why a callback exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackReason {
    /// The caller hung up while waiting; the callback keeps the caller's place in the queue.
    Abandoned {
        /// Skill (queue) the caller waited in.
        skill: String,
        /// The caller's original queue ordering time (arrival), so the callback is queued at
        /// the caller's old place.
        ordering_time_ms: TimestampMs,
    },
    /// The order waits at the pickup point; repeated daily while it waits.
    OrderReady {
        /// The order.
        order: OrderId,
    },
    /// A pre-ordered item arrived.
    PreOrderArrived {
        /// The pre-order.
        pre_order: PreOrderId,
    },
    /// Follow-up after a delivery.
    FollowUp {
        /// The order.
        order: OrderId,
    },
}

impl CallbackReason {
    /// Short name for logs, reports and the API.
    pub fn kind(&self) -> &'static str {
        match self {
            CallbackReason::Abandoned { .. } => "abandoned",
            CallbackReason::OrderReady { .. } => "order_ready",
            CallbackReason::PreOrderArrived { .. } => "pre_order_arrived",
            CallbackReason::FollowUp { .. } => "follow_up",
        }
    }
}

/// Result of one callback attempt, reported by the agent or gateway that dialed: the
/// domain's type, so the node and the simulator speak of outcomes the same way (the variants
/// and their order, which the log's encoding depends on, are those of the first release).
pub use callgrid_domain::CallbackOutcome;

/// Status of a callback task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackStatus {
    /// Waiting for its due time.
    Pending,
    /// Claimed by a site and queued there as an outbound contact.
    Queued,
    /// Done: the customer was reached.
    Completed,
    /// Attempts exhausted without reaching the customer.
    Failed,
    /// No longer needed.
    Cancelled,
}

impl CallbackStatus {
    /// Whether the callback still has work ahead of it.
    pub fn is_open(self) -> bool {
        matches!(self, CallbackStatus::Pending | CallbackStatus::Queued)
    }
}

/// A task to call a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    /// Identifier.
    pub id: CallbackId,
    /// Site that created it (the default owner).
    pub site: String,
    /// Number to dial.
    pub caller: String,
    /// Why.
    pub reason: CallbackReason,
    /// When it should be dialed next.
    pub due_at_ms: TimestampMs,
    /// Attempts made.
    pub attempts: u32,
    /// Attempts allowed before giving up.
    pub attempts_max: u32,
    /// Delay between failed attempts.
    pub retry_interval_ms: u64,
    /// Status.
    pub status: CallbackStatus,
    /// Site that queued it, while queued.
    pub claimed_by: Option<String>,
    /// Outcome of the last attempt.
    pub last_outcome: Option<CallbackOutcome>,
    /// When it was created.
    pub created_at_ms: TimestampMs,
}

/// Rules the state machine applies when it creates callbacks and detects repeat complaints.
/// Replicated (changed by `Command::SetPolicy`) so every site applies the same rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatePolicy {
    /// Delay between an abandoned call and its callback.
    pub abandoned_callback_delay_ms: u64,
    /// Attempts allowed per callback.
    pub callback_attempts_max: u32,
    /// Delay between failed attempts.
    pub callback_retry_interval_ms: u64,
    /// Interval of the repeated "your order is ready" callback while the order waits.
    pub order_ready_repeat_interval_ms: u64,
    /// Delay between delivery and the follow-up call.
    pub follow_up_delay_ms: u64,
    /// A complaint from a caller who complained within this many days is escalated.
    pub complaint_repeat_window_days: u32,
}

impl Default for StatePolicy {
    fn default() -> Self {
        Self {
            abandoned_callback_delay_ms: 60_000,
            callback_attempts_max: 3,
            callback_retry_interval_ms: 15 * 60_000,
            order_ready_repeat_interval_ms: DAY_MS,
            follow_up_delay_ms: DAY_MS,
            complaint_repeat_window_days: 30,
        }
    }
}

/// Per-skill availability a site publishes so other sites can decide overflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillSummary {
    /// Skill (queue) name.
    pub skill: String,
    /// Agents available for this skill now.
    pub agents_idle: u32,
    /// Contacts waiting.
    pub contacts_waiting: u32,
    /// Estimated wait for a new contact.
    pub wait_ms_estimated: u64,
}

/// A site's published availability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteSummary {
    /// Site id.
    pub site: String,
    /// When the site measured it.
    pub at_ms: TimestampMs,
    /// Per skill.
    pub skills: Vec<SkillSummary>,
}
