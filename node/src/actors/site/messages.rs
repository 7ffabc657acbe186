//! What the API sends the Site actor and what it answers: inputs, errors, contact stages.

use std::collections::BTreeMap;

use actix::prelude::*;
use callgrid_domain::{Channel, ContactId, Topic};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::views::{ContactView, RoutingMetrics, SiteReply};
use crate::actors::ChildCounts;
use crate::actors::agent::AgentActor;
use crate::actors::call::CallActor;
use crate::actors::overflow::OverflowedFrom;
use crate::actors::queue::QueueActor;
use crate::state::Outcome;
use crate::state::model::CallbackOutcome;

/// Why the Site actor refused an input.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SiteError {
    /// The agent, contact or skill is unknown here.
    #[error("{0}")]
    NotFound(String),
    /// The input does not fit the current state (domain refusal).
    #[error("{0}")]
    Conflict(String),
    /// The contact belongs to another agent.
    #[error("{0}")]
    Forbidden(String),
    /// The input is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The domain refused the input; the cause is kept (an unknown contact or agent is a
    /// 404 at the API, a state that does not allow the input a 409).
    #[error(transparent)]
    Domain(#[from] callgrid_domain::DomainError),
    /// The contact is finished: only its Call actor (lookups) knows it still.
    #[error("contact {0} is finished")]
    Finished(ContactId),
    /// The site's durable outbox could not be opened or took no write.
    #[error("outbox: {0}")]
    Outbox(#[source] std::sync::Arc<crate::outbox::OutboxError>),
}

/// Result of a Site actor request.
pub type SiteResult = Result<SiteReply, SiteError>;

/// Where a contact is, as the node tracks it (the domain forgets contacts after talking).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactStage {
    /// Waiting in queue.
    Queued,
    /// Ringing at an agent.
    Offered,
    /// Talking.
    Talking,
    /// Agent in after-contact work.
    WrapUp,
    /// Done.
    Finished,
    /// Caller hung up while waiting.
    Abandoned,
    /// Served by the self-service bot before an agent answered (not an abandonment).
    SelfServed,
    /// Refused at arrival (site full).
    Blocked,
    /// Sent to another site by the overflow rule: the gateway re-presents it there.
    Overflowed,
    /// Waiting at a drained site that no peer could take: a callback at the caller's
    /// original place was scheduled; the gateway tells the caller and ends the call.
    CallbackScheduled,
}

/// An input from the API.
#[derive(Debug)]
pub enum SiteInput {
    /// Gateway: a contact arrived.
    ContactArrived(Arrival),
    /// Gateway: the agent's leg was answered (same as accept on the desktop).
    ContactAnswered {
        /// Contact.
        contact: ContactId,
        /// Login of the agent whose leg was answered.
        agent: String,
    },
    /// Gateway: the conversation ended.
    ContactEnded(ContactId),
    /// Gateway: the call's recording reference (validated), kept with the contact's ledger
    /// entry.
    ContactRecording {
        /// Contact.
        contact: ContactId,
        /// A URL or an opaque id.
        reference: String,
    },
    /// Gateway: the caller hung up while waiting or ringing.
    ContactAbandoned(ContactId),
    /// Gateway: the self-service bot served the caller while waiting or ringing.
    ContactSelfServed(ContactId),
    /// Gateway: a chat message from the customer.
    ChatMessage {
        /// Contact.
        contact: ContactId,
        /// Text.
        text: String,
    },
    /// An agent's chat reply to the customer (desktop API or stream).
    AgentChat {
        /// Login.
        login: String,
        /// Contact (a chat the agent is talking on).
        contact: ContactId,
        /// Text.
        text: String,
    },
    /// Agent logs in.
    Login(String),
    /// Agent logs out.
    Logout(String),
    /// Agent becomes ready.
    Ready(String),
    /// Agent becomes not ready.
    NotReady {
        /// Login.
        login: String,
        /// Reason code.
        reason: u16,
    },
    /// Agent accepts an offer.
    Accept {
        /// Login.
        login: String,
        /// Contact.
        contact: ContactId,
    },
    /// Agent rejects an offer.
    Reject {
        /// Login.
        login: String,
        /// Contact.
        contact: ContactId,
    },
    /// Agent ends the conversation (chat close, or voice hang-up from the desktop).
    End {
        /// Login.
        login: String,
        /// Contact.
        contact: ContactId,
    },
    /// Agent finishes wrap-up with a code; a callback contact may carry its outcome.
    WrapUp {
        /// Login.
        login: String,
        /// Contact.
        contact: ContactId,
        /// Wrap-up code.
        code: String,
        /// Outcome of the callback this contact executed.
        callback_outcome: Option<CallbackOutcome>,
    },
    /// Agent transfers a talking contact to another skill (line 2).
    Transfer {
        /// Login.
        login: String,
        /// Contact.
        contact: ContactId,
        /// Target skill name.
        skill: String,
    },
    /// Agent's own view: state, offers, contacts.
    AgentView(String),
    /// Supervisor: queues.
    QueuesView,
    /// Supervisor: agents.
    AgentsView,
    /// Supervisor: listen/whisper/barge request for the gateway.
    Monitor {
        /// Supervisor name.
        supervisor: String,
        /// Agent login.
        agent: String,
        /// Mode.
        mode: String,
    },
    /// Reports: one local day's per-interval statistics (today when `None`).
    Report {
        /// The site's local day.
        date: Option<super::reports::LocalDay>,
    },
}

impl Message for SiteInput {
    type Result = SiteResult;
}

/// A contact's details (the Call actor answers, with the transcript); `agent` restricts to
/// that agent's own contacts.
#[derive(Debug, Message)]
#[rtype(result = "Result<ContactView, SiteError>")]
pub struct LookupContact {
    /// Contact.
    pub contact: ContactId,
    /// Requesting agent, if the caller is an agent.
    pub agent: Option<String>,
}

/// Subscribe a stream: an agent's desktop, a supervisor wallboard, or a gateway.
#[derive(Debug)]
pub struct Subscribe {
    /// Whose stream.
    pub audience: Audience,
    /// Where to send JSON text.
    pub sender: mpsc::Sender<String>,
}

/// Who a stream is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// An agent's desktop: its offers and contacts.
    Agent(String),
    /// Supervisors: every routing event.
    Supervisor,
    /// Gateways: dial requests for callbacks and monitoring requests.
    Gateway,
}

impl Message for Subscribe {
    type Result = Result<(), SiteError>;
}

/// A contact arriving from the gateway.
#[derive(Debug)]
pub struct Arrival {
    /// Caller number (normalized).
    pub caller: String,
    /// Voice or chat.
    pub channel: Channel,
    /// IVR topic.
    pub topic: Topic,
    /// Skill override; otherwise derived from the topic.
    pub skill: Option<String>,
    /// Routing priority.
    pub priority: u8,
    /// Set when the call was overflowed here from another site.
    pub overflowed_from: Option<OverflowedFrom>,
}

/// Resolves once the writes the Site handed to its outbox so far are fsync'd: asked after
/// an input whose answer acknowledges such a write (an abandoned caller's callback, a dial
/// attempt's outcome).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), SiteError>")]
pub struct OutboxDurable;

/// Asks for a handle to the site's outbox (pending creates: the API appends and reads them).
#[derive(Debug, Message)]
#[rtype(result = "crate::outbox::Outbox")]
pub struct OutboxHandle;

/// Asks the actor to stop taking new work (SIGTERM): it releases queued callbacks.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Drain;

/// Asks for the routing part of `/metrics` (rendered by `api::metrics`).
#[derive(Debug, Message)]
#[rtype(result = "RoutingMetrics")]
pub struct LookupMetrics;

/// The Site's children, for tests and diagnostics.
#[derive(Debug, Message)]
#[rtype(result = "SiteChildren")]
pub struct LookupChildren;

/// Addresses of the Site's children.
#[derive(Debug, Default, MessageResponse)]
pub struct SiteChildren {
    /// Agent actors by login.
    pub agents: BTreeMap<String, Addr<AgentActor>>,
    /// Call actors by contact (lingering ones included).
    pub calls: BTreeMap<u64, Addr<CallActor>>,
    /// Queue actors by skill index.
    pub queues: Vec<Addr<QueueActor>>,
    /// Running counts.
    pub counts: ChildCounts,
}

/// Outcome of a proposal reported back as JSON (used by the API for created ids).
pub fn outcome_json(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::OrderCreated(id) => json!({"order": id}),
        Outcome::PreOrderCreated(id) => json!({"pre_order": id}),
        Outcome::ReservationCreated(id) => json!({"reservation": id}),
        Outcome::ComplaintFiled {
            complaint,
            escalated,
        } => json!({"complaint": complaint, "escalated": escalated}),
        Outcome::CallbacksCreated(ids) => json!({"callbacks": ids}),
        Outcome::Done => json!({}),
        // The proposer unwraps replays; the first result's body, should one get here.
        Outcome::Replayed(first) => match first.as_ref() {
            Ok(outcome) => outcome_json(outcome),
            Err(_) => json!({}),
        },
        Outcome::OutboxApplied {
            applied,
            duplicates,
            refused,
        } => json!({"applied": applied, "duplicates": duplicates, "refused": refused}),
        Outcome::OverflowClaimed {
            hops,
            arrived_at_ms,
            arrived_at_site,
        } => {
            json!({"hops": hops, "arrived_at_ms": arrived_at_ms, "arrived_at_site": arrived_at_site})
        }
        Outcome::SiteAdopted {
            contacts,
            callbacks,
            released,
        } => json!({"contacts": contacts, "callbacks": callbacks, "released": released}),
        Outcome::ReviewRecorded { review, replaced } => {
            json!({"review": review, "replaced": replaced})
        }
        Outcome::AgentsSeeded {
            added,
            unchanged,
            refused,
        } => json!({"added": added, "unchanged": unchanged, "refused": refused}),
    }
}
