//! Contacts: what a call or chat carries through routing, as one small `Copy` value.
//!
//! A contact is created by the driver (gateway or simulator) and handed to
//! [`crate::Site::handle_arrival`]; it moves between sites by value on overflow, so it holds
//! no references and no heap data.

use crate::ids::{CallbackId, CallerNumber, ContactId, SiteId, SkillId, TimeMs};
use serde::{Deserialize, Serialize};

/// Medium of a contact. Voice takes the whole agent; chat takes one of the agent's chat slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A phone call.
    Voice,
    /// A web or messenger chat.
    Chat,
}

/// What the caller chose in the IVR menu (pharmacy-chain topics; docs/SOURCES.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// Price or availability of a drug.
    PriceAvailability,
    /// Placing an order or a reservation.
    Order,
    /// Pre-order of an out-of-stock drug ("defectura").
    PreOrder,
    /// Status of an existing order (the self-service bot answers many of these).
    OrderStatus,
    /// A complaint (dedicated line).
    Complaint,
    /// Pharmaceutical consultation (analogues, generics): line-2 work.
    Consultation,
    /// Anything else.
    Other,
}

/// Whether the customer called us or we call the customer back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The customer called in.
    Inbound,
    /// A callback task turned into an outbound contact (see [`crate::CallbackBook`]).
    OutboundCallback,
}

/// Routing priority: higher is served first. Within one priority, service is FIFO by the
/// contact's ordering time.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Priority(pub u8);

/// A contact as routing sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Unique id chosen by the driver.
    pub id: ContactId,
    /// Voice or chat.
    pub channel: Channel,
    /// IVR topic.
    pub topic: Topic,
    /// The skill (queue) that must serve it.
    pub skill: SkillId,
    /// The customer's number: de-duplicates callbacks.
    pub caller: CallerNumber,
    /// Site whose number or gateway received it first.
    pub entry_site: SiteId,
    /// When it first arrived anywhere.
    pub arrived_at: TimeMs,
    /// Routing priority.
    pub priority: Priority,
    /// Place in queue: equals `arrived_at`, except that a callback for an abandoned caller
    /// keeps the caller's original ordering time so it is served at the caller's old place.
    pub ordering_time: TimeMs,
    /// Inbound or outbound callback.
    pub direction: Direction,
    /// The callback task this contact executes, for outbound callbacks.
    pub callback: Option<CallbackId>,
    /// How many times it has been overflowed between sites (overflow rules move a contact once).
    pub overflow_count: u8,
    /// How many times it has been transferred (line 1 → line 2).
    pub transfer_count: u8,
}

impl Contact {
    /// An inbound contact arriving at `now` with default priority; ordering time is `now`.
    pub fn inbound(
        id: ContactId,
        channel: Channel,
        topic: Topic,
        skill: SkillId,
        caller: CallerNumber,
        entry_site: SiteId,
        now: TimeMs,
    ) -> Contact {
        Contact {
            id,
            channel,
            topic,
            skill,
            caller,
            entry_site,
            arrived_at: now,
            priority: Priority::default(),
            ordering_time: now,
            direction: Direction::Inbound,
            callback: None,
            overflow_count: 0,
            transfer_count: 0,
        }
    }

    /// The same contact with another priority.
    pub fn with_priority(mut self, priority: Priority) -> Contact {
        self.priority = priority;
        self
    }
}
