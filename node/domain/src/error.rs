//! Errors of the domain's handlers: the input does not fit the current state.
//!
//! None of them leaves the state half-changed: a handler that returns an error has pushed no
//! effect and changed nothing.

use crate::agent::AgentState;
use crate::contact::Channel;
use crate::ids::{AgentId, ContactId, SkillId};

/// A handler refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// No agent with this id was added to the site.
    #[error("unknown agent {0}")]
    UnknownAgent(AgentId),
    /// An agent with this id already exists.
    #[error("agent {0} already exists")]
    DuplicateAgent(AgentId),
    /// The contact is not at this site (never arrived, already finished, or left).
    #[error("unknown contact {0}")]
    UnknownContact(ContactId),
    /// A contact with this id is already at this site.
    #[error("contact {0} already exists")]
    DuplicateContact(ContactId),
    /// The skill id is not in the routing configuration.
    #[error("unknown skill {0}")]
    UnknownSkill(SkillId),
    /// The contact's channel differs from its skill's channel.
    #[error("contact channel {channel:?} does not match skill {skill}")]
    ChannelMismatch {
        /// The contact's channel.
        channel: Channel,
        /// The skill.
        skill: SkillId,
    },
    /// The agent description is unusable (no skills, chat slots out of range, ...).
    #[error("invalid agent {agent}: {reason}")]
    InvalidAgent {
        /// Agent.
        agent: AgentId,
        /// What is wrong.
        reason: &'static str,
    },
    /// The agent's state does not allow the operation.
    #[error("agent {agent} is {state:?}; cannot {operation}")]
    AgentState {
        /// Agent.
        agent: AgentId,
        /// Its current state.
        state: AgentState,
        /// The refused operation.
        operation: &'static str,
    },
    /// The contact's phase does not allow the operation (e.g. accepting a contact not offered).
    #[error("contact {contact} cannot {operation} now")]
    ContactState {
        /// Contact.
        contact: ContactId,
        /// The refused operation.
        operation: &'static str,
    },
    /// The contact is not offered to / held by this agent.
    #[error("contact {contact} is not with agent {agent}")]
    NotAssigned {
        /// Contact.
        contact: ContactId,
        /// Agent.
        agent: AgentId,
    },
    /// The site holds `contacts_max` contacts already.
    #[error("site contact capacity reached")]
    CapacityReached,
}
