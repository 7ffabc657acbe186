//! What the domain tells its driver: [`Effect`]s to act on and [`Event`]s to record.
//!
//! Every handler appends to a caller-provided `Vec<Effect>` (reused across calls, so routing
//! allocates nothing per contact). Events are the single source of metrics, in node and
//! simulator alike; the other effects are work the driver must carry out.

use crate::agent::AgentState;
use crate::contact::{Channel, Contact, Direction, Topic};
use crate::ids::{AgentId, CallbackId, CallerNumber, ContactId, SiteId, SkillId, TimeMs};
use serde::{Deserialize, Serialize};

/// Why a contact left its site for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowReason {
    /// The overflow rule fired (wait over threshold, target had an idle qualified agent).
    Rule,
    /// The site was marked down; its contacts go elsewhere.
    Outage,
}

/// How a callback task ended or an attempt went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackOutcome {
    /// The customer was reached: the task is closed.
    Reached,
    /// Nobody answered: retried until the attempts run out.
    NoAnswer,
    /// The line was busy: retried until the attempts run out.
    Busy,
    /// Cancelled (the customer called in again, or an operator cancelled it).
    Cancelled,
}

/// Something that happened, with its time and site. Metrics are computed from these alone.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When.
    pub at: TimeMs,
    /// Where.
    pub site: SiteId,
    /// What.
    pub kind: EventKind,
}

impl Event {
    /// The same event moved to `at` in another time base: every instant it carries
    /// (`entered_queue_at`, `entered_site_at`) moves by the same amount, so waits and the
    /// interval an answer or abandon counts in keep their meaning (saturating at zero: a wait
    /// that began before the new base's zero counts from its start).
    pub fn moved_to(mut self, at: TimeMs) -> Event {
        let from = self.at;
        let shift = |time: &mut TimeMs| {
            *time = if at >= from {
                time.plus_ms(at.0 - from.0)
            } else {
                TimeMs(time.0.saturating_sub(from.0 - at.0))
            };
        };
        match &mut self.kind {
            EventKind::Answered {
                entered_queue_at,
                entered_site_at,
                ..
            }
            | EventKind::Abandoned {
                entered_queue_at,
                entered_site_at,
                ..
            }
            | EventKind::OverflowOut {
                entered_queue_at,
                entered_site_at,
                ..
            }
            | EventKind::SelfServed {
                entered_queue_at,
                entered_site_at,
                ..
            } => {
                shift(entered_queue_at);
                shift(entered_site_at);
            }
            _ => {}
        }
        self.at = at;
        self
    }
}

/// The kinds of [`Event`].
///
/// Counting rules (see API.md): a queue's *offered* = `Arrived` + `TransferredIn` +
/// `OverflowIn` for its skill; a site's *offered* = `Arrived` + `OverflowIn`. A contact is
/// answered, abandoned or overflowed out of a site at most once while `answered_before` is
/// false, which is what makes a site's conservation law hold across transfers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new contact arrived at the site (first entry, from the gateway or a callback).
    Arrived {
        /// Contact.
        contact: ContactId,
        /// Queue.
        skill: SkillId,
        /// Medium.
        channel: Channel,
        /// IVR topic.
        topic: Topic,
        /// Inbound or callback.
        direction: Direction,
    },
    /// The site's waiting limit was reached; the contact got a busy tone (not offered).
    Blocked {
        /// Contact.
        contact: ContactId,
        /// Queue.
        skill: SkillId,
    },
    /// The contact started waiting in its queue (no eligible agent was free).
    Queued {
        /// Contact.
        contact: ContactId,
        /// Queue.
        skill: SkillId,
        /// Contacts waiting in the queue including this one.
        waiting: u32,
    },
    /// An offer was made to an agent (agent reserved).
    Offered {
        /// Contact.
        contact: ContactId,
        /// Agent.
        agent: AgentId,
        /// Queue.
        skill: SkillId,
        /// Whether the contact came off the queue (false: routed on entry to an idle agent).
        dequeued: bool,
    },
    /// The agent rejected the offer; the contact is back at its old place in the queue.
    OfferRejected {
        /// Contact.
        contact: ContactId,
        /// Agent.
        agent: AgentId,
        /// Queue.
        skill: SkillId,
    },
    /// The offer rang out; the contact is back at its old place, the agent is not ready.
    OfferTimedOut {
        /// Contact.
        contact: ContactId,
        /// Agent.
        agent: AgentId,
        /// Queue.
        skill: SkillId,
    },
    /// The agent accepted: talking starts.
    Answered {
        /// Contact.
        contact: ContactId,
        /// Agent.
        agent: AgentId,
        /// Queue.
        skill: SkillId,
        /// Wait in this queue (from entering it to the answer, ringing included).
        wait_ms: u64,
        /// Wait at this site (from arrival or overflow-in to the answer).
        site_wait_ms: u64,
        /// When the contact entered this queue (metrics attribute to that interval).
        entered_queue_at: TimeMs,
        /// When the contact entered this site.
        entered_site_at: TimeMs,
        /// Already answered at this site before (a transferred contact's second leg).
        answered_before: bool,
    },
    /// The customer hung up before being answered in this queue.
    Abandoned {
        /// Contact.
        contact: ContactId,
        /// Queue.
        skill: SkillId,
        /// Wait in this queue.
        wait_ms: u64,
        /// Wait below the short-abandon threshold.
        short: bool,
        /// Whether it was in the queue (false: it was ringing at an agent).
        in_queue: bool,
        /// When the contact entered this queue.
        entered_queue_at: TimeMs,
        /// When the contact entered this site.
        entered_site_at: TimeMs,
        /// Already answered at this site before (abandoned while waiting for line 2).
        answered_before: bool,
    },
    /// A talking contact was transferred to another queue; its leg with the agent ended.
    TransferredOut {
        /// Contact.
        contact: ContactId,
        /// The agent who transferred (goes to wrap-up).
        agent: AgentId,
        /// Queue it left.
        from_skill: SkillId,
        /// Queue it goes to.
        to_skill: SkillId,
    },
    /// The transferred contact entered its new queue (offered to that queue, not to the site).
    TransferredIn {
        /// Contact.
        contact: ContactId,
        /// Queue.
        skill: SkillId,
    },
    /// The contact left this site for `target`.
    OverflowOut {
        /// Contact.
        contact: ContactId,
        /// Queue it left.
        skill: SkillId,
        /// Destination.
        target: SiteId,
        /// Why.
        reason: OverflowReason,
        /// Wait in the queue before leaving.
        wait_ms: u64,
        /// When the contact entered this queue.
        entered_queue_at: TimeMs,
        /// When the contact entered this site.
        entered_site_at: TimeMs,
        /// Already answered at this site before.
        answered_before: bool,
    },
    /// The contact arrived from another site.
    OverflowIn {
        /// Contact.
        contact: ContactId,
        /// Queue.
        skill: SkillId,
        /// Origin.
        from: SiteId,
    },
    /// Talking ended (customer or agent hung up, chat closed); wrap-up starts.
    Ended {
        /// Contact.
        contact: ContactId,
        /// Agent.
        agent: AgentId,
        /// Queue.
        skill: SkillId,
        /// Time talking, hold excluded.
        talk_ms: u64,
        /// Time on hold.
        hold_ms: u64,
    },
    /// After-contact work ended; the agent's slot is free.
    WrapUpEnded {
        /// Contact.
        contact: ContactId,
        /// Agent.
        agent: AgentId,
        /// Queue.
        skill: SkillId,
        /// Wrap-up duration.
        wrap_up_ms: u64,
    },
    /// The agent's derived state changed.
    AgentStateChanged {
        /// Agent.
        agent: AgentId,
        /// Previous state.
        from: AgentState,
        /// New state.
        to: AgentState,
    },
    /// A callback task was opened for an abandoned caller.
    CallbackCreated {
        /// Task.
        callback: CallbackId,
        /// Number to call.
        caller: CallerNumber,
        /// Queue the callback will use.
        skill: SkillId,
    },
    /// A callback task was closed.
    CallbackClosed {
        /// Task.
        callback: CallbackId,
        /// Final outcome.
        outcome: CallbackOutcome,
        /// Attempts made.
        attempts: u8,
    },
    /// The self-service bot served the caller (e.g. an order status) while the contact waited
    /// or rang: its own ending, counted apart — not an abandonment, and no callback.
    SelfServed {
        /// Contact.
        contact: ContactId,
        /// Queue.
        skill: SkillId,
        /// Wait in this queue.
        wait_ms: u64,
        /// Whether it was waiting in the queue (false: ringing at an agent).
        in_queue: bool,
        /// When it entered this queue.
        entered_queue_at: TimeMs,
        /// When it entered this site.
        entered_site_at: TimeMs,
        /// Whether it was answered at this site before (a transfer's second leg).
        answered_before: bool,
    },
}

/// A request to open a callback task, produced when a caller abandons; feed it to
/// [`crate::CallbackBook::handle_request`] (the node does so through Raft).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackRequest {
    /// Site where the caller abandoned.
    pub site: SiteId,
    /// Number to call back.
    pub caller: CallerNumber,
    /// Queue the callback joins.
    pub skill: SkillId,
    /// Medium.
    pub channel: Channel,
    /// Topic chosen in the IVR.
    pub topic: Topic,
    /// The caller's original place in the queue.
    pub ordering_time: TimeMs,
    /// When the caller abandoned.
    pub abandoned_at: TimeMs,
    /// Whether it was a short abandon (the policy decides whether those get a callback).
    pub short: bool,
}

/// Output of the domain's handlers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Effect {
    /// Record it (metrics, supervisor streams, logs).
    Event(Event),
    /// Ring `agent` with `contact`. Unless the agent accepts or rejects first, call
    /// [`crate::Site::handle_offer_timeout`] at `timeout_at` (stale timeouts are ignored).
    Offer {
        /// Contact.
        contact: ContactId,
        /// Agent.
        agent: AgentId,
        /// Deadline for the answer.
        timeout_at: TimeMs,
    },
    /// Stop ringing: the offer was withdrawn (caller hung up, site went down).
    CancelOffer {
        /// Contact.
        contact: ContactId,
        /// Agent.
        agent: AgentId,
    },
    /// Deliver this contact to `target` with [`crate::Site::handle_overflow_in`].
    Overflow {
        /// The contact, with its original ordering time.
        contact: Contact,
        /// Destination.
        target: SiteId,
    },
    /// Open a callback task (de-duplicated by number in the book).
    RequestCallback(CallbackRequest),
}
